"""Hostile and broken inputs: the scan never crashes, never hangs and never loses the other inputs.

Every case runs the real command (``python -m factorygate scan ... --format json --output F``) in
a subprocess bounded in time (a deadline, then its process group is killed) and in memory
(RLIMIT_AS, and the child's peak RSS read with ``os.wait4``). A valid Deployment (good.yaml) is
scanned in the same run; its findings must come out exactly as when it is scanned alone. Big
and hostile files are generated into ``tmp_path`` at test time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from factorygate.inputs.kubernetes import LoadError, Manifest, ReadOptions, iter_manifests

FIXTURES = Path(__file__).parent / "fixtures" / "hostile"
GOOD = FIXTURES / "good.yaml"
MIB = 1024 * 1024
TIMEOUT_S = 60
ADDRESS_SPACE = 1536 * MIB  # RLIMIT_AS of the child: a runaway allocation fails instead of swapping
MAX_RSS_MIB = 400

# A Deployment the hostile content is appended to, so it looks like a real manifest (12 lines).
HEAD = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hostile
spec:
  template:
    metadata:
      labels: {app: hostile}
    spec:
      containers:
        - name: app
          image: registry.example.com/app:1
"""
HEAD_LINES = HEAD.count("\n")


# -- running the command -----------------------------------------------------------------------


@dataclass
class Scan:
    """What one run of ``factorygate scan`` did."""

    returncode: int
    stderr: str
    report: dict[str, Any]
    peak_rss_mib: float
    seconds: float

    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.startswith("factorygate: error:")]

    def findings_in(self, file: str) -> list[dict[str, Any]]:
        return [f for f in self.report.get("findings", []) if f["location"]["file"] == file]

    def errors(self) -> list[dict[str, Any]]:
        return [f for f in self.report.get("findings", []) if f["status"] == "error"]


def _limit_child() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a segfault must not leave a core file


def run_scan(workdir: Path, *paths: str | Path, args: tuple[str, ...] = (), stdin: bytes | None = None) -> Scan:
    """``factorygate scan PATHS --format json --output report.json``, reaped with os.wait4."""
    report = workdir / "report.json"
    errfile = workdir / "stderr.txt"
    infile = workdir / "stdin.bin"
    infile.write_bytes(stdin or b"")
    cmd = [sys.executable, "-m", "factorygate", "scan", *map(str, paths), "--format", "json"]
    cmd += ["--output", str(report), *args]
    started = time.perf_counter()
    with errfile.open("wb") as err, infile.open("rb") as inp:
        proc = subprocess.Popen(
            cmd,
            stdin=inp,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=_limit_child,  # noqa: PLW1509 - only setrlimit, before exec
            start_new_session=True,
        )
    deadline = started + TIMEOUT_S
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            proc.returncode = -signal.SIGKILL
            pytest.fail(f"factorygate scan {' '.join(map(str, paths))} still running after {TIMEOUT_S} s")
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = errfile.read_text(errors="replace")
    parsed = json.loads(report.read_text()) if report.exists() and report.stat().st_size else {}
    report.unlink(missing_ok=True)
    # ru_maxrss is in KiB on Linux; it also counts what the child shared with pytest before exec
    return Scan(proc.returncode, stderr, parsed, usage.ru_maxrss / 1024, seconds)


def _key(f: dict[str, Any]) -> tuple[Any, ...]:
    loc, res = f["location"], f["resource"] or {}
    return (f["check"], f["status"], f["severity"], f["message"], loc["line"], loc["path"], f["container"],
            res.get("kind"), res.get("name"))  # fmt: skip


@pytest.fixture(scope="module")
def good_alone(tmp_path_factory: pytest.TempPathFactory) -> Counter[tuple[Any, ...]]:
    """The findings of good.yaml scanned on its own (file name left out)."""
    workdir = tmp_path_factory.mktemp("good-alone")
    good = workdir / "good.yaml"
    shutil.copy(GOOD, good)
    result = run_scan(workdir, good)
    assert result.returncode == 1, result.stderr  # it has policy failures, and no error
    findings = result.findings_in(str(good))
    assert len(findings) > 20
    assert not result.errors()
    return Counter(_key(f) for f in findings)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    shutil.copy(GOOD, path)
    return path


def assert_bounded(result: Scan) -> None:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.seconds < TIMEOUT_S
    assert result.peak_rss_mib < MAX_RSS_MIB, f"peak RSS {result.peak_rss_mib:.0f} MiB"


def assert_good_intact(result: Scan, good: Path, good_alone: Counter[tuple[Any, ...]]) -> None:
    assert Counter(_key(f) for f in result.findings_in(str(good))) == good_alone


def assert_reported(result: Scan, bad: str, line: int | None = None, says: str = "") -> dict[str, Any]:
    """Exit 2, one clear stderr line naming ``bad`` and one input-error finding for it."""
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    named = [ln for ln in result.error_lines() if ln.startswith(f"factorygate: error: {bad}:")]
    assert len(named) == 1, result.stderr[-3000:]
    where = f"{re.escape(bad)}:{line}" if line is not None else rf"{re.escape(bad)}(?::\d+)?"
    assert re.fullmatch(rf"factorygate: error: {where}: \S.{{0,400}}", named[0]), named[0]
    assert says in named[0], named[0]
    errors = [f for f in result.errors() if f["location"]["file"] == bad]
    assert len(errors) == 1, errors
    assert errors[0]["check"] == "input-error"
    if line is not None:
        assert errors[0]["location"]["line"] == line
    # nothing else errored: no check crashed on what was loaded
    assert all(f["check"] == "input-error" for f in result.errors()), result.errors()
    return errors[0]


# -- hostile files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A hostile file: its content (written at test time), the line and words the error must name."""

    name: str
    content: Callable[[], bytes]
    says: str
    line: int | None = None
    suffix: str = ".yaml"


def _lols(levels: int) -> str:
    """Mapping entries (indented 2) of the classic alias bomb: each level lists 9 aliases of the last."""
    lines = ["  lol0: &l0 [lol]"]
    lines += [f"  lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _billion_laughs(levels: int) -> bytes:
    return (HEAD + _lols(levels)).encode()


def _merge_key_bomb() -> bytes:
    lines = ["  m0: &m0 {k0: v}"]
    for i in range(1, 10):
        lines += [f"  m{i}: &m{i}", f"    <<: [{', '.join([f'*m{i - 1}'] * 9)}]", f"    k{i}: v"]
    return (HEAD + "\n".join(lines) + "\n").encode()


def _deep_indent(levels: int) -> bytes:
    return ("".join(" " * i + f"k{i}:\n" for i in range(levels)) + " " * levels + "leaf: x\n").encode()


def _recursive_alias() -> bytes:
    return (HEAD + "  self: &s [*s]\n").encode()  # a node inside itself: its expansion never ends


def _unterminated_quote() -> bytes:
    return (HEAD + '  note: "never closed\n  more: x\n').encode()


def _dense_flow_list() -> bytes:
    return (HEAD + "          args: [" + "0," * 1_100_000 + "0]\n").encode()  # 2 bytes a node


def _many_merge_keys() -> bytes:
    return (HEAD + "  extra:\n" + "    <<: {}\n" * 300_000).encode()


def _noise(size: int, seed: bytes) -> bytes:
    """Reproducible random-looking bytes."""
    return hashlib.shake_256(seed).digest(size)


def _field(yaml_line: str) -> bytes:
    """HEAD with one more line in the container's securityContext (that line is HEAD_LINES + 2)."""
    return (HEAD + "          securityContext:\n            " + yaml_line + "\n").encode()


CASES = [
    # alias bombs: refused on the composed graph, before anything is constructed
    Case("billion-laughs-9", lambda: _billion_laughs(9), "alias", line=1),
    Case("billion-laughs-10", lambda: _billion_laughs(10), "alias", line=1),
    Case("merge-key-bomb", _merge_key_bomb, "alias", line=1),
    Case("recursive-alias", _recursive_alias, "alias", line=1),
    Case(
        "utf16-billion-laughs",
        lambda: b"\xff\xfe" + _billion_laughs(9).decode().encode("utf-16-le"),
        "alias",
        line=1,
    ),
    # binary junk and bytes libyaml's reader refuses
    Case("random-1mib", lambda: _noise(MIB, b"junk"), "not a text file"),
    Case("png", lambda: b"\x89PNG\r\n\x1a\n" + bytes(MIB), "not a text file", line=1),
    Case("nul-byte", lambda: HEAD.encode() + b"  note: a\x00b\n", "control characters", line=HEAD_LINES + 1),
    Case("invalid-utf8", lambda: HEAD.encode() + b"  note: caf\xe9\n", "invalid UTF-8", line=HEAD_LINES + 1),
    # nesting that would overflow libyaml's C stack (a segfault, exit -11) without the guard
    Case("flow-100k", lambda: b"[" * 100_000 + b"]" * 100_000, "nested deeper", line=1),
    Case("flow-1m", lambda: b"[" * 1_000_000 + b"]" * 1_000_000, "nested deeper", line=1),
    Case("flow-1m-unclosed", lambda: b"a: " + b"{a: " * 1_000_000, "nested deeper", line=1),
    Case("json-100k", lambda: b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, "nested deeper", 1, ".json"),
    Case("block-200k", lambda: b"- " * 200_000 + b"x\n", "nested deeper", line=1),
    Case("block-mixed-200k", lambda: b"- ? " * 200_000 + b"x\n", "nested deeper", line=1),
    Case("block-explicit-200k", lambda: b"? x\n" + b": - " * 200_000 + b"x\n", "nested deeper", line=2),
    Case("indented-mappings", lambda: _deep_indent(1500), "nested deeper", line=501),
    Case(
        "utf16-block-200k",
        lambda: b"\xfe\xff" + ("- " * 200_000 + "x\n").encode("utf-16-be"),
        "nested deeper",
        line=1,
    ),
    # truncated documents: the error names the line (and where the unclosed thing started)
    Case(
        "unterminated-quote",
        _unterminated_quote,
        f"quoted scalar on line {HEAD_LINES + 1}",
        line=HEAD_LINES + 3,
    ),
    Case(
        "unterminated-flow-mapping",
        lambda: b"apiVersion: v1\nkind: Pod\nmetadata: {name: x, labels: {a: b\nspec: {}\n",
        "flow mapping on line 3",
        line=4,
    ),
    # scalars whose construction is expensive or crashes PyYAML's constructors
    Case("int-10k-digits", lambda: _field("runAsUser: 1" + "0" * 10_000), "integer", line=HEAD_LINES + 2),
    Case("hex-int-5k-digits", lambda: _field("runAsUser: 0x" + "f" * 5_000), "integer", line=HEAD_LINES + 2),
    Case("hex-int-3990-digits", lambda: _field("runAsUser: 0x" + "f" * 3990), "integer", line=HEAD_LINES + 2),
    Case("sexagesimal-int", lambda: _field("runAsUser: 1" + ":59" * 200_000), "integer", line=HEAD_LINES + 2),
    Case("bool-tag-on-garbage", lambda: _field("privileged: !!bool maybe"), "cannot load", line=1),
    Case("int-tag-on-empty", lambda: _field("runAsUser: !!int ''"), "cannot load", line=1),
    Case("float-tag-on-empty", lambda: _field("runAsUser: !!float ''"), "cannot load", line=1),
    Case("timestamp-tag-on-garbage", lambda: _field("runAsUser: !!timestamp nope"), "cannot load", line=1),
    # documents too big to compose in bounded memory (about 300 bytes per node)
    Case(
        "dense-flow-list",
        _dense_flow_list,
        "more than 1,000,000 nodes",
        line=1,
    ),
    Case(
        "merge-keys-300k",
        _many_merge_keys,
        "merge keys",
        line=HEAD_LINES + 2,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_file_is_one_error_and_the_good_file_is_still_scanned(
    case: Case, tmp_path: Path, good: Path, good_alone: Counter[tuple[Any, ...]]
) -> None:
    bad = tmp_path / f"bad{case.suffix}"
    bad.write_bytes(case.content())
    result = run_scan(tmp_path, bad, good)
    assert_bounded(result)
    assert_reported(result, str(bad), case.line, case.says)
    assert_good_intact(result, good, good_alone)


def test_100_mib_file_is_refused_by_size_without_reading_it(
    tmp_path: Path, good: Path, good_alone: Counter[tuple[Any, ...]]
) -> None:
    bad = tmp_path / "huge.yaml"
    with bad.open("wb") as f:  # sparse: a comment, then a hole up to 100 MiB
        f.write(b"# " + b"x" * 100 + b"\n")
        f.truncate(100 * MIB)
    result = run_scan(tmp_path, bad, good)
    assert_bounded(result)
    assert_reported(result, str(bad), None, "100.0 MiB, over the 32 MiB limit")
    assert result.seconds < 20
    assert_good_intact(result, good, good_alone)


def test_40_mib_file_is_scanned_when_the_size_limit_allows_it(
    tmp_path: Path, good: Path, good_alone: Counter[tuple[Any, ...]]
) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as f:
        f.write(HEAD.replace("name: hostile", "name: big"))
        comment = "# " + "padding " * 9 + "\n"
        f.write(comment * (40 * MIB // len(comment)))
        f.write("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: blob}\ndata:\n  blob: |\n")
        f.write(("    " + "y" * 76 + "\n") * (MIB // 80))
    assert big.stat().st_size > 40 * MIB

    refused = run_scan(tmp_path, big, good)
    assert_bounded(refused)
    assert_reported(refused, str(big), None, "over the 32 MiB limit")
    assert_good_intact(refused, good, good_alone)

    result = run_scan(tmp_path, big, good, args=("--max-file-size", "200"))
    assert_bounded(result)
    assert result.returncode == 1, result.stderr  # policy failures only
    assert not result.errors()
    assert not result.error_lines()
    assert {f["resource"]["name"] for f in result.findings_in(str(big))} == {"big"}
    assert_good_intact(result, good, good_alone)


# -- multi-document files: the documents before the broken one are kept -------------------------


def _deployment(name: str) -> str:
    return HEAD.replace("name: hostile", f"name: {name}").replace("app: hostile", f"app: {name}")


BROKEN_THIRD = {
    "syntax-error": b"kind: Pod\n  bad: [\n",
    "invalid-utf8": b"kind: Pod\nnote: caf\xe9\n",
    "nul-byte": b"kind: Pod\nnote: a\x00b\n",
    "deep-flow": b"kind: Pod\nnote: " + b"[" * 200_000 + b"\n",
    "deep-block": b"kind: Pod\nnote:\n" + b"- " * 200_000 + b"x\n",
    "alias-bomb": b"kind: Pod\nspec:\n" + _lols(9).encode(),
    "huge-int": b"kind: Pod\nnote: 1" + b"0" * 10_000 + b"\n",
}


@pytest.mark.parametrize("third", list(BROKEN_THIRD), ids=list(BROKEN_THIRD))
def test_documents_before_a_broken_document_still_yield_findings(
    third: str, tmp_path: Path, good: Path, good_alone: Counter[tuple[Any, ...]]
) -> None:
    text = (_deployment("one") + "---\n" + _deployment("two") + "---\n").encode()
    bad = tmp_path / "multi.yaml"
    bad.write_bytes(text + b"apiVersion: v1\n" + BROKEN_THIRD[third])
    third_starts = text.count(b"\n") + 1
    result = run_scan(tmp_path, bad, good)
    assert_bounded(result)
    error = assert_reported(result, str(bad))
    assert error["location"]["line"] >= third_starts - 1, error  # its line, or its --- line
    names = {f["resource"]["name"] for f in result.findings_in(str(bad)) if f["status"] != "error"}
    assert names == {"one", "two"}
    assert_good_intact(result, good, good_alone)


# -- directories, special files, paths and stdin -----------------------------------------------


def test_directory_with_link_loops_links_outside_and_special_files(
    tmp_path: Path, good_alone: Counter[tuple[Any, ...]]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "elsewhere.yaml").write_text(_deployment("elsewhere"))
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    good = tree / "sub" / "good.yaml"
    shutil.copy(GOOD, good)
    (tree / "sub" / "loop").symlink_to("..")  # directory links are not followed: no endless walk
    (tree / "self").symlink_to(".")
    (tree / "out").symlink_to(outside)
    (tree / "a.yaml").symlink_to("b.yaml")  # a file link loop: ELOOP
    (tree / "b.yaml").symlink_to("a.yaml")
    (tree / "dangling.yaml").symlink_to(tmp_path / "nowhere.yaml")
    os.mkfifo(tree / "pipe.yaml")  # opening it would block forever
    (tree / "zero.yaml").symlink_to("/dev/zero")  # a device: endless (a repository can commit such links)
    os.mkfifo(tree / "Dockerfile")  # Dockerfiles met in a walk get the same protection
    (tree / "Containerfile").symlink_to("/dev/zero")

    result = run_scan(tmp_path, tree)
    assert_bounded(result)
    bad = {
        "a.yaml": "cannot read",
        "b.yaml": "cannot read",
        "dangling.yaml": "cannot read",
        "pipe.yaml": "not a regular file",
        "zero.yaml": "not a regular file",
        "Dockerfile": "not a regular file",
        "Containerfile": "not a regular file",
    }
    for name, says in bad.items():
        assert_reported(result, str(tree / name), None, says)
    assert len(result.error_lines()) == len(bad)
    files = {f["location"]["file"] for f in result.report["findings"]}
    assert files == {str(tree / n) for n in bad} | {str(good)}  # nothing read through the links
    assert_good_intact(result, good, good_alone)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_and_directory(tmp_path: Path, good: Path, good_alone: Counter[tuple[Any, ...]]) -> None:
    secret = tmp_path / "secret.yaml"
    secret.write_text(_deployment("secret"))
    secret.chmod(0)
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "inside.yaml").write_text(_deployment("inside"))
    locked.chmod(0)
    try:
        result = run_scan(tmp_path, secret, locked, good)
    finally:
        secret.chmod(stat.S_IRUSR | stat.S_IWUSR)
        locked.chmod(stat.S_IRWXU)
    assert_bounded(result)
    assert_reported(result, str(secret), None, "cannot read: Permission denied")
    assert_reported(result, str(locked), None, "cannot read directory: Permission denied")
    assert_good_intact(result, good, good_alone)


def test_unreadable_file_and_directory_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same paths as above, simulated so that they run as root too."""
    (tmp_path / "a").mkdir()
    (tmp_path / "locked").mkdir()
    (tmp_path / "a" / "good.yaml").write_text(_deployment("good"))
    (tmp_path / "a" / "secret.yaml").write_text(_deployment("secret"))
    (tmp_path / "locked" / "inside.yaml").write_text(_deployment("inside"))
    real_open, real_scandir = Path.open, os.scandir

    def deny_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.name == "secret.yaml":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    def deny_scandir(path: Any) -> Any:
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(Path, "open", deny_open)
    monkeypatch.setattr(os, "scandir", deny_scandir)
    items = list(iter_manifests([str(tmp_path)], ReadOptions(kustomize=False)))
    errors = {(e.file, e.message) for e in items if isinstance(e, LoadError)}
    assert errors == {
        (str(tmp_path / "a" / "secret.yaml"), "cannot read: Permission denied"),
        (str(tmp_path / "locked"), "cannot read directory: Permission denied"),
    }
    assert [m.data["metadata"]["name"] for m in items if isinstance(m, Manifest)] == ["good"]


def test_missing_path(tmp_path: Path, good: Path, good_alone: Counter[tuple[Any, ...]]) -> None:
    missing = tmp_path / "does-not-exist.yaml"
    result = run_scan(tmp_path, missing, good)
    assert_bounded(result)
    assert_reported(result, str(missing), None, "no such file or directory")
    assert_good_intact(result, good, good_alone)


@pytest.mark.parametrize(
    "garbage",
    [_noise(256 * 1024, b"stdin"), b"\x00" * 4096, b"kind: [\n", b"[" * 500_000],
    ids=["random", "zeros", "syntax", "deep"],
)
def test_garbage_on_stdin(garbage: bytes, tmp_path: Path, good: Path, good_alone: Counter[tuple[Any, ...]]) -> None:
    result = run_scan(tmp_path, "-", good, stdin=garbage)
    assert_bounded(result)
    assert_reported(result, "-")
    assert_good_intact(result, good, good_alone)


# -- odd but harmless inputs: skipped quietly or read as "not set", never an error -------------

WRONG_TYPES = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: spec-is-a-number}
spec: 5
---
apiVersion: apps/v1
kind: Deployment
metadata: 7
spec:
  template:
    metadata: [1, 2]
    spec:
      securityContext: 3
      containers: {name: app, image: nginx}
      initContainers: "x"
      volumes: {a: b}
---
apiVersion: v1
kind: Pod
metadata: {name: [1], namespace: {a: 1}, annotations: 5, labels: x}
spec:
  hostNetwork: [1]
  hostPID: {a: b}
  securityContext: {runAsUser: [1], sysctls: 5, seccompProfile: "x", seLinuxOptions: 1}
  volumes: [5, {name: 1, hostPath: 7}, {hostPath: {path: [1]}}]
  containers:
    - 5
    - null
    - name: 1
      image: 2
      env: 4
      ports: [1, {containerPort: x, hostPort: [1]}]
      volumeMounts: 7
      resources: {limits: 1, requests: [1]}
      securityContext:
        runAsUser: "0"
        runAsNonRoot: "yes"
        privileged: [1]
        allowPrivilegeEscalation: {a: 1}
        readOnlyRootFilesystem: 1.5
        capabilities: {add: 5, drop: {ALL: true}}
        procMount: 3
        seccompProfile: [RuntimeDefault]
        appArmorProfile: 9
        windowsOptions: {hostProcess: "true"}
    - {name: c, image: [x], securityContext: [privileged]}
  initContainers: [{name: i, image: i, restartPolicy: [Always]}]
"""


def test_odd_documents_are_skipped_or_read_as_unset_never_an_error(
    tmp_path: Path, good: Path, good_alone: Counter[tuple[Any, ...]]
) -> None:
    files = {
        "scalar.yaml": b"just a scalar\n",
        "number.json": b"42",
        "empty.yaml": b"",
        "dashes.yaml": b"---\n",
        "many-dashes.yaml": b"---\n" * 10_000,
        "comments.yaml": b"# nothing\n# here\n",
        "list.yaml": b"- 1\n- [2]\n",
        "bom.yaml": b"\xef\xbb\xbf",
        "wrong-types.yaml": WRONG_TYPES.encode(),
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    result = run_scan(tmp_path, *(tmp_path / n for n in files), good)
    assert_bounded(result)
    assert result.returncode == 1, result.stderr
    assert not result.errors()
    assert not result.error_lines(), result.stderr
    weird = result.findings_in(str(tmp_path / "wrong-types.yaml"))
    assert {(f["resource"]["kind"], f["resource"]["name"]) for f in weird} == {
        ("Deployment", "spec-is-a-number"),
        ("Deployment", "<unnamed>"),
        ("Pod", "<invalid name>"),  # metadata.name of the wrong type
    }
    assert_good_intact(result, good, good_alone)


def test_kind_from_a_merge_key_is_not_skipped(tmp_path: Path) -> None:
    """kubectl applies merge keys; a workload whose kind comes from one is scanned, not skipped."""
    merged = tmp_path / "merged.yaml"
    merged.write_text("apiVersion: apps/v1\n<<: {kind: Deployment}\n" + _deployment("merged").split("\n", 2)[2])
    result = run_scan(tmp_path, merged)
    assert_bounded(result)
    assert result.returncode == 1, result.stderr
    assert {f["resource"]["name"] for f in result.findings_in(str(merged))} == {"merged"}
