"""SARIF 2.1.0 for code scanning (GitHub, GitLab, Azure DevOps).

Results are the failed and waived findings (waived ones carry a suppression) and input errors;
passes are counted in the run's properties. Every result has a physical location with a real
start line and a logical location naming the Kubernetes resource.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePosixPath
from typing import Any, TextIO

from factorygate import __version__
from factorygate.checks import INPUT_ERROR
from factorygate.engine import ScanResult
from factorygate.model import CheckMeta, Finding, Severity, Status

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub's security-severity bands: critical >= 9.0, high >= 7.0, medium >= 4.0, low > 0.
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.5",
}


def _rule(meta: CheckMeta, severity: Severity) -> dict[str, Any]:
    tags = ["security", "kubernetes", *meta.requirements, *meta.nist, *meta.cci]
    return {
        "id": meta.id,
        "name": "".join(p.capitalize() for p in meta.id.split("-")),
        "shortDescription": {"text": meta.title},
        "fullDescription": {"text": meta.description},
        "help": {
            "text": f"{meta.remediation}\nRequirements: {', '.join(meta.requirements)}",
            "markdown": f"**Remediation:** {meta.remediation}\n\n**Requirements:** {', '.join(meta.requirements)}"
            f" | **NIST 800-53:** {', '.join(meta.nist)} | **CCI:** {', '.join(meta.cci)}",
        },
        "defaultConfiguration": {"level": _LEVEL[severity]},
        "properties": {
            "tags": tags,
            "precision": "high",
            "security-severity": _SECURITY_SEVERITY[severity],
            "requirements": list(meta.requirements),
            "nist": list(meta.nist),
            "cci": list(meta.cci),
        },
    }


_INPUT_ERROR_RULE: dict[str, Any] = {
    "id": INPUT_ERROR,
    "name": "InputError",
    "shortDescription": {"text": "Input could not be read or parsed"},
    "fullDescription": {"text": "The file could not be read or parsed; it was not evaluated."},
    "help": {"text": "Fix the file so it parses, or remove it from the scan."},
    "defaultConfiguration": {"level": "error"},
    "properties": {"tags": ["input"], "precision": "very-high", "security-severity": "7.0"},
}


def _uri(file: str) -> str:
    p = PurePosixPath(file.replace("\\", "/"))
    if p.is_absolute():
        return p.as_uri()
    return str(p)


def _result(f: Finding, rule_index: dict[str, int]) -> dict[str, Any]:
    who = f.resource.display() if f.resource else f.location.file
    if f.container:
        who += f" container {f.container}"
    region: dict[str, Any] = {"startLine": f.location.line or 1}
    physical = {"artifactLocation": {"uri": _uri(f.location.file)}, "region": region}
    location: dict[str, Any] = {"physicalLocation": physical}
    if f.resource is not None:
        fq = "/".join(x for x in (f.resource.namespace, f.resource.kind, f.resource.name, f.container) if x)
        location["logicalLocations"] = [{"name": f.resource.name, "fullyQualifiedName": fq, "kind": "resource"}]
    fingerprint = hashlib.sha256(
        "\x1f".join((f.check, f.location.file, who, f.location.path or "")).encode()
    ).hexdigest()[:32]
    result: dict[str, Any] = {
        "ruleId": f.check,
        "ruleIndex": rule_index[f.check],
        "level": "error" if f.status is Status.ERROR else _LEVEL[f.severity],
        "message": {"text": f"{who}: {f.message}"},
        "locations": [location],
        "partialFingerprints": {"factorygateFinding/v1": fingerprint},
        "properties": {
            "severity": f.severity.value,
            "status": f.status.value,
            "requirements": list(f.requirements),
            "path": f.location.path,
        },
    }
    if f.waiver is not None and f.status is Status.WAIVED:
        result["suppressions"] = [
            {
                "kind": "inSource" if f.waiver.source == "inline" else "external",
                "status": "accepted",
                "justification": (
                    f"{f.waiver.justification} (approved by {f.waiver.approver}, expires {f.waiver.expires})"
                ),
            }
        ]
    return result


def sarif_dict(result: ScanResult) -> dict[str, Any]:
    catalog = result.catalog
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for cid, meta in catalog.checks.items():
        if result.policy.enabled(cid):
            index[cid] = len(rules)
            rules.append(_rule(meta, result.policy.severity_of(cid, meta.severity)))
    index[INPUT_ERROR] = len(rules)
    rules.append(_INPUT_ERROR_RULE)
    reported = [f for f in result.findings if f.status is not Status.PASS and f.check in index]
    errors = [f for f in result.findings if f.status is Status.ERROR]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "factorygate",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": "https://github.com/factorygate/factorygate",
                        "rules": rules,
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": not errors,
                        "exitCode": result.exit_code(),
                        "toolExecutionNotifications": [
                            {"level": "error", "message": {"text": f"{e.location.file}: {e.message}"}} for e in errors
                        ],
                    }
                ],
                "results": [_result(f, index) for f in reported],
                "properties": {
                    "passed": sum(1 for f in result.findings if f.status is Status.PASS),
                    "threshold": result.policy.threshold.value,
                },
            }
        ],
    }


def render_sarif(result: ScanResult, out: TextIO) -> None:
    json.dump(sarif_dict(result), out, indent=1)
    out.write("\n")
