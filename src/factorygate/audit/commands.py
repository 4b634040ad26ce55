"""The ``factorygate audit`` command: ``audit [--kubeconfig F] [--context C ...] [--namespace N ...]``,
``audit --snapshot PATH ...``, ``audit --watch SECONDS`` and ``audit manifests``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from factorygate.argtypes import positive_float, positive_int
from factorygate.errors import FactorygateError

if TYPE_CHECKING:
    from factorygate.audit.inventory import Inventory
    from factorygate.audit.run import AuditResult
    from factorygate.engine import Engine

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def add_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    from factorygate.audit.manifests import DEFAULT_IMAGE, DEFAULT_SCHEDULE, FORMATS
    from factorygate.cli import _report_options

    parser.add_argument(
        "action",
        nargs="?",
        choices=("manifests", "kinds"),
        help="manifests: print the ServiceAccount, read-only ClusterRole, binding and CronJob that run the audit "
        "in-cluster; kinds: print the resources a snapshot should hold, one per line, for `kubectl get` "
        "(omit both to audit)",
    )
    src = parser.add_argument_group("what to audit (default: the current kubeconfig context)")
    src.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG, else ~/.kube/config)")
    src.add_argument(
        "--context", action="append", default=[], metavar="NAME", help="kubeconfig context; repeat for several clusters"
    )
    src.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        metavar="NS",
        help="list namespaced kinds in this namespace only; repeatable (cluster-scoped kinds are always read). "
        "With `manifests`: the namespace to install into",
    )
    src.add_argument(
        "--snapshot",
        action="append",
        default=[],
        metavar="PATH",
        help="a saved state instead of a live cluster: `kubectl get ... -A -o yaml|json` output, or a directory "
        "of such files; repeatable",
    )
    src.add_argument("--in-cluster", action="store_true", help="use the pod's service account (the CronJob does)")
    src.add_argument(
        "--allow-http-loopback",
        action="store_true",
        help="allow a plain-HTTP server on 127.0.0.1/localhost (`kubectl proxy`); never for other hosts",
    )
    src.add_argument("--page-size", type=positive_int, default=500, metavar="N", help="objects per list page (500)")
    src.add_argument(
        "--request-timeout", type=positive_float, default=30.0, metavar="S", help="API request timeout (30)"
    )
    src.add_argument(
        "--watch", type=positive_float, metavar="SECONDS", help="audit again every SECONDS; print only what changed"
    )
    src.add_argument(
        "--watch-count", type=positive_int, metavar="N", help="with --watch: stop after N audits (default: never)"
    )
    _report_options(parser)
    man = parser.add_argument_group("audit manifests")
    man.add_argument("--image", default=DEFAULT_IMAGE, metavar="REF", help="factorygate image, pinned by digest")
    man.add_argument("--schedule", default=DEFAULT_SCHEDULE, help=f"CronJob schedule ({DEFAULT_SCHEDULE!r})")
    man.add_argument("--report-format", choices=FORMATS, default="json", help="report format in the job's log (json)")


def run(args: argparse.Namespace) -> int:
    if args.action == "manifests":
        return _manifests(args)
    if args.action == "kinds":
        return _kinds(args)
    from factorygate.cli import _emit, _engine

    engine = _engine(args)
    if args.watch is None:
        result = _audit_once(engine, args)
        return _emit(result, args)
    return _watch(engine, args)


def _kinds(args: argparse.Namespace) -> int:
    """The resources the audit lists (the checks' and the scorecard's, with kinds the policy declares), as
    ``kubectl get`` names them (``plural.group``): what a snapshot must hold to be judged like a live cluster."""
    from factorygate.audit.kinds import kinds_to_list
    from factorygate.audit.run import declared_of, extra_kinds
    from factorygate.cli import _engine

    declared = declared_of(_engine(args).policy)
    names = {k.plural + (f".{k.group}" if k.group else "") for k in kinds_to_list(extra_kinds(declared))}
    print("\n".join(sorted(names)))
    return EXIT_OK


def _manifests(args: argparse.Namespace) -> int:
    from factorygate.audit.manifests import DEFAULT_NAMESPACE, AuditManifestOptions, run_manifests

    policy_text = None
    if args.policy:
        try:
            with open(args.policy, encoding="utf-8") as f:
                policy_text = f.read(1024 * 1024)
        except OSError as e:
            raise FactorygateError(f"cannot read policy {args.policy}: {e.strerror or e}") from None
        from factorygate.catalog import load_catalog
        from factorygate.policy import parse_policy

        parse_policy(policy_text, args.policy, set(load_catalog().checks))
    opts = AuditManifestOptions(
        namespace=args.namespace[0] if args.namespace else DEFAULT_NAMESPACE,
        image=args.image,
        schedule=args.schedule,
        report_format=args.report_format,
        policy_text=policy_text,
    )
    return run_manifests(opts, args.output)


def _inventories(args: argparse.Namespace, declared: tuple[Any, ...]) -> list[tuple[Inventory, str]]:
    from factorygate.audit.kinds import as_api_kinds, kinds_to_list
    from factorygate.audit.run import dynamic_kinds, extra_kinds

    if args.snapshot:
        if args.context or args.kubeconfig or args.in_cluster:
            raise FactorygateError("--snapshot reads saved state: it does not combine with --context/--kubeconfig")
        from factorygate.audit.snapshot import read_snapshot

        out = []
        for path in args.snapshot:
            inv = read_snapshot(path)
            if args.namespace:
                _only_namespaces(inv, set(args.namespace))
            out.append((inv, "snapshot"))
        return out
    from factorygate.audit.live import LiveOptions, read_cluster

    kinds = kinds_to_list(extra_kinds(declared))
    contexts: list[str | None] = list(args.context) or [None]
    out = []
    for ctx in contexts:
        opts = LiveOptions(
            kubeconfig=args.kubeconfig,
            context=ctx,
            namespaces=tuple(args.namespace),
            page_size=args.page_size,
            timeout=args.request_timeout,
            in_cluster=args.in_cluster,
            allow_http_loopback=args.allow_http_loopback,
        )
        inv = read_cluster(opts, kinds)
        known = {k.key for k in kinds}
        more = [k for k in as_api_kinds(dynamic_kinds(inv)) if k.key not in known]
        if more:  # Gatekeeper constraints: their kinds are known from the templates just read
            read_cluster(opts, more, into=inv)
        out.append((inv, "live"))
    return out


def _only_namespaces(inv: Inventory, namespaces: set[str]) -> None:
    inv.namespaces = tuple(sorted(namespaces))
    for key, objs in inv.objects.items():
        if key == "Namespace":
            inv.objects[key] = [o for o in objs if (o.get("metadata") or {}).get("name") in namespaces]
        else:
            inv.objects[key] = [
                o
                for o in objs
                if not (o.get("metadata") or {}).get("namespace")
                or (o.get("metadata") or {}).get("namespace") in namespaces
            ]


def _audit_once(engine: Engine, args: argparse.Namespace) -> AuditResult:
    from factorygate.audit.run import audit, declared_of

    declared = declared_of(engine.policy)
    return audit(engine, _inventories(args, declared), declared)


def change_keys(result: AuditResult) -> dict[tuple[str, ...], str]:
    """What --watch compares between two audits: failures, errors and the scorecard, by identity."""
    from factorygate.audit.run import audit_sections
    from factorygate.model import Status

    keys: dict[tuple[str, ...], str] = {}
    for f in result.findings:
        if f.status in (Status.FAIL, Status.ERROR):
            r = f.resource.display() if f.resource else ""
            key = (f.location.file, f.check, r, f.container or "", f.location.path or "")
            keys[key] = (
                f"{f.status.value.upper()} {f.check} {r}{f' [{f.container}]' if f.container else ''}: {f.message}"
            )
    for section in audit_sections(result):
        for row in section.conformance_json():
            cap = str(row.get("capability", ""))
            keys[(section.cluster, "conformance", cap)] = f"conformance {cap}: {row.get('state')}"
    return keys


def _watch(engine: Engine, args: argparse.Namespace) -> int:
    """Audit every --watch seconds; print what appeared (+) and what went away (-), per cluster."""
    previous: dict[tuple[str, ...], str] | None = None
    count = 0
    code = EXIT_OK
    while args.watch_count is None or count < args.watch_count:
        if count:
            time.sleep(args.watch)
        count += 1
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            result = _audit_once(engine, args)
        except FactorygateError as e:  # a cluster that is briefly unreachable: say so, keep watching
            print(f"{stamp} factorygate: {e.diagnostics()}", file=sys.stderr)
            code = EXIT_ERROR
            continue
        code = result.exit_code()
        keys = change_keys(result)
        if previous is None:
            print(f"{stamp} audit {count}: {len(keys)} failing or unknown (baseline)")
            for key in sorted(keys):
                print(f"  = [{key[0]}] {keys[key]}")
        else:
            gone = [k for k in previous if k not in keys]
            new = [k for k in keys if k not in previous or previous[k] != keys[k]]
            print(f"{stamp} audit {count}: {len(new)} new, {len(gone)} resolved")
            for k in sorted(new):
                print(f"  + [{k[0]}] {keys[k]}")
            for k in sorted(gone):
                print(f"  - [{k[0]}] {previous[k]}")
        sys.stdout.flush()
        previous = keys
    return code
