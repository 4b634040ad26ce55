"""The vulnerability gate: merged findings + justifications + a policy -> go / no-go, with reasons.

A finding *blocks* when it is not justified (no active justification covers it, or the one that did
has expired) and at least one rule catches it:

- its severity is in ``block_severities`` (default critical and high);
- ``max_fix_age_days`` is set, it has a fix, and the fix was published more than that many days
  before ``as_of`` (a finding with a fix but no fix date cannot be aged and is not caught by this rule).

``require_two_scanners`` adds a rule about the run rather than a finding: fewer than two distinct
scanners (those given as ``scanners``, else those named by the findings) is a no-go, so a gate cannot
pass because only one scanner looked.

The decision (``Decision.to_json()``) is deterministic: findings and reasons are sorted, and the
inputs are listed with their sha256 digests so the decision can be attested later.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from factorygate.vulns.justify import Justifiable, JustificationBook, MatchState
from factorygate.vulns.model import SEVERITIES, Package, VulnInputError

DECISION_SCHEMA = "factorygate.dev/vuln-gate-decision/v1"


class Finding(Justifiable, Protocol):
    """A merged finding as the gate reads it (the merge module's class satisfies this): what a
    justification is matched on, plus what the gate weighs."""

    @property
    def severity(self) -> str: ...  # one of model.SEVERITIES
    @property
    def fixed_versions(self) -> tuple[str, ...]: ...
    @property
    def fix_published(self) -> str | None: ...  # ISO date (or date-time) a fix became available
    @property
    def scanners(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class GatePolicy:
    block_severities: tuple[str, ...] = ("critical", "high")
    max_fix_age_days: int | None = None
    require_two_scanners: bool = False

    def __post_init__(self) -> None:
        bad = [s for s in self.block_severities if s not in SEVERITIES]
        if bad:
            raise ValueError(f"unknown severities {bad}; expected some of {', '.join(SEVERITIES)}")
        if self.max_fix_age_days is not None and self.max_fix_age_days < 0:
            raise ValueError("max_fix_age_days must not be negative")

    def to_json(self) -> dict[str, Any]:
        return {
            "block_severities": sorted(set(self.block_severities), key=SEVERITIES.index, reverse=True),
            "max_fix_age_days": self.max_fix_age_days,
            "require_two_scanners": self.require_two_scanners,
        }


@dataclass(frozen=True)
class FindingDecision:
    """One finding's outcome."""

    id: str
    aliases: tuple[str, ...]
    package: Package
    severity: str
    fixed_versions: tuple[str, ...]
    fix_published: str | None
    scanners: tuple[str, ...]
    state: MatchState  # justified / expired / unjustified
    justification_status: str | None  # the factorygate status of the justification that matched, if any
    justification_at: str | None  # file:line of that justification
    justification_expires: str | None
    blocking: tuple[str, ...]  # why this finding blocks (empty: it does not)
    justification_approver: str | None = None
    justification_author: str | None = None

    def to_json(self) -> dict[str, Any]:
        pkg = self.package
        return {
            "id": self.id,
            "aliases": list(self.aliases),
            "package": {"name": pkg.name, "version": pkg.version, "type": pkg.type, "purl": pkg.purl, "path": pkg.path},
            "severity": self.severity,
            "fixed_versions": list(self.fixed_versions),
            "fix_published": self.fix_published,
            "scanners": list(self.scanners),
            "status": self.state,
            "justification": None
            if self.justification_status is None
            else {
                "status": self.justification_status,
                "at": self.justification_at,
                "expires": self.justification_expires,
                "author": self.justification_author,
                "approver": self.justification_approver,
            },
            "blocking": list(self.blocking),
        }


@dataclass(frozen=True)
class Decision:
    go: bool
    reasons: tuple[str, ...]
    findings: tuple[FindingDecision, ...]
    policy: GatePolicy
    inputs: Mapping[str, str]
    as_of: dt.date
    scanners: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        counts = {s: sum(1 for f in self.findings if f.state == s) for s in ("justified", "expired", "unjustified")}
        return {
            "schema": DECISION_SCHEMA,
            "decision": "go" if self.go else "no-go",
            "go": self.go,
            "as_of": self.as_of.isoformat(),
            "reasons": list(self.reasons),
            "policy": self.policy.to_json(),
            "inputs": [{"path": p, "digest": self.inputs[p]} for p in sorted(self.inputs)],
            "scanners": list(self.scanners),
            "summary": {
                "findings": len(self.findings),
                **counts,
                "blocking": sum(1 for f in self.findings if f.blocking),
            },
            "findings": [f.to_json() for f in self.findings],
        }


def file_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes (for ``decide``'s ``inputs``)."""
    h = hashlib.sha256()
    try:
        with Path(path).open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise VulnInputError(f"{path}: cannot read: {e}") from e
    return f"sha256:{h.hexdigest()}"


def digest_inputs(paths: Iterable[str | Path]) -> dict[str, str]:
    """Each path (as given) mapped to its ``sha256:`` digest."""
    return {str(p): file_digest(p) for p in paths}


def _date(text: str | None) -> dt.date | None:
    """The date of an ISO date or date-time ("2024-05-01", "2024-05-01T12:00:00Z"); None if unreadable."""
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def decide(
    findings: Iterable[Finding],
    book: JustificationBook,
    policy: GatePolicy,
    inputs: Mapping[str, str],
    as_of: dt.date,
    *,
    image: str | None = None,
    scanners: Sequence[str] | None = None,
) -> Decision:
    """Apply ``policy`` to ``findings`` given the justifications in ``book`` on the day ``as_of``.

    ``image`` is the image reference being gated (justifications with an ``image`` glob only count for
    a matching image). ``scanners`` names the scanners that ran (a scanner that found nothing still
    ran); when None, the scanners named by the findings are used.
    """
    blocked_severities = set(policy.block_severities)
    decided: list[FindingDecision] = []
    for f in findings:
        match = book.match(f, as_of, image)
        j = match.justification
        blocking: list[str] = []
        if match.state != "justified":
            why = (
                "unjustified"
                if match.state == "unjustified"
                else f"justification expired {j.expires.isoformat() if j else '?'}"
            )
            if f.severity in blocked_severities:
                blocking.append(f"{f.severity} ({why})")
            fixed_on = _date(f.fix_published)
            if policy.max_fix_age_days is not None and f.fixed_versions and fixed_on is not None:
                age = (as_of - fixed_on).days
                if age > policy.max_fix_age_days:
                    blocking.append(
                        f"fix available for {age} days, more than {policy.max_fix_age_days} ({why}; "
                        f"fixed in {', '.join(f.fixed_versions)})"
                    )
        decided.append(
            FindingDecision(
                id=f.id,
                aliases=tuple(sorted(set(f.aliases) - {f.id})),
                package=f.package,
                severity=f.severity,
                fixed_versions=tuple(f.fixed_versions),
                fix_published=f.fix_published,
                scanners=tuple(sorted(set(f.scanners))),
                state=match.state,
                justification_status=j.status if j else None,
                justification_at=book.where(j) if j else None,
                justification_expires=j.expires.isoformat() if j else None,
                blocking=tuple(blocking),
                justification_approver=j.approver if j else None,
                justification_author=j.author if j else None,
            )
        )
    decided.sort(key=lambda d: (-_rank(d.severity), d.id, d.package.name, d.package.version, d.package.purl or ""))
    ran = tuple(sorted(set(scanners) if scanners is not None else {s for d in decided for s in d.scanners}))
    reasons: list[str] = []
    if policy.require_two_scanners and len(ran) < 2:
        reasons.append(f"two scanners are required, {len(ran)} ran ({', '.join(ran) or 'none'})")
    for d in decided:
        for why in d.blocking:
            version = f" {d.package.version}" if d.package.version else ""
            reasons.append(f"{d.id} in {d.package.name}{version}: {why}")
    return Decision(
        go=not reasons,
        reasons=tuple(reasons),
        findings=tuple(decided),
        policy=policy,
        inputs=dict(inputs),
        as_of=as_of,
        scanners=ran,
    )
