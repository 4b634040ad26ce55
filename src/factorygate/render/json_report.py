"""The JSON report (schema: factorygate/schemas/report-v1.schema.json)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from itertools import islice
from typing import Any, TextIO

from factorygate import __version__
from factorygate.engine import PartialScan, ScanResult, requirement_statuses
from factorygate.model import Finding, Resource, Severity, Status

SCHEMA_ID = "https://factorygate.dev/schemas/report-v1.schema.json"
SCHEMA_VERSION = "1.1"
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # one C encoder for every line
_STR: Callable[[str], str] = json.encoder.encode_basestring  # the C function: a str as a JSON string
_VALUE: dict[object, str] = {m: m.value for e in (Status, Severity) for m in e}  # enum .value is slow


def finding_dict(f: Finding) -> dict[str, Any]:
    loc = f.location
    res = f.resource
    return {
        "check": f.check,
        "title": f.title,
        "requirements": list(f.requirements),
        "status": _VALUE[f.status],
        "severity": _VALUE[f.severity],
        "message": f.message,
        "location": {"file": loc.file, "line": loc.line, "path": loc.path, "source": loc.source},
        "resource": (
            {"kind": res.kind, "namespace": res.namespace, "name": res.name, "apiVersion": res.api_version}
            if res is not None
            else None
        ),
        "container": f.container,
        "nist": list(f.nist),
        "cci": list(f.cci),
        "remediation": f.remediation,
        "waiver": (
            {
                "source": f.waiver.source,
                "justification": f.waiver.justification,
                "approver": f.waiver.approver,
                "expires": f.waiver.expires,
                "expired": f.waiver.expired,
            }
            if f.waiver is not None
            else None
        ),
    }


class _LineEncoder:
    """Encode findings as the same JSON text ``_ENCODE(finding_dict(f))`` gives, faster: the parts a
    check or a resource shares with every finding (title, requirements, remediation, ...) are encoded
    once and reused."""

    def __init__(self) -> None:
        self._check: dict[tuple[str, Status, Severity], tuple[str, str]] = {}
        self._resource: dict[Resource | None, str] = {}
        self._file: tuple[str, str] = ("", '""')  # the last location file and its JSON (findings come by subject)

    def line(self, f: Finding) -> str:
        key = (f.check, f.status, f.severity)
        parts = self._check.get(key)
        if parts is None:
            d = finding_dict(f)
            head = _ENCODE({k: d[k] for k in ("check", "title", "requirements", "status", "severity")})[:-1]
            tail = _ENCODE({k: d[k] for k in ("nist", "cci", "remediation")})[1:-1]
            parts = self._check[key] = (head, tail)
        res = self._resource.get(f.resource)
        if res is None:
            res = self._resource[f.resource] = _ENCODE(finding_dict(f)["resource"])
        file, line, path, source = f.location
        if file is not self._file[0]:
            self._file = (file, _STR(file))
        waiver = f.waiver
        return "".join(
            (
                parts[0],
                ', "message": ',
                _STR(f.message),
                ', "location": {"file": ',
                self._file[1],
                ', "line": ',
                "null" if line is None else str(line),
                ', "path": ',
                "null" if path is None else _STR(path),
                ', "source": ',
                "null" if source is None else _STR(source),
                '}, "resource": ',
                res,
                ', "container": ',
                "null" if f.container is None else _STR(f.container),
                ", ",
                parts[1],
                ', "waiver": ',
                "null" if waiver is None else _ENCODE(finding_dict(f)["waiver"]),
                "}",
            )
        )


def summary_dict(result: ScanResult) -> dict[str, Any]:
    tally = result.counts()
    counts: Counter[Status] = Counter()
    for (status, _), n in tally.items():
        counts[status] += n
    blocking = result.blocking(tally)
    s = result.stats
    return {
        "fail": counts[Status.FAIL],
        "pass": counts[Status.PASS],
        "waived": counts[Status.WAIVED],
        "error": counts[Status.ERROR],
        "blocking": blocking,
        "exit_code": result.exit_code(),
        "resources": s.resources,
        "workloads": s.workloads,
        "dockerfiles": s.dockerfiles,
        "images": s.images,
        "exempt_workloads": s.exempt_workloads,
        "input_errors": s.input_errors,
        "seconds": round(s.seconds, 3),
        "subjects": sorted(s.subjects),
    }


def report_dict(result: ScanResult, with_findings: bool = True) -> dict[str, Any]:
    report = _report_dict(result, with_findings)
    # a ReleaseResult's vulnerability sections; a plain scan has none (and does not import release.py)
    sections = getattr(result, "vulnerabilities", ())
    if sections:
        # the `vulns gate` decisions and `vulns merge` lists of the release, as read (`report` reads them back)
        report["vulnerabilities"] = [{"source": s.source, **s.document} for s in sections]
    if getattr(result, "clusters", None):  # `factorygate audit`: per cluster coverage, workloads, scorecard
        from factorygate.audit.report import audit_json

        report["audit"] = audit_json(result)
    return report


def _report_dict(result: ScanResult, with_findings: bool) -> dict[str, Any]:
    statuses = requirement_statuses(result)
    catalog = result.catalog
    return {
        "$schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "factorygate", "version": __version__},
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "as_of": result.as_of.isoformat(),
        "inputs": result.inputs,
        "policy": {"threshold": result.policy.threshold.value},
        "summary": summary_dict(result),
        "requirements": [
            {
                "id": r.id,
                "title": r.title,
                "source": r.source,
                "ia_control": r.ia_control,
                "cci": list(r.cci),
                "automation": list(r.automation),
                "mapping": r.mapping,
                "status": statuses[r.id],
                "checks": [c.id for c in catalog.checks_for(r.id)],
            }
            for r in catalog.requirements.values()
        ],
        "findings": [finding_dict(f) for f in result.findings] if with_findings else [],
    }


class FindingLines:
    """Findings encoded as report lines ahead of rendering: a parallel scan hands each part's findings
    over as they arrive (``add_part``), so the encoding overlaps the workers' evaluation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._line = _LineEncoder().line

    def add_part(self, part: PartialScan) -> None:
        self.lines.extend(map(self._line, part.findings))

    def for_result(self, result: ScanResult) -> list[str]:
        """Every finding's line: the ones encoded ahead (the results start with the parts' findings,
        in order), then the rest (findings of the checks over the whole set)."""
        done = self.lines
        if len(done) > len(result.findings):
            raise ValueError("findings encoded ahead do not belong to this result")
        return done + list(map(self._line, result.findings[len(done) :]))


def render_json(result: ScanResult, out: TextIO, ahead: FindingLines | None = None) -> None:
    """One top-level key per line and one finding per line: diff- and grep-friendly, and fast
    (the C encoder is used; an ``indent`` would force the pure-Python one)."""
    report = report_dict(result, with_findings=False)  # the findings are written below, line by line
    out.write("{\n")
    items = list(report.items())
    for i, (key, value) in enumerate(items):
        out.write(f"{_ENCODE(key)}: ")
        if key == "findings" and result.findings:
            out.write("[\n")
            lines = iter(ahead.for_result(result) if ahead is not None else map(_LineEncoder().line, result.findings))
            # a thousand lines per write: a large report is never held twice, and few calls are made
            chunk = list(islice(lines, 1000))
            out.write(",\n".join(chunk))
            while chunk := list(islice(lines, 1000)):
                out.write(",\n")
                out.write(",\n".join(chunk))
            out.write("\n]")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out.write("[\n")
            out.write(",\n".join(map(_ENCODE, value)))
            out.write("\n]")
        else:
            out.write(_ENCODE(value))
        out.write(",\n" if i < len(items) - 1 else "\n")
    out.write("}\n")
