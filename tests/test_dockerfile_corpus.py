"""The whole public Dockerfile corpus scans without a crash, a parse error or a check error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import ROOT, run_cli

CORPUS = ROOT.parent / "shared" / "corpus" / "docker"


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not next to this checkout")
def test_docker_corpus_scans_cleanly(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = run_cli("scan", str(CORPUS), "--type", "dockerfile", "--format", "json", "--output", str(report))
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1, proc.stderr[-2000:]  # policy failures, no errors
    doc = json.loads(report.read_text())
    # hidden directories (.devcontainer/) are skipped by a directory walk, as everywhere
    files = [p for p in CORPUS.rglob("*") if p.is_file() and not any(x.startswith(".") for x in p.parts)]
    assert doc["summary"]["error"] == 0
    assert doc["summary"]["dockerfiles"] == len(files)  # every file there is named like a Dockerfile
    checks = {f["check"] for f in doc["findings"]}
    assert {"df-non-root-user", "df-base-image-digest", "df-healthcheck"} <= checks
    lines = [f["location"]["line"] for f in doc["findings"]]
    assert all(isinstance(n, int) and n >= 1 for n in lines)
