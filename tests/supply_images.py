"""Small images pushed straight into a test registry with factorygate's own writer (no skopeo needed)."""

from __future__ import annotations

import gzip
import json

from tests.oci_builders import Member, tar_bytes

from factorygate.oci.digest import digest_of
from factorygate.oci.model import OCI_CONFIG, OCI_MANIFEST
from factorygate.oci.push import RegistryWriter


def image_manifest(
    writer: RegistryWriter, files: dict[str, bytes], *, annotations: dict[str, str] | None = None, user: str = "1000"
) -> bytes:
    """Upload one gzip layer with ``files`` and its config; the manifest bytes (not pushed)."""
    raw = tar_bytes([Member(name, data) for name, data in files.items()])
    layer = gzip.compress(raw, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"User": user},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(raw)]},
            "history": [{"created_by": "COPY . /"}],
        }
    ).encode()
    writer.push_blob(layer)
    writer.push_blob(config)
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest_of(layer), "size": len(layer)}
        ],
    }
    if annotations:
        manifest["annotations"] = annotations
    return json.dumps(manifest).encode()


def push_image(writer: RegistryWriter, tag: str, files: dict[str, bytes], **kw: object) -> str:
    """Push a one-layer image under ``tag``; its manifest digest."""
    data = image_manifest(writer, files, **kw)  # type: ignore[arg-type]
    return writer.push_manifest(data, OCI_MANIFEST, tag)
