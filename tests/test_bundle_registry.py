"""`factorygate bundle push|pull` against a real docker-registry on 127.0.0.1 over TLS.

Bundles round-trip byte-for-byte (nested directories, non-ASCII names, binary-safe YAML); the artifact is
what Flux's OCIRepository consumes; unsigned, re-tagged, foreign-signed and path-traversing bundles are refused
before anything is written.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import run_cli
from tests.registry_server import Certs, RegistryServer, make_certs, missing_tools
from tests.supply_images import push_image

from factorygate.oci.digest import digest_of
from factorygate.oci.push import RegistryWriter
from factorygate.oci.registry import RegistryOptions
from factorygate.supply import keys
from factorygate.supply.bundle import (
    FLUX_CONFIG,
    FLUX_CONTENT,
    LOCK_MEDIA_TYPE,
    OCI_MANIFEST,
    build_artifact,
)
from factorygate.supply.bundle_archive import BundleFile
from factorygate.supply.cosign import sign_image

PASSWORD = "bundle-pw-Tq72"
EPOCH = "1700000000"


@dataclass
class Setup:
    server: RegistryServer
    certs: Certs
    key: Path
    pub: Path
    other_pub: Path
    other_key: Path
    app_digest: str  # host/team/app:1.0
    tools_digest: str  # host/team/tools:2 (an init container)

    @property
    def host(self) -> str:
        return self.server.host

    def opts(self) -> RegistryOptions:
        return RegistryOptions(ca_file=self.certs.cert, timeout=10.0)

    def tls(self) -> list[str]:
        return ["--ca-file", str(self.certs.cert), "--timeout", "10"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    missing = missing_tools(("docker-registry", "openssl"))
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian packages docker-registry, openssl)")
    root = tmp_path_factory.mktemp("bundle-registry")
    certs = make_certs(root / "certs")
    server = RegistryServer(root / "registry", certs).start()
    try:
        key, pub = keys.generate(str(root / "release"), PASSWORD.encode())
        other_key, other_pub = keys.generate(str(root / "intruder"), PASSWORD.encode())
        opts = RegistryOptions(ca_file=certs.cert, timeout=10.0)
        with RegistryWriter(f"{server.host}/team/app", opts) as w:
            app = push_image(w, "1.0", {"app/run": b"app"})
        with RegistryWriter(f"{server.host}/team/tools", opts) as w:
            tools = push_image(w, "2", {"bin/tool": b"tool"})
        yield Setup(server, certs, key, pub, other_pub, other_key, app, tools)
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key passphrase comes from the environment; no host docker config; fixed creation time."""
    monkeypatch.setenv("FACTORYGATE_KEY_PASSWORD", PASSWORD)
    (tmp_path / "docker-config").mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)


def deployment(name: str, image: str, init: str | None = None) -> str:
    init_block = f"      initContainers:\n      - name: init\n        image: {init}\n" if init else ""
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n"
        f"{init_block}      containers:\n      - name: main\n        image: {image}\n"
    )


def write_tree(root: Path, setup: Setup) -> dict[str, bytes]:
    """A release tree: nested directories, non-ASCII names, CRLF, a BOM, binary data in a ConfigMap."""
    pinned = f"{setup.host}/team/app@{setup.tools_digest}"
    binary = bytes(range(256))
    import base64

    files = {
        "base/deploy.yaml": deployment("web", f"{setup.host}/team/app:1.0", init=f"{setup.host}/team/tools:2").encode(),
        "base/nested/deep/pinned.yaml": deployment("pinned", pinned).encode(),
        "overlays/prod/über-config.yaml": (
            "\ufeffapiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: é\r\n"
            f'binaryData:\r\n  blob: {base64.b64encode(binary).decode()}\r\ndata:\r\n  text: "tab\\tand ünïcödé"\r\n'
        ).encode(),
        "docs/日本語.md": "# 説明\n".encode(),
        "raw.bin": binary,
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_bytes(b"ref: refs/heads/main\n")  # hidden: never bundled
    return files


def tree_of(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            full = Path(dirpath) / name
            out[full.relative_to(root).as_posix()] = full.read_bytes()
    return out


def push(setup: Setup, source: str, ref: str, *extra: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = run_cli("bundle", "push", source, f"{setup.host}/{ref}", "--key", str(setup.key), *setup.tls(), *extra,
                   stdin=stdin)  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def pull(setup: Setup, ref: str, out: Path, *extra: str, key: Path | None = None) -> tuple[int, str]:
    proc = run_cli("bundle", "pull", f"{setup.host}/{ref}", "--key", str(key or setup.pub), "-o", str(out),
                   *setup.tls(), *extra)  # fmt: skip
    return proc.returncode, proc.stderr


def test_round_trip_byte_for_byte(setup: Setup, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = write_tree(src, setup)
    lock_copy = tmp_path / "pushed.lock.json"
    code, out, err = push(setup, str(src), "release/app:v1", "--source", "https://git.example/app.git",
                          "--revision", "main@sha1:abc", "--lock-file", str(lock_copy))  # fmt: skip
    assert code == 0, err
    pushed_ref = out.strip()
    assert pushed_ref.startswith(f"{setup.host}/release/app@sha256:")

    dest = tmp_path / "dest"
    code, err = pull(setup, "release/app:v1", dest)
    assert code == 0, err
    assert "verified" in err
    assert keys.fingerprint(keys.load_public_key(setup.pub)) in err
    got = tree_of(dest)
    lock_bytes = got.pop("images.lock.json")
    assert got == files  # same relative paths, same bytes; .git left out
    assert lock_bytes == lock_copy.read_bytes()

    lock = json.loads(lock_bytes)
    by_ref = {i["reference"]: i for i in lock["images"]}
    app = by_ref[f"{setup.host}/team/app:1.0"]
    assert app["digest"] == setup.app_digest
    assert app["source"] == "registry"
    assert app["pinned"] == f"{setup.host}/team/app:1.0@{setup.app_digest}"
    assert by_ref[f"{setup.host}/team/tools:2"]["usedBy"][0]["role"] == "initContainer"
    pinned = by_ref[f"{setup.host}/team/app@{setup.tools_digest}"]
    assert pinned["source"] == "reference"
    assert pinned["digest"] == setup.tools_digest
    assert by_ref[f"{setup.host}/team/app:1.0"]["usedBy"][0] == {
        "file": "base/deploy.yaml",
        "line": 13,
        "kind": "Deployment",
        "namespace": None,
        "name": "web",
        "container": "main",
        "role": "container",
    }

    # pull by the digest push printed gives the same files
    code, err = pull(setup, "release/app@" + pushed_ref.split("@")[1], tmp_path / "by-digest")
    assert code == 0, err
    assert tree_of(tmp_path / "by-digest") == tree_of(dest)


def test_artifact_is_what_flux_consumes(setup: Setup, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, setup)
    code, out, err = push(setup, str(src), "release/flux:v1", "--source", "https://git.example/app.git",
                          "--revision", "v1@sha1:0123")  # fmt: skip
    assert code == 0, err
    with RegistryWriter(f"{setup.host}/release/flux", setup.opts()) as w:
        found = w.get_manifest("v1")
        assert found is not None
        data, media_type, digest = found
        assert media_type == OCI_MANIFEST
        assert out.strip().endswith(digest)
        doc = json.loads(data)
        assert doc["mediaType"] == OCI_MANIFEST
        assert doc["config"]["mediaType"] == FLUX_CONFIG
        assert [x["mediaType"] for x in doc["layers"]] == [FLUX_CONTENT, LOCK_MEDIA_TYPE]
        assert doc["annotations"] == {
            "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
            "org.opencontainers.image.source": "https://git.example/app.git",
            "org.opencontainers.image.revision": "v1@sha1:0123",
        }
        content = w.get_blob(doc["layers"][0]["digest"], 1 << 20)
        # the first layer is a plain tar+gzip any tar reads (what source-controller extracts)
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as tf:
            names = tf.getnames()
            assert all(m.uid == 0 and m.mtime == 0 for m in tf.getmembers())
        assert "base/nested/deep/pinned.yaml" in names
        assert "images.lock.json" not in names
        # the cosign signature tag exists
        assert w.get_manifest(digest.replace(":", "-") + ".sig") is not None


def test_same_input_same_digest(setup: Setup, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, setup)
    first = push(setup, str(src), "release/repro:a")
    # the same tree written again elsewhere, in another order, with other mtimes
    other = tmp_path / "other"
    files = tree_of(src)
    for rel in sorted(files, reverse=True):
        (other / rel).parent.mkdir(parents=True, exist_ok=True)
        (other / rel).write_bytes(files[rel])
        os.utime(other / rel, (1, 1))
    second = push(setup, str(other), "release/repro:b")
    assert first[0] == second[0] == 0, first[2] + second[2]
    assert first[1].split("@")[1] == second[1].split("@")[1]  # same manifest digest


def test_unsigned_bundle_is_refused(setup: Setup, tmp_path: Path) -> None:
    artifact = build_artifact([BundleFile("a.yaml", b"kind: ConfigMap\n")], [], {"x": "y"})
    with RegistryWriter(f"{setup.host}/release/unsigned", setup.opts()) as w:
        for blob in (b"{}", artifact.content, artifact.lock):
            w.push_blob(blob)
        w.push_manifest(artifact.manifest, OCI_MANIFEST, "v1")
    dest = tmp_path / "dest"
    code, err = pull(setup, "release/unsigned:v1", dest)
    assert code == 1
    assert err.count("\n") == 1
    assert "refused" in err
    assert "release/unsigned" in err
    assert not dest.exists()


def test_retagged_and_foreign_signed_bundles_are_refused(setup: Setup, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_tree(src, setup)
    assert push(setup, str(src), "release/tamper:v1")[0] == 0
    # someone with registry access moves the tag to other content and signs it with their own key
    evil = build_artifact([BundleFile("base/deploy.yaml", deployment("web", "evil.example/miner:1").encode())], [], {})
    intruder = keys.load_private_key(setup.other_key, PASSWORD.encode())
    with RegistryWriter(f"{setup.host}/release/tamper", setup.opts()) as w:
        for blob in (b"{}", evil.content, evil.lock):
            w.push_blob(blob)
        digest = w.push_manifest(evil.manifest, OCI_MANIFEST, "v1")
        code, err = pull(setup, "release/tamper:v1", tmp_path / "a")
        assert code == 1
        assert "refused" in err
        assert "unsigned" in err
        sign_image(w, w.repository, digest, intruder)
    dest = tmp_path / "dest"
    code, err = pull(setup, "release/tamper:v1", dest)
    assert code == 1, err
    assert "does not verify" in err
    assert not dest.exists()
    # the intruder's key does verify it: the refusal above is about trust, not format
    code, err = pull(setup, "release/tamper:v1", tmp_path / "trusting", key=setup.other_pub)
    assert code == 0, err


def _hostile_tar(name: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ok = tarfile.TarInfo("ok.yaml")
        ok.size = 3
        tf.addfile(ok, io.BytesIO(b"a: 1"[:3]))
        evil = tarfile.TarInfo(name)
        evil.size = 5
        tf.addfile(evil, io.BytesIO(b"owned"))
    return gzip.compress(raw.getvalue(), mtime=0)


def _push_signed_content(setup: Setup, repo: str, content: bytes) -> None:
    """A correctly signed bundle whose content layer is hostile: the signature is valid, the unpacking refuses."""
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": FLUX_CONFIG, "digest": digest_of(b"{}"), "size": 2},
            "layers": [{"mediaType": FLUX_CONTENT, "digest": digest_of(content), "size": len(content)}],
        }
    ).encode()
    key = keys.load_private_key(setup.key, PASSWORD.encode())
    with RegistryWriter(f"{setup.host}/{repo}", setup.opts()) as w:
        w.push_blob(b"{}")
        w.push_blob(content)
        digest = w.push_manifest(manifest, OCI_MANIFEST, "v1")
        sign_image(w, w.repository, digest, key)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("../../escaped.yaml", "path traversal"),
        ("a/../../escaped.yaml", "path traversal"),
        ("/etc/escaped.yaml", "absolute path"),
    ],
)
def test_path_traversing_entry_is_refused_on_pull(setup: Setup, tmp_path: Path, entry: str, why: str) -> None:
    repo = f"release/hostile-{digest_of(entry.encode())[7:19]}"
    _push_signed_content(setup, repo, _hostile_tar(entry))
    dest = tmp_path / "work" / "dest"
    code, err = pull(setup, f"{repo}:v1", dest)
    assert code == 2
    line = err.strip()
    assert "\n" not in line
    assert why in line
    assert repr(entry) in line
    assert f"bundle {setup.host}/{repo}:v1" in line
    assert not dest.exists()  # nothing written: not even the harmless entry before it
    assert not (tmp_path / "escaped.yaml").exists()
    assert not (tmp_path / "work" / "escaped.yaml").exists()


def test_pull_refuses_to_overwrite_without_force(setup: Setup, tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = write_tree(src, setup)
    assert push(setup, str(src), "release/overwrite:v1")[0] == 0
    dest = tmp_path / "dest"
    (dest / "base").mkdir(parents=True)
    (dest / "base" / "deploy.yaml").write_bytes(b"local edit\n")
    code, err = pull(setup, "release/overwrite:v1", dest)
    assert code == 2
    assert "exists" in err
    assert "--force" in err
    assert (dest / "base" / "deploy.yaml").read_bytes() == b"local edit\n"
    assert not (dest / "raw.bin").exists()
    code, err = pull(setup, "release/overwrite:v1", dest, "--force")
    assert code == 0, err
    assert (dest / "base" / "deploy.yaml").read_bytes() == files["base/deploy.yaml"]


def test_unresolvable_image_is_an_error_unless_allowed(setup: Setup, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "d.yaml").write_text(deployment("ghost", f"{setup.host}/team/ghost:9"))
    code, out, err = push(setup, str(src), "release/ghost:v1")
    assert code == 2
    assert out == ""
    assert "d.yaml:" in err
    assert "team/ghost:9" in err
    assert "--allow-unresolved" in err
    assert err.count("\n") == 1
    code, out, err = push(setup, str(src), "release/ghost:v1", "--allow-unresolved")
    assert code == 0, err
    assert "left unresolved" in err
    code, err = pull(setup, "release/ghost:v1", tmp_path / "dest")
    assert code == 0, err
    lock = json.loads((tmp_path / "dest" / "images.lock.json").read_bytes())
    assert lock["images"][0]["source"] == "unresolved"
    assert lock["images"][0]["digest"] is None


def test_stdin_bundle(setup: Setup, tmp_path: Path) -> None:
    text = deployment("web", f"{setup.host}/team/app:1.0").encode()
    code, _out, err = push(setup, "-", "release/stdin:v1", "--name", "web.yaml", stdin=text)
    assert code == 0, err
    code, err = pull(setup, "release/stdin:v1", tmp_path / "dest")
    assert code == 0, err
    assert (tmp_path / "dest" / "web.yaml").read_bytes() == text
    lock = json.loads((tmp_path / "dest" / "images.lock.json").read_bytes())
    assert lock["images"][0]["digest"] == setup.app_digest


def _kustomization(root: Path, setup: Setup) -> None:
    root.mkdir()
    (root / "deploy.yaml").write_text(deployment("web", "placeholder/app:0"))
    (root / "kustomization.yaml").write_text(
        "resources:\n- deploy.yaml\nimages:\n"
        f"- name: placeholder/app\n  newName: {setup.host}/team/app\n  newTag: '1.0'\n"
    )


def test_kustomization_is_rendered_by_default(setup: Setup, tmp_path: Path) -> None:
    src = tmp_path / "kz"
    _kustomization(src, setup)
    code, _, err = push(setup, str(src), "release/kz:render")
    assert code == 0, err
    code, err = pull(setup, "release/kz:render", tmp_path / "dest")
    assert code == 0, err
    got = tree_of(tmp_path / "dest")
    assert sorted(got) == ["images.lock.json", "manifests.yaml"]
    assert f"image: {setup.host}/team/app:1.0".encode() in got["manifests.yaml"]
    lock = json.loads(got["images.lock.json"])
    assert [i["digest"] for i in lock["images"]] == [setup.app_digest]


def test_kustomization_sources_keep_the_lock_of_the_rendered_output(setup: Setup, tmp_path: Path) -> None:
    src = tmp_path / "kz"
    _kustomization(src, setup)
    code, _, err = push(setup, str(src), "release/kz:source", "--kustomize", "source")
    assert code == 0, err
    code, err = pull(setup, "release/kz:source", tmp_path / "dest")
    assert code == 0, err
    got = tree_of(tmp_path / "dest")
    lock = json.loads(got.pop("images.lock.json"))
    assert got == tree_of(src)
    assert lock["images"][0]["reference"] == f"{setup.host}/team/app:1.0"
    assert lock["images"][0]["digest"] == setup.app_digest


def test_bad_key_and_bad_input_are_one_line_errors(setup: Setup, tmp_path: Path) -> None:
    code, _, err = push(setup, str(tmp_path / "missing"), "release/x:v1")
    assert code == 2
    assert err.count("\n") == 1
    assert "missing" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.yaml").write_text("kind: [unclosed\n")
    code, _out, err = push(setup, str(bad), "release/x:v1")
    assert code == 2
    assert err.count("\n") == 1
    assert "broken.yaml" in err
    code, err = pull(setup, "release/never-pushed:v1", tmp_path / "dest", key=setup.key)  # a private key as .pub
    assert code == 2
    assert err.count("\n") == 1
