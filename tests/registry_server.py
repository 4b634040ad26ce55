"""Real registries on loopback for tests, all bounded in time.

* :func:`make_certs`: a self-signed certificate for 127.0.0.1/localhost (and ``ca.crt`` for skopeo);
* :class:`RegistryServer`: ``docker-registry serve`` over TLS 1.2+ (or plain HTTP), anonymous, htpasswd
  Basic auth or token auth against a :class:`TokenServer`;
* :class:`TokenServer`: a docker token-spec server over HTTPS issuing RS256 JWTs (signed with ``openssl``)
  whose x5c certificate is the registry's ``rootcertbundle``;
* :class:`ScriptedServer`: an HTTPS (or HTTP) server answering from a route table, for hostile registries;
* :func:`push`: ``skopeo copy`` an OCI layout into a registry.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOOLS = ("docker-registry", "skopeo", "openssl", "htpasswd")
START_TIMEOUT = 20.0
COMMAND_TIMEOUT = 60.0


def missing_tools(tools: tuple[str, ...] = TOOLS) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(argv: list[str], *, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=COMMAND_TIMEOUT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
    return proc.stdout


@dataclass(frozen=True)
class Certs:
    cert: Path
    key: Path
    ca_dir: Path  # holds ca.crt (skopeo --dest-cert-dir)


def make_certs(directory: Path, cn: str = "127.0.0.1") -> Certs:
    """A fresh self-signed RSA certificate valid for IP 127.0.0.1 and DNS localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    run([
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={cn}",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert),
    ])  # fmt: skip
    ca_dir = directory / "ca"
    ca_dir.mkdir(exist_ok=True)
    shutil.copy(cert, ca_dir / "ca.crt")
    return Certs(cert, key, ca_dir)


def server_context(certs: Certs, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.cert, certs.key)
    if maximum is not None:
        with warnings.catch_warnings():  # building an obsolete-TLS server on purpose
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = maximum
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


# ---- a small threaded HTTP(S) server -------------------------------------------------------------------------


@dataclass
class Seen:
    """One request a test server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 1 << 20)) if length else b""
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with self.server.lock:
            self.server.seen.append(seen)
        self.server.app(self, seen)

    do_GET = _handle
    do_POST = _handle
    do_HEAD = _handle

    def reply(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, *, length: bool = True
    ) -> None:
        """Answer; ``length=False`` sends no Content-Length and closes the connection after the body."""
        self.send_response(status)
        headers = dict(headers or {})
        if length:
            headers.setdefault("Content-Length", str(len(body)))
        else:
            headers["Connection"] = "close"
            self.close_connection = True
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


App = Callable[[Handler, Seen], None]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: App, ctx: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.app = app
        self.ctx = ctx
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.settimeout(10)
        return sock, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        # the TLS handshake runs in the request's thread, so a failed handshake never blocks the server
        if self.ctx is not None:
            try:
                request = self.ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up early are part of the tests


class ScriptedServer:
    """An HTTP(S) server on 127.0.0.1 answering every request with ``app`` (in a daemon thread)."""

    def __init__(self, app: App, ctx: ssl.SSLContext | None) -> None:
        self._server = _Server(app, ctx)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def seen(self) -> list[Seen]:
        with self._server.lock:
            return list(self._server.seen)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# ---- a docker token-spec server ------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues RS256 JWTs: full access to users with the right password, pull on ``public`` repos to anyone."""

    issuer = "factorygate-test-issuer"
    service = "factorygate-test-registry"

    def __init__(self, directory: Path, tls: Certs, users: dict[str, str], public: set[str] | None = None) -> None:
        self.signing = make_certs(directory / "signing", cn="token-signer")
        self.users = users
        self.public = public or set()
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> user
        der = run(["openssl", "x509", "-in", str(self.signing.cert), "-outform", "DER"])
        self._x5c = base64.b64encode(der).decode()
        self._sign_lock = threading.Lock()
        self.issued: list[str] = []  # every token handed out (tests check none leaks into messages or logs)
        self.server = ScriptedServer(self._app, server_context(tls))

    @property
    def realm(self) -> str:
        return f"https://{self.server.host}/token"

    def token_requests(self) -> list[Seen]:
        return [s for s in self.server.seen if s.path.startswith("/token")]

    def _user(self, seen: Seen) -> str | bool | None:
        """The authenticated user, None for anonymous, False for bad credentials."""
        if seen.method == "POST":
            form = urllib.parse.parse_qs(seen.body.decode())
            if form.get("grant_type") != ["refresh_token"]:
                return False
            return self.refresh_tokens.get((form.get("refresh_token") or [""])[0], False)
        header = seen.headers.get("authorization")
        if header is None:
            return None
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == password and password else False

    def _scopes(self, seen: Seen) -> list[str]:
        if seen.method == "POST":
            return " ".join(urllib.parse.parse_qs(seen.body.decode()).get("scope", [])).split()
        return urllib.parse.parse_qs(urllib.parse.urlsplit(seen.path).query).get("scope", [])

    def _access(self, user: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository":
                continue
            wanted = actions.split(",")
            granted = wanted if user else [a for a in wanted if a == "pull" and name in self.public]
            access.append({"type": kind, "name": name, "actions": granted})
        return access

    def _app(self, handler: Handler, seen: Seen) -> None:
        user = self._user(seen)
        if user is False:
            handler.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"Content-Type": "application/json"})
            return
        name = user if isinstance(user, str) else None
        body = json.dumps({"token": self.jwt(name, self._access(name, self._scopes(seen))), "expires_in": 300})
        handler.reply(200, body.encode(), {"Content-Type": "application/json"})

    def jwt(self, user: str | None, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 30,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        with self._sign_lock:
            signature = run(
                ["openssl", "dgst", "-sha256", "-sign", str(self.signing.key)], stdin=signing_input.encode()
            )
        token = f"{signing_input}.{_b64url(signature)}"
        self.issued.append(token)
        return token

    def stop(self) -> None:
        self.server.stop()


# ---- docker-registry -----------------------------------------------------------------------------------------


@dataclass
class RegistryServer:
    """``docker-registry serve`` on 127.0.0.1 in a fresh directory; stop() it (SIGTERM) when done."""

    directory: Path
    certs: Certs | None  # None: plain HTTP
    users: dict[str, str] = field(default_factory=dict)
    token_server: TokenServer | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        http: dict[str, Any] = {"addr": self.host, "secret": secrets.token_hex(16)}
        if self.certs is not None:
            http["tls"] = {"certificate": str(self.certs.cert), "key": str(self.certs.key), "minimumtls": "tls1.2"}
        cfg: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.directory / "data")}, "delete": {"enabled": True}},
            "http": http,
        }
        if self.token_server is not None:
            ts = self.token_server
            cfg["auth"] = {
                "token": {
                    "realm": ts.realm,
                    "service": ts.service,
                    "issuer": ts.issuer,
                    "rootcertbundle": str(ts.signing.cert),
                }
            }
        elif self.users:
            lines = [run(["htpasswd", "-Bbn", u, p]).decode().strip() for u, p in self.users.items()]
            (self.directory / "htpasswd").write_text("\n".join(lines) + "\n")
            cfg["auth"] = {"htpasswd": {"realm": "factorygate-test", "path": str(self.directory / "htpasswd")}}
        return cfg

    def start(self) -> RegistryServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a free port can be taken between probing and binding: bounded retries
            self.port = free_port()
            config = self.directory / "config.yml"
            config.write_text(json.dumps(self.config()))  # JSON is YAML
            log = (self.directory / "registry.log").open("wb")
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            log.close()
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"docker-registry did not start: {(self.directory / 'registry.log').read_text()[-2000:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            if self._answers():
                return True
            time.sleep(0.1)
        return False

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw:
                sock: socket.socket = raw
                if self.certs is not None:
                    ctx = ssl.create_default_context(cafile=str(self.certs.cert))
                    sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
                sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: " + self.host.encode() + b"\r\nConnection: close\r\n\r\n")
                return sock.recv(12).startswith(b"HTTP/1.1 ")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def push(
    registry: RegistryServer,
    layout: Path,
    ref: str,
    *,
    source_tag: str = "latest",
    docker_format: bool = False,
    multi_arch: bool = False,
    creds: tuple[str, str] | None = None,
) -> str:
    """``skopeo copy oci:LAYOUT:TAG docker://HOST/REF``; returns the pushed manifest's digest."""
    digest_file = layout.parent / f"{layout.name}.{secrets.token_hex(4)}.digest"
    argv = ["skopeo", "--insecure-policy", "copy", "--retry-times", "0", "--digestfile", str(digest_file)]
    if registry.certs is not None:
        argv += ["--dest-cert-dir", str(registry.certs.ca_dir)]
    else:
        argv += ["--dest-tls-verify=false"]
    if creds is not None:
        argv += ["--dest-creds", f"{creds[0]}:{creds[1]}"]
    if docker_format:
        argv += ["--format", "v2s2"]
    if multi_arch:
        argv += ["--multi-arch", "all"]
    env = {**os.environ, "HOME": str(layout.parent)}  # no user auth files or registries.conf from the host
    argv += [f"oci:{layout}:{source_tag}", f"docker://{registry.host}/{ref}"]
    proc = subprocess.run(argv, capture_output=True, timeout=COMMAND_TIMEOUT, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"skopeo copy failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    return digest_file.read_text().strip()
