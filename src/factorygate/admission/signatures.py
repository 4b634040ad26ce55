"""Image signatures at admission (``admission serve --verify-signatures``): check ``img-signed-at-admission``.

For every container, initContainer and ephemeralContainer image of an admitted workload: resolve the reference to
its manifest digest (a tag costs one manifest request, an ``@sha256:`` reference none), then verify a cosign
signature of that digest (``sha256-<hex>.sig`` in the image's repository) with one of the policy's
``trusted_signing_keys`` (:func:`factorygate.supply.cosign.verify_image`: digest binding and docker reference too).

Outcomes, as Kyverno's ``verifyImages`` and sigstore's policy-controller users expect:

* signed by a trusted key: nothing to report (the webhook records failures only);
* unsigned, signed by another key, an invalid signature, a tag or digest the registry does not have: a *failure*
  of ``img-signed-at-admission`` (a policy failure: denies in every namespace unless waived or below the threshold);
* the registry unreachable, answering errors, or verification past its time budget: an *error* of
  ``img-signed-at-admission`` (an evaluation error: denies, except in ``fail_open_namespaces`` as every other error).

Caches (bounded LRU, monotonic-clock TTLs, shared by the worker threads): ``(repository, tag) -> digest`` for a
short time (a moved tag is seen after ``tag_ttl``), ``(repository, digest) -> signer fingerprint`` for longer
(a digest's content never changes; only the signature could be removed). Failures are not cached: an image
signed after a denial is admitted on the next try. With every image of a request in the caches, the decision is
made on the event loop without a thread hop or any registry request.

Registry I/O runs in a worker thread (:func:`asyncio.to_thread`), never on the event loop; the whole verification
of one request is bounded by ``timeout`` (below the webhook's ``timeoutSeconds``). A thread past the budget is not
killed (Python cannot); its registry requests are bounded by the same timeout, and what it verifies still fills the
cache.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Generic, NamedTuple, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from factorygate.engine import Engine
from factorygate.errors import FactorygateError
from factorygate.facts.images import ImageRef, parse_image
from factorygate.facts.workload import Workload
from factorygate.model import Finding, Location, Outcome, Resource, Status
from factorygate.oci.registry import RegistryOptions

CHECK_ID = "img-signed-at-admission"
DEFAULT_VERIFIED_TTL_S = 600.0
DEFAULT_TAG_TTL_S = 30.0
DEFAULT_CACHE_SIZE = 10_000
DEFAULT_TIMEOUT_S = 4.0  # the generated ValidatingWebhookConfiguration waits 5 s (timeoutSeconds)
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SignatureSetupError(FactorygateError):
    """``--verify-signatures`` cannot be turned on: no trusted keys, or a key that does not load."""


class TtlLru(Generic[K, V]):
    """A bounded mapping whose entries expire ``ttl`` seconds after they were put; least recently used evicted."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            if entry[0] <= self.clock():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return entry[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0 or self.size <= 0:
            return
        with self._lock:
            self._data[key] = (self.clock() + self.ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class ImageVerdict(NamedTuple):
    """What verification found for one container's image."""

    container: str
    path: str  # JSON path of the container's image field
    image: str
    ok: bool
    error: bool  # True: could not be decided (registry unreachable, timed out): an evaluation error
    message: str


@dataclass(frozen=True)
class SignatureOptions:
    """The webhook's signature settings (picklable: worker processes receive them)."""

    registry: RegistryOptions
    verified_ttl: float = DEFAULT_VERIFIED_TTL_S
    tag_ttl: float = DEFAULT_TAG_TTL_S
    cache_size: int = DEFAULT_CACHE_SIZE
    timeout: float = DEFAULT_TIMEOUT_S


def load_trusted_keys(entries: Sequence[str]) -> list[ec.EllipticCurvePublicKey]:
    """The policy's trusted_signing_keys, or a one-line SignatureSetupError."""
    from factorygate.supply import evidence, keys

    if not entries:
        raise SignatureSetupError(
            "--verify-signatures needs the policy's parameters.trusted_signing_keys (PEM public keys or .pub paths)"
        )
    try:
        return evidence.trusted_keys(entries)
    except keys.KeyFileError as e:
        raise SignatureSetupError(f"--verify-signatures: policy trusted_signing_keys: {e}") from None


def _container_images(w: Workload) -> list[tuple[str, str, str]]:
    """(container name, JSON path of its image, image reference) for every container of the pod spec."""
    out = []
    for c in w.containers:
        image = c.spec.get("image")
        out.append((c.name, f"{c.path}.image", image if isinstance(image, str) else ""))
    return out


class SignatureVerifier:
    """Verifies the images of admitted workloads, with caches; one per worker process."""

    def __init__(
        self,
        keys: Sequence[ec.EllipticCurvePublicKey],
        options: SignatureOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not keys:
            raise SignatureSetupError("--verify-signatures needs at least one trusted key")
        self.keys = list(keys)
        self.options = options
        # each registry request is bounded too (a thread past the request's budget ends soon after it)
        self.registry = replace(options.registry, timeout=min(options.registry.timeout, 2 * options.timeout))
        self.tags: TtlLru[tuple[str, str], str] = TtlLru(options.tag_ttl, options.cache_size, clock)
        self.verified: TtlLru[tuple[str, str], str] = TtlLru(options.verified_ttl, options.cache_size, clock)
        self.lookups = 0  # images looked up in a registry (cache misses), for tests and metrics
        self._count = threading.Lock()

    # -- one image --------------------------------------------------------------------------------------------

    def _digest_of(self, ref: ImageRef) -> str | None:
        """The digest the reference names, from the reference or the tag cache; None when the registry must say."""
        if ref.digest is not None:
            return ref.digest
        return self.tags.get((ref.name, ref.tag or "latest"))

    def cached(self, image: str) -> tuple[bool, str] | None:
        """(ok, message) when the caches decide ``image`` without I/O (only successes are cached)."""
        ref = parse_image(image)
        digest = self._digest_of(ref)
        if digest is None:
            return None
        signer = self.verified.get((ref.name, digest))
        if signer is None:
            return None
        return True, f"image {image}: {ref.name}@{digest} signed by key {signer}"

    def verify(self, image: str) -> tuple[bool, bool, str]:
        """(ok, error, message) for one image reference; registry I/O (call it in a worker thread)."""
        from factorygate.oci.model import ImageError
        from factorygate.oci.push import RegistryWriter
        from factorygate.supply import cosign

        if not image:
            return False, False, "the container has no image"
        ref = parse_image(image)
        if ref.digest is not None and not (ref.digest_valid and ref.digest.startswith("sha256:")):
            return False, False, f"image {image}: digest {ref.digest[:80]!r} is not a sha256 digest"
        with self._count:
            self.lookups += 1
        try:
            with RegistryWriter(ref.name, self.registry) as store:
                digest = self._digest_of(ref)
                if digest is None:
                    tag = ref.tag or "latest"
                    found = store.get_manifest(tag)
                    if found is None:
                        return False, False, f"image {image}: tag {tag} not found in {store.repository}"
                    digest = found[2]
                    self.tags.put((ref.name, tag), digest)
                signer = self.verified.get((ref.name, digest))
                if signer is None:
                    verified = cosign.verify_image(store, ref.name, digest, self.keys)
                    signer = verified.fingerprint
                    self.verified.put((ref.name, digest), signer)
        except cosign.Unsigned as e:
            return False, False, f"image {image}: {e.reason}"
        except cosign.SignatureError as e:
            return False, False, f"image {image}: {e.reason}"
        except ImageError as e:
            return False, True, f"image {image}: registry lookup failed: {str(e)[-300:]}"
        except Exception as e:  # noqa: BLE001 - the registry client wraps transport errors in ImageError; anything
            # else is an evaluation error too (denied, fail closed), never a crash of the request
            return False, True, f"image {image}: signature lookup failed: {type(e).__name__}: {str(e)[-200:]}"
        return True, False, f"image {image}: {ref.name}@{digest} signed by key {signer}"

    # -- one request ------------------------------------------------------------------------------------------

    def _verify_all(self, images: Sequence[str]) -> dict[str, tuple[bool, bool, str]]:
        return {image: self.verify(image) for image in images}

    async def verdicts(self, w: Workload) -> list[ImageVerdict]:
        """Every container image of ``w`` verified (cache first, then one worker thread, within the budget)."""
        containers = _container_images(w)
        results: dict[str, tuple[bool, bool, str]] = {}
        pending: list[str] = []
        for _, _, image in containers:
            if image in results or image in pending:
                continue
            hit = self.cached(image) if image else None
            if hit is not None:
                results[image] = (hit[0], False, hit[1])
            else:
                pending.append(image)
        if pending:
            budget = self.options.timeout
            try:
                async with asyncio.timeout(budget):
                    results.update(await asyncio.to_thread(self._verify_all, pending))
            except TimeoutError:
                for image in pending:
                    results.setdefault(
                        image, (False, True, f"image {image}: signature verification timed out after {budget:g} s")
                    )
        return [ImageVerdict(name, path, image, *results[image]) for name, path, image in containers]


def findings(engine: Engine, w: Workload, subject: str, verdicts: Sequence[ImageVerdict]) -> list[Finding]:
    """``img-signed-at-admission`` findings of the images that failed (waivers applied as for every check), and an
    error finding per image that could not be verified."""
    meta = engine.catalog.checks[CHECK_ID]
    resource = Resource(kind=w.kind, name=w.name, namespace=w.namespace)
    # the engine's own waiver rules (policy waivers and factorygate.dev/waive.* annotations); the annotation
    # problems themselves were already reported by the main evaluation
    waivers, _ = engine._inline_waivers(
        w.annotations, resource, lambda key: Location(subject, None, f"metadata.annotations.{key}"), "annotation"
    )
    out: list[Finding] = []
    for v in verdicts:
        if v.ok:
            continue
        location = Location(subject, None, v.path)
        if v.error:
            out.append(
                Finding(
                    check=CHECK_ID,
                    status=Status.ERROR,
                    severity=engine.severity[CHECK_ID],
                    message=v.message,
                    location=location,
                    requirements=meta.requirements,
                    nist=meta.nist,
                    cci=meta.cci,
                    resource=resource,
                    container=v.container,
                    title=meta.title,
                    remediation=meta.remediation,
                )
            )
            continue
        outcome = Outcome(False, v.message, v.path, v.container)
        out.append(engine._finding(CHECK_ID, outcome, resource, location, waivers))
    return out


def applies(engine: Engine) -> bool:
    """Whether the policy runs the check (a policy can disable it like any other)."""
    return engine.policy.enabled(CHECK_ID)
