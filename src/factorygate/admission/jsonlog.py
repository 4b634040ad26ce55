"""Structured logs: one JSON object per line on stdout, for decisions and for server events.

Decision lines name the object and the verdict (uid, kind, namespace, name, operation, allowed,
failed check ids, dry_run, duration) and never carry the object itself. Each line goes out in one
``write`` so lines from several worker processes sharing stdout do not interleave.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import orjson

MAX_FIELD_CHARS = 512  # a bound on any one string field (names are at most 253 characters in Kubernetes)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)  # built once: per call costs
_second: list[object] = [-1, ""]  # the last whole second formatted, and its text (strftime per line is slow)


def _now() -> str:
    t = time.time()
    whole = int(t)
    if _second[0] != whole:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int(t * 1000) % 1000:03d}Z"


def _bounded(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
        return value[: MAX_FIELD_CHARS - 3] + "..."
    return value


def write_stdout(line: bytes) -> None:
    """Write a whole line to fd 1 (looping over partial writes)."""
    view = memoryview(line)
    while view:
        n = os.write(1, view)
        view = view[n:]


class JsonLines:
    """Writes events as JSON lines through ``sink`` (stdout by default)."""

    def __init__(self, sink: Callable[[bytes], None] = write_stdout) -> None:
        self._sink = sink

    def event(self, fields: dict[str, Any]) -> None:
        record = {"ts": _now(), "pid": os.getpid(), **{k: _bounded(v) for k, v in fields.items()}}
        try:
            line = orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # a lone surrogate in a name (stdlib JSON reads them): replaced, never dropped
            line = (_ENCODER.encode(record) + "\n").encode("utf-8", "replace")
        with contextlib.suppress(OSError):  # stdout closed: the decision stands, the log line is lost
            self._sink(line)


class JsonFormatter(logging.Formatter):
    """For uvicorn's own log records (start-up, shutdown, protocol errors)."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "ts": _now(),
            "pid": record.process,
            "event": "log",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _bounded(record.getMessage()),
        }
        if record.exc_info and record.exc_info[0] is not None:
            fields["exception"] = _bounded(f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
        return _ENCODER.encode(fields)


def log_config(level: str = "info") -> dict[str, Any]:
    """A logging.config dict sending uvicorn's records to stdout as JSON (no access log)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "loggers": {
            "uvicorn": {"handlers": ["stdout"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
