"""Benchmark ``vulns merge``: load a Trivy and a Grype report of 20,000 findings each and merge them.

The reports are generated into a temporary directory in the tools' real JSON shapes (descriptions,
references, CVSS, layers, match details: about the size real reports have per finding). 92.5% of the
findings are in both (language findings under a GHSA id with the CVE related in Grype, as Grype
reports them), the rest in one report only, and some severities disagree. Target: load + merge
under 2 s. Standard library + the project's venv.

    .venv/bin/python bench/bench_vuln_merge.py [--findings 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from factorygate.vulns.merge import merge
from factorygate.vulns.reports import load_report

IMAGE = "registry.example/bench/app:1.0"
SEVERITY_WORDS = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
DESCRIPTION = (
    "A flaw was found in the parsing code of this package. A remote attacker could send a crafted input that "
    "triggers an out-of-bounds read, leading to a denial of service or possibly information disclosure. "
)


def findings(n: int, seed: int) -> list[dict[str, Any]]:
    """Distinct findings such that each report gets exactly ``n``: 92.5% in both, 7.5% in one only."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    only = int(n * 0.075)
    where = ["both"] * (n - only) + ["trivy"] * only + ["grype"] * only
    rng.shuffle(where)
    out = []
    for i in range(len(where)):
        lang = i % 3 == 0
        pkg = f"pkg{i % 4000}"
        version = f"{1 + i % 7}.{i % 13}.{i % 5}"
        out.append(
            {
                "cve": f"CVE-{2015 + i % 10}-{10000 + i}",
                "ghsa": "GHSA-"
                + "-".join("".join(rng.choice("23456789cfghjmpqrvwx") for _ in range(4)) for _ in range(3)),
                "pkg": pkg,
                "version": version,
                "lang": lang,
                "severity": rng.randrange(4),
                "fixed": f"{2 + i % 7}.0.0",
                "where": where[i],
                "conflict": rng.random() < 0.05,
            }
        )
    return out


def trivy_report(items: list[dict[str, Any]]) -> dict[str, Any]:
    os_vulns: list[dict[str, Any]] = []
    lang_vulns: list[dict[str, Any]] = []
    for it in items:
        if it["where"] == "grype":
            continue
        ptype = "pypi" if it["lang"] else "deb"
        purl = (
            f"pkg:pypi/{it['pkg']}@{it['version']}"
            if it["lang"]
            else f"pkg:deb/debian/{it['pkg']}@{it['version']}?arch=amd64&distro=debian-12.5"
        )
        vuln = {
            "VulnerabilityID": it["cve"],
            "PkgID": f"{it['pkg']}@{it['version']}",
            "PkgName": it["pkg"],
            "PkgIdentifier": {"PURL": purl, "UID": "0123456789abcdef"},
            "InstalledVersion": it["version"],
            "FixedVersion": it["fixed"],
            "Status": "fixed",
            "Layer": {"Digest": "sha256:" + "1" * 64, "DiffID": "sha256:" + "2" * 64},
            "SeveritySource": "nvd",
            "PrimaryURL": f"https://avd.aquasec.com/nvd/{it['cve'].lower()}",
            "DataSource": {"ID": "debian", "Name": "Debian Security Tracker", "URL": "https://salsa.debian.org/"},
            "Title": f"{it['pkg']}: out-of-bounds read in parser",
            "Description": DESCRIPTION,
            "Severity": SEVERITY_WORDS[it["severity"]],
            "CweIDs": ["CWE-125"],
            "VendorSeverity": {"nvd": it["severity"] + 1, "redhat": it["severity"] + 1},
            "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", "V3Score": 7.5}},
            "References": [f"https://nvd.nist.gov/vuln/detail/{it['cve']}", "https://example.org/advisory"],
            "PublishedDate": "2024-01-26T09:15:07.837Z",
            "LastModifiedDate": "2024-06-10T17:16:19.053Z",
        }
        if ptype == "pypi":
            vuln["PkgPath"] = f"usr/lib/python3/site-packages/{it['pkg']}-{it['version']}.dist-info/METADATA"
        (lang_vulns if it["lang"] else os_vulns).append(vuln)
    return {
        "SchemaVersion": 2,
        "ArtifactName": IMAGE,
        "ArtifactType": "container_image",
        "Results": [
            {"Target": f"{IMAGE} (debian 12.5)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": os_vulns},
            {"Target": "Python", "Class": "lang-pkgs", "Type": "python-pkg", "Vulnerabilities": lang_vulns},
        ],
    }


def grype_report(items: list[dict[str, Any]]) -> dict[str, Any]:
    matches = []
    for it in items:
        if it["where"] == "trivy":
            continue
        severity = (it["severity"] + 1) % 4 if it["conflict"] else it["severity"]
        primary = it["ghsa"] if it["lang"] else it["cve"]
        purl = (
            f"pkg:pypi/{it['pkg']}@{it['version']}"
            if it["lang"]
            else f"pkg:deb/debian/{it['pkg']}@{it['version']}?arch=amd64&distro=debian-12"
        )
        matches.append(
            {
                "vulnerability": {
                    "id": primary,
                    "dataSource": f"https://github.com/advisories/{primary}",
                    "namespace": "github:language:python" if it["lang"] else "debian:distro:debian:12",
                    "severity": SEVERITY_WORDS[severity].title(),
                    "urls": ["https://example.org/advisory"],
                    "description": DESCRIPTION,
                    "cvss": [
                        {
                            "source": "nvd@nist.gov",
                            "type": "Primary",
                            "version": "3.1",
                            "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H",
                            "metrics": {"baseScore": 7.5, "exploitabilityScore": 3.9, "impactScore": 3.6},
                            "vendorMetadata": {},
                        }
                    ],
                    "fix": {"versions": [it["fixed"]], "state": "fixed"},
                    "advisories": [],
                },
                "relatedVulnerabilities": [
                    {
                        "id": it["cve"],
                        "dataSource": f"https://nvd.nist.gov/vuln/detail/{it['cve']}",
                        "namespace": "nvd:cpe",
                        "severity": "High",
                        "urls": [],
                        "description": DESCRIPTION,
                        "cvss": [],
                    }
                ],
                "matchDetails": [
                    {
                        "type": "exact-direct-match",
                        "matcher": "python-matcher" if it["lang"] else "dpkg-matcher",
                        "searchedBy": {"package": {"name": it["pkg"], "version": it["version"]}},
                        "found": {"vulnerabilityID": primary, "versionConstraint": f"< {it['fixed']}"},
                    }
                ],
                "artifact": {
                    "id": "0123456789abcdef",
                    "name": it["pkg"],
                    "version": it["version"],
                    "type": "python" if it["lang"] else "deb",
                    "locations": [{"path": "/var/lib/dpkg/status", "layerID": "sha256:" + "2" * 64}],
                    "language": "python" if it["lang"] else "",
                    "licenses": [],
                    "cpes": [],
                    "purl": purl,
                    "upstreams": [],
                },
            }
        )
    return {
        "matches": matches,
        "source": {"type": "image", "target": {"userInput": IMAGE}},
        "descriptor": {"name": "grype", "version": "0.79.1"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--findings", type=int, default=20_000, help="findings per report (default 20000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best is reported")
    args = parser.parse_args()
    items = findings(args.findings, seed=1)
    with tempfile.TemporaryDirectory(prefix="fg-bench-vulns-") as tmp:
        trivy_doc, grype_doc = trivy_report(items), grype_report(items)
        trivy_n = sum(len(r["Vulnerabilities"]) for r in trivy_doc["Results"])
        grype_n = len(grype_doc["matches"])
        trivy_path, grype_path = Path(tmp) / "trivy.json", Path(tmp) / "grype.json"
        trivy_path.write_text(json.dumps(trivy_doc, indent=2), encoding="utf-8")
        grype_path.write_text(json.dumps(grype_doc, indent=2), encoding="utf-8")
        sizes = trivy_path.stat().st_size / 1e6, grype_path.stat().st_size / 1e6
        print(f"trivy: {trivy_n} findings, {sizes[0]:.1f} MB; grype: {grype_n} findings, {sizes[1]:.1f} MB")
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            observations = load_report(str(trivy_path)) + load_report(str(grype_path))
            t1 = time.perf_counter()
            result = merge(observations)
            t2 = time.perf_counter()
            for name, seconds in (("load", t1 - t0), ("merge", t2 - t1), ("total", t2 - t0)):
                best[name] = min(best.get(name, seconds), seconds)
        print(
            f"merged: {len(result.findings)} findings, only in trivy {len(result.only_in['trivy'])}, "
            f"only in grype {len(result.only_in['grype'])}, severity conflicts {len(result.severity_conflicts)}"
        )
        verdict = "OK" if best["total"] < 2.0 else "OVER TARGET"
        print(
            f"load {best['load']:.3f} s + merge {best['merge']:.3f} s = {best['total']:.3f} s "
            f"(best of {args.repeat}; target < 2 s: {verdict})"
        )


if __name__ == "__main__":
    main()
