"""The audit's own report sections (per cluster: coverage, workloads, conformance scorecard), for the
renderers. Renderers reach this only for an audit result (``result.clusters``), so a scan never imports it."""

from __future__ import annotations

from typing import Any

from factorygate.audit.run import ClusterAudit
from factorygate.engine import ScanResult
from factorygate.model import Finding, Location, Requirement, Severity, Status

CONFORMANCE_SOURCE = "REFDESIGN"  # the scorecard's pseudo-STIG in the checklist formats
CONFORMANCE_INFO = {
    "title": "DoD Enterprise DevSecOps Reference Design conformance (factorygate audit)",
    "version": "V1R1",
    "date": "",
}
# A reference-design capability is evidence for configuration settings (CM-6) and, for the interconnects
# (mesh, network policy, admission), for boundary protection: factorygate cites CM-6 b / CCI-000366, the
# control the STIG uses for "configured as the baseline requires" (V-242383 above).
CONFORMANCE_NIST = "CM-6 b"
CONFORMANCE_CCI = ("CCI-000366",)
# state -> (factorygate requirement status, checklist wording); unknown never reads as a pass
# (unknown: a kind that would show the capability could not be read -> "error", Not_Reviewed in a checklist,
# with the evidence of why listed)
STATE_STATUS = {"present": "pass", "misconfigured": "fail", "absent": "fail", "unknown": "error"}


def sections_of(result: ScanResult) -> list[ClusterAudit]:
    return list(getattr(result, "clusters", ()) or ())


def cluster_json(section: ClusterAudit) -> dict[str, Any]:
    return {
        "cluster": section.cluster,
        "source": section.source,
        "coverage": {
            "forbidden": section.forbidden,
            "not_served": section.missing,
            "errors": section.errors,
            "not_evaluated": section.not_evaluated,
        },
        "pods": section.pods,
        "workloads": section.workloads,
        "conformance": section.conformance_json(),
    }


def audit_json(result: ScanResult) -> dict[str, Any] | None:
    sections = sections_of(result)
    return {"clusters": [cluster_json(s) for s in sections]} if sections else None


def audit_text(result: ScanResult) -> list[str]:
    """Per cluster: what was read, what could not be, and the conformance scorecard."""
    lines: list[str] = []
    for s in sections_of(result):
        lines.append(f"Cluster {s.cluster} ({s.source}): {len(s.workloads)} workloads running {s.pods} pods")
        for key, why in s.forbidden.items():
            lines.append(f"  coverage gap: {key}: {why}")
        if s.missing:
            lines.append(f"  APIs not served (not installed): {', '.join(s.missing)}")
        for cid, why in s.not_evaluated.items():
            lines.append(f"  not evaluated: {cid}: {why}")
        for err in s.errors:
            lines.append(f"  error: {err}")
        conf = s.conformance_text()
        if conf:
            lines.append("  Reference-design conformance")
            lines += [f"    {ln}" for ln in conf]
        lines.append("")
    return lines


def conformance_rows(result: ScanResult) -> list[tuple[Requirement, str, Severity, Finding]]:
    """One checklist row per cluster and capability: (requirement, status, severity, finding)."""
    rows = []
    sections = sections_of(result)
    for s in sections:
        for r in s.conformance_json():
            cap = str(r.get("capability"))
            rid = cap if len(sections) == 1 else f"{cap} ({s.cluster})"
            state = str(r.get("state"))
            status = STATE_STATUS.get(state, "error")
            baseline = str(r.get("baseline"))
            severity = Severity.HIGH if baseline == "REQUIRED" else Severity.LOW
            evidence = [str(e) for e in r.get("evidence") or ()]
            impl = r.get("implementation") or "none found"
            req = Requirement(
                id=rid,
                title=f"{r.get('title') or cap} ({baseline})",
                ia_control=CONFORMANCE_NIST,
                cci=CONFORMANCE_CCI,
                automation=("cluster",),
                summary=f"{baseline} by {r.get('source')}" + (f" Note: {r.get('note')}" if r.get("note") else ""),
                source=CONFORMANCE_SOURCE,
            )
            fstatus = {"pass": Status.PASS, "fail": Status.FAIL}.get(status, Status.ERROR)
            finding = Finding(
                check=f"conformance-{cap}",
                status=fstatus,
                severity=severity,
                message=f"{state}: {impl}" + (f": {'; '.join(evidence)}" if evidence else ""),
                location=Location(s.cluster),
                nist=(CONFORMANCE_NIST,),
                cci=CONFORMANCE_CCI,
                title=str(r.get("title") or cap),
            )
            rows.append((req, status, severity, finding))
    return rows


def conformance_evidence(result: ScanResult) -> list[Any]:
    """The scorecard as checklist rows (render.evidence.RequirementEvidence), one per cluster and capability."""
    from factorygate.model import CheckMeta, SubjectKind
    from factorygate.render.evidence import RequirementEvidence

    out = []
    for req, status, severity, finding in conformance_rows(result):
        check = CheckMeta(
            id=finding.check,
            subject=SubjectKind.KUBERNETES_CLUSTER,
            requirements=(req.id,),
            severity=severity,
            title=finding.title,
            description=f"factorygate audit recognises the implementations of this capability from their API "
            f"objects (docs/conformance.md). Baseline: {req.summary}",
            remediation="Deploy and configure an implementation of the capability, or declare an unknown one "
            "in the policy (conformance.implementations).",
            nist=(CONFORMANCE_NIST,),
            cci=CONFORMANCE_CCI,
        )
        out.append(RequirementEvidence(req, status, severity, (check,), (finding,)))
    return out
