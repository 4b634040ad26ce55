"""`factorygate image` end to end on real images: built with umoci, converted with skopeo, pushed to a
real docker-registry on 127.0.0.1 (self-signed TLS, Basic auth) and pulled back by tag and by digest.

The image plants the guide's problems: an SSH daemon, a setuid sudo and a private key that a second
layer deletes (a whiteout). The key must be absent from the final filesystem and reported from history.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import run_cli
from tests.registry_server import Certs, RegistryServer, make_certs, missing_tools, push

KEY = (
    b"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    b"-----END RSA PRIVATE KEY-----\n"
)
USER, PASSWORD = "ci-bot", "s3cret-Pa55word"


@dataclass
class Built:
    layout: Path  # OCI layout, tag "v1"
    docker_archive: Path
    oci_archive: Path


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    missing = missing_tools(("umoci", "skopeo"))
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/system-deps.sh installs them)")
    root = tmp_path_factory.mktemp("umoci")
    layout, bundle = root / "layout", root / "bundle"
    _run("umoci", "init", "--layout", str(layout))
    _run("umoci", "new", "--image", f"{layout}:v1")
    _run("umoci", "unpack", "--rootless", "--image", f"{layout}:v1", str(bundle))
    rootfs = bundle / "rootfs"
    for d in ("etc", "usr/bin", "usr/sbin", "root/.ssh", "app"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n")
    (rootfs / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (rootfs / "usr/sbin/sshd").write_bytes(b"\x7fELF sshd")
    (rootfs / "usr/bin/sudo").write_bytes(b"\x7fELF sudo")
    os.chmod(rootfs / "usr/bin/sudo", 0o4755)  # noqa: S103 - the planted setuid file
    (rootfs / "root/.ssh/id_rsa").write_bytes(KEY)
    (rootfs / "app/server").write_bytes(b"\x7fELF app")
    _run("umoci", "repack", "--image", f"{layout}:v1", str(bundle))
    shutil.rmtree(bundle)
    _run("umoci", "unpack", "--rootless", "--image", f"{layout}:v1", str(bundle))
    (bundle / "rootfs/root/.ssh/id_rsa").unlink()  # the next layer records a whiteout
    _run("umoci", "repack", "--image", f"{layout}:v1", str(bundle))
    _run("umoci", "config", "--image", f"{layout}:v1", "--config.user", "1000", "--config.exposedports", "8080/tcp")
    docker_archive, oci_archive = root / "docker.tar", root / "oci.tar"
    _run("skopeo", "copy", "--quiet", f"oci:{layout}:v1", f"docker-archive:{docker_archive}:team/app:v1")
    _run("skopeo", "copy", "--quiet", f"oci:{layout}:v1", f"oci-archive:{oci_archive}:v1")
    return Built(layout, docker_archive, oci_archive)


@dataclass
class Registry:
    server: RegistryServer
    certs: Certs
    digest: str


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, built: Built) -> Iterator[Registry]:
    missing = missing_tools(("docker-registry", "skopeo", "htpasswd", "openssl"))
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/system-deps.sh installs them)")
    certs = make_certs(tmp_path_factory.mktemp("certs"))
    server = RegistryServer(tmp_path_factory.mktemp("registry"), certs, users={USER: PASSWORD}).start()
    try:
        digest = push(server, built.layout, "team/app:v1", creds=(USER, PASSWORD), source_tag="v1")
        yield Registry(server, certs, digest)
    finally:
        server.stop()


def report_of(tmp_path: Path, *args: str, stdin: bytes | None = None) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "report.json"
    proc = run_cli("image", *args, "--format", "json", "--output", str(out), stdin=stdin)
    assert out.exists(), proc.stderr
    return proc.returncode, json.loads(out.read_text()), proc.stderr


def failing(report: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["check"] == check and f["status"] == "fail"]


def assert_planted_problems_found(report: dict[str, Any]) -> None:
    assert {f["location"]["path"] for f in failing(report, "img-no-ssh-server")} == {"/usr/sbin/sshd"}
    assert [f["location"]["path"] for f in failing(report, "img-no-setuid")] == ["/usr/bin/sudo"]
    secrets = failing(report, "img-no-secrets")
    assert [f["location"]["path"] for f in secrets] == ["/root/.ssh/id_rsa"]
    assert "deleted from the final filesystem" in secrets[0]["message"]
    assert "layer 1/2" in secrets[0]["message"]
    assert not [f for f in report["findings"] if f["status"] == "error"]
    user = [f for f in report["findings"] if f["check"] == "img-non-root-user"]
    assert [f["status"] for f in user] == ["pass"]


@pytest.mark.parametrize("form", ["layout", "docker_archive", "oci_archive"])
def test_local_forms_of_a_umoci_image(built: Built, tmp_path: Path, form: str) -> None:
    ref = {
        "layout": f"{built.layout}:v1",
        "docker_archive": str(built.docker_archive),
        "oci_archive": str(built.oci_archive),
    }[form]
    code, report, _ = report_of(tmp_path, ref)
    assert code == 1
    assert_planted_problems_found(report)
    assert report["summary"]["images"] == 1


def test_pull_by_tag_and_by_digest_with_basic_auth(registry: Registry, tmp_path: Path) -> None:
    host = registry.server.host
    ca = str(registry.certs.cert)
    for ref in (f"{host}/team/app:v1", f"{host}/team/app@{registry.digest}"):
        code, report, stderr = report_of(
            tmp_path, ref, "--ca-file", ca, "--username", USER, "--password-stdin", stdin=PASSWORD.encode() + b"\n"
        )
        assert code == 1, stderr
        assert_planted_problems_found(report)
        assert PASSWORD not in stderr
        assert PASSWORD not in json.dumps(report)
        trusted = [f for f in report["findings"] if f["check"] == "img-trusted-registry"]
        assert trusted[0]["status"] == "fail"
        assert host in trusted[0]["message"]
        tls = [f for f in report["findings"] if f["check"] == "img-tls-transport"]
        assert [f["status"] for f in tls] == ["pass"]


def test_registry_errors_are_one_line_and_exit_2(registry: Registry, tmp_path: Path) -> None:
    host = registry.server.host
    code, report, _ = report_of(tmp_path, f"{host}/team/app:v1")  # no --ca-file: self-signed refused
    assert code == 2
    (error,) = [f for f in report["findings"] if f["status"] == "error"]
    assert "\n" not in error["message"]
    assert "certificate" in error["message"].lower()
    code, report, _ = report_of(tmp_path, f"{host}/team/app:v1", "--ca-file", str(registry.certs.cert))
    assert code == 2  # no credentials
    (error,) = [f for f in report["findings"] if f["status"] == "error"]
    assert "\n" not in error["message"]


def test_a_plain_http_pull_from_loopback_is_itself_a_finding(
    tmp_path_factory: pytest.TempPathFactory, built: Built, tmp_path: Path
) -> None:
    missing = missing_tools(("docker-registry", "skopeo"))
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    server = RegistryServer(tmp_path_factory.mktemp("http-registry"), None).start()
    try:
        push(server, built.layout, "team/app:v1", source_tag="v1")
        ref = f"{server.host}/team/app:v1"
        code, report, _ = report_of(tmp_path, ref)
        assert code == 2  # plain HTTP refused without --insecure-registry
        code, report, _ = report_of(tmp_path, ref, "--insecure-registry", server.host)
        tls = failing(report, "img-tls-transport")
        assert tls
        assert "plain HTTP" in tls[0]["message"]
    finally:
        server.stop()
