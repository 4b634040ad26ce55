"""Load and validate the packaged catalog (requirements.yaml, checks.yaml)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from factorygate.errors import CatalogError
from factorygate.model import CheckMeta, Requirement, Severity, SubjectKind


@dataclass(frozen=True)
class Catalog:
    """Requirements by id and check metadata by id, in catalog order."""

    requirements: dict[str, Requirement]
    checks: dict[str, CheckMeta]
    sources: dict[str, dict[str, str | None]]

    def checks_for(self, requirement_id: str) -> list[CheckMeta]:
        """The control -> checks view."""
        return [c for c in self.checks.values() if requirement_id in c.requirements]


def _read(name: str) -> object:
    text = resources.files("factorygate.catalog").joinpath(name).read_text(encoding="utf-8")
    return yaml.load(text, Loader=yaml.CSafeLoader)


@functools.cache
def load_catalog(validate: bool = False) -> Catalog:
    """Load the packaged catalog once; raise :class:`CatalogError` when it is inconsistent.

    The strict schema (catalog/schema.py, pydantic) is applied with ``validate=True`` or when
    FACTORYGATE_VALIDATE_CATALOG is set; the tests always validate the packaged files. Without it,
    references and duplicates are still checked here."""
    raw_reqs, raw_checks = _read("requirements.yaml"), _read("checks.yaml")
    if validate or os.environ.get("FACTORYGATE_VALIDATE_CATALOG"):
        from factorygate.catalog.schema import validate as validate_schema

        validate_schema(raw_reqs, raw_checks)
    try:
        return _build(raw_reqs, raw_checks)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CatalogError(f"packaged catalog is invalid: {type(e).__name__}: {e}") from e


def _build(raw_reqs: Any, raw_checks: Any) -> Catalog:
    requirements: dict[str, Requirement] = {}
    for r in raw_reqs["requirements"]:
        if r["id"] in requirements:
            raise CatalogError(f"duplicate requirement id {r['id']}")
        requirements[r["id"]] = Requirement(
            id=r["id"],
            title=r["title"],
            ia_control=r["ia_control"],
            cci=tuple(r["cci"]),
            automation=tuple(r["automation"]),
            summary=r["summary"],
            source=r["id"].split("-", 1)[0],
            profile=r.get("profile"),
            mapping=r.get("mapping", "source"),
        )
    metas: dict[str, CheckMeta] = {}
    for c in raw_checks["checks"]:
        if c["id"] in metas:
            raise CatalogError(f"duplicate check id {c['id']}")
        unknown = [q for q in c["requirements"] if q not in requirements]
        if unknown:
            raise CatalogError(f"check {c['id']} names unknown requirements {unknown}")
        nist = tuple(dict.fromkeys(requirements[q].ia_control for q in c["requirements"]))
        cci = tuple(dict.fromkeys(x for q in c["requirements"] for x in requirements[q].cci))
        metas[c["id"]] = CheckMeta(
            id=c["id"],
            subject=SubjectKind(c["subject"]),
            requirements=tuple(c["requirements"]),
            severity=Severity(c["severity"]),
            title=c["title"],
            description=" ".join(c["description"].split()),
            remediation=c["remediation"],
            parameters=tuple(c.get("parameters", ())),
            examples=tuple(sorted(c.get("examples", {}).items())),
            nist=nist,
            cci=cci,
        )
    sources = {k: dict(v) for k, v in raw_reqs["sources"].items()}
    return Catalog(requirements=requirements, checks=metas, sources=sources)
