"""OSCAL assessment results (and a plan of action and milestones for what is open), JSON, OSCAL 1.1.

One finding per evaluated requirement, targeting its NIST SP 800-53 rev5 control (``cm-7_smt.a``,
``ac-6.10_obj``); one observation per requirement with each failing subject as relevant evidence; one
risk per requirement that is not satisfied (``deviation-approved`` when every failure is waived).
Every UUID is a uuid5 of content, so the same scan gives the same document but for its timestamps.
"""

from __future__ import annotations

import json
import re
from typing import Any, TextIO

from factorygate import __version__
from factorygate.engine import ScanResult
from factorygate.model import Finding, Status
from factorygate.render.evidence import (
    MAX_LISTED,
    EvidenceOptions,
    RequirementEvidence,
    content_uuid,
    finding_details,
    finding_line,
    fix_text,
    nist_controls,
    oscal_control,
    requirement_evidence,
    subject,
    waiver_comments,
    where,
)

OSCAL_VERSION = "1.2.3"  # the version of the official schema the tests validate against
NS = "https://factorygate.dev/ns/oscal"
_SPACE = re.compile(r"\s+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _line(text: str) -> str:
    """A value for OSCAL's string type: one line, no leading or trailing space, never empty."""
    return _SPACE.sub(" ", text).strip() or "-"


def _prop(name: str, value: str) -> dict[str, str]:
    return {"name": name, "ns": NS, "value": _line(value)}


def _ts(options: EvidenceOptions) -> str:
    return options.timestamp().isoformat().replace("+00:00", "Z")


class _Builder:
    """Collects the parts of one OSCAL result (shared by the assessment results and the POA&M)."""

    def __init__(self, result: ScanResult, options: EvidenceOptions) -> None:
        self.result = result
        self.stamp = _ts(options)
        self.tool_uuid = content_uuid("tool", "factorygate")
        self.origins = [{"actors": [{"type": "tool", "actor-uuid": self.tool_uuid}]}]
        self.inventory: dict[str, dict[str, Any]] = {}
        self.observations: list[dict[str, Any]] = []
        self.risks: list[dict[str, Any]] = []
        self.findings: list[dict[str, Any]] = []
        self.open: list[tuple[RequirementEvidence, dict[str, Any], dict[str, Any], dict[str, Any]]] = []
        self.unassessed: dict[str, list[str]] = {"not_reviewed": [], "not_applicable": []}
        self.controls: list[str] = []
        for ev in requirement_evidence(result):
            self._add(ev)

    def _subject(self, f: Finding) -> dict[str, str]:
        name = subject(f)
        item = self.inventory.get(name)
        if item is None:
            item = self.inventory[name] = {
                "uuid": content_uuid("subject", name),
                "description": name,
                "props": [_prop("location", where(f))],
            }
        return {"subject-uuid": item["uuid"], "type": "inventory-item", "title": _line(name)}

    def _add(self, ev: RequirementEvidence) -> None:
        req = ev.requirement
        control, statement = oscal_control(req.ia_control)
        for other in nist_controls(req):
            reviewed, _ = oscal_control(other)
            if reviewed not in self.controls:
                self.controls.append(reviewed)
        if ev.status in self.unassessed:
            self.unassessed[ev.status].append(req.id)
            return
        failing = ev.with_status(Status.FAIL, Status.ERROR, Status.WAIVED)
        shown = (failing or ev.with_status(Status.PASS))[:MAX_LISTED]
        subjects = list({s["subject-uuid"]: s for s in map(self._subject, shown)}.values())
        digest = "\n".join(finding_line(f) for f in ev.findings)
        props = [_prop("requirement", req.id), _prop("factorygate-status", ev.status)]
        props += [_prop("cci", cci) for cci in req.cci]
        props += [_prop("check", c.id) for c in ev.checks]
        observation: dict[str, Any] = {
            "uuid": content_uuid("observation", req.id, ev.status, digest),
            "title": f"{req.id}: {req.title}",
            "description": finding_details(ev),
            "props": props,
            "methods": ["TEST"],
            "types": ["finding"] if failing else ["control-objective"],
            "origins": self.origins,
            "relevant-evidence": [{"description": finding_line(f)} for f in shown],
            "collected": self.stamp,
        }
        if subjects:
            observation["subjects"] = subjects
        self.observations.append(observation)
        finding: dict[str, Any] = {
            "uuid": content_uuid("finding", req.id, ev.status, digest),
            "title": f"{req.id}: {req.title}",
            "description": f"{req.summary}\n\n{finding_details(ev)}",
            "props": [
                _prop("requirement", req.id),
                *(_prop("nist", n) for n in nist_controls(req)),
                *props[2 : 2 + len(req.cci)],
            ],
            "origins": self.origins,
            "target": {
                "type": "statement-id" if statement else "objective-id",
                "target-id": statement or f"{control}_obj",
                "status": {
                    "state": "satisfied" if ev.status == "pass" else "not-satisfied",
                    "reason": {"pass": "pass", "fail": "fail", "waived": "fail"}.get(ev.status, "other"),
                },
            },
            "related-observations": [{"observation-uuid": observation["uuid"]}],
        }
        if ev.status != "pass":
            risk = self._risk(ev, observation["uuid"], digest)
            self.risks.append(risk)
            finding["related-risks"] = [{"risk-uuid": risk["uuid"]}]
            self.open.append((ev, observation, risk, finding))
        self.findings.append(finding)

    def _risk(self, ev: RequirementEvidence, observation_uuid: str, digest: str) -> dict[str, Any]:
        req = ev.requirement
        comments = waiver_comments(ev)
        waivers = [f.waiver for f in ev.findings if f.status is Status.WAIVED and f.waiver is not None]
        risk: dict[str, Any] = {
            "uuid": content_uuid("risk", req.id, ev.status, digest),
            "title": f"{req.id} not satisfied: {req.title}",
            "description": finding_details(ev) + (f"\n\nWaivers (risk accepted):\n{comments}" if comments else ""),
            "statement": f"{req.summary} (NIST SP 800-53 {', '.join(nist_controls(req))}, {', '.join(req.cci)})",
            "props": [_prop("requirement", req.id), _prop("severity", ev.severity.value)],
            # every failure waived: an approved deviation; any unwaived failure or error: open
            "status": "deviation-approved" if ev.status == "waived" else "open",
            "origins": self.origins,
            "remediations": [
                {
                    "uuid": content_uuid("remediation", req.id),
                    "lifecycle": "planned",
                    "title": f"Fix {req.id}",
                    "description": fix_text(ev),
                }
            ],
            "related-observations": [{"observation-uuid": observation_uuid}],
        }
        dated = [w.expires for w in waivers if _DATE.fullmatch(w.expires)]
        if dated:
            risk["deadline"] = f"{min(dated)}T23:59:59Z"
        risk["props"] += [_prop("waiver-approver", a) for a in dict.fromkeys(w.approver for w in waivers)]
        return risk

    def remarks(self) -> str:
        parts = [f"Generated by factorygate {__version__} from: {', '.join(self.result.inputs) or '(no input)'}."]
        if self.unassessed["not_applicable"]:
            parts.append("Not applicable (no subject in scope): " + ", ".join(self.unassessed["not_applicable"]) + ".")
        if self.unassessed["not_reviewed"]:
            parts.append(
                "Not reviewed (process requirements or inputs not given): "
                + ", ".join(self.unassessed["not_reviewed"])
                + "."
            )
        return "\n\n".join(parts)

    def local_definitions(self) -> dict[str, Any]:
        tool = {
            "uuid": self.tool_uuid,
            "type": "software",
            "title": "factorygate",
            "description": "factorygate security gate: Kubernetes manifests, Dockerfiles and OCI images against the "
            "DISA Container Image Creation and Deployment Guide and the Pod Security Standards.",
            "props": [{"name": "version", "value": __version__}],
            "status": {"state": "operational"},
        }
        local: dict[str, Any] = {"components": [tool]}
        if self.inventory:
            local["inventory-items"] = list(self.inventory.values())
        return local

    def metadata(self, title: str) -> dict[str, Any]:
        return {
            "title": title,
            "last-modified": self.stamp,
            "version": __version__,
            "oscal-version": OSCAL_VERSION,
        }

    def back_matter(self) -> dict[str, Any]:
        sources = self.result.catalog.sources
        return {
            "resources": [
                {
                    "uuid": content_uuid("resource", "catalog"),
                    "title": "factorygate requirement catalog",
                    "description": "Requirements evaluated: "
                    + "; ".join(f"{k}: {v.get('title')} {v.get('version') or ''}".strip() for k, v in sources.items()),
                    "props": [_prop("policy-threshold", self.result.policy.threshold.value)],
                }
            ]
        }


def _result_block(b: _Builder, host: str) -> dict[str, Any]:
    block: dict[str, Any] = {
        "uuid": content_uuid("result", host, *b.result.inputs, *(f["uuid"] for f in b.findings)),
        "title": f"factorygate assessment of {host}",
        "description": "Automated assessment of container build files, images and Kubernetes manifests.",
        "start": b.stamp,
        "end": b.stamp,
        "props": [_prop("as-of", b.result.as_of.isoformat())],
        "local-definitions": b.local_definitions(),
        "reviewed-controls": {
            "control-selections": [{"include-controls": [{"control-id": c} for c in b.controls]}],
        },
        "remarks": b.remarks(),
    }
    if b.observations:
        block["observations"] = b.observations
    if b.risks:
        block["risks"] = b.risks
    if b.findings:
        block["findings"] = b.findings
    return block


def assessment_results_dict(result: ScanResult, options: EvidenceOptions) -> dict[str, Any]:
    b = _Builder(result, options)
    host = options.host_name(result)
    back = b.back_matter()
    block = _result_block(b, host)
    return {
        "assessment-results": {
            "uuid": content_uuid("assessment-results", block["uuid"]),
            "metadata": b.metadata(f"factorygate assessment results: {host}"),
            "import-ap": {"href": "#" + back["resources"][0]["uuid"]},
            "results": [block],
            "back-matter": back,
        }
    }


def poam_dict(result: ScanResult, options: EvidenceOptions) -> dict[str, Any]:
    """A POA&M with one item per requirement that is not satisfied (failed, waived or in error)."""
    b = _Builder(result, options)
    host = options.host_name(result)
    items: list[dict[str, Any]] = []
    for ev, observation, risk, finding in b.open:
        items.append(
            {
                "uuid": content_uuid("poam-item", risk["uuid"]),
                "title": f"{ev.requirement.id}: {ev.requirement.title}",
                "description": finding_details(ev),
                "props": [_prop("requirement", ev.requirement.id), _prop("severity", ev.severity.value)],
                "origins": b.origins,
                "related-findings": [{"finding-uuid": finding["uuid"]}],
                "related-observations": [{"observation-uuid": observation["uuid"]}],
                "related-risks": [{"risk-uuid": risk["uuid"]}],
            }
        )
    poam: dict[str, Any] = {
        "uuid": content_uuid("poam", host, *(i["uuid"] for i in items)),
        "metadata": b.metadata(f"factorygate plan of action and milestones: {host}"),
        "system-id": {"identifier-type": "https://factorygate.dev/ns/host-name", "id": _line(host)},
        "local-definitions": {**b.local_definitions(), "remarks": b.remarks()},
        "poam-items": items,
        "back-matter": b.back_matter(),
    }
    open_uuids = {risk["uuid"] for _, _, risk, _ in b.open}
    if items:
        poam["observations"] = [o for _, o, _, _ in b.open]
        poam["risks"] = [r for r in b.risks if r["uuid"] in open_uuids]
        poam["findings"] = [f for _, _, _, f in b.open]
    return {"plan-of-action-and-milestones": poam}


def render_oscal(result: ScanResult, out: TextIO, options: EvidenceOptions | None = None) -> None:
    json.dump(assessment_results_dict(result, options or EvidenceOptions()), out, indent=2, ensure_ascii=False)
    out.write("\n")


def render_oscal_poam(result: ScanResult, out: TextIO, options: EvidenceOptions | None = None) -> None:
    json.dump(poam_dict(result, options or EvidenceOptions()), out, indent=2, ensure_ascii=False)
    out.write("\n")
