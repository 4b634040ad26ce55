"""Shared test helpers."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factorygate.catalog import load_catalog
from factorygate.engine import KUBERNETES_KINDS, Engine, ScanResult
from factorygate.inputs.kubernetes import manifests_from_bytes
from factorygate.policy import default_policy_text, parse_policy

ROOT = Path(__file__).resolve().parent.parent
# Every catalog load in the tests (and in the CLI subprocesses they start) applies the strict schema.
os.environ["FACTORYGATE_VALIDATE_CATALOG"] = "1"


def scan_text(text: str, policy_text: str | None = None, as_of: dt.date | None = None) -> ScanResult:
    """Run the whole engine over one YAML text (named t.yaml)."""
    catalog = load_catalog()
    policy = parse_policy(policy_text or default_policy_text(), "policy.yaml", set(catalog.checks))
    items = manifests_from_bytes(text.encode(), "t.yaml", kinds=KUBERNETES_KINDS)
    return Engine(catalog, policy, as_of=as_of).run(items, ["t.yaml"])


def run_cli(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess (bounded in time)."""
    return subprocess.run(
        [sys.executable, "-m", "factorygate", *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def examples() -> Path:
    return ROOT / "examples"


@pytest.fixture(scope="session")
def seed_guide() -> str:
    path = ROOT.parent / "shared" / "seeds" / "disa-container-image-creation-and-deployment-guide-v2r0.6.md"
    if not path.exists():
        pytest.skip("the shared seeds are not next to this checkout")
    return path.read_text(encoding="utf-8")


@pytest.fixture
def empty_docker_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DOCKER_CONFIG pointed at an empty directory: no credentials of the machine leak into a test."""
    directory = tmp_path / "docker-config"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
