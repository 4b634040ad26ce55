"""The catalog is consistent data, and every check id maps to exactly one implementation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from factorygate.catalog import load_catalog
from factorygate.checks import ADMISSION_CHECKS, BUNDLE_CHECKS, DOCKERFILE_CHECKS, WORKLOAD_CHECKS, image_checks
from factorygate.model import SubjectKind

GUIDE_REQUIREMENTS = [f"CICDG-2.{i}" for i in range(1, 19)] + [f"CICDG-3.{i}" for i in range(1, 12)]

# IA control and CCI of each requirement, as printed in the DISA guide v2r0.6.
GUIDE_CONTROLS = {
    "CICDG-2.1": ("CM-7 a", "CCI-000381"),
    "CICDG-2.2": ("AC-6 (10)", "CCI-002235"),
    "CICDG-2.3": ("AC-6 (10)", "CCI-002235"),
    "CICDG-2.4": ("CM-7 a", "CCI-000381"),
    "CICDG-2.5": ("CM-7 (1) (b)", "CCI-001762"),
    "CICDG-2.6": ("SC-5", "CCI-002385"),
    "CICDG-2.7": ("SC-8", "CCI-002418"),
    "CICDG-2.8": ("SI-2 (6)", "CCI-002617"),
    "CICDG-2.9": ("CM-6 b", "CCI-000366"),
    "CICDG-2.10": ("CM-5 (3)", "CCI-001749"),
    "CICDG-2.11": ("CM-5 (3)", "CCI-001749"),
    "CICDG-2.12": ("CM-7 a", "CCI-000381"),
    "CICDG-2.13": ("CM-7 (1) (b)", "CCI-001762"),
    "CICDG-2.14": ("SC-8 (2)", "CCI-002422"),
    "CICDG-2.15": ("SI-2 (6)", "CCI-002617"),
    "CICDG-2.16": ("CM-6 b", "CCI-000366"),
    "CICDG-2.17": ("IA-5 (2) (a)", "CCI-000185"),
    "CICDG-2.18": ("IA-5 (7)", "CCI-002367"),
    "CICDG-3.1": ("SC-4", "CCI-001090"),
    "CICDG-3.2": ("SC-4", "CCI-001090"),
    "CICDG-3.3": ("SC-4", "CCI-001090"),
    "CICDG-3.4": ("SC-4", "CCI-001090"),
    "CICDG-3.5": ("SC-5 (1)", "CCI-001094"),
    "CICDG-3.6": ("SC-5 (2)", "CCI-001095"),
    "CICDG-3.7": ("CM-5 (1)", "CCI-001813"),
    "CICDG-3.8": ("SC-5", "CCI-002385"),
    "CICDG-3.9": ("SC-5", "CCI-002385"),
    "CICDG-3.10": ("SC-4", "CCI-001090"),
    "CICDG-3.11": ("SC-39", "CCI-002530"),
}


def test_every_guide_requirement_is_in_the_catalog_with_its_control_and_cci() -> None:
    reqs = load_catalog().requirements
    for rid in GUIDE_REQUIREMENTS:
        assert rid in reqs, rid
        control, cci = GUIDE_CONTROLS[rid]
        assert reqs[rid].ia_control == control, rid
        assert reqs[rid].cci == (cci,), rid


def test_guide_requirement_titles_come_from_the_seed(seed_guide: str) -> None:
    reqs = load_catalog().requirements
    for rid in GUIDE_REQUIREMENTS:
        section = rid.removeprefix("CICDG-")
        heading = re.search(rf"^#+ \**{re.escape(section)} (.+?)\**\s*$", seed_guide, re.MULTILINE)
        assert heading, f"section {section} not found in the guide"
        assert reqs[rid].title.lower().rstrip(".") == heading.group(1).strip("* .").lower()


def test_pss_restricted_controls_are_all_present() -> None:
    reqs = load_catalog().requirements
    expected = {
        "PSS-host-process", "PSS-host-namespaces", "PSS-privileged", "PSS-capabilities", "PSS-host-path-volumes",
        "PSS-host-ports", "PSS-apparmor", "PSS-selinux", "PSS-proc-mount", "PSS-seccomp", "PSS-sysctls",
        "PSS-volume-types", "PSS-privilege-escalation", "PSS-running-as-non-root", "PSS-running-as-non-root-user",
    }  # fmt: skip
    assert expected == {r for r in reqs if r.startswith("PSS-")}


def test_process_only_requirements_are_flagged() -> None:
    reqs = load_catalog().requirements
    assert {r.id for r in reqs.values() if r.process_only} == {"CICDG-2.15", "CICDG-2.16", "CICDG-3.3"}


def test_every_check_has_exactly_one_implementation_and_vice_versa() -> None:
    catalog = load_catalog()
    images = image_checks()
    from factorygate.audit.cluster import CLUSTER_CHECKS

    implemented = set(WORKLOAD_CHECKS) | set(BUNDLE_CHECKS) | set(DOCKERFILE_CHECKS) | set(images) | set(CLUSTER_CHECKS)
    implemented |= set(ADMISSION_CHECKS)
    assert implemented == set(catalog.checks)
    assert len(implemented) == (
        len(WORKLOAD_CHECKS)
        + len(BUNDLE_CHECKS)
        + len(DOCKERFILE_CHECKS)
        + len(images)
        + len(CLUSTER_CHECKS)
        + len(ADMISSION_CHECKS)
    )
    for cid in ADMISSION_CHECKS:
        assert catalog.checks[cid].subject is SubjectKind.IMAGE
    for cid in CLUSTER_CHECKS:
        assert catalog.checks[cid].subject is SubjectKind.KUBERNETES_CLUSTER
    for cid in images:
        assert catalog.checks[cid].subject is SubjectKind.IMAGE
    for cid in DOCKERFILE_CHECKS:
        assert catalog.checks[cid].subject is SubjectKind.DOCKERFILE
    for cid in WORKLOAD_CHECKS:
        assert catalog.checks[cid].subject is SubjectKind.KUBERNETES_WORKLOAD
    for cid in BUNDLE_CHECKS:
        assert catalog.checks[cid].subject is SubjectKind.KUBERNETES_BUNDLE


def test_checks_carry_the_controls_of_their_requirements() -> None:
    catalog = load_catalog()
    for check in catalog.checks.values():
        for rid in check.requirements:
            req = catalog.requirements[rid]
            assert req.ia_control in check.nist
            assert set(req.cci) <= set(check.cci)


def test_every_manifest_or_dockerfile_automatable_guide_requirement_has_a_check() -> None:
    catalog = load_catalog()
    kinds = {"manifest": {SubjectKind.KUBERNETES_WORKLOAD, SubjectKind.KUBERNETES_BUNDLE},
             "dockerfile": {SubjectKind.DOCKERFILE}}  # fmt: skip
    for rid in GUIDE_REQUIREMENTS:
        req = catalog.requirements[rid]
        for kind, subjects in kinds.items():
            if kind in req.automation:
                assert any(c.subject in subjects for c in catalog.checks_for(rid)), f"{rid}: no {kind} check"


def test_check_reference_doc_is_generated_from_the_catalog() -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts/gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_packaged_catalog_validates_against_its_strict_schema() -> None:
    load_catalog.cache_clear()
    validated = load_catalog(validate=True)
    assert validated == load_catalog()


def test_the_schema_rejects_a_broken_catalog() -> None:
    import pytest

    from factorygate.catalog.schema import validate
    from factorygate.errors import CatalogError

    good_reqs = {"schema_version": 1, "sources": {}, "requirements": []}
    with pytest.raises(CatalogError, match="severity"):
        validate(good_reqs, {"schema_version": 1, "checks": [{
            "id": "k8s-x-y", "subject": "kubernetes-workload", "requirements": ["CICDG-3.7"], "severity": "dire",
            "title": "t", "description": "d", "remediation": "r",
        }]})  # fmt: skip


def _catalog_copy(tmp_path: Path) -> None:
    import shutil

    from factorygate.catalog import loader

    for name in (*loader.SOURCES, loader.COMPILED):
        shutil.copy(Path(loader._HERE) / name, tmp_path / name)


def test_the_compiled_catalog_is_read_when_it_matches_the_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from factorygate.catalog import loader

    _catalog_copy(tmp_path)
    compiled = json.loads((tmp_path / loader.COMPILED).read_text(encoding="utf-8"))
    compiled["checks"]["checks"][0]["title"] = "Read from catalog.json"
    (tmp_path / loader.COMPILED).write_text(json.dumps(compiled), encoding="utf-8")
    monkeypatch.setattr(loader, "_HERE", str(tmp_path))
    monkeypatch.delenv("FACTORYGATE_VALIDATE_CATALOG")  # the tests validate (read the YAML) by default
    load_catalog.cache_clear()
    try:
        first = next(iter(load_catalog().checks.values()))
        assert first.title == "Read from catalog.json"
    finally:
        load_catalog.cache_clear()


def test_a_stale_compiled_catalog_gives_way_to_the_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from factorygate.catalog import loader

    _catalog_copy(tmp_path)
    text = (tmp_path / "checks.yaml").read_text(encoding="utf-8")
    old = "title: Containers do not mount a container runtime socket"
    assert old in text
    (tmp_path / "checks.yaml").write_text(text.replace(old, "title: Edited in the YAML", 1), encoding="utf-8")
    monkeypatch.setattr(loader, "_HERE", str(tmp_path))
    monkeypatch.delenv("FACTORYGATE_VALIDATE_CATALOG")
    load_catalog.cache_clear()
    try:
        assert load_catalog().checks["k8s-no-container-runtime-socket"].title == "Edited in the YAML"
        (tmp_path / loader.COMPILED).unlink()  # a missing compiled catalog: the YAML too
        load_catalog.cache_clear()
        assert load_catalog().checks["k8s-no-container-runtime-socket"].title == "Edited in the YAML"
    finally:
        load_catalog.cache_clear()
