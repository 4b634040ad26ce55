"""The content of a bundle: a deterministic tar+gzip of manifest files, and its guarded reading.

Packing is reproducible: entries sorted by path, directories listed before what they hold, fixed
mtime (0), uid/gid 0, empty user and group names, modes 0644 (files) and 0755 (directories), PAX
headers only where a name needs them (non-ASCII, long), gzip with mtime 0 and no file name. The same
files give the same bytes, hence the same layer digest, on every machine.

Reading never extracts with ``tarfile.extractall``: the gzip stream is decompressed in bounded pieces
(the image layer reader of :mod:`factorygate.oci.layers`, with its decompression-bomb and header
guards), every member is checked (regular files and directories only; no absolute paths, ``..``,
links, devices or duplicates; bounded count and size), and only then are files written, one by one,
with ``O_NOFOLLOW``/``O_EXCL`` under the target directory.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import os
import stat
import tarfile
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from factorygate.errors import FactorygateError

FILE_MODE = 0o644
DIR_MODE = 0o755
GZIP_LEVEL = 9


class BundleError(FactorygateError):
    """A bundle cannot be built, pushed, verified or unpacked."""


class BundleFile(NamedTuple):
    """One file of a bundle: its relative POSIX path and its exact bytes."""

    path: str
    data: bytes


@dataclass(frozen=True, slots=True)
class UnpackLimits:
    """Bounds on what one bundle may make the reader decompress or keep."""

    max_files: int = 20_000
    max_total_bytes: int = 256 << 20  # uncompressed file bytes
    max_file_bytes: int = 64 << 20
    max_path: int = 1024  # characters in a member name
    max_depth: int = 64  # directories in a member name


DEFAULT_UNPACK_LIMITS = UnpackLimits()


def _shown(path: str) -> str:
    """A member name safe for a one-line message: control characters escaped, length bounded."""
    text = path if len(path) <= 200 else path[:200] + "..."
    return repr(text)


def check_relative_path(path: str, what: str) -> str:
    """``path`` normalised to ``a/b/c`` when it is a safe relative path, else a BundleError.

    Refused: empty, absolute, ``..`` components, NUL or backslash, components that are only dots.
    ``./`` prefixes and repeated slashes are tolerated (tar tools write them) and removed.
    """
    if not path or "\x00" in path:
        raise BundleError(f"{what}: entry {_shown(path)}: empty name or NUL byte")
    if path.startswith("/"):
        raise BundleError(f"{what}: entry {_shown(path)}: absolute path")
    if "\\" in path:
        raise BundleError(f"{what}: entry {_shown(path)}: backslash in path (not portable, may escape on Windows)")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise BundleError(f"{what}: entry {_shown(path)}: names the bundle root")
    if any(p == ".." for p in parts):
        raise BundleError(f"{what}: entry {_shown(path)}: path traversal ('..')")
    return "/".join(parts)


# --- packing --------------------------------------------------------------------------------------------------


def _tarinfo(name: str, size: int, directory: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name + "/" if directory else name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.size = 0 if directory else size
    info.mode = DIR_MODE if directory else FILE_MODE
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(files: Iterable[BundleFile], what: str = "bundle") -> bytes:
    """The tar+gzip of ``files`` (paths relative, unique), byte-for-byte reproducible."""
    by_path: dict[str, bytes] = {}
    for f in files:
        path = check_relative_path(f.path, what)
        if path in by_path:
            raise BundleError(f"{what}: entry {_shown(path)} appears twice")
        by_path[path] = f.data
    dirs: set[str] = set()
    for path in by_path:
        parts = path.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    clash = sorted(dirs & by_path.keys())
    if clash:
        raise BundleError(f"{what}: {_shown(clash[0])} is both a file and a directory")
    # sort by path components, so that a directory's entries follow it directly ("a/b" before "a.b")
    order = sorted([(p.split("/"), True) for p in dirs] + [(p.split("/"), False) for p in by_path])
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tf:
        for parts, directory in order:
            name = "/".join(parts)
            if directory:
                tf.addfile(_tarinfo(name, 0, True))
            else:
                data = by_path[name]
                tf.addfile(_tarinfo(name, len(data), False), io.BytesIO(data))
    out = io.BytesIO()
    # mtime 0 and no file name in the gzip header: the same tar gives the same gzip bytes
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=GZIP_LEVEL, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


# --- reading --------------------------------------------------------------------------------------------------


_KIND_NAMES = {
    tarfile.SYMTYPE: "symbolic link",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
    tarfile.CONTTYPE: "contiguous file",
    tarfile.GNUTYPE_SPARSE: "sparse file",
}


def unpack(data: bytes, what: str, limits: UnpackLimits = DEFAULT_UNPACK_LIMITS) -> list[BundleFile]:
    """Every file of a bundle's tar+gzip, checked; a one-line BundleError naming ``what`` and the entry.

    Directories are implied by the files' paths (empty directories are not kept).
    """
    from factorygate.oci.layers import GuardedTarFile, Limits, _stream_errors, forget_members, open_layer
    from factorygate.oci.model import ImageError

    if not data.startswith(b"\x1f\x8b"):
        raise BundleError(f"{what}: content layer is not gzip-compressed (tar+gzip expected)")
    layer_limits = Limits(
        max_members=limits.max_files * 2 + 16,
        max_layer_bytes=limits.max_total_bytes + (limits.max_files * 2 + 16) * 1536 + (1 << 20),
        bomb_min_bytes=min(1 << 30, limits.max_total_bytes),
        max_path=limits.max_path,
    )
    reader = _MemberReader(what, limits)
    try:
        stream = open_layer(io.BytesIO(data), what=what, limits=layer_limits)
        with GuardedTarFile(stream, what, layer_limits) as tf:
            for member in tf:
                forget_members(tf)
                reader.add(tf, member)
            stream.finish()
    except BundleError:
        raise
    except ImageError as e:
        raise BundleError(str(e)) from None
    except _stream_errors() as e:
        text = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise BundleError(f"{what}: corrupt content layer ({text})") from None
    return reader.files


class _MemberReader:
    """Checks members one by one and keeps the files' bytes."""

    def __init__(self, what: str, limits: UnpackLimits) -> None:
        self.what = what
        self.limits = limits
        self.files: list[BundleFile] = []
        self.seen: dict[str, bool] = {}  # normalised path -> is a directory
        self.total = 0

    def add(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        what, limits, name = self.what, self.limits, member.name
        if len(name) > limits.max_path:
            raise BundleError(f"{what}: entry {_shown(name)}: name longer than {limits.max_path} characters")
        path = check_relative_path(name, what)
        if path.count("/") >= limits.max_depth:
            raise BundleError(f"{what}: entry {_shown(name)}: nested deeper than {limits.max_depth}")
        if member.isdir():
            _note(self.seen, path, True, name, what)
            return
        if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            kind = _KIND_NAMES.get(member.type, f"type {member.type!r}")
            raise BundleError(f"{what}: entry {_shown(name)}: a {kind}; bundles hold regular files only")
        if member.size > limits.max_file_bytes:
            raise BundleError(f"{what}: entry {_shown(name)}: {member.size} bytes, over the per-file limit")
        self.total += member.size
        if self.total > limits.max_total_bytes:
            raise BundleError(f"{what}: more than {limits.max_total_bytes} bytes of files (size bomb?)")
        if len(self.files) >= limits.max_files:
            raise BundleError(f"{what}: more than {limits.max_files} files")
        _note(self.seen, path, False, name, what)
        stream = tf.extractfile(member)
        content = stream.read() if stream is not None else b""
        if len(content) != member.size:
            raise BundleError(f"{what}: entry {_shown(name)}: truncated")
        self.files.append(BundleFile(path, content))


def _note(seen: dict[str, bool], path: str, directory: bool, name: str, what: str) -> None:
    """Record ``path``; refuse duplicates and a file standing where a directory is needed (or the reverse)."""
    folded = unicodedata.normalize("NFC", path)
    if folded in seen:
        if directory and seen[folded]:
            return  # the same directory named twice is harmless
        if seen[folded]:
            raise BundleError(f"{what}: entry {_shown(name)}: a directory of that name exists")
        raise BundleError(f"{what}: entry {_shown(name)}: duplicate entry")
    parts = folded.split("/")
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i])
        if seen.get(parent) is False:
            raise BundleError(f"{what}: entry {_shown(name)}: its parent {_shown(parent)} is a file")
        seen.setdefault(parent, True)
    seen[folded] = directory


# --- writing --------------------------------------------------------------------------------------------------


def _open_dir_nofollow(root_fd: int, parts: list[str], create: bool, what: str, shown: str) -> int:
    """A descriptor of ``root/parts...``, every step opened with O_NOFOLLOW (a symlink never leads out)."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise BundleError(
                        f"{what}: entry {shown}: {part!r} in the target directory is not a directory "
                        "(a symbolic link or a file); refusing to write through it"
                    ) from None
                raise
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def conflicts(files: Iterable[BundleFile], target: Path) -> list[str]:
    """The bundle paths that already exist under ``target`` (as anything, links included)."""
    found = []
    for f in files:
        try:
            (target / f.path).lstat()
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            found.append(f.path)
            continue
        found.append(f.path)
    return found


def write_files(files: list[BundleFile], target: Path, what: str, force: bool = False) -> None:
    """Write ``files`` under ``target`` (created if missing); existing files are refused unless ``force``.

    Paths were checked by :func:`unpack` and are checked again here; no write follows a symbolic link.
    """
    for f in files:
        check_relative_path(f.path, what)
    if not force:
        existing = conflicts(files, target)
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise BundleError(
                f"{what}: {target / existing[0]} exists{more}; use --force to overwrite or pull into an empty directory"
            )
    try:
        target.mkdir(parents=True, exist_ok=True)
        root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise BundleError(f"{what}: cannot create {target}: {e.strerror or e}") from None
    try:
        for f in files:
            parts = f.path.split("/")
            shown = _shown(f.path)
            try:
                dir_fd = _open_dir_nofollow(root_fd, parts[:-1], True, what, shown)
                try:
                    _write_one(dir_fd, parts[-1], f.data, force=force, what=what, shown=shown)
                finally:
                    os.close(dir_fd)
            except OSError as e:
                raise BundleError(f"{what}: cannot write {target / f.path}: {e.strerror or e}") from None
    finally:
        os.close(root_fd)


def _write_one(dir_fd: int, name: str, data: bytes, *, force: bool, what: str, shown: str) -> None:
    if force:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if stat.S_ISDIR(st.st_mode):
                raise BundleError(f"{what}: entry {shown}: a directory of that name exists in the target")
            os.unlink(name, dir_fd=dir_fd)  # a link is removed, never followed
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(name, flags, FILE_MODE, dir_fd=dir_fd)
    except FileExistsError:
        raise BundleError(f"{what}: entry {shown}: exists in the target; use --force to overwrite") from None
    with os.fdopen(fd, "wb") as out:
        out.write(data)
