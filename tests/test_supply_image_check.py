"""CICDG-2.10 (`img-signed`) through `factorygate image`: registry images (TLS docker-registry on loopback)
and OCI layouts offline (signatures stored as cosign tags, and `cosign save`'s kind annotations)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.oci_builders import Layout, Member
from tests.supply_images import SigningRegistry, image_manifest, push_image, signing_registry

from factorygate.cli import main
from factorygate.oci.digest import digest_of
from factorygate.oci.model import OCI_MANIFEST
from factorygate.supply import cosign, keys
from factorygate.supply.layout import LayoutStore

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"


pytestmark = pytest.mark.usefixtures("empty_docker_config_env")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningRegistry]:
    with signing_registry(tmp_path_factory.mktemp("img-signed"), b"pw") as registry:
        yield registry


def _policy(tmp_path: Path, trusted: list[str]) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        json.dumps(
            {"apiVersion": "factorygate.dev/v1", "kind": "Policy", "parameters": {"trusted_signing_keys": trusted}}
        )
    )
    return path


def _findings(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    code = main(["image", *argv, "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    return code, [f for f in doc["findings"] if f["check"] == "img-signed"]


def _by_path(findings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["location"]["path"]: f for f in findings}


def _push_with_base(env: SigningRegistry, repo: str, base_repo: str, *, sign_base: bool, sign_image: bool) -> str:
    with env.writer(base_repo) as w:
        base_digest = push_image(w, "v1", {"etc/os-release": b"ID=base\n"})
        if sign_base:
            cosign.sign_image(w, w.repository, base_digest, env.key)
    base_name = f"{env.server.host}/{base_repo}:v1"
    with env.writer(repo) as w:
        data = image_manifest(
            w, {"app/bin": repo.encode()}, annotations={BASE_NAME: base_name, BASE_DIGEST: base_digest}
        )
        digest = w.push_manifest(data, OCI_MANIFEST, "v1")
        if sign_image:
            cosign.sign_image(w, w.repository, digest, env.key)
    return f"{env.server.host}/{repo}:v1"


# ---- registry -----------------------------------------------------------------------------------------------------


def test_signed_image_and_signed_base_pass(
    env: SigningRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _push_with_base(env, "team/good", "base/good", sign_base=True, sign_image=True)
    policy = _policy(tmp_path, [str(env.pub_path)])
    _, found = _findings(capsys, ref, "--policy", str(policy), "--ca-file", str(env.certs.cert))
    by = _by_path(found)
    assert by["signature.image"]["status"] == "pass"
    assert by["signature.base"]["status"] == "pass"
    fp = keys.fingerprint(keys.load_public_key(env.pub_path))
    assert fp in by["signature.image"]["message"]
    assert f"{env.server.host}/base/good" in by["signature.base"]["message"]


def test_unsigned_base_fails_and_names_it(
    env: SigningRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _push_with_base(env, "team/badbase", "base/unsigned", sign_base=False, sign_image=True)
    policy = _policy(tmp_path, [env.pub_path.read_text()])  # inline PEM works as well as a path
    code, found = _findings(capsys, ref, "--policy", str(policy), "--ca-file", str(env.certs.cert))
    by = _by_path(found)
    assert by["signature.image"]["status"] == "pass"
    assert by["signature.base"]["status"] == "fail"
    assert "unsigned" in by["signature.base"]["message"]
    assert code == 1


def test_image_signed_by_untrusted_key_fails(
    env: SigningRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with env.writer("team/untrusted") as w:
        digest = push_image(w, "v1", {"app/bin": b"untrusted"})
        cosign.sign_image(w, w.repository, digest, env.other)
    policy = _policy(tmp_path, [str(env.pub_path)])
    _, found = _findings(
        capsys, f"{env.server.host}/team/untrusted:v1", "--policy", str(policy), "--ca-file", str(env.certs.cert)
    )
    by = _by_path(found)
    assert by["signature.image"]["status"] == "fail"
    assert "does not verify" in by["signature.image"]["message"]
    assert by["signature.base"]["status"] == "fail"
    assert "no base declared" in by["signature.base"]["message"]


def test_no_trusted_keys_is_not_a_pass(env: SigningRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    ref = _push_with_base(env, "team/nokeys", "base/nokeys", sign_base=True, sign_image=True)
    code, found = _findings(capsys, ref, "--ca-file", str(env.certs.cert))
    assert [f["status"] for f in found] == ["fail"]
    assert "no trusted keys configured" in found[0]["message"]
    assert code == 1


def test_unreadable_trusted_key_is_an_error(
    env: SigningRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _push_with_base(env, "team/badkey", "base/badkey", sign_base=True, sign_image=True)
    policy = _policy(tmp_path, [str(tmp_path / "missing.pub")])
    code, found = _findings(capsys, ref, "--policy", str(policy), "--ca-file", str(env.certs.cert))
    assert code == 2
    assert found[0]["status"] == "fail"
    assert "missing.pub: no such key file" in found[0]["message"]


# ---- OCI layouts, offline ---------------------------------------------------------------------------------------


class LayoutWriter:
    """A test ArtifactWriter over a layout: cosign's tags become index entries (as `skopeo copy` would store them)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def push_blob(self, data: bytes) -> str:
        return self.layout.blob(data)

    def push_manifest(self, data: bytes, media_type: str, reference: str) -> str:
        digest = self.layout.blob(data)
        self.layout.index = [
            e
            for e in self.layout.index
            if e.get("annotations", {}).get("org.opencontainers.image.ref.name") != reference
        ]
        self.layout.index.append({
            "mediaType": media_type, "digest": digest, "size": len(data),
            "annotations": {"org.opencontainers.image.ref.name": reference},
        })  # fmt: skip
        self.layout.write_index()
        return digest

    def get_manifest(self, reference: str) -> tuple[bytes, str, str] | None:
        return LayoutStore(self.layout.root).get_manifest(reference)

    def get_blob(self, digest: str, limit: int) -> bytes:
        return LayoutStore(self.layout.root).get_blob(digest, limit)


def _layout_image(root: Path, annotations: dict[str, str] | None = None) -> tuple[Layout, str]:
    layout = Layout(root)
    desc = layout.image([[Member("app/bin", b"layout")]], tag="v1")
    if annotations:
        manifest = json.loads(layout.read_blob(desc["digest"]))
        manifest["annotations"] = annotations
        data = json.dumps(manifest).encode()
        desc = {**desc, "digest": layout.blob(data), "size": len(data)}
        layout.index = [desc]
        layout.write_index()
    return layout, desc["digest"]


def test_layout_with_signature_tags_verifies_offline(
    env: SigningRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = Layout(tmp_path / "scratch-base")
    base_digest = base.image([[Member("etc/os-release", b"ID=base\n")]], tag="base")["digest"]
    layout, digest = _layout_image(
        tmp_path / "layout", {BASE_NAME: "registry.example/base/ubi:9", BASE_DIGEST: base_digest}
    )
    writer = LayoutWriter(layout)
    cosign.sign_image(writer, "registry.example/team/app", digest, env.key)
    cosign.sign_image(writer, "registry.example/base/ubi", base_digest, env.key)
    policy = _policy(tmp_path, [str(env.pub_path)])
    _, found = _findings(capsys, f"{layout.root}:v1", "--policy", str(policy))
    by = _by_path(found)
    assert by["signature.image"]["status"] == "pass", by
    assert "signature in the layout" in by["signature.image"]["message"]
    assert by["signature.base"]["status"] == "pass", by


def test_cosign_save_layout_is_read_by_its_kind_annotations(
    env: SigningRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout, digest = _layout_image(tmp_path / "saved")
    writer = LayoutWriter(layout)
    sig_digest = cosign.sign_image(writer, "registry.example/team/app", digest, env.key)
    # rewrite index.json the way `cosign save` does: no tags, `kind` annotations
    image_entry = next(e for e in layout.index if e["digest"] == digest)
    sig_entry = next(e for e in layout.index if e["digest"] == sig_digest)
    layout.index = [
        {**image_entry, "annotations": {"kind": "dev.cosignproject.cosign/image"}},
        {**sig_entry, "annotations": {"kind": "dev.cosignproject.cosign/sigs"}},
    ]
    layout.write_index()
    store = LayoutStore(layout.root)
    verified = cosign.verify_image(store, "", digest, [env.key.public_key()], check_reference=False)
    assert verified.docker_reference == "registry.example/team/app"
    assert store.get_manifest(cosign.signature_tag(digest_of(b"other"))) is None
    _, found = _findings(capsys, str(layout.root), "--policy", str(_policy(tmp_path, [str(env.pub_path)])))
    assert _by_path(found)["signature.image"]["status"] == "pass"


def test_oci_archive_has_no_signature_evidence(
    env: SigningRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.oci_builders import archive_dir

    layout, _ = _layout_image(tmp_path / "to-archive")
    archive = archive_dir(layout.root, tmp_path / "image.tar")
    _, found = _findings(capsys, str(archive), "--policy", str(_policy(tmp_path, [str(env.pub_path)])))
    by = _by_path(found)
    assert by["signature.image"]["status"] == "fail"
    assert "carries no signatures" in by["signature.image"]["message"]


def test_signature_on_the_multi_platform_index_covers_its_platform_image(
    env: SigningRegistry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from factorygate.oci.model import OCI_INDEX

    with env.writer("team/multi") as w:
        entries = []
        for arch in ("amd64", "arm64"):
            data = image_manifest(w, {"arch": arch.encode()})
            digest = w.push_manifest(data, OCI_MANIFEST, digest_of(data))
            entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(data),
                            "platform": {"os": "linux", "architecture": arch}})  # fmt: skip
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        index_digest = w.push_manifest(index, OCI_INDEX, "v1")
        cosign.sign_image(w, w.repository, index_digest, env.key)
        # another index, signed, that does NOT list the analysed manifest must not count for it
        lone = push_image(w, "lone", {"arch": b"lone"})
    policy = _policy(tmp_path, [str(env.pub_path)])
    ca = ["--ca-file", str(env.certs.cert)]
    _, found = _findings(capsys, f"{env.server.host}/team/multi:v1", "--policy", str(policy), *ca)
    image = _by_path(found)["signature.image"]
    assert image["status"] == "pass"
    assert entries[0]["digest"] in image["message"]
    _, found = _findings(capsys, f"{env.server.host}/team/multi:lone", "--policy", str(policy), *ca)
    assert _by_path(found)["signature.image"]["status"] == "fail"
    assert lone
