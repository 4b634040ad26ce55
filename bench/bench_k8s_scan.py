"""Benchmark ``factorygate scan`` against the YAML parse floor and Checkov on one corpus.

In one run, on the same input directory, this measures the wall time and the peak
resident memory (``ru_maxrss`` from ``os.wait4``) of each of these, each run as its
own child process:

1. ``factorygate scan DIR --format json --output TMP`` (exit codes 0 and 1 are success),
2. the parse floor, ``bench/parse_floor.py DIR`` (every document parsed with yaml.CSafeLoader),
3. ``checkov -d DIR --framework kubernetes --quiet --compact -o json`` from its own
   virtual environment (``.bench/checkov-venv``, created on first use),

plus the start-up time of ``factorygate --version`` and ``checkov --version`` (best of 3).
It prints a table and the ratios against the targets, and can write everything as JSON.
Standard library only: it runs with the project's virtualenv python. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "corpus" / "k8s"
DEFAULT_DOCKER_CORPUS = REPO_ROOT.parent / "shared" / "corpus" / "docker"
# "kubernetes" or "dockerfile": which Checkov framework, and what factorygate is told the inputs are.
FRAMEWORK: list[str] = ["kubernetes"]
DEFAULT_CHECKOV_VENV = REPO_ROOT / ".bench" / "checkov-venv"
PARSE_FLOOR_SCRIPT = BENCH_DIR / "parse_floor.py"

# Targets printed next to the measured numbers.
TARGET_SPEEDUP_VS_CHECKOV = 20.0  # checkov wall / factorygate wall, at least
TARGET_FLOOR_RATIO = 1.3  # factorygate wall / parse-floor wall, at most
TARGET_FACTORYGATE_RSS_MB = 250.0  # factorygate peak RSS (MiB), under

# Checkov must not phone home: BC_SKIP_MAPPING skips the guideline/mapping download
# from the vendor API (same effect as --skip-download) and CKV_SKIP_PACKAGE_UPDATE_CHECK
# skips the "new version available" query that runs on every start-up.
CHECKOV_ENV: dict[str, str] = {
    "BC_SKIP_MAPPING": "TRUE",
    "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE",
}

# 0 clean, 1 policy failures (expected on this corpus); 2 (input errors) fails the step
# unless --factorygate-ok-exit says otherwise.
FACTORYGATE_OK_EXIT_CODES = frozenset({0, 1})

# factorygate is usually an editable install (src/), whose modules have no .pyc files from pip;
# with PYTHONDONTWRITEBYTECODE set (as on the dev machines) every run would recompile them.
# Let factorygate children write bytecode, into .bench/pycache so nothing lands in src/.
PYCACHE_PREFIX = REPO_ROOT / ".bench" / "pycache"


def factorygate_env() -> dict[str, str | None]:
    """Environment changes for factorygate children (``None`` removes a variable)."""
    return {
        "PYTHONDONTWRITEBYTECODE": None,
        "PYTHONPYCACHEPREFIX": os.environ.get("PYTHONPYCACHEPREFIX", str(PYCACHE_PREFIX)),
    }


class BenchError(Exception):
    """A benchmark step could not run or gave an unusable result."""


# --------------------------------------------------------------------------- measuring


@dataclass
class Measurement:
    """One child-process run."""

    label: str
    argv: list[str]
    wall_s: float
    max_rss_kib: int
    returncode: int
    tree_rss_peak_kib: int | None = None
    stdout: str = field(default="", repr=False)
    stderr: str = field(default="", repr=False)

    @property
    def max_rss_mib(self) -> float:
        return self.max_rss_kib / 1024.0

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        del data["stdout"], data["stderr"]
        data["max_rss_mib"] = round(self.max_rss_mib, 1)
        data["wall_s"] = round(self.wall_s, 4)
        return data


def _rusage_maxrss_kib(maxrss: int) -> int:
    # Linux reports KiB, macOS reports bytes.
    return maxrss // 1024 if sys.platform == "darwin" else maxrss


def _read_proc_tree_rss_kib(root_pid: int, page_kib: int) -> int:
    """Sum of the RSS of ``root_pid`` and all its live descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss_pages: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue  # the process went away meanwhile
        # Fields after "(comm)": state ppid ... ; rss is field 24 overall.
        rest = stat[stat.rfind(")") + 2 :].split()
        pid = int(entry)
        children.setdefault(int(rest[1]), []).append(pid)
        rss_pages[pid] = int(rest[21])
    total = 0
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        total += rss_pages.get(pid, 0)
        stack.extend(children.get(pid, ()))
    return total * page_kib


class TreeRssSampler(threading.Thread):
    """Polls the summed RSS of a process tree (catches multi-process scanners).

    The sum double-counts pages shared after fork(), so it is an upper bound.
    """

    def __init__(self, root_pid: int, interval_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.interval_s = interval_s
        self.peak_kib = 0
        self._stop_event = threading.Event()
        self._page_kib = os.sysconf("SC_PAGE_SIZE") // 1024

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak_kib = max(self.peak_kib, _read_proc_tree_rss_kib(self.root_pid, self._page_kib))
            self._stop_event.wait(self.interval_s)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak_kib


def run_measured(
    label: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | None = None,
    sample_tree_rss: bool = False,
) -> Measurement:
    """Run ``argv`` as a child process; return its wall time and peak RSS.

    ``env`` adds to (``None``: removes from) this process's environment.
    ``ru_maxrss`` from ``os.wait4`` covers the child and any descendants it reaped
    (the largest single process, not the sum); ``sample_tree_rss`` adds a polled sum.
    stdout/stderr go to temporary files so a chatty child cannot block on a pipe.
    """
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=full_env, cwd=cwd)
        except OSError as exc:
            raise BenchError(f"{label}: cannot start {shlex.join(argv)}: {exc}") from exc
        sampler = TreeRssSampler(proc.pid) if sample_tree_rss and sys.platform == "linux" else None
        if sampler is not None:
            sampler.start()
        _, status, rusage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        tree_peak = sampler.stop() if sampler is not None else None
        proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen the child is reaped
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", errors="replace")
        stderr = err.read().decode("utf-8", errors="replace")
    return Measurement(
        label=label,
        argv=list(argv),
        wall_s=wall,
        max_rss_kib=_rusage_maxrss_kib(rusage.ru_maxrss),
        returncode=proc.returncode,
        tree_rss_peak_kib=tree_peak,
        stdout=stdout,
        stderr=stderr,
    )


def best_of(runs: Sequence[Measurement]) -> Measurement:
    """The fastest run, reported with the largest peak RSS seen over all runs."""
    best = min(runs, key=lambda m: m.wall_s)
    worst_rss = max(m.max_rss_kib for m in runs)
    tree_peaks = [m.tree_rss_peak_kib for m in runs if m.tree_rss_peak_kib is not None]
    return Measurement(
        label=best.label,
        argv=best.argv,
        wall_s=best.wall_s,
        max_rss_kib=worst_rss,
        returncode=best.returncode,
        tree_rss_peak_kib=max(tree_peaks) if tree_peaks else None,
        stdout=best.stdout,
        stderr=best.stderr,
    )


def _tail(text: str, lines: int = 15) -> str:
    tail = text.strip().splitlines()[-lines:]
    return "\n".join("    " + line for line in tail) if tail else "    (empty)"


def _check_exit(m: Measurement, ok: frozenset[int] = frozenset({0})) -> None:
    if m.returncode not in ok:
        raise BenchError(
            f"{m.label}: exit code {m.returncode} (expected {sorted(ok)}) after {m.wall_s:.3f} s, "
            f"peak RSS {m.max_rss_mib:.1f} MiB, from {shlex.join(m.argv)}\n"
            f"  stderr tail:\n{_tail(m.stderr)}"
        )


# --------------------------------------------------------------------------- the commands


def find_factorygate(override: str | None) -> list[str]:
    """The factorygate command: --factorygate, else next to sys.executable, else on PATH."""
    if override:
        return shlex.split(override)
    beside = Path(sys.executable).parent / "factorygate"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    on_path = shutil.which("factorygate")
    if on_path:
        return [on_path]
    raise BenchError(
        f"factorygate not found next to {sys.executable} nor on PATH; "
        "install the package (pip install -e .) or pass --factorygate CMD"
    )


def ensure_checkov(venv: Path, spec: str) -> list[str]:
    """Return the checkov command from ``venv``, creating the venv on first use.

    Checkov pins/downgrades many shared packages, so it never goes into the project venv.
    """
    checkov = venv / "bin" / "checkov"
    if checkov.is_file():
        return [str(checkov)]
    python = venv / "bin" / "python"
    print(f"[bench] creating Checkov venv at {venv} (first use; takes about a minute)", file=sys.stderr)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(python), "-m", "pip", "install", "--quiet", spec],
    ]
    for step in steps:
        print(f"[bench]   $ {shlex.join(step)}", file=sys.stderr)
        result = subprocess.run(step, check=False)
        if result.returncode != 0:
            raise BenchError(f"checkov venv setup failed (exit {result.returncode}): {shlex.join(step)}")
    if not checkov.is_file():
        raise BenchError(f"pip installed {spec!r} but {checkov} does not exist")
    return [str(checkov)]


def python_has_c_yaml(python: str) -> bool:
    probe = "import yaml, sys; sys.exit(0 if yaml.__with_libyaml__ and hasattr(yaml, 'CSafeLoader') else 1)"
    result = subprocess.run([python, "-c", probe], capture_output=True, check=False)
    return result.returncode == 0


def warm_page_cache(root: Path) -> tuple[int, int]:
    """Read every file under ``root`` once so no measured command pays for cold disk reads."""
    files = size = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            try:
                size += len(Path(dirpath, name).read_bytes())
                files += 1
            except OSError:
                continue
    return files, size


def measure_startup(label: str, argv: list[str], env: Mapping[str, str | None] | None = None) -> Measurement:
    runs = [run_measured(label, argv, env=env) for _ in range(3)]
    for m in runs:
        _check_exit(m)
    best = best_of(runs)
    best.stdout = best.stdout.strip()
    return best


def measure_floor(
    python: str, corpus: Path, repeat: int, sample_tree: bool
) -> tuple[Measurement, dict[str, Any], list[Measurement]]:
    argv = [python, str(PARSE_FLOOR_SCRIPT), str(corpus)]
    runs: list[Measurement] = []
    for _ in range(repeat):
        m = run_measured("parse floor (CSafeLoader)", argv, sample_tree_rss=sample_tree)
        _check_exit(m)
        runs.append(m)
    best = best_of(runs)
    try:
        counts: dict[str, Any] = json.loads(best.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as exc:
        raise BenchError(f"parse floor printed no JSON summary: {best.stdout[-500:]!r}") from exc
    return best, counts, runs


FACTORYGATE_JOBS: list[str] = []  # ["--jobs", "N"] when the bench is given --jobs


def factorygate_scan_argv(cmd: list[str], corpus: Path, report: Path, kustomize: str) -> list[str]:
    # --kustomize never reads the same files Checkov's kubernetes framework and the parse floor read;
    # --kustomize auto also runs `kubectl kustomize` on every kustomization directory (a different input).
    argv = [*cmd, "scan", str(corpus), "--format", "json", "--output", str(report), "--kustomize", kustomize]
    if FRAMEWORK[0] == "dockerfile":
        argv = [*cmd, "scan", str(corpus), "--format", "json", "--output", str(report), "--type", "dockerfile"]
    return argv + FACTORYGATE_JOBS


def warm_up_factorygate(cmd: list[str], corpus: Path, ok_exit: frozenset[int], kustomize: str) -> None:
    """One untimed scan: compiles and caches factorygate's bytecode before anything is timed."""
    with tempfile.TemporaryDirectory(prefix="fg-bench-") as tmp:
        argv = factorygate_scan_argv(cmd, corpus, Path(tmp, "warmup.json"), kustomize)
        m = run_measured("factorygate scan (warm-up)", argv, env=factorygate_env())
    _check_exit(m, ok_exit)


def measure_factorygate(
    cmd: list[str], corpus: Path, repeat: int, *, sample_tree: bool, ok_exit: frozenset[int], kustomize: str
) -> tuple[Measurement, int, list[Measurement]]:
    runs: list[Measurement] = []
    findings = -1
    with tempfile.TemporaryDirectory(prefix="fg-bench-") as tmp:
        for i in range(repeat):
            report = Path(tmp, f"report-{i}.json")
            argv = factorygate_scan_argv(cmd, corpus, report, kustomize)
            m = run_measured("factorygate scan", argv, env=factorygate_env(), sample_tree_rss=sample_tree)
            _check_exit(m, ok_exit)
            runs.append(m)
            findings = count_findings(report)
    return best_of(runs), findings, runs


def count_findings(report: Path) -> int:
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(f"factorygate wrote no readable JSON report at {report}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
        raise BenchError(f"factorygate JSON report at {report} has no 'findings' list")
    return len(doc["findings"])


def measure_checkov(cmd: list[str], corpus: Path, sample_tree: bool) -> tuple[Measurement, dict[str, int]]:
    # --quiet drops the passed_checks list from the JSON (the summary still counts them),
    # which keeps the report (and checkov's serialisation work) small; stdout is the report.
    framework = FRAMEWORK[0]
    argv = [*cmd, "-d", str(corpus), "--framework", framework, "--quiet", "--compact", "-o", "json"]
    m = run_measured(f"checkov -d ({framework})", argv, env=CHECKOV_ENV, sample_tree_rss=sample_tree)
    # checkov exits 1 when any check failed; anything else is a crash.
    _check_exit(m, frozenset({0, 1}))
    return m, checkov_summary(m.stdout)


def checkov_summary(stdout: str) -> dict[str, int]:
    """Add up the ``summary`` blocks of checkov's JSON (one dict, or a list per framework)."""
    try:
        doc = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise BenchError(f"checkov printed no JSON report: {stdout[:300]!r}") from exc
    reports = doc if isinstance(doc, list) else [doc]
    totals = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 0}
    for report in reports:
        summary = report.get("summary", {}) if isinstance(report, dict) else {}
        for key in totals:
            value = summary.get(key, 0)
            totals[key] += value if isinstance(value, int) else 0
    return totals


# --------------------------------------------------------------------------- reporting


@dataclass
class Results:
    corpus: str
    repeat: int
    rows: dict[str, Measurement] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def ratios(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        fg = self.rows.get("factorygate")
        floor = self.rows.get("floor")
        checkov = self.rows.get("checkov")
        if fg and checkov:
            speedup = checkov.wall_s / fg.wall_s
            out["speedup_vs_checkov"] = {
                "value": round(speedup, 2),
                "target": f">= {TARGET_SPEEDUP_VS_CHECKOV:g}x",
                "met": speedup >= TARGET_SPEEDUP_VS_CHECKOV,
            }
            out["rss_factorygate_over_checkov"] = {
                "value": round(fg.max_rss_kib / checkov.max_rss_kib, 3),
                "target": None,
                "met": None,
            }
        if fg and floor:
            ratio = fg.wall_s / floor.wall_s
            out["factorygate_over_parse_floor"] = {
                "value": round(ratio, 3),
                "target": f"<= {TARGET_FLOOR_RATIO:g}x",
                "met": ratio <= TARGET_FLOOR_RATIO,
            }
        if fg:
            out["factorygate_peak_rss_mib"] = {
                "value": round(fg.max_rss_mib, 1),
                "target": f"< {TARGET_FACTORYGATE_RSS_MB:g} MiB",
                "met": fg.max_rss_mib < TARGET_FACTORYGATE_RSS_MB,
            }
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus,
            "repeat": self.repeat,
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "python_executable": sys.executable,
            },
            "measurements": {key: m.summary() for key, m in self.rows.items()},
            "details": self.details,
            "ratios": self.ratios(),
            "extra": self.extra,
            "skipped": self.skipped,
            "errors": self.errors,
        }


def _mark(met: bool | None) -> str:
    return "" if met is None else ("PASS" if met else "MISS")


def print_report(res: Results) -> None:
    print()
    print(f"corpus: {res.corpus}   (repeat={res.repeat}: best wall time, largest peak RSS)")
    show_tree = any(m.tree_rss_peak_kib is not None for m in res.rows.values())
    header = f"{'command':<28} {'wall s':>9} {'peak RSS MiB':>13}"
    if show_tree:
        header += f" {'tree RSS MiB':>13}"
    header += "  documents / findings"
    print(header)
    print("-" * len(header))
    for key, m in res.rows.items():
        line = f"{m.label:<28} {m.wall_s:>9.3f} {m.max_rss_mib:>13.1f}"
        if show_tree:
            tree = "-" if m.tree_rss_peak_kib is None else f"{m.tree_rss_peak_kib / 1024:.1f}"
            line += f" {tree:>13}"
        line += f"  {res.details.get(key, '')}"
        print(line)
    for name in res.skipped:
        print(f"{name:<28} {'skipped':>9}")
    ratios = res.ratios()
    if ratios:
        print()
    fg, floor, checkov = res.rows.get("factorygate"), res.rows.get("floor"), res.rows.get("checkov")
    if "speedup_vs_checkov" in ratios and fg and checkov:
        r = ratios["speedup_vs_checkov"]
        print(
            f"speed-up vs Checkov (checkov / factorygate wall): {r['value']:8.2f}x   "
            f"target {r['target']:<10} {_mark(r['met'])}"
        )
    if "factorygate_over_parse_floor" in ratios and fg and floor:
        r = ratios["factorygate_over_parse_floor"]
        print(
            f"factorygate / parse floor wall:                   {r['value']:8.2f}x   "
            f"target {r['target']:<10} {_mark(r['met'])}"
        )
    if "factorygate_peak_rss_mib" in ratios and fg:
        r = ratios["factorygate_peak_rss_mib"]
        vs = ""
        if checkov:
            vs = f" vs Checkov {checkov.max_rss_mib:.1f} MiB ({ratios['rss_factorygate_over_checkov']['value']:.2f}x)"
        print(f"factorygate peak RSS: {r['value']:.1f} MiB{vs}   target {r['target']} {_mark(r['met'])}")
    for err in res.errors:
        print(f"\nERROR: {err}", file=sys.stderr)


# --------------------------------------------------------------------------- main


def _exit_codes(text: str) -> frozenset[int]:
    try:
        codes = frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from exc
    if not codes:
        raise argparse.ArgumentTypeError("no exit codes given")
    return codes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Wall time and peak RSS of factorygate scan vs the YAML parse floor vs Checkov.",
    )
    p.add_argument("--corpus", type=Path, default=None, help=f"directory to scan (default: {DEFAULT_CORPUS})")
    p.add_argument(
        "--framework",
        choices=("kubernetes", "dockerfile"),
        default="kubernetes",
        help=f"what to compare: Kubernetes manifests (with the YAML parse floor) or Dockerfiles "
        f"(default corpus {DEFAULT_DOCKER_CORPUS}, no parse floor)",
    )
    p.add_argument(
        "--factorygate",
        metavar="CMD",
        default=None,
        help="factorygate command (shell-split; default: next to sys.executable, else PATH)",
    )
    p.add_argument(
        "--checkov",
        metavar="CMD",
        default=None,
        help="checkov command (shell-split); default: the bench venv's checkov",
    )
    p.add_argument(
        "--checkov-venv",
        type=Path,
        default=DEFAULT_CHECKOV_VENV,
        help=f"Checkov's own venv, created on first use (default: {DEFAULT_CHECKOV_VENV})",
    )
    p.add_argument(
        "--checkov-spec",
        default="checkov",
        help="pip requirement used to create the Checkov venv (default: checkov)",
    )
    p.add_argument(
        "--kustomize",
        choices=("never", "auto"),
        default="never",
        help="factorygate's --kustomize mode (default never: the same files Checkov and the floor read)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="factorygate's --jobs (default: factorygate's own default, the CPUs available)",
    )
    p.add_argument("--skip-checkov", action="store_true", help="do not run Checkov")
    p.add_argument("--skip-factorygate", action="store_true", help="do not run factorygate")
    p.add_argument(
        "--floor-python",
        default=sys.executable,
        help="python (with PyYAML + libyaml) that runs the parse floor (default: this python)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run factorygate and the parse floor N times and report the best (default: 1)",
    )
    p.add_argument(
        "--factorygate-ok-exit",
        metavar="CODES",
        type=_exit_codes,
        default=FACTORYGATE_OK_EXIT_CODES,
        help="comma-separated exit codes of factorygate scan that count as success (default: 0,1)",
    )
    p.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the untimed factorygate warm-up scan that fills its bytecode cache",
    )
    p.add_argument(
        "--tree-rss",
        action="store_true",
        help="also poll the summed RSS of each command's whole process tree (Linux)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", default=None, help="also write the results as JSON")
    p.add_argument("--fail-on-targets", action="store_true", help="exit 3 when a measured target is missed")
    args = p.parse_args(argv)
    FRAMEWORK[0] = args.framework
    if args.corpus is None:
        args.corpus = DEFAULT_DOCKER_CORPUS if args.framework == "dockerfile" else DEFAULT_CORPUS
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    if args.jobs is not None:
        FACTORYGATE_JOBS[:] = ["--jobs", str(args.jobs)]
    if not args.corpus.is_dir():
        p.error(f"--corpus: not a directory: {args.corpus}")
    return args


def _step(res: Results, name: str, func: Callable[[], None]) -> None:
    """Run one benchmark step; a failure is recorded and the other steps still run."""
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    try:
        func()
    except BenchError as exc:
        res.errors.append(str(exc))
        print(f"[bench] {name} FAILED: {str(exc).splitlines()[0]}", file=sys.stderr)


def floor_step(args: argparse.Namespace, corpus: Path, res: Results) -> None:
    if not python_has_c_yaml(args.floor_python):
        raise BenchError(
            f"{args.floor_python} cannot import PyYAML with libyaml (yaml.CSafeLoader); "
            "install PyYAML there or pass --floor-python"
        )
    m, counts, runs = measure_floor(args.floor_python, corpus, args.repeat, args.tree_rss)
    res.rows["floor"] = m
    res.extra["floor_runs_wall_s"] = [round(r.wall_s, 4) for r in runs]
    res.extra["floor_counts"] = counts
    res.details["floor"] = f"{counts['documents']} docs in {counts['files']} files, {counts['errors']} parse errors"


def factorygate_step(args: argparse.Namespace, corpus: Path, res: Results) -> None:
    cmd = find_factorygate(args.factorygate)
    if not args.no_warmup:
        print("[bench]   untimed warm-up scan (bytecode cache) ...", file=sys.stderr, flush=True)
        warm_up_factorygate(cmd, corpus, args.factorygate_ok_exit, args.kustomize)
    v = measure_startup("factorygate --version", [*cmd, "--version"], env=factorygate_env())
    res.rows["factorygate_version"] = v
    res.details["factorygate_version"] = f"best of 3: {_last_line(v.stdout)}"
    m, findings, runs = measure_factorygate(
        cmd,
        corpus,
        args.repeat,
        sample_tree=args.tree_rss,
        ok_exit=args.factorygate_ok_exit,
        kustomize=args.kustomize,
    )
    res.rows["factorygate"] = m
    res.extra["factorygate_runs_wall_s"] = [round(r.wall_s, 4) for r in runs]
    res.extra["factorygate_findings"] = findings
    res.details["factorygate"] = f"{findings} findings (exit {m.returncode})"


def checkov_step(args: argparse.Namespace, corpus: Path, res: Results) -> None:
    venv, spec = args.checkov_venv, args.checkov_spec
    cmd = shlex.split(args.checkov) if args.checkov else ensure_checkov(venv, spec)
    v = measure_startup("checkov --version", [*cmd, "--version"], env=CHECKOV_ENV)
    res.rows["checkov_version"] = v
    res.details["checkov_version"] = f"best of 3: {_last_line(v.stdout)}"
    res.extra["checkov_version"] = _last_line(v.stdout)
    m, summary = measure_checkov(cmd, corpus, args.tree_rss)
    res.rows["checkov"] = m
    res.extra["checkov_summary"] = summary
    res.details["checkov"] = (
        f"{summary['failed']} failed / {summary['passed']} passed checks, "
        f"{summary['resource_count']} resources, {summary['parsing_errors']} parse errors"
    )


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    corpus: Path = args.corpus.resolve()
    res = Results(corpus=str(corpus), repeat=args.repeat)

    files, size = warm_page_cache(corpus)
    print(f"[bench] page cache warmed: {files} files, {size / 1e6:.1f} MB under {corpus}", file=sys.stderr)

    if args.framework == "kubernetes":
        _step(res, "parse floor", lambda: floor_step(args, corpus, res))
    if args.skip_factorygate:
        res.skipped.append("factorygate")
        print("[bench] factorygate skipped (--skip-factorygate)", file=sys.stderr)
    else:
        _step(res, "factorygate", lambda: factorygate_step(args, corpus, res))
    if args.skip_checkov:
        res.skipped.append("checkov")
        print("[bench] Checkov skipped (--skip-checkov)", file=sys.stderr)
    else:
        _step(res, "checkov (takes minutes)", lambda: checkov_step(args, corpus, res))

    # Keep a stable row order in the table: start-up rows first, then the scans.
    order = ["factorygate_version", "checkov_version", "floor", "factorygate", "checkov"]
    res.rows = {key: res.rows[key] for key in order if key in res.rows}
    print_report(res)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res.to_json(), indent=2) + "\n", encoding="utf-8")
        print(f"\n[bench] results written to {args.json}", file=sys.stderr)

    if res.errors:
        return 1
    if args.fail_on_targets and any(r["met"] is False for r in res.ratios().values()):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
