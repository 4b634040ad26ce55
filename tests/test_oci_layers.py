"""The layer walker: decompression by magic, diff_id checks, whiteouts, captures, limits and hostile layers."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import IO, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factorygate.oci.digest import VerifyingReader
from factorygate.oci.layers import Limits, assemble, normalise, open_layer
from factorygate.oci.model import Descriptor, FileEntry, ImageError, ImageFilesystem, ResolvedImage
from oci_builders import Member, compress, pad, raw_header, sha, tar_bytes

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def image_of(blobs: list[tuple[bytes, str]], opener: Callable[[Descriptor], IO[bytes]] | None = None) -> ResolvedImage:
    """An in-memory image: (layer blob, diff_id) pairs, blobs served through the verifying reader."""
    store = {sha(blob): blob for blob, _ in blobs}
    layers = [Descriptor("application/vnd.oci.image.layer.v1.tar", sha(blob), len(blob)) for blob, _ in blobs]

    def open_blob(desc: Descriptor) -> IO[bytes]:
        return cast(IO[bytes], VerifyingReader(io.BytesIO(store[desc.digest]), desc.digest, desc.size, "mem"))

    return ResolvedImage(
        name="mem",
        transport="oci-layout",
        manifest_digest="",
        manifest={},
        config_digest="",
        config={},
        layers=layers,
        diff_ids=[d for _, d in blobs],
        open_blob=opener or open_blob,
    )


def layers_image(layers: list[list[Member]], how: str = "gzip") -> ResolvedImage:
    blobs = []
    for members in layers:
        raw = tar_bytes(members)
        blobs.append((compress(raw, how)[0], sha(raw)))
    return image_of(blobs)


def raw_image(raw: bytes, how: str = "none", diff_id: str | None = None) -> ResolvedImage:
    """One layer from hand-made tar bytes, its diff_id consistent unless given."""
    return image_of([(compress(raw, how)[0], diff_id or sha(raw))])


def everything(path: str, size: int) -> bool:
    return True


def walk(image: ResolvedImage, want: Callable[[str, int], bool] = everything, **limits: int) -> ImageFilesystem:
    return assemble(image, want, Limits(**limits))


def hostile(members: list[Member], message: str) -> ImageError:
    with pytest.raises(ImageError, match=message) as info:
        walk(layers_image([members]))
    return info.value


def view(fs: ImageFilesystem) -> dict[str, tuple[str, int, int, str | None]]:
    return {p: (e.type, e.mode, e.size, e.linkname) for p, e in fs.files.items()}


BASE = [
    Member("./", type=tarfile.DIRTYPE, mode=0o755),
    Member("./etc/", type=tarfile.DIRTYPE, mode=0o755),
    Member("./etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
    Member("./usr/bin/sudo", b"\x7fELF", mode=0o4755),
    Member("./usr/bin/sudoedit", type=tarfile.SYMTYPE, linkname="sudo"),
    Member("./usr/bin/sudo-hard", type=tarfile.LNKTYPE, linkname="./usr/bin/sudo"),
    Member("./dev/null", type=tarfile.CHRTYPE, mode=0o666),
    Member("./dev/sda", type=tarfile.BLKTYPE, mode=0o660),
    Member("./run/fifo", type=tarfile.FIFOTYPE),
]


# --- reading and merging -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["gzip", "zstd", "none"])
def test_every_compression_gives_the_same_view(how: str) -> None:
    fs = walk(layers_image([BASE], how))
    assert view(fs) == {
        "/": ("dir", 0o755, 0, None),
        "/etc": ("dir", 0o755, 0, None),
        "/etc/passwd": ("file", 0o644, 26, None),
        "/usr/bin/sudo": ("file", 0o4755, 4, None),
        "/usr/bin/sudoedit": ("symlink", 0o644, 0, "sudo"),
        "/usr/bin/sudo-hard": ("hardlink", 0o644, 4, "/usr/bin/sudo"),
        "/dev/null": ("char", 0o666, 0, None),
        "/dev/sda": ("block", 0o660, 0, None),
        "/run/fifo": ("fifo", 0o644, 0, None),
    }
    assert fs.contents["/etc/passwd"] == b"root:x:0:0::/root:/bin/sh\n"
    assert fs.contents["/usr/bin/sudo-hard"] == b"\x7fELF"
    assert fs.layer_sizes == [len(tar_bytes(BASE))]
    assert fs.layer_entries == [len(BASE)]
    assert fs.removed == []


def test_mixed_compressions_across_layers_and_entry_provenance() -> None:
    blobs = []
    for how, members in (("gzip", [Member("a", b"1")]), ("zstd", [Member("b", b"2")]), ("none", [Member("c", b"3")])):
        raw = tar_bytes(members)
        blobs.append((compress(raw, how)[0], sha(raw)))
    image = image_of(blobs)
    fs = walk(image)
    assert {p: (e.layer, e.layer_digest) for p, e in fs.files.items()} == {
        "/a": (0, image.layers[0].digest),
        "/b": (1, image.layers[1].digest),
        "/c": (2, image.layers[2].digest),
    }


def test_only_wanted_files_are_captured_and_want_sees_every_entry() -> None:
    asked: list[tuple[str, int]] = []

    def want(path: str, size: int) -> bool:
        asked.append((path, size))
        return path == "/etc/passwd"

    fs = walk(layers_image([BASE]), want)
    assert fs.contents == {"/etc/passwd": b"root:x:0:0::/root:/bin/sh\n"}
    assert sorted(asked) == sorted((p, e.size) for p, e in fs.files.items())


@pytest.mark.parametrize(
    ("name", "path"),
    [("./a/b", "/a/b"), ("a//b/", "/a/b"), ("a/./b", "/a/b"), ("x/../y", "/y"), ("./", "/"), (".", "/")],
)
def test_names_are_normalised(name: str, path: str) -> None:
    assert normalise(name) == path


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "./.."])
def test_unsafe_names_do_not_normalise(name: str) -> None:
    assert normalise(name) is None


def test_undecodable_names_become_printable() -> None:
    info = tarfile.TarInfo("o\udcff")
    header = info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape")
    assert b"o\xff\0" in header
    fs = walk(raw_image(header + b"\0" * 1024))
    assert list(fs.files) == ["/o\\xff"]


# --- whiteouts, overwrites and history -----------------------------------------------------------


def test_deleted_private_key_is_gone_from_the_view_but_kept_in_history() -> None:
    image = layers_image(
        [
            [Member("root/.ssh/id_rsa", SECRET, mode=0o600), Member("etc/hostname", b"box\n")],
            [Member("root/.ssh/.wh.id_rsa")],
        ]
    )
    fs = walk(image, lambda p, s: p.endswith("id_rsa"))
    assert "/root/.ssh/id_rsa" not in fs.files
    assert "/root/.ssh/id_rsa" not in fs.contents
    assert [(e.path, e.layer, data) for e, data in fs.removed] == [("/root/.ssh/id_rsa", 0, SECRET)]
    assert "/etc/hostname" in fs.files
    assert fs.layer_entries == [2, 1]


def test_whiteout_of_a_directory_removes_its_subtree() -> None:
    image = layers_image(
        [
            [
                Member("opt/app/", type=tarfile.DIRTYPE),
                Member("opt/app/conf/key.pem", SECRET),
                Member("opt/app/bin/run", b"#!"),
                Member("opt/apple", b"kept"),
            ],
            [Member("opt/.wh.app")],
        ]
    )
    fs = walk(image, lambda p, s: p.endswith(".pem"))
    assert sorted(fs.files) == ["/opt/apple"]
    assert [(e.path, data) for e, data in fs.removed] == [("/opt/app/conf/key.pem", SECRET)]


def test_whiteout_of_implied_directories_removes_their_subtree() -> None:
    fs = walk(layers_image([[Member("a/b/c/d", b"x"), Member("a/z", b"y")], [Member("a/.wh.b")]]))
    assert sorted(fs.files) == ["/a/z"]


def test_opaque_directory_hides_lower_layers_only() -> None:
    image = layers_image(
        [
            [Member("srv/", type=tarfile.DIRTYPE), Member("srv/old.key", SECRET), Member("srv/sub/deep", b"d")],
            [
                Member("srv/new-before", b"1"),
                Member("srv/.wh..wh..opq"),
                Member("srv/new-after", b"2"),
                Member("srv/.wh..wh..opq"),  # a repeat changes nothing
            ],
        ]
    )
    fs = walk(image)
    assert sorted(p for p in fs.files if p.startswith("/srv")) == ["/srv", "/srv/new-after", "/srv/new-before"]
    assert {e.path: data for e, data in fs.removed} == {"/srv/old.key": SECRET, "/srv/sub/deep": b"d"}


def test_whiteout_does_not_hide_files_of_its_own_layer() -> None:
    fs = walk(layers_image([[Member("a", b"1")], [Member("a", b"2"), Member(".wh.a")]]))
    assert fs.contents["/a"] == b"2"


def test_aufs_bookkeeping_whiteouts_are_ignored() -> None:
    fs = walk(layers_image([[Member("a", b"1"), Member(".wh..wh.plnk/1.2")]]))
    assert sorted(fs.files) == ["/a"]


def test_overwrite_keeps_the_earlier_bytes_in_history() -> None:
    image = layers_image([[Member("etc/shadow", b"root:$6$old:")], [Member("etc/shadow", b"root:*:", mode=0o640)]])
    fs = walk(image, lambda p, s: p == "/etc/shadow")
    assert fs.contents["/etc/shadow"] == b"root:*:"
    assert fs.files["/etc/shadow"].mode == 0o640
    assert [(e.layer, data) for e, data in fs.removed] == [(0, b"root:$6$old:")]


def test_directory_redeclared_is_not_history() -> None:
    image = layers_image([[Member("etc/", type=tarfile.DIRTYPE, mode=0o755)], [Member("etc/", type=tarfile.DIRTYPE)]])
    fs = walk(image)
    assert fs.removed == []
    assert fs.files["/etc"].layer == 1


def test_file_replacing_a_directory_drops_the_subtree() -> None:
    image = layers_image([[Member("app/", type=tarfile.DIRTYPE), Member("app/secret", SECRET)], [Member("app", b"f")]])
    fs = walk(image)
    assert view(fs) == {"/app": ("file", 0o644, 1, None)}
    assert [e.path for e, _ in fs.removed] == ["/app/secret", "/app"]


def test_directory_replacing_a_symlink_allows_paths_below_it() -> None:
    image = layers_image(
        [
            [Member("var/run", type=tarfile.SYMTYPE, linkname="/run")],
            [Member("var/run/", type=tarfile.DIRTYPE), Member("var/run/app.pid", b"1")],
        ]
    )
    fs = walk(image)
    assert fs.files["/var/run"].type == "dir"
    assert "/var/run/app.pid" in fs.files


def test_hardlink_to_a_file_of_a_lower_layer() -> None:
    fs = walk(layers_image([[Member("bin/a", b"ELF")], [Member("bin/b", type=tarfile.LNKTYPE, linkname="bin/a")]]))
    assert view(fs)["/bin/b"] == ("hardlink", 0o644, 3, "/bin/a")
    assert fs.contents["/bin/b"] == b"ELF"


# --- hostile members -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([Member("../../../tmp/fg-escape")], r"member '../../../tmp/fg-escape': path escapes the image root"),
        ([Member("a/../../fg-escape")], "path escapes the image root"),
        ([Member("/etc/passwd")], r"member '/etc/passwd': absolute path"),
        (
            [Member("link", type=tarfile.SYMTYPE, linkname="/etc"), Member("link/passwd", b"x")],
            r"symlink escape: path goes through symlink /link -> /etc",
        ),
        (
            [Member("up", type=tarfile.SYMTYPE, linkname="../../.."), Member("up/tmp/x", b"x")],
            "symlink escape",
        ),
        (
            [Member("link", type=tarfile.SYMTYPE, linkname="/etc"), Member("link/.wh.passwd")],
            "symlink escape",
        ),
        ([Member("h", type=tarfile.LNKTYPE, linkname="../../etc/shadow")], "hardlink target .* escapes the image root"),
        ([Member("h", type=tarfile.LNKTYPE, linkname="/etc/shadow")], "escapes the image root"),
        ([Member("h", type=tarfile.LNKTYPE, linkname="etc/shadow")], "hardlink target /etc/shadow does not exist"),
        (
            [Member("d/", type=tarfile.DIRTYPE), Member("h", type=tarfile.LNKTYPE, linkname="d")],
            "does not exist in earlier content",
        ),
        (
            [
                Member("l", type=tarfile.SYMTYPE, linkname="/etc"),
                Member("h", type=tarfile.LNKTYPE, linkname="l/shadow"),
            ],
            "hardlink escape: target /l/shadow goes through symlink /l",
        ),
        ([Member("dir/.wh..")], "invalid whiteout name"),
    ],
)
def test_hostile_members_are_refused_by_name(members: list[Member], message: str) -> None:
    error = hostile(members, message)
    assert str(error).startswith("mem: layer 0 (sha256:")
    assert "\n" not in str(error)


def test_symlink_recorded_in_a_lower_layer_still_blocks_paths_through_it() -> None:
    image = layers_image([[Member("etc", type=tarfile.SYMTYPE, linkname="/host/etc")], [Member("etc/shadow", b"x")]])
    with pytest.raises(ImageError, match=r"layer 1 .*symlink escape"):
        walk(image)


def test_hostile_layers_never_touch_the_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "escaped"
    cases = [
        [Member(f"../../../../../../{target}", b"pwned")],
        [Member(str(target), b"pwned")],
        [Member("l", type=tarfile.SYMTYPE, linkname=str(tmp_path)), Member("l/escaped", b"pwned")],
        [Member("h", type=tarfile.LNKTYPE, linkname=str(target))],
    ]
    for members in cases:
        with pytest.raises(ImageError):
            walk(layers_image([members]))
    walk(layers_image([[Member("escaped", b"inside the image only"), Member("dev/x", type=tarfile.CHRTYPE)]]))
    assert list(tmp_path.iterdir()) == []


# --- limits --------------------------------------------------------------------------------------


def test_member_count_limit() -> None:
    with pytest.raises(ImageError, match="more than 5 tar members"):
        walk(layers_image([[Member(f"f{i}") for i in range(6)]]), max_members=5)


def test_path_length_limit() -> None:
    with pytest.raises(ImageError, match="longer than 100 characters"):
        walk(layers_image([[Member("a/" * 60)]]), max_path=100)
    with pytest.raises(ImageError, match="longer than 100 characters"):
        walk(layers_image([[Member("s", type=tarfile.SYMTYPE, linkname="x" * 101)]]), max_path=100)


def test_uncompressed_size_limit() -> None:
    with pytest.raises(ImageError, match=r"over 1048576 uncompressed bytes"):
        walk(layers_image([[Member("big", b"\1" * (2 << 20))]], "none"), max_layer_bytes=1 << 20)


def test_capture_limits_leave_large_files_in_the_view_only() -> None:
    image = layers_image([[Member("a", b"a" * 100), Member("b", b"b" * 10), Member("c", b"c" * 60)]])
    fs = walk(image, max_file_capture=64, max_total_capture=80)
    assert set(fs.files) == {"/a", "/b", "/c"}
    assert fs.contents == {"/b": b"b" * 10, "/c": b"c" * 60}  # /a over the per-file limit
    fs = walk(image, max_file_capture=64, max_total_capture=65)
    assert fs.contents == {"/b": b"b" * 10}  # /c would pass the total


def test_oversized_extended_header_is_refused_before_it_is_read() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("f")
        info.pax_headers = {"comment": "x" * 5000}
        tf.addfile(info, io.BytesIO(b""))
    with pytest.raises(ImageError, match=r"extended tar header of .* bytes is over the limit"):
        walk(raw_image(buf.getvalue()), max_header_bytes=4096)


def test_endless_chain_of_long_name_headers_is_refused() -> None:
    long_name = b"a" * 200
    block = pad(raw_header("././@LongLink", len(long_name), tarfile.GNUTYPE_LONGNAME)) + pad(long_name)
    raw = block * 40 + pad(raw_header("f")) + b"\0" * 1024
    with pytest.raises(ImageError, match="chained extended tar headers"):
        walk(raw_image(raw))


def zero_bomb(path: Path, gib: int) -> None:
    """A gzip layer holding one file of ``gib`` GiB of zeros, written as repeated gzip members (never in memory)."""
    chunk = gzip.compress(b"\0" * (64 << 20), compresslevel=9, mtime=0)
    header = gzip.compress(raw_header("zeros", gib << 30), mtime=0)
    with path.open("wb") as f:
        f.write(header)
        for _ in range(gib * 16):
            f.write(chunk)


def test_decompression_bomb_is_stopped_early_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.gz"
    zero_bomb(path, 2)
    size = path.stat().st_size
    assert size < 4 << 20  # 2 GiB of zeros in a few MiB
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    desc = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", digest, size)
    image = image_of([])
    image.layers, image.diff_ids = [desc], [sha(b"not checked: the bomb stops first")]
    image.open_blob = lambda d: cast(IO[bytes], VerifyingReader(path.open("rb"), d.digest, d.size, "bomb"))
    tracemalloc.start()
    try:
        with pytest.raises(
            ImageError, match=r"layer 0 \(sha256:.*\): decompression bomb \(\d+ bytes from \d+ compressed\)"
        ):
            walk(image, bomb_min_bytes=64 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20


def test_high_ratio_below_the_bomb_floor_is_fine() -> None:
    fs = walk(layers_image([[Member("zeros", b"\0" * (8 << 20))]]), lambda p, s: False)
    assert fs.layer_sizes[0] > 8 << 20


# --- corrupt and truncated streams ---------------------------------------------------------------


def test_diff_id_mismatch() -> None:
    raw = tar_bytes([Member("a", b"1")])
    for how in ("gzip", "zstd", "none"):
        with pytest.raises(ImageError, match=r"uncompressed content does not match diff_id sha256:0{64} \(got sha256:"):
            walk(raw_image(raw, how, "sha256:" + "0" * 64))


def test_blob_digest_mismatch() -> None:
    raw = tar_bytes([Member("a", b"1")])
    blob = compress(raw, "gzip")[0]
    bad = bytes(blob[:-5]) + bytes([blob[-5] ^ 1]) + blob[-4:]
    image = image_of([(blob, sha(raw))])
    image.open_blob = lambda d: cast(IO[bytes], VerifyingReader(io.BytesIO(bad), d.digest, d.size, "mem"))
    with pytest.raises(ImageError, match="digest mismatch"):
        walk(image)


def test_truncated_blob_against_its_descriptor() -> None:
    raw = tar_bytes([Member("a", os.urandom(5000))])
    blob = compress(raw, "gzip")[0]
    image = image_of([(blob, sha(raw))])
    image.open_blob = lambda d: cast(IO[bytes], VerifyingReader(io.BytesIO(blob[:-100]), d.digest, d.size, "mem"))
    with pytest.raises(ImageError, match="blob is truncated"):
        walk(image)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("gzip", "gzip stream is truncated"),
        ("zstd", "truncated|unexpected end of data|does not match diff_id"),
        ("none", "unexpected end of data|truncated"),
    ],
)
def test_truncated_stream_with_a_matching_descriptor(how: str, message: str) -> None:
    raw = tar_bytes([Member("a", os.urandom(5000)), Member("b", os.urandom(5000))])
    blob = compress(raw, how)[0]
    cut = blob[: len(blob) // 2]
    with pytest.raises(ImageError, match=message):
        walk(image_of([(cut, sha(raw))]))


def test_tar_cut_at_a_header_is_truncated() -> None:
    raw = tar_bytes([Member("a", b"1"), Member("b", b"2")])
    cut = raw[: 512 * 2 + 100]  # the second header, partly
    with pytest.raises(ImageError, match="tar stream is truncated at offset 1024"):
        walk(raw_image(cut))


def test_invalid_header_after_the_first_member() -> None:
    raw = pad(raw_header("a", 1)) + pad(b"1") + b"\x01" * 512 + pad(raw_header("hidden", 0)) + b"\0" * 1024
    with pytest.raises(ImageError, match="invalid tar header at offset 1024"):
        walk(raw_image(raw))


def test_garbage_is_not_a_tar_stream() -> None:
    with pytest.raises(ImageError, match=r"mem: layer 0 \(sha256:\w+\): "):
        walk(raw_image(b"this is not a tar archive at all\n" * 40))


def test_corrupt_gzip_and_zstd() -> None:
    raw = tar_bytes([Member("a", os.urandom(4000))])
    for how in ("gzip", "zstd"):
        blob = bytearray(compress(raw, how)[0])
        blob[len(blob) // 2] ^= 0xFF
        with pytest.raises(ImageError, match=r"layer 0 \(sha256:"):
            walk(image_of([(bytes(blob), sha(raw))]))


def test_trailing_garbage_after_gzip() -> None:
    raw = tar_bytes([Member("a", b"1")])
    with pytest.raises(ImageError, match="unexpected data after the gzip stream"):
        walk(image_of([(gzip.compress(raw) + b"junk", sha(raw))]))


def test_multi_member_gzip_is_one_stream() -> None:
    raw = tar_bytes([Member("a", b"1" * 3000), Member("b", b"2")])
    blob = gzip.compress(raw[:1000]) + gzip.compress(raw[1000:])
    fs = walk(image_of([(blob, sha(raw))]))
    assert fs.contents == {"/a": b"1" * 3000, "/b": b"2"}


@pytest.mark.parametrize("blob", [b"", gzip.compress(b"", mtime=0), b"\0" * 1024], ids=["empty", "gzip", "end"])
def test_empty_layers(blob: bytes) -> None:
    fs = walk(image_of([(blob, sha(gzip.decompress(blob) if blob.startswith(b"\x1f\x8b") else blob))]))
    assert fs.files == {}
    assert fs.layer_entries == [0]


def test_open_layer_detects_compression_by_magic_not_media_type() -> None:
    raw = tar_bytes([Member("a", b"1")])
    for how in ("gzip", "zstd", "none"):
        stream = open_layer(io.BytesIO(compress(raw, how)[0]), sha(raw))
        assert stream.compression == how
        assert stream.read(512)[:1] == b"a"
        assert stream.finish() == len(raw)


def test_read_errors_of_the_blob_become_image_errors() -> None:
    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b: object) -> int:
            raise OSError(5, "Input/output error")

    image = raw_image(tar_bytes([Member("a")]))
    image.open_blob = lambda d: cast(IO[bytes], Failing())
    with pytest.raises(ImageError, match=r"layer 0 .*Input/output error"):
        walk(image)


# --- property: nothing but ImageError ------------------------------------------------------------

VALID = tar_bytes(
    [
        Member("etc/", type=tarfile.DIRTYPE),
        Member("etc/passwd", b"root:x:0:0\n" * 20),
        Member("bin/sh", type=tarfile.SYMTYPE, linkname="busybox"),
        Member("bin/busybox", b"\x7fELF" * 100, mode=0o755),
        Member("bin/ls", type=tarfile.LNKTYPE, linkname="bin/busybox"),
        Member("etc/.wh.old"),
    ]
)


def outcome(blob: bytes, diff_id: str) -> ImageFilesystem | None:
    try:
        return walk(image_of([(blob, diff_id)]), max_header_bytes=1 << 16)
    except ImageError as e:
        message = str(e)
    assert "\n" not in message
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_random_bytes_raise_only_image_errors(data: bytes) -> None:
    outcome(data, sha(data))
    outcome(b"\x1f\x8b" + data, sha(data))
    outcome(b"\x28\xb5\x2f\xfd" + data, sha(data))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["none", "gzip"]),
    st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, len(VALID)),
)
def test_mutated_layers_raise_only_image_errors(how: str, flips: list[tuple[int, int]], cut: int) -> None:
    raw = bytearray(VALID)
    for pos, value in flips:
        raw[pos] = value
    mutated = bytes(raw[:cut])
    outcome(compress(mutated, how)[0], sha(mutated))  # consistent digests: the tar parser sees the damage
    blob = bytearray(compress(VALID, how)[0])
    for pos, value in flips:
        blob[pos % len(blob)] = value
    outcome(bytes(blob), sha(VALID))


def test_mutation_corpus_covers_both_outcomes() -> None:
    ok = outcome(VALID, sha(VALID))
    assert ok is not None
    assert isinstance(ok.files["/bin/ls"], FileEntry)
    assert outcome(VALID[:700], sha(VALID[:700])) is None
