"""Stream image layers: decompress by magic, verify diff_ids, walk tar members, apply whiteouts.

Nothing is ever extracted: member names are checked and recorded, and only the contents of files a
caller asks for are read into memory. Every malformed, truncated or hostile layer ends in one
:class:`ImageError` line naming the layer (index and digest) and, where there is one, the member.
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, cast

from factorygate.oci.model import FileEntry, ImageError, ImageFilesystem, ResolvedImage

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20  # read size for blobs and decompressed output
_ZSTD_MAX_WINDOW = 1 << 27  # 128 MiB: bounds a zstd frame's decoder memory
_MAX_HEADER_CHAIN = 16  # consecutive pax / GNU long-name headers before one member

_KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.GNUTYPE_SPARSE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}
_EXTENDED = frozenset(
    {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}
)
_OPAQUE = ".wh..wh..opq"
_AUFS_META = "/.wh..wh."
_ROOT_OPAQUE = "/" + _OPAQUE
_NEVER = 1 << 62  # a layer index above every real one: "delete regardless of layer"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one image may make the walker read or keep."""

    max_members: int = 2_000_000  # tar members per layer
    max_layer_bytes: int = 32 << 30  # uncompressed bytes per layer
    bomb_min_bytes: int = 1 << 30  # a layer past this many uncompressed bytes ...
    bomb_ratio: int = 200  # ... and this many times its compressed size is a decompression bomb
    max_path: int = 4096  # characters in a member name or link target
    max_file_capture: int = 64 << 20  # bytes kept of one wanted file (larger ones are not captured)
    max_total_capture: int = 512 << 20  # bytes kept over the whole image
    max_header_bytes: int = 1 << 20  # one pax / GNU long-name header


DEFAULT_LIMITS = Limits()


def _stream_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a corrupt or hostile stream can raise from tarfile, zlib, zstandard or the OS."""
    import zstandard

    return (
        tarfile.TarError,
        EOFError,
        zlib.error,
        zstandard.ZstdError,
        OSError,
        ValueError,
        OverflowError,
        RecursionError,
    )


def _describe(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:200]


# --- decompression -------------------------------------------------------------------------------


class _Counter:
    """Counts the compressed bytes read from a blob stream."""

    def __init__(self, raw: IO[bytes], first: bytes) -> None:
        self._raw = raw
        self._first = first
        self.count = len(first)

    def read(self, n: int = -1) -> bytes:
        if self._first:
            data, self._first = self._first, b""
            return data
        data = self._raw.read(n if n is not None and n > 0 else CHUNK)
        self.count += len(data)
        return data


def _peek(raw: IO[bytes], n: int) -> bytes:
    """At least ``n`` bytes from the start of ``raw`` (fewer only at EOF)."""
    data = raw.read(CHUNK)
    while 0 < len(data) < n:
        more = raw.read(CHUNK)
        if not more:
            break
        data += more
    return data


def _plain(src: _Counter) -> Iterator[bytes]:
    while data := src.read(CHUNK):
        yield data


def _gunzip(src: _Counter, what: str) -> Iterator[bytes]:
    """Decompress a (possibly multi-member) gzip stream in bounded pieces."""
    d = zlib.decompressobj(31)
    data = b""
    while True:
        if not data:
            data = src.read(CHUNK)
            if not data:
                if not d.eof:
                    raise ImageError(f"{what}: gzip stream is truncated")
                return
        out = d.decompress(data, CHUNK)
        data = d.unconsumed_tail
        if out:
            yield out
        if d.eof:
            data = d.unused_data + data
            while 0 < len(data) < 2 and (more := src.read(CHUNK)):
                data += more
            if not data:
                data = src.read(CHUNK)
                if not data:
                    return
            if not data.startswith(GZIP_MAGIC):
                raise ImageError(f"{what}: unexpected data after the gzip stream")
            d = zlib.decompressobj(31)


def _unzstd(src: _Counter) -> Iterator[bytes]:
    import zstandard

    dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
    reader = dctx.stream_reader(cast(IO[bytes], src), read_size=CHUNK, read_across_frames=True)
    while data := reader.read(CHUNK):
        yield data


class LayerStream:
    """The uncompressed tar of one layer as a forward-only stream.

    Counts and hashes every byte that passes (including skipped member data), enforces the size and
    decompression-bomb limits, and checks the diff_id when :meth:`finish` drains it.
    """

    def __init__(
        self, chunks: Iterator[bytes], counter: _Counter, diff_id: str | None, what: str, limits: Limits
    ) -> None:
        self.compression = "none"
        self._chunks = chunks
        self._counter = counter
        self._diff_id = diff_id
        self._hash = hashlib.new(diff_id.split(":", 1)[0]) if diff_id else None
        self._what = what
        self._limits = limits
        self._buf = b""
        self._off = 0  # read position inside _buf
        self._base = 0  # stream offset of _buf[0]
        self.total = 0  # uncompressed bytes pulled so far
        self.last_read = (0, b"")  # (offset, data) of the latest read: lets the walker inspect the tar end
        self._eof = False

    # the file-object surface tarfile needs
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def write(self, b: bytes) -> int:
        raise ImageError(f"{self._what}: layer streams are read-only")

    def tell(self) -> int:
        return self._base + self._off

    def close(self) -> None:
        self._buf = b""

    def _pull(self) -> bytes:
        if self._eof:
            return b""
        data = next(self._chunks, b"")
        if not data:
            self._eof = True
            return b""
        self.total += len(data)
        limits = self._limits
        if self.total > limits.max_layer_bytes:
            raise ImageError(f"{self._what}: over {limits.max_layer_bytes} uncompressed bytes")
        if self.total > limits.bomb_min_bytes and self.total > limits.bomb_ratio * max(self._counter.count, 1):
            raise ImageError(
                f"{self._what}: decompression bomb ({self.total} bytes from {self._counter.count} compressed)"
            )
        if self._hash is not None:
            self._hash.update(data)
        return data

    def read(self, n: int = -1, /) -> bytes:
        pos = self._base + self._off
        if n is None or n < 0:
            n = self._limits.max_layer_bytes
        buf, off = self._buf, self._off
        end = off + n
        if end <= len(buf):
            self._off = end
            data = buf[off:end]
        else:
            data = self._read_across(n)
        self.last_read = (pos, data)
        return data

    def _read_across(self, n: int) -> bytes:
        parts = [self._buf[self._off :]]
        have = len(parts[0])
        self._base += len(self._buf)
        self._buf, self._off = b"", 0
        while have < n:
            chunk = self._pull()
            if not chunk:
                break
            need = n - have
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._buf, self._off = chunk, need
                have = n
                break
            parts.append(chunk)
            self._base += len(chunk)
            have += len(chunk)
        return b"".join(parts)

    def seek(self, pos: int, whence: int = 0, /) -> int:
        target = pos if whence == 0 else self.tell() + pos if whence == 1 else -1
        if target < self._base:
            raise ImageError(f"{self._what}: internal error: backward seek in a layer stream")
        while target > self._base + len(self._buf):
            self._base += len(self._buf)
            self._buf, self._off = self._pull(), 0
            if not self._buf:
                return self.tell()  # past the end: the next read returns b"" and tarfile reports it
        self._off = target - self._base
        return target

    def finish(self) -> int:
        """Drain the rest of the stream, check the diff_id, return the uncompressed size."""
        while self._pull():
            pass
        self._buf, self._off = b"", 0
        if self._hash is not None and self._diff_id:
            actual = f"{self._diff_id.split(':', 1)[0]}:{self._hash.hexdigest()}"
            if actual != self._diff_id:
                raise ImageError(
                    f"{self._what}: uncompressed content does not match diff_id {self._diff_id} (got {actual})"
                )
        return self.total


def open_layer(
    stream: IO[bytes],
    diff_id: str | None = None,
    *,
    what: str = "layer",
    limits: Limits = DEFAULT_LIMITS,
    blob_digest: str | None = None,
) -> LayerStream:
    """The uncompressed tar inside a layer blob, decompressed by its magic bytes (gzip, zstd or none).

    ``diff_id`` is checked over the uncompressed bytes by :meth:`LayerStream.finish` (skipped when the
    blob is an uncompressed tar whose own verified digest already is the diff_id).
    """
    first = _peek(stream, 4)
    counter = _Counter(stream, first)
    chunks: Iterator[bytes]
    compression = "none"
    if first.startswith(GZIP_MAGIC):
        chunks, compression = _gunzip(counter, what), "gzip"
    elif first.startswith(ZSTD_MAGIC):
        chunks, compression = _unzstd(counter), "zstd"
    else:
        chunks = _plain(counter)
        if blob_digest is not None and blob_digest == diff_id:
            diff_id = None  # the blob reader verifies exactly these bytes
    out = LayerStream(chunks, counter, diff_id, what, limits)
    out.compression = compression
    return out


# --- tar members ---------------------------------------------------------------------------------


class GuardedTarFile(tarfile.TarFile):
    """A TarFile reading with :class:`GuardedTarInfo` under ``limits``; errors name ``what``."""

    def __init__(self, fileobj: IO[bytes] | LayerStream | str, what: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.header_chain = 0  # nested extended headers: a long chain would recurse without bound
        self.limits = limits
        self.what = what
        if isinstance(fileobj, str):
            super().__init__(fileobj, mode="r", tarinfo=GuardedTarInfo)
        else:
            super().__init__(fileobj=cast(IO[bytes], fileobj), mode="r", tarinfo=GuardedTarInfo)


class GuardedTarInfo(tarfile.TarInfo):
    """Refuses oversized or endlessly chained pax / GNU long-name headers before tarfile reads them."""

    def _proc_member(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type not in _EXTENDED or not isinstance(tf, GuardedTarFile):
            return tarfile.TarInfo._proc_member(self, tf)  # type: ignore[attr-defined,no-any-return]
        if self.size > tf.limits.max_header_bytes:
            raise ImageError(f"{tf.what}: extended tar header of {self.size} bytes is over the limit")
        tf.header_chain += 1
        try:
            if tf.header_chain > _MAX_HEADER_CHAIN:
                raise ImageError(f"{tf.what}: more than {_MAX_HEADER_CHAIN} chained extended tar headers")
            return tarfile.TarInfo._proc_member(self, tf)  # type: ignore[attr-defined,no-any-return]
        finally:
            tf.header_chain -= 1


def forget_members(tf: tarfile.TarFile) -> None:
    """Drop the TarInfo list tarfile keeps while reading, so memory stays flat over millions of members."""
    tf.members.clear()  # type: ignore[attr-defined]


def _printable(path: str) -> str:
    """Undecodable bytes in names (kept by tarfile as surrogates) as backslash escapes."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return path


def normalise(name: str) -> str | None:
    """``./a//b/`` -> ``/a/b``; None when the name is absolute or ``..`` climbs above the root."""
    if name.startswith("/"):
        return None
    parts = name.split("/")
    if "" in parts or "." in parts or ".." in parts:
        out: list[str] = []
        for p in parts:
            if p in ("", "."):
                continue
            if p == "..":
                if not out:
                    return None
                out.pop()
            else:
                out.append(p)
        parts = out
    path = "/" + "/".join(parts)
    return path if path.isascii() else _printable(path)


def _parent(path: str) -> str:
    return path[: path.rfind("/")] or "/"


class _Merge:
    """The filesystem view being built layer by layer."""

    def __init__(self, want: Callable[[str, int], bool], limits: Limits) -> None:
        self.want = want
        self.limits = limits
        self.files: dict[str, FileEntry] = {}
        self.contents: dict[str, bytes] = {}
        self.removed: list[tuple[FileEntry, bytes | None]] = []
        self.wanted: set[str] = set()
        self.symlinks: set[str] = set()
        self.children: dict[str, set[str]] = {}  # every directory path (explicit or implied) -> child paths
        self.captured = 0
        self.cleared: dict[str, bool] = {}  # this layer's whiteouts: path -> whole path (True) or contents only

    # -- index of children, so whiteouts remove subtrees without scanning every path
    def _link(self, path: str) -> None:
        children = self.children
        while path != "/":
            parent = _parent(path)
            kids = children.get(parent)
            if kids is not None:
                kids.add(path)
                return
            children[parent] = {path}
            path = parent

    def _unlink(self, path: str) -> None:
        if path == "/" or path in self.files or self.children.get(path):
            return
        self.children.pop(path, None)
        kids = self.children.get(_parent(path))
        if kids is not None:
            kids.discard(path)

    def _forget(self, path: str) -> None:
        """Drop the entry at ``path`` (recording it in ``removed`` when it was wanted)."""
        entry = self.files.pop(path)
        data = self.contents.pop(path, None)
        if path in self.wanted:
            self.wanted.discard(path)
            self.removed.append((entry, data))
        self.symlinks.discard(path)

    def delete(self, root: str, below_layer: int, include_root: bool) -> None:
        """Remove ``root``'s subtree entries written by layers before ``below_layer``."""
        order = []
        stack = [root]
        while stack:
            p = stack.pop()
            order.append(p)
            kids = self.children.get(p)
            if kids:
                stack.extend(kids)
        for p in reversed(order):
            if p == root and not include_root:
                continue
            entry = self.files.get(p)
            if entry is not None and entry.layer < below_layer:
                self._forget(p)
            self._unlink(p)

    def through_symlink(self, path: str) -> str | None:
        """The first recorded symlink among ``path``'s ancestors."""
        symlinks = self.symlinks
        i = path.rfind("/")
        while i > 0:
            anc = path[:i]
            if anc in symlinks:
                return anc
            i = path.rfind("/", 0, i)
        return None

    def put(self, entry: FileEntry) -> None:
        path = entry.path
        old = self.files.get(path)
        if old is not None:
            if old.type == "dir" and entry.type == "dir":
                self.files[path] = entry
                return
            if entry.type != "dir" and self.children.get(path):
                self.delete(path, _NEVER, include_root=False)
            self._forget(path)
        elif entry.type != "dir" and self.children.get(path):
            self.delete(path, _NEVER, include_root=False)
        self.files[path] = entry
        self._link(path)

    def whiteout(self, path: str, base: str, layer: int) -> bool:
        """Apply a ``.wh.`` member; False when its name is not a valid whiteout."""
        parent = _parent(path)
        if base == _OPAQUE:
            target, whole = parent, False
        elif base.startswith(".wh..wh."):
            return True  # AUFS bookkeeping (.wh..wh.plnk and the like): nothing to apply
        else:
            name = base[4:]
            if name in ("", ".", ".."):
                return False
            target, whole = (parent.rstrip("/") + "/" + name), True
        if self._cleared(target, whole):
            return True
        self.cleared[target] = whole or self.cleared.get(target, False)
        self.delete(target, layer, include_root=whole)
        return True

    def _cleared(self, target: str, whole: bool) -> bool:
        """Whether an earlier whiteout of this layer already removed what this one would."""
        done = self.cleared
        if not done:
            return False
        if target in done and (done[target] or not whole):
            return True
        i = target.rfind("/")
        while i > 0:
            if target[:i] in done:
                return True
            i = target.rfind("/", 0, i)
        return "/" in done and target != "/"

    def capture(self, path: str, size: int) -> bool:
        """Whether ``size`` more bytes may be kept."""
        limits = self.limits
        if size > limits.max_file_capture or self.captured + size > limits.max_total_capture:
            return False
        self.captured += size
        return True


class _LayerWalk:
    """Reads one layer's members into a :class:`_Merge`."""

    def __init__(self, merge: _Merge, stream: LayerStream, layer: int, digest: str, what: str) -> None:
        self.merge = merge
        self.stream = stream
        self.layer = layer
        self.digest = digest
        self.what = what
        self.members = 0

    def run(self) -> int:
        merge, stream = self.merge, self.stream
        merge.cleared = {}
        if not self._has_data():
            return 0
        tf = GuardedTarFile(stream, self.what, merge.limits)
        max_members = merge.limits.max_members
        while (info := tf.next()) is not None:
            forget_members(tf)
            self.members += 1
            if self.members > max_members:
                raise ImageError(f"{self.what}: more than {max_members} tar members")
            self._member(info, tf)
        self._check_end(tf.offset)
        return self.members

    def _has_data(self) -> bool:
        head = self.stream.read(1)
        self.stream.seek(0)
        return bool(head)

    def _check_end(self, offset: int) -> None:
        """tarfile stops quietly at a bad header after the first; a truncated or corrupt one is an error."""
        pos, data = self.stream.last_read
        if pos != offset or not data or data.count(0) == len(data) == tarfile.BLOCKSIZE:
            return
        if len(data) < tarfile.BLOCKSIZE:
            raise ImageError(f"{self.what}: tar stream is truncated at offset {offset}")
        raise ImageError(f"{self.what}: invalid tar header at offset {offset}")

    def _fail(self, name: str, why: str) -> ImageError:
        shown = name if len(name) <= 160 else name[:160] + "..."
        return ImageError(f"{self.what}: member {shown!r}: {why}")

    def _member(self, info: tarfile.TarInfo, tf: tarfile.TarFile) -> None:
        merge, name = self.merge, info.name
        max_path = merge.limits.max_path
        if len(name) > max_path or len(info.linkname) > max_path:
            raise self._fail(name, f"name or link target longer than {max_path} characters")
        path = normalise(name)
        if path is None:
            raise self._fail(name, "absolute path" if name.startswith("/") else "path escapes the image root")
        if merge.symlinks and (link := merge.through_symlink(path)) is not None:
            target = merge.files[link].linkname
            raise self._fail(name, f"symlink escape: path goes through symlink {link} -> {target}")
        if path.startswith(_AUFS_META) and path != _ROOT_OPAQUE:
            return  # AUFS metadata (.wh..wh.plnk and the like) is not image content
        base = path[path.rfind("/") + 1 :]
        if base.startswith(".wh."):
            if not merge.whiteout(path, base, self.layer):
                raise self._fail(name, "invalid whiteout name")
            return
        kind = _KINDS.get(info.type, "file")
        size = info.size if kind == "file" else 0
        linkname: str | None = None
        shared: bytes | None = None
        if kind == "symlink":
            linkname = info.linkname
        elif kind == "hardlink":
            linkname, size, shared = self._hardlink(info)
        entry = FileEntry(path, kind, info.mode & 0o7777, info.uid, info.gid, size, linkname, self.layer, self.digest)
        merge.put(entry)
        if kind == "symlink":
            merge.symlinks.add(path)
        if merge.want(path, size):
            merge.wanted.add(path)
            if kind == "file" and merge.capture(path, size):
                merge.contents[path] = self._read(info, tf)
            elif shared is not None:
                merge.contents[path] = shared

    def _hardlink(self, info: tarfile.TarInfo) -> tuple[str, int, bytes | None]:
        merge = self.merge
        target = normalise(info.linkname)
        if target is None:
            raise self._fail(info.name, f"hardlink target {info.linkname!r} escapes the image root")
        if merge.symlinks and (link := merge.through_symlink(target)) is not None:
            raise self._fail(info.name, f"hardlink escape: target {target} goes through symlink {link}")
        entry = merge.files.get(target)
        if entry is None or entry.type == "dir":
            raise self._fail(info.name, f"hardlink target {target} does not exist in earlier content")
        return target, entry.size, merge.contents.get(target)

    def _read(self, info: tarfile.TarInfo, tf: tarfile.TarFile) -> bytes:
        if info.sparse is not None:
            f = tf.extractfile(info)
            data = f.read() if f is not None else b""
        else:
            self.stream.seek(info.offset_data)
            data = self.stream.read(info.size)
        if len(data) != info.size:
            raise self._fail(info.name, f"tar stream is truncated ({len(data)} of {info.size} bytes)")
        return data


def walk_layer(merge: _Merge, stream: LayerStream, layer: int, digest: str, what: str) -> tuple[int, int]:
    """Apply one layer's members to ``merge``; (uncompressed bytes, member count)."""
    try:
        members = _LayerWalk(merge, stream, layer, digest, what).run()
        size = stream.finish()
    except ImageError:
        raise
    except _stream_errors() as e:
        raise ImageError(f"{what}: {_describe(e)}") from None
    return size, members


def assemble(
    image: ResolvedImage, want: Callable[[str, int], bool], limits: Limits = DEFAULT_LIMITS
) -> ImageFilesystem:
    """Read every layer (base first) into the merged filesystem view, whiteouts applied.

    ``want(path, size)`` is asked for every entry: regular files it accepts are captured (up to the
    limits; a larger one stays in ``files`` without ``contents``), and any entry it accepts that a later
    whiteout or overwrite removes is appended to ``removed`` with its bytes.
    """
    merge = _Merge(want, limits)
    sizes: list[int] = []
    counts: list[int] = []
    for i, desc in enumerate(image.layers):
        what = f"{image.name}: layer {i} ({desc.digest})"
        diff_id = image.diff_ids[i] if i < len(image.diff_ids) else None
        try:
            raw = image.open_blob(desc)
        except ImageError:
            raise
        except OSError as e:
            raise ImageError(f"{what}: {_describe(e)}") from None
        try:
            try:
                stream = open_layer(raw, diff_id, what=what, limits=limits, blob_digest=desc.digest)
            except ImageError:
                raise
            except _stream_errors() as e:
                raise ImageError(f"{what}: {_describe(e)}") from None
            size, members = walk_layer(merge, stream, i, desc.digest, what)
        finally:
            raw.close()
        sizes.append(size)
        counts.append(members)
    return ImageFilesystem(merge.files, merge.contents, merge.removed, sizes, counts)
