"""Report formats: JSON against its shipped schema, SARIF against the OASIS schema, JUnit, text."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from tests.conftest import ROOT, scan_text
from tests.release_inputs import MANIFESTS

from factorygate.catalog import load_catalog
from factorygate.engine import ScanResult
from factorygate.render import Format, render


@pytest.fixture(scope="module")
def result() -> ScanResult:
    return scan_text(MANIFESTS)


def rendered(result: ScanResult, fmt: Format) -> str:
    out = io.StringIO()
    render(result, fmt, out)
    return out.getvalue()


def test_json_report_validates_against_the_shipped_schema(result: ScanResult) -> None:
    schema = json.loads(resources.files("factorygate.schemas").joinpath("report-v1.schema.json").read_text())
    doc = json.loads(rendered(result, Format.JSON))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)
    statuses = {f["status"] for f in doc["findings"]}
    assert statuses == {"pass", "fail", "waived"}
    privileged = next(f for f in doc["findings"] if f["check"] == "k8s-not-privileged")
    assert privileged["status"] == "fail"
    assert privileged["requirements"] == ["CICDG-2.3", "PSS-privileged"]
    assert privileged["nist"] == ["AC-6 (10)"]
    assert privileged["cci"] == ["CCI-002235"]
    assert privileged["location"] == {
        "file": "t.yaml", "line": 18, "path": "spec.template.spec.containers[0].securityContext.privileged",
        "source": None,
    }  # fmt: skip
    assert privileged["resource"] == {"kind": "Deployment", "namespace": "shop", "name": "api", "apiVersion": "apps/v1"}
    assert privileged["container"] == "api"
    waived = next(f for f in doc["findings"] if f["status"] == "waived")
    assert waived["waiver"]["source"] == "inline"
    assert doc["summary"]["exit_code"] == 1
    by_id = {r["id"]: r for r in doc["requirements"]}
    assert by_id["CICDG-2.3"]["status"] == "fail"
    assert by_id["CICDG-2.16"]["status"] == "not_reviewed"
    assert by_id["CICDG-2.1"]["status"] == "not_reviewed"  # Dockerfile/image only
    assert by_id["CK-microsegmentation"]["status"] == "pass"
    assert len(doc["requirements"]) == len(load_catalog().requirements)  # every requirement, always


def test_sarif_validates_against_the_oasis_schema(result: ScanResult) -> None:
    schema = json.loads((ROOT / "tests/data/schemas/sarif-schema-2.1.0.json").read_text())
    doc = json.loads(rendered(result, Format.SARIF))
    jsonschema.Draft4Validator(schema).validate(doc)
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert doc["version"] == "2.1.0"
    for res in run["results"]:
        # what GitHub code scanning needs: a known rule, a message, a file and a real line
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        region = res["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1
        assert res["message"]["text"]
        assert res["partialFingerprints"]
    privileged = next(r for r in run["results"] if r["ruleId"] == "k8s-not-privileged")
    assert privileged["locations"][0]["physicalLocation"]["region"]["startLine"] == 18
    assert privileged["level"] == "error"
    waived = [r for r in run["results"] if r.get("suppressions")]
    assert [w["suppressions"][0]["kind"] for w in waived] == ["inSource"]
    assert all(float(r["properties"]["security-severity"]) > 0 for r in rules)
    assert not [r for r in run["results"] if r["properties"]["status"] == "pass"]


def test_junit_counts_and_elements(result: ScanResult) -> None:
    root = ET.fromstring(rendered(result, Format.JUNIT))
    assert root.tag == "testsuites"
    total = int(root.get("tests", "0"))
    assert total == len(result.findings)
    assert int(root.get("failures", "0")) == sum(f.status.value == "fail" for f in result.findings)
    assert int(root.get("skipped", "0")) == 1
    suite = next(s for s in root.iter("testsuite") if s.get("name") == "k8s-not-privileged")
    case = suite.find("testcase")
    assert case is not None
    failure = case.find("failure")
    assert failure is not None
    assert case.get("line") == "18"
    assert "CICDG-2.3" in (failure.text or "")


def test_text_report_groups_by_resource_and_ends_with_a_summary(result: ScanResult) -> None:
    text = rendered(result, Format.TEXT)
    assert "Deployment shop/api" in text
    assert "k8s-not-privileged" in text
    assert "inline waiver: J. Smith" in text
    summary = text.strip().splitlines()[-1]
    assert summary.startswith("FAIL")
    assert summary.endswith("exit 1")
    assert "waived" in summary
    assert "not reviewed" in summary


def test_text_report_keeps_manifest_text_inert() -> None:
    hostile = MANIFESTS.replace("name: api\n  namespace", 'name: "[bold red]x[/]\\e[2J\\nfake"\n  namespace')
    text = rendered(scan_text(hostile), Format.TEXT)
    assert "[bold red]x[/]" in text
    assert "\x1b" not in text  # no terminal control sequences from manifests
    assert "\nfake" not in text


def test_text_report_colours_only_when_asked(result: ScanResult) -> None:
    out = io.StringIO()
    render(result, Format.TEXT, out, color=True)
    assert "\x1b[31m" in out.getvalue()
    assert "\x1b[" not in rendered(result, Format.TEXT)


def test_renderers_handle_errors_and_empty_results(tmp_path: Path) -> None:
    broken = scan_text("apiVersion: v1\nkind: Pod\nmetadata: {name: [unclosed\n")
    assert broken.exit_code() == 2
    for fmt in Format:
        out = rendered(broken, fmt)
        assert "t.yaml" in out
    empty = scan_text("# nothing here\n")
    assert empty.exit_code() == 0
    doc = json.loads(rendered(empty, Format.JSON))
    assert doc["findings"] == []
    assert {r["status"] for r in doc["requirements"]} == {"not_applicable", "not_reviewed"}


def test_json_finding_lines_equal_the_plain_encoding_of_each_finding(tmp_path: Path) -> None:
    """The fast line encoder (shared parts encoded once per check/resource) writes exactly what
    encoding finding_dict() would: every status, waivers (policy and inline) and missing fields."""
    from factorygate.catalog import load_catalog
    from factorygate.engine import KUBERNETES_KINDS, Engine
    from factorygate.inputs.kubernetes import ReadOptions
    from factorygate.model import Status
    from factorygate.policy import load_policy
    from factorygate.render.json_report import _ENCODE, _LineEncoder, finding_dict
    from factorygate.scan import scan_paths

    opts = ReadOptions(kustomize=False, max_bytes=1 << 20, kinds=KUBERNETES_KINDS, input_type="auto")
    policy = load_policy(str(ROOT / "examples" / "policy.yaml"))
    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    paths = [str(ROOT / "tests" / "fixtures"), str(ROOT / "examples"), str(tmp_path)]
    result = scan_paths(Engine(load_catalog(), policy), paths, opts)
    assert {f.status for f in result.findings} >= {Status.PASS, Status.FAIL, Status.WAIVED, Status.ERROR}
    encoder = _LineEncoder()
    for f in result.findings:
        assert encoder.line(f) == _ENCODE(finding_dict(f))
