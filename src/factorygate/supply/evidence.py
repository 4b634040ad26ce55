"""Signature evidence for CICDG-2.10 (``img-signed``), gathered before the checks run (checks do no I/O).

What counts as evidence, by where the image was read from:

* registry: the cosign signature (``sha256-<hex>.sig``) in the image's own repository, for the platform
  manifest or, when the reference named a multi-platform index, for that index; docker reference checked;
* OCI layout directory: a signature stored in the same layout (``cosign save`` or ``sha256-<hex>.sig`` tags);
  the digest binding and key are verified offline; the docker reference is reported, not matched;
* OCI or docker archive: none (archives carry no signatures): a failure that says so.

The base is the one the image declares (manifest annotations ``org.opencontainers.image.base.name`` and
``org.opencontainers.image.base.digest``); its signature is looked up in the layout first (local images), then
in the base's repository. An image that declares no base fails: its base's signature cannot be checked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from factorygate.facts.image import SignatureEvidence, SignatureFacts
from factorygate.oci.model import ImageError, ResolvedImage
from factorygate.oci.reference import Reference, parse_reference
from factorygate.oci.registry import RegistryOptions
from factorygate.supply import cosign, keys
from factorygate.supply.layout import LayoutStore

BASE_DIGEST = "org.opencontainers.image.base.digest"
BASE_NAME = "org.opencontainers.image.base.name"


def trusted_keys(entries: Sequence[str]) -> list[ec.EllipticCurvePublicKey]:
    """The policy's ``trusted_signing_keys``: PEM text or paths to .pub files (KeyFileError names the entry)."""
    found = []
    for n, entry in enumerate(entries, 1):
        if "-----BEGIN" in entry:
            found.append(keys.parse_public_key(entry.encode(), f"trusted_signing_keys[{n}]"))
        else:
            found.append(keys.load_public_key(entry.strip()))
    return found


def _describe(v: cosign.Verified, where: str) -> str:
    return f"signed by key {v.fingerprint} ({where}; docker-reference {v.docker_reference or 'none'})"


def _verify_in(
    store: cosign.ArtifactStore,
    repository: str,
    digests: Sequence[str],
    trusted: Sequence[ec.EllipticCurvePublicKey],
    where: str,
    *,
    check_reference: bool = True,
) -> tuple[str | None, list[str]]:
    """(what verified, or None; the reasons of the failed attempts) over candidate digests."""
    reasons = []
    for digest in dict.fromkeys(digests):
        try:
            verified = cosign.verify_image(store, repository, digest, trusted, check_reference=check_reference)
        except cosign.SignatureError as e:
            reasons.append(e.reason)
            continue
        return _describe(verified, where), reasons
    return None, reasons


def _registry(
    repository: str, digests: Sequence[str], trusted: Sequence[ec.EllipticCurvePublicKey], opts: RegistryOptions
) -> tuple[str | None, list[str]]:
    from factorygate.oci.push import RegistryWriter

    with RegistryWriter(repository, opts) as w:
        return _verify_in(w, w.repository, digests, trusted, f"cosign signature in {w.repository}")


def _image(
    image: ResolvedImage, ref: str, trusted: Sequence[ec.EllipticCurvePublicKey], opts: RegistryOptions
) -> SignatureEvidence:
    digest = image.manifest_digest
    if image.transport == "registry" and image.registry and image.repository:
        repository = f"{image.registry}/{image.repository}"
        candidates = [digest, *_index_digest(repository, parse_reference(ref), digest, opts)]
        ok, reasons = _registry(repository, candidates, trusted, opts)
        return SignatureEvidence("image", f"{repository}@{digest}", ok is not None, ok or "; ".join(reasons))
    if image.transport == "oci-layout":
        root = _layout_root(ref)
        ok, reasons = _verify_in(
            LayoutStore(root), "", [digest], trusted, f"signature in the layout {root}", check_reference=False
        )
        return SignatureEvidence("image", f"{root}@{digest}", ok is not None, ok or "; ".join(reasons))
    return SignatureEvidence(
        "image",
        ref,
        False,
        f"a {image.transport} carries no signatures: check the registry reference, or an OCI layout written "
        "by `cosign save`",
    )


def _index_digest(repository: str, ref: Reference, platform_digest: str, opts: RegistryOptions) -> list[str]:
    """The digest of the multi-platform index ``ref`` names, when that index lists the analysed manifest
    (a signature of the index covers its platform manifests, as ``cosign sign`` of a tag does)."""
    from factorygate.oci.push import RegistryWriter

    with RegistryWriter(repository, opts) as w:
        found = w.get_manifest(ref.digest or ref.tag or "latest")
    if found is None or found[2] == platform_digest:
        return []
    try:
        doc = json.loads(found[0])
    except ValueError:
        return []
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    if isinstance(entries, list) and any(isinstance(e, dict) and e.get("digest") == platform_digest for e in entries):
        return [found[2]]
    return []


def _layout_root(ref: str) -> Path:
    from factorygate.oci.local import split_reference

    found = split_reference(ref)
    if found is None:  # resolved as a layout a moment ago
        raise ImageError(f"{ref}: not an OCI layout")
    return found[0]


def _base(
    image: ResolvedImage, ref: str, trusted: Sequence[ec.EllipticCurvePublicKey], opts: RegistryOptions
) -> SignatureEvidence:
    annotations = image.manifest.get("annotations") if isinstance(image.manifest, dict) else None
    annotations = annotations if isinstance(annotations, dict) else {}
    name, digest = annotations.get(BASE_NAME), annotations.get(BASE_DIGEST)
    if not isinstance(digest, str) or not digest:
        return SignatureEvidence(
            "base",
            "",
            False,
            f"no base declared (manifest annotations {BASE_NAME} and {BASE_DIGEST}): its signature cannot be checked",
        )
    repository = ""
    if isinstance(name, str) and name:
        parsed = parse_reference(name)
        repository = f"{parsed.registry}/{parsed.repository}"
    reasons: list[str] = []
    if image.transport == "oci-layout":
        root = _layout_root(ref)
        ok, reasons = _verify_in(
            LayoutStore(root),
            repository,
            [digest],
            trusted,
            f"signature in the layout {root}",
            check_reference=bool(repository),
        )
        if ok is not None:
            return SignatureEvidence("base", f"{repository or root}@{digest}", True, ok)
    if not repository:
        reasons.append(f"no {BASE_NAME} annotation: the base's repository is unknown")
        return SignatureEvidence("base", digest, False, "; ".join(reasons))
    ok, more = _registry(repository, [digest], trusted, opts)
    return SignatureEvidence("base", f"{repository}@{digest}", ok is not None, ok or "; ".join(reasons + more))


def gather(image: ResolvedImage, ref: str, key_entries: Sequence[str], opts: RegistryOptions) -> SignatureFacts:
    """The image's and its base's signature evidence against the policy's trusted keys."""
    if not key_entries:
        return SignatureFacts(0)
    try:
        trusted = trusted_keys(key_entries)
    except keys.KeyFileError as e:
        return SignatureFacts(len(key_entries), (), f"policy trusted_signing_keys: {e}")
    try:
        found = (_image(image, ref, trusted, opts), _base(image, ref, trusted, opts))
    except (ImageError, ValueError) as e:
        return SignatureFacts(len(trusted), (), str(e))
    return SignatureFacts(len(trusted), found)
