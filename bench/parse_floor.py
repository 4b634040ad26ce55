"""Parse floor: the least work any YAML-based Kubernetes scanner must do.

Walks a directory recursively for ``*.yaml``, ``*.yml`` and ``*.json`` files and
parses every document in them with PyYAML's C loader (``yaml.CSafeLoader``),
counting files, documents and per-file parse errors. Nothing is checked or kept.

``bench/bench_k8s_scan.py`` runs this as its own child process to get the wall
time and peak RSS of "just parsing the corpus"; it can also be run on its own::

    python bench/parse_floor.py /work/shared/corpus/k8s

It prints one JSON object on stdout, e.g.
``{"files": 1268, "documents": 3400, "empty_documents": 12, "errors": 0, "bytes": 25000000, ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

EXTENSIONS: tuple[str, ...] = (".yaml", ".yml", ".json")


def iter_files(root: Path) -> Iterator[Path]:
    """Yield the YAML/JSON files under ``root`` in a stable (sorted) order.

    Hidden directories are included; symlinked directories are not followed.
    """
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(EXTENSIONS):
                yield Path(dirpath, name)


def parse_tree(root: Path, *, verbose: bool = False) -> dict[str, int | float | str]:
    """Parse every document of every matching file under ``root`` and return counts."""
    loader = yaml.CSafeLoader
    files = documents = empty = errors = total_bytes = 0
    start = time.perf_counter()
    for path in iter_files(root):
        files += 1
        try:
            data = path.read_bytes()
            total_bytes += len(data)
            for doc in yaml.load_all(data, Loader=loader):
                documents += 1
                if doc is None:
                    empty += 1
        except Exception as exc:  # noqa: BLE001 - any failure of one file is counted, never fatal
            errors += 1
            if verbose:
                print(f"{path}: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
    return {
        "root": str(root),
        "files": files,
        "documents": documents,
        "empty_documents": empty,
        "errors": errors,
        "bytes": total_bytes,
        "parse_seconds": round(time.perf_counter() - start, 6),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Parse every YAML/JSON document under DIR with yaml.CSafeLoader (the parse floor)."
    )
    parser.add_argument("directory", type=Path, help="directory to walk recursively")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each file that fails to parse")
    args = parser.parse_args(argv)

    if not getattr(yaml, "__with_libyaml__", False) or not hasattr(yaml, "CSafeLoader"):
        print("error: PyYAML was built without libyaml; yaml.CSafeLoader is unavailable", file=sys.stderr)
        return 2
    root: Path = args.directory
    if not root.is_dir():
        print(f"error: not a directory: {root}", file=sys.stderr)
        return 2
    print(json.dumps(parse_tree(root, verbose=args.verbose)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
