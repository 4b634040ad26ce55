"""The signature, key and attestation formats against cosign's published specifications (golden fixtures),
and property tests: the parsers of keys, payloads and envelopes never fail other than with their own error."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from factorygate.oci.digest import digest_of
from factorygate.supply import attest, cosign, dsse, keys

GOLDEN = Path(__file__).parent / "data" / "golden" / "cosign"
GOLDEN_PASSWORD = b"factorygate-golden"
REF, DIGEST = "registry.example/team/app", "sha256:" + "ab" * 32


def test_payload_is_byte_identical_to_the_golden_simple_signing_payload() -> None:
    assert cosign.simple_signing_payload(REF, DIGEST) == (GOLDEN / "payload.json").read_bytes()
    doc = json.loads((GOLDEN / "payload.json").read_bytes())
    assert doc["critical"]["type"] == "cosign container image signature"
    assert set(doc["critical"]) == {"identity", "image", "type"}


def test_golden_signature_manifest_has_the_spec_field_names_and_verifies() -> None:
    manifest = json.loads((GOLDEN / "signature-manifest.json").read_text())
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert manifest["config"]["digest"] == digest_of((GOLDEN / "signature-config.json").read_bytes())
    (layer,) = manifest["layers"]
    payload = (GOLDEN / "payload.json").read_bytes()
    assert layer == {
        "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "size": len(payload),
        "digest": digest_of(payload),
        "annotations": {
            "dev.cosignproject.cosign/signature": layer["annotations"]["dev.cosignproject.cosign/signature"]
        },
    }
    pub = keys.load_public_key(GOLDEN / "signer.pub")
    signature = layer["annotations"]["dev.cosignproject.cosign/signature"]
    assert cosign.verify_bytes_with([pub], payload, signature) == keys.fingerprint(pub)
    # the signature is ASN.1 DER ECDSA (what cosign writes), base64 standard encoding
    assert base64.b64decode(signature)[0] == 0x30
    config = json.loads((GOLDEN / "signature-config.json").read_bytes())
    assert config["rootfs"] == {"type": "layers", "diff_ids": [digest_of(payload)]}


def test_golden_sigstore_key_decrypts_and_matches_the_public_key() -> None:
    text = (GOLDEN / "signer.key").read_bytes()
    assert text.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    body = base64.b64decode(b"".join(text.splitlines()[1:-1]))
    doc = json.loads(body)
    assert doc["kdf"]["name"] == "scrypt"
    assert doc["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 32
    assert doc["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(doc["cipher"]["nonce"])) == 24
    key = keys.load_private_key(GOLDEN / "signer.key", GOLDEN_PASSWORD)
    assert keys.fingerprint(key.public_key()) == keys.fingerprint(keys.load_public_key(GOLDEN / "signer.pub"))
    with pytest.raises(keys.KeyFileError, match="wrong passphrase"):
        keys.load_private_key(GOLDEN / "signer.key", b"wrong")
    with pytest.raises(keys.KeyFileError, match="passphrase is needed"):
        keys.load_private_key(GOLDEN / "signer.key", None)


def test_golden_attestation_envelope_opens_and_is_a_statement_v1() -> None:
    pub = keys.load_public_key(GOLDEN / "signer.pub")
    envelope = (GOLDEN / "attestation.dsse.json").read_bytes()
    assert set(json.loads(envelope)) == {"payloadType", "payload", "signatures"}
    opened = dsse.open_envelope(envelope, [pub])
    assert opened.payload_type == "application/vnd.in-toto+json"
    statement = json.loads(opened.payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": REF, "digest": {"sha256": "ab" * 32}}]
    assert statement["predicateType"] == attest.GATE_PREDICATE


def test_dsse_pae_matches_the_specification_example() -> None:
    # secure-systems-lab/dsse protocol.md: PAE("http://example.com/HelloWorld", "hello world")
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_the_specification_example_payload_with_capitalised_field_parses() -> None:
    # cosign SIGNATURE_SPEC shows "Docker-manifest-digest"; cosign's Go decoder matches keys case-insensitively
    spec = (
        b'{"critical":{"identity":{"docker-reference":"testing/manifest"},'
        b'"image":{"Docker-manifest-digest":"sha256:20be"},"type":"cosign container image signature"},'
        b'"optional":{"creator":"atomic","timestamp":1458239713}}'
    )
    claims = cosign.parse_payload(spec)
    assert claims.digest == "sha256:20be"
    assert claims.optional["creator"] == "atomic"
    ambiguous = spec.replace(b'"image":{', b'"image":{"docker-manifest-digest":"sha256:ffff",')
    with pytest.raises(ValueError, match="duplicate key"):
        cosign.parse_payload(ambiguous)


def test_key_files_pkcs8_and_rejections(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    enc = tmp_path / "enc.pem"
    enc.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pkcs8-pw"),
        )
    )
    assert keys.fingerprint(keys.load_private_key(enc, b"pkcs8-pw").public_key()) == keys.fingerprint(key.public_key())
    with pytest.raises(keys.KeyFileError, match="wrong passphrase or malformed"):
        keys.load_private_key(enc, b"nope")
    p384 = tmp_path / "p384.pub"
    p384.write_bytes(keys.public_pem(ec.generate_private_key(ec.SECP384R1()).public_key()))  # type: ignore[arg-type]
    with pytest.raises(keys.KeyFileError, match="not an ECDSA P-256 public key"):
        keys.load_public_key(p384)
    with pytest.raises(keys.KeyFileError, match="no such key file"):
        keys.load_public_key(tmp_path / "absent.pub")
    with pytest.raises(keys.KeyFileError, match="not a private key"):
        keys.load_private_key(GOLDEN / "signer.pub", None)


def test_generate_writes_owner_only_private_key(tmp_path: Path) -> None:
    key_path, pub_path = keys.generate(str(tmp_path / "k"), b"")  # an empty passphrase is allowed, as in cosign
    assert key_path.stat().st_mode & 0o777 == 0o600
    key = keys.load_private_key(key_path, b"")
    assert keys.fingerprint(key.public_key()) == keys.fingerprint(keys.load_public_key(pub_path))
    with pytest.raises(keys.KeyFileError, match="exists"):
        keys.generate(str(tmp_path / "k"), b"")


# ---- property tests -------------------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | _json_values.map(lambda v: json.dumps(v).encode()))
def test_parse_payload_fails_only_with_value_error(data: bytes) -> None:
    try:
        claims = cosign.parse_payload(data)
    except ValueError:
        return
    assert isinstance(claims.digest, str)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_key_parsers_fail_only_with_key_file_error(data: bytes) -> None:
    pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(data) + b"\n-----END PUBLIC KEY-----\n"
    for blob in (data, pem):
        with pytest.raises(keys.KeyFileError):
            keys.parse_public_key(blob, "fuzz")
    sig = (
        b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
        + base64.b64encode(data)
        + b"\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    )
    with pytest.raises(keys.KeyFileError):
        keys.parse_private_key(sig, b"pw", "fuzz")


@settings(max_examples=60, deadline=None)
@given(_json_values)
def test_mutated_sigstore_key_json_fails_only_with_key_file_error(value: object) -> None:
    doc = json.loads(base64.b64decode(b"".join((GOLDEN / "signer.key").read_bytes().splitlines()[1:-1])))
    doc["cipher"]["nonce"] = value if not isinstance(value, str) else doc["cipher"]["nonce"][:-4] + "AAA="
    with pytest.raises(keys.KeyFileError):
        keys.decrypt_sigstore_key(json.dumps(doc).encode(), GOLDEN_PASSWORD, "fuzz")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | _json_values.map(lambda v: json.dumps(v).encode()))
def test_open_envelope_fails_only_with_signature_error(data: bytes) -> None:
    pub = keys.load_public_key(GOLDEN / "signer.pub")
    with pytest.raises(cosign.SignatureError):
        dsse.open_envelope(data, [pub])
