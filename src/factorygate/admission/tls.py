"""The webhook's TLS: TLS 1.2 or later, and the certificate reloaded when its files change.

uvicorn creates its listening socket with one ``SSLContext`` for the life of the process. Every
context built here carries an SNI callback, which OpenSSL calls for each ClientHello (with or without
a server name); at most once a second it compares the files' inode, size and mtime with those of the
loaded pair, loads the new pair into a fresh context when they changed, and moves the handshake onto
the newest context. New connections get the new certificate; established ones keep theirs. A pair
that does not load (a rotation caught half-way: new certificate, old key) keeps the old one in
service and is retried a second later. cert-manager and the kubelet rotate mounted Secrets by
swapping a symlink, which changes the inode.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from factorygate.errors import FactorygateError

CHECK_INTERVAL_S = 1.0
# TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites are fixed by OpenSSL, all AEAD).
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
Signature = tuple[tuple[int, int, int, int], ...]
EventSink = Callable[[dict[str, Any]], None]


class TlsError(FactorygateError):
    """The certificate or key cannot be read or do not form a pair."""


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What the logs and /readyz say about the certificate in service (nothing secret)."""

    subject: str
    not_after: dt.datetime
    serial: str

    def expired(self, now: dt.datetime | None = None) -> bool:
        return (now or dt.datetime.now(dt.UTC)) >= self.not_after


def _signature(paths: tuple[str, ...]) -> Signature:
    out = []
    for p in paths:
        st = os.stat(p)
        out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _ssl_reason(e: ssl.SSLError) -> str:
    if e.reason == "KEY_VALUES_MISMATCH":
        return "the private key does not match the certificate"
    return f"{e.library or 'ssl'}: {e.reason or e}".lower().replace("_", " ")


def _cert_info(cert_path: str) -> CertInfo:
    from cryptography import x509

    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return CertInfo(
        subject=cert.subject.rfc4514_string(), not_after=cert.not_valid_after_utc, serial=f"{cert.serial_number:x}"
    )


@dataclass
class ReloadingContext:
    """The current server context for a certificate and key pair, refreshed from disk."""

    cert: str
    key: str
    on_event: EventSink | None = None
    interval: float = CHECK_INTERVAL_S
    clock: Callable[[], float] = time.monotonic
    current: ssl.SSLContext = field(init=False)
    info: CertInfo = field(init=False)
    _signature: Signature = field(init=False)
    _next_check: float = field(init=False, default=0.0)
    _failed_for: Signature | None = field(init=False, default=None)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        try:
            self._signature = _signature((self.cert, self.key))
        except OSError as e:
            raise TlsError(f"cannot read {e.filename}: {e.strerror}") from None
        self.current, self.info = self._load()
        self._next_check = self.clock() + self.interval
        self._emit("tls_loaded")

    def _load(self) -> tuple[ssl.SSLContext, CertInfo]:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(CIPHERS)
        ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
        ctx.set_alpn_protocols(["http/1.1"])
        try:
            ctx.load_cert_chain(self.cert, self.key)
        except ssl.SSLError as e:
            raise TlsError(f"cannot load {self.cert} with {self.key}: {_ssl_reason(e)}") from None
        except OSError as e:
            raise TlsError(f"cannot read {e.filename or self.cert}: {e.strerror}") from None
        try:
            info = _cert_info(self.cert)
        except (OSError, ValueError) as e:
            raise TlsError(f"cannot parse the certificate {self.cert}: {e}") from None
        ctx.sni_callback = self._on_client_hello
        return ctx, info

    def _emit(self, event: str, **extra: Any) -> None:
        if self.on_event is not None:
            self.on_event(
                {
                    "event": event,
                    "cert": self.cert,
                    "subject": self.info.subject,
                    "not_after": self.info.not_after.isoformat(),
                    "serial": self.info.serial,
                    **extra,
                }
            )

    def maybe_reload(self) -> bool:
        """Reload when the files changed (checked at most once per interval); True when reloaded."""
        now = self.clock()
        if now < self._next_check:
            return False
        with self._lock:
            self._next_check = now + self.interval
            try:
                sig = _signature((self.cert, self.key))
            except OSError:
                return False  # a file is missing mid-rotation: keep serving, look again later
            if sig == self._signature:
                return False
            try:
                self.current, self.info = self._load()
            except TlsError as e:
                if sig != self._failed_for:  # once per state of the files, not once a second
                    self._failed_for = sig
                    if self.on_event is not None:
                        self.on_event({"event": "tls_reload_failed", "cert": self.cert, "error": str(e)})
                return False
            self._signature = sig
            self._failed_for = None
        self._emit("tls_reloaded")
        return True

    def _on_client_hello(
        self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext
    ) -> None:
        self.maybe_reload()
        current = self.current
        if ctx is not current:
            conn.context = current


@dataclass
class ContextFactory:
    """uvicorn's ``ssl_context_factory``: picklable, so each worker process builds its own reloader."""

    cert: str
    key: str
    on_event: EventSink | None = None
    reloader: ReloadingContext | None = field(default=None, init=False)

    def __call__(self, config: object, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        self.reloader = ReloadingContext(self.cert, self.key, self.on_event)
        return self.reloader.current

    def __getstate__(self) -> dict[str, Any]:
        return {"cert": self.cert, "key": self.key, "on_event": self.on_event, "reloader": None}
