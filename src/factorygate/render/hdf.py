"""Heimdall Data Format (HDF, MITRE SAF exec-json): one profile per requirement source (DISA guide, Pod
Security Standards, Compliant Kubernetes), one control per requirement, one result per subject."""

from __future__ import annotations

import hashlib
import json
from typing import Any, TextIO

from factorygate import __version__
from factorygate.engine import ScanResult
from factorygate.model import Finding, Severity, Status
from factorygate.render.evidence import (
    STIG_SEVERITY,
    EvidenceOptions,
    RequirementEvidence,
    check_content,
    finding_details,
    fix_text,
    nist_controls,
    release_info,
    requirement_evidence,
    stig_release,
    subject,
    waiver_comments,
    where,
)

# Impact as InSpec STIG profiles set it; Heimdall's bands: <0.4 low, <0.7 medium, <0.9 high, >=0.9 critical.
# Impact 0 means "not applicable" to Heimdall, so the info severity stays just above it.
IMPACT = {
    Severity.INFO: 0.05,
    Severity.LOW: 0.3,
    Severity.MEDIUM: 0.5,
    Severity.HIGH: 0.7,
    Severity.CRITICAL: 0.9,
}
_RESULT_STATUS = {Status.FAIL: "failed", Status.PASS: "passed", Status.ERROR: "error", Status.WAIVED: "failed"}


def _result(f: Finding, start: str) -> dict[str, Any]:
    message = f.message
    if f.status is Status.WAIVED and f.waiver is not None:
        w = f.waiver
        message = f"{message} (waived by {w.approver} until {w.expires}: {w.justification}; risk accepted, not fixed)"
    result: dict[str, Any] = {
        "status": _RESULT_STATUS[f.status],
        "code_desc": f"{f.check}: {subject(f)} at {where(f)}",
        "start_time": start,
        "resource": subject(f),
        "resource_id": where(f),
        "message": message,  # for a pass too: Heimdall shows what was verified
    }
    if f.status is Status.ERROR:
        result["exception"] = "factorygate input or check error"
    return result


def _control(ev: RequirementEvidence, start: str) -> dict[str, Any]:
    req = ev.requirement
    results = [_result(f, start) for f in ev.findings]
    if not results:
        results = [
            {"status": "skipped", "code_desc": req.title, "start_time": start, "skip_message": finding_details(ev)}
        ]
    control: dict[str, Any] = {
        "id": req.id,
        "title": req.title,
        "desc": req.summary,
        "descriptions": [
            {"label": "default", "data": req.summary},
            {"label": "check", "data": check_content(ev)},
            {"label": "fix", "data": fix_text(ev)},
        ],
        # impact 0 is how Heimdall marks a control not applicable
        "impact": 0.0 if ev.status == "not_applicable" else IMPACT[ev.severity],
        "refs": [],
        "tags": {
            "severity": STIG_SEVERITY[ev.severity],
            "gid": req.id,
            "rid": f"{req.id}_rule",
            "stig_id": req.id,
            "nist": list(nist_controls(req)),
            "cci": list(req.cci),
            "checks": [c.id for c in ev.checks],
            "factorygate_status": ev.status,
        },
        "code": None,
        "source_location": {"ref": "factorygate/catalog/requirements.yaml", "line": None},
        "results": results,
    }
    comments = waiver_comments(ev)
    waivers = [f.waiver for f in ev.findings if f.waiver is not None and not f.waiver.expired]
    if waivers:
        control["waiver_data"] = {
            "justification": comments,
            "expiration_date": min(w.expires for w in waivers),
            "run": True,
            "skipped_due_to_waiver": False,
            "message": f"{len(waivers)} failing subject(s) waived; the control still fails until they are fixed",
        }
    return control


def hdf_dict(result: ScanResult, options: EvidenceOptions) -> dict[str, Any]:
    start = options.timestamp().isoformat().replace("+00:00", "Z")
    evidence = requirement_evidence(result)
    profiles: list[dict[str, Any]] = []
    for source in dict.fromkeys(ev.requirement.source for ev in evidence):
        rows = [ev for ev in evidence if ev.requirement.source == source]
        title, version, _, _ = stig_release(result, source)
        controls = [_control(ev, start) for ev in rows]
        identity = json.dumps([source, version, [c["id"] for c in controls]]).encode()
        profiles.append(
            {
                "name": f"factorygate-{source.lower()}",
                "title": title,
                "version": version,
                "summary": f"{title}: {release_info(result, source)}",
                "maintainer": "factorygate",
                "license": "Apache-2.0",
                "sha256": hashlib.sha256(identity).hexdigest(),
                "supports": [],
                "attributes": [],
                "groups": [{"id": c["id"], "title": c["title"], "controls": [c["id"]]} for c in controls],
                "status": "loaded",
                "controls": controls,
            }
        )
    return {
        "platform": {
            "name": "Heimdall Tools",
            "release": __version__,
            "target_id": options.host_name(result),
        },
        "version": __version__,
        "statistics": {"duration": round(result.stats.seconds, 3)},
        "profiles": profiles,
        "passthrough": {"tool": "factorygate", "inputs": result.inputs, "as_of": result.as_of.isoformat()},
    }


def render_hdf(result: ScanResult, out: TextIO, options: EvidenceOptions | None = None) -> None:
    json.dump(hdf_dict(result, options or EvidenceOptions()), out, indent=2, ensure_ascii=False)
    out.write("\n")
