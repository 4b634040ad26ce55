"""``factorygate export vap``: the Kubernetes checks as native ValidatingAdmissionPolicies.

One ``admissionregistration.k8s.io/v1`` ValidatingAdmissionPolicy per exported check, named
``factorygate-<check-id>``, with a binding of the same name: checks at or above the policy threshold
deny (``[Deny, Audit]``), the others warn (``[Warn, Audit]``). Policy parameters (registries, host
paths, sockets, sysctls, exempt namespaces) are embedded as literals, so the export is redone when the
policy changes; no paramKind is needed.

The exported policies are never more lenient than ``factorygate scan``, and are stricter where the
policy relies on something CEL cannot verify (see :func:`limitations`).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from factorygate import __version__
from factorygate.catalog import Catalog
from factorygate.export import cel
from factorygate.export import patterns as rx
from factorygate.model import CheckMeta, Severity, SubjectKind
from factorygate.policy.schema import Policy

API_VERSION = "admissionregistration.k8s.io/v1"
POLICY_KIND = "ValidatingAdmissionPolicy"
BINDING_KIND = "ValidatingAdmissionPolicyBinding"
NAME_PREFIX = "factorygate-"
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
MANAGED_BY = {"app.kubernetes.io/managed-by": "factorygate"}
# The workload kinds factorygate.facts.workload reads, as API resources: (API group, resources).
WORKLOAD_RESOURCES = (
    ("", ("pods", "pods/ephemeralcontainers", "podtemplates", "replicationcontrollers")),
    ("apps", ("daemonsets", "deployments", "replicasets", "statefulsets")),
    ("batch", ("cronjobs", "jobs")),
)


def resource_rules() -> list[dict[str, list[str]]]:
    """matchConstraints.resourceRules: every workload resource, on create and update."""
    return [
        {"apiGroups": [group], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": list(res)}
        for group, res in WORKLOAD_RESOURCES
    ]


_GLOB_CHARS = frozenset("*?[")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_VARIABLE_REF = re.compile(r"\bvariables\.([A-Za-z_][A-Za-z0-9_]*)")
_KUBERNETES_SUBJECTS = (SubjectKind.KUBERNETES_WORKLOAD, SubjectKind.KUBERNETES_BUNDLE)


@dataclass(frozen=True)
class VapExport:
    """The generated objects, and what of the catalog and policy they do not carry."""

    documents: list[dict[str, Any]]
    unsupported: list[tuple[str, str]]  # (check id, why it is not exported)
    disabled: list[str] = field(default_factory=list)  # checks the policy disables
    notes: list[str] = field(default_factory=list)  # limitations of this export under this policy
    source: str = "the built-in default policy"
    threshold: Severity = Severity.MEDIUM

    @property
    def exported(self) -> list[str]:
        """Ids of the exported checks, in catalog order."""
        return [
            d["metadata"]["annotations"]["factorygate.dev/check"] for d in self.documents if d["kind"] == POLICY_KIND
        ]


# -- exempt namespaces ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Exemptions:
    """exempt_namespaces split by how an admission policy can express them."""

    names: list[str]  # literal names: the binding's namespaceSelector
    pattern: str | None  # globs: one anchored RE2 for a matchCondition on request.namespace
    ignored: list[str]  # literals no namespace can have (not a label value)


def exemptions(exempt: Sequence[str]) -> Exemptions:
    names, globs, ignored = [], [], []
    for entry in dict.fromkeys(exempt):
        if _GLOB_CHARS & set(entry):
            regex = rx.glob_re2(entry, rx.CharSet.everything())
            if regex is not None:
                globs.append(regex)
        elif _LABEL_VALUE.match(entry):
            names.append(entry)
        else:
            ignored.append(entry)
    return Exemptions(sorted(names), rx.anchored(rx.alternation(globs)), ignored)


# -- documents --------------------------------------------------------------------------------------
def _variables(check: cel.CelCheck) -> list[dict[str, str]]:
    """The shared variables the check uses (directly or through another variable), then its own."""
    text = " ".join([check.expression, check.message_expression, *(e for _, e in check.variables)])
    needed = set(_VARIABLE_REF.findall(text))
    for name, expression in reversed(cel.SHARED_VARIABLES):
        if name in needed:
            needed |= set(_VARIABLE_REF.findall(expression))
    shared = [(n, e) for n, e in cel.SHARED_VARIABLES if n in needed]
    return [{"name": n, "expression": e} for n, e in (*shared, *check.variables)]


def policy_document(meta: CheckMeta, check: cel.CelCheck, severity: Severity, exempt: Exemptions) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": resource_rules()},
    }
    if exempt.pattern is not None:
        spec["matchConditions"] = [
            {
                "name": "factorygate-exempt-namespaces",
                "expression": f"!request.namespace.matches({cel.cel_str(exempt.pattern)})",
            }
        ]
    spec["variables"] = _variables(check)
    spec["validations"] = [
        {
            "expression": check.expression,
            "message": check.message,
            "messageExpression": check.message_expression,
            "reason": "Forbidden",
        }
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": POLICY_KIND,
        "metadata": {
            "name": NAME_PREFIX + meta.id,
            "labels": dict(MANAGED_BY),
            "annotations": {
                "factorygate.dev/check": meta.id,
                "factorygate.dev/requirements": ", ".join(meta.requirements),
                "factorygate.dev/severity": severity.value,
                "factorygate.dev/title": meta.title,
            },
        },
        "spec": spec,
    }


def binding_document(meta: CheckMeta, severity: Severity, threshold: Severity, exempt: Exemptions) -> dict[str, Any]:
    actions = ["Deny", "Audit"] if severity >= threshold else ["Warn", "Audit"]
    spec: dict[str, Any] = {"policyName": NAME_PREFIX + meta.id, "validationActions": actions}
    if exempt.names:
        selector = {"key": NAMESPACE_LABEL, "operator": "NotIn", "values": exempt.names}
        spec["matchResources"] = {"namespaceSelector": {"matchExpressions": [selector]}}
    return {
        "apiVersion": API_VERSION,
        "kind": BINDING_KIND,
        "metadata": {"name": NAME_PREFIX + meta.id, "labels": dict(MANAGED_BY)},
        "spec": spec,
    }


def limitations(policy: Policy, exempt: Exemptions) -> list[str]:
    """What the export does not carry over from this policy, and where it is stricter than a scan."""
    notes = [
        "Inline waivers (factorygate.dev/waive.<check> annotations) are not honoured: CEL cannot verify "
        "their approval or expiry, so a waived workload is still denied (stricter than `factorygate scan`).",
        "Objects are checked as the API server stores them, after defaulting: e.g. with hostNetwork the "
        "API server sets hostPort to containerPort (k8s-no-host-ports and k8s-no-privileged-ports may then "
        "fail where a scan of the manifest passes), and Jobs get generated pod labels.",
        "Stricter than a scan on inputs the API server mostly rejects: a hostPath path with a '..' segment, "
        "an image with leading or trailing whitespace, or a registry host containing U+0130.",
        "failurePolicy is Fail: an object the expressions cannot evaluate is denied "
        "(fail_open_namespaces applies to the admission webhook only).",
        "UPDATE is checked like CREATE: an object that predates the policy and fails a denying check cannot "
        "be updated (not even its labels) until it complies, its namespace is exempted or the check warns.",
    ]
    if policy.waivers:
        checks = ", ".join(sorted({w.check for w in policy.waivers}))
        notes.append(
            f"{len(policy.waivers)} policy waiver(s) are not applied ({checks}): an admission policy cannot "
            "check their expiry; exempt a namespace or disable the check instead."
        )
    if exempt.ignored:
        notes.append(f"exempt_namespaces entries that no namespace can be named are ignored: {exempt.ignored}")
    return notes


def export_vap(catalog: Catalog, policy: Policy, source: str = "the built-in default policy") -> VapExport:
    """ValidatingAdmissionPolicies and bindings for every enabled Kubernetes check CEL can express."""
    exempt = exemptions(policy.parameters.exempt_namespaces)
    documents: list[dict[str, Any]] = []
    unsupported: list[tuple[str, str]] = []
    disabled: list[str] = []
    for meta in catalog.checks.values():
        if meta.subject not in _KUBERNETES_SUBJECTS:
            continue
        if not policy.enabled(meta.id):
            disabled.append(meta.id)
            continue
        try:
            check = cel.translate(meta, policy.parameters)
        except rx.Unsupported as e:
            unsupported.append((meta.id, str(e)))
            continue
        severity = policy.severity_of(meta.id, meta.severity)
        documents.append(policy_document(meta, check, severity, exempt))
        documents.append(binding_document(meta, severity, policy.threshold, exempt))
    return VapExport(documents, unsupported, disabled, limitations(policy, exempt), source, policy.threshold)


# -- rendering ----------------------------------------------------------------------------------------
def _header(export: VapExport) -> list[str]:
    lines = [
        f"Kubernetes ValidatingAdmissionPolicies generated by `factorygate export vap` (factorygate {__version__})",
        f"from {export.source}. Requires Kubernetes 1.30 or later ({API_VERSION}).",
        f"Threshold {export.threshold.value}: checks at or above it deny, the others warn (both audit).",
        "Registries, host paths, sockets, sysctls and exempt namespaces are embedded:",
        "re-export when the policy changes.",
        "",
        f"Exported ({len(export.exported)}): " + ", ".join(export.exported),
        "Not exported (no faithful CEL translation):",
        *(f"  - {cid}: {why}" for cid, why in export.unsupported),
    ]
    if export.disabled:
        lines.append("Disabled by the policy: " + ", ".join(export.disabled))
    lines += ["Limitations:", *(f"  - {note}" for note in export.notes)]
    return lines


def render(export: VapExport) -> str:
    """The export as a multi-document YAML stream led by a comment block (what is not exported and why)."""
    header = "".join(f"# {line}".rstrip() + "\n" for line in _header(export))
    docs = [
        yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1 << 16, allow_unicode=False)
        for doc in export.documents
    ]
    return header + "".join(f"---\n{d}" for d in docs)


# -- command line -------------------------------------------------------------------------------------
def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``factorygate export vap``."""
    parser.add_argument("--policy", "-p", metavar="FILE", help="policy file (default: the packaged default policy)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write the YAML to FILE instead of stdout")
    parser.add_argument(
        "--threshold",
        choices=[s.value for s in Severity],
        help="override the policy's threshold: checks at or above it deny, the others warn",
    )


def run_export_vap(args: argparse.Namespace) -> int:
    """Write the export; 0 on success, 2 when the output cannot be written.

    A policy that cannot be read raises PolicyError (a FactorygateError, reported by cli.main)."""
    from factorygate.catalog import load_catalog
    from factorygate.policy import load_policy

    catalog = load_catalog()
    policy = load_policy(args.policy, set(catalog.checks))
    if args.threshold:
        policy = policy.with_threshold(Severity(args.threshold))
    export = export_vap(catalog, policy, f"policy {args.policy}" if args.policy else "the built-in default policy")
    text = render(export)
    if not args.output:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as e:
        print(f"factorygate: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(
        f"factorygate: wrote {len(export.exported)} ValidatingAdmissionPolicies and bindings to {args.output}; "
        f"{len(export.unsupported)} check(s) not exported (listed at the top of the file)",
        file=sys.stderr,
    )
    return 0
