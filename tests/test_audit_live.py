"""`factorygate audit` against a live API: the real Kubernetes client, through a kubeconfig, over verified
TLS to a recorded API server on 127.0.0.1 (tests/kube_api_server.py): chunked lists, 403, 404, 410, several
contexts, --watch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import ROOT
from tests.kube_api_server import KubeApiServer, write_kubeconfig

from factorygate.audit.kinds import ApiKind
from factorygate.cli import main

SNAPSHOT = ROOT / "examples" / "cluster" / "snapshot.yaml"  # also the main job's example
PEER_AUTH = ApiKind("security.istio.io", "v1beta1", "peerauthentications", "PeerAuthentication", True)


def _items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = yaml.safe_load(SNAPSHOT.read_text())["items"]
    return items


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KubeApiServer]:
    s = KubeApiServer(tmp_path / "prod", _items())
    yield s
    s.stop()


def _audit(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(["audit", *argv, "-f", "json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def _keys(report: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {
        (f["check"], f["status"], json.dumps(f.get("resource")), f.get("container") or "")
        for f in report["findings"]
        if f["check"] != "audit-coverage"
    }


def test_live_audit_pages_through_lists_and_matches_the_snapshot(
    server: KubeApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kc = write_kubeconfig(tmp_path / "kubeconfig", {"prod": server})
    code, live, _ = _audit(capsys, "--kubeconfig", str(kc), "--page-size", "2")
    assert code == 1
    pods = [r for r in server.requests if r.startswith("/api/v1/pods")]
    assert pods[0] == "/api/v1/pods?limit=2"
    assert len(pods) == 5  # 9 pods, 2 a page
    assert all("continue=" in r for r in pods[1:])
    [cluster] = live["audit"]["clusters"]
    assert cluster["cluster"] == "prod"
    assert cluster["source"] == "live"
    assert cluster["pods"] == 9
    assert cluster["coverage"]["forbidden"] == {}
    assert "PeerAuthentication.security.istio.io" in cluster["coverage"]["not_served"]  # 404: CRD not installed
    assert {f["location"]["file"] for f in live["findings"]} == {"prod"}  # the location names the cluster
    assert not [r for r in server.requests if "secrets" in r or "configmaps" in r]  # never reads secret material
    code, snap, _ = _audit(capsys, "--snapshot", str(SNAPSHOT))
    assert _keys(live) == _keys(snap)  # the same checks, the same verdicts, live or saved


def test_forbidden_kind_is_a_coverage_gap_never_a_pass(
    server: KubeApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.forbid("clusterrolebindings", "networkpolicies")
    kc = write_kubeconfig(tmp_path / "kubeconfig", {"prod": server})
    code, report, err = _audit(capsys, "--kubeconfig", str(kc))
    assert code == 2
    [cluster] = report["audit"]["clusters"]
    assert set(cluster["coverage"]["forbidden"]) == {
        "ClusterRoleBinding.rbac.authorization.k8s.io",
        "NetworkPolicy.networking.k8s.io",
    }
    assert "403 Forbidden" in cluster["coverage"]["forbidden"]["NetworkPolicy.networking.k8s.io"]
    checks = {f["check"] for f in report["findings"]}
    assert not checks & {
        "cluster-rbac-cluster-admin",
        "cluster-rbac-default-service-account",
        "k8s-network-policy-coverage",
    }
    reqs = {r["id"]: r["status"] for r in report["requirements"]}
    assert reqs["CK-microsegmentation"] == "error"
    assert reqs["V-242381"] == "error"
    assert reqs["V-233162"] == "fail"  # the wildcard role is still seen: ClusterRoles were readable
    gaps = [f for f in report["findings"] if f["check"] == "audit-coverage"]
    assert len(gaps) == 2
    assert all(f["status"] == "error" and f["location"]["file"] == "prod" for f in gaps)
    assert "factorygate: error: prod: coverage gap: ClusterRoleBinding" in err


def test_expired_continue_token_restarts_the_list(
    server: KubeApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.expire_continue("pods", 2)
    kc = write_kubeconfig(tmp_path / "kubeconfig", {"prod": server})
    code, report, _ = _audit(capsys, "--kubeconfig", str(kc), "--page-size", "4")
    assert code == 1
    assert report["audit"]["clusters"][0]["pods"] == 9  # every pod once, none twice
    pods = [r for r in server.requests if r.startswith("/api/v1/pods")]
    assert pods.count("/api/v1/pods?limit=4") == 3  # the first list, then two restarts without continue


def test_continue_token_that_keeps_expiring_is_an_error_not_a_partial_list(
    server: KubeApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.expire_continue("pods", 1000)
    kc = write_kubeconfig(tmp_path / "kubeconfig", {"prod": server})
    code, report, _ = _audit(capsys, "--kubeconfig", str(kc), "--page-size", "4")
    assert code == 2
    errors = report["audit"]["clusters"][0]["coverage"]["errors"]
    assert errors == ["prod: /api/v1/pods: the continue token expired 4 times (410 Gone)"]
    assert len([r for r in server.requests if r.startswith("/api/v1/pods")]) == 8  # bounded: 4 lists of 2 pages


def test_installed_crd_is_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mesh = {
        "apiVersion": "security.istio.io/v1beta1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "istio-system"},
        "spec": {"mtls": {"mode": "STRICT"}},
    }
    s = KubeApiServer(tmp_path / "mesh", [*_items(), mesh], served=[PEER_AUTH])
    try:
        kc = write_kubeconfig(tmp_path / "kubeconfig", {"mesh": s})
        _, report, _ = _audit(capsys, "--kubeconfig", str(kc))
    finally:
        s.stop()
    cluster = report["audit"]["clusters"][0]
    assert "PeerAuthentication.security.istio.io" not in cluster["coverage"]["not_served"]
    assert any(r.startswith("/apis/security.istio.io/v1beta1/peerauthentications?limit=") for r in s.requests)
    mesh_row = next(r for r in cluster["conformance"] if r["capability"] == "service-mesh-mtls")
    assert any("PeerAuthentication" in e or "STRICT" in e for e in mesh_row["evidence"])


def test_several_contexts_are_keyed_by_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = _items()
    a = KubeApiServer(tmp_path / "a", items)
    b = KubeApiServer(tmp_path / "b", [i for i in items if i["metadata"].get("namespace") != "kube-system"])
    try:
        kc = write_kubeconfig(tmp_path / "kubeconfig", {"east": a, "west": b})
        code, report, _ = _audit(capsys, "--kubeconfig", str(kc), "--context", "east", "--context", "west")
    finally:
        a.stop()
        b.stop()
    assert code == 1
    assert [c["cluster"] for c in report["audit"]["clusters"]] == ["east", "west"]
    assert report["inputs"] == ["east", "west"]
    miner = {f["location"]["file"] for f in report["findings"] if (f.get("resource") or {}).get("name") == "miner"}
    assert miner == {"east"}
    web = {f["location"]["file"] for f in report["findings"] if (f.get("resource") or {}).get("name") == "web"}
    assert web == {"east", "west"}


def test_namespaces_limit_the_namespaced_lists(
    server: KubeApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kc = write_kubeconfig(tmp_path / "kubeconfig", {"prod": server})
    _, report, _ = _audit(capsys, "--kubeconfig", str(kc), "-n", "team-a", "-n", "team-b")
    assert "/api/v1/namespaces/team-a/pods?limit=500" in server.requests
    assert "/api/v1/namespaces/team-b/pods?limit=500" in server.requests
    assert not [r for r in server.requests if r.startswith("/api/v1/pods")]
    assert report["audit"]["clusters"][0]["pods"] == 6
    namespaces = {(f.get("resource") or {}).get("namespace") for f in report["findings"]}
    assert namespaces <= {"team-a", "team-b", None}


def test_watch_prints_only_what_changed(
    server: KubeApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    kc = write_kubeconfig(tmp_path / "kubeconfig", {"prod": server})

    def fix_the_cluster(seconds: float) -> None:  # between the audits, the miner pod is deleted
        assert seconds == 0.5
        pods = server.recorded.collections["/api/v1/pods"][1]
        pods[:] = [p for p in pods if p["metadata"]["name"] != "miner"]

    from factorygate.audit import commands

    monkeypatch.setattr(commands.time, "sleep", fix_the_cluster)
    code = main(["audit", "--kubeconfig", str(kc), "--watch", "0.5", "--watch-count", "2"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert "audit 1:" in out[0]
    assert "(baseline)" in out[0]
    second = next(i for i, line in enumerate(out) if "audit 2:" in line)
    baseline = out[1:second]
    miner = [line for line in baseline if "kube-system/miner" in line]
    assert any("FAIL cluster-system-namespaces Pod kube-system/miner" in line for line in miner)
    assert out[second].endswith(f"audit 2: 0 new, {len(miner)} resolved")
    changes = out[second + 1 :]
    assert sorted(line.replace("  - ", "  = ") for line in changes) == sorted(miner)  # only what changed


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("unreachable", "cannot reach the API server"),
        ("wrong-ca", "certificate verify failed"),
        ("no-context", "no context named 'staging'"),
        ("garbage", "kubeconfig"),
    ],
)
def test_cluster_that_cannot_be_read_is_a_one_line_error(
    server: KubeApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: str, expected: str
) -> None:
    kc = write_kubeconfig(tmp_path / "kubeconfig", {"prod": server})
    args = ["--kubeconfig", str(kc), "--request-timeout", "5"]
    if setup == "unreachable":
        server.stop()
    elif setup == "wrong-ca":
        other = KubeApiServer(tmp_path / "other", [])
        doc = json.loads(kc.read_text())
        doc["clusters"][0]["cluster"]["certificate-authority-data"] = json.loads(
            write_kubeconfig(tmp_path / "k2", {"x": other}).read_text()
        )["clusters"][0]["cluster"]["certificate-authority-data"]
        kc.write_text(json.dumps(doc))
        other.stop()
    elif setup == "no-context":
        args += ["--context", "staging"]
    else:
        kc.write_text("clusters: [1, 2\n")
    code = main(["audit", *args])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("factorygate: ")
    assert expected in lines[0]
    assert out == ""


def test_wrong_token_is_reported_as_unauthorized(
    server: KubeApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kc = write_kubeconfig(tmp_path / "kubeconfig", {"prod": server})
    kc.write_text(kc.read_text().replace("kube-api-test-token", "stolen"))
    code, report, _ = _audit(capsys, "--kubeconfig", str(kc))
    assert code == 2
    forbidden = report["audit"]["clusters"][0]["coverage"]["forbidden"]
    assert forbidden["Pod"].startswith("401 Unauthorized")
    assert "stolen" not in json.dumps(report)  # no secrets in reports


@pytest.mark.parametrize(
    "case",
    [
        ({"insecure-skip-tls-verify": True}, [], "disables TLS verification"),
        ({"server": "http://10.0.0.1:8080"}, ["--allow-http-loopback"], "only loopback may use plain HTTP"),
        ({"server": "http://127.0.0.1:1"}, [], "pass --allow-http-loopback"),
    ],
)
def test_insecure_transport_is_refused_before_any_request(
    server: KubeApiServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: tuple[dict[str, Any], list[str], str],
) -> None:
    change, flags, expected = case
    kc = write_kubeconfig(tmp_path / "kubeconfig", {"prod": server})
    doc = json.loads(kc.read_text())
    doc["clusters"][0]["cluster"].update(change)
    if "insecure-skip-tls-verify" in change:
        del doc["clusters"][0]["cluster"]["certificate-authority-data"]
    kc.write_text(json.dumps(doc))
    code = main(["audit", "--kubeconfig", str(kc), *flags])
    _, err = capsys.readouterr()
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1
    assert server.requests == []
