"""Renderers: one module per output format, all fed the same ScanResult."""

from __future__ import annotations

import enum
from typing import TextIO

from factorygate.engine import ScanResult


class Format(enum.Enum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    JUNIT = "junit"


def render(result: ScanResult, fmt: Format, out: TextIO, *, color: bool = False) -> None:
    """Write ``result`` to ``out`` in ``fmt`` (renderers are imported lazily: start-up stays fast)."""
    if fmt is Format.TEXT:
        from factorygate.render.text import render_text

        render_text(result, out, color=color)
    elif fmt is Format.JSON:
        from factorygate.render.json_report import render_json

        render_json(result, out)
    elif fmt is Format.SARIF:
        from factorygate.render.sarif import render_sarif

        render_sarif(result, out)
    else:
        from factorygate.render.junit import render_junit

        render_junit(result, out)


__all__ = ["Format", "render"]
