"""Reference-design conformance: which interconnects and tools of the seeds' tables a cluster runs.

For each capability of ``conformance_data.CAPABILITIES`` the known implementations are recognised from their API
objects (DaemonSets, Deployments, webhook configurations, CRD objects) and judged: ``present`` (found and
configured as the capability needs), ``misconfigured`` (found, but e.g. a PERMISSIVE mesh, a webhook that fails
open, an agent missing from some nodes), ``absent`` (nothing found, and everything needed could be read) or
``unknown`` (nothing found, but a kind that would show it could not be read). Evaluation is one pass over the
objects plus per-namespace work (linear in the inventory). docs/conformance.md explains the scorecard.

conformance_kinds.py   ApiKind, WANTED (what the live reader lists), kind keys, Gatekeeper's dynamic kinds
conformance_data.py    the capabilities (seed rows, baselines) and the known implementations, as data
conformance_facts.py   reading raw API objects: selectors, tolerations, indexes, shared judgements
conformance_detect.py  one detector per capability, and declared implementations
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from factorygate.audit import conformance_data as data
from factorygate.audit.conformance_detect import DETECTORS, declared_impl
from factorygate.audit.conformance_facts import Impl, View, selector_matches
from factorygate.audit.conformance_kinds import ADM, WANTED, WANTED_KEYS, ApiKind, dynamic_kinds
from factorygate.audit.declarations import DeclaredImplementation
from factorygate.audit.inventory import Inventory

__all__ = [
    "STATES",
    "WANTED",
    "WANTED_KEYS",
    "ApiKind",
    "ConformanceResult",
    "conformance_json",
    "conformance_text",
    "dynamic_kinds",
    "evaluate",
    "selector_matches",
    "wanted_kinds",
]

STATES = ("present", "misconfigured", "absent", "unknown")


@dataclass(frozen=True)
class ConformanceResult:
    capability: str
    baseline: str  # "REQUIRED" | "PREFERRED"
    state: str  # "present" | "absent" | "misconfigured" | "unknown"
    implementation: str | None
    evidence: list[str]
    source: str  # seed, section, table row
    title: str = ""
    note: str = ""


def wanted_kinds(declared: Sequence[DeclaredImplementation] = ()) -> tuple[ApiKind, ...]:
    """WANTED plus the kinds declared implementations are detected by."""
    extra: dict[str, ApiKind] = {}
    for d in declared:
        det = d.detect
        if det.kind in WANTED_KEYS or det.kind in extra or det.version is None:
            continue
        plural = det.plural or det.kind_name.lower() + "s"
        extra[det.kind] = ApiKind(det.group, det.version, plural, det.kind_name, det.namespace is not None)
    return WANTED + tuple(extra.values())


# --- results -----------------------------------------------------------------------------------------------


def evaluate(
    inv: Inventory, declared: Sequence[DeclaredImplementation] = (), *, exempt_namespaces: Sequence[str] = ()
) -> list[ConformanceResult]:
    """One result per capability of the seeds' tables, in the order of ``conformance_data.CAPABILITIES``.

    ``exempt_namespaces`` (the policy's ``parameters.exempt_namespaces``, shell globs) need neither
    default-deny, mesh enrolment nor admission coverage."""
    view = View(inv, exempt_namespaces)
    results = []
    for cap in data.CAPABILITIES:
        impls, relevant, notes = DETECTORS[cap.id](view)
        for decl in declared:
            if decl.capability == cap.id:
                impl, note = declared_impl(view, decl)
                if impl is not None:
                    impls.append(impl)
                if note:
                    notes.append(note)
        results.append(_result(cap, view, impls, relevant, notes))
    return results


BUILT_IN_GROUPS = frozenset({"", "apps", "networking.k8s.io", ADM})


def _builtin(key: str) -> bool:
    return key.partition(".")[2] in BUILT_IN_GROUPS


def _result(
    cap: data.Capability, view: View, impls: list[Impl], relevant: list[str], notes: list[str]
) -> ConformanceResult:
    evidence: list[str] = []
    for impl in impls:
        evidence += [f"{impl.name}: {p}" for p in impl.problems]
    for impl in impls:
        evidence += [f"{impl.name}: {u}" for u in impl.unknowns]
    for impl in impls:
        evidence += [f"{impl.name}: {e}" for e in impl.evidence]
    if any(impl.problems for impl in impls):
        state = "misconfigured"
    elif any(not impl.unknowns for impl in impls):
        state = "present"
    elif impls:
        state = "unknown"
    else:
        # A forbidden kind, or a built-in kind never listed, leaves absence unproven; a CRD kind a snapshot does
        # not hold most likely is not installed (the implementation's controllers would show it otherwise).
        blocking = [k for k in relevant if view.state(k) == "forbidden" or (view.state(k) == "unread" and _builtin(k))]
        state = "unknown" if blocking else "absent"
        evidence += view.unread(relevant)
        if state == "absent":
            evidence.append("no known implementation found (declare yours under conformance.implementations)")
    evidence += notes
    name = ", ".join(impl.name for impl in impls) or None
    return ConformanceResult(cap.id, cap.baseline, state, name, evidence, cap.source, cap.title, cap.note)


def conformance_json(results: Sequence[ConformanceResult]) -> list[dict[str, Any]]:
    return [
        {
            "capability": r.capability,
            "title": r.title,
            "baseline": r.baseline,
            "state": r.state,
            "implementation": r.implementation,
            "evidence": list(r.evidence),
            "source": r.source,
            "note": r.note,
        }
        for r in results
    ]


def conformance_text(results: Sequence[ConformanceResult]) -> list[str]:
    """The scorecard: a line per capability (state, baseline, capability, implementation: first evidence)."""
    lines = []
    for r in results:
        prefix = f"{r.implementation}: " if r.implementation else ""
        evidence = [e.removeprefix(prefix) if prefix else e for e in r.evidence]
        shown = "; ".join(evidence[:2]) + (f" (+{len(evidence) - 2} more)" if len(evidence) > 2 else "")
        lines.append(
            f"{r.state.upper():<13} {r.baseline:<9} {r.capability:<28} [{r.implementation or '-'}]"
            + (f" {shown}" if shown else "")
        )
    counts = Counter(r.state for r in results)
    required_gaps = sum(1 for r in results if r.baseline == "REQUIRED" and r.state != "present")
    lines.append(
        f"conformance: {', '.join(f'{counts[s]} {s}' for s in STATES if counts[s])};"
        f" {required_gaps} REQUIRED capabilities not present"
    )
    return lines
