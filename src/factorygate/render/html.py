"""The HTML report: one self-contained file (inline CSS, JS and SVG; no network) for people.

Static parts (header, requirement and control-family summaries, charts, waivers) are rendered by
Jinja2 with autoescaping. The findings table is built in the browser from JSON embedded in a
``<script type="application/json">`` block (see :func:`script_json` for why it cannot break out),
with every string set through ``textContent``. A Content-Security-Policy allows only the page's own
script and style (by hash): nothing is fetched, and injected markup could not run even if it got in.

Jinja2 is imported on first render only: ``factorygate --version`` and the other formats do not pay
for it.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from factorygate import __version__
from factorygate.engine import ScanResult, requirement_statuses
from factorygate.model import Finding, Severity, Status, Waiver

if TYPE_CHECKING:
    import jinja2

EXPIRY_WARNING_DAYS = 30
# The findings table renders this many matching rows, then offers "show all" (a browser stays
# responsive with a few thousand rows; a big scan can have hundreds of thousands of passes).
ROW_LIMIT = 2000

NIST_FAMILIES = {
    "AC": "Access Control",
    "AT": "Awareness and Training",
    "AU": "Audit and Accountability",
    "CA": "Assessment, Authorization, and Monitoring",
    "CM": "Configuration Management",
    "CP": "Contingency Planning",
    "IA": "Identification and Authentication",
    "IR": "Incident Response",
    "MA": "Maintenance",
    "MP": "Media Protection",
    "PE": "Physical and Environmental Protection",
    "PL": "Planning",
    "PM": "Program Management",
    "PS": "Personnel Security",
    "PT": "PII Processing and Transparency",
    "RA": "Risk Assessment",
    "SA": "System and Services Acquisition",
    "SC": "System and Communications Protection",
    "SI": "System and Information Integrity",
    "SR": "Supply Chain Risk Management",
}
# Finding statuses, worst first, and requirement statuses in the order the summary lists them.
STATUS_ORDER = ("fail", "error", "waived", "pass")
REQUIREMENT_STATUS_ORDER = ("fail", "error", "waived", "pass", "not_applicable", "not_reviewed")
STATUS_LABELS = {
    "fail": "Fail",
    "error": "Error",
    "waived": "Waived",
    "pass": "Pass",
    "not_applicable": "Not applicable",
    "not_reviewed": "Not reviewed",
}
VULN_SEVERITIES = ("critical", "high", "medium", "low", "negligible", "unknown")
VULN_STATES = ("unjustified", "expired", "justified")

# Characters that must not appear raw inside a <script> element's text: "<" (</script>, <!--),
# ">" and "&" (for good measure, as in Go's html/template), U+2028/2029 (line terminators in older
# JavaScript), DEL and the C1 controls (HTML parse errors) and lone surrogates (not encodable as UTF-8).
_SCRIPT_UNSAFE = re.compile("[<>&\u007f-\u009f\u2028\u2029\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def script_json(data: object) -> str:
    """``data`` as JSON that can sit inside ``<script type="application/json">`` verbatim.

    ``json.dumps`` escapes the C0 controls, ``"`` and ``\\``; the characters above are written as
    ``\\uXXXX`` escapes, which JSON.parse turns back into the same string. Outside string literals
    JSON text never contains them, so replacing them everywhere is exact.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # str.replace is much faster than a regular expression over megabytes; the rarer characters are
    # looked for only when the text is not plain ASCII.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("\x7f", "\\u007f")
    if text.isascii():
        return text
    return _SCRIPT_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def nist_family(control: str) -> str:
    """``"AC-6 (10)"`` -> ``"AC"``; anything unexpected -> ``"other"``."""
    head = control.strip().split("-", 1)[0].upper()
    return head if head in NIST_FAMILIES else "other"


# -- the scan report ----------------------------------------------------------------------------------


class WaiverRow(NamedTuple):
    """A waiver as applied, once per (waiver, check, resource): the findings it covers are counted."""

    check: str
    title: str
    subject: str
    location: str
    source: str
    justification: str
    approver: str
    expires: str
    days_left: int | None  # None: the expiry is not a date
    state: str  # "expired", "expiring" (within EXPIRY_WARNING_DAYS), "active"
    findings: int


def waiver_rows(result: ScanResult, warn_days: int = EXPIRY_WARNING_DAYS) -> list[WaiverRow]:
    """Every waiver that matched a finding (expired ones too: they no longer waive), soonest expiry first."""
    groups: dict[tuple[Waiver, str, str], list[Finding]] = defaultdict(list)
    for f in result.findings:
        if f.waiver is not None:
            res = f.resource.display() if f.resource is not None else f.location.file
            groups[(f.waiver, f.check, res)].append(f)
    rows: list[WaiverRow] = []
    for (w, check, subject), fs in groups.items():
        try:
            days_left: int | None = (dt.date.fromisoformat(w.expires) - result.as_of).days
        except ValueError:
            days_left = None
        if w.expired or (days_left is not None and days_left < 0):
            state = "expired"
        elif days_left is not None and days_left <= warn_days:
            state = "expiring"
        else:
            state = "active"
        rows.append(
            WaiverRow(
                check=check,
                title=fs[0].title,
                subject=subject,
                location=_location_text(fs[0]),
                source=w.source,
                justification=w.justification,
                approver=w.approver,
                expires=w.expires,
                days_left=days_left,
                state=state,
                findings=len(fs),
            )
        )
    order = {"expired": 0, "expiring": 1, "active": 2}
    rows.sort(key=lambda r: (order[r.state], r.expires, r.check, r.subject))
    return rows


def requirement_rows(result: ScanResult) -> list[dict[str, Any]]:
    """Every catalog requirement with its status and the finding counts that evidence it."""
    statuses = requirement_statuses(result)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for f in result.findings:
        for rid in f.requirements:
            counts[rid][f.status.value] += 1
    rows = []
    for r in result.catalog.requirements.values():
        c = counts.get(r.id, Counter())
        rows.append(
            {
                "id": r.id,
                "title": r.title,
                "source": r.source,
                "ia_control": r.ia_control,
                "family": nist_family(r.ia_control),
                "cci": list(r.cci),
                "mapping": r.mapping,
                "status": statuses[r.id],
                "counts": {s: c[s] for s in STATUS_ORDER},
                "checks": [m.id for m in result.catalog.checks_for(r.id)],
            }
        )
    return rows


def family_rows(result: ScanResult, requirements: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """NIST SP 800-53 control families: requirement statuses and finding counts per family.

    A finding counts once per family it evidences (through the IA controls of its requirements)."""
    req_family = {r["id"]: r["family"] for r in requirements}
    req_status: dict[str, Counter[str]] = defaultdict(Counter)
    controls: dict[str, set[str]] = defaultdict(set)
    for r in requirements:
        req_status[r["family"]][r["status"]] += 1
        controls[r["family"]].add(r["ia_control"])
    findings: dict[str, Counter[str]] = defaultdict(Counter)
    for f in result.findings:
        for fam in {req_family[rid] for rid in f.requirements if rid in req_family}:
            findings[fam][f.status.value] += 1
    ordered = sorted(req_status, key=lambda k: (k == "other", k))
    rows = []
    for fam in ordered:
        rs = req_status[fam]
        worst = next((s for s in REQUIREMENT_STATUS_ORDER if rs[s]), "not_reviewed")
        rows.append(
            {
                "family": fam,
                "name": NIST_FAMILIES.get(fam, "Other"),
                "controls": sorted(controls[fam]),
                "requirements": {s: rs[s] for s in REQUIREMENT_STATUS_ORDER},
                "requirement_total": sum(rs.values()),
                "findings": {s: findings[fam][s] for s in STATUS_ORDER},
                "status": worst,
            }
        )
    return rows


def _location_text(f: Finding) -> str:
    loc = f.location
    text = loc.file if loc.line is None else f"{loc.file}:{loc.line}"
    if loc.source:
        text += f" ({loc.source})"
    return text


_VALUE: dict[object, str] = {m: m.value for e in (Status, Severity) for m in e}  # Enum.value is slow


class _RowBuilder:
    """Rows of the findings table: filter keys and cells as [class, text] segments.

    What a check (status, severity, requirements, title, remediation) or a subject (resource and
    container) shares with its other findings is built once and reused: a large scan has hundreds of
    thousands of findings over a few dozen checks."""

    def __init__(self) -> None:
        self._check: dict[tuple[str, Status, Severity], tuple[Any, ...]] = {}
        self._subject: dict[tuple[object, str | None], list[list[str]]] = {}

    def _check_parts(self, f: Finding) -> tuple[Any, ...]:
        key = (f.check, f.status, f.severity)
        parts = self._check.get(key)
        if parts is None:
            status, severity = _VALUE[f.status], _VALUE[f.severity]
            remedy = ["remedy", f"Fix: {f.remediation}"] if f.remediation and f.status is not Status.PASS else None
            parts = self._check[key] = (
                {"status": status, "severity": severity, "requirement": list(f.requirements)},
                [[f"badge st-{status}", STATUS_LABELS[status]]],
                [[f"badge sev-{severity}", severity]],
                [["mono", r] for r in f.requirements],
                ["strong", f.title or f.check],
                ["mono muted", f.check],
                remedy,
            )
        return parts

    def row(self, f: Finding) -> dict[str, Any]:
        filters, status_cell, severity_cell, requirements_cell, title, check, remedy = self._check_parts(f)
        subject = self._subject.get((f.resource, f.container))
        if subject is None:
            subject = [["strong", f.resource.display()]] if f.resource is not None else []
            if f.container:
                subject.append(["muted", f"container {f.container}"])
            self._subject[(f.resource, f.container)] = subject
        location = [["mono", _location_text(f)]]
        if f.location.path:
            location.append(["mono muted", f.location.path])
        finding = [title, check, ["", f.message]]
        if f.waiver is not None:
            w = f.waiver
            label = "Expired waiver" if w.expired else "Waived"
            finding.append(["note-waiver", f"{label} by {w.approver} until {w.expires}: {w.justification}"])
        if remedy is not None:
            finding.append(remedy)
        return {
            "f": filters,
            "cells": [status_cell, severity_cell, requirements_cell, subject, location, finding],
        }


_STATUS_RANK = {s: i for i, s in enumerate(STATUS_ORDER)}


def findings_table(result: ScanResult) -> dict[str, Any]:
    """The JSON payload of the findings table: columns, filters and rows (worst first)."""
    findings = sorted(
        result.findings,
        key=lambda f: (
            _STATUS_RANK[_VALUE[f.status]],
            -f.severity.rank,
            f.location.file,
            f.location.line or 0,
            f.check,
        ),
    )
    status_counts = Counter(_VALUE[f.status] for f in findings)
    severity_counts = Counter(_VALUE[f.severity] for f in findings)
    requirement_counts = Counter(r for f in findings for r in f.requirements)
    problems = status_counts["fail"] + status_counts["error"] + status_counts["waived"]
    return {
        "kind": "findings",
        "noun": "findings",
        "limit": ROW_LIMIT,
        "columns": ["Status", "Severity", "Requirements", "Subject", "Location", "Finding"],
        "filters": [
            {
                "key": "status",
                "label": "Status",
                "default": "fail|error|waived" if problems else "",
                "options": [
                    ["", f"All statuses ({len(findings)})"],
                    ["fail|error|waived", f"Problems: fail, error, waived ({problems})"],
                    *[[s, f"{STATUS_LABELS[s]} ({status_counts[s]})"] for s in STATUS_ORDER if status_counts[s]],
                ],
            },
            {
                "key": "severity",
                "label": "Severity",
                "default": "",
                "options": [
                    ["", "All severities"],
                    *[
                        [s.value, f"{s.value} ({severity_counts[s.value]})"]
                        for s in sorted(Severity, reverse=True)
                        if severity_counts[s.value]
                    ],
                ],
            },
            {
                "key": "requirement",
                "label": "Requirement",
                "default": "",
                "options": [
                    ["", "All requirements"],
                    *[
                        [rid, f"{rid} ({requirement_counts[rid]})"]
                        for rid in result.catalog.requirements
                        if requirement_counts[rid]
                    ],
                ],
            },
        ],
        "rows": list(map(_RowBuilder().row, findings)),
    }


def _verdict(result: ScanResult) -> dict[str, Any]:
    code = result.exit_code()
    threshold = result.policy.threshold
    blocking = sum(1 for f in result.findings if f.status is Status.FAIL and f.severity >= threshold)
    errors = sum(1 for f in result.findings if f.status is Status.ERROR)
    if code == 2:
        return {
            "state": "error",
            "label": "Error",
            "detail": f"{errors} input or check error{'s' if errors != 1 else ''}: the scan cannot vouch for "
            "what it could not read",
        }
    if code == 1:
        return {
            "state": "fail",
            "label": "Fail",
            "detail": f"{blocking} failing finding{'s' if blocking != 1 else ''} at or above {threshold.value}",
        }
    return {"state": "pass", "label": "Pass", "detail": f"no failing finding at or above {threshold.value}"}


# -- charts (pure SVG; geometry computed here, markup in the templates) -------------------------------


def donut(counts: Sequence[tuple[str, int]], radius: float = 60.0) -> dict[str, Any]:
    """Arcs of a donut chart as circle stroke dash segments (``counts``: (status, n) in drawing order)."""
    circumference = 2 * 3.141592653589793 * radius
    total = sum(n for _, n in counts)
    arcs = []
    offset = 0.0
    for key, n in counts:
        if n <= 0 or total == 0:
            continue
        length = circumference * n / total
        arcs.append(
            {
                "key": key,
                "label": STATUS_LABELS.get(key, key),
                "n": n,
                "pct": round(100 * n / total, 1),
                "dash": f"{length:.3f} {circumference - length:.3f}",
                "offset": f"{-offset:.3f}",
            }
        )
        offset += length
    return {"radius": radius, "total": total, "arcs": arcs}


def stacked_bars(
    rows: Iterable[tuple[str, str, Sequence[tuple[str, int]]]], width: float = 100.0
) -> list[dict[str, Any]]:
    """Horizontal stacked bars, each scaled to its own total (``width`` is 100%): (key, label, parts)."""
    bars = []
    for key, label, parts in rows:
        total = sum(n for _, n in parts)
        x = 0.0
        segments = []
        for part, n in parts:
            if n <= 0:
                continue
            w = width * n / total
            segments.append({"key": part, "label": STATUS_LABELS.get(part, part), "n": n, "x": x, "w": w})
            x += w
        bars.append({"key": key, "label": label, "total": total, "segments": segments})
    return bars


# -- rendering ----------------------------------------------------------------------------------------


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("factorygate.render", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["status_label"] = lambda s: STATUS_LABELS.get(s, s)
    return env


@functools.cache
def _assets() -> dict[str, str]:
    """The inline stylesheet and script, with the CSP that allows exactly them."""
    import markupsafe

    folder = resources.files("factorygate.render").joinpath("templates")
    css = folder.joinpath("report.css").read_text(encoding="utf-8")
    js = folder.joinpath("report.js").read_text(encoding="utf-8")

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    csp = (
        f"default-src 'none'; style-src {digest(css)}; script-src {digest(js)}; img-src 'none'; "
        "base-uri 'none'; form-action 'none'"
    )
    # Our own packaged files, and the CSP allows exactly these bytes.
    return {"css": markupsafe.Markup(css), "js": markupsafe.Markup(js), "csp": csp}  # noqa: S704


def _write(template: str, context: dict[str, Any], table: dict[str, Any], out: TextIO) -> None:
    env = _environment()
    # The page is rendered around a one-off placeholder that the (large) JSON then replaces: Jinja2
    # never copies megabytes of findings, and only the page itself needs the surrogate clean-up.
    placeholder = f"@@table-data-{secrets.token_hex(16)}@@"
    text = env.get_template(template).render(
        **context, **_assets(), table=table, table_json=placeholder, version=__version__
    )
    head, found, tail = text.rpartition(placeholder)
    if not found:
        raise AssertionError(f"{template} has no table_json")
    # A lone surrogate (a YAML "\ud800" escape) cannot be written as UTF-8: show it as U+FFFD.
    out.write(_SURROGATE.sub("\ufffd", head))
    out.write(script_json(table))  # no <, > or &: it cannot end the <script> element
    out.write(_SURROGATE.sub("\ufffd", tail))


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_html(result: ScanResult, out: TextIO, *, generated_at: str | None = None) -> None:
    """Write the scan report as one self-contained HTML page."""
    requirements = requirement_rows(result)
    families = family_rows(result, requirements)
    status_counts = Counter(f.status.value for f in result.findings)
    req_status_counts = Counter(r["status"] for r in requirements)
    sources: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in requirements:
        sources[r["source"]].append(r)
    waivers = waiver_rows(result)
    s = result.stats
    context = {
        "title": "factorygate scan report",
        "generated_at": generated_at or _now(),
        "as_of": result.as_of.isoformat(),
        "inputs": result.inputs,
        "threshold": result.policy.threshold.value,
        "verdict": _verdict(result),
        "status_counts": {k: status_counts[k] for k in STATUS_ORDER},
        "total_findings": len(result.findings),
        "stats": {
            "resources": s.resources,
            "workloads": s.workloads,
            "dockerfiles": s.dockerfiles,
            "images": s.images,
            "exempt workloads": s.exempt_workloads,
            "input errors": s.input_errors,
        },
        "seconds": round(s.seconds, 2),
        "donut": donut([(k, status_counts[k]) for k in STATUS_ORDER]),
        "requirement_bar": stacked_bars(
            [("requirements", "Requirements", [(k, req_status_counts[k]) for k in REQUIREMENT_STATUS_ORDER])]
        )[0],
        "family_bars": stacked_bars(
            (f["family"], f"{f['family']} {f['name']}", [(k, f["findings"][k]) for k in STATUS_ORDER])
            for f in families
            if sum(f["findings"].values())
        ),
        "sources": [
            {"id": sid, "title": result.catalog.sources.get(sid, {}).get("title") or sid, "requirements": rows}
            for sid, rows in sources.items()
        ],
        "families": families,
        "waivers": waivers,
        "waiver_alerts": sum(1 for w in waivers if w.state != "active"),
        "warn_days": EXPIRY_WARNING_DAYS,
        "vulnerabilities": _vulnerability_sections(result),
        "audit": _audit_section(result),
    }
    _write("scan.html.j2", context, findings_table(result), out)


def _audit_section(result: ScanResult) -> dict[str, Any] | None:
    """`factorygate audit`: per cluster coverage and the conformance scorecard (None for other results)."""
    if not getattr(result, "clusters", None):
        return None
    from factorygate.audit.report import audit_json

    return audit_json(result)


def _vulnerability_sections(result: ScanResult) -> list[dict[str, Any]]:
    """The release's `vulns gate` decisions and `vulns merge` lists (from `factorygate report`)."""
    from factorygate.release import vulnerabilities_of

    sections = []
    for s in vulnerabilities_of(result):
        rows = []
        for i in s.items:
            j = i.justification
            state = "blocking: " + "; ".join(i.blocking) if i.blocking else i.state
            rows.append(
                {
                    "severity": i.severity,
                    "id": i.id,
                    "package": i.package,
                    "version": i.version or "-",
                    "fixed": ", ".join(i.fixed_versions) or "-",
                    "state": state,
                    "justification": f"{j.status} by {j.author}, approved by {j.approver}, expires {j.expires}"
                    if j
                    else "-",
                }
            )
        sections.append({"source": s.source, "decision": s.decision, "reasons": list(s.reasons), "rows": rows})
    return sections


# -- the vulnerability report (``vulns merge`` and ``vulns gate`` documents) --------------------------


def _vuln_row(f: Mapping[str, Any]) -> dict[str, Any]:
    pkg = f.get("package") or {}
    severity = str(f.get("severity") or "unknown")
    ids = [["strong mono", str(f.get("id", ""))]]
    aliases = [str(a) for a in f.get("aliases") or []]
    if aliases:
        ids.append(["mono muted", ", ".join(aliases)])
    package = [["strong", f"{pkg.get('name', '')} {pkg.get('version', '')}".strip()]]
    if pkg.get("type"):
        package.append(["muted", str(pkg["type"])])
    if pkg.get("purl"):
        package.append(["mono muted", str(pkg["purl"])])
    if pkg.get("path"):
        package.append(["mono muted", str(pkg["path"])])
    fixed = [str(v) for v in f.get("fixed_versions") or []]
    details: list[list[str]] = []
    if f.get("title"):
        details.append(["", str(f["title"])])
    details.append(["remedy" if fixed else "muted", f"Fixed in {', '.join(fixed)}" if fixed else "No fix published"])
    if f.get("fix_published"):
        details.append(["muted", f"fix published {f['fix_published']}"])
    by_scanner = f.get("severity_by_scanner") or {}
    if len(set(by_scanner.values())) > 1:
        details.append(
            ["note-waiver", "Scanners disagree: " + ", ".join(f"{k} {v}" for k, v in sorted(by_scanner.items()))]
        )
    state = f.get("status")
    filters: dict[str, Any] = {"severity": severity, "scanner": [str(s) for s in f.get("scanners") or []]}
    cells: list[list[list[str]]] = [[[f"badge sev-{severity}", severity]], ids, package, details]
    if state is not None:
        filters["status"] = str(state)
        blocking = [str(b) for b in f.get("blocking") or []]
        filters["blocking"] = "yes" if blocking else "no"
        gate = [[f"badge st-{state}", str(state)]]
        just = f.get("justification")
        if just:
            who = f"by {just.get('author', '?')}, approved by {just.get('approver', '?')}"
            gate.append(
                ["muted", f"{just.get('status', '')} {who}, expires {just.get('expires')} ({just.get('at', '')})"]
            )
        gate.extend(["block", f"Blocks: {b}"] for b in blocking)
        cells.insert(0, gate)
    cells.append([["mono", s] for s in filters["scanner"]])
    return {"f": filters, "cells": cells}


def vulns_table(doc: Mapping[str, Any]) -> dict[str, Any]:
    findings = list(doc.get("findings") or [])
    rank = {s: i for i, s in enumerate(VULN_SEVERITIES)}
    gate = "decision" in doc
    findings.sort(
        key=lambda f: (
            0 if f.get("blocking") else 1,
            rank.get(str(f.get("severity")), len(rank)),
            str(f.get("id", "")),
            str((f.get("package") or {}).get("name", "")),
        )
    )
    severities = Counter(str(f.get("severity") or "unknown") for f in findings)
    scanners = Counter(str(s) for f in findings for s in f.get("scanners") or [])
    filters = []
    columns = ["Severity", "Vulnerability", "Package", "Details", "Scanners"]
    if gate:
        columns.insert(0, "Gate")
        states = Counter(str(f.get("status")) for f in findings)
        blocking = sum(1 for f in findings if f.get("blocking"))
        filters.append(
            {
                "key": "status",
                "label": "Status",
                "default": "",
                "options": [["", f"All ({len(findings)})"]]
                + [[s, f"{s} ({states[s]})"] for s in VULN_STATES if states[s]],
            }
        )
        filters.append(
            {
                "key": "blocking",
                "label": "Blocking",
                "default": "",
                "options": [["", "Blocking or not"], ["yes", f"Blocking ({blocking})"], ["no", "Not blocking"]],
            }
        )
    filters.append(
        {
            "key": "severity",
            "label": "Severity",
            "default": "",
            "options": [["", "All severities"]]
            + [[s, f"{s} ({severities[s]})"] for s in VULN_SEVERITIES if severities[s]],
        }
    )
    filters.append(
        {
            "key": "scanner",
            "label": "Scanner",
            "default": "",
            "options": [["", "All scanners"]] + [[s, f"{s} ({n})"] for s, n in sorted(scanners.items())],
        }
    )
    return {
        "kind": "vulnerabilities",
        "noun": "vulnerabilities",
        "limit": ROW_LIMIT,
        "columns": columns,
        "filters": filters,
        "rows": [_vuln_row(f) for f in findings],
    }


def render_vulns_html(doc: dict[str, Any], out: TextIO, *, generated_at: str | None = None) -> None:
    """Write a ``vulns merge`` document (merged findings) or a ``vulns gate`` decision as HTML."""
    findings = list(doc.get("findings") or [])
    gate = "decision" in doc
    severities = Counter(str(f.get("severity") or "unknown") for f in findings)
    severity_bar = stacked_bars([("severity", "Findings by severity", [(s, severities[s]) for s in VULN_SEVERITIES])])[
        0
    ]
    summary = doc.get("summary") or {}
    context: dict[str, Any] = {
        "title": "factorygate vulnerability gate" if gate else "factorygate vulnerability report",
        "generated_at": generated_at or _now(),
        "gate": gate,
        "decision": str(doc.get("decision", "")),
        "go": bool(doc.get("go")),
        "as_of": doc.get("as_of"),
        "reasons": [str(r) for r in doc.get("reasons") or []],
        "policy": doc.get("policy") or {},
        "inputs": [i if isinstance(i, dict) else {"path": str(i), "digest": ""} for i in doc.get("inputs") or []],
        "scanners": [str(s) for s in doc.get("scanners") or []],
        "total_findings": len(findings),
        "severity_counts": [(s, severities[s]) for s in VULN_SEVERITIES],
        "severity_bar": severity_bar,
        "state_counts": [(s, int(summary.get(s, 0))) for s in VULN_STATES] if gate else [],
        "blocking": int(summary.get("blocking", 0)) if gate else 0,
        "only_in": {str(k): [str(x) for x in v] for k, v in (doc.get("only_in") or {}).items()},
        "conflicts": [
            {
                "id": str(c.get("id", "")),
                "package": str(c.get("package", "")),
                "by_scanner": sorted((str(k), str(v)) for k, v in (c.get("severity_by_scanner") or {}).items()),
            }
            for c in doc.get("severity_conflicts") or []
        ],
    }
    _write("vulns.html.j2", context, vulns_table(doc), out)


__all__ = [
    "EXPIRY_WARNING_DAYS",
    "family_rows",
    "findings_table",
    "nist_family",
    "render_html",
    "render_vulns_html",
    "requirement_rows",
    "script_json",
    "vulns_table",
    "waiver_rows",
]
