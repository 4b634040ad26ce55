"""The terminal report: findings grouped by resource, requirement coverage, and a summary line."""

from __future__ import annotations

from collections import Counter
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from factorygate.engine import ScanResult, requirement_statuses
from factorygate.model import Finding, Severity, Status

_SEVERITY_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
_STATUS_STYLE = {
    "fail": "red",
    "error": "magenta",
    "waived": "yellow",
    "pass": "green",
    "not_applicable": "dim",
    "not_reviewed": "blue",
}


def _group_key(f: Finding) -> tuple[str, str]:
    if f.resource is None:
        return (f.location.file, "")
    return (f.location.file, f.resource.display())


def render_text(result: ScanResult, out: TextIO, *, color: bool = False) -> None:
    console = Console(
        file=out,
        force_terminal=color,
        no_color=not color,
        width=160 if not color else None,
        highlight=False,
        soft_wrap=False,
    )
    shown = [f for f in result.findings if f.status is not Status.PASS]
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in shown:
        groups.setdefault(_group_key(f), []).append(f)
    for (file, who), findings in groups.items():
        title = f"[bold]{escape(who)}[/bold]  {escape(file)}" if who else f"[bold]{escape(file)}[/bold]"
        table = Table(title=title, title_justify="left", show_edge=False, expand=False, pad_edge=False)
        table.add_column("severity")
        table.add_column("status")
        table.add_column("check")
        table.add_column("container")
        table.add_column("line", justify="right")
        table.add_column("message", overflow="fold")
        for f in sorted(findings, key=lambda x: (-x.severity.rank, x.check)):
            msg = escape(f.message)
            if f.waiver is not None:
                tag = "inline waiver" if f.waiver.source == "inline" else "waiver"
                state = "EXPIRED " if f.waiver.expired else ""
                msg += escape(f" [{state}{tag}: {f.waiver.approver}, expires {f.waiver.expires}]")
            table.add_row(
                f"[{_SEVERITY_STYLE[f.severity]}]{f.severity.value}[/]",
                f.status.value,
                f.check,
                escape(f.container or "-"),
                str(f.location.line or ""),
                msg,
            )
        console.print(table)
        console.print()
    statuses = requirement_statuses(result)
    req_table = Table(title="[bold]Requirements[/bold]", title_justify="left", show_edge=False, pad_edge=False)
    req_table.add_column("requirement")
    req_table.add_column("status")
    req_table.add_column("NIST")
    req_table.add_column("title", overflow="fold")
    for rid, req in result.catalog.requirements.items():
        st = statuses[rid]
        req_table.add_row(rid, f"[{_STATUS_STYLE[st]}]{st}[/]", req.ia_control, escape(req.title))
    console.print(req_table)
    console.print()
    counts = Counter(f.status for f in result.findings)
    req_counts = Counter(statuses.values())
    threshold = result.policy.threshold
    blocking = sum(1 for f in shown if f.status is Status.FAIL and f.severity >= threshold)
    s = result.stats
    verdict = {0: "[green]PASS[/]", 1: "[red]FAIL[/]", 2: "[magenta]ERROR[/]"}[result.exit_code()]
    console.print(
        f"{verdict}  {counts[Status.FAIL]} failed ({blocking} at or above {threshold.value}), "
        f"{counts[Status.PASS]} passed, {counts[Status.WAIVED]} waived, {counts[Status.ERROR]} errors; "
        f"{s.workloads} workloads in {s.resources} resources"
        + (f", {s.exempt_workloads} exempt" if s.exempt_workloads else "")
        + f"; requirements: {req_counts['fail']} failing, {req_counts['pass']} passing, "
        f"{req_counts['waived']} waived, {req_counts['not_applicable']} not applicable, "
        f"{req_counts['not_reviewed']} not reviewed"
    )
