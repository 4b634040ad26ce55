"""The JSON report (schema: factorygate/schemas/report-v1.schema.json)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any, TextIO

from factorygate import __version__
from factorygate.engine import ScanResult, requirement_statuses
from factorygate.model import Finding, Status

SCHEMA_ID = "https://factorygate.dev/schemas/report-v1.schema.json"
SCHEMA_VERSION = "1.0"


def finding_dict(f: Finding) -> dict[str, Any]:
    loc = f.location
    res = f.resource
    return {
        "check": f.check,
        "title": f.title,
        "requirements": list(f.requirements),
        "status": f.status.value,
        "severity": f.severity.value,
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


def summary_dict(result: ScanResult) -> dict[str, Any]:
    counts = Counter(f.status for f in result.findings)
    threshold = result.policy.threshold
    blocking = sum(1 for f in result.findings if f.status is Status.FAIL and f.severity >= threshold)
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
        "exempt_workloads": s.exempt_workloads,
        "input_errors": s.input_errors,
        "seconds": round(s.seconds, 3),
    }


def report_dict(result: ScanResult) -> dict[str, Any]:
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
        "findings": [finding_dict(f) for f in result.findings],
    }


def render_json(result: ScanResult, out: TextIO) -> None:
    """One top-level key per line and one finding per line: diff- and grep-friendly, and fast
    (the C encoder is used; an ``indent`` would force the pure-Python one)."""
    report = report_dict(result)
    out.write("{\n")
    items = list(report.items())
    for i, (key, value) in enumerate(items):
        out.write(f"{json.dumps(key)}: ")
        if isinstance(value, list) and value and isinstance(value[0], dict):
            out.write("[\n")
            out.write(",\n".join(json.dumps(v, ensure_ascii=False) for v in value))
            out.write("\n]")
        else:
            out.write(json.dumps(value, ensure_ascii=False))
        out.write(",\n" if i < len(items) - 1 else "\n")
    out.write("}\n")
