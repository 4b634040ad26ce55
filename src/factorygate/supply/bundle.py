"""Signed release bundles: Kubernetes manifests plus their image lock as a Flux-compatible OCI artifact.

The artifact is what ``flux push artifact`` produces, so Flux's OCIRepository can reconcile it:

* manifest ``application/vnd.oci.image.manifest.v1+json``;
* config ``application/vnd.cncf.flux.config.v1+json`` (the empty JSON object ``{}``);
* layer 0 ``application/vnd.cncf.flux.content.v1.tar+gzip``: the manifests (deterministic tar+gzip, see
  :mod:`factorygate.supply.bundle_archive`); Flux extracts the first layer;
* layer 1 ``application/vnd.factorygate.images.lock.v1+json``: ``images.lock.json``, kept out of the content
  layer so that Flux's kustomize-controller never tries to apply it;
* annotations ``org.opencontainers.image.created|source|revision`` (what Flux copies to the artifact's metadata).

The manifest digest is signed the cosign way (a ``sha256-<digest>.sig`` tag), which Flux's
``spec.verify: {provider: cosign}`` checks. Pulling verifies that signature before any layer is read.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from factorygate.oci.model import ImageError
from factorygate.oci.reference import Reference, parse_reference
from factorygate.supply.bundle_archive import (
    DEFAULT_UNPACK_LIMITS,
    BundleError,
    BundleFile,
    UnpackLimits,
    pack,
    unpack,
    write_files,
)
from factorygate.supply.bundle_lock import LOCK_NAME, MAX_LOCK_BYTES, encode_lock, parse_lock

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from factorygate.oci.push import RegistryWriter
    from factorygate.oci.registry import RegistryOptions
    from factorygate.supply.bundle_lock import LockEntry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
FLUX_CONFIG = "application/vnd.cncf.flux.config.v1+json"
FLUX_CONTENT = "application/vnd.cncf.flux.content.v1.tar+gzip"
LOCK_MEDIA_TYPE = "application/vnd.factorygate.images.lock.v1+json"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_SOURCE = "org.opencontainers.image.source"
ANNOTATION_REVISION = "org.opencontainers.image.revision"
ANNOTATION_TITLE = "org.opencontainers.image.title"
CONFIG_BYTES = b"{}"
MAX_MANIFEST_BYTES = 4 << 20
DEFAULT_MAX_BUNDLE_BYTES = 64 << 20  # compressed content layer


class Artifact(NamedTuple):
    """A bundle ready to push: its blobs and its manifest."""

    manifest: bytes
    content: bytes
    lock: bytes
    files: tuple[BundleFile, ...]

    @property
    def content_digest(self) -> str:
        from factorygate.oci.digest import digest_of

        return digest_of(self.content)


class Pushed(NamedTuple):
    repository: str
    tag: str
    digest: str
    signature: str  # where the signature was stored
    files: int
    images: int
    content_digest: str


class Pulled(NamedTuple):
    repository: str
    digest: str
    fingerprint: str
    files: tuple[BundleFile, ...]
    lock: dict[str, Any] | None
    lock_bytes: bytes | None  # exactly as pushed
    annotations: Mapping[str, str]


def created_time(value: str | None = None) -> str:
    """RFC 3339 UTC: ``value`` when given, else ``SOURCE_DATE_EPOCH`` when set, else now."""
    if value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BundleError(f"--created {value[:60]!r}: not an RFC 3339 date-time") from None
        if parsed.tzinfo is None:
            raise BundleError(f"--created {value[:60]!r}: give a time zone (e.g. Z)")
        return value
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            stamp = dt.datetime.fromtimestamp(int(epoch), dt.UTC)
        except (ValueError, OverflowError, OSError):
            raise BundleError(f"SOURCE_DATE_EPOCH {epoch[:40]!r} is not a number of seconds") from None
    else:
        stamp = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _descriptor(media_type: str, data: bytes, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    from factorygate.oci.digest import digest_of

    desc: dict[str, Any] = {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}
    if annotations:
        desc["annotations"] = dict(annotations)
    return desc


def build_artifact(
    files: Sequence[BundleFile], lock: Sequence[LockEntry], annotations: Mapping[str, str], what: str = "bundle"
) -> Artifact:
    """The blobs and the manifest of a bundle (nothing is pushed)."""
    if any(f.path == LOCK_NAME for f in files):
        raise BundleError(
            f"{what}: a file named {LOCK_NAME} at the top of the bundle would collide with the image lock "
            "written on pull; rename it"
        )
    content = pack(files, what)
    lock_bytes = encode_lock(lock)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(FLUX_CONFIG, CONFIG_BYTES),
        "layers": [
            _descriptor(FLUX_CONTENT, content),
            _descriptor(LOCK_MEDIA_TYPE, lock_bytes, {ANNOTATION_TITLE: LOCK_NAME}),
        ],
        "annotations": dict(sorted(annotations.items())),
    }
    data = json.dumps(manifest, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Artifact(data, content, lock_bytes, tuple(files))


def bundle_annotations(
    created: str | None, source: str | None, revision: str | None, extra: Sequence[str] = ()
) -> dict[str, str]:
    """The manifest annotations: Flux's three, then ``KEY=VALUE`` pairs given with --annotation."""
    out = {ANNOTATION_CREATED: created_time(created)}
    if source:
        out[ANNOTATION_SOURCE] = source
    if revision:
        out[ANNOTATION_REVISION] = revision
    for pair in extra:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BundleError(f"--annotation {pair[:100]!r}: give KEY=VALUE")
        out[key.strip()] = value
    return out


def split_target(ref: str, what: str) -> tuple[Reference, str]:
    """``host/repo[:tag][@digest]`` -> (reference, ``host/repo``)."""
    try:
        parsed = parse_reference(ref)
    except ImageError as e:
        raise BundleError(f"{what} {ref[:200]!r}: {e}") from None
    return parsed, f"{parsed.registry}/{parsed.repository}"


# --- push -----------------------------------------------------------------------------------------------------


def push_artifact(artifact: Artifact, ref: str, opts: RegistryOptions, key: ec.EllipticCurvePrivateKey) -> Pushed:
    """Push the blobs and the manifest (by tag), then sign the manifest digest."""
    from factorygate.oci.push import RegistryWriter
    from factorygate.supply.cosign import sign_image

    parsed, repository = split_target(ref, "bundle")
    if parsed.digest:
        raise BundleError(f"bundle {ref!r}: push to a tag (host/repository:tag), not a digest")
    tag = parsed.tag or "latest"
    with RegistryWriter(repository, opts) as registry:
        for blob in (CONFIG_BYTES, artifact.content, artifact.lock):
            registry.push_blob(blob)
        digest = registry.push_manifest(artifact.manifest, OCI_MANIFEST, tag)
        signature = sign_image(registry, registry.repository, digest, key)
    files = len(artifact.files)
    images = len(json.loads(artifact.lock)["images"])
    return Pushed(repository, tag, digest, signature, files, images, artifact.content_digest)


# --- pull -----------------------------------------------------------------------------------------------------


def _manifest_parts(data: bytes, what: str) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, str]]:
    """(content layer, lock layer or None, annotations) of a bundle manifest, its shape checked."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise BundleError(f"{what}: manifest is not JSON") from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise BundleError(f"{what}: not an OCI image manifest (schemaVersion 2)")
    media_type = doc.get("mediaType", OCI_MANIFEST)
    if media_type != OCI_MANIFEST:
        raise BundleError(f"{what}: manifest media type {str(media_type)[:100]!r} is not {OCI_MANIFEST}")
    config = doc.get("config")
    if not isinstance(config, dict) or config.get("mediaType") != FLUX_CONFIG:
        found = config.get("mediaType") if isinstance(config, dict) else None
        raise BundleError(f"{what}: not a bundle (config media type {str(found)[:100]!r}, want {FLUX_CONFIG})")
    layers = doc.get("layers")
    if not isinstance(layers, list) or not all(isinstance(x, dict) for x in layers):
        raise BundleError(f"{what}: manifest has no layer list")
    content = [x for x in layers if x.get("mediaType") == FLUX_CONTENT]
    locks = [x for x in layers if x.get("mediaType") == LOCK_MEDIA_TYPE]
    if len(content) != 1 or len(locks) > 1:
        raise BundleError(
            f"{what}: want exactly one {FLUX_CONTENT} layer and at most one image lock "
            f"(found {len(content)} and {len(locks)})"
        )
    for layer in content + locks:
        if not isinstance(layer.get("digest"), str) or not isinstance(layer.get("size"), int) or layer["size"] < 0:
            raise BundleError(f"{what}: a layer descriptor has no valid digest and size")
    raw = doc.get("annotations") or {}
    if not isinstance(raw, dict):
        raise BundleError(f"{what}: manifest annotations are not a map")
    annotations = {str(k): str(v) for k, v in raw.items()}
    return content[0], locks[0] if locks else None, annotations


def fetch_verified(
    registry: RegistryWriter,
    parsed: Reference,
    keys: Sequence[ec.EllipticCurvePublicKey],
    what: str,
    *,
    limits: UnpackLimits = DEFAULT_UNPACK_LIMITS,
    max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
) -> Pulled:
    """Resolve, verify the signature, then (only then) read and check the layers."""
    from factorygate.supply.cosign import verify_image

    found = registry.get_manifest(parsed.digest or parsed.tag or "latest")
    if found is None:
        raise BundleError(f"{what}: not found on {parsed.registry}")
    data, _, digest = found
    # the signature first: nothing of an unsigned or tampered bundle is parsed beyond this point
    verified = verify_image(registry, registry.repository, digest, keys)
    content_desc, lock_desc, annotations = _manifest_parts(data, what)
    if content_desc["size"] > max_bundle_bytes:
        raise BundleError(
            f"{what}: content layer of {content_desc['size']} bytes is over the {max_bundle_bytes}-byte limit"
        )
    try:
        content = registry.get_blob(content_desc["digest"], content_desc["size"])
    except ImageError as e:
        raise BundleError(f"{what}: {e}") from None
    if len(content) != content_desc["size"]:
        raise BundleError(f"{what}: content layer is {len(content)} bytes, the manifest says {content_desc['size']}")
    files = unpack(content, what, limits)
    lock = lock_bytes = None
    if lock_desc is not None:
        if lock_desc["size"] > MAX_LOCK_BYTES:
            raise BundleError(f"{what}: image lock of {lock_desc['size']} bytes is over the limit")
        try:
            lock_bytes = registry.get_blob(lock_desc["digest"], lock_desc["size"])
        except ImageError as e:
            raise BundleError(f"{what}: {e}") from None
        lock = parse_lock(lock_bytes, f"{what}: {LOCK_NAME}")
        if any(f.path == LOCK_NAME for f in files):
            raise BundleError(f"{what}: entry {LOCK_NAME!r} collides with the bundle's image lock")
    return Pulled(registry.repository, digest, verified.fingerprint, tuple(files), lock, lock_bytes, annotations)


def pull_bundle(
    ref: str,
    opts: RegistryOptions,
    keys: Sequence[ec.EllipticCurvePublicKey],
    target: Path,
    *,
    force: bool = False,
    lock_path: Path | None = None,
    limits: UnpackLimits = DEFAULT_UNPACK_LIMITS,
    max_bundle_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
) -> Pulled:
    """Verify, unpack into ``target`` (and write the lock to ``lock_path``, default ``target/images.lock.json``)."""
    from factorygate.oci.push import RegistryWriter

    parsed, repository = split_target(ref, "bundle")
    what = f"bundle {ref}"
    with RegistryWriter(repository, opts) as registry:
        pulled = fetch_verified(registry, parsed, keys, what, limits=limits, max_bundle_bytes=max_bundle_bytes)
    outputs = list(pulled.files)
    lock_file = lock_path if lock_path is not None else target / LOCK_NAME
    lock_bytes = pulled.lock_bytes
    if lock_bytes is not None and lock_path is None:
        outputs.append(BundleFile(LOCK_NAME, lock_bytes))
    write_files(outputs, target, what, force)
    if lock_bytes is not None and lock_path is not None:
        write_files([BundleFile(lock_file.name, lock_bytes)], lock_file.parent, what, force)
    return pulled
