"""The API kinds an audit lists: what the checks read, plus what the conformance detection asks for."""

from __future__ import annotations

from typing import NamedTuple

from factorygate.audit.inventory import kind_key


class ApiKind(NamedTuple):
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        return kind_key(self.api_version, self.kind)

    def path(self, namespace: str | None = None) -> str:
        """The collection's URL path (``/api/v1/namespaces/ns/pods``, ``/apis/apps/v1/deployments``)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None and self.namespaced:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


# What the workload and cluster checks read. Secrets and ConfigMaps are never listed: the audit needs
# no secret material (the read-only ClusterRole of `audit manifests` grants neither).
CORE_KINDS: tuple[ApiKind, ...] = (
    ApiKind("", "v1", "namespaces", "Namespace", False),
    ApiKind("", "v1", "pods", "Pod", True),
    ApiKind("", "v1", "services", "Service", True),
    ApiKind("", "v1", "serviceaccounts", "ServiceAccount", True),
    ApiKind("", "v1", "replicationcontrollers", "ReplicationController", True),
    ApiKind("apps", "v1", "deployments", "Deployment", True),
    ApiKind("apps", "v1", "statefulsets", "StatefulSet", True),
    ApiKind("apps", "v1", "daemonsets", "DaemonSet", True),
    ApiKind("apps", "v1", "replicasets", "ReplicaSet", True),
    ApiKind("batch", "v1", "jobs", "Job", True),
    ApiKind("batch", "v1", "cronjobs", "CronJob", True),
    ApiKind("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True),
    ApiKind("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ApiKind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ApiKind("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ApiKind("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
)


def as_api_kinds(extra: tuple[object, ...]) -> list[ApiKind]:
    """Kinds described by another module's records (group, version, plural, kind, namespaced)."""
    return [
        ApiKind(
            str(getattr(e, "group", "")),
            str(getattr(e, "version", "")),
            str(getattr(e, "plural", "")),
            str(getattr(e, "kind", "")),
            bool(getattr(e, "namespaced", True)),
        )
        for e in extra
    ]


def kinds_to_list(extra: tuple[object, ...] = ()) -> list[ApiKind]:
    """The core kinds, then the extra ones (the conformance detection's ``WANTED``), each once."""
    out: dict[str, ApiKind] = {k.key: k for k in CORE_KINDS}
    for k in as_api_kinds(extra):
        out.setdefault(k.key, k)
    return list(out.values())
