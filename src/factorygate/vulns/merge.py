"""Scanner observations merged into findings, de-duplicated across scanners by alias.

Two observations are the same finding when they name the same package (:func:`package_key`: the
package URL without qualifiers, or type/name/version when a scanner gave no purl) and their id sets
(primary id plus aliases) overlap. Overlap is transitive (union-find over ids within a package), so a
CVE in one scanner, a GHSA listing that CVE in another and a distro advisory listing either all
count once.

Rules, all deterministic and independent of input order:

- canonical id: the lowest CVE (by year, then number), else the lowest GHSA, else the lowest other id;
  ``aliases`` are the finding's other ids, sorted;
- per-scanner severity: the highest that scanner gave the finding (it may report it at several paths);
- merged severity: the highest of the per-scanner severities. A gate should not under-report what one
  scanner saw; disagreements are listed in ``severity_conflicts`` (``unknown`` is the absence of a
  rating, not a disagreement);
- fixed versions, CVSS entries, targets and paths: unions, sorted; dates: the earliest given;
- the title: the first non-empty one in the sorted observations; the package: that of the first sorted
  observation with a purl, else of the first one;
- findings are ordered by severity (highest first), canonical id, then package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from factorygate.vulns.model import SEVERITIES, Cvss, Observation, Package, normalise_id
from factorygate.vulns.reports import gc_paused, purl_parts

_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_OS_TYPES = frozenset({"deb", "apk", "rpm", "alpm", "alpine", "debian", "ubuntu"})
_PYPI_SEP = re.compile(r"[-_.]+")

PackageKey = tuple[str, str, str]


class MergedFinding(NamedTuple):
    """One vulnerability in one package, as all scanners together saw it."""

    id: str
    aliases: tuple[str, ...]
    package: Package
    severity: str
    severities: tuple[tuple[str, str], ...]  # (scanner, severity), sorted by scanner
    fixed_versions: tuple[str, ...]
    cvss: tuple[Cvss, ...]
    scanners: tuple[str, ...]
    title: str = ""
    targets: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    published: str | None = None
    fix_published: str | None = None
    observations: tuple[Observation, ...] = ()  # sorted (observation_sort_key)

    @property
    def ids(self) -> tuple[str, ...]:
        """The canonical id and every alias."""
        return (self.id, *self.aliases)

    @property
    def severity_by_scanner(self) -> dict[str, str]:
        return dict(self.severities)

    @property
    def key(self) -> PackageKey:
        return package_key(self.package)


@dataclass(frozen=True)
class MergeResult:
    findings: tuple[MergedFinding, ...]
    scanners: tuple[str, ...]
    # Found by one scanner only (one key per scanner, possibly empty); empty when fewer than two scanners.
    only_in: dict[str, list[MergedFinding]]
    # Scanners gave different (known) severities.
    severity_conflicts: tuple[MergedFinding, ...]


def id_sort_key(vid: str) -> tuple[int, int, int, str]:
    """CVEs first (by year, number), then GHSAs, then everything else; ties by text."""
    if vid.startswith("CVE-"):
        parts = vid.split("-")
        if len(parts) == 3 and parts[1].isdecimal() and parts[2].isdecimal():
            return (0, int(parts[1]), int(parts[2]), vid)
    if vid.startswith("GHSA-"):
        return (1, 0, 0, vid)
    return (2, 0, 0, vid)


def package_key(package: Package) -> PackageKey:
    """(type, name, version) identifying a package across scanners.

    From the purl when there is one (qualifiers and subpath dropped, an ``epoch`` qualifier folded into
    the version), else from the scanner's type/name/version. OS package namespaces (the distro vendor)
    are dropped so a purl and a bare name agree; language namespaces (npm scope, Maven group, Go module
    path) are kept. Names compare case-insensitively, PyPI names with ``-_.`` runs folded.
    """
    parts = _purl_identity(package.purl) if package.purl else None
    if parts is not None:
        ptype, name, version = parts
    else:
        ptype, name, version = package.type.lower(), package.name, package.version
        if ptype == "maven":
            name = name.replace(":", "/")
    name = name.strip().lower()
    if ptype == "pypi":
        name = _PYPI_SEP.sub("-", name)
    version = version.strip()
    if version.startswith("0:"):
        version = version[2:]
    return (ptype, name, version)


def _purl_identity(purl: str) -> PackageKey | None:
    # package_key runs once per observation: only the fields it needs, through purl_parts when unusual.
    if "%" in purl or not purl.startswith("pkg:") or "#" in purl:
        parts = purl_parts(purl)
        if parts is None:
            return None
        ptype, namespace, name, version, qualifiers = parts
        epoch = qualifiers.get("epoch")
    else:
        body, _, query = purl[4:].lstrip("/").partition("?")
        ptype, _, path = body.partition("/")
        if not ptype or not path:
            return None
        ptype = ptype.lower()
        namespace, _, last = path.rpartition("/")
        name, _, version = last.partition("@")
        epoch = None
        if "epoch=" in query:
            for pair in query.split("&"):
                if pair.lower().startswith("epoch="):
                    epoch = pair[6:]
        namespace = namespace.strip("/")
    if epoch and ":" not in version:
        version = f"{epoch}:{version}"
    if namespace and ptype not in _OS_TYPES:
        name = f"{namespace}/{name}"
    return (ptype, name, version)


def _opt(value: str | None) -> tuple[bool, str]:
    """An optional text as a sort key: None before "" (they are different observations)."""
    return (value is not None, value or "")


def _cvss_key(c: Cvss) -> tuple[str, str, tuple[bool, str], tuple[bool, float]]:
    return (c.source, c.version, _opt(c.vector), (c.score is not None, c.score or 0.0))


def _package_sort_key(p: Package) -> tuple[str, str, str, tuple[bool, str], tuple[bool, str]]:
    return (p.type, p.name, p.version, _opt(p.purl), _opt(p.path))


def observation_sort_key(o: Observation) -> tuple[object, ...]:
    """A total order on observations (every field), so ties are identical observations."""
    return (
        o.scanner,
        o.vuln_id,
        tuple(sorted(o.aliases)),
        _package_sort_key(o.package),
        o.severity,
        o.fixed_versions,
        tuple(_cvss_key(c) for c in o.cvss),
        o.title,
        o.target,
        _opt(o.published),
        _opt(o.fix_published),
    )


def _scanner_of(o: Observation) -> str:
    return o.scanner


def _cheap_sort_key(o: Observation) -> tuple[str, str, str, str, str, str]:
    return (o.scanner, o.vuln_id, o.target, o.package.path or "", o.package.version, o.severity)


def _rank(severity: str) -> int:
    return _SEVERITY_RANK.get(severity, 0)


def _find(parent: dict[str, str], x: str) -> str:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        parent[x], x = root, parent[x]
    return root


def _union(parent: dict[str, str], a: str, b: str) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        # The smaller id becomes the root: the structure (not only the answer) is order-independent.
        if rb < ra:
            ra, rb = rb, ra
        parent[rb] = ra


def _build(ids: set[str], group: list[Observation]) -> MergedFinding:
    if len(group) == 1:  # one scanner saw it once: the fields are that observation's (normalised)
        return _build_one(ids, group[0])
    if len(group) == 2 and group[0].scanner != group[1].scanner:  # two scanners saw it: the common case
        first, second = group
        return _build_two(ids, first, second) if first.scanner < second.scanner else _build_two(ids, second, first)
    return _build_many(ids, group)


def _build_many(ids: set[str], group: list[Observation]) -> MergedFinding:
    """The general case of :func:`_build` (any number of observations; the fast paths must agree)."""
    if len(group) > 1:
        if len({o.scanner for o in group}) == len(group):  # the common case: one observation per scanner
            group.sort(key=_scanner_of)
        else:
            group.sort(key=_cheap_sort_key)
            if len({_cheap_sort_key(o) for o in group}) < len(group):  # ties: the total order decides
                group.sort(key=observation_sort_key)
    ordered_ids = sorted(ids, key=id_sort_key) if len(ids) > 1 else list(ids)
    per_scanner: dict[str, str] = {}
    fixed: set[str] = set()
    cvss: set[Cvss] = set()
    targets: set[str] = set()
    paths: set[str] = set()
    published: list[str] = []
    fix_published: list[str] = []
    package: Package | None = None
    title = ""
    rank = _SEVERITY_RANK
    for o in group:
        current = per_scanner.get(o.scanner)
        if current is None or rank.get(o.severity, 0) > rank.get(current, 0):
            per_scanner[o.scanner] = o.severity
        fixed.update(o.fixed_versions)
        cvss.update(o.cvss)
        if o.target:
            targets.add(o.target)
        if o.package.path:
            paths.add(o.package.path)
        if o.published:
            published.append(o.published)
        if o.fix_published:
            fix_published.append(o.fix_published)
        if package is None and o.package.purl:
            package = o.package
        if not title:
            title = o.title
    return MergedFinding(
        ordered_ids[0],
        tuple(ordered_ids[1:]),
        package or group[0].package,
        max(per_scanner.values(), key=_rank),
        tuple(sorted(per_scanner.items())),
        tuple(sorted(fixed)) if len(fixed) > 1 else tuple(fixed),
        tuple(sorted(cvss, key=_cvss_key)) if len(cvss) > 1 else tuple(cvss),
        tuple(sorted(per_scanner)),
        title,
        tuple(sorted(targets)) if len(targets) > 1 else tuple(targets),
        tuple(sorted(paths)) if len(paths) > 1 else tuple(paths),
        min(published) if published else None,
        min(fix_published) if fix_published else None,
        tuple(group),
    )


def _build_one(ids: set[str], o: Observation) -> MergedFinding:
    """What :func:`_build` makes of a group of one observation, without its bookkeeping."""
    ordered_ids = sorted(ids, key=id_sort_key) if len(ids) > 1 else list(ids)
    p = o.package
    fixed = o.fixed_versions
    if len(fixed) > 1:
        fixed = tuple(sorted(set(fixed)))
    cvss = o.cvss
    if len(cvss) > 1:
        cvss = tuple(sorted(set(cvss), key=_cvss_key))
    return MergedFinding(
        ordered_ids[0],
        tuple(ordered_ids[1:]),
        p,
        o.severity,
        ((o.scanner, o.severity),),
        fixed,
        cvss,
        (o.scanner,),
        o.title,
        (o.target,) if o.target else (),
        (p.path,) if p.path else (),
        o.published or None,
        o.fix_published or None,
        (o,),
    )


def _build_two(ids: set[str], a: Observation, b: Observation) -> MergedFinding:
    """What :func:`_build` makes of two observations by two scanners (``a``'s name sorts first)."""
    ordered_ids = sorted(ids, key=id_sort_key) if len(ids) > 1 else list(ids)
    fixed = a.fixed_versions if a.fixed_versions == b.fixed_versions else set(a.fixed_versions).union(b.fixed_versions)
    cvss = set(a.cvss).union(b.cvss) if b.cvss else a.cvss
    if len(fixed) > 1:
        fixed = tuple(sorted(set(fixed)))
    if len(cvss) > 1:
        cvss = tuple(sorted(set(cvss), key=_cvss_key))
    targets = {t for t in (a.target, b.target) if t}
    paths = {p for p in (a.package.path, b.package.path) if p}
    published = [d for d in (a.published, b.published) if d]
    fix_published = [d for d in (a.fix_published, b.fix_published) if d]
    rank = _SEVERITY_RANK
    return MergedFinding(
        ordered_ids[0],
        tuple(ordered_ids[1:]),
        a.package if a.package.purl or not b.package.purl else b.package,
        a.severity if rank.get(a.severity, 0) >= rank.get(b.severity, 0) else b.severity,
        ((a.scanner, a.severity), (b.scanner, b.severity)),
        tuple(fixed),
        tuple(cvss),
        (a.scanner, b.scanner),
        a.title or b.title,
        tuple(sorted(targets)) if len(targets) > 1 else tuple(targets),
        tuple(sorted(paths)) if len(paths) > 1 else tuple(paths),
        min(published) if published else None,
        min(fix_published) if fix_published else None,
        (a, b),
    )


def _first(item: tuple[tuple[object, ...], MergedFinding]) -> tuple[object, ...]:
    return item[0]


def merge(observations: Iterable[Observation], scanners: Iterable[str] | None = None) -> MergeResult:
    """Merge observations from any number of scanners into de-duplicated findings.

    ``scanners`` names every scanner that took part (so one that found nothing still counts towards
    ``only_in``); by default, the scanners of the observations.
    """
    with gc_paused():
        return _merge(observations, scanners)


def _groups(
    parents: dict[PackageKey, dict[str, str]], by_first: dict[tuple[PackageKey, str], list[Observation]]
) -> tuple[dict[tuple[PackageKey, str], list[Observation]], dict[tuple[PackageKey, str], set[str]]]:
    """The observations and the ids of each finding, by (package key, union-find root)."""
    groups: dict[tuple[PackageKey, str], list[Observation]] = {}
    for (key, first), found in by_first.items():
        root = _find(parents[key], first)
        group = groups.get((key, root))
        if group is None:
            groups[(key, root)] = found
        else:
            group.extend(found)
    members: dict[tuple[PackageKey, str], set[str]] = {}
    for key, parent in parents.items():
        for node, up in parent.items():
            root = node if up == node else _find(parent, node)
            ids = members.get((key, root))
            if ids is None:
                members[(key, root)] = {node}
            else:
                ids.add(node)

    return groups, members


def _merge(observations: Iterable[Observation], scanners: Iterable[str] | None) -> MergeResult:
    # One union-find per package; nodes are the normalised ids. Observations are first grouped by
    # (package, primary id), so the second pass walks those groups, not every observation again.
    parents: dict[PackageKey, dict[str, str]] = {}
    by_first: dict[tuple[PackageKey, str], list[Observation]] = {}
    seen_scanners: set[str] = set(scanners or ())
    keys: dict[Package, PackageKey] = {}
    normalised: dict[str, str] = {}
    for o in observations:
        seen_scanners.add(o.scanner)
        key = keys.get(o.package)
        if key is None:
            key = keys[o.package] = package_key(o.package)
        first = normalised.get(o.vuln_id)
        if first is None:
            first = normalised[o.vuln_id] = normalise_id(o.vuln_id)
        slot = by_first.get((key, first))
        if slot is None:
            by_first[(key, first)] = [o]
            parent = parents.get(key)
            if parent is None:
                parent = parents[key] = {}
            parent.setdefault(first, first)
        else:
            slot.append(o)
            parent = parents[key]
        for alias in o.aliases:
            alias_id = normalised.get(alias)
            if alias_id is None:
                alias_id = normalised[alias] = normalise_id(alias)
            if alias_id and alias_id != first:
                parent.setdefault(alias_id, alias_id)
                _union(parent, first, alias_id)

    groups, members = _groups(parents, by_first)
    # (package key, canonical id) is unique per finding, so (severity, id, key) is a total order.
    keyed = []
    for (key, root), group in groups.items():
        f = _build(members[(key, root)], group)
        keyed.append(((-_SEVERITY_RANK.get(f.severity, 0), *id_sort_key(f.id), *key), f))  # flat: compares faster
    keyed.sort(key=_first)
    findings = [f for _, f in keyed]
    all_scanners = tuple(sorted(seen_scanners))
    only_in: dict[str, list[MergedFinding]] = {}
    if len(all_scanners) >= 2:
        only_in = {s: [] for s in all_scanners}
        for f in findings:
            if len(f.scanners) == 1:
                only_in[f.scanners[0]].append(f)
    conflicts = tuple(
        f for f in findings if len(f.severities) > 1 and len({s for _, s in f.severities if s != "unknown"}) > 1
    )
    return MergeResult(tuple(findings), all_scanners, only_in, conflicts)
