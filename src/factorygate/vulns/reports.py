"""Scanner reports read into :class:`~factorygate.vulns.model.Observation` lists.

Three formats, detected from the content (never from the file name):

- Trivy JSON (``SchemaVersion`` 2 + ``Results[].Vulnerabilities[]``);
- Grype JSON (``matches[]`` + ``descriptor.name == "grype"``);
- CycloneDX 1.4+ JSON with ``vulnerabilities[]`` (``affects[].ref`` resolved to components by bom-ref).

Reports are read as a stream (:func:`load_report`): one finding at a time is decoded and turned into
an observation, and what is not read is stepped over, so memory follows the number of findings (about
1 KB each), not the size of the file. The tools' own key order (Trivy: a result's ``Target``, ``Class``
and ``Type`` before its ``Vulnerabilities``; CycloneDX: ``metadata`` and ``components`` before
``vulnerabilities``) is streamed; findings that come before what they need are held until it comes.

Every problem is one :class:`VulnInputError` line naming the file: over the size limit (checked with
``os.stat`` before reading, and again while reading, so a pipe cannot outgrow it), not JSON, truncated
JSON, invalid JSON (line and column), another tool's document, a Trivy report with no ``Results``, a
field of the wrong type.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any
from urllib.parse import unquote

from factorygate.vulns.jsonstream import JsonStream, JsonStreamError
from factorygate.vulns.model import SEVERITIES, Cvss, Observation, Package, VulnInputError, normalise_id

DEFAULT_MAX_BYTES = 512 * 1024 * 1024  # vulns merge|gate|vex --max-report-size

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
_SEVERITY_SEEN: dict[str, str] = {}
_NO_ALIASES: frozenset[str] = frozenset()  # shared: most findings have none (an empty frozenset is 216 bytes)
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

_ID_IN_TEXT = re.compile(r"\b(CVE-\d{4}-\d{4,}|GHSA(?:-[23456789cfghjmpqrvwx]{4}){3})\b", re.IGNORECASE)


class _Ctx:
    """Where we are, for one-line errors that name the file and the place in it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, message: str) -> VulnInputError:
        return VulnInputError(f"{self.path}: {message}")


# --- reading ---------------------------------------------------------------------------------------


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile.

    Parsing a report allocates millions of acyclic objects (JSON trees, observations); each allocation
    burst would otherwise trigger full collections that walk all of them again (measured: more than half
    of the time of loading two 20,000-finding reports). Reference counting still frees everything.
    On the way out, what exists is frozen (``gc.freeze``) rather than walked by the next collection:
    the observations and findings made meanwhile live as long as the command does.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.freeze()  # what was made meanwhile is long-lived: later collections need not walk it either
            gc.enable()


def load_report(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Observation]:
    """Read one Trivy, Grype or CycloneDX report (format detected from content) into observations.

    The report is read forward in chunks (:mod:`factorygate.vulns.jsonstream`): each finding is decoded,
    turned into an observation and dropped, and the parts of the report that are not read (Trivy's
    package lists, secrets and misconfigurations, Grype's match details, CycloneDX dependencies) are
    stepped over without being built. Memory follows the number of findings, not the size of the file.
    """
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise VulnInputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if size > max_bytes:
        raise VulnInputError(f"{path}: {size} bytes is over the {max_bytes}-byte limit for a scanner report")
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, after the stream is read
    except OSError as exc:
        raise VulnInputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        with fh, gc_paused():
            return _stream_report(JsonStream(fh, path, max_bytes), _Ctx(path))
    except OSError as exc:
        raise VulnInputError(f"{path}: cannot read: {exc.strerror or exc}") from exc


# Top-level fields read whole (small); the arrays of findings are streamed; everything else is skipped.
_TOP_FIELDS = frozenset(
    {"SchemaVersion", "ArtifactName", "ArtifactType", "descriptor", "source", "bomFormat", "specVersion", "metadata"}
)
_TRIVY_RESULT_FIELDS = ("Target", "Class", "Type")


class _Found:
    """The observations read from one format's arrays, and the first problem with one of its findings
    (reported after any problem with the document as a whole)."""

    def __init__(self) -> None:
        self.observations: list[Observation] = []
        self.problem: VulnInputError | None = None

    def keep(self, make: Any, *args: Any) -> None:
        """Add the observations ``make(*args)`` returns; the first problem is kept for later."""
        if self.problem is not None:
            return
        try:
            self.observations.extend(make(*args))
        except VulnInputError as exc:
            self.problem = exc


class _Streamed:
    """What one pass over a report collects: the small top-level fields, and per format (the document
    says which it is only as a whole) what its arrays of findings gave."""

    def __init__(self, ctx: _Ctx) -> None:
        self.ctx = ctx
        self.top: dict[str, Any] = {}
        self.found = {"trivy": _Found(), "grype": _Found(), "cyclonedx": _Found()}
        self.pending_cdx: list[Any] = []  # CycloneDX vulnerabilities that came before components/metadata
        self.grype_untargeted = False  # Grype matches that came before the source (the target)


def _format_of(doc: Mapping[str, Any]) -> str | None:
    """Which report ``doc`` is, by the tests :func:`parse_report` makes (in its order)."""
    if "SchemaVersion" in doc and ("ArtifactName" in doc or "Results" in doc or "ArtifactType" in doc):
        return "trivy"
    if "matches" in doc:
        return "grype"
    if doc.get("bomFormat") == "CycloneDX":
        return "cyclonedx"
    return None


def _each(st: JsonStream, found: _Found, make: Callable[[Any, int], Any], many: bool = False) -> None:
    """``make(item, index)`` of every item of the array that starts here: one observation, or with
    ``many`` any number of them; after the first problem with an item (kept for later), the rest are
    only read."""
    items = st.array_values()
    if found.problem is None:
        add = found.observations.extend if many else found.observations.append
        try:
            for index, raw in enumerate(items):
                add(make(raw, index))
        except JsonStreamError:
            raise
        except VulnInputError as exc:
            found.problem = exc
    for _ in items:
        pass


def _stream_report(st: JsonStream, ctx: _Ctx) -> list[Observation]:
    first = st.peek()
    if not first:
        raise ctx.fail("empty file, not a scanner report")
    if first not in "{[":
        raise ctx.fail("not JSON (a scanner report must be Trivy, Grype or CycloneDX JSON)")
    if first == "[":  # not a report: read it whole (within the size limit) for the usual message
        doc = st.value()
        st.end()
        return parse_report(doc, ctx.path)
    run = _Streamed(ctx)
    top = run.top
    for key in st.object_keys():
        if key in _TOP_FIELDS or key == "spdxVersion":
            top[key] = st.value()
        elif key in ("Results", "matches", "vulnerabilities", "components") and st.peek() == "[":
            if key == "Results":
                top[key] = []
                _stream_trivy_results(st, run)
            elif key == "matches":
                top[key] = []
                target = _grype_target(top.get("source")) if "source" in top else None
                known = target or ""
                _each(st, run.found["grype"], partial(_grype_match, ctx=ctx, target=known))
                run.grype_untargeted = target is None
            elif key == "components":
                top[key] = list(st.array_values())
            else:
                top[key] = []
                _stream_cdx_vulnerabilities(st, run)
        elif key in ("Results", "matches", "vulnerabilities", "components"):
            top[key] = st.value()  # not an array: the checks below say what is wrong
        else:
            st.skip()
            top.setdefault(key, None)
    st.end()
    return _finish(run)


def _finish(run: _Streamed) -> list[Observation]:
    """The document as a whole: the same checks and messages as for a parsed document (the streamed
    arrays stand empty in it, or hold what was not an array, for the usual message); then what the
    arrays of its format gave."""
    ctx, top = run.ctx, run.top
    parse_report(top, ctx.path)
    fmt = _format_of(top)
    if fmt is None:
        return []
    found = run.found[fmt]
    if found.problem is not None:
        raise found.problem
    observations = found.observations
    if fmt == "cyclonedx" and run.pending_cdx:
        components = _cdx_components(top, ctx)
        scanner, target = _cdx_scanner_and_target(top)
        for v_index, raw in enumerate(run.pending_cdx):
            observations.extend(_cdx_vuln(raw, ctx, v_index, (components, scanner, target)))
    if fmt == "grype" and run.grype_untargeted:
        target = _grype_target(top.get("source"))
        if target:  # Grype writes its source after the matches (tuple.__new__: 4x faster than _replace)
            new = tuple.__new__
            observations = [new(Observation, (*o[:8], target, *o[9:])) for o in observations]
    return observations


def _stream_trivy_results(st: JsonStream, run: _Streamed) -> None:
    ctx = run.ctx
    found = run.found["trivy"]
    artifact = run.top.get("ArtifactName")
    for r_index in st.array_items():
        rwhere = f"Results[{r_index}]"
        if found.problem is not None:
            st.skip()
            continue
        if st.peek() != "{":
            found.keep(_trivy_non_object, st.value(), ctx, rwhere)
            continue
        result: dict[str, Any] = {}
        waiting: list[Any] = []  # findings that came before Target/Class/Type: parsed when the result ends
        context: _TrivyContext | None = None
        for key in st.object_keys():
            if key in _TRIVY_RESULT_FIELDS:
                result[key] = st.value()
            elif key == "Vulnerabilities" and st.peek() == "[":
                if found.problem is None and context is None:
                    known = all(k in result for k in _TRIVY_RESULT_FIELDS)
                    if known and (result["Target"] or isinstance(artifact, str)):
                        try:
                            context = _trivy_context(result, ctx, rwhere, artifact if isinstance(artifact, str) else "")
                        except VulnInputError as exc:
                            found.problem = exc
                if context is not None:
                    _each(st, found, partial(_trivy_vuln, ctx=ctx, r_index=r_index, context=context))
                elif found.problem is None:
                    waiting.extend(st.array_values())
                else:
                    st.skip()
            elif key == "Vulnerabilities":
                result[key] = st.value()  # not a list: checked below
            else:
                st.skip()
        if found.problem is not None:
            continue
        if "Vulnerabilities" in result or waiting or context is None:
            art = run.top.get("ArtifactName")
            result.setdefault("Vulnerabilities", waiting)
            found.keep(_trivy_result_rest, result, ctx, r_index, art if isinstance(art, str) else "")


def _trivy_non_object(raw: Any, ctx: _Ctx, rwhere: str) -> list[Observation]:
    _obj(raw, ctx, rwhere)
    return []


def _trivy_result_rest(result: dict[str, Any], ctx: _Ctx, r_index: int, artifact: str) -> list[Observation]:
    """A result whose findings could not be parsed as they came (read whole instead)."""
    rwhere = f"Results[{r_index}]"
    context = _trivy_context(result, ctx, rwhere, artifact)
    vulns = _list(result.get("Vulnerabilities"), ctx, rwhere, "Vulnerabilities")
    return [_trivy_vuln(raw, v_index, ctx, r_index, context) for v_index, raw in enumerate(vulns)]


def _stream_cdx_vulnerabilities(st: JsonStream, run: _Streamed) -> None:
    ctx, top = run.ctx, run.top
    found = run.found["cyclonedx"]
    ready = "components" in top and "metadata" in top
    components: dict[str, Package] = {}
    scanner = target = ""
    if ready:
        try:
            components = _cdx_components(top, ctx)
        except VulnInputError as exc:
            found.problem = exc
        scanner, target = _cdx_scanner_and_target(top)
    if found.problem is not None:
        st.skip()
    elif ready:
        cdx = (components, scanner, target)
        _each(st, found, lambda raw, v_index: _cdx_vuln(raw, ctx, v_index, cdx), many=True)
    else:
        run.pending_cdx.extend(st.array_values())


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
    known = _SEVERITY_SEEN.get(word) if word.__class__ is str else None
    if known is not None:
        return known
    if word is None or word == "":
        return "unknown"
    if not isinstance(word, str):
        raise ctx.fail(f"{_place(where, field)} must be a string")
    severity = _SEVERITY_WORDS.get(word.strip().lower(), "unknown")
    if len(_SEVERITY_SEEN) < 64:  # the words scanners use, as they spell them ("HIGH", "High")
        _SEVERITY_SEEN[word] = severity
    return severity


def _num(value: Any) -> float | None:
    if value.__class__ is float:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):  # a tuple: no union object per call
        return None
    return float(value)


def _split_versions(text: str) -> tuple[str, ...]:
    if "," not in text:
        text = text.strip()
        return (text,) if text else ()
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
    _trivy_check(doc, ctx)
    results = _list(doc["Results"], ctx, "Results")
    artifact = doc.get("ArtifactName") if isinstance(doc.get("ArtifactName"), str) else ""
    for r_index, raw_result in enumerate(results):
        rwhere = f"Results[{r_index}]"
        result = _obj(raw_result, ctx, rwhere)
        context = _trivy_context(result, ctx, rwhere, str(artifact))
        for v_index, raw in enumerate(_list(result.get("Vulnerabilities"), ctx, rwhere, "Vulnerabilities")):
            yield _trivy_vuln(raw, v_index, ctx, r_index, context)


def _trivy_check(doc: dict[str, Any], ctx: _Ctx) -> None:
    schema = doc.get("SchemaVersion")
    if schema != 2:
        raise ctx.fail(f"Trivy SchemaVersion {schema!r} is not supported (2 is)")
    if "Results" not in doc or doc["Results"] is None:
        raise ctx.fail("a Trivy report with no Results (was it a vulnerability scan?)")


_TrivyContext = tuple[str, str, str]  # (target, class, purl type) of one Trivy result


def _trivy_context(result: dict[str, Any], ctx: _Ctx, rwhere: str, artifact: str) -> _TrivyContext:
    target = _str(result.get("Target"), ctx, rwhere, "Target") or artifact
    cls = _str(result.get("Class"), ctx, rwhere, "Class")
    rtype = _str(result.get("Type"), ctx, rwhere, "Type").lower()
    return target, cls, _TRIVY_TYPES.get(rtype, rtype)


def _trivy_vuln(raw: Any, v_index: int, ctx: _Ctx, r_index: int, context: _TrivyContext) -> Observation:
    target, cls, ptype = context
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
    return Observation(
        scanner="trivy",
        vuln_id=vid,
        aliases=frozenset(aliases) if aliases else _NO_ALIASES,
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


_TRIVY_CVSS_KEYS = (("V2Vector", "V2Score", "2.0"), ("V3Vector", "V3Score", "3.1"), ("V40Vector", "V40Score", "4.0"))


def _trivy_cvss(raw: Any) -> tuple[Cvss, ...]:
    if not isinstance(raw, dict):
        return ()
    out: list[Cvss] = []
    for source, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        for vector_key, score_key, default in _TRIVY_CVSS_KEYS:
            vector = entry.get(vector_key)
            score = entry.get(score_key)
            if vector is None and score is None:
                continue
            vector = vector if isinstance(vector, str) and vector else None
            score = _num(score)
            if vector is None and score is None:
                continue
            out.append(Cvss(str(source), _cvss_version(vector, default), vector, score))
    return tuple(out)


# --- Grype -----------------------------------------------------------------------------------------


def _grype(doc: dict[str, Any], ctx: _Ctx) -> Iterator[Observation]:
    matches = _list(doc["matches"], ctx, "matches")
    target = _grype_target(doc.get("source"))
    for m_index, raw in enumerate(matches):
        yield _grype_match(raw, m_index, ctx, target)


def _grype_match(raw: Any, m_index: int, ctx: _Ctx, target: str) -> Observation:
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
    return Observation(
        scanner="grype",
        vuln_id=vid,
        aliases=frozenset(aliases) if aliases else _NO_ALIASES,
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
_OWN_SCANNERS = frozenset({"factorygate-osv"})
_SOURCE_PATH_PROPERTY = "factorygate:package:source_path"


def _cyclonedx(doc: dict[str, Any], ctx: _Ctx) -> Iterator[Observation]:
    _cdx_check(doc, ctx)
    vulns = _list(doc["vulnerabilities"], ctx, "vulnerabilities")
    components = _cdx_components(doc, ctx)
    scanner, target = _cdx_scanner_and_target(doc)
    for v_index, raw in enumerate(vulns):
        yield from _cdx_vuln(raw, ctx, v_index, (components, scanner, target))


def _cdx_check(doc: dict[str, Any], ctx: _Ctx) -> None:
    spec = doc.get("specVersion")
    try:
        major, minor = (int(p) for p in str(spec).split(".")[:2])
    except ValueError:
        raise ctx.fail(f"CycloneDX specVersion {spec!r} is not a version") from None
    if (major, minor) < (1, 4):
        raise ctx.fail(f"CycloneDX {spec} has no vulnerabilities (1.4 or later is needed)")
    if "vulnerabilities" not in doc:
        raise ctx.fail("a CycloneDX SBOM with no vulnerabilities, not a scanner report")


def _cdx_scanner_and_target(doc: dict[str, Any]) -> tuple[str, str]:
    tool = _cdx_tool(doc)
    # factorygate's own matcher (vulns scan --format cyclonedx) comes back under its scanner name.
    scanner = tool if tool in _OWN_SCANNERS else f"cyclonedx:{tool}" if tool else "cyclonedx"
    metadata = doc.get("metadata")
    target = ""
    if isinstance(metadata, dict) and isinstance(metadata.get("component"), dict):
        target = str(metadata["component"].get("name") or "")
    return scanner, target


_CdxContext = tuple[Mapping[str, Package], str, str]  # components by bom-ref, scanner, target


def _cdx_vuln(raw: Any, ctx: _Ctx, v_index: int, cdx: _CdxContext) -> Iterator[Observation]:
    components, scanner, target = cdx
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
    title = _str(vuln.get("description"), ctx, where, "description").split("\n", 1)[0][:500]
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
            aliases=frozenset(aliases) if aliases else _NO_ALIASES,
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
        path = next(
            (
                p["value"]
                for p in _as_list(comp.get("properties"))
                if isinstance(p, dict) and p.get("name") == _SOURCE_PATH_PROPERTY and isinstance(p.get("value"), str)
            ),
            None,
        )
        out[ref] = Package(name, str(comp.get("version") or ""), ptype, purl, path or None)
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
