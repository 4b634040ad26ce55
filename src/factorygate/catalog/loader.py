"""Load and validate the packaged catalog (requirements.yaml, checks.yaml)."""

from __future__ import annotations

import functools
import json
import os
import zlib
from typing import Any, NamedTuple

from factorygate.errors import CatalogError
from factorygate.model import CheckMeta, Requirement, Severity, SubjectKind


class Catalog(NamedTuple):  # a NamedTuple: cheaper to create at import than a dataclass
    """Requirements by id and check metadata by id, in catalog order."""

    requirements: dict[str, Requirement]
    checks: dict[str, CheckMeta]
    sources: dict[str, dict[str, str | None]]

    def checks_for(self, requirement_id: str) -> list[CheckMeta]:
        """The control -> checks view."""
        return [c for c in self.checks.values() if requirement_id in c.requirements]


_HERE = os.path.dirname(__file__)
SOURCES = ("requirements.yaml", "checks.yaml")
# The YAML files parsed once at build time (scripts/gen_docs.py writes it, the tests check it): a
# scan reads JSON with the C parser and never imports PyYAML for the catalog. It carries the
# length and CRC-32 of the YAML it came from (a staleness check, not a security boundary: whoever
# can edit one can edit the other); when the YAML has been edited since, the YAML is read instead.
COMPILED = "catalog.json"


def _source_bytes() -> list[bytes]:
    out = []
    for name in SOURCES:
        with open(os.path.join(_HERE, name), "rb") as f:
            out.append(f.read())
    return out


def _sources_digest(sources: list[bytes]) -> str:
    return " ".join(f"{len(data)}:{zlib.crc32(data):08x}" for data in sources)


def _parse_yaml(sources: list[bytes]) -> tuple[Any, Any]:
    import yaml  # only when the compiled catalog is stale or validation is asked for

    reqs, checks = (yaml.load(data.decode("utf-8"), Loader=yaml.CSafeLoader) for data in sources)
    return reqs, checks


def compiled_catalog_text() -> str:
    """The text of catalog.json for the current YAML files."""
    sources = _source_bytes()
    reqs, checks = _parse_yaml(sources)
    doc = {"sources": _sources_digest(sources), "requirements": reqs, "checks": checks}
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def _read_raw(validate: bool) -> tuple[Any, Any]:
    sources = _source_bytes()
    if not validate:
        try:
            with open(os.path.join(_HERE, COMPILED), "rb") as f:
                doc = json.loads(f.read())
            if doc.get("sources") == _sources_digest(sources):
                return doc["requirements"], doc["checks"]
        except (OSError, ValueError, AttributeError):
            pass  # missing or unreadable: the YAML is the source of truth
    return _parse_yaml(sources)


@functools.cache
def load_catalog(validate: bool = False) -> Catalog:
    """Load the packaged catalog once; raise :class:`CatalogError` when it is inconsistent.

    The strict schema (catalog/schema.py, pydantic) is applied with ``validate=True`` or when
    FACTORYGATE_VALIDATE_CATALOG is set; the tests always validate the packaged files. Without it,
    references and duplicates are still checked here."""
    validate = validate or bool(os.environ.get("FACTORYGATE_VALIDATE_CATALOG"))
    raw_reqs, raw_checks = _read_raw(validate)
    if validate:
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
