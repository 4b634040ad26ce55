"""VEX export: OpenVEX v0.2.0 shape and status mapping; CycloneDX 1.5 VEX validated against the schema."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from jsonschema import Draft7Validator
from tests.cyclonedx_schema import bom_validator

from factorygate.vulns.justify import Justification, JustificationBook
from factorygate.vulns.model import Package
from factorygate.vulns.vex import OPENVEX_CONTEXT, cyclonedx_vex, openvex, purl_of

TS = dt.datetime(2024, 6, 1, 12, 30, tzinfo=dt.UTC)
OPENSSL = Package("openssl", "3.0.11", "deb", "pkg:deb/debian/openssl@3.0.11?arch=amd64")
NET = Package("golang.org/x/net", "v0.17.0", "golang")
ZLIB = Package("zlib", "1.2.13", "")


@dataclass(frozen=True)
class F:
    id: str
    aliases: tuple[str, ...] = ()
    package: Package = OPENSSL


def j(vuln: str, status: str, **kw: object) -> Justification:
    base: dict[str, object] = {
        "vulnerability": vuln,
        "status": status,
        "justification": f"Reasoning for {vuln} ({status}).",
        "author": "alice",
        "approver": "bob",
        "approved": dt.date(2024, 5, 1),
        "expires": dt.date(2024, 7, 1),
    }
    base.update(kw)
    return Justification(**base)  # type: ignore[arg-type]


BOOK = JustificationBook(
    (
        j("CVE-1", "not_affected", vex_justification="vulnerable_code_not_in_execute_path"),
        j("CVE-2", "false_positive"),
        j("CVE-3", "mitigated"),
        j("CVE-4", "risk_accepted"),
        j("CVE-5", "fix_pending"),
        j("CVE-6", "not_affected", expires=dt.date(2024, 5, 15)),  # expired: not exported
        j("CVE-7", "not_affected"),  # covers no finding: not exported
    )
)
FINDINGS = [
    F("CVE-1", ("GHSA-1111-2222-3333",)),
    F("CVE-1", package=NET),
    F("CVE-2"),
    F("CVE-3", package=NET),
    F("CVE-4"),
    F("CVE-5"),
    F("CVE-6"),
    F("CVE-1", package=ZLIB),  # no purl can be made: left out
    F("CVE-9"),  # unjustified: left out
]


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    return bom_validator()


def by_vuln(statements: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {s[key] if key == "id" else s[key]["name"]: s for s in statements}


def test_purl_of() -> None:
    assert purl_of(OPENSSL) == OPENSSL.purl
    assert purl_of(NET) == "pkg:golang/golang.org/x/net@v0.17.0"
    assert purl_of(Package("@types/node", "20.1.0", "npm")) == "pkg:npm/%40types/node@20.1.0"
    assert purl_of(ZLIB) is None


def test_openvex_document_shape() -> None:
    doc = openvex(BOOK, FINDINGS, "security@example.com", TS)
    assert doc["@context"] == OPENVEX_CONTEXT == "https://openvex.dev/ns/v0.2.0"
    assert doc["@id"].startswith("urn:uuid:")
    assert doc["author"] == "security@example.com"
    assert doc["timestamp"] == "2024-06-01T12:30:00Z"
    assert doc["version"] == 1
    stmts = by_vuln(doc["statements"], "vulnerability")
    assert sorted(stmts) == ["CVE-1", "CVE-2", "CVE-3", "CVE-4", "CVE-5"]
    allowed = {"not_affected", "affected", "fixed", "under_investigation"}
    for s in doc["statements"]:
        assert s["status"] in allowed
        assert s["products"]
        assert all(p["@id"].startswith("pkg:") for p in s["products"])
        if s["status"] == "not_affected":
            assert s.get("justification") or s.get("impact_statement")
        if s["status"] == "affected":
            assert s["action_statement"]


def test_openvex_status_mapping() -> None:
    stmts = by_vuln(openvex(BOOK, FINDINGS, "sec", TS)["statements"], "vulnerability")
    one = stmts["CVE-1"]
    assert one["status"] == "not_affected"
    assert one["justification"] == "vulnerable_code_not_in_execute_path"
    assert one["impact_statement"] == "Reasoning for CVE-1 (not_affected)."
    assert one["vulnerability"]["aliases"] == ["GHSA-1111-2222-3333"]
    assert [p["@id"] for p in one["products"]] == [OPENSSL.purl, "pkg:golang/golang.org/x/net@v0.17.0"]
    assert stmts["CVE-2"]["justification"] == "vulnerable_code_not_present"
    assert stmts["CVE-3"]["justification"] == "inline_mitigations_already_exist"
    assert stmts["CVE-4"]["status"] == "affected"
    assert stmts["CVE-4"]["action_statement"].startswith(
        "Risk accepted (approved by bob on 2024-05-01, until 2024-07-01)"
    )
    assert "justification" not in stmts["CVE-4"]
    assert stmts["CVE-5"]["status"] == "affected"
    assert stmts["CVE-5"]["action_statement"].startswith("Fix pending")


def test_cyclonedx_vex_validates_against_the_schema(validator: Draft7Validator) -> None:
    doc = cyclonedx_vex(BOOK, FINDINGS, "security@example.com", TS)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5])
    refs = {c["bom-ref"] for c in doc["components"]}
    for v in doc["vulnerabilities"]:
        assert {a["ref"] for a in v["affects"]} <= refs


def test_cyclonedx_status_mapping() -> None:
    vulns = by_vuln(cyclonedx_vex(BOOK, FINDINGS, "sec", TS)["vulnerabilities"], "id")
    assert sorted(vulns) == ["CVE-1", "CVE-2", "CVE-3", "CVE-4", "CVE-5"]
    a = {k: v["analysis"] for k, v in vulns.items()}
    assert a["CVE-1"]["state"] == "not_affected"
    assert a["CVE-1"]["justification"] == "code_not_reachable"
    assert a["CVE-2"] == {
        "state": "false_positive",
        "detail": "Reasoning for CVE-2 (false_positive).",
        "firstIssued": "2024-05-01T00:00:00Z",
    }
    assert a["CVE-3"]["justification"] == "protected_by_mitigating_control"
    assert a["CVE-4"]["state"] == "exploitable"
    assert a["CVE-4"]["response"] == ["will_not_fix"]
    assert a["CVE-5"]["response"] == ["update"]
    assert vulns["CVE-1"]["references"] == [{"id": "GHSA-1111-2222-3333", "source": {"name": "GitHub"}}]
    props = {p["name"]: p["value"] for p in vulns["CVE-4"]["properties"]}
    assert props["factorygate:justification:status"] == "risk_accepted"


def test_exports_are_deterministic_and_follow_as_of() -> None:
    assert openvex(BOOK, FINDINGS, "sec", TS) == openvex(BOOK, list(reversed(FINDINGS)), "sec", TS)
    assert cyclonedx_vex(BOOK, FINDINGS, "sec", TS) == cyclonedx_vex(BOOK, list(reversed(FINDINGS)), "sec", TS)
    later = openvex(BOOK, FINDINGS, "sec", TS, as_of=dt.date(2024, 7, 1))  # everything expired
    assert later["statements"] == []
    assert later["@id"] != openvex(BOOK, FINDINGS, "sec", TS)["@id"]
    earlier = openvex(BOOK, FINDINGS, "sec", TS, as_of=dt.date(2024, 5, 10))
    assert "CVE-6" in by_vuln(earlier["statements"], "vulnerability")


def test_empty_cyclonedx_vex_is_valid(validator: Draft7Validator) -> None:
    doc = cyclonedx_vex(JustificationBook(), [], "sec", dt.datetime(2024, 6, 1, 12, 0))  # naive: taken as UTC
    assert doc["metadata"]["timestamp"] == "2024-06-01T12:00:00Z"
    assert not list(validator.iter_errors(doc))
