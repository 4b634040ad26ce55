"""Bounds on output: hostile input must not turn into unbounded findings."""

from __future__ import annotations

import pytest
from tests.conftest import ROOT, scan_text

from factorygate import engine
from factorygate.model import Status

POD = "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i}}}\nspec:\n  containers: [{containers}]\n"


def test_a_workload_with_too_many_containers_is_an_error_not_a_flood() -> None:
    result = scan_text(POD.format(i=0, containers=",".join(["{}"] * 40_000)))
    assert [f.status for f in result.findings] == [Status.ERROR]
    assert "40,000 containers" in result.findings[0].message
    assert result.findings[0].resource is not None
    assert result.exit_code() == 2


def test_the_limit_is_inclusive() -> None:
    result = scan_text(POD.format(i=0, containers=",".join(["{name: c}"] * engine.MAX_CONTAINERS_PER_WORKLOAD)))
    assert not [f for f in result.findings if f.status is Status.ERROR]


def test_scan_stops_evaluating_at_the_findings_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "MAX_FINDINGS", 50)
    text = "---\n".join(POD.format(i=i, containers="{name: c, image: x}") for i in range(10))
    result = scan_text(text)
    errors = [f for f in result.findings if f.status is Status.ERROR]
    evaluated = {f.resource.name for f in result.findings if f.status is not Status.ERROR and f.resource}
    assert errors
    assert all("limit of 50 findings" in e.message for e in errors)
    assert len(evaluated) + len(errors) == 10  # every pod is either evaluated or named in an error
    assert result.exit_code() == 2


def test_a_crashing_check_is_an_error_finding_never_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from factorygate import checks

    def boom(*_: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setitem(checks.WORKLOAD_CHECKS, "k8s-liveness-probe", boom)  # type: ignore[arg-type]
    result = scan_text(POD.format(i=0, containers="{name: c, image: x}"))
    crashed = [f for f in result.findings if f.check == "k8s-liveness-probe"]
    assert [f.status for f in crashed] == [Status.ERROR]
    assert "check crashed: RuntimeError: bug" in crashed[0].message
    assert crashed[0].requirements == ("CICDG-3.8",)
    assert result.exit_code() == 2
    assert any(f.status is Status.PASS for f in result.findings)  # the other checks still ran


def test_an_engine_that_records_no_passes_keeps_every_other_finding() -> None:
    """Admission sets record_passes = False: the failures, waivers and errors are exactly a scan's."""
    from factorygate.catalog import load_catalog
    from factorygate.engine import KUBERNETES_KINDS, Engine
    from factorygate.inputs.kubernetes import ReadOptions, load_unit, plan_inputs
    from factorygate.model import Status
    from factorygate.policy import load_policy

    opts = ReadOptions(kustomize=False, max_bytes=1 << 20, kinds=KUBERNETES_KINDS, input_type="kubernetes")
    policy = load_policy(str(ROOT / "examples" / "policy.yaml"))
    items = [x for u in plan_inputs([str(ROOT / "tests" / "fixtures" / "checks")], opts) for x in load_unit(u, opts)]
    full = Engine(load_catalog(), policy).evaluate(iter(items)).findings
    lean_engine = Engine(load_catalog(), policy)
    lean_engine.record_passes = False
    lean = lean_engine.evaluate(iter(items)).findings
    assert any(f.status is Status.PASS for f in full)
    assert not any(f.status is Status.PASS for f in lean)
    assert lean == [f for f in full if f.status is not Status.PASS]
