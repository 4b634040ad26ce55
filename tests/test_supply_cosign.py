"""Signing and verification against a real docker-registry on 127.0.0.1 over TLS: round trip, every tamper
(image manifest, payload, signature, re-tag, storage corruption, docker reference), wrong key, unsigned, and the
CLI (`key generate`, `sign`, `verify`) with its exit codes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.registry_server import RegistryServer, missing_tools
from tests.supply_images import SigningRegistry, image_manifest, push_image, signing_registry

from factorygate.cli import main
from factorygate.oci.model import OCI_MANIFEST
from factorygate.oci.push import RegistryWriter
from factorygate.oci.registry import RegistryOptions
from factorygate.supply import cosign, keys

PASSWORD = b"test-passphrase-Qw7"


pytestmark = pytest.mark.usefixtures("empty_docker_config_env")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningRegistry]:
    with signing_registry(tmp_path_factory.mktemp("supply"), PASSWORD) as registry:
        yield registry


def _sig_manifest(w: RegistryWriter, digest: str) -> dict[str, object]:
    found = w.get_manifest(cosign.signature_tag(digest))
    assert found is not None
    doc: dict[str, object] = json.loads(found[0])
    return doc


def _put_sig_manifest(w: RegistryWriter, digest: str, doc: dict[str, object]) -> None:
    w.push_manifest(json.dumps(doc).encode(), OCI_MANIFEST, cosign.signature_tag(digest))


# ---- round trip and storage format --------------------------------------------------------------------------


def test_sign_then_verify_reports_digest_reference_and_signer(env: SigningRegistry) -> None:
    with env.writer("team/roundtrip") as w:
        digest = push_image(w, "v1", {"app/bin": b"one"})
        cosign.sign_image(w, w.repository, digest, env.key, {"build": "42"})
        verified = cosign.verify_image(w, w.repository, digest, [env.pub])
        manifest = _sig_manifest(w, digest)
    assert verified.digest == digest
    assert verified.docker_reference == f"{env.server.host}/team/roundtrip"
    assert verified.fingerprint == keys.fingerprint(env.pub)
    assert verified.annotations == {"build": "42"}
    # the storage format of cosign's SIGNATURE_SPEC: OCI manifest, simple-signing layer, signature annotation
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"  # type: ignore[index]
    (layer,) = manifest["layers"]  # type: ignore[misc]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert set(layer["annotations"]) == {"dev.cosignproject.cosign/signature"}


def test_second_signature_is_appended_not_replacing(env: SigningRegistry) -> None:
    with env.writer("team/twice") as w:
        digest = push_image(w, "v1", {"app/bin": b"two"})
        cosign.sign_image(w, w.repository, digest, env.key)
        cosign.sign_image(w, w.repository, digest, env.other)
        assert len(_sig_manifest(w, digest)["layers"]) == 2  # type: ignore[arg-type]
        by_other = cosign.verify_image(w, w.repository, digest, [env.other.public_key()])
        by_first = cosign.verify_image(w, w.repository, digest, [env.pub])
    assert by_other.fingerprint == keys.fingerprint(env.other.public_key())
    assert by_first.fingerprint == keys.fingerprint(env.pub)


def test_unsigned_image_is_a_clear_unsigned(env: SigningRegistry) -> None:
    with env.writer("team/unsigned") as w:
        digest = push_image(w, "v1", {"app/bin": b"unsigned"})
        with pytest.raises(cosign.Unsigned, match=r"unsigned \(no sha256-[0-9a-f]{64}\.sig"):
            cosign.verify_image(w, w.repository, digest, [env.pub])


def test_wrong_key_is_rejected(env: SigningRegistry) -> None:
    with env.writer("team/wrongkey") as w:
        digest = push_image(w, "v1", {"app/bin": b"wrong key"})
        cosign.sign_image(w, w.repository, digest, env.key)
        with pytest.raises(cosign.SignatureError, match="does not verify with the trusted key") as info:
            cosign.verify_image(w, w.repository, digest, [env.other.public_key()])
    assert not isinstance(info.value, cosign.Unsigned)


# ---- tampering --------------------------------------------------------------------------------------------------


def test_changed_image_manifest_is_unsigned(env: SigningRegistry) -> None:
    """One byte more in the image's manifest (an annotation) is another digest: the signature does not cover it."""
    with env.writer("team/tamper-manifest") as w:
        digest = push_image(w, "v1", {"app/bin": b"m"})
        cosign.sign_image(w, w.repository, digest, env.key)
        changed = image_manifest(w, {"app/bin": b"m"}, annotations={"x": "1"})
        new_digest = w.push_manifest(changed, OCI_MANIFEST, "v1")
        assert new_digest != digest
        with pytest.raises(cosign.Unsigned):
            cosign.verify_image(w, w.repository, new_digest, [env.pub])


def test_changed_payload_is_rejected(env: SigningRegistry) -> None:
    with env.writer("team/tamper-payload") as w:
        digest = push_image(w, "v1", {"app/bin": b"p"})
        cosign.sign_image(w, w.repository, digest, env.key)
        doc = _sig_manifest(w, digest)
        layer = doc["layers"][0]  # type: ignore[index]
        payload = w.get_blob(layer["digest"], 65536)
        forged = payload.replace(b'"optional":null', b'"optional":{"a":"b"}')
        assert forged != payload
        layer["digest"], layer["size"] = w.push_blob(forged), len(forged)
        _put_sig_manifest(w, digest, doc)
        with pytest.raises(cosign.SignatureError, match="signature 1: the signature does not verify"):
            cosign.verify_image(w, w.repository, digest, [env.pub])


def test_changed_signature_is_rejected(env: SigningRegistry) -> None:
    with env.writer("team/tamper-signature") as w:
        digest = push_image(w, "v1", {"app/bin": b"s"})
        cosign.sign_image(w, w.repository, digest, env.key)
        doc = _sig_manifest(w, digest)
        annotations = doc["layers"][0]["annotations"]  # type: ignore[index]
        raw = bytearray(base64.b64decode(annotations[cosign.SIGNATURE_ANNOTATION]))
        raw[-1] ^= 0x01
        annotations[cosign.SIGNATURE_ANNOTATION] = base64.b64encode(bytes(raw)).decode()
        _put_sig_manifest(w, digest, doc)
        with pytest.raises(cosign.SignatureError, match="does not verify"):
            cosign.verify_image(w, w.repository, digest, [env.pub])


def test_signature_retagged_to_another_digest_is_rejected(env: SigningRegistry) -> None:
    with env.writer("team/retag") as w:
        signed = push_image(w, "signed", {"app/bin": b"signed"})
        other = push_image(w, "other", {"app/bin": b"other"})
        cosign.sign_image(w, w.repository, signed, env.key)
        _put_sig_manifest(w, other, _sig_manifest(w, signed))
        with pytest.raises(cosign.SignatureError, match=f"signs digest {signed}, not the image's {other}"):
            cosign.verify_image(w, w.repository, other, [env.pub])


def test_payload_corrupted_in_registry_storage_is_rejected(env: SigningRegistry) -> None:
    with env.writer("team/storage") as w:
        digest = push_image(w, "v1", {"app/bin": b"storage"})
        cosign.sign_image(w, w.repository, digest, env.key)
        payload_digest = _sig_manifest(w, digest)["layers"][0]["digest"]  # type: ignore[index]
    hexdigest = payload_digest.split(":")[1]
    blob = env.server.directory / "data/docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
    data = bytearray(blob.read_bytes())
    data[10] ^= 0x20
    blob.write_bytes(bytes(data))
    with env.writer("team/storage") as w, pytest.raises(cosign.SignatureError, match="payload unreadable"):
        cosign.verify_image(w, w.repository, digest, [env.pub])


def test_signature_for_another_repository_is_rejected(env: SigningRegistry) -> None:
    with env.writer("team/elsewhere") as w:
        digest = push_image(w, "v1", {"app/bin": b"elsewhere"})
        cosign.sign_image(w, f"{env.server.host}/team/other-name", digest, env.key)
        with pytest.raises(cosign.SignatureError, match="signs docker reference"):
            cosign.verify_image(w, w.repository, digest, [env.pub])


def test_docker_hub_reference_forms_are_one_repository() -> None:
    assert cosign.normalised_repository("index.docker.io/library/alpine") == "docker.io/library/alpine"
    assert cosign.normalised_repository("alpine") == "docker.io/library/alpine"
    assert cosign.normalised_repository("127.0.0.1:5000/a/b:v1") == "127.0.0.1:5000/a/b"


# ---- CLI ----------------------------------------------------------------------------------------------------------


def _cli(env: SigningRegistry, *argv: str) -> int:
    return main([*argv, "--ca-file", str(env.certs.cert)])


def test_cli_generate_sign_verify(
    env: SigningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(keys.PASSWORD_ENV, "cli-pass-Zx1")
    assert main(["key", "generate", str(tmp_path / "ci")]) == 0
    out = capsys.readouterr().out
    assert "cli-pass-Zx1" not in out
    assert (tmp_path / "ci.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ci.key").read_text().startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    assert main(["key", "generate", str(tmp_path / "ci")]) == 2  # no silent overwrite
    assert "exists" in capsys.readouterr().err
    with env.writer("team/cli") as w:
        push_image(w, "v1", {"app/bin": b"cli"})
    ref = f"{env.server.host}/team/cli:v1"
    assert _cli(env, "verify", ref, "--key", str(tmp_path / "ci.pub")) == 1
    assert "unsigned" in capsys.readouterr().err
    assert _cli(env, "sign", ref, "--key", str(tmp_path / "ci.key"), "-a", "run=7") == 0
    assert "Signed" in capsys.readouterr().out
    assert _cli(env, "verify", ref, "--key", str(tmp_path / "ci.pub"), "--format", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] is True
    assert doc["signer"] == keys.fingerprint(keys.load_public_key(tmp_path / "ci.pub"))
    assert doc["annotations"] == {"run": "7"}
    # several --key: any one trusted key suffices; only untrusted keys: exit 1 with the reason
    assert _cli(env, "verify", ref, "--key", str(env.other_pub_path), "--key", str(tmp_path / "ci.pub")) == 0
    capsys.readouterr()
    assert _cli(env, "verify", ref, "--key", str(env.other_pub_path)) == 1
    assert "does not verify" in capsys.readouterr().err


def test_cli_errors_are_one_line_exit_2(
    env: SigningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"{env.server.host}/team/cli-errors:v1"
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("not a key")
    assert _cli(env, "verify", ref, "--key", str(garbage)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"factorygate: {garbage}: no PEM PUBLIC KEY block")
    monkeypatch.setenv(keys.PASSWORD_ENV, "not-the-passphrase")
    assert _cli(env, "sign", ref, "--key", str(env.key_path)) == 2
    err = capsys.readouterr().err
    assert "wrong passphrase" in err
    assert "not-the-passphrase" not in err
    monkeypatch.setenv(keys.PASSWORD_ENV, PASSWORD.decode())
    assert _cli(env, "sign", ref, "--key", str(env.key_path)) == 2  # the tag does not exist
    assert "not found" in capsys.readouterr().err
    assert main(["verify", "127.0.0.1:1/x:v1", "--key", str(env.pub_path), "--timeout", "2"]) == 2
    assert "127.0.0.1:1" in capsys.readouterr().err


def test_plain_http_needs_the_loopback_opt_in(env: SigningRegistry, tmp_path: Path) -> None:
    plain = RegistryServer(tmp_path / "plain", None).start()
    try:
        from factorygate.oci.model import ImageError

        with (
            pytest.raises(ImageError, match="did not answer with TLS"),
            RegistryWriter(f"{plain.host}/team/app", RegistryOptions()) as w,
        ):
            w.push_blob(b"x")
        with RegistryWriter(f"{plain.host}/team/app", RegistryOptions(insecure_registries=(plain.host,))) as w:
            digest = push_image(w, "v1", {"a": b"b"})
            cosign.sign_image(w, w.repository, digest, env.key)
            assert cosign.verify_image(w, w.repository, digest, [env.pub]).digest == digest
            assert w.insecure_transport
    finally:
        plain.stop()


@pytest.mark.parametrize("scheme", ["basic", "token"])
def test_push_and_sign_with_registry_auth(env: SigningRegistry, tmp_path: Path, scheme: str) -> None:
    """Writes answer the registry's challenge for push scope: Basic (htpasswd) and Bearer (token server)."""
    from tests.registry_server import TokenServer

    if missing_tools(("htpasswd",)):
        pytest.skip("needs htpasswd (apache2-utils)")
    user, password = "pusher", "push-pw-Jq3"
    tokens = TokenServer(tmp_path / "tokens", env.certs, {user: password}) if scheme == "token" else None
    server = RegistryServer(
        tmp_path / "reg", env.certs, users={user: password} if scheme == "basic" else {}, token_server=tokens
    ).start()
    try:
        from factorygate.oci.model import ImageError

        anonymous = RegistryOptions(ca_file=env.certs.cert)
        with pytest.raises(ImageError), RegistryWriter(f"{server.host}/team/auth", anonymous) as w:
            w.push_blob(b"anonymous")
        opts = RegistryOptions(ca_file=env.certs.cert, username=user, password=password)
        with RegistryWriter(f"{server.host}/team/auth", opts) as w:
            digest = push_image(w, "v1", {"app/bin": scheme.encode()})
            cosign.sign_image(w, w.repository, digest, env.key)
            assert cosign.verify_image(w, w.repository, digest, [env.pub]).digest == digest
        if tokens is not None:
            scopes = " ".join(s.path for s in tokens.token_requests())
            assert "push" in scopes
            assert all(t not in str(w.repository) for t in tokens.issued)
    finally:
        server.stop()
        if tokens is not None:
            tokens.stop()
