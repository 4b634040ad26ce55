"""Registry credentials and authentication: docker config.json, credential helpers, challenges, tokens.

Secrets (passwords, identity tokens, bearer tokens) never appear in a message, a log line or a repr;
messages name where credentials came from (``--username``, a config file, a helper program) instead.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from factorygate.oci.model import ImageError
from factorygate.oci.reference import DOCKER_HUB

DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
MAX_CONFIG_BYTES = 1024 * 1024
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024
HELPER_TIMEOUT_SECONDS = 20.0
DEFAULT_TOKEN_LIFETIME = 60  # seconds, the token spec's default for a missing expires_in
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_TOKEN_CHARS = re.compile(r"[!-~]+")  # printable ASCII without spaces: safe in a header


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str = ""  # "--username", "/root/.docker/config.json", "docker-credential-pass"
    identity_token: bool = False  # password is an OAuth2 refresh token (docker config "identitytoken")

    def basic(self) -> str:
        """The ``Authorization`` value for Basic auth."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class CredentialLookup:
    credentials: Credentials | None
    note: str | None = None  # why none were used although the config named a helper (for auth errors)


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: Mapping[str, str]
    scopes: tuple[str, ...] = ()  # every scope= parameter, in order


@dataclass(frozen=True, slots=True)
class Token:
    value: str = field(repr=False)
    expires: float  # time.monotonic() deadline

    def header(self) -> str:
        return f"Bearer {self.value}"

    def fresh(self) -> bool:
        return time.monotonic() < self.expires - 5


# ---- docker config.json --------------------------------------------------------------------------------------


def docker_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ if env is None else env
    directory = env.get("DOCKER_CONFIG")
    return Path(directory) / "config.json" if directory else Path.home() / ".docker" / "config.json"


def config_key(registry: str) -> str:
    """The key docker uses for ``registry`` in ``auths`` and as the helper's server URL."""
    return DOCKER_HUB_CONFIG_KEY if registry == DOCKER_HUB else registry


def _hostname_of_key(key: str) -> str:
    """``https://host:port/v1/`` → ``host:port`` (docker's ConvertToHostname)."""
    key = key.removeprefix("https://").removeprefix("http://")
    host = key.split("/", 1)[0]
    return DOCKER_HUB if host in ("index.docker.io", "registry-1.docker.io") else host


def _read_config(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ImageError(f"docker config {path}: cannot read ({e.strerror or e})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ImageError(f"docker config {path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        doc = json.loads(data)
    except ValueError:
        raise ImageError(f"docker config {path}: not valid JSON") from None
    if not isinstance(doc, dict):
        raise ImageError(f"docker config {path}: expected a JSON object")
    return doc


def _auth_entry(doc: dict[str, Any], registry: str) -> dict[str, Any] | None:
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return None
    exact = auths.get(config_key(registry))
    if isinstance(exact, dict):
        return exact
    for key, entry in auths.items():
        if isinstance(key, str) and isinstance(entry, dict) and _hostname_of_key(key) == registry:
            return entry
    return None


def _credentials_from_entry(entry: dict[str, Any], registry: str, path: Path) -> Credentials | None:
    source = str(path)
    token = entry.get("identitytoken")
    auth = entry.get("auth")
    username, password = entry.get("username"), entry.get("password")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ImageError(
                f"docker config {path}: the auth entry for {registry} is not base64 user:password"
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise ImageError(f"docker config {path}: the auth entry for {registry} is not base64 user:password")
    if isinstance(token, str) and token:
        return Credentials(username if isinstance(username, str) else "", token, source, identity_token=True)
    if isinstance(username, str) and username and isinstance(password, str):
        return Credentials(username, password, source)
    return None


def _helper_name(doc: dict[str, Any], registry: str) -> str | None:
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if isinstance(key, str) and isinstance(name, str) and _hostname_of_key(key) == registry:
                return name
    store = doc.get("credsStore")
    return store if isinstance(store, str) and store else None


def run_credential_helper(name: str, registry: str, path: Path) -> CredentialLookup:
    """``docker-credential-NAME get``: credentials, none (helper has none / is not installed, with a note)."""
    if not _HELPER_NAME.fullmatch(name):
        raise ImageError(f"docker config {path}: invalid credential helper name {name!r}")
    program = f"docker-credential-{name}"
    exe = shutil.which(program)
    if exe is None:
        return CredentialLookup(None, f"{path} names credential helper {program}, which is not installed")
    try:
        proc = subprocess.run(
            [exe, "get"],
            input=config_key(registry).encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ImageError(f"{program} get: no answer within {HELPER_TIMEOUT_SECONDS:.0f}s for {registry}") from None
    except OSError as e:
        raise ImageError(f"{program} get: cannot run ({e.strerror or e})") from None
    if proc.returncode != 0:
        if b"credentials not found" in proc.stdout.lower() + proc.stderr.lower():
            return CredentialLookup(None, None)
        raise ImageError(f"{program} get: failed with exit status {proc.returncode} for {registry}")
    return CredentialLookup(_parse_helper_output(proc.stdout, program, registry), None)


def _parse_helper_output(out: bytes, program: str, registry: str) -> Credentials | None:
    try:
        doc = json.loads(out)
    except ValueError:
        raise ImageError(f"{program} get: answered with something other than JSON for {registry}") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{program} get: answered with something other than a JSON object for {registry}")
    username, secret = doc.get("Username"), doc.get("Secret")
    if not isinstance(secret, str) or not secret:
        return None
    if username == "<token>":
        return Credentials("", secret, program, identity_token=True)
    if not isinstance(username, str) or not username:
        return None
    return Credentials(username, secret, program)


def lookup_credentials(registry: str, env: Mapping[str, str] | None = None) -> CredentialLookup:
    """Credentials for ``registry`` (``host[:port]`` or ``docker.io``) from the docker config, if any.

    A credential helper (``credHelpers`` for this registry, else ``credsStore``) is asked first when it is
    installed; a helper that is not installed is skipped with a note; then ``auths``.
    """
    path = docker_config_path(env)
    doc = _read_config(path)
    if doc is None:
        return CredentialLookup(None)
    note = None
    helper = _helper_name(doc, registry)
    if helper is not None:
        found = run_credential_helper(helper, registry, path)
        if found.credentials is not None:
            return found
        note = found.note
    entry = _auth_entry(doc, registry)
    creds = _credentials_from_entry(entry, registry, path) if entry is not None else None
    return CredentialLookup(creds, None if creds else note)


# ---- challenges ----------------------------------------------------------------------------------------------

_RFC7230_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SCHEME = re.compile(rf"[\s,]*({_RFC7230_TCHARS})(?:\s+|$)")
_PARAM = re.compile(rf'\s*({_RFC7230_TCHARS})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"=][^\s,"]*))\s*(?:,|$)')
_TOKEN68 = re.compile(r"\s*[A-Za-z0-9._~+/-]+=*\s*(?:,|$)")


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` header values (RFC 7235): one or more challenges each."""
    challenges: list[Challenge] = []
    for value in values:
        pos = 0
        while pos < len(value):
            scheme = _SCHEME.match(value, pos)
            if scheme is None:
                break
            pos = scheme.end()
            params: dict[str, str] = {}
            scopes: list[str] = []
            while (m := _PARAM.match(value, pos)) is not None:
                name = m.group(1).lower()
                text = re.sub(r"\\(.)", r"\1", m.group(2)) if m.group(2) is not None else m.group(3)
                params.setdefault(name, text)
                if name == "scope":
                    scopes.append(text)
                pos = m.end()
            if not params and (t68 := _TOKEN68.match(value, pos)) is not None and t68.end() > pos:
                pos = t68.end()
            challenges.append(Challenge(scheme.group(1).lower(), params, tuple(scopes)))
    return challenges


# ---- tokens --------------------------------------------------------------------------------------------------

# Sends one request and returns the response with its body read (at most ``limit`` bytes).
Send = Callable[[httpx.Request, int], tuple[httpx.Response, bytes]]


def host_port(url: httpx.URL) -> str:
    """``host[:port]`` of a URL for messages (never its user info or query)."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{url.port}" if url.port else host


def token_request(challenge: Challenge, scopes: tuple[str, ...], creds: Credentials | None) -> httpx.Request:
    """The request for a bearer token (docker token spec; OAuth2 refresh-token grant for identity tokens)."""
    realm = challenge.params.get("realm")
    if not realm:
        raise ImageError("the registry's Bearer challenge names no realm")
    try:
        url = httpx.URL(realm)
    except httpx.InvalidURL:
        raise ImageError("the registry's Bearer challenge has an invalid realm URL") from None
    if url.scheme not in ("https", "http") or not url.host:
        raise ImageError("the registry's Bearer challenge has an invalid realm URL")
    service = challenge.params.get("service")
    if creds is not None and creds.identity_token:
        form = {"grant_type": "refresh_token", "refresh_token": creds.password, "client_id": "factorygate"}
        if service:
            form["service"] = service
        if scopes:
            form["scope"] = " ".join(scopes)
        return httpx.Request("POST", url, data=form)
    query: list[tuple[str, str | int | float | bool | None]] = [("service", service)] if service else []
    query += [("scope", s) for s in scopes]
    if creds is not None:
        query.append(("account", creds.username))
    headers = {"Authorization": creds.basic()} if creds is not None else {}
    return httpx.Request("GET", url.copy_merge_params(query), headers=headers)


def fetch_token(
    send: Send, challenge: Challenge, scopes: tuple[str, ...], creds: Credentials | None, what: str
) -> Token:
    """Ask the challenge's realm for a token; one-line ImageError naming ``what`` and the realm's host."""
    request = token_request(challenge, scopes, creds)
    response, body = send(request, MAX_TOKEN_RESPONSE_BYTES)
    realm_host = host_port(request.url)
    if response.status_code in (401, 403):
        who = f"the credentials from {creds.source}" if creds else "anonymous access"
        raise ImageError(f"{what}: token server {realm_host} refused {who} (HTTP {response.status_code})")
    if response.status_code != 200:
        raise ImageError(f"{what}: token server {realm_host} answered HTTP {response.status_code}")
    return _parse_token(body, what, realm_host)


def _parse_token(body: bytes, what: str, realm_host: str) -> Token:
    try:
        doc = json.loads(body)
    except ValueError:
        raise ImageError(f"{what}: token server {realm_host} answered with something other than JSON") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{what}: token server {realm_host} answered with something other than a JSON object")
    value = doc.get("token") or doc.get("access_token")
    if not isinstance(value, str) or not _TOKEN_CHARS.fullmatch(value) or len(value) > 64 * 1024:
        raise ImageError(f"{what}: token server {realm_host} answered without a usable token")
    lifetime = doc.get("expires_in")
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    return Token(value, time.monotonic() + min(lifetime, 24 * 3600))
