"""`factorygate admission manifests` and deploy/Containerfile: what a cluster needs to run the webhook.

The generated manifests and the Containerfile must pass factorygate's own checks; the TLS material
must be what the API server and the in-container health check can verify.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from tests.conftest import ROOT, run_cli

from factorygate.admission.manifests import (
    DEFAULT_IMAGE,
    WEBHOOK_RULES,
    ManifestError,
    ManifestOptions,
    TlsMaterial,
    TlsMode,
    add_manifest_arguments,
    generate_tls,
    render_manifests,
    run_manifests,
)
from factorygate.catalog import load_catalog
from factorygate.policy import default_policy_text, parse_policy

PINNED = "registry1.dso.mil/factorygate/factorygate:0.1.0@sha256:" + "3f0c5b6a1e8a4d8f" * 4
CONTAINERFILE = ROOT / "deploy" / "Containerfile"


def _docs(text: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    assert all(isinstance(d, dict) for d in docs)
    return docs


def _one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    hits = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(hits) == 1, f"{kind} {name}: {len(hits)} documents"
    return hits[0]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="factorygate admission manifests")
    add_manifest_arguments(parser)
    return parser.parse_args(list(argv))


def _scan_json(path: Path) -> dict[str, Any]:
    proc = run_cli("scan", str(path), "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def _check_ids(prefix: str) -> set[str]:
    return {c for c in load_catalog().checks if c.startswith(prefix)}


# -- factorygate's own checks ---------------------------------------------------------------------
@pytest.mark.parametrize("tls", list(TlsMode))
def test_generated_manifests_pass_every_kubernetes_check(tls: TlsMode, tmp_path: Path) -> None:
    path = tmp_path / "factorygate.yaml"
    path.write_text(render_manifests(ManifestOptions(image=PINNED, tls=tls)), encoding="utf-8")
    report = _scan_json(path)
    failing = [(f["check"], f["message"]) for f in report["findings"] if f["status"] != "pass"]
    assert failing == []
    assert report["summary"]["exit_code"] == 0
    assert report["summary"]["workloads"] == 1
    assert {f["check"] for f in report["findings"]} == _check_ids("k8s-")


def test_containerfile_passes_every_dockerfile_check() -> None:
    report = _scan_json(CONTAINERFILE)
    failing = [(f["check"], f["message"]) for f in report["findings"] if f["status"] != "pass"]
    assert failing == []
    assert report["summary"]["dockerfiles"] == 1
    assert report["summary"]["exit_code"] == 0
    assert {f["check"] for f in report["findings"]} == _check_ids("df-")


def test_tag_only_default_image_fails_only_the_digest_check(tmp_path: Path) -> None:
    path = tmp_path / "factorygate.yaml"
    path.write_text(render_manifests(ManifestOptions()), encoding="utf-8")
    failing = {f["check"] for f in _scan_json(path)["findings"] if f["status"] == "fail"}
    assert failing == {"k8s-image-digest"}


# -- structure ------------------------------------------------------------------------------------
def test_output_is_safe_yaml_in_apply_order() -> None:
    text = render_manifests(ManifestOptions(image=PINNED))
    assert text.startswith("# factorygate ")
    kinds = [d["kind"] for d in _docs(text)]
    assert kinds[:3] == ["Namespace", "ServiceAccount", "ConfigMap"]
    assert kinds[-1] == "ValidatingWebhookConfiguration"
    for kind in ("Service", "Deployment", "PodDisruptionBudget", "NetworkPolicy", "Issuer", "Certificate"):
        assert kind in kinds
    assert "&id" not in text
    assert "*id" not in text


def test_cert_manager_output_is_deterministic() -> None:
    opts = ManifestOptions(image=PINNED)
    assert render_manifests(opts) == render_manifests(opts)


def test_webhook_configuration() -> None:
    opts = ManifestOptions(namespace="gate", image=PINNED, timeout_seconds=7, exclude_namespaces=("cert-manager",))
    docs = _docs(render_manifests(opts))
    config = _one(docs, "ValidatingWebhookConfiguration")
    assert config["apiVersion"] == "admissionregistration.k8s.io/v1"
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "None"
    assert hook["timeoutSeconds"] == 7
    assert hook["admissionReviewVersions"] == ["v1"]
    service = _one(docs, "Service", "factorygate")
    assert hook["clientConfig"]["service"] == {
        "namespace": "gate",
        "name": "factorygate",
        "path": "/validate",
        "port": service["spec"]["ports"][0]["port"],
    }
    (expr,) = hook["namespaceSelector"]["matchExpressions"]
    assert expr["key"] == "kubernetes.io/metadata.name"
    assert expr["operator"] == "NotIn"
    assert set(expr["values"]) == {"kube-system", "gate", "cert-manager"}
    covered = {(g, r) for rule in hook["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert covered == {(g, r) for g, _, resources in WEBHOOK_RULES for r in resources}
    assert {r for _, r in covered} == {
        "pods", "pods/ephemeralcontainers", "deployments", "replicasets", "statefulsets", "daemonsets", "jobs",
        "cronjobs", "replicationcontrollers",
    }  # fmt: skip
    assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in hook["rules"])


def test_deployment_is_wired_to_its_service_secret_and_policy() -> None:
    docs = _docs(render_manifests(ManifestOptions(image=PINNED, replicas=3)))
    deployment = _one(docs, "Deployment", "factorygate")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = pod["containers"]
    assert container["image"] == PINNED
    assert container["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https", "scheme": "HTTPS"}
    assert pod["automountServiceAccountToken"] is False
    assert _one(docs, "ServiceAccount", pod["serviceAccountName"])["automountServiceAccountToken"] is False

    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    args = container["args"]
    flag = {args[i]: args[i + 1] for i in range(2, len(args) - 1, 2)}
    assert args[:2] == ["admission", "serve"]
    assert flag["--port"] == "8443"
    assert flag["--tls-cert"] == mounts["tls"] + "/tls.crt"
    assert flag["--tls-key"] == mounts["tls"] + "/tls.key"
    assert volumes["tls"]["secret"]["secretName"] == "factorygate-tls"
    policy_dir, _, policy_key = flag["--policy"].rpartition("/")
    assert policy_dir == mounts["policy"]
    config_map = _one(docs, "ConfigMap", volumes["policy"]["configMap"]["name"])
    assert policy_key in config_map["data"]

    service = _one(docs, "Service", "factorygate")
    assert service["spec"]["ports"][0]["targetPort"] == "https"
    for selector in (
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"],
        _one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    assert _one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_network_policy_admits_only_the_webhook_port() -> None:
    docs = _docs(render_manifests(ManifestOptions(image=PINNED)))
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert {p["metadata"]["namespace"] for p in policies} == {"factorygate-system"}
    assert all(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} for p in policies)
    ingress = [rule for p in policies for rule in p["spec"].get("ingress", [])]
    assert ingress == [{"ports": [{"protocol": "TCP", "port": 8443}]}]
    assert [rule for p in policies for rule in p["spec"].get("egress", [])] == []


def test_cert_manager_variant_issues_and_injects_the_ca() -> None:
    text = render_manifests(ManifestOptions(namespace="gate", image=PINNED))
    assert "PRIVATE KEY" not in text
    docs = _docs(text)
    assert not [d for d in docs if d["kind"] == "Secret"]
    serving = _one(docs, "Certificate", "factorygate-serving")
    assert serving["metadata"]["namespace"] == "gate"
    assert "factorygate.gate.svc" in serving["spec"]["dnsNames"]
    assert serving["spec"]["usages"] == ["digital signature", "server auth"]
    ca_issuer = _one(docs, "Issuer", serving["spec"]["issuerRef"]["name"])
    ca_cert = _one(docs, "Certificate", "factorygate-ca")
    assert ca_cert["spec"]["isCA"] is True
    assert ca_issuer["spec"]["ca"]["secretName"] == ca_cert["spec"]["secretName"]
    assert "selfSigned" in _one(docs, "Issuer", ca_cert["spec"]["issuerRef"]["name"])["spec"]
    deployment = _one(docs, "Deployment")
    tls_volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls")
    assert tls_volume["secret"]["secretName"] == serving["spec"]["secretName"]
    config = _one(docs, "ValidatingWebhookConfiguration")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "gate/factorygate-serving"
    assert "caBundle" not in config["webhooks"][0]["clientConfig"]


# -- self-signed TLS ------------------------------------------------------------------------------
def _self_signed(namespace: str = "factorygate-system") -> tuple[list[dict[str, Any]], TlsMaterial]:
    docs = _docs(render_manifests(ManifestOptions(namespace=namespace, image=PINNED, tls=TlsMode.SELF_SIGNED)))
    secret = _one(docs, "Secret", "factorygate-tls")
    assert secret["type"] == "kubernetes.io/tls"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    bundle = base64.b64decode(_one(docs, "ValidatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"])
    assert data["ca.crt"] == bundle
    return docs, TlsMaterial(ca_pem=bundle, cert_pem=data["tls.crt"], key_pem=data["tls.key"])


def test_ca_bundle_signed_the_serving_certificate_for_the_service() -> None:
    _, tls = _self_signed("gate")
    ca = x509.load_pem_x509_certificate(tls.ca_pem)
    cert = x509.load_pem_x509_certificate(tls.cert_pem)
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "factorygate.gate.svc" in sans.get_values_for_type(x509.DNSName)
    assert "factorygate.gate" in sans.get_values_for_type(x509.DNSName)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    key = serialization.load_pem_private_key(tls.key_pem, password=None)
    assert key.public_key() == cert.public_key()
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == dt.timedelta(days=365)
    assert cert.not_valid_before_utc <= dt.datetime.now(dt.UTC)


def _handshake(tls: TlsMaterial, server_name: str, tmp_path: Path) -> None:
    """A TLS handshake in memory: the client trusts only the CA bundle and checks the host name."""
    (tmp_path / "tls.crt").write_bytes(tls.cert_pem)
    (tmp_path / "tls.key").write_bytes(tls.key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client_ctx = ssl.create_default_context(cadata=tls.ca_pem.decode())
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        done = True
        for end, out, peer in ((client, c_out, s_in), (server, s_out, c_in)):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                done = False
            peer.write(out.read())
        if done:
            return
    pytest.fail("the handshake did not finish")


def test_api_server_name_verifies_against_the_ca_bundle(tmp_path: Path) -> None:
    _, tls = _self_signed("gate")
    _handshake(tls, "factorygate.gate.svc", tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(tls, "factorygate.other.svc", tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(tls._replace(ca_pem=generate_tls("gate", 1).ca_pem), "factorygate.gate.svc", tmp_path)


def _healthcheck_argv() -> list[str]:
    text = CONTAINERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*?\bCMD (\[.*\])$", text, re.MULTILINE)
    assert match, "no HEALTHCHECK CMD in exec form"
    argv: list[str] = json.loads(match.group(1))
    return argv


@pytest.fixture
def https_health_server(tmp_path: Path) -> Iterator[tuple[int, TlsMaterial]]:
    """A local HTTPS server with the generated serving certificate, answering GET /healthz."""
    _, tls = _self_signed()
    (tmp_path / "tls.crt").write_bytes(tls.cert_pem)
    (tmp_path / "tls.key").write_bytes(tls.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], tls
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _run_healthcheck(port: int, ca_pem: bytes, tmp_path: Path) -> int:
    argv = _healthcheck_argv()
    assert argv[0].endswith("/python")
    assert "https://localhost:8443/healthz" in argv[2]
    ca = tmp_path / "ca.crt"
    ca.write_bytes(ca_pem)
    code = argv[2].replace(":8443/", f":{port}/").replace("/etc/factorygate/tls/ca.crt", str(ca))
    return subprocess.run([sys.executable, *argv[1:2], code], capture_output=True, timeout=30, check=False).returncode


def test_containerfile_healthcheck_passes_with_verification_on(
    https_health_server: tuple[int, TlsMaterial], tmp_path: Path
) -> None:
    port, tls = https_health_server
    assert _run_healthcheck(port, tls.ca_pem, tmp_path) == 0
    # verification is really on: a CA that did not sign the serving certificate fails the check
    assert _run_healthcheck(port, generate_tls("other", 1).ca_pem, tmp_path) != 0


# -- policy ---------------------------------------------------------------------------------------
POLICY = """\
apiVersion: factorygate.dev/v1
kind: Policy
# shipped to the webhook as written
threshold: high
parameters:
  allowed_registries: [registry1.dso.mil, registry.example.mil/apps]
  fail_open_namespaces: [sandbox-*]
"""


def test_policy_file_round_trips_through_the_config_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY, encoding="utf-8")
    assert run_manifests(_args("--policy", str(policy_file), "--image", PINNED)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    docs = _docs(out)
    shipped = _one(docs, "ConfigMap", "factorygate-policy")["data"]["policy.yaml"]
    assert shipped == POLICY
    policy = parse_policy(shipped, "policy.yaml", set(load_catalog().checks))
    assert policy.threshold.value == "high"
    assert "registry.example.mil/apps" in policy.parameters.allowed_registries
    annotations = _one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["factorygate.dev/policy-sha256"] == hashlib.sha256(POLICY.encode()).hexdigest()


def test_default_policy_is_shipped_when_none_is_given() -> None:
    docs = _docs(render_manifests(ManifestOptions(image=PINNED)))
    shipped = _one(docs, "ConfigMap", "factorygate-policy")["data"]["policy.yaml"]
    assert shipped == default_policy_text()
    policy = parse_policy(shipped, "policy.yaml", set(load_catalog().checks))
    assert list(policy.parameters.allowed_registries) == ["registry1.dso.mil"]


def test_invalid_policy_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text("apiVersion: factorygate.dev/v1\nkind: Policy\nthreshold: severe\n", encoding="utf-8")
    assert run_manifests(_args("--policy", str(policy_file), "--image", PINNED)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{policy_file}:3: threshold" in err


# -- command line ---------------------------------------------------------------------------------
def test_tag_only_image_and_unlisted_registry_are_warned_about(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_manifests(_args()) == 0
    out, err = capsys.readouterr()
    assert f"image: {DEFAULT_IMAGE}\n" in out
    assert "k8s-image-digest" in err
    assert "k8s-allowed-registry" not in err
    assert run_manifests(_args("--image", "docker.io/library/nginx@sha256:" + "ab" * 32)) == 0
    err = capsys.readouterr().err
    assert "k8s-allowed-registry" in err
    assert "k8s-image-digest" not in err


def test_single_replica_is_warned_about(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_manifests(_args("--image", PINNED, "--replicas", "1")) == 0
    out, err = capsys.readouterr()
    assert "replicas: 1\n" in out
    assert "blocks node drains" in err
    assert run_manifests(_args("--image", PINNED)) == 0
    assert capsys.readouterr().err == ""


def test_self_signed_output_file_is_private(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "factorygate.yaml"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o644)
    assert run_manifests(_args("--self-signed", "--image", PINNED, "--output", str(target))) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "private key" in err
    assert target.stat().st_mode & 0o777 == 0o600
    assert _one(_docs(target.read_text(encoding="utf-8")), "Secret")["type"] == "kubernetes.io/tls"


def test_self_signed_to_stdout_warns(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_manifests(_args("--self-signed", "--image", PINNED)) == 0
    out, err = capsys.readouterr()
    assert "kind: Secret" in out
    assert "standard output holds the webhook's TLS private key" in err


def test_cert_manager_is_the_default_and_excludes_self_signed() -> None:
    assert _args().tls == TlsMode.CERT_MANAGER.value
    assert _args("--self-signed").tls == TlsMode.SELF_SIGNED.value
    with pytest.raises(SystemExit):
        _args("--self-signed", "--cert-manager")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("namespace", "Factory_Gate", "DNS-1123"),
        ("exclude_namespaces", ("ok", "-bad"), "DNS-1123"),
        ("timeout_seconds", 31, "1 to 30"),
        ("replicas", 0, "at least 1"),
        ("image", "registry1.dso.mil/a b", "not an image reference"),
        ("policy_text", "x" * (600 * 1024), "too large"),
    ],
)
def test_options_are_validated(field: str, value: object, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        ManifestOptions(**{field: value})  # type: ignore[arg-type]


def test_bad_option_value_is_reported_by_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_manifests(_args("--namespace", "Not_Valid")) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "DNS-1123" in err
    with pytest.raises(SystemExit):
        _args("--replicas", "0")
