"""The terminal report: findings grouped by resource, requirement coverage, and a summary line.

Tables are laid out here rather than with rich's Table: rich spends about a millisecond per row,
which is seconds for a large bundle, while this layout costs microseconds. Colour is ANSI, only
when asked for (a terminal, or --color always).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from factorygate.engine import ScanResult, requirement_statuses
from factorygate.model import Finding, Severity, Status

_RESET = "\x1b[0m"
_STYLE = {
    Severity.CRITICAL.value: "\x1b[1;31m",
    Severity.HIGH.value: "\x1b[31m",
    Severity.MEDIUM.value: "\x1b[33m",
    Severity.LOW.value: "\x1b[36m",
    Severity.INFO.value: "\x1b[2m",
    "fail": "\x1b[31m",
    "error": "\x1b[35m",
    "waived": "\x1b[33m",
    "pass": "\x1b[32m",
    "not_applicable": "\x1b[2m",
    "not_reviewed": "\x1b[34m",
    "bold": "\x1b[1m",
}


class _Painter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, style: str) -> str:
        if not self.color or style not in _STYLE:
            return text
        return f"{_STYLE[style]}{text}{_RESET}"


def _clean(text: str) -> str:
    """Keep manifest-provided text on one line and free of terminal control sequences."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], styles: Sequence[int], paint: _Painter) -> list[str]:
    """Left-aligned columns; the last column is free width. ``styles`` names columns coloured by value."""
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header) - 1)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, [*widths, 0], strict=True)).rstrip()]
    out.append("  ".join("─" * w for w in [*widths, len(header[-1])]))
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            padded = cell.ljust(widths[i]) if i < len(widths) else cell
            cells.append(paint(padded, cell) if i in styles else padded)
        out.append("  ".join(cells).rstrip())
    return out


def _message(f: Finding) -> str:
    msg = _clean(f.message)
    if f.waiver is not None:
        tag = "inline waiver" if f.waiver.source == "inline" else "waiver"
        state = "EXPIRED " if f.waiver.expired else ""
        msg += f" [{state}{tag}: {_clean(f.waiver.approver)}, expires {f.waiver.expires}]"
    return msg


def _row(f: Finding) -> tuple[str, ...]:
    container = _clean(f.container or "-")
    return (f.severity.value, f.status.value, f.check, container, str(f.location.line or ""), _message(f))


def render_text(result: ScanResult, out: TextIO, *, color: bool = False) -> None:
    paint = _Painter(color)
    lines: list[str] = []
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in result.findings:
        if f.status is not Status.PASS:
            who = f.resource.display() if f.resource is not None and f.resource.kind != "Dockerfile" else ""
            groups.setdefault((f.location.file, who), []).append(f)
    header = ("severity", "status", "check", "container", "line", "message")
    for (file, who), findings in groups.items():
        title = f"{_clean(who)}  ({_clean(file)})" if who else _clean(file)
        lines.append(paint(title, "bold"))
        ordered = sorted(findings, key=lambda x: (-x.severity.rank, x.check))
        rows = [_row(f) for f in ordered]
        lines.extend("  " + ln for ln in _table(header, rows, (0, 1), paint))
        lines.append("")
    if getattr(result, "clusters", None):  # `factorygate audit`: coverage and the conformance scorecard
        from factorygate.audit.report import audit_text

        lines += [_clean(ln) for ln in audit_text(result)]
    statuses = requirement_statuses(result)
    lines.append(paint("Requirements", "bold"))
    req_rows = [(rid, statuses[rid], req.ia_control, req.title) for rid, req in result.catalog.requirements.items()]
    lines.extend("  " + ln for ln in _table(("requirement", "status", "NIST", "title"), req_rows, (1,), paint))
    lines.append("")
    counts = Counter(f.status for f in result.findings)
    req_counts = Counter(statuses.values())
    threshold = result.policy.threshold
    blocking = sum(1 for f in result.findings if f.status is Status.FAIL and f.severity >= threshold)
    s = result.stats
    code = result.exit_code()
    verdict = {0: paint("PASS", "pass"), 1: paint("FAIL", "fail"), 2: paint("ERROR", "error")}[code]
    exempt = f", {s.exempt_workloads} exempt" if s.exempt_workloads else ""
    exempt += f"; {s.dockerfiles} Dockerfiles" if s.dockerfiles else ""
    exempt += f"; {s.images} images" if s.images else ""
    lines.append(
        f"{verdict}  {counts[Status.FAIL]} failed ({blocking} at or above {threshold.value}), "
        f"{counts[Status.PASS]} passed, {counts[Status.WAIVED]} waived, {counts[Status.ERROR]} errors; "
        f"{s.workloads} workloads in {s.resources} resources{exempt}; requirements: "
        f"{req_counts['fail']} failing, {req_counts['pass']} passing, {req_counts['waived']} waived, "
        f"{req_counts['not_applicable']} not applicable, {req_counts['not_reviewed']} not reviewed; exit {code}"
    )
    out.write("\n".join(lines))
    out.write("\n")
