"""The command line: version, rules, init, scan, exit codes and output files."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_version() -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("factorygate ")


def test_version_does_not_import_the_heavy_modules() -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom factorygate.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pydantic', 'rich', 'yaml', 'factorygate.engine') if m in sys.modules]\n"
        "print('heavy=' + ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip().splitlines()[-1] == "heavy="


def test_a_dockerfile_scan_imports_only_what_it_needs(examples: Path, tmp_path: Path) -> None:
    """Start-up is a large share of a scan of a few hundred Dockerfiles (bench/): no dataclasses (and
    with them inspect), no YAML, no pydantic, no release/vulnerability, image or registry code."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom factorygate.cli import main\n"
        f"code = main(['scan', {str(examples / 'docker')!r}, '-f', 'json', '-o', {str(tmp_path / 'r.json')!r}])\n"
        "unwanted = ('dataclasses', 'inspect', 'yaml', 'pydantic', 'factorygate.release', 'factorygate.oci.registry',\n"
        "            'factorygate.checks.image', 'subprocess')\n"
        "print('code=%d loaded=%s' % (code, ','.join(m for m in unwanted if m in sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, env=_no_catalog_check()
    )
    assert proc.stdout.strip().splitlines()[-1] == "code=1 loaded="  # the insecure examples fail


def _no_catalog_check() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "FACTORYGATE_VALIDATE_CATALOG"}


def test_rules_lists_every_check_with_requirement_nist_and_cci() -> None:
    proc = run_cli("rules", "--format", "json")
    assert proc.returncode == 0
    rows = json.loads(proc.stdout)
    ro = next(r for r in rows if r["id"] == "k8s-read-only-root-filesystem")
    assert ro["requirements"] == ["CICDG-3.7"]
    assert ro["nist"] == ["CM-5 (1)"]
    assert ro["cci"] == ["CCI-001813"]
    assert ro["severity"] == "medium"
    text = run_cli("rules")
    assert "k8s-read-only-root-filesystem" in text.stdout
    reqs = json.loads(run_cli("rules", "--requirements", "--format", "json").stdout)
    assert next(r for r in reqs if r["id"] == "CICDG-2.16")["automation"] == ["process"]


def test_init_writes_a_policy_that_scan_accepts(tmp_path: Path, examples: Path) -> None:
    target = tmp_path / "p.yaml"
    assert run_cli("init", str(target)).returncode == 0
    assert "apiVersion: factorygate.dev/v1" in target.read_text()
    again = run_cli("init", str(target))
    assert again.returncode == 2
    assert "exists" in again.stderr
    proc = run_cli("scan", str(examples / "k8s/hardened"), "--policy", str(target))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_examples_gate_as_documented(examples: Path, tmp_path: Path) -> None:
    assert run_cli("scan", str(examples / "k8s/hardened")).returncode == 0
    out = tmp_path / "r.sarif"
    proc = run_cli(
        "scan", str(examples / "k8s/insecure"), "--policy", str(examples / "policy.yaml"),
        "--format", "sarif", "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 1
    assert json.loads(out.read_text())["runs"][0]["results"]
    assert "failing at or above medium; exit 1" in proc.stderr


def test_threshold_option_overrides_the_policy(examples: Path) -> None:
    insecure = str(examples / "k8s/insecure")
    assert run_cli("scan", insecure, "--threshold", "critical").returncode == 1
    only_low = run_cli("scan", str(examples / "k8s/hardened"), "--threshold", "info")
    assert only_low.returncode == 0


def test_bad_policy_is_a_usage_error(tmp_path: Path, examples: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: factorygate.dev/v1\nkind: Policy\nthreshold: loud\n")
    proc = run_cli("scan", str(examples / "k8s/hardened"), "--policy", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:3: threshold:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_usage_errors_exit_2() -> None:
    assert run_cli("scan").returncode == 2
    assert run_cli("scan", "x", "--format", "pdf").returncode == 2
    assert run_cli("scan", "x", "--as-of", "tomorrow").returncode == 2
    assert run_cli().returncode == 2


def test_unwritable_output_is_reported(examples: Path, tmp_path: Path) -> None:
    proc = run_cli("scan", str(examples / "k8s/hardened"), "--output", str(tmp_path / "no/such/dir/r.json"))
    assert proc.returncode == 2
    assert "cannot write" in proc.stderr
