"""The offline OSV matcher: loading (directories, zip exports, bad files), version ordering, matching."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factorygate.vulns.model import Package, VulnInputError
from factorygate.vulns.osv import (
    SbomPackage,
    cvss3_base_score,
    ecosystem_of,
    load_osv,
    packages_from_sbom,
    parse_purl,
)

DATA = Path(__file__).parent / "data" / "osv"
MIRROR = DATA / "mirror"


@pytest.fixture(scope="module")
def db():  # type: ignore[no-untyped-def]
    return load_osv(str(MIRROR))


@pytest.fixture(scope="module")
def findings(db):  # type: ignore[no-untyped-def]
    return {
        (o.vuln_id, o.package.name, o.package.type): o
        for o in db.match(packages_from_sbom(str(DATA / "sbom.cdx.json")))
    }


def record(
    ecosystem: str, name: str, events: list[dict[str, str]], vid: str = "TEST-1", kind: str = "ECOSYSTEM"
) -> dict:  # type: ignore[type-arg]
    return {
        "id": vid,
        "modified": "2024-01-01T00:00:00Z",
        "affected": [{"package": {"ecosystem": ecosystem, "name": name}, "ranges": [{"type": kind, "events": events}]}],
    }


def affected(tmp_path: Path, rec: dict, purl: str) -> bool:  # type: ignore[type-arg]
    (tmp_path / "r.json").write_text(json.dumps(rec))
    db = load_osv(str(tmp_path))
    p = parse_purl(purl)
    assert p is not None
    return bool(db.match([Package(p.name, p.version or "", p.type, purl)]))


# --- loading -----------------------------------------------------------------------------------


def test_loads_directory_and_zip_and_reports_bad_files(db) -> None:  # type: ignore[no-untyped-def]
    assert db.advisories == 8  # 6 json + 2 zip members; the withdrawn one and the broken one are not counted
    assert len(db.problems) == 1
    assert "broken.json: not JSON" in db.problems[0]
    assert ("Alpine", "openssl") in db.index  # indexed by ecosystem prefix; the release is checked per package
    assert ("PyPI", "requests") in db.index  # PEP 503 normalised from "Requests"


def test_single_zip_file(tmp_path: Path) -> None:
    db = load_osv(str(MIRROR / "zips" / "Alpine.zip"))
    assert db.advisories == 2
    assert not db.problems


def test_zip_members_streamed_and_bad_zip_is_a_problem(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "npm.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("GHSA-1.json", json.dumps(record("npm", "x", [{"introduced": "0"}], "GHSA-1")))
        zf.writestr("junk.json", "[1, 2")
        zf.writestr("README.txt", "not read")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    db = load_osv(str(tmp_path))
    assert db.advisories == 1
    assert len(db.problems) == 2
    assert any("npm.zip!junk.json: not JSON" in p for p in db.problems)
    assert any("bad.zip: not a readable zip file" in p for p in db.problems)
    assert all("\n" not in p for p in db.problems)


def test_missing_path_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(VulnInputError, match="no such OSV file or directory"):
        load_osv(str(tmp_path / "nope"))


def test_empty_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(VulnInputError, match="no OSV records"):
        load_osv(str(tmp_path))


def test_only_bad_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{")
    with pytest.raises(VulnInputError, match=r"no readable OSV record; first problem: .*a\.json"):
        load_osv(str(tmp_path))


def test_record_without_id_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(record("npm", "x", [{"introduced": "0"}])))
    (tmp_path / "b.json").write_text(json.dumps({"affected": []}))
    db = load_osv(str(tmp_path))
    assert db.advisories == 1
    assert db.problems == [f"{tmp_path / 'b.json'}: not an OSV record (no id)"]


# --- SBOM --------------------------------------------------------------------------------------


def test_packages_from_sbom() -> None:
    pkgs = packages_from_sbom(str(DATA / "sbom.cdx.json"))
    names = [p.package.name for p in pkgs]
    assert "app" not in names  # the image (metadata.component) is not a package
    assert "no-purl" not in names
    assert "lib" in names  # nested components are read
    libc = next(p for p in pkgs if p.package.name == "libc6")
    assert libc.source_name == "glibc"
    assert libc.package.type == "deb"
    assert libc.package.version == "2.36-9+deb12u1"
    assert libc.package.path == "/var/lib/dpkg/status"


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "not JSON"), ('{"bomFormat": "SPDX"}', "not a CycloneDX JSON SBOM")],
)
def test_bad_sbom(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "sbom.json"
    path.write_text(content)
    with pytest.raises(VulnInputError, match=message):
        packages_from_sbom(str(path))


@pytest.mark.parametrize(
    ("purl", "ecosystem"),
    [
        ("pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12", "Debian:12"),
        ("pkg:deb/debian/libc6@2.36-9?distro=debian-12.5", "Debian:12"),
        ("pkg:deb/debian/libc6@2.36-9", "Debian"),
        ("pkg:deb/ubuntu/libc6@2.35-0ubuntu3?distro=ubuntu-22.04", "Ubuntu:22.04"),
        ("pkg:apk/alpine/musl@1.2.4-r2?distro=alpine-3.19.1", "Alpine:v3.19"),
        ("pkg:rpm/rocky/bash@5.1.8-6.el9?distro=rocky-9.3", "Rocky Linux:9"),
        ("pkg:rpm/redhat/bash@5.1.8-6.el9?distro=rhel-9.3", "Red Hat:9"),
        ("pkg:rpm/redhat/bash@5.1.8-6.el9", "Red Hat"),
        ("pkg:rpm/almalinux/bash@5.1.8-6.el9?distro=almalinux-9.4", "AlmaLinux:9"),
        ("pkg:rpm/suse/bash@4.4-150400.27.3.2?distro=sles-15.5", "SUSE:15 SP5"),
        ("pkg:rpm/suse/bash@4.4-150400.27.3.2?distro=sles-15", "SUSE:15"),
        ("pkg:rpm/opensuse/bash@5.2-1.1?distro=opensuse-leap-15.5", "openSUSE:Leap 15.5"),
        ("pkg:rpm/opensuse/bash@5.2-1.1?distro=opensuse-tumbleweed-20240501", "openSUSE:Tumbleweed"),
        ("pkg:deb/ubuntu/libc6@2.39-0ubuntu8?distro=ubuntu-24.04", "Ubuntu:24.04"),
        ("pkg:rpm/fedora/bash@5.2-1.fc40?distro=fedora-40", None),
        ("pkg:pypi/requests@2.0", "PyPI"),
        ("pkg:npm/%40scope/lib@1.0.0", "npm"),
        ("pkg:golang/github.com/foo/bar@v1.2.3", "Go"),
        ("pkg:generic/thing@1", None),
    ],
)
def test_ecosystem_of(purl: str, ecosystem: str | None) -> None:
    parsed = parse_purl(purl)
    assert parsed is not None
    assert ecosystem_of(parsed) == ecosystem


# --- matching the fixture SBOM -----------------------------------------------------------------


def test_fixture_findings(findings) -> None:  # type: ignore[no-untyped-def]
    assert set(findings) == {
        ("DSA-5678-1", "libssl3", "deb"),
        ("DEBIAN-CVE-2023-4911", "libc6", "deb"),
        ("DEBIAN-CVE-2099-0001", "tzdata", "deb"),
        ("DEBIAN-CVE-2099-0001", "zlib1g", "deb"),
        ("ALPINE-CVE-2023-5678", "libssl3", "apk"),
        ("GHSA-j8r2-6x86-q33q", "requests", "pypi"),
        ("PYSEC-2099-1", "Demo.Pkg", "pypi"),
        ("GHSA-c2qf-rxjj-qqgw", "semver", "npm"),
        ("GHSA-c2qf-rxjj-qqgw", "lib", "npm"),
    }


def test_observation_fields(findings) -> None:  # type: ignore[no-untyped-def]
    dsa = findings["DSA-5678-1", "libssl3", "deb"]
    assert dsa.scanner == "factorygate-osv"
    assert dsa.aliases == frozenset({"CVE-2024-0727"})
    assert dsa.fixed_versions == ("3.0.13-1~deb12u1",)
    assert dsa.severity == "high"  # from the CVSS vector: 7.5
    assert dsa.cvss[0].score == 7.5
    assert dsa.cvss[0].version == "3.1"
    assert dsa.published == "2024-02-01"
    assert dsa.package.purl == "pkg:deb/debian/libssl3@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"
    glibc = findings["DEBIAN-CVE-2023-4911", "libc6", "deb"]
    assert glibc.severity == "high"  # the Debian urgency
    assert glibc.aliases == frozenset({"CVE-2023-4911"})  # the OSV "upstream" field
    assert glibc.title == "A buffer overflow was discovered in the GNU C Library's dynamic loader ld.so."
    requests = findings["GHSA-j8r2-6x86-q33q", "requests", "pypi"]
    assert requests.severity == "medium"  # database_specific MODERATE wins over the CVSS score
    assert requests.cvss[0].source == "ghsa"
    assert findings["PYSEC-2099-1", "Demo.Pkg", "pypi"].severity == "unknown"
    assert findings["GHSA-c2qf-rxjj-qqgw", "semver", "npm"].fixed_versions == ("7.5.2",)  # 5.7.2 is below


def test_alpine_severity_from_cvss(findings) -> None:  # type: ignore[no-untyped-def]
    assert findings["ALPINE-CVE-2023-5678", "libssl3", "apk"].severity == "medium"


def test_match_plain_packages_and_target(db) -> None:  # type: ignore[no-untyped-def]
    pkg = Package("semver", "7.0.0", "npm", "pkg:npm/semver@7.0.0")
    out = db.match([pkg, SbomPackage(Package("x", "1", "npm", None))], target="app.json")
    assert [(o.vuln_id, o.target) for o in out] == [("GHSA-c2qf-rxjj-qqgw", "app.json")]


def test_upstream_qualifier_names_the_source(db) -> None:  # type: ignore[no-untyped-def]
    purl = "pkg:deb/debian/libc6@2.36-9%2Bdeb12u1?arch=amd64&distro=debian-12&upstream=glibc"
    assert [o.vuln_id for o in db.match([Package("libc6", "2.36-9+deb12u1", "deb", purl)])] == ["DEBIAN-CVE-2023-4911"]


# --- version ordering edge cases ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("purl_prefix", "fixed", "version", "expected"),
    [
        # dpkg: an epoch beats any upstream version; ~ sorts before everything, even the end
        ("pkg:deb/debian/p@{}?distro=debian-12", "1:1.0", "2.0", True),
        ("pkg:deb/debian/p@{}?distro=debian-12", "2.0", "1:1.0", False),
        ("pkg:deb/debian/p@{}?distro=debian-12", "1.0", "1.0~rc1", True),
        ("pkg:deb/debian/p@{}?distro=debian-12", "1.0-1", "1.0-1+deb12u1", False),
        ("pkg:deb/debian/p@{}?distro=debian-12", "1.0-1~deb12u1", "1.0-1~deb11u1", True),
        # apk: _rc before release, -rN release numbers
        ("pkg:apk/alpine/p@{}?distro=alpine-3.19.0", "1.2-r0", "1.2_rc1-r0", True),
        ("pkg:apk/alpine/p@{}?distro=alpine-3.19.0", "1.2.3-r2", "1.2.3-r10", False),
        # PEP 440: pre-releases before the release, post-releases after; normalised spelling
        ("pkg:pypi/p@{}", "1.0", "1.0rc1", True),
        ("pkg:pypi/p@{}", "1.0", "1.0.post1", False),
        ("pkg:pypi/p@{}", "1.0", "1.0.0", False),
        ("pkg:pypi/p@{}", "1.10", "1.9", True),
        # semver: pre-release identifiers, numeric ones compared as numbers
        ("pkg:npm/p@{}", "1.0.0", "1.0.0-alpha", True),
        ("pkg:npm/p@{}", "1.0.0-beta.10", "1.0.0-beta.2", True),
        ("pkg:npm/p@{}", "1.0.0-beta.2", "1.0.0-beta.10", False),
    ],
)
def test_version_ordering(tmp_path: Path, purl_prefix: str, fixed: str, version: str, expected: bool) -> None:
    parsed = parse_purl(purl_prefix.format("1"))
    assert parsed is not None
    ecosystem = ecosystem_of(parsed)
    assert ecosystem is not None
    rec = record(ecosystem, "p", [{"introduced": "0"}, {"fixed": fixed}])
    assert affected(tmp_path, rec, purl_prefix.format(version)) is expected


def test_rpm_epoch_qualifier(tmp_path: Path) -> None:
    rec = record("Rocky Linux:9", "bash", [{"introduced": "0"}, {"fixed": "1:5.0-1.el9"}])
    assert affected(tmp_path, rec, "pkg:rpm/rocky/bash@5.1-1.el9?distro=rocky-9.3")
    assert not affected(tmp_path, rec, "pkg:rpm/rocky/bash@5.1-1.el9?distro=rocky-9.3&epoch=1")


def test_last_affected_and_multiple_intervals(tmp_path: Path) -> None:
    events = [{"introduced": "1.0.0"}, {"fixed": "1.2.0"}, {"introduced": "2.0.0"}, {"last_affected": "2.1.0"}]
    rec = record("npm", "p", events, kind="SEMVER")
    expect = {"0.9.0": False, "1.0.0": True, "1.1.9": True, "1.2.0": False, "1.9.9": False, "2.0.0": True}
    expect |= {"2.1.0": True, "2.1.1": False}
    for version, want in expect.items():
        assert affected(tmp_path, rec, f"pkg:npm/p@{version}") is want, version


def test_unparsable_versions_do_not_match(tmp_path: Path) -> None:
    rec = record("Debian:12", "p", [{"introduced": "0"}, {"fixed": "not a version!"}])
    assert not affected(tmp_path, rec, "pkg:deb/debian/p@1.0?distro=debian-12")
    rec = record("PyPI", "p", [{"introduced": "0"}, {"fixed": "2.0"}])
    assert not affected(tmp_path, rec, "pkg:pypi/p@garbage%20version")


def test_git_ranges_ignored_and_exact_versions_used(tmp_path: Path) -> None:
    rec = record("PyPI", "p", [{"introduced": "0"}], kind="GIT")
    rec["affected"][0]["versions"] = ["1.0"]
    assert affected(tmp_path, rec, "pkg:pypi/p@1.0")
    assert not affected(tmp_path, rec, "pkg:pypi/p@1.1")


def test_cvss3_scores() -> None:
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") == 9.8
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H") == 10.0
    assert cvss3_base_score("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:N/A:N") == 6.1
    assert cvss3_base_score("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:N") == 0.0
    assert cvss3_base_score("CVSS:3.1/AV:N") is None


# --- properties --------------------------------------------------------------------------------

_semver = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30))
_deb = st.tuples(st.integers(0, 2), st.integers(0, 30), st.integers(0, 30), st.integers(1, 5))


def _sv(t: tuple[int, int, int]) -> str:
    return ".".join(map(str, t))


def _dv(t: tuple[int, int, int, int]) -> str:
    epoch, major, minor, rev = t
    return f"{epoch}:{major}.{minor}-{rev}" if epoch else f"{major}.{minor}-{rev}"


@settings(max_examples=60, deadline=None)
@given(a=_semver, b=_semver)
def test_property_semver_bounds(
    tmp_path_factory: pytest.TempPathFactory, a: tuple[int, int, int], b: tuple[int, int, int]
) -> None:
    introduced, fixed = min(a, b), max(a, b)
    if introduced == fixed:
        return
    below = (introduced[0], introduced[1], introduced[2] - 1) if introduced[2] else None
    tmp = tmp_path_factory.mktemp("p")
    rec = record("npm", "p", [{"introduced": _sv(introduced)}, {"fixed": _sv(fixed)}], kind="SEMVER")
    assert not affected(tmp, rec, f"pkg:npm/p@{_sv(fixed)}")
    assert affected(tmp, rec, f"pkg:npm/p@{_sv(introduced)}")
    assert not affected(tmp, rec, f"pkg:npm/p@{_sv(introduced)}-rc.1")  # a pre-release is just below
    if below is not None:
        assert not affected(tmp, rec, f"pkg:npm/p@{_sv(below)}")


@settings(max_examples=60, deadline=None)
@given(a=_deb, b=_deb)
def test_property_dpkg_bounds(
    tmp_path_factory: pytest.TempPathFactory, a: tuple[int, int, int, int], b: tuple[int, int, int, int]
) -> None:
    introduced, fixed = min(a, b), max(a, b)
    if introduced == fixed:
        return
    tmp = tmp_path_factory.mktemp("d")
    rec = record("Debian:12", "p", [{"introduced": _dv(introduced)}, {"fixed": _dv(fixed)}])
    purl = "pkg:deb/debian/p@{}?distro=debian-12"
    assert not affected(tmp, rec, purl.format(_dv(fixed)))
    assert affected(tmp, rec, purl.format(_dv(introduced)))
    assert not affected(tmp, rec, purl.format(_dv(introduced) + "~"))  # tilde: just below


def test_prefilter_finds_the_same(findings) -> None:  # type: ignore[no-untyped-def]
    pkgs = packages_from_sbom(str(DATA / "sbom.cdx.json"))
    db = load_osv(str(MIRROR), only=pkgs)
    assert {(o.vuln_id, o.package.name, o.package.type) for o in db.match(pkgs)} == set(findings)
    assert db.skipped == 1  # every record names an SBOM package except the broken file (no name at all)
    assert db.problems == []
    npm = [p for p in pkgs if p.package.type == "npm"]
    db = load_osv(str(MIRROR), only=npm)
    assert db.advisories == 1  # the npm one; the withdrawn one is parsed (names semver) but not counted
    assert db.skipped == 8
    assert {o.vuln_id for o in db.match(npm)} == {"GHSA-c2qf-rxjj-qqgw"}


def test_prefilter_is_conservative_with_escapes(tmp_path: Path) -> None:
    rec = record("PyPI", "Demo_Pkg", [{"introduced": "0"}])
    (tmp_path / "a.json").write_text(json.dumps(rec).replace("Demo_Pkg", "Demo\\u005fPkg"))
    pkg = Package("demo-pkg", "1.0", "pypi", "pkg:pypi/demo-pkg@1.0")
    assert [o.vuln_id for o in load_osv(str(tmp_path), only=[pkg]).match([pkg])] == ["TEST-1"]
    empty = load_osv(str(tmp_path), only=[Package("other", "1.0", "pypi", "pkg:pypi/other@1.0")])
    assert empty.advisories == 1  # the escaped name could be anything, so the record was parsed


# --- RPM and Ubuntu ecosystems (tests/data/osv/distros: the shapes of real RHSA, SUSE, openSUSE, RLSA,
# ALSA and Ubuntu OSV records) --------------------------------------------------------------------

DISTROS = DATA / "distros"


@pytest.fixture(scope="module")
def distro_db():  # type: ignore[no-untyped-def]
    return load_osv(str(DISTROS))


def matched(db, purl: str, source_name: str | None = None) -> dict[str, tuple[str, ...]]:  # type: ignore[no-untyped-def]
    """{advisory id: fixed versions above the installed one} for one package URL."""
    p = parse_purl(purl)
    assert p is not None
    found = db.match([SbomPackage(Package(p.name, p.version or "", p.type, purl), source_name)])
    return {o.vuln_id: o.fixed_versions for o in found}


@pytest.mark.parametrize(
    ("purl", "source", "expected"),
    [
        # Red Hat: the record's "enterprise_linux:9" stream covers RHEL 9 only; the binary rpm name is
        # looked up even when the SBOM names the source rpm; epochs order as rpm orders them.
        (
            "pkg:rpm/redhat/openssl-libs@3.0.7-24.el9?arch=x86_64&epoch=1&distro=rhel-9.3",
            "openssl",
            {"RHSA-2024:2447": ("1:3.0.7-27.el9",)},
        ),
        ("pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?arch=x86_64&epoch=1&distro=rhel-9.4", "openssl", {}),
        (
            "pkg:rpm/redhat/openssl-libs@1.1.1k-9.el8_7?arch=x86_64&epoch=1&distro=rhel-8.8",
            None,
            {"RHSA-2024:2447": ("1:1.1.1k-12.el8_9",)},
        ),
        # SUSE: every SLE product and module of the service pack; another service pack does not count
        (
            "pkg:rpm/suse/libopenssl3@3.0.8-150500.5.8.1?distro=sles-15.5",
            None,
            {"SUSE-SU-2024:1234-1": ("3.0.8-150500.5.20.1",)},
        ),
        ("pkg:rpm/suse/libopenssl3@3.0.8-150500.5.20.1?distro=sles-15.5", None, {}),
        (
            "pkg:rpm/suse/libopenssl3@3.0.1-150400.4.7.1?distro=sles-15.4",
            None,
            {"SUSE-SU-2024:1234-1": ("3.0.1-150400.4.40.1",)},
        ),
        ("pkg:rpm/suse/libopenssl3@3.0.1-150400.4.7.1?distro=sles-15.3", None, {}),
        # openSUSE Leap and Tumbleweed are separate ecosystems
        (
            "pkg:rpm/opensuse/libxml2-2@2.10.3-150500.5.11.1?distro=opensuse-leap-15.5",
            None,
            {"openSUSE-SU-2024:0042-1": ("2.10.3-150500.5.17.1",)},
        ),
        (
            "pkg:rpm/opensuse/libxml2-2@2.12.5-1.1?distro=opensuse-tumbleweed-20240401",
            None,
            {"openSUSE-SU-2024:0042-1": ("2.12.6-1.1",)},
        ),
        ("pkg:rpm/opensuse/libxml2-2@2.10.3-150500.5.11.1?distro=opensuse-leap-15.6", None, {}),
        # Rocky Linux and AlmaLinux, rpm ordering of "el9_3.1" releases
        (
            "pkg:rpm/rocky/libnghttp2@1.43.0-5.el9?distro=rocky-9.3",
            "nghttp2",
            {"RLSA-2024:1879": ("1.43.0-5.el9_3.1",)},
        ),
        ("pkg:rpm/rocky/libnghttp2@1.43.0-5.el9_3.1?distro=rocky-9.3", "nghttp2", {}),
        (
            "pkg:rpm/almalinux/libnghttp2@1.43.0-5.el9?distro=almalinux-9.3",
            "nghttp2",
            {"ALSA-2024:1879": ("1.43.0-5.el9_3.1",)},
        ),
        # Ubuntu: "Ubuntu:22.04:LTS" covers 22.04 (looked up by source package, dpkg ordering); the Pro
        # stream does not cover the standard 18.04 archive
        (
            "pkg:deb/ubuntu/libc6@2.35-0ubuntu3.6?distro=ubuntu-22.04",
            "glibc",
            {"UBUNTU-CVE-2024-2961": ("2.35-0ubuntu3.7",)},
        ),
        ("pkg:deb/ubuntu/libc6@2.35-0ubuntu3.7?distro=ubuntu-22.04", "glibc", {}),
        (
            "pkg:deb/ubuntu/libc6@2.39-0ubuntu8?distro=ubuntu-24.04",
            "glibc",
            {"UBUNTU-CVE-2024-2961": ("2.39-0ubuntu8.1",)},
        ),
        ("pkg:deb/ubuntu/libc6@2.27-3ubuntu1.6?distro=ubuntu-18.04", "glibc", {}),
    ],
)
def test_rpm_and_ubuntu_ecosystems(distro_db, purl: str, source: str | None, expected: dict) -> None:  # type: ignore[no-untyped-def,type-arg]
    assert matched(distro_db, purl, source) == expected


def test_distro_severities_and_prefilter(distro_db) -> None:  # type: ignore[no-untyped-def]
    rhel = SbomPackage(
        Package(
            "openssl-libs", "3.0.7-24.el9", "rpm", "pkg:rpm/redhat/openssl-libs@3.0.7-24.el9?epoch=1&distro=rhel-9.3"
        ),
        "openssl",
    )
    ubuntu = SbomPackage(
        Package("libc6", "2.35-0ubuntu3.6", "deb", "pkg:deb/ubuntu/libc6@2.35-0ubuntu3.6?distro=ubuntu-22.04"), "glibc"
    )
    rocky = SbomPackage(
        Package("libnghttp2", "1.43.0-5.el9", "rpm", "pkg:rpm/rocky/libnghttp2@1.43.0-5.el9?distro=rocky-9.3")
    )
    by_id = {o.vuln_id: o for o in distro_db.match([rhel, ubuntu, rocky])}
    assert by_id["RHSA-2024:2447"].severity == "medium"  # Red Hat's "moderate"
    assert by_id["UBUNTU-CVE-2024-2961"].severity == "high"  # the Ubuntu priority
    assert by_id["RLSA-2024:1879"].severity == "high"  # "important"
    assert by_id["RHSA-2024:2447"].aliases == frozenset({"CVE-2023-5678"})
    # the prefilter keeps the records that name the binary rpm, the source package, or both
    narrow = load_osv(str(DISTROS), only=[rhel, ubuntu, rocky])
    assert {o.vuln_id for o in narrow.match([rhel, ubuntu, rocky])} == set(by_id)
    # SUSE and openSUSE records name none of these packages (the AlmaLinux one names libnghttp2: the
    # prefilter looks at names, not ecosystems)
    assert narrow.skipped == 2
