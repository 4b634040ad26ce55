"""What the evidence formats (CKL, CKLB, OSCAL, HDF) share: one verdict per requirement, the asset the
checklist describes, timestamps that can be pinned, and text that is safe in XML.

A requirement's checklist status follows from :func:`factorygate.engine.requirement_statuses`:

========================  ===============  =====================================================
factorygate status        STIG status      why
========================  ===============  =====================================================
fail                      Open             a subject fails (an expired waiver is a failure)
waived                    Open             risk accepted is not fixed: the waiver goes in COMMENTS
error                     Not_Reviewed     a subject or an input could not be evaluated: nothing is claimed
pass                      NotAFinding      every subject in scope passes
not_applicable            Not_Applicable   the checks ran but no subject was in scope
not_reviewed              Not_Reviewed     a process requirement, or no input of the kind it needs
========================  ===============  =====================================================
"""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from factorygate import __version__
from factorygate.engine import ScanResult, requirement_statuses
from factorygate.model import CheckMeta, Finding, Location, Requirement, Severity, Status, SubjectKind, Waiver
from factorygate.release import VulnItem, VulnSection, vulnerabilities_of

# Every UUID the evidence formats write is a uuid5 in this namespace, named by content: the same scan
# gives the same identifiers (golden files stay stable; a re-run's checklist diffs cleanly).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://factorygate.dev/evidence")
# A requirement's lists of subjects stop here: a checklist is read by people; the JSON report has all.
MAX_LISTED = 1000
# The release's vulnerability findings (`vulns gate` / `vulns merge` documents): one pseudo-STIG of their own.
VULN_SOURCE = "VULNS"
# the checklist formats carry the DISA guide, the Pod Security Standards and the release's vulnerabilities
STIG_SOURCES = ("CICDG", "PSS", VULN_SOURCE)
# `factorygate audit` adds the Kubernetes STIG rules (catalog source "V") and the reference-design scorecard
AUDIT_SOURCES = ("V", "REFDESIGN")
# A vulnerability finding is evidence for NIST SP 800-53 rev5 RA-5 (vulnerability monitoring and scanning)
# and SI-2 (flaw remediation). CCIs from DISA's CCI list (version 2023-06-07, as embedded in
# mitre/heimdall2 libs/hdf-converters/src/utils/CCI_List.ts), by their rev5 reference:
#   CCI-001054  RA-5 a  "Monitor and scan for vulnerabilities in the system and hosted applications ..."
#   CCI-001059  RA-5 d  "Remediate legitimate vulnerabilities in organization-defined response times ..."
#   CCI-001225  SI-2 a  "Identify system flaws."
#   CCI-001227  SI-2 a  "Correct system flaws."
VULN_NIST = ("RA-5 d", "SI-2 a")
VULN_CCI = ("CCI-001054", "CCI-001059", "CCI-001225", "CCI-001227")
VULN_SOURCE_INFO = {
    "title": "Release Vulnerabilities (NIST SP 800-53 RA-5, SI-2)",
    "version": "V1R1",
    "date": "",
}
VULN_CHECK = "vulnerability"
ROLES = ("None", "Workstation", "Member Server", "Domain Controller")
ASSET_TYPES = ("Computing", "Non-Computing")
# TECH_AREA values the checklist schema allows (STIG Viewer's list; "" is allowed too)
TECH_AREAS = (
    "Application Review",
    "Boundary Security",
    "CDS Admin Review",
    "CDS Technical Review",
    "Database Review",
    "Domain Name System (DNS)",
    "Exchange Server",
    "Host Based System Security (HBSS)",
    "Internal Network",
    "Mobility",
    "Releasable Networks (REL)",
    "Traditional Security",
    "UNIX OS",
    "VVOIP Review",
    "Web Review",
    "Windows OS",
    "Other Review",
)

CKL_STATUS = {
    "fail": "Open",
    "waived": "Open",
    "error": "Not_Reviewed",
    "pass": "NotAFinding",
    "not_applicable": "Not_Applicable",
    "not_reviewed": "Not_Reviewed",
}
STIG_SEVERITY = {
    Severity.CRITICAL: "high",
    Severity.HIGH: "high",
    Severity.MEDIUM: "medium",
    Severity.LOW: "low",
    Severity.INFO: "low",
}
_STATUS_ORDER = {Status.FAIL: 0, Status.ERROR: 1, Status.WAIVED: 2, Status.PASS: 3}
# Characters XML 1.0 forbids (C0 controls other than tab, LF, CR; surrogates; U+FFFE, U+FFFF).
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NIST = re.compile(r"^([A-Za-z]{2})-(\d+)(?:\s*\((\d+)\))?(?:\s*\(?([a-z])\)?)?$")


@dataclass(frozen=True)
class Asset:
    """The ASSET block of a checklist (STIG Viewer's "Target Data")."""

    host_name: str = ""
    host_ip: str = ""
    host_mac: str = ""
    host_fqdn: str = ""
    role: str = "None"
    asset_type: str = "Computing"
    marking: str = "CUI"
    target_comment: str = ""
    tech_area: str = ""
    target_key: str = ""
    web_db_site: str = ""
    web_db_instance: str = ""
    classification: str = "UNCLASSIFIED"

    @property
    def web_or_database(self) -> bool:
        return bool(self.web_db_site or self.web_db_instance)


@dataclass(frozen=True)
class EvidenceOptions:
    """What the evidence renderers take besides the result: the asset and, for reproducible output,
    the time they state (else ``SOURCE_DATE_EPOCH`` when set, else now)."""

    asset: Asset = field(default_factory=Asset)
    now: dt.datetime | None = None

    def timestamp(self) -> dt.datetime:
        if self.now is not None:
            stamp = self.now if self.now.tzinfo else self.now.replace(tzinfo=dt.UTC)
        elif os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
            stamp = dt.datetime.fromtimestamp(int(os.environ["SOURCE_DATE_EPOCH"]), dt.UTC)
        else:
            stamp = dt.datetime.now(dt.UTC)
        return stamp.astimezone(dt.UTC).replace(microsecond=0)

    def host_name(self, result: ScanResult) -> str:
        """The asset's host name: as given, else the first input (what was scanned)."""
        if self.asset.host_name:
            return self.asset.host_name
        return result.inputs[0] if result.inputs else "factorygate"


class RequirementEvidence(NamedTuple):
    """One requirement with everything the evidence formats say about it."""

    requirement: Requirement
    status: str  # the factorygate requirement status (see the module docstring)
    severity: Severity
    checks: tuple[CheckMeta, ...]
    findings: tuple[Finding, ...]  # failures first, then errors, waived, passes

    @property
    def ckl_status(self) -> str:
        return CKL_STATUS[self.status]

    def with_status(self, *statuses: Status) -> list[Finding]:
        return [f for f in self.findings if f.status in statuses]


def requirement_evidence(result: ScanResult, sources: Iterable[str] | None = None) -> list[RequirementEvidence]:
    """Every catalog requirement (of ``sources``, default all) in catalog order, with its findings.

    Inputs that could not be read (errors that belong to no requirement) are listed under every
    evaluated requirement, and one that would otherwise pass or be not applicable is "error": a
    checklist cannot vouch for a file it did not read."""
    wanted = set(sources) if sources is not None else None
    by_requirement: dict[str, list[Finding]] = {}
    unread: list[Finding] = []
    for f in result.findings:
        for rid in f.requirements:
            by_requirement.setdefault(rid, []).append(f)
        if not f.requirements and f.status is Status.ERROR:
            unread.append(f)
    statuses = requirement_statuses(result)
    out: list[RequirementEvidence] = []
    for rid, req in result.catalog.requirements.items() if getattr(result, "scan_requirements", True) else ():
        if wanted is not None and req.source not in wanted:
            continue
        checks = tuple(result.catalog.checks_for(rid))
        status = statuses[rid]
        own = by_requirement.get(rid, [])
        if unread and status != "not_reviewed":
            own = own + unread
            if status in ("pass", "not_applicable"):
                status = "error"
        findings = sorted(own, key=lambda f: _STATUS_ORDER[f.status])
        severities = [result.policy.severity_of(c.id, c.severity) for c in checks]
        severities += [f.severity for f in by_requirement.get(rid, ())]
        severity = max(severities) if severities else Severity.MEDIUM
        out.append(RequirementEvidence(req, status, severity, checks, tuple(findings)))
    if wanted is None or VULN_SOURCE in wanted:
        out += vulnerability_evidence(result)
    if getattr(result, "clusters", None) and (wanted is None or AUDIT_SOURCES[1] in wanted):
        from factorygate.audit.report import conformance_evidence  # `factorygate audit`: the scorecard

        out += conformance_evidence(result)
    return out


def checklist_sources(result: ScanResult) -> tuple[str, ...]:
    """The pseudo-STIGs of a checklist: an audit adds the Kubernetes STIG and the conformance scorecard."""
    return STIG_SOURCES + AUDIT_SOURCES if getattr(result, "clusters", None) else STIG_SOURCES


def nist_controls(req: Requirement) -> tuple[str, ...]:
    """The NIST SP 800-53 controls a requirement is evidence for (a vulnerability: RA-5 and SI-2)."""
    return VULN_NIST if req.source == VULN_SOURCE else (req.ia_control,)


def _vuln_check(section: VulnSection, rid: str, severity: Severity, fix: str) -> CheckMeta:
    scanners = ", ".join(section.scanners) or "no scanner named"
    if section.decision is None:
        how = "listed by `factorygate vulns merge` (no gate decision: every finding is open)"
    else:
        blocks = ", ".join(section.policy.get("block_severities") or []) or "none"
        age = section.policy.get("max_fix_age_days")
        how = (
            f"decided by `factorygate vulns gate` as of {section.as_of or '-'}: an unjustified finding blocks "
            f"the release when its severity is one of {blocks}"
            + (f" or its fix is older than {age} days" if age is not None else "")
        )
        if section.policy.get("require_two_scanners"):
            how += "; at least two scanners must have run"
    return CheckMeta(
        id=VULN_CHECK,
        subject=SubjectKind.IMAGE,
        requirements=(rid,),
        severity=severity,
        title="Vulnerability scan",
        description=f"Container image vulnerabilities found by {scanners}, merged and {how}.",
        remediation=fix,
    )


def _item_row(section: VulnSection, item: VulnItem) -> RequirementEvidence:
    version = f" {item.version}" if item.version else ""
    rid = f"{item.id} {item.package}{version}"
    severity = item.factorygate_severity
    fixed = ", ".join(item.fixed_versions)
    fix = (
        f"Upgrade {item.package} to {fixed} (or later) and rebuild the image."
        if fixed
        else f"No fixed version of {item.package} is known: remove the package, mitigate, or justify the finding "
        "(status, author, approver, expiry) and track the fix."
    )
    also = f" (also {', '.join(item.aliases)})" if item.aliases else ""
    summary = (
        f"{item.id}{also}: {item.title or 'vulnerability'} in {item.package}{version} "
        f"[{item.severity}; scanners: {', '.join(item.scanners) or '-'}]"
    )
    j = item.justification
    waiver = None
    if item.state in ("justified", "expired") and j is not None:
        waiver = Waiver(
            justification=f"{j.status} (author {j.author}; justification at {j.at})",
            approver=j.approver,
            expires=j.expires,
            source="vulns justification",
            expired=item.state == "expired",
        )
    if item.state == "justified":
        status, state = Status.WAIVED, f"justified ({j.status if j else '-'}): risk accepted, not fixed"
    elif item.blocking:
        status, state = Status.FAIL, "blocks the release: " + "; ".join(item.blocking)
    elif item.state == "unreviewed":
        status, state = Status.FAIL, "open (merged list, no gate decision)"
    else:
        expired = f", justification expired {j.expires}" if item.state == "expired" and j else ""
        status, state = Status.FAIL, f"open, not blocking under the gate policy ({item.state}{expired})"
    message = (
        f"{item.id} ({item.severity}) in {item.package}{version}; "
        + (f"fixed in {fixed}" if fixed else "no fix yet")
        + f"; {state}"
    )
    finding = Finding(
        check=VULN_CHECK,
        status=status,
        severity=severity,
        message=message,
        location=Location(item.path or item.purl or item.package, source=section.source or None),
        nist=VULN_NIST,
        cci=VULN_CCI,
        title=item.title,
        remediation=fix,
        waiver=waiver,
    )
    req = Requirement(
        id=rid,
        title=f"{item.id} in {item.package}{version}" + (f": {item.title}" if item.title else ""),
        ia_control=VULN_NIST[0],
        cci=VULN_CCI,
        automation=("image",),
        summary=summary,
        source=VULN_SOURCE,
    )
    row_status = "waived" if status is Status.WAIVED else "fail"
    return RequirementEvidence(req, row_status, severity, (_vuln_check(section, rid, severity, fix),), (finding,))


def _gate_row(section: VulnSection, n: int) -> RequirementEvidence:
    rid = "vulns-gate" + (f"-{n}" if n else "")
    go = not section.no_go
    where_from = section.source or ", ".join(section.inputs) or "vulns gate"
    message = "GO" if go else "NO-GO: " + "; ".join(section.reasons)
    finding = Finding(
        check="vulns-gate",
        status=Status.PASS if go else Status.FAIL,
        severity=Severity.HIGH,
        message=message,
        location=Location(where_from),
        nist=VULN_NIST,
        cci=VULN_CCI,
        title="Release vulnerability gate",
    )
    req = Requirement(
        id=rid,
        title=f"Release vulnerability gate: {'GO' if go else 'NO-GO'}",
        ia_control=VULN_NIST[0],
        cci=VULN_CCI,
        automation=("image",),
        summary="The release's merged vulnerability findings, weighed against the gate policy and the approved "
        "justifications, allow the release (go) or do not (no-go).",
        source=VULN_SOURCE,
    )
    fix = "Fix, or justify with an approved and unexpired justification, every finding that blocks the release."
    check = _vuln_check(section, rid, Severity.HIGH, fix)._replace(id="vulns-gate", title="Vulnerability gate")
    return RequirementEvidence(req, "pass" if go else "fail", Severity.HIGH, (check,), (finding,))


def vulnerability_evidence(result: ScanResult) -> list[RequirementEvidence]:
    """One row per gate decision and per vulnerability finding (one id in one package) of the result's
    vulnerability sections; see docs/ckl.md for the statuses. Identical rows (the same decision given
    twice) appear once."""
    rows: dict[tuple[str, str, str], RequirementEvidence] = {}
    gates = 0
    for section in vulnerabilities_of(result):
        if section.decision is not None:
            row = _gate_row(section, gates)
            gates += 1
            rows.setdefault((row.requirement.id, row.status, row.findings[0].message), row)
        for item in section.items:
            row = _item_row(section, item)
            key = (row.requirement.id, row.status, row.findings[0].message)
            if key in rows:
                continue
            if any(k[0] == key[0] for k in rows):  # the same finding decided differently by another gate
                req = row.requirement._replace(id=f"{key[0]} ({section.source or len(rows)})")
                row = row._replace(requirement=req)
            rows[key] = row
    return list(rows.values())


def content_uuid(*parts: str) -> str:
    """A deterministic UUID for content (uuid5 in :data:`NAMESPACE`)."""
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(parts)))


def xml_safe(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot carry written as visible escapes (``\\x00``)."""
    return _XML_FORBIDDEN.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )


def subject(f: Finding) -> str:
    """The subject a finding is about: resource (and container), else the file."""
    who = f.resource.display() if f.resource is not None else f.location.file
    return f"{who} [{f.container}]" if f.container else who


def where(f: Finding) -> str:
    """``file:line (path)``; for an image, the image reference (with digest when it was given one)."""
    loc = f.location
    text = f"{loc.file}:{loc.line}" if loc.line else loc.file
    if loc.path:
        text += f" ({loc.path})"
    if loc.source:
        text += f" from {loc.source}"
    return text


def finding_line(f: Finding) -> str:
    """One line a person reads in a checklist: status, check, severity, subject, place, message."""
    return f"{f.status.value.upper()} {f.check} [{f.severity.value}] {subject(f)} at {where(f)}: {f.message}"


def _listed(title: str, findings: list[Finding]) -> list[str]:
    if not findings:
        return []
    lines = [f"{title} ({len(findings)}):"]
    lines += [f"- {finding_line(f)}" for f in findings[:MAX_LISTED]]
    if len(findings) > MAX_LISTED:
        lines.append(f"- ... and {len(findings) - MAX_LISTED} more (see the factorygate JSON report)")
    return [*lines, ""]


def finding_details(ev: RequirementEvidence) -> str:
    """FINDING_DETAILS: what was checked, and each failing (or, when clean, passing) subject."""
    checks = ", ".join(c.id for c in ev.checks)
    if ev.status == "not_reviewed":
        if ev.requirement.process_only:
            return (
                "Process requirement: no manifest, Dockerfile or image shows it. "
                "Review the process and set this status by hand."
            )
        needs = ", ".join(a for a in ev.requirement.automation if a != "cluster")
        return (
            f"Not evaluated: the inputs of this run included no {needs or 'subject'} that the checks ({checks}) read."
        )
    if ev.status == "not_applicable":
        return f"Not applicable: the checks ({checks}) ran over the inputs and found no subject in scope."
    failed, errors = ev.with_status(Status.FAIL), ev.with_status(Status.ERROR)
    waived, passed = ev.with_status(Status.WAIVED), ev.with_status(Status.PASS)
    head = (
        f"factorygate {__version__}, checks {checks}: {len(failed)} failed, {len(waived)} waived, "
        f"{len(errors)} could not be evaluated, {len(passed)} passed."
    )
    lines = [head, ""]
    lines += _listed("Failed", failed)
    lines += _listed("Could not be evaluated", errors)
    lines += _listed("Waived: risk accepted, not fixed", waived)
    if ev.status == "pass":
        lines += _listed("Passed", passed)
    return "\n".join(lines).rstrip()


def waiver_comments(ev: RequirementEvidence) -> str:
    """COMMENTS: each waiver (approver, expiry, justification) with the subjects it covers; expired
    waivers are named too, since their findings count as failures."""
    groups: dict[tuple[str, str, str, str, bool], list[str]] = {}
    for f in ev.findings:
        w = f.waiver
        if w is None:
            continue
        groups.setdefault((w.source, w.approver, w.expires, w.justification, w.expired), []).append(subject(f))
    lines: list[str] = []
    for (source, approver, expires, justification, expired), subjects in groups.items():
        state = f"EXPIRED on {expires}, not applied" if expired else f"expires {expires}"
        shown = ", ".join(dict.fromkeys(subjects[:MAX_LISTED]))
        more = f" and {len(subjects) - MAX_LISTED} more" if len(subjects) > MAX_LISTED else ""
        lines.append(f"Waiver ({source}) approved by {approver}, {state}: {justification} [covers: {shown}{more}]")
    return "\n".join(lines)


def check_content(ev: RequirementEvidence) -> str:
    if not ev.checks:
        return "Manual review: " + ev.requirement.summary
    return "\n".join(
        [f"Automated by factorygate {__version__}:"]
        + [f"- {c.id} ({c.subject.value}): {c.description}" for c in ev.checks]
    )


def fix_text(ev: RequirementEvidence) -> str:
    if not ev.checks:
        return ev.requirement.summary
    return "\n".join(dict.fromkeys(c.remediation for c in ev.checks))


def stig_release(result: ScanResult, source: str) -> tuple[str, str, str, str]:
    """(title, version, release, benchmark date) of a catalog source (``V2R0.6`` -> "2", "0.6")."""
    info = result.catalog.sources.get(source) or (VULN_SOURCE_INFO if source == VULN_SOURCE else {})
    if source == AUDIT_SOURCES[1]:
        from factorygate.audit.report import CONFORMANCE_INFO

        info = CONFORMANCE_INFO
    title = info.get("title") or source
    raw = info.get("version") or ""
    m = re.fullmatch(r"[Vv](\d+)[Rr]([\d.]+)", raw)
    version, release = (m.group(1), m.group(2)) if m else (raw, raw)
    return title, version, release, info.get("date") or ""


def release_info(result: ScanResult, source: str) -> str:
    _, _, release, date = stig_release(result, source)
    text = f"Release: {release}"
    if date:
        text += " Benchmark Date: " + dt.date.fromisoformat(date).strftime("%d %b %Y")
    return text


def stig_id(source: str) -> str:
    return {
        "CICDG": "DISA_Container_Image_Creation_and_Deployment_Guide",
        "PSS": "Kubernetes_Pod_Security_Standards",
        VULN_SOURCE: "factorygate_Release_Vulnerabilities",
        "V": "Kubernetes_STIG",
        "REFDESIGN": "factorygate_DoD_Reference_Design_Conformance",
    }.get(source, f"factorygate_{source}")


def oscal_control(ia_control: str) -> tuple[str, str | None]:
    """A DISA-style control (``CM-7 (1) (b)``) as OSCAL ids: (``cm-7.1``, ``cm-7.1_smt.b``)."""
    m = _NIST.match(ia_control.strip())
    if m is None:
        return ia_control.strip().lower().replace(" ", ""), None
    family, number, enhancement, part = m.groups()
    control = f"{family.lower()}-{int(number)}" + (f".{int(enhancement)}" if enhancement else "")
    return control, (f"{control}_smt.{part}" if part else None)
