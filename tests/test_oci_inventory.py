"""Package inventory: which files are captured, the five parsers, package URLs, hostile input.

Real data where the host has it: this Debian machine's dpkg status database, the venv's and Debian's
Python metadata, the npm tree shipped with Node, and an rpmdb.sqlite written by the real ``rpm`` (built
by ``build_rpmdb`` below when rpmbuild is installed; a copy made that way is in tests/data/inventory).
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import sqlite3
import struct
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from factorygate.oci import inventory as inv
from factorygate.oci.inventory import (
    Package,
    coverage_problems,
    find_os_release,
    inventory,
    make_purl,
    normalize_pypi_name,
    parse_os_release,
    parse_rpm_header,
    wants_content,
)
from factorygate.oci.model import FileEntry

DATA = Path(__file__).resolve().parent / "data" / "inventory"
RPMDB_FIXTURE = DATA / "rpmdb.sqlite"
SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
DEBIAN_12 = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n'
ALPINE = b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'
RHEL = b'NAME="Red Hat Enterprise Linux"\nID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.3"\n'

# A realistic /lib/apk/db/installed (Alpine 3.19 layout: checksum, identity, metadata, then files).
APK_DB = """C:Q1SwcKm4NDcuUqRZzQ6T1Ae3nPYWg=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407765
I:667648
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
t:1705590537
c:3d7e3ebc9b7ab4e1dbd9b8b1f2a0c3b1e64a3c20
p:so:libc.musl-x86_64.so.1=1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1rV4Q4E8e2yZ4pDyPIPaN6Gq5ZV0=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q17yJ3JFNypA4mxhJJr0ou6CzsJVI=

C:Q1Zg7nDt7q3x1Yq3m3bY6bQmXr6iE=
P:busybox
V:1.36.1-r15
A:x86_64
S:512446
I:958464
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
t:1705590537
c:8f1b2f6e9f6b4c2a6c05b5a2b2f1c2d9a6a3e1f0
D:so:libc.musl-x86_64.so.1
F:bin
R:busybox
a:0:0:755
Z:Q1WUwBY0eOGgzhVxTZxu/Ra3F4Y0w=

C:Q1h0uS5cP0xq0cUq0cX0yq8xQz6b0=
P:libcrypto3
V:3.1.4-r5
A:x86_64
L:Apache-2.0
o:openssl
F:lib
R:libcrypto.so.3
""".encode()

# The spec the rpmdb fixture is built from: an epoch, a noarch and an arch package, an SPDX expression
# and a Fedora-style licence string, a vendor.
RPM_SPECS = {
    "fg-hello": """Name: fg-hello
Version: 1.2.3
Release: 4.fg1
Epoch: 2
Summary: tiny noarch test package
License: MIT AND Apache-2.0
Vendor: Factorygate Tests
BuildArch: noarch
%description
Test package.
%install
mkdir -p %{buildroot}/usr/share/fg-hello
echo hello > %{buildroot}/usr/share/fg-hello/hello.txt
%files
/usr/share/fg-hello/hello.txt
""",
    "fg-tool": """Name: fg-tool
Version: 0.9
Release: 1
Summary: tiny arch test package
License: GPLv2+
%global debug_package %{nil}
%description
Test package.
%install
mkdir -p %{buildroot}/usr/share/fg-tool
echo tool > %{buildroot}/usr/share/fg-tool/tool.txt
%files
/usr/share/fg-tool/tool.txt
""",
}


def build_rpmdb(work: Path) -> bytes:
    """Build the spec packages with rpmbuild and install them (--justdb) into a fresh sqlite rpmdb."""
    top, db = work / "top", work / "db"
    db.mkdir(parents=True)
    sqlite = ["--define", "_db_backend sqlite"]
    for name, spec in RPM_SPECS.items():
        spec_file = work / f"{name}.spec"
        spec_file.write_text(spec)
        subprocess.run(
            ["rpmbuild", "--define", f"_topdir {top}", *sqlite, "-bb", str(spec_file)],
            check=True,
            capture_output=True,
            timeout=120,
        )
    rpms = sorted(str(p) for p in top.glob("RPMS/*/*.rpm"))
    subprocess.run(["rpm", "--dbpath", str(db), *sqlite, "--initdb"], check=True, capture_output=True, timeout=60)
    subprocess.run(
        ["rpm", "--dbpath", str(db), *sqlite, "-i", "--nodeps", "--justdb", "--ignorearch", *rpms],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return (db / "rpmdb.sqlite").read_bytes()


PurlArgs = tuple[str, str | None, str, str | None, dict[str, str | None] | None]


def names(packages: list[Package]) -> list[str]:
    return [p.name for p in packages]


# --- wants_content -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "size"),
    [
        ("/var/lib/dpkg/status", 3 << 20),
        ("/var/lib/dpkg/status.d/base-files", 900),
        ("/lib/apk/db/installed", 1 << 20),
        ("/usr/lib/apk/db/installed", 100),
        ("/var/lib/rpm/rpmdb.sqlite", 100 << 20),
        ("/usr/lib/sysimage/rpm/rpmdb.sqlite", 5 << 20),
        ("/usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA", 5000),
        ("/usr/local/lib/python3.12/site-packages/setuptools/_vendor/packaging-24.0.dist-info/METADATA", 3000),
        ("/usr/lib/python3/dist-packages/PyJWT-2.6.0.egg-info/PKG-INFO", 3000),
        ("/usr/lib/python3/dist-packages/crcmod-1.7.egg-info", 1200),
        ("/app/node_modules/express/package.json", 2000),
        ("/app/node_modules/@babel/core/package.json", 2000),
        ("/app/node_modules/a/node_modules/b/package.json", 2000),
        ("/app/node_modules/.pnpm/left-pad@1.3.0/node_modules/left-pad/package.json", 500),
        ("/etc/os-release", 400),
        ("/usr/lib/os-release", 400),
    ],
)
def test_wants_the_package_databases_and_metadata(path: str, size: int) -> None:
    assert wants_content(path, size)
    assert inv._kind(path) is not None or path in inv.OS_RELEASE


@pytest.mark.parametrize(
    ("path", "size"),
    [
        ("/var/lib/dpkg/status", (64 << 20) + 1),  # over the database limit
        ("/var/lib/dpkg/status-old", 100),
        ("/var/lib/dpkg/status.d/base-files.md5sums", 100),
        ("/var/lib/dpkg/status.d/sub/dir", 100),
        ("/var/lib/dpkg/status.d/", 100),
        ("/var/lib/rpm/rpmdb.sqlite", (256 << 20) + 1),
        ("/var/lib/rpm/rpmdb.sqlite-wal", 100),
        ("/var/lib/rpm/Packages", 100),
        ("/usr/lib/python3/dist-packages/x.dist-info/METADATA", (1 << 20) + 1),
        ("/usr/lib/python3/dist-packages/x.dist-info/RECORD", 100),
        ("/srv/METADATA", 100),
        ("/srv/PKG-INFO", 100),
        ("/app/package.json", 100),  # the application itself, not an installed dependency
        ("/app/node_modules/package.json", 100),
        ("/app/node_modules/.package-lock.json", 100),
        ("/app/node_modules/@isaacs/fs-minipass/dist/esm/package.json", 100),
        ("/app/node_modules/express/lib/package.json", 100),
        ("/app/node_modules/@scope/package.json", 100),
        ("/app/node_modules/.bin/package.json", 100),
        ("/usr/bin/sudo", 100),
        ("/etc/passwd", 100),
    ],
)
def test_leaves_other_files_alone(path: str, size: int) -> None:
    assert not wants_content(path, size)


PATH_PARTS = st.sampled_from(
    [
        *("/", "a", "@s", ".", "node_modules", "package.json", "METADATA", "PKG-INFO", ".egg-info", ".dist-info"),
        *("x.md5sums", "/var/lib/dpkg/status", "/var/lib/dpkg/status.d/", "/lib/apk/db/installed"),
        "/var/lib/rpm/rpmdb.sqlite",
    ]
)


@given(st.lists(PATH_PARTS, max_size=8).map("".join), st.integers(0, 1 << 30))
@settings(max_examples=3000, deadline=None)
@example("/var/lib/dpkg/status.d/METADATA", 10)
@example("/var/lib/dpkg/status.d/package.json", 10)
def test_wants_content_agrees_with_the_parser_choice(path: str, size: int) -> None:
    """Whatever the walker captures, inventory() has a parser for (and the converse, size aside)."""
    if wants_content(path, size):
        assert inv._kind(path) is not None or path in inv.OS_RELEASE
    if inv._kind(path) is not None:
        assert wants_content(path, 0)


def test_node_manifest_selection_on_the_npm_tree_shipped_with_node() -> None:
    root = Path("/usr/lib/node_modules/npm")
    if not root.is_dir():
        pytest.skip("no npm installation on this machine")
    all_manifests = [str(p) for p in root.rglob("package.json")]
    chosen = [p for p in all_manifests if wants_content(p, 1000)]
    assert chosen
    assert len(chosen) < len(all_manifests)  # dist/esm/package.json and friends are left out
    for path in chosen:
        assert Path(path).parent.parent.name == "node_modules" or Path(path).parent.parent.name.startswith("@")


# --- dpkg ----------------------------------------------------------------------------------------


def test_dpkg_stanzas_status_epoch_source_and_continuations() -> None:
    status = b"""Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc (2.36-9+deb12u4)
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
 .
 Package: not-a-package
Conffiles:
 /etc/ld.so.conf 4317c6de8564b68d628c21efa96b37e4

Package: libc6
Status: install ok installed
Architecture: i386
Source: glibc (2.36-9+deb12u4)
Version: 2.36-9+deb12u4

Package: bsdutils
Status: hold ok installed
Architecture: amd64
Source: util-linux (2.38.1-5)
Version: 1:2.38.1-5+b1

Package: old-thing
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: half
Status: install reinstreq half-installed
Architecture: amd64
Version: 1.0-1

Package: Pkg-Upper
Status: install ok installed
Architecture: all
Version: 0.1
"""
    packages, problems = inventory({"/var/lib/dpkg/status": status}, DEBIAN_12)
    assert problems == []
    assert [p.purl for p in packages] == [
        "pkg:deb/debian/pkg-upper@0.1?arch=all&distro=debian-12",
        "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bb1?arch=amd64&distro=debian-12",
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12",
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=i386&distro=debian-12",
    ]
    bsdutils = packages[1]
    assert (bsdutils.epoch, bsdutils.source_name, bsdutils.source_version) == (1, "util-linux", "2.38.1-5")
    libc = packages[2]
    assert (libc.source_name, libc.source_version, libc.namespace, libc.distro) == (
        "glibc",
        "2.36-9+deb12u4",
        "debian",
        "debian-12",
    )
    assert packages[0].source_name == "Pkg-Upper"
    assert packages[0].epoch is None


def test_distroless_status_d_files_and_their_md5sums() -> None:
    contents = {
        "/var/lib/dpkg/status.d/base-files": b"Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n",
        "/var/lib/dpkg/status.d/tzdata": b"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n",
        "/var/lib/dpkg/status.d/tzdata.md5sums": b"d41d8cd98f00b204e9800998ecf8427e  usr/share/zoneinfo/UTC\n",
    }
    packages, problems = inventory(contents, DEBIAN_12)
    assert problems == []
    assert [(p.name, p.source_path) for p in packages] == [
        ("base-files", "/var/lib/dpkg/status.d/base-files"),
        ("tzdata", "/var/lib/dpkg/status.d/tzdata"),
    ]


def test_real_dpkg_status_database_of_this_host() -> None:
    status = Path("/var/lib/dpkg/status")
    if not status.is_file() or shutil.which("dpkg-query") is None:
        pytest.skip("not a Debian-family host")
    query = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Status} ${Package} ${Version} ${Architecture} ${source:Package}\n"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    expected = sorted(tuple(line.split()[1:]) for line in query.stdout.splitlines() if line.startswith("installed "))
    os_release = Path("/etc/os-release").read_bytes()
    packages, problems = inventory({"/var/lib/dpkg/status": status.read_bytes()}, os_release)
    assert problems == []
    assert sorted((p.name, p.version, p.arch, p.source_name) for p in packages) == expected
    assert len(packages) > 50
    distro_id = parse_os_release(os_release)["ID"]
    assert all(p.purl.startswith(f"pkg:deb/{distro_id}/") and "distro=" in p.purl for p in packages)


def test_dpkg_without_os_release_defaults_to_debian_and_no_distro() -> None:
    packages, _ = inventory({"/var/lib/dpkg/status": b"Package: a\nVersion: 1\nArchitecture: all\n"}, None)
    assert packages[0].purl == "pkg:deb/debian/a@1?arch=all"


def test_damaged_dpkg_database_is_a_problem_naming_the_file() -> None:
    status = b"Package: ok\nVersion: 1\n\nthis is not a field\nVersion: 2\n\n\x00\x01\x02\n"
    packages, problems = inventory({"/var/lib/dpkg/status": status}, DEBIAN_12)
    assert names(packages) == ["ok"]
    assert len(problems) == 1
    assert problems[0].startswith("/var/lib/dpkg/status: damaged dpkg database")
    assert "2 stanza(s) without Package or Version; 1 package(s) read" in problems[0]


# --- apk -----------------------------------------------------------------------------------------


def test_apk_installed_database() -> None:
    packages, problems = inventory({"/lib/apk/db/installed": APK_DB}, ALPINE)
    assert problems == []
    assert [p.purl for p in packages] == [
        "pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1",
        "pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=alpine-3.19.1",
        "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1",
    ]
    crypto = packages[1]
    assert (crypto.source_name, crypto.source_version, crypto.licenses) == ("openssl", "3.1.4-r5", ("Apache-2.0",))


def test_apk_record_without_version_is_reported() -> None:
    packages, problems = inventory({"/lib/apk/db/installed": b"P:a\nV:1\n\nP:b\nA:x86_64\n\nnonsense\n"}, ALPINE)
    assert names(packages) == ["a"]
    assert problems == [
        "/lib/apk/db/installed: damaged apk database: 1 record(s) without P: or V:,"
        " 1 line(s) that are not fields; 1 package(s) read"
    ]


# --- RPM -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rpmdb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A fresh rpmdb.sqlite from the real rpm when it is installed, else the committed copy of one."""
    if shutil.which("rpmbuild") and shutil.which("rpm"):
        return build_rpmdb(tmp_path_factory.mktemp("rpm"))
    return RPMDB_FIXTURE.read_bytes()


def check_rpm_packages(packages: list[Package], problems: list[str]) -> None:
    assert problems == []
    hello, tool = packages
    assert hello.purl == "pkg:rpm/rhel/fg-hello@1.2.3-4.fg1?arch=noarch&distro=rhel-9.3&epoch=2"
    assert (hello.version, hello.epoch, hello.release, hello.arch) == ("1.2.3-4.fg1", 2, "4.fg1", "noarch")
    assert (hello.source_name, hello.source_version) == ("fg-hello", "1.2.3-4.fg1")
    assert (hello.licenses, hello.vendor) == (("MIT AND Apache-2.0",), "Factorygate Tests")
    assert tool.purl.startswith("pkg:rpm/rhel/fg-tool@0.9-1?arch=")
    assert tool.epoch is None
    assert "epoch=" not in tool.purl
    assert tool.licenses == ("GPLv2+",)
    assert tool.vendor is None


def test_rpm_sqlite_database_written_by_rpm(rpmdb: bytes) -> None:
    for path in inv.RPMDB_SQLITE:
        check_rpm_packages(*inventory({path: rpmdb}, RHEL))


def test_committed_rpmdb_fixture() -> None:
    data = RPMDB_FIXTURE.read_bytes()
    assert data[18:20] == b"\x02\x02"  # rpm leaves its database in WAL mode
    check_rpm_packages(*inventory({"/var/lib/rpm/rpmdb.sqlite": data}, RHEL))


def test_rpm_without_os_release_has_no_namespace() -> None:
    packages, _ = inventory({"/var/lib/rpm/rpmdb.sqlite": RPMDB_FIXTURE.read_bytes()}, None)
    assert packages[0].purl == "pkg:rpm/fg-hello@1.2.3-4.fg1?arch=noarch&epoch=2"


def header_blob(entries: list[tuple[int, int, int, int]], data: bytes, il: int | None = None) -> bytes:
    index = b"".join(struct.pack(">iIiI", *e) for e in entries)
    count = len(entries) if il is None else il
    return struct.pack(">II", count, len(data)) + index + data


def test_rpm_header_blob_parsing() -> None:
    data = b"bash\x005.2.15\x003.el9\x00" + b"\x00\x00" + b"\x00\x00\x00\x01" + b"x86_64\x00GPL-3.0-or-later\x00"
    blob = header_blob(
        [(1000, 6, 0, 1), (1001, 6, 5, 1), (1002, 6, 12, 1), (1003, 4, 20, 1), (1022, 6, 24, 1), (1014, 9, 31, 1)],
        data,
    )
    assert parse_rpm_header(blob) == {
        1000: "bash",
        1001: "5.2.15",
        1002: "3.el9",
        1003: 1,
        1022: "x86_64",
        1014: "GPL-3.0-or-later",
    }


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x00\x00\x00",
        struct.pack(">II", 0, 0),  # no index entries
        struct.pack(">II", 0xFFFFFFFF, 0xFFFFFFFF),  # huge counts, nothing behind them
        struct.pack(">II", 0x10000, 10) + b"\x00" * 64,  # more tags than rpm allows
        struct.pack(">II", 1, (256 << 20) + 1) + b"\x00" * 16,  # data length over rpm's limit
        struct.pack(">II", 2, 8) + b"\x00" * 16,  # index runs past the end
        header_blob([(1000, 6, 0, 1)], b"bash")[:-1],  # data shorter than dl
    ],
)
def test_hostile_rpm_header_blobs_are_rejected(blob: bytes) -> None:
    assert parse_rpm_header(blob) is None


def test_hostile_rpm_header_entries_are_ignored() -> None:
    data = b"bash\x00\x00\x00\x00"
    blob = header_blob(
        [
            (1000, 6, -4, 1),  # negative offset
            (1001, 6, 1 << 30, 1),  # offset far past the data
            (1002, 6, 0, 0xFFFFFFFF),  # huge count: only the first string is read
            (1003, 4, 6, 1),  # INT32 running past the end of the data
            (1022, 6, 5, 1),  # an empty string (offset at a NUL)
            (1014, 7, 0, 4),  # BIN where a string is expected
            (1044, 6, 8, 1),  # offset == dl
        ],
        data,
    )
    assert parse_rpm_header(blob) == {1002: "bash", 1022: ""}
    unterminated = header_blob([(1000, 6, 0, 1)], b"bash")  # no NUL inside the data
    assert parse_rpm_header(unterminated) == {}


PACKAGES_TABLE = "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)"


def rpmdb_with(blobs: list[object], table_sql: str = PACKAGES_TABLE) -> bytes:
    conn = sqlite3.connect(":memory:")
    conn.execute(table_sql)
    for n, blob in enumerate(blobs, 1):
        conn.execute("INSERT INTO Packages VALUES (?, ?)", (n, blob))
    conn.commit()
    data = conn.serialize()
    conn.close()
    return data


def test_damaged_rpm_rows_and_signing_keys() -> None:
    good = header_blob([(1000, 6, 0, 1), (1001, 6, 5, 1)], b"zlib\x001.2\x00")
    pubkey = header_blob([(1000, 6, 0, 1), (1001, 6, 11, 1)], b"gpg-pubkey\x00fd431d51\x00")
    no_version = header_blob([(1000, 6, 0, 1)], b"zlib\x00")
    data = rpmdb_with([good, pubkey, b"\xff" * 40, "text, not a blob", None, no_version])
    packages, problems = inventory({"/var/lib/rpm/rpmdb.sqlite": data}, RHEL)
    assert [p.purl for p in packages] == ["pkg:rpm/rhel/zlib@1.2?distro=rhel-9.3"]
    assert problems == ["/var/lib/rpm/rpmdb.sqlite: 4 damaged RPM header(s) skipped; 1 package(s) read"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not sqlite at all", "not an SQLite database"),
        (b"SQLite format 3\x00" + b"\xff" * 200, "unreadable RPM database"),
        (rpmdb_with([], "CREATE TABLE Other (x)"), "unreadable RPM database (DatabaseError: no Packages table)"),
        (
            rpmdb_with([], "CREATE VIEW Packages AS SELECT 1 AS hnum, 2 AS blob"),
            "unreadable RPM database (DatabaseError: no Packages table)",
        ),
    ],
)
def test_unreadable_rpm_databases(data: bytes, message: str) -> None:
    packages, problems = inventory({"/var/lib/rpm/rpmdb.sqlite": data}, RHEL)
    assert packages == []
    assert len(problems) == 1
    assert problems[0].startswith("/var/lib/rpm/rpmdb.sqlite: ")
    assert message in problems[0]


def test_rpmdb_whose_schema_names_are_not_utf8() -> None:
    """sqlite's own error message then holds bytes Python cannot decode (found by mutation)."""
    data = bytearray(RPMDB_FIXTURE.read_bytes())
    at = data.find(b"indexBasenames_key_idx")
    assert at > 0
    while at >= 0:  # the schema row, and stale copies of it in free space
        data[at + 5] = 0xBF  # the index name no longer matches its CREATE INDEX text, nor is it UTF-8
        at = data.find(b"indexBasenames_key_idx", at + 1)
    packages, problems = inventory({"/var/lib/rpm/rpmdb.sqlite": bytes(data)}, RHEL)
    assert packages == []
    assert len(problems) == 1
    assert problems[0].startswith("/var/lib/rpm/rpmdb.sqlite: unreadable RPM database (UnicodeDecodeError: ")


def test_rpmdb_queries_are_cut_off_by_the_step_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inv, "_SQLITE_STEPS", 3)
    monkeypatch.setattr(inv, "_SQLITE_STEP_INSTRUCTIONS", 1)
    packages, problems = inventory({"/var/lib/rpm/rpmdb.sqlite": RPMDB_FIXTURE.read_bytes()}, RHEL)
    assert packages == []
    assert problems
    assert "interrupted" in problems[0]


def test_rpmdb_original_bytes_are_not_modified() -> None:
    data = RPMDB_FIXTURE.read_bytes()
    before = bytes(data)
    inventory({"/var/lib/rpm/rpmdb.sqlite": data}, RHEL)
    assert data == before


# --- Python --------------------------------------------------------------------------------------


def test_real_dist_info_metadata_of_the_venv() -> None:
    site = Path(str(importlib.metadata.distribution("jsonschema").locate_file("")))
    contents: dict[str, bytes] = {}
    for meta in sorted(site.glob("*.dist-info/METADATA")):
        path = "/venv/site-packages/" + meta.parent.name + "/METADATA"
        assert wants_content(path, meta.stat().st_size)
        contents[path] = meta.read_bytes()
    expected = {(d.metadata["Name"], d.version) for d in importlib.metadata.distributions(path=[str(site)])}
    assert len(contents) > 10
    packages, problems = inventory(contents, None)
    assert problems == []
    assert {(p.name, p.version) for p in packages} == expected
    by_name = {p.name: p for p in packages}
    assert by_name["PyYAML"].purl == f"pkg:pypi/pyyaml@{by_name['PyYAML'].version}"
    assert by_name["typing_extensions"].purl.startswith("pkg:pypi/typing-extensions@")
    assert by_name["jsonschema"].licenses  # License-Expression or License


def test_real_egg_info_of_debian_python_packages() -> None:
    root = Path("/usr/lib/python3/dist-packages")
    eggs = sorted(root.glob("*.egg-info")) if root.is_dir() else []
    if not eggs:
        pytest.skip("no Debian egg-info on this machine")
    contents = {}
    for egg in eggs:
        file = egg / "PKG-INFO" if egg.is_dir() else egg
        path = str(file)
        assert wants_content(path, file.stat().st_size)
        contents[path] = file.read_bytes()
    packages, problems = inventory(contents, DEBIAN_12)
    assert problems == []
    assert len(packages) == len(eggs)
    assert all(p.type == "pypi" and p.purl.startswith("pkg:pypi/") for p in packages)


def test_python_metadata_fields() -> None:
    contents = {
        "/a/Foo_Bar.Baz-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.4\nName: Foo_Bar.Baz\nVersion: 1.0\nLicense-Expression: MIT OR Apache-2.0\n"
            b"License: ignored when an expression is given\n\nName: body text is not a header\n"
        ),
        "/b/long-1.dist-info/METADATA": (
            b"Name: long\r\nVersion: 1\r\nLicense: Copyright (c) someone\r\n  Permission is hereby granted\r\n\r\n"
        ),
        "/c/unknown-2.egg-info/PKG-INFO": b"Metadata-Version: 1.1\nName: unknown\nVersion: 2\nLicense: UNKNOWN\n",
        "/d/broken-1.dist-info/METADATA": b"Metadata-Version: 2.1\nSummary: no name here\n",
        "/e/empty.egg-info": b"",
    }
    packages, problems = inventory(contents, None)
    assert [(p.purl, p.licenses) for p in packages] == [
        ("pkg:pypi/foo-bar-baz@1.0", ("MIT OR Apache-2.0",)),
        ("pkg:pypi/long@1", ()),  # a pasted licence text is not a licence name
        ("pkg:pypi/unknown@2", ()),
    ]
    assert problems == ["/d/broken-1.dist-info/METADATA: Python package metadata without Name or Version"]


def test_same_python_package_in_two_places_is_listed_twice() -> None:
    meta = b"Name: six\nVersion: 1.16.0\n"
    contents = {
        "/usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA": meta,
        "/opt/venv/lib/python3.11/site-packages/six-1.16.0.dist-info/METADATA": meta,
    }
    packages, _ = inventory(contents, None)
    assert [p.source_path for p in packages] == sorted(contents)
    assert len({p.purl for p in packages}) == 1


# --- Node ----------------------------------------------------------------------------------------


def test_node_modules_tree() -> None:
    def manifest(doc: Mapping[str, object]) -> bytes:
        return json.dumps(doc).encode()

    contents = {
        "/app/node_modules/express/package.json": manifest({"name": "express", "version": "4.18.2", "license": "MIT"}),
        "/app/node_modules/@Babel/Core/package.json": manifest(
            {"name": "@Babel/Core", "version": "7.23.0", "license": {"type": "MIT", "url": "x"}}
        ),
        "/app/node_modules/express/node_modules/debug/package.json": manifest(
            {"name": "debug", "version": "2.6.9", "licenses": [{"type": "MIT"}, {"type": "Apache-2.0"}, "MIT"]}
        ),
        "/app/node_modules/no-version/package.json": manifest({"name": "no-version"}),
        "/app/node_modules/weird/package.json": manifest({"name": 5, "version": ["1"]}),
        "/app/node_modules/broken/package.json": b"{not json",
        "/app/node_modules/array/package.json": b"[1, 2]",
        "/app/node_modules/deep/package.json": b"[" * 100_000 + b"]" * 100_000,
    }
    packages, problems = inventory(contents, None)
    assert [(p.purl, p.licenses) for p in packages] == [
        ("pkg:npm/%40babel/core@7.23.0", ("MIT",)),
        ("pkg:npm/debug@2.6.9", ("MIT", "Apache-2.0")),
        ("pkg:npm/express@4.18.2", ("MIT",)),
    ]
    assert packages[0].namespace == "@Babel"
    assert packages[0].name == "@Babel/Core"
    assert sorted(problems) == [
        "/app/node_modules/array/package.json: package.json is not a JSON object",
        "/app/node_modules/broken/package.json: package.json is not valid JSON",
        "/app/node_modules/deep/package.json: package.json is not valid JSON",
    ]


def test_real_npm_tree_shipped_with_node() -> None:
    root = Path("/usr/lib/node_modules")
    if not (root / "npm").is_dir():
        pytest.skip("no npm installation on this machine")
    contents = {}
    expected = set()
    for file in root.rglob("package.json"):
        if wants_content(str(file), file.stat().st_size):
            contents[str(file)] = file.read_bytes()
            doc = json.loads(contents[str(file)])
            if isinstance(doc.get("name"), str) and isinstance(doc.get("version"), str):
                expected.add((doc["name"], doc["version"], str(file)))
    packages, problems = inventory(contents, None)
    assert problems == []
    assert {(p.name, p.version, p.source_path) for p in packages} == expected
    assert any(p.purl.startswith("pkg:npm/%40") for p in packages)


# --- purl, os-release, order ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "purl"),
    [
        (
            ("deb", "debian", "curl", "7.50.3-1", {"arch": "i386", "distro": "jessie"}),
            "pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=jessie",
        ),
        (
            ("deb", "debian", "attr", "1:2.4.47-2+b1", {"arch": "amd64"}),
            "pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64",
        ),
        (("npm", "@angular", "animation", "12.3.1", None), "pkg:npm/%40angular/animation@12.3.1"),
        (
            ("rpm", "fedora", "curl", "7.50.3-1.fc25", {"distro": "fedora-25", "arch": "i386"}),
            "pkg:rpm/fedora/curl@7.50.3-1.fc25?arch=i386&distro=fedora-25",
        ),
        (("apk", "alpine", "curl", "7.83.0-r0", {"arch": "x86"}), "pkg:apk/alpine/curl@7.83.0-r0?arch=x86"),
        (("pypi", None, "django-allauth", "12.23", {}), "pkg:pypi/django-allauth@12.23"),
        (
            ("generic", "a b", "n/m", "v 1~2", {"z": "1", "a": "x/y z", "empty": ""}),
            "pkg:generic/a%20b/n%2Fm@v%201~2?a=x%2Fy%20z&z=1",
        ),
        (("generic", None, "caf\u00e9", None, {"k": "\u00fc"}), "pkg:generic/caf%C3%A9?k=%C3%BC"),
    ],
)
def test_make_purl_matches_the_spec(args: PurlArgs, purl: str) -> None:
    """Spec examples; qualifiers sorted; only alphanumerics, ``.-_~`` and ``:`` left unencoded."""
    assert make_purl(*args) == purl


@pytest.mark.parametrize(
    ("name", "normal"),
    [("Django", "django"), ("Foo_Bar", "foo-bar"), ("zope.interface", "zope-interface"), ("a-_.-b", "a-b")],
)
def test_pypi_name_normalisation(name: str, normal: str) -> None:
    assert normalize_pypi_name(name) == normal


def test_os_release_quoting_comments_and_escapes() -> None:
    data = (
        b"# comment\nNAME=\"Debian GNU/Linux\"\nID=debian\nVERSION_ID='12'\n"
        b'PRETTY_NAME="say \\"hi\\" \\$HOME \\q"\nBROKEN LINE\n=novalue\nEMPTY=\n\xff\xfe=1\n'
    )
    fields = parse_os_release(data)
    assert fields == {
        "NAME": "Debian GNU/Linux",
        "ID": "debian",
        "VERSION_ID": "12",
        "PRETTY_NAME": 'say "hi" $HOME \\q',
        "EMPTY": "",
    }
    assert parse_os_release(None) == {}


def test_distro_qualifier_falls_back_to_the_codename() -> None:
    status = {"/var/lib/dpkg/status": b"Package: a\nVersion: 1\n"}
    packages, _ = inventory(status, b"ID=debian\nVERSION_CODENAME=trixie\n")
    assert packages[0].purl == "pkg:deb/debian/a@1?distro=debian-trixie"
    packages, _ = inventory(status, b"ID=Ubuntu\n")
    assert packages[0].purl == "pkg:deb/ubuntu/a@1?distro=ubuntu"


def test_find_os_release_prefers_etc() -> None:
    assert find_os_release({"/usr/lib/os-release": b"ID=b", "/etc/os-release": b"ID=a"}) == b"ID=a"
    assert find_os_release({"/usr/lib/os-release": b"ID=b"}) == b"ID=b"
    assert find_os_release({}) is None


def test_inventory_orders_by_type_then_name_and_ignores_other_files() -> None:
    contents = {
        "/app/node_modules/a/package.json": b'{"name": "a", "version": "1"}',
        "/usr/lib/python3/dist-packages/z-1.dist-info/METADATA": b"Name: z\nVersion: 1\n",
        "/lib/apk/db/installed": b"P:m\nV:1\n",
        "/var/lib/dpkg/status": b"Package: y\nVersion: 1\n",
        "/var/lib/rpm/rpmdb.sqlite": RPMDB_FIXTURE.read_bytes(),
        "/etc/passwd": b"root:x:0:0::/root:/bin/sh\n",
        "/etc/os-release": RHEL,
    }
    packages, problems = inventory(contents, RHEL)
    assert problems == []
    assert [(p.type, p.name) for p in packages] == [
        ("deb", "y"),
        ("apk", "m"),
        ("rpm", "fg-hello"),
        ("rpm", "fg-tool"),
        ("pypi", "z"),
        ("npm", "a"),
    ]
    assert inventory(dict(reversed(contents.items())), RHEL) == (packages, problems)


def test_coverage_problems_for_databases_not_read() -> None:
    def entry(path: str, size: int, type_: str = "file") -> FileEntry:
        return FileEntry(path, type_, 0o644, 0, 0, size, None, 0, "sha256:" + "0" * 64)

    files = {
        "/var/lib/dpkg/status": entry("/var/lib/dpkg/status", (64 << 20) + 5),
        "/var/lib/rpm/Packages": entry("/var/lib/rpm/Packages", 10 << 20),
        "/etc/os-release": entry("/etc/os-release", 5 << 20),
        "/lib/apk/db/installed": entry("/lib/apk/db/installed", 5000),
    }
    assert coverage_problems(files) == [
        f"/var/lib/dpkg/status: {(64 << 20) + 5} bytes is over the {64 << 20}-byte limit; its packages are not listed",
        "/var/lib/rpm/Packages: RPM database in a format other than sqlite (Berkeley DB or NDB);"
        " its packages are not listed",
    ]
    files["/var/lib/rpm/rpmdb.sqlite"] = entry("/var/lib/rpm/rpmdb.sqlite", 1 << 20)
    assert len(coverage_problems(files)) == 1


# --- hostile bytes: every parser returns problems, never raises ----------------------------------

PARSER_PATHS = [
    "/var/lib/dpkg/status",
    "/var/lib/dpkg/status.d/x",
    "/lib/apk/db/installed",
    "/var/lib/rpm/rpmdb.sqlite",
    "/x/a-1.dist-info/METADATA",
    "/x/a-1.egg-info",
    "/n/node_modules/a/package.json",
]


INT32 = st.integers(-(2**31), 2**31 - 1)


def check_never_raises(path: str, data: bytes, os_release: bytes | None = None) -> None:
    packages, problems = inventory({path: data}, os_release)
    assert all(isinstance(p, Package) and p.purl.startswith("pkg:") for p in packages)
    assert all(isinstance(m, str) and "\n" not in m and m.startswith(path) for m in problems)


@given(st.sampled_from(PARSER_PATHS), st.binary(max_size=4096), st.one_of(st.none(), st.binary(max_size=300)))
@settings(max_examples=1500, deadline=None, suppress_health_check=SLOW_OK)
@example("/var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\x00" + b"\x00" * 200, None)
@example("/lib/apk/db/installed", b"P:\nV:\n\n:\n\nP:a\nV:1\nA:\n", b"ID=\n")
@example("/var/lib/dpkg/status", b"Package: a\nVersion: 1:\nStatus:\n", b'ID="\n')
def test_random_bytes_never_raise(path: str, data: bytes, os_release: bytes | None) -> None:
    check_never_raises(path, data, os_release)


REAL_SAMPLES = {
    "/var/lib/dpkg/status": b"Package: libc6\nStatus: install ok installed\nVersion: 1:2.36-9\nSource: glibc (2.36)\n"
    b"Architecture: amd64\nDescription: x\n more\n\nPackage: b\nVersion: 2\n",
    "/lib/apk/db/installed": APK_DB,
    "/x/a-1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: a\nVersion: 1\nLicense: MIT\n\nbody\n",
    "/n/node_modules/a/package.json": b'{"name": "@s/a", "version": "1.0.0", "license": {"type": "MIT"}}',
}


@given(st.sampled_from(sorted(REAL_SAMPLES)), st.data())
@settings(max_examples=1500, deadline=None, suppress_health_check=SLOW_OK)
def test_mutated_real_records_never_raise(path: str, data: st.DataObject) -> None:
    sample = bytearray(REAL_SAMPLES[path])
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(sample) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            sample[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del sample[pos : pos + data.draw(st.integers(1, 20))]
            if not sample:
                sample = bytearray(b"x")
        else:
            sample[pos:pos] = data.draw(st.binary(min_size=1, max_size=12))
    check_never_raises(path, bytes(sample))


@given(st.data())
@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
def test_mutated_rpmdb_never_raises(data: st.DataObject) -> None:
    db = bytearray(RPMDB_FIXTURE.read_bytes())
    blob_at = db.find(b"fg-hello")
    assert blob_at > 0
    regions = [(0, len(db) - 1), (0, 4095), (max(0, blob_at - 2048), blob_at + 512)]  # anywhere, header, blobs
    for _ in range(data.draw(st.integers(1, 30))):
        low, high = data.draw(st.sampled_from(regions))
        db[data.draw(st.integers(low, high))] = data.draw(st.integers(0, 255))
    check_never_raises("/var/lib/rpm/rpmdb.sqlite", bytes(db), RHEL)


@given(
    st.lists(
        st.tuples(INT32, st.integers(0, 10), INT32, st.integers(0, 2**32 - 1)),
        max_size=12,
    ),
    st.binary(max_size=256),
    st.one_of(st.none(), st.integers(0, 2**32 - 1)),
)
@settings(max_examples=800, deadline=None)
def test_hostile_rpm_headers_never_raise(entries: list[tuple[int, int, int, int]], data: bytes, il: int | None) -> None:
    result = parse_rpm_header(header_blob(entries, data, il))
    assert result is None or all(isinstance(v, (str, int)) for v in result.values())


WANTED_ENTRY = st.tuples(
    st.sampled_from(sorted(inv._RPM_WANTED)), st.sampled_from([4, 6, 8, 9]), st.integers(-8, 80), st.integers(0, 4)
)


@given(st.lists(WANTED_ENTRY, max_size=10), st.binary(max_size=80))
@settings(max_examples=800, deadline=None)
def test_rpm_header_fields_come_from_inside_the_data(entries: list[tuple[int, int, int, int]], data: bytes) -> None:
    result = parse_rpm_header(header_blob(entries, data))
    assert result is not None or not entries
    for value in (result or {}).values():
        if isinstance(value, str):
            assert value.encode("utf-8", "replace") in data or "\ufffd" in value
        else:
            assert 0 <= value < 2**32


def test_problems_stay_on_one_line_whatever_the_path() -> None:
    packages, problems = inventory({"/a/node_modules/x\ny/package.json": b"{", "/b/c.dist-info/METADATA": b"\r"}, None)
    assert packages == []
    assert problems == [
        "/a/node_modules/x\\x0ay/package.json: package.json is not valid JSON",
        "/b/c.dist-info/METADATA: Python package metadata without Name or Version",
    ]
