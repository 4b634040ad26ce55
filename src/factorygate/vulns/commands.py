"""`factorygate vulns merge|scan|gate|vex`: scanner reports (and the offline OSV matcher) into one decision.

    factorygate vulns merge trivy.json grype.json -o merged.json
    factorygate vulns scan app.cdx.json --osv /mirror/osv --fail-on high
    factorygate vulns scan app.cdx.json --osv /mirror/osv -f cyclonedx -o osv.cdx.json
    factorygate vulns gate trivy.json grype.json --justifications just.yaml -o decision.json
    factorygate vulns gate trivy.json --sbom app.cdx.json --osv /mirror/osv --two-scanners

`gate` exits 0 (go) or 1 (no-go) and prints the reasons; `scan --fail-on SEVERITY` exits 1 when a
finding is at or above it; every command exits 2 when an input cannot be read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from factorygate.argtypes import megabytes
from factorygate.vulns.merge import MergeResult, merge
from factorygate.vulns.model import SEVERITIES, Observation
from factorygate.vulns.output import FORMATS, merged_json
from factorygate.vulns.reports import DEFAULT_MAX_BYTES

MIB = 1024 * 1024
# The evidence formats of `scan` and `report` (STIG Viewer checklists, OSCAL, Heimdall), for merge and gate.
EVIDENCE_FORMATS = ("ckl", "cklb", "oscal", "oscal-poam", "hdf")


def _observations(args: argparse.Namespace) -> tuple[list[Observation], list[str]]:
    """Observations from every report, plus the built-in OSV matcher when --sbom and --osv are given."""
    from factorygate.vulns.reports import load_report

    observations: list[Observation] = []
    scanners: list[str] = []
    for path in args.reports:
        found = load_report(path, max_bytes=args.max_report_size)
        observations.extend(found)
        scanners.extend({o.scanner for o in found} or {f"(no findings) {path}"})
    if getattr(args, "sbom", None) or getattr(args, "osv", None):
        if not (args.sbom and args.osv):
            raise SystemExit("factorygate: --sbom and --osv go together (the built-in OSV matcher)")
        from factorygate.vulns.osv import load_osv, packages_from_sbom

        packages = packages_from_sbom(args.sbom)
        db = load_osv(args.osv, only=packages)
        for problem in db.problems:
            print(f"factorygate: warning: {problem}", file=sys.stderr)
        observations.extend(db.match(packages, target=args.sbom))
        scanners.append("factorygate-osv")
    return observations, sorted(set(scanners))


def _write(doc: dict[str, Any] | str, path: str | None) -> None:
    text = doc if isinstance(doc, str) else json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if path:
        with open(path, "w", encoding="utf-8", newline="") as out:
            out.write(text)
    else:
        sys.stdout.write(text)


def _severity(value: str) -> str:
    word = value.strip().lower()
    if word not in SEVERITIES:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(SEVERITIES)}")
    return word


def add_vulns_arguments(action: str, parser: argparse.ArgumentParser) -> None:
    if action == "scan":
        parser.add_argument("sbom", metavar="SBOM", help="CycloneDX JSON SBOM (factorygate image --sbom, syft, ...)")
        parser.add_argument("--osv", metavar="DIR", required=True, help="OSV mirror (directory of JSON files or zips)")
        parser.add_argument(
            "--format",
            "-f",
            choices=("text", "json", "sarif", "csv", "html", "cyclonedx", *EVIDENCE_FORMATS),
            default="text",
            help="report format (cyclonedx: a CycloneDX 1.5 BOM with vulnerabilities, for vulns merge/gate)",
        )
        parser.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
        parser.add_argument(
            "--fail-on",
            type=_severity,
            metavar="SEVERITY",
            help="exit 1 when a finding is at or above this severity (low, medium, high, critical)",
        )
        return
    parser.add_argument("reports", nargs="*", metavar="REPORT", help="Trivy JSON, Grype JSON or CycloneDX 1.4+ VEX")
    parser.add_argument("--sbom", metavar="FILE", help="CycloneDX SBOM (factorygate image --sbom) for the OSV matcher")
    parser.add_argument("--osv", metavar="DIR", help="OSV mirror (directory of JSON files or ecosystem zips)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    parser.add_argument(
        "--max-report-size",
        type=megabytes,
        default=DEFAULT_MAX_BYTES,
        metavar="MiB",
        help=f"refuse a scanner report larger than this (default {DEFAULT_MAX_BYTES // MIB} MiB)",
    )
    if action in ("merge", "gate"):
        parser.add_argument(
            "--format",
            "-f",
            choices=(*FORMATS, *EVIDENCE_FORMATS),
            default="json",
            help="report format (default json); ckl, cklb, oscal, oscal-poam and hdf as for `factorygate report`",
        )
    if action == "vex":
        parser.add_argument("--justifications", "-j", metavar="FILE", required=True, help="justifications file")
        parser.add_argument("--format", "-f", choices=("openvex", "cyclonedx"), default="openvex")
        parser.add_argument("--author", default="factorygate", help="the VEX document's author")
        parser.add_argument("--image", metavar="REF", help="the image (for image-scoped justifications)")
        parser.add_argument("--as-of", metavar="YYYY-MM-DD", help="evaluate expiry as of this date (default today)")
    if action == "gate":
        parser.add_argument("--justifications", "-j", metavar="FILE", help="justifications file (YAML)")
        parser.add_argument(
            "--block", default="critical,high", metavar="SEVERITIES", help="unjustified severities that block"
        )
        parser.add_argument("--max-fix-age", type=int, metavar="DAYS", help="block unjustified fixes older than this")
        parser.add_argument("--two-scanners", action="store_true", help="no-go unless at least two scanners ran")
        parser.add_argument("--image", metavar="REF", help="the image being gated (for image-scoped justifications)")
        parser.add_argument("--as-of", metavar="YYYY-MM-DD", help="evaluate expiry as of this date (default today)")


def run_vulns(args: argparse.Namespace) -> int:
    from factorygate.vulns.model import VulnInputError

    if args.action == "scan":
        return _scan(args)
    try:
        observations, scanners = _observations(args)
    except VulnInputError as e:
        print(f"factorygate: {e}", file=sys.stderr)
        return 2
    if not args.reports and not args.sbom:
        print("factorygate: give at least one scanner report, or --sbom and --osv", file=sys.stderr)
        return 2
    result = merge(observations, scanners=scanners)
    if args.action == "merge":
        _write(_render_merged(result, args.format), args.output)
        return 0
    if args.action == "vex":
        return _vex(args, result)
    return _gate(args, result)


def _vex(args: argparse.Namespace, result: MergeResult) -> int:
    """The active justifications that cover these findings, as OpenVEX or CycloneDX VEX."""
    from factorygate.vulns.justify import load_justifications
    from factorygate.vulns.model import VulnInputError
    from factorygate.vulns.vex import cyclonedx_vex, openvex

    try:
        book = load_justifications(args.justifications)
        as_of = dt.date.fromisoformat(args.as_of) if args.as_of else dt.date.today()
    except (VulnInputError, ValueError) as e:
        print(f"factorygate: {e}", file=sys.stderr)
        return 2
    make = openvex if args.format == "openvex" else cyclonedx_vex
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    _write(make(book, result.findings, args.author, now, as_of=as_of, image=args.image), args.output)
    return 0


def _gate(args: argparse.Namespace, result: MergeResult) -> int:
    from factorygate.vulns.gate import GatePolicy, decide, digest_inputs
    from factorygate.vulns.justify import JustificationBook, load_justifications
    from factorygate.vulns.model import VulnInputError

    try:
        book = load_justifications(args.justifications) if args.justifications else JustificationBook()
        policy = GatePolicy(
            block_severities=tuple(s.strip() for s in args.block.split(",") if s.strip()),
            max_fix_age_days=args.max_fix_age,
            require_two_scanners=args.two_scanners,
        )
        as_of = dt.date.fromisoformat(args.as_of) if args.as_of else dt.date.today()
    except (VulnInputError, ValueError) as e:
        print(f"factorygate: {e}", file=sys.stderr)
        return 2
    paths = [*args.reports, *(p for p in (args.sbom, args.justifications) if p)]
    decision = decide(
        result.findings, book, policy, digest_inputs(paths), as_of, image=args.image, scanners=result.scanners
    )
    from factorygate.vulns.output import decision_csv, decision_sarif, decision_text

    if args.format == "text":
        _write(decision_text(decision), args.output)
    elif args.format in EVIDENCE_FORMATS:
        _write(evidence_text(decision.to_json(), args.format), args.output)
    elif args.format == "html":
        _write(_html(decision.to_json()), args.output)
    elif args.format == "sarif":
        _write(decision_sarif(decision, result.findings), args.output)
    elif args.format == "csv":
        _write(decision_csv(decision), args.output)
    else:
        _write(decision.to_json(), args.output)
    verdict = "GO" if decision.go else "NO-GO"
    print(f"factorygate: {verdict}", file=sys.stderr)
    for reason in decision.reasons:
        print(f"  {reason}", file=sys.stderr)
    return 0 if decision.go else 1


def _render_merged(result: MergeResult, fmt: str) -> dict[str, Any] | str:
    from factorygate.vulns.output import merged_csv, merged_sarif, merged_text

    if fmt == "text":
        return merged_text(result)
    if fmt == "sarif":
        return merged_sarif(result)
    if fmt == "csv":
        return merged_csv(result)
    if fmt == "html":
        return _html(merged_json(result))
    if fmt in EVIDENCE_FORMATS:
        return evidence_text(merged_json(result), fmt)
    return merged_json(result)


def evidence_text(doc: dict[str, Any], fmt: str, source: str = "") -> str:
    """A gate decision or a merge list in an evidence format: the same code path as `factorygate report`
    with that one document (a result of no scan findings whose only section is this document)."""
    import io

    from factorygate.catalog import load_catalog
    from factorygate.engine import ScanStats
    from factorygate.policy.schema import Policy
    from factorygate.release import ReleaseResult, vuln_section
    from factorygate.render import Format, render
    from factorygate.render.evidence import EvidenceOptions

    section = vuln_section(doc, source)
    as_of = dt.date.fromisoformat(section.as_of) if section.as_of else dt.date.today()
    result = ReleaseResult(
        findings=[],
        catalog=load_catalog(),
        policy=Policy.default(),
        inputs=list(section.inputs) or [source or "vulns"],
        stats=ScanStats(),
        as_of=as_of,
        vulnerabilities=[section],
        scan_requirements=False,
    )
    out = io.StringIO()
    render(result, Format(fmt), out, evidence=EvidenceOptions())
    return out.getvalue()


def _html(doc: dict[str, Any]) -> str:
    """A merge document or a gate decision as the project's self-contained HTML page."""
    import io

    from factorygate.render.html import render_vulns_html

    out = io.StringIO()
    render_vulns_html(doc, out)
    return out.getvalue()


def _scan(args: argparse.Namespace) -> int:
    """The built-in matcher as a scanner of its own: an SBOM against an OSV mirror, offline."""
    from factorygate.vulns.model import VulnInputError
    from factorygate.vulns.osv import SCANNER, load_osv, read_sbom
    from factorygate.vulns.output import scan_cyclonedx

    try:
        sbom = read_sbom(args.sbom)
        db = load_osv(args.osv, only=sbom.packages)
    except VulnInputError as e:
        print(f"factorygate: {e}", file=sys.stderr)
        return 2
    for problem in db.problems:
        print(f"factorygate: warning: {problem}", file=sys.stderr)
    observations = db.match(sbom.packages, target=args.sbom)
    result = merge(observations, scanners=[SCANNER])
    if args.format == "cyclonedx":
        _write(scan_cyclonedx(observations, sbom.subject, dt.datetime.now(dt.UTC)), args.output)
    else:
        _write(_render_merged(result, args.format), args.output)
    if args.fail_on is None:
        return 0
    floor = SEVERITIES.index(args.fail_on)
    failing = [f for f in result.findings if SEVERITIES.index(f.severity) >= floor]
    if failing:
        print(f"factorygate: {len(failing)} findings at or above {args.fail_on} (--fail-on)", file=sys.stderr)
        return 1
    return 0
