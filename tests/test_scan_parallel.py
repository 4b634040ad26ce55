"""Scanning with worker processes gives exactly the result of scanning in one process."""

from __future__ import annotations

from pathlib import Path

import pytest

from factorygate import scan
from factorygate.catalog import load_catalog
from factorygate.engine import KUBERNETES_KINDS, Engine, ScanResult
from factorygate.inputs.kubernetes import ReadOptions
from factorygate.policy import default_policy_text, parse_policy
from factorygate.render.json_report import finding_dict

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app-{i}, namespace: ns-{ns}}}
spec:
  template:
    metadata: {{labels: {{app: app-{i}}}}}
    spec:
      containers:
        - name: c
          image: registry1.dso.mil/ironbank/app:{i}
          securityContext: {{runAsNonRoot: {nonroot}}}
"""
POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: ns-0}
spec: {podSelector: {}}
"""


def _tree(root: Path) -> None:
    for i in range(60):
        sub = root / f"team-{i % 5}"
        sub.mkdir(exist_ok=True)
        (sub / f"app-{i:02d}.yaml").write_text(DEPLOY.format(i=i, ns=i % 3, nonroot="true" if i % 2 else "false"))
    (root / "team-4" / "zz-netpol.yaml").write_text(POLICY)  # covers workloads read by other workers
    (root / "team-2" / "broken.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: [\n")
    (root / "big.yaml").write_text("---\n".join(DEPLOY.format(i=100 + k, ns=1, nonroot="true") for k in range(300)))


def _scan(root: Path, jobs: int) -> ScanResult:
    catalog = load_catalog()
    policy = parse_policy(default_policy_text(), "p", set(catalog.checks))
    opts = ReadOptions(kinds=KUBERNETES_KINDS)
    return scan.scan_paths(Engine(catalog, policy), [str(root)], opts, jobs=jobs)


def test_parallel_scan_equals_sequential_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "_BATCH_UNITS", 8)  # several batches for the workers to share
    _tree(tmp_path)
    one = _scan(tmp_path, 1)
    two = _scan(tmp_path, 2)
    assert len(list(scan._batches(list(scan.plan_inputs([str(tmp_path)], ReadOptions()))))) > 2
    assert [finding_dict(f) for f in two.findings] == [finding_dict(f) for f in one.findings]
    assert (two.stats.workloads, two.stats.resources, two.stats.input_errors) == (360, 361, 1)
    assert (one.stats.workloads, one.stats.resources, one.stats.input_errors) == (360, 361, 1)
    covered = [f for f in two.findings if f.check == "k8s-network-policy-coverage" and f.status.value == "pass"]
    assert {f.resource.namespace for f in covered if f.resource} == {"ns-0"}
    assert two.exit_code() == one.exit_code() == 2


def test_few_inputs_stay_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text(DEPLOY.format(i=1, ns=0, nonroot="true"))

    def no_pool(*_: object, **__: object) -> None:
        raise AssertionError("a pool was started for one file")

    monkeypatch.setattr(scan.multiprocessing, "get_context", no_pool)
    assert _scan(tmp_path, 4).stats.workloads == 1


def test_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    # inputs big enough that both workers are still busy for seconds when their parent is killed
    bundle = "---\n".join(DEPLOY.format(i=k, ns=0, nonroot="true") for k in range(400))
    for i in range(2):
        (tmp_path / f"big-{i}.yaml").write_text(bundle * 150)  # ~17 MB each
    for i in range(20):
        (tmp_path / f"small-{i}.yaml").write_text(bundle)
    argv = [sys.executable, "-m", "factorygate", "scan", str(tmp_path), "--jobs", "2", "--format", "json"]
    proc = subprocess.Popen([*argv, "-o", os.devnull], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    children: list[int] = []
    while time.monotonic() < deadline and len(children) < 2:
        time.sleep(0.05)
        try:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                children = [int(x) for x in f.read().split()]
        except OSError:
            break
    if not children:
        proc.kill()
        pytest.skip("the scan finished before workers could be observed")
    time.sleep(1.5)  # let the workers reach the big files
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    end = time.monotonic() + 3
    alive = children
    while alive and time.monotonic() < end:
        time.sleep(0.05)
        alive = [c for c in children if os.path.exists(f"/proc/{c}") and "Z" not in _state(c)]
    assert not alive, f"workers {alive} outlived their parent"


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_the_wire_form_of_a_part_unpacks_to_the_same_findings(tmp_path: Path) -> None:
    """Workers send packed parts (plain tuples): the parent must get back exactly what was evaluated,
    waivers (policy and inline), input errors and check crashes included."""
    import pickle

    from tests.conftest import ROOT

    from factorygate.inputs.kubernetes import load_unit, plan_inputs
    from factorygate.policy import load_policy
    from factorygate.wire import pack, unpack

    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    waive = "# factorygate:waive df-non-root-user runs as root on purpose"
    (tmp_path / "Dockerfile").write_text(f"FROM alpine\n{waive}\nUSER root\n")
    catalog = load_catalog()
    engine = Engine(catalog, load_policy(str(ROOT / "examples" / "policy.yaml"), set(catalog.checks)))
    opts = ReadOptions(kustomize=False, max_bytes=1 << 20, kinds=KUBERNETES_KINDS, input_type="auto")
    paths = [str(ROOT / "examples"), str(tmp_path)]
    units = list(plan_inputs(paths, opts))
    part = engine.evaluate(f for u in units for f in load_unit(u, opts))
    statuses = {f.status.value for f in part.findings}
    assert {"pass", "fail", "waived", "error"} <= statuses
    back = unpack(pickle.loads(pickle.dumps(pack(part), protocol=pickle.HIGHEST_PROTOCOL)))  # noqa: S301 - our own bytes
    assert back.findings == part.findings
    assert [(type(f), type(f.location), type(f.resource), type(f.waiver)) for f in back.findings] == [
        (type(f), type(f.location), type(f.resource), type(f.waiver)) for f in part.findings
    ]
    assert back.stats == part.stats
    assert len(back.contexts) == len(part.contexts)
