"""The shared vocabulary of image sources, layer streams and the assembled filesystem.

Contract between the readers (layout, archive, registry), the layer walker and the image checks:

* a *source* resolves one image to a :class:`ResolvedImage` (manifest, config, layer descriptors);
* ``ResolvedImage.open_blob(desc)`` returns a binary stream that verifies size and digest as it is
  read and raises :class:`ImageError` at the first byte past ``desc.size`` or at EOF on a mismatch;
* the layer walker (``oci.layers``) turns those streams into :class:`FileEntry` records and a
  :class:`ImageFilesystem` (whiteouts applied), capturing contents only of files a caller asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from factorygate.errors import InputError

# Media types (OCI image spec v1.1 and Docker image manifest v2 schema 2).
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})


class ImageError(InputError):
    """An image cannot be resolved or one of its blobs is unreadable, hostile or corrupt."""


@dataclass(frozen=True, slots=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/amd64``, ``linux/arm64/v8``."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ImageError(f"platform {text!r}: expected OS/ARCH[/VARIANT], e.g. linux/amd64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return "/".join(x for x in (self.os, self.architecture, self.variant) if x)


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str  # "sha256:<64 hex>"
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    @classmethod
    def from_json(cls, raw: Any, what: str) -> Descriptor:
        """Validate one descriptor object of a manifest or index (raises ImageError naming ``what``)."""
        from factorygate.oci.digest import check_digest

        if not isinstance(raw, dict):
            raise ImageError(f"{what}: descriptor is not an object")
        media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise ImageError(f"{what}: descriptor has no mediaType")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ImageError(f"{what}: descriptor size {size!r} is not a non-negative integer")
        digest = check_digest(digest, what)
        annotations = raw.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise ImageError(f"{what}: annotations must map strings to strings")
        platform = None
        p = raw.get("platform")
        if isinstance(p, dict) and isinstance(p.get("os"), str) and isinstance(p.get("architecture"), str):
            variant = p.get("variant")
            platform = Platform(p["os"], p["architecture"], variant if isinstance(variant, str) else None)
        return cls(media_type, digest, size, annotations, platform)


BlobOpener = Callable[[Descriptor], IO[bytes]]


@dataclass(slots=True)
class ResolvedImage:
    """One image (one platform) with verified manifest and config."""

    name: str  # what the user typed: path, path:tag or registry reference
    transport: str  # "oci-layout" | "oci-archive" | "docker-archive" | "registry"
    manifest_digest: str  # digest of the manifest bytes ("" for a docker-archive: no manifest blob)
    manifest: dict[str, Any]
    config_digest: str
    config: dict[str, Any]  # the image config JSON (OCI or Docker)
    layers: list[Descriptor]  # in order, base first
    diff_ids: list[str]  # config.rootfs.diff_ids: digests of the uncompressed layers
    open_blob: BlobOpener
    registry: str | None = None  # host[:port] for registry pulls; None for local files
    repository: str | None = None
    insecure_transport: bool = False  # pulled over plain HTTP (allowed only for loopback): a 2.7 finding
    close: Callable[[], None] = lambda: None


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One path in the image's final filesystem view (or in a layer's history)."""

    path: str  # normalised, absolute, no trailing slash: "/usr/bin/sudo"
    type: str  # "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo"
    mode: int  # permission bits incl. setuid/setgid/sticky (0o7777 mask)
    uid: int
    gid: int
    size: int
    linkname: str | None  # symlink target or hardlink source (normalised for hardlinks)
    layer: int  # index into ResolvedImage.layers of the layer that last wrote it
    layer_digest: str


@dataclass(slots=True)
class ImageFilesystem:
    """The merged view after all layers (whiteouts applied), plus what earlier layers held."""

    files: dict[str, FileEntry]  # path -> entry in the final view
    contents: dict[str, bytes]  # path -> bytes of captured files present in the final view
    removed: list[tuple[FileEntry, bytes | None]]  # captured/interesting entries deleted or overwritten later
    layer_sizes: list[int]  # uncompressed bytes per layer
    layer_entries: list[int]  # tar members per layer
