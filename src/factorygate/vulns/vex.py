"""Export justifications as VEX: OpenVEX v0.2.0 and CycloneDX 1.5 VEX.

Only *active* justifications (approved on or before ``as_of`` and not expired) are exported, one
statement (OpenVEX) or vulnerability (CycloneDX) per justification that covers at least one finding,
listing the purls of the findings it covers. Findings without a justification are not stated.

Status mapping (factorygate -> OpenVEX / CycloneDX ``analysis``):

==============  ==================================================  ===============================================
factorygate     OpenVEX v0.2.0                                      CycloneDX 1.5 analysis
==============  ==================================================  ===============================================
not_affected    not_affected; justification = vex_justification    not_affected; justification mapped from the
                (if given), impact_statement = the text             OpenVEX label (table below), detail = the text
false_positive  not_affected; justification = vex_justification,    false_positive (the scanner's match is wrong);
                default vulnerable_code_not_present                 detail = the text
mitigated       not_affected; justification = vex_justification,    not_affected; justification mapped, default
                default inline_mitigations_already_exist            protected_by_mitigating_control
risk_accepted   affected; action_statement "Risk accepted ..."      exploitable; response [will_not_fix]
fix_pending     affected; action_statement "Fix pending ..."        exploitable; response [update]
==============  ==================================================  ===============================================

Why: a false positive is a scanner matching a package version that does not contain the vulnerable
code (most often a distribution backport, or a misidentified version), which is OpenVEX's
``vulnerable_code_not_present``; ``component_not_present`` would claim the package is absent, which
the SBOM contradicts. (An author who knows better sets ``vex_justification``.) Risk accepted and fix
pending are both *known affected*: ``under_investigation`` would say the impact is not yet known,
which is not true once someone approved a plan, so both are ``affected`` with the plan as the
OpenVEX ``action_statement`` (required for affected) and as the CycloneDX ``response``.

OpenVEX justification -> CycloneDX justification:
component_not_present and vulnerable_code_not_present -> code_not_present;
vulnerable_code_not_in_execute_path -> code_not_reachable;
vulnerable_code_cannot_be_controlled_by_adversary -> requires_environment;
inline_mitigations_already_exist -> protected_by_mitigating_control.

Both documents are deterministic: their ids are UUIDv5s of their content.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

from factorygate.vulns.justify import NOT_AFFECTED_STATUSES, Justifiable, Justification, JustificationBook
from factorygate.vulns.model import Package

OPENVEX_CONTEXT = "https://openvex.dev/ns/v0.2.0"
_NAMESPACE = uuid.UUID("1b0c6f8e-52a4-5f0e-9c55-8d7a3c4e2f61")  # fixed: document ids are UUIDv5 under it

_OPENVEX_DEFAULT_JUSTIFICATION = {
    "false_positive": "vulnerable_code_not_present",
    "mitigated": "inline_mitigations_already_exist",
}
_CDX_JUSTIFICATION = {
    "component_not_present": "code_not_present",
    "vulnerable_code_not_present": "code_not_present",
    "vulnerable_code_not_in_execute_path": "code_not_reachable",
    "vulnerable_code_cannot_be_controlled_by_adversary": "requires_environment",
    "inline_mitigations_already_exist": "protected_by_mitigating_control",
}
_CDX_RESPONSE = {"risk_accepted": ["will_not_fix"], "fix_pending": ["update"]}


def purl_of(package: Package) -> str | None:
    """The package's purl, or one built from its type, name and version (None without a type)."""
    if package.purl:
        return package.purl
    if not package.type or not package.name:
        return None
    name = "/".join(quote(part, safe="") for part in package.name.split("/"))
    version = f"@{quote(package.version, safe='')}" if package.version else ""
    return f"pkg:{package.type}/{name}{version}"


def _statements(
    book: JustificationBook, findings: Iterable[Justifiable], as_of: dt.date, image: str | None
) -> list[tuple[Justification, list[str], list[str]]]:
    """(justification, sorted purls, sorted other ids of the findings) for each active justification in use."""
    covered: dict[int, tuple[set[str], set[str]]] = {}
    for f in findings:
        match = book.match(f, as_of, image)
        purl = purl_of(f.package)
        if match.state != "justified" or match.justification is None or purl is None:
            continue
        index = next(i for i, e in enumerate(book.entries) if e is match.justification)
        purls, ids = covered.setdefault(index, (set(), set()))
        purls.add(purl)
        ids.update({f.id, *f.aliases})
    out = []
    for index in sorted(covered):
        entry = book.entries[index]
        purls, ids = covered[index]
        others = sorted(i for i in ids if i.casefold() != entry.vulnerability.casefold())
        out.append((entry, sorted(purls), others))
    out.sort(key=lambda t: (t[0].vulnerability, t[1]))
    return out


def _action(j: Justification) -> str:
    what = "Risk accepted" if j.status == "risk_accepted" else "Fix pending"
    return (
        f"{what} (approved by {j.approver} on {j.approved.isoformat()}, until {j.expires.isoformat()}): "
        f"{j.justification}"
    )


def _doc_id(kind: str, body: object) -> uuid.UUID:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return uuid.uuid5(_NAMESPACE, f"{kind}\n{hashlib.sha256(canonical.encode()).hexdigest()}")


def _timestamp(ts: dt.datetime) -> str:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    return ts.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def openvex(
    book: JustificationBook,
    findings: Iterable[Justifiable],
    author: str,
    timestamp: dt.datetime,
    *,
    as_of: dt.date | None = None,
    image: str | None = None,
) -> dict[str, Any]:
    """An OpenVEX v0.2.0 document stating each active justification for the findings it covers.

    ``as_of`` (default: the timestamp's date) decides which justifications are active."""
    when = as_of or timestamp.date()
    statements = []
    for j, purls, others in _statements(book, findings, when, image):
        vuln: dict[str, Any] = {"name": j.vulnerability}
        if others:
            vuln["aliases"] = others
        stmt: dict[str, Any] = {
            "vulnerability": vuln,
            "products": [{"@id": p} for p in purls],
        }
        if j.status in NOT_AFFECTED_STATUSES:
            stmt["status"] = "not_affected"
            label = j.vex_justification or _OPENVEX_DEFAULT_JUSTIFICATION.get(j.status)
            if label:
                stmt["justification"] = label
            stmt["impact_statement"] = j.justification
        else:
            stmt["status"] = "affected"
            stmt["action_statement"] = _action(j)
        stmt["status_notes"] = (
            f"factorygate status {j.status}; author {j.author}, approver {j.approver}, "
            f"approved {j.approved.isoformat()}, expires {j.expires.isoformat()}"
        )
        statements.append(stmt)
    ts = _timestamp(timestamp)
    body = {"author": author, "timestamp": ts, "statements": statements}
    return {
        "@context": OPENVEX_CONTEXT,
        "@id": _doc_id("openvex", body).urn,
        "author": author,
        "timestamp": ts,
        "version": 1,
        "statements": statements,
    }


def cyclonedx_vex(
    book: JustificationBook,
    findings: Iterable[Justifiable],
    author: str,
    timestamp: dt.datetime,
    *,
    as_of: dt.date | None = None,
    image: str | None = None,
) -> dict[str, Any]:
    """A CycloneDX 1.5 VEX document: the covered packages as components (bom-ref = purl), and one
    vulnerability per active justification in use, its ``analysis`` mapped as in the module docstring."""
    when = as_of or timestamp.date()
    vulnerabilities: list[dict[str, Any]] = []
    components: dict[str, dict[str, Any]] = {}
    for j, purls, others in _statements(book, findings, when, image):
        analysis: dict[str, Any]
        if j.status == "false_positive":
            analysis = {"state": "false_positive"}
        elif j.status in NOT_AFFECTED_STATUSES:
            analysis = {"state": "not_affected"}
            label = j.vex_justification or _OPENVEX_DEFAULT_JUSTIFICATION.get(j.status)
            if label:
                analysis["justification"] = _CDX_JUSTIFICATION[label]
        else:
            analysis = {"state": "exploitable", "response": _CDX_RESPONSE[j.status]}
        analysis["detail"] = j.justification if j.status in NOT_AFFECTED_STATUSES else _action(j)
        analysis["firstIssued"] = f"{j.approved.isoformat()}T00:00:00Z"
        vuln: dict[str, Any] = {
            "bom-ref": f"{j.vulnerability}#{len(vulnerabilities)}",
            "id": j.vulnerability,
        }
        if others:
            vuln["references"] = [{"id": o, "source": {"name": _source_of(o)}} for o in others]
        vuln["analysis"] = analysis
        vuln["affects"] = [{"ref": p} for p in purls]
        vuln["properties"] = [
            {"name": "factorygate:justification:status", "value": j.status},
            {"name": "factorygate:justification:author", "value": j.author},
            {"name": "factorygate:justification:approver", "value": j.approver},
            {"name": "factorygate:justification:expires", "value": j.expires.isoformat()},
        ]
        vulnerabilities.append(vuln)
        for p in purls:
            components.setdefault(p, _component(p))
    ts = _timestamp(timestamp)
    body = {"author": author, "timestamp": ts, "vulnerabilities": vulnerabilities}
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": _doc_id("cyclonedx", body).urn,
        "version": 1,
        "metadata": {
            "timestamp": ts,
            "authors": [{"name": author}],
            "tools": {"components": [{"type": "application", "name": "factorygate"}]},
        },
        "components": [components[p] for p in sorted(components)],
        "vulnerabilities": vulnerabilities,
    }


def _component(purl: str) -> dict[str, Any]:
    """A minimal component for a purl ("pkg:type/ns/name@version?qualifiers#subpath")."""
    core = purl.split("#", 1)[0].split("?", 1)[0]
    path, version = core, ""
    if "@" in core.rsplit("/", 1)[-1]:
        path, _, version = core.rpartition("@")
    name = unquote(path.rsplit("/", 1)[-1]) if "/" in path else ""
    version = unquote(version)
    comp: dict[str, Any] = {"type": "library", "bom-ref": purl, "name": name or purl, "purl": purl}
    if version:
        comp["version"] = version
    return comp


def _source_of(vuln_id: str) -> str:
    prefix = vuln_id.split("-", 1)[0].upper()
    return {"CVE": "NVD", "GHSA": "GitHub"}.get(prefix, prefix or "unknown")
