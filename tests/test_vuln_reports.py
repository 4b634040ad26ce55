"""Scanner reports (Trivy, Grype, CycloneDX) read into observations; bad input gives one clear line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factorygate.vulns.model import SEVERITIES, Cvss, Observation, VulnInputError
from factorygate.vulns.reports import load_report, parse_report, purl_parts

DATA = Path(__file__).resolve().parent / "data" / "vulns"
TRIVY = DATA / "trivy-app.json"
GRYPE = DATA / "grype-app.json"
CDX = DATA / "cyclonedx-app.json"


def by_package(observations: list[Observation]) -> dict[str, Observation]:
    return {o.package.name: o for o in observations}


def write(tmp_path: Path, doc: Any, name: str = "r.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def error_of(path: str, **kwargs: Any) -> str:
    with pytest.raises(VulnInputError) as info:
        load_report(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(path)
    return message


# --- Trivy -----------------------------------------------------------------------------------------


def test_trivy_distro_and_language_packages() -> None:
    obs = load_report(str(TRIVY))
    assert len(obs) == 8
    assert {o.scanner for o in obs} == {"trivy"}
    assert all(o.severity in SEVERITIES for o in obs)
    pkgs = by_package(obs)

    openssl = pkgs["openssl"]
    assert openssl.vuln_id == "CVE-2024-0727"
    assert openssl.package.type == "deb"
    assert openssl.package.purl == "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12.5"
    assert openssl.package.path is None
    assert openssl.severity == "medium"
    assert openssl.fixed_versions == ("3.0.13-1~deb12u1",)
    assert Cvss("nvd", "3.1", "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H", 5.5) in openssl.cvss
    assert openssl.target == "registry.example/shop/app:1.4.2 (debian 12.5)"
    assert openssl.published == "2024-01-26T09:15:07.837Z"
    assert openssl.title.startswith("openssl: denial of service")

    assert pkgs["libc6"].aliases == frozenset({"DSA-5673-1"})  # VendorIDs are aliases
    assert pkgs["zlib1g"].fixed_versions == ()
    assert pkgs["zlib1g"].severity == "critical"

    perl = pkgs["perl-base"]  # no PkgIdentifier, no FixedVersion, no CVSS, no Title
    assert perl.package.purl is None
    assert perl.package.type == "deb"
    assert (perl.fixed_versions, perl.cvss, perl.title) == ((), (), "")

    requests = pkgs["requests"]
    assert requests.package.type == "pypi"
    assert requests.package.path == "usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA"
    assert pkgs["urllib3"].fixed_versions == ("1.26.19", "2.2.2")  # "1.26.19, 2.2.2" split

    express = pkgs["express"]
    assert (express.package.type, express.target, express.package.path) == (
        "npm",
        "app/package-lock.json",
        "app/package-lock.json",
    )


def test_trivy_severity_from_vendor_when_missing(tmp_path: Path) -> None:
    doc = json.loads(TRIVY.read_text())
    vuln = doc["Results"][0]["Vulnerabilities"][0]
    del vuln["Severity"]
    vuln["SeveritySource"] = "redhat"
    obs = load_report(write(tmp_path, doc))
    assert obs[0].severity == "low"  # VendorSeverity redhat: 1


def test_trivy_clean_results_give_nothing(tmp_path: Path) -> None:
    doc = {"SchemaVersion": 2, "ArtifactName": "x", "Results": [{"Target": "x (alpine 3.20.0)", "Class": "os-pkgs"}]}
    assert load_report(write(tmp_path, doc)) == []


# --- Grype -----------------------------------------------------------------------------------------


def test_grype_matches() -> None:
    obs = load_report(str(GRYPE))
    assert len(obs) == 8
    assert {o.scanner for o in obs} == {"grype"}
    pkgs = by_package(obs)

    requests = pkgs["requests"]
    assert requests.vuln_id == "GHSA-9wx4-h78v-vm56"
    assert requests.aliases == frozenset({"CVE-2024-35195"})
    assert requests.package.type == "pypi"
    assert requests.package.purl == "pkg:pypi/requests@2.31.0"
    assert requests.package.path == "/usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA"
    assert requests.cvss == (Cvss("github", "3.1", "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N", 5.6),)
    assert requests.target == "registry.example/shop/app:1.4.2"

    openssl = pkgs["openssl"]
    assert openssl.aliases == frozenset()  # the related NVD record has the same id
    assert openssl.package.type == "deb"
    assert openssl.package.path == "/var/lib/dpkg/status"

    zlib = pkgs["zlib1g"]
    assert (zlib.severity, zlib.fixed_versions) == ("negligible", ())
    assert pkgs["braces"].severity == "high"


def test_grype_fix_dates_and_directory_source(tmp_path: Path) -> None:
    doc = json.loads(GRYPE.read_text())
    doc["source"] = {"type": "directory", "target": "/src/app"}
    doc["matches"][0]["vulnerability"]["fix"]["available"] = [
        {"version": "3.0.13-1~deb12u1", "date": "2024-02-10", "kind": "first-observed"}
    ]
    obs = load_report(write(tmp_path, doc))
    assert obs[0].target == "/src/app"
    assert obs[0].fix_published == "2024-02-10"


def test_grype_empty_matches(tmp_path: Path) -> None:
    assert load_report(write(tmp_path, {"matches": [], "descriptor": {"name": "grype", "version": "0.79.1"}})) == []


# --- CycloneDX -------------------------------------------------------------------------------------


def test_cyclonedx_vulnerabilities() -> None:
    obs = load_report(str(CDX))
    assert len(obs) == 2
    assert {o.scanner for o in obs} == {"cyclonedx:trivy"}
    pkgs = by_package(obs)
    openssl = pkgs["openssl"]
    assert openssl.package.type == "deb"
    assert openssl.severity == "medium"  # the highest rating (debian: low, nvd: medium)
    assert openssl.cvss == (Cvss("nvd", "3.1", "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H", 5.5),)
    assert openssl.aliases == frozenset()  # the advisory URL names the same CVE
    requests = pkgs["requests"]  # a nested component
    assert requests.aliases == frozenset({"GHSA-9wx4-h78v-vm56"})
    assert requests.fixed_versions == ("2.32.0",)
    assert requests.target == "registry.example/shop/app:1.4.2"


def test_cyclonedx_14_tools_list_and_purl_refs(tmp_path: Path) -> None:
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.4",
        "metadata": {"tools": [{"vendor": "anchore", "name": "grype", "version": "0.70.0"}]},
        "components": [],
        "vulnerabilities": [
            {
                "id": "GHSA-grv7-fg5c-xmjg",
                "ratings": [{"severity": "high"}],
                "advisories": [{"url": "https://nvd.nist.gov/vuln/detail/CVE-2024-4068"}],
                "affects": [{"ref": "pkg:npm/%40scope/braces@3.0.2"}],
            }
        ],
    }
    (obs,) = load_report(write(tmp_path, doc))
    assert obs.scanner == "cyclonedx:grype"
    assert obs.aliases == frozenset({"CVE-2024-4068"})
    assert (obs.package.type, obs.package.name, obs.package.version) == ("npm", "@scope/braces", "3.0.2")


# --- purl ------------------------------------------------------------------------------------------


def test_purl_parts() -> None:
    assert purl_parts("pkg:npm/%40angular/core@17.0.1") == ("npm", "@angular", "core", "17.0.1", {})
    assert purl_parts("pkg:npm/@angular/core") == ("npm", "@angular", "core", "", {})
    assert purl_parts("pkg:rpm/redhat/openssl@3.0.7-25.el9?arch=x86_64&epoch=1") == (
        "rpm",
        "redhat",
        "openssl",
        "3.0.7-25.el9",
        {"arch": "x86_64", "epoch": "1"},
    )
    assert purl_parts("pkg:golang/github.com/x/net@v0.17.0#sub") == ("golang", "github.com/x", "net", "v0.17.0", {})
    assert purl_parts("not-a-purl") is None
    assert purl_parts("pkg:npm") is None


# --- errors ----------------------------------------------------------------------------------------


def test_truncated_json(tmp_path: Path) -> None:
    data = GRYPE.read_bytes()
    path = tmp_path / "cut.json"
    path.write_bytes(data[: len(data) // 2])
    assert "truncated JSON" in error_of(str(path))


def test_every_cut_is_reported_as_truncated(tmp_path: Path) -> None:
    doc = json.loads(CDX.read_text())
    doc["vulnerabilities"][0]["ratings"][1]["score"] = -5.5e-1  # numbers, literals, nesting, strings
    doc["extra"] = [True, False, None, 12]
    data = json.dumps(doc, indent=1).encode()
    path = tmp_path / "cut.json"
    for end in range(1, len(data) - 1):
        if not data[end:].strip():
            continue
        path.write_bytes(data[:end])
        assert "truncated JSON" in error_of(str(path)), data[:end][-20:]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty file"),
        (b"   \n", "empty file"),
        (b"<html>nope</html>", "not JSON"),
        (b"SchemaVersion: 2\n", "not JSON"),
        (b'{"a": 1,, }', "invalid JSON at line 1"),
        (b'{"a": "\xff\xfe"}', "not UTF-8"),
        (b"[1, 2]", "a JSON object is expected"),
        (b'{"foo": 1}', "unknown report format"),
        (b'{"spdxVersion": "SPDX-2.3"}', "an SPDX document"),
        (b'{"artifacts": [], "descriptor": {"name": "syft"}}', "a syft document"),
        (b'{"matches": [], "descriptor": {"name": "syft"}}', "not Grype"),
        (b'{"SchemaVersion": 2, "ArtifactName": "x"}', "a Trivy report with no Results"),
        (b'{"SchemaVersion": 2, "ArtifactName": "x", "Results": null}', "a Trivy report with no Results"),
        (b'{"SchemaVersion": 2}', "a Trivy report with no Results"),
        (b'{"SchemaVersion": 1, "Results": []}', "SchemaVersion 1 is not supported"),
        (b'{"SchemaVersion": 2, "Results": {}}', "Results must be a list"),
        (b'{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"PkgName": "x"}]}]}', "VulnerabilityID"),
        (b'{"matches": [{"vulnerability": {"id": "CVE-1"}}]}', "matches[0].artifact must be an object"),
        (b'{"matches": "x"}', "matches must be a list"),
        (
            b'{"matches": [{"vulnerability": {"id": "GHSA-1"}, "artifact": {"name": "a"}, '
            b'"relatedVulnerabilities": [{"cvss": []}]}]}',
            "matches[0].relatedVulnerabilities[] must be objects with an id",
        ),
        (b'{"bomFormat": "CycloneDX", "specVersion": "1.3", "vulnerabilities": []}', "1.4 or later"),
        (b'{"bomFormat": "CycloneDX", "specVersion": "x"}', "is not a version"),
        (b'{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}', "SBOM with no vulnerabilities"),
        (
            b'{"bomFormat": "CycloneDX", "specVersion": "1.5", '
            b'"vulnerabilities": [{"id": "CVE-1", "affects": [{"ref": "r1"}]}]}',
            "no component's bom-ref",
        ),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert expected in error_of(str(path))


def test_missing_file(tmp_path: Path) -> None:
    assert "cannot read" in error_of(str(tmp_path / "absent.json"))


def test_size_limit_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as fh:  # a sparse 600 MB file: reading it would take long
        fh.truncate(600 * 1024 * 1024)
    start = time.perf_counter()
    message = error_of(str(path))
    assert time.perf_counter() - start < 0.5
    assert "over the 536870912-byte limit" in message  # the default, 512 MiB
    assert "over the 100-byte limit" in error_of(str(GRYPE), max_bytes=100)


def test_size_limit_holds_when_stat_size_is_zero(tmp_path: Path) -> None:
    # /proc-like or FIFO inputs report size 0: the bounded read still stops at the limit.
    message = error_of("/dev/zero", max_bytes=1000)
    assert "over the 1000-byte limit" in message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "SchemaVersion",
        "Results",
        "Vulnerabilities",
        "VulnerabilityID",
        "PkgName",
        "matches",
        "vulnerability",
        "artifact",
        "id",
        "name",
        "bomFormat",
        "specVersion",
        "vulnerabilities",
        "affects",
        "ref",
        "ratings",
        "CVSS",
        "fix",
    ]
)
shaped = st.recursive(
    st.none() | st.integers() | st.sampled_from(["CycloneDX", "1.5", "CVE-2024-1", "grype", "x"]) | st.just(2),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, shaped))
def test_arbitrary_json_gives_observations_or_input_error(doc: Any) -> None:
    message = ""
    obs: list[Observation] = []
    try:
        obs = parse_report(doc, "fuzz.json")
    except VulnInputError as exc:
        message = str(exc)
    if message:
        assert "\n" not in message
        assert message.startswith("fuzz.json: ")
    assert all(isinstance(o, Observation) and o.severity in SEVERITIES for o in obs)
