"""Registry pulls against real servers on loopback: docker-registry (TLS, Basic, token auth, plain HTTP),
a token server, and scripted hostile registries. Reference parsing, challenges and docker config lookup too.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import socket
import ssl
import stat
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.oci_builders import Layout, Member, sha
from tests.registry_server import (
    Certs,
    Handler,
    RegistryServer,
    ScriptedServer,
    Seen,
    TokenServer,
    make_certs,
    missing_tools,
    push,
    server_context,
)

from factorygate.oci import registry as registry_module
from factorygate.oci.auth import Credentials, lookup_credentials, parse_challenges
from factorygate.oci.index import MAX_MANIFEST_BYTES
from factorygate.oci.model import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, ImageError, Platform, ResolvedImage
from factorygate.oci.reference import Reference, parse_reference
from factorygate.oci.registry import RegistryOptions, check_insecure_registry, open_registry

BASIC_USER, BASIC_PASSWORD = "alice", "basic-pw-Zq81"
TOKEN_USER, TOKEN_PASSWORD = "bob", "token-pw-Xk42"
REFRESH_TOKEN = "refresh-tok-Yv93"


def needs_tools(*tools: str) -> None:
    missing = missing_tools(tools)
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian packages docker-registry, skopeo, apache2-utils, openssl)")


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


def read_layers(image: ResolvedImage) -> list[str]:
    """Stream every layer through the verifying reader and gunzip it; return the uncompressed digests."""
    digests = []
    for layer in image.layers:
        h = hashlib.sha256()
        with image.open_blob(layer) as stream, gzip.GzipFile(fileobj=stream) as tar:
            while chunk := tar.read(65536):
                h.update(chunk)
            assert stream.read() == b""  # at EOF: size and digest verified
        digests.append(f"sha256:{h.hexdigest()}")
    return digests


@pytest.fixture(autouse=True)
def empty_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads the host's ~/.docker/config.json."""
    directory = tmp_path / "docker-config"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


# ---- images and servers (module scope: started once) ----------------------------------------------------------


@dataclass
class Images:
    single: Path  # one platform, two gzip layers
    multi: Path  # nested index: linux/amd64 + linux/arm64
    single_layers: list[str]
    single_diff_ids: list[str]


def _manifest_of(layout: Path, desc: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((layout / "blobs" / "sha256" / desc["digest"].split(":")[1]).read_bytes())
    return doc


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    root = tmp_path_factory.mktemp("layouts")
    single = Layout(root / "single")
    desc = single.image(
        [[Member("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")], [Member("app/run.sh", b"#!/bin/sh\n", mode=0o755)]]
    )
    manifest = _manifest_of(single.root, desc)
    config = json.loads((single.root / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_bytes())
    multi = Layout(root / "multi")
    entries = [
        multi.image([[Member("arch", arch.encode())]], tag=None, architecture=arch) for arch in ("amd64", "arm64")
    ]
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    multi.index = [
        {
            "mediaType": OCI_INDEX,
            "digest": multi.blob(index),
            "size": len(index),
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }
    ]
    multi.write_index()
    return Images(single.root, multi.root, [x["digest"] for x in manifest["layers"]], config["rootfs"]["diff_ids"])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    needs_tools("openssl")
    return make_certs(tmp_path_factory.mktemp("certs"))


@dataclass
class Pushed:
    server: RegistryServer
    digests: dict[str, str]  # repo:tag -> pushed manifest digest


@pytest.fixture(scope="module")
def registry_tools() -> None:
    needs_tools("docker-registry", "skopeo", "htpasswd")


@pytest.fixture(scope="module")
def plain_tls(
    tmp_path_factory: pytest.TempPathFactory, certs: Certs, images: Images, registry_tools: None
) -> Iterator[Pushed]:
    server = RegistryServer(tmp_path_factory.mktemp("reg-tls"), certs).start()
    try:
        digests = {
            "app/oci:v1": push(server, images.single, "app/oci:v1"),
            "app/docker:v1": push(server, images.single, "app/docker:v1", docker_format=True),
            "app/multi:v1": push(server, images.multi, "app/multi:v1", multi_arch=True),
        }
        yield Pushed(server, digests)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def basic_registry(
    tmp_path_factory: pytest.TempPathFactory, certs: Certs, images: Images, registry_tools: None
) -> Iterator[Pushed]:
    server = RegistryServer(tmp_path_factory.mktemp("reg-basic"), certs, users={BASIC_USER: BASIC_PASSWORD}).start()
    try:
        yield Pushed(
            server, {"app/oci:v1": push(server, images.single, "app/oci:v1", creds=(BASIC_USER, BASIC_PASSWORD))}
        )
    finally:
        server.stop()


@dataclass
class TokenSetup:
    server: RegistryServer
    tokens: TokenServer
    digest: str


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory, certs: Certs, images: Images, registry_tools: None
) -> Iterator[TokenSetup]:
    directory = tmp_path_factory.mktemp("reg-token")
    tokens = TokenServer(directory / "tokens", certs, {TOKEN_USER: TOKEN_PASSWORD}, public={"pub/app"})
    tokens.refresh_tokens[REFRESH_TOKEN] = TOKEN_USER
    server = RegistryServer(directory / "registry", certs, token_server=tokens)
    try:
        server.start()
        creds = (TOKEN_USER, TOKEN_PASSWORD)
        digest = push(server, images.single, "private/app:v1", creds=creds)
        push(server, images.single, "pub/app:v1", creds=creds)
        yield TokenSetup(server, tokens, digest)
    finally:
        server.stop()
        tokens.stop()


@pytest.fixture(scope="module")
def http_registry(
    tmp_path_factory: pytest.TempPathFactory, certs: Certs, images: Images, registry_tools: None
) -> Iterator[Pushed]:
    server = RegistryServer(tmp_path_factory.mktemp("reg-http"), None).start()
    try:
        yield Pushed(server, {"app/oci:v1": push(server, images.single, "app/oci:v1")})
    finally:
        server.stop()


def trusted(certs: Certs, **kwargs: Any) -> RegistryOptions:
    return RegistryOptions(ca_file=certs.cert, timeout=10.0, **kwargs)


# ---- reference parsing ---------------------------------------------------------------------------------------

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpine", Reference("docker.io", "library/alpine", "latest", None)),
        ("alpine:3.19", Reference("docker.io", "library/alpine", "3.19", None)),
        ("bitnami/nginx:1.25", Reference("docker.io", "bitnami/nginx", "1.25", None)),
        ("docker.io/alpine", Reference("docker.io", "library/alpine", "latest", None)),
        ("index.docker.io/library/alpine", Reference("docker.io", "library/alpine", "latest", None)),
        (
            "registry1.dso.mil/ironbank/redhat/ubi9:9.4",
            Reference("registry1.dso.mil", "ironbank/redhat/ubi9", "9.4", None),
        ),
        ("localhost/app", Reference("localhost", "app", "latest", None)),
        ("localhost:5000/team/app:v2", Reference("localhost:5000", "team/app", "v2", None)),
        ("127.0.0.1:5000/app", Reference("127.0.0.1:5000", "app", "latest", None)),
        ("[::1]:5000/app:v1", Reference("[::1]:5000", "app", "v1", None)),
        (f"ghcr.io/org/app@{DIGEST}", Reference("ghcr.io", "org/app", None, DIGEST)),
        (f"ghcr.io/org/app:v1@{DIGEST}", Reference("ghcr.io", "org/app", "v1", DIGEST)),
        (
            "my-registry.local:443/a_b/c__d/e-f.g:Tag_1.0-rc",
            Reference("my-registry.local:443", "a_b/c__d/e-f.g", "Tag_1.0-rc", None),
        ),
    ],
)
def test_parse_reference(text: str, expected: Reference) -> None:
    ref = parse_reference(text)
    assert ref == expected
    assert parse_reference(str(ref)) == ref


def test_reference_properties() -> None:
    hub = parse_reference("alpine")
    assert (hub.api_host, hub.host, hub.object) == ("registry-1.docker.io", "docker.io", "latest")
    v6 = parse_reference(f"[::1]:5000/app:v1@{DIGEST}")
    assert (v6.api_host, v6.host, v6.object) == ("[::1]:5000", "::1", DIGEST)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("app name", "whitespace"),
        ("https://ghcr.io/org/app", "without a URL scheme"),
        ("ghcr.io/Org/app", "lowercase"),
        ("App", "lowercase"),
        ("ghcr.io/org//app", "invalid repository component"),
        ("ghcr.io/", "invalid repository component"),
        ("app:", "invalid tag"),
        ("app:-x", "invalid tag"),
        ("app:" + "t" * 129, "invalid tag"),
        ("app@sha256:abc", "is not a sha256 or sha512 digest"),
        ("app@md5:" + "a" * 32, "is not a sha256 or sha512 digest"),
        ("bad_host.io:5000/app", "invalid registry host"),
        ("[zz::1]:5000/app", "invalid registry host"),
        ("[1::2::3]:5000/app", "invalid IPv6"),
        ("ghcr.io/" + "a" * 300, "longer than 255"),
    ],
)
def test_parse_reference_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ImageError, match="image reference") as info:
        parse_reference(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


# ---- challenges and docker config ----------------------------------------------------------------------------


def test_parse_challenges() -> None:
    bearer = (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"'
    )
    [c] = parse_challenges([bearer])
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example.com/token",
        "service": "registry.example.com",
        "scope": "repository:a/b:pull,push",
    }
    assert c.scopes == ("repository:a/b:pull,push",)
    both = parse_challenges(['Basic realm="r\\"q", Bearer realm=https://x/t, scope="a" , scope="b"', "Negotiate abc=="])
    assert [(c.scheme, dict(c.params)) for c in both] == [
        ("basic", {"realm": 'r"q'}),
        ("bearer", {"realm": "https://x/t", "scope": "a"}),
        ("negotiate", {}),
    ]
    assert both[1].scopes == ("a", "b")
    assert parse_challenges(["", "  ,  "]) == []


def test_credentials_never_show_secrets() -> None:
    creds = Credentials("u", "hunter2-secret", "--username")
    assert "hunter2-secret" not in repr(creds)
    assert "hunter2-secret" not in repr(RegistryOptions(username="u", password="hunter2-secret"))
    assert creds.basic() == "Basic " + base64.b64encode(b"u:hunter2-secret").decode()


def write_config(directory: Path, doc: dict[str, Any]) -> Path:
    path = directory / "config.json"
    path.write_text(json.dumps(doc))
    return path


def test_docker_config_lookup(empty_docker_config: Path) -> None:
    assert lookup_credentials("ghcr.io").credentials is None  # no config file at all
    b64 = base64.b64encode(b"user1:pa:ss").decode()
    write_config(
        empty_docker_config,
        {
            "auths": {
                "ghcr.io": {"auth": b64},
                "https://quay.io/v1/": {"username": "user2", "password": "pw2"},
                "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hubuser:hubpw").decode()},
                "token.example.com": {"identitytoken": "idtok"},
                "empty.example.com": {},
            }
        },
    )
    ghcr = lookup_credentials("ghcr.io").credentials
    assert ghcr is not None
    assert (ghcr.username, ghcr.password, ghcr.identity_token) == ("user1", "pa:ss", False)
    assert ghcr.source == str(empty_docker_config / "config.json")
    quay = lookup_credentials("quay.io").credentials
    assert quay is not None
    assert (quay.username, quay.password) == ("user2", "pw2")
    hub = lookup_credentials("docker.io").credentials
    assert hub is not None
    assert (hub.username, hub.password) == ("hubuser", "hubpw")
    tok = lookup_credentials("token.example.com").credentials
    assert tok is not None
    assert (tok.password, tok.identity_token) == ("idtok", True)
    assert lookup_credentials("empty.example.com").credentials is None
    assert lookup_credentials("other.example.com").credentials is None


def test_docker_config_errors_name_the_file_not_the_secret(empty_docker_config: Path) -> None:
    path = write_config(empty_docker_config, {"auths": {"ghcr.io": {"auth": "not base64 secret!!"}}})
    with pytest.raises(ImageError, match="not base64 user:password") as info:
        lookup_credentials("ghcr.io")
    assert str(path) in str(info.value)
    assert_no_secret(str(info.value), "secret!!")
    path.write_text("{not json")
    with pytest.raises(ImageError, match="not valid JSON"):
        lookup_credentials("ghcr.io")


def install_helper(directory: Path, name: str, answers: dict[str, dict[str, str]]) -> Path:
    """A real ``docker-credential-NAME`` program (a Python script) answering ``get`` from ``answers``."""
    import sys

    directory.mkdir(exist_ok=True)
    program = directory / f"docker-credential-{name}"
    program.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"answers = {json.dumps(answers)!r}\n"
        "assert sys.argv[1:] == ['get']\n"
        "server = sys.stdin.read().strip()\n"
        "if server not in json.loads(answers):\n"
        "    print('credentials not found in native keychain'); sys.exit(1)\n"
        "print(json.dumps(json.loads(answers)[server]))\n"
    )
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return directory


def test_credential_helpers(empty_docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = install_helper(
        tmp_path / "bin",
        "fgtest",
        {
            "ghcr.io": {"ServerURL": "ghcr.io", "Username": "helper-user", "Secret": "helper-pw"},
            "https://index.docker.io/v1/": {"ServerURL": "x", "Username": "<token>", "Secret": "helper-idtok"},
        },
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    write_config(
        empty_docker_config,
        {"credsStore": "fgtest", "credHelpers": {"quay.io": "missing-helper"}, "auths": {"other.io": {"auth": "dTpw"}}},
    )
    ghcr = lookup_credentials("ghcr.io").credentials
    assert ghcr is not None
    assert (ghcr.username, ghcr.password, ghcr.source) == ("helper-user", "helper-pw", "docker-credential-fgtest")
    hub = lookup_credentials("docker.io").credentials
    assert hub is not None
    assert (hub.password, hub.identity_token) == ("helper-idtok", True)
    other = lookup_credentials("other.io").credentials  # the store has none: the auths entry is used
    assert other is not None
    assert (other.username, other.password) == ("u", "p")
    missing = lookup_credentials("quay.io")
    assert missing.credentials is None
    assert missing.note is not None
    assert "docker-credential-missing-helper" in missing.note
    assert "not installed" in missing.note


# ---- pulls from docker-registry over TLS ---------------------------------------------------------------------


def test_pull_oci_by_tag(plain_tls: Pushed, certs: Certs, images: Images) -> None:
    host = plain_tls.server.host
    image = open_registry(f"{host}/app/oci:v1", trusted(certs))
    try:
        assert image.transport == "registry"
        assert (image.registry, image.repository, image.name) == (host, "app/oci", f"{host}/app/oci:v1")
        assert image.manifest["mediaType"] == OCI_MANIFEST
        assert image.manifest_digest == plain_tls.digests["app/oci:v1"]
        assert [layer.digest for layer in image.layers] == images.single_layers
        assert image.diff_ids == images.single_diff_ids
        assert image.config["architecture"] == "amd64"
        assert image.insecure_transport is False
        assert read_layers(image) == image.diff_ids
    finally:
        image.close()


def test_pull_by_digest(plain_tls: Pushed, certs: Certs, images: Images) -> None:
    host, digest = plain_tls.server.host, plain_tls.digests["app/oci:v1"]
    for ref in (f"{host}/app/oci@{digest}", f"{host}/app/oci:not-even-a-tag@{digest}"):
        image = open_registry(ref, trusted(certs))
        try:
            assert image.manifest_digest == digest
            assert read_layers(image) == images.single_diff_ids
        finally:
            image.close()


def test_pull_docker_v2s2_manifest(plain_tls: Pushed, certs: Certs, images: Images) -> None:
    host, digest = plain_tls.server.host, plain_tls.digests["app/docker:v1"]
    assert digest != plain_tls.digests["app/oci:v1"]
    for ref in (f"{host}/app/docker:v1", f"{host}/app/docker@{digest}"):
        image = open_registry(ref, trusted(certs))
        try:
            assert image.manifest["mediaType"] == DOCKER_MANIFEST
            assert image.manifest_digest == digest
            assert all(layer.media_type.startswith("application/vnd.docker.image.rootfs") for layer in image.layers)
            assert read_layers(image) == images.single_diff_ids
        finally:
            image.close()


def test_multi_arch_index_platform_selection(plain_tls: Pushed, certs: Certs) -> None:
    host = plain_tls.server.host
    seen = {}
    for platform in (None, Platform("linux", "arm64")):
        opts = trusted(certs) if platform is None else trusted(certs, platform=platform)
        image = open_registry(f"{host}/app/multi:v1", opts)
        try:
            arch = image.config["architecture"]
            assert image.manifest_digest != plain_tls.digests["app/multi:v1"]  # the platform's manifest, not the index
            [layer] = image.layers
            with image.open_blob(layer) as stream:
                assert b"arch" in gzip.decompress(stream.read())
            seen[arch] = image.manifest_digest
        finally:
            image.close()
    assert set(seen) == {"amd64", "arm64"}
    index = open_registry(
        f"{host}/app/multi@{plain_tls.digests['app/multi:v1']}", trusted(certs, platform=Platform("linux", "arm64"))
    )
    assert index.manifest_digest == seen["arm64"]
    index.close()
    with pytest.raises(
        ImageError, match=r"no image for platform linux/s390x \(index offers: linux/amd64, linux/arm64\)"
    ):
        open_registry(f"{host}/app/multi:v1", trusted(certs, platform=Platform.parse("linux/s390x")))


def test_not_found_is_clear(plain_tls: Pushed, certs: Certs) -> None:
    host = plain_tls.server.host
    for ref, code in ((f"{host}/app/oci:nope", "MANIFEST_UNKNOWN"), (f"{host}/nothing/here:v1", "UNKNOWN")):
        with pytest.raises(ImageError) as info:
            open_registry(ref, trusted(certs))
        message = str(info.value)
        assert message.startswith(f"{ref}: not found on {host}")
        assert code in message


def test_self_signed_registry_needs_ca_file(plain_tls: Pushed, certs: Certs, tmp_path: Path) -> None:
    ref = f"{plain_tls.server.host}/app/oci:v1"
    with pytest.raises(ImageError, match=r"TLS connection to 127\.0\.0\.1:\d+ failed: certificate not trusted") as info:
        open_registry(ref, RegistryOptions(timeout=10))
    assert "--ca-file" in str(info.value)
    assert str(info.value).startswith(ref)
    with pytest.raises(ImageError, match="no such file"):
        open_registry(ref, RegistryOptions(ca_file=tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(ImageError, match="cannot load CA certificates"):
        open_registry(ref, RegistryOptions(ca_file=tmp_path / "junk.pem"))
    other = make_certs(tmp_path / "other")  # a CA that did not sign the registry's certificate
    with pytest.raises(ImageError, match="certificate not trusted"):
        open_registry(ref, RegistryOptions(ca_file=other.cert))


# ---- Basic auth ----------------------------------------------------------------------------------------------


def test_basic_auth(basic_registry: Pushed, certs: Certs, images: Images) -> None:
    ref = f"{basic_registry.server.host}/app/oci:v1"
    image = open_registry(ref, trusted(certs, username=BASIC_USER, password=BASIC_PASSWORD))
    try:
        assert image.manifest_digest == basic_registry.digests["app/oci:v1"]
        assert read_layers(image) == images.single_diff_ids
    finally:
        image.close()
    with pytest.raises(ImageError, match="rejected the credentials from --username") as info:
        open_registry(ref, trusted(certs, username=BASIC_USER, password="wrong-pw-Qq7"))
    assert_no_secret(str(info.value), "wrong-pw-Qq7")
    with pytest.raises(ImageError, match=r"requires authentication \(Basic\); pass --username/--password-stdin"):
        open_registry(ref, trusted(certs))
    with pytest.raises(ImageError, match="--username and --password-stdin go together"):
        open_registry(ref, trusted(certs, username=BASIC_USER))


def test_basic_auth_from_docker_config(basic_registry: Pushed, certs: Certs, empty_docker_config: Path) -> None:
    host = basic_registry.server.host
    ref = f"{host}/app/oci:v1"
    auth = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
    path = write_config(empty_docker_config, {"auths": {f"https://{host}": {"auth": auth}}})
    image = open_registry(ref, trusted(certs))
    assert image.manifest_digest == basic_registry.digests["app/oci:v1"]
    image.close()
    write_config(empty_docker_config, {"auths": {host: {"username": BASIC_USER, "password": BASIC_PASSWORD}}})
    image = open_registry(ref, trusted(certs))
    image.close()
    write_config(empty_docker_config, {"auths": {host: {"username": BASIC_USER, "password": "stale-pw-Vv5"}}})
    with pytest.raises(ImageError, match=f"rejected the credentials from {path}") as info:
        open_registry(ref, trusted(certs))
    assert_no_secret(str(info.value), "stale-pw-Vv5")


def test_missing_credential_helper_is_named(
    basic_registry: Pushed, certs: Certs, empty_docker_config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    host = basic_registry.server.host
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    write_config(empty_docker_config, {"credsStore": "not-installed-fg"})
    with pytest.raises(ImageError, match="docker-credential-not-installed-fg, which is not installed"):
        open_registry(f"{host}/app/oci:v1", trusted(certs))
    bin_dir = install_helper(tmp_path / "bin", "fgtest", {host: {"Username": BASIC_USER, "Secret": BASIC_PASSWORD}})
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    write_config(empty_docker_config, {"credHelpers": {host: "fgtest"}})
    image = open_registry(f"{host}/app/oci:v1", trusted(certs))
    assert image.manifest_digest == basic_registry.digests["app/oci:v1"]
    image.close()


# ---- token auth ----------------------------------------------------------------------------------------------


def test_token_auth(token_registry: TokenSetup, certs: Certs, images: Images, caplog: pytest.LogCaptureFixture) -> None:
    host, tokens = token_registry.server.host, token_registry.tokens
    before = len(tokens.token_requests())
    caplog.set_level(logging.DEBUG)
    image = open_registry(f"{host}/private/app:v1", trusted(certs, username=TOKEN_USER, password=TOKEN_PASSWORD))
    try:
        assert image.manifest_digest == token_registry.digest
        assert read_layers(image) == images.single_diff_ids
    finally:
        image.close()
    requests = tokens.token_requests()[before:]
    assert len(requests) == 1  # cached for the config and every layer
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(requests[0].path).query)
    assert query["service"] == [TokenServer.service]
    assert query["scope"] == ["repository:private/app:pull"]
    assert requests[0].headers["authorization"].startswith("Basic ")
    assert "GET https://" in caplog.text  # requests are logged ...
    assert_no_secret(caplog.text, TOKEN_PASSWORD, *tokens.issued)  # ... without secrets


def test_token_auth_anonymous_and_wrong(token_registry: TokenSetup, certs: Certs) -> None:
    host, tokens = token_registry.server.host, token_registry.tokens
    image = open_registry(f"{host}/pub/app:v1", trusted(certs))  # anonymous token, public repository
    assert image.manifest_digest == token_registry.digest
    image.close()
    with pytest.raises(ImageError, match="denied anonymous access; pass --username/--password-stdin"):
        open_registry(f"{host}/private/app:v1", trusted(certs))
    with pytest.raises(
        ImageError, match=r"token server 127\.0\.0\.1:\d+ refused the credentials from --username"
    ) as info:
        open_registry(f"{host}/private/app:v1", trusted(certs, username=TOKEN_USER, password="wrong-pw-Hh3"))
    assert_no_secret(str(info.value), "wrong-pw-Hh3", *tokens.issued)


def test_token_auth_identity_token_from_docker_config(
    token_registry: TokenSetup, certs: Certs, empty_docker_config: Path
) -> None:
    host, tokens = token_registry.server.host, token_registry.tokens
    write_config(empty_docker_config, {"auths": {host: {"auth": "", "identitytoken": REFRESH_TOKEN}}})
    before = len(tokens.token_requests())
    image = open_registry(f"{host}/private/app:v1", trusted(certs))
    assert image.manifest_digest == token_registry.digest
    image.close()
    [request] = tokens.token_requests()[before:]
    form = urllib.parse.parse_qs(request.body.decode())
    assert request.method == "POST"
    assert form["grant_type"] == ["refresh_token"]
    assert form["scope"] == ["repository:private/app:pull"]
    write_config(empty_docker_config, {"auths": {host: {"identitytoken": "revoked-Rr1"}}})
    with pytest.raises(ImageError, match=r"token server \S+ refused the credentials from") as info:
        open_registry(f"{host}/private/app:v1", trusted(certs))
    assert_no_secret(str(info.value), "revoked-Rr1")


# ---- plain HTTP ----------------------------------------------------------------------------------------------


def test_plain_http_needs_insecure_registry_on_loopback(http_registry: Pushed, certs: Certs, images: Images) -> None:
    host = http_registry.server.host
    ref = f"{host}/app/oci:v1"
    with pytest.raises(ImageError, match=r"did not answer with TLS \(plain HTTP\?\)"):
        open_registry(ref, trusted(certs))
    for allowed in (host, "127.0.0.1"):
        image = open_registry(ref, trusted(certs, insecure_registries=(allowed,)))
        try:
            assert image.insecure_transport is True
            assert image.manifest_digest == http_registry.digests["app/oci:v1"]
            assert read_layers(image) == images.single_diff_ids
        finally:
            image.close()
    with pytest.raises(ImageError, match="did not answer with TLS"):  # another port is not named
        open_registry(ref, trusted(certs, insecure_registries=("127.0.0.1:1",)))
    with pytest.raises(ImageError, match="plain HTTP is allowed only for a loopback"):
        open_registry(ref, trusted(certs, insecure_registries=("registry.example.com:5000",)))


@pytest.mark.parametrize("entry", ["127.0.0.1:5000", "127.9.9.9", "localhost:5000", "[::1]:5000", "::1"])
def test_insecure_registry_accepts_loopback(entry: str) -> None:
    assert check_insecure_registry(entry) == entry


@pytest.mark.parametrize("entry", ["10.0.0.1:5000", "registry.example.com", "http://127.0.0.1:5000", "0.0.0.0", ""])  # noqa: S104
def test_insecure_registry_refuses_other_hosts(entry: str) -> None:
    with pytest.raises(ImageError, match="plain HTTP is allowed only for a loopback"):
        check_insecure_registry(entry)


# ---- TLS versions --------------------------------------------------------------------------------------------


def _negotiates_tls11(port: int) -> bool:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():  # an obsolete-TLS client on purpose, to probe the server
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
            return tls.version() == "TLSv1.1"
    except (ssl.SSLError, OSError, ValueError):
        return False


def test_refuses_server_without_tls12(certs: Certs) -> None:
    try:
        ctx = server_context(certs, maximum=ssl.TLSVersion.TLSv1_1)
    except (ssl.SSLError, ValueError) as e:
        pytest.skip(f"this OpenSSL cannot offer TLS 1.1 at all: {e}")
    server = ScriptedServer(lambda h, _: h.reply(200, b"{}"), ctx)
    try:
        if not _negotiates_tls11(server.port):
            pytest.skip("this OpenSSL refuses to negotiate TLS 1.0/1.1, so no such server can be built here")
        with pytest.raises(ImageError, match=r"the server does not offer TLS 1\.2 or higher"):
            open_registry(f"{server.host}/app:v1", trusted(certs))
    finally:
        server.stop()


# ---- hostile and broken registries (scripted) ----------------------------------------------------------------

Route = tuple[int, dict[str, str], bytes] | Callable[[Handler, Seen], None]


@dataclass
class FakeImage:
    manifest: bytes
    config: bytes
    layer: bytes

    @property
    def digest(self) -> str:
        return sha(self.manifest)

    def blob_path(self, data: bytes, repo: str = "evil") -> str:
        return f"/v2/{repo}/blobs/{sha(data)}"


@pytest.fixture
def fake_image(tmp_path: Path) -> FakeImage:
    layout = Layout(tmp_path / "fake")
    desc = layout.image([[Member("etc/os-release", b"ID=evil\n")]])
    manifest = (layout.root / "blobs" / "sha256" / desc["digest"].split(":")[1]).read_bytes()
    doc = json.loads(manifest)
    blob = layout.root / "blobs" / "sha256"
    config = (blob / doc["config"]["digest"].split(":")[1]).read_bytes()
    return FakeImage(manifest, config, (blob / doc["layers"][0]["digest"].split(":")[1]).read_bytes())


def routes(image: FakeImage, **overrides: Route) -> dict[str, Route]:
    """A well-behaved registry serving ``evil:v1``; ``overrides`` replace paths or ``manifest``/``config``/``layer``."""
    ok: dict[str, Route] = {
        "/v2/evil/manifests/v1": (
            200,
            {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": image.digest},
            image.manifest,
        ),
        f"/v2/evil/manifests/{image.digest}": (200, {"Content-Type": OCI_MANIFEST}, image.manifest),
        image.blob_path(image.config): (200, {}, image.config),
        image.blob_path(image.layer): (200, {}, image.layer),
    }
    names = {
        "manifest": "/v2/evil/manifests/v1",
        "config": image.blob_path(image.config),
        "layer": image.blob_path(image.layer),
    }
    for name, route in overrides.items():
        ok[names.get(name, name)] = route
    return ok


@pytest.fixture
def scripted(certs: Certs) -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(table: dict[str, Route], tls: bool = True) -> ScriptedServer:
        def app(handler: Handler, seen: Seen) -> None:
            route = table.get(urllib.parse.urlsplit(seen.path).path)
            if route is None:
                handler.reply(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"nope"}]}')
            elif callable(route):
                route(handler, seen)
            else:
                status, headers, body = route
                handler.reply(status, body, headers)

        server = ScriptedServer(app, server_context(certs) if tls else None)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_scripted_registry_baseline(
    scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs
) -> None:
    server = scripted(routes(fake_image))
    image = open_registry(f"{server.host}/evil:v1", trusted(certs))
    assert image.manifest_digest == fake_image.digest
    assert read_layers(image) == image.diff_ids
    image.close()


def test_layer_with_wrong_content(scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs) -> None:
    evil = gzip.compress(b"x" * 10)[: len(fake_image.layer)].ljust(len(fake_image.layer), b"\0")
    server = scripted(routes(fake_image, layer=(200, {}, evil)))
    image = open_registry(f"{server.host}/evil:v1", trusted(certs))  # manifest and config are fine
    try:
        with image.open_blob(image.layers[0]) as stream, pytest.raises(ImageError, match="digest mismatch"):
            stream.read()
    finally:
        image.close()


def test_truncated_layer(scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs) -> None:
    half = fake_image.layer[: len(fake_image.layer) // 2]

    def short_with_length(handler: Handler, _: Seen) -> None:  # Content-Length promises more than is sent
        handler.reply(200, half, {"Content-Length": str(len(fake_image.layer))}, length=True)
        handler.close_connection = True

    def short_until_close(handler: Handler, _: Seen) -> None:  # no Content-Length: the body ends at close
        handler.reply(200, half, length=False)

    for route, message in ((short_with_length, "transfer failed"), (short_until_close, "blob is truncated")):
        server = scripted(routes(fake_image, layer=route))
        image = open_registry(f"{server.host}/evil:v1", trusted(certs))
        try:
            with image.open_blob(image.layers[0]) as stream, pytest.raises(ImageError, match=message) as info:
                stream.read()
            assert str(info.value).startswith(f"{server.host}/evil:v1: blob {image.layers[0].digest}")
        finally:
            image.close()


def test_layer_longer_than_descriptor(
    scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs
) -> None:
    server = scripted(routes(fake_image, layer=(200, {}, fake_image.layer + b"extra")))
    image = open_registry(f"{server.host}/evil:v1", trusted(certs))
    try:
        with pytest.raises(ImageError, match=f"registry sends {len(fake_image.layer) + 5} bytes, the descriptor says"):
            image.open_blob(image.layers[0])
    finally:
        image.close()
    server = scripted(routes(fake_image, layer=lambda h, _: h.reply(200, fake_image.layer + b"extra", length=False)))
    image = open_registry(f"{server.host}/evil:v1", trusted(certs))
    try:
        with image.open_blob(image.layers[0]) as stream, pytest.raises(ImageError, match="larger than its descriptor"):
            stream.read()
    finally:
        image.close()


def test_manifest_and_config_digests_are_checked(
    scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs
) -> None:
    other = sha(b"something else")
    tampered = fake_image.manifest.replace(b'"schemaVersion": 2', b'"schemaVersion": 2 ')
    by_digest = f"/v2/evil/manifests/{fake_image.digest}"
    cases: list[tuple[str, dict[str, Route], str]] = [
        # the tag's manifest does not match the Docker-Content-Digest header
        ("evil:v1", routes(fake_image, manifest=(200, {"Docker-Content-Digest": other}, fake_image.manifest)),
         "digest mismatch"),
        # a malformed Docker-Content-Digest header
        ("evil:v1", routes(fake_image, manifest=(200, {"Docker-Content-Digest": "sha256:zz"}, fake_image.manifest)),
         "Docker-Content-Digest"),
        # by digest: the registry serves other bytes
        (f"evil@{fake_image.digest}", routes(fake_image, **{by_digest: (200, {}, tampered)}), "digest mismatch"),
        # the config blob does not match its descriptor
        ("evil:v1", routes(fake_image, config=(200, {}, fake_image.config.replace(b"amd64", b"arm64"))),
         "digest mismatch"),
    ]  # fmt: skip
    for ref, table, message in cases:
        server = scripted(table)
        with pytest.raises(ImageError, match=message) as info:
            open_registry(f"{server.host}/{ref}", trusted(certs))
        assert str(info.value).startswith(f"{server.host}/{ref}")


def test_tag_manifest_without_digest_header_gets_its_digest_computed(
    scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs
) -> None:
    server = scripted(routes(fake_image, manifest=(200, {"Content-Type": OCI_MANIFEST}, fake_image.manifest)))
    image = open_registry(f"{server.host}/evil:v1", trusted(certs))
    assert image.manifest_digest == fake_image.digest
    image.close()


def test_manifest_over_size_limit(scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs) -> None:
    big = b'{"pad": "' + b"x" * (MAX_MANIFEST_BYTES + 10) + b'"}'
    unannounced: Route = lambda h, _: h.reply(200, big, length=False)  # noqa: E731 - no Content-Length
    for route in ((200, {}, big), unannounced):
        server = scripted(routes(fake_image, manifest=route))
        with pytest.raises(ImageError, match=f"over the {MAX_MANIFEST_BYTES}-byte limit"):
            open_registry(f"{server.host}/evil:v1", trusted(certs))


def test_unusable_manifests(scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs) -> None:
    schema1 = json.dumps({"schemaVersion": 1, "name": "evil", "fsLayers": []}).encode()
    artifact = json.loads(fake_image.manifest)
    artifact["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
    cases: list[tuple[Route, str]] = [
        ((200, {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"}, schema1), "schema 1"),
        ((200, {}, json.dumps(artifact).encode()), "not a container image"),
        ((200, {}, b"[1, 2]"), "expected a JSON object"),
        ((200, {"Content-Encoding": "gzip"}, gzip.compress(fake_image.manifest)), "Content-Encoding 'gzip'"),
        ((403, {}, b'{"errors":[{"code":"DENIED","message":"Authorization: Bearer leaked"}]}'),
         r"denied access \(HTTP 403\) \(DENIED\)"),
        ((401, {"WWW-Authenticate": 'Negotiate'}, b""), r"unsupported authentication \(negotiate\)"),
    ]  # fmt: skip
    for route, message in cases:
        server = scripted(routes(fake_image, manifest=route))
        with pytest.raises(ImageError, match=message) as info:
            open_registry(f"{server.host}/evil:v1", trusted(certs))
        assert "leaked" not in str(info.value)  # registry error messages are not echoed, only their codes


def test_retries_are_bounded(
    scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "RETRY_DELAY", 0.01)
    calls: list[int] = []

    def flaky(handler: Handler, _: Seen) -> None:
        calls.append(1)
        if len(calls) <= 2:
            handler.reply(503, b"busy")
        else:
            handler.reply(200, fake_image.manifest, {"Docker-Content-Digest": fake_image.digest})

    server = scripted(routes(fake_image, manifest=flaky))
    image = open_registry(f"{server.host}/evil:v1", trusted(certs))
    assert image.manifest_digest == fake_image.digest
    image.close()
    assert len(calls) == 3
    server = scripted(routes(fake_image, manifest=(502, {}, b"down")))
    with pytest.raises(ImageError, match="answered HTTP 502"):
        open_registry(f"{server.host}/evil:v1", trusted(certs))
    assert sum(s.path == "/v2/evil/manifests/v1" for s in server.seen) == registry_module.ATTEMPTS
    port = ScriptedServer(lambda h, _: None, None)
    closed = port.port
    port.stop()  # nothing listens there any more
    with pytest.raises(ImageError, match=rf"cannot reach 127\.0\.0\.1:{closed}"):
        open_registry(f"127.0.0.1:{closed}/evil:v1", trusted(certs))


def test_read_timeout_is_bounded(
    scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "RETRY_DELAY", 0.01)
    import threading

    release = threading.Event()

    def stall(handler: Handler, seen: Seen) -> None:
        release.wait(5)

    server = scripted(routes(fake_image, manifest=stall))
    try:
        with pytest.raises(ImageError, match="did not answer in time"):
            open_registry(f"{server.host}/evil:v1", RegistryOptions(ca_file=certs.cert, timeout=0.3))
    finally:
        release.set()


def basic_challenge(user: str, password: str, then: Route) -> Callable[[Handler, Seen], None]:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def route(handler: Handler, seen: Seen) -> None:
        if seen.headers.get("authorization") != expected:
            handler.reply(401, b"", {"WWW-Authenticate": 'Basic realm="evil"'})
        elif callable(then):
            then(handler, seen)
        else:
            status, headers, body = then
            handler.reply(status, body, headers)

    return route


def test_redirects_never_carry_credentials_to_another_host(
    scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs
) -> None:
    storage = scripted({f"/blobs/{sha(fake_image.layer)}": (200, {}, fake_image.layer)})
    location = f"https://{storage.host}/blobs/{sha(fake_image.layer)}?X-Amz-Signature=sig-Ss7"
    table = routes(fake_image)
    for path, route in list(table.items()):
        target: Route = (307, {"Location": location}, b"") if path == fake_image.blob_path(fake_image.layer) else route
        table[path] = basic_challenge("u", "pw-Pp9", target)
    server = scripted(table)
    image = open_registry(f"{server.host}/evil:v1", trusted(certs, username="u", password="pw-Pp9"))
    try:
        assert read_layers(image) == image.diff_ids
    finally:
        image.close()
    [fetched] = storage.seen
    assert "authorization" not in fetched.headers
    assert fetched.path.endswith("X-Amz-Signature=sig-Ss7")
    assert any(s.headers.get("authorization", "").startswith("Basic ") for s in server.seen)


def test_redirect_to_plain_http_and_redirect_loops_are_refused(
    scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs
) -> None:
    storage = scripted({f"/b/{sha(fake_image.layer)}": (200, {}, fake_image.layer)}, tls=False)
    for location, message in (
        (f"http://{storage.host}/b/{sha(fake_image.layer)}", "refusing http connection"),
        (fake_image.blob_path(fake_image.layer), "more than 5 redirects"),  # redirects to itself
    ):
        server = scripted(routes(fake_image, layer=(302, {"Location": location}, b"")))
        image = open_registry(f"{server.host}/evil:v1", trusted(certs))
        try:
            with pytest.raises(ImageError, match=message):
                image.open_blob(image.layers[0])
        finally:
            image.close()
    assert storage.seen == []


def test_token_realm_over_plain_http_is_refused(
    scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs
) -> None:
    realm = scripted({"/token": (200, {}, b'{"token": "t"}')}, tls=False)
    challenge = f'Bearer realm="http://{realm.host}/token",service="evil",scope="repository:evil:pull"'
    server = scripted(routes(fake_image, manifest=(401, {"WWW-Authenticate": challenge}, b"")))
    with pytest.raises(ImageError, match=rf"refusing http connection to 127\.0\.0\.1:{realm.port}"):
        open_registry(f"{server.host}/evil:v1", trusted(certs, username="u", password="pw-Tt4"))
    assert realm.seen == []


def test_bad_token_answers(scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs) -> None:
    for body, message in ((b"not json", "other than JSON"), (b'{"token": "has space"}', "without a usable token")):
        realm = scripted({"/token": (200, {}, body)})
        challenge = f'Bearer realm="https://{realm.host}/token",service="evil"'
        server = scripted(routes(fake_image, manifest=(401, {"WWW-Authenticate": challenge}, b"")))
        with pytest.raises(ImageError, match=message):
            open_registry(f"{server.host}/evil:v1", trusted(certs))


def test_refused_token_is_replaced_once(
    scripted: Callable[..., ScriptedServer], fake_image: FakeImage, certs: Certs
) -> None:
    issued: list[str] = []

    def token(handler: Handler, seen: Seen) -> None:
        issued.append(f"tok-{len(issued) + 1}")
        handler.reply(200, json.dumps({"token": issued[-1], "expires_in": 600}).encode())

    realm = scripted({"/token": token})
    challenge = {"WWW-Authenticate": f'Bearer realm="https://{realm.host}/token",service="evil"'}

    def guarded(route: Route, accepted: Callable[[str], bool]) -> Route:
        def check(handler: Handler, seen: Seen) -> None:
            if not accepted(seen.headers.get("authorization", "")):
                handler.reply(401, b"", challenge)
            elif callable(route):
                route(handler, seen)
            else:
                status, headers, body = route
                handler.reply(status, body, headers)

        return check

    def table(layer_accepts: Callable[[str], bool]) -> dict[str, Route]:
        ok = routes(fake_image)
        layer_path = fake_image.blob_path(fake_image.layer)
        return {
            path: guarded(route, layer_accepts if path == layer_path else lambda a: a.startswith("Bearer tok-"))
            for path, route in ok.items()
        }

    # the registry stops accepting the first token (expired early, revoked) when the layer is read: a new one is fetched
    server = scripted(table(lambda a: a.startswith("Bearer ") and a != "Bearer tok-1"))
    image = open_registry(f"{server.host}/evil:v1", trusted(certs, username="u", password="pw-Uu2"))
    try:
        assert read_layers(image) == image.diff_ids
    finally:
        image.close()
    assert issued == ["tok-1", "tok-2"]
    # a registry that refuses every token: one fresh token, then a clear error (no loop)
    issued.clear()
    server = scripted(table(lambda a: False))
    image = open_registry(f"{server.host}/evil:v1", trusted(certs, username="u", password="pw-Uu2"))
    try:
        with pytest.raises(ImageError, match="denied access with the credentials from --username") as info:
            image.open_blob(image.layers[0])
        assert_no_secret(str(info.value), "pw-Uu2", *issued)
    finally:
        image.close()
    assert issued == ["tok-1", "tok-2"]
