"""Scanner reports read into :class:`~factorygate.vulns.model.Observation` lists.

Three formats, detected from the content (never from the file name):

- Trivy JSON (``SchemaVersion`` 2 + ``Results[].Vulnerabilities[]``);
- Grype JSON (``matches[]`` + ``descriptor.name == "grype"``);
- CycloneDX 1.4+ JSON with ``vulnerabilities[]`` (``affects[].ref`` resolved to components by bom-ref).

Every problem is one :class:`VulnInputError` line naming the file: over the size limit (checked with
``os.stat`` before reading, and again while reading, so a pipe cannot outgrow it), not JSON, truncated
JSON, another tool's document, a Trivy report with no ``Results``, a field of the wrong type.
"""

from __future__ import annotations

import gc
import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from factorygate.vulns.model import SEVERITIES, Cvss, Observation, Package, VulnInputError, normalise_id

DEFAULT_MAX_BYTES = 256 * 1024 * 1024

# Scanner severity words (lowercased) onto model.SEVERITIES.
_SEVERITY_WORDS: dict[str, str] = {
    **{s: s for s in SEVERITIES},
    "none": "negligible",
    "info": "negligible",
    "informational": "negligible",
    "minor": "low",
    "moderate": "medium",
    "important": "high",
    "severe": "high",
}
# Trivy's VendorSeverity numbers.
_TRIVY_SEVERITY_NUMBERS = {0: "unknown", 1: "low", 2: "medium", 3: "high", 4: "critical"}

# Trivy result Type -> purl type (os-pkgs results carry the distro family as Type).
_TRIVY_TYPES: dict[str, str] = {
    "alpine": "apk",
    "wolfi": "apk",
    "chainguard": "apk",
    "debian": "deb",
    "ubuntu": "deb",
    "redhat": "rpm",
    "centos": "rpm",
    "rocky": "rpm",
    "alma": "rpm",
    "amazon": "rpm",
    "oracle": "rpm",
    "fedora": "rpm",
    "photon": "rpm",
    "suse linux enterprise server": "rpm",
    "opensuse.leap": "rpm",
    "opensuse.tumbleweed": "rpm",
    "cbl-mariner": "rpm",
    "azurelinux": "rpm",
    "python-pkg": "pypi",
    "pip": "pypi",
    "pipenv": "pypi",
    "poetry": "pypi",
    "uv": "pypi",
    "conda-pkg": "conda",
    "npm": "npm",
    "yarn": "npm",
    "pnpm": "npm",
    "node-pkg": "npm",
    "bun": "npm",
    "gomod": "golang",
    "gobinary": "golang",
    "jar": "maven",
    "pom": "maven",
    "gradle": "maven",
    "sbt": "maven",
    "bundler": "gem",
    "gemspec": "gem",
    "cargo": "cargo",
    "rust-binary": "cargo",
    "composer": "composer",
    "composer-vendor": "composer",
    "nuget": "nuget",
    "dotnet-core": "nuget",
    "packages-props": "nuget",
    "conan": "conan",
    "cocoapods": "cocoapods",
    "swift": "swift",
    "pub": "pub",
    "hex": "hex",
    "julia": "julia",
}
# Grype artifact type -> purl type.
_GRYPE_TYPES: dict[str, str] = {
    "apk": "apk",
    "deb": "deb",
    "rpm": "rpm",
    "python": "pypi",
    "npm": "npm",
    "go-module": "golang",
    "java-archive": "maven",
    "jenkins-plugin": "maven",
    "gem": "gem",
    "rust-crate": "cargo",
    "dotnet": "nuget",
    "php-composer": "composer",
    "conan": "conan",
    "cocoapods": "cocoapods",
    "swift": "swift",
    "dart-pub": "pub",
    "hex": "hex",
    "binary": "generic",
}

# What is left after a JSON error when the file was cut inside a literal or a number.
_CUT_LITERAL = re.compile(r"t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?|-?[0-9.eE+-]*")
_ID_IN_TEXT = re.compile(r"\b(CVE-\d{4}-\d{4,}|GHSA(?:-[23456789cfghjmpqrvwx]{4}){3})\b", re.IGNORECASE)


class _Ctx:
    """Where we are, for one-line errors that name the file and the place in it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, message: str) -> VulnInputError:
        return VulnInputError(f"{self.path}: {message}")


# --- reading ---------------------------------------------------------------------------------------


def _read_bounded(path: str, max_bytes: int) -> bytes:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise VulnInputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if st.st_size > max_bytes:
        raise VulnInputError(f"{path}: {st.st_size} bytes is over the {max_bytes}-byte limit for a scanner report")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise VulnInputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise VulnInputError(f"{path}: over the {max_bytes}-byte limit for a scanner report")
    return data


def _parse_json(path: str, data: bytes) -> Any:
    text_start = data.lstrip()[:1]
    if not text_start:
        raise VulnInputError(f"{path}: empty file, not a scanner report")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if data.lstrip()[:1] not in (b"{", b"["):
        raise VulnInputError(f"{path}: not JSON (a scanner report must be Trivy, Grype or CycloneDX JSON)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VulnInputError(f"{path}: not UTF-8 text at byte {exc.start}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # Past the last character, or a string that never closes: the document was cut short.
        rest = text[exc.pos :].rstrip()
        if not rest or exc.msg.startswith("Unterminated string") or _CUT_LITERAL.fullmatch(rest):
            raise VulnInputError(f"{path}: truncated JSON (the document ends at line {exc.lineno})") from exc
        raise VulnInputError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise VulnInputError(f"{path}: JSON nested too deeply") from exc


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile.

    Parsing a report allocates millions of acyclic objects (JSON trees, observations); each allocation
    burst would otherwise trigger full collections that walk all of them again (measured: more than half
    of the time of loading two 20,000-finding reports). Reference counting still frees everything.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_report(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Observation]:
    """Read one Trivy, Grype or CycloneDX report (format detected from content) into observations."""
    data = _read_bounded(path, max_bytes)
    with gc_paused():
        doc = _parse_json(path, data)
        del data
        observations = parse_report(doc, path)
        del doc  # freed before collection resumes, so that it does not walk the tree first
    return observations


def parse_report(doc: Any, path: str = "<report>") -> list[Observation]:
    """Observations from an already parsed JSON document (``path`` only names it in errors)."""
    ctx = _Ctx(path)
    if not isinstance(doc, dict):
        raise ctx.fail("not a scanner report (a JSON object is expected: Trivy, Grype or CycloneDX)")
    if "SchemaVersion" in doc and ("ArtifactName" in doc or "Results" in doc or "ArtifactType" in doc):
        return list(_trivy(doc, ctx))
    if "matches" in doc:
        descriptor = doc.get("descriptor")
        name = descriptor.get("name") if isinstance(descriptor, dict) else None
        if name not in (None, "grype"):
            raise ctx.fail(f"a report with matches from {name!r}, not Grype")
        return list(_grype(doc, ctx))
    if doc.get("bomFormat") == "CycloneDX":
        return list(_cyclonedx(doc, ctx))
    raise ctx.fail(_describe_unknown(doc))


def _describe_unknown(doc: Mapping[str, Any]) -> str:
    if "spdxVersion" in doc:
        return "an SPDX document, not a scanner report (Trivy, Grype or CycloneDX with vulnerabilities)"
    descriptor = doc.get("descriptor")
    if isinstance(descriptor, dict) and isinstance(descriptor.get("name"), str):
        return f"a {descriptor['name']} document, not a scanner report (Trivy, Grype or CycloneDX with vulnerabilities)"
    if "SchemaVersion" in doc:
        return "a Trivy report with no Results"
    return "unknown report format (expected Trivy, Grype or CycloneDX 1.4+ JSON with vulnerabilities)"


# --- typed accessors -------------------------------------------------------------------------------


# ``where`` + ``field`` name the place in errors; they are joined only then (this runs per field).
def _place(where: str, field: str) -> str:
    return f"{where}.{field}" if field else where


def _obj(value: Any, ctx: _Ctx, where: str, field: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ctx.fail(f"{_place(where, field)} must be an object")
    return value


def _list(value: Any, ctx: _Ctx, where: str, field: str = "") -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ctx.fail(f"{_place(where, field)} must be a list")
    return value


def _str(value: Any, ctx: _Ctx, where: str, field: str = "", required: bool = False) -> str:
    if value.__class__ is str and (value or not required):
        return str(value)
    if value is None and not required:
        return ""
    raise ctx.fail(f"{_place(where, field)} must be a {'non-empty ' if required else ''}string")


def _severity(word: Any, ctx: _Ctx, where: str, field: str = "") -> str:
    if word is None or word == "":
        return "unknown"
    if not isinstance(word, str):
        raise ctx.fail(f"{_place(where, field)} must be a string")
    return _SEVERITY_WORDS.get(word.strip().lower(), "unknown")


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _split_versions(text: str) -> tuple[str, ...]:
    return tuple(sorted({v.strip() for v in text.split(",") if v.strip()}))


def _cvss_version(vector: str | None, default: str) -> str:
    if vector and vector.startswith("CVSS:"):
        return vector[5:].split("/", 1)[0]
    return default


def _date(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --- purl ------------------------------------------------------------------------------------------


def purl_parts(purl: str) -> tuple[str, str, str, str, dict[str, str]] | None:
    """(type, namespace, name, version, qualifiers) of a package URL, decoded; ``None`` if not one."""
    if not purl.startswith("pkg:"):
        return None
    rest = purl[4:].lstrip("/").split("#", 1)[0]
    rest, _, query = rest.partition("?")
    qualifiers: dict[str, str] = {}
    for pair in query.split("&") if query else ():
        key, _, value = pair.partition("=")
        qualifiers[key.lower()] = unquote(value)
    ptype, _, path = rest.partition("/")
    if not ptype or not path:
        return None
    head, _, last = path.rpartition("/")
    last, _, version = last.partition("@")
    segments = [unquote(s) for s in head.split("/") if s] if head else []
    return ptype.lower(), "/".join(segments), unquote(last), unquote(version), qualifiers


# --- Trivy -----------------------------------------------------------------------------------------


def _trivy(doc: dict[str, Any], ctx: _Ctx) -> Iterator[Observation]:
    schema = doc.get("SchemaVersion")
    if schema != 2:
        raise ctx.fail(f"Trivy SchemaVersion {schema!r} is not supported (2 is)")
    if "Results" not in doc or doc["Results"] is None:
        raise ctx.fail("a Trivy report with no Results (was it a vulnerability scan?)")
    results = _list(doc["Results"], ctx, "Results")
    artifact = doc.get("ArtifactName") if isinstance(doc.get("ArtifactName"), str) else ""
    for r_index, raw_result in enumerate(results):
        rwhere = f"Results[{r_index}]"
        result = _obj(raw_result, ctx, rwhere)
        target = _str(result.get("Target"), ctx, rwhere, "Target") or str(artifact)
        cls = _str(result.get("Class"), ctx, rwhere, "Class")
        rtype = _str(result.get("Type"), ctx, rwhere, "Type").lower()
        ptype = _TRIVY_TYPES.get(rtype, rtype)
        for v_index, raw in enumerate(_list(result.get("Vulnerabilities"), ctx, rwhere, "Vulnerabilities")):
            where = f"Results[{r_index}].Vulnerabilities[{v_index}]"
            vuln = _obj(raw, ctx, where)
            vid = _str(vuln.get("VulnerabilityID"), ctx, where, "VulnerabilityID", required=True)
            name = _str(vuln.get("PkgName"), ctx, where, "PkgName", required=True)
            version = _str(vuln.get("InstalledVersion"), ctx, where, "InstalledVersion")
            purl: str | None = None
            ident = vuln.get("PkgIdentifier")
            if isinstance(ident, dict) and isinstance(ident.get("PURL"), str) and ident["PURL"]:
                purl = ident["PURL"]
            pkg_path = _str(vuln.get("PkgPath"), ctx, where, "PkgPath") or (target if cls == "lang-pkgs" else "")
            aliases = {a for a in _list(vuln.get("VendorIDs"), ctx, where, "VendorIDs") if isinstance(a, str) and a}
            aliases.discard(vid)
            yield Observation(
                scanner="trivy",
                vuln_id=vid,
                aliases=frozenset(aliases),
                package=Package(name, version, ptype, purl, pkg_path or None),
                severity=_trivy_severity(vuln, ctx, where),
                fixed_versions=_split_versions(_str(vuln.get("FixedVersion"), ctx, where, "FixedVersion")),
                cvss=_trivy_cvss(vuln.get("CVSS")),
                title=_str(vuln.get("Title"), ctx, where, "Title"),
                target=target,
                published=_date(vuln.get("PublishedDate")),
            )


def _trivy_severity(vuln: dict[str, Any], ctx: _Ctx, where: str) -> str:
    severity = _severity(vuln.get("Severity"), ctx, where, "Severity")
    if severity == "unknown":
        source = vuln.get("SeveritySource")
        vendor = vuln.get("VendorSeverity")
        if isinstance(source, str) and isinstance(vendor, dict) and isinstance(vendor.get(source), int):
            return _TRIVY_SEVERITY_NUMBERS.get(vendor[source], "unknown")
    return severity


def _trivy_cvss(raw: Any) -> tuple[Cvss, ...]:
    if not isinstance(raw, dict):
        return ()
    out: list[Cvss] = []
    for source, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        for prefix, default in (("V2", "2.0"), ("V3", "3.1"), ("V40", "4.0")):
            vector = entry.get(f"{prefix}Vector")
            vector = vector if isinstance(vector, str) and vector else None
            score = _num(entry.get(f"{prefix}Score"))
            if vector is None and score is None:
                continue
            out.append(Cvss(str(source), _cvss_version(vector, default), vector, score))
    return tuple(out)


# --- Grype -----------------------------------------------------------------------------------------


def _grype(doc: dict[str, Any], ctx: _Ctx) -> Iterator[Observation]:
    matches = _list(doc["matches"], ctx, "matches")
    target = _grype_target(doc.get("source"))
    for m_index, raw in enumerate(matches):
        where = f"matches[{m_index}]"
        match = _obj(raw, ctx, where)
        vuln = _obj(match.get("vulnerability"), ctx, where, "vulnerability")
        artifact = _obj(match.get("artifact"), ctx, where, "artifact")
        vid = _str(vuln.get("id"), ctx, where, "vulnerability.id", required=True)
        aliases: set[str] = set()
        cvss = list(_grype_cvss(vuln.get("cvss")))
        for rel in _list(match.get("relatedVulnerabilities"), ctx, where, "relatedVulnerabilities"):
            rel_id = rel.get("id") if rel.__class__ is dict else None
            if rel_id.__class__ is not str or not rel_id:
                raise ctx.fail(f"{where}.relatedVulnerabilities[] must be objects with an id")
            aliases.add(rel_id)
            if rel.get("cvss"):
                cvss.extend(_grype_cvss(rel["cvss"]))
        for adv in _list(vuln.get("advisories"), ctx, where, "vulnerability.advisories"):
            if isinstance(adv, dict) and isinstance(adv.get("id"), str) and adv["id"]:
                aliases.add(adv["id"])
        aliases.discard(vid)
        fixed: tuple[str, ...] = ()
        fix_published: str | None = None
        fix = vuln.get("fix")
        if isinstance(fix, dict):
            versions = _list(fix.get("versions"), ctx, where, "vulnerability.fix.versions")
            fixed = tuple(sorted({v for v in versions if isinstance(v, str) and v}))
            dates = [
                a["date"]
                for a in _list(fix.get("available"), ctx, where, "vulnerability.fix.available")
                if isinstance(a, dict) and isinstance(a.get("date"), str) and a["date"]
            ]
            fix_published = min(dates) if dates else None
        name = _str(artifact.get("name"), ctx, where, "artifact.name", required=True)
        version = _str(artifact.get("version"), ctx, where, "artifact.version")
        atype = _str(artifact.get("type"), ctx, where, "artifact.type")
        purl = _str(artifact.get("purl"), ctx, where, "artifact.purl") or None
        path = None
        locations = _list(artifact.get("locations"), ctx, where, "artifact.locations")
        paths = sorted(loc["path"] for loc in locations if isinstance(loc, dict) and isinstance(loc.get("path"), str))
        if paths:
            path = paths[0]
        yield Observation(
            scanner="grype",
            vuln_id=vid,
            aliases=frozenset(aliases),
            package=Package(name, version, _GRYPE_TYPES.get(atype, atype), purl, path),
            severity=_severity(vuln.get("severity"), ctx, where, "vulnerability.severity"),
            fixed_versions=fixed,
            cvss=tuple(cvss),
            title=_str(vuln.get("description"), ctx, where, "vulnerability.description").split("\n", 1)[0][:200],
            target=target,
            published=_date(vuln.get("published")),
            fix_published=fix_published,
        )


def _grype_target(source: Any) -> str:
    if not isinstance(source, dict):
        return ""
    target = source.get("target")
    if isinstance(target, str):
        return target
    if isinstance(target, dict):
        for key in ("userInput", "path", "name"):
            if isinstance(target.get(key), str):
                return str(target[key])
    return ""


def _grype_cvss(raw: Any) -> Iterator[Cvss]:
    if not isinstance(raw, list):
        return
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        vector = entry.get("vector") if isinstance(entry.get("vector"), str) and entry.get("vector") else None
        metrics = entry.get("metrics")
        score = _num(metrics.get("baseScore")) if isinstance(metrics, dict) else None
        version = entry.get("version") if isinstance(entry.get("version"), str) else None
        if vector is None and score is None:
            continue
        source = entry.get("source") if isinstance(entry.get("source"), str) else "grype"
        yield Cvss(str(source), version or _cvss_version(vector, "3.1"), vector, score)


# --- CycloneDX -------------------------------------------------------------------------------------

_CDX_METHODS = {"cvssv2": "2.0", "cvssv3": "3.0", "cvssv31": "3.1", "cvssv4": "4.0"}


def _cyclonedx(doc: dict[str, Any], ctx: _Ctx) -> Iterator[Observation]:
    spec = doc.get("specVersion")
    try:
        major, minor = (int(p) for p in str(spec).split(".")[:2])
    except ValueError:
        raise ctx.fail(f"CycloneDX specVersion {spec!r} is not a version") from None
    if (major, minor) < (1, 4):
        raise ctx.fail(f"CycloneDX {spec} has no vulnerabilities (1.4 or later is needed)")
    if "vulnerabilities" not in doc:
        raise ctx.fail("a CycloneDX SBOM with no vulnerabilities, not a scanner report")
    vulns = _list(doc["vulnerabilities"], ctx, "vulnerabilities")
    components = _cdx_components(doc, ctx)
    scanner = "cyclonedx:" + _cdx_tool(doc) if _cdx_tool(doc) else "cyclonedx"
    metadata = doc.get("metadata")
    target = ""
    if isinstance(metadata, dict) and isinstance(metadata.get("component"), dict):
        target = str(metadata["component"].get("name") or "")
    for v_index, raw in enumerate(vulns):
        where = f"vulnerabilities[{v_index}]"
        vuln = _obj(raw, ctx, where)
        vid = _str(vuln.get("id"), ctx, where, "id", required=True)
        aliases: set[str] = set()
        for ref in _list(vuln.get("references"), ctx, where, "references"):
            if isinstance(ref, dict) and isinstance(ref.get("id"), str) and ref["id"]:
                aliases.add(ref["id"])
        for adv in _list(vuln.get("advisories"), ctx, where, "advisories"):
            if isinstance(adv, dict):
                text = f"{adv.get('title') or ''} {adv.get('url') or ''}"
                aliases.update(_ID_IN_TEXT.findall(text))
        aliases = {normalise_id(a) for a in aliases}
        aliases.discard(vid)
        severity = "unknown"
        cvss: list[Cvss] = []
        for r_index, rating in enumerate(_list(vuln.get("ratings"), ctx, where, "ratings")):
            rating_obj = _obj(rating, ctx, where, f"ratings[{r_index}]")
            sev = _severity(rating_obj.get("severity"), ctx, where, f"ratings[{r_index}].severity")
            if SEVERITIES.index(sev) > SEVERITIES.index(severity):
                severity = sev
            method = str(rating_obj.get("method") or "").lower()
            if method in _CDX_METHODS:
                source = rating_obj.get("source")
                source_name = source.get("name") if isinstance(source, dict) else None
                vector = rating_obj.get("vector") if isinstance(rating_obj.get("vector"), str) else None
                cvss.append(
                    Cvss(
                        str(source_name or scanner).lower(),
                        _cvss_version(vector, _CDX_METHODS[method]),
                        vector or None,
                        _num(rating_obj.get("score")),
                    )
                )
        title = _str(vuln.get("description"), ctx, where, "description").split("\n", 1)[0][:200]
        for a_index, affect in enumerate(_list(vuln.get("affects"), ctx, where, "affects")):
            affect_obj = _obj(affect, ctx, where, f"affects[{a_index}]")
            ref = _str(affect_obj.get("ref"), ctx, where, f"affects[{a_index}].ref", required=True)
            package = components.get(ref) or _package_from_purl(ref)
            if package is None:
                raise ctx.fail(f"{where} ({vid}) affects {ref!r}, which is no component's bom-ref")
            fixed = sorted(
                {
                    v["version"]
                    for v in _list(affect_obj.get("versions"), ctx, where, f"affects[{a_index}].versions")
                    if isinstance(v, dict) and v.get("status") == "unaffected" and isinstance(v.get("version"), str)
                }
            )
            yield Observation(
                scanner=scanner,
                vuln_id=vid,
                aliases=frozenset(aliases),
                package=package,
                severity=severity,
                fixed_versions=tuple(fixed),
                cvss=tuple(cvss),
                title=title,
                target=target,
                published=_date(vuln.get("published")),
            )


def _package_from_purl(purl: str) -> Package | None:
    parts = purl_parts(purl)
    if parts is None:
        return None
    ptype, namespace, name, version, _ = parts
    return Package(f"{namespace}/{name}" if namespace else name, version, ptype, purl)


def _cdx_components(doc: dict[str, Any], ctx: _Ctx) -> dict[str, Package]:
    out: dict[str, Package] = {}
    stack: list[Any] = list(_list(doc.get("components"), ctx, "components"))
    metadata = doc.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("component"), dict):
        stack.append(metadata["component"])
    while stack:
        comp = stack.pop()
        if not isinstance(comp, dict):
            raise ctx.fail("components must be objects")
        stack.extend(_list(comp.get("components"), ctx, "components[].components"))
        ref = comp.get("bom-ref")
        if not isinstance(ref, str) or not ref:
            continue
        purl = comp.get("purl") if isinstance(comp.get("purl"), str) and comp.get("purl") else None
        name = str(comp.get("name") or "")
        group = comp.get("group")
        parts = purl_parts(purl) if purl else None
        ptype = parts[0] if parts else ""
        if isinstance(group, str) and group and ptype == "maven":
            name = f"{group}:{name}"
        out[ref] = Package(name, str(comp.get("version") or ""), ptype, purl)
    return out


def _cdx_tool(doc: dict[str, Any]) -> str:
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        return ""
    tools = metadata.get("tools")
    entries: list[Any] = []
    if isinstance(tools, list):  # CycloneDX 1.4
        entries = tools
    elif isinstance(tools, dict):  # CycloneDX 1.5+
        entries = [*_as_list(tools.get("components")), *_as_list(tools.get("services"))]
    names = sorted(str(e["name"]).lower() for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str))
    return names[0] if names else ""


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
