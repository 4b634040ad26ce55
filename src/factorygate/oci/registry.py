"""Pull an image's manifest and config from a registry (OCI Distribution API) and stream its blobs.

* TLS 1.2 or higher, verified against the system CA store plus ``ca_file``; plain HTTP only to a loopback
  registry named in ``insecure_registries`` (and then the image is marked ``insecure_transport``);
* Basic and Bearer-token auth (docker token spec), credentials from options or the docker config;
* every manifest and blob is verified: by-digest manifests against the reference, by-tag manifests against
  ``Docker-Content-Digest`` when the registry sends it, index entries, configs and layers against their
  descriptors (layers while they stream);
* bounded: manifest and config sizes, redirects, retries (connect errors, timeouts, 429/5xx) and timeouts.
"""

from __future__ import annotations

import io
import logging
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import httpx

from factorygate import __version__
from factorygate.oci import auth
from factorygate.oci.digest import VerifyingReader, check_digest, digest_of, verify_bytes
from factorygate.oci.index import (
    MAX_MANIFEST_BYTES,
    diff_ids,
    index_entries,
    is_index,
    is_manifest,
    manifest_parts,
    media_type_of,
    parse_json,
    select_platform,
)
from factorygate.oci.model import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ImageError,
    Platform,
    ResolvedImage,
)
from factorygate.oci.reference import Reference, is_loopback_host, parse_reference, split_host_port

log = logging.getLogger(__name__)

MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
MAX_CONFIG_BYTES = MAX_MANIFEST_BYTES * 4  # what parse_json accepts
MAX_ERROR_BODY_BYTES = 64 * 1024
MAX_REDIRECTS = 5
ATTEMPTS = 3
RETRY_DELAY = 0.25  # seconds, doubled per retry
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CHUNK = 64 * 1024
_PROTOCOL_VERSION_REASONS = frozenset(
    {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE", "WRONG_SSL_VERSION"}
)
_NOT_TLS_REASONS = frozenset({"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"})


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    platform: Platform = field(default_factory=Platform)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | str | None = None
    insecure_registries: tuple[str, ...] = ()  # loopback host[:port] entries allowed over plain HTTP
    timeout: float = 30.0  # seconds per connect/read/write


def check_insecure_registry(entry: str) -> str:
    """Validate one ``--insecure-registry`` value: ``host[:port]`` naming a loopback host."""
    host, _ = split_host_port(entry)
    if "/" in entry or "://" in entry or not host or not is_loopback_host(host):
        raise ImageError(
            f"--insecure-registry {entry!r}: plain HTTP is allowed only for a loopback host[:port] "
            "(127.0.0.0/8, ::1, localhost)"
        )
    return entry


def open_registry(ref: str, opts: RegistryOptions) -> ResolvedImage:
    """Resolve ``ref`` (``host[:port]/repo[:tag][@digest]``) to one platform's image, verified."""
    reference = parse_reference(ref)
    for entry in opts.insecure_registries:
        check_insecure_registry(entry)
    try:
        client = _Client(reference, ref, opts, _credentials(reference, opts))
    except ImageError as e:  # option and docker-config problems, named with the reference
        raise ImageError(f"{ref}: {e}") from None
    try:
        return client.resolve(opts.platform)
    except BaseException:
        client.close()
        raise


def connect(reference: Reference, name: str, opts: RegistryOptions) -> _Client:
    """A session with ``reference``'s registry and repository (for writers: see :mod:`factorygate.oci.push`)."""
    for entry in opts.insecure_registries:
        check_insecure_registry(entry)
    try:
        return _Client(reference, name, opts, _credentials(reference, opts))
    except ImageError as e:
        raise ImageError(f"{name}: {e}") from None


def _credentials(reference: Reference, opts: RegistryOptions) -> auth.CredentialLookup:
    if opts.username is not None or opts.password is not None:
        if not opts.username or opts.password is None:
            raise ImageError("--username and --password-stdin go together")
        return auth.CredentialLookup(auth.Credentials(opts.username, opts.password, "--username"))
    return auth.lookup_credentials(reference.registry)


def ssl_context(ca_file: Path | str | None) -> ssl.SSLContext:
    """System CA store plus ``ca_file``; hostname checks on; TLS 1.2 or higher."""
    ctx = ssl.create_default_context()
    if ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca_file))
        except FileNotFoundError:
            raise ImageError(f"--ca-file {ca_file}: no such file") from None
        except (OSError, ssl.SSLError) as e:
            reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or type(e).__name__
            raise ImageError(f"--ca-file {ca_file}: cannot load CA certificates ({reason})") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _tls_problem(err: ssl.SSLError) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"certificate not trusted ({err.verify_message}); pass --ca-file with the registry's CA certificate"
    reason = str(err.reason or "")
    if reason in _PROTOCOL_VERSION_REASONS:
        return "the server does not offer TLS 1.2 or higher"
    if reason in _NOT_TLS_REASONS:
        return (
            "the server did not answer with TLS (plain HTTP?); plain HTTP is allowed only for a loopback "
            "registry named with --insecure-registry"
        )
    return reason.replace("_", " ").lower() or "handshake failed"


def _registry_error_codes(body: bytes) -> str:
    """The ``errors[].code`` values of a Distribution API error body (codes only: messages may echo input)."""
    import json

    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return ""
    codes = [e.get("code") for e in errors if isinstance(e, dict)]
    return ", ".join(c for c in codes if isinstance(c, str) and c.replace("_", "").isalnum())[:200]


class _ResponseRaw(io.RawIOBase):
    """The raw (not content-decoded) bytes of a streamed response, httpx errors turned into ImageError."""

    def __init__(self, response: httpx.Response, what: str) -> None:
        self._response = response
        self._chunks: Iterator[bytes] = response.iter_raw(CHUNK)
        self._buf = b""
        self._pos = 0
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._pos >= len(self._buf):
            try:
                self._buf = next(self._chunks, b"")
            except (httpx.HTTPError, httpx.StreamError) as e:
                raise ImageError(f"{self._what}: transfer failed ({_one_line(e)})") from None
            self._pos = 0
        n = min(len(b), len(self._buf) - self._pos)
        memoryview(b)[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


class _Client:
    """One registry session for one repository: TLS, auth state, retries, redirects, verification."""

    def __init__(self, ref: Reference, name: str, opts: RegistryOptions, creds: auth.CredentialLookup) -> None:
        self.ref = ref
        self.name = name
        self.opts = opts
        self.creds = creds.credentials
        self.creds_note = creds.note
        self.insecure = self._plain_http_allowed(*split_host_port(ref.api_host))
        scheme = "http" if self.insecure else "https"
        self.base = httpx.URL(f"{scheme}://{ref.api_host}")
        self.authorization: str | None = None  # for requests to the registry's own origin
        self.tokens: dict[tuple[str, str, tuple[str, ...]], auth.Token] = {}
        self.http = httpx.Client(
            verify=ssl_context(opts.ca_file),
            timeout=httpx.Timeout(opts.timeout, connect=min(opts.timeout, 15.0)),
            follow_redirects=False,
            headers={"User-Agent": f"factorygate/{__version__}", "Accept-Encoding": "identity"},
        )

    def close(self) -> None:
        self.http.close()

    # ---- transport ---------------------------------------------------------------------------------------------

    def _plain_http_allowed(self, host: str, port: int | None) -> bool:
        if not is_loopback_host(host):
            return False
        for entry in self.opts.insecure_registries:
            e_host, e_port = split_host_port(entry)
            if e_host.lower() == host.lower() and (e_port is None or e_port == (port or 80)):
                return True
        return False

    def _check_url(self, url: httpx.URL) -> None:
        if url.scheme == "https":
            return
        if url.scheme == "http" and self._plain_http_allowed(url.host, url.port):
            return
        raise ImageError(
            f"{self.name}: refusing {url.scheme or 'schemeless'} connection to {auth.host_port(url)} "
            "(TLS 1.2+ required; plain HTTP is allowed only for a loopback registry named with --insecure-registry)"
        )

    def _send_once(self, request: httpx.Request) -> httpx.Response:
        # the path only: never user info, query strings (signed storage URLs) or headers
        log.debug("%s %s://%s%s", request.method, request.url.scheme, auth.host_port(request.url), request.url.path)
        try:
            return self.http.send(request, stream=True)
        except httpx.HTTPError as e:
            tls = _ssl_error(e)
            if tls is not None:
                raise ImageError(
                    f"{self.name}: TLS connection to {auth.host_port(request.url)} failed: {_tls_problem(tls)}"
                ) from None
            raise

    def send(self, request: httpx.Request) -> httpx.Response:
        """Send (streamed) with bounded retries on connect errors, timeouts and 429/5xx answers."""
        self._check_url(request.url)
        for attempt in range(ATTEMPTS):
            last = attempt == ATTEMPTS - 1
            try:
                response = self._send_once(request)
            except httpx.TimeoutException as e:
                if last:
                    raise ImageError(
                        f"{self.name}: {auth.host_port(request.url)} did not answer in time ({_one_line(e)})"
                    ) from None
            except (httpx.TransportError, httpx.DecodingError) as e:
                if last or isinstance(e, httpx.UnsupportedProtocol):
                    raise ImageError(
                        f"{self.name}: cannot reach {auth.host_port(request.url)} ({_one_line(e)})"
                    ) from None
            else:
                if response.status_code not in RETRY_STATUSES or last:
                    return response
                response.close()
            time.sleep(RETRY_DELAY * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def send_read(self, request: httpx.Request, limit: int) -> tuple[httpx.Response, bytes]:
        response = self.send(request)
        try:
            return response, self.read_limited(response, limit, f"{self.name}: {auth.host_port(request.url)}")
        finally:
            response.close()

    @staticmethod
    def read_limited(response: httpx.Response, limit: int, what: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ImageError(f"{what}: response of {declared} bytes is over the {limit}-byte limit")
        buf = bytearray()
        try:
            for chunk in response.iter_raw(CHUNK):
                buf += chunk
                if len(buf) > limit:
                    raise ImageError(f"{what}: response is over the {limit}-byte limit")
        except (httpx.HTTPError, httpx.StreamError) as e:
            raise ImageError(f"{what}: transfer failed ({_one_line(e)})") from None
        return bytes(buf)

    # ---- auth --------------------------------------------------------------------------------------------------

    def _same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (self.base.scheme, self.base.host, self.base.port)

    def _needs_credentials(self, detail: str) -> ImageError:
        hint = "; pass --username/--password-stdin or log in with docker login"
        note = f" ({self.creds_note})" if self.creds_note else ""
        return ImageError(f"{self.name}: {self.ref.registry} {detail}{hint}{note}")

    def authenticate(self, response: httpx.Response, already_tried: bool) -> None:
        """Answer a 401 challenge: set ``self.authorization`` for the next attempt, or raise."""
        challenges = auth.parse_challenges(response.headers.get_list("www-authenticate"))
        by_scheme = {c.scheme: c for c in challenges}
        if "bearer" in by_scheme:
            self._bearer(by_scheme["bearer"], already_tried)
        elif "basic" in by_scheme:
            self._basic(already_tried)
        else:
            schemes = ", ".join(sorted(by_scheme)) or "none"
            raise ImageError(f"{self.name}: {self.ref.registry} asks for unsupported authentication ({schemes})")

    def _basic(self, already_tried: bool) -> None:
        if self.creds is None:
            raise self._needs_credentials("requires authentication (Basic)")
        if self.creds.identity_token:
            raise ImageError(
                f"{self.name}: {self.ref.registry} asks for Basic authentication, which an identity token "
                f"(from {self.creds.source}) cannot answer"
            )
        if already_tried:
            raise ImageError(f"{self.name}: {self.ref.registry} rejected the credentials from {self.creds.source}")
        self.authorization = self.creds.basic()

    def _bearer(self, challenge: auth.Challenge, already_tried: bool) -> None:
        if already_tried:
            if self.creds is None:
                raise self._needs_credentials("denied anonymous access")
            raise ImageError(
                f"{self.name}: {self.ref.registry} denied access with the credentials from {self.creds.source}"
            )
        scopes = challenge.scopes or (f"repository:{self.ref.repository}:pull",)
        key = (challenge.params.get("realm", ""), challenge.params.get("service", ""), scopes)
        token = self.tokens.get(key)
        # a token the registry just refused (expired early, revoked) is not reused
        if token is None or not token.fresh() or token.header() == self.authorization:
            token = auth.fetch_token(self.send_read, challenge, scopes, self.creds, self.name)
            self.tokens[key] = token
        self.authorization = token.header()

    # ---- requests ----------------------------------------------------------------------------------------------

    def get(self, path: str, accept: str | None) -> httpx.Response:
        """GET a registry path (streamed): auth challenges answered, redirects followed safely, 2xx or raise."""
        for already_tried in (False, True):
            response = self._get_following_redirects(self.base.copy_with(path=path), accept)
            if response.status_code != 401:
                return response
            response.close()
            self.authenticate(response, already_tried)  # raises when the second attempt is refused too
        raise AssertionError("unreachable")  # pragma: no cover

    def call(
        self, method: str, url: httpx.URL, headers: dict[str, str] | None = None, content: bytes | None = None
    ) -> httpx.Response:
        """Any method (streamed), auth challenges answered (push scopes too), redirects NOT followed."""
        for already_tried in (False, True):
            sent = dict(headers or {})
            if self.authorization and self._same_origin(url):
                sent["Authorization"] = self.authorization
            response = self.send(httpx.Request(method, url, headers=sent, content=content))
            if response.status_code != 401:
                return response
            response.close()
            self.authenticate(response, already_tried)
        raise AssertionError("unreachable")  # pragma: no cover

    def fail(self, response: httpx.Response, what: str) -> ImageError:
        """A one-line error for an unexpected answer (reads and closes the response)."""
        return self._fail(response, what)

    def _get_following_redirects(self, url: httpx.URL, accept: str | None) -> httpx.Response:
        for _ in range(MAX_REDIRECTS + 1):
            headers = {"Accept": accept} if accept else {}
            # the registry's credentials go to the registry only, never to blob storage it redirects to
            if self.authorization and self._same_origin(url):
                headers["Authorization"] = self.authorization
            response = self.send(httpx.Request("GET", url, headers=headers))
            location = response.headers.get("location")
            if not response.is_redirect or not location:
                return response
            response.close()
            try:
                url = url.join(location)
            except httpx.InvalidURL:
                raise ImageError(f"{self.name}: {auth.host_port(url)} redirected to an invalid URL") from None
        raise ImageError(f"{self.name}: more than {MAX_REDIRECTS} redirects")

    def _fail(self, response: httpx.Response, what: str) -> ImageError:
        try:
            body = self.read_limited(response, MAX_ERROR_BODY_BYTES, what)
        except ImageError:
            body = b""
        finally:
            response.close()
        codes = _registry_error_codes(body)
        detail = f" ({codes})" if codes else ""
        if response.status_code == 404:
            return ImageError(f"{what}: not found on {self.ref.registry}{detail}")
        if response.status_code == 403:
            return ImageError(f"{what}: {self.ref.registry} denied access (HTTP 403){detail}")
        return ImageError(f"{what}: {self.ref.registry} answered HTTP {response.status_code}{detail}")

    def _check_encoding(self, response: httpx.Response, what: str) -> None:
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            response.close()
            raise ImageError(f"{what}: served with Content-Encoding {encoding[:40]!r} although identity was asked")

    # ---- manifests and blobs -----------------------------------------------------------------------------------

    def fetch_manifest(self, obj: str, what: str) -> tuple[bytes, str | None, str | None]:
        """Manifest bytes, their Content-Type and their Docker-Content-Digest header (unverified)."""
        response = self.get(f"/v2/{self.ref.repository}/manifests/{obj}", MANIFEST_ACCEPT)
        if response.status_code != 200:
            raise self._fail(response, what)
        self._check_encoding(response, what)
        try:
            data = self.read_limited(response, MAX_MANIFEST_BYTES, f"{what}: manifest")
        finally:
            response.close()
        content_type = response.headers.get("content-type", "").split(";", 1)[0].strip() or None
        return data, content_type, response.headers.get("docker-content-digest")

    def manifest_by_tag(self, tag: str) -> tuple[bytes, str | None, str]:
        what = f"{self.name}"
        data, content_type, header = self.fetch_manifest(tag, what)
        if header:
            digest = check_digest(header.strip(), f"{what}: Docker-Content-Digest")
            verify_bytes(data, digest, f"{what}: manifest (Docker-Content-Digest)")
        else:
            digest = digest_of(data)
        return data, content_type, digest

    def manifest_by_digest(self, digest: str, what: str, size: int | None = None) -> tuple[bytes, str | None]:
        data, content_type, _ = self.fetch_manifest(digest, what)
        verify_bytes(data, digest, f"{what}: manifest", size)
        return data, content_type

    def open_blob(self, desc: Descriptor) -> IO[bytes]:
        what = f"{self.name}: blob {desc.digest}"
        response = self.get(f"/v2/{self.ref.repository}/blobs/{desc.digest}", None)
        if response.status_code != 200:
            raise self._fail(response, what)
        self._check_encoding(response, what)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) != desc.size:
            response.close()
            raise ImageError(f"{what}: registry sends {declared} bytes, the descriptor says {desc.size}")
        raw = io.BufferedReader(_ResponseRaw(response, what), CHUNK)
        return cast(IO[bytes], VerifyingReader(raw, desc.digest, desc.size, what))

    def blob_bytes(self, desc: Descriptor, limit: int) -> bytes:
        what = f"{self.name}: blob {desc.digest}"
        if desc.size > limit:
            raise ImageError(f"{what}: {desc.size} bytes is over the {limit}-byte limit")
        with self.open_blob(desc) as stream:
            return stream.read()

    # ---- resolution --------------------------------------------------------------------------------------------

    def resolve(self, platform: Platform) -> ResolvedImage:
        what = self.name
        if self.ref.digest:
            data, content_type = self.manifest_by_digest(self.ref.digest, what)
            digest = self.ref.digest
        else:
            data, content_type, digest = self.manifest_by_tag(self.ref.tag or "latest")
        doc = parse_json(data, f"{what}: manifest")
        media_type = self._media_type(doc, content_type, what)
        if is_index(media_type):
            chosen = select_platform(index_entries(doc, f"{what}: index"), platform, what)
            if not is_manifest(chosen.media_type):
                raise ImageError(f"{what}: the {platform} entry is a {chosen.media_type}, not an image manifest")
            data, content_type = self.manifest_by_digest(chosen.digest, f"{what} ({platform})", chosen.size)
            digest = chosen.digest
            doc = parse_json(data, f"{what}: manifest")
            media_type = self._media_type(doc, content_type or chosen.media_type, what)
            if not is_manifest(media_type):
                raise ImageError(f"{what}: the {platform} entry is a {media_type}, not an image manifest")
        return self._image(doc, digest, what)

    @staticmethod
    def _media_type(doc: dict[str, Any], content_type: str | None, what: str) -> str:
        if doc.get("schemaVersion") == 1:
            raise ImageError(f"{what}: Docker schema 1 manifests are not supported (re-push the image)")
        media_type = media_type_of(doc, content_type if content_type != "application/json" else None)
        if not is_index(media_type) and not is_manifest(media_type):
            raise ImageError(f"{what}: {media_type[:100]!r} is not an image manifest or index")
        return media_type

    def _image(self, manifest: dict[str, Any], manifest_digest: str, what: str) -> ResolvedImage:
        config_desc, layers = manifest_parts(manifest, f"{what}: manifest")
        if config_desc.media_type not in (OCI_CONFIG, DOCKER_CONFIG):
            raise ImageError(f"{what}: not a container image (config media type {config_desc.media_type[:100]!r})")
        config = parse_json(self.blob_bytes(config_desc, MAX_CONFIG_BYTES), f"{what}: config")
        return ResolvedImage(
            name=self.name,
            transport="registry",
            manifest_digest=manifest_digest,
            manifest=manifest,
            config_digest=config_desc.digest,
            config=config,
            layers=layers,
            diff_ids=diff_ids(config, len(layers), what),
            open_blob=self.open_blob,
            registry=self.ref.registry,
            repository=self.ref.repository,
            insecure_transport=self.insecure,
            close=self.close,
        )
