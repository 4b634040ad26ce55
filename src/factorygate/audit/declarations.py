"""Policy-file declarations of implementations factorygate does not know (``conformance.implementations``).

Stdlib dataclasses like policy/schema.py: built without a validation library on the scan path, validated by
pydantic when a policy *file* is read. Rules raise :class:`FieldProblem` naming the field (and so its line)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

# No import of factorygate.policy here: policy/schema.py imports this module.
STRICT: dict[str, Any] = {"extra": "forbid"}  # as policy.schema.STRICT


def _problem(field_name: str, message: str) -> ValueError:
    from factorygate.policy.schema import FieldProblem

    return FieldProblem(field_name, message)


# The capabilities of the conformance scorecard (docs/conformance.md); conformance_data.CAPABILITIES follows
# this order (tested).
CAPABILITY_IDS = (
    "service-mesh-mtls",
    "network-policy",
    "admission-control",
    "logging-agent",
    "runtime-defense",
    "vulnerability-management",
    "gitops",
    "image-signature-verification",
    "certificate-management",
)

# Patterns as text: compiled (and cached by re) only when a policy file declares something.
_KIND_KEY = r"^[A-Z][A-Za-z0-9]*(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_VERSION = r"^v[0-9]+((alpha|beta)[0-9]+)?$"
_PLURAL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


@dataclass(frozen=True)
class Detect:
    """Which API objects show a declared implementation: every given field must match.

    ``kind`` is a kind key (``DaemonSet.apps``, ``Namespace``, ``EdrAgent.edr.example.com``); ``namespace``
    and ``name`` are shell-style globs; ``labels`` must all be present with these values. ``version`` (and
    ``plural``, default: the lowercase kind + "s") are needed for kinds factorygate does not read itself."""

    __pydantic_config__: ClassVar[dict[str, Any]] = STRICT
    kind: str
    namespace: str | None = None
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    plural: str | None = None

    def __post_init__(self) -> None:
        if not re.match(_KIND_KEY, self.kind):
            raise _problem("kind", f"expected a kind key like DaemonSet.apps or Kind.group, not {self.kind!r}")
        if self.version is not None and not re.match(_VERSION, self.version):
            raise _problem("version", f"expected an API version like v1 or v1beta1, not {self.version!r}")
        if self.plural is not None and not re.match(_PLURAL, self.plural):
            raise _problem("plural", f"expected a lowercase resource name, not {self.plural!r}")
        from factorygate.audit.conformance_kinds import WANTED_KEYS  # only when a policy file is validated

        if self.kind not in WANTED_KEYS and self.version is None:
            raise _problem(
                "version",
                f"{self.kind} is not a kind factorygate reads by itself: give its API version (and plural)",
            )

    @property
    def group(self) -> str:
        return self.kind.partition(".")[2]

    @property
    def kind_name(self) -> str:
        return self.kind.partition(".")[0]


@dataclass(frozen=True)
class DeclaredImplementation:
    """An implementation of a capability that factorygate does not know (``name`` is shown in the scorecard)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = STRICT
    capability: str
    name: str
    detect: Detect

    def __post_init__(self) -> None:
        if self.capability not in CAPABILITY_IDS:
            raise _problem("capability", f"unknown capability {self.capability!r}; one of {list(CAPABILITY_IDS)}")
        if not self.name.strip():
            raise _problem("name", "must not be blank")


@dataclass(frozen=True)
class ConformanceDeclarations:
    """The ``conformance`` section of a policy file."""

    __pydantic_config__: ClassVar[dict[str, Any]] = STRICT
    implementations: list[DeclaredImplementation] = field(default_factory=list)
