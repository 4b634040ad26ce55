"""Load and validate the packaged catalog (requirements.yaml, checks.yaml)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from factorygate.errors import CatalogError
from factorygate.model import CheckMeta, Requirement, Severity, SubjectKind

_REQ_ID = r"^(CICDG-[23]\.\d{1,2}|PSS-[a-z][a-z-]*|CK-[a-z][a-z-]*)$"
_CHECK_ID = r"^[a-z0-9]+(-[a-z0-9]+)+$"
Automation = Literal["manifest", "image", "dockerfile", "cluster"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RequirementModel(_Strict):
    id: str = Field(pattern=_REQ_ID)
    title: str = Field(min_length=1)
    ia_control: str = Field(min_length=2)
    cci: list[str] = Field(min_length=1)
    automation: list[Automation]
    summary: str = Field(min_length=1)
    profile: Literal["baseline", "restricted"] | None = None
    mapping: Literal["source", "derived"] = "source"


class _Source(_Strict):
    title: str
    version: str
    date: str | None = None


class _RequirementsFile(_Strict):
    schema_version: Literal[1]
    sources: dict[str, _Source]
    requirements: list[_RequirementModel]


class _CheckModel(_Strict):
    id: str = Field(pattern=_CHECK_ID)
    subject: SubjectKind
    requirements: list[str] = Field(min_length=1)
    severity: Severity
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    remediation: str = Field(min_length=1)
    parameters: list[str] = []
    examples: dict[Literal["bad", "good"], str] = {}


class _ChecksFile(_Strict):
    schema_version: Literal[1]
    checks: list[_CheckModel]


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
def load_catalog() -> Catalog:
    """Load the packaged catalog once; raise :class:`CatalogError` when it is inconsistent."""
    try:
        reqs = _RequirementsFile.model_validate(_read("requirements.yaml"))
        checks = _ChecksFile.model_validate(_read("checks.yaml"))
    except ValidationError as e:
        raise CatalogError(f"packaged catalog is invalid: {e}") from e
    requirements: dict[str, Requirement] = {}
    for r in reqs.requirements:
        if r.id in requirements:
            raise CatalogError(f"duplicate requirement id {r.id}")
        requirements[r.id] = Requirement(
            id=r.id,
            title=r.title,
            ia_control=r.ia_control,
            cci=tuple(r.cci),
            automation=tuple(r.automation),
            summary=r.summary,
            source=r.id.split("-", 1)[0],
            profile=r.profile,
            mapping=r.mapping,
        )
    metas: dict[str, CheckMeta] = {}
    for c in checks.checks:
        if c.id in metas:
            raise CatalogError(f"duplicate check id {c.id}")
        unknown = [q for q in c.requirements if q not in requirements]
        if unknown:
            raise CatalogError(f"check {c.id} names unknown requirements {unknown}")
        nist = tuple(dict.fromkeys(requirements[q].ia_control for q in c.requirements))
        cci = tuple(dict.fromkeys(x for q in c.requirements for x in requirements[q].cci))
        metas[c.id] = CheckMeta(
            id=c.id,
            subject=c.subject,
            requirements=tuple(c.requirements),
            severity=c.severity,
            title=c.title,
            description=" ".join(c.description.split()),
            remediation=c.remediation,
            parameters=tuple(c.parameters),
            examples=tuple(sorted(c.examples.items())),
            nist=nist,
            cci=cci,
        )
    sources = {k: v.model_dump() for k, v in reqs.sources.items()}
    return Catalog(requirements=requirements, checks=metas, sources=sources)
