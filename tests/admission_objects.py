"""Kubernetes objects and AdmissionReview requests shaped as the API server sends them to a webhook.

Objects carry what the API server has filled in by the time validating webhooks run: defaulted
fields (imagePullPolicy, terminationMessagePath, dnsPolicy, ...), uid, creationTimestamp,
managedFields, an empty status. Requests carry kind/resource/requestKind, userInfo, options and
dryRun like ``admission.k8s.io/v1`` AdmissionReview requests do.
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

IRONBANK_IMAGE = (
    "registry1.dso.mil/ironbank/opensource/nginx/nginx:1.27.2"
    "@sha256:3f0c5b6a1e8a4d8f2b7c9e0d1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
)
SECRET_LITERAL = "hunter2-do-not-log"
_RESOURCES = {
    "Pod": ("", "v1", "pods"),
    "Deployment": ("apps", "v1", "deployments"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "Job": ("batch", "v1", "jobs"),
    "ConfigMap": ("", "v1", "configmaps"),
}
_OPTIONS = {
    "CREATE": "CreateOptions",
    "UPDATE": "UpdateOptions",
    "DELETE": "DeleteOptions",
    "CONNECT": "PodExecOptions",
}


def container(*, compliant: bool = True, name: str = "web", image: str = IRONBANK_IMAGE) -> dict[str, Any]:
    """One container after API defaulting; non-compliant: privileged, no probes, docker.io latest, a literal token."""
    base: dict[str, Any] = {
        "name": name,
        "image": image,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"},
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if compliant:
        return base
    bad = copy.deepcopy(base)
    bad["image"] = "docker.io/example/agent:latest"
    bad["securityContext"] = {"privileged": True}
    bad["env"] = [{"name": "API_TOKEN", "value": SECRET_LITERAL}]
    del bad["livenessProbe"], bad["readinessProbe"]
    return bad


def pod_spec(*, compliant: bool = True, image: str = IRONBANK_IMAGE) -> dict[str, Any]:
    return {
        "automountServiceAccountToken": False,
        "nodeSelector": {"node-pool": "general"},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container(compliant=compliant, image=image)],
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "schedulerName": "default-scheduler",
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": 0,
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
    }


def _metadata(
    name: str, namespace: str | None, annotations: dict[str, str] | None, labels: dict[str, str]
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "uid": str(uuid.uuid4()),
        "creationTimestamp": "2026-01-15T10:00:00Z",
        "labels": labels,
        "managedFields": [
            {
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2026-01-15T10:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}},
            }
        ],
    }
    if namespace is not None:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = annotations
    return meta


def pod(
    name: str = "web",
    namespace: str | None = "shop",
    *,
    compliant: bool = True,
    annotations: dict[str, str] | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """A Pod; with ``owner``, as its ReplicaSet creates it (generateName, no name yet, ownerReferences)."""
    meta = _metadata(name, namespace, annotations, {"app.kubernetes.io/name": "web"})
    if owner is not None:
        del meta["name"]
        meta["generateName"] = f"{owner}-"
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner,
                "uid": str(uuid.uuid4()),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": meta,
        "spec": pod_spec(compliant=compliant),
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }


def _template(compliant: bool, annotations: dict[str, str] | None, image: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"creationTimestamp": None, "labels": {"app.kubernetes.io/name": "web"}}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": pod_spec(compliant=compliant, image=image)}


def deployment(
    name: str = "web",
    namespace: str = "shop",
    *,
    compliant: bool = True,
    annotations: dict[str, str] | None = None,
    replicas: int = 2,
    image: str = IRONBANK_IMAGE,
) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": _metadata(name, namespace, annotations, {"app.kubernetes.io/name": name}),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
            "template": _template(compliant, None, image),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {},
    }


def cronjob(name: str = "nightly", namespace: str = "shop", *, compliant: bool = True) -> dict[str, Any]:
    spec = _template(compliant, None, IRONBANK_IMAGE)
    spec["spec"]["restartPolicy"] = "OnFailure"
    return {
        "kind": "CronJob",
        "apiVersion": "batch/v1",
        "metadata": _metadata(name, namespace, None, {"app.kubernetes.io/name": name}),
        "spec": {
            "schedule": "0 3 * * *",
            "concurrencyPolicy": "Allow",
            "suspend": False,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {"metadata": {"creationTimestamp": None}, "spec": {"backoffLimit": 6, "template": spec}},
        },
        "status": {},
    }


def configmap(name: str = "settings", namespace: str = "shop") -> dict[str, Any]:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": _metadata(name, namespace, None, {}),
        "data": {"mode": "strict"},
    }


def review(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    dry_run: bool = False,
    uid: str | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    sub_resource: str | None = None,
) -> dict[str, Any]:
    """The AdmissionReview the API server POSTs for ``obj`` (or ``old`` on DELETE)."""
    subject = obj if obj is not None else old
    assert subject is not None
    kind = kind or subject["kind"]
    group, version, resource = _RESOURCES[kind]
    meta = subject.get("metadata", {})
    ns = namespace if namespace is not None else meta.get("namespace", "")
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": meta.get("name", ""),
        "namespace": ns,
        "operation": operation,
        "userInfo": {
            "username": "system:serviceaccount:kube-system:replicaset-controller",
            "uid": str(uuid.uuid4()),
            "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
        },
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {"kind": _OPTIONS[operation], "apiVersion": "meta.k8s.io/v1"},
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}


def body(obj: dict[str, Any] | None, **kwargs: Any) -> bytes:
    return json.dumps(review(obj, **kwargs)).encode()


def policy_text(*, threshold: str = "medium", extra_parameters: str = "", waivers: str = "") -> str:
    """A policy with an exempt namespace, fail-open namespaces and registry1 allowed."""
    return (
        "apiVersion: factorygate.dev/v1\n"
        "kind: Policy\n"
        f"threshold: {threshold}\n"
        "parameters:\n"
        "  allowed_registries: [registry1.dso.mil]\n"
        "  exempt_namespaces: [kube-system]\n"
        "  fail_open_namespaces: ['sandbox-*']\n"
        f"{extra_parameters}"
        f"{waivers}"
    )


INVALID_WAIVER = {"factorygate.dev/waive.k8s-not-privileged": "not a mapping"}


def inline_waiver(check: str, expires: str = "2099-12-31") -> dict[str, str]:
    return {
        f"factorygate.dev/waive.{check}": (
            f"{{justification: 'Vendor agent needs it until the Q3 rework.', approver: 'J. Smith (ISSM)', "
            f"expires: '{expires}'}}"
        )
    }
