"""The reports of `factorygate vulns merge|scan|gate`: JSON, text, SARIF 2.1.0 and CSV.

- **JSON**: :func:`merged_json` (merge, scan) and ``Decision.to_json()`` (gate), as before.
- **text**: an aligned table per severity (highest first): id, package, installed, fixed, scanners. The
  gate's text starts with GO / NO-GO and the reasons, then the blocking findings, the justified ones
  (status, approver, expiry) and the rest. Plain characters only, no colours.
- **SARIF 2.1.0**: one rule per vulnerability id (with GitHub's ``security-severity``), one result per
  finding; the level follows the severity (critical/high: error, medium: warning, others: note). Result
  properties carry the aliases, scanners, purl and per-scanner severities. For the gate, blocking
  findings are errors, justified ones carry a SARIF ``suppression`` (accepted, with the approver), and
  the run's properties carry the decision and its reasons.
- **CycloneDX 1.5** (scan only): :func:`scan_cyclonedx`, the matcher's observations as a BOM with
  ``vulnerabilities`` that `vulns merge` reads back as the scanner ``factorygate-osv``.
- **CSV**: one row per finding (``csv`` module, every field quoted). A cell that a spreadsheet would
  read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a
  leading ``'``. The gate's CSV starts each row with the decision; reasons about the run rather than a
  finding (``two scanners are required``) are rows with no finding.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from factorygate import __version__
from factorygate.vulns.model import SEVERITIES, Cvss, Observation, Package

if TYPE_CHECKING:  # the gate imports the justifications' validation (pydantic): merge and scan need not
    from factorygate.vulns.gate import Decision, FindingDecision
    from factorygate.vulns.merge import MergedFinding, MergeResult

FORMATS = ("json", "text", "sarif", "csv", "html")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVELS = {"critical": "error", "high": "error", "medium": "warning"}  # others: note
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A representative CVSS score per severity, for GitHub's security-severity when no score is known.
_SEVERITY_SCORES = {"critical": 9.5, "high": 8.0, "medium": 5.5, "low": 2.0, "negligible": 0.1, "unknown": 0.0}


# --- JSON ----------------------------------------------------------------------------------------


def _finding_json(f: MergedFinding) -> dict[str, Any]:
    p = f.package
    return {
        "id": f.id,
        "aliases": list(f.aliases),
        "package": {"name": p.name, "version": p.version, "type": p.type, "purl": p.purl},
        "severity": f.severity,
        "severity_by_scanner": f.severity_by_scanner,
        "fixed_versions": list(f.fixed_versions),
        "scanners": list(f.scanners),
        "title": f.title,
    }


def merged_json(result: MergeResult) -> dict[str, Any]:
    """The merged view: every finding once, what only one scanner saw, where scanners disagree."""
    return {
        "scanners": list(result.scanners),
        "summary": summary(result.findings),
        "findings": [_finding_json(f) for f in result.findings],
        "only_in": {
            s: [f"{f.id} {f.package.name}@{f.package.version}" for f in fs] for s, fs in result.only_in.items()
        },
        "severity_conflicts": [
            {"id": f.id, "package": f.package.name, "severity_by_scanner": f.severity_by_scanner}
            for f in result.severity_conflicts
        ],
    }


def summary(findings: Iterable[MergedFinding | FindingDecision]) -> dict[str, int]:
    """Findings per severity, highest first (every severity listed)."""
    counts = dict.fromkeys(reversed(SEVERITIES), 0)
    for f in findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    return counts


# --- text ----------------------------------------------------------------------------------------


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Rows (the first is the header) as left-aligned columns; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        (indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1]).rstrip()
        for row in rows
    ]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _version(package: Package) -> str:
    return package.version or "-"


def _fixed(versions: Sequence[str]) -> str:
    return ", ".join(versions) or "-"


def _by_severity(findings: Sequence[Any], header: Sequence[str], row: Any) -> list[str]:
    lines: list[str] = []
    for severity in reversed(SEVERITIES):
        group = [f for f in findings if f.severity == severity]
        if group:
            lines.append(f"{severity.upper()} ({len(group)})")
            lines.extend(_table([header, *(row(f) for f in group)]))
            lines.append("")
    return lines


_FINDING_HEADER = ("ID", "PACKAGE", "INSTALLED", "FIXED", "SCANNERS")


def _finding_row(f: MergedFinding | FindingDecision) -> list[str]:
    return [
        _one_line(f.id),
        _one_line(f.package.name),
        _one_line(_version(f.package)),
        _one_line(_fixed(f.fixed_versions)),
        ", ".join(f.scanners),
    ]


def merged_text(result: MergeResult) -> str:
    """The findings as aligned tables, one per severity, then what only one scanner saw and the conflicts."""
    counts = ", ".join(f"{n} {s}" for s, n in summary(result.findings).items() if n)
    lines = [
        f"{len(result.findings)} findings ({counts or 'none'}); scanners: {', '.join(result.scanners) or 'none'}",
        "",
    ]
    lines.extend(_by_severity(result.findings, _FINDING_HEADER, _finding_row))
    for scanner, only in result.only_in.items():
        if only:
            lines.append(f"only {scanner} found {len(only)}: " + ", ".join(f"{f.id} ({f.package.name})" for f in only))
    if result.severity_conflicts:
        lines.append(f"scanners disagree on the severity of {len(result.severity_conflicts)}:")
        for f in result.severity_conflicts:
            by = ", ".join(f"{s} {sev}" for s, sev in f.severities)
            lines.append(f"  {f.id} ({f.package.name}): {by}")
    return "\n".join(lines).rstrip("\n") + "\n"


def decision_text(decision: Decision) -> str:
    """GO / NO-GO, the reasons, then the blocking, justified and remaining findings."""
    policy = decision.policy.to_json()
    lines = [
        f"{'GO' if decision.go else 'NO-GO'}  as of {decision.as_of.isoformat()}; scanners: "
        f"{', '.join(decision.scanners) or 'none'}; blocking: {', '.join(policy['block_severities']) or 'none'}"
        + (f", fixes older than {policy['max_fix_age_days']} days" if policy["max_fix_age_days"] is not None else ""),
        "",
    ]
    if decision.reasons:
        lines.append(f"Reasons ({len(decision.reasons)}):")
        lines.extend(f"  {_one_line(r)}" for r in decision.reasons)
        lines.append("")
    blocking = [f for f in decision.findings if f.blocking]
    justified = [f for f in decision.findings if f.state == "justified"]
    rest = [f for f in decision.findings if not f.blocking and f.state != "justified"]
    if blocking:
        lines.append(f"Blocking findings ({len(blocking)}):")
        rows = [["SEVERITY", *_FINDING_HEADER, "WHY"]]
        rows.extend([f.severity, *_finding_row(f), "; ".join(f.blocking)] for f in blocking)
        lines.extend(_table(rows))
        lines.append("")
    if justified:
        lines.append(f"Justified findings ({len(justified)}):")
        rows = [["SEVERITY", "ID", "PACKAGE", "INSTALLED", "STATUS", "APPROVER", "EXPIRES", "WHERE"]]
        rows.extend(
            [
                f.severity,
                f.id,
                _one_line(f.package.name),
                _one_line(_version(f.package)),
                f.justification_status or "-",
                _one_line(f.justification_approver or "-"),
                f.justification_expires or "-",
                f.justification_at or "-",
            ]
            for f in justified
        )
        lines.extend(_table(rows))
        lines.append("")
    if rest:
        lines.append(f"Other findings ({len(rest)}, not blocking):")
        rows = [["SEVERITY", *_FINDING_HEADER, "STATUS"]]
        rows.extend([f.severity, *_finding_row(f), _state(f)] for f in rest)
        lines.extend(_table(rows))
        lines.append("")
    if not decision.findings:
        lines.append("No findings.")
    return "\n".join(lines).rstrip("\n") + "\n"


def _state(f: FindingDecision) -> str:
    if f.state == "expired":
        return f"justification expired {f.justification_expires}"
    return f.state


# --- SARIF ---------------------------------------------------------------------------------------


def _help_uri(vid: str) -> str:
    if vid.startswith("CVE-"):
        return f"https://nvd.nist.gov/vuln/detail/{vid}"
    if vid.startswith("GHSA-"):
        return f"https://github.com/advisories/{vid}"
    return f"https://osv.dev/vulnerability/{quote(vid, safe='')}"


def _security_severity(f: MergedFinding) -> str:
    scores = [c.score for c in f.cvss if c.score is not None]
    return f"{max(scores) if scores else _SEVERITY_SCORES.get(f.severity, 0.0):.1f}"


def _location_uri(f: MergedFinding) -> str:
    where = f.package.path or (f.targets[0] if f.targets else "") or f.package.name
    return quote(where.lstrip("/"), safe="/._-~@+")


def _fingerprint(f: MergedFinding | FindingDecision) -> str:
    key = "\0".join((f.id, f.package.purl or f"{f.package.type}/{f.package.name}@{f.package.version}"))
    return hashlib.sha256(key.encode()).hexdigest()


def _sarif_rules(findings: Sequence[MergedFinding]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """One rule per vulnerability id (the highest severity and first non-empty title among its findings)."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for f in sorted(findings, key=lambda f: (f.id, -SEVERITIES.index(f.severity))):
        if f.id in index:
            rule = rules[index[f.id]]
            if rule["shortDescription"]["text"] == f.id and f.title:
                rule["shortDescription"]["text"] = rule["fullDescription"]["text"] = _one_line(f.title)
            continue
        index[f.id] = len(rules)
        rules.append(
            {
                "id": f.id,
                "name": "Vulnerability",
                "shortDescription": {"text": _one_line(f.title) or f.id},
                "fullDescription": {"text": _one_line(f.title) or f.id},
                "helpUri": _help_uri(f.id),
                "help": {"text": f"{f.id}: see {_help_uri(f.id)}"},
                "defaultConfiguration": {"level": _SARIF_LEVELS.get(f.severity, "note")},
                "properties": {
                    "tags": ["security", "vulnerability", f.severity],
                    "security-severity": _security_severity(f),
                    "aliases": list(f.aliases),
                },
            }
        )
    return rules, index


def _sarif_result(f: MergedFinding, rule_index: int) -> dict[str, Any]:
    p = f.package
    fixed = f"; fixed in {', '.join(f.fixed_versions)}" if f.fixed_versions else "; no fix yet"
    return {
        "ruleId": f.id,
        "ruleIndex": rule_index,
        "level": _SARIF_LEVELS.get(f.severity, "note"),
        "message": {"text": f"{f.id} ({f.severity}) in {p.name} {p.version}{fixed}. {_one_line(f.title)}".rstrip()},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": _location_uri(f)},
                    "region": {"startLine": 1},
                },
                "logicalLocations": [{"name": p.name, "fullyQualifiedName": p.purl or p.name, "kind": "package"}],
            }
        ],
        "partialFingerprints": {"vulnerabilityPackage/v1": _fingerprint(f)},
        "properties": {
            "severity": f.severity,
            "severity_by_scanner": f.severity_by_scanner,
            "aliases": list(f.aliases),
            "scanners": list(f.scanners),
            "purl": p.purl,
            "package": p.name,
            "installed_version": p.version,
            "fixed_versions": list(f.fixed_versions),
        },
    }


def _sarif_log(
    rules: list[dict[str, Any]], results: list[dict[str, Any]], properties: dict[str, Any]
) -> dict[str, Any]:
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "factorygate",
                        "version": __version__,
                        "informationUri": "https://factorygate.dev/docs/vulns",
                        "rules": rules,
                    }
                },
                "results": results,
                "properties": properties,
            }
        ],
    }


def merged_sarif(result: MergeResult) -> dict[str, Any]:
    """SARIF 2.1.0: a rule per vulnerability id, a result per finding."""
    rules, index = _sarif_rules(result.findings)
    results = [_sarif_result(f, index[f.id]) for f in result.findings]
    return _sarif_log(rules, results, {"scanners": list(result.scanners), "summary": summary(result.findings)})


def decision_sarif(decision: Decision, findings: Sequence[MergedFinding]) -> dict[str, Any]:
    """The gate's findings as SARIF: blocking ones are errors, justified ones are suppressed (accepted)."""
    rules, index = _sarif_rules(findings)
    by_key = {(f.id, f.package): f for f in findings}
    results: list[dict[str, Any]] = []
    for d in decision.findings:
        merged = by_key.get((d.id, d.package))
        if merged is None:  # the gate decided on a finding it was not given (not with decide()'s own output)
            continue
        res = _sarif_result(merged, index[d.id])
        if d.blocking:
            res["level"] = "error"
        elif res["level"] == "error":
            res["level"] = "warning"  # seen, not blocking
        res["properties"].update(
            {
                "status": d.state,
                "blocking": list(d.blocking),
                "justification": None
                if d.justification_status is None
                else {
                    "status": d.justification_status,
                    "approver": d.justification_approver,
                    "expires": d.justification_expires,
                    "at": d.justification_at,
                },
            }
        )
        if d.state == "justified":
            res["suppressions"] = [
                {
                    "kind": "external",
                    "status": "accepted",
                    "justification": f"{d.justification_status} (approved by {d.justification_approver}, "
                    f"expires {d.justification_expires}; {d.justification_at})",
                }
            ]
        results.append(res)
    doc = decision.to_json()
    properties = {
        "decision": doc["decision"],
        "go": decision.go,
        "reasons": list(decision.reasons),
        "as_of": doc["as_of"],
        "policy": doc["policy"],
        "scanners": list(decision.scanners),
        "summary": doc["summary"],
    }
    return _sarif_log(rules, results, properties)


# --- CSV -----------------------------------------------------------------------------------------


def safe_cell(value: object) -> str:
    """A CSV cell that spreadsheets do not evaluate: a leading ``'`` before = + - @ tab or CR."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([safe_cell(c) for c in row] for row in rows)
    return out.getvalue()


MERGED_CSV_HEADER = (
    "severity",
    "id",
    "aliases",
    "package",
    "installed",
    "fixed",
    "type",
    "purl",
    "scanners",
    "severity_by_scanner",
    "title",
)


def _merged_row(f: MergedFinding) -> list[object]:
    p = f.package
    return [
        f.severity,
        f.id,
        " ".join(f.aliases),
        p.name,
        p.version,
        " ".join(f.fixed_versions),
        p.type,
        p.purl or "",
        " ".join(f.scanners),
        " ".join(f"{s}={sev}" for s, sev in f.severities),
        _one_line(f.title),
    ]


def merged_csv(result: MergeResult) -> str:
    """One row per merged finding."""
    return _csv(MERGED_CSV_HEADER, (_merged_row(f) for f in result.findings))


DECISION_CSV_HEADER = (
    "decision",
    "severity",
    "id",
    "aliases",
    "package",
    "installed",
    "fixed",
    "purl",
    "scanners",
    "status",
    "blocking",
    "justification_status",
    "approver",
    "expires",
    "justification_at",
)


def decision_csv(decision: Decision) -> str:
    """One row per finding with its state; reasons about the run itself are rows without a finding."""
    verdict = "go" if decision.go else "no-go"
    finding_reasons = {r for d in decision.findings for r in _finding_reasons(d)}
    rows: list[list[object]] = [
        [verdict, "", "", "", "", "", "", "", "", "", reason, "", "", "", ""]
        for reason in decision.reasons
        if reason not in finding_reasons
    ]
    for d in decision.findings:
        p = d.package
        rows.append(
            [
                verdict,
                d.severity,
                d.id,
                " ".join(d.aliases),
                p.name,
                p.version,
                " ".join(d.fixed_versions),
                p.purl or "",
                " ".join(d.scanners),
                d.state,
                "; ".join(d.blocking),
                d.justification_status or "",
                d.justification_approver or "",
                d.justification_expires or "",
                d.justification_at or "",
            ]
        )
    return _csv(DECISION_CSV_HEADER, rows)


def _finding_reasons(d: FindingDecision) -> list[str]:
    version = f" {d.package.version}" if d.package.version else ""
    return [f"{d.id} in {d.package.name}{version}: {why}" for why in d.blocking]


# --- CycloneDX (vulns scan) ----------------------------------------------------------------------

SCAN_TOOL = "factorygate-osv"  # the tool name reports.py reads back as the scanner "factorygate-osv"
SOURCE_PATH_PROPERTY = "factorygate:package:source_path"
_CDX_METHODS = {"2.0": "CVSSv2", "3.0": "CVSSv3", "3.1": "CVSSv31", "4.0": "CVSSv4"}


def _reference_source(vid: str) -> dict[str, str]:
    if vid.startswith("CVE-"):
        return {"name": "NVD", "url": _help_uri(vid)}
    if vid.startswith("GHSA-"):
        return {"name": "GitHub Advisory Database", "url": _help_uri(vid)}
    return {"name": "OSV", "url": _help_uri(vid)}


def _rating(c: Cvss) -> dict[str, Any]:
    rating: dict[str, Any] = {"source": {"name": c.source}, "method": _CDX_METHODS.get(c.version, "other")}
    if c.score is not None:
        rating["score"] = c.score
    if c.vector:
        rating["vector"] = c.vector
    return rating


def scan_cyclonedx(
    observations: Sequence[Observation], subject: dict[str, Any] | None, now: dt.datetime
) -> dict[str, Any]:
    """The matcher's findings as a CycloneDX 1.5 BOM with ``vulnerabilities``.

    ``subject`` is the scanned SBOM's ``metadata.component`` (the image), copied as this document's
    subject. Each affected package is a component (its SBOM path as the ``factorygate:package:source_path``
    property); each advisory is a vulnerability with its aliases as references, its severity as a rating
    from factorygate-osv (CVSS vectors as further ratings without a severity of their own), and per
    affected component the installed version (affected) and the fixed versions (unaffected).
    """
    refs: dict[Package, str] = {}
    used: set[str] = set()
    components: list[dict[str, Any]] = []
    groups: dict[tuple[str, tuple[str, ...], str, tuple[Cvss, ...], str, str | None], list[Observation]] = {}
    for o in sorted(observations, key=lambda o: (o.vuln_id, o.package.purl or "", o.package.path or "")):
        if o.package not in refs:
            p = o.package
            ref = p.purl or f"{p.type}/{p.name}@{p.version}"
            if ref in used:
                ref = f"{ref}#{len(used)}"
            used.add(ref)
            refs[p] = ref
            component: dict[str, Any] = {"type": "library", "bom-ref": ref, "name": p.name}
            if p.version:
                component["version"] = p.version
            if p.purl:
                component["purl"] = p.purl
            if p.path:
                component["properties"] = [{"name": SOURCE_PATH_PROPERTY, "value": p.path}]
            components.append(component)
        key = (o.vuln_id, tuple(sorted(o.aliases)), o.severity, o.cvss, o.title, o.published)
        groups.setdefault(key, []).append(o)
    vulnerabilities: list[dict[str, Any]] = []
    for n, ((vid, aliases, severity, cvss, title, published), group) in enumerate(groups.items()):
        vuln: dict[str, Any] = {
            "bom-ref": f"vulnerability-{n + 1}",
            "id": vid,
            "source": _reference_source(vid),
            "references": [{"id": a, "source": _reference_source(a)} for a in aliases],
            "ratings": [{"source": {"name": SCAN_TOOL}, "severity": severity}, *(_rating(c) for c in cvss)],
            "affects": [
                {
                    "ref": refs[o.package],
                    "versions": [
                        *([{"version": o.package.version, "status": "affected"}] if o.package.version else []),
                        *({"version": v, "status": "unaffected"} for v in o.fixed_versions),
                    ],
                }
                for o in group
            ],
        }
        if title:
            vuln["description"] = title
        if published:
            vuln["published"] = published if "T" in published else f"{published[:10]}T00:00:00Z"
        vulnerabilities.append(vuln)
    metadata: dict[str, Any] = {
        "timestamp": now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tools": {"components": [{"type": "application", "name": SCAN_TOOL, "version": __version__}]},
    }
    if subject:
        metadata["component"] = subject
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": metadata,
        "components": components,
        "vulnerabilities": vulnerabilities,
    }
