"""Findings across the process boundary of a parallel scan, in a form pickle handles in C.

Pickling a NamedTuple calls a Python method per object, and unpickling runs its Python ``__new__``;
enums go through their Python ``__reduce_ex__`` and lookup. With a finding per check and subject
that was a fifth of a parallel scan's work. A worker packs a part's findings into plain tuples,
strings and ints (the fields a check shares with all its findings once per part), and the parent
unpacks them into the same records: ``unpack(pack(part))`` equals ``part``.
"""

from __future__ import annotations

from typing import Any

from factorygate.engine import PartialScan
from factorygate.model import Finding, Location, Resource, Severity, Status, Waiver, new_record

_STATUSES = tuple(Status)
_STATUS_INDEX = {s: i for i, s in enumerate(_STATUSES)}
_SEVERITIES = tuple(Severity)
_SEVERITY_INDEX = {s: i for i, s in enumerate(_SEVERITIES)}

# A packed part: (findings, shared, resources, contexts, policies, stats) where a packed finding is
# (shared index, status index, severity index, message, location tuple, resource index or -1,
# container, waiver tuple or None) and ``shared`` holds (check, requirements, nist, cci, title,
# remediation) tuples.
Packed = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[Any], list[Any], Any]


def pack(part: PartialScan) -> Packed:
    shared: dict[tuple[Any, ...], int] = {}
    resources: dict[int, int] = {}  # id(Resource) -> index: a subject's findings share one object
    resource_rows: list[tuple[Any, ...]] = []
    rows = []
    for f in part.findings:
        key = (f.check, f.requirements, f.nist, f.cci, f.title, f.remediation)
        k = shared.get(key)
        if k is None:
            k = shared[key] = len(shared)
        res = f.resource
        r = -1
        if res is not None:
            r = resources.get(id(res), -1)
            if r < 0:
                r = resources[id(res)] = len(resource_rows)
                resource_rows.append(tuple(res))
        w = f.waiver
        rows.append(
            (
                k,
                _STATUS_INDEX[f.status],
                _SEVERITY_INDEX[f.severity],
                f.message,
                tuple(f.location),
                r,
                f.container,
                None if w is None else tuple(w),
            )
        )
    return rows, list(shared), resource_rows, part.contexts, part.policies, part.stats


def unpack(packed: Packed) -> PartialScan:
    rows, shared, resource_rows, contexts, policies, stats = packed
    resources = [new_record(Resource, r) for r in resource_rows]
    findings = []
    for k, status, severity, message, location, r, container, waiver in rows:
        check, requirements, nist, cci, title, remediation = shared[k]
        findings.append(
            new_record(
                Finding,
                (
                    check,
                    _STATUSES[status],
                    _SEVERITIES[severity],
                    message,
                    new_record(Location, location),
                    requirements,
                    nist,
                    cci,
                    resources[r] if r >= 0 else None,
                    container,
                    title,
                    remediation,
                    None if waiver is None else new_record(Waiver, waiver),
                ),
            )
        )
    return PartialScan(findings=findings, contexts=contexts, policies=policies, stats=stats)
