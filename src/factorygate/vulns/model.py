"""The shared vocabulary of the vulnerability modules (parsers, merge, matcher, justifications, gate)."""

from __future__ import annotations

from typing import NamedTuple

from factorygate.errors import InputError

# Normalised severities, lowest first (scanner words are mapped onto these).
SEVERITIES = ("unknown", "negligible", "low", "medium", "high", "critical")


class VulnInputError(InputError):
    """A scanner report, OSV file, SBOM or justifications file that cannot be read (one line, names it)."""


class Package(NamedTuple):
    """The affected package as a scanner (or the matcher) names it."""

    name: str
    version: str
    type: str  # purl type: deb, apk, rpm, pypi, npm, golang, maven, gem, cargo, nuget, ... ("" if unknown)
    purl: str | None = None
    path: str | None = None  # where in the image/target it was found (lock file, site-packages dir, ...)


class Cvss(NamedTuple):
    source: str  # "nvd", "ghsa", "redhat", a distro, or the scanner's name
    version: str  # "3.1", "3.0", "4.0", "2.0"
    vector: str | None
    score: float | None


class Observation(NamedTuple):
    """One scanner's report of one vulnerability in one package (before merging)."""

    scanner: str  # "trivy", "grype", "cyclonedx:<tool name>", "factorygate-osv"
    vuln_id: str  # the id the scanner used as primary (CVE-..., GHSA-..., DSA-..., ...)
    aliases: frozenset[str]  # every other id the scanner gave (related vulnerabilities, aliases)
    package: Package
    severity: str  # one of SEVERITIES
    fixed_versions: tuple[str, ...] = ()
    cvss: tuple[Cvss, ...] = ()
    title: str = ""
    target: str = ""  # the scanner's target (image name, lock file) the finding came from
    published: str | None = None  # ISO date the advisory was published, when given
    fix_published: str | None = None  # ISO date a fix became available, when given (for "fix older than N days")


def normalise_id(vid: str) -> str:
    """CVE ids upper-case, GHSA ids with the lower-case body GitHub uses; others unchanged (trimmed)."""
    vid = vid.strip()
    upper = vid.upper()
    if upper.startswith("CVE-"):
        return upper
    if upper.startswith("GHSA-"):
        return "GHSA-" + vid[5:].lower()
    return vid
