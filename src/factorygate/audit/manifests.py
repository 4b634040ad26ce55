"""``factorygate audit manifests``: the objects that run the audit in-cluster on a schedule.

Namespace (Pod Security restricted), its default ServiceAccount without a token, a ServiceAccount of
the audit's own, a read-only ClusterRole (get/list/watch of the kinds the audit lists: never Secrets or
ConfigMaps) and its binding, the policy ConfigMap, NetworkPolicies (deny all; egress to the API server
port only) and a CronJob whose pod prints the report to stdout, where the cluster's log pipeline picks
it up. Every object passes factorygate's own checks (tested: ``scan`` and ``audit`` of the output),
given an image pinned by digest from an allowed registry.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

from factorygate import __version__
from factorygate.errors import FactorygateError
from factorygate.kube_objects import network_policy, restricted_container_security, restricted_pod_security

APP = "factorygate-audit"
DEFAULT_NAMESPACE = "factorygate-audit"
DEFAULT_IMAGE = f"registry1.dso.mil/factorygate/factorygate:{__version__}"
DEFAULT_SCHEDULE = "17 */6 * * *"
POLICY_DIR = "/etc/factorygate/policy"
POLICY_KEY = "policy.yaml"
MAX_POLICY_BYTES = 512 * 1024
API_PORTS = (443, 6443)  # the kubernetes Service's port, and the API server's usual target port
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CRON_FIELD = re.compile(r"^[0-9*/,\-A-Za-z?]+$")
_SELECTOR = {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "cluster-audit"}
FORMATS = ("json", "text", "ckl", "cklb", "oscal", "hdf", "sarif", "junit")


class ManifestError(FactorygateError):
    """An option of ``audit manifests`` cannot produce valid manifests."""


@dataclass(frozen=True)
class AuditManifestOptions:
    namespace: str = DEFAULT_NAMESPACE
    image: str = DEFAULT_IMAGE
    schedule: str = DEFAULT_SCHEDULE
    report_format: str = "json"
    policy_text: str | None = None

    def __post_init__(self) -> None:
        if not _DNS_LABEL.match(self.namespace):
            raise ManifestError(f"namespace {self.namespace!r}: not a DNS-1123 label")
        if not self.image or any(ch.isspace() for ch in self.image):
            raise ManifestError(f"image {self.image!r}: not an image reference")
        fields = self.schedule.split()
        if not (len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields)) and not (
            len(fields) == 1 and fields[0].startswith("@")
        ):
            raise ManifestError(f"schedule {self.schedule!r}: not a cron schedule of five fields")
        if self.report_format not in FORMATS:
            raise ManifestError(f"report format {self.report_format!r}: one of {', '.join(FORMATS)}")
        if self.policy_text is not None and len(self.policy_text.encode("utf-8")) > MAX_POLICY_BYTES:
            raise ManifestError(f"policy: larger than {MAX_POLICY_BYTES // 1024} KiB, too large for a ConfigMap")


def _labels() -> dict[str, str]:
    return {**_SELECTOR, "app.kubernetes.io/part-of": "factorygate", "app.kubernetes.io/version": __version__}


def _meta(name: str, namespace: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = _labels()
    return meta


def _rules() -> list[dict[str, Any]]:
    """Read-only access to exactly the kinds the audit lists (grouped by API group)."""
    from factorygate.audit.kinds import kinds_to_list
    from factorygate.audit.run import extra_kinds

    by_group: dict[str, list[str]] = {}
    for k in kinds_to_list(extra_kinds()):
        plurals = by_group.setdefault(k.group, [])
        if k.plural not in plurals:
            plurals.append(k.plural)
    return [
        {"apiGroups": [group], "resources": sorted(plurals), "verbs": ["get", "list", "watch"]}
        for group, plurals in sorted(by_group.items())
    ]


def _container(o: AuditManifestOptions) -> dict[str, Any]:
    return {
        "name": "audit",
        "image": o.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["factorygate"],
        "args": ["audit", "--in-cluster", "--format", o.report_format, "--policy", f"{POLICY_DIR}/{POLICY_KEY}"],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": restricted_container_security(),
        "volumeMounts": [
            {"name": "policy", "mountPath": POLICY_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir of the pod's own
        ],
    }


def _cron_job(o: AuditManifestOptions) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "serviceAccountName": APP,
        "automountServiceAccountToken": True,  # the audit reads the API with this (read-only) identity
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "securityContext": restricted_pod_security(),
        "containers": [_container(o)],
        "volumes": [
            {"name": "policy", "configMap": {"name": f"{APP}-policy", "defaultMode": 0o444}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(APP, o.namespace),
        "spec": {
            "schedule": o.schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": _labels()},
                "spec": {
                    "backoffLimit": 1,
                    "activeDeadlineSeconds": 1800,
                    "ttlSecondsAfterFinished": 86400,
                    "template": {"metadata": {"labels": _labels()}, "spec": pod_spec},
                },
            },
        },
    }


def manifest_documents(o: AuditManifestOptions) -> list[dict[str, Any]]:
    from factorygate.policy import default_policy_text

    ns_meta = _meta(o.namespace, None)
    for mode in ("enforce", "audit", "warn"):
        ns_meta["labels"][f"pod-security.kubernetes.io/{mode}"] = "restricted"
    policy_text = o.policy_text if o.policy_text is not None else default_policy_text()
    deny = network_policy(_meta("default-deny", o.namespace), {})
    api_egress = network_policy(
        _meta(f"{APP}-api-server", o.namespace),
        {"matchLabels": dict(_SELECTOR)},
        ingress=[],
        # the API server's address is not known in advance: its ports only
        egress=[{"ports": [{"protocol": "TCP", "port": p} for p in API_PORTS]}],
    )
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": ns_meta},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": o.namespace},
            "automountServiceAccountToken": False,
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(APP, o.namespace)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(f"{APP}-read", None),
            "rules": _rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(f"{APP}-read", None),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{APP}-read"},
            "subjects": [{"kind": "ServiceAccount", "name": APP, "namespace": o.namespace}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(f"{APP}-policy", o.namespace),
            "data": {POLICY_KEY: policy_text},
        },
        deny,
        api_egress,
        _cron_job(o),
    ]


def render_manifests(o: AuditManifestOptions) -> str:
    import yaml

    from factorygate.admission.manifests import _dumper

    header = (
        f"# factorygate {__version__} cluster audit: namespace {o.namespace}, schedule {o.schedule!r}.\n"
        "# Generated by `factorygate audit manifests`; apply with `kubectl apply -f`. The report goes to the\n"
        f"# job's log: kubectl logs -n {o.namespace} job/<job name>\n"
    )
    body = yaml.dump_all(
        manifest_documents(o),
        Dumper=_dumper(),
        explicit_start=True,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    return header + body


def manifest_warnings(o: AuditManifestOptions) -> list[str]:
    from factorygate.facts.images import parse_image, pinning_problem, registry_allowed
    from factorygate.policy import default_policy_text, parse_policy

    ref = parse_image(o.image)
    out = []
    problem = pinning_problem(ref)
    if problem:
        out.append(f"image {o.image} {problem}: pin it by digest (--image REF@sha256:...) or k8s-image-digest fails")
    policy = parse_policy(o.policy_text or default_policy_text(), "policy")
    if not registry_allowed(ref, policy.parameters.allowed_registries):
        out.append(f"image {o.image} is not from the policy's allowed_registries: k8s-allowed-registry fails")
    return out


def run_manifests(o: AuditManifestOptions, output: str | None) -> int:
    text = render_manifests(o)
    for warning in manifest_warnings(o):
        print(f"factorygate: warning: {warning}", file=sys.stderr)
    if output:
        try:
            with open(output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            print(f"factorygate: cannot write {output}: {e.strerror or e}", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(text)
    return 0
