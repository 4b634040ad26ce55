"""Image signatures at admission (`admission serve --verify-signatures`, check img-signed-at-admission), end to end:
a real docker-registry on 127.0.0.1 over TLS holding cosign-signed and unsigned images, and the real webhook
server (HTTPS, a subprocess) receiving AdmissionReview requests. Every loop is bounded in count and time."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.admission_objects import body, deployment, pod, policy_text
from tests.registry_server import Certs, RegistryServer
from tests.supply_images import SigningRegistry, push_image, signing_registry
from tests.test_admission_server import Pki, ServerProcess, post

from factorygate.admission.manifests import KEYS_DIR, ManifestError, ManifestOptions, manifest_documents
from factorygate.admission.server import main as server_main
from factorygate.admission.signatures import TtlLru
from factorygate.oci.push import RegistryWriter
from factorygate.supply import cosign

PASSWORD = b"admission-signing-Zx4"
CHECK = "img-signed-at-admission"


@dataclass
class Env:
    reg: SigningRegistry  # the registry and the signer's and another key
    pki: Pki
    client_tls: ssl.SSLContext
    signed: str  # digest references
    unsigned: str
    other_signed: str
    signed_tag: str

    @property
    def root(self) -> Path:
        return self.reg.root

    @property
    def certs(self) -> Certs:
        return self.reg.certs

    @property
    def registry(self) -> RegistryServer:
        return self.reg.server

    @property
    def pub(self) -> Path:
        return self.reg.pub_path

    def writer(self, repo: str) -> RegistryWriter:
        return self.reg.writer(repo)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("admission-signatures")
    (root / "docker-config").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOCKER_CONFIG", str(root / "docker-config"))  # inherited by the server processes
        with signing_registry(root, PASSWORD) as reg:
            pki = Pki()
            (root / "ca.pem").write_bytes(pki.ca_pem())
            client_tls = ssl.create_default_context(cafile=str(root / "ca.pem"))
            with reg.writer("team/app") as w:
                d_signed = push_image(w, "v1", {"app/bin": b"signed"})
                cosign.sign_image(w, w.repository, d_signed, reg.key)
                d_unsigned = push_image(w, "unsigned", {"app/bin": b"unsigned"})
                d_other = push_image(w, "other", {"app/bin": b"other"})
                cosign.sign_image(w, w.repository, d_other, reg.other)
                repo = w.repository
            yield Env(
                reg, pki, client_tls,
                f"{repo}@{d_signed}", f"{repo}@{d_unsigned}", f"{repo}@{d_other}", f"{repo}:v1",
            )  # fmt: skip


def _policy(env: Env, registry_host: str, keys_yaml: str | None = None) -> str:
    trusted = keys_yaml if keys_yaml is not None else f"  trusted_signing_keys: [{json.dumps(str(env.pub))}]\n"
    text = policy_text(extra_parameters=trusted).replace(
        "allowed_registries: [registry1.dso.mil]", f"allowed_registries: [registry1.dso.mil, '{registry_host}']"
    )
    return text + "checks:\n  k8s-image-digest: {enabled: false}\n"  # tags are admitted here, to test tag moves


def _server(env: Env, name: str, registry_host: str, *extra: str) -> ServerProcess:
    d = env.root / name
    d.mkdir()
    cert, key, _ = env.pki.issue("factorygate-webhook.factorygate.svc")
    (d / "tls.crt").write_bytes(cert)
    (d / "tls.key").write_bytes(key)
    (d / "policy.yaml").write_text(_policy(env, registry_host), encoding="utf-8")
    args = ["--tls-cert", str(d / "tls.crt"), "--tls-key", str(d / "tls.key"), "--policy", str(d / "policy.yaml")]
    args += ["--verify-signatures", "--ca-file", str(env.certs.cert), *extra]
    return ServerProcess(args, env.client_tls)


@pytest.fixture(scope="module")
def webhook(env: Env) -> Iterator[ServerProcess]:
    srv = _server(env, "main", env.registry.host, "--tag-cache-ttl", "1")
    yield srv
    assert srv.stop() == 0


def admit(srv: ServerProcess, obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
    with srv.client() as c:
        r = post(c, body(obj, **kw))
    assert r.status_code == 200, r.text
    response: dict[str, Any] = r.json()["response"]
    return response


def _pod_with(image: str, namespace: str = "shop", init_image: str | None = None) -> dict[str, Any]:
    obj = pod(namespace=namespace)
    obj["spec"]["containers"][0]["image"] = image
    if init_image is not None:
        init = dict(obj["spec"]["containers"][0], name="init", image=init_image)
        obj["spec"]["initContainers"] = [init]
    return obj


# -- decisions ------------------------------------------------------------------------------------------------


def test_signed_image_by_digest_is_admitted(env: Env, webhook: ServerProcess) -> None:
    response = admit(webhook, _pod_with(env.signed))
    assert response["allowed"] is True, response


def test_signed_image_by_tag_is_admitted_in_a_deployment(env: Env, webhook: ServerProcess) -> None:
    response = admit(webhook, deployment(image=env.signed_tag))
    assert response["allowed"] is True, response


def test_unsigned_image_is_denied_naming_image_and_cause(env: Env, webhook: ServerProcess) -> None:
    response = admit(webhook, _pod_with(env.unsigned))
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert f"{CHECK} (high; CICDG-2.10)" in message
    assert env.unsigned in message
    assert "unsigned" in message
    assert response["auditAnnotations"]["failed-checks"] == CHECK
    line = webhook.wait_for(lambda e: e.get("event") == "admission" and CHECK in e.get("failed", []), 10)
    assert line["decision"] == "denied"


def test_init_container_image_is_verified_too(env: Env, webhook: ServerProcess) -> None:
    response = admit(webhook, _pod_with(env.signed, init_image=env.unsigned))
    assert response["allowed"] is False
    assert "container init:" in response["status"]["message"]


def test_image_signed_by_another_key_is_denied(env: Env, webhook: ServerProcess) -> None:
    response = admit(webhook, _pod_with(env.other_signed))
    assert response["allowed"] is False
    assert "does not verify with the trusted key" in response["status"]["message"]


def test_unknown_tag_is_denied(env: Env, webhook: ServerProcess) -> None:
    response = admit(webhook, _pod_with(f"{env.registry.host}/team/app:no-such-tag"))
    assert response["allowed"] is False
    assert "tag no-such-tag not found" in response["status"]["message"]


def test_exempt_namespace_is_not_verified(env: Env, webhook: ServerProcess) -> None:
    response = admit(webhook, _pod_with(env.unsigned, namespace="kube-system"))
    assert response["allowed"] is True
    assert response["auditAnnotations"] == {"exempt-namespace": "kube-system"}


def test_inline_waiver_applies_to_the_signature_check(env: Env, webhook: ServerProcess) -> None:
    obj = _pod_with(env.unsigned)
    obj["metadata"]["annotations"] = {
        f"factorygate.dev/waive.{CHECK}": "{justification: 'Vendor image, signed by Q3.', approver: 'ISSM', "
        "expires: '2099-12-31'}"
    }
    response = admit(webhook, obj)
    assert response["allowed"] is True, response
    assert response["auditAnnotations"]["waived-checks"] == CHECK


def test_a_moved_tag_is_denied_after_the_tag_ttl(env: Env, webhook: ServerProcess) -> None:
    with env.writer("team/moving") as w:
        digest = push_image(w, "stable", {"app/bin": b"first"})
        cosign.sign_image(w, w.repository, digest, env.reg.key)
        image = f"{w.repository}:stable"
        assert admit(webhook, _pod_with(image))["allowed"] is True
        push_image(w, "stable", {"app/bin": b"moved, unsigned"})
    # within the tag TTL (1 s) the cached digest still decides; past it the tag is resolved again
    deadline = time.monotonic() + 10
    denied = None
    while time.monotonic() < deadline:
        response = admit(webhook, _pod_with(image))
        if not response["allowed"]:
            denied = response
            break
        time.sleep(0.3)
    assert denied is not None, "the moved tag was still admitted 10 s later"
    assert "unsigned" in denied["status"]["message"]


# -- the cache, and a registry that goes away -----------------------------------------------------------------


def test_cache_hits_need_no_registry_and_misses_fail_closed_fast(env: Env) -> None:
    registry = RegistryServer(env.root / "registry-2", env.certs).start()
    try:
        with RegistryWriter(f"{registry.host}/team/cached", env.reg.opts) as w:
            digest = push_image(w, "v1", {"app/bin": b"cached"})
            cosign.sign_image(w, w.repository, digest, env.reg.key)
            image = f"{w.repository}@{digest}"
            unsigned = f"{w.repository}@{push_image(w, 'v2', {'app/bin': b'never verified'})}"
        srv = _server(env, "cache", registry.host, "--signature-timeout", "3")
        try:
            assert admit(srv, _pod_with(image))["allowed"] is True  # verified: now cached
            registry.stop()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", registry.port), timeout=2).close()
            started = time.monotonic()
            for _ in range(5):  # a cache hit contacts no registry: the registry is down and still it is admitted
                assert admit(srv, _pod_with(image))["allowed"] is True
            assert time.monotonic() - started < 5
            started = time.monotonic()
            response = admit(srv, _pod_with(unsigned))
            elapsed = time.monotonic() - started
            assert response["allowed"] is False  # not in the cache, registry down: fail closed
            assert "registry lookup failed" in response["status"]["message"]
            assert unsigned in response["status"]["message"]
            assert elapsed < 3, elapsed
            # the same error admits in a fail-open namespace, with a warning, as every evaluation error does
            response = admit(srv, _pod_with(unsigned, namespace="sandbox-alice"))
            assert response["allowed"] is True
            assert "fail-open" in response["warnings"][0]
        finally:
            assert srv.stop() == 0
    finally:
        registry.stop()


def test_a_registry_that_never_answers_times_out_within_the_budget(env: Env) -> None:
    with socket.socket() as silent:  # accepts connections into its backlog and never answers: TLS hangs
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        srv = _server(env, "silent", host, "--signature-timeout", "0.5")
        try:
            started = time.monotonic()
            response = admit(srv, _pod_with(f"{host}/team/app@sha256:{'a' * 64}"))
            elapsed = time.monotonic() - started
        finally:
            assert srv.stop() == 0
    assert response["allowed"] is False
    assert "signature verification timed out after 0.5 s" in response["status"]["message"]
    assert elapsed < 3, elapsed


def test_verify_signatures_without_trusted_keys_refuses_to_start(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    d = env.root / "nokeys"
    d.mkdir()
    (d / "policy.yaml").write_text(_policy(env, env.registry.host, keys_yaml=""), encoding="utf-8")
    cert, key, _ = env.pki.issue("x")
    (d / "tls.crt").write_bytes(cert)
    (d / "tls.key").write_bytes(key)
    argv = ["--tls-cert", str(d / "tls.crt"), "--tls-key", str(d / "tls.key"), "--policy", str(d / "policy.yaml")]
    assert server_main([*argv, "--port", "0", "--verify-signatures"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("factorygate: --verify-signatures needs the policy's parameters.trusted_signing_keys")
    assert "\n" not in err
    (d / "policy.yaml").write_text(_policy(env, env.registry.host, "  trusted_signing_keys: [/no/such.pub]\n"))
    assert server_main([*argv, "--port", "0", "--verify-signatures"]) == 2
    err = capsys.readouterr().err.strip()
    assert "/no/such.pub" in err
    assert "\n" not in err


def test_without_the_option_images_are_not_verified(env: Env) -> None:
    d = env.root / "off"
    d.mkdir()
    cert, key, _ = env.pki.issue("factorygate-webhook.factorygate.svc")
    (d / "tls.crt").write_bytes(cert)
    (d / "tls.key").write_bytes(key)
    (d / "policy.yaml").write_text(_policy(env, env.registry.host), encoding="utf-8")
    args = ["--tls-cert", str(d / "tls.crt"), "--tls-key", str(d / "tls.key"), "--policy", str(d / "policy.yaml")]
    srv = ServerProcess(args, env.client_tls)
    try:
        assert admit(srv, _pod_with(env.unsigned))["allowed"] is True
    finally:
        assert srv.stop() == 0


# -- the cache itself ---------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ttl_lru_expires_and_evicts_least_recently_used() -> None:
    clock = FakeClock()
    cache: TtlLru[str, int] = TtlLru(10.0, 2, clock)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert cache.get("a") == 1
    assert cache.get("c") == 3
    clock.now += 10.0
    assert cache.get("a") is None
    assert len(cache) == 1
    disabled: TtlLru[str, int] = TtlLru(0.0, 10, clock)
    disabled.put("a", 1)
    assert disabled.get("a") is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 3), st.booleans()), max_size=60))
def test_ttl_lru_never_exceeds_its_size_nor_returns_expired(ops: list[tuple[str, int, bool]]) -> None:
    clock = FakeClock()
    cache: TtlLru[str, float] = TtlLru(2.0, 3, clock)
    for key, advance, write in ops:
        clock.now += advance
        if write:
            cache.put(key, clock.now)
        else:
            put_at = cache.get(key)
            assert put_at is None or clock.now - put_at < 2.0
        assert len(cache) <= 3


# -- manifests ------------------------------------------------------------------------------------------------


def _pem(env: Env) -> str:
    return env.pub.read_text()


def test_manifests_carry_the_option_the_keys_and_registry_egress(env: Env) -> None:
    policy = _policy(env, env.registry.host, f"  trusted_signing_keys: ['{KEYS_DIR}/signer.pub']\n")
    docs = manifest_documents(
        ManifestOptions(policy_text=policy, verify_signatures=True, signing_keys=(("signer.pub", _pem(env)),))
    )
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    keys_cm = by_kind[("ConfigMap", "factorygate-signing-keys")]
    assert keys_cm["data"] == {"signer.pub": _pem(env)}
    pod_spec = by_kind[("Deployment", "factorygate")]["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    assert "--verify-signatures" in container["args"]
    assert container["args"][container["args"].index("--signature-timeout") + 1] == "4"  # timeoutSeconds 5 - 1
    assert {"name": "signing-keys", "mountPath": KEYS_DIR, "readOnly": True} in container["volumeMounts"]
    assert {"name": "signing-keys", "configMap": {"name": "factorygate-signing-keys", "defaultMode": 0o444}} in (
        pod_spec["volumes"]
    )
    egress = by_kind[("NetworkPolicy", "factorygate-webhook")]["spec"]["egress"]
    assert {"protocol": "TCP", "port": 443} in egress[1]["ports"]
    # without the option: no keys, no egress (as before)
    plain = {(d["kind"], d["metadata"]["name"]): d for d in manifest_documents(ManifestOptions(policy_text=policy))}
    assert ("ConfigMap", "factorygate-signing-keys") not in plain
    assert plain[("NetworkPolicy", "factorygate-webhook")]["spec"]["egress"] == []
    assert (
        "--verify-signatures"
        not in plain[("Deployment", "factorygate")]["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    yaml.safe_dump_all(docs)  # serialisable


def test_manifests_refuse_keys_the_pod_cannot_read(env: Env) -> None:
    with pytest.raises(ManifestError, match=r"lists no parameters\.trusted_signing_keys"):
        manifest_documents(ManifestOptions(policy_text=_policy(env, "x", ""), verify_signatures=True))
    with pytest.raises(ManifestError, match="neither PEM text nor a key mounted in the pod"):
        manifest_documents(ManifestOptions(policy_text=_policy(env, "x"), verify_signatures=True))
    with pytest.raises(ManifestError, match="only with --verify-signatures"):
        ManifestOptions(signing_keys=(("a.pub", _pem(env)),))
    inline = _policy(env, "x", f"  trusted_signing_keys: [{json.dumps(_pem(env))}]\n")
    assert manifest_documents(ManifestOptions(policy_text=inline, verify_signatures=True))


def test_manifests_cli_reads_the_key_file(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from factorygate.cli import main

    policy = tmp_path / "policy.yaml"
    policy.write_text(_policy(env, env.registry.host, f"  trusted_signing_keys: ['{KEYS_DIR}/signer.pub']\n"))
    code = main(
        ["admission", "manifests", "--policy", str(policy), "--verify-signatures", "--signing-key", str(env.pub)]
    )
    out = capsys.readouterr().out
    assert code == 0
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert any(d["metadata"]["name"] == "factorygate-signing-keys" for d in docs)
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    code = main(["admission", "manifests", "--verify-signatures", "--signing-key", str(bad)])
    assert code == 2
    assert "bad.pub" in capsys.readouterr().err


def test_signed_loop_is_fast_with_a_warm_cache(env: Env, webhook: ServerProcess) -> None:
    """Steady state: 50 admissions of a signed image by digest within a bounded time (no registry I/O)."""
    payload = body(_pod_with(env.signed))
    with webhook.client() as c:
        assert post(c, payload).json()["response"]["allowed"] is True
        started = time.monotonic()
        for _ in range(50):
            r = post(c, payload)
            assert r.json()["response"]["allowed"] is True
        assert time.monotonic() - started < 10
