"""The vendored evidence schemas (tests/data/schemas/oscal, tests/data/schemas/hdf) as validators."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
from tests.conftest import ROOT

SCHEMAS = ROOT / "tests" / "data" / "schemas"
OSCAL_SCHEMA = SCHEMAS / "oscal" / "oscal_complete_schema-1.2.3.json"
HDF_SCHEMA = SCHEMAS / "hdf" / "exec-json.schema.json"
INSPECJS_PARSER = SCHEMAS / "hdf" / "inspecjs-2.12.6-exec-json.js"


def _search(pattern: str, instance: str) -> bool:
    """XML Schema / ECMAScript patterns of the OSCAL schema: ``\\p{L}`` classes need the ``regex`` module;
    without it they are rewritten to the equivalent Python classes."""
    try:
        import regex
    except ImportError:
        py = pattern.replace(r"\p{L}", r"[^\W\d_]").replace(r"\p{N}", r"\d")
        return re.search(py, instance) is not None
    return regex.search(pattern, instance) is not None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def oscal_validator() -> Any:
    schema = json.loads(OSCAL_SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.extend(jsonschema.Draft7Validator, {"pattern": _pattern})
    return cls(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


@functools.cache
def hdf_validator() -> Any:
    schema = json.loads(HDF_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _leaves(error: jsonschema.ValidationError) -> Iterator[jsonschema.ValidationError]:
    """The errors under a oneOf/anyOf (the OSCAL schema is one oneOf over the document models)."""
    if not error.context:
        yield error
    for sub in error.context:
        yield from _leaves(sub)


def errors(validator: Any, doc: object) -> list[str]:
    """Every schema violation as "path: message"; under oneOf, those of the branch that got furthest."""
    out = []
    for e in validator.iter_errors(doc):
        leaves = list(_leaves(e))
        deepest = max(len(x.absolute_path) for x in leaves)
        out += [
            f"{'/'.join(map(str, x.absolute_path))}: {x.message[:300]}"
            for x in leaves
            if len(x.absolute_path) == deepest
        ]
    return out
