"""Scanning paths, on one core or several.

Each input unit (a file, a kustomization, stdin) is loaded and evaluated independently, so units
are spread over worker processes; the per-unit results come back in input order and the engine
then runs the checks that need the whole set (NetworkPolicy coverage). The output is the same
whatever the number of workers.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, islice

from factorygate.engine import Engine, PartialScan, ScanResult
from factorygate.inputs.kubernetes import ReadOptions, Unit, load_unit, plan_inputs
from factorygate.wire import Packed, pack, unpack

# Below this many units, starting workers costs more than it saves.
PARALLEL_MIN_UNITS = 16
# Workers take batches as they become free; batches bounded in bytes keep both busy to the end when a
# few inputs are much larger than the rest (CRD bundles of megabytes next to 2 kB manifests). 32 small
# files a batch: fewer round trips and smaller results to pickle (measured: 8 -> 32 took 0.36 s to
# 0.33 s on the Dockerfile corpus and 1.89 s to 1.81 s on the Kubernetes one).
_BATCH_UNITS = 32
_BATCH_BYTES = 256 * 1024
_KUSTOMIZATION_WEIGHT = 1024 * 1024  # rendering runs kubectl: count it as a large input
_PARENT_POLL_S = 0.25  # how soon a worker notices that its parent is gone

# Set in the parent before the pool forks; workers inherit it (nothing is pickled on the way in
# but the units).
_WORKER_STATE: tuple[Engine, ReadOptions] | None = None


def default_jobs() -> int:
    """Worker processes to use: the CPUs this process may run on, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def _init_worker(parent: int) -> None:
    """Pool initializer. A worker whose parent is killed (a CI timeout, SIGKILL) must not live on.

    A daemon thread polls the parent pid (an orphan is re-parented); that costs nothing per task
    and, unlike prctl(PR_SET_PDEATHSIG) through ctypes, no import on the way to the first batch."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="factorygate-parent-watch", daemon=True).start()
    # A worker allocates a finding per check and subject and keeps them until its batch is sent:
    # the cyclic collector walking them again and again was 4% of the work (counted with callgrind).
    # Nothing a check builds holds a reference cycle, and a worker lives for one scan: reference
    # counting frees what it drops.
    gc.disable()


def _evaluate_batch(batch: Sequence[Unit]) -> Packed:
    assert _WORKER_STATE is not None  # noqa: S101 - set before the fork, by construction
    engine, opts = _WORKER_STATE
    return pack(engine.evaluate(chain.from_iterable(load_unit(u, opts) for u in batch)))


def _weight(unit: Unit) -> int:
    if unit.kind == "kustomization":
        return _KUSTOMIZATION_WEIGHT
    if unit.data is not None:
        return len(unit.data)
    try:
        return os.stat(unit.name).st_size if unit.kind in ("file", "dockerfile") else 0
    except OSError:
        return 0


def _batches(units: Iterable[Unit]) -> Iterator[Sequence[Unit]]:
    """Consecutive units, cut when a batch reaches _BATCH_UNITS units or _BATCH_BYTES bytes."""
    batch: list[Unit] = []
    size = 0
    for unit in units:
        batch.append(unit)
        size += _weight(unit)
        if len(batch) >= _BATCH_UNITS or size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def scan_paths(
    engine: Engine,
    paths: Sequence[str],
    opts: ReadOptions,
    jobs: int = 1,
    on_part: Callable[[PartialScan], None] | None = None,
) -> ScanResult:
    """Scan files, directories and ``-`` with ``jobs`` worker processes (1: in this process).

    Inputs are planned (directories walked) while the workers already evaluate the first batches.
    ``on_part`` sees each part's results in input order as they arrive, while later parts are still
    being evaluated (the JSON report encodes its lines there)."""
    global _WORKER_STATE  # noqa: PLW0603 - inherited by forked workers, see above
    started = time.perf_counter()
    planned = plan_inputs(paths, opts)
    head = list(islice(planned, PARALLEL_MIN_UNITS))
    subjects: set[str] = set()

    def noted(units: Iterable[Unit]) -> Iterator[Unit]:
        for unit in units:
            subjects.add("dockerfile" if unit.kind.startswith("dockerfile") else "manifest")
            yield unit

    units = noted(chain(head, planned))
    usable = "fork" in multiprocessing.get_all_start_methods()
    if jobs <= 1 or len(head) < PARALLEL_MIN_UNITS or not usable:
        parts = [engine.evaluate(chain.from_iterable(load_unit(u, opts) for u in units))]
        if on_part is not None:
            on_part(parts[0])
        return engine.finish(parts, list(paths), started, subjects or {"manifest"})
    engine.finding_budget = max(1, engine.finding_budget // jobs)  # each worker counts its own findings
    _WORKER_STATE = (engine, opts)
    parts = []
    try:
        gc.freeze()  # modules, catalog, policy: left out of collections while the scan runs (no copy-on-write)
        with multiprocessing.get_context("fork").Pool(jobs, _init_worker, (os.getpid(),)) as pool:
            # the pool's task thread walks the directories (this generator) as the workers ask for work
            for packed in pool.imap(_evaluate_batch, _batches(units)):
                part = unpack(packed)
                parts.append(part)
                if on_part is not None:
                    on_part(part)
    finally:
        _WORKER_STATE = None
        gc.unfreeze()
    return engine.finish(parts, list(paths), started, subjects or {"manifest"})
