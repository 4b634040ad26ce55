"""The image lock of a bundle (``images.lock.json``): every image the manifests run, with its digest.

Images are found the way the checks find them: every workload kind's pod template (Pods, Deployments,
StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs, CronJobs, PodTemplates; ``List``
objects expanded; kustomizations rendered), in ``containers``, ``initContainers`` and
``ephemeralContainers``. A reference already pinned by digest keeps its digest; any other is resolved
against its registry (the digest the tag points to now: for a multi-arch image, the index). A
reference that cannot be resolved is an error unless the caller allows unresolved entries.

The lock is canonical JSON (sorted keys, two-space indent, trailing newline, no time stamps), so the
same manifests and the same registry state give the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from factorygate.oci.model import ImageError
from factorygate.oci.reference import Reference, parse_reference
from factorygate.supply.bundle_archive import BundleError, BundleFile

LOCK_NAME = "images.lock.json"
LOCK_KIND = "factorygate.dev/ImageLock"
LOCK_VERSION = 1
MAX_LOCK_BYTES = 8 << 20
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

if TYPE_CHECKING:
    from factorygate.oci.registry import RegistryOptions

Resolver = Callable[[Reference], str]  # a tag reference -> the manifest digest it points to


class ImageUse(NamedTuple):
    """One container that runs an image."""

    reference: str
    file: str
    line: int
    kind: str
    namespace: str | None
    name: str
    container: str
    role: str


class LockEntry(NamedTuple):
    reference: str  # as written in the manifests
    image: str  # registry/repository, normalised
    tag: str | None
    digest: str | None
    source: str  # "reference" (pinned in the manifest) | "registry" (resolved) | "unresolved"
    problem: str | None
    used_by: tuple[ImageUse, ...]

    @property
    def pinned(self) -> str | None:
        """``registry/repository[:tag]@digest``: what a pod spec should say."""
        if self.digest is None:
            return None
        tag = f":{self.tag}" if self.tag else ""
        return f"{self.image}{tag}@{self.digest}"


# --- finding images -------------------------------------------------------------------------------------------


def _uses(items: Iterable[object], root: str | None) -> Iterator[ImageUse]:
    from factorygate.facts.workload import workload_from
    from factorygate.inputs.kubernetes import LoadError, Manifest

    for item in items:
        if isinstance(item, LoadError):
            line = f":{item.line}" if item.line else ""
            raise BundleError(f"{_relative(item.file, root)}{line}: {item.message}")
        if not isinstance(item, Manifest):
            continue
        workload = workload_from(item.data)
        if workload is None:
            continue
        for c in workload.containers:
            image = c.spec.get("image")
            if not isinstance(image, str) or not image.strip():
                continue
            yield ImageUse(
                reference=image,
                file=_relative(item.file, root),
                line=item.line_of(f"{c.path}.image"),
                kind=workload.kind,
                namespace=workload.namespace,
                name=workload.name,
                container=c.name,
                role=c.role,
            )


def _relative(name: str, root: str | None) -> str:
    if root is None or name == "-":
        return name
    rel = os.path.relpath(name, root).replace(os.sep, "/")
    return "." if rel == "." else rel


def find_images_in_files(files: Iterable[BundleFile]) -> list[ImageUse]:
    """Images in YAML/JSON files already read (stdin, a rendered kustomization)."""
    from factorygate.facts.workload import WORKLOAD_KINDS
    from factorygate.inputs.kubernetes import manifests_from_bytes

    uses: list[ImageUse] = []
    for f in files:
        if f.path.endswith(MANIFEST_SUFFIXES):
            uses.extend(_uses(manifests_from_bytes(f.data, f.path, kinds=WORKLOAD_KINDS), None))
    return uses


def find_images_in_directory(root: Path) -> list[ImageUse]:
    """Images under a directory as ``factorygate scan`` reads it (kustomizations rendered)."""
    from factorygate.facts.workload import WORKLOAD_KINDS
    from factorygate.inputs.kubernetes import ReadOptions, load_unit, plan_inputs

    opts = ReadOptions(kustomize=True, kinds=WORKLOAD_KINDS, input_type="kubernetes")
    uses: list[ImageUse] = []
    for unit in plan_inputs([str(root)], opts):
        uses.extend(_uses(load_unit(unit, opts), str(root)))
    return uses


# --- resolving ------------------------------------------------------------------------------------------------


def registry_resolver(opts: RegistryOptions) -> Resolver:
    """Resolve tags with the registry client of ``factorygate image`` (TLS, auth, --insecure-registry)."""
    from factorygate.oci.push import RegistryWriter

    def resolve(ref: Reference) -> str:
        with RegistryWriter(f"{ref.registry}/{ref.repository}", opts) as registry:
            return registry.resolve(ref.tag or "latest")

    return resolve


def build_lock(uses: Iterable[ImageUse], resolve: Resolver, allow_unresolved: bool = False) -> list[LockEntry]:
    """One entry per distinct reference, sorted; every problem named, then raised unless allowed."""
    grouped: dict[str, list[ImageUse]] = {}
    for use in uses:
        grouped.setdefault(use.reference, []).append(use)
    cache: dict[str, str | ImageError] = {}
    entries: list[LockEntry] = []
    problems: list[str] = []
    for reference in sorted(grouped):
        used_by = tuple(sorted(grouped[reference], key=lambda u: (u.file, u.line, u.container)))
        where = f"{used_by[0].file}:{used_by[0].line}"
        try:
            ref = parse_reference(reference)
        except ImageError as e:
            problems.append(f"{where}: {e}")
            entries.append(LockEntry(reference, reference, None, None, "unresolved", str(e), used_by))
            continue
        image = f"{ref.registry}/{ref.repository}"
        if ref.digest:
            entries.append(LockEntry(reference, image, ref.tag, ref.digest, "reference", None, used_by))
            continue
        key = str(ref)
        if key not in cache:
            try:
                cache[key] = resolve(ref)
            except ImageError as e:
                cache[key] = e
        found = cache[key]
        if isinstance(found, ImageError):
            problems.append(f"{where}: image {reference!r} cannot be resolved to a digest: {found}")
            entries.append(LockEntry(reference, image, ref.tag, None, "unresolved", str(found), used_by))
        else:
            entries.append(LockEntry(reference, image, ref.tag, found, "registry", None, used_by))
    if problems and not allow_unresolved:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BundleError(f"{problems[0]}{more}; pin it by digest or pass --allow-unresolved")
    return entries


# --- the file -------------------------------------------------------------------------------------------------


def lock_document(entries: Iterable[LockEntry]) -> dict[str, Any]:
    images = []
    for e in entries:
        doc: dict[str, Any] = {
            "reference": e.reference,
            "image": e.image,
            "tag": e.tag,
            "digest": e.digest,
            "pinned": e.pinned,
            "source": e.source,
            "usedBy": [
                {
                    "file": u.file,
                    "line": u.line,
                    "kind": u.kind,
                    "namespace": u.namespace,
                    "name": u.name,
                    "container": u.container,
                    "role": u.role,
                }
                for u in e.used_by
            ],
        }
        if e.problem:
            doc["problem"] = e.problem
        images.append(doc)
    return {"apiVersion": LOCK_VERSION, "kind": LOCK_KIND, "images": images}


def encode_lock(entries: Iterable[LockEntry]) -> bytes:
    text = json.dumps(lock_document(entries), indent=2, sort_keys=True, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def parse_lock(data: bytes, what: str) -> dict[str, Any]:
    """A lock file read back (from a pulled bundle): its shape checked, a BundleError otherwise."""
    if len(data) > MAX_LOCK_BYTES:
        raise BundleError(f"{what}: image lock over {MAX_LOCK_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise BundleError(f"{what}: image lock is not JSON ({str(e)[:120]})") from None
    if not isinstance(doc, dict) or doc.get("kind") != LOCK_KIND or doc.get("apiVersion") != LOCK_VERSION:
        raise BundleError(f"{what}: not a {LOCK_KIND} v{LOCK_VERSION} document")
    images = doc.get("images")
    if not isinstance(images, list) or not all(_entry_ok(i) for i in images):
        raise BundleError(f"{what}: image lock entries are malformed")
    return doc


def _entry_ok(item: object) -> bool:
    if not isinstance(item, Mapping):
        return False
    digest = item.get("digest")
    return (
        isinstance(item.get("reference"), str)
        and (digest is None or isinstance(digest, str))
        and item.get("source") in ("reference", "registry", "unresolved")
        and isinstance(item.get("usedBy"), list)
    )
