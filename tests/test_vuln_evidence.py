"""Vulnerability findings (`vulns gate` decisions, `vulns merge` lists) in the evidence formats, alone
(`vulns gate -f ckl`) and next to scan reports (`factorygate report`). Structural, golden-free."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT, run_cli
from tests.evidence_schemas import errors, hdf_validator, oscal_validator

from factorygate.render.evidence import VULN_CCI
from factorygate.vulns.commands import evidence_text

DATA = ROOT / "tests" / "data" / "vulns"
TRIVY, GRYPE = str(DATA / "trivy-app.json"), str(DATA / "grype-app.json")
HOSTILE = "<x a='1'>&amp;\x00\x1b]]>\u202e"


def _finding(vid: str, name: str, severity: str, status: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": vid,
        "aliases": [],
        "package": {"name": name, "version": "1.0", "type": "deb", "purl": f"pkg:deb/debian/{name}@1.0", "path": None},
        "severity": severity,
        "fixed_versions": ["1.1"],
        "fix_published": None,
        "scanners": ["grype", "trivy"],
        "status": status,
        "justification": None,
        "blocking": [],
    }
    doc.update(extra)
    return doc


def _justification(expires: str, approver: str = "I. Approver (ISSM)") -> dict[str, str]:
    return {
        "status": "risk_accepted",
        "at": "just.yaml:4",
        "expires": expires,
        "author": "A. Developer",
        "approver": approver,
    }


def decision(go: bool = False) -> dict[str, Any]:
    findings = [
        _finding("CVE-2024-0001", "zlib1g", "critical", "unjustified", blocking=["critical (unjustified)"]),
        _finding(
            "CVE-2024-0002",
            f"pkg{HOSTILE}",
            "high",
            "justified",
            justification=_justification("2099-01-01", approver=f"Bob {HOSTILE}"),
        ),
        _finding("CVE-2024-0003", "libfoo", "low", "unjustified"),
        _finding(
            "CVE-2024-0004",
            "libbar",
            "high",
            "expired",
            justification=_justification("2020-01-01"),
            blocking=["high (justification expired 2020-01-01)"],
        ),
    ]
    if go:
        findings = [f for f in findings if not f["blocking"]]
    return {
        "schema": "factorygate.dev/vuln-gate-decision/v1",
        "decision": "go" if go else "no-go",
        "go": go,
        "as_of": "2026-11-23",
        "reasons": [] if go else ["CVE-2024-0001 in zlib1g 1.0: critical (unjustified)"],
        "policy": {"block_severities": ["critical", "high"], "max_fix_age_days": None, "require_two_scanners": False},
        "inputs": [{"path": "trivy.json", "digest": "sha256:00"}],
        "scanners": ["grype", "trivy"],
        "summary": {},
        "findings": findings,
    }


def ckl_vulns(text: str) -> dict[str, tuple[dict[str, list[str]], ET.Element]]:
    root = ET.fromstring(text)
    out = {}
    for v in root.iter("VULN"):
        attrs: dict[str, list[str]] = {}
        for sd in v.findall("STIG_DATA"):
            attrs.setdefault(sd.findtext("VULN_ATTRIBUTE") or "", []).append(sd.findtext("ATTRIBUTE_DATA") or "")
        out[attrs["Vuln_Num"][0]] = (attrs, v)
    return out


def test_ckl_has_one_vuln_per_finding_with_status_ccis_and_justification() -> None:
    vulns = ckl_vulns(evidence_text(decision(), "ckl"))
    assert len(vulns) == 5  # the gate decision and four findings; no catalog requirement
    _gate_attrs, gate = vulns["vulns-gate"]
    assert gate.findtext("STATUS") == "Open"
    assert "NO-GO" in (gate.findtext("FINDING_DETAILS") or "")
    blocking_attrs, blocking = vulns["CVE-2024-0001 zlib1g 1.0"]
    assert blocking.findtext("STATUS") == "Open"
    assert blocking_attrs["CCI_REF"] == list(VULN_CCI)
    assert blocking_attrs["IA_Controls"] == ["RA-5 d, SI-2 a"]
    assert blocking_attrs["Severity"] == ["high"]  # critical is CAT I
    assert "blocks the release" in (blocking.findtext("FINDING_DETAILS") or "")
    assert "Upgrade zlib1g to 1.1" in blocking_attrs["Fix_Text"][0]
    justified = next(v for k, (_, v) in vulns.items() if k.startswith("CVE-2024-0002"))
    assert justified.findtext("STATUS") == "Open"  # risk accepted is not fixed
    comments = justified.findtext("COMMENTS") or ""
    assert "approved by Bob" in comments
    assert "expires 2099-01-01" in comments
    assert "A. Developer" in comments
    assert "risk_accepted" in comments
    low_attrs, low = vulns["CVE-2024-0003 libfoo 1.0"]
    assert low.findtext("STATUS") == "Open"
    assert low_attrs["Severity"] == ["low"]
    assert "not blocking" in (low.findtext("FINDING_DETAILS") or "")
    _, expired = vulns["CVE-2024-0004 libbar 1.0"]
    assert "EXPIRED on 2020-01-01" in (expired.findtext("COMMENTS") or "")


def test_hostile_strings_in_a_vulnerability_are_escaped_in_the_ckl() -> None:
    text = evidence_text(decision(), "ckl")
    assert "\x00" not in text
    assert "\x1b" not in text
    assert "<x a=" not in text  # markup is escaped
    vulns = ckl_vulns(text)  # well-formed
    key = next(k for k in vulns if k.startswith("CVE-2024-0002"))
    assert "pkg<x a='1'>&amp;\\x00\\x1b]]>\u202e" in key
    assert "Bob <x a='1'>" in (vulns[key][1].findtext("COMMENTS") or "")


def test_cklb_statuses() -> None:
    doc = json.loads(evidence_text(decision(), "cklb"))
    rules = {r["group_id"]: r for s in doc["stigs"] for r in s["rules"]}
    assert rules["CVE-2024-0001 zlib1g 1.0"]["status"] == "open"
    assert rules["CVE-2024-0001 zlib1g 1.0"]["ccis"] == list(VULN_CCI)
    justified = next(r for k, r in rules.items() if k.startswith("CVE-2024-0002"))
    assert "2099-01-01" in justified["comments"]
    assert HOSTILE in justified["comments"]


@pytest.mark.parametrize("fmt", ["oscal", "oscal-poam"])
def test_oscal_validates_and_justified_findings_are_approved_deviations(fmt: str) -> None:
    doc = json.loads(evidence_text(decision(), fmt))
    assert errors(oscal_validator(), doc) == []
    if fmt == "oscal-poam":
        assert len(doc["plan-of-action-and-milestones"]["poam-items"]) == 5
        return
    result = doc["assessment-results"]["results"][0]
    controls = [c["control-id"] for c in result["reviewed-controls"]["control-selections"][0]["include-controls"]]
    assert controls == ["ra-5", "si-2"]
    by_req = {next(p["value"] for p in f["props"] if p["name"] == "requirement"): f for f in result["findings"]}
    assert by_req["CVE-2024-0001 zlib1g 1.0"]["target"]["target-id"] == "ra-5_smt.d"
    risks = {r["uuid"]: r for r in result["risks"]}
    justified = next(f for k, f in by_req.items() if k.startswith("CVE-2024-0002"))
    risk = risks[justified["related-risks"][0]["risk-uuid"]]
    assert risk["status"] == "deviation-approved"
    assert risk["deadline"] == "2099-01-01T23:59:59Z"
    assert risks[by_req["CVE-2024-0001 zlib1g 1.0"]["related-risks"][0]["risk-uuid"]]["status"] == "open"


def test_hdf_validates_with_waiver_data_and_impacts() -> None:
    doc = json.loads(evidence_text(decision(), "hdf"))
    assert errors(hdf_validator(), doc) == []
    assert [p["name"] for p in doc["profiles"]] == ["factorygate-vulns"]
    controls = {c["id"]: c for c in doc["profiles"][0]["controls"]}
    critical = controls["CVE-2024-0001 zlib1g 1.0"]
    assert critical["impact"] == 0.9
    assert critical["tags"]["nist"] == ["RA-5 d", "SI-2 a"]
    assert [r["status"] for r in critical["results"]] == ["failed"]
    assert controls["CVE-2024-0003 libfoo 1.0"]["impact"] == 0.3
    justified = next(c for k, c in controls.items() if k.startswith("CVE-2024-0002"))
    assert justified["waiver_data"]["expiration_date"] == "2099-01-01"
    assert HOSTILE in justified["waiver_data"]["justification"]
    assert "waiver_data" not in controls["CVE-2024-0004 libbar 1.0"]  # expired: not applied


def test_a_merge_list_is_open_findings_without_a_gate_row(tmp_path: Path) -> None:
    merged = tmp_path / "merged.json"
    assert run_cli("vulns", "merge", TRIVY, GRYPE, "-o", str(merged)).returncode == 0
    doc = json.loads(merged.read_text())
    vulns = ckl_vulns(evidence_text(doc, "ckl"))
    assert len(vulns) == len(doc["findings"])
    assert "vulns-gate" not in vulns
    assert {v.findtext("STATUS") for _, v in vulns.values()} == {"Open"}
    hdf = json.loads(evidence_text(doc, "hdf"))
    assert errors(hdf_validator(), hdf) == []


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("release")
    (d / "Dockerfile").write_text("FROM nginx:1.25\nEXPOSE 22\n")
    done = run_cli("scan", "Dockerfile", "--as-of", "2026-11-23", "-f", "json", "-o", "scan.json", cwd=d)
    assert done.returncode == 1, done.stderr
    done = run_cli("vulns", "gate", TRIVY, GRYPE, "--as-of", "2026-11-23", "-o", "gate.json", cwd=d)
    assert done.returncode == 1, done.stderr
    (d / "go.json").write_text(json.dumps(decision(go=True)))
    return d


def test_vulns_gate_renders_evidence_formats(release: Path) -> None:
    done = run_cli("vulns", "gate", TRIVY, GRYPE, "--as-of", "2026-11-23", "-f", "ckl", "-o", "g.ckl", cwd=release)
    assert done.returncode == 1
    assert "NO-GO" in done.stderr
    vulns = ckl_vulns((release / "g.ckl").read_text())
    gate = json.loads((release / "gate.json").read_text())
    assert len(vulns) == len(gate["findings"]) + 1


def test_report_combines_a_scan_and_a_gate_decision(release: Path) -> None:
    done = run_cli("report", "scan.json", "gate.json", "-f", "ckl", "-o", "r.ckl", cwd=release)
    assert done.returncode == 1, done.stderr
    assert "vulnerability gate NO-GO" in done.stderr
    root = ET.fromstring((release / "r.ckl").read_text())
    stigids = [si.findtext("SID_DATA") for si in root.iter("SI_DATA") if si.findtext("SID_NAME") == "stigid"]
    assert "DISA_Container_Image_Creation_and_Deployment_Guide" in stigids
    assert "factorygate_Release_Vulnerabilities" in stigids
    for fmt in ("oscal", "oscal-poam", "hdf"):
        done = run_cli("report", "scan.json", "gate.json", "-f", fmt, "-o", f"r.{fmt}", cwd=release)
        assert done.returncode == 1, done.stderr
        doc = json.loads((release / f"r.{fmt}").read_text())
        assert errors(hdf_validator() if fmt == "hdf" else oscal_validator(), doc) == []
    hdf = json.loads((release / "r.hdf").read_text())
    assert {"factorygate-cicdg", "factorygate-vulns"} <= {p["name"] for p in hdf["profiles"]}
    # JSON keeps the decision, and `report` reads it back from there
    done = run_cli("report", "scan.json", "gate.json", "-f", "json", "-o", "r.json", cwd=release)
    assert done.returncode == 1
    combined = json.loads((release / "r.json").read_text())
    assert [v["decision"] for v in combined["vulnerabilities"]] == ["no-go"]
    done = run_cli("report", "r.json", "-f", "hdf", "-o", "again.hdf", cwd=release)
    assert done.returncode == 1

    def statuses(doc: dict[str, Any]) -> list[tuple[str, list[str]]]:
        return [(c["id"], [r["status"] for r in c["results"]]) for p in doc["profiles"] for c in p["controls"]]

    assert statuses(json.loads((release / "again.hdf").read_text())) == statuses(hdf)
    done = run_cli("report", "scan.json", "gate.json", "-f", "html", "-o", "r.html", cwd=release)
    assert done.returncode == 1
    page = (release / "r.html").read_text()
    assert 'id="vulnerabilities"' in page
    assert "NO-GO" in page
    assert "CVE-2023-45853" in page


def test_report_html_escapes_a_hostile_package(release: Path) -> None:
    done = run_cli("report", "go.json", "-f", "html", "-o", "go.html", cwd=release)
    assert done.returncode == 0, done.stderr
    decided = json.loads((release / "go.json").read_text())
    (release / "hostile.json").write_text(json.dumps({**decision(), "findings": decision()["findings"][1:2]}))
    done = run_cli("report", "hostile.json", "-f", "html", "-o", "h.html", cwd=release)
    page = (release / "h.html").read_text()
    assert "<x a=" not in page
    assert "&lt;x a=" in page
    assert decided["decision"] == "go"


def test_report_exit_code_follows_the_gate(release: Path) -> None:
    done = run_cli("report", "go.json", "-f", "ckl", "-o", "go.ckl", cwd=release)
    assert done.returncode == 0, done.stderr
    done = run_cli("report", "gate.json", "-f", "ckl", "-o", "nogo.ckl", cwd=release)
    assert done.returncode == 1, done.stderr


def test_a_bad_vulnerability_document_is_one_line(release: Path) -> None:
    bad = decision()
    bad["findings"][0]["severity"] = "catastrophic"
    (release / "bad.json").write_text(json.dumps(bad))
    done = run_cli("report", "scan.json", "bad.json", cwd=release)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "bad.json" in line]
    assert len(lines) == 1
    assert "severity" in lines[0]


def test_vulns_scan_renders_evidence_formats(release: Path) -> None:
    """The built-in scanner's result is a merge list: the same evidence path, no gate row."""
    osv = ROOT / "tests" / "data" / "osv"
    sbom, mirror = str(osv / "sbom.cdx.json"), str(osv / "mirror")
    done = run_cli("vulns", "scan", sbom, "--osv", mirror, "-f", "hdf", "-o", "scan.hdf.json", cwd=release)
    assert done.returncode == 0, done.stderr
    doc = json.loads((release / "scan.hdf.json").read_text())
    assert errors(hdf_validator(), doc) == []
    controls = [c for p in doc["profiles"] for c in p["controls"]]
    assert controls
    assert all("RA-5 d" in c["tags"]["nist"] for c in controls)
    assert not any(c["id"] == "vulns-gate" for c in controls)
