"""The CycloneDX 1.5 SBOM, validated against the official schema (tests/data/schemas/cyclonedx)."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator
from tests.cyclonedx_schema import SCHEMAS, bom_validator

from factorygate.oci.inventory import Package, inventory, make_purl, parse_os_release
from factorygate.render import cyclonedx
from factorygate.render.cyclonedx import ImageInfo, licence_choices, oci_purl, sbom, spdx_expression, write_sbom

DATA = Path(__file__).resolve().parent / "data" / "inventory"
DIGEST = "sha256:" + "ab" * 32
TIMESTAMP = "2024-05-01T12:00:00Z"
OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
IMAGE = ImageInfo(
    name="registry.example.com/team/app:1.0",
    manifest_digest=DIGEST,
    repository_url="registry.example.com/team/app",
    tag="1.0",
    architecture="amd64",
    config_digest="sha256:" + "cd" * 32,
    os_release=parse_os_release(OS_RELEASE),
)


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    return bom_validator()


def assert_valid(validator: Draft7Validator, doc: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5])


def pkg(name: str, version: str, type_: str = "pypi", licenses: tuple[str, ...] = (), **kw: Any) -> Package:
    source = kw.pop("source_path", f"/site/{name}.dist-info/METADATA")
    return Package(
        name=name,
        version=version,
        type=type_,
        purl=kw.pop("purl", make_purl(type_, None, name.lower(), version)),
        source_path=source,
        licenses=licenses,
        **kw,
    )


@pytest.fixture(scope="module")
def real_packages() -> list[Package]:
    """Every kind of package from real databases: this host's dpkg, an rpm-written rpmdb, the venv, apk."""
    contents: dict[str, bytes] = {
        "/var/lib/rpm/rpmdb.sqlite": (DATA / "rpmdb.sqlite").read_bytes(),
        "/lib/apk/db/installed": b"P:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\n"
        b"P:busybox\nV:1.36.1-r5\nL:GPL-2.0-only\n",
        "/app/node_modules/@types/node/package.json": b'{"name": "@types/node", "version": "20.1.0", "license": "MIT"}',
    }
    status = Path("/var/lib/dpkg/status")
    contents[str(status)] = (
        status.read_bytes() if status.is_file() else b"Package: libc6\nVersion: 2.36-9+deb12u4\nArchitecture: amd64\n"
    )
    site = Path(str(importlib.metadata.distribution("jsonschema").locate_file("")))  # the venv's site-packages
    for meta in site.glob("*.dist-info/METADATA"):
        contents[f"/venv/{meta.parent.name}/METADATA"] = meta.read_bytes()
    packages, problems = inventory(contents, OS_RELEASE)
    assert problems == []
    assert {p.type for p in packages} == {"deb", "apk", "rpm", "pypi", "npm"}
    return packages


def test_sbom_of_real_inventory_is_valid_cyclonedx_15(validator: Draft7Validator, real_packages: list[Package]) -> None:
    doc = sbom(IMAGE, real_packages, "0.1.0", TIMESTAMP)
    assert_valid(validator, doc)
    assert doc["bomFormat"] == "CycloneDX"
    assert doc["specVersion"] == "1.5"
    assert doc["version"] == 1
    assert doc["metadata"]["timestamp"] == TIMESTAMP
    assert doc["metadata"]["tools"] == {
        "components": [
            {
                "type": "application",
                "name": "factorygate",
                "version": "0.1.0",
                "description": "DoD DevSecOps security gates",
            }
        ]
    }
    components = doc["components"]
    assert components[0]["type"] == "operating-system"
    assert len(components) == len(real_packages) + 1
    refs = [c["bom-ref"] for c in components]
    assert len(set(refs)) == len(refs)
    by_purl = {c["purl"]: c for c in components[1:]}
    assert set(by_purl) == {p.purl for p in real_packages}
    hello = by_purl["pkg:rpm/debian/fg-hello@1.2.3-4.fg1?arch=noarch&distro=debian-12&epoch=2"]
    assert hello["licenses"] == [{"expression": "MIT AND Apache-2.0"}]
    assert hello["publisher"] == "Factorygate Tests"
    tool = next(c for c in components if c["name"] == "fg-tool")
    assert tool["licenses"] == [{"license": {"name": "GPLv2+"}}]
    musl = by_purl["pkg:apk/debian/musl@1.2.4-r2?arch=x86_64&distro=debian-12"]
    assert musl["licenses"] == [{"license": {"id": "MIT"}}]
    assert {"name": "factorygate:package:source_path", "value": "/lib/apk/db/installed"} in musl["properties"]
    assert {"name": "factorygate:package:type", "value": "apk"} in musl["properties"]


def test_container_component(validator: Draft7Validator) -> None:
    doc = sbom(IMAGE, [], "0.1.0", TIMESTAMP)
    assert_valid(validator, doc)
    image = doc["metadata"]["component"]
    purl = f"pkg:oci/app@{DIGEST}?arch=amd64&repository_url=registry.example.com%2Fteam%2Fapp&tag=1.0"
    assert image == {
        "type": "container",
        "bom-ref": purl,
        "name": "registry.example.com/team/app:1.0",
        "version": DIGEST,
        "purl": purl,
        "hashes": [{"alg": "SHA-256", "content": "ab" * 32}],
        "properties": [
            {"name": "factorygate:image:repository_url", "value": "registry.example.com/team/app"},
            {"name": "factorygate:image:tag", "value": "1.0"},
            {"name": "factorygate:image:architecture", "value": "amd64"},
            {"name": "factorygate:image:config_digest", "value": "sha256:" + "cd" * 32},
        ],
    }
    assert doc["components"] == [
        {
            "type": "operating-system",
            "bom-ref": "os:debian@12",
            "name": "debian",
            "version": "12",
            "description": "Debian GNU/Linux 12 (bookworm)",
            "properties": [{"name": "factorygate:os:version_codename", "value": "bookworm"}],
        }
    ]


@pytest.mark.parametrize(
    ("info", "purl"),
    [
        (ImageInfo("build/app-oci:latest", DIGEST), f"pkg:oci/app-oci@{DIGEST}"),
        (ImageInfo("ghcr.io/Org/Tool@" + DIGEST, DIGEST, tag=None), f"pkg:oci/tool@{DIGEST}"),
        (
            ImageInfo("localhost:5000/x/y:dev", DIGEST, repository_url="localhost:5000/x/y", tag="dev"),
            f"pkg:oci/y@{DIGEST}?repository_url=localhost:5000%2Fx%2Fy&tag=dev",
        ),
        (ImageInfo("image.tar", ""), None),  # docker-archive: no manifest digest, no purl
    ],
)
def test_oci_purl(info: ImageInfo, purl: str | None) -> None:
    assert oci_purl(info) == purl


def test_docker_archive_without_manifest_digest_or_os_release(validator: Draft7Validator) -> None:
    doc = sbom(ImageInfo("app.tar", ""), [pkg("six", "1.16.0")], "0.1.0", TIMESTAMP)
    assert_valid(validator, doc)
    assert doc["metadata"]["component"] == {"type": "container", "name": "app.tar", "bom-ref": "image:app.tar"}
    assert [c["type"] for c in doc["components"]] == ["library"]


def test_duplicate_purls_get_distinct_bom_refs(validator: Draft7Validator) -> None:
    packages = [
        pkg("six", "1.16.0", source_path="/usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA"),
        pkg("six", "1.16.0", source_path="/opt/venv/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA"),
        pkg("six", "1.16.0", source_path="/opt/venv/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA"),
        pkg("deb-one", "1", purl="pkg:deb/debian/deb-one@1?arch=all"),
    ]
    doc = sbom(IMAGE, packages, "0.1.0", TIMESTAMP)
    assert_valid(validator, doc)
    refs = [c["bom-ref"] for c in doc["components"][1:]]
    assert len(set(refs)) == 4
    assert refs[0].startswith("pkg:pypi/six@1.16.0?package-id=")
    assert refs[2] == refs[1] + "-2"
    assert refs[3] == "pkg:deb/debian/deb-one@1?arch=all"


def test_output_is_deterministic_and_serial_follows_content() -> None:
    packages = [pkg("a", "1"), pkg("b", "2")]
    first = sbom(IMAGE, packages, "0.1.0", TIMESTAMP)
    assert sbom(IMAGE, packages, "0.1.0", TIMESTAMP) == first
    assert first["serialNumber"].startswith("urn:uuid:")
    other = sbom(IMAGE, [pkg("a", "1")], "0.1.0", TIMESTAMP)
    assert other["serialNumber"] != first["serialNumber"]
    moved = sbom(ImageInfo(IMAGE.name, "sha256:" + "ef" * 32), packages, "0.1.0", TIMESTAMP)
    assert moved["serialNumber"] != first["serialNumber"]


@pytest.mark.parametrize(
    ("licences", "expected"),
    [
        ((), []),
        (("MIT",), [{"license": {"id": "MIT"}}]),
        (("mit",), [{"license": {"id": "MIT"}}]),
        (("Apache-2.0", "MIT", "MIT"), [{"license": {"id": "Apache-2.0"}}, {"license": {"id": "MIT"}}]),
        (("MIT OR Apache-2.0",), [{"expression": "MIT OR Apache-2.0"}]),
        (("(mit OR apache-2.0) AND BSD-3-Clause",), [{"expression": "(MIT OR Apache-2.0) AND BSD-3-Clause"}]),
        (("GPL-2.0-only WITH Classpath-exception-2.0",), [{"expression": "GPL-2.0-only WITH Classpath-exception-2.0"}]),
        (("GPL-2.0+ OR LicenseRef-Custom",), [{"expression": "GPL-2.0+ OR LicenseRef-Custom"}]),
        (("MIT and BSD",), [{"license": {"name": "MIT and BSD"}}]),  # Fedora-style, not SPDX
        (("GPLv2+",), [{"license": {"name": "GPLv2+"}}]),
        (("MIT OR",), [{"license": {"name": "MIT OR"}}]),
        (("(MIT",), [{"license": {"name": "(MIT"}}]),
        (("MIT WITH MIT",), [{"license": {"name": "MIT WITH MIT"}}]),
        (
            ("MIT OR Apache-2.0", "BSD-3-Clause"),  # an expression among several licences is kept as a name
            [{"license": {"name": "MIT OR Apache-2.0"}}, {"license": {"id": "BSD-3-Clause"}}],
        ),
        (("  ",), []),
    ],
)
def test_licence_choices(licences: tuple[str, ...], expected: list[dict[str, Any]]) -> None:
    assert licence_choices(licences) == expected


@pytest.mark.parametrize(
    "text", ["", "AND", "MIT AND", "( )", "MIT)", "MIT (Apache-2.0)", "WITH", "NotALicence", "LicenseRef-"]
)
def test_not_spdx_expressions(text: str) -> None:
    assert spdx_expression(text) is None


def test_every_spdx_id_written_is_in_the_schema_list() -> None:
    enum = set(json.loads((SCHEMAS / "spdx.schema.json").read_text(encoding="utf-8"))["enum"])
    assert set(cyclonedx._SPDX_IDS) <= enum
    assert set(cyclonedx._SPDX_EXCEPTIONS) <= enum


def test_schema_rejects_a_broken_document(validator: Draft7Validator) -> None:
    """The validator is live: a component without a name, a bad serial and a bad licence id fail."""
    doc = sbom(IMAGE, [pkg("a", "1", licenses=("MIT",))], "0.1.0", TIMESTAMP)
    del doc["components"][1]["name"]
    doc["serialNumber"] = "not-a-urn"
    doc["components"][1]["licenses"] = [{"license": {"id": "Not-An-SPDX-Id"}}]
    messages = [e.message for e in validator.iter_errors(doc)]
    assert any("'name' is a required property" in m for m in messages)
    assert any("not-a-urn" in m for m in messages)
    assert len(messages) >= 3


def test_write_sbom_sorted_keys_and_final_newline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = sbom(IMAGE, [pkg("caf\u00e9", "1")], "0.1.0", TIMESTAMP)
    target = tmp_path / "sbom.cdx.json"
    write_sbom(target, doc)
    text = target.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert "caf\u00e9" in text  # UTF-8, not \\u escapes
    assert json.loads(text) == doc
    assert text == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_sbom("-", doc)
    assert capsys.readouterr().out == text


TEXT = st.text(min_size=1, max_size=30)


@given(
    st.lists(
        st.builds(
            Package,
            name=TEXT,
            version=TEXT,
            type=st.sampled_from(["deb", "apk", "rpm", "pypi", "npm"]),
            purl=TEXT.map(lambda t: make_purl("generic", None, t, None)),
            source_path=TEXT,
            licenses=st.lists(TEXT, max_size=3).map(tuple),
            source_name=st.none() | TEXT,
            source_version=st.none() | TEXT,
            vendor=st.none() | TEXT,
        ),
        max_size=8,
    ),
    st.dictionaries(st.sampled_from(["ID", "VERSION_ID", "PRETTY_NAME", "ID_LIKE", "BUILD_ID"]), st.text(max_size=20)),
    st.text(max_size=40),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_inventory_gives_a_valid_document(
    validator: Draft7Validator, packages: list[Package], os_fields: dict[str, str], name: str
) -> None:
    doc = sbom(ImageInfo(name, DIGEST, os_release=os_fields), packages, "0.1.0", TIMESTAMP)
    assert_valid(validator, doc)
    refs = [c["bom-ref"] for c in doc["components"]]
    assert len(set(refs)) == len(refs)
    assert json.loads(json.dumps(doc, ensure_ascii=False).encode("utf-8")) == doc  # what write_sbom writes


@pytest.mark.parametrize(
    "timestamp", ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123456+02:00", "2024-05-01t12:00:00z"]
)
def test_rfc3339_timestamps_are_accepted(timestamp: str) -> None:
    assert sbom(IMAGE, [], "0.1.0", timestamp)["metadata"]["timestamp"] == timestamp


@pytest.mark.parametrize(
    "timestamp", ["", "2024-05-01", "2024-05-01T12:00:00", "20240501T120000Z", "2024-13-01T12:00:00Z", "now"]
)
def test_other_timestamps_are_refused(timestamp: str) -> None:
    with pytest.raises(ValueError, match=r"timestamp|month|hour|day"):
        sbom(IMAGE, [], "0.1.0", timestamp)
