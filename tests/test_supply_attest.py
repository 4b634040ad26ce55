"""Attestations against a real docker-registry over TLS: SLSA provenance and the gate decision attached as
cosign attaches them (`.att`, DSSE, in-toto Statement v1), verified; tampered, re-tagged, wrong-key and
missing attestations rejected with their reason."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.supply_images import SigningRegistry, push_image, signing_registry

from factorygate.cli import main
from factorygate.oci.model import OCI_MANIFEST
from factorygate.oci.push import RegistryWriter
from factorygate.supply import attest, cosign, dsse, keys

FIXTURES = Path(__file__).parent / "fixtures" / "checks" / "k8s-allowed-registry"


pytestmark = pytest.mark.usefixtures("empty_docker_config_env")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningRegistry]:
    with signing_registry(tmp_path_factory.mktemp("attest"), b"att-pw") as registry:
        yield registry


def _att_manifest(w: RegistryWriter, digest: str) -> dict[str, object]:
    found = w.get_manifest(cosign.signature_tag(digest, "att"))
    assert found is not None
    doc: dict[str, object] = json.loads(found[0])
    return doc


def test_provenance_and_gate_attestations_round_trip(env: SigningRegistry, tmp_path: Path) -> None:
    report = tmp_path / "scan.json"
    assert main(["scan", str(FIXTURES / "pass"), "--format", "json", "-o", str(report)]) in (0, 1)
    with env.writer("team/attested") as w:
        digest = push_image(w, "v1", {"app/bin": b"attested"})
        provenance = attest.slsa_provenance(
            builder_id="https://ci.example/runner",
            source_uri="git+https://git.example/team/app",
            source_digest={"gitCommit": "1" * 40},
            external_parameters={"workflow": "release"},
        )
        attest.attach(w, w.repository, digest, env.key, attest.SLSA_PROVENANCE_V1, provenance)
        gate = attest.gate_decision([report])
        attest.attach(w, w.repository, digest, env.key, attest.GATE_PREDICATE, gate)
        found = attest.verify_attestations(w, w.repository, digest, [env.key.public_key()])
        only_gate = attest.verify_attestations(w, w.repository, digest, [env.key.public_key()], attest.GATE_PREDICATE)
        manifest = _att_manifest(w, digest)
    assert [a.predicate_type for a in found] == [attest.SLSA_PROVENANCE_V1, attest.GATE_PREDICATE]
    assert found[0].predicate["runDetails"]["builder"]["id"] == "https://ci.example/runner"
    assert found[0].predicate["buildDefinition"]["resolvedDependencies"][0]["digest"] == {"gitCommit": "1" * 40}
    (gate_att,) = only_gate
    import hashlib

    assert gate_att.predicate["reports"][0]["digest"] == {"sha256": hashlib.sha256(report.read_bytes()).hexdigest()}
    assert gate_att.predicate["decision"] in ("pass", "fail")
    assert gate_att.fingerprint == keys.fingerprint(env.key.public_key())
    # cosign's attestation layout: DSSE layers with the signature (empty) and predicateType annotations
    for layer in manifest["layers"]:  # type: ignore[attr-defined]
        assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
        assert layer["annotations"]["dev.cosignproject.cosign/signature"] == ""
        assert layer["annotations"]["predicateType"] in (attest.SLSA_PROVENANCE_V1, attest.GATE_PREDICATE)


def test_missing_wrong_key_tampered_and_retagged_attestations_are_rejected(env: SigningRegistry) -> None:
    pub = env.key.public_key()
    with env.writer("team/att-tamper") as w:
        digest = push_image(w, "v1", {"app/bin": b"att"})
        other = push_image(w, "other", {"app/bin": b"other"})
        with pytest.raises(cosign.Unsigned, match="no attestations"):
            attest.verify_attestations(w, w.repository, digest, [pub])
        attest.attach(w, w.repository, digest, env.key, attest.GATE_PREDICATE, {"decision": "pass"})
        with pytest.raises(cosign.SignatureError, match="does not verify"):
            attest.verify_attestations(w, w.repository, digest, [keys.load_public_key(env.other_pub_path)])
        with pytest.raises(cosign.SignatureError, match="predicate type"):
            attest.verify_attestations(w, w.repository, digest, [pub], attest.SLSA_PROVENANCE_V1)
        # re-tag: the .att of one image under another's tag names the wrong subject digest
        manifest = _att_manifest(w, digest)
        w.push_manifest(json.dumps(manifest).encode(), OCI_MANIFEST, cosign.signature_tag(other, "att"))
        with pytest.raises(cosign.SignatureError, match="no statement subject has the image's digest"):
            attest.verify_attestations(w, w.repository, other, [pub])
        # tamper: a decision flipped inside the envelope's payload
        layer = manifest["layers"][0]  # type: ignore[index]
        envelope = json.loads(w.get_blob(layer["digest"], 1 << 20))
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["predicate"]["decision"] = "fail"
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        forged = json.dumps(envelope).encode()
        layer["digest"], layer["size"] = w.push_blob(forged), len(forged)
        w.push_manifest(json.dumps(manifest).encode(), OCI_MANIFEST, cosign.signature_tag(digest, "att"))
        with pytest.raises(cosign.SignatureError, match="envelope's signature does not verify"):
            attest.verify_attestations(w, w.repository, digest, [pub])


def test_cli_attest_and_verify_attestation(
    env: SigningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(keys.PASSWORD_ENV, "att-pw")
    report = tmp_path / "scan.json"
    main(["scan", str(FIXTURES / "fail"), "--format", "json", "-o", str(report)])
    with env.writer("team/att-cli") as w:
        push_image(w, "v1", {"app/bin": b"cli"})
    ref = f"{env.server.host}/team/att-cli:v1"
    ca = ["--ca-file", str(env.certs.cert)]
    assert main(["attest", ref, "--key", str(env.key_path), "--type", "gate", "--report", str(report), *ca]) == 0
    out = capsys.readouterr().out
    assert "Gate decision: fail" in out
    assert "att-pw" not in out
    assert main([
        "attest", ref, "--key", str(env.key_path), "--type", "slsaprovenance1", "--builder-id", "https://ci.example",
        "--source-uri", "git+https://git.example/app", "--source-digest", "gitCommit=abc", "--param", "ref=main",
        "--started-on", "2026-01-01T00:00:00Z", *ca,
    ]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["verify-attestation", ref, "--key", str(env.pub_path), "--type", "gate", "--format", "json", *ca]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [a["predicate"]["decision"] for a in doc["attestations"]] == ["fail"]
    assert main(["verify-attestation", ref, "--key", str(env.pub_path), *ca]) == 0
    assert "Verified 2 attestation(s)" in capsys.readouterr().out
    assert main(["verify-attestation", ref, "--key", str(env.other_pub_path), *ca]) == 1
    assert "does not verify" in capsys.readouterr().err
    # inputs that are wrong: one line, exit 2
    assert main(["attest", ref, "--key", str(env.key_path), "--type", "gate", *ca]) == 2
    assert "at least one JSON report" in capsys.readouterr().err
    assert main(["attest", ref, "--key", str(env.key_path), "--type", "gate", "--report", str(env.pub_path), *ca]) == 2
    assert "not a factorygate JSON report" in capsys.readouterr().err
    assert main(["attest", ref, "--key", str(env.key_path), "--type", "slsaprovenance1", *ca]) == 2
    assert "--builder-id" in capsys.readouterr().err
    assert main(["attest", ref, "--key", str(env.key_path), "--type", "bogus", *ca]) == 2
    assert "predicate type URI" in capsys.readouterr().err


def test_gate_decision_from_reports(tmp_path: Path) -> None:
    def report(name: str, code: int) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps({"tool": {"name": "factorygate"}, "summary": {"exit_code": code, "blocking": code}}))
        return path

    assert attest.gate_decision([report("a.json", 0)])["decision"] == "pass"
    assert attest.gate_decision([report("b.json", 0), report("c.json", 1)])["decision"] == "fail"
    assert attest.gate_decision([report("d.json", 1), report("e.json", 2)])["decision"] == "error"


def test_dsse_envelope_with_several_signatures_needs_one_trusted(env: SigningRegistry) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    first = json.loads(dsse.seal(other, dsse.IN_TOTO_PAYLOAD, b"{}"))
    second = json.loads(dsse.seal(env.key, dsse.IN_TOTO_PAYLOAD, b"{}"))
    first["signatures"] += second["signatures"]
    opened = dsse.open_envelope(json.dumps(first).encode(), [env.key.public_key()])
    assert opened.fingerprint == keys.fingerprint(env.key.public_key())
