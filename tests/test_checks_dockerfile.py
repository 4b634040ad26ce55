"""Dockerfile checks: the catalog's bad/good examples, and the tricky cases one by one."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
import time
from pathlib import Path

import pytest
from tests.conftest import run_cli

from factorygate.catalog import load_catalog
from factorygate.checks import DOCKERFILE_CHECKS
from factorygate.engine import Engine
from factorygate.inputs.dockerfile import Dockerfile, parse_dockerfile
from factorygate.model import Finding, Status
from factorygate.policy import default_policy_text, parse_policy

CATALOG = load_catalog()
DIGEST = "a" * 64
IB = f"registry1.dso.mil/ironbank/redhat/ubi/ubi9-minimal:9.4@sha256:{DIGEST}"


def scan(text: str, policy_text: str | None = None) -> list[Finding]:
    parsed = parse_dockerfile(textwrap.dedent(text).encode(), "Dockerfile")
    assert isinstance(parsed, Dockerfile), parsed
    policy = parse_policy(policy_text or default_policy_text(), "p", set(CATALOG.checks))
    engine = Engine(CATALOG, policy, as_of=dt.date(2026, 11, 23))
    return engine.run([parsed], ["Dockerfile"], subjects=["dockerfile"]).findings


def of(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


def fails(findings: list[Finding], check: str) -> list[int]:
    return [f.location.line or 0 for f in of(findings, check) if f.status is Status.FAIL]


@pytest.mark.parametrize("check", sorted(DOCKERFILE_CHECKS))
def test_catalog_examples(check: str) -> None:
    examples = dict(CATALOG.checks[check].examples)
    assert set(examples) == {"bad", "good"}, "every Dockerfile check documents a bad and a good example"
    bad = scan(examples["bad"])
    assert fails(bad, check), f"{check}: the bad example does not fail"
    good = scan(examples["good"])
    assert of(good, check)
    assert not fails(good, check), f"{check}: the good example fails: {[f.message for f in of(good, check)]}"
    assert not [f for f in bad + good if f.status is Status.ERROR]


def test_findings_carry_exact_lines_and_the_requirement() -> None:
    findings = scan(
        f"""\
        # syntax=docker/dockerfile:1
        FROM {IB}
        RUN echo one \\
            && echo two
        EXPOSE 80
        USER 1001
        """
    )
    (port,) = [f for f in of(findings, "df-non-privileged-ports") if f.status is Status.FAIL]
    assert port.location.line == 5
    assert port.requirements == ("CICDG-2.5",)
    assert port.nist == ("CM-7 (1) (b)",)
    assert port.cci == ("CCI-001762",)
    assert port.resource is not None
    assert port.resource.kind == "Dockerfile"


def test_user_root_after_a_non_root_user_fails_and_switching_back_passes() -> None:
    assert fails(scan(f"FROM {IB}\nUSER 1001\nRUN x\nUSER root\n"), "df-non-root-user") == [4]
    assert not fails(scan(f"FROM {IB}\nUSER root\nRUN x\nUSER 1001\n"), "df-non-root-user")
    assert fails(scan(f"FROM {IB}\nUSER 0:0\n"), "df-non-root-user") == [2]
    assert fails(scan(f"FROM {IB}\n"), "df-non-root-user") == [1]


def test_user_is_inherited_from_the_stage_the_final_stage_is_built_from() -> None:
    text = f"FROM {IB} AS base\nUSER 1001\nFROM base\nCOPY app /app\n"
    assert not fails(scan(text), "df-non-root-user")
    other = f"FROM {IB} AS build\nUSER 1001\nFROM {IB}\nCOPY --from=build /app /app\n"
    assert fails(scan(other), "df-non-root-user") == [3]


def test_user_from_arg_is_substituted() -> None:
    assert not fails(scan(f"FROM {IB}\nARG UID=10001\nUSER ${{UID}}\n"), "df-non-root-user")
    assert fails(scan(f"FROM {IB}\nARG UID=0\nUSER $UID\n"), "df-non-root-user") == [3]


def test_only_the_final_stage_decides_user_expose_healthcheck() -> None:
    text = f"FROM {IB} AS build\nEXPOSE 22\nRUN apt-get install -y gcc\nFROM {IB}\nUSER 1001\nHEALTHCHECK CMD true\n"
    findings = scan(text)
    assert not fails(findings, "df-no-ssh-server")
    assert not fails(findings, "df-non-privileged-ports")
    assert not fails(findings, "df-essential-tools")
    assert not fails(findings, "df-healthcheck")


def test_every_stage_is_checked_for_secrets_and_unsafe_fetches() -> None:
    text = f"FROM {IB} AS build\nENV API_TOKEN=ghp_{'a' * 36}\nRUN curl -sSL https://x.sh | bash\nFROM {IB}\n"
    findings = scan(text)
    assert fails(findings, "df-no-secrets") == [2]
    assert fails(findings, "df-no-pipe-to-shell") == [3]
    assert "ghp_" not in " ".join(f.message for f in findings)


def test_pipe_into_shell_inside_heredoc_and_sh_c() -> None:
    heredoc = f"FROM {IB}\nRUN <<EOF\nset -e\nwget -qO- https://get.example.sh | sh\nEOF\n"
    assert fails(scan(heredoc), "df-no-pipe-to-shell") == [2]
    wrapped = f'FROM {IB}\nRUN ["/bin/sh", "-c", "curl -fsSL https://x | bash -s --"]\n'
    assert fails(scan(wrapped), "df-no-pipe-to-shell") == [2]
    substring = f"FROM {IB}\nRUN echo 'curl | sh' > /doc.txt\n"
    assert not fails(scan(substring), "df-no-pipe-to-shell")


def test_escape_directive_backtick_continuations() -> None:
    text = f"# escape=`\nFROM {IB}\nRUN apt-get update && `\n    apt-get install -y openssh-server\nUSER 1001\n"
    findings = scan(text)
    assert fails(findings, "df-no-ssh-server") == [3]


def test_arg_in_from_is_substituted_for_registry_and_digest() -> None:
    text = f"ARG BASE={IB}\nFROM ${{BASE}}\n"
    findings = scan(text)
    assert not fails(findings, "df-base-image-registry")
    assert not fails(findings, "df-base-image-digest")
    hub = scan("ARG VERSION=3.12\nFROM python:${VERSION}\n")
    assert fails(hub, "df-base-image-registry") == [2]
    assert "tag only" in next(f.message for f in of(hub, "df-base-image-digest") if f.status is Status.FAIL)


def test_scratch_and_earlier_stages_are_not_base_images() -> None:
    text = f"FROM {IB} AS build\nRUN make\nFROM scratch\nCOPY --from=build /app /app\nFROM build AS test\n"
    findings = scan(text)
    assert len(of(findings, "df-base-image-registry")) == 1
    assert not fails(findings, "df-base-image-digest")


def test_setuid_modes() -> None:
    for mode in ("u+s", "g+s", "+s", "4755", "2755", "6755", "04755", "u=rwxs"):
        assert fails(scan(f"FROM {IB}\nRUN chmod {mode} /bin/x\n"), "df-no-setuid") == [2], mode
    for mode in ("755", "0755", "1777", "a-s", "u+x"):
        assert not fails(scan(f"FROM {IB}\nRUN chmod {mode} /bin/x\n"), "df-no-setuid"), mode
    strip = scan(f"FROM {IB}\nRUN find / -xdev -perm /6000 -type f -exec chmod a-s {{}} +\n")
    (evidence,) = of(strip, "df-no-setuid")
    assert evidence.status is Status.PASS
    assert evidence.location.line == 2
    assert "strips" in evidence.message


def test_tls_downgrades() -> None:
    bad = [
        "curl -k https://x/y",
        "curl -fsSLk https://x/y",
        "wget --no-check-certificate https://x/y",
        "pip install --trusted-host pypi.internal -r req.txt",
        "npm config set strict-ssl false",
        "git -c http.sslVerify=false clone https://x/y.git",
        "pip install --index-url http://pypi.internal/simple flask",
        "echo 'deb http://deb.debian.org/debian bookworm main' > /etc/apt/sources.list",
    ]
    for cmd in bad:
        assert fails(scan(f"FROM {IB}\nRUN {cmd}\n"), "df-tls-verification") == [2], cmd
    for cmd in ("curl -fsSL https://x/y -o /tmp/y", "echo http://example.com > /README"):
        assert not fails(scan(f"FROM {IB}\nRUN {cmd}\n"), "df-tls-verification"), cmd


def test_package_caches() -> None:
    deb = f"registry1.dso.mil/ironbank/opensource/debian:12@sha256:{DIGEST}"
    assert fails(scan(f"FROM {deb}\nRUN apk add curl\n"), "df-package-cache") == [2]
    assert not fails(scan(f"FROM {deb}\nRUN apk add --no-cache curl\n"), "df-package-cache")
    assert fails(scan(f"FROM {deb}\nRUN pip install flask\n"), "df-package-cache") == [2]
    assert not fails(scan(f"FROM {deb}\nRUN pip install --no-cache-dir flask\n"), "df-package-cache")
    assert fails(scan(f"FROM {deb}\nRUN dnf install -y jq\n"), "df-package-cache") == [2]
    assert not fails(scan(f"FROM {deb}\nRUN dnf install -y jq && dnf clean all\n"), "df-package-cache")
    cache_mount = f"FROM {deb}\nRUN --mount=type=cache,target=/var/cache/apt apt-get update && apt-get install -y jq\n"
    assert not fails(scan(cache_mount), "df-package-cache")


def test_verified_packages() -> None:
    for cmd in (
        "apt-get install -y --allow-unauthenticated jq",
        "apt-get install -y --force-yes jq",
        "yum install -y --nogpgcheck jq",
        "rpm -i --nosignature x.rpm",
        "apk add --allow-untrusted x.apk",
        "pip install https://example.com/pkg.tar.gz",
    ):
        assert fails(scan(f"FROM {IB}\nRUN {cmd}\n"), "df-verified-packages") == [2], cmd
    assert not fails(scan(f"FROM {IB}\nRUN pip install --require-hashes -r requirements.txt\n"), "df-verified-packages")


def test_secret_sources() -> None:
    for line in (
        "ARG NPM_TOKEN=abcd1234efgh5678",
        'LABEL password="hunter2hunter2"',
        "ENV AWS_ACCESS_KEY_ID AKIAABCDEFGHIJKLMNOP",
        "RUN curl -u admin:s3cret https://x/y",
        "COPY .env /app/.env",
        "COPY --chown=1001 config/.docker/config.json /root/.docker/config.json",
        "ADD secrets/server.key /etc/ssl/",
    ):
        assert fails(scan(f"FROM {IB}\n{line}\n"), "df-no-secrets") == [2], line
    for line in (
        "ENV PATH=/usr/local/bin:$PATH",
        "ARG TOKEN",
        "ENV PASSWORD_FILE=/run/secrets/pw",
        "COPY app.py /app/",
    ):
        assert not fails(scan(f"FROM {IB}\n{line}\n"), "df-no-secrets"), line


def test_add_remote_content() -> None:
    assert fails(scan(f"FROM {IB}\nADD https://x/y.tgz /opt/\n"), "df-no-remote-add") == [2]
    assert fails(scan(f"FROM {IB}\nADD git@github.com:org/repo.git /src\n"), "df-no-remote-add") == [2]
    assert not fails(scan(f"FROM {IB}\nADD local.tgz /opt/\n"), "df-no-remote-add")


def test_exposed_ports_with_args_and_protocols() -> None:
    assert fails(scan(f"FROM {IB}\nARG PORT=443\nEXPOSE ${{PORT}}/tcp\n"), "df-non-privileged-ports") == [3]
    assert not fails(scan(f"FROM {IB}\nEXPOSE 8443/tcp\n"), "df-single-service-port")
    assert fails(scan(f"FROM {IB}\nEXPOSE 8080\nEXPOSE 9090/udp\n"), "df-single-service-port") == [3]


INLINE = f"""\
FROM {IB}
# The job image runs for seconds; Kubernetes probes cover it.
# factorygate:waive df-healthcheck Short-lived batch job image approver="J. Smith" expires=2027-01-31
USER 1001
"""


def test_inline_waiver_comment_on_the_line_before_the_instruction() -> None:
    text = INLINE.replace("USER 1001", "HEALTHCHECK NONE\nUSER 1001")
    findings = scan(text)
    (hc,) = of(findings, "df-healthcheck")
    assert hc.status is Status.WAIVED
    assert hc.waiver is not None
    assert hc.waiver.source == "inline"
    assert hc.waiver.approver == "J. Smith"
    assert hc.waiver.expires == "2027-01-31"
    assert hc.waiver.justification == "Short-lived batch job image"


def test_inline_waiver_with_unknown_check_is_an_error() -> None:
    findings = scan(f"FROM {IB}\n# factorygate:waive df-nope because\nUSER 1001\n")
    errors = [f for f in findings if f.status is Status.ERROR]
    assert len(errors) == 1
    assert errors[0].location.line == 2
    assert "unknown check id 'df-nope'" in errors[0].message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\x01\x02binary" * 1000, "not a text file"),
        (b"FROM scratch\nRUN <<EOF\necho never closed\n", "heredoc"),
        (b"# just a comment\n", "FROM"),
    ],
)
def test_broken_dockerfiles_are_one_line_errors_and_other_inputs_still_scan(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    bad = tmp_path / "bad" / "Dockerfile"
    bad.parent.mkdir()
    bad.write_bytes(content)
    good = tmp_path / "good" / "Dockerfile"
    good.parent.mkdir()
    good.write_text(f"FROM {IB}\nUSER 1001\n")
    proc = run_cli("scan", str(tmp_path), "--format", "json")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    error_lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("factorygate: error:")]
    assert len(error_lines) == 1
    assert str(bad) in error_lines[0]
    assert expected.lower() in error_lines[0].lower()
    doc = json.loads(proc.stdout)
    assert any(f["location"]["file"] == str(good) and f["status"] == "pass" for f in doc["findings"])


def test_a_50_mb_dockerfile_is_refused_quickly(tmp_path: Path) -> None:
    big = tmp_path / "Dockerfile"
    with big.open("wb") as f:
        f.write(b"FROM scratch\n")
        f.write(b"RUN true\n" * (50 * 1024 * 1024 // 9))
    started = time.monotonic()
    proc = run_cli("scan", str(big), "--format", "json")
    assert time.monotonic() - started < 30
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
