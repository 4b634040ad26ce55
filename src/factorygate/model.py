"""The vocabulary shared by checks, policy and renderers."""

from __future__ import annotations

import enum
from typing import NamedTuple


class Severity(enum.Enum):
    """How bad a failed check is. Ordered: ``Severity.HIGH > Severity.LOW``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    # Members are singletons compared by identity: hash them by identity too, in C (Enum's own
    # __hash__ is a Python function, and reports hash a status or severity per finding).
    __hash__ = object.__hash__

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class Status(enum.Enum):
    """The outcome of one check on one subject."""

    FAIL = "fail"
    PASS = "pass"
    WAIVED = "waived"
    ERROR = "error"

    __hash__ = object.__hash__  # as Severity's


class SubjectKind(enum.Enum):
    """What a check looks at."""

    KUBERNETES_WORKLOAD = "kubernetes-workload"
    KUBERNETES_BUNDLE = "kubernetes-bundle"
    KUBERNETES_CLUSTER = "kubernetes-cluster"  # `factorygate audit`: what the API shows of a live cluster
    DOCKERFILE = "dockerfile"
    IMAGE = "image"


class Location(NamedTuple):
    """Where a finding points: a file (``-`` for stdin), a 1-based line and a JSON path."""

    file: str
    line: int | None = None
    path: str | None = None
    source: str | None = None  # e.g. the Helm template named by a "# Source:" comment


class Resource(NamedTuple):
    """The Kubernetes object a finding is about."""

    kind: str
    name: str
    namespace: str | None = None
    api_version: str | None = None

    def display(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {ns}{self.name}"


class Waiver(NamedTuple):
    """A waiver as applied to one finding."""

    justification: str
    approver: str
    expires: str  # ISO date
    source: str  # "policy" or "inline"
    expired: bool = False


class Outcome(NamedTuple):
    """What a check function yields: pass or fail, why, and where."""

    passed: bool
    message: str
    path: str
    container: str | None = None
    line: int | None = None  # set by checks of line-oriented subjects (Dockerfiles)


# ``new_record(Outcome, (passed, message, path, container, line))``: a record built in C, without the
# Python-level ``__new__`` a NamedTuple call runs. For the hottest allocations only (an Outcome and a
# Finding per check and subject); every field must be given, in order.
new_record = tuple.__new__


class Finding(NamedTuple):
    """One check's verdict on one subject (or one input error)."""

    check: str
    status: Status
    severity: Severity
    message: str
    location: Location
    requirements: tuple[str, ...] = ()
    nist: tuple[str, ...] = ()
    cci: tuple[str, ...] = ()
    resource: Resource | None = None
    container: str | None = None
    title: str = ""
    remediation: str = ""
    waiver: Waiver | None = None


class Requirement(NamedTuple):
    """A requirement of a source document (DISA guide, PSS, Compliant Kubernetes)."""

    id: str
    title: str
    ia_control: str
    cci: tuple[str, ...]
    automation: tuple[str, ...]
    summary: str
    source: str
    profile: str | None = None
    mapping: str = "source"

    @property
    def process_only(self) -> bool:
        return not self.automation


class CheckMeta(NamedTuple):
    """Catalog metadata of a built-in check."""

    id: str
    subject: SubjectKind
    requirements: tuple[str, ...]
    severity: Severity
    title: str
    description: str
    remediation: str
    parameters: tuple[str, ...] = ()
    examples: tuple[tuple[str, str], ...] = ()  # ("bad", text), ("good", text)
    nist: tuple[str, ...] = ()
    cci: tuple[str, ...] = ()
