"""cosign-compatible key-based image signatures (cosign ``specs/SIGNATURE_SPEC.md``).

Storage: the signatures of ``repo@sha256:<hex>`` are the layers of one OCI image manifest tagged
``sha256-<hex>.sig`` in the same repository. Each layer is a simple-signing payload blob
(``application/vnd.dev.cosign.simplesigning.v1+json``) whose descriptor carries the base64 ECDSA-P256/SHA-256
ASN.1 signature of the payload bytes in the ``dev.cosignproject.cosign/signature`` annotation.

Payload: ``{"critical": {"identity": {"docker-reference": REPO}, "image": {"docker-manifest-digest": DIGEST},
"type": "cosign container image signature"}, "optional": {...} | null}``.

Verification (for each layer until one passes): the payload blob matches its descriptor's digest, the signature
verifies with one of the trusted keys, ``critical.type`` is cosign's, the signed digest is the image's digest
(a signature re-tagged onto another image is rejected) and the signed docker reference names the repository the
image came from (cosign ignores this field; factorygate checks it, normalised: ``index.docker.io`` is
``docker.io``). Every reason a layer was rejected is kept for the error message.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from factorygate.errors import FactorygateError
from factorygate.oci.digest import check_digest, digest_of
from factorygate.oci.model import OCI_CONFIG, OCI_MANIFEST, ImageError
from factorygate.oci.reference import parse_reference
from factorygate.supply.keys import fingerprint

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_SIGNATURE_LAYERS = 256  # a .sig manifest with more layers is refused (bounded work per verification)
MAX_REASONS_SHOWN = 4


class SignatureError(FactorygateError):
    """A signature (or attestation) is missing, malformed or does not verify; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unsigned(SignatureError):
    """No signature object exists for the image."""


class ArtifactStore(Protocol):
    """Where signature manifests and blobs are read from: a registry (RegistryWriter) or a local OCI layout."""

    def get_manifest(self, reference: str) -> tuple[bytes, str, str] | None: ...

    def get_blob(self, digest: str, limit: int) -> bytes: ...


class ArtifactWriter(ArtifactStore, Protocol):
    def push_blob(self, data: bytes) -> str: ...

    def push_manifest(self, data: bytes, media_type: str, reference: str) -> str: ...


@dataclass(frozen=True)
class Verified:
    digest: str  # the image manifest digest the signature binds
    docker_reference: str  # the repository the signature names
    fingerprint: str  # sha256:<hex> of the signer's public key (DER SubjectPublicKeyInfo)
    annotations: dict[str, Any] = field(default_factory=dict)  # the payload's "optional" claims


def signature_tag(digest: str, suffix: str = "sig") -> str:
    """``sha256:<hex>`` → ``sha256-<hex>.sig`` (cosign's tag-based discovery)."""
    digest = check_digest(digest, "image digest")
    return digest.replace(":", "-", 1) + "." + suffix


def normalised_repository(reference: str) -> str:
    """``host/repo`` with docker's normalisation (``alpine`` → ``docker.io/library/alpine``); tag/digest dropped."""
    try:
        ref = parse_reference(reference)
    except ImageError:
        return reference
    return f"{ref.registry}/{ref.repository}"


# ---- payloads -----------------------------------------------------------------------------------------------------


def simple_signing_payload(docker_reference: str, digest: str, annotations: Mapping[str, str] | None = None) -> bytes:
    """The payload bytes cosign signs (its Go encoder's field order, compact)."""
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": check_digest(digest, "image digest")},
            "type": SIGNATURE_TYPE,
        },
        "optional": dict(annotations) if annotations else None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key.lower() in (k.lower() for k in seen):
            raise ValueError(f"duplicate key {key[:40]!r}")
        seen[key] = value
    return seen


def strict_json(data: bytes) -> Any:
    """JSON with duplicate keys (also case variants, which Go's decoder folds together) rejected."""
    return json.loads(data, object_pairs_hook=_no_duplicates)


def _field(doc: Mapping[str, Any], name: str) -> Any:
    """A field looked up case-insensitively, as cosign's Go decoder does (duplicates were already rejected)."""
    for key, value in doc.items():
        if key.lower() == name.lower():
            return value
    return None


@dataclass(frozen=True)
class Claims:
    docker_reference: str
    digest: str
    optional: dict[str, Any]


def parse_payload(data: bytes) -> Claims:
    """The claims of a simple-signing payload; ValueError with the reason when it is not one."""
    doc = strict_json(data)
    critical = _field(doc, "critical") if isinstance(doc, dict) else None
    if not isinstance(critical, dict):
        raise ValueError("payload has no critical section")  # noqa: TRY004
    kind = _field(critical, "type")
    if kind != SIGNATURE_TYPE:
        raise ValueError(f"payload type {str(kind)[:60]!r} is not {SIGNATURE_TYPE!r}")
    image, identity = _field(critical, "image"), _field(critical, "identity")
    digest = _field(image, "docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(digest, str):
        raise ValueError("payload has no docker-manifest-digest")  # noqa: TRY004
    reference = _field(identity, "docker-reference") if isinstance(identity, dict) else None
    optional = _field(doc, "optional")
    return Claims(
        reference if isinstance(reference, str) else "", digest, optional if isinstance(optional, dict) else {}
    )


# ---- signatures ---------------------------------------------------------------------------------------------------


def sign_bytes(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    """Base64 (standard, padded) ASN.1 ECDSA signature over SHA-256 of ``data``."""
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def verify_bytes_with(keys: Sequence[ec.EllipticCurvePublicKey], data: bytes, signature_b64: str) -> str | None:
    """The fingerprint of the key that verifies ``signature_b64`` over ``data``; None when none does."""
    try:
        raw = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    for key in keys:
        try:
            key.verify(raw, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return fingerprint(key)
    return None


# ---- the .sig / .att image ----------------------------------------------------------------------------------------


def _config(layers: Sequence[Mapping[str, Any]]) -> bytes:
    """The config of a signature image as cosign writes it (empty platform, one diff_id per layer)."""
    doc = {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        "config": {},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def existing_layers(store: ArtifactStore, tag: str, what: str) -> list[dict[str, Any]]:
    """The layer descriptors of the manifest at ``tag`` (empty when there is none)."""
    found = store.get_manifest(tag)
    if found is None:
        return []
    try:
        doc = json.loads(found[0])
    except ValueError:
        raise ImageError(f"{what}: the existing {tag} manifest is not JSON") from None
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise ImageError(f"{what}: the existing {tag} manifest has no layer list")
    return layers


def append_layer(store: ArtifactWriter, tag: str, payload: bytes, media_type: str, annotations: dict[str, str]) -> str:
    """Upload ``payload`` and add it as a layer of the image at ``tag`` (kept: others' layers); its digest."""
    layers = existing_layers(store, tag, tag)
    if len(layers) >= MAX_SIGNATURE_LAYERS:
        raise ImageError(f"{tag}: already holds {len(layers)} layers (limit {MAX_SIGNATURE_LAYERS})")
    digest = store.push_blob(payload)
    layer = {"mediaType": media_type, "size": len(payload), "digest": digest, "annotations": annotations}
    if layer not in layers:
        layers.append(layer)
    config = _config(layers)
    store.push_blob(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": digest_of(config)},
        "layers": layers,
    }
    return store.push_manifest(json.dumps(manifest, separators=(",", ":")).encode(), OCI_MANIFEST, tag)


def sign_image(
    writer: ArtifactWriter,
    docker_reference: str,
    digest: str,
    key: ec.EllipticCurvePrivateKey,
    annotations: dict[str, str] | None = None,
) -> str:
    """Sign ``digest`` and add the signature to ``sha256-<hex>.sig``; returns the digest of that manifest."""
    payload = simple_signing_payload(docker_reference, digest, annotations)
    signature = sign_bytes(key, payload)
    return append_layer(writer, signature_tag(digest), payload, SIMPLE_SIGNING, {SIGNATURE_ANNOTATION: signature})


def summarise_reasons(reasons: list[str]) -> str:
    shown = reasons[:MAX_REASONS_SHOWN]
    more = f" (and {len(reasons) - len(shown)} more)" if len(reasons) > len(shown) else ""
    return "; ".join(shown) + more


def signature_layers(store: ArtifactStore, tag: str, what: str) -> list[dict[str, Any]]:
    found = store.get_manifest(tag)
    if found is None:
        raise Unsigned(f"{what}: unsigned (no {tag} signature in the repository)")
    try:
        doc = json.loads(found[0])
    except ValueError:
        raise SignatureError(f"{what}: the {tag} manifest is not JSON") from None
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list) or not layers:
        raise SignatureError(f"{what}: the {tag} manifest holds no signatures")
    if len(layers) > MAX_SIGNATURE_LAYERS:
        raise SignatureError(f"{what}: the {tag} manifest has {len(layers)} layers (limit {MAX_SIGNATURE_LAYERS})")
    return layers


def verify_image(
    writer: ArtifactStore,
    docker_reference: str,
    digest: str,
    keys: Sequence[ec.EllipticCurvePublicKey],
    *,
    check_reference: bool = True,
) -> Verified:
    """The first signature of ``digest`` that verifies with one of ``keys`` and names ``docker_reference``
    (``check_reference=False``: an image read from a local layout, which has no repository to match).

    Raises :class:`Unsigned` when there is no signature object, :class:`SignatureError` with every reason when
    none verifies.
    """
    digest = check_digest(digest, "image digest")
    what = f"{docker_reference}@{digest}"
    if not keys:
        raise SignatureError(f"{what}: no trusted public keys given")
    wanted_repo = normalised_repository(docker_reference)
    reasons: list[str] = []
    for n, layer in enumerate(signature_layers(writer, signature_tag(digest), what), 1):
        at = f"signature {n}"
        if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLE_SIGNING:
            reasons.append(f"{at}: not a simple-signing layer")
            continue
        annotations = layer.get("annotations")
        signature = annotations.get(SIGNATURE_ANNOTATION) if isinstance(annotations, dict) else None
        if not isinstance(signature, str) or not signature:
            reasons.append(f"{at}: no {SIGNATURE_ANNOTATION} annotation")
            continue
        size = layer.get("size")
        try:
            payload = writer.get_blob(check_digest(layer.get("digest"), at), MAX_PAYLOAD_BYTES)
        except ImageError as e:
            reasons.append(f"{at}: payload unreadable ({str(e)[-160:]})")
            continue
        if size != len(payload):
            reasons.append(f"{at}: payload is {len(payload)} bytes, its descriptor says {size!r}")
            continue
        signer = verify_bytes_with(keys, payload, signature)
        if signer is None:
            reasons.append(f"{at}: the signature does not verify with the trusted key(s)")
            continue
        try:
            claims = parse_payload(payload)
        except ValueError as e:
            reasons.append(f"{at}: {e}")
            continue
        if claims.digest != digest:
            reasons.append(f"{at}: signs digest {claims.digest[:80]}, not the image's {digest}")
            continue
        if check_reference and normalised_repository(claims.docker_reference) != wanted_repo:
            reasons.append(f"{at}: signs docker reference {claims.docker_reference[:120]!r}, not {wanted_repo!r}")
            continue
        return Verified(digest, claims.docker_reference, signer, claims.optional)
    raise SignatureError(f"{what}: no valid signature: {summarise_reasons(reasons)}")
