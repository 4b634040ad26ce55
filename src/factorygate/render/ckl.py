"""STIG Viewer 2 checklist (CKL, XML): one iSTIG for the DISA container guide, one for the Pod Security
Standards, one VULN per requirement. Element names and order are those STIG Viewer writes (checklist
schema 2.5); see docs/ckl.md for the status rules."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TextIO

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
    xml_safe,
)

ASSET_FIELDS = (
    "ROLE",
    "ASSET_TYPE",
    "MARKING",
    "HOST_NAME",
    "HOST_IP",
    "HOST_MAC",
    "HOST_FQDN",
    "TARGET_COMMENT",
    "TECH_AREA",
    "TARGET_KEY",
    "WEB_OR_DATABASE",
    "WEB_DB_SITE",
    "WEB_DB_INSTANCE",
)
SI_FIELDS = (
    "version",
    "classification",
    "customname",
    "stigid",
    "description",
    "filename",
    "releaseinfo",
    "title",
    "uuid",
    "notice",
    "source",
)
VULN_TAIL = ("STATUS", "FINDING_DETAILS", "COMMENTS", "SEVERITY_OVERRIDE", "SEVERITY_JUSTIFICATION")


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = xml_safe(text)
    return el


def _stig_ref(result: ScanResult, source: str) -> str:
    title, version, _, _ = stig_release(result, source)
    return f"{title} :: Version {version}, {release_info(result, source)}"


def _vuln_attributes(
    ev: RequirementEvidence, result: ScanResult, stig_uuid: str, target_key: str
) -> list[tuple[str, str]]:
    req = ev.requirement
    attrs = [
        ("Vuln_Num", req.id),
        ("Severity", STIG_SEVERITY[ev.severity]),
        ("Group_Title", req.id),
        ("Rule_ID", f"{req.id}_rule"),
        ("Rule_Ver", req.id),
        ("Rule_Title", req.title),
        ("Vuln_Discuss", req.summary),
        ("IA_Controls", ", ".join(nist_controls(req))),
        ("Check_Content", check_content(ev)),
        ("Fix_Text", fix_text(ev)),
        ("False_Positives", ""),
        ("False_Negatives", ""),
        ("Documentable", "false"),
        ("Mitigations", ""),
        ("Potential_Impact", ""),
        ("Third_Party_Tools", ""),
        ("Mitigation_Control", ""),
        ("Responsibility", ""),
        ("Security_Override_Guidance", ""),
        ("Check_Content_Ref", "M"),
        ("Weight", "10.0"),
        ("Class", "Unclass"),
        ("STIGRef", _stig_ref(result, req.source)),
        ("TargetKey", target_key),
        ("STIG_UUID", stig_uuid),
    ]
    attrs += [("CCI_REF", cci) for cci in req.cci]
    return attrs


def build_checklist(result: ScanResult, options: EvidenceOptions, evidence: list[RequirementEvidence]) -> ET.Element:
    asset = options.asset
    root = ET.Element("CHECKLIST")
    asset_el = ET.SubElement(root, "ASSET")
    values = {
        "ROLE": asset.role,
        "ASSET_TYPE": asset.asset_type,
        "MARKING": asset.marking,
        "HOST_NAME": options.host_name(result),
        "HOST_IP": asset.host_ip,
        "HOST_MAC": asset.host_mac,
        "HOST_FQDN": asset.host_fqdn,
        "TARGET_COMMENT": asset.target_comment,
        "TECH_AREA": asset.tech_area,
        "TARGET_KEY": asset.target_key,
        "WEB_OR_DATABASE": "true" if asset.web_or_database else "false",
        "WEB_DB_SITE": asset.web_db_site,
        "WEB_DB_INSTANCE": asset.web_db_instance,
    }
    for tag in ASSET_FIELDS:
        _text(asset_el, tag, values[tag])
    stigs = ET.SubElement(root, "STIGS")
    for source in checklist_sources(result):
        rows = [ev for ev in evidence if ev.requirement.source == source]
        if not rows:
            continue
        title, version, _, _ = stig_release(result, source)
        stig_uuid = content_uuid("stig", source, version, release_info(result, source))
        info = {
            "version": version,
            "classification": asset.classification,
            "customname": "",
            "stigid": stig_id(source),
            "description": f"{title}, evaluated by factorygate {__version__}",
            "filename": f"factorygate-{source.lower()}.xml",
            "releaseinfo": release_info(result, source),
            "title": title,
            "uuid": stig_uuid,
            "notice": "terms-of-use",
            "source": "factorygate",
        }
        istig = ET.SubElement(stigs, "iSTIG")
        stig_info = ET.SubElement(istig, "STIG_INFO")
        for name in SI_FIELDS:
            si = ET.SubElement(stig_info, "SI_DATA")
            _text(si, "SID_NAME", name)
            if info[name]:  # STIG Viewer leaves SID_DATA out when there is no value
                _text(si, "SID_DATA", info[name])
        for ev in rows:
            vuln = ET.SubElement(istig, "VULN")
            for name, value in _vuln_attributes(ev, result, stig_uuid, asset.target_key):
                data = ET.SubElement(vuln, "STIG_DATA")
                _text(data, "VULN_ATTRIBUTE", name)
                _text(data, "ATTRIBUTE_DATA", value)
            tail = {
                "STATUS": ev.ckl_status,
                "FINDING_DETAILS": finding_details(ev),
                "COMMENTS": waiver_comments(ev),
                "SEVERITY_OVERRIDE": "",
                "SEVERITY_JUSTIFICATION": "",
            }
            for tag in VULN_TAIL:
                _text(vuln, tag, tail[tag])
    return root


def render_ckl(result: ScanResult, out: TextIO, options: EvidenceOptions | None = None) -> None:
    options = options or EvidenceOptions()
    root = build_checklist(result, options, requirement_evidence(result, checklist_sources(result)))
    ET.indent(root, space="\t")
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(f"<!--DISA STIG Viewer :: 2.18 (written by factorygate {__version__})-->\n")
    out.write(ET.tostring(root, encoding="unicode", short_empty_elements=False))
    out.write("\n")
