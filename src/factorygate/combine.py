"""`factorygate report`: several factorygate JSON reports (report-v1) of one release, such as the Dockerfile
scan, the image scan and the manifests scan, read back into one :class:`ScanResult` that every renderer
takes. A `vulns gate` decision or a `vulns merge` list among them (told apart by their shape) becomes the
result's vulnerability section (:class:`factorygate.release.ReleaseResult`). A file that is none of these
becomes one input error naming it; the others are still read."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factorygate.catalog import Catalog
from factorygate.checks import INPUT_ERROR
from factorygate.engine import ScanResult, ScanStats
from factorygate.model import Finding, Location, Resource, Severity, Status, SubjectKind, Waiver
from factorygate.policy.schema import Policy
from factorygate.release import (
    ReleaseResult,
    VulnDocumentError,
    VulnSection,
    is_gate_decision,
    is_merge_list,
    vuln_section,
)

MAX_REPORT_BYTES = 1024 * 1024 * 1024  # a report of MAX_FINDINGS findings is well under this
_SUBJECT_OF_KIND = {
    SubjectKind.KUBERNETES_WORKLOAD: "manifest",
    SubjectKind.KUBERNETES_BUNDLE: "manifest",
    SubjectKind.DOCKERFILE: "dockerfile",
    SubjectKind.IMAGE: "image",
}
_STAT_FIELDS = ("resources", "workloads", "dockerfiles", "images", "exempt_workloads", "input_errors")


class ReportError(ValueError):
    """Why a file is not a factorygate JSON report."""


@dataclass
class Combined:
    """What the reports read so far add up to."""

    findings: dict[Finding, None] = field(default_factory=dict)  # ordered, identical findings once
    inputs: dict[str, None] = field(default_factory=dict)
    stats: ScanStats = field(default_factory=ScanStats)
    thresholds: list[Severity] = field(default_factory=list)
    as_of: list[dt.date] = field(default_factory=list)
    errors: list[Finding] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # sha256 of a report read -> its path
    vulnerabilities: list[VulnSection] = field(default_factory=list)


def _str(value: object, what: str, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ReportError(f"{what} is not a string")
    return value


def _strings(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ReportError(f"{what} is not a list of strings")
    return tuple(value)


def _dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReportError(f"{what} is not an object")
    return value


def _enum(cls: Any, value: object, what: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise ReportError(f"{what} {value!r} is not one of {', '.join(m.value for m in cls)}") from None


def finding_from_dict(d: object, what: str = "finding") -> Finding:
    """The :class:`Finding` a report-v1 finding object describes (the inverse of ``finding_dict``)."""
    d = _dict(d, what)
    loc = _dict(d.get("location"), f"{what}.location")
    line = loc.get("line")
    if line is not None and (not isinstance(line, int) or isinstance(line, bool) or line < 1):
        raise ReportError(f"{what}.location.line is not a positive integer")
    res = d.get("resource")
    resource = None
    if res is not None:
        res = _dict(res, f"{what}.resource")
        resource = Resource(
            kind=_str(res.get("kind"), f"{what}.resource.kind"),
            name=_str(res.get("name"), f"{what}.resource.name"),
            namespace=_str(res.get("namespace"), f"{what}.resource.namespace", optional=True),
            api_version=_str(res.get("apiVersion"), f"{what}.resource.apiVersion", optional=True),
        )
    w = d.get("waiver")
    waiver = None
    if w is not None:
        w = _dict(w, f"{what}.waiver")
        expired = w.get("expired", False)
        if not isinstance(expired, bool):
            raise ReportError(f"{what}.waiver.expired is not a boolean")
        waiver = Waiver(
            justification=_str(w.get("justification"), f"{what}.waiver.justification"),
            approver=_str(w.get("approver"), f"{what}.waiver.approver"),
            expires=_str(w.get("expires"), f"{what}.waiver.expires"),
            source=_str(w.get("source"), f"{what}.waiver.source"),
            expired=expired,
        )
    return Finding(
        check=_str(d.get("check"), f"{what}.check"),
        status=_enum(Status, d.get("status"), f"{what}.status"),
        severity=_enum(Severity, d.get("severity"), f"{what}.severity"),
        message=_str(d.get("message"), f"{what}.message"),
        location=Location(
            file=_str(loc.get("file"), f"{what}.location.file"),
            line=line,
            path=_str(loc.get("path"), f"{what}.location.path", optional=True),
            source=_str(loc.get("source"), f"{what}.location.source", optional=True),
        ),
        requirements=_strings(d.get("requirements", []), f"{what}.requirements"),
        nist=_strings(d.get("nist", []), f"{what}.nist"),
        cci=_strings(d.get("cci", []), f"{what}.cci"),
        resource=resource,
        container=_str(d.get("container"), f"{what}.container", optional=True),
        title=_str(d.get("title", ""), f"{what}.title"),
        remediation=_str(d.get("remediation", ""), f"{what}.remediation"),
        waiver=waiver,
    )


def _subjects(summary: dict[str, Any], findings: list[Finding], catalog: Catalog) -> set[str]:
    """The subject kinds a report covered: its ``summary.subjects`` (schema 1.1), else what its counts
    and its findings' checks show."""
    listed = summary.get("subjects")
    if isinstance(listed, list) and all(isinstance(s, str) for s in listed):
        return set(listed)
    kinds: set[str] = set()
    if summary.get("dockerfiles"):
        kinds.add("dockerfile")
    if summary.get("images"):
        kinds.add("image")
    if summary.get("resources") or summary.get("workloads"):
        kinds.add("manifest")
    for f in findings:
        meta = catalog.checks.get(f.check)
        if meta is not None:
            kinds.add(_SUBJECT_OF_KIND[meta.subject])
    return kinds


def _load(path: str) -> tuple[str, dict[str, Any]]:
    """(sha256, document) of a file that looks like a factorygate report (tool and schema version), or
    like a `vulns gate` decision or `vulns merge` list."""
    try:
        if Path(path).stat().st_size > MAX_REPORT_BYTES:
            raise ReportError(f"larger than {MAX_REPORT_BYTES // (1024 * 1024)} MiB")
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ReportError(f"cannot read: {e.strerror or e}") from None
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        raise ReportError("not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"not JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise ReportError("not JSON (nested too deeply)") from None
    if is_gate_decision(doc) or is_merge_list(doc):
        return hashlib.sha256(raw).hexdigest(), doc
    if not isinstance(doc, dict) or not isinstance(doc.get("tool"), dict) or doc["tool"].get("name") != "factorygate":
        raise ReportError("not a factorygate JSON report (no tool.name factorygate; write one with --format json)")
    version = doc.get("schema_version")
    if not isinstance(version, str) or version.split(".")[0] != "1":
        raise ReportError(f"unsupported report schema_version {version!r} (this factorygate reads 1.x)")
    return hashlib.sha256(raw).hexdigest(), doc


def _stats(summary: dict[str, Any], subjects: set[str]) -> ScanStats:
    counts = {}
    for name in _STAT_FIELDS:
        value = summary.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ReportError(f"summary.{name} is not a count")
        counts[name] = value
    seconds = summary.get("seconds", 0.0)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        raise ReportError("summary.seconds is not a number")
    return ScanStats(**counts, seconds=float(seconds), subjects=subjects)


def read_report(path: str, combined: Combined, catalog: Catalog) -> None:
    """Add one report to ``combined``; raise :class:`ReportError` (nothing added) when it is not one."""
    digest, doc = _load(path)
    if digest in combined.digests:
        return  # the same report given twice counts once
    if is_gate_decision(doc) or is_merge_list(doc):
        try:
            section = vuln_section(doc, path)
        except VulnDocumentError as e:
            raise ReportError(str(e)) from None
        combined.digests[digest] = path
        combined.vulnerabilities.append(section)
        combined.inputs[path] = None
        if section.as_of is not None:
            combined.as_of.append(dt.date.fromisoformat(section.as_of))
        return
    sections = []
    for i, v in enumerate(doc.get("vulnerabilities") or []):  # a combined report written by `report -f json`
        try:
            sections.append(vuln_section(v, _dict(v, f"vulnerabilities[{i}]").get("source") or path))
        except VulnDocumentError as e:
            raise ReportError(f"vulnerabilities[{i}]: {e}") from None
    raw_findings = doc.get("findings")
    if not isinstance(raw_findings, list):
        raise ReportError("findings is not a list")
    findings = [finding_from_dict(f, f"findings[{i}]") for i, f in enumerate(raw_findings)]
    summary = _dict(doc.get("summary", {}), "summary")
    threshold = _enum(Severity, _dict(doc.get("policy", {}), "policy").get("threshold", "medium"), "policy.threshold")
    inputs = _strings(doc.get("inputs", []), "inputs")
    as_of = None
    if doc.get("as_of") is not None:
        try:
            as_of = dt.date.fromisoformat(_str(doc.get("as_of"), "as_of"))
        except ValueError:
            raise ReportError(f"as_of {doc.get('as_of')!r} is not an ISO date") from None
    stats = _stats(summary, _subjects(summary, findings, catalog))
    # everything is valid: add it
    combined.digests[digest] = path
    combined.findings.update(dict.fromkeys(findings))
    combined.inputs.update(dict.fromkeys(inputs))
    combined.stats.add(stats)
    combined.stats.seconds += stats.seconds
    combined.thresholds.append(threshold)
    combined.vulnerabilities.extend(sections)
    if as_of is not None:
        combined.as_of.append(as_of)


def _reevaluate(f: Finding, as_of: dt.date) -> Finding:
    """A waived finding whose waiver has expired by ``as_of`` fails again, as a scan on that day would say."""
    w = f.waiver
    if f.status is not Status.WAIVED or w is None:
        return f
    try:
        expired = dt.date.fromisoformat(w.expires) < as_of
    except ValueError:
        return f
    if not expired:
        return f
    message = f"{f.message} (waiver by {w.approver} expired on {w.expires})"
    return f._replace(status=Status.FAIL, message=message, waiver=w._replace(expired=True))


def combine_reports(
    paths: Sequence[str],
    catalog: Catalog,
    policy: Policy | None = None,
    as_of: dt.date | None = None,
) -> ScanResult:
    """One result from the reports at ``paths``. Without ``policy``, the default policy with the strictest
    of the reports' thresholds. With ``as_of``, waivers expired by then no longer apply. A file that is
    not a report is an input-error finding naming it."""
    combined = Combined()
    for path in paths:
        try:
            read_report(path, combined, catalog)
        except ReportError as e:
            combined.stats.input_errors += 1
            combined.errors.append(
                Finding(
                    check=INPUT_ERROR,
                    status=Status.ERROR,
                    severity=Severity.HIGH,
                    message=f"not read: {e}",
                    location=Location(path),
                    title="Report could not be read",
                )
            )
    findings = [*combined.errors, *(_reevaluate(f, as_of) if as_of else f for f in combined.findings)]
    if policy is None:
        policy = Policy.default()
        if combined.thresholds:
            policy = policy.with_threshold(min(combined.thresholds))
    return ReleaseResult(
        findings=findings,
        catalog=catalog,
        policy=policy,
        inputs=list(combined.inputs),
        stats=combined.stats,
        as_of=as_of or (max(combined.as_of) if combined.as_of else dt.date.today()),
        vulnerabilities=combined.vulnerabilities,
    )
