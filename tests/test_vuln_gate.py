"""The vulnerability gate: go / no-go with reasons, per-finding states, a deterministic JSON decision."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from factorygate.vulns.gate import Decision, Finding, GatePolicy, decide, digest_inputs, file_digest
from factorygate.vulns.justify import Justification, JustificationBook
from factorygate.vulns.model import Package, VulnInputError

DAY = dt.date(2024, 6, 1)
OPENSSL = Package("openssl", "3.0.11", "deb", "pkg:deb/debian/openssl@3.0.11")
INPUTS = {"trivy.json": "sha256:" + "aa" * 32, "grype.json": "sha256:" + "bb" * 32}


@dataclass(frozen=True)
class F:
    id: str
    severity: str = "high"
    aliases: tuple[str, ...] = ()
    package: Package = OPENSSL
    fixed_versions: tuple[str, ...] = ()
    fix_published: str | None = None
    scanners: tuple[str, ...] = ("trivy", "grype")


def j(vuln: str, **kw: object) -> Justification:
    base: dict[str, object] = {
        "vulnerability": vuln,
        "status": "not_affected",
        "justification": "Not reachable from any entry point.",
        "author": "alice",
        "approver": "bob",
        "approved": dt.date(2024, 5, 1),
        "expires": dt.date(2024, 7, 1),
    }
    base.update(kw)
    return Justification(**base)  # type: ignore[arg-type]


def run(findings: list[F], book: JustificationBook | None = None, **kw: object) -> Decision:
    policy = kw.pop("policy", GatePolicy())
    assert isinstance(policy, GatePolicy)
    return decide(findings, book or JustificationBook(), policy, INPUTS, kw.pop("as_of", DAY), **kw)  # type: ignore[arg-type]


def test_the_merge_protocol_is_structural() -> None:
    finding: Finding = F("CVE-1")  # mypy checks F against the Protocol
    assert finding.id == "CVE-1"


def test_no_findings_is_go() -> None:
    d = run([])
    assert d.go
    assert d.reasons == ()
    assert d.to_json()["decision"] == "go"


def test_unjustified_high_blocks_medium_does_not() -> None:
    d = run([F("CVE-1", "high"), F("CVE-2", "medium"), F("CVE-3", "critical")])
    assert not d.go
    assert d.reasons == (
        "CVE-3 in openssl 3.0.11: critical (unjustified)",
        "CVE-1 in openssl 3.0.11: high (unjustified)",
    )
    assert [f.state for f in d.findings] == ["unjustified"] * 3


def test_justified_high_is_go_and_alias_counts() -> None:
    book = JustificationBook((j("GHSA-aaaa-bbbb-cccc", status="risk_accepted"),), "j.yaml", (4,))
    d = run([F("CVE-1", "critical", aliases=("GHSA-aaaa-bbbb-cccc",))], book)
    assert d.go
    (f,) = d.to_json()["findings"]
    assert f["status"] == "justified"
    assert f["justification"] == {
        "status": "risk_accepted",
        "at": "j.yaml:4",
        "expires": "2024-07-01",
        "author": "alice",
        "approver": "bob",
    }


def test_expired_justification_blocks_with_its_date() -> None:
    book = JustificationBook((j("CVE-1", expires=dt.date(2024, 5, 20)),))
    d = run([F("CVE-1", "critical")], book)
    assert not d.go
    assert d.reasons == ("CVE-1 in openssl 3.0.11: critical (justification expired 2024-05-20)",)
    assert d.findings[0].state == "expired"
    assert d.to_json()["summary"]["expired"] == 1


def test_custom_block_severities() -> None:
    d = run([F("CVE-1", "high"), F("CVE-2", "medium")], policy=GatePolicy(block_severities=("medium",)))
    assert d.reasons == ("CVE-2 in openssl 3.0.11: medium (unjustified)",)
    with pytest.raises(ValueError, match="unknown severities"):
        GatePolicy(block_severities=("severe",))


def test_fix_age_rule() -> None:
    policy = GatePolicy(block_severities=(), max_fix_age_days=30)
    old = F("CVE-OLD", "low", fixed_versions=("3.0.13",), fix_published="2024-04-01T10:00:00Z")
    fresh = F("CVE-NEW", "low", fixed_versions=("3.0.14",), fix_published="2024-05-20")
    undated = F("CVE-UNDATED", "low", fixed_versions=("3.0.15",))
    no_fix = F("CVE-NOFIX", "low", fix_published="2024-01-01")
    d = run([old, fresh, undated, no_fix], policy=policy)
    assert d.reasons == (
        "CVE-OLD in openssl 3.0.11: fix available for 61 days, more than 30 (unjustified; fixed in 3.0.13)",
    )
    justified = run([old], JustificationBook((j("CVE-OLD", status="fix_pending"),)), policy=policy)
    assert justified.go


def test_two_scanners_rule() -> None:
    policy = GatePolicy(require_two_scanners=True)
    assert run([F("CVE-1", "low")], policy=policy).go
    d = run([F("CVE-1", "low", scanners=("trivy",))], policy=policy)
    assert d.reasons == ("two scanners are required, 1 ran (trivy)",)
    assert run([], policy=policy, scanners=["trivy", "grype"]).go  # scanners that found nothing still ran
    assert not run([], policy=policy).go


def test_image_scoped_justification() -> None:
    book = JustificationBook((j("CVE-1", image="registry.example.com/*"),))
    assert run([F("CVE-1")], book, image="registry.example.com/app:1").go
    assert not run([F("CVE-1")], book, image="docker.io/app:1").go


def test_decision_json_is_deterministic_and_complete() -> None:
    findings = [
        F("CVE-2", "medium"),
        F("CVE-1", "critical", aliases=("GHSA-x", "CVE-1"), scanners=("grype", "trivy", "grype")),
        F("CVE-3", "high", package=Package("zlib", "1.2", "deb")),
    ]
    book = JustificationBook((j("CVE-3"),))
    a = run(findings, book).to_json()
    b = run(list(reversed(findings)), book).to_json()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["decision"] == "no-go"
    assert a["go"] is False
    assert a["as_of"] == "2024-06-01"
    assert a["inputs"] == [
        {"path": "grype.json", "digest": INPUTS["grype.json"]},
        {"path": "trivy.json", "digest": INPUTS["trivy.json"]},
    ]
    assert a["policy"] == {
        "block_severities": ["critical", "high"],
        "max_fix_age_days": None,
        "require_two_scanners": False,
    }
    assert a["summary"] == {"findings": 3, "justified": 1, "expired": 0, "unjustified": 2, "blocking": 1}
    assert [f["id"] for f in a["findings"]] == ["CVE-1", "CVE-3", "CVE-2"]
    first = a["findings"][0]
    assert first["aliases"] == ["GHSA-x"]
    assert first["scanners"] == ["grype", "trivy"]
    assert first["package"]["purl"] == "pkg:deb/debian/openssl@3.0.11"
    assert a["scanners"] == ["grype", "trivy"]
    json.dumps(a)  # JSON-able


def test_input_digests(tmp_path: Path) -> None:
    p = tmp_path / "report.json"
    p.write_bytes(b'{"Results": []}')
    assert file_digest(p) == "sha256:" + hashlib.sha256(b'{"Results": []}').hexdigest()
    assert digest_inputs([str(p)]) == {str(p): file_digest(p)}
    with pytest.raises(VulnInputError, match="cannot read"):
        file_digest(tmp_path / "missing.json")
