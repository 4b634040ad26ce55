"""CycloneDX 1.5 JSON SBOM of an image's package inventory (``--sbom FILE``).

The BOM describes the image (``metadata.component``, type ``container``, with the manifest digest as
version and hash and a ``pkg:oci`` purl), its distribution (one ``operating-system`` component from
os-release) and every package as a ``library`` component with a purl, licences and the file it was
read from. Output is deterministic for the same image and inventory: the serial number is a UUIDv5 of
the manifest digest and the component references; only ``metadata.timestamp`` varies.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factorygate.oci.inventory import Package, make_purl

SPEC_VERSION = "1.5"
PROPERTY_PREFIX = "factorygate:"
_HASH_ALGS = {"sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512"}
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_SERIAL_NAMESPACE = uuid.UUID("6f0e3c57-3a3c-5b2e-9a49-1c1c2b8f3e10")  # fixed: serials are UUIDv5 under it

# SPDX licence identifiers written as {"license": {"id": ...}}; every one is in the SPDX list that the
# CycloneDX 1.5 schema enumerates (the tests check this). Others are written as licence names.
_SPDX_IDS = [
    "0BSD",
    "AFL-2.1",
    "AFL-3.0",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-1.1",
    "Apache-2.0",
    "APSL-2.0",
    "Artistic-1.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "Beerware",
    "BlueOak-1.0.0",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-2-Clause-Patent",
    "BSD-3-Clause",
    "BSD-3-Clause-Clear",
    "BSD-4-Clause",
    "BSD-Source-Code",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "CDDL-1.0",
    "CDDL-1.1",
    "CECILL-2.1",
    "CPL-1.0",
    "curl",
    "EPL-1.0",
    "EPL-2.0",
    "EUPL-1.1",
    "EUPL-1.2",
    "FSFAP",
    "FSFUL",
    "FSFULLR",
    "FTL",
    "GFDL-1.2-only",
    "GFDL-1.2-or-later",
    "GFDL-1.3-only",
    "GFDL-1.3-or-later",
    "GPL-1.0-only",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "HPND",
    "ICU",
    "IJG",
    "Info-ZIP",
    "ISC",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "Libpng",
    "libpng-2.0",
    "libtiff",
    "LPL-1.02",
    "LPPL-1.3c",
    "MIT",
    "MIT-0",
    "MIT-CMU",
    "MPL-1.1",
    "MPL-2.0",
    "MPL-2.0-no-copyleft-exception",
    "MS-PL",
    "MulanPSL-2.0",
    "NCSA",
    "NTP",
    "OFL-1.1",
    "OLDAP-2.8",
    "OpenSSL",
    "PHP-3.01",
    "PostgreSQL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "SGI-B-2.0",
    "Sleepycat",
    "TCL",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Unlicense",
    "UPL-1.0",
    "Vim",
    "W3C",
    "WTFPL",
    "X11",
    "Zlib",
    "ZPL-2.1",
    "GPL-2.0",
    "GPL-2.0+",
    "GPL-3.0",
    "GPL-3.0+",
    "LGPL-2.0",
    "LGPL-2.0+",
    "LGPL-2.1",
    "LGPL-2.1+",
    "LGPL-3.0",
    "LGPL-3.0+",
    "AGPL-3.0",
]
_SPDX_EXCEPTIONS = [
    "Autoconf-exception-2.0",
    "Autoconf-exception-3.0",
    "Bison-exception-2.2",
    "Classpath-exception-2.0",
    "GCC-exception-2.0",
    "GCC-exception-3.1",
    "Linux-syscall-note",
    "LLVM-exception",
    "Qt-LGPL-exception-1.1",
    "Universal-FOSS-exception-1.0",
    "WxWindows-exception-3.1",
]
_ID_BY_LOWER = {i.lower(): i for i in _SPDX_IDS}
_EXCEPTION_BY_LOWER = {e.lower(): e for e in _SPDX_EXCEPTIONS}
_WITH = "WITH"
_OPERATORS = frozenset({"AND", "OR", _WITH})


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the BOM says about the image itself.

    ``name`` is what the user typed; ``repository_url`` (``registry/repository``, no scheme) is known
    for registry pulls; ``os_release`` holds the parsed os-release fields (``ID``, ``VERSION_ID`` ...).
    """

    name: str
    manifest_digest: str  # "sha256:<hex>"; "" when there is no manifest (docker-archive)
    repository_url: str | None = None
    tag: str | None = None
    architecture: str | None = None
    config_digest: str | None = None
    os_release: Mapping[str, str] = field(default_factory=dict)


def sbom(image: ImageInfo, packages: Sequence[Package], tool_version: str, timestamp: str) -> dict[str, Any]:
    """The CycloneDX 1.5 document (a JSON-ready dict) for one image.

    ``timestamp`` is an RFC 3339 date-time (``2024-05-01T12:00:00Z``); anything else is a ValueError.
    """
    check_timestamp(timestamp)
    components: list[dict[str, Any]] = []
    os_component = _os_component(image.os_release)
    if os_component is not None:
        components.append(os_component)
    components.extend(_package_component(p, ref) for p, ref in zip(packages, _bom_refs(packages), strict=True))
    refs = [c["bom-ref"] for c in components]
    serial = uuid.uuid5(_SERIAL_NAMESPACE, "\n".join([image.manifest_digest or image.name, *refs]))
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": serial.urn,
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {
                "components": [
                    {
                        "type": "application",
                        "name": "factorygate",
                        "version": tool_version,
                        "description": "DoD DevSecOps security gates",
                    }
                ]
            },
            "component": _image_component(image),
        },
        "components": components,
    }


def check_timestamp(timestamp: str) -> None:
    """Raise ValueError unless ``timestamp`` is an RFC 3339 date-time with an offset."""
    if _RFC3339.fullmatch(timestamp) is None:
        raise ValueError(f"SBOM timestamp {timestamp!r} is not an RFC 3339 date-time such as 2024-05-01T12:00:00Z")
    dt.datetime.fromisoformat(timestamp.replace("z", "Z"))  # month 13, hour 25 ... raise ValueError


def write_sbom(path: str | Path, doc: Mapping[str, Any]) -> None:
    """Write the document as UTF-8 JSON with sorted keys and a final newline (``-`` is stdout)."""
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        return
    Path(path).write_text(text, encoding="utf-8")


# --- the image and its distribution ------------------------------------------------------------


def oci_purl(image: ImageInfo) -> str | None:
    """``pkg:oci/NAME@sha256:HEX?repository_url=…&tag=…`` (None without a manifest digest or name)."""
    if not image.manifest_digest:
        return None
    source = image.repository_url or image.name
    last = source.split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    name = last.split(":", 1)[0].lower()
    if not name:
        return None
    qualifiers = {"repository_url": image.repository_url, "tag": image.tag, "arch": image.architecture}
    return make_purl("oci", None, name, image.manifest_digest, qualifiers)


def _image_component(image: ImageInfo) -> dict[str, Any]:
    component: dict[str, Any] = {"type": "container", "name": image.name or "image"}
    purl = oci_purl(image)
    component["bom-ref"] = purl or f"image:{image.name}"
    if image.manifest_digest:
        component["version"] = image.manifest_digest
    if purl:
        component["purl"] = purl
    hashes = _hashes(image.manifest_digest)
    if hashes:
        component["hashes"] = hashes
    props = [
        ("image:repository_url", image.repository_url),
        ("image:tag", image.tag),
        ("image:architecture", image.architecture),
        ("image:config_digest", image.config_digest),
    ]
    properties = [{"name": PROPERTY_PREFIX + k, "value": v} for k, v in props if v]
    if properties:
        component["properties"] = properties
    return component


def _hashes(digest: str) -> list[dict[str, str]]:
    alg, _, hexdigest = digest.partition(":")
    name = _HASH_ALGS.get(alg)
    if name is None or not hexdigest or not all(c in "0123456789abcdef" for c in hexdigest):
        return []
    return [{"alg": name, "content": hexdigest}]


def _os_component(os_release: Mapping[str, str]) -> dict[str, Any] | None:
    distro_id = os_release.get("ID", "").strip().lower()
    if not distro_id:
        return None
    version = os_release.get("VERSION_ID", "").strip()
    component: dict[str, Any] = {
        "type": "operating-system",
        "bom-ref": f"os:{distro_id}@{version}" if version else f"os:{distro_id}",
        "name": distro_id,
    }
    if version:
        component["version"] = version
    pretty = os_release.get("PRETTY_NAME", "").strip()
    if pretty:
        component["description"] = pretty
    props = [(k, os_release.get(k, "").strip()) for k in ("ID_LIKE", "VERSION_CODENAME", "BUILD_ID", "VARIANT_ID")]
    properties = [{"name": f"{PROPERTY_PREFIX}os:{k.lower()}", "value": v} for k, v in props if v]
    if properties:
        component["properties"] = properties
    return component


# --- packages ----------------------------------------------------------------------------------


def _bom_refs(packages: Sequence[Package]) -> list[str]:
    """The purl, made unique by a ``package-id`` (hash of the source file) when a purl repeats."""
    counts: dict[str, int] = {}
    for p in packages:
        counts[p.purl] = counts.get(p.purl, 0) + 1
    refs: list[str] = []
    seen: set[str] = set()
    for p in packages:
        ref = p.purl
        if counts[p.purl] > 1:
            sep = "&" if "?" in p.purl else "?"
            package_id = uuid.uuid5(_SERIAL_NAMESPACE, p.source_path).hex[:16]
            ref = f"{p.purl}{sep}package-id={package_id}"
        base, n = ref, 1
        while ref in seen:  # the same purl twice from one file
            n += 1
            ref = f"{base}-{n}"
        seen.add(ref)
        refs.append(ref)
    return refs


def _package_component(pkg: Package, ref: str) -> dict[str, Any]:
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": ref,
        "name": pkg.name,
        "version": pkg.version,
        "purl": pkg.purl,
    }
    licenses = licence_choices(pkg.licenses)
    if licenses:
        component["licenses"] = licenses
    if pkg.vendor:
        component["publisher"] = pkg.vendor
    props = [
        ("package:type", pkg.type),
        ("package:source_path", pkg.source_path),
        ("package:source_name", pkg.source_name if pkg.source_name != pkg.name else None),
        ("package:source_version", pkg.source_version if pkg.source_version != pkg.version else None),
    ]
    component["properties"] = [{"name": PROPERTY_PREFIX + k, "value": v} for k, v in props if v]
    return component


def licence_choices(licences: Sequence[str]) -> list[dict[str, Any]]:
    """CycloneDX ``licenses``: one SPDX ``expression``, or a list of SPDX ids and licence names."""
    unique = list(dict.fromkeys(x.strip() for x in licences if x.strip()))
    if len(unique) == 1:
        expression = spdx_expression(unique[0])
        if expression is not None and expression not in _SPDX_IDS:
            return [{"expression": expression}]
    out: list[dict[str, Any]] = []
    for text in unique:
        spdx_id = _ID_BY_LOWER.get(text.lower())
        out.append({"license": {"id": spdx_id} if spdx_id else {"name": text}})
    return out


def spdx_expression(text: str) -> str | None:
    """``text`` in canonical case when it is an SPDX licence expression of known ids, else None.

    Operators must be upper-case (``MIT and BSD`` is a Fedora-style name, not an expression);
    ``LicenseRef-`` references and the ``+`` suffix are accepted.
    """
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    if not tokens:
        return None
    out: list[str] = []
    depth = 0
    expect_operand = True
    after_with = False
    for word in tokens:
        if word == "(":
            if not expect_operand:
                return None
            depth += 1
        elif word == ")":
            depth -= 1
            if depth < 0 or expect_operand:
                return None
        elif word in _OPERATORS:
            if expect_operand:
                return None
            expect_operand, after_with = True, word == _WITH
        else:
            canonical = _operand(word, after_with)
            if canonical is None or not expect_operand:
                return None
            word, expect_operand, after_with = canonical, False, False  # noqa: PLW2901
        out.append(word)
    if depth or expect_operand:
        return None
    return " ".join(out).replace("( ", "(").replace(" )", ")")


def _operand(token: str, exception: bool) -> str | None:
    if exception:
        return _EXCEPTION_BY_LOWER.get(token.lower())
    if token.startswith("LicenseRef-") and len(token) > 11:
        return token
    found = _ID_BY_LOWER.get(token.lower())
    if found is None and token.endswith("+"):
        base = _ID_BY_LOWER.get(token[:-1].lower())
        return base + "+" if base else None
    return found
