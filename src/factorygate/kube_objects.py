"""Kubernetes objects that the printers of factorygate's own manifests (`admission manifests`, `audit
manifests`) both build."""

from __future__ import annotations

from typing import Any


def network_policy(
    metadata: dict[str, Any],
    pod_selector: dict[str, Any],
    *,
    ingress: list[dict[str, Any]] | None = None,
    egress: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A NetworkPolicy governing both directions: the rules given, none (everything denied) where omitted."""
    spec: dict[str, Any] = {"podSelector": pod_selector, "policyTypes": ["Ingress", "Egress"]}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata, "spec": spec}
