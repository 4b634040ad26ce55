"""Observations from several scanners merged into de-duplicated findings, independent of input order."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from factorygate.vulns.merge import MergedFinding, id_sort_key, merge, package_key
from factorygate.vulns.model import SEVERITIES, Cvss, Observation, Package, normalise_id
from factorygate.vulns.reports import load_report

DATA = Path(__file__).resolve().parent / "data" / "vulns"
OPENSSL = Package("openssl", "3.0.11-1", "deb", "pkg:deb/debian/openssl@3.0.11-1?arch=amd64&distro=debian-12")


def obs(
    scanner: str,
    vid: str,
    *aliases: str,
    package: Package = OPENSSL,
    severity: str = "high",
    fixed: tuple[str, ...] = (),
    cvss: tuple[Cvss, ...] = (),
) -> Observation:
    return Observation(scanner, vid, frozenset(aliases), package, severity, fixed, cvss)


def fixture_observations() -> list[Observation]:
    return load_report(str(DATA / "trivy-app.json")) + load_report(str(DATA / "grype-app.json"))


def by_name(findings: tuple[MergedFinding, ...] | list[MergedFinding]) -> dict[str, MergedFinding]:
    return {f.package.name: f for f in findings}


def test_trivy_and_grype_of_the_same_image() -> None:
    result = merge(fixture_observations())
    assert result.scanners == ("grype", "trivy")
    assert len(result.findings) == 9  # 8 + 8 observations, 7 in both
    found = by_name(result.findings)

    requests = found["requests"]  # CVE in Trivy, GHSA with the CVE related in Grype: counted once
    assert (requests.id, requests.aliases) == ("CVE-2024-35195", ("GHSA-9wx4-h78v-vm56",))
    assert requests.scanners == ("grype", "trivy")
    assert requests.package.purl == "pkg:pypi/requests@2.31.0"
    assert len(requests.paths) == 2  # each scanner names the METADATA file its own way

    libc = found["libc6"]  # purl "+" percent-encoded by one scanner only
    assert (libc.id, libc.aliases, libc.scanners) == ("CVE-2024-2961", ("DSA-5673-1",), ("grype", "trivy"))
    assert libc.cvss == (
        Cvss("nvd", "3.1", "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1),
        Cvss("nvd@nist.gov", "3.1", "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1),
    )
    assert found["perl-base"].scanners == ("grype", "trivy")  # Trivy gave no purl
    assert found["zlib1g"].scanners == ("grype", "trivy")  # epoch qualifier vs epoch in the version
    assert found["urllib3"].fixed_versions == ("1.26.19", "2.2.2")  # union

    assert {s: [f.id for f in fs] for s, fs in result.only_in.items()} == {
        "grype": ["CVE-2024-4068"],
        "trivy": ["CVE-2024-0553"],
    }
    (conflict,) = result.severity_conflicts
    assert conflict.id == "CVE-2023-45853"
    assert conflict.severity_by_scanner == {"grype": "negligible", "trivy": "critical"}
    assert conflict.severity == "critical"  # the highest

    ranks = [SEVERITIES.index(f.severity) for f in result.findings]
    assert ranks == sorted(ranks, reverse=True)
    assert [f.id for f in result.findings][:3] == ["CVE-2023-45853", "CVE-2023-31484", "CVE-2024-0553"]


def test_fixture_merge_is_order_independent() -> None:
    observations = fixture_observations()
    expected = merge(observations)
    rng = random.Random(7)  # noqa: S311 - a reproducible shuffle
    for _ in range(20):
        rng.shuffle(observations)
        assert merge(observations) == expected


def test_cyclonedx_joins_the_merge() -> None:
    result = merge(fixture_observations() + load_report(str(DATA / "cyclonedx-app.json")))
    found = by_name(result.findings)
    assert found["requests"].scanners == ("cyclonedx:trivy", "grype", "trivy")
    assert found["openssl"].scanners == ("cyclonedx:trivy", "grype", "trivy")
    assert [f.id for f in result.only_in["cyclonedx:trivy"]] == []


def test_aliases_chain_transitively() -> None:
    result = merge(
        [
            obs("trivy", "CVE-2024-1"),
            obs("grype", "GHSA-aaaa-bbbb-cccc", "CVE-2024-1"),
            obs("osv", "DSA-1-1", "ghsa-AAAA-BBBB-CCCC"),  # case differs: GHSA ids are normalised
        ]
    )
    (finding,) = result.findings
    assert finding.id == "CVE-2024-1"
    assert finding.aliases == ("GHSA-aaaa-bbbb-cccc", "DSA-1-1")
    assert finding.ids == ("CVE-2024-1", "GHSA-aaaa-bbbb-cccc", "DSA-1-1")
    assert finding.scanners == ("grype", "osv", "trivy")
    assert result.only_in == {"grype": [], "osv": [], "trivy": []}


def test_same_id_in_different_packages_stays_apart() -> None:
    other = Package("libssl3", "3.0.11-1", "deb", "pkg:deb/debian/libssl3@3.0.11-1")
    result = merge([obs("trivy", "CVE-2024-1"), obs("trivy", "CVE-2024-1", package=other)])
    assert [f.package.name for f in result.findings] == ["libssl3", "openssl"]
    assert result.only_in == {}  # one scanner: nothing to disagree with


def test_canonical_id_prefers_cve_then_ghsa() -> None:
    (f,) = merge([obs("a", "GHSA-xxxx-yyyy-zzzz", "CVE-2024-10000", "CVE-2024-999", "RHSA-2024:1")]).findings
    assert f.id == "CVE-2024-999"  # numeric, not text, order
    assert f.aliases == ("CVE-2024-10000", "GHSA-xxxx-yyyy-zzzz", "RHSA-2024:1")
    (g,) = merge([obs("a", "RHSA-2024:1", "GHSA-xxxx-yyyy-zzzz", "ALAS-2024-1")]).findings
    assert g.id == "GHSA-xxxx-yyyy-zzzz"
    assert normalise_id(" cve-2024-1 ") == "CVE-2024-1"
    assert sorted(["GHSA-a", "X-1", "CVE-2023-5"], key=id_sort_key) == ["CVE-2023-5", "GHSA-a", "X-1"]


def test_severity_rules() -> None:
    result = merge(
        [
            obs("trivy", "CVE-2024-1", severity="medium"),
            obs("trivy", "CVE-2024-1", severity="low", package=OPENSSL._replace(path="/other")),
            obs("grype", "CVE-2024-1", severity="medium"),
            obs("grype", "CVE-2024-2", severity="unknown"),
            obs("trivy", "CVE-2024-2", severity="low"),
        ]
    )
    first, second = result.findings
    assert (first.id, first.severity, first.severity_by_scanner) == (
        "CVE-2024-1",
        "medium",
        {"grype": "medium", "trivy": "medium"},  # a scanner's own highest
    )
    assert first.paths == ("/other",)
    assert (second.severity, second.severity_by_scanner) == ("low", {"grype": "unknown", "trivy": "low"})
    assert result.severity_conflicts == ()  # "unknown" is no rating, not a disagreement


def test_declared_scanner_with_no_findings() -> None:
    result = merge([obs("trivy", "CVE-2024-1")], scanners=["grype"])
    assert result.scanners == ("grype", "trivy")
    assert [f.id for f in result.only_in["trivy"]] == ["CVE-2024-1"]
    assert result.only_in["grype"] == []


def test_package_keys() -> None:
    assert package_key(OPENSSL) == package_key(Package("openssl", "3.0.11-1", "deb"))
    assert package_key(Package("x", "1.0-1", "rpm", "pkg:rpm/redhat/x@1.0-1?epoch=2")) == ("rpm", "x", "2:1.0-1")
    assert package_key(Package("x", "0:1.0-1", "rpm")) == ("rpm", "x", "1.0-1")
    assert package_key(Package("Foo_Bar", "1", "pypi")) == package_key(
        Package("foo-bar", "1", "pypi", "pkg:pypi/foo.bar@1")
    )
    assert package_key(Package("org.apache.logging.log4j:log4j-core", "2.14.1", "maven")) == package_key(
        Package("log4j-core", "2.14.1", "maven", "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1")
    )
    assert package_key(Package("@angular/core", "17.0.0", "npm")) == package_key(
        Package("core", "17.0.0", "npm", "pkg:npm/%40angular/core@17.0.0")
    )
    assert package_key(Package("a", "1", "npm")) != package_key(Package("a", "2", "npm"))
    # The plain-purl fast path and the full parser (percent-encoding, subpath) agree.
    for plain, encoded in [
        ("pkg:npm/@angular/core@17.0.0", "pkg:npm/%40angular/core@17.0.0"),
        ("pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64", "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64#x"),
        ("pkg:rpm/redhat/x@1.0-1?arch=x86_64&epoch=2", "pkg:rpm/redhat/x@1.0%2D1?epoch=2&arch=x86_64"),
        ("pkg:golang/github.com/x/net@v0.17.0", "pkg:golang/github.com%2Fx/net@v0.17.0"),
    ]:
        assert package_key(Package("", "", "", plain)) == package_key(Package("", "", "", encoded)), plain
    assert package_key(Package("n", "1", "generic", "not-a-purl")) == ("generic", "n", "1")


def test_empty() -> None:
    result = merge([])
    assert (result.findings, result.scanners, result.only_in, result.severity_conflicts) == ((), (), {}, ())


ids = st.sampled_from(["CVE-2024-1", "CVE-2024-2", "cve-2023-9", "GHSA-aaaa-bbbb-cccc", "GHSA-dddd-eeee-ffff", "DSA-1"])
packages = st.sampled_from(
    [
        OPENSSL,
        Package("openssl", "3.0.11-1", "deb"),
        Package("requests", "2.31.0", "pypi", "pkg:pypi/requests@2.31.0", "/a"),
        Package("requests", "2.31.0", "pypi", None, "/b"),
        Package("requests", "2.32.0", "pypi"),
    ]
)
observations = st.builds(
    Observation,
    scanner=st.sampled_from(["trivy", "grype", "osv"]),
    vuln_id=ids,
    aliases=st.frozensets(ids, max_size=2),
    package=packages,
    severity=st.sampled_from(SEVERITIES),
    fixed_versions=st.lists(st.sampled_from(["1.0", "2.0", "3.0"]), max_size=2, unique=True).map(tuple),
    cvss=st.lists(
        st.builds(Cvss, st.sampled_from(["nvd", "ghsa"]), st.just("3.1"), st.none(), st.sampled_from([None, 5.0, 9.8])),
        max_size=2,
    ).map(tuple),
    title=st.sampled_from(["", "t1", "t2"]),
    target=st.sampled_from(["", "img", "lock"]),
    published=st.sampled_from([None, "2024-01-01", "2023-05-05"]),
)


@settings(max_examples=300)
@given(st.lists(observations, max_size=12), st.randoms(use_true_random=False))
def test_merge_is_order_independent(items: list[Observation], rnd: random.Random) -> None:
    expected = merge(items)
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert merge(shuffled) == expected
    # Every observation lands in exactly one finding, whose ids include its own.
    assert sum(len(f.observations) for f in expected.findings) == len(items)
    for f in expected.findings:
        assert f.severity == max((o.severity for o in f.observations), key=SEVERITIES.index)
        for o in f.observations:
            assert normalise_id(o.vuln_id) in f.ids
            assert package_key(o.package) == f.key
    # Findings of one package never share an id (they would have been merged).
    seen: set[tuple[object, str]] = set()
    for f in expected.findings:
        for vid in f.ids:
            assert (f.key, vid) not in seen
            seen.add((f.key, vid))


@settings(max_examples=300)
@given(st.lists(observations, min_size=1, max_size=2), st.frozensets(ids, min_size=1, max_size=3))
def test_fast_paths_build_what_the_general_path_builds(group: list[Observation], members: frozenset[str]) -> None:
    """One observation, or two from two scanners, skip the general bookkeeping: the same finding."""
    from factorygate.vulns.merge import _build, _build_many

    assert _build(set(members), list(group)) == _build_many(set(members), list(group))
    assert _build(set(members), list(reversed(group))) == _build_many(set(members), list(group))


def test_none_and_empty_dates_are_different_observations() -> None:
    """The total order on observations tells None from "" (an order-independence counterexample)."""
    a = Observation("trivy", "GHSA-aaaa-bbbb-cccc", frozenset(), OPENSSL, "unknown", target="img", fix_published=None)
    b = a._replace(fix_published="")
    assert merge([a, b]) == merge([b, a])
    assert merge([a, b]).findings[0].observations == (a, b)
