"""An audit: inventories (one per cluster or snapshot) -> the engine's workload checks, NetworkPolicy
coverage, the cluster checks and the conformance scorecard -> one :class:`AuditResult`.

Each cluster is evaluated on its own (NetworkPolicy coverage never mixes clusters); findings name their
cluster in ``location.file`` (a snapshot: the file and line the object was read from).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from factorygate.audit.cluster import CLUSTER_CHECKS, READS, WORKLOAD_KEYS, ClusterFacts
from factorygate.audit.inventory import Inventory
from factorygate.audit.workloads import AuditedWorkload, fold
from factorygate.checks import WORKLOAD_CHECKS
from factorygate.engine import Engine, ScanResult, ScanStats
from factorygate.inputs.kubernetes import Manifest
from factorygate.model import Finding, Location, Resource, Severity, Status
from factorygate.policy.waivers import WaiverBook

if TYPE_CHECKING:
    import datetime as dt

    from factorygate.catalog import Catalog
    from factorygate.policy.schema import Policy

COVERAGE_CHECK = "audit-coverage"  # pseudo-check of coverage gaps (a kind that could not be read)
# What the engine counts as evaluated: workload checks ran over manifests. Cluster checks are not listed, so a
# cluster requirement with no finding at all (its kinds absent from a snapshot) stays "not_reviewed", never
# "not_applicable": every cluster check that runs reports a pass or a failure per object it looked at.
SUBJECTS = ("manifest",)
# findings about an image name the digest that really runs
IMAGE_CHECKS = frozenset({"k8s-image-digest", "k8s-allowed-registry"})


@dataclass
class ClusterAudit:
    """What the report says about one cluster besides its findings."""

    cluster: str
    source: str  # "live" or "snapshot"
    forbidden: dict[str, str]
    missing: list[str]
    errors: list[str]
    workloads: list[dict[str, Any]]
    pods: int
    not_evaluated: dict[str, str]  # check id -> why (kinds absent from a snapshot, or forbidden)
    conformance: list[Any] = field(default_factory=list)  # conformance.ConformanceResult

    def conformance_json(self) -> list[dict[str, Any]]:
        mod = conformance_module()
        return list(mod.conformance_json(self.conformance)) if mod and self.conformance else []

    def conformance_text(self) -> list[str]:
        mod = conformance_module()
        return list(mod.conformance_text(self.conformance)) if mod and self.conformance else []


class AuditResult(ScanResult):
    """A scan result with, per cluster, its coverage, workloads and conformance scorecard."""

    def __init__(  # noqa: PLR0917 - the six ScanResult fields are positional
        self,
        findings: list[Finding],
        catalog: Catalog,
        policy: Policy,
        inputs: list[str],
        stats: ScanStats,
        as_of: dt.date,
        *,
        clusters: list[ClusterAudit] | None = None,
    ) -> None:
        super().__init__(findings, catalog, policy, inputs, stats, as_of)
        self.clusters = [] if clusters is None else clusters


def audit_sections(result: ScanResult) -> list[ClusterAudit]:
    """The cluster sections of an audit result ([] for any other result): what renderers call."""
    return result.clusters if isinstance(result, AuditResult) else []


def conformance_module() -> Any:
    """factorygate.audit.conformance (the reference-design detection), or None while it is absent."""
    try:
        return importlib.import_module("factorygate.audit.conformance")
    except ModuleNotFoundError:
        return None


def declared_of(policy: Any) -> tuple[Any, ...]:
    """The implementations a policy declares for the scorecard (``conformance.implementations``)."""
    return tuple(getattr(getattr(policy, "conformance", None), "implementations", ()) or ())


def extra_kinds(declared: tuple[Any, ...] = ()) -> tuple[object, ...]:
    """What the conformance detection needs listed besides the core kinds (its WANTED, declared kinds)."""
    mod = conformance_module()
    if mod is None:
        return ()
    if hasattr(mod, "wanted_kinds"):
        return tuple(mod.wanted_kinds(declared))
    return tuple(getattr(mod, "WANTED", ()))


def dynamic_kinds(inv: Inventory) -> tuple[object, ...]:
    """Kinds known only from what was read (Gatekeeper constraint kinds from their templates)."""
    mod = conformance_module()
    return tuple(mod.dynamic_kinds(inv)) if mod is not None and hasattr(mod, "dynamic_kinds") else ()


def _gap_requirements(engine: Engine, key: str) -> tuple[tuple[str, ...], list[str]]:
    """The requirements and checks a kind that could not be read leaves unevaluated."""
    checks = [cid for cid, kinds in READS.items() if key in kinds]
    if key in WORKLOAD_KEYS:
        checks += list(WORKLOAD_CHECKS)
    if key in (*WORKLOAD_KEYS, "NetworkPolicy.networking.k8s.io"):
        checks.append("k8s-network-policy-coverage")
    checks = [c for c in checks if c in engine.catalog.checks and engine.policy.enabled(c)]
    reqs = dict.fromkeys(r for c in checks for r in engine.catalog.checks[c].requirements)
    return tuple(reqs), checks


def _gap(engine: Engine, inv: Inventory, key: str, why: str) -> Finding:
    reqs, checks = _gap_requirements(engine, key)
    cat = engine.catalog
    return Finding(
        check=COVERAGE_CHECK,
        status=Status.ERROR,
        severity=Severity.HIGH,
        message=f"coverage gap: {key} could not be read ({why}); not evaluated: {', '.join(checks) or 'nothing'}",
        location=Location(inv.cluster),
        requirements=reqs,
        nist=tuple(dict.fromkeys(cat.requirements[r].ia_control for r in reqs)),
        cci=tuple(dict.fromkeys(c for r in reqs for c in cat.requirements[r].cci)),
        resource=Resource("Cluster", inv.cluster),
        title="Coverage gap: a kind could not be listed",
    )


def _workload_summary(w: AuditedWorkload) -> dict[str, Any]:
    return {
        "kind": w.kind,
        "namespace": w.namespace,
        "name": w.name,
        "pods": len(w.pods),
        "evaluated": "declared" if w.obj is not None else "pod",
        "images": w.running_images(),
    }


def audit_inventory(
    engine: Engine, inv: Inventory, source: str, declared: Any = None
) -> tuple[ScanResult, ClusterAudit]:
    """Evaluate one cluster's inventory."""
    started = time.perf_counter()
    workloads = fold(inv)
    gaps = {**inv.forbidden}
    findings_pre: list[Finding] = [_gap(engine, inv, key, why) for key, why in sorted(gaps.items())]
    findings_pre += [
        engine._input_error(Location(inv.cluster), message, Resource("Cluster", inv.cluster)) for message in inv.errors
    ]
    items: list[Manifest] = []
    by_resource: dict[tuple[str, str, str], AuditedWorkload] = {}
    for w in workloads:
        subj = w.subject
        file, line = inv.origin(subj)
        items.append(Manifest(subj, file, line or 1, None))
        name = (subj.get("metadata") or {}).get("name")
        by_resource[(str(subj.get("kind")), w.namespace, str(name))] = w
    for np in inv.of("NetworkPolicy.networking.k8s.io"):
        file, line = inv.origin(np)
        items.append(Manifest(np, file, line or 1, None))
    saved = engine.bundle_checks
    np_readable = "NetworkPolicy.networking.k8s.io" not in gaps and (
        source == "live" or "NetworkPolicy.networking.k8s.io" in inv.listed
    )
    if not np_readable:
        engine.bundle_checks = []
    try:
        result = engine.run(items, [inv.cluster], SUBJECTS)
    finally:
        engine.bundle_checks = saved
    not_evaluated: dict[str, str] = {}
    if not np_readable and "k8s-network-policy-coverage" in saved:
        not_evaluated["k8s-network-policy-coverage"] = (
            "NetworkPolicies could not be read"
            if "NetworkPolicy.networking.k8s.io" in gaps
            else "the snapshot holds no NetworkPolicy list"
        )
    findings = findings_pre + [_with_running(f, by_resource) for f in result.findings]
    findings += _cluster_findings(engine, inv, workloads, source, gaps=gaps, not_evaluated=not_evaluated)
    conformance: list[Any] = []
    mod = conformance_module()
    if mod is not None:
        conformance = list(
            mod.evaluate(inv, tuple(declared or ()), exempt_namespaces=engine.policy.parameters.exempt_namespaces)
        )
        if inv.namespaces:  # cluster-wide components live outside the namespaces read: nothing can be judged
            conformance = [_limited(r, inv.namespaces) for r in conformance]
    stats = result.stats
    stats.seconds = time.perf_counter() - started
    section = ClusterAudit(
        cluster=inv.cluster,
        source=source,
        forbidden=dict(sorted(inv.forbidden.items())),
        missing=sorted(inv.missing),
        errors=list(inv.errors),
        workloads=[_workload_summary(w) for w in workloads],
        pods=len(inv.of("Pod")),
        not_evaluated=not_evaluated,
        conformance=conformance,
    )
    result.findings = findings
    return result, section


def _with_running(f: Finding, by_resource: dict[tuple[str, str, str], AuditedWorkload]) -> Finding:
    """A workload finding, with the pod count and (image checks) the digests its pods really run."""
    r = f.resource
    if r is None or f.status is Status.PASS:
        return f
    w = by_resource.get((r.kind, r.namespace or "", r.name))
    if w is None:
        return f
    extra = f" [{len(w.pods)} pod{'s' if len(w.pods) != 1 else ''}]"
    if f.check in IMAGE_CHECKS and f.container:
        running = w.running_images().get(f.container)
        if running:
            extra += f" running {', '.join(running[:3])}" + (f" (+{len(running) - 3})" if len(running) > 3 else "")
    return f._replace(message=f.message + extra)


def _cluster_findings(
    engine: Engine,
    inv: Inventory,
    workloads: list[AuditedWorkload],
    source: str,
    *,
    gaps: dict[str, str],
    not_evaluated: dict[str, str],
) -> list[Finding]:
    facts = ClusterFacts(inv, workloads)
    empty = WaiverBook.empty()
    index: dict[tuple[str, str | None, str], dict[str, Any]] = {}
    if inv.origins:  # a snapshot: findings point at the file and line of their object
        for key, objs in inv.objects.items():
            for obj in objs:
                meta = obj.get("metadata") or {}
                index.setdefault((key.split(".", 1)[0], meta.get("namespace") or None, str(meta.get("name"))), obj)
    out: list[Finding] = []
    for cid, fn in CLUSTER_CHECKS.items():
        if not engine.policy.enabled(cid) or cid not in engine.catalog.checks:
            continue
        reads = READS[cid]
        blocked = [k for k in reads if k in gaps]
        if blocked:
            not_evaluated[cid] = f"{', '.join(blocked)} could not be read"
            continue
        if source == "snapshot" and not any(k in inv.listed for k in reads):
            not_evaluated[cid] = f"the snapshot holds none of {', '.join(reads)}"
            continue
        meta = engine.catalog.checks[cid]
        try:
            outcomes = list(fn(facts))
        except Exception as e:  # noqa: BLE001 - a crashed check must surface as an error, never a pass
            out.append(engine._crash(meta, e, Location(inv.cluster), Resource("Cluster", inv.cluster)))
            continue
        for outcome, resource in outcomes:
            origin = index.get((resource.kind, resource.namespace, resource.name)) if index else None
            file, line = inv.origin(origin) if origin is not None else (inv.cluster, None)
            loc = Location(file, line, outcome.path)
            out.append(engine._finding(cid, outcome, resource, loc, empty))
    return out


def _limited(result: Any, namespaces: Sequence[str]) -> Any:
    """A scorecard row of an audit limited to ``namespaces``: unknown, with what was seen as evidence."""
    from dataclasses import replace

    why = f"the audit read only the namespaces {', '.join(namespaces)} (--namespace): cluster-wide "
    why += "components elsewhere are not visible, so neither presence nor absence is shown"
    return replace(result, state="unknown", evidence=[why, *result.evidence])


def audit(engine: Engine, inventories: Sequence[tuple[Inventory, str]], declared: Any = None) -> AuditResult:
    """Every cluster's findings in one result, keyed by cluster (location.file), sections in input order."""
    findings: list[Finding] = []
    stats = ScanStats(subjects=set(SUBJECTS))
    sections: list[ClusterAudit] = []
    started = time.perf_counter()
    for inv, source in inventories:
        result, section = audit_inventory(engine, inv, source, declared)
        findings += result.findings
        stats.add(result.stats)
        sections.append(section)
    stats.input_errors += sum(len(s.errors) for s in sections)
    stats.seconds = time.perf_counter() - started
    return AuditResult(
        findings,
        engine.catalog,
        engine.policy,
        [inv.cluster for inv, _ in inventories],
        stats,
        engine.as_of,
        clusters=sections,
    )
