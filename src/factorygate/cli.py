"""The ``factorygate`` command line. Thin: parse arguments, call the core, render.

Heavy modules (pydantic, rich, the engine) are imported inside the command functions so that
``factorygate --version`` and ``--help`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from factorygate import __version__
from factorygate.argtypes import iso_date, iso_datetime, megabytes

if TYPE_CHECKING:
    from factorygate.engine import Engine, ScanResult
    from factorygate.render.evidence import EvidenceOptions
    from factorygate.render.json_report import FindingLines

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
FORMATS = ("text", "json", "sarif", "junit", "html", "ckl", "cklb", "oscal", "oscal-poam", "hdf")
SEVERITIES = ("info", "low", "medium", "high", "critical")
DEFAULT_POLICY_FILE = "factorygate-policy.yaml"


def _lazy_parsers(sub: Any, words: Sequence[str]) -> None:
    """`admission serve|manifests`, `export vap` and `vulns merge|scan|gate|vex`. Their option tables live
    with their code (which imports uvicorn, starlette, ...), so they are added only when that command
    is on the line:
    `factorygate --version` and `scan` do not pay for them."""
    admission = sub.add_parser("admission", help="the validating admission webhook: serve it, or print its manifests")
    export = sub.add_parser(
        "export", help="export the policy for other enforcers (Kubernetes ValidatingAdmissionPolicy)"
    )
    vulns = sub.add_parser("vulns", help="merge two scanners' findings, match an SBOM offline, gate the release")
    if words[:1] == ["vulns"]:
        v_actions = vulns.add_subparsers(dest="action", metavar="ACTION", required=True)
        from factorygate.vulns.commands import add_vulns_arguments

        for name, text in (
            ("merge", "merge scanner reports (Trivy, Grype, CycloneDX) into one de-duplicated list"),
            ("scan", "match an SBOM against an offline OSV mirror: the built-in scanner (exit 1 with --fail-on)"),
            ("gate", "go/no-go: unjustified findings against the gate policy (exit 0 go, 1 no-go)"),
            ("vex", "the justifications that cover these findings as OpenVEX or CycloneDX VEX"),
        ):
            add_vulns_arguments(name, v_actions.add_parser(name, help=text))
    if words[:1] == ["admission"]:
        actions = admission.add_subparsers(dest="action", metavar="ACTION", required=True)
        serve = actions.add_parser("serve", help="run the webhook (HTTPS, /validate, /healthz, /readyz, /metrics)")
        manifests = actions.add_parser("manifests", help="print the Kubernetes objects that run the webhook")
        if words[1:2] == ["serve"]:
            from factorygate.admission.server import add_serve_arguments

            add_serve_arguments(serve)
        elif words[1:2] == ["manifests"]:
            from factorygate.admission.manifests import add_manifest_arguments

            add_manifest_arguments(manifests)
    elif words[:1] == ["export"]:
        targets = export.add_subparsers(dest="action", metavar="TARGET", required=True)
        vap = targets.add_parser("vap", help="ValidatingAdmissionPolicy + bindings with CEL for the Kubernetes checks")
        if words[1:2] == ["vap"]:
            from factorygate.export.vap import add_export_arguments

            add_export_arguments(vap)


def _cmd_admission(args: argparse.Namespace) -> int:
    if args.action == "serve":
        from factorygate.admission.server import run_serve

        return run_serve(args)
    from factorygate.admission.manifests import run_manifests

    return run_manifests(args)


def _cmd_vulns(args: argparse.Namespace) -> int:
    from factorygate.vulns.commands import run_vulns

    return run_vulns(args)


def _cmd_export(args: argparse.Namespace) -> int:
    from factorygate.export.vap import run_export_vap

    return run_export_vap(args)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="factorygate",
        description="Security gates for the DoD Enterprise DevSecOps reference designs: checks Kubernetes "
        "manifests, Dockerfiles and built images against the DISA Container Image Creation and Deployment Guide "
        "and the Pod Security Standards, in CI and at admission.",
    )
    parser.add_argument("--version", action="version", version=f"factorygate {__version__}")
    # prog given: argparse would otherwise build a help formatter, whose first use imports shutil (and
    # with it bz2, lzma) to learn the terminal width, on every run
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", prog="factorygate")

    words = [a for a in argv if not a.startswith("-")]
    command = words[0] if words else None
    # Only the command on the line gets its option table (argparse tables cost start-up time); the
    # others are listed with their help line.
    for name, text, add in _COMMANDS[:3]:
        p = sub.add_parser(name, help=text)
        if command == name:
            add(p)

    _lazy_parsers(sub, words)

    for name, text, add in _COMMANDS[3:]:
        p = sub.add_parser(name, help=text)
        if command == name:
            add(p)
    for name, (module, text) in _MODULE_COMMANDS.items():
        p = sub.add_parser(name, help=text)
        if command == name:
            importlib.import_module(module).add_arguments(name, p)
    return parser


def _scan_arguments(scan: argparse.ArgumentParser) -> None:
    scan.add_argument("paths", nargs="+", metavar="PATH", help="file, directory (recursive) or - for stdin")
    _report_options(scan)
    scan.add_argument(
        "--kustomize",
        choices=("auto", "never"),
        default="auto",
        help="render directories holding kustomization.yaml with `kubectl kustomize` (auto) or read "
        "their files as plain manifests (never)",
    )
    scan.add_argument(
        "--type",
        choices=("auto", "kubernetes", "dockerfile"),
        default="auto",
        help="what the inputs are (auto: Dockerfile/Containerfile by name, else Kubernetes YAML/JSON)",
    )
    scan.add_argument(
        "--max-file-size",
        type=megabytes,
        default=32 * 1024 * 1024,
        metavar="MiB",
        help="refuse inputs larger than this (default 32)",
    )
    scan.add_argument(
        "--jobs",
        "-j",
        type=int,
        metavar="N",
        help="worker processes (default: the CPUs available, at most 8; 1 scans in one process)",
    )


def _image_arguments(image: argparse.ArgumentParser) -> None:
    image.add_argument(
        "refs", nargs="+", metavar="REF", help="DIR[:TAG], FILE.tar[:TAG] or host[:port]/repo[:tag][@digest]"
    )
    _report_options(image)
    image.add_argument("--platform", default="linux/amd64", help="OS/ARCH[/VARIANT] to pick from a multi-arch index")
    image.add_argument(
        "--sbom", metavar="PATH", help="write a CycloneDX 1.5 JSON SBOM (a directory for several images)"
    )
    from factorygate.oci.registry_args import add_registry_arguments

    add_registry_arguments(
        image, insecure_help="allow plain HTTP to this loopback registry (reported as a CICDG-2.7 finding)"
    )


def _report_command_arguments(report: argparse.ArgumentParser) -> None:
    report.add_argument("reports", nargs="+", metavar="RESULT.json", help="reports written with --format json")
    _report_options(report)


def _rules_arguments(rules: argparse.ArgumentParser) -> None:
    rules.add_argument("--format", "-f", choices=("text", "json"), default="text")
    rules.add_argument("--requirements", action="store_true", help="list requirements instead of checks")


def _init_arguments(init: argparse.ArgumentParser) -> None:
    init.add_argument("path", nargs="?", default=DEFAULT_POLICY_FILE, help=f"(default: {DEFAULT_POLICY_FILE})")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")


# name, help line, option table: the first three are listed before the lazily added commands
_COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None]], ...] = (
    ("scan", "check Kubernetes manifests and Dockerfiles (files, directories, - for stdin)", _scan_arguments),
    (
        "image",
        "check built images: OCI layout DIR[:TAG], OCI or docker archive FILE.tar, or a registry reference",
        _image_arguments,
    ),
    (
        "report",
        "combine factorygate JSON reports (Dockerfile, image, manifests scans of one release) into one report",
        _report_command_arguments,
    ),
    ("rules", "list the catalog: checks with their requirements, NIST controls and CCIs", _rules_arguments),
    ("init", "write the default policy file to start from", _init_arguments),
)


# Commands whose option table and code live in one module: ``add_arguments(command, parser)`` fills the
# table (called only when that command is on the line), ``run(args) -> exit code`` carries it out.
_MODULE_COMMANDS: dict[str, tuple[str, str]] = {
    "audit": (
        "factorygate.audit.commands",
        "audit a live cluster or a saved snapshot; `audit manifests`: run it in-cluster",
    ),
    "key": ("factorygate.supply.commands", "generate an ECDSA P-256 signing key pair (cosign-compatible)"),
    "sign": ("factorygate.supply.commands", "sign an image in its registry (cosign-compatible .sig)"),
    "verify": ("factorygate.supply.commands", "verify an image's signature against a public key"),
    "attest": ("factorygate.supply.commands", "attach a signed in-toto attestation (SLSA provenance, gate decision)"),
    "verify-attestation": ("factorygate.supply.commands", "verify an image's attestations against a public key"),
    "bundle": ("factorygate.supply.bundle_commands", "push or pull a signed bundle of Kubernetes manifests (OCI)"),
}


def _report_options(p: argparse.ArgumentParser) -> None:
    """Options every checking command shares: policy, report, threshold, waiver date, colour."""
    p.add_argument("--policy", "-p", metavar="FILE", help="policy file (default: the packaged default policy)")
    p.add_argument("--format", "-f", choices=FORMATS, default="text", help="report format (default: text)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE instead of stdout")
    p.add_argument("--threshold", choices=SEVERITIES, help="override the policy's fail threshold")
    p.add_argument(
        "--as-of",
        type=iso_date,
        metavar="YYYY-MM-DD",
        help="evaluate waiver expiry as of this date (default: today)",
    )
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="colour the text report")
    _evidence_arguments(p)


def _evidence_arguments(p: argparse.ArgumentParser) -> None:
    """The checklist's asset ("target data" in STIG Viewer) and the time the evidence formats state."""
    g = p.add_argument_group("evidence formats (ckl, cklb, oscal, oscal-poam, hdf)")
    g.add_argument("--asset-host-name", metavar="NAME", help="HOST_NAME (default: the first input)")
    g.add_argument("--asset-host-ip", metavar="IP", default="", help="HOST_IP")
    g.add_argument("--asset-host-mac", metavar="MAC", default="", help="HOST_MAC")
    g.add_argument("--asset-host-fqdn", metavar="FQDN", default="", help="HOST_FQDN")
    g.add_argument(
        "--asset-role",
        choices=("None", "Workstation", "Member Server", "Domain Controller"),
        default="None",
        help="ROLE (default: None)",
    )
    g.add_argument(
        "--asset-type", choices=("Computing", "Non-Computing"), default="Computing", help="ASSET_TYPE (Computing)"
    )
    g.add_argument("--asset-marking", metavar="TEXT", default="CUI", help="MARKING (default: CUI)")
    g.add_argument("--asset-comment", metavar="TEXT", default="", help="TARGET_COMMENT")
    g.add_argument(
        "--asset-tech-area",
        metavar="AREA",
        default="",
        type=_tech_area,
        help="TECH_AREA, one of STIG Viewer's (e.g. 'Application Review'; default empty)",
    )
    g.add_argument("--asset-target-key", metavar="KEY", default="", help="TARGET_KEY (STIG Viewer's target key)")
    g.add_argument("--asset-web-db-site", metavar="SITE", default="", help="WEB_DB_SITE (sets WEB_OR_DATABASE)")
    g.add_argument("--asset-web-db-instance", metavar="NAME", default="", help="WEB_DB_INSTANCE")
    g.add_argument(
        "--classification", metavar="TEXT", default="UNCLASSIFIED", help="STIG classification (UNCLASSIFIED)"
    )
    g.add_argument(
        "--evidence-time",
        type=iso_datetime,
        metavar="ISO-8601",
        help="the time the evidence states (default: SOURCE_DATE_EPOCH when set, else now)",
    )


def _tech_area(value: str) -> str:
    if not value:  # the default: argparse converts it on every run, and the evidence module is not light
        return value
    from factorygate.render.evidence import TECH_AREAS

    if value not in TECH_AREAS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a STIG Viewer technology area: {', '.join(TECH_AREAS)}")
    return value


def _evidence_options(args: argparse.Namespace) -> EvidenceOptions:
    from factorygate.render.evidence import Asset, EvidenceOptions

    asset = Asset(
        host_name=args.asset_host_name or "",
        host_ip=args.asset_host_ip,
        host_mac=args.asset_host_mac,
        host_fqdn=args.asset_host_fqdn,
        role=args.asset_role,
        asset_type=args.asset_type,
        marking=args.asset_marking,
        target_comment=args.asset_comment,
        tech_area=args.asset_tech_area,
        target_key=args.asset_target_key,
        web_db_site=args.asset_web_db_site,
        web_db_instance=args.asset_web_db_instance,
        classification=args.classification,
    )
    return EvidenceOptions(asset=asset, now=args.evidence_time)


def _engine(args: argparse.Namespace) -> Engine:
    from factorygate.catalog import load_catalog
    from factorygate.engine import Engine
    from factorygate.model import Severity
    from factorygate.policy import load_policy

    catalog = load_catalog()
    policy = load_policy(args.policy, set(catalog.checks))
    if args.threshold:
        policy = policy.with_threshold(Severity(args.threshold))
    return Engine(catalog, policy, as_of=args.as_of)


def _emit(result: ScanResult, args: argparse.Namespace, ahead: FindingLines | None = None) -> int:
    """Write the report where asked; tell the terminal about errors and the verdict; the exit code.
    ``ahead``: JSON lines of findings already encoded while the scan ran."""
    from factorygate.render import EVIDENCE_RENDERERS, Format, render

    fmt = Format(args.format)
    evidence = _evidence_options(args) if fmt in EVIDENCE_RENDERERS else None
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as out:
                render(result, fmt, out, evidence=evidence, ahead=ahead)
        except OSError as e:
            print(f"factorygate: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
            return EXIT_ERROR
    else:
        color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
        render(result, fmt, sys.stdout, color=color, evidence=evidence, ahead=ahead)
    if args.output or fmt is not Format.TEXT:
        _print_errors_and_verdict(result)
    return result.exit_code()


def _cmd_image(args: argparse.Namespace) -> int:
    from factorygate.image import ImageOptions, scan_images
    from factorygate.oci.model import Platform
    from factorygate.oci.registry_args import registry_options

    registry = registry_options(args, platform=Platform.parse(args.platform))
    engine = _engine(args)
    result = scan_images(engine, args.refs, ImageOptions(registry=registry, sbom=args.sbom))
    return _emit(result, args)


def _cmd_scan(args: argparse.Namespace) -> int:
    from factorygate.engine import KUBERNETES_KINDS
    from factorygate.inputs.kubernetes import ReadOptions
    from factorygate.scan import default_jobs, scan_paths

    engine = _engine(args)
    opts = ReadOptions(
        kustomize=args.kustomize == "auto",
        max_bytes=args.max_file_size,
        kinds=KUBERNETES_KINDS,
        input_type=args.type,
    )
    ahead = None
    if args.format == "json":  # encode the findings' lines while the workers are still busy
        from factorygate.render.json_report import FindingLines

        ahead = FindingLines()
    jobs = args.jobs if args.jobs is not None else default_jobs()
    result = scan_paths(engine, args.paths, opts, jobs=jobs, on_part=ahead.add_part if ahead else None)
    return _emit(result, args, ahead)


def _cmd_report(args: argparse.Namespace) -> int:
    from factorygate.catalog import load_catalog
    from factorygate.combine import combine_reports
    from factorygate.model import Severity, Status
    from factorygate.policy import load_policy

    catalog = load_catalog()
    policy = load_policy(args.policy, set(catalog.checks)) if args.policy else None
    result = combine_reports(args.reports, catalog, policy, as_of=args.as_of)
    if args.threshold:
        result.policy = result.policy.with_threshold(Severity(args.threshold))
    if not args.output and args.format == "text":  # else _emit prints them with the verdict
        for f in result.findings:
            if f.status is Status.ERROR and f.location.file in args.reports and f.resource is None:
                print(f"factorygate: error: {f.location.file}: {f.message}", file=sys.stderr)
    return _emit(result, args)


def _print_errors_and_verdict(result: ScanResult) -> None:
    """When the report goes elsewhere, still tell the person at the terminal what happened."""
    from factorygate.model import Status

    counts = result.counts()
    if any(status is Status.ERROR for status, _ in counts):
        for f in result.findings:
            if f.status is Status.ERROR:
                line = f":{f.location.line}" if f.location.line else ""
                print(f"factorygate: error: {f.location.file}{line}: {f.message}", file=sys.stderr)
    # a ReleaseResult (factorygate report) carries vulnerability sections; a scan has none, and does not
    # import release.py to learn that
    for section in getattr(result, "vulnerabilities", ()):
        if section.no_go:
            print(f"factorygate: vulnerability gate NO-GO ({section.source or 'vulns gate'})", file=sys.stderr)
    blocking = result.blocking(counts)
    print(
        f"factorygate: {blocking} failing at or above {result.policy.threshold.value}; exit {result.exit_code()}",
        file=sys.stderr,
    )


def _cmd_rules(args: argparse.Namespace) -> int:
    import json

    from factorygate.catalog import load_catalog

    catalog = load_catalog()
    if args.requirements:
        rows = [
            {
                "id": r.id,
                "title": r.title,
                "ia_control": r.ia_control,
                "cci": list(r.cci),
                "automation": list(r.automation) or ["process"],
                "checks": [c.id for c in catalog.checks_for(r.id)],
            }
            for r in catalog.requirements.values()
        ]
    else:
        rows = [
            {
                "id": c.id,
                "title": c.title,
                "requirements": list(c.requirements),
                "severity": c.severity.value,
                "nist": list(c.nist),
                "cci": list(c.cci),
                "subject": c.subject.value,
            }
            for c in catalog.checks.values()
        ]
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    columns = list(rows[0]) if rows else []
    for col in columns:
        table.add_column(col, overflow="fold", no_wrap=col == "id")
    for row in rows:
        table.add_row(*(", ".join(v) if isinstance(v, list) else str(v) for v in row.values()))
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)
    return EXIT_OK


def _cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from factorygate.policy import default_policy_text

    path = Path(args.path)
    if path.exists() and not args.force:
        print(f"factorygate: {path} exists; use --force to overwrite", file=sys.stderr)
        return EXIT_ERROR
    path.write_text(default_policy_text(), encoding="utf-8")
    print(f"wrote {path}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    from factorygate.errors import FactorygateError

    handlers = {
        "scan": _cmd_scan,
        "image": _cmd_image,
        "report": _cmd_report,
        "admission": _cmd_admission,
        "export": _cmd_export,
        "vulns": _cmd_vulns,
        "rules": _cmd_rules,
        "init": _cmd_init,
    }
    try:
        if args.command in _MODULE_COMMANDS:
            run: Callable[[argparse.Namespace], int] = importlib.import_module(_MODULE_COMMANDS[args.command][0]).run
            return run(args)
        return handlers[args.command](args)
    except FactorygateError as e:
        print(f"factorygate: {e.diagnostics()}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
