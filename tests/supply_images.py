"""Small images pushed straight into a test registry with factorygate's own writer (no skopeo needed)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.oci_builders import Member, tar_bytes
from tests.registry_server import Certs, RegistryServer, make_certs, missing_tools

from factorygate.oci.digest import digest_of
from factorygate.oci.model import OCI_CONFIG, OCI_MANIFEST
from factorygate.oci.push import RegistryWriter
from factorygate.oci.registry import RegistryOptions
from factorygate.supply import keys


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


@dataclass
class SigningRegistry:
    """A real docker-registry over TLS on 127.0.0.1 and two cosign key pairs: the signer and another."""

    root: Path
    server: RegistryServer
    certs: Certs
    opts: RegistryOptions
    key: ec.EllipticCurvePrivateKey
    key_path: Path
    pub_path: Path
    other: ec.EllipticCurvePrivateKey
    other_pub_path: Path

    @property
    def pub(self) -> ec.EllipticCurvePublicKey:
        return keys.load_public_key(self.pub_path)

    def writer(self, repo: str) -> RegistryWriter:
        return RegistryWriter(f"{self.server.host}/{repo}", self.opts)


@contextmanager
def signing_registry(root: Path, password: bytes) -> Iterator[SigningRegistry]:
    """Start the registry and write the keys under ``root`` (skips the test when the tools are missing)."""
    missing = missing_tools(("docker-registry", "openssl"))
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/system-deps.sh)")
    certs = make_certs(root / "certs")
    server = RegistryServer(root / "registry", certs).start()
    try:
        key_path, pub_path = keys.generate(str(root / "signer"), password)
        other_path, other_pub_path = keys.generate(str(root / "other"), password)
        yield SigningRegistry(
            root,
            server,
            certs,
            RegistryOptions(ca_file=certs.cert),
            keys.load_private_key(key_path, password),
            key_path,
            pub_path,
            keys.load_private_key(other_path, password),
            other_pub_path,
        )
    finally:
        server.stop()
