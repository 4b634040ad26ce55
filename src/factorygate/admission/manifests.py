"""``factorygate admission manifests``: what a cluster needs to run the admission webhook.

One multi-document YAML stream: Namespace, ServiceAccount, the policy ConfigMap, TLS (cert-manager
Issuers and Certificates, or a generated self-signed CA and serving certificate in a Secret),
Service, Deployment, PodDisruptionBudget, NetworkPolicies and the ValidatingWebhookConfiguration.
The Deployment is hardened so that ``factorygate scan`` of the output passes every check, given a
digest-pinned image from an allowed registry.

The output is deterministic except, with ``--self-signed``, the generated keys and certificates.
With ``--self-signed`` it holds a private key: it is written to stdout only when asked, with a
warning, or to a file created readable by its owner only (``--output``).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import ipaddress
import os
import re
import sys
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from factorygate import __version__
from factorygate.argtypes import positive_int
from factorygate.errors import FactorygateError
from factorygate.kube_objects import RUN_AS, network_policy, restricted_container_security, restricted_pod_security

if TYPE_CHECKING:  # the command line builds its parser from this module: keep PyYAML out of start-up
    import yaml
    from cryptography import x509

APP = "factorygate"
DEFAULT_NAMESPACE = "factorygate-system"
DEFAULT_IMAGE = f"registry1.dso.mil/factorygate/factorygate:{__version__}"
WEBHOOK_NAME = "validate.factorygate.dev"
CONTAINER_PORT = 8443
SERVICE_PORT = 443
TLS_DIR = "/etc/factorygate/tls"
POLICY_DIR = "/etc/factorygate/policy"
POLICY_KEY = "policy.yaml"
KEYS_DIR = "/etc/factorygate/keys"  # --verify-signatures: the public keys, from ConfigMap factorygate-signing-keys
_KEY_NAME = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")  # a ConfigMap data key
MAX_POLICY_BYTES = 512 * 1024  # a ConfigMap holds at most 1 MiB; leave room for the rest of it
# (API group, version, resources) the webhook is called for, on CREATE and UPDATE.
WEBHOOK_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "v1", ("pods", "pods/ephemeralcontainers", "replicationcontrollers")),  # kubectl debug adds containers
    ("apps", "v1", ("deployments", "replicasets", "statefulsets", "daemonsets")),
    ("batch", "v1", ("jobs", "cronjobs")),
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SELECTOR_LABELS = {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "admission-webhook"}


class ManifestError(FactorygateError):
    """An option of ``admission manifests`` cannot produce valid manifests."""


class TlsMode(StrEnum):
    """Where the webhook's serving certificate comes from."""

    CERT_MANAGER = "cert-manager"
    SELF_SIGNED = "self-signed"


@dataclass(frozen=True)
class ManifestOptions:
    """What ``render_manifests`` produces. ``policy_text`` None embeds the packaged default policy."""

    namespace: str = DEFAULT_NAMESPACE
    image: str = DEFAULT_IMAGE
    replicas: int = 2
    policy_text: str | None = None
    tls: TlsMode = TlsMode.CERT_MANAGER
    timeout_seconds: int = 5
    exclude_namespaces: tuple[str, ...] = ()
    cert_days: int = 365
    verify_signatures: bool = False
    signing_keys: tuple[tuple[str, str], ...] = ()  # (file name, PEM text) mounted under KEYS_DIR

    def __post_init__(self) -> None:
        for ns in (self.namespace, *self.exclude_namespaces):
            if not _DNS_LABEL.match(ns):
                raise ManifestError(f"namespace {ns!r}: not a DNS-1123 label (lower case, digits, '-', 63 at most)")
        if not self.image or any(ch.isspace() for ch in self.image):
            raise ManifestError(f"image {self.image!r}: not an image reference")
        if self.replicas < 1:
            raise ManifestError("replicas: must be at least 1")
        if not 1 <= self.timeout_seconds <= 30:
            raise ManifestError("timeout seconds: the API server accepts 1 to 30")
        if self.cert_days < 1:
            raise ManifestError("certificate validity: must be at least 1 day")
        if self.policy_text is not None and len(self.policy_text.encode("utf-8")) > MAX_POLICY_BYTES:
            raise ManifestError(f"policy: larger than {MAX_POLICY_BYTES // 1024} KiB, too large for a ConfigMap")
        names = [name for name, _ in self.signing_keys]
        if self.signing_keys and not self.verify_signatures:
            raise ManifestError("--signing-key is used only with --verify-signatures")
        for name in names:
            if not _KEY_NAME.match(name) or name.startswith(".."):
                raise ManifestError(f"signing key file name {name!r}: not usable as a ConfigMap key")
        if len(set(names)) != len(names):
            raise ManifestError("--signing-key: two key files have the same name")

    @property
    def service_host(self) -> str:
        """The name the API server calls: <service>.<namespace>.svc."""
        return f"{APP}.{self.namespace}.svc"


class TlsMaterial(NamedTuple):
    """PEM of a generated CA certificate, the serving certificate it signed, and the serving key."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


# -- TLS ------------------------------------------------------------------------------------------
def serving_dns_names(namespace: str) -> list[str]:
    """Names the serving certificate carries: the Service's, and localhost for in-pod health checks."""
    return [
        APP,
        f"{APP}.{namespace}",
        f"{APP}.{namespace}.svc",
        f"{APP}.{namespace}.svc.cluster.local",
        "localhost",
    ]


def generate_tls(namespace: str, days: int) -> TlsMaterial:
    """A throwaway CA and the serving certificate it signs (ECDSA P-256). The CA key is discarded:
    it never leaves this function, so the bundle the API server trusts can sign nothing else."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate clock skew
    end = start + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"factorygate webhook CA ({namespace})")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in serving_dns_names(namespace)]
    names.append(x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{APP}.{namespace}.svc")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return TlsMaterial(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


# -- documents ------------------------------------------------------------------------------------
def _labels() -> dict[str, str]:
    return {**_SELECTOR_LABELS, "app.kubernetes.io/part-of": APP, "app.kubernetes.io/version": __version__}


def _meta(name: str, namespace: str | None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = _labels()
    meta.update(extra)
    return meta


def _namespace(o: ManifestOptions) -> dict[str, Any]:
    meta = _meta(o.namespace, None)
    for mode in ("enforce", "audit", "warn"):
        meta["labels"][f"pod-security.kubernetes.io/{mode}"] = "restricted"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _service_account(o: ManifestOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(APP, o.namespace),
        "automountServiceAccountToken": False,
    }


def _policy_config_map(o: ManifestOptions, text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(f"{APP}-policy", o.namespace),
        "data": {POLICY_KEY: text},
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _tls_secret(o: ManifestOptions, tls: TlsMaterial) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(f"{APP}-tls", o.namespace),
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": _b64(tls.cert_pem), "tls.key": _b64(tls.key_pem), "ca.crt": _b64(tls.ca_pem)},
    }


def _issuer(o: ManifestOptions, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": _meta(name, o.namespace), "spec": spec}


def _certificate(o: ManifestOptions, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": _meta(name, o.namespace),
        "spec": spec,
    }


def _cert_manager(o: ManifestOptions) -> list[dict[str, Any]]:
    """A self-signed Issuer makes a CA; a CA Issuer signs the serving certificate, renewed by cert-manager."""
    hours = o.cert_days * 24
    key = {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}
    return [
        _issuer(o, f"{APP}-selfsigned", {"selfSigned": {}}),
        _certificate(
            o,
            f"{APP}-ca",
            {
                "isCA": True,
                "commonName": f"factorygate webhook CA ({o.namespace})",
                "secretName": f"{APP}-ca",
                "duration": f"{hours * 5}h",
                "privateKey": key,
                "issuerRef": {"name": f"{APP}-selfsigned", "kind": "Issuer", "group": "cert-manager.io"},
            },
        ),
        _issuer(o, f"{APP}-ca", {"ca": {"secretName": f"{APP}-ca"}}),
        _certificate(
            o,
            f"{APP}-serving",
            {
                "secretName": f"{APP}-tls",
                "commonName": o.service_host,
                "dnsNames": serving_dns_names(o.namespace),
                "ipAddresses": ["127.0.0.1"],
                "duration": f"{hours}h",
                "renewBefore": f"{max(hours // 3, 1)}h",
                "usages": ["digital signature", "server auth"],
                "privateKey": key,
                "issuerRef": {"name": f"{APP}-ca", "kind": "Issuer", "group": "cert-manager.io"},
            },
        ),
    ]


def _service(o: ManifestOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(APP, o.namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(_SELECTOR_LABELS),
            "ports": [{"name": "https", "port": SERVICE_PORT, "targetPort": "https", "protocol": "TCP"}],
        },
    }


def _probe(path: str, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "https", "scheme": "HTTPS"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def _container(o: ManifestOptions) -> dict[str, Any]:
    return {
        "name": "webhook",
        "image": o.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["factorygate"],
        "args": [
            "admission",
            "serve",
            "--tls-cert",
            f"{TLS_DIR}/tls.crt",
            "--tls-key",
            f"{TLS_DIR}/tls.key",
            "--host",
            "0.0.0.0",  # noqa: S104 - a pod listens on its own network namespace; the NetworkPolicy limits who reaches it
            "--port",
            str(CONTAINER_PORT),
            "--policy",
            f"{POLICY_DIR}/{POLICY_KEY}",
            *_signature_args(o),
        ],
        "ports": [{"name": "https", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "livenessProbe": _probe("/healthz", 10),
        "readinessProbe": _probe("/readyz", 5),
        "securityContext": restricted_container_security(),
        "volumeMounts": [
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "policy", "mountPath": POLICY_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir of the pod's own
            *([{"name": "signing-keys", "mountPath": KEYS_DIR, "readOnly": True}] if o.signing_keys else []),
        ],
    }


def _signature_args(o: ManifestOptions) -> list[str]:
    """``--verify-signatures`` and a verification budget one second under the API server's wait."""
    if not o.verify_signatures:
        return []
    return ["--verify-signatures", "--signature-timeout", f"{max(0.5, o.timeout_seconds - 1):g}"]


def _signing_keys_config_map(o: ManifestOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(f"{APP}-signing-keys", o.namespace),
        "data": dict(o.signing_keys),
    }


def _spread(topology_key: str) -> dict[str, Any]:
    return {
        "maxSkew": 1,
        "topologyKey": topology_key,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": dict(_SELECTOR_LABELS)},
    }


def _deployment(o: ManifestOptions, policy_text: str) -> dict[str, Any]:
    policy_digest = hashlib.sha256(policy_text.encode("utf-8")).hexdigest()
    pod_spec: dict[str, Any] = {
        "serviceAccountName": APP,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "topologySpreadConstraints": [_spread("kubernetes.io/hostname"), _spread("topology.kubernetes.io/zone")],
        # the mounted keys are group-readable (0440), owned by this group
        "securityContext": restricted_pod_security(fs_group=RUN_AS),
        "containers": [_container(o)],
        "volumes": [
            {"name": "tls", "secret": {"secretName": f"{APP}-tls", "defaultMode": 0o440}},
            {"name": "policy", "configMap": {"name": f"{APP}-policy", "defaultMode": 0o444}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            *(
                [{"name": "signing-keys", "configMap": {"name": f"{APP}-signing-keys", "defaultMode": 0o444}}]
                if o.signing_keys
                else []
            ),
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(APP, o.namespace),
        "spec": {
            "replicas": o.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": dict(_SELECTOR_LABELS)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                # a changed policy rolls the pods (the server reads its policy at start)
                "metadata": {"labels": _labels(), "annotations": {"factorygate.dev/policy-sha256": policy_digest}},
                "spec": pod_spec,
            },
        },
    }


def _pod_disruption_budget(o: ManifestOptions) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(APP, o.namespace),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": dict(_SELECTOR_LABELS)}},
    }


def _network_policies(o: ManifestOptions) -> list[dict[str, Any]]:
    """Deny all traffic in the namespace, then let anything reach the webhook port (the API server's
    address is not known in advance). The webhook needs no egress: it calls nothing, except with
    --verify-signatures, where it reads registries: DNS and HTTPS (TCP 443) to anywhere."""
    deny = network_policy(_meta("default-deny", o.namespace), {})
    allow = network_policy(
        _meta(f"{APP}-webhook", o.namespace),
        {"matchLabels": dict(_SELECTOR_LABELS)},
        ingress=[{"ports": [{"protocol": "TCP", "port": CONTAINER_PORT}]}],
        egress=_registry_egress() if o.verify_signatures else [],
    )
    return [deny, allow]


def _registry_egress() -> list[dict[str, Any]]:
    """DNS, and HTTPS to any address (registries sit behind CDNs; a registry on another port needs a rule)."""
    dns = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    return [{"ports": dns}, {"ports": [{"protocol": "TCP", "port": 443}]}]


def _webhook_configuration(o: ManifestOptions, ca_bundle: bytes | None) -> dict[str, Any]:
    client_config: dict[str, Any] = {
        "service": {"namespace": o.namespace, "name": APP, "path": "/validate", "port": SERVICE_PORT}
    }
    extra: dict[str, Any] = {}
    if ca_bundle is not None:
        client_config["caBundle"] = _b64(ca_bundle)
    else:  # cert-manager's cainjector fills caBundle from the serving Certificate's CA
        extra["annotations"] = {"cert-manager.io/inject-ca-from": f"{o.namespace}/{APP}-serving"}
    excluded = sorted({"kube-system", o.namespace, *o.exclude_namespaces})
    webhook = {
        "name": WEBHOOK_NAME,
        "admissionReviewVersions": ["v1"],
        "clientConfig": client_config,
        "rules": [
            {
                "apiGroups": [group],
                "apiVersions": [version],
                "operations": ["CREATE", "UPDATE"],
                "resources": list(resources),
                "scope": "Namespaced",
            }
            for group, version, resources in WEBHOOK_RULES
        ],
        "namespaceSelector": {
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": excluded}]
        },
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "timeoutSeconds": o.timeout_seconds,
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": _meta(APP, None, **extra),
        "webhooks": [webhook],
    }


# -- rendering ------------------------------------------------------------------------------------
@cache
def _dumper() -> type[yaml.SafeDumper]:
    """Block style, multi-line strings as literal blocks, no anchors (shared dicts stay written out)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, represent_str)
    return Dumper


def _header(o: ManifestOptions) -> str:
    lines = [
        f"# factorygate {__version__} admission webhook: namespace {o.namespace}, TLS from {o.tls.value}.",
        "# Generated by `factorygate admission manifests`; apply with `kubectl apply -f`.",
    ]
    if o.tls is TlsMode.CERT_MANAGER:
        lines.append("# Needs cert-manager (cert-manager.io/v1) installed in the cluster.")
    else:
        lines.append("# Holds a PRIVATE KEY (Secret factorygate-tls): store and apply this file like a Secret.")
    return "\n".join(lines) + "\n"


def manifest_documents(o: ManifestOptions) -> list[dict[str, Any]]:
    """The objects, in the order to apply them (the webhook configuration last)."""
    from factorygate.policy import default_policy_text

    policy_text = o.policy_text if o.policy_text is not None else default_policy_text()
    docs = [_namespace(o), _service_account(o), _policy_config_map(o, policy_text)]
    if o.verify_signatures:
        _check_trusted_keys(o, policy_text)
    if o.signing_keys:
        docs.append(_signing_keys_config_map(o))
    ca_bundle = None
    if o.tls is TlsMode.SELF_SIGNED:
        tls = generate_tls(o.namespace, o.cert_days)
        docs.append(_tls_secret(o, tls))
        ca_bundle = tls.ca_pem
    else:
        docs.extend(_cert_manager(o))
    docs += [_service(o), _deployment(o, policy_text), _pod_disruption_budget(o), *_network_policies(o)]
    docs.append(_webhook_configuration(o, ca_bundle))
    return docs


def _check_trusted_keys(o: ManifestOptions, policy_text: str) -> None:
    """Every trusted_signing_keys entry of the policy resolves in the pod: PEM text, or a mounted key file."""
    from factorygate.policy import parse_policy

    entries = parse_policy(policy_text, "policy").parameters.trusted_signing_keys
    if not entries:
        raise ManifestError(
            "--verify-signatures: the policy lists no parameters.trusted_signing_keys (the webhook would not start)"
        )
    mounted = {f"{KEYS_DIR}/{name}" for name, _ in o.signing_keys}
    for entry in entries:
        if "-----BEGIN" in entry or entry.strip() in mounted:
            continue
        hint = f"--signing-key FILE (mounted as {KEYS_DIR}/<file name>)"
        raise ManifestError(
            f"--verify-signatures: policy trusted_signing_keys entry {entry.strip()[:120]!r} is neither PEM text "
            f"nor a key mounted in the pod: pass {hint} and list that path"
        )


def render_manifests(opts: ManifestOptions) -> str:
    """The manifests as one multi-document YAML text."""
    import yaml

    body = yaml.dump_all(
        manifest_documents(opts),
        Dumper=_dumper(),
        explicit_start=True,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    return _header(opts) + body


# -- command line ---------------------------------------------------------------------------------
def add_manifest_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``factorygate admission manifests``."""
    parser.add_argument(
        "--namespace", "-n", default=DEFAULT_NAMESPACE, help=f"namespace to run in (default {DEFAULT_NAMESPACE})"
    )
    parser.add_argument(
        "--image",
        metavar="REF",
        default=DEFAULT_IMAGE,
        help="webhook image; pass it pinned by digest (REF@sha256:...), as factorygate's own checks require "
        f"(default {DEFAULT_IMAGE}, a tag only: warned about)",
    )
    parser.add_argument("--replicas", type=positive_int, default=2, help="webhook pods (default 2)")
    parser.add_argument(
        "--policy", "-p", metavar="FILE", help="policy to ship in the ConfigMap (default: the packaged default)"
    )
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument(
        "--cert-manager",
        dest="tls",
        action="store_const",
        const=TlsMode.CERT_MANAGER.value,
        help="serving certificate from cert-manager, CA injected by its cainjector (the default)",
    )
    tls.add_argument(
        "--self-signed",
        dest="tls",
        action="store_const",
        const=TlsMode.SELF_SIGNED.value,
        help="generate a CA and serving certificate now: the output then holds a private key",
    )
    parser.set_defaults(tls=TlsMode.CERT_MANAGER.value)
    parser.add_argument(
        "--timeout-seconds", type=positive_int, default=5, help="API server's wait for the webhook (1-30, default 5)"
    )
    parser.add_argument(
        "--exclude-namespace",
        action="append",
        default=[],
        metavar="NS",
        help="another namespace the webhook is not called for (kube-system and its own always are not); repeatable",
    )
    parser.add_argument(
        "--cert-days", type=positive_int, default=365, help="serving certificate validity in days (default 365)"
    )
    parser.add_argument(
        "--verify-signatures",
        action="store_true",
        help="run the webhook with --verify-signatures (img-signed-at-admission) and let it reach registries",
    )
    parser.add_argument(
        "--signing-key",
        action="append",
        default=[],
        metavar="FILE",
        help=f"a cosign public key (.pub) mounted as {KEYS_DIR}/<file name>; repeatable",
    )
    parser.add_argument(
        "--output", "-o", metavar="FILE", help="write to FILE (created readable by its owner only) instead of stdout"
    )


def _read_policy(path: str) -> str:
    """The policy file's text, validated as ``factorygate scan --policy`` would."""
    from factorygate.catalog import load_catalog
    from factorygate.policy import parse_policy

    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_POLICY_BYTES + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: cannot read policy: {e}") from e
    if len(raw) > MAX_POLICY_BYTES:
        raise ManifestError(f"{path}: larger than {MAX_POLICY_BYTES // 1024} KiB, too large for a ConfigMap")
    parse_policy(text, path, set(load_catalog().checks))
    return text


def _read_signing_key(path: str) -> tuple[str, str]:
    """(file name, PEM text) of a public key file, checked to be one factorygate can verify with."""
    from cryptography.hazmat.primitives import serialization

    from factorygate.supply import keys

    try:
        key = keys.load_public_key(path)
    except keys.KeyFileError as e:
        raise ManifestError(f"--signing-key: {e}") from None
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return os.path.basename(path), pem


def manifest_warnings(opts: ManifestOptions) -> list[str]:
    """What factorygate's own checks would fail on the output, and what would hurt availability."""
    from factorygate.facts.images import parse_image, pinning_problem, registry_allowed
    from factorygate.policy import default_policy_text, parse_policy

    ref = parse_image(opts.image)
    warnings = []
    problem = pinning_problem(ref)
    if problem:
        warnings.append(
            f"image {opts.image} {problem}: pin it by digest (--image REF@sha256:...) or k8s-image-digest fails"
        )
    policy = parse_policy(opts.policy_text or default_policy_text(), "policy")
    if not registry_allowed(ref, policy.parameters.allowed_registries):
        warnings.append(f"image {opts.image} is not from the policy's allowed_registries: k8s-allowed-registry fails")
    if opts.replicas == 1:
        warnings.append(
            "1 replica: the PodDisruptionBudget (minAvailable 1) blocks node drains, and while the pod restarts "
            "the API server rejects every object the webhook covers (failurePolicy Fail)"
        )
    return warnings


def _write_private(path: str, text: str) -> None:
    """Create or replace ``path`` with mode 0600 (the text may hold a private key)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # an existing file keeps its mode on open: tighten it
        f.write(text)


def run_manifests(args: argparse.Namespace) -> int:
    """``factorygate admission manifests``: print (or write) the manifests; 0, or 2 on a usage error."""
    try:
        policy_text = _read_policy(args.policy) if args.policy else None
        opts = ManifestOptions(
            namespace=args.namespace,
            image=args.image,
            replicas=args.replicas,
            policy_text=policy_text,
            tls=TlsMode(args.tls),
            timeout_seconds=args.timeout_seconds,
            exclude_namespaces=tuple(args.exclude_namespace),
            cert_days=args.cert_days,
            verify_signatures=args.verify_signatures,
            signing_keys=tuple(_read_signing_key(path) for path in args.signing_key),
        )
        text = render_manifests(opts)
    except FactorygateError as e:
        print(f"factorygate: {e.diagnostics()}", file=sys.stderr)
        return 2
    for warning in manifest_warnings(opts):
        print(f"factorygate: warning: {warning}", file=sys.stderr)
    if opts.tls is TlsMode.SELF_SIGNED:
        where = args.output or "standard output"
        print(
            f"factorygate: warning: {where} holds the webhook's TLS private key (Secret {APP}-tls); "
            "keep it out of version control and logs",
            file=sys.stderr,
        )
    if args.output:
        try:
            _write_private(args.output, text)
        except OSError as e:
            print(f"factorygate: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
            return 2
    else:
        sys.stdout.write(text)
    return 0
