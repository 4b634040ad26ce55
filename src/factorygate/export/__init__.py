"""Exports of the checks to other enforcement points (``factorygate export ...``)."""

from factorygate.export.vap import VapExport, add_export_arguments, export_vap, render, run_export_vap

__all__ = ["VapExport", "add_export_arguments", "export_vap", "render", "run_export_vap"]
