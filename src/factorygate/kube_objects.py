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


# The uid and gid factorygate's own pods run as (any non-zero id outside the image's system accounts).
RUN_AS = 10001


def restricted_pod_security(fs_group: int | None = None) -> dict[str, Any]:
    """The pod securityContext of factorygate's own pods (Pod Security Standards, Restricted);
    ``fs_group``: the group that owns mounted volumes, when a mounted file must be group-readable."""
    context: dict[str, Any] = {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS}
    if fs_group is not None:
        context["fsGroup"] = fs_group
    context["seccompProfile"] = {"type": "RuntimeDefault"}
    return context


def restricted_container_security() -> dict[str, Any]:
    """The container securityContext of factorygate's own containers: non-root, no privilege escalation,
    read-only root filesystem, no capabilities, the runtime's default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
