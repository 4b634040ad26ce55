"""The bundle-level check: every workload is selected by a NetworkPolicy in its namespace."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from factorygate.facts.workload import as_list, as_map
from factorygate.model import Outcome


class NetworkPolicyFacts(NamedTuple):
    """What coverage needs of a NetworkPolicy: its namespace, name and pod selector."""

    namespace: str | None
    name: str
    pod_selector: Mapping[str, Any]


def network_policy_from(doc: Mapping[str, Any]) -> NetworkPolicyFacts | None:
    if doc.get("kind") != "NetworkPolicy" or not str(doc.get("apiVersion", "")).startswith("networking.k8s.io/"):
        return None
    meta = as_map(doc.get("metadata"))
    ns = meta.get("namespace")
    return NetworkPolicyFacts(
        namespace=str(ns) if ns is not None else None,
        name=str(meta.get("name", "<unnamed>")),
        pod_selector=as_map(as_map(doc.get("spec")).get("podSelector")),
    )


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """metav1.LabelSelector semantics: matchLabels AND every matchExpressions requirement."""
    for k, v in as_map(selector.get("matchLabels")).items():
        if k not in labels or str(labels[k]) != str(v):
            return False
    for raw_expr in as_list(selector.get("matchExpressions")):
        expr = as_map(raw_expr)
        key, op = str(expr.get("key")), expr.get("operator")
        values = {str(x) for x in as_list(expr.get("values"))}
        present = key in labels
        if op == "In" and not (present and str(labels[key]) in values):
            return False
        if op == "NotIn" and present and str(labels[key]) in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # an invalid selector selects nothing
    return True


def k8s_network_policy_coverage(
    namespace: str | None, labels: Mapping[str, Any], pod_path: str, policies: Sequence[NetworkPolicyFacts]
) -> Iterator[Outcome]:
    """Outcome for one workload, given every NetworkPolicy of the inputs."""
    in_ns = [np for np in policies if np.namespace == namespace]
    where = f"namespace {namespace}" if namespace else "the manifests' (unset) namespace"
    matching = [np.name for np in in_ns if selector_matches(np.pod_selector, labels)]
    if matching:
        yield Outcome(True, f"selected by NetworkPolicy {', '.join(sorted(matching)[:3])}", pod_path)
    elif in_ns:
        yield Outcome(False, f"no NetworkPolicy in {where} selects its pods ({len(in_ns)} policies there)", pod_path)
    else:
        yield Outcome(False, f"no NetworkPolicy in {where}", pod_path)
