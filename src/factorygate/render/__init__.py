"""Renderers: one module per output format, all fed the same ScanResult."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, TextIO

from factorygate.engine import ScanResult

if TYPE_CHECKING:
    from factorygate.render.evidence import EvidenceOptions
    from factorygate.render.json_report import FindingLines


class Format(enum.Enum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    JUNIT = "junit"
    HTML = "html"
    CKL = "ckl"
    CKLB = "cklb"
    OSCAL = "oscal"
    OSCAL_POAM = "oscal-poam"
    HDF = "hdf"


# The evidence formats for an Authorizing Official (STIG Viewer checklists, OSCAL, Heimdall): module, function.
EVIDENCE_RENDERERS = {
    Format.CKL: ("ckl", "render_ckl"),
    Format.CKLB: ("cklb", "render_cklb"),
    Format.OSCAL: ("oscal", "render_oscal"),
    Format.OSCAL_POAM: ("oscal", "render_oscal_poam"),
    Format.HDF: ("hdf", "render_hdf"),
}


def render(
    result: ScanResult,
    fmt: Format,
    out: TextIO,
    *,
    color: bool = False,
    evidence: EvidenceOptions | None = None,
    ahead: FindingLines | None = None,
) -> None:
    """Write ``result`` to ``out`` in ``fmt`` (renderers are imported lazily: start-up stays fast).
    ``evidence`` carries the asset and the time the evidence formats state; ``ahead``, JSON lines of
    the first findings encoded while the scan ran."""
    if fmt in EVIDENCE_RENDERERS:
        import importlib

        module, function = EVIDENCE_RENDERERS[fmt]
        getattr(importlib.import_module(f"factorygate.render.{module}"), function)(result, out, evidence)
    elif fmt is Format.TEXT:
        from factorygate.render.text import render_text

        render_text(result, out, color=color)
    elif fmt is Format.JSON:
        from factorygate.render.json_report import render_json

        render_json(result, out, ahead)
    elif fmt is Format.SARIF:
        from factorygate.render.sarif import render_sarif

        render_sarif(result, out)
    elif fmt is Format.HTML:
        from factorygate.render.html import render_html

        render_html(result, out)
    else:
        from factorygate.render.junit import render_junit

        render_junit(result, out)


__all__ = ["Format", "render"]
