"""The offline matcher: an SBOM's packages against a mirrored OSV database.

:func:`load_osv` reads the OSV records a user mirrors into an air-gapped network: a directory tree of
``*.json`` files (one advisory per file) and/or the per-ecosystem ``all.zip`` exports of osv.dev (zip
members are read as streams). A file that cannot be read is one line in :attr:`OsvDatabase.problems`;
loading goes on. :meth:`OsvDatabase.match` checks packages against the records of their OSV ecosystem
(``Debian:12``, ``Alpine:v3.19``, ``PyPI``, ``npm``, ...) with that ecosystem's version ordering (dpkg,
apk, RPM, PEP 440, semver, Maven, RubyGems, NuGet: the ``univers`` library) and returns one
:class:`~factorygate.vulns.model.Observation` per vulnerable package and advisory.

:func:`packages_from_sbom` reads the packages of a CycloneDX JSON SBOM (the one ``factorygate image
--sbom`` writes, or another tool's). Distribution advisories (Debian, Ubuntu, Alpine) name *source*
packages, so the source name and version are taken from the factorygate properties or from the purl
``upstream`` qualifier (syft) when present; the observation still names the installed binary package.

Speed: ``load_osv(path, only=packages)`` parses only the records that name one of the packages (a
byte-level prefilter), records are indexed by (ecosystem, name) and turned into ranges on first use,
versions are parsed once per (scheme, string). Loading runs with the cyclic GC off and freezes what
it loaded (``gc.freeze``): 50,000 parsed records would otherwise be rescanned by every collection.
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote

from factorygate.vulns.model import SEVERITIES, Cvss, Observation, Package, VulnInputError

if TYPE_CHECKING:
    from univers.versions import Version

SCANNER = "factorygate-osv"
MAX_ADVISORY_BYTES = 16 * 1024 * 1024  # one OSV record (the largest Debian ones are a few hundred KiB)
MAX_SBOM_BYTES = 512 * 1024 * 1024
_PROPERTY_PREFIX = "factorygate:package:"

# purl type -> OSV ecosystem, for the types whose ecosystem does not depend on the distribution.
PURL_ECOSYSTEMS = {
    "pypi": "PyPI",
    "npm": "npm",
    "golang": "Go",
    "maven": "Maven",
    "gem": "RubyGems",
    "cargo": "crates.io",
    "nuget": "NuGet",
    "composer": "Packagist",
    "hex": "Hex",
    "pub": "Pub",
}
# os-release ID (the purl ``distro`` qualifier's first part, or the purl namespace) -> OSV ecosystem
# prefix, per purl type. The release part of the ecosystem is written by :func:`_release`.
_DISTRO_ECOSYSTEMS = {
    ("deb", "debian"): "Debian",
    ("deb", "ubuntu"): "Ubuntu",
    ("apk", "alpine"): "Alpine",
    ("rpm", "almalinux"): "AlmaLinux",
    ("rpm", "alma"): "AlmaLinux",
    ("rpm", "rocky"): "Rocky Linux",
    ("rpm", "rhel"): "Red Hat",
    ("rpm", "redhat"): "Red Hat",
    ("rpm", "sles"): "SUSE",
    ("rpm", "sled"): "SUSE",
    ("rpm", "sles_sap"): "SUSE",
    ("rpm", "suse"): "SUSE",
    ("rpm", "opensuse-leap"): "openSUSE:Leap",
    ("rpm", "opensuse-tumbleweed"): "openSUSE:Tumbleweed",
}
# The distro ids above, longest first: "opensuse-leap-15.5" is the id "opensuse-leap" and release 15.5.
_DISTRO_IDS = sorted({distro for _, distro in _DISTRO_ECOSYSTEMS}, key=len, reverse=True)
# OSV ecosystem prefix (before ":") -> version scheme name (a univers class, resolved lazily).
_SCHEMES = {
    "Debian": "DebianVersion",
    "Ubuntu": "DebianVersion",
    "Alpine": "AlpineLinuxVersion",
    "AlmaLinux": "RpmVersion",
    "Rocky Linux": "RpmVersion",
    "Red Hat": "RpmVersion",
    "openSUSE": "RpmVersion",
    "SUSE": "RpmVersion",
    "Mageia": "RpmVersion",
    "PyPI": "PypiVersion",
    "npm": "SemverVersion",
    "Go": "GolangVersion",
    "crates.io": "SemverVersion",
    "Hex": "SemverVersion",
    "Pub": "SemverVersion",
    "Maven": "MavenVersion",
    "RubyGems": "RubygemsVersion",
    "NuGet": "NugetVersion",
    "Packagist": "ComposerVersion",
}
_SEVERITY_WORDS = {
    "critical": "critical",
    "high": "high",
    "important": "high",
    "moderate": "medium",
    "medium": "medium",
    "low": "low",
    "negligible": "negligible",
    "unimportant": "negligible",
}
_EVENT_ORDER = {"introduced": 0, "fixed": 1, "last_affected": 2}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SEPARATORS = re.compile(rb"[-_.]+")
# Every JSON string value of a "name" key: the prefilter's candidates (package names, and more).
_NAME_VALUES = re.compile(rb'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _line(text: str) -> str:
    return _CONTROL.sub("?", text)


# --- package names and ecosystems ------------------------------------------------------------------


def normalize_name(ecosystem: str, name: str) -> str:
    """The name as indexed: PEP 503 for PyPI, as written otherwise."""
    if ecosystem == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name


class Purl(NamedTuple):
    type: str
    namespace: str | None
    name: str
    version: str | None
    qualifiers: dict[str, str]


def parse_purl(purl: str) -> Purl | None:
    """A package URL split into its parts (percent-decoded), or None when it is not one."""
    if not purl.startswith("pkg:"):
        return None
    rest = purl[4:].lstrip("/").partition("#")[0]
    rest, _, query = rest.partition("?")
    qualifiers: dict[str, str] = {}
    for pair in query.split("&") if query else ():
        key, _, value = pair.partition("=")
        if key and value:
            qualifiers[key.lower()] = unquote(value)
    version: str | None = None
    head, at, tail = rest.rpartition("@")
    if at and "/" not in tail and "/" in head:
        rest, version = head, unquote(tail)
    type_, _, path = rest.partition("/")
    segments = [unquote(s) for s in path.split("/") if s]
    if not type_ or not segments:
        return None
    namespace = "/".join(segments[:-1]) or None
    return Purl(type_.lower(), namespace, segments[-1], version, qualifiers)


def ecosystem_of(purl: Purl) -> str | None:
    """The OSV ecosystem of a package URL (``Debian:12``, ``Alpine:v3.19``, ``PyPI``), None if unknown."""
    if purl.type in PURL_ECOSYSTEMS:
        return PURL_ECOSYSTEMS[purl.type]
    distro = purl.qualifiers.get("distro", "").lower()
    distro_id, release = next(
        ((d, distro[len(d) + 1 :]) for d in _DISTRO_IDS if distro == d or distro.startswith(d + "-")), ("", "")
    )
    if (purl.type, distro_id) not in _DISTRO_ECOSYSTEMS:
        distro_id, release = (purl.namespace or "").lower(), ""
    prefix = _DISTRO_ECOSYSTEMS.get((purl.type, distro_id))
    if prefix is None:
        return None
    if prefix.startswith("openSUSE:"):  # the ecosystem names the product: "openSUSE:Leap 15.5", "openSUSE:Tumbleweed"
        return f"{prefix} {release}" if prefix == "openSUSE:Leap" and release else prefix
    return f"{prefix}:{_release(prefix, release)}" if release and _release(prefix, release) else prefix


def _release(prefix: str, release: str) -> str:
    """The release as the OSV ecosystem of ``prefix`` spells it ("" when it cannot be written)."""
    parts = release.split(".")
    if prefix == "Alpine":
        return f"v{parts[0]}.{parts[1]}" if len(parts) >= 2 else ""
    if prefix == "Ubuntu":
        return ".".join(parts[:2])
    if prefix == "SUSE":  # "15.5" -> "15 SP5"; "15" and "15.0" -> "15"
        return f"{parts[0]} SP{parts[1]}" if len(parts) >= 2 and parts[1] not in ("", "0") else parts[0]
    return parts[0]


def ecosystem_applies(record_ecosystem: str, wanted: str) -> bool:
    """Whether an OSV record's ecosystem covers a package of ecosystem ``wanted`` (from :func:`ecosystem_of`).

    A record without a release (``Debian``) covers every release. Otherwise the release must agree, as
    each distribution spells it: ``Ubuntu:22.04:LTS`` covers ``Ubuntu:22.04`` (the Ubuntu Pro and FIPS
    streams, ``Ubuntu:Pro:...``, are not the standard archive and do not); ``Red Hat:enterprise_linux:9::
    appstream`` and ``Red Hat:rhel_eus:9.2::baseos`` cover ``Red Hat:9``; ``SUSE:Linux Enterprise Server
    15 SP5`` and the SLE modules of 15 SP5 cover ``SUSE:15 SP5``. A package whose release is unknown
    (``Debian``) is matched only by records without a release.
    """
    if record_ecosystem == wanted:
        return True
    base, _, release = wanted.partition(":")
    record_base, _, record_release = record_ecosystem.partition(":")
    if record_base != base:
        return False
    if not record_release:
        return True
    if not release:
        return False
    if base == "Ubuntu":
        return record_release.split(":", 1)[0] == release
    if base == "Red Hat":
        fields = record_release.split(":")
        return len(fields) > 1 and fields[1].split(".", 1)[0] == release
    if base == "SUSE":
        return record_release.endswith(" " + release)
    return False


def osv_name(purl: Purl, ecosystem: str) -> str:
    """The package name as OSV records of ``ecosystem`` spell it."""
    if ecosystem == "Maven":
        return f"{purl.namespace}:{purl.name}" if purl.namespace else purl.name
    if ecosystem in {"npm", "Go", "Packagist"} and purl.namespace:
        return f"{purl.namespace}/{purl.name}"
    return normalize_name(ecosystem, purl.name)


class SbomPackage(NamedTuple):
    """A package read from an SBOM, with the source package that distribution advisories name."""

    package: Package
    source_name: str | None = None
    source_version: str | None = None


class Sbom(NamedTuple):
    packages: list[SbomPackage]
    subject: dict[str, Any] | None  # the SBOM's metadata.component (the image), when it has one


def packages_from_sbom(path: str) -> list[SbomPackage]:
    """The components with a purl of a CycloneDX JSON SBOM (nested components included, the image not)."""
    return read_sbom(path).packages


def read_sbom(path: str) -> Sbom:
    """The packages of a CycloneDX JSON SBOM (see :func:`packages_from_sbom`) and its subject."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SBOM_BYTES + 1)
    except OSError as exc:
        raise VulnInputError(f"{path}: cannot read SBOM: {exc.strerror or exc}") from None
    if len(data) > MAX_SBOM_BYTES:
        raise VulnInputError(f"{path}: SBOM larger than {MAX_SBOM_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise VulnInputError(f"{path}: not JSON: {_line(str(exc))}") from None
    if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
        raise VulnInputError(f"{path}: not a CycloneDX JSON SBOM (no bomFormat CycloneDX)")
    out: list[SbomPackage] = []
    seen: set[tuple[str, str | None]] = set()
    stack: list[Any] = [doc.get("components")]
    while stack:
        components = stack.pop()
        if not isinstance(components, list):
            continue
        for comp in reversed(components):
            if not isinstance(comp, dict):
                continue
            stack.append(comp.get("components"))
            found = _sbom_package(comp)
            if found is not None and (found.package.purl or "", found.package.path) not in seen:
                seen.add((found.package.purl or "", found.package.path))
                out.append(found)
    metadata = doc.get("metadata")
    subject = metadata.get("component") if isinstance(metadata, dict) else None
    return Sbom(out, subject if isinstance(subject, dict) else None)


def _sbom_package(comp: dict[str, Any]) -> SbomPackage | None:
    purl_text = comp.get("purl")
    if not isinstance(purl_text, str):
        return None
    purl = parse_purl(purl_text)
    if purl is None or purl.type == "oci":
        return None
    props: dict[str, str] = {}
    for prop in comp.get("properties") or ():
        if isinstance(prop, dict) and isinstance(prop.get("name"), str) and isinstance(prop.get("value"), str):
            props.setdefault(prop["name"], prop["value"])
    version = purl.version or (comp["version"] if isinstance(comp.get("version"), str) else "")
    name = comp["name"] if isinstance(comp.get("name"), str) else purl.name
    package = Package(name, version, purl.type, purl_text, props.get(_PROPERTY_PREFIX + "source_path"))
    return SbomPackage(
        package,
        props.get(_PROPERTY_PREFIX + "source_name"),
        props.get(_PROPERTY_PREFIX + "source_version"),
    )


def lookup(item: Package | SbomPackage) -> tuple[str, str, str] | None:
    """(OSV ecosystem, OSV package name, version) to look a package up by; None when it has no ecosystem.

    Distribution packages are looked up by their source package (the SBOM's source properties or the
    purl ``upstream`` qualifier) and RPM versions get the purl ``epoch`` qualifier.
    """
    sbom = item if isinstance(item, SbomPackage) else SbomPackage(item)
    pkg = sbom.package
    purl = parse_purl(pkg.purl) if pkg.purl else None
    if purl is None:
        return None
    ecosystem = ecosystem_of(purl)
    if ecosystem is None:
        return None
    name, version = osv_name(purl, ecosystem), purl.version or pkg.version
    upstream = purl.qualifiers.get("upstream")
    if sbom.source_name or upstream:
        up_name, _, up_version = (upstream or "").partition("@")
        name = sbom.source_name or up_name
        version = sbom.source_version or up_version or version
    if purl.type == "rpm" and purl.qualifiers.get("epoch") and ":" not in version:
        version = f"{purl.qualifiers['epoch']}:{version}"
    if not version or not name:
        return None
    return ecosystem, name, version


def _binary_name(item: SbomPackage, ecosystem: str) -> tuple[str, ...]:
    """RPM advisories (Red Hat, SUSE, Rocky, Alma) list binary packages: the installed name is looked up
    as well as the source package."""
    purl = parse_purl(item.package.purl) if item.package.purl else None
    if purl is None or purl.type != "rpm":
        return ()
    return (osv_name(purl, ecosystem),)


def _prefilter_key(name: bytes) -> bytes:
    return _SEPARATORS.sub(b"-", name.lower())


# --- the database ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Range:
    events: list[tuple[str, str]]  # (kind, version) as written
    semver: bool
    sorted_events: dict[str, list[tuple[int, Version | None]] | None] = field(default_factory=dict)


@dataclass(slots=True)
class _Affected:
    advisory: _Advisory
    ecosystem: str
    ranges: list[_Range]
    versions: frozenset[str]
    severity: str | None  # from the affected entry's ecosystem/database specific fields


@dataclass(slots=True)
class _Advisory:
    id: str
    aliases: frozenset[str]
    summary: str
    published: str | None
    severity: str | None  # the database_specific word, normalised
    cvss: tuple[Cvss, ...]


@dataclass(slots=True)
class _Record:
    data: dict[str, Any]
    advisory: _Advisory | None = None  # built on first match


@dataclass(slots=True)
class _Entry:
    """One ``affected`` entry as loaded; parsed (ranges, severity) on first use by :meth:`OsvDatabase.match`."""

    record: _Record
    data: dict[str, Any]
    ecosystem: str  # as the record writes it ("Debian:12", "Ubuntu:22.04:LTS", "Red Hat:enterprise_linux:9::baseos")
    parsed: _Affected | None = None
    unusable: bool = False


@dataclass
class OsvDatabase:
    """OSV records indexed by (ecosystem prefix, package name); :meth:`match` checks packages against them.

    The index key is the ecosystem before any ``:`` (``Debian`` for ``Debian:12``): which releases a
    record covers is decided per package by :func:`ecosystem_applies`.
    """

    index: dict[tuple[str, str], list[_Entry]] = field(default_factory=dict)
    advisories: int = 0
    problems: list[str] = field(default_factory=list)
    wanted: frozenset[bytes] | None = None  # prefilter: only records naming one of these are parsed
    skipped: int = 0  # files the prefilter left unparsed
    _versions: dict[tuple[str, str], Version | None] = field(default_factory=dict)

    def add(self, record: Any, source: str) -> None:
        """Index one OSV record (a parsed JSON object); a malformed one becomes a problem line."""
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            self.problems.append(f"{_line(source)}: not an OSV record (no id)")
            return
        if record.get("withdrawn"):
            return
        affected_list = record.get("affected")
        if not isinstance(affected_list, list):
            self.problems.append(f"{_line(source)}: {_line(record['id'])} has no affected list")
            return
        holder = _Record(record)
        for entry in affected_list:
            package = entry.get("package") if isinstance(entry, dict) else None
            if not isinstance(package, dict):
                continue
            ecosystem, name = package.get("ecosystem"), package.get("name")
            if isinstance(ecosystem, str) and isinstance(name, str) and ecosystem and name:
                base = ecosystem.partition(":")[0]
                key = (base, normalize_name(base, name))
                self.index.setdefault(key, []).append(_Entry(holder, entry, ecosystem))
        self.advisories += 1

    def _resolve(self, entry: _Entry) -> _Affected | None:
        if entry.parsed is None and not entry.unusable:
            if entry.record.advisory is None:
                entry.record.advisory = _advisory(entry.record.data)
            entry.parsed = _affected(entry.record.advisory, entry.data)
            entry.unusable = entry.parsed is None
        return entry.parsed

    def version(self, scheme: str, text: str) -> Version | None:
        """``text`` parsed with a univers version class, cached; None when it does not parse."""
        key = (scheme, text)
        if key not in self._versions:
            from univers import versions

            cls = getattr(versions, scheme)
            try:
                self._versions[key] = cls(text)
            except (ValueError, TypeError, AttributeError, IndexError):
                self._versions[key] = None
        return self._versions[key]

    def match(self, packages: Iterable[Package | SbomPackage], target: str = "") -> list[Observation]:
        """One observation per (advisory, package) where the package's version is affected."""
        out: list[Observation] = []
        for item in packages:
            sbom = item if isinstance(item, SbomPackage) else SbomPackage(item)
            out.extend(self._match_one(sbom, target))
        return out

    def _match_one(self, item: SbomPackage, target: str) -> Iterator[Observation]:
        looked_up = lookup(item)
        if looked_up is None:
            return
        ecosystem, name, version = looked_up
        base = ecosystem.partition(":")[0]
        scheme = _SCHEMES.get(base)
        pkg = item.package
        seen: set[str] = set()
        for key in {(base, n): None for n in (*_binary_name(item, ecosystem), name)}:
            for entry in self.index.get(key, ()):
                if entry.ecosystem != ecosystem and not ecosystem_applies(entry.ecosystem, ecosystem):
                    continue
                affected = None if entry.record.data["id"] in seen else self._resolve(entry)
                if affected is None:
                    continue
                hit = self._affects(affected, version, scheme)
                if hit is None:
                    continue
                seen.add(affected.advisory.id)
                yield _observation(affected, pkg, hit, target)

    def _affects(self, affected: _Affected, version: str, scheme: str | None) -> tuple[str, ...] | None:
        """None if ``version`` is not affected, else the fixed versions above it (possibly none)."""
        if version in affected.versions:
            return self._fixes_above(affected, version, scheme)
        for rng in affected.ranges:
            rng_scheme = "SemverVersion" if rng.semver else scheme
            if rng_scheme is None:
                continue
            current = self.version(rng_scheme, version)
            events = self._sorted(rng, rng_scheme)
            if current is None or events is None:
                continue
            vulnerable = False
            for kind, bound in events:
                if bound is None or current > bound or (current == bound and kind != 2):
                    vulnerable = kind == 0  # at or past introduced: in; at or past fixed, past last_affected: out
            if vulnerable:
                return self._fixes_above(affected, version, scheme)
        return None

    def _sorted(self, rng: _Range, scheme: str) -> list[tuple[int, Version | None]] | None:
        if scheme in rng.sorted_events:
            return rng.sorted_events[scheme]
        events: list[tuple[int, Version | None]] = []
        for kind, text in rng.events:
            bound = None if kind == "introduced" and text == "0" else self.version(scheme, text)
            if bound is None and not (kind == "introduced" and text == "0"):
                rng.sorted_events[scheme] = None  # one event we cannot order makes the whole range unusable
                return None
            events.append((_EVENT_ORDER[kind], bound))
        events.sort(key=_EventKey)
        rng.sorted_events[scheme] = events
        return events

    def _fixes_above(self, affected: _Affected, version: str, scheme: str | None) -> tuple[str, ...]:
        fixes: list[str] = []
        for rng in affected.ranges:
            rng_scheme = "SemverVersion" if rng.semver else scheme
            current = self.version(rng_scheme, version) if rng_scheme else None
            for kind, text in rng.events:
                if kind != "fixed" or text in fixes:
                    continue
                bound = self.version(rng_scheme, text) if rng_scheme else None
                if current is None or bound is None or bound > current:
                    fixes.append(text)
        return tuple(fixes)


class _EventKey:
    """Sort key for (kind, version) events: "introduced 0" first, then by version, then by kind."""

    __slots__ = ("kind", "version")

    def __init__(self, event: tuple[int, Version | None]) -> None:
        self.kind, self.version = event

    def __lt__(self, other: _EventKey) -> bool:
        if self.version is None or other.version is None:
            return self.version is None and other.version is not None
        if self.version == other.version:
            return self.kind < other.kind
        return bool(self.version < other.version)


def _advisory(record: dict[str, Any]) -> _Advisory:
    aliases = {a for key in ("aliases", "upstream") for a in record.get(key) or () if isinstance(a, str)}
    aliases.discard(record["id"])
    summary = record.get("summary")
    if not isinstance(summary, str) or not summary:
        details = record.get("details")
        summary = details.strip().partition("\n")[0] if isinstance(details, str) else ""
    db_specific = record.get("database_specific")
    severity = _severity_word(db_specific.get("severity")) if isinstance(db_specific, dict) else None
    cvss: list[Cvss] = []
    source = "ghsa" if record["id"].startswith("GHSA-") else "osv"
    for entry in record.get("severity") or ():
        if isinstance(entry, dict) and isinstance(entry.get("score"), str):
            if entry.get("type") == "Ubuntu":  # the Ubuntu priority word ("high", "medium", ...)
                severity = severity or _severity_word(entry["score"])
                continue
            parsed = _cvss(entry["score"], source)
            if parsed is not None:
                cvss.append(parsed)
    published = record.get("published")
    return _Advisory(
        record["id"],
        frozenset(aliases),
        _line(summary[:500]),
        published[:10] if isinstance(published, str) and published else None,
        severity,
        tuple(cvss),
    )


def _affected(advisory: _Advisory, entry: Any) -> _Affected | None:
    if not isinstance(entry, dict):
        return None
    package = entry.get("package")
    if not isinstance(package, dict):
        return None
    ecosystem, name = package.get("ecosystem"), package.get("name")
    if not isinstance(ecosystem, str) or not isinstance(name, str) or not ecosystem or not name:
        return None
    ranges: list[_Range] = []
    for rng in entry.get("ranges") or ():
        if not isinstance(rng, dict) or rng.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        events: list[tuple[str, str]] = []
        for event in rng.get("events") or ():
            if isinstance(event, dict):
                events.extend((k, v) for k, v in event.items() if k in _EVENT_ORDER and isinstance(v, str))
        if events:
            ranges.append(_Range(events, rng["type"] == "SEMVER"))
    versions = frozenset(v for v in entry.get("versions") or () if isinstance(v, str))
    if not ranges and not versions:
        return None
    severity = None
    for key in ("ecosystem_specific", "database_specific"):
        specific = entry.get(key)
        if isinstance(specific, dict) and severity is None:
            severity = _severity_word(specific.get("severity") or specific.get("urgency"))
    return _Affected(advisory, ecosystem, ranges, versions, severity)


def _severity_word(value: Any) -> str | None:
    return _SEVERITY_WORDS.get(value.strip().lower()) if isinstance(value, str) else None


def _observation(affected: _Affected, pkg: Package, fixes: tuple[str, ...], target: str) -> Observation:
    advisory = affected.advisory
    severity = affected.severity or advisory.severity
    if severity is None:
        scores = [c.score for c in advisory.cvss if c.score is not None]
        severity = severity_of_score(max(scores)) if scores else "unknown"
    return Observation(
        scanner=SCANNER,
        vuln_id=advisory.id,
        aliases=advisory.aliases,
        package=pkg,
        severity=severity,
        fixed_versions=fixes,
        cvss=advisory.cvss,
        title=advisory.summary,
        target=target,
        published=advisory.published,
    )


# --- CVSS --------------------------------------------------------------------------------------

_CVSS3_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_CVSS3_PR = {("N", "U"): 0.85, ("L", "U"): 0.62, ("H", "U"): 0.27, ("N", "C"): 0.85, ("L", "C"): 0.68, ("H", "C"): 0.5}


def _roundup(value: float) -> float:
    """CVSS 3.1 Roundup: the smallest number with one decimal that is >= value (float-safe)."""
    scaled = round(value * 100_000)
    if scaled % 10_000 == 0:
        return scaled / 100_000
    return (math.floor(scaled / 10_000) + 1) / 10.0


def cvss3_base_score(vector: str) -> float | None:
    """The CVSS 3.0/3.1 base score of a vector, None if the vector is not a complete v3 base vector."""
    metrics = dict(part.partition(":")[::2] for part in vector.split("/")[1:])
    try:
        scope = metrics["S"]
        if scope not in ("U", "C"):
            return None
        av, ac, ui = (_CVSS3_WEIGHTS[m][metrics[m]] for m in ("AV", "AC", "UI"))
        c, i, a = (_CVSS3_WEIGHTS[m][metrics[m]] for m in ("C", "I", "A"))
        pr = _CVSS3_PR[(metrics["PR"], scope)]
    except KeyError:
        return None
    iss = 1 - (1 - c) * (1 - i) * (1 - a)
    impact = 6.42 * iss if scope == "U" else 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    exploitability = 8.22 * av * ac * pr * ui
    if impact <= 0:
        return 0.0
    total = impact + exploitability if scope == "U" else 1.08 * (impact + exploitability)
    return _roundup(min(total, 10.0))


def _cvss(vector: str, source: str) -> Cvss | None:
    if vector.startswith("CVSS:3."):
        return Cvss(source, vector[5:8], vector, cvss3_base_score(vector))
    if vector.startswith("CVSS:4.0/"):
        return Cvss(source, "4.0", vector, None)
    return None


def severity_of_score(score: float) -> str:
    """The qualitative rating of a CVSS v3 score (0.0 is "none", mapped to negligible)."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    if score > 0.0:
        return "low"
    return SEVERITIES[1]


# --- loading -----------------------------------------------------------------------------------


def load_osv(path: str, only: Iterable[Package | SbomPackage] | None = None) -> OsvDatabase:
    """Every OSV record under ``path``: a directory tree of ``*.json`` and ``*.zip`` files, or one such file.

    With ``only``, records that name none of those packages (a byte-level scan of the file's "name"
    values, no false negatives) are counted in :attr:`OsvDatabase.skipped` and not parsed: matching
    one SBOM then costs little more than reading the files. Such a database matches only those packages.
    """
    root = Path(path)
    db = OsvDatabase()
    if only is not None:
        names: set[str] = set()
        for item in only:
            sbom = item if isinstance(item, SbomPackage) else SbomPackage(item)
            found = lookup(sbom)
            if found is not None:
                names.update((found[1], *_binary_name(sbom, found[0])))
        db.wanted = frozenset(_prefilter_key(n.encode()) for n in names)
    if root.is_dir():
        files: list[str] = []
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: db.problems.append(_os_problem(e))):
            dirnames.sort()
            files.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith((".json", ".zip")))
    elif root.is_file():
        files = [str(root)]
    else:
        raise VulnInputError(f"{path}: no such OSV file or directory")
    collecting = gc.isenabled()
    gc.disable()  # tens of thousands of long-lived dicts: the cyclic collector would rescan them all, often
    try:
        for name in files:
            if name.endswith(".zip"):
                _load_zip(db, name)
            else:
                _load_json(db, name)
    finally:
        if collecting:
            gc.freeze()  # ... and later collections need not either (they are still freed by reference count)
            gc.enable()
    if db.advisories == 0 and not files:
        raise VulnInputError(f"{path}: no OSV records (*.json or ecosystem *.zip files) found")
    if db.advisories == 0 and db.skipped == 0 and db.problems:
        raise VulnInputError(f"{path}: no readable OSV record; first problem: {db.problems[0]}")
    return db


def _os_problem(exc: OSError) -> str:
    return _line(f"{exc.filename}: cannot read: {exc.strerror or exc}")


def _parse(db: OsvDatabase, data: bytes, source: str) -> None:
    if db.wanted is not None:
        wanted = db.wanted
        for value in _NAME_VALUES.findall(data):
            if b"\\" in value or value in wanted or _prefilter_key(value) in wanted:
                break
        else:
            db.skipped += 1
            return
    try:
        record = json.loads(data)
    except (ValueError, RecursionError) as exc:
        db.problems.append(_line(f"{source}: not JSON: {exc}"))
        return
    db.add(record, source)


def _read_small(name: str) -> bytes:
    """The file's bytes, at most MAX_ADVISORY_BYTES + 1 (os.read sized by fstat: 2x faster than open().read())."""
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        want = min(os.fstat(fd).st_size, MAX_ADVISORY_BYTES) + 1
        chunks = [os.read(fd, want)]
        total = len(chunks[0])
        while chunks[-1] and total <= MAX_ADVISORY_BYTES:  # a file that grew, or a short read
            chunks.append(os.read(fd, MAX_ADVISORY_BYTES + 1 - total))
            total += len(chunks[-1])
        return b"".join(chunks) if len(chunks) > 1 else chunks[0]
    finally:
        os.close(fd)


def _load_json(db: OsvDatabase, name: str) -> None:
    try:
        data = _read_small(name)
    except OSError as exc:
        db.problems.append(_os_problem(exc))
        return
    if len(data) > MAX_ADVISORY_BYTES:
        db.problems.append(_line(f"{name}: larger than {MAX_ADVISORY_BYTES} bytes, skipped"))
        return
    _parse(db, data, name)


def _load_zip(db: OsvDatabase, name: str) -> None:
    try:
        with zipfile.ZipFile(name) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.endswith(".json"):
                    continue
                source = f"{name}!{info.filename}"
                if info.file_size > MAX_ADVISORY_BYTES:
                    db.problems.append(_line(f"{source}: larger than {MAX_ADVISORY_BYTES} bytes, skipped"))
                    continue
                try:
                    with archive.open(info) as member:
                        data = member.read()  # bounded by the member's declared size
                except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
                    db.problems.append(_line(f"{source}: cannot read member: {exc}"))
                    continue
                if len(data) > MAX_ADVISORY_BYTES:
                    db.problems.append(_line(f"{source}: larger than {MAX_ADVISORY_BYTES} bytes, skipped"))
                    continue
                _parse(db, data, source)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        db.problems.append(_line(f"{name}: not a readable zip file: {exc}"))
