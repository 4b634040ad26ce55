"""Write small OCI image layouts and archives directly (tarfile + JSON) for tests.

Real enough for the readers: blobs are content-addressed, layers are real tar streams (gzip, zstd or
plain), the config carries rootfs.diff_ids. Hostile layers are written the same way.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Member:
    """One tar member of a test layer."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    mode: int = 0o644
    linkname: str = ""
    uid: int = 0
    gid: int = 0


def tar_bytes(members: list[Member]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = m.type
            info.mode = m.mode
            info.uid, info.gid = m.uid, m.gid
            info.linkname = m.linkname
            info.size = len(m.data) if m.type == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(m.data) if m.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def compress(data: bytes, how: str) -> tuple[bytes, str]:
    if how == "gzip":
        return gzip.compress(data, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data), "application/vnd.oci.image.layer.v1.tar+zstd"
    return data, "application/vnd.oci.image.layer.v1.tar"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Layout:
    """An OCI image layout being written under ``root``."""

    root: Path
    index: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(self, data: bytes) -> str:
        d = sha(data)
        (self.root / "blobs" / "sha256" / d.split(":")[1]).write_bytes(data)
        return d

    def image(
        self,
        layers: list[list[Member]],
        *,
        config: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
        compression: str = "gzip",
        tag: str | None = "latest",
        architecture: str = "amd64",
    ) -> dict[str, Any]:
        """Write layers, config and manifest; add the manifest to index.json under ``tag``; return its descriptor."""
        layer_descs, diff_ids = [], []
        for members in layers:
            raw = tar_bytes(members)
            diff_ids.append(sha(raw))
            blob, media_type = compress(raw, compression)
            layer_descs.append({"mediaType": media_type, "digest": self.blob(blob), "size": len(blob)})
        cfg = {
            "architecture": architecture,
            "os": "linux",
            "config": config or {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history or [{"created_by": "test"} for _ in layers],
        }
        cfg_bytes = json.dumps(cfg).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": self.blob(cfg_bytes),
                "size": len(cfg_bytes),
            },
            "layers": layer_descs,
        }
        mbytes = json.dumps(manifest).encode()
        desc: dict[str, Any] = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": self.blob(mbytes),
            "size": len(mbytes),
            "platform": {"os": "linux", "architecture": architecture},
        }
        if tag:
            desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index.append(desc)
        self.write_index()
        return desc

    def write_index(self) -> None:
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": self.index}
        (self.root / "index.json").write_text(json.dumps(doc))
