"""Benchmark ``factorygate image`` against the floor of listing the same layers with tar, in one run.

Input: the image bench/build_debian_image.sh builds (a debootstrap Debian bookworm root filesystem of a
few hundred MB with a compiler, Python, git, sudo and an SSH server, as an OCI layout).

1. floor: ``tar -tzf BLOB`` (``-t --zstd`` for zstd layers) on every layer blob, one after the other:
   decompress and list, nothing else;
2. ``factorygate image LAYOUT:TAG --format json --output TMP --sbom TMP``: resolve, verify every digest
   (compressed blob and uncompressed diff_id), stream every layer, apply whiteouts, build the package
   inventory, run the image checks, write the report and the SBOM;
3. the same on the docker-archive form (``skopeo copy`` of the layout, uncompressed layers).

Prints best-of-N wall times, peak RSS and the ratio; targets: factorygate within 1.5x of the floor and
under 300 MiB peak RSS.

    python bench/bench_image.py [--repeat 3] [--layout .bench/debian-oci:bookworm] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_k8s_scan import (
    BenchError,
    Measurement,
    best_of,
    factorygate_env,
    find_factorygate,
    run_measured,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LAYOUT = REPO_ROOT / ".bench" / "debian-oci"
DEFAULT_TAG = "bookworm"
DEFAULT_ARCHIVE = REPO_ROOT / ".bench" / "debian.tar"
TARGET_FLOOR_RATIO = 1.5
TARGET_RSS_MIB = 300.0


def layer_blobs(layout: Path, tag: str) -> list[tuple[Path, str]]:
    """(blob path, media type) of each layer of ``tag`` in an OCI layout (single-platform index)."""
    index = json.loads((layout / "index.json").read_text())
    entry = next(
        (m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag),
        None,
    )
    if entry is None:
        raise BenchError(f"{layout}: no image tagged {tag!r}")
    manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_text())
    return [(layout / "blobs" / "sha256" / x["digest"].split(":")[1], x["mediaType"]) for x in manifest["layers"]]


def floor_argv(blobs: Sequence[tuple[Path, str]]) -> list[str]:
    """One shell command listing every layer with tar (the floor: decompress + list)."""
    steps = []
    for path, media in blobs:
        flag = "--zstd -tf" if media.endswith("zstd") else ("-tzf" if media.endswith("gzip") else "-tf")
        steps.append(f"tar {flag} '{path}' >/dev/null")
    return ["sh", "-c", " && ".join(steps)]


def measure(label: str, argv: list[str], repeat: int, ok: frozenset[int], env: dict[str, str | None]) -> Measurement:
    runs = []
    for _ in range(repeat):
        m = run_measured(label, argv, env=env)
        if m.returncode not in ok:
            raise BenchError(f"{label}: exit {m.returncode}: {m.stderr.strip()[-400:]}")
        runs.append(m)
    return best_of(runs)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layout", default=f"{DEFAULT_LAYOUT}:{DEFAULT_TAG}", help="OCI layout DIR:TAG")
    p.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE, help="docker-archive of the same image")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--factorygate", default=None, help="factorygate command (default: next to this Python)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = p.parse_args(argv)
    layout_dir, _, tag = args.layout.rpartition(":")
    layout = Path(layout_dir)
    if not (layout / "index.json").is_file():
        print(f"bench: {layout} missing: run bench/build_debian_image.sh first", file=sys.stderr)
        return 2
    blobs = layer_blobs(layout, tag)
    size = sum(b.stat().st_size for b, _ in blobs)
    print(f"[bench] image {args.layout}: {len(blobs)} layers, {size / 1e6:.0f} MB compressed", file=sys.stderr)
    cmd = find_factorygate(args.factorygate)
    env = factorygate_env()
    results: dict[str, Measurement] = {}
    with tempfile.TemporaryDirectory() as tmp:
        report, sbom = Path(tmp) / "report.json", Path(tmp) / "sbom.json"
        fg = [*cmd, "image", args.layout, "--format", "json", "--output", str(report), "--sbom", str(sbom)]
        run_measured("warm-up", fg, env=env)  # bytecode cache, page cache
        results["floor"] = measure("tar -t on each layer", floor_argv(blobs), args.repeat, frozenset({0}), {})
        results["factorygate"] = measure("factorygate image (layout)", fg, args.repeat, frozenset({0, 1}), env)
        findings = len(json.loads(report.read_text())["findings"])
        components = len(json.loads(sbom.read_text())["components"])
        if args.archive.is_file():
            fa = [*cmd, "image", str(args.archive), "--format", "json", "--output", str(report)]
            results["archive"] = measure("factorygate image (docker-archive)", fa, args.repeat, frozenset({0, 1}), env)
    floor = results["floor"]
    print(f"\nimage: {args.layout}  ({len(blobs)} layers, {size / 1e6:.0f} MB compressed; repeat={args.repeat}, best)")
    print(f"{'command':40s} {'wall s':>8s} {'peak RSS MiB':>13s}")
    for m in results.values():
        print(f"{m.label:40s} {m.wall_s:8.2f} {m.max_rss_kib / 1024:13.1f}")
    fgm = results["factorygate"]
    ratio = fgm.wall_s / floor.wall_s
    rss = fgm.max_rss_kib / 1024
    print(
        f"\nfactorygate / floor: {ratio:.2f}x   target <= {TARGET_FLOOR_RATIO}x   {'PASS' if ratio <= 1.5 else 'MISS'}"
    )
    print(
        f"factorygate peak RSS: {rss:.1f} MiB   target < {TARGET_RSS_MIB:.0f} MiB   {'PASS' if rss < 300 else 'MISS'}"
    )
    print(f"{findings} findings, {components} SBOM components")
    if args.json:
        args.json.write_text(
            json.dumps(
                {k: {"wall_s": m.wall_s, "max_rss_mib": m.max_rss_kib / 1024} for k, m in results.items()}
                | {"ratio": ratio, "findings": findings, "sbom_components": components},
                indent=2,
            )
        )
    return 0 if ratio <= TARGET_FLOOR_RATIO and rss < TARGET_RSS_MIB else 1


if __name__ == "__main__":
    raise SystemExit(main())
