"""Vulnerability justifications: a validated YAML file of approved, expiring statements about findings.

The file::

    apiVersion: factorygate.dev/v1
    kind: Justifications
    justifications:
      - vulnerability: CVE-2024-1234      # matched against a finding's id and every alias
        package: "pkg:deb/debian/openssl@*"  # optional glob on the package name or purl
        image: "registry.example.com/team/*" # optional glob on the image reference being gated
        status: not_affected                 # not_affected | false_positive | mitigated | risk_accepted | fix_pending
        vex_justification: vulnerable_code_not_in_execute_path  # optional OpenVEX label (see vex.py)
        justification: "The TLS code path is never reached: the service only links libcrypto."
        author: alice
        approver: bob                        # must differ from author (two-person rule)
        approved: 2024-05-01
        expires: 2024-11-01                  # from this day on the justification no longer counts

Errors name ``file:line: field: problem`` like policy files (the same pydantic validation of stdlib
dataclasses, and the bounded YAML loader).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from factorygate.policy.load import line_of, validate_document
from factorygate.policy.schema import STRICT, FieldProblem, required_text
from factorygate.vulns.model import Package, VulnInputError

MAX_JUSTIFICATIONS_BYTES = 4 * 1024 * 1024

Status = Literal["not_affected", "false_positive", "mitigated", "risk_accepted", "fix_pending"]
STATUSES: tuple[str, ...] = ("not_affected", "false_positive", "mitigated", "risk_accepted", "fix_pending")
# OpenVEX v0.2.0 justification labels (for statements whose OpenVEX status is not_affected).
VexJustification = Literal[
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
]
# Statuses that say "the product is not affected" (the others say "affected, and here is the plan").
NOT_AFFECTED_STATUSES = frozenset({"not_affected", "false_positive", "mitigated"})


@dataclass(frozen=True)
class Justification:
    """One approved statement about one vulnerability (optionally narrowed to a package and an image)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = STRICT
    vulnerability: str
    status: Status
    justification: str
    author: str
    approver: str
    approved: dt.date
    expires: dt.date
    package: str | None = None
    image: str | None = None
    vex_justification: VexJustification | None = None

    def __post_init__(self) -> None:
        vid = self.vulnerability.strip()
        if not vid or any(c.isspace() for c in vid):
            raise FieldProblem("vulnerability", "a vulnerability id without blanks (CVE-..., GHSA-..., ...)")
        object.__setattr__(self, "vulnerability", vid)
        object.__setattr__(self, "justification", required_text("justification", self.justification, 10))
        object.__setattr__(self, "author", required_text("author", self.author, 2))
        object.__setattr__(self, "approver", required_text("approver", self.approver, 2))
        for name in ("package", "image"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, required_text(name, value, 1))
        if self.approver.casefold() == self.author.casefold():
            raise FieldProblem("approver", "the approver must be another person than the author (two-person rule)")
        if self.expires <= self.approved:
            raise FieldProblem("expires", f"must be after the approval date {self.approved.isoformat()}")
        if self.vex_justification is not None and self.status not in NOT_AFFECTED_STATUSES:
            raise FieldProblem(
                "vex_justification", f"only for not_affected, false_positive or mitigated, not {self.status}"
            )

    def active(self, as_of: dt.date) -> bool:
        """Approved on or before ``as_of`` and not yet expired (it expires at the start of ``expires``)."""
        return self.approved <= as_of < self.expires

    def covers(self, ids: set[str], package: Package, image: str | None) -> bool:
        """Whether this justification is about a finding with these (casefolded) ids, package and image."""
        if self.vulnerability.casefold() not in ids:
            return False
        if self.package is not None:
            names = [package.name, *([package.purl] if package.purl else [])]
            if not any(fnmatchcase(n, self.package) for n in names):
                return False
        return self.image is None or (image is not None and fnmatchcase(image, self.image))


@dataclass(frozen=True)
class JustificationsFile:
    """The file as validated."""

    __pydantic_config__: ClassVar[dict[str, Any]] = STRICT
    apiVersion: Literal["factorygate.dev/v1"]
    kind: Literal["Justifications"]
    justifications: list[Justification] = field(default_factory=list)


class Justifiable(Protocol):
    """What matching needs of a finding."""

    @property
    def id(self) -> str: ...
    @property
    def aliases(self) -> tuple[str, ...]: ...
    @property
    def package(self) -> Package: ...


MatchState = Literal["justified", "expired", "unjustified"]


@dataclass(frozen=True)
class Match:
    """The outcome of looking a finding up: the justification that counts, or the expired one that did."""

    state: MatchState
    justification: Justification | None = None


@dataclass(frozen=True)
class JustificationBook:
    """Justifications from one file, in file order (the first active one that covers a finding wins)."""

    entries: tuple[Justification, ...] = ()
    source: str = ""
    lines: tuple[int, ...] = ()  # the line of each entry in ``source`` (empty when built in code)

    def where(self, entry: Justification) -> str:
        """``file:line`` of an entry (for reasons and reports), or just the file name."""
        i = next((k for k, e in enumerate(self.entries) if e is entry), None)
        if i is None or i >= len(self.lines):
            return self.source
        return f"{self.source}:{self.lines[i]}"

    def match(self, finding: Justifiable, as_of: dt.date, image: str | None = None) -> Match:
        """``justified`` by the first active entry covering the finding; else ``expired`` naming the entry
        that lapsed most recently; else ``unjustified``. Entries approved after ``as_of`` do not count yet."""
        ids = {finding.id.casefold(), *(a.casefold() for a in finding.aliases)}
        lapsed: Justification | None = None
        for entry in self.entries:
            if not entry.covers(ids, finding.package, image):
                continue
            if entry.active(as_of):
                return Match("justified", entry)
            if entry.expires <= as_of and (lapsed is None or entry.expires > lapsed.expires):
                lapsed = entry
        return Match("expired", lapsed) if lapsed is not None else Match("unjustified")


def parse_justifications(text: str, name: str) -> JustificationBook:
    """Validate justifications text; raise :class:`VulnInputError` with ``name:line: field: problem`` lines."""
    parsed, node = validate_document(
        text,
        name,
        JustificationsFile,
        described="a justifications file",
        kind="Justifications",
        docs=None,
        error=VulnInputError,
    )
    lines = tuple(line_of(node, ("justifications", i)) or 0 for i in range(len(parsed.justifications)))
    return JustificationBook(tuple(parsed.justifications), name, lines)


def load_justifications(path: str | Path) -> JustificationBook:
    """Read and validate the justifications file at ``path``."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_JUSTIFICATIONS_BYTES:
            limit = MAX_JUSTIFICATIONS_BYTES // 1024 // 1024
            raise VulnInputError(f"{path}: justifications file is larger than {limit} MiB")
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise VulnInputError(f"{path}: cannot read justifications: {e}") from e
    return parse_justifications(text, str(path))
