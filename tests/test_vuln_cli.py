"""`factorygate vulns merge|gate` end to end on the fixture reports (real Trivy/Grype/OSV shapes)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ROOT, run_cli

DATA = ROOT / "tests" / "data"
TRIVY, GRYPE = str(DATA / "vulns" / "trivy-app.json"), str(DATA / "vulns" / "grype-app.json")


def test_merge_counts_a_vulnerability_seen_by_both_scanners_once(tmp_path: Path) -> None:
    out = tmp_path / "merged.json"
    proc = run_cli("vulns", "merge", TRIVY, GRYPE, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["scanners"] == ["grype", "trivy"]
    keys = [(f["id"], f["package"]["name"]) for f in doc["findings"]]
    assert len(keys) == len(set(keys))
    both = [f for f in doc["findings"] if f["scanners"] == ["grype", "trivy"]]
    assert both
    assert doc["only_in"]["trivy"]
    assert doc["only_in"]["grype"]
    assert doc["severity_conflicts"]


def test_gate_is_no_go_without_justifications_and_go_when_each_blocker_is_justified(tmp_path: Path) -> None:
    decision = tmp_path / "decision.json"
    proc = run_cli("vulns", "gate", TRIVY, GRYPE, "-o", str(decision), "--as-of", "2026-11-23")
    assert proc.returncode == 1
    assert "NO-GO" in proc.stderr
    doc = json.loads(decision.read_text())
    blocked = sorted({r.split(" in ")[0].strip() for r in proc.stderr.splitlines()[1:] if " in " in r})
    assert blocked
    assert {i["path"] for i in doc["inputs"]} == {TRIVY, GRYPE}
    entries = "".join(
        f"  - vulnerability: {vid}\n    status: risk_accepted\n"
        "    justification: not reachable from the service's entry points, fix scheduled\n"
        "    author: A. Developer\n    approver: I. Approver (ISSM)\n"
        "    approved: 2026-11-01\n    expires: 2027-02-01\n"
        for vid in blocked
    )
    just = tmp_path / "justifications.yaml"
    just.write_text(f"apiVersion: factorygate.dev/v1\nkind: Justifications\njustifications:\n{entries}")
    proc = run_cli("vulns", "gate", TRIVY, GRYPE, "-j", str(just), "-o", str(decision), "--as-of", "2026-11-23")
    assert proc.returncode == 0, proc.stderr
    assert "GO" in proc.stderr
    proc = run_cli("vulns", "gate", TRIVY, GRYPE, "-j", str(just), "-o", str(decision), "--as-of", "2027-03-01")
    assert proc.returncode == 1  # the justifications expired
    vex = tmp_path / "vex.json"
    proc = run_cli("vulns", "vex", TRIVY, GRYPE, "-j", str(just), "-o", str(vex), "--as-of", "2026-11-23")
    assert proc.returncode == 0, proc.stderr
    statements = json.loads(vex.read_text())["statements"]
    assert {s["vulnerability"]["name"] for s in statements} == set(blocked)
    assert {s["status"] for s in statements} == {"affected"}  # risk_accepted: affected, with the action taken
    proc = run_cli("vulns", "vex", TRIVY, GRYPE, "-j", str(just), "-f", "cyclonedx", "-o", str(vex))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(vex.read_text())["bomFormat"] == "CycloneDX"


def test_bad_inputs_exit_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "trivy.json"
    bad.write_text('{"SchemaVersion": 2, "Results": [')
    proc = run_cli("vulns", "merge", str(bad))
    assert proc.returncode == 2
    assert str(bad) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
