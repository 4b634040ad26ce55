"""Cluster checks: what the API shows of a whole cluster (namespaces, RBAC, where workloads run).

One pure function per check, ``(ClusterFacts) -> (Outcome, Resource)*``; :data:`CLUSTER_CHECKS` is the
table, and :data:`READS` names the kinds each check needs (a kind that could not be listed makes the
check a coverage gap, never a pass).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from factorygate.audit.inventory import Inventory
from factorygate.audit.workloads import AuditedWorkload
from factorygate.facts.workload import as_list, as_map, workload_from
from factorygate.model import Outcome, Resource

DEFAULT_NAMESPACES = ("default", "kube-public", "kube-node-lease")
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
WORKLOAD_KEYS = (
    "Pod",
    "Deployment.apps",
    "StatefulSet.apps",
    "DaemonSet.apps",
    "ReplicaSet.apps",
    "Job.batch",
    "CronJob.batch",
    "ReplicationController",
)
# Platform components found in kube-system on common distributions (kubeadm, EKS, GKE, AKS, RKE2, k3s,
# kind): a name that is one of these, or starts with one followed by "-".
PLATFORM_NAMES = re.compile(
    r"^(coredns|kube-dns|kube-proxy|kube-apiserver|kube-controller-manager|kube-scheduler|etcd|metrics-server|"
    r"cloud-controller-manager|konnectivity-agent|calico-node|calico-kube-controllers|calico-typha|cilium|"
    r"cilium-operator|kindnet|kube-flannel-ds|kube-flannel|aws-node|ebs-csi-controller|ebs-csi-node|"
    r"efs-csi-controller|efs-csi-node|csi-azuredisk-node|csi-azurefile-node|csi-azuredisk-controller|"
    r"azure-ip-masq-agent|cloud-node-manager|local-path-provisioner|rke2-coredns-rke2-coredns|"
    r"rke2-ingress-nginx-controller|rke2-canal|rke2-metrics-server|traefik|svclb-traefik|"
    r"helm-install-traefik|helm-install-traefik-crd|snapshot-controller|fluentbit-gke|gke-metrics-agent|"
    r"pdcsi-node|l7-default-backend|event-exporter-gke|konnectivity-server|dns-autoscaler|nodelocaldns)"
    r"(-[a-z0-9-]*)?$"
)
SYSTEM_PRIORITY = ("system-cluster-critical", "system-node-critical")
BUILTIN_ROLES = ("cluster-admin", "admin", "edit", "view")
DASHBOARD = "kubernetes-dashboard"


class ClusterFacts(NamedTuple):
    inventory: Inventory
    workloads: list[AuditedWorkload]


ClusterOutcome = tuple[Outcome, Resource]
ClusterCheck = Callable[[ClusterFacts], Iterator[ClusterOutcome]]


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_map(obj.get("metadata"))


def _name(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("name", "<unnamed>"))


def _resource(obj: Mapping[str, Any], kind: str) -> Resource:
    ns = _meta(obj).get("namespace")
    api = obj.get("apiVersion")
    return Resource(kind, _name(obj), str(ns) if ns else None, api if isinstance(api, str) else None)


def _wresource(w: AuditedWorkload) -> Resource:
    return Resource(w.kind, w.name, w.namespace or None)


def _labels(w: AuditedWorkload) -> Mapping[str, Any]:
    """The pod labels (template labels of a controller) and the object's own labels."""
    subj = w.subject
    wl = workload_from(subj)
    return {**as_map(_meta(subj).get("labels")), **(dict(wl.labels) if wl else {})}


def _pod_spec_path(w: AuditedWorkload) -> tuple[Mapping[str, Any], str]:
    wl = workload_from(w.subject)
    if wl is None:
        return {}, "spec"
    return wl.pod_spec, wl.pod_path


def default_namespaces(facts: ClusterFacts) -> Iterator[ClusterOutcome]:
    """V-242383: user-managed resources in default, kube-public, kube-node-lease."""
    found: dict[str, int] = dict.fromkeys(DEFAULT_NAMESPACES, 0)
    for w in facts.workloads:
        if w.namespace in found:
            found[w.namespace] += 1
            yield (
                Outcome(False, f"{w.kind} {w.name} runs in the {w.namespace} namespace", "metadata.namespace"),
                _wresource(w),
            )
    for svc in facts.inventory.of("Service"):
        ns = str(_meta(svc).get("namespace") or "")
        if ns in found and not (ns == "default" and _name(svc) == "kubernetes"):
            found[ns] += 1
            yield (
                Outcome(False, f"Service {_name(svc)} lives in the {ns} namespace", "metadata.namespace"),
                _resource(svc, "Service"),
            )
    for ns, n in found.items():
        if n == 0:
            yield (
                Outcome(True, f"no user-managed workload or Service in {ns}", "metadata"),
                Resource("Namespace", ns),
            )


def _is_platform(w: AuditedWorkload) -> str | None:
    """Why a workload in a system namespace is a platform component (None: it is not one)."""
    subj = w.subject
    spec, _ = _pod_spec_path(w)
    if spec.get("priorityClassName") in SYSTEM_PRIORITY:
        return f"priorityClassName {spec.get('priorityClassName')}"
    labels = _labels(w)
    if labels.get("tier") == "control-plane":
        return "tier=control-plane"
    if any(as_map(r).get("kind") == "Node" for r in as_list(_meta(subj).get("ownerReferences"))):
        return "a static pod of its node"
    if PLATFORM_NAMES.match(w.name):
        return "a platform component by name"
    return None


def system_namespaces(facts: ClusterFacts) -> Iterator[ClusterOutcome]:
    """V-242417: user workloads in kube-system, kube-public, kube-node-lease."""
    for w in facts.workloads:
        if w.namespace not in SYSTEM_NAMESPACES:
            continue
        why = _is_platform(w)
        if why:
            yield Outcome(True, f"platform component in {w.namespace} ({why})", "metadata.namespace"), _wresource(w)
        else:
            yield (
                Outcome(
                    False,
                    f"user workload in the system namespace {w.namespace} (not recognised as a platform component)",
                    "metadata.namespace",
                ),
                _wresource(w),
            )


def _containers(spec: Mapping[str, Any], pod_path: str) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, raw in enumerate(as_list(spec.get(key))):
            c = as_map(raw)
            yield str(c.get("name", f"{key}[{i}]")), f"{pod_path}.{key}[{i}]", c


def privileged_host_ports(facts: ClusterFacts) -> Iterator[ClusterOutcome]:
    """V-242414: hostPort below 1024 outside the system namespaces."""
    for w in facts.workloads:
        if w.namespace in SYSTEM_NAMESPACES:
            continue
        spec, pod_path = _pod_spec_path(w)
        for cname, cpath, c in _containers(spec, pod_path):
            low = []
            for j, p in enumerate(as_list(c.get("ports"))):
                hp = as_map(p).get("hostPort")
                if isinstance(hp, int) and not isinstance(hp, bool) and 0 < hp < 1024:
                    low.append((j, hp))
            if low:
                j, hp = low[0]
                ports = ", ".join(str(h) for _, h in low)
                msg = f"binds privileged host port(s) {ports}"
                yield Outcome(False, msg, f"{cpath}.ports[{j}].hostPort", cname), _wresource(w)
            else:
                yield Outcome(True, "no host port below 1024", cpath, cname), _wresource(w)


def secrets_in_env(facts: ClusterFacts) -> Iterator[ClusterOutcome]:
    """V-242415: Secrets passed as environment variables."""
    for w in facts.workloads:
        spec, pod_path = _pod_spec_path(w)
        for cname, cpath, c in _containers(spec, pod_path):
            bad: list[tuple[str, str]] = []
            for j, e in enumerate(as_list(c.get("env"))):
                ref = as_map(as_map(as_map(e).get("valueFrom")).get("secretKeyRef"))
                if ref:
                    bad.append(
                        (f"{cpath}.env[{j}].valueFrom.secretKeyRef", f"{as_map(e).get('name')} from {ref.get('name')}")
                    )
            for j, e in enumerate(as_list(c.get("envFrom"))):
                ref = as_map(as_map(e).get("secretRef"))
                if ref:
                    bad.append((f"{cpath}.envFrom[{j}].secretRef", f"all keys of {ref.get('name')}"))
            if bad:
                what = "; ".join(b for _, b in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
                yield Outcome(False, f"Secret in environment variables: {what}", bad[0][0], cname), _wresource(w)
            else:
                yield Outcome(True, "no Secret in environment variables", cpath, cname), _wresource(w)


PSA_ENFORCE = "pod-security.kubernetes.io/enforce"


def pod_security_labels(facts: ClusterFacts) -> Iterator[ClusterOutcome]:
    """V-254800: a Pod Security Standard enforced on every namespace."""
    for ns in facts.inventory.of("Namespace"):
        labels = as_map(_meta(ns).get("labels"))
        level = labels.get(PSA_ENFORCE)
        path = f"metadata.labels.{PSA_ENFORCE}"
        res = Resource("Namespace", _name(ns), None, "v1")
        if level in ("baseline", "restricted"):
            yield Outcome(True, f"enforces the {level} Pod Security Standard", path), res
        elif level is None:
            yield Outcome(False, f"no {PSA_ENFORCE} label: Pod Security Admission enforces nothing here", path), res
        else:
            yield Outcome(False, f"{PSA_ENFORCE}={level}: no Pod Security Standard is enforced", path), res


def no_dashboard(facts: ClusterFacts) -> Iterator[ClusterOutcome]:
    """V-242395: the Kubernetes dashboard."""
    found = 0
    for w in facts.workloads:
        labels = _labels(w)
        if (
            labels.get("k8s-app") == DASHBOARD
            or labels.get("app.kubernetes.io/name") == DASHBOARD
            or w.name == DASHBOARD
            or w.name.startswith(DASHBOARD + "-")
        ):
            found += 1
            yield Outcome(False, f"the Kubernetes dashboard runs ({len(w.pods)} pods)", "metadata"), _wresource(w)
    if not found:
        yield (
            Outcome(True, "no kubernetes-dashboard workload in the cluster", "metadata"),
            Resource("Cluster", facts.inventory.cluster),
        )


def _system_subject(s: Mapping[str, Any]) -> bool:
    kind, name = s.get("kind"), str(s.get("name", ""))
    if kind == "ServiceAccount":
        return s.get("namespace") == "kube-system"
    return name.startswith("system:")


def _bindings(inv: Inventory) -> Iterator[tuple[Mapping[str, Any], str]]:
    for b in inv.of("ClusterRoleBinding.rbac.authorization.k8s.io"):
        yield b, "ClusterRoleBinding"
    for b in inv.of("RoleBinding.rbac.authorization.k8s.io"):
        yield b, "RoleBinding"


def rbac_cluster_admin(facts: ClusterFacts) -> Iterator[ClusterOutcome]:
    """V-233162: cluster-admin bound to subjects other than the system's."""
    for b, kind in _bindings(facts.inventory):
        ref = as_map(b.get("roleRef"))
        if ref.get("kind") != "ClusterRole" or ref.get("name") != "cluster-admin":
            continue
        subjects = [as_map(s) for s in as_list(b.get("subjects"))]
        others = [s for s in subjects if not _system_subject(s)]
        res = _resource(b, kind)
        if others:
            names = ", ".join(f"{s.get('kind')} {s.get('name')}" for s in others[:5])
            yield Outcome(False, f"binds cluster-admin to {names}", "subjects"), res
        else:
            yield Outcome(True, "binds cluster-admin to system subjects only", "subjects"), res


def rbac_wildcards(facts: ClusterFacts) -> Iterator[ClusterOutcome]:
    """V-233162: wildcard verbs or resources in roles."""
    inv = facts.inventory
    roles = [(r, "ClusterRole") for r in inv.of("ClusterRole.rbac.authorization.k8s.io")]
    roles += [(r, "Role") for r in inv.of("Role.rbac.authorization.k8s.io")]
    for role, kind in roles:
        name = _name(role)
        if kind == "ClusterRole" and (name in BUILTIN_ROLES or name.startswith("system:")):
            continue
        if role.get("aggregationRule"):
            continue
        res = _resource(role, kind)
        hits = []
        for i, raw in enumerate(as_list(role.get("rules"))):
            rule = as_map(raw)
            verbs, resources = as_list(rule.get("verbs")), as_list(rule.get("resources"))
            if "*" in verbs or "*" in resources:
                hits.append((i, f"verbs {verbs}, resources {resources}"))
        if hits:
            yield Outcome(False, f"wildcard rule: {hits[0][1]}", f"rules[{hits[0][0]}]"), res
        else:
            yield Outcome(True, "no wildcard verbs or resources", "rules"), res


def rbac_default_service_account(facts: ClusterFacts) -> Iterator[ClusterOutcome]:
    """V-242381: default service accounts with roles or automounted tokens."""
    bound: dict[str, list[str]] = {}
    for b, kind in _bindings(facts.inventory):
        bns = _meta(b).get("namespace")
        for raw in as_list(b.get("subjects")):
            s = as_map(raw)
            if s.get("kind") == "ServiceAccount" and s.get("name") == "default":
                ns = str(s.get("namespace") or bns or "")
                bound.setdefault(ns, []).append(f"{kind} {_name(b)}")
    for sa in facts.inventory.of("ServiceAccount"):
        if _name(sa) != "default":
            continue
        ns = str(_meta(sa).get("namespace") or "")
        res = _resource(sa, "ServiceAccount")
        problems = []
        if ns in bound:
            problems.append("bound by " + ", ".join(sorted(bound[ns])[:3]))
        if sa.get("automountServiceAccountToken") is not False:
            problems.append("automountServiceAccountToken is not false")
        if problems:
            yield Outcome(False, "; ".join(problems), "automountServiceAccountToken"), res
        else:
            yield Outcome(True, "holds no roles and mounts no token", "automountServiceAccountToken"), res


_RBAC = ("ClusterRoleBinding.rbac.authorization.k8s.io", "RoleBinding.rbac.authorization.k8s.io")
CLUSTER_CHECKS: dict[str, ClusterCheck] = {
    "cluster-default-namespaces": default_namespaces,
    "cluster-system-namespaces": system_namespaces,
    "cluster-privileged-host-ports": privileged_host_ports,
    "cluster-secrets-in-env": secrets_in_env,
    "cluster-pod-security-labels": pod_security_labels,
    "cluster-no-dashboard": no_dashboard,
    "cluster-rbac-cluster-admin": rbac_cluster_admin,
    "cluster-rbac-wildcards": rbac_wildcards,
    "cluster-rbac-default-service-account": rbac_default_service_account,
}
READS: dict[str, tuple[str, ...]] = {
    "cluster-default-namespaces": (*WORKLOAD_KEYS, "Service"),
    "cluster-system-namespaces": WORKLOAD_KEYS,
    "cluster-privileged-host-ports": WORKLOAD_KEYS,
    "cluster-secrets-in-env": WORKLOAD_KEYS,
    "cluster-pod-security-labels": ("Namespace",),
    "cluster-no-dashboard": WORKLOAD_KEYS,
    "cluster-rbac-cluster-admin": _RBAC,
    "cluster-rbac-wildcards": ("ClusterRole.rbac.authorization.k8s.io", "Role.rbac.authorization.k8s.io"),
    "cluster-rbac-default-service-account": (*_RBAC, "ServiceAccount"),
}
