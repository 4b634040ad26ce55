"""Package inventory of an image: dpkg, apk and RPM (sqlite) databases, Python and Node metadata.

* :func:`wants_content` is the layer walker's predicate: it names the files whose bytes the inventory
  needs, by path and size alone, and is cheap enough to be asked about every file of an image;
* :func:`inventory` turns the captured bytes into :class:`Package` records with package URLs (purl
  spec: ``docs/standard/specification.md`` and ``types/*-definition.json`` of package-url/purl-spec).

Every database and metadata file is hostile input: a corrupt one yields a one-line problem naming the
file, never an exception, and every parser is bounded by the size of its input.
"""

from __future__ import annotations

import json
import re
import sqlite3
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from factorygate.oci.model import FileEntry

MAX_METADATA = 1 << 20  # METADATA, PKG-INFO, package.json, one status.d file, os-release
MAX_DATABASE = 64 << 20  # dpkg status, apk installed
MAX_RPMDB = 256 << 20  # rpmdb.sqlite

DPKG_STATUS = "/var/lib/dpkg/status"
DPKG_STATUS_D = "/var/lib/dpkg/status.d/"  # distroless: one file per package
APK_INSTALLED = ("/lib/apk/db/installed", "/usr/lib/apk/db/installed")
RPMDB_SQLITE = ("/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite")
OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")
# RPM databases this reader does not parse (Berkeley DB before RHEL 9 / Fedora 33, NDB on SUSE).
_OTHER_RPMDB = ("/var/lib/rpm/Packages", "/var/lib/rpm/Packages.db", "/usr/lib/sysimage/rpm/Packages.db")

_EXACT: dict[str, int] = {
    DPKG_STATUS: MAX_DATABASE,
    **dict.fromkeys(APK_INSTALLED, MAX_DATABASE),
    **dict.fromkeys(RPMDB_SQLITE, MAX_RPMDB),
    **dict.fromkeys(OS_RELEASE, MAX_METADATA),
}
_CANDIDATE_ENDINGS = ("/package.json", "/METADATA", "/PKG-INFO", ".egg-info")
_TYPE_ORDER = {"deb": 0, "apk": 1, "rpm": 2, "pypi": 3, "npm": 4}
_MAX_FIELD = 4096  # longest name, version, licence or source kept from any database
_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(32), 127)}  # problems stay on one line


@dataclass(frozen=True, slots=True)
class Package:
    """One installed package.

    ``version`` is the version of the purl: dpkg's full version (epoch included, ``1:2.4-1``), RPM's
    ``VERSION-RELEASE`` (the epoch is in ``epoch``), apk's ``pkgver``, the Python or npm version.
    ``namespace`` is the purl namespace (distro vendor such as ``debian``, or an npm ``@scope``),
    ``distro`` the purl ``distro`` qualifier (``debian-12``). ``source_name``/``source_version`` name
    the source package (dpkg ``Source:``, RPM ``SOURCERPM``, apk origin) that security trackers use.
    """

    name: str
    version: str
    type: str  # "deb" | "apk" | "rpm" | "pypi" | "npm"
    purl: str
    source_path: str  # the database or metadata file it came from
    arch: str | None = None
    epoch: int | None = None
    release: str | None = None  # RPM release
    namespace: str | None = None
    distro: str | None = None
    licenses: tuple[str, ...] = ()
    source_name: str | None = None
    source_version: str | None = None
    vendor: str | None = None  # RPM VENDOR


# --- which files -------------------------------------------------------------------------------


def wants_content(path: str, size: int) -> bool:
    """True for the files :func:`inventory` reads (package databases, package metadata, os-release)."""
    limit = _EXACT.get(path)
    if limit is not None:
        return size <= limit
    if size > MAX_METADATA:
        return False
    if path.startswith(DPKG_STATUS_D):
        return _is_status_d_entry(path)
    if not path.endswith(_CANDIDATE_ENDINGS):  # one C call rejects nearly every file of an image
        return False
    if path.endswith("/package.json"):
        return _is_node_module_manifest(path)
    if path.endswith("/METADATA"):
        return path.endswith(".dist-info/METADATA")
    if path.endswith("/PKG-INFO"):
        return path.endswith(".egg-info/PKG-INFO")
    return True  # "*.egg-info": a single-file egg-info (Debian's python3-* packages)


def _is_node_module_manifest(path: str) -> bool:
    """``…/node_modules/NAME/package.json`` or ``…/node_modules/@SCOPE/NAME/package.json``."""
    i = path.rfind("/node_modules/")
    if i < 0:
        return False
    rest = path[i + 14 : -13]  # between "node_modules/" and "/package.json"
    if not rest or rest[0] == ".":
        return False
    slash = rest.find("/")
    if slash < 0:
        return rest[0] != "@"
    return rest[0] == "@" and 1 < slash < len(rest) - 1 and rest.find("/", slash + 1) < 0


def _is_status_d_entry(path: str) -> bool:
    rest = path[len(DPKG_STATUS_D) :]
    return bool(rest) and "/" not in rest and rest[0] != "." and not rest.endswith(".md5sums")


def _kind(path: str) -> str | None:
    """Which parser reads a captured file (None: not an inventory file)."""
    if path.startswith(DPKG_STATUS_D):
        return "deb" if _is_status_d_entry(path) else None
    if path == DPKG_STATUS:
        return "deb"
    if path in APK_INSTALLED:
        return "apk"
    if path in RPMDB_SQLITE:
        return "rpm"
    if path.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO", ".egg-info")):
        return "pypi"
    if path.endswith("/package.json") and _is_node_module_manifest(path):
        return "npm"
    return None


def find_os_release(contents: Mapping[str, bytes]) -> bytes | None:
    """``/etc/os-release``, else ``/usr/lib/os-release`` (os-release(5)), from the captured files."""
    for path in OS_RELEASE:
        data = contents.get(path)
        if data is not None:
            return data
    return None


def coverage_problems(files: Mapping[str, FileEntry]) -> list[str]:
    """Package databases present in the image that :func:`inventory` will not read.

    Oversized databases (never captured) and RPM databases in formats other than sqlite. Only fixed
    paths are looked up, so this is cheap on any image.
    """
    problems: list[str] = []
    for path, limit in _EXACT.items():
        entry = files.get(path)
        if entry is not None and entry.type == "file" and entry.size > limit and path not in OS_RELEASE:
            problems.append(f"{path}: {entry.size} bytes is over the {limit}-byte limit; its packages are not listed")
    if not any(p in files for p in RPMDB_SQLITE):
        problems.extend(
            f"{path}: RPM database in a format other than sqlite (Berkeley DB or NDB); its packages are not listed"
            for path in _OTHER_RPMDB
            if path in files
        )
    return problems


# --- package URLs ------------------------------------------------------------------------------


_PURL_PLAIN = re.compile(r"[A-Za-z0-9.\-_~:]*")


def _pct(text: str) -> str:
    """Percent-encode a purl component: alphanumerics, ``.-_~`` and ``:`` stay as they are."""
    if _PURL_PLAIN.fullmatch(text):
        return text
    return quote(text, safe=":")


def make_purl(
    type_: str,
    namespace: str | None,
    name: str,
    version: str | None,
    qualifiers: Mapping[str, str | None] | None = None,
) -> str:
    """A canonical package URL: qualifiers sorted by key, empty ones left out, values percent-encoded."""
    out = ["pkg:", type_, "/"]
    if namespace:
        segments = [_pct(s) for s in namespace.split("/") if s]
        if segments:
            out += ["/".join(segments), "/"]
    out.append(_pct(name))
    if version:
        out += ["@", _pct(version)]
    pairs = sorted((k, v) for k, v in (qualifiers or {}).items() if v)
    if pairs:
        out += ["?", "&".join(f"{k}={_pct(v)}" for k, v in pairs)]
    return "".join(out)


def normalize_pypi_name(name: str) -> str:
    """PEP 503 / purl pypi: lowercase, runs of ``-``, ``_`` and ``.`` become one ``-``."""
    out: list[str] = []
    for ch in name.lower():
        if ch in "-_.":
            if not out or out[-1] != "-":
                out.append("-")
        else:
            out.append(ch)
    return "".join(out)


# --- os-release --------------------------------------------------------------------------------


def parse_os_release(data: bytes | None) -> dict[str, str]:
    """``KEY=value`` lines of os-release(5); values unquoted and unescaped; junk lines ignored."""
    if not data:
        return {}
    out: dict[str, str] = {}
    for raw in data[:MAX_METADATA].decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.replace("_", "").isalnum():
            continue
        quote_char = value[:1]
        if len(value) >= 2 and quote_char in "\"'" and value[-1] == quote_char:
            value = value[1:-1]
            if quote_char == '"':
                value = _unescape_shell(value)
        out[key] = value[:_MAX_FIELD]
    return out


def _unescape_shell(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(nxt if nxt in '"\\$`' else ch + nxt)
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Distro:
    id: str | None  # os-release ID, lowercased
    qualifier: str | None  # "debian-12", "alpine-3.19.1", "rhel-9.3"

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> _Distro:
        distro_id = fields.get("ID", "").strip().lower() or None
        if distro_id is None:
            return cls(None, None)
        release = fields.get("VERSION_ID", "").strip() or fields.get("VERSION_CODENAME", "").strip()
        return cls(distro_id, f"{distro_id}-{release}" if release else distro_id)

    def namespace(self, default: str | None) -> str | None:
        return self.id or default


# --- entry point -------------------------------------------------------------------------------


def inventory(contents: Mapping[str, bytes], os_release: bytes | None) -> tuple[list[Package], list[str]]:
    """Every package found in the captured files, sorted, and one line per unreadable file."""
    distro = _Distro.of(parse_os_release(os_release))
    packages: dict[tuple[str, str], Package] = {}
    problems: list[str] = []
    for path in sorted(contents):
        kind = _kind(path)
        if kind is None:
            continue
        found = _PARSERS[kind](path, contents[path], distro, problems)
        for pkg in found:
            packages.setdefault((pkg.purl, pkg.source_path), pkg)
    problems = [p.translate(_CONTROL_ESCAPES) for p in problems]  # hostile paths and sqlite messages
    ordered = sorted(packages.values(), key=lambda p: (_TYPE_ORDER[p.type], p.name, p.version, p.source_path, p.purl))
    return ordered, problems


def _clip(text: str) -> str:
    return text.strip()[:_MAX_FIELD]


# --- dpkg --------------------------------------------------------------------------------------


_STANZA_BREAK = re.compile(r"\n[ \t\r]*\n")
# The fields read, in dpkg's canonical spelling (dpkg and the distroless tooling always write it so).
_DPKG_FIELD = re.compile(r"^(Package|Status|Version|Architecture|Source):[ \t]*(.*)$", re.MULTILINE)


def _control_stanzas(text: str) -> Iterator[dict[str, str]]:
    """The fields dpkg parsing needs from each RFC 822-like stanza (names lowercased).

    Regular expressions do the line work: a status file has tens of thousands of lines. Continuation
    lines never match (none of these fields spans lines); the first occurrence of a field wins.
    """
    for stanza in _STANZA_BREAK.split(text):
        if stanza.strip():
            fields: dict[str, str] = {}
            for key, value in _DPKG_FIELD.findall(stanza):
                fields.setdefault(key.lower(), value.strip())
            yield fields


def _parse_dpkg(path: str, data: bytes, distro: _Distro, problems: list[str]) -> list[Package]:
    limit = MAX_DATABASE if path == DPKG_STATUS else MAX_METADATA
    if len(data) > limit:
        problems.append(f"{path}: dpkg database of {len(data)} bytes is over the {limit}-byte limit; skipped")
        return []
    namespace = distro.namespace("debian")
    out: list[Package] = []
    incomplete = 0
    for fields in _control_stanzas(data.decode("utf-8", "replace")):
        status = fields.get("status")
        if status is not None and status.rsplit(None, 1)[-1:] != ["installed"]:
            continue  # removed, config-files, half-installed ...
        pkg = _deb_package(path, fields, namespace, distro)
        if pkg is None:
            incomplete += 1
        else:
            out.append(pkg)
    if incomplete:
        problems.append(
            f"{path}: damaged dpkg database: {incomplete} stanza(s) without Package or Version;"
            f" {len(out)} package(s) read"
        )
    return out


def _deb_package(path: str, fields: Mapping[str, str], namespace: str | None, distro: _Distro) -> Package | None:
    name, version = _clip(fields.get("package", "")), _clip(fields.get("version", ""))
    if not name or not version:
        return None
    arch = _clip(fields.get("architecture", "")) or None
    source_name, source_version = name, version
    source = _clip(fields.get("source", ""))
    if source:
        src_name, _, rest = source.partition(" ")
        source_name = src_name
        rest = rest.strip()
        if rest.startswith("(") and rest.endswith(")") and len(rest) > 2:
            source_version = rest[1:-1].strip()
    epoch_text, colon, _ = version.partition(":")
    epoch = int(epoch_text) if colon and epoch_text.isdigit() and len(epoch_text) < 10 else None
    purl = make_purl("deb", namespace, name.lower(), version, {"arch": arch, "distro": distro.qualifier})
    return Package(
        name=name,
        version=version,
        type="deb",
        purl=purl,
        source_path=path,
        arch=arch,
        epoch=epoch,
        namespace=namespace,
        distro=distro.qualifier,
        source_name=source_name,
        source_version=source_version,
    )


# --- apk ---------------------------------------------------------------------------------------


def _parse_apk(path: str, data: bytes, distro: _Distro, problems: list[str]) -> list[Package]:
    if len(data) > MAX_DATABASE:
        problems.append(f"{path}: apk database of {len(data)} bytes is over the {MAX_DATABASE}-byte limit; skipped")
        return []
    namespace = distro.namespace("alpine")
    out: list[Package] = []
    record: dict[str, str] = {}
    incomplete = bad_lines = 0
    for line in [*data.decode("utf-8", "replace").split("\n"), ""]:
        if not line.strip():
            if record:
                pkg = _apk_package(path, record, namespace, distro)
                if pkg is None:
                    incomplete += 1
                else:
                    out.append(pkg)
                record = {}
            continue
        if len(line) < 2 or line[1] != ":":
            bad_lines += 1
            continue
        if line[0] in "PVALo":
            record.setdefault(line[0], line[2:])
        else:
            record.setdefault("_", "")  # a field of a record (files, checksums ...)
    if incomplete or bad_lines:
        problems.append(
            f"{path}: damaged apk database: {incomplete} record(s) without P: or V:,"
            f" {bad_lines} line(s) that are not fields; {len(out)} package(s) read"
        )
    return out


def _apk_package(path: str, record: Mapping[str, str], namespace: str | None, distro: _Distro) -> Package | None:
    name, version = _clip(record.get("P", "")), _clip(record.get("V", ""))
    if not name or not version:
        return None
    arch = _clip(record.get("A", "")) or None
    licence = _clip(record.get("L", ""))
    purl = make_purl("apk", namespace, name.lower(), version, {"arch": arch, "distro": distro.qualifier})
    return Package(
        name=name,
        version=version,
        type="apk",
        purl=purl,
        source_path=path,
        arch=arch,
        namespace=namespace,
        distro=distro.qualifier,
        licenses=(licence,) if licence else (),
        source_name=_clip(record.get("o", "")) or name,
        source_version=version,
    )


# --- RPM ---------------------------------------------------------------------------------------

_RPMTAG_NAME, _RPMTAG_VERSION, _RPMTAG_RELEASE, _RPMTAG_EPOCH = 1000, 1001, 1002, 1003
_RPMTAG_VENDOR, _RPMTAG_LICENSE, _RPMTAG_ARCH, _RPMTAG_SOURCERPM = 1011, 1014, 1022, 1044
_RPM_WANTED = frozenset(
    {
        _RPMTAG_NAME,
        _RPMTAG_VERSION,
        _RPMTAG_RELEASE,
        _RPMTAG_EPOCH,
        _RPMTAG_VENDOR,
        _RPMTAG_LICENSE,
        _RPMTAG_ARCH,
        _RPMTAG_SOURCERPM,
    }
)
_RPM_INT32, _RPM_STRING, _RPM_STRING_ARRAY, _RPM_I18NSTRING = 4, 6, 8, 9
_RPM_TAGS_MAX = 0xFFFF  # rpm's own header limits (HEADER_TAGS_MAX, HEADER_DATA_MAX)
_RPM_DATA_MAX = 256 << 20
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_STEP_INSTRUCTIONS = 1000  # sqlite VM instructions between two progress-handler calls
_SQLITE_STEPS = 200_000  # progress-handler calls before a query is cut off (a hostile schema cannot loop)
_INDEX = struct.Struct(">iIiI")  # tag, type, offset, count


def parse_rpm_header(blob: bytes) -> dict[int, str | int] | None:
    """The wanted tags of an RPM header blob (as stored in rpmdb: no lead, no signature).

    Layout (big-endian): index count ``il``, data length ``dl``, ``il`` 16-byte index entries, then
    ``dl`` bytes of data. None when the blob is not a well-formed header; an entry whose offset or
    string runs outside the data is ignored.
    """
    if len(blob) < 8:
        return None
    il, dl = struct.unpack_from(">II", blob, 0)
    if il == 0 or il > _RPM_TAGS_MAX or dl > _RPM_DATA_MAX:
        return None
    data_start = 8 + 16 * il
    data_end = data_start + dl
    if data_end > len(blob):
        return None
    out: dict[int, str | int] = {}
    for tag, typ, offset, count in _INDEX.iter_unpack(blob[8:data_start]):
        if tag not in _RPM_WANTED or tag in out or offset < 0 or offset >= dl or count == 0:
            continue
        start = data_start + offset
        if typ in (_RPM_STRING, _RPM_STRING_ARRAY, _RPM_I18NSTRING):
            nul = blob.find(b"\0", start, data_end)
            if nul >= 0:
                out[tag] = blob[start : min(nul, start + _MAX_FIELD)].decode("utf-8", "replace")
        elif typ == _RPM_INT32 and start + 4 <= data_end:
            out[tag] = struct.unpack_from(">I", blob, start)[0]
    return out


def _parse_rpmdb(path: str, data: bytes, distro: _Distro, problems: list[str]) -> list[Package]:
    if len(data) > MAX_RPMDB:
        problems.append(f"{path}: RPM database of {len(data)} bytes is over the {MAX_RPMDB}-byte limit; skipped")
        return []
    if not data.startswith(_SQLITE_MAGIC) or len(data) < 100:
        problems.append(f"{path}: not an SQLite database; RPM packages are not listed")
        return []
    try:
        blobs = _rpmdb_blobs(data)
    except (sqlite3.Error, ValueError, OverflowError, MemoryError) as exc:
        problems.append(f"{path}: unreadable RPM database ({type(exc).__name__}: {str(exc)[:120]})")
        return []
    out: list[Package] = []
    damaged = 0
    for blob in blobs:
        header = parse_rpm_header(blob) if isinstance(blob, bytes) else None
        if header is not None and header.get(_RPMTAG_NAME) == "gpg-pubkey":
            continue  # an imported signing key, not a package
        pkg = _rpm_package(path, header, distro) if header is not None else None
        if pkg is None:
            damaged += 1
        else:
            out.append(pkg)
    if damaged:
        problems.append(f"{path}: {damaged} damaged RPM header(s) skipped; {len(out)} package(s) read")
    return out


def _rpmdb_blobs(data: bytes) -> list[object]:
    """The ``blob`` column of the ``Packages`` table, read from an in-memory copy of the file."""
    image = bytearray(data)
    if image[18] == 2 or image[19] == 2:  # WAL mode: an in-memory database cannot open it as such
        image[18] = image[19] = 1
    conn = sqlite3.connect(":memory:")
    try:
        conn.deserialize(bytes(image))
        steps = [0]

        def budget() -> int:
            steps[0] += 1
            return int(steps[0] > _SQLITE_STEPS)

        conn.set_progress_handler(budget, _SQLITE_STEP_INSTRUCTIONS)
        conn.text_factory = bytes  # text columns of a hostile file need not be UTF-8
        conn.execute("PRAGMA query_only = ON")
        conn.execute("PRAGMA trusted_schema = OFF")
        row = conn.execute("SELECT type FROM sqlite_master WHERE name = 'Packages'").fetchone()
        if row is None or row[0] != b"table":
            raise sqlite3.DatabaseError("no Packages table")
        return [r[0] for r in conn.execute("SELECT blob FROM Packages ORDER BY hnum")]
    finally:
        conn.close()


def _rpm_package(path: str, header: Mapping[int, str | int], distro: _Distro) -> Package | None:
    def text(tag: int) -> str | None:
        value = header.get(tag)
        return (value.strip() or None) if isinstance(value, str) else None

    name, version = text(_RPMTAG_NAME), text(_RPMTAG_VERSION)
    if name is None or version is None:
        return None
    release, arch = text(_RPMTAG_RELEASE), text(_RPMTAG_ARCH)
    raw_epoch = header.get(_RPMTAG_EPOCH)
    epoch = raw_epoch if isinstance(raw_epoch, int) else None
    full_version = f"{version}-{release}" if release else version
    namespace = distro.namespace(None)
    qualifiers = {
        "arch": arch,
        "distro": distro.qualifier,
        "epoch": str(epoch) if epoch is not None else None,
    }
    source_name, source_version = _split_source_rpm(text(_RPMTAG_SOURCERPM))
    licence = text(_RPMTAG_LICENSE)
    return Package(
        name=name,
        version=full_version,
        type="rpm",
        purl=make_purl("rpm", namespace, name, full_version, qualifiers),
        source_path=path,
        arch=arch,
        epoch=epoch,
        release=release,
        namespace=namespace,
        distro=distro.qualifier,
        licenses=(licence,) if licence else (),
        source_name=source_name,
        source_version=source_version,
        vendor=text(_RPMTAG_VENDOR),
    )


def _split_source_rpm(srpm: str | None) -> tuple[str | None, str | None]:
    """``openssl-3.0.7-24.el9.src.rpm`` -> (``openssl``, ``3.0.7-24.el9``)."""
    if not srpm:
        return None, None
    for suffix in (".src.rpm", ".nosrc.rpm"):
        if srpm.endswith(suffix):
            srpm = srpm[: -len(suffix)]
            break
    parts = srpm.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        return srpm, None
    return parts[0], f"{parts[1]}-{parts[2]}"


# --- Python ------------------------------------------------------------------------------------

_PY_FIELDS = frozenset({"name", "version", "license", "license-expression"})


def _parse_python(path: str, data: bytes, distro: _Distro, problems: list[str]) -> list[Package]:
    if not data:
        return []  # an empty egg-info marker
    if len(data) > MAX_METADATA:
        problems.append(f"{path}: package metadata of {len(data)} bytes is over the {MAX_METADATA}-byte limit")
        return []
    fields = _metadata_headers(data)
    name, version = _clip(fields.get("name", "")), _clip(fields.get("version", ""))
    if not name or not version:
        problems.append(f"{path}: Python package metadata without Name or Version")
        return []
    licence = _clip(fields.get("license-expression", ""))
    if not licence:
        plain = fields.get("license", "")
        if plain != "UNKNOWN" and len(plain) <= 200:
            licence = _clip(plain)
    return [
        Package(
            name=name,
            version=version,
            type="pypi",
            purl=make_purl("pypi", None, normalize_pypi_name(name), version),
            source_path=path,
            licenses=(licence,) if licence else (),
        )
    ]


def _metadata_headers(data: bytes) -> dict[str, str]:
    """Header fields of core metadata (email-header format) up to the first blank line.

    A field continued on further lines (a licence text pasted into ``License:``) keeps only its first
    line and is marked by a trailing newline so callers can tell.
    """
    out: dict[str, str] = {}
    last = ""
    for raw in data.decode("utf-8", "replace").split("\n"):
        line = raw.rstrip("\r")
        if not line:
            break
        if line[0] in " \t":
            if last in out and not out[last].endswith("\n"):
                out[last] += "\n"
            continue
        key, sep, value = line.partition(":")
        last = key.strip().lower()
        if sep and last in _PY_FIELDS and last not in out:
            out[last] = value.strip()
    return {k: ("" if k == "license" and v.endswith("\n") else v) for k, v in out.items()}


# --- Node --------------------------------------------------------------------------------------


def _parse_npm(path: str, data: bytes, distro: _Distro, problems: list[str]) -> list[Package]:
    if len(data) > MAX_METADATA:
        problems.append(f"{path}: package.json of {len(data)} bytes is over the {MAX_METADATA}-byte limit")
        return []
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        problems.append(f"{path}: package.json is not valid JSON")
        return []
    if not isinstance(doc, dict):
        problems.append(f"{path}: package.json is not a JSON object")
        return []
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name.strip() or not version.strip():
        return []  # a package.json without identity (a build artefact, a workspace root)
    name, version = _clip(name), _clip(version)
    namespace = None
    short = name
    if name.startswith("@") and "/" in name:
        namespace, short = name.split("/", 1)
    return [
        Package(
            name=name,
            version=version,
            type="npm",
            purl=make_purl("npm", namespace.lower() if namespace else None, short.lower(), version),
            source_path=path,
            namespace=namespace,
            licenses=_npm_licenses(doc),
        )
    ]


def _npm_licenses(doc: Mapping[str, object]) -> tuple[str, ...]:
    """``license`` as a string or ``{"type": ...}``, or the legacy ``licenses`` list."""
    values: list[object] = [doc.get("license")]
    legacy = doc.get("licenses")
    if isinstance(legacy, list):
        values.extend(legacy[:16])
    out: list[str] = []
    for value in values:
        text = value.get("type") if isinstance(value, dict) else value
        if isinstance(text, str) and text.strip() and len(text) <= 200 and _clip(text) not in out:
            out.append(_clip(text))
    return tuple(out)


_PARSERS = {
    "deb": _parse_dpkg,
    "apk": _parse_apk,
    "rpm": _parse_rpmdb,
    "pypi": _parse_python,
    "npm": _parse_npm,
}
