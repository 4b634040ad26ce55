"""Benchmark the offline OSV matcher: a 1,000-package SBOM against 50,000 OSV advisories.

Generates, in a temporary directory, an OSV mirror of ``--advisories`` records (one JSON file each,
spread over Debian:12, Alpine:v3.19, PyPI and npm in the proportions of osv.dev's exports, several
advisories per package name, introduced/fixed/last_affected ranges with realistic version spellings)
and a CycloneDX SBOM of ``--packages`` packages (most with at least one advisory), then times
``packages_from_sbom`` + ``load_osv`` + ``match`` in a fresh process per repeat (imports included)
and prints the seconds, twice: ``full`` parses every record, ``prefilter`` passes the SBOM's packages
to ``load_osv(only=...)`` so that records naming none of them are not parsed (what the CLI does).
The floor is a plain read + ``json.loads`` of every file. ``--zip`` writes the mirror as per-ecosystem ``all.zip`` files
instead. Target: under 2 s. Standard library + the project's venv.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

# (OSV ecosystem, purl template, share of advisories, version maker)
ECOSYSTEMS = [
    ("Debian:12", "pkg:deb/debian/{name}@{version}?arch=amd64&distro=debian-12", 0.45, "deb"),
    ("Alpine:v3.19", "pkg:apk/alpine/{name}@{version}?arch=x86_64&distro=alpine-3.19.1", 0.15, "apk"),
    ("PyPI", "pkg:pypi/{name}@{version}", 0.2, "semverish"),
    ("npm", "pkg:npm/{name}@{version}", 0.2, "semverish"),
]
NAMES_PER_ECOSYSTEM = 4000


def make_version(kind: str, rng: random.Random, major: int, minor: int) -> str:
    if kind == "deb":
        epoch = "1:" if major % 7 == 0 else ""
        tilde = f"~deb12u{rng.randint(1, 4)}" if minor % 3 == 0 else f"+deb12u{rng.randint(1, 4)}"
        return f"{epoch}{major}.{minor}.{rng.randint(0, 9)}-{rng.randint(1, 5)}{tilde}"
    if kind == "apk":
        return f"{major}.{minor}.{rng.randint(0, 9)}-r{rng.randint(0, 9)}"
    return f"{major}.{minor}.{rng.randint(0, 20)}"


def generate(root: Path, advisories: int, packages: int, as_zip: bool, seed: int = 1) -> Path:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    mirror = root / "osv"
    mirror.mkdir()
    archives: dict[str, zipfile.ZipFile] = {}
    count = 0
    for ecosystem, _, share, kind in ECOSYSTEMS:
        folder = mirror / ecosystem.replace(":", "_")
        folder.mkdir()
        if as_zip:
            archives[ecosystem] = zipfile.ZipFile(folder / "all.zip", "w", zipfile.ZIP_DEFLATED)
        for i in range(int(advisories * share)):
            count += 1
            name = f"pkg{rng.randrange(NAMES_PER_ECOSYSTEM)}"
            major, minor = rng.randint(0, 9), rng.randint(0, 9)
            events: list[dict[str, str]] = [
                {"introduced": "0" if i % 3 else make_version(kind, rng, major, 0)},
                {"fixed": make_version(kind, rng, major, minor + 1)} if i % 5 else {"last_affected": "9.9.9"},
            ]
            vid = f"OSV-{ecosystem.partition(':')[0].upper()}-{count}"
            record = {
                "schema_version": "1.6.0",
                "id": vid,
                "aliases": [f"CVE-2024-{count:05d}"],
                "summary": f"{name}: a vulnerability with a realistic summary line of some length",
                "details": "Lorem ipsum dolor sit amet, " * 20,
                "published": "2024-01-01T00:00:00Z",
                "modified": "2024-02-01T00:00:00Z",
                "affected": [
                    {
                        "package": {"ecosystem": ecosystem, "name": name},
                        "ranges": [{"type": "SEMVER" if ecosystem == "npm" else "ECOSYSTEM", "events": events}],
                        "database_specific": {"source": f"https://example.invalid/{vid}"},
                    }
                ],
                "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
                "references": [{"type": "ADVISORY", "url": f"https://example.invalid/{vid}"}],
            }
            text = json.dumps(record)
            if as_zip:
                archives[ecosystem].writestr(f"{vid}.json", text)
            else:
                (folder / f"{vid}.json").write_text(text)
    for archive in archives.values():
        archive.close()
    components = []
    for i in range(packages):
        ecosystem, template, share, kind = ECOSYSTEMS[i % len(ECOSYSTEMS)]
        name = f"pkg{rng.randrange(NAMES_PER_ECOSYSTEM)}"
        version = make_version(kind, rng, rng.randint(0, 9), rng.randint(0, 9))
        purl = template.format(name=name, version=version)
        components.append({"type": "library", "bom-ref": f"{purl}#{i}", "name": name, "version": version, "purl": purl})
    sbom = root / "sbom.cdx.json"
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components}))
    return sbom


RUN = """
import sys, time
t0 = time.perf_counter()
from factorygate.vulns.osv import load_osv, packages_from_sbom
pkgs = packages_from_sbom(sys.argv[2])
db = load_osv(sys.argv[1], only=pkgs if sys.argv[3] == "prefilter" else None)
t1 = time.perf_counter()
found = db.match(pkgs)
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {db.advisories} {db.skipped} {len(pkgs)} {len(found)} {len(db.problems)}")
"""

# The floor: read every file and json.loads it, nothing else.
FLOOR = """
import json, os, sys, time
t0 = time.perf_counter()
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        with open(os.path.join(d, f), "rb") as fh:
            json.loads(fh.read())
print(f"{time.perf_counter() - t0:.3f}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--advisories", type=int, default=50_000)
    parser.add_argument("--packages", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--zip", action="store_true", help="per-ecosystem all.zip exports instead of *.json files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        sbom = generate(Path(tmp), args.advisories, args.packages, args.zip)
        print(f"generated in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        osv = str(Path(tmp) / "osv")
        runs: dict[str, list[float]] = {"full": [], "prefilter": []}
        for _ in range(args.repeat):
            if not args.zip:
                cmd = [sys.executable, "-c", FLOOR, osv]
                floor = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
                print(f"floor (read + json.loads every file): {floor} s")
            for mode, totals in runs.items():
                cmd = [sys.executable, "-c", RUN, osv, str(sbom), mode]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()
                load, match = float(out[0]), float(out[1])
                totals.append(load + match)
                print(
                    f"{mode:9} load {load:.3f} s  match {match:.3f} s  total {load + match:.3f} s  "
                    f"({out[2]} advisories parsed, {out[3]} skipped, {out[4]} packages, {out[5]} findings, "
                    f"{out[6]} problems)"
                )
        for mode, totals in runs.items():
            best = min(totals)
            print(f"{mode:9} best total {best:.3f} s (target < 2 s): {'ok' if best < 2 else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
