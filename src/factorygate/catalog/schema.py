"""Strict schema of the packaged catalog files (pydantic). The tests validate the packaged files
with it; at run time the catalog is read without it (start-up stays fast; see loader.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from factorygate.errors import CatalogError
from factorygate.model import Severity, SubjectKind

_REQ_ID = r"^(CICDG-[23]\.\d{1,2}|PSS-[a-z][a-z-]*|CK-[a-z][a-z-]*|V-\d{6})$"
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


class RequirementsFile(_Strict):
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


class ChecksFile(_Strict):
    schema_version: Literal[1]
    checks: list[_CheckModel]


def validate(requirements: object, checks: object) -> tuple[RequirementsFile, ChecksFile]:
    """Validate the two catalog documents; raise :class:`CatalogError` naming what is wrong."""
    try:
        return RequirementsFile.model_validate(requirements), ChecksFile.model_validate(checks)
    except ValidationError as e:
        raise CatalogError(f"packaged catalog is invalid: {e}") from e
