"""Option value types the commands share (argparse ``type=``): one meaning and one error text each."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datetime as dt


def iso_date(value: str) -> dt.date:
    import datetime as dt

    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date (YYYY-MM-DD): {value!r}") from None


def iso_datetime(value: str) -> dt.datetime:
    """An ISO 8601 date-time; ``Z`` is UTC, and so is a time without a zone."""
    import datetime as dt

    try:
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {value!r}") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def positive_float(value: str) -> float:
    try:
        n = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not n > 0:  # also refuses nan
        raise argparse.ArgumentTypeError("must be positive")
    return n


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def megabytes(value: str) -> int:
    """A size in MiB (fractions allowed), as bytes."""
    try:
        n = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of MiB: {value!r}") from None
    if not n > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return int(n * 1024 * 1024)
