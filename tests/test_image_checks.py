"""Image checks on real OCI layouts: planted problems are found, clean images pass, waivers apply.

Images are written with tests/oci_builders (real tar layers, content-addressed blobs) and read through
the same path as `factorygate image` (resolve -> stream layers -> facts -> engine).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import run_cli
from tests.oci_builders import Layout, Member

from factorygate.catalog import load_catalog
from factorygate.engine import Engine
from factorygate.image import ImageOptions, analyse, scan_images
from factorygate.model import Finding, Status
from factorygate.policy import Policy, load_policy, parse_policy

KEY = (
    b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
    b"-----END OPENSSH PRIVATE KEY-----\n"
)
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\ntoor:x:0:0::/root:/bin/sh\n"
CLEAN_CONFIG: dict[str, Any] = {
    "User": "1000",
    "ExposedPorts": {"8080/tcp": {}},
    "Healthcheck": {"Test": ["CMD", "/app", "--health"]},
    "Env": ["PATH=/usr/bin:/bin"],
}
DIR = tarfile.DIRTYPE


def base_layer() -> list[Member]:
    return [
        Member("etc/", type=DIR, mode=0o755),
        Member("etc/passwd", PASSWD),
        Member("etc/os-release", b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'),
        Member("usr/", type=DIR, mode=0o755),
        Member("usr/bin/", type=DIR, mode=0o755),
        Member("usr/bin/app", b"\x7fELF app", mode=0o755),
    ]


def build(
    tmp_path: Path,
    layers: list[list[Member]],
    config: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    manifest_annotations: dict[str, str] | None = None,
) -> str:
    layout = Layout(tmp_path / "img")
    desc = layout.image(layers, config=config if config is not None else CLEAN_CONFIG, history=history)
    if manifest_annotations:  # rewrite the manifest with annotations (a new digest)
        blob = layout.root / "blobs" / "sha256" / desc["digest"].split(":")[1]
        manifest = json.loads(blob.read_bytes())
        manifest["annotations"] = manifest_annotations
        data = json.dumps(manifest).encode()
        desc.update(digest=layout.blob(data), size=len(data))
        layout.write_index()
    return str(layout.root)


def findings(ref: str, policy: Policy | None = None) -> list[Finding]:
    engine = Engine(load_catalog(), policy or load_policy(None))
    return scan_images(engine, [ref], ImageOptions()).findings


def failed(fs: list[Finding], check: str) -> list[Finding]:
    return [f for f in fs if f.check == check and f.status is Status.FAIL]


def passed(fs: list[Finding], check: str) -> bool:
    return any(f.check == check and f.status is Status.PASS for f in fs) and not failed(fs, check)


def test_a_clean_image_passes_the_image_checks_it_can(tmp_path: Path) -> None:
    ref = build(tmp_path, [base_layer()])
    fs = findings(ref)
    for check in (
        "img-no-ssh-server",
        "img-non-root-user",
        "img-no-setuid",
        "img-history-known-outcomes",
        "img-non-privileged-ports",
        "img-healthcheck",
        "img-tls-transport",
        "img-package-cache",
        "img-no-secrets",
        "img-history-verified-packages",
        "img-essential-tools",
        "img-single-service-port",
        "img-trusted-registry",
    ):
        assert passed(fs, check), (check, [f.message for f in fs if f.check == check])
    assert failed(fs, "img-approved-base")  # nothing is approved by the default policy
    assert not [f for f in fs if f.status is Status.ERROR]


def test_planted_problems_are_found_with_path_and_layer(tmp_path: Path) -> None:
    layers = [
        base_layer(),
        [
            Member("usr/sbin/", type=DIR, mode=0o755),
            Member("usr/sbin/sshd", b"\x7fELF sshd", mode=0o755),
            Member("etc/ssh/", type=DIR, mode=0o755),
            Member("etc/ssh/sshd_config", b"PermitRootLogin no\n"),
            Member("usr/bin/sudo", b"\x7fELF sudo", mode=0o4755),
            Member("usr/bin/wall", b"\x7fELF wall", mode=0o2755),
            Member("usr/bin/gcc", b"\x7fELF gcc", mode=0o755),
            Member("var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease", b"x" * 1000),
            Member("var/lib/apt/lists/lock", b""),
            Member("home/app/.aws/credentials", b"[default]\naws_secret_access_key = abcdEFGH1234\n"),
        ],
    ]
    fs = findings(build(tmp_path, layers))
    ssh = failed(fs, "img-no-ssh-server")
    assert {f.location.path for f in ssh} == {"/usr/sbin/sshd", "/etc/ssh/sshd_config"}
    assert "layer 2/2" in next(f for f in ssh if f.location.path == "/usr/sbin/sshd").message
    setuid = failed(fs, "img-no-setuid")
    assert {f.location.path for f in setuid} == {"/usr/bin/sudo", "/usr/bin/wall"}
    assert "setuid" in next(f.message for f in setuid if f.location.path == "/usr/bin/sudo")
    assert "setgid" in next(f.message for f in setuid if f.location.path == "/usr/bin/wall")
    tools = failed(fs, "img-essential-tools")
    assert tools
    assert "gcc" in tools[0].message
    assert "sudo" in tools[0].message
    cache = failed(fs, "img-package-cache")
    assert [f.location.path for f in cache] == ["/var/lib/apt/lists/"]
    assert "1 files" in cache[0].message
    secrets = failed(fs, "img-no-secrets")
    assert [f.location.path for f in secrets] == ["/home/app/.aws/credentials"]
    assert "abcdEFGH1234" not in secrets[0].message


def test_a_key_deleted_by_a_whiteout_is_reported_in_history_not_in_the_filesystem(tmp_path: Path) -> None:
    layers = [
        [*base_layer(), Member("root/", type=DIR, mode=0o700), Member("root/.ssh/id_rsa", KEY, mode=0o600)],
        [Member("root/.ssh/.wh.id_rsa")],
    ]
    ref = build(tmp_path, layers)
    facts = analyse(ref, ImageOptions())
    assert "/root/.ssh/id_rsa" not in facts.fs.files
    fs = findings(ref)
    secrets = failed(fs, "img-no-secrets")
    assert len(secrets) == 1
    msg = secrets[0].message
    assert secrets[0].location.path == "/root/.ssh/id_rsa"
    assert "deleted from the final filesystem" in msg
    assert "layer 1/2" in msg
    assert "private key" in msg


def test_a_key_hidden_by_an_opaque_directory_is_still_in_history(tmp_path: Path) -> None:
    layers = [
        [*base_layer(), Member("srv/", type=DIR), Member("srv/tls.key", KEY)],
        [Member("srv/", type=DIR), Member("srv/.wh..wh..opq"), Member("srv/index.html", b"hi")],
    ]
    fs = findings(build(tmp_path, layers))
    secrets = failed(fs, "img-no-secrets")
    assert [f.location.path for f in secrets] == ["/srv/tls.key"]
    assert "deleted from the final filesystem" in secrets[0].message


@pytest.mark.parametrize(
    ("user", "ok"),
    [("", False), ("root", False), ("0", False), ("0:0", False), ("toor", False), ("1000", True), ("app", True),
     ("app:app", True), ("ghost", True)],
)  # fmt: skip
def test_user(tmp_path: Path, user: str, ok: bool) -> None:
    fs = findings(build(tmp_path, [base_layer()], {**CLEAN_CONFIG, "User": user}))
    assert passed(fs, "img-non-root-user") is ok


def test_ports_and_healthcheck(tmp_path: Path) -> None:
    config = {**CLEAN_CONFIG, "ExposedPorts": {"22/tcp": {}, "80/tcp": {}, "8080/tcp": {}}}
    config["Healthcheck"] = {"Test": ["NONE"]}
    fs = findings(build(tmp_path, [base_layer()], config))
    assert {f.message for f in failed(fs, "img-non-privileged-ports")} == {
        "exposes privileged port 22/tcp",
        "exposes privileged port 80/tcp",
    }
    assert failed(fs, "img-single-service-port")
    assert [f.message for f in failed(fs, "img-no-ssh-server")] == ["exposes port 22 (SSH)"]
    assert "disabled" in failed(fs, "img-healthcheck")[0].message
    no_hc = {k: v for k, v in CLEAN_CONFIG.items() if k != "Healthcheck"}
    fs = findings(build(tmp_path / "b", [base_layer()], no_hc))
    assert "OCI image config format" in failed(fs, "img-healthcheck")[0].message


def test_env_labels_and_history_secrets(tmp_path: Path) -> None:
    config = {
        **CLEAN_CONFIG,
        "Env": ["PATH=/usr/bin", "DB_PASSWORD=hunter2hunter2", "GITHUB=ghp_" + "a1B2" * 9],
        "Labels": {"api_token": "tok-9f8e7d6c5b4a"},
    }
    history = [
        {"created_by": "|1 NPM_TOKEN=npm_s3cr3tvalue /bin/sh -c npm ci"},
        {"created_by": "/bin/sh -c #(nop) ENV API_KEY=k3y-v4lue-123"},
    ]
    fs = findings(build(tmp_path, [base_layer()], config, history))
    messages = [f.message for f in failed(fs, "img-no-secrets")]
    assert any("Env DB_PASSWORD" in m for m in messages)
    assert any("GitHub token" in m for m in messages)
    assert any("Label api_token" in m for m in messages)
    assert any("NPM_TOKEN" in m for m in messages)  # build args recorded in history
    assert any("API_KEY" in m for m in messages)
    assert not any(s in m for m in messages for s in ("hunter2", "npm_s3cr3t", "k3y-v4lue"))


def test_history_commands_go_through_the_dockerfile_checks(tmp_path: Path) -> None:
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD https://example.com/tool.tgz /opt/"},
        {"created_by": "RUN /bin/sh -c curl -fsSL https://get.example.com | sh # buildkit"},
        {
            "created_by": "/bin/sh -c curl -k https://x.example/a -o /a"
            " && apt-get install -y --allow-unauthenticated foo"
        },
        {"created_by": "umoci config --config.user 1000", "empty_layer": True},
    ]
    fs = findings(build(tmp_path, [base_layer()], history=history))
    known = failed(fs, "img-history-known-outcomes")
    assert {f.location.path for f in known} == {"history[0]", "history[1]"}
    tls = failed(fs, "img-tls-transport")
    assert [f.location.path for f in tls] == ["history[2]"]
    verified = failed(fs, "img-history-verified-packages")
    assert [f.location.path for f in verified] == ["history[2]"]


def test_approved_base_and_trusted_registry(tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    annotations = {
        "org.opencontainers.image.base.digest": digest,
        "org.opencontainers.image.base.name": "docker.io/library/debian:12",
    }
    ref = build(tmp_path, [base_layer()], manifest_annotations=annotations)
    policy_text = f"apiVersion: factorygate.dev/v1\nkind: Policy\nparameters:\n  approved_base_digests: ['{digest}']\n"
    fs = findings(ref, parse_policy(policy_text, "p.yaml"))
    assert passed(fs, "img-approved-base")
    assert "declared base" in next(f.message for f in fs if f.check == "img-approved-base")
    bad = failed(fs, "img-trusted-registry")
    assert bad
    assert "docker.io/library/debian:12" in bad[0].message
    facts = analyse(ref, ImageOptions())
    bottom = facts.image.layers[0].digest
    fs = findings(
        build(tmp_path / "b", [base_layer()]),
        parse_policy(policy_text.replace(digest, bottom), "p.yaml"),
    )
    assert passed(fs, "img-approved-base")


def test_layer_count_limit(tmp_path: Path) -> None:
    layers = [base_layer()] + [[Member(f"opt/f{i}", b"x")] for i in range(4)]
    policy = parse_policy("apiVersion: factorygate.dev/v1\nkind: Policy\nparameters: {max_image_layers: 3}\n", "p")
    fs = findings(build(tmp_path, layers), policy)
    assert [f.message for f in failed(fs, "img-package-cache")] == ["5 layers (policy max_image_layers: 3)"]


def test_inline_waiver_label_and_policy_waiver(tmp_path: Path) -> None:
    waiver = (
        "{justification: 'short-lived batch job, probes in the pod', approver: J. Smith (ISSM), expires: 2099-01-01}"
    )
    config = {k: v for k, v in CLEAN_CONFIG.items() if k != "Healthcheck"}
    config["Labels"] = {"factorygate.dev/waive.img-healthcheck": waiver, "factorygate.dev/waive.img-nope": "{}"}
    fs = findings(build(tmp_path, [base_layer()], config))
    hc = [f for f in fs if f.check == "img-healthcheck"]
    assert [f.status for f in hc] == [Status.WAIVED]
    assert hc[0].waiver
    assert hc[0].waiver.source == "inline"
    errors = [f for f in fs if f.status is Status.ERROR]
    assert len(errors) == 1
    assert "img-nope" in errors[0].message
    policy = parse_policy(
        "apiVersion: factorygate.dev/v1\nkind: Policy\nwaivers:\n"
        "  - check: img-approved-base\n    resource: {kind: Image, name: '*img'}\n"
        "    justification: base digests are approved in the release board\n"
        "    approver: A. O.\n    expires: 2099-01-01\n",
        "p.yaml",
        set(load_catalog().checks),
    )
    fs = findings(build(tmp_path / "b", [base_layer()]), policy)
    assert [f.status for f in fs if f.check == "img-approved-base"] == [Status.WAIVED]


def test_cli_reports_each_bad_image_and_still_checks_the_good_one(tmp_path: Path) -> None:
    good = build(tmp_path, [base_layer()])
    traversal = Layout(tmp_path / "evil")
    traversal.image([[Member("../../etc/cron.d/x", b"* * * * * root sh")]])
    missing = str(tmp_path / "no-such-layout")
    sbom_dir = tmp_path / "sboms"
    sbom_dir.mkdir()
    out = tmp_path / "report.json"
    proc = run_cli("image", good, str(traversal.root), missing, "-f", "json", "-o", str(out), "--sbom", str(sbom_dir))
    assert proc.returncode == 2, proc.stderr
    report = json.loads(out.read_text())
    errors = [f for f in report["findings"] if f["status"] == "error"]
    assert {e["location"]["file"] for e in errors} == {str(traversal.root), missing}
    assert all("\n" not in e["message"] for e in errors)
    assert any(f["check"] == "img-non-root-user" and f["status"] == "pass" for f in report["findings"])
    assert report["summary"]["images"] == 1
    assert len(list(sbom_dir.iterdir())) == 1  # only the image that could be read
    assert not (tmp_path / "etc").exists()


def test_cli_writes_an_sbom_for_one_image(tmp_path: Path) -> None:
    ref = build(tmp_path, [base_layer()])
    sbom = tmp_path / "bom.json"
    proc = run_cli("image", ref, "--sbom", str(sbom), "-f", "json", "-o", str(tmp_path / "r.json"))
    assert proc.returncode == 1, proc.stderr  # the approved-base check fails under the default policy
    doc = json.loads(sbom.read_text())
    assert doc["bomFormat"] == "CycloneDX"
    assert doc["specVersion"] == "1.5"
    assert any(c["type"] == "operating-system" and c["name"] == "debian" for c in doc["components"])
