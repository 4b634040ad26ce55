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
        compression: str | list[str] = "gzip",
        tag: str | None = "latest",
        architecture: str = "amd64",
        add: bool = True,
    ) -> dict[str, Any]:
        """Write layers, config and manifest; add the manifest to index.json under ``tag``; return its descriptor.

        ``compression`` may name one method per layer; ``add=False`` leaves index.json alone (for nested indexes).
        """
        how = compression if isinstance(compression, list) else [compression] * len(layers)
        blobs = []
        for members, method in zip(layers, how, strict=True):
            raw = tar_bytes(members)
            blob, media_type = compress(raw, method)
            blobs.append((blob, media_type, sha(raw)))
        return self.image_from_blobs(blobs, config=config, history=history, tag=tag, architecture=architecture, add=add)

    def image_from_blobs(
        self,
        blobs: list[tuple[bytes, str, str]],
        *,
        config: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
        tag: str | None = "latest",
        architecture: str = "amd64",
        add: bool = True,
    ) -> dict[str, Any]:
        """Like :meth:`image` from ready layer blobs: (blob bytes, media type, diff_id) each, hostile or not."""
        layers = [blob for blob, _, _ in blobs]
        layer_descs = [{"mediaType": mt, "digest": self.blob(blob), "size": len(blob)} for blob, mt, _ in blobs]
        diff_ids = [diff_id for _, _, diff_id in blobs]
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
        if add:
            self.index.append(desc)
            self.write_index()
        return desc

    def nested_index(self, manifests: list[dict[str, Any]], tag: str | None = "latest") -> dict[str, Any]:
        """Write an image index blob over ``manifests`` and add it to index.json under ``tag``."""
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
        data = json.dumps(doc).encode()
        desc: dict[str, Any] = {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": self.blob(data),
            "size": len(data),
        }
        if tag:
            desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index.append(desc)
        self.write_index()
        return desc

    def read_blob(self, digest: str) -> bytes:
        return (self.root / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()

    def write_index(self) -> None:
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": self.index}
        (self.root / "index.json").write_text(json.dumps(doc))


def archive_dir(root: Path, dest: Path) -> Path:
    """Tar up a directory (an OCI layout) as an OCI archive, member names relative to ``root``."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        for path in sorted(root.rglob("*")):
            tf.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
    return dest


@dataclass
class DockerImage:
    """One image of a ``docker save`` archive: layers as members, config, tags."""

    layers: list[list[Member]]
    repo_tags: list[str] = field(default_factory=list)
    compression: str = "none"
    blob_names: bool = False  # name layers blobs/sha256/<hex> (docker 25+) instead of <id>/layer.tar
    config: dict[str, Any] = field(default_factory=dict)


def docker_archive(dest: Path, images: list[DockerImage], extra: list[Member] | None = None) -> Path:
    """Write a ``docker save`` style archive (manifest.json, <hex>.json configs, layer tars)."""
    members: dict[str, bytes] = {}
    manifest = []
    for img in images:
        names, diff_ids = [], []
        for layer in img.layers:
            raw = tar_bytes(layer)
            diff_ids.append(sha(raw))
            blob, _ = compress(raw, img.compression)
            hexdigest = sha(blob).split(":")[1]
            name = f"blobs/sha256/{hexdigest}" if img.blob_names else f"{sha(raw).split(':')[1]}/layer.tar"
            members[name] = blob
            names.append(name)
        cfg = {
            "architecture": "amd64",
            "os": "linux",
            "config": img.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": "test"} for _ in img.layers],
        }
        cfg_bytes = json.dumps(cfg).encode()
        cfg_hex = sha(cfg_bytes).split(":")[1]
        cfg_name = f"blobs/sha256/{cfg_hex}" if img.blob_names else f"{cfg_hex}.json"
        members[cfg_name] = cfg_bytes
        manifest.append({"Config": cfg_name, "RepoTags": img.repo_tags, "Layers": names})
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for m in extra or []:
            info = tarfile.TarInfo(m.name)
            info.type, info.linkname = m.type, m.linkname
            info.size = len(m.data) if m.type == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(m.data) if m.type == tarfile.REGTYPE else None)
    return dest


def raw_header(name: str, size: int = 0, type: bytes = tarfile.REGTYPE, linkname: str = "") -> bytes:
    """One 512-byte GNU-format header block, for hand-assembled hostile tar streams."""
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname = size, type, linkname
    return info.tobuf(format=tarfile.GNU_FORMAT)


def pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)
