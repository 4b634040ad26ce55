"""``factorygate admission serve``: the validating webhook over HTTPS, on uvicorn.

The process loads the catalog, the policy and the certificate first (a bad one stops it with one
line), binds the listening socket itself, then runs uvicorn on that socket: in-process with one
worker, or under uvicorn's supervisor with ``--workers N`` (spawned processes accepting on the same
socket, restarted when they die; metrics are added up across them). SIGTERM and SIGINT stop
accepting, let requests in flight finish (up to ``--graceful-timeout``) and exit 0.

Wiring for the CLI::

    serve = admission_subparsers.add_parser("serve", help=...)
    add_serve_arguments(serve)
    ...
    return run_serve(args)  # raises FactorygateError for a bad policy, certificate or address
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from factorygate.admission.app import DEFAULT_BODY_TIMEOUT_S, DEFAULT_MAX_BODY_BYTES, AppOptions, build_app
from factorygate.admission.jsonlog import JsonLines, log_config
from factorygate.admission.metrics import MULTIPROC_ENV, Metrics
from factorygate.admission.protocol import GuardedH11Protocol
from factorygate.admission.signatures import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_TAG_TTL_S,
    DEFAULT_TIMEOUT_S,
    DEFAULT_VERIFIED_TTL_S,
    SignatureOptions,
    SignatureVerifier,
    load_trusted_keys,
)
from factorygate.admission.tls import ContextFactory, ReloadingContext
from factorygate.argtypes import megabytes, positive_float
from factorygate.errors import FactorygateError
from factorygate.model import Severity

DEFAULT_PORT = 8443
STARTUP_FAILURE = 3  # uvicorn's exit code for a worker that cannot start: its supervisor then stops
MAX_WORKERS = 64
SEVERITIES = tuple(s.value for s in Severity)


class ServeError(FactorygateError):
    """The server cannot start: bad options, or the address is not available."""


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``serve`` needs; picklable (worker processes receive it)."""

    tls_cert: str
    tls_key: str
    host: str = "0.0.0.0"  # noqa: S104 - a webhook in a pod listens on the pod's address
    port: int = DEFAULT_PORT
    policy: str | None = None
    threshold: str | None = None
    workers: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_timeout: float = DEFAULT_BODY_TIMEOUT_S
    keep_alive: float = 5.0
    max_connections: int = 1000
    graceful_timeout: float = 15.0
    log_level: str = "info"
    signatures: SignatureOptions | None = None  # --verify-signatures


@dataclass
class AppFactory:
    """uvicorn's application factory (``factory=True``), called once in each worker process."""

    options: ServeOptions
    tls: ContextFactory

    def __call__(self) -> Any:
        try:
            engine = _engine(self.options)
        except FactorygateError as e:  # checked before the workers started: only a changed file gets here
            JsonLines().event({"event": "startup_failed", "error": e.diagnostics()})
            sys.exit(STARTUP_FAILURE)
        opts = AppOptions(
            max_body_bytes=self.options.max_body_bytes,
            body_timeout=self.options.body_timeout,
            readiness=self._readiness,
            metrics=Metrics(),
        )
        if self.options.signatures is not None:
            try:
                opts.signatures = _verifier(engine, self.options.signatures)
            except FactorygateError as e:  # checked before the workers started: only a changed key file gets here
                JsonLines().event({"event": "startup_failed", "error": e.diagnostics()})
                sys.exit(STARTUP_FAILURE)
        return build_app(engine, opts)

    def _readiness(self) -> str | None:
        reloader = self.tls.reloader
        if reloader is None:
            return "TLS is not set up"
        if reloader.info.expired():
            return f"the serving certificate expired at {reloader.info.not_after.isoformat()}"
        return None


def _engine(options: ServeOptions) -> Any:
    from factorygate.catalog import load_catalog
    from factorygate.engine import Engine
    from factorygate.policy import load_policy

    catalog = load_catalog()
    policy = load_policy(options.policy, set(catalog.checks))
    if options.threshold:
        policy = policy.with_threshold(Severity(options.threshold))
    return Engine(catalog, policy, as_of=dt.date.today())


def _verifier(engine: Any, options: SignatureOptions) -> SignatureVerifier:
    """The signature verifier over the policy's trusted keys (SignatureSetupError when there are none)."""
    return SignatureVerifier(load_trusted_keys(engine.policy.parameters.trusted_signing_keys), options)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: asyncio sets TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _check(options: ServeOptions) -> None:
    if not 1 <= options.workers <= MAX_WORKERS:
        raise ServeError(f"--workers must be between 1 and {MAX_WORKERS}")
    if not 0 <= options.port <= 65535:
        raise ServeError("--port must be between 0 and 65535")
    if options.threshold is not None and options.threshold not in SEVERITIES:
        raise ServeError(f"--threshold must be one of {', '.join(SEVERITIES)}")
    for name in ("max_body_bytes", "body_timeout", "keep_alive", "max_connections"):
        if getattr(options, name) <= 0:
            raise ServeError(f"--{name.replace('_', '-')} must be positive")
    sig = options.signatures
    if sig is not None:
        if sig.timeout <= 0 or sig.verified_ttl < 0 or sig.tag_ttl < 0 or sig.cache_size < 0:
            raise ServeError("--signature-timeout must be positive; cache TTLs and size must not be negative")
        for entry in sig.registry.insecure_registries:
            from factorygate.oci.registry import check_insecure_registry

            check_insecure_registry(entry)


def serve(options: ServeOptions) -> int:
    """Run the webhook until SIGTERM or SIGINT; 0 after a graceful stop."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    _check(options)
    log = JsonLines()
    engine = _engine(options)  # a bad policy stops here, before anything listens
    if options.signatures is not None:
        _verifier(engine, options.signatures)  # so do missing or unreadable trusted keys
    ReloadingContext(options.tls_cert, options.tls_key)  # so does a bad certificate or key
    sock = _bind(options.host, options.port)
    tls = ContextFactory(options.tls_cert, options.tls_key, on_event=log.event)
    config = uvicorn.Config(
        AppFactory(options, tls),
        factory=True,
        http=GuardedH11Protocol,
        loop="asyncio",
        lifespan="off",
        ssl_context_factory=tls,
        workers=options.workers,
        log_config=log_config(options.log_level),
        access_log=False,
        server_header=False,
        timeout_keep_alive=max(1, round(options.keep_alive)),
        limit_concurrency=options.max_connections,
        timeout_graceful_shutdown=max(1, round(options.graceful_timeout)),
    )
    host, port = sock.getsockname()[:2]
    log.event({"event": "listening", "host": host, "port": port, "workers": options.workers, "scheme": "https"})
    if options.workers == 1:
        with _quiet_signals():
            uvicorn.Server(config).run(sockets=[sock])
    else:
        metrics_dir = tempfile.mkdtemp(prefix="factorygate-metrics-")
        previous = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = metrics_dir
        try:
            Multiprocess(config, sockets=[sock]).run()
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            if previous is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous
            sock.close()
    log.event({"event": "stopped"})
    return 0


@contextlib.contextmanager
def _quiet_signals() -> Iterator[None]:
    """uvicorn re-raises the stopping signal once it has shut down: let that be a no-op, not a death."""

    def ignore(signum: int, frame: FrameType | None) -> None:
        return

    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only (and uvicorn then installs none either)
        return
    old = {s: signal.signal(s, ignore) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _non_negative_float(value: str) -> float:
    try:
        n = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not n >= 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return n


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``factorygate admission serve``."""
    parser.add_argument("--tls-cert", required=True, metavar="FILE", help="PEM certificate (chain); reloaded on change")
    parser.add_argument("--tls-key", required=True, metavar="FILE", help="PEM private key; reloaded on change")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")  # noqa: S104
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks one)")
    parser.add_argument("--policy", "-p", metavar="FILE", help="policy file (default: the packaged default policy)")
    parser.add_argument("--threshold", choices=SEVERITIES, help="override the policy's fail threshold")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default 1)")
    parser.add_argument(
        "--max-body-size",
        type=megabytes,
        default=DEFAULT_MAX_BODY_BYTES,
        metavar="MiB",
        help="refuse AdmissionReview bodies larger than this with a 400 (default 3, the API server's limit)",
    )
    parser.add_argument(
        "--request-timeout",
        type=positive_float,
        default=DEFAULT_BODY_TIMEOUT_S,
        metavar="S",
        help="seconds to receive a request body before answering 408 (default 10)",
    )
    parser.add_argument(
        "--keep-alive",
        type=positive_float,
        default=5.0,
        metavar="S",
        help="close a connection idle, or still sending request headers, for this long (default 5)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        metavar="N",
        help="per worker; beyond it requests get 503 (default 1000)",
    )
    parser.add_argument(
        "--graceful-timeout",
        type=positive_float,
        default=15.0,
        metavar="S",
        help="on SIGTERM, wait this long for requests in flight (default 15)",
    )
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    sig = parser.add_argument_group("image signatures (check img-signed-at-admission)")
    sig.add_argument(
        "--verify-signatures",
        action="store_true",
        help="verify a cosign signature of every container image with the policy's trusted_signing_keys "
        "(needs registry access; off by default)",
    )
    sig.add_argument(
        "--signature-timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"deny when one request's images are not verified within this time (default {DEFAULT_TIMEOUT_S:g}; "
        "keep it below the webhook's timeoutSeconds)",
    )
    sig.add_argument(
        "--signature-cache-ttl",
        type=_non_negative_float,
        default=DEFAULT_VERIFIED_TTL_S,
        metavar="S",
        help=f"remember a verified digest this long (default {DEFAULT_VERIFIED_TTL_S:g}; 0: no cache)",
    )
    sig.add_argument(
        "--tag-cache-ttl",
        type=_non_negative_float,
        default=DEFAULT_TAG_TTL_S,
        metavar="S",
        help=f"remember the digest a tag names this long (default {DEFAULT_TAG_TTL_S:g}; 0: resolve every time)",
    )
    sig.add_argument(
        "--signature-cache-size",
        type=int,
        default=DEFAULT_CACHE_SIZE,
        metavar="N",
        help=f"entries per cache, least recently used evicted (default {DEFAULT_CACHE_SIZE})",
    )
    from factorygate.oci.registry_args import add_registry_arguments

    add_registry_arguments(parser, "allow plain HTTP to this loopback registry (signature lookups)")


def signature_options(args: argparse.Namespace) -> SignatureOptions | None:
    """The --verify-signatures settings (None when off)."""
    if not args.verify_signatures:
        return None
    from factorygate.oci.registry_args import registry_options

    return SignatureOptions(
        registry=registry_options(args),
        verified_ttl=args.signature_cache_ttl,
        tag_ttl=args.tag_cache_ttl,
        cache_size=args.signature_cache_size,
        timeout=args.signature_timeout,
    )


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        host=args.host,
        port=args.port,
        policy=args.policy,
        threshold=args.threshold,
        workers=args.workers,
        max_body_bytes=args.max_body_size,
        body_timeout=args.request_timeout,
        keep_alive=args.keep_alive,
        max_connections=args.max_connections,
        graceful_timeout=args.graceful_timeout,
        log_level=args.log_level,
        signatures=signature_options(args),
    )


def run_serve(args: argparse.Namespace) -> int:
    """The CLI handler: parsed arguments in, exit status out (FactorygateError for the CLI to print)."""
    return serve(options_from_args(args))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m factorygate.admission.server ARGS``: the same as ``factorygate admission serve``."""
    parser = argparse.ArgumentParser(
        prog="factorygate admission serve", description="The factorygate validating admission webhook (HTTPS)."
    )
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_serve(args)
    except FactorygateError as e:
        print(f"factorygate: {e.diagnostics()}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # Through the imported module, so that worker processes unpickle factorygate.admission.server.*
    from factorygate.admission.server import main as _main

    sys.exit(_main())
