"""`factorygate vulns merge|gate`: scanner reports (and the offline OSV matcher) into one decision.

    factorygate vulns merge trivy.json grype.json -o merged.json
    factorygate vulns gate trivy.json grype.json --justifications just.yaml --decision go.json
    factorygate vulns gate trivy.json --sbom app.cdx.json --osv /mirror/osv --two-scanners

`gate` exits 0 (go) or 1 (no-go) and prints the reasons; 2 when an input cannot be read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from factorygate.vulns.merge import MergedFinding, MergeResult, merge
from factorygate.vulns.model import SEVERITIES, Observation


def _finding_json(f: MergedFinding) -> dict[str, Any]:
    p = f.package
    return {
        "id": f.id,
        "aliases": list(f.aliases),
        "package": {"name": p.name, "version": p.version, "type": p.type, "purl": p.purl},
        "severity": f.severity,
        "severity_by_scanner": f.severity_by_scanner,
        "fixed_versions": list(f.fixed_versions),
        "scanners": list(f.scanners),
        "title": f.title,
    }


def merged_json(result: MergeResult) -> dict[str, Any]:
    """The merged view: every finding once, what only one scanner saw, where scanners disagree."""
    return {
        "scanners": list(result.scanners),
        "summary": {s: sum(1 for f in result.findings if f.severity == s) for s in reversed(SEVERITIES)},
        "findings": [_finding_json(f) for f in result.findings],
        "only_in": {
            s: [f"{f.id} {f.package.name}@{f.package.version}" for f in fs] for s, fs in result.only_in.items()
        },
        "severity_conflicts": [
            {"id": f.id, "package": f.package.name, "severity_by_scanner": f.severity_by_scanner}
            for f in result.severity_conflicts
        ],
    }


def _observations(args: argparse.Namespace) -> tuple[list[Observation], list[str]]:
    """Observations from every report, plus the built-in OSV matcher when --sbom and --osv are given."""
    from factorygate.vulns.reports import load_report

    observations: list[Observation] = []
    scanners: list[str] = []
    for path in args.reports:
        found = load_report(path)
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


def _write(doc: dict[str, Any], path: str | None) -> None:
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if path:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)


def add_vulns_arguments(action: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", nargs="*", metavar="REPORT", help="Trivy JSON, Grype JSON or CycloneDX 1.4+ VEX")
    parser.add_argument("--sbom", metavar="FILE", help="CycloneDX SBOM (factorygate image --sbom) for the OSV matcher")
    parser.add_argument("--osv", metavar="DIR", help="OSV mirror (directory of JSON files or ecosystem zips)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write the JSON to FILE instead of stdout")
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
        _write(merged_json(result), args.output)
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
    _write(decision.to_json(), args.output)
    verdict = "GO" if decision.go else "NO-GO"
    print(f"factorygate: {verdict}", file=sys.stderr)
    for reason in decision.reasons:
        print(f"  {reason}", file=sys.stderr)
    return 0 if decision.go else 1
