"""Pods folded into the controllers that own them, with what they really run.

A pod is reported once, at its root controller: ownerReferences are followed Pod -> ReplicaSet ->
Deployment, Pod -> Job -> CronJob, Pod -> StatefulSet / DaemonSet / ReplicationController (the
``controller: true`` reference, else the first). The root is evaluated as declared (its pod template),
and the running image digests come from the pods' status (``containerStatuses[].imageID``). A pod whose
owner cannot be read (its kind was forbidden, or it is another controller's custom kind) is grouped
under that owner and evaluated as the first of its pods; a static (Node-owned) pod is its own root.
Controllers with no pods (scaled to zero, a CronJob between runs) are evaluated too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from factorygate.audit.inventory import Inventory
from factorygate.facts.workload import as_list, as_map

# kind_key of the controllers, by the kind an ownerReference names
CONTROLLER_KEYS = {
    "Deployment": "Deployment.apps",
    "ReplicaSet": "ReplicaSet.apps",
    "StatefulSet": "StatefulSet.apps",
    "DaemonSet": "DaemonSet.apps",
    "Job": "Job.batch",
    "CronJob": "CronJob.batch",
    "ReplicationController": "ReplicationController",
}
MAX_OWNER_DEPTH = 5
_DIGEST_PREFIXES = ("docker-pullable://", "docker://")


@dataclass
class AuditedWorkload:
    """One root controller (or lone pod) and the pods it runs."""

    kind: str
    namespace: str
    name: str
    obj: dict[str, Any] | None  # the root object when it could be read
    pods: list[dict[str, Any]] = field(default_factory=list)

    @property
    def subject(self) -> dict[str, Any]:
        """What the checks evaluate: the controller as declared, else its first pod."""
        if self.obj is not None:
            return self.obj
        return self.pods[0]

    def running_images(self) -> dict[str, list[str]]:
        """Container name -> the distinct image digests its pods report (``repo@sha256:...``)."""
        out: dict[str, set[str]] = {}
        for pod in self.pods:
            status = as_map(pod.get("status"))
            for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
                for raw in as_list(status.get(key)):
                    cs = as_map(raw)
                    image_id = cs.get("imageID")
                    if isinstance(image_id, str) and image_id:
                        for prefix in _DIGEST_PREFIXES:
                            image_id = image_id.removeprefix(prefix)
                        out.setdefault(str(cs.get("name", "")), set()).add(image_id)
        return {k: sorted(v) for k, v in sorted(out.items())}


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_map(obj.get("metadata"))


def _owner(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    refs = [as_map(r) for r in as_list(_meta(obj).get("ownerReferences"))]
    refs = [r for r in refs if isinstance(r.get("kind"), str) and isinstance(r.get("name"), str)]
    if not refs:
        return None
    return next((r for r in refs if r.get("controller") is True), refs[0])


def fold(inv: Inventory) -> list[AuditedWorkload]:
    """Every workload of the inventory once, at its root, sorted by namespace, kind and name."""
    by_uid: dict[str, tuple[str, dict[str, Any]]] = {}
    by_name: dict[tuple[str, str, str], dict[str, Any]] = {}
    for kind, key in CONTROLLER_KEYS.items():
        for obj in inv.of(key):
            meta = _meta(obj)
            uid, name, ns = meta.get("uid"), meta.get("name"), str(meta.get("namespace") or "")
            if isinstance(uid, str):
                by_uid[uid] = (kind, obj)
            if isinstance(name, str):
                by_name[(kind, ns, name)] = obj

    def lookup(ref: Mapping[str, Any], ns: str) -> dict[str, Any] | None:
        uid = ref.get("uid")
        if isinstance(uid, str) and uid in by_uid:
            return by_uid[uid][1]
        return by_name.get((str(ref["kind"]), ns, str(ref["name"])))

    def root_of(obj: dict[str, Any], kind: str) -> tuple[str, str, dict[str, Any] | None]:
        """(kind, name, object or None) of the root controller of ``obj``."""
        ns = str(_meta(obj).get("namespace") or "")
        cur, cur_kind = obj, kind
        name = str(_meta(obj).get("name", ""))
        for _ in range(MAX_OWNER_DEPTH):
            ref = _owner(cur)
            if ref is None or ref["kind"] == "Node":  # a static pod's mirror names its node
                break
            parent = lookup(ref, ns)
            if parent is None:  # an owner we cannot read: group under it, evaluate the pods
                return str(ref["kind"]), str(ref["name"]), None
            cur, cur_kind, name = parent, str(ref["kind"]), str(ref["name"])
        return cur_kind, name, (cur if cur is not obj or kind != "Pod" else None)

    groups: dict[tuple[str, str, str], AuditedWorkload] = {}
    for kind, key in CONTROLLER_KEYS.items():
        for obj in inv.of(key):
            ns = str(_meta(obj).get("namespace") or "")
            rkind, rname, robj = root_of(obj, kind)
            gkey = (ns, rkind, rname)
            if gkey not in groups:
                groups[gkey] = AuditedWorkload(rkind, ns, rname, robj)
            elif groups[gkey].obj is None and robj is not None:
                groups[gkey].obj = robj
    for pod in inv.of("Pod"):
        ns = str(_meta(pod).get("namespace") or "")
        rkind, rname, robj = root_of(pod, "Pod")
        gkey = (ns, rkind, rname)
        group = groups.get(gkey)
        if group is None:
            group = groups[gkey] = AuditedWorkload(rkind, ns, rname, robj)
        group.pods.append(pod)
    out = [g for g in groups.values() if g.obj is not None or g.pods]
    for g in out:
        g.pods.sort(key=lambda p: str(_meta(p).get("name", "")))
    out.sort(key=lambda g: (g.namespace, g.kind, g.name))
    return out
