"""`factorygate audit --snapshot`: kubectl-shaped snapshots, pods folded into controllers, cluster checks,
coverage, and the audit sections of every report format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import ROOT, run_cli

from factorygate.audit.inventory import Inventory, kind_key
from factorygate.audit.run import audit
from factorygate.audit.snapshot import read_snapshot
from factorygate.audit.workloads import fold
from factorygate.catalog import load_catalog
from factorygate.engine import Engine
from factorygate.model import Status
from factorygate.policy import default_policy_text, parse_policy

SNAPSHOT = ROOT / "examples" / "cluster" / "snapshot.yaml"  # also the main job's example
SCHEMA = json.loads((ROOT / "src" / "factorygate" / "schemas" / "report-v1.schema.json").read_text())


def _engine() -> Engine:
    catalog = load_catalog()
    return Engine(catalog, parse_policy(default_policy_text(), "policy.yaml", set(catalog.checks)))


def _items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = yaml.safe_load(SNAPSHOT.read_text())["items"]
    return items


def _failing(result: Any, check: str) -> set[str]:
    return {f.resource.display() for f in result.findings if f.check == check and f.status is Status.FAIL}


def _passing(result: Any, check: str) -> set[str]:
    return {f.resource.display() for f in result.findings if f.check == check and f.status is Status.PASS}


@pytest.fixture(scope="module")
def result() -> Any:
    return audit(_engine(), [(read_snapshot(str(SNAPSHOT)), "snapshot")])


# -- reading ----------------------------------------------------------------------------------------
def test_kind_key_names_the_group() -> None:
    assert kind_key("v1", "Namespace") == "Namespace"
    assert kind_key("apps/v1", "DaemonSet") == "DaemonSet.apps"
    assert kind_key("security.istio.io/v1beta1", "PeerAuthentication") == "PeerAuthentication.security.istio.io"
    assert Inventory("c").of("Pod") == []


def test_yaml_json_and_directory_snapshots_read_the_same_objects(tmp_path: Path) -> None:
    items = _items()
    (tmp_path / "all.json").write_bytes(orjson.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    pods = [i for i in items if i["kind"] == "Pod"]
    rest = [i for i in items if i["kind"] != "Pod"]
    (d / "pods.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": pods}))
    (d / "sub" / "rest.yml").write_text(yaml.safe_dump_all(rest))  # a stream of objects, not a List
    (d / "notes.txt").write_text("not read")
    counts = []
    for path in (SNAPSHOT, tmp_path / "all.json", d):
        inv = read_snapshot(str(path))
        assert inv.errors == []
        counts.append({k: len(v) for k, v in inv.objects.items()})
    assert counts[0] == counts[1] == counts[2]
    assert counts[0]["Pod"] == 9
    assert counts[0]["ClusterRoleBinding.rbac.authorization.k8s.io"] == 2


def test_yaml_items_keep_their_line_for_findings() -> None:
    inv = read_snapshot(str(SNAPSHOT))
    lines = SNAPSHOT.read_text().splitlines()
    for obj in inv.of("Deployment.apps"):
        file, line = inv.origin(obj)
        assert file == str(SNAPSHOT)
        assert line is not None
        assert lines[line - 1].lstrip().startswith("- apiVersion: apps/v1")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"apiVersion: v1\nkind: List\nitems: [\n", "not valid YAML"),
        (b"just: a mapping\n", "no Kubernetes object"),
        (b"\x00\x01binary", "not a text file"),
        (b"[" * 2000, "nest"),
        (b"a: &a [*a]\n", "alias"),
    ],
)
def test_malformed_snapshots_are_one_line_errors_and_other_files_still_count(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    (tmp_path / "a-bad.yaml").write_bytes(content)
    (tmp_path / "b-good.yaml").write_text(SNAPSHOT.read_text())
    inv = read_snapshot(str(tmp_path))
    assert len(inv.errors) == 1
    assert inv.errors[0].startswith(str(tmp_path / "a-bad.yaml"))
    assert expected in inv.errors[0].lower() or expected in inv.errors[0]
    assert "\n" not in inv.errors[0]
    assert len(inv.of("Pod")) == 9


def test_empty_list_is_a_valid_snapshot_and_missing_path_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("apiVersion: v1\nitems: []\nkind: List\n")
    assert read_snapshot(str(tmp_path / "empty.yaml")).errors == []
    missing = read_snapshot(str(tmp_path / "nope"))
    assert missing.errors == [f"{tmp_path / 'nope'}: no such file or directory"]


def test_cli_reports_unreadable_snapshot_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("items: [")
    proc = run_cli("audit", "--snapshot", str(bad), "--snapshot", str(SNAPSHOT), "-f", "json")
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    errors = [f for f in report["findings"] if f["status"] == "error"]
    assert len(errors) == 1
    assert errors[0]["message"].startswith(str(bad))
    assert any(f["status"] == "fail" for f in report["findings"])  # the good snapshot was still audited
    assert f"factorygate: error: {bad}" in proc.stderr


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.dictionaries(st.sampled_from(["apiVersion", "kind", "metadata", "spec", "status", "items"]),
                                _values, max_size=6), max_size=5), st.booleans())  # fmt: skip
def test_any_document_shape_reads_and_audits_without_crashing(tmp_path: Path, docs: list[Any], as_json: bool) -> None:
    path = tmp_path / ("s.json" if as_json else "s.yaml")
    if as_json:
        path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))  # big ints too
    else:
        path.write_text(yaml.safe_dump_all(docs) if docs else "")
    inv = read_snapshot(str(path))
    assert all("\n" not in e for e in inv.errors)
    result = audit(_engine(), [(inv, "snapshot")])
    assert not [f for f in result.findings if f.message.startswith("check crashed")]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["Pod", "ReplicaSet", "Deployment", "Job", "CronJob", "Node", "Custom"]),
                          st.integers(0, 5), st.booleans()), max_size=12))  # fmt: skip
def test_any_owner_graph_folds_every_pod_exactly_once(edges: list[tuple[str, int, bool]]) -> None:
    """Owner chains of any shape (cycles, dangling owners, unknown kinds) never lose or duplicate a pod."""
    api = {"Pod": "v1", "ReplicaSet": "apps/v1", "Deployment": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1"}
    inv = Inventory("c")
    for i, (kind, owner, controller) in enumerate(edges):
        if kind not in api:
            continue
        refs = [
            {"kind": edges[owner % len(edges)][0], "name": f"o{owner}", "uid": f"u{owner}", "controller": controller}
        ]
        inv.add({"apiVersion": api[kind], "kind": kind, "metadata": {"name": f"o{i}", "uid": f"u{i}", "namespace": "n",
                                                                     "ownerReferences": refs}})  # fmt: skip
    groups = fold(inv)
    pods = [p["metadata"]["name"] for g in groups for p in g.pods]
    assert sorted(pods) == sorted(p["metadata"]["name"] for p in inv.of("Pod"))
    assert len({(g.namespace, g.kind, g.name) for g in groups}) == len(groups)


# -- folding ----------------------------------------------------------------------------------------
def test_pods_are_reported_once_at_their_root_controller() -> None:
    groups = {(g.kind, g.namespace, g.name): g for g in fold(read_snapshot(str(SNAPSHOT)))}
    assert {k: len(g.pods) for k, g in groups.items()} == {
        ("Deployment", "team-a", "web"): 2,  # Pod -> ReplicaSet -> Deployment
        ("DaemonSet", "team-b", "agent"): 3,
        ("CronJob", "team-b", "backup"): 1,  # Pod -> Job -> CronJob
        ("Deployment", "kube-system", "coredns"): 0,  # no pods: still evaluated
        ("Deployment", "kubernetes-dashboard", "kubernetes-dashboard"): 0,
        ("Pod", "default", "debug"): 1,
        ("Pod", "kube-system", "miner"): 1,
        ("Pod", "kube-system", "kube-apiserver-node1"): 1,  # a static pod: owned by its Node, its own root
    }
    agent = groups[("DaemonSet", "team-b", "agent")]
    assert agent.obj is not None
    assert agent.running_images() == {
        "agent": ["quay.io/acme/agent@sha256:" + "d" * 64, "quay.io/acme/agent@sha256:" + "e" * 64]
    }


def test_a_pod_whose_owner_cannot_be_read_is_grouped_under_it() -> None:
    inv = read_snapshot(str(SNAPSHOT))
    inv.objects.pop("ReplicaSet.apps")  # as when ReplicaSets are forbidden
    web = [g for g in fold(inv) if g.namespace == "team-a"]
    assert [(g.kind, g.name, len(g.pods), g.obj is None) for g in web] == [
        ("Deployment", "web", 0, False),
        ("ReplicaSet", "web-5d9f", 2, True),
    ]
    assert web[1].subject["kind"] == "Pod"


def test_workload_findings_carry_pod_count_and_running_digest(result: Any) -> None:
    digest = [f for f in result.findings if f.check == "k8s-image-digest" and f.resource.name == "agent"]
    assert len(digest) == 1  # the DaemonSet once, not each of its 3 pods
    assert "[3 pods]" in digest[0].message
    assert "running quay.io/acme/agent@sha256:dddd" in digest[0].message
    assert "quay.io/acme/agent@sha256:eeee" in digest[0].message
    assert not [f for f in result.findings if f.resource and f.resource.kind == "ReplicaSet"]
    assert not [f for f in result.findings if f.resource and f.resource.name.startswith("agent-")]


# -- cluster checks ---------------------------------------------------------------------------------
def test_user_resources_in_default_namespaces(result: Any) -> None:
    assert _failing(result, "cluster-default-namespaces") == {"Pod default/debug", "Service default/legacy"}
    assert _passing(result, "cluster-default-namespaces") == {"Namespace kube-public", "Namespace kube-node-lease"}


def test_user_workloads_in_system_namespaces(result: Any) -> None:
    assert _failing(result, "cluster-system-namespaces") == {"Pod kube-system/miner"}
    assert _passing(result, "cluster-system-namespaces") == {
        "Deployment kube-system/coredns",
        "Pod kube-system/kube-apiserver-node1",
    }


def test_privileged_host_ports_and_secrets_in_env(result: Any) -> None:
    assert _failing(result, "cluster-privileged-host-ports") == {"DaemonSet team-b/agent"}
    [env] = [f for f in result.findings if f.check == "cluster-secrets-in-env" and f.status is Status.FAIL]
    assert env.resource.display() == "DaemonSet team-b/agent"
    assert "TOKEN from agent-token" in env.message
    assert "all keys of agent-env" in env.message
    assert env.requirements == ("V-242415",)
    assert env.cci == ("CCI-000196", "CCI-004062")
    assert env.nist == ("IA-5 (1) (c)",)


def test_pod_security_labels_on_every_namespace(result: Any) -> None:
    assert _failing(result, "cluster-pod-security-labels") == {
        "Namespace default",
        "Namespace kube-system",
        "Namespace team-b",
    }
    assert _passing(result, "cluster-pod-security-labels") == {"Namespace team-a", "Namespace kubernetes-dashboard"}


def test_dashboard_and_rbac(result: Any) -> None:
    assert _failing(result, "cluster-no-dashboard") == {"Deployment kubernetes-dashboard/kubernetes-dashboard"}
    assert _failing(result, "cluster-rbac-cluster-admin") == {"ClusterRoleBinding alice-admin"}
    assert _passing(result, "cluster-rbac-cluster-admin") == {"ClusterRoleBinding cluster-admin"}
    assert _failing(result, "cluster-rbac-wildcards") == {"ClusterRole ops-all"}  # cluster-admin is built in
    assert _failing(result, "cluster-rbac-default-service-account") == {"ServiceAccount team-b/default"}
    assert _passing(result, "cluster-rbac-default-service-account") == {"ServiceAccount team-a/default"}


def test_clean_cluster_passes_the_cluster_checks() -> None:
    inv = Inventory("clean")
    inv.add({"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": "app", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})  # fmt: skip
    inv.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default"}})
    inv.add({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "app"},
             "automountServiceAccountToken": False})  # fmt: skip
    inv.listed = set(inv.objects)
    result = audit(_engine(), [(inv, "live")])
    cluster = [f for f in result.findings if f.check.startswith("cluster-")]
    assert cluster
    assert all(f.status is Status.PASS for f in cluster), [f.message for f in cluster if f.status is not Status.PASS]


def test_cluster_check_passes_are_never_claimed_from_kinds_a_snapshot_lacks(tmp_path: Path) -> None:
    pods_only = tmp_path / "pods.yaml"
    items = [i for i in _items() if i["kind"] == "Pod"]
    pods_only.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    result = audit(_engine(), [(read_snapshot(str(pods_only)), "snapshot")])
    ran = {f.check for f in result.findings}
    assert not ran & {"cluster-rbac-cluster-admin", "cluster-rbac-wildcards", "cluster-pod-security-labels",
                      "k8s-network-policy-coverage"}  # fmt: skip
    section = result.clusters[0]
    assert set(section.not_evaluated) == {
        "cluster-rbac-cluster-admin",
        "cluster-rbac-wildcards",
        "cluster-rbac-default-service-account",
        "cluster-pod-security-labels",
        "k8s-network-policy-coverage",
    }
    from factorygate.engine import requirement_statuses

    statuses = requirement_statuses(result)
    assert statuses["V-233162"] == statuses["V-254800"] == "not_reviewed"  # never a pass, nor "not applicable"
    assert statuses["V-242417"] == "fail"


def test_namespace_filter_applies_to_snapshots() -> None:
    proc = run_cli("audit", "--snapshot", str(SNAPSHOT), "-n", "team-a", "-f", "json")
    report = json.loads(proc.stdout)
    namespaces = {f["resource"]["namespace"] for f in report["findings"] if f.get("resource")}
    assert namespaces <= {"team-a", None}
    assert report["audit"]["clusters"][0]["workloads"][0]["name"] == "web"


# -- report formats ---------------------------------------------------------------------------------
def test_json_report_has_the_audit_section_and_matches_the_schema() -> None:
    proc = run_cli("audit", "--snapshot", str(SNAPSHOT), "-f", "json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    jsonschema.validate(report, SCHEMA)
    [cluster] = report["audit"]["clusters"]
    assert cluster["cluster"] == str(SNAPSHOT)
    assert cluster["source"] == "snapshot"
    assert cluster["pods"] == 9
    assert {(w["kind"], w["name"], w["pods"]) for w in cluster["workloads"]} >= {("DaemonSet", "agent", 3)}
    reqs = {r["id"]: r for r in report["requirements"]}
    assert reqs["V-242383"]["status"] == "fail"
    assert reqs["V-242383"]["cci"] == ["CCI-000366"]
    assert reqs["V-242383"]["ia_control"] == "CM-6 b"
    assert all(f["location"]["file"] == str(SNAPSHOT) for f in report["findings"])


def test_scan_reports_do_not_claim_cluster_requirements(tmp_path: Path) -> None:
    manifest = tmp_path / "d.yaml"
    manifest.write_text(yaml.safe_dump(_items()[5]))
    report = json.loads(run_cli("scan", str(manifest), "-f", "json").stdout)
    reqs = {r["id"]: r["status"] for r in report["requirements"]}
    assert reqs["V-242383"] == "not_reviewed"
    assert "audit" not in report


def test_text_html_and_ckl_show_the_audit() -> None:
    text = run_cli("audit", "--snapshot", str(SNAPSHOT), "--color", "never").stdout
    assert f"Cluster {SNAPSHOT} (snapshot): 8 workloads running 9 pods" in text
    html = run_cli("audit", "--snapshot", str(SNAPSHOT), "-f", "html").stdout
    assert 'id="audit"' in html
    assert "Clusters audited" in html
    ckl = run_cli("audit", "--snapshot", str(SNAPSHOT), "-f", "ckl").stdout
    import xml.etree.ElementTree as ET

    root = ET.fromstring(ckl)
    stigs = [
        {d.findtext("SID_NAME"): d.findtext("SID_DATA") for d in i.iter("SI_DATA")}["stigid"]
        for i in root.iter("iSTIG")
    ]
    assert "Kubernetes_STIG" in stigs
    k8s = next(i for i in root.iter("iSTIG") if "Kubernetes_STIG" in ET.tostring(i, encoding="unicode"))
    vulns = {
        {s.findtext("VULN_ATTRIBUTE"): s.findtext("ATTRIBUTE_DATA") for s in v.iter("STIG_DATA")}[
            "Vuln_Num"
        ]: v.findtext("STATUS")
        for v in k8s.iter("VULN")
    }
    assert vulns["V-242383"] == "Open"
    assert vulns["V-242395"] == "Open"


def test_large_json_snapshot_is_read_item_by_item_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from factorygate.audit import snapshot

    items = _items() * 3
    doc = {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}
    big = tmp_path / "big.json"
    big.write_text(json.dumps(doc, indent=4))  # kubectl's indent
    whole = {k: len(v) for k, v in read_snapshot(str(big)).objects.items()}
    monkeypatch.setattr(snapshot, "STREAM_JSON_BYTES", 1000)  # the item-by-item reader from 1 kB on
    inv = read_snapshot(str(big))
    assert inv.errors == []
    assert {k: len(v) for k, v in inv.objects.items()} == whole
    assert whole["Pod"] == 27
    single = tmp_path / "one.json"
    single.write_text(json.dumps(items[5], indent=2) + "\n" + " " * 2000)  # one object, not a List
    assert [o["metadata"]["name"] for objs in read_snapshot(str(single)).objects.values() for o in objs] == ["web"]


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_large_json_broken_half_way_is_one_error_and_no_partial_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: float
) -> None:
    from factorygate.audit import snapshot

    monkeypatch.setattr(snapshot, "STREAM_JSON_BYTES", 1000)
    text = json.dumps({"apiVersion": "v1", "items": _items() * 3, "kind": "List"}, indent=4)
    broken = tmp_path / "broken.json"
    broken.write_text(text[: int(len(text) * cut)])  # a truncated download
    inv = read_snapshot(str(broken))
    assert inv.objects == {}  # nothing half-read is audited
    assert inv.origins == {}
    assert len(inv.errors) == 1
    assert inv.errors[0].startswith(f"{broken}:")


def test_audit_kinds_lists_what_the_live_reader_lists() -> None:
    from factorygate.audit.conformance_kinds import WANTED
    from factorygate.audit.kinds import kinds_to_list

    proc = run_cli("audit", "kinds")
    assert proc.returncode == 0, proc.stderr
    names = set(proc.stdout.split())
    expected = {k.plural + (f".{k.group}" if k.group else "") for k in kinds_to_list(())}
    assert expected <= names  # the checks' kinds
    assert {"pods", "deployments.apps", "clusterrolebindings.rbac.authorization.k8s.io"} <= names
    assert {k.plural + (f".{k.group}" if k.group else "") for k in WANTED} <= names  # the scorecard's
    assert "peerauthentications.security.istio.io" in names
    assert not any(n.startswith(("secrets", "configmaps")) for n in names)  # never read


def test_a_namespace_limited_audit_cannot_judge_cluster_wide_components() -> None:
    proc = run_cli("audit", "--snapshot", str(SNAPSHOT), "-n", "team-a", "-f", "json")
    doc = json.loads(proc.stdout)
    rows = [row for cluster in doc["audit"]["clusters"] for row in cluster["conformance"]]
    assert rows
    assert {row["state"] for row in rows} == {"unknown"}  # never absent, never present
    assert all("--namespace" in row["evidence"][0] for row in rows)
    whole = json.loads(run_cli("audit", "--snapshot", str(SNAPSHOT), "-f", "json").stdout)
    states = {row["state"] for cluster in whole["audit"]["clusters"] for row in cluster["conformance"]}
    assert states != {"unknown"}
