"""Prometheus metrics of the webhook (``/metrics``).

With several worker processes, ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory
before the workers start: each worker then writes its values to files there and a scrape, whichever
worker answers it, adds up all of them.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Around a 10 ms target: fine steps up to 25 ms, then a few coarse ones to see the tail.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    """The counters and the latency histogram, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "factorygate_admission_requests",
            "Requests to /validate by HTTP status code.",
            ["code"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "factorygate_admission_decisions",
            "Admission decisions: allowed, denied (policy failures) or error (denied: could not evaluate).",
            ["decision", "dry_run"],
            registry=self.registry,
        )
        self.evaluation_errors = Counter(
            "factorygate_admission_evaluation_errors",
            "Requests whose evaluation failed; fail_open=true ones were admitted (fail-open namespace).",
            ["fail_open"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "factorygate_admission_duration_seconds",
            "Time from the request body's arrival to the response, for /validate.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._codes: dict[int, Counter] = {}
        self._decisions: dict[tuple[str, bool], Counter] = {}

    def request(self, code: int) -> None:
        child = self._codes.get(code)
        if child is None:
            child = self._codes[code] = self.requests.labels(code=str(code))
        child.inc()

    def decision(self, outcome: str, dry_run: bool, error: bool, allowed: bool) -> None:
        key = (outcome, dry_run)
        child = self._decisions.get(key)
        if child is None:
            child = self._decisions[key] = self.decisions.labels(decision=outcome, dry_run=str(dry_run).lower())
        child.inc()
        if error:
            self.evaluation_errors.labels(fail_open=str(allowed).lower()).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
