"""STIG Viewer 3 checklist (CKLB, JSON): the CKL's content in STIG Viewer 3's layout (cklb_version 1.0)."""

from __future__ import annotations

import json
from typing import Any, TextIO

from factorygate import __version__
from factorygate.engine import ScanResult
from factorygate.render.evidence import (
    STIG_SEVERITY,
    EvidenceOptions,
    RequirementEvidence,
    check_content,
    checklist_sources,
    content_uuid,
    finding_details,
    fix_text,
    nist_controls,
    release_info,
    requirement_evidence,
    stig_id,
    stig_release,
    waiver_comments,
)

CKLB_STATUS = {
    "Open": "open",
    "NotAFinding": "not_a_finding",
    "Not_Applicable": "not_applicable",
    "Not_Reviewed": "not_reviewed",
}


def _rule(ev: RequirementEvidence, stig_uuid: str, classification: str) -> dict[str, Any]:
    req = ev.requirement
    return {
        "uuid": content_uuid("rule", stig_uuid, req.id),
        "stig_uuid": stig_uuid,
        "group_id": req.id,
        "group_id_src": req.id,
        "group_tree": [{"id": req.id, "title": req.title, "description": "<GroupDescription></GroupDescription>"}],
        "group_title": req.title,
        "rule_id": req.id,
        "rule_id_src": f"{req.id}_rule",
        "rule_version": req.id,
        "rule_title": req.title,
        "severity": STIG_SEVERITY[ev.severity],
        "weight": "10.0",
        "classification": classification.title(),
        "discussion": req.summary,
        "check_content": check_content(ev),
        "check_content_ref": {"href": "", "name": "M"},
        "fix_text": fix_text(ev),
        "false_positives": "",
        "false_negatives": "",
        "documentable": "false",
        "mitigations": "",
        "potential_impacts": "",
        "third_party_tools": "",
        "mitigation_control": "",
        "responsibility": "",
        "security_override_guidance": "",
        "ia_controls": ", ".join(nist_controls(req)),
        "legacy_ids": [],
        "ccis": list(req.cci),
        "reference_identifier": None,
        "status": CKLB_STATUS[ev.ckl_status],
        "overrides": {},
        "comments": waiver_comments(ev),
        "finding_details": finding_details(ev),
    }


def checklist_dict(result: ScanResult, options: EvidenceOptions) -> dict[str, Any]:
    asset = options.asset
    evidence = requirement_evidence(result, checklist_sources(result))
    host = options.host_name(result)
    stigs: list[dict[str, Any]] = []
    for source in checklist_sources(result):
        rows = [ev for ev in evidence if ev.requirement.source == source]
        if not rows:
            continue
        title, version, _, _ = stig_release(result, source)
        stig_uuid = content_uuid("stig", source, version, release_info(result, source))
        stigs.append(
            {
                "stig_name": title,
                "display_name": title,
                "stig_id": stig_id(source),
                "release_info": release_info(result, source),
                "version": version,
                "uuid": stig_uuid,
                "reference_identifier": None,
                "size": len(rows),
                "rules": [_rule(ev, stig_uuid, asset.classification) for ev in rows],
            }
        )
    statuses = "".join(r["status"][0] for s in stigs for r in s["rules"])
    return {
        "title": f"{host} - factorygate {__version__}",
        "id": content_uuid("cklb", host, ",".join(result.inputs), statuses),
        "stigs": stigs,
        "active": True,
        "mode": 2,
        "has_path": False,
        "target_data": {
            "target_type": asset.asset_type,
            "host_name": host,
            "ip_address": asset.host_ip,
            "mac_address": asset.host_mac,
            "fqdn": asset.host_fqdn,
            "comments": asset.target_comment,
            "role": asset.role,
            "is_web_database": asset.web_or_database,
            "technology_area": asset.tech_area,
            "web_db_site": asset.web_db_site,
            "web_db_instance": asset.web_db_instance,
            "classification": asset.classification,
        },
        "cklb_version": "1.0",
    }


def render_cklb(result: ScanResult, out: TextIO, options: EvidenceOptions | None = None) -> None:
    json.dump(checklist_dict(result, options or EvidenceOptions()), out, indent=2, ensure_ascii=False)
    out.write("\n")
