"""Bundle content without a registry: deterministic packing, guarded unpacking, safe writing, inputs, image lock."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factorygate.supply.bundle_archive import (
    BundleError,
    BundleFile,
    UnpackLimits,
    check_relative_path,
    pack,
    unpack,
    write_files,
)
from factorygate.supply.bundle_lock import build_lock, encode_lock, find_images_in_files, parse_lock
from factorygate.supply.bundle_source import collect, read_directory

DIGEST = "sha256:" + "b" * 64

# --- packing --------------------------------------------------------------------------------------------------

_segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"), min_size=1, max_size=12
).filter(lambda s: s not in (".", ".."))
_paths = st.lists(_segment, min_size=1, max_size=4).map("/".join)


@st.composite
def trees(draw: st.DrawFn) -> list[BundleFile]:
    paths = draw(st.lists(_paths, min_size=1, max_size=8, unique=True))
    # drop paths that would make another one's parent a file
    chosen: list[str] = []
    for p in paths:
        if any(p.startswith(q + "/") or q.startswith(p + "/") for q in chosen):
            continue
        chosen.append(p)
    return [BundleFile(p, draw(st.binary(max_size=300))) for p in chosen]


@given(trees())
@settings(max_examples=150, deadline=None)
def test_pack_round_trips_and_is_deterministic(files: list[BundleFile]) -> None:
    data = pack(files)
    assert pack(list(reversed(files))) == data  # order of the input does not matter
    assert sorted(unpack(data, "t")) == sorted(files)


@given(st.binary(max_size=2000))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_unpack_of_arbitrary_bytes_only_raises_bundle_error(data: bytes) -> None:
    for blob in (data, gzip.compress(data, mtime=0)):
        message = ""
        try:
            unpack(blob, "t")
        except BundleError as e:
            message = str(e)
        assert not message or (message.startswith("t: ") and "\n" not in message)


def test_packed_tar_has_fixed_metadata() -> None:
    data = pack([BundleFile("b/x.yaml", b"x"), BundleFile("a.yaml", b"a")])
    assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0
    assert data[3] & 0x08 == 0  # no file name in the gzip header
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == ["a.yaml", "b", "b/x.yaml"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert [m.mode for m in members] == [0o644, 0o755, 0o644]


def test_pack_refuses_what_cannot_round_trip() -> None:
    with pytest.raises(BundleError, match="appears twice"):
        pack([BundleFile("a.yaml", b""), BundleFile("./a.yaml", b"")])
    with pytest.raises(BundleError, match="both a file and a directory"):
        pack([BundleFile("a", b""), BundleFile("a/b", b"")])
    with pytest.raises(BundleError, match="path traversal"):
        pack([BundleFile("../a", b"")])


@pytest.mark.parametrize(
    ("path", "why"),
    [("", "empty"), ("/abs", "absolute"), ("a/../../b", "traversal"), ("a\\b", "backslash"), (".", "root"),
     ("a\x00b", "NUL")],
)  # fmt: skip
def test_check_relative_path_refuses(path: str, why: str) -> None:
    with pytest.raises(BundleError, match=why):
        check_relative_path(path, "t")


# --- hostile content layers -----------------------------------------------------------------------------------


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(raw.getvalue(), mtime=0)


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("members", "fragment"),
    [
        ([(_info("../x"), b"1")], "entry '../x': path traversal"),
        ([(_info("/etc/x"), b"1")], "entry '/etc/x': absolute path"),
        ([(_info("l", tarfile.SYMTYPE, "/etc/passwd"), b"")], "entry 'l': a symbolic link"),
        ([(_info("l", tarfile.SYMTYPE, "inside.yaml"), b"")], "entry 'l': a symbolic link"),
        ([(_info("a"), b"1"), (_info("h", tarfile.LNKTYPE, "a"), b"")], "entry 'h': a hard link"),
        ([(_info("dev", tarfile.CHRTYPE), b"")], "entry 'dev': a character device"),
        ([(_info("blk", tarfile.BLKTYPE), b"")], "entry 'blk': a block device"),
        ([(_info("p", tarfile.FIFOTYPE), b"")], "entry 'p': a FIFO"),
        ([(_info("a.yaml"), b"1"), (_info("./a.yaml"), b"2")], "entry './a.yaml': duplicate entry"),
        ([(_info("a"), b"1"), (_info("a/b"), b"2")], "entry 'a/b': its parent 'a' is a file"),
        ([(_info("a/b"), b"1"), (_info("a"), b"2")], "entry 'a': a directory of that name exists"),
    ],
)
def test_hostile_members_are_refused_naming_the_entry(
    members: list[tuple[tarfile.TarInfo, bytes]], fragment: str
) -> None:
    with pytest.raises(BundleError) as e:
        unpack(_tar(*members), "bundle r:1")
    assert str(e.value).startswith("bundle r:1: ")
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_size_bombs_and_counts_are_bounded() -> None:
    zeros = _tar((_info("big"), b"\0" * (4 << 20)))
    assert len(zeros) < 10_000  # highly compressible
    with pytest.raises(BundleError, match="per-file limit"):
        unpack(zeros, "t", UnpackLimits(max_file_bytes=1 << 20))
    many = _tar(*[(_info(f"f{i}"), b"x" * 600_000) for i in range(4)])
    with pytest.raises(BundleError, match="size bomb"):
        unpack(many, "t", UnpackLimits(max_total_bytes=2 << 20))
    files = _tar(*[(_info(f"f{i}"), b"") for i in range(30)])
    with pytest.raises(BundleError, match="more than 10 files"):
        unpack(files, "t", UnpackLimits(max_files=10))


def test_not_gzip_corrupt_and_truncated_layers() -> None:
    good = pack([BundleFile("a.yaml", b"x" * 5000)])
    with pytest.raises(BundleError, match="not gzip"):
        unpack(b"PK\x03\x04", "t")
    with pytest.raises(BundleError, match="t: "):
        unpack(good[: len(good) // 2], "t")
    with pytest.raises(BundleError, match="t: "):
        unpack(good[:20] + bytes(len(good) - 20), "t")


# --- writing --------------------------------------------------------------------------------------------------


def test_write_refuses_existing_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_bytes(b"mine")
    files = [BundleFile("new/b.yaml", b"b"), BundleFile("a.yaml", b"theirs")]
    with pytest.raises(BundleError, match=r"a\.yaml exists; use --force"):
        write_files(files, tmp_path, "t")
    assert not (tmp_path / "new").exists()  # checked before anything is written
    write_files(files, tmp_path, "t", force=True)
    assert (tmp_path / "a.yaml").read_bytes() == b"theirs"


def test_write_never_follows_a_symlink_in_the_target(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "conf").symlink_to(outside)
    (target / "f.yaml").symlink_to(outside / "victim")
    with pytest.raises(BundleError, match="not a directory"):
        write_files([BundleFile("conf/x.yaml", b"x")], target, "t", force=True)
    write_files([BundleFile("f.yaml", b"x")], target, "t", force=True)  # the link is replaced, not followed
    assert list(outside.iterdir()) == []
    assert (target / "f.yaml").read_bytes() == b"x"
    assert not (target / "f.yaml").is_symlink()


# --- inputs ---------------------------------------------------------------------------------------------------


def test_directory_input_leaves_hidden_out_and_refuses_links(tmp_path: Path) -> None:
    (tmp_path / "d" / ".git").mkdir(parents=True)
    (tmp_path / "d" / ".git" / "config").write_text("secret")
    (tmp_path / "d" / ".env").write_text("TOKEN=x")
    (tmp_path / "d" / "sub").mkdir()
    (tmp_path / "d" / "sub" / "é.yaml").write_bytes(b"a: 1\r\n")
    assert read_directory(tmp_path / "d") == [BundleFile("sub/é.yaml", b"a: 1\r\n")]
    os.symlink("/etc/passwd", tmp_path / "d" / "link.yaml")
    with pytest.raises(BundleError, match=r"link\.yaml: a symbolic link"):
        read_directory(tmp_path / "d")


def test_stdin_and_file_inputs(tmp_path: Path) -> None:
    files, rendered = collect("-", name="x/app.yaml", stdin=io.BytesIO(b"kind: A\n"))
    assert files == [BundleFile("x/app.yaml", b"kind: A\n")]
    assert not rendered
    with pytest.raises(BundleError, match="empty"):
        collect("-", stdin=io.BytesIO(b""))
    with pytest.raises(BundleError, match="traversal"):
        collect("-", name="../x.yaml", stdin=io.BytesIO(b"a"))
    (tmp_path / "one.yaml").write_bytes(b"k: v\n")
    assert collect(str(tmp_path / "one.yaml"))[0] == [BundleFile("one.yaml", b"k: v\n")]


# --- image lock -----------------------------------------------------------------------------------------------

WORKLOADS = f"""\
apiVersion: v1
kind: List
items:
- apiVersion: batch/v1
  kind: CronJob
  metadata: {{name: nightly, namespace: ops}}
  spec:
    jobTemplate:
      spec:
        template:
          spec:
            containers: [{{name: job, image: "registry.example/ops/job@{DIGEST}"}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: debug}}
spec:
  initContainers: [{{name: init, image: "registry.example/ops/init@{DIGEST}"}}]
  containers: [{{name: c, image: "registry.example/ops/job@{DIGEST}"}}, {{name: noimage}}]
  ephemeralContainers: [{{name: dbg, image: "registry.example/ops/debug:1.0@{DIGEST}"}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: not-a-workload}}
data: {{image: "registry.example/ignored:1"}}
"""


def test_lock_finds_every_container_kind_and_keeps_pinned_digests() -> None:
    uses = find_images_in_files([BundleFile("w.yaml", WORKLOADS.encode()), BundleFile("notes.txt", b"image: x")])
    assert {(u.role, u.kind, u.reference.split("/")[-1]) for u in uses} == {
        ("container", "CronJob", f"job@{DIGEST}"),
        ("container", "Pod", f"job@{DIGEST}"),
        ("initContainer", "Pod", f"init@{DIGEST}"),
        ("ephemeralContainer", "Pod", f"debug:1.0@{DIGEST}"),
    }

    def no_registry(ref: object) -> str:
        raise AssertionError("pinned references are never resolved")

    lock = build_lock(uses, no_registry)
    assert [e.source for e in lock] == ["reference"] * 3
    job = next(e for e in lock if "job" in e.reference)
    assert len(job.used_by) == 2
    assert job.digest == DIGEST
    debug = next(e for e in lock if "debug" in e.reference)
    assert debug.pinned == f"registry.example/ops/debug:1.0@{DIGEST}"
    data = encode_lock(lock)
    assert data == encode_lock(build_lock(reversed(uses), no_registry))  # canonical
    assert parse_lock(data, "t")["images"][0]["usedBy"]


def test_invalid_reference_is_an_error_unless_allowed() -> None:
    pod = b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: 'Bad Ref'}]}\n"
    uses = find_images_in_files([BundleFile("p.yaml", pod)])

    def never(ref: object) -> str:
        raise AssertionError("not reached")

    with pytest.raises(BundleError, match=r"^p\.yaml:4: .*--allow-unresolved$"):
        build_lock(uses, never)
    assert build_lock(uses, never, allow_unresolved=True)[0].source == "unresolved"


@pytest.mark.parametrize(
    "doc", [b"[]", b"{", b'{"kind": "x"}', b'{"apiVersion":1,"kind":"factorygate.dev/ImageLock","images":[1]}']
)
def test_malformed_lock_is_refused(doc: bytes) -> None:
    with pytest.raises(BundleError, match=r"^t: "):
        parse_lock(doc, "t")
