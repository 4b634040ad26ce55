"""The webhook as an ASGI application (starlette): /validate, /healthz, /readyz, /metrics.

``/validate`` is a plain ASGI endpoint: read the body within a size and time limit, parse it with
``orjson``, decide with the one engine of the process, answer. Anything that is not an
AdmissionReview is a 400 (a 408 for a body that does not arrive in time); an exception escaping the
handler is starlette's 500. The API server treats every non-200 answer as a failed call, which its
``failurePolicy: Fail`` turns into a denial: no path here answers "allowed" without a decision.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from factorygate.admission.jsonlog import JsonLines
from factorygate.admission.metrics import Metrics
from factorygate.admission.review import (
    AdmissionRequest,
    Decision,
    ReviewError,
    decide,
    display_name,
    evaluate,
    object_name,
    parse_review,
    response_body,
    verdict,
)
from factorygate.engine import MAX_CONTAINERS_PER_WORKLOAD, Engine

if TYPE_CHECKING:
    from factorygate.admission.signatures import SignatureVerifier

DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024  # the API server's own limit on a request body
DEFAULT_BODY_TIMEOUT_S = 10.0  # the API server's default webhook timeout
_JSON = [(b"content-type", b"application/json")]
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


@dataclass
class AppOptions:
    """What the application needs besides the engine."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_timeout: float = DEFAULT_BODY_TIMEOUT_S
    follow_clock: bool = True  # rebuild the engine at midnight so waivers expire on their date
    readiness: Callable[[], str | None] = lambda: None  # a reason when not ready (e.g. the certificate expired)
    log: JsonLines = field(default_factory=JsonLines)
    metrics: Metrics = field(default_factory=Metrics)
    signatures: SignatureVerifier | None = None  # --verify-signatures: check img-signed-at-admission too


class _Body(Exception):
    """A request whose body cannot be used: answered with this status and message, then closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Disconnected(Exception):
    """The client went away before sending the whole body."""


class EngineClock:
    """The process's engine, rebuilt when the local date changes (waiver expiry is a date)."""

    def __init__(self, engine: Engine, follow_clock: bool) -> None:
        self.engine = engine
        # A server evaluates one object per request; the per-object bound (containers per workload)
        # applies, and the run-wide finding budget of a scan would otherwise deny everything once
        # the process had produced that many findings in total.
        engine.finding_budget = 2**62
        engine.record_passes = False  # a decision needs failures, waivers and errors only
        self._follow = follow_clock and engine.as_of == dt.date.today()
        self._next = _next_midnight()

    def get(self) -> Engine:
        if self._follow and time.time() >= self._next:
            old = self.engine
            self.engine = Engine(old.catalog, old.policy, as_of=dt.date.today())
            self.engine.finding_budget = old.finding_budget
            self.engine.record_passes = old.record_passes
            self._next = _next_midnight()
        return self.engine


def _next_midnight() -> float:
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time.min).timestamp()


class ValidateEndpoint:
    """POST /validate: an AdmissionReview in, an AdmissionReview out."""

    def __init__(self, engines: EngineClock, options: AppOptions) -> None:
        self.engines = engines
        self.options = options
        self.metrics = options.metrics
        self.log = options.log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            body = await self._read(scope, receive)
            req = parse_review(body)
        except _Disconnected:
            return
        except _Body as e:
            await self._reject(send, e.status, e.message)
            return
        except ReviewError as e:
            await self._reject(send, 400, str(e))
            return
        verifier = self.options.signatures
        if verifier is None:
            decision = decide(self.engines.get(), req)
        else:
            decision = await _with_signatures(self.engines.get(), req, verifier)
        payload = orjson.dumps(response_body(req.uid, decision))
        await send({"type": "http.response.start", "status": 200, "headers": [*_JSON, _length(payload)]})
        await send({"type": "http.response.body", "body": payload})
        elapsed = time.perf_counter() - started
        self.metrics.request(200)
        self.metrics.latency.observe(elapsed)
        self.metrics.decision(decision.outcome, req.dry_run, decision.error is not None, decision.allowed)
        self._log(req, decision, elapsed)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.options.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise _Body(400, f"request body of {int(value):,} bytes is over the limit of {limit:,} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.options.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Disconnected
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        raise _Body(400, f"request body is over the limit of {limit:,} bytes")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise _Body(408, f"request body not received within {self.options.body_timeout:g} s") from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _reject(self, send: Send, status: int, message: str) -> None:
        body = f"factorygate: {message}\n".encode()
        headers = [*_TEXT, _length(body), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.metrics.request(status)
        self.log.event({"event": "bad_request", "status": status, "error": message})

    def _log(self, req: AdmissionRequest, decision: Decision, elapsed: float) -> None:
        fields: dict[str, object] = {
            "event": "admission",
            "uid": req.uid,
            "kind": req.kind,
            "namespace": req.namespace,
            "name": object_name(req),
            "operation": req.operation,
            "allowed": decision.allowed,
            "decision": decision.outcome,
            "reason": decision.reason,
            "failed": list(decision.failed),
            "warned": list(decision.warned),
            "dry_run": req.dry_run,
            "duration_ms": round(elapsed * 1000, 3),
        }
        if req.sub_resource:
            fields["subresource"] = req.sub_resource
        if decision.error is not None:
            fields["error"] = decision.error
        self.log.event(fields)


async def _with_signatures(engine: Engine, req: AdmissionRequest, verifier: SignatureVerifier) -> Decision:
    """The per-object checks, then (for an evaluated workload) its images' signatures, then the verdict."""
    from factorygate.admission import signatures
    from factorygate.facts.workload import workload_from

    result = evaluate(engine, req)
    if isinstance(result, Decision):
        return result  # skipped, exempt namespace, or an evaluation error: as without verification
    subject, found = result
    workload = workload_from(subject, False)
    if workload is None or not signatures.applies(engine) or len(workload.containers) > MAX_CONTAINERS_PER_WORKLOAD:
        return verdict(engine, req, found)
    verdicts = await verifier.verdicts(workload)
    more = signatures.findings(engine, workload, display_name(req), verdicts)
    return verdict(engine, req, [*found, *more])


def _length(body: bytes) -> tuple[bytes, bytes]:
    return (b"content-length", str(len(body)).encode())


def build_app(engine: Engine, options: AppOptions | None = None) -> Starlette:
    """The webhook application around one engine (one per process)."""
    opts = options or AppOptions()
    engines = EngineClock(engine, opts.follow_clock)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        problem = opts.readiness()
        if problem is not None:
            return PlainTextResponse(f"not ready: {problem}\n", status_code=503)
        return PlainTextResponse("ready\n")

    async def metrics(request: Request) -> Response:
        body, content_type = opts.metrics.render()
        return Response(body, media_type=content_type)

    routes = [
        Route("/validate", ValidateEndpoint(engines, opts), methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    return Starlette(routes=routes)
