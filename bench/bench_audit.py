"""Benchmark ``factorygate audit --snapshot``: 10,000 pods across 200 namespaces.

The snapshot is generated from the workloads of the shared corpus (../shared/corpus/k8s): their pod
templates become Deployments (with a ReplicaSet and pods owning ownerReferences and status.imageID,
as the API serves them), DaemonSets, StatefulSets and CronJobs (with a Job), spread over 200 namespaces,
plus a NetworkPolicy, a default ServiceAccount and a RoleBinding per namespace and cluster RBAC. It is
written as ``kubectl get ... -A -o json`` does (one List), and as a directory of ``-o yaml`` files (one
per namespace). The command runs as a subprocess; wall time and peak RSS (of the child) are reported.
Target: under 10 s and under 500 MB. Standard library + the project's venv.

    .venv/bin/python bench/bench_audit.py [--pods 10000] [--namespaces 200] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "k8s"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet"}


def corpus_templates(corpus: Path) -> list[dict[str, Any]]:
    """Pod templates ({metadata, spec}) of the corpus workloads, read with the bounded loader."""
    from factorygate.inputs.kubernetes import Manifest, manifests_from_bytes

    out: list[dict[str, Any]] = []
    for path in sorted(corpus.rglob("*.y*ml")):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for item in manifests_from_bytes(data, str(path), kinds=WORKLOAD_KINDS):
            if not isinstance(item, Manifest):
                continue
            doc = item.data
            spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
            if doc["kind"] == "Pod":
                tpl = {"metadata": doc.get("metadata") or {}, "spec": spec}
            elif doc["kind"] == "CronJob":
                tpl = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
            else:
                tpl = spec.get("template") or {}
            if isinstance(tpl, dict) and isinstance(tpl.get("spec"), dict) and tpl["spec"].get("containers"):
                out.append(json.loads(json.dumps(tpl, default=str)))  # plain JSON types (dates become strings)
    return out


def generate(templates: list[dict[str, Any]], pods: int, namespaces: int, seed: int = 7) -> list[dict[str, Any]]:  # noqa: PLR0915
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    items: list[dict[str, Any]] = []
    per_ns = pods // namespaces
    uid = 0

    def next_uid() -> str:
        nonlocal uid
        uid += 1
        return f"00000000-0000-4000-8000-{uid:012d}"

    def owner(kind: str, api: str, name: str, u: str) -> list[dict[str, Any]]:
        return [{"apiVersion": api, "kind": kind, "name": name, "uid": u, "controller": True}]

    def pod(ns: str, name: str, tpl: dict[str, Any], refs: list[dict[str, Any]]) -> dict[str, Any]:
        spec = copy.deepcopy(tpl["spec"])
        statuses = []
        for c in spec.get("containers") or []:
            if isinstance(c, dict):
                image = str(c.get("image") or "busybox")
                digest = f"{rng.getrandbits(256):064x}"
                repo = (
                    image.split("@", maxsplit=1)[0].rsplit(":", 1)[0]
                    if "/" in image
                    else f"docker.io/library/{image.split(':', maxsplit=1)[0]}"
                )
                statuses.append(
                    {
                        "name": c.get("name"),
                        "image": image,
                        "imageID": f"{repo}@sha256:{digest}",
                        "ready": True,
                        "restartCount": 0,
                        "started": True,
                    }
                )
        labels = dict((tpl.get("metadata") or {}).get("labels") or {})
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": next_uid(),
                "labels": labels,
                "ownerReferences": refs,
                "resourceVersion": str(uid),
            },
            "spec": {**spec, "nodeName": f"node-{rng.randrange(50)}", "serviceAccountName": "default"},
            "status": {
                "phase": "Running",
                "podIP": f"10.{rng.randrange(255)}.{rng.randrange(255)}.1",
                "containerStatuses": statuses,
                "qosClass": "Burstable",
            },
        }

    for n in range(namespaces):
        ns = f"team-{n:03d}"
        labels = {"kubernetes.io/metadata.name": ns}
        if n % 3:
            labels["pod-security.kubernetes.io/enforce"] = "restricted" if n % 2 else "baseline"
        items.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}})
        items.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}})
        if n % 4:
            items.append(
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": {"name": "default-deny", "namespace": ns},
                    "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
                }
            )
        items.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "devs", "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"kind": "Group", "name": f"{ns}-devs"}],
            }
        )
        made = 0
        w = 0
        while made < per_ns:
            tpl = templates[rng.randrange(len(templates))]
            w += 1
            kind = ("Deployment", "Deployment", "Deployment", "StatefulSet", "DaemonSet", "CronJob")[w % 6]
            name = f"app-{w}"
            u = next_uid()
            replicas = min(per_ns - made, 1 if kind == "CronJob" else rng.randrange(1, 8))
            sel = {"matchLabels": {"app": name}}
            template = copy.deepcopy(tpl)
            template.setdefault("metadata", {})
            template["metadata"]["labels"] = {**(template["metadata"].get("labels") or {}), "app": name}
            if kind == "CronJob":
                items.append(
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "metadata": {"name": name, "namespace": ns, "uid": u},
                        "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}},
                    }
                )
                ju = next_uid()
                job = f"{name}-2890{w:04d}"
                items.append(
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "metadata": {
                            "name": job,
                            "namespace": ns,
                            "uid": ju,
                            "ownerReferences": owner("CronJob", "batch/v1", name, u),
                        },
                        "spec": {"template": template},
                    }
                )
                refs = owner("Job", "batch/v1", job, ju)
            else:
                spec = {"selector": sel, "template": template}
                if kind != "DaemonSet":
                    spec["replicas"] = replicas
                items.append(
                    {
                        "apiVersion": "apps/v1",
                        "kind": kind,
                        "metadata": {"name": name, "namespace": ns, "uid": u},
                        "spec": spec,
                    }
                )
                refs = owner(kind, "apps/v1", name, u)
                if kind == "Deployment":
                    ru = next_uid()
                    rs = f"{name}-{rng.getrandbits(32):08x}"
                    items.append(
                        {
                            "apiVersion": "apps/v1",
                            "kind": "ReplicaSet",
                            "metadata": {"name": rs, "namespace": ns, "uid": ru, "ownerReferences": refs},
                            "spec": {"replicas": replicas, "selector": sel, "template": template},
                        }
                    )
                    refs = owner("ReplicaSet", "apps/v1", rs, ru)
            for i in range(replicas):
                items.append(pod(ns, f"{name}-{i}-{rng.getrandbits(20):05x}", template, refs))
            made += replicas
    items.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "cluster-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "Group", "name": "system:masters"}],
        }
    )
    return items


class _NoAliases(yaml.CSafeDumper):
    """kubectl never writes anchors: shared template dicts are written out each time."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_snapshots(items: list[dict[str, Any]], where: Path) -> tuple[Path, Path]:
    as_json = where / "cluster.json"
    as_json.write_text(
        json.dumps({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}, indent=4)
    )  # kubectl indents JSON with 4 spaces
    directory = where / "cluster-yaml"
    directory.mkdir(exist_ok=True)
    by_ns: dict[str, list[dict[str, Any]]] = {}
    for obj in items:
        by_ns.setdefault(obj["metadata"].get("namespace") or "_cluster", []).append(obj)
    for ns, objs in by_ns.items():
        doc = {"apiVersion": "v1", "items": objs, "kind": "List", "metadata": {"resourceVersion": ""}}
        (directory / f"{ns}.yaml").write_text(yaml.dump(doc, Dumper=_NoAliases, default_flow_style=False))
    return as_json, directory


# Runs the command and prints its peak RSS (KiB): measured by a small process of its own, because a child
# forked from this one (which holds the generated snapshot) would count the parent's pages before exec.
_MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], check=False).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)\n"
)


def run_once(snapshot: Path) -> tuple[float, float, int, dict[str, Any]]:
    """(seconds, peak RSS MiB, exit code, report) of one `factorygate audit --snapshot` run."""
    exe = Path(sys.executable).with_name("factorygate")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "factorygate"]
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [*cmd, "audit", "--snapshot", str(snapshot), "-f", "json", "-o", out.name]
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _MEASURE, *argv], capture_output=True, text=True, timeout=600, check=False
        )
        seconds = time.perf_counter() - started
        rss_kib, code = (int(x) for x in proc.stdout.split()[-2:])
        report = json.loads(Path(out.name).read_text()) if code in (0, 1, 2) else {}
    if code not in (0, 1):
        print(proc.stderr[-2000:], file=sys.stderr)
    return seconds, rss_kib / 1024, code, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the snapshots here and keep them")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    templates = corpus_templates(args.corpus)
    items = generate(templates, args.pods, args.namespaces)
    pods = sum(1 for i in items if i["kind"] == "Pod")
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        as_json, directory = write_snapshots(items, where)
        size = as_json.stat().st_size / 2**20
        ysize = sum(p.stat().st_size for p in directory.iterdir()) / 2**20
        print(
            f"snapshot: {pods:,} pods, {len(items):,} objects in {args.namespaces} namespaces from "
            f"{len(templates)} corpus pod templates; JSON {size:.1f} MiB, YAML directory {ysize:.1f} MiB"
        )
        results: dict[str, Any] = {"pods": pods, "objects": len(items), "json_mib": size, "yaml_mib": ysize}
        for label, path in (("json", as_json), ("yaml-dir", directory)):
            best = None
            for _ in range(args.repeat):
                seconds, rss, code, report = run_once(path)
                best = seconds if best is None else min(best, seconds)
            cluster = (report.get("audit") or {}).get("clusters", [{}])[0]
            verdict = "PASS" if (best or 0) < 10 and rss < 500 else "FAIL"
            print(
                f"audit --snapshot {label}: {best:.2f} s, peak RSS {rss:.0f} MiB, exit {code}; "
                f"{len(cluster.get('workloads', []))} workloads, {cluster.get('pods')} pods, "
                f"{len(report.get('findings', []))} findings; target < 10 s and < 500 MB: {verdict}"
            )
            results[label] = {"seconds": best, "peak_rss_mib": rss, "exit": code}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
