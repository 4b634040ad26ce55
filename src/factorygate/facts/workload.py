"""Facts about a Kubernetes workload: its pod spec and each container's effective security context.

Kubernetes semantics (API reference, "SecurityContext" and "PodSecurityContext"):
- runAsUser, runAsGroup, runAsNonRoot, seLinuxOptions, seccompProfile, appArmorProfile and
  windowsOptions exist at pod and container level; the container value wins when set.
- privileged, allowPrivilegeEscalation, capabilities, readOnlyRootFilesystem and procMount exist
  only on containers.
- sysctls, fsGroup and supplementalGroups exist only on the pod.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any, NamedTuple

# kind -> (path to the pod template's metadata, path to the pod spec), as lists of keys
_POD_PATHS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Pod": (("metadata",), ("spec",)),
    "PodTemplate": (("template", "metadata"), ("template", "spec")),
    "Deployment": (("spec", "template", "metadata"), ("spec", "template", "spec")),
    "StatefulSet": (("spec", "template", "metadata"), ("spec", "template", "spec")),
    "DaemonSet": (("spec", "template", "metadata"), ("spec", "template", "spec")),
    "ReplicaSet": (("spec", "template", "metadata"), ("spec", "template", "spec")),
    "ReplicationController": (("spec", "template", "metadata"), ("spec", "template", "spec")),
    "Job": (("spec", "template", "metadata"), ("spec", "template", "spec")),
    "CronJob": (
        ("spec", "jobTemplate", "spec", "template", "metadata"),
        ("spec", "jobTemplate", "spec", "template", "spec"),
    ),
}
WORKLOAD_KINDS = frozenset(_POD_PATHS)
_RUN_TO_COMPLETION_KINDS = frozenset({"Job", "CronJob"})
_CONTAINER_FIELDS = (
    ("containers", "container"),
    ("initContainers", "initContainer"),
    ("ephemeralContainers", "ephemeralContainer"),
)
# Fields a container inherits from the pod's securityContext when it does not set them.
INHERITED_FIELDS = (
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "seLinuxOptions",
    "seccompProfile",
    "appArmorProfile",
    "windowsOptions",
)
_EMPTY: Mapping[str, Any] = {}


def as_map(value: object) -> Mapping[str, Any]:
    """A mapping, or an empty one when the manifest put something else there."""
    return value if isinstance(value, dict) else _EMPTY


def as_list(value: object) -> list[Any]:
    """A list, or an empty one when the manifest put something else there."""
    return value if isinstance(value, list) else []


def _dig(doc: Mapping[str, Any], keys: tuple[str, ...]) -> object:
    cur: object = doc
    for k in keys:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(k)
    return cur


class ContainerFacts(NamedTuple):
    """One container (app, init or ephemeral) with its effective security context."""

    name: str
    role: str  # container | initContainer | ephemeralContainer
    path: str  # JSON path of the container, e.g. spec.template.spec.containers[1]
    spec: Mapping[str, Any]
    security_context: Mapping[str, Any]  # the container's own securityContext
    effective: Mapping[str, Any]  # pod-level fields merged under the container's
    sidecar: bool  # an init container with restartPolicy Always (runs for the pod's life)

    def sc_path(self, field: str) -> str:
        return f"{self.path}.securityContext.{field}"


class Workload(NamedTuple):
    """A pod-bearing Kubernetes object, normalised for checks."""

    kind: str
    name: str
    namespace: str | None
    labels: Mapping[str, Any]  # the pod (template) labels
    annotations: Mapping[str, Any]  # the object's and the pod template's annotations
    pod_spec: Mapping[str, Any]
    pod_path: str  # JSON path of the pod spec
    pod_security_context: Mapping[str, Any]
    containers: tuple[ContainerFacts, ...]
    long_running: bool
    windows: bool
    host_path_volumes: Mapping[str, tuple[int, str]]  # volume name -> (index, normalised host path)
    # Whether checks yield passing outcomes too. The admission webhook records only failures: its
    # checks skip building a pass Outcome (and formatting its message) for every container.
    passes: bool = True

    def pod_field(self, *keys: str) -> str:
        return ".".join((self.pod_path, *keys))


def workload_from(doc: Mapping[str, Any], passes: bool = True) -> Workload | None:
    """Build workload facts from a Kubernetes object, or None when it carries no pod."""
    kind = doc.get("kind")
    if not isinstance(kind, str) or kind not in _POD_PATHS:
        return None
    meta_keys, spec_keys = _POD_PATHS[kind]
    pod_spec = as_map(_dig(doc, spec_keys))
    pod_meta = as_map(_dig(doc, meta_keys))
    meta = as_map(doc.get("metadata"))
    name = meta.get("name") or meta.get("generateName") or "<unnamed>"
    if not isinstance(name, str | int | float):
        name = "<invalid name>"  # a list or mapping where the API wants a string
    namespace = meta.get("namespace")
    if namespace is not None and not isinstance(namespace, str | int | float):
        namespace = "<invalid namespace>"
    pod_sc = as_map(pod_spec.get("securityContext"))
    pod_path = ".".join(spec_keys)
    containers: list[ContainerFacts] = []
    for field, role in _CONTAINER_FIELDS:
        for i, c in enumerate(as_list(pod_spec.get(field))):
            if not isinstance(c, dict):
                continue
            sc = as_map(c.get("securityContext"))
            effective = dict(sc)
            for f in INHERITED_FIELDS:
                if effective.get(f) is None and pod_sc.get(f) is not None:
                    effective[f] = pod_sc[f]
            containers.append(
                ContainerFacts(
                    name=str(c.get("name") or f"{field}[{i}]"),
                    role=role,
                    path=f"{pod_path}.{field}[{i}]",
                    spec=c,
                    security_context=sc,
                    effective=effective,
                    sidecar=role == "initContainer" and c.get("restartPolicy") == "Always",
                )
            )
    annotations = dict(as_map(meta.get("annotations")))
    if pod_meta is not meta:
        annotations.update(as_map(pod_meta.get("annotations")))
    restart = pod_spec.get("restartPolicy")
    long_running = kind not in _RUN_TO_COMPLETION_KINDS and not (kind == "Pod" and restart in ("Never", "OnFailure"))
    return Workload(
        kind=kind,
        name=str(name),
        namespace=str(namespace) if namespace is not None else None,
        labels=as_map(pod_meta.get("labels")),
        annotations=annotations,
        pod_spec=pod_spec,
        pod_path=pod_path,
        pod_security_context=pod_sc,
        containers=tuple(containers),
        long_running=long_running,
        windows=as_map(pod_spec.get("os")).get("name") == "windows",
        host_path_volumes=_host_path_volumes(pod_spec),
        passes=passes,
    )


def _host_path_volumes(pod_spec: Mapping[str, Any]) -> dict[str, tuple[int, str]]:
    """Volume name -> (index, normalised host path) for hostPath volumes (three checks ask)."""
    out: dict[str, tuple[int, str]] = {}
    for i, v in enumerate(as_list(pod_spec.get("volumes"))):
        hp = as_map(as_map(v).get("hostPath"))
        path = hp.get("path")
        if isinstance(path, str):
            out[str(as_map(v).get("name"))] = (i, posixpath.normpath("/" + path.strip().lstrip("/")))
    return out
