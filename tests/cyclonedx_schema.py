"""The official CycloneDX 1.5 JSON schema (tests/data/schemas/cyclonedx) as a ready validator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parent / "data" / "schemas" / "cyclonedx"


def bom_validator() -> Draft7Validator:
    """A Draft 7 validator of bom-1.5 with its $refs (spdx, jsf) resolved locally and formats checked."""
    resources = []
    for name in ("bom-1.5.schema.json", "spdx.schema.json", "jsf-0.82.schema.json"):
        schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema)))
    registry: Registry[Any] = Registry().with_resources(resources)
    bom = json.loads((SCHEMAS / "bom-1.5.schema.json").read_text(encoding="utf-8"))
    return Draft7Validator(bom, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)
