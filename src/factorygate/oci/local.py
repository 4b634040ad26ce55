"""Open images stored locally: OCI image layout directories, OCI archives and ``docker save`` tarballs.

References: ``DIR``, ``DIR:TAG``, ``FILE.tar``, ``FILE.tar:TAG`` and ``FILE.tar:NAME:TAG``. The whole
string is tried as a path first (paths may contain ':'), then shorter prefixes ending before a ':'.
Archives are read in place (random access into the tar, never extracted); every blob stream verifies
its size and digest, and a docker archive's layers are verified against the config's diff_ids.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, cast

from factorygate.oci.digest import VerifyingReader, check_digest, verify_bytes
from factorygate.oci.index import (
    MAX_MANIFEST_BYTES,
    diff_ids,
    index_entries,
    is_index,
    is_manifest,
    manifest_parts,
    media_type_of,
    parse_json,
    select_platform,
)
from factorygate.oci.layers import (
    CHUNK,
    GZIP_MAGIC,
    ZSTD_MAGIC,
    GuardedTarFile,
    forget_members,
    normalise,
)
from factorygate.oci.model import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    Descriptor,
    ImageError,
    Platform,
    ResolvedImage,
)

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 100_000
MAX_INDEX_DEPTH = 4
MAX_LINK_HOPS = 8
_IMAGE_CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})
_DOCKER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
_DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_OCI_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
_BLOB_NAME = re.compile(r"(?:.*/)?blobs/(sha256|sha512)/([a-f0-9]+)|(?:.*/)?([a-f0-9]{64})\.json")
_COMPRESSED = (GZIP_MAGIC, ZSTD_MAGIC, b"BZh", b"\xfd7zXZ\x00")


def open_local(ref: str, platform: Platform) -> ResolvedImage | None:
    """The image at a local path reference, or None when ``ref`` names no local file or directory."""
    found = split_reference(ref)
    if found is None:
        return None
    path, selector = found
    if path.is_dir():
        store: _Store = _LayoutDir(ref, path)
        return _resolve_oci(ref, "oci-layout", store, selector, platform)
    archive = _Archive.open(ref, path)
    if archive.has("manifest.json"):
        return _resolve_docker(ref, archive, selector)
    if archive.has("oci-layout") and archive.has("index.json"):
        return _resolve_oci(ref, "oci-archive", archive, selector, platform)
    raise ImageError(
        f"{ref}: a tar archive but neither a docker save archive (no manifest.json) "
        "nor an OCI archive (no oci-layout and index.json)"
    )


def split_reference(ref: str) -> tuple[Path, str | None] | None:
    """(path, tag or name:tag) of a local reference; None when no prefix of ``ref`` is a local image."""
    if not ref or "\0" in ref:
        return None
    whole = Path(ref)
    if os.path.lexists(ref):
        if whole.is_dir():
            if not (whole / "oci-layout").is_file():
                raise ImageError(f"{ref}: a directory but not an OCI image layout (no oci-layout file)")
            return whole, None
        if whole.is_file():
            return whole, None
        raise ImageError(f"{ref}: exists but is neither an OCI image layout directory nor an image archive file")
    end = len(ref)
    while (i := ref.rfind(":", 0, end)) > 0:
        end = i
        head, selector = Path(ref[:i]), ref[i + 1 :]
        if (head / "oci-layout").is_file() or (head.is_file() and _looks_like_tar(head)):
            if not selector:
                raise ImageError(f"{ref}: empty tag after ':'")
            return head, selector
    return None


def _looks_like_tar(path: Path) -> bool:
    """A tar header (or a compressed file, reported later) at the start of ``path``."""
    try:
        with path.open("rb") as f:
            head = f.read(tarfile.BLOCKSIZE)
    except OSError:
        return False
    if head.startswith(_COMPRESSED):
        return True
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


# --- blob stores ---------------------------------------------------------------------------------


class _Store(Protocol):
    def read_file(self, name: str, limit: int) -> bytes: ...

    def open_raw(self, digest: str) -> IO[bytes]: ...


def _blob_path(digest: str) -> str:
    algorithm, hexdigest = digest.split(":", 1)
    return f"blobs/{algorithm}/{hexdigest}"


class _LayoutDir:
    """Blobs and metadata files of an OCI image layout directory."""

    def __init__(self, ref: str, root: Path) -> None:
        self.ref = ref
        self.root = root

    def _open(self, rel: str, what: str) -> IO[bytes]:
        path = self.root / rel
        try:
            # O_NONBLOCK: a FIFO planted in the layout must not hang the open
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ImageError(f"{self.ref}: {what} is missing from the layout") from None
        except OSError as e:
            raise ImageError(f"{self.ref}: cannot open {what}: {e.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ImageError(f"{self.ref}: {what} is not a regular file")
        return os.fdopen(fd, "rb")

    def read_file(self, name: str, limit: int) -> bytes:
        with self._open(name, name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ImageError(f"{self.ref}: {name} is over the {limit}-byte limit")
        return data

    def open_raw(self, digest: str) -> IO[bytes]:
        return self._open(_blob_path(digest), f"blob {digest}")


class _Slice(io.RawIOBase):
    """``size`` bytes at ``offset`` of a file: one archive member, read in place."""

    def __init__(self, path: Path, offset: int, size: int) -> None:
        self._f = path.open("rb", buffering=0)
        self._f.seek(offset)
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b)
        n = min(len(view), self._left)
        if n <= 0:
            return 0
        got = self._f.readinto(view[:n]) or 0
        self._left -= got
        return got

    def close(self) -> None:
        self._f.close()
        super().close()


class _Archive:
    """The member index of a tar archive (docker save or OCI archive), read without extracting."""

    def __init__(self, ref: str, path: Path, members: dict[str, tarfile.TarInfo]) -> None:
        self.ref = ref
        self.path = path
        self.members = members

    @classmethod
    def open(cls, ref: str, path: Path) -> _Archive:
        try:
            with path.open("rb") as f:
                head = f.read(tarfile.BLOCKSIZE)
        except OSError as e:
            raise ImageError(f"{ref}: cannot read: {e.strerror}") from None
        if head.startswith(_COMPRESSED):
            raise ImageError(f"{ref}: a compressed file; decompress the image archive first (e.g. gunzip)")
        try:
            return cls(ref, path, cls._index(ref, path))
        except ImageError:
            raise
        except (tarfile.TarError, OSError, ValueError, EOFError, OverflowError, RecursionError) as e:
            msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            raise ImageError(
                f"{ref}: neither an OCI image layout nor a docker or OCI image archive (not a tar file: {msg})"
            ) from None

    @staticmethod
    def _index(ref: str, path: Path) -> dict[str, tarfile.TarInfo]:
        members: dict[str, tarfile.TarInfo] = {}
        with GuardedTarFile(str(path), ref) as tf:
            while (info := tf.next()) is not None:
                forget_members(tf)
                if len(members) >= MAX_ARCHIVE_MEMBERS:
                    raise ImageError(f"{ref}: more than {MAX_ARCHIVE_MEMBERS} archive members")
                name = normalise(info.name)
                if name is None:
                    raise ImageError(f"{ref}: archive member {info.name[:160]!r} has an unsafe path")
                key = name.lstrip("/")
                if key in members and not (info.isdir() and members[key].isdir()):
                    raise ImageError(f"{ref}: archive member {key!r} appears twice")
                members[key] = info
        return members

    def has(self, name: str) -> bool:
        return name in self.members

    def _resolve(self, name: str) -> tarfile.TarInfo:
        """The regular-file member ``name`` refers to, following links inside the archive."""
        key = normalise(name)
        if key is None:
            raise ImageError(f"{self.ref}: unsafe archive member name {name[:160]!r}")
        for _ in range(MAX_LINK_HOPS):
            info = self.members.get(key.lstrip("/"))
            if info is None:
                raise ImageError(f"{self.ref}: archive has no member {name[:160]!r}")
            if info.isreg() and info.sparse is None:
                return info
            if info.issym():
                parent = key.rsplit("/", 1)[0].lstrip("/")
                link = normalise(f"{parent}/{info.linkname}" if parent else info.linkname)
            elif info.islnk():
                link = normalise(info.linkname)
            else:
                raise ImageError(f"{self.ref}: archive member {name[:160]!r} is not a regular file")
            if link is None:
                raise ImageError(f"{self.ref}: archive member {name[:160]!r} links outside the archive")
            key = link
        raise ImageError(f"{self.ref}: archive member {name[:160]!r}: too many links")

    def size_of(self, name: str) -> int:
        return self._resolve(name).size

    def open_member(self, name: str) -> IO[bytes]:
        info = self._resolve(name)
        return io.BufferedReader(_Slice(self.path, info.offset_data, info.size), CHUNK)

    def read_file(self, name: str, limit: int) -> bytes:
        info = self._resolve(name)
        if info.size > limit:
            raise ImageError(f"{self.ref}: {name} is over the {limit}-byte limit")
        with self.open_member(name) as f:
            return f.read()

    def open_raw(self, digest: str) -> IO[bytes]:
        name = _blob_path(digest)
        if not self.has(name):
            raise ImageError(f"{self.ref}: blob {digest} is missing from the archive")
        return self.open_member(name)


def _opener(ref: str, open_raw: Callable[[str], IO[bytes]]) -> Callable[[Descriptor], IO[bytes]]:
    def open_blob(desc: Descriptor) -> IO[bytes]:
        raw = open_raw(desc.digest)
        return cast(IO[bytes], VerifyingReader(raw, desc.digest, desc.size, f"{ref}: blob {desc.digest}"))

    return open_blob


def _read_blob(store: _Store, desc: Descriptor, what: str, limit: int) -> bytes:
    if desc.size > limit:
        raise ImageError(f"{what}: {desc.size} bytes is over the {limit}-byte limit")
    with store.open_raw(desc.digest) as f:
        data = f.read(desc.size + 1)
    return verify_bytes(data, desc.digest, what, desc.size)


# --- OCI layouts (directory or archive) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Oci:
    """One OCI layout (directory or archive) being resolved."""

    ref: str
    transport: str
    store: _Store
    platform: Platform


def _resolve_oci(ref: str, transport: str, store: _Store, selector: str | None, platform: Platform) -> ResolvedImage:
    layout = parse_json(store.read_file("oci-layout", 64 * 1024), f"{ref}: oci-layout")
    if not isinstance(layout.get("imageLayoutVersion"), str):
        raise ImageError(f"{ref}: oci-layout has no imageLayoutVersion")
    what = f"{ref}: index.json"
    index = parse_json(store.read_file("index.json", MAX_MANIFEST_BYTES), what)
    candidates = _by_tag(index_entries(index, what), selector, ref)
    desc = candidates[0] if len(candidates) == 1 else select_platform(candidates, platform, what)
    return _resolve_descriptor(_Oci(ref, transport, store, platform), desc, 0)


def _tag_of(desc: Descriptor) -> str | None:
    return desc.annotations.get(REF_NAME)


_SIGNATURE_TAG = re.compile(r"sha256-[0-9a-f]{64}\.(?:sig|att|sbom)")
_COSIGN_KINDS = ("dev.cosignproject.cosign/sigs", "dev.cosignproject.cosign/atts")


def _is_signature_object(desc: Descriptor) -> bool:
    """cosign's signatures/attestations stored beside the image (``cosign save``, or its tags copied over)."""
    return desc.annotations.get("kind") in _COSIGN_KINDS or bool(_SIGNATURE_TAG.fullmatch(_tag_of(desc) or ""))


def _by_tag(entries: list[Descriptor], selector: str | None, ref: str) -> list[Descriptor]:
    """The index entries for ``selector`` (all platforms of one image), or of the only image."""
    if selector is None:  # signature objects are not the image a plain DIR reference means
        entries = [d for d in entries if not _is_signature_object(d)] or entries
    tags = sorted({t for d in entries if (t := _tag_of(d))})
    if not entries:
        raise ImageError(f"{ref}: the layout's index.json lists no images")
    if selector is not None:
        found = [d for d in entries if _tag_of(d) == selector]
        if not found:
            found = [d for d in entries if _loose_match(selector, _tag_of(d), d.annotations.get(CONTAINERD_NAME))]
        if not found:
            raise ImageError(f"{ref}: no image tagged {selector!r} (tags: {', '.join(tags) or 'none'})")
        return found
    if len(entries) == 1 or len({_tag_of(d) for d in entries}) == 1:
        if len(entries) > 1 and any(d.platform is None for d in entries):
            raise ImageError(f"{ref}: holds {len(entries)} images with the same tag and no platform to choose by")
        return entries
    raise ImageError(f"{ref}: holds {len(entries)} images; pick one with {ref}:TAG (tags: {', '.join(tags) or 'none'})")


def _normal_name(name: str) -> str:
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _split_tag(name: str) -> tuple[str, str | None]:
    i = name.rfind(":")
    return (name[:i], name[i + 1 :]) if i > name.rfind("/") else (name, None)


def _loose_match(selector: str, *names: str | None) -> bool:
    """``selector`` (TAG, NAME or NAME:TAG) against full references such as ``docker.io/library/x:1``."""
    want = _normal_name(selector)
    for name in names:
        if not name:
            continue
        have = _normal_name(name)
        repo, tag = _split_tag(have)
        if want in (have, tag) or (":" not in want and have == f"{want}:latest") or (want == repo and tag is None):
            return True
    return False


def _resolve_descriptor(oci: _Oci, desc: Descriptor, depth: int) -> ResolvedImage:
    ref = oci.ref
    what = f"{ref}: {desc.digest}"
    if depth > MAX_INDEX_DEPTH:
        raise ImageError(f"{what}: indexes nested more than {MAX_INDEX_DEPTH} deep")
    doc = parse_json(_read_blob(oci.store, desc, what, MAX_MANIFEST_BYTES), what)
    media_type = media_type_of(doc, desc.media_type)
    if is_index(media_type):
        entries = index_entries(doc, what)
        if len(entries) == 1 and entries[0].platform is None:
            return _resolve_descriptor(oci, entries[0], depth + 1)
        return _resolve_descriptor(oci, select_platform(entries, oci.platform, what), depth + 1)
    if not is_manifest(media_type):
        raise ImageError(f"{what}: {media_type!r} is neither an image manifest nor an index")
    config_desc, layers = manifest_parts(doc, what)
    if config_desc.media_type not in _IMAGE_CONFIGS:
        raise ImageError(f"{what}: not a container image (config media type {config_desc.media_type})")
    config_what = f"{ref}: config {config_desc.digest}"
    config = parse_json(_read_blob(oci.store, config_desc, config_what, MAX_CONFIG_BYTES), config_what)
    return ResolvedImage(
        name=ref,
        transport=oci.transport,
        manifest_digest=desc.digest,
        manifest=doc,
        config_digest=config_desc.digest,
        config=config,
        layers=layers,
        diff_ids=diff_ids(config, len(layers), config_what),
        open_blob=_opener(ref, oci.store.open_raw),
    )


# --- docker save archives ------------------------------------------------------------------------


def _docker_entries(ref: str, archive: _Archive) -> list[dict[str, Any]]:
    what = f"{ref}: manifest.json"
    data = archive.read_file("manifest.json", MAX_MANIFEST_BYTES)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise ImageError(f"{what}: not valid JSON ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(doc, list) or not doc or not all(isinstance(x, dict) for x in doc):
        raise ImageError(f"{what}: expected a non-empty list of image objects")
    for i, item in enumerate(doc):
        tags = item.get("RepoTags") or []
        if not isinstance(item.get("Config"), str) or not isinstance(item.get("Layers"), list):
            raise ImageError(f"{what}: entry {i} has no Config name or Layers list")
        if not all(isinstance(x, str) for x in item["Layers"]) or not isinstance(tags, list):
            raise ImageError(f"{what}: entry {i} has a malformed Layers or RepoTags list")
        if not all(isinstance(t, str) for t in tags):
            raise ImageError(f"{what}: entry {i} has a non-string RepoTags item")
    return cast(list[dict[str, Any]], doc)


def _repo_tags(entry: dict[str, Any]) -> list[str]:
    return list(entry.get("RepoTags") or [])


def _pick_docker_entry(ref: str, entries: list[dict[str, Any]], selector: str | None) -> dict[str, Any]:
    tags = sorted({t for e in entries for t in _repo_tags(e)})
    if selector is None:
        if len(entries) == 1:
            return entries[0]
        raise ImageError(
            f"{ref}: holds {len(entries)} images; pick one with {ref}:NAME:TAG (tags: {', '.join(tags) or 'none'})"
        )
    exact = [e for e in entries if any(_normal_name(t) == _normal_name(selector) for t in _repo_tags(e))]
    found = exact or [e for e in entries if _loose_match(selector, *_repo_tags(e))]
    if not found:
        raise ImageError(f"{ref}: no image tagged {selector!r} (tags: {', '.join(tags) or 'none'})")
    if len(found) > 1:
        matching = sorted({t for e in found for t in _repo_tags(e) if _loose_match(selector, t)})
        raise ImageError(f"{ref}: {selector!r} matches {len(found)} images ({', '.join(matching)}); use NAME:TAG")
    return found[0]


def _digest_in_name(name: str) -> str | None:
    """``<hex>.json`` or ``blobs/sha256/<hex>``: the digest a docker archive file name carries."""
    path = normalise(name)
    m = _BLOB_NAME.fullmatch(path.lstrip("/")) if path else None
    if m is None:
        return None
    if m.group(3):
        return f"sha256:{m.group(3)}"
    digest = f"{m.group(1)}:{m.group(2)}"
    try:
        return check_digest(digest, name)
    except ImageError:
        return None


def _head(archive: _Archive, name: str, n: int) -> bytes:
    with archive.open_member(name) as f:
        return f.read(n)


def _hash_member(archive: _Archive, name: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with archive.open_member(name) as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def _docker_layer(archive: _Archive, name: str, diff_id: str, blobs: dict[str, str]) -> Descriptor:
    """A layer's descriptor: an uncompressed tar is addressed by its diff_id, a compressed one by its digest."""
    size = archive.size_of(name)
    head = _head(archive, name, 4)
    if head.startswith((GZIP_MAGIC, ZSTD_MAGIC)):
        media_type = _DOCKER_GZIP if head.startswith(GZIP_MAGIC) else _OCI_ZSTD
        digest = _digest_in_name(name) or _hash_member(archive, name)
    else:
        media_type, digest = _DOCKER_TAR, diff_id
    blobs[digest] = name
    return Descriptor(media_type, digest, size)


def _resolve_docker(ref: str, archive: _Archive, selector: str | None) -> ResolvedImage:
    entry = _pick_docker_entry(ref, _docker_entries(ref, archive), selector)
    config_name: str = entry["Config"]
    config_what = f"{ref}: config {config_name}"
    config_digest = _digest_in_name(config_name)
    if config_digest is None:
        raise ImageError(f"{config_what}: the name carries no digest (want <hex>.json or blobs/sha256/<hex>)")
    config_bytes = verify_bytes(archive.read_file(config_name, MAX_CONFIG_BYTES), config_digest, config_what)
    config = parse_json(config_bytes, config_what)
    layer_names: list[str] = entry["Layers"]
    ids = diff_ids(config, len(layer_names), config_what)
    blobs: dict[str, str] = {config_digest: config_name}
    layers = [_docker_layer(archive, name, ids[i], blobs) for i, name in enumerate(layer_names)]
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": d.media_type, "digest": d.digest, "size": d.size} for d in layers],
    }

    def open_raw(digest: str) -> IO[bytes]:
        name = blobs.get(digest)
        if name is None:
            raise ImageError(f"{ref}: blob {digest} is not in the archive")
        return archive.open_member(name)

    return ResolvedImage(
        name=ref,
        transport="docker-archive",
        manifest_digest="",
        manifest=manifest,
        config_digest=config_digest,
        config=config,
        layers=layers,
        diff_ids=ids,
        open_blob=_opener(ref, open_raw),
    )
