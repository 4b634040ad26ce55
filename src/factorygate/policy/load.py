"""Read a policy file and explain what is wrong with it, naming the line and the field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from factorygate.errors import FactorygateError, PolicyError
from factorygate.policy.schema import FieldProblem, Policy, WaiverRule

if TYPE_CHECKING:  # PyYAML is imported when a policy file is read, not for the default policy
    import yaml

MAX_POLICY_BYTES = 4 * 1024 * 1024
T = TypeVar("T")


def default_policy_text() -> str:
    """The packaged default policy, with its comments."""
    with open(os.path.join(os.path.dirname(__file__), "default-policy.yaml"), encoding="utf-8") as f:
        return f.read()


def line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the deepest node on ``loc`` that exists in the YAML."""
    import yaml

    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


def validate_document(
    text: str,
    name: str,
    cls: type[T],
    *,
    described: str,
    kind: str,
    docs: str | None,
    error: type[FactorygateError],
) -> tuple[T, yaml.Node | None]:
    """The first YAML document of ``text`` validated as ``cls`` (a factorygate.dev/v1 file of ``kind``),
    with its node tree for further line lookups. Every problem is raised as one ``error`` listing
    ``name:line: field: problem`` lines; ``described`` names such a file ("a policy")."""
    from factorygate.inputs.safeyaml import LoadedDocument, YamlProblem, load_documents

    first = next(iter(load_documents(text.encode("utf-8", "surrogatepass"))), None)
    if isinstance(first, YamlProblem):
        where = f"{name}:{first.line}" if first.line else name
        raise error(f"{where}: {first.message}")
    node = first.node if isinstance(first, LoadedDocument) else None
    data: Any = first.data if isinstance(first, LoadedDocument) else None
    if not isinstance(data, dict):
        raise error(f"{name}:1: {described} is a mapping with apiVersion: factorygate.dev/v1 and kind: {kind}")
    parsed, invalid = validate_dataclass(cls, data, docs)
    if parsed is None:
        lines = []
        for loc, msg in invalid:
            field = ".".join(str(p) for p in loc) or "(top level)"
            lines.append(f"{name}:{line_of(node, loc)}: {field}: {msg}")
        raise error(f"invalid {kind.lower()}:\n  " + "\n  ".join(lines))
    return parsed, node


def parse_policy(text: str, name: str, known_checks: set[str] | None = None) -> Policy:
    """Validate policy text; raise :class:`PolicyError` with ``name:line: field: problem`` lines."""
    policy, node = validate_document(
        text, name, Policy, described="a policy", kind="Policy", docs="docs/policy.md", error=PolicyError
    )
    if known_checks is not None:
        problems = []
        for key in policy.checks:
            if key not in known_checks:
                problems.append(f"{name}:{line_of(node, ('checks', key))}: checks.{key}: unknown check id")
        for i, w in enumerate(policy.waivers):
            if w.check not in known_checks:
                line = line_of(node, ("waivers", i, "check"))
                problems.append(f"{name}:{line}: waivers.{i}.check: unknown check id {w.check!r}")
        if problems:
            raise PolicyError("invalid policy:\n  " + "\n  ".join(problems))
    return policy


def validate_dataclass(
    cls: type[T], data: object, docs: str | None = "docs/policy.md"
) -> tuple[T | None, list[tuple[tuple[int | str, ...], str]]]:
    """Validate ``data`` against a schema dataclass with pydantic (imported only here, when a file is read).

    ``docs`` is the page an "unknown field" problem points to."""
    from pydantic import TypeAdapter, ValidationError

    # Policy.conformance names this class only under TYPE_CHECKING (scans do not import it); TypeAdapter
    # resolves such forward references in its caller's namespace, which is here
    from factorygate.audit.declarations import ConformanceDeclarations  # noqa: F401

    try:
        return TypeAdapter(cls).validate_python(data), []
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc, msg = tuple(err["loc"]), err["msg"]
            cause = (err.get("ctx") or {}).get("error")
            if err["type"] in ("unexpected_keyword_argument", "extra_forbidden"):  # dataclass, NamedTuple
                msg = f"unknown field (a typo? see {docs})" if docs else "unknown field (a typo?)"
            elif isinstance(cause, FieldProblem):  # a record's own rule (_checked, __post_init__): its field
                loc, msg = (*loc, cause.field), str(cause)
            problems.append((loc, msg))
        return None, problems


def validate_waiver(data: dict[str, object]) -> WaiverRule | str:
    """An inline waiver's rule, or the first problem as ``field: message``."""
    rule, problems = validate_dataclass(WaiverRule, data)
    if rule is None:
        loc, msg = problems[0]
        return f"{'.'.join(str(x) for x in loc)}: {msg}"
    return rule


def load_policy(path: str | None, known_checks: set[str] | None = None) -> Policy:
    """Load the policy at ``path``, or the built-in default (no file read, no validation) when None."""
    if path is None:
        return Policy.default()
    p = Path(path)
    try:
        if p.stat().st_size > MAX_POLICY_BYTES:
            raise PolicyError(f"{path}: policy file is larger than {MAX_POLICY_BYTES // 1024 // 1024} MiB")
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(f"{path}: cannot read policy: {e}") from e
    return parse_policy(text, path, known_checks)
