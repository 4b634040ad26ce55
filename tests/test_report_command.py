"""`factorygate report`: JSON reports of one release combined into one report, in any format."""

from __future__ import annotations

import datetime as dt
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from tests.conftest import run_cli, scan_text
from tests.evidence_schemas import errors, hdf_validator, oscal_validator
from tests.release_inputs import DEPLOYMENT as MANIFESTS

from factorygate.catalog import load_catalog
from factorygate.cli import FORMATS
from factorygate.combine import ReportError, combine_reports, finding_from_dict
from factorygate.engine import requirement_statuses
from factorygate.model import Status
from factorygate.render import Format, render
from factorygate.render.json_report import finding_dict

DOCKERFILE = "FROM nginx:1.25\nRUN apt-get update && apt-get install -y openssh-server\nEXPOSE 22\n"


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A release directory: its manifests and Dockerfile, each scanned to its own JSON report, and one
    scan of both together to compare with."""
    d = tmp_path_factory.mktemp("release")
    (d / "app.yaml").write_text(MANIFESTS)
    (d / "Dockerfile").write_text(DOCKERFILE)
    for args, name in (
        (["app.yaml"], "manifests.json"),
        (["Dockerfile"], "dockerfile.json"),
        (["app.yaml", "Dockerfile"], "both.json"),
    ):
        done = run_cli("scan", *args, "--as-of", "2026-01-01", "-f", "json", "-o", name, "--jobs", "1", cwd=d)
        assert done.returncode == 1, done.stderr
    return d


def load(path: Path) -> dict[str, object]:
    doc = json.loads(path.read_text())
    assert isinstance(doc, dict)
    return doc


def test_report_equals_one_scan_of_everything(release: Path) -> None:
    done = run_cli("report", "manifests.json", "dockerfile.json", "-f", "json", "-o", "combined.json", cwd=release)
    assert done.returncode == 1, done.stderr
    combined, both = load(release / "combined.json"), load(release / "both.json")

    def findings(doc: dict[str, object]) -> list[str]:
        return sorted(json.dumps(f, sort_keys=True) for f in doc["findings"])  # type: ignore[attr-defined]

    def statuses(doc: dict[str, object]) -> dict[str, str]:
        return {r["id"]: r["status"] for r in doc["requirements"]}  # type: ignore[attr-defined]

    assert findings(combined) == findings(both)
    assert statuses(combined) == statuses(both)
    assert "not_reviewed" in statuses(combined).values()
    assert "fail" in statuses(combined).values()
    assert combined["inputs"] == ["app.yaml", "Dockerfile"]
    summary, expected = combined["summary"], both["summary"]
    assert isinstance(summary, dict)
    assert isinstance(expected, dict)
    for key in ("fail", "pass", "waived", "error", "blocking", "exit_code", "resources", "workloads", "dockerfiles"):
        assert summary[key] == expected[key], key
    assert summary["subjects"] == ["dockerfile", "manifest"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_report_renders_every_format(release: Path, fmt: str) -> None:
    out = f"combined.{fmt}"
    done = run_cli(
        "report",
        "manifests.json",
        "dockerfile.json",
        "-f",
        fmt,
        "-o",
        out,
        "--evidence-time",
        "2026-01-02T03:04:05Z",
        "--asset-host-name",
        "shop-1.4.2",
        cwd=release,
    )
    assert done.returncode == 1, done.stderr
    text = (release / out).read_text()
    assert "openssh-server" in text or "ssh" in text.lower()  # the Dockerfile's finding is in
    assert "privileged" in text  # and the manifest's
    if fmt == "ckl":
        root = ET.fromstring(text.encode())
        assert root.findtext("ASSET/HOST_NAME") == "shop-1.4.2"
        status = {
            v.find("STIG_DATA/ATTRIBUTE_DATA").text: v.findtext("STATUS")  # type: ignore[union-attr]
            for v in root.iter("VULN")
        }
        assert status["CICDG-2.1"] == "Open"
        assert status["PSS-privileged"] == "Open"
    elif fmt in ("oscal", "oscal-poam"):
        assert errors(oscal_validator(), json.loads(text)) == []
        assert "2026-01-02T03:04:05Z" in text
    elif fmt == "hdf":
        assert errors(hdf_validator(), json.loads(text)) == []


def test_bad_and_foreign_files_are_one_line_errors_and_the_rest_is_read(release: Path) -> None:
    (release / "foreign.json").write_text(json.dumps({"version": "2.1.0", "runs": []}))
    (release / "broken.json").write_text('{"tool": {"name": "factorygate"')
    (release / "text.txt").write_bytes(b"\xff\xfe not text")
    done = run_cli(
        "report",
        "manifests.json",
        "foreign.json",
        "broken.json",
        "missing.json",
        "text.txt",
        "dockerfile.json",
        "-f",
        "cklb",
        "-o",
        "out.cklb",
        cwd=release,
    )
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("factorygate: error:")]
    assert len(lines) == 4
    assert lines[0].startswith("factorygate: error: foreign.json: not read: not a factorygate JSON report")
    assert lines[1].startswith("factorygate: error: broken.json: not read: not JSON (line 1")
    assert lines[2].startswith("factorygate: error: missing.json: not read: cannot read")
    assert lines[3] == "factorygate: error: text.txt: not read: not UTF-8 text"
    doc = json.loads((release / "out.cklb").read_text())
    rules = {r["group_id"]: r for s in doc["stigs"] for r in s["rules"]}
    assert rules["CICDG-2.1"]["status"] == "open"  # from dockerfile.json, read after the bad ones
    assert rules["PSS-privileged"]["status"] == "open"  # from manifests.json


def test_text_report_to_the_terminal_still_names_the_bad_file(release: Path) -> None:
    (release / "foreign2.json").write_text("[]")
    done = run_cli("report", "manifests.json", "foreign2.json", "--color", "never", cwd=release)
    assert done.returncode == 2
    assert done.stderr.count("foreign2.json") == 1
    assert "factorygate: error: foreign2.json: not read: not a factorygate JSON report" in done.stderr


def test_threshold_and_exit_codes(release: Path) -> None:
    assert run_cli("report", "manifests.json", "-f", "json", "-o", "x.json", cwd=release).returncode == 1
    # only low findings remain below a critical threshold? the privileged finding is critical: still 1
    assert (
        run_cli(
            "report", "manifests.json", "--threshold", "critical", "-f", "json", "-o", "x.json", cwd=release
        ).returncode
        == 1
    )
    clean = release / "clean.json"
    doc = load(release / "manifests.json")
    doc["findings"] = [f for f in doc["findings"] if f["status"] == "pass"]  # type: ignore[attr-defined]
    clean.write_text(json.dumps(doc))
    assert run_cli("report", "clean.json", "-f", "json", "-o", "x.json", cwd=release).returncode == 0


def test_the_same_report_twice_counts_once(release: Path) -> None:
    catalog = load_catalog()
    once = combine_reports([str(release / "manifests.json")], catalog)
    twice = combine_reports([str(release / "manifests.json"), str(release / "manifests.json")], catalog)
    assert twice.findings == once.findings
    assert twice.stats.resources == once.stats.resources


def test_a_1_0_report_without_subjects_still_gives_not_applicable(release: Path, tmp_path: Path) -> None:
    """Reports written before schema 1.1 have no summary.subjects: the kinds come from counts and checks."""
    doc = load(release / "manifests.json")
    summary = doc["summary"]
    assert isinstance(summary, dict)
    del summary["subjects"]
    doc["schema_version"] = "1.0"
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    catalog = load_catalog()
    new_result = combine_reports([str(release / "manifests.json")], catalog)
    old_result = combine_reports([str(old)], catalog)
    assert old_result.stats.subjects == new_result.stats.subjects == {"manifest"}
    assert requirement_statuses(old_result) == requirement_statuses(new_result)


def test_findings_round_trip_through_the_json_report() -> None:
    result = scan_text(MANIFESTS)
    assert result.findings
    assert any(f.waiver is not None for f in result.findings)
    for f in result.findings:
        assert finding_from_dict(json.loads(json.dumps(finding_dict(f)))) == f


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ({"status": "maybe"}, "findings[0].status 'maybe' is not one of fail, pass, waived, error"),
        ({"location": {"file": "a", "line": 0}}, "findings[0].location.line is not a positive integer"),
        ({"resource": {"kind": "Pod"}}, "findings[0].resource.name is not a string"),
        (
            {
                "waiver": {
                    "justification": "j",
                    "approver": "a",
                    "expires": "2099-01-01",
                    "source": "policy",
                    "expired": "no",
                }
            },
            "findings[0].waiver.expired is not a boolean",
        ),
        ({"requirements": "CICDG-3.7"}, "findings[0].requirements is not a list of strings"),
    ],
)
def test_invalid_findings_are_named(tmp_path: Path, broken: dict[str, object], problem: str) -> None:
    result = scan_text(MANIFESTS)
    out = io.StringIO()
    render(result, Format.JSON, out)
    doc = json.loads(out.getvalue())
    doc["findings"] = [{**doc["findings"][0], **broken}]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    combined = combine_reports([str(path)], load_catalog())
    assert [f.message for f in combined.findings] == [f"not read: {problem}"]
    assert combined.exit_code() == 2
    with pytest.raises(ReportError, match="findings\\[0\\]"):
        finding_from_dict(doc["findings"][0], "findings[0]")


def test_as_of_reevaluates_waiver_expiry(release: Path) -> None:
    """The manifests' liveness-probe waiver expires 2099-01-01: as of 2099-06-01 it no longer applies."""
    catalog = load_catalog()
    path = [str(release / "manifests.json")]
    before = combine_reports(path, catalog)
    after = combine_reports(path, catalog, as_of=dt.date(2099, 6, 1))
    waived = [f for f in before.findings if f.status is Status.WAIVED]
    assert len(waived) == 1
    assert waived[0].check == "k8s-liveness-probe"
    again = [f for f in after.findings if f.check == "k8s-liveness-probe"]
    assert [f.status for f in again] == [Status.FAIL]
    assert again[0].waiver is not None
    assert again[0].waiver.expired
    assert again[0].message.endswith("(waiver by J. Smith expired on 2099-01-01)")
    assert requirement_statuses(before)["CICDG-3.8"] == "waived"
    assert requirement_statuses(after)["CICDG-3.8"] == "fail"
    assert after.as_of == dt.date(2099, 6, 1)


def test_scan_writes_a_checklist_with_the_asset_options(release: Path) -> None:
    done = run_cli(
        "scan",
        "app.yaml",
        "-f",
        "ckl",
        "-o",
        "scan.ckl",
        "--asset-host-name",
        "shop",
        "--asset-role",
        "Member Server",
        "--asset-tech-area",
        "Application Review",
        "--asset-target-key",
        "4242",
        "--classification",
        "CUI",
        cwd=release,
    )
    assert done.returncode == 1, done.stderr
    root = ET.fromstring((release / "scan.ckl").read_bytes())
    assert root.findtext("ASSET/HOST_NAME") == "shop"
    assert root.findtext("ASSET/ROLE") == "Member Server"
    assert root.findtext("ASSET/TECH_AREA") == "Application Review"
    assert root.findtext("ASSET/TARGET_KEY") == "4242"
    bad = run_cli("scan", "app.yaml", "-f", "ckl", "--asset-tech-area", "Kubernetes", cwd=release)
    assert bad.returncode == 2
    assert "not a STIG Viewer technology area" in bad.stderr
    bad_time = run_cli("scan", "app.yaml", "-f", "oscal", "--evidence-time", "yesterday", cwd=release)
    assert bad_time.returncode == 2
    assert "not an ISO 8601 date-time" in bad_time.stderr
