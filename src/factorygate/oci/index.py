"""Parse manifests and image indexes; pick one platform's manifest from a multi-arch index."""

from __future__ import annotations

import json
from typing import Any

from factorygate.oci.model import INDEX_TYPES, MANIFEST_TYPES, Descriptor, ImageError, Platform

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the distribution spec's recommended manifest limit


def parse_json(data: bytes, what: str) -> dict[str, Any]:
    """Decode a manifest, index or config document; one-line ImageError on anything but an object."""
    if len(data) > MAX_MANIFEST_BYTES * 4:
        raise ImageError(f"{what}: {len(data)} bytes is over the {MAX_MANIFEST_BYTES * 4}-byte limit")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise ImageError(f"{what}: not valid JSON ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{what}: expected a JSON object, got {type(doc).__name__}")
    return doc


def media_type_of(doc: dict[str, Any], fallback: str | None) -> str:
    """A document's mediaType field, else what it was served/described as, else guessed from its shape."""
    mt = doc.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    if fallback:
        return fallback
    if "manifests" in doc:
        return "application/vnd.oci.image.index.v1+json"
    return "application/vnd.oci.image.manifest.v1+json"


def is_index(media_type: str) -> bool:
    return media_type in INDEX_TYPES


def is_manifest(media_type: str) -> bool:
    return media_type in MANIFEST_TYPES


def index_entries(doc: dict[str, Any], what: str) -> list[Descriptor]:
    raw = doc.get("manifests")
    if not isinstance(raw, list):
        raise ImageError(f"{what}: index has no manifests list")
    return [Descriptor.from_json(m, f"{what}: manifests[{i}]") for i, m in enumerate(raw)]


def select_platform(entries: list[Descriptor], platform: Platform, what: str) -> Descriptor:
    """The index entry for ``platform`` (variant matched when asked for; attestation entries skipped)."""
    candidates = [
        d
        for d in entries
        if d.platform is not None
        and d.platform.os == platform.os
        and d.platform.architecture == platform.architecture
        and (platform.variant is None or d.platform.variant == platform.variant)
        and d.annotations.get("vnd.docker.reference.type") != "attestation-manifest"
    ]
    if not candidates:
        offered = sorted({str(d.platform) for d in entries if d.platform and d.platform.os != "unknown"})
        raise ImageError(f"{what}: no image for platform {platform} (index offers: {', '.join(offered) or 'none'})")
    return candidates[0]


def manifest_parts(doc: dict[str, Any], what: str) -> tuple[Descriptor, list[Descriptor]]:
    """The config descriptor and layer descriptors of an image manifest."""
    if doc.get("schemaVersion") != 2:
        raise ImageError(f"{what}: unsupported manifest schemaVersion {doc.get('schemaVersion')!r} (want 2)")
    config = Descriptor.from_json(doc.get("config"), f"{what}: config")
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, list):
        raise ImageError(f"{what}: manifest has no layers list")
    return config, [Descriptor.from_json(x, f"{what}: layers[{i}]") for i, x in enumerate(raw_layers)]


def diff_ids(config: dict[str, Any], layer_count: int, what: str) -> list[str]:
    """config.rootfs.diff_ids, checked to be digests and to match the manifest's layer count."""
    from factorygate.oci.digest import check_digest

    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list):
        raise ImageError(f"{what}: image config has no rootfs.diff_ids")
    if len(ids) != layer_count:
        raise ImageError(f"{what}: config lists {len(ids)} diff_ids for {layer_count} layers")
    return [check_digest(x, f"{what}: rootfs.diff_ids") for x in ids]
