"""`factorygate audit manifests`: the in-cluster CronJob and its read-only RBAC pass factorygate's own checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import run_cli

from factorygate.audit.kinds import CORE_KINDS
from factorygate.audit.manifests import AuditManifestOptions, ManifestError, render_manifests
from factorygate.audit.run import extra_kinds
from factorygate.catalog import load_catalog

PINNED = "registry1.dso.mil/factorygate/factorygate@sha256:" + "0" * 64


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


def test_manifests_pass_every_kubernetes_check(tmp_path: Path) -> None:
    path = tmp_path / "audit.yaml"
    path.write_text(render_manifests(AuditManifestOptions(image=PINNED)), encoding="utf-8")
    proc = run_cli("scan", str(path), "-f", "json")
    report = json.loads(proc.stdout)
    assert [(f["check"], f["message"]) for f in report["findings"] if f["status"] != "pass"] == []
    assert report["summary"]["workloads"] == 1
    k8s = {c for c in load_catalog().checks if c.startswith("k8s-")}
    probes = {"k8s-liveness-probe", "k8s-readiness-probe"}  # a Job runs to completion: no probes apply
    assert {f["check"] for f in report["findings"]} == k8s - probes


def test_manifests_pass_the_cluster_checks_when_audited(tmp_path: Path) -> None:
    path = tmp_path / "audit.yaml"
    path.write_text(render_manifests(AuditManifestOptions(image=PINNED)), encoding="utf-8")
    proc = run_cli("audit", "--snapshot", str(path), "-f", "json")
    report = json.loads(proc.stdout)
    cluster = [f for f in report["findings"] if f["check"].startswith("cluster-")]
    ran = {f["check"] for f in cluster}
    # every cluster check with something to look at ran (no workload in a system namespace, no cluster-admin binding)
    assert ran == {
        "cluster-default-namespaces",
        "cluster-privileged-host-ports",
        "cluster-secrets-in-env",
        "cluster-pod-security-labels",
        "cluster-no-dashboard",
        "cluster-rbac-wildcards",
        "cluster-rbac-default-service-account",
    }
    assert [(f["check"], f["message"]) for f in cluster if f["status"] != "pass"] == []
    assert [(f["check"], f["message"]) for f in report["findings"] if f["status"] == "fail"] == []


def test_cluster_role_is_read_only_and_covers_every_listed_kind() -> None:
    docs = _docs(render_manifests(AuditManifestOptions(image=PINNED)))
    role = _one(docs, "ClusterRole")
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert all(rule["verbs"] == ["get", "list", "watch"] for rule in role["rules"])
    assert not {r for _, r in granted} & {"secrets", "configmaps", "*"}
    listed = {(k.group, k.plural) for k in CORE_KINDS} | {
        (str(getattr(k, "group", "")), str(getattr(k, "plural", ""))) for k in extra_kinds()
    }
    assert granted == listed
    binding = _one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "factorygate-audit", "namespace": "factorygate-audit"}
    ]


def test_cron_job_runs_the_audit_in_cluster_and_logs_the_report() -> None:
    docs = _docs(render_manifests(AuditManifestOptions(image=PINNED, schedule="0 3 * * *", report_format="text")))
    cron = _one(docs, "CronJob")
    assert cron["spec"]["schedule"] == "0 3 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"][:4] == ["audit", "--in-cluster", "--format", "text"]
    assert "--output" not in container["args"]  # the report goes to stdout: the job's log
    assert pod["serviceAccountName"] == "factorygate-audit"
    policy = _one(docs, "ConfigMap")["data"]["policy.yaml"]
    assert "checks" in policy or "threshold" in policy


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"namespace": "Bad_NS"}, "DNS-1123"),
        ({"schedule": "every day"}, "cron schedule"),
        ({"image": "has space"}, "image"),
        ({"report_format": "pdf"}, "report format"),
    ],
)
def test_bad_options_are_clear_errors(options: dict[str, str], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        AuditManifestOptions(**options)


def test_cli_prints_manifests_and_warns_about_a_tag_only_image(tmp_path: Path) -> None:
    proc = run_cli("audit", "manifests", "-n", "audit-system", "--image", PINNED)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    docs = _docs(proc.stdout)
    assert _one(docs, "Namespace")["metadata"]["name"] == "audit-system"
    proc = run_cli("audit", "manifests")
    assert proc.returncode == 0
    assert "pin it by digest" in proc.stderr
    proc = run_cli("audit", "manifests", "--schedule", "nope")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "factorygate: schedule 'nope': not a cron schedule of five fields"
