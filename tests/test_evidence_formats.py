"""Evidence formats for an Authorizing Official: STIG Viewer CKL and CKLB, OSCAL assessment results and
POA&M, Heimdall HDF. Golden files (regenerate with FACTORYGATE_REGEN_GOLDEN=1), the vendored OSCAL and
HDF schemas, the CKL element order, and hostile strings in every format."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT
from tests.evidence_schemas import INSPECJS_PARSER, errors, hdf_validator, oscal_validator
from tests.release_inputs import MANIFESTS_WITH_EXPIRED_WAIVER as MANIFESTS

from factorygate import __version__
from factorygate.catalog import load_catalog
from factorygate.engine import KUBERNETES_KINDS, Engine, ScanResult, ScanStats
from factorygate.inputs.dockerfile import Dockerfile, parse_dockerfile
from factorygate.inputs.kubernetes import manifests_from_bytes
from factorygate.model import Finding, Location, Resource, Severity, Status, Waiver
from factorygate.policy import default_policy_text, parse_policy
from factorygate.render import Format, render
from factorygate.render.evidence import Asset, EvidenceOptions, oscal_control, xml_safe

GOLDEN = ROOT / "tests" / "data" / "golden" / "evidence"
REGEN = os.environ.get("FACTORYGATE_REGEN_GOLDEN") == "1"
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
AS_OF = dt.date(2026, 1, 1)
OPTIONS = EvidenceOptions(
    asset=Asset(host_name="shop-release-1.4.2", host_fqdn="shop.apps.example.mil", tech_area="Application Review"),
    now=NOW,
)
EVIDENCE_FORMATS = (Format.CKL, Format.CKLB, Format.OSCAL, Format.OSCAL_POAM, Format.HDF)
SUFFIX = {
    Format.CKL: "ckl",
    Format.CKLB: "cklb",
    Format.OSCAL: "oscal.json",
    Format.OSCAL_POAM: "oscal-poam.json",
    Format.HDF: "hdf.json",
}

DOCKERFILE = b"FROM nginx:1.25\nRUN apt-get update && apt-get install -y openssh-server\nEXPOSE 22\nUSER 1000\n"
HOSTILE = "x<y>&z\"q'r]]></script>\x00\x07\x1b\x7f \u00e9\u6f22\U0001f600 --> <![CDATA[ &amp;"

# STIG Viewer's order (checklist schema 2.5 as STIG Viewer 2 writes it)
CKL_ASSET = [
    "ROLE",
    "ASSET_TYPE",
    "MARKING",
    "HOST_NAME",
    "HOST_IP",
    "HOST_MAC",
    "HOST_FQDN",
    "TARGET_COMMENT",
    "TECH_AREA",
    "TARGET_KEY",
    "WEB_OR_DATABASE",
    "WEB_DB_SITE",
    "WEB_DB_INSTANCE",
]
CKL_SI = [
    "version",
    "classification",
    "customname",
    "stigid",
    "description",
    "filename",
    "releaseinfo",
    "title",
    "uuid",
    "notice",
    "source",
]
CKL_ATTRIBUTES = [
    "Vuln_Num",
    "Severity",
    "Group_Title",
    "Rule_ID",
    "Rule_Ver",
    "Rule_Title",
    "Vuln_Discuss",
    "IA_Controls",
    "Check_Content",
    "Fix_Text",
    "False_Positives",
    "False_Negatives",
    "Documentable",
    "Mitigations",
    "Potential_Impact",
    "Third_Party_Tools",
    "Mitigation_Control",
    "Responsibility",
    "Security_Override_Guidance",
    "Check_Content_Ref",
    "Weight",
    "Class",
    "STIGRef",
    "TargetKey",
    "STIG_UUID",
]
CKL_TAIL = ["STATUS", "FINDING_DETAILS", "COMMENTS", "SEVERITY_OVERRIDE", "SEVERITY_JUSTIFICATION"]


def release_scan() -> ScanResult:
    """A fixed release: one Deployment (one valid and one expired waiver), a NetworkPolicy, a Dockerfile."""
    catalog = load_catalog()
    policy = parse_policy(default_policy_text(), "policy.yaml", set(catalog.checks))
    engine = Engine(catalog, policy, as_of=AS_OF)
    df = parse_dockerfile(DOCKERFILE, "build/Dockerfile")
    assert isinstance(df, Dockerfile)
    parts = [
        engine.evaluate(manifests_from_bytes(MANIFESTS.encode(), "deploy/app.yaml", kinds=KUBERNETES_KINDS)),
        engine.evaluate([df]),
    ]
    result = engine.finish(parts, ["deploy/app.yaml", "build/Dockerfile"], 0.0, {"manifest", "dockerfile"})
    result.stats.seconds = 0.0
    return result


def hostile_result() -> ScanResult:
    """Findings carrying hostile text in every field a renderer copies."""
    catalog = load_catalog()
    policy = parse_policy(default_policy_text(), "policy.yaml", set(catalog.checks))
    meta = catalog.checks["k8s-not-privileged"]
    common: dict[str, Any] = {
        "check": meta.id,
        "severity": Severity.CRITICAL,
        "requirements": meta.requirements,
        "nist": meta.nist,
        "cci": meta.cci,
        "title": meta.title,
        "remediation": meta.remediation,
    }
    failed = Finding(
        status=Status.FAIL,
        message=f"runs privileged {HOSTILE}",
        location=Location(f"dir/{HOSTILE}.yaml", 7, "spec.template.spec.containers[0]"),
        resource=Resource("Deployment", f"n{HOSTILE}", "shop"),
        container=f"c{HOSTILE}",
        **common,
    )
    waived = Finding(
        status=Status.WAIVED,
        message="runs privileged",
        location=Location("dir/b.yaml", 3, "spec.template.spec.containers[0]"),
        resource=Resource("Deployment", "b", "shop"),
        container="b",
        waiver=Waiver(f"because {HOSTILE}", f"approver {HOSTILE}", "2099-01-01", "inline"),
        **common,
    )
    stats = ScanStats(resources=2, workloads=2, subjects={"manifest"})
    return ScanResult([failed, waived], catalog, policy, [f"dir/{HOSTILE}.yaml"], stats, AS_OF)


def rendered(result: ScanResult, fmt: Format, options: EvidenceOptions = OPTIONS) -> str:
    out = io.StringIO()
    render(result, fmt, out, evidence=options)
    return out.getvalue()


@pytest.fixture(scope="module")
def release() -> ScanResult:
    return release_scan()


@pytest.fixture(scope="module")
def outputs(release: ScanResult) -> dict[Format, str]:
    return {fmt: rendered(release, fmt) for fmt in EVIDENCE_FORMATS}


def ckl_vulns(text: str) -> dict[str, ET.Element]:
    root = ET.fromstring(text.encode("utf-8"))
    vulns = {}
    for vuln in root.iter("VULN"):
        data = {sd.findtext("VULN_ATTRIBUTE"): sd.findtext("ATTRIBUTE_DATA") for sd in vuln.findall("STIG_DATA")}
        vulns[data["Vuln_Num"] or ""] = vuln
    return vulns


# -- golden files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", EVIDENCE_FORMATS, ids=lambda f: f.value)
def test_golden_file(fmt: Format, outputs: dict[Format, str]) -> None:
    """Byte-for-byte against tests/data/golden/evidence (the version is normalised so a release does not
    move them; FACTORYGATE_REGEN_GOLDEN=1 rewrites them)."""
    text = outputs[fmt].replace(f"factorygate {__version__}", "factorygate VERSION")
    text = text.replace(f'"{__version__}"', '"VERSION"')
    path = GOLDEN / f"release.{SUFFIX[fmt]}"
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with FACTORYGATE_REGEN_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


def test_output_is_deterministic_but_for_the_stated_time(release: ScanResult) -> None:
    for fmt in EVIDENCE_FORMATS:
        assert rendered(release, fmt) == rendered(release_scan(), fmt)
    later = EvidenceOptions(asset=OPTIONS.asset, now=NOW + dt.timedelta(days=1))
    oscal = json.loads(rendered(release, Format.OSCAL, later))["assessment-results"]
    assert oscal["metadata"]["last-modified"] == "2026-01-03T03:04:05Z"
    assert oscal["uuid"] == json.loads(rendered(release, Format.OSCAL))["assessment-results"]["uuid"]


def test_source_date_epoch_pins_the_time(release: ScanResult, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(NOW.timestamp())))
    doc = json.loads(rendered(release, Format.HDF, EvidenceOptions()))
    assert {r["start_time"] for p in doc["profiles"] for c in p["controls"] for r in c["results"]} == {
        "2026-01-02T03:04:05Z"
    }


# -- CKL -------------------------------------------------------------------------------------------


def test_ckl_element_order_is_stig_viewers(outputs: dict[Format, str]) -> None:
    text = outputs[Format.CKL]
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!--DISA STIG Viewer :: ')
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "CHECKLIST"
    assert [c.tag for c in root] == ["ASSET", "STIGS"]
    assert [c.tag for c in root.find("ASSET") or []] == CKL_ASSET
    istigs = root.findall("STIGS/iSTIG")
    assert len(istigs) == 2
    catalog = load_catalog()
    for istig, source in zip(istigs, ("CICDG", "PSS"), strict=True):
        children = [c.tag for c in istig]
        assert children[0] == "STIG_INFO"
        assert set(children[1:]) == {"VULN"}
        si = istig.findall("STIG_INFO/SI_DATA")
        assert [s.findtext("SID_NAME") for s in si] == CKL_SI
        assert all([c.tag for c in s] in (["SID_NAME"], ["SID_NAME", "SID_DATA"]) for s in si)
        expected = [r.id for r in catalog.requirements.values() if r.source == source]
        vulns = istig.findall("VULN")
        assert [v.find("STIG_DATA/ATTRIBUTE_DATA").text for v in vulns] == expected  # type: ignore[union-attr]
        for vuln in vulns:
            tags = [c.tag for c in vuln]
            n = tags.index("STATUS")
            assert set(tags[:n]) == {"STIG_DATA"}
            assert tags[n:] == CKL_TAIL
            names = [sd.findtext("VULN_ATTRIBUTE") for sd in vuln.findall("STIG_DATA")]
            assert all([c.tag for c in sd] == ["VULN_ATTRIBUTE", "ATTRIBUTE_DATA"] for sd in vuln.findall("STIG_DATA"))
            rid = names and vuln.find("STIG_DATA/ATTRIBUTE_DATA").text  # type: ignore[union-attr]
            ccis = list(catalog.requirements[str(rid)].cci)
            assert names == CKL_ATTRIBUTES + ["CCI_REF"] * len(ccis)
            assert [sd.findtext("ATTRIBUTE_DATA") for sd in vuln.findall("STIG_DATA")][-len(ccis) :] == ccis
            assert vuln.findtext("STATUS") in {"Open", "NotAFinding", "Not_Applicable", "Not_Reviewed"}
            assert vuln.findtext("SEVERITY_OVERRIDE") == ""


def test_ckl_statuses_details_and_waivers(outputs: dict[Format, str]) -> None:
    vulns = ckl_vulns(outputs[Format.CKL])
    status = {rid: v.findtext("STATUS") for rid, v in vulns.items()}
    assert "CK-microsegmentation" not in vulns  # the checklist carries the DISA guide and the PSS only
    # privileged: open, with the failing subject's file:line and message
    assert status["PSS-privileged"] == "Open"
    details = vulns["PSS-privileged"].findtext("FINDING_DETAILS") or ""
    assert "Deployment shop/api [api] at deploy/app.yaml:20" in details
    assert "runs privileged" in details
    # the Dockerfile's SSH server: open, at its line
    assert status["CICDG-2.1"] == "Open"
    assert "build/Dockerfile:2" in (vulns["CICDG-2.1"].findtext("FINDING_DETAILS") or "")
    # a valid waiver: still Open (risk accepted, not fixed), the waiver in COMMENTS
    assert status["CICDG-3.8"] == "Open"
    comments = vulns["CICDG-3.8"].findtext("COMMENTS") or ""
    assert "approved by J. Smith, expires 2099-01-01: Startup handled by the service mesh" in comments
    assert "Waived: risk accepted, not fixed (1)" in (vulns["CICDG-3.8"].findtext("FINDING_DETAILS") or "")
    # an expired waiver is named, and its finding is a failure
    assert status["CICDG-3.9"] == "Open"
    assert "A. Jones, EXPIRED on 2020-01-01" in (vulns["CICDG-3.9"].findtext("COMMENTS") or "")
    assert "Failed (1)" in (vulns["CICDG-3.9"].findtext("FINDING_DETAILS") or "")
    # all pass: NotAFinding listing what passed; process-only: Not_Reviewed
    assert status["CICDG-3.10"] == "NotAFinding"
    assert "Passed (1)" in (vulns["CICDG-3.10"].findtext("FINDING_DETAILS") or "")
    assert status["CICDG-2.15"] == "Not_Reviewed"
    assert status["CICDG-3.3"] == "Not_Reviewed"
    assert "Process requirement" in (vulns["CICDG-2.15"].findtext("FINDING_DETAILS") or "")
    # the Dockerfile's base image comes from docker.io: open at FROM
    assert status["CICDG-2.10"] == "Open"
    assert "build/Dockerfile:1 (FROM)" in (vulns["CICDG-2.10"].findtext("FINDING_DETAILS") or "")


def test_ckl_not_applicable_when_no_subject_is_in_scope() -> None:
    catalog = load_catalog()
    policy = parse_policy(default_policy_text(), "policy.yaml", set(catalog.checks))
    items = manifests_from_bytes(
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", "cm.yaml", kinds=KUBERNETES_KINDS
    )
    result = Engine(catalog, policy, as_of=AS_OF).run(items, ["cm.yaml"])
    vulns = ckl_vulns(rendered(result, Format.CKL))
    assert vulns["CICDG-3.7"].findtext("STATUS") == "Not_Applicable"
    assert vulns["PSS-privileged"].findtext("STATUS") == "Not_Applicable"
    assert vulns["CICDG-2.1"].findtext("STATUS") == "Not_Reviewed"  # Dockerfile/image requirement
    assert "Not evaluated: the inputs of this run included no dockerfile, image" in (
        vulns["CICDG-2.1"].findtext("FINDING_DETAILS") or ""
    )


def test_ckl_error_is_not_reviewed_never_not_a_finding() -> None:
    result = hostile_result()
    meta = result.catalog.checks["k8s-read-only-root-filesystem"]
    result.findings = [
        Finding(
            check=meta.id,
            status=Status.ERROR,
            severity=Severity.MEDIUM,
            message="check crashed: KeyError: 'x'",
            location=Location("a.yaml", 1),
            requirements=meta.requirements,
            resource=Resource("Deployment", "a"),
        ),
        Finding(
            check=meta.id,
            status=Status.PASS,
            severity=Severity.MEDIUM,
            message="ok",
            location=Location("b.yaml", 1),
            requirements=meta.requirements,
            resource=Resource("Deployment", "b"),
        ),
    ]
    vuln = ckl_vulns(rendered(result, Format.CKL))["CICDG-3.7"]
    assert vuln.findtext("STATUS") == "Not_Reviewed"
    assert "Could not be evaluated (1)" in (vuln.findtext("FINDING_DETAILS") or "")
    hdf = json.loads(rendered(result, Format.HDF))
    control = next(c for p in hdf["profiles"] for c in p["controls"] if c["id"] == "CICDG-3.7")
    assert [r["status"] for r in control["results"]] == ["error", "passed"]


def test_ckl_asset_from_options(release: ScanResult) -> None:
    asset = Asset(
        host_name="h",
        host_ip="10.0.0.1",
        host_mac="aa:bb",
        host_fqdn="h.example.mil",
        role="Member Server",
        asset_type="Non-Computing",
        marking="CUI//SP-CTI",
        target_comment="release 1.4.2",
        tech_area="Application Review",
        target_key="4242",
        web_db_site="shop",
        classification="CUI",
    )
    root = ET.fromstring(rendered(release, Format.CKL, EvidenceOptions(asset=asset, now=NOW)).encode())
    got = {c.tag: c.text or "" for c in root.find("ASSET") or []}
    assert got["ROLE"] == "Member Server"
    assert got["ASSET_TYPE"] == "Non-Computing"
    assert got["HOST_NAME"] == "h"
    assert got["HOST_IP"] == "10.0.0.1"
    assert got["HOST_FQDN"] == "h.example.mil"
    assert got["MARKING"] == "CUI//SP-CTI"
    assert got["TARGET_KEY"] == "4242"
    assert got["WEB_OR_DATABASE"] == "true"
    classification = root.find("STIGS/iSTIG/STIG_INFO/SI_DATA[SID_NAME='classification']/SID_DATA")
    assert classification is not None
    assert classification.text == "CUI"
    target_keys = {
        sd.findtext("ATTRIBUTE_DATA") for sd in root.iter("STIG_DATA") if sd.findtext("VULN_ATTRIBUTE") == "TargetKey"
    }
    assert target_keys == {"4242"}
    # without a host name the first input names the asset
    default = ET.fromstring(rendered(release, Format.CKL, EvidenceOptions(now=NOW)).encode())
    assert default.findtext("ASSET/HOST_NAME") == "deploy/app.yaml"


# -- CKLB ------------------------------------------------------------------------------------------


def test_cklb_layout_matches_stig_viewer_3(outputs: dict[Format, str]) -> None:
    doc = json.loads(outputs[Format.CKLB])
    assert set(doc) == {"title", "id", "stigs", "active", "mode", "has_path", "target_data", "cklb_version"}
    assert doc["cklb_version"] == "1.0"
    assert set(doc["target_data"]) == {
        "target_type",
        "host_name",
        "ip_address",
        "mac_address",
        "fqdn",
        "comments",
        "role",
        "is_web_database",
        "technology_area",
        "web_db_site",
        "web_db_instance",
        "classification",
    }
    assert doc["target_data"]["host_name"] == "shop-release-1.4.2"
    stig_keys = {"stig_name", "display_name", "stig_id", "release_info", "version", "uuid", "reference_identifier"}
    rule_keys = {
        "uuid",
        "stig_uuid",
        "group_id",
        "group_id_src",
        "group_tree",
        "group_title",
        "rule_id",
        "rule_id_src",
        "rule_version",
        "rule_title",
        "severity",
        "weight",
        "classification",
        "discussion",
        "check_content",
        "check_content_ref",
        "fix_text",
        "false_positives",
        "false_negatives",
        "documentable",
        "mitigations",
        "potential_impacts",
        "third_party_tools",
        "mitigation_control",
        "responsibility",
        "security_override_guidance",
        "ia_controls",
        "legacy_ids",
        "ccis",
        "reference_identifier",
        "status",
        "overrides",
        "comments",
        "finding_details",
    }
    assert [s["stig_id"] for s in doc["stigs"]] == [
        "DISA_Container_Image_Creation_and_Deployment_Guide",
        "Kubernetes_Pod_Security_Standards",
    ]
    ckl = {rid: v.findtext("STATUS") for rid, v in ckl_vulns(outputs[Format.CKL]).items()}
    to_cklb = {"Open": "open", "NotAFinding": "not_a_finding", "Not_Applicable": "not_applicable"}
    to_cklb["Not_Reviewed"] = "not_reviewed"
    for stig in doc["stigs"]:
        assert set(stig) == stig_keys | {"size", "rules"}
        assert stig["size"] == len(stig["rules"])
        for rule in stig["rules"]:
            assert set(rule) == rule_keys
            assert rule["stig_uuid"] == stig["uuid"]
            assert rule["severity"] in {"low", "medium", "high"}
            assert rule["status"] == to_cklb[str(ckl[rule["group_id"]])]
            assert rule["ccis"]
            assert all(c.startswith("CCI-") for c in rule["ccis"])
    rule = next(r for s in doc["stigs"] for r in s["rules"] if r["group_id"] == "CICDG-3.8")
    assert rule["status"] == "open"
    assert "J. Smith" in rule["comments"]


# -- OSCAL -----------------------------------------------------------------------------------------


def test_oscal_assessment_results_validate_against_the_official_schema(outputs: dict[Format, str]) -> None:
    doc = json.loads(outputs[Format.OSCAL])
    assert errors(oscal_validator(), doc) == []
    ar = doc["assessment-results"]
    assert ar["metadata"]["oscal-version"] == "1.2.3"
    assert ar["metadata"]["last-modified"] == "2026-01-02T03:04:05Z"
    result = ar["results"][0]
    controls = [c["control-id"] for c in result["reviewed-controls"]["control-selections"][0]["include-controls"]]
    assert {"cm-7", "ac-6.10", "cm-7.1", "sc-4", "ia-5.2"} <= set(controls)
    by_req = {next(p["value"] for p in f["props"] if p["name"] == "requirement"): f for f in result["findings"]}
    assert by_req["PSS-privileged"]["target"] == {
        "type": "objective-id",
        "target-id": "ac-6.10_obj",
        "status": {"state": "not-satisfied", "reason": "fail"},
    }
    assert by_req["CICDG-2.1"]["target"]["target-id"] == "cm-7_smt.a"
    assert by_req["CICDG-3.10"]["target"]["status"]["state"] == "satisfied"
    assert "CICDG-2.15" not in by_req
    assert "CICDG-2.15" in result["remarks"]
    risks = {r["uuid"]: r for r in result["risks"]}
    waived = risks[by_req["CICDG-3.8"]["related-risks"][0]["risk-uuid"]]
    assert waived["status"] == "deviation-approved"
    assert waived["deadline"] == "2099-01-01T23:59:59Z"
    assert "J. Smith" in waived["description"]
    assert risks[by_req["PSS-privileged"]["related-risks"][0]["risk-uuid"]]["status"] == "open"
    observations = {o["uuid"] for o in result["observations"]}
    assert all(r["observation-uuid"] in observations for f in result["findings"] for r in f["related-observations"])
    items = {i["uuid"] for i in result["local-definitions"]["inventory-items"]}
    assert all(s["subject-uuid"] in items for o in result["observations"] for s in o.get("subjects", []))
    uuids = [x["uuid"] for x in (*result["findings"], *result["observations"], *result["risks"])]
    assert len(uuids) == len(set(uuids))


def test_oscal_poam_validates_and_lists_the_open_requirements(outputs: dict[Format, str]) -> None:
    doc = json.loads(outputs[Format.OSCAL_POAM])
    assert errors(oscal_validator(), doc) == []
    items = doc["plan-of-action-and-milestones"]["poam-items"]
    titles = {i["title"].split(":")[0] for i in items}
    ckl = {rid: v.findtext("STATUS") for rid, v in ckl_vulns(outputs[Format.CKL]).items()}
    assert titles >= {rid for rid, s in ckl.items() if s == "Open"}
    assert "CICDG-3.10" not in titles


def test_oscal_schema_is_really_checked(outputs: dict[Format, str]) -> None:
    """The validator rejects what the schema forbids (so a pass above means something)."""
    doc = json.loads(outputs[Format.OSCAL])
    doc["assessment-results"]["results"][0]["findings"][0]["target"]["status"]["state"] = "fine"
    assert errors(oscal_validator(), doc)
    doc = json.loads(outputs[Format.OSCAL])
    doc["assessment-results"]["metadata"]["title"] = ""
    del doc["assessment-results"]["import-ap"]
    assert errors(oscal_validator(), doc)


@pytest.mark.parametrize(
    ("disa", "control", "statement"),
    [
        ("CM-7 a", "cm-7", "cm-7_smt.a"),
        ("AC-6 (10)", "ac-6.10", None),
        ("CM-7 (1) (b)", "cm-7.1", "cm-7.1_smt.b"),
        ("IA-5 (2) (a)", "ia-5.2", "ia-5.2_smt.a"),
        ("SC-4", "sc-4", None),
        ("SI-2 (6)", "si-2.6", None),
    ],
)
def test_disa_control_ids_become_oscal_ids(disa: str, control: str, statement: str | None) -> None:
    assert oscal_control(disa) == (control, statement)


# -- HDF -------------------------------------------------------------------------------------------


def test_hdf_validates_against_the_exec_json_schema(outputs: dict[Format, str]) -> None:
    doc = json.loads(outputs[Format.HDF])
    assert errors(hdf_validator(), doc) == []
    profiles = {p["name"]: p for p in doc["profiles"]}
    assert set(profiles) == {"factorygate-cicdg", "factorygate-pss", "factorygate-ck", "factorygate-v"}
    controls = {c["id"]: c for p in doc["profiles"] for c in p["controls"]}
    assert len(controls) == len(load_catalog().requirements)
    privileged = controls["PSS-privileged"]
    assert privileged["impact"] == 0.9
    assert privileged["tags"]["nist"] == ["AC-6 (10)"]
    assert privileged["tags"]["cci"] == ["CCI-002235"]
    assert [r["status"] for r in privileged["results"]] == ["failed"]
    assert privileged["results"][0]["code_desc"].startswith("k8s-not-privileged: Deployment shop/api [api] at deploy")
    assert [r["status"] for r in controls["CICDG-3.10"]["results"]] == ["passed"]
    process = controls["CICDG-2.15"]["results"]
    assert [r["status"] for r in process] == ["skipped"]
    assert "Process requirement" in process[0]["skip_message"]
    waived = controls["CICDG-3.8"]
    assert waived["waiver_data"]["expiration_date"] == "2099-01-01"
    assert waived["waiver_data"]["run"] is True
    assert [r["status"] for r in waived["results"]] == ["failed"]
    assert "J. Smith" in waived["results"][0]["message"]
    assert errors(hdf_validator(), {**doc, "profiles": [{"name": "x"}]})  # the schema does reject


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_hdf_parses_with_mitres_inspecjs(outputs: dict[Format, str], tmp_path: Path) -> None:
    """MITRE's own HDF parser (inspecjs' generated exec-json converter, vendored) accepts the file."""
    script = (
        "const {Convert} = require(process.argv[1]);"
        "const fs = require('fs');"
        "const doc = Convert.toExecJSON(fs.readFileSync(process.argv[2], 'utf8'));"
        "console.log(doc.profiles.map(p => p.controls.length).join(','));"
    )
    path = tmp_path / "hdf.json"
    path.write_text(outputs[Format.HDF], encoding="utf-8")
    done = subprocess.run(
        ["node", "-e", script, str(INSPECJS_PARSER), str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    counts = [int(n) for n in done.stdout.strip().split(",")]
    assert sum(counts) == len(load_catalog().requirements)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(outputs[Format.HDF]), "platform": {"name": 1}}), encoding="utf-8")
    refused = subprocess.run(
        ["node", "-e", script, str(INSPECJS_PARSER), str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode != 0


# -- hostile strings -------------------------------------------------------------------------------


def json_strings(value: object) -> list[str]:
    """Every string value of a JSON document; fails when input text became a key."""
    if isinstance(value, dict):
        assert all(HOSTILE not in k and "<" not in k for k in value)  # no key was made from input
        return [s for v in value.values() for s in json_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in json_strings(v)]
    return [value] if isinstance(value, str) else []


def test_xml_safe_keeps_everything_visible() -> None:
    assert xml_safe("a\x00b\x1fc\td\ne\ud800f\ufffe") == "a\\x00b\\x1fc\td\ne\\ud800f\\ufffe"
    assert xml_safe("\u00e9\U0001f600\x7f") == "\u00e9\U0001f600\x7f"


def test_hostile_strings_are_escaped_in_the_ckl() -> None:
    text = rendered(hostile_result(), Format.CKL, EvidenceOptions(now=NOW))
    root = ET.fromstring(text.encode("utf-8"))  # well-formed despite NUL, ESC, ]]>, -->
    assert {el.tag for el in root.iter()} <= set(CKL_ASSET) | set(CKL_TAIL) | {
        "CHECKLIST",
        "ASSET",
        "STIGS",
        "iSTIG",
        "STIG_INFO",
        "SI_DATA",
        "SID_NAME",
        "SID_DATA",
        "VULN",
        "STIG_DATA",
        "VULN_ATTRIBUTE",
        "ATTRIBUTE_DATA",
    }  # no element was injected
    assert "<y>" not in text
    assert "</script>" not in text
    assert "<![CDATA[" not in text
    visible = xml_safe(HOSTILE)
    vuln = ckl_vulns(text)["PSS-privileged"]
    details = vuln.findtext("FINDING_DETAILS") or ""
    assert f"runs privileged {visible}" in details  # the text comes back intact, controls as \xNN
    assert f"Deployment shop/n{visible} [c{visible}] at dir/{visible}.yaml:7" in details
    assert f"approved by approver {visible}, expires 2099-01-01: because {visible}" in (vuln.findtext("COMMENTS") or "")
    assert root.findtext("ASSET/HOST_NAME") == f"dir/{visible}.yaml"


@pytest.mark.parametrize("fmt", [Format.CKLB, Format.OSCAL, Format.OSCAL_POAM, Format.HDF], ids=lambda f: f.value)
def test_hostile_strings_survive_the_json_formats_intact(fmt: Format) -> None:
    text = rendered(hostile_result(), fmt)
    doc = json.loads(text)
    strings = json_strings(doc)
    assert any(f"runs privileged {HOSTILE}" in s for s in strings)
    assert any(f"because {HOSTILE}" in s for s in strings)
    assert "\x00" not in text
    assert "\x1b" not in text
    if fmt in (Format.OSCAL, Format.OSCAL_POAM):
        assert errors(oscal_validator(), doc) == []
    if fmt is Format.HDF:
        assert errors(hdf_validator(), doc) == []


def test_hostile_manifest_end_to_end(tmp_path: Path) -> None:
    """From a manifest whose name and image carry hostile text to every evidence format."""
    catalog = load_catalog()
    policy = parse_policy(default_policy_text(), "policy.yaml", set(catalog.checks))
    yaml_name = r'"evil<b>&\"' + "'" + r"]]></script>\x01\x1b" + '\u00e9\u6f22"'  # YAML escapes \xNN
    decoded = "evil<b>&\"']]></script>\x01\x1b\u00e9\u6f22"
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + yaml_name + "\n"
        "spec:\n  containers:\n    - name: c\n      image: " + json.dumps("nginx:1<x>&") + "\n"
        "      securityContext: {privileged: true}\n"
    )
    items = manifests_from_bytes(text.encode(), "p.yaml", kinds=KUBERNETES_KINDS)
    result = Engine(catalog, policy, as_of=AS_OF).run(items, ["p.yaml"])
    assert any(f.resource is not None and f.resource.name == decoded for f in result.findings)
    ckl = rendered(result, Format.CKL)
    details = ckl_vulns(ckl)["PSS-privileged"].findtext("FINDING_DETAILS") or ""
    assert f"Pod {xml_safe(decoded)} [c]" in details
    assert "<b>" not in ckl
    for fmt in (Format.CKLB, Format.OSCAL, Format.HDF):
        assert any(f"Pod {decoded} [c]" in s for s in json_strings(json.loads(rendered(result, fmt))))


def test_an_unreadable_input_keeps_every_evaluated_rule_from_passing() -> None:
    """A manifest that could not be parsed: rules that pass for the rest are Not_Reviewed, and the
    error is listed under them; rules that fail stay Open."""
    catalog = load_catalog()
    policy = parse_policy(default_policy_text(), "policy.yaml", set(catalog.checks))
    engine = Engine(catalog, policy, as_of=AS_OF)
    good = manifests_from_bytes(MANIFESTS.encode(), "app.yaml", kinds=KUBERNETES_KINDS)
    broken = manifests_from_bytes(b"kind: Pod\nmetadata: {name: [unclosed\n", "broken.yaml", kinds=KUBERNETES_KINDS)
    result = engine.run([*good, *broken], ["app.yaml", "broken.yaml"])
    assert result.exit_code() == 2
    vulns = ckl_vulns(rendered(result, Format.CKL))
    assert vulns["CICDG-3.10"].findtext("STATUS") == "Not_Reviewed"  # passes for app.yaml only
    details = vulns["CICDG-3.10"].findtext("FINDING_DETAILS") or ""
    assert "Could not be evaluated (1)" in details
    assert "broken.yaml" in details
    assert vulns["PSS-privileged"].findtext("STATUS") == "Open"
    assert "broken.yaml" in (vulns["PSS-privileged"].findtext("FINDING_DETAILS") or "")
    assert vulns["CICDG-2.15"].findtext("STATUS") == "Not_Reviewed"
    assert "broken.yaml" not in (vulns["CICDG-2.15"].findtext("FINDING_DETAILS") or "")
    oscal = json.loads(rendered(result, Format.OSCAL))
    assert errors(oscal_validator(), oscal) == []
    finding = next(
        f
        for f in oscal["assessment-results"]["results"][0]["findings"]
        if {"name": "requirement", "ns": "https://factorygate.dev/ns/oscal", "value": "CICDG-3.10"} in f["props"]
    )
    assert finding["target"]["status"] == {"state": "not-satisfied", "reason": "other"}
    hdf = json.loads(rendered(result, Format.HDF))
    control = next(c for p in hdf["profiles"] for c in p["controls"] if c["id"] == "CICDG-3.10")
    assert sorted(r["status"] for r in control["results"]) == ["error", "passed"]


def test_html_golden_file(release: ScanResult) -> None:
    """The HTML report of the same release, byte for byte (its only clock is generated_at, given here)."""
    from factorygate.render.html import render_html

    out = io.StringIO()
    render_html(release, out, generated_at="2026-11-23 12:00 UTC")
    text = out.getvalue().replace(f"factorygate {__version__}", "factorygate VERSION")
    text = text.replace(f'"{__version__}"', '"VERSION"').replace(f">{__version__}<", ">VERSION<")
    path = GOLDEN / "release.html"
    if REGEN:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with FACTORYGATE_REGEN_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")
