"""The vulnerability section of a release's evidence: a `vulns gate` decision (or a `vulns merge` list) read
back from its JSON, and :class:`ReleaseResult`, a :class:`ScanResult` that carries such sections next to the
scan findings so that every evidence format (CKL, CKLB, OSCAL, HDF) and `factorygate report` show both.

Each merged vulnerability finding becomes one evidence item under NIST SP 800-53 RA-5 (vulnerability
monitoring and scanning) and SI-2 (flaw remediation); see :mod:`factorygate.render.evidence` for the rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from factorygate.engine import ScanResult
from factorygate.model import Severity

if TYPE_CHECKING:
    from factorygate.catalog import Catalog
    from factorygate.engine import ScanStats
    from factorygate.model import Finding
    from factorygate.policy.schema import Policy

GATE_SCHEMA = "factorygate.dev/vuln-gate-decision/v1"
# Scanner severities (vulns.model.SEVERITIES) as factorygate severities. "unknown" is not understated:
# a scanner that could not rate a finding has not shown it to be minor.
SEVERITY_OF = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "negligible": Severity.INFO,
    "unknown": Severity.MEDIUM,
}


class VulnDocumentError(ValueError):
    """Why a JSON document is not a `vulns gate` decision or a `vulns merge` list."""


@dataclass(frozen=True)
class VulnJustification:
    status: str
    author: str
    approver: str
    expires: str
    at: str


@dataclass(frozen=True)
class VulnItem:
    """One merged vulnerability finding (one id in one package) and what the gate said about it."""

    id: str
    aliases: tuple[str, ...]
    package: str
    version: str
    purl: str | None
    path: str | None
    severity: str  # the merged (scanner) severity, one of SEVERITY_OF
    fixed_versions: tuple[str, ...]
    scanners: tuple[str, ...]
    title: str = ""
    state: str = "unreviewed"  # gate: justified / expired / unjustified; merge list: unreviewed
    blocking: tuple[str, ...] = ()
    justification: VulnJustification | None = None

    @property
    def factorygate_severity(self) -> Severity:
        return SEVERITY_OF.get(self.severity, Severity.MEDIUM)


@dataclass(frozen=True)
class VulnSection:
    """A gate decision (``decision`` is "go" or "no-go") or a merge list (``decision`` None)."""

    source: str  # the file it was read from ("" when built in memory)
    items: tuple[VulnItem, ...]
    scanners: tuple[str, ...]
    decision: str | None = None
    reasons: tuple[str, ...] = ()
    as_of: str | None = None
    policy: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    document: Mapping[str, Any] = field(default_factory=dict)  # the JSON as read (for the JSON report)

    @property
    def no_go(self) -> bool:
        return self.decision == "no-go"


def _str(value: object, what: str, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise VulnDocumentError(f"{what} is not a string")
    return value


def _strings(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise VulnDocumentError(f"{what} is not a list of strings")
    return tuple(value)


def _dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise VulnDocumentError(f"{what} is not an object")
    return value


def is_gate_decision(doc: object) -> bool:
    return isinstance(doc, dict) and doc.get("schema") == GATE_SCHEMA


def is_merge_list(doc: object) -> bool:
    """The shape `vulns merge -f json` writes: scanners, summary, findings, only_in, severity_conflicts."""
    return (
        isinstance(doc, dict)
        and "tool" not in doc
        and isinstance(doc.get("findings"), list)
        and isinstance(doc.get("scanners"), list)
        and "only_in" in doc
        and "severity_conflicts" in doc
    )


def _item(d: object, what: str, gate: bool) -> VulnItem:
    d = _dict(d, what)
    pkg = _dict(d.get("package"), f"{what}.package")
    severity = _str(d.get("severity"), f"{what}.severity")
    if severity not in SEVERITY_OF:
        raise VulnDocumentError(f"{what}.severity {severity!r} is not one of {', '.join(SEVERITY_OF)}")
    justification = None
    state = "unreviewed"
    blocking: tuple[str, ...] = ()
    if gate:
        state = _str(d.get("status"), f"{what}.status")
        if state not in ("justified", "expired", "unjustified"):
            raise VulnDocumentError(f"{what}.status {state!r} is not justified, expired or unjustified")
        blocking = _strings(d.get("blocking", []), f"{what}.blocking")
        j = d.get("justification")
        if j is not None:
            j = _dict(j, f"{what}.justification")
            justification = VulnJustification(
                status=_str(j.get("status"), f"{what}.justification.status"),
                author=_str(j.get("author"), f"{what}.justification.author", optional=True) or "-",
                approver=_str(j.get("approver"), f"{what}.justification.approver", optional=True) or "-",
                expires=_str(j.get("expires"), f"{what}.justification.expires", optional=True) or "-",
                at=_str(j.get("at"), f"{what}.justification.at", optional=True) or "-",
            )
    return VulnItem(
        id=_str(d.get("id"), f"{what}.id"),
        aliases=_strings(d.get("aliases", []), f"{what}.aliases"),
        package=_str(pkg.get("name"), f"{what}.package.name"),
        version=_str(pkg.get("version", ""), f"{what}.package.version", optional=True) or "",
        purl=_str(pkg.get("purl"), f"{what}.package.purl", optional=True),
        path=_str(pkg.get("path"), f"{what}.package.path", optional=True),
        severity=severity,
        fixed_versions=_strings(d.get("fixed_versions", []), f"{what}.fixed_versions"),
        scanners=_strings(d.get("scanners", []), f"{what}.scanners"),
        title=_str(d.get("title", ""), f"{what}.title", optional=True) or "",
        state=state,
        blocking=blocking,
        justification=justification,
    )


def vuln_section(doc: object, source: str = "") -> VulnSection:
    """The section a `vulns gate` decision or `vulns merge` list describes; :class:`VulnDocumentError`
    when it is neither (or a field has the wrong type)."""
    gate = is_gate_decision(doc)
    if not isinstance(doc, dict) or not (gate or is_merge_list(doc)):
        raise VulnDocumentError("not a factorygate vulns gate decision or vulns merge document")
    raw = doc.get("findings")
    if not isinstance(raw, list):
        raise VulnDocumentError("findings is not a list")
    items = tuple(_item(f, f"findings[{i}]", gate) for i, f in enumerate(raw))
    decision = None
    inputs: tuple[str, ...] = ()
    if gate:
        decision = _str(doc.get("decision"), "decision")
        if decision not in ("go", "no-go"):
            raise VulnDocumentError(f"decision {decision!r} is not go or no-go")
        listed = doc.get("inputs", [])
        if not isinstance(listed, list):
            raise VulnDocumentError("inputs is not a list")
        inputs = tuple(_str(_dict(i, "inputs[]").get("path"), "inputs[].path") for i in listed)
    as_of = _str(doc.get("as_of"), "as_of", optional=True)
    if as_of is not None:
        try:
            dt.date.fromisoformat(as_of)
        except ValueError:
            raise VulnDocumentError(f"as_of {as_of!r} is not an ISO date") from None
    policy = doc.get("policy", {})
    return VulnSection(
        source=source,
        items=items,
        scanners=_strings(doc.get("scanners", []), "scanners"),
        decision=decision,
        reasons=_strings(doc.get("reasons", []), "reasons"),
        as_of=as_of,
        policy=policy if isinstance(policy, dict) else {},
        inputs=inputs,
        document=doc,
    )


class ReleaseResult(ScanResult):
    """A scan result with the release's vulnerability sections. ``scan_requirements`` False: the result
    holds only vulnerabilities (`vulns gate -f ckl`), so the catalog's requirements are left out of the
    evidence rather than listed as not reviewed."""

    def __init__(  # noqa: PLR0917 - the six ScanResult fields are positional
        self,
        findings: list[Finding],
        catalog: Catalog,
        policy: Policy,
        inputs: list[str],
        stats: ScanStats,
        as_of: dt.date,
        *,
        vulnerabilities: list[VulnSection] | None = None,
        scan_requirements: bool = True,
    ) -> None:
        super().__init__(findings, catalog, policy, inputs, stats, as_of)
        self.vulnerabilities = [] if vulnerabilities is None else vulnerabilities
        self.scan_requirements = scan_requirements

    def exit_code(self) -> int:
        """As a scan's, and 1 (at least) when a vulnerability gate decided no-go."""
        code = super().exit_code()
        if code == 0 and any(s.no_go for s in self.vulnerabilities):
            return 1
        return code


def vulnerabilities_of(result: ScanResult) -> list[VulnSection]:
    return result.vulnerabilities if isinstance(result, ReleaseResult) else []
