"""Signatures and attestations stored in a local OCI image layout (offline verification).

Two ways a layout carries them, both read:

* ``cosign save --dir DIR IMAGE``: ``index.json`` lists the image (annotation ``kind:
  dev.cosignproject.cosign/image`` or ``.../imageIndex``), its signatures image (``kind:
  dev.cosignproject.cosign/sigs``) and its attestations image (``kind: dev.cosignproject.cosign/atts``);
* a layout holding cosign's tags as images, e.g. copied with ``skopeo``/``oras``: entries whose
  ``org.opencontainers.image.ref.name`` is ``sha256-<hex>.sig`` or ``.att``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from factorygate.oci.digest import check_digest, verify_bytes
from factorygate.oci.index import MAX_MANIFEST_BYTES
from factorygate.oci.model import ImageError

KIND = "kind"
KIND_IMAGE = ("dev.cosignproject.cosign/image", "dev.cosignproject.cosign/imageIndex")
KIND_BY_SUFFIX = {"sig": "dev.cosignproject.cosign/sigs", "att": "dev.cosignproject.cosign/atts"}
REF_NAME = "org.opencontainers.image.ref.name"


class LayoutStore:
    """Read-only :class:`factorygate.supply.cosign.ArtifactStore` over an OCI layout directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        try:
            index = json.loads(self._read("index.json", MAX_MANIFEST_BYTES))
        except ValueError:
            raise ImageError(f"{self.root}: index.json is not JSON") from None
        entries = index.get("manifests") if isinstance(index, dict) else None
        self.entries: list[dict[str, Any]] = [e for e in entries or [] if isinstance(e, dict)]

    def _read(self, rel: str, limit: int) -> bytes:
        path = self.root / rel
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ImageError(f"{self.root}: {rel} is missing from the layout") from None
        except OSError as e:
            raise ImageError(f"{self.root}: cannot open {rel}: {e.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ImageError(f"{self.root}: {rel} is not a regular file")
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ImageError(f"{self.root}: {rel} is over the {limit}-byte limit")
        return data

    @staticmethod
    def _annotations(entry: dict[str, Any]) -> dict[str, Any]:
        found = entry.get("annotations")
        return found if isinstance(found, dict) else {}

    def _entry_for(self, reference: str) -> dict[str, Any] | None:
        if reference.startswith("sha256:"):
            return next((e for e in self.entries if e.get("digest") == reference), None)
        for e in self.entries:
            if self._annotations(e).get(REF_NAME) == reference:
                return e
        # cosign save: the one signed image's sigs/atts, when the tag names that image's digest
        stem, dot, suffix = reference.rpartition(".")
        if not dot or suffix not in KIND_BY_SUFFIX:
            return None
        digest = stem.replace("-", ":", 1)
        signed = [e for e in self.entries if self._annotations(e).get(KIND) in KIND_IMAGE]
        if not any(e.get("digest") == digest for e in signed):
            return None
        return next((e for e in self.entries if self._annotations(e).get(KIND) == KIND_BY_SUFFIX[suffix]), None)

    def get_manifest(self, reference: str) -> tuple[bytes, str, str] | None:
        entry = self._entry_for(reference)
        if entry is None:
            return None
        digest = check_digest(entry.get("digest"), f"{self.root}: index.json entry")
        data = self.get_blob(digest, MAX_MANIFEST_BYTES)
        media_type = entry.get("mediaType")
        return data, media_type if isinstance(media_type, str) else "", digest

    def get_blob(self, digest: str, limit: int) -> bytes:
        digest = check_digest(digest, f"{self.root}: blob")
        algorithm, hexdigest = digest.split(":", 1)
        data = self._read(f"blobs/{algorithm}/{hexdigest}", limit)
        return verify_bytes(data, digest, f"{self.root}: blob {digest}")
