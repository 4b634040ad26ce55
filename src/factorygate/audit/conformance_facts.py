"""How the conformance detection reads raw API objects: safe accessors, label selectors and tolerations as
the API server evaluates them, per-inventory indexes (:class:`View`) and the judgements every capability
shares (a DaemonSet on every node, a ready Deployment, a webhook that fails closed and sees every namespace)."""

from __future__ import annotations

import fnmatch
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from factorygate.audit import conformance_data as data
from factorygate.audit.conformance_kinds import DAEMONSET, DEPLOYMENT, NAMESPACE, NODE, POD, VWC
from factorygate.audit.inventory import Inventory

MAX_LISTED = 8  # names listed in one evidence line before "(+N more)"


# --- small accessors for raw API objects -------------------------------------------------------------------


def dig(obj: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def labels_of(obj: Any, what: str = "labels") -> dict[str, str]:
    return {str(k): str(v) for k, v in as_dict(dig(obj, "metadata", what)).items()}


def name_of(obj: Any) -> str:
    return as_text(dig(obj, "metadata", "name")) or "?"


def namespace_of(obj: Any) -> str:
    return as_text(dig(obj, "metadata", "namespace"))


def ref_of(obj: Any) -> str:
    ns = namespace_of(obj)
    return f"{ns}/{name_of(obj)}" if ns else name_of(obj)


def some(items: Sequence[str], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(items[:limit])
    return f"{shown} (+{len(items) - limit} more)" if len(items) > limit else shown


def condition(obj: Any, kind: str = "Ready") -> tuple[str, str]:
    """(status, reason or message) of a status condition; ("", "") when absent."""
    for c in as_list(dig(obj, "status", "conditions")):
        if isinstance(c, dict) and c.get("type") == kind:
            return as_text(c.get("status")), as_text(c.get("reason")) or as_text(c.get("message"))[:80]
    return "", ""


def selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels AND matchExpressions); an empty selector matches all."""
    if selector is None:
        return True
    if not isinstance(selector, dict):
        return False
    for key, value in as_dict(selector.get("matchLabels")).items():
        if labels.get(str(key)) != str(value):
            return False
    for expr in as_list(selector.get("matchExpressions")):
        key, op = as_text(dig(expr, "key")), as_text(dig(expr, "operator"))
        values = {str(v) for v in as_list(dig(expr, "values"))}
        if op == "In":
            ok = key in labels and labels[key] in values
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            return False
        if not ok:
            return False
    return True


def selector_empty(selector: Any) -> bool:
    sel = as_dict(selector)
    return not sel.get("matchLabels") and not sel.get("matchExpressions")


def selector_text(selector: Any) -> str:
    return json.dumps(selector, sort_keys=True, separators=(",", ":"))[:120]


def repository_of(image: str) -> str:
    ref = image.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref = ref[:colon]
    return ref.lower()


def image_matches(repository: str, patterns: Iterable[str]) -> bool:
    return any(repository == p or repository.endswith("/" + p) for p in patterns)


def containers_of(workload: Any) -> list[dict[str, Any]]:
    spec = as_dict(dig(workload, "spec", "template", "spec"))
    return [c for c in as_list(spec.get("containers")) + as_list(spec.get("initContainers")) if isinstance(c, dict)]


def matches_agent(workload: Any, agent: data.Agent | data.Cni, names: Sequence[str]) -> bool:
    if name_of(workload) in names:
        return True
    return any(image_matches(repository_of(as_text(c.get("image"))), agent.images) for c in containers_of(workload))


# --- the view: indexes built once --------------------------------------------------------------------------


@dataclass
class Impl:
    name: str
    problems: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    unknowns: list[str] = field(default_factory=list)


class View:
    def __init__(self, inv: Inventory, exempt_namespaces: Sequence[str] = ()) -> None:
        self.inv = inv
        self.exempt = tuple(exempt_namespaces)
        self.ns_labels: dict[str, dict[str, str]] = {}
        self.ns_annotations: dict[str, dict[str, str]] = {}
        for ns in inv.of(NAMESPACE):
            self.ns_labels[name_of(ns)] = labels_of(ns)
            self.ns_annotations[name_of(ns)] = labels_of(ns, "annotations")
        # namespace -> label set -> count of running (not finished, not hostNetwork) pods
        self.pods: dict[str, Counter[frozenset[tuple[str, str]]]] = defaultdict(Counter)
        for pod in inv.of(POD):
            if as_text(dig(pod, "status", "phase")) in ("Succeeded", "Failed"):
                continue
            if dig(pod, "spec", "hostNetwork") is True:  # outside NetworkPolicy and the mesh
                continue
            self.pods[namespace_of(pod)][frozenset(labels_of(pod).items())] += 1
        self.nodes = [n for n in inv.of(NODE) if isinstance(n, dict)]
        self.agents: dict[str, list[tuple[data.Agent, dict[str, Any]]]] = defaultdict(list)
        for ds in inv.of(DAEMONSET):
            for agent in data.NODE_AGENTS:
                if matches_agent(ds, agent, agent.workload_names):
                    self.agents[agent.capability].append((agent, ds))
                    break
        for dep in inv.of(DEPLOYMENT):
            for agent in data.CONTROLLERS:
                if matches_agent(dep, agent, agent.workload_names):
                    self.agents[agent.capability].append((agent, dep))
                    break
        self.webhooks: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
        for cfg in inv.of(VWC):
            for hook in as_list(cfg.get("webhooks")) if isinstance(cfg, dict) else []:
                if not isinstance(hook, dict):
                    continue
                service = as_dict(dig(hook, "clientConfig", "service"))
                haystack = " ".join((name_of(cfg), as_text(hook.get("name")), as_text(service.get("name")))).lower()
                for impl, _capability, fragment in data.WEBHOOKS:
                    if fragment in haystack:
                        self.webhooks[impl].append((cfg, hook))
                        break
        self._workload_ns: list[str] | None = None

    def state(self, key: str) -> str:
        inv = self.inv
        if key in inv.forbidden:
            return "forbidden"
        if key in inv.missing:
            return "missing"
        if key in inv.listed or inv.objects.get(key):
            return "read"
        return "unread"

    def unread(self, keys: Iterable[str]) -> list[str]:
        out = []
        for key in keys:
            st = self.state(key)
            if st == "forbidden":
                out.append(f"could not read {key}: {self.inv.forbidden[key]}")
            elif st == "unread":
                out.append(f"{key} was not read")
        return out

    def workload_namespaces(self) -> list[str]:
        """Namespaces running pods on the pod network (or, when pods could not be read, every namespace), minus
        the control plane's and the policy's exempt_namespaces (globs)."""
        if self._workload_ns is None:
            names = set(self.pods) if self.state(POD) == "read" else set(self.ns_labels)
            self._workload_ns = sorted(
                n
                for n in names
                if n and n not in data.SYSTEM_NAMESPACES and not any(fnmatch.fnmatchcase(n, g) for g in self.exempt)
            )
        return self._workload_ns

    def labels_of_namespace(self, ns: str) -> dict[str, str]:
        return self.ns_labels.get(ns) or {"kubernetes.io/metadata.name": ns}

    def found(self, capability: str, name: str) -> list[dict[str, Any]]:
        return [obj for agent, obj in self.agents.get(capability, []) if agent.name == name]


# --- shared judgements -------------------------------------------------------------------------------------


def tolerates(tolerations: list[Any], taint: Mapping[str, Any]) -> bool:
    for t in tolerations:
        if not isinstance(t, dict):
            continue
        effect = as_text(t.get("effect"))
        if effect and effect != taint.get("effect"):
            continue
        key = as_text(t.get("key"))
        if (t.get("operator") or "Equal") == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and as_text(t.get("value")) == as_text(taint.get("value")):
            return True
    return False


def why_not_on(ds: dict[str, Any], node: dict[str, Any]) -> str:
    pod_spec = as_dict(dig(ds, "spec", "template", "spec"))
    node_labels = labels_of(node)
    selector = as_dict(pod_spec.get("nodeSelector"))
    if any(node_labels.get(str(k)) != str(v) for k, v in selector.items()):
        return "nodeSelector"
    tolerations = as_list(pod_spec.get("tolerations"))
    for taint in as_list(dig(node, "spec", "taints")):
        if not isinstance(taint, dict) or taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if as_text(taint.get("key")).startswith("node.kubernetes.io/"):  # tolerated by the DaemonSet controller
            continue
        if not tolerates(tolerations, taint):
            value = f"={taint['value']}" if taint.get("value") else ""
            return f"taint {taint.get('key')}{value}:{taint.get('effect')}"
    return ""


def daemonset_problems(ds: dict[str, Any], view: View) -> list[str]:
    where = f"DaemonSet {ref_of(ds)}"
    status = as_dict(ds.get("status"))
    desired, ready = as_int(status.get("desiredNumberScheduled")), as_int(status.get("numberReady"))
    out = []
    if view.state(NODE) == "read" and view.nodes:
        missed = [f"{name_of(n)} ({why})" for n in view.nodes if (why := why_not_on(ds, n))]
        if missed:
            out.append(f"{where} cannot run on {len(missed)} of {len(view.nodes)} nodes: {some(missed)}")
        elif desired < len(view.nodes):
            out.append(f"{where} is scheduled on {desired} of {len(view.nodes)} nodes")
    if desired == 0:
        out.append(f"{where} runs on no node")
    elif ready < desired:
        out.append(f"{where}: {ready} of {desired} pods ready")
    return out


def deployment_problems(dep: dict[str, Any]) -> list[str]:
    replicas = as_int(dig(dep, "spec", "replicas"), 1)
    ready = as_int(dig(dep, "status", "readyReplicas"))
    if replicas == 0:
        return [f"Deployment {ref_of(dep)} is scaled to 0 replicas"]
    if ready < replicas:
        return [f"Deployment {ref_of(dep)}: {ready} of {replicas} replicas ready"]
    return []


def workload_problems(obj: dict[str, Any], view: View) -> list[str]:
    kind = as_text(obj.get("kind"))
    if kind == "DaemonSet":
        return daemonset_problems(obj, view)
    if kind == "Deployment":
        return deployment_problems(obj)
    return []


WORKLOAD_RESOURCES = {"*", "*/*", "pods", "deployments", "statefulsets", "daemonsets", "replicasets", "jobs"}


def covers_workloads(hook: dict[str, Any]) -> bool:
    for rule in as_list(hook.get("rules")):
        ops = {str(o) for o in as_list(dig(rule, "operations"))}
        resources = {str(r) for r in as_list(dig(rule, "resources"))}
        if ops & {"CREATE", "*"} and resources & WORKLOAD_RESOURCES:
            return True
    return False


def webhook_problems(cfg: dict[str, Any], hook: dict[str, Any], view: View) -> tuple[list[str], list[str]]:
    """(problems, evidence) of one webhook (that matches workload creation) of a ValidatingWebhookConfiguration."""
    where = f"webhook {name_of(cfg)}/{as_text(hook.get('name')) or '?'}"
    problems, evidence = [], []
    policy = as_text(hook.get("failurePolicy")) or "Fail"  # admissionregistration.k8s.io/v1 default
    if policy != "Fail":
        problems.append(f"{where}: failurePolicy {policy} (requests are admitted while the webhook is unavailable)")
    else:
        evidence.append(f"{where}: failurePolicy Fail")
    skipped = [
        ns
        for ns in view.workload_namespaces()
        if not selector_matches(hook.get("namespaceSelector"), view.labels_of_namespace(ns))
    ]
    if skipped:
        problems.append(f"{where}: namespaceSelector skips namespaces {some(skipped)}")
    if not selector_empty(hook.get("objectSelector")):
        evidence.append(f"{where}: objectSelector {selector_text(hook.get('objectSelector'))}")
    return problems, evidence


def add_webhooks(impl: Impl, view: View) -> None:
    """Judge an implementation's webhooks that match pod/workload creation (others, e.g. Gatekeeper's
    check-ignore-label webhook on namespaces, serve other purposes)."""
    hooks = view.webhooks.get(impl.name, [])
    covering = [(cfg, hook) for cfg, hook in hooks if covers_workloads(hook)]
    for cfg, hook in covering:
        problems, evidence = webhook_problems(cfg, hook, view)
        impl.problems += problems
        impl.evidence += evidence
    if hooks and not covering:
        names = some([f"{name_of(cfg)}/{as_text(hook.get('name'))}" for cfg, hook in hooks])
        impl.problems.append(f"no webhook matches pod or workload creation (webhooks: {names})")
    elif not hooks and view.state(VWC) == "read":
        impl.problems.append("no ValidatingWebhookConfiguration of it: it admits everything")


def ready_problems(objs: Iterable[dict[str, Any]], what: str) -> list[str]:
    failing = []
    for obj in objs:
        status, reason = condition(obj)
        if status == "False":
            failing.append(f"{ref_of(obj)} ({reason})" if reason else ref_of(obj))
    return [f"{what} not Ready: {some(failing)}"] if failing else []
