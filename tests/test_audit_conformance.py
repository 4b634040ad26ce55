"""Reference-design conformance detection over hand-made clusters (tests/data/audit/conformance)."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factorygate.audit import conformance_data as data
from factorygate.audit.conformance import (
    STATES,
    WANTED,
    WANTED_KEYS,
    ConformanceResult,
    conformance_json,
    conformance_text,
    dynamic_kinds,
    evaluate,
    selector_matches,
    wanted_kinds,
)
from factorygate.audit.declarations import CAPABILITY_IDS, ConformanceDeclarations, DeclaredImplementation, Detect
from factorygate.audit.inventory import Inventory, kind_key
from factorygate.errors import PolicyError
from factorygate.policy import parse_policy

DATA = Path(__file__).parent / "data" / "audit" / "conformance"
BUILT_IN_GROUPS = {"", "apps", "networking.k8s.io", "admissionregistration.k8s.io"}
Obj = dict[str, Any]


# --- fixture clusters -----------------------------------------------------------------------------------------


def _identity(obj: Obj) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return kind_key(obj["apiVersion"], obj["kind"]), meta.get("namespace", ""), meta["name"]


def _read(path: Path) -> tuple[dict[str, Any], list[Obj]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    header = docs[0].get("fixture", {})
    return header, [d for d in docs if "fixture" not in d]


def load_cluster(path: Path) -> tuple[Inventory, dict[str, Any]]:
    """An Inventory as the live reader would fill it: every wanted kind listed unless missing or forbidden."""
    header, objects = _read(path)
    if header.get("base"):
        _, base = _read(DATA / f"{header['base']}.yaml")
        by_id = {_identity(o): o for o in base}
        for ref in header.get("remove", []):
            key, _, where = ref.partition(" ")
            ns, _, name = where.rpartition("/")
            assert by_id.pop((key, ns, name), None) is not None, f"{path.name}: nothing to remove at {ref}"
        for obj in objects:
            by_id[_identity(obj)] = obj
        objects = list(by_id.values())
    inv = Inventory(cluster=path.name)
    for obj in objects:
        inv.add(copy.deepcopy(obj))
    missing = header.get("missing", [])
    if missing == "all-crds":
        missing = [k.key for k in WANTED if k.group not in BUILT_IN_GROUPS]
    inv.missing = set(missing)
    inv.forbidden = dict(header.get("forbidden", {}))
    keys = set(WANTED_KEYS) | {k.key for k in dynamic_kinds(inv)}
    inv.listed = {k for k in keys if k not in inv.missing and k not in inv.forbidden}
    for key in inv.forbidden:  # what may not be read is not in the inventory
        inv.objects.pop(key, None)
    return inv, header


def by_capability(results: list[ConformanceResult]) -> dict[str, ConformanceResult]:
    return {r.capability: r for r in results}


def explain(results: list[ConformanceResult]) -> str:
    return "\n".join(conformance_text(results)) + "\n" + json.dumps(conformance_json(results), indent=1)


# --- the acceptance clusters ----------------------------------------------------------------------------------


def test_everything_present() -> None:
    inv, _ = load_cluster(DATA / "everything.yaml")
    results = evaluate(inv, [])
    assert [r.capability for r in results] == list(CAPABILITY_IDS)
    assert {r.capability: r.state for r in results} == dict.fromkeys(CAPABILITY_IDS, "present"), explain(results)
    got = by_capability(results)
    assert got["service-mesh-mtls"].implementation == "Istio"
    assert got["network-policy"].implementation == "Calico"
    assert got["admission-control"].implementation == "factorygate, Kyverno"
    assert got["logging-agent"].implementation == "Fluent Bit"
    assert got["runtime-defense"].implementation == "Falco"
    assert got["vulnerability-management"].implementation == "Trivy Operator"
    assert got["gitops"].implementation == "Flux"
    assert got["image-signature-verification"].implementation == "Kyverno"
    assert got["certificate-management"].implementation == "cert-manager"
    assert "Istio: mesh-wide PeerAuthentication istio-system/default: mode STRICT" in got["service-mesh-mtls"].evidence
    assert any("default-deny ingress and egress in 2 of 2" in e for e in got["network-policy"].evidence)


def test_nothing_absent() -> None:
    inv, _ = load_cluster(DATA / "nothing.yaml")
    results = evaluate(inv, [])
    assert {r.state for r in results} == {"absent"}, explain(results)
    for r in results:
        assert r.implementation is None
        assert any("no known implementation found" in e for e in r.evidence)
    netpol = by_capability(results)["network-policy"]
    assert any("kube-proxy only" in e for e in netpol.evidence)


VARIANTS = sorted((DATA / "variants").glob("*.yaml"))


@pytest.mark.parametrize("path", VARIANTS, ids=[p.stem for p in VARIANTS])
def test_variant(path: Path) -> None:
    inv, header = load_cluster(path)
    results = by_capability(evaluate(inv, []))
    expect = header["expect"]
    for cap in CAPABILITY_IDS:
        want = expect.get(cap, "present")
        assert results[cap].state == want, f"{cap}\n{explain(list(results.values()))}"
    for cap, text in header.get("evidence", {}).items():
        assert any(text in e for e in results[cap].evidence), f"{text!r} not in {results[cap].evidence}"


def test_forbidden_kinds_say_why() -> None:
    inv, _ = load_cluster(DATA / "variants" / "forbidden-kinds.yaml")
    got = by_capability(evaluate(inv, []))
    assert got["logging-agent"].implementation is None
    assert got["service-mesh-mtls"].implementation == "Istio"  # istiod is seen, its PeerAuthentications are not
    assert any("could not read PeerAuthentication" in e for e in got["service-mesh-mtls"].evidence)


def test_unread_kinds_are_not_evidence_of_absence() -> None:
    """A snapshot that never listed DaemonSets cannot say the logging agent is absent."""
    inv, _ = load_cluster(DATA / "nothing.yaml")
    inv.listed.discard("DaemonSet.apps")
    inv.objects.pop("DaemonSet.apps")
    got = by_capability(evaluate(inv, []))
    assert got["logging-agent"].state == "unknown"
    assert "DaemonSet.apps was not read" in got["logging-agent"].evidence


def test_snapshot_without_crd_lists_still_proves_absence() -> None:
    """A snapshot holds only the kinds it had objects of: CRD kinds not in it do not make a capability unknown."""
    inv, _ = load_cluster(DATA / "nothing.yaml")
    inv.missing = set()
    inv.listed = set(inv.objects)
    got = by_capability(evaluate(inv, []))
    assert got["runtime-defense"].state == "absent"
    assert got["certificate-management"].state == "absent"
    assert "ClusterIssuer.cert-manager.io was not read" in got["certificate-management"].evidence
    assert got["network-policy"].state == "unknown"  # no NetworkPolicy list in the snapshot: coverage unproven


@pytest.mark.parametrize("forbidden", [("NetworkPolicy.networking.k8s.io",), ("Pod", "Namespace")])
def test_default_deny_unjudged_when_policies_or_namespaces_are_unreadable(forbidden: tuple[str, ...]) -> None:
    inv, _ = load_cluster(DATA / "everything.yaml")
    for key in forbidden:
        inv.forbidden[key] = "forbidden"
        inv.objects.pop(key, None)
        inv.listed.discard(key)
    netpol = by_capability(evaluate(inv, []))["network-policy"]
    assert netpol.state == "unknown", netpol
    assert netpol.implementation == "Calico"


# --- implementations beyond the fixtures ---------------------------------------------------------------------


def _everything_with(*objs: Obj, remove: tuple[str, ...] = ()) -> Inventory:
    inv, _ = load_cluster(DATA / "everything.yaml")
    for key in remove:
        inv.objects.pop(key, None)
    for obj in objs:
        inv.add(obj)
    return inv


def _deployment(ns: str, name: str, image: str, args: list[str] | None = None, ready: int = 1) -> Obj:
    container: Obj = {"name": name, "image": image}
    if args:
        container["args"] = args
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [container]}}},
        "status": {"replicas": 1, "readyReplicas": ready},
    }


def test_linkerd_default_policy_decides() -> None:
    linkerd = _deployment(
        "linkerd",
        "linkerd-destination",
        "cr.l5d.io/linkerd/controller:edge-24.5.1",
        ["-default-policy=all-unauthenticated"],
    )
    inv = _everything_with(linkerd, remove=("Deployment.apps", "PeerAuthentication.security.istio.io"))
    for pod in inv.of("Pod"):
        pod["metadata"]["labels"].pop("security.istio.io/tlsMode", None)
        pod["metadata"]["labels"]["linkerd.io/control-plane-ns"] = "linkerd"
    mesh = by_capability(evaluate(inv, []))["service-mesh-mtls"]
    assert (mesh.state, mesh.implementation) == ("misconfigured", "Linkerd"), mesh
    assert any(
        "accepts unauthenticated (plaintext) traffic in billing (all-unauthenticated)" in e for e in mesh.evidence
    )
    for ns in inv.of("Namespace"):  # per-namespace annotation overrides the cluster default
        ns["metadata"].setdefault("annotations", {})["config.linkerd.io/default-inbound-policy"] = "all-authenticated"
    assert by_capability(evaluate(inv, []))["service-mesh-mtls"].state == "present"


def test_cilium_clusterwide_default_deny_counts() -> None:
    ccnp = {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": "default-deny"},
        "spec": {
            "endpointSelector": {
                "matchExpressions": [
                    {"key": "io.kubernetes.pod.namespace", "operator": "NotIn", "values": ["kube-system"]}
                ]
            },
            "ingress": [{}],
            "egress": [{"toEndpoints": [{"matchLabels": {"k8s-app": "kube-dns"}}]}],
        },
    }
    inv = _everything_with(
        ccnp, remove=("NetworkPolicy.networking.k8s.io", "GlobalNetworkPolicy.crd.projectcalico.org")
    )
    netpol = by_capability(evaluate(inv, []))["network-policy"]
    assert netpol.state == "present", netpol
    ccnp["spec"]["enableDefaultDeny"] = {"egress": False}
    netpol = by_capability(evaluate(inv, []))["network-policy"]
    assert netpol.state == "misconfigured"
    assert any("billing (egress), shop (egress)" in e for e in netpol.evidence)


def test_exempt_and_host_network_namespaces_need_no_default_deny() -> None:
    inv = _everything_with(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "legacy", "labels": {"app": "x"}}},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "n", "namespace": "node-agents"},
            "spec": {"hostNetwork": True},
        },
    )
    got = by_capability(evaluate(inv, []))
    assert got["network-policy"].state == "misconfigured"
    assert any("no default-deny policy in namespaces legacy (ingress)" in e for e in got["network-policy"].evidence)
    assert any(
        "outside the mesh (no sidecar, not ambient) in legacy (1)" in e for e in got["service-mesh-mtls"].evidence
    )
    got = by_capability(evaluate(inv, [], exempt_namespaces=["leg*"]))
    assert got["network-policy"].state == "present", got["network-policy"].evidence
    assert got["service-mesh-mtls"].state == "present"


def test_allow_all_policy_is_misconfigured() -> None:
    allow_all = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all", "namespace": "shop"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]},
    }
    netpol = by_capability(evaluate(_everything_with(allow_all), []))["network-policy"]
    assert netpol.state == "misconfigured"
    assert any("allow all traffic to every pod of their namespace: shop/allow-all" in e for e in netpol.evidence)


ECR = "602401143452.dkr.ecr.us-gov-west-1.amazonaws.com"


def test_aws_vpc_cni_enforces_only_with_its_policy_agent() -> None:
    aws_node: Obj = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "aws-node", "namespace": "kube-system"},
        "spec": {
            "template": {
                "spec": {
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [
                        {
                            "name": "aws-node",
                            "image": ECR + "/amazon-k8s-cni:v1.18.2",
                        },
                        {
                            "name": "aws-network-policy-agent",
                            "image": ECR + "/amazon/aws-network-policy-agent:v1.1.2",
                            "args": ["--enable-network-policy=false"],
                        },
                    ],
                }
            }
        },
        "status": {"desiredNumberScheduled": 3, "numberReady": 3},
    }
    inv = _everything_with()
    inv.objects["DaemonSet.apps"] = [d for d in inv.of("DaemonSet.apps") if d["metadata"]["name"] != "calico-node"]
    inv.add(aws_node)
    inv.objects.pop("GlobalNetworkPolicy.crd.projectcalico.org")
    netpol = by_capability(evaluate(inv, []))["network-policy"]
    assert netpol.state == "misconfigured"
    assert any("AWS VPC CNI does not enforce NetworkPolicy" in e for e in netpol.evidence), netpol.evidence
    aws_node["spec"]["template"]["spec"]["containers"][1]["args"] = ["--enable-network-policy=true"]
    netpol = by_capability(evaluate(inv, []))["network-policy"]
    assert netpol.implementation == "AWS VPC CNI"
    assert not any("not enforced" in e for e in netpol.evidence)


def test_webhook_that_matches_no_workload() -> None:
    inv = _everything_with(remove=("ClusterPolicy.kyverno.io", "Deployment.apps"))
    hook = inv.of("ValidatingWebhookConfiguration.admissionregistration.k8s.io")[0]["webhooks"][0]
    hook["rules"] = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}]
    adm = by_capability(evaluate(inv, []))["admission-control"]
    assert adm.state == "misconfigured"
    assert adm.evidence == [
        "factorygate: no webhook matches pod or workload creation (webhooks: factorygate/validate.factorygate.dev)"
    ]


def test_gatekeeper_side_webhooks_are_not_judged() -> None:
    inv, _ = load_cluster(DATA / "variants" / "gatekeeper-defaults.yaml")
    adm = by_capability(evaluate(inv, []))["admission-control"]
    assert not any("check-ignore-label" in e for e in adm.evidence), adm.evidence


def test_validating_admission_policy_needs_a_deny_binding() -> None:
    vap = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {
            "name": "factorygate-k8s-run-as-non-root",
            "labels": {"app.kubernetes.io/managed-by": "factorygate"},
        },
        "spec": {"failurePolicy": "Fail", "validations": [{"expression": "true"}]},
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "factorygate-k8s-run-as-non-root"},
        "spec": {"policyName": "factorygate-k8s-run-as-non-root", "validationActions": ["Warn", "Audit"]},
    }
    remove = (
        "ValidatingWebhookConfiguration.admissionregistration.k8s.io",
        "ClusterPolicy.kyverno.io",
        "Deployment.apps",
    )
    inv = _everything_with(vap, binding, remove=remove)
    adm = by_capability(evaluate(inv, []))["admission-control"]
    assert (adm.state, adm.implementation) == ("misconfigured", "ValidatingAdmissionPolicy")
    assert any("validationActions [Deny]" in e for e in adm.evidence)
    binding["spec"]["validationActions"] = ["Deny"]
    adm = by_capability(evaluate(inv, []))["admission-control"]
    assert adm.state == "present", adm
    assert any("policies: 1 (1 from factorygate), bound with Deny: 1" in e for e in adm.evidence)
    vap["spec"]["failurePolicy"] = "Ignore"
    assert by_capability(evaluate(inv, []))["admission-control"].state == "misconfigured"


def test_sigstore_policy_controller() -> None:
    cip = {
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "ironbank-signed"},
        "spec": {"images": [{"glob": "registry1.dso.mil/**"}], "authorities": [{"keyless": {}}], "mode": "warn"},
    }
    webhook = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "policy.sigstore.dev"},
        "webhooks": [
            {
                "name": "policy.sigstore.dev",
                "clientConfig": {"service": {"name": "webhook", "namespace": "cosign-system"}},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {
                    "matchExpressions": [{"key": "policy.sigstore.dev/include", "operator": "In", "values": ["true"]}]
                },
                "failurePolicy": "Fail",
            }
        ],
    }
    inv = _everything_with(cip, webhook, remove=("ClusterPolicy.kyverno.io",))
    sig = by_capability(evaluate(inv, []))["image-signature-verification"]
    assert (sig.state, sig.implementation) == ("misconfigured", "Sigstore policy-controller")
    assert any("warn mode: ironbank-signed" in e for e in sig.evidence)
    assert any("namespaceSelector skips namespaces billing, shop" in e for e in sig.evidence)
    del cip["spec"]["mode"]
    for ns in inv.of("Namespace"):
        ns["metadata"]["labels"]["policy.sigstore.dev/include"] = "true"
    assert by_capability(evaluate(inv, []))["image-signature-verification"].state == "present"


def test_argo_cd_needs_automated_sync() -> None:
    app = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "shop", "namespace": "argocd"},
        "spec": {"project": "default", "source": {"repoURL": "https://git.example.mil/shop.git", "path": "deploy"}},
        "status": {"sync": {"status": "Synced"}, "health": {"status": "Healthy"}},
    }
    remove = ("Kustomization.kustomize.toolkit.fluxcd.io", "GitRepository.source.toolkit.fluxcd.io", "Deployment.apps")
    inv = _everything_with(
        app, _deployment("argocd", "argocd-repo-server", "quay.io/argoproj/argocd:v2.11.3"), remove=remove
    )
    gitops = by_capability(evaluate(inv, []))["gitops"]
    assert (gitops.state, gitops.implementation) == ("misconfigured", "Argo CD"), gitops
    app["spec"]["syncPolicy"] = {"automated": {"prune": True, "selfHeal": True}}
    assert by_capability(evaluate(inv, []))["gitops"].state == "present"


def test_cert_manager_failing_certificate() -> None:
    inv = _everything_with()
    inv.of("Certificate.cert-manager.io")[0]["status"]["conditions"][0].update(status="False", reason="Failed")
    cm = by_capability(evaluate(inv, []))["certificate-management"]
    assert cm.state == "misconfigured"
    assert "cert-manager: certificates not Ready: shop/web-tls (Failed)" in cm.evidence


def test_controller_not_ready() -> None:
    inv = _everything_with()
    trivy = next(d for d in inv.of("Deployment.apps") if d["metadata"]["name"] == "trivy-operator")
    trivy["status"]["readyReplicas"] = 0
    vm = by_capability(evaluate(inv, []))["vulnerability-management"]
    assert vm.state == "misconfigured"
    assert "Trivy Operator: Deployment trivy-system/trivy-operator: 0 of 1 replicas ready" in vm.evidence


CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "k8s"


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not next to this checkout")
def test_real_install_manifests_are_recognised() -> None:
    """Upstream install manifests (Gatekeeper, Argo CD, kube-router), as applied, with ready status added."""
    inv = Inventory(cluster="corpus")
    for rel in (
        "open-policy-agent__gatekeeper/deploy/gatekeeper.yaml",
        "argoproj__argo-cd/manifests/ha/install.yaml",
        "prometheus-operator__kube-prometheus/tests/e2e/kind/kube-router.yaml",
    ):
        for doc in yaml.safe_load_all((CORPUS / rel).read_text()):
            if not isinstance(doc, dict) or doc.get("kind") not in (
                "Deployment",
                "DaemonSet",
                "ValidatingWebhookConfiguration",
            ):
                continue
            if doc["kind"] == "Deployment":
                doc["status"] = {"readyReplicas": doc["spec"].get("replicas", 1)}
            if doc["kind"] == "DaemonSet":
                doc["status"] = {"desiredNumberScheduled": 1, "numberReady": 1}
            inv.add(doc)
    inv.listed = set(WANTED_KEYS)
    got = by_capability(evaluate(inv, []))
    adm = got["admission-control"]
    assert (adm.state, adm.implementation) == ("misconfigured", "Gatekeeper")
    assert any("validation.gatekeeper.sh: failurePolicy Ignore" in e for e in adm.evidence), adm.evidence
    assert not any("check-ignore-label" in e for e in adm.evidence)
    assert got["gitops"].implementation == "Argo CD"
    assert any("no Application: Argo CD reconciles nothing" in e for e in got["gitops"].evidence)
    assert got["network-policy"].implementation == "kube-router"


# --- declared implementations ----------------------------------------------------------------------------------

EDR = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "edr-agent", "namespace": "security", "labels": {"app": "edr"}},
    "spec": {
        "template": {
            "spec": {"tolerations": [{"operator": "Exists"}], "containers": [{"name": "edr", "image": "x/edr:1"}]}
        }
    },
    "status": {"desiredNumberScheduled": 3, "numberReady": 3},
}


def _declare(capability: str, **detect: Any) -> DeclaredImplementation:
    return DeclaredImplementation(capability, "our-edr", Detect(**detect))


def test_declared_implementation_found_and_judged() -> None:
    inv = _everything_with(copy.deepcopy(EDR))
    inv.objects["DaemonSet.apps"] = [d for d in inv.of("DaemonSet.apps") if d["metadata"]["name"] != "falco"]
    assert by_capability(evaluate(inv, []))["runtime-defense"].state == "absent"
    decl = _declare("runtime-defense", kind="DaemonSet.apps", namespace="security", name="edr-*", labels={"app": "edr"})
    rd = by_capability(evaluate(inv, [decl]))["runtime-defense"]
    assert (rd.state, rd.implementation) == ("present", "our-edr (declared)"), rd
    next(d for d in inv.of("DaemonSet.apps") if d["metadata"]["name"] == "edr-agent")["status"]["numberReady"] = 2
    rd = by_capability(evaluate(inv, [decl]))["runtime-defense"]
    assert rd.state == "misconfigured"
    assert "our-edr (declared): DaemonSet security/edr-agent: 2 of 3 pods ready" in rd.evidence


def test_declared_implementation_not_found_or_unreadable() -> None:
    inv = _everything_with()
    inv.objects["DaemonSet.apps"] = [d for d in inv.of("DaemonSet.apps") if d["metadata"]["name"] != "falco"]
    decl = _declare("runtime-defense", kind="DaemonSet.apps", namespace="security", name="edr-agent")
    rd = by_capability(evaluate(inv, [decl]))["runtime-defense"]
    assert rd.state == "absent"
    assert "declared our-edr: no DaemonSet.apps security/edr-agent" in rd.evidence
    crd = _declare("runtime-defense", kind="EdrAgent.edr.example.com", version="v1", name="cluster")
    rd = by_capability(evaluate(inv, [crd]))["runtime-defense"]
    assert rd.state == "unknown"
    inv.forbidden["EdrAgent.edr.example.com"] = "forbidden"
    rd = by_capability(evaluate(inv, [crd]))["runtime-defense"]
    assert rd.state == "unknown"
    assert any("could not read EdrAgent.edr.example.com: forbidden" in e for e in rd.evidence)
    inv.add({"apiVersion": "edr.example.com/v1", "kind": "EdrAgent", "metadata": {"name": "cluster"}})
    inv.forbidden.clear()
    assert by_capability(evaluate(inv, [crd]))["runtime-defense"].state == "present"


def test_wanted_kinds_add_declared_kinds() -> None:
    crd = _declare("runtime-defense", kind="EdrAgent.edr.example.com", version="v1", plural="edragents", namespace="x")
    known = _declare("runtime-defense", kind="DaemonSet.apps")
    kinds = wanted_kinds([crd, known])
    assert kinds[: len(WANTED)] == WANTED
    extra = kinds[len(WANTED) :]
    assert [(k.group, k.version, k.plural, k.kind, k.namespaced) for k in extra] == [
        ("edr.example.com", "v1", "edragents", "EdrAgent", True)
    ]
    assert len({k.key for k in WANTED}) == len(WANTED)
    assert all(kind_key(k.api_version, k.kind) == k.key for k in kinds)


def test_dynamic_kinds_are_gatekeeper_constraints() -> None:
    inv, _ = load_cluster(DATA / "variants" / "gatekeeper-defaults.yaml")
    assert [(k.key, k.plural, k.version) for k in dynamic_kinds(inv)] == [
        ("K8sRequiredLabels.constraints.gatekeeper.sh", "k8srequiredlabels", "v1beta1")
    ]
    inv.listed.discard("K8sRequiredLabels.constraints.gatekeeper.sh")
    inv.objects.pop("K8sRequiredLabels.constraints.gatekeeper.sh")
    got = by_capability(evaluate(inv, []))["admission-control"]
    assert any("constraints not read" in e for e in got.evidence)


# --- the policy file -------------------------------------------------------------------------------------------

POLICY = "apiVersion: factorygate.dev/v1\nkind: Policy\n"


def test_policy_with_and_without_conformance_section() -> None:
    assert parse_policy(POLICY, "p.yaml").conformance is None  # no section: nothing declared
    assert parse_policy(POLICY + "conformance: {}\n", "p.yaml").conformance == ConformanceDeclarations()
    text = POLICY + (
        "conformance:\n"
        "  implementations:\n"
        "    - capability: runtime-defense\n"
        "      name: our-edr\n"
        "      detect: {kind: DaemonSet.apps, namespace: security, name: edr-agent}\n"
        "    - capability: certificate-management\n"
        "      name: vault-pki\n"
        "      detect: {kind: VaultPKISecret.secrets.hashicorp.com, version: v1beta1, labels: {team: platform}}\n"
    )
    conformance = parse_policy(text, "p.yaml").conformance
    assert conformance is not None
    decls = conformance.implementations
    assert decls[0] == DeclaredImplementation(
        "runtime-defense", "our-edr", Detect("DaemonSet.apps", "security", "edr-agent")
    )
    assert decls[1].detect.group == "secrets.hashicorp.com"
    assert decls[1].detect.labels == {"team": "platform"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "    - capability: runtime-defence\n      name: x\n      detect: {kind: DaemonSet.apps}\n",
            "p.yaml:5: conformance.implementations.0.capability: unknown capability 'runtime-defence'",
        ),
        (
            "    - capability: runtime-defense\n      name: x\n      detect: {kind: EdrAgent.edr.example.com}\n",
            "p.yaml:7: conformance.implementations.0.detect.version: EdrAgent.edr.example.com is not a kind",
        ),
        (
            "    - capability: runtime-defense\n      name: x\n      detect: {kind: daemonsets}\n",
            "p.yaml:7: conformance.implementations.0.detect.kind: expected a kind key",
        ),
        (
            "    - capability: runtime-defense\n      name: x\n      detect: {kind: DaemonSet.apps, nmespace: a}\n",
            "p.yaml:7: conformance.implementations.0.detect.nmespace: unknown field",
        ),
        (
            "    - capability: runtime-defense\n      detect: {kind: DaemonSet.apps}\n",
            "p.yaml:5: conformance.implementations.0.name: Field required",
        ),
    ],
)
def test_bad_declaration_names_field_and_line(body: str, expected: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(POLICY + "conformance:\n  implementations:\n" + body, "p.yaml")
    assert expected in str(err.value)


# --- outputs, data and speed -----------------------------------------------------------------------------------


def test_scorecard_outputs() -> None:
    inv, _ = load_cluster(DATA / "variants" / "mesh-permissive.yaml")
    results = evaluate(inv, [])
    lines = conformance_text(results)
    assert len(lines) == len(CAPABILITY_IDS) + 1
    assert lines[0].startswith("MISCONFIGURED REQUIRED  service-mesh-mtls            [Istio] mTLS is not STRICT")
    assert lines[-1] == "conformance: 8 present, 1 misconfigured; 1 REQUIRED capabilities not present"
    doc = conformance_json(results)
    assert json.loads(json.dumps(doc)) == doc
    assert set(doc[0]) == {"capability", "title", "baseline", "state", "implementation", "evidence", "source", "note"}


def test_capability_data_cites_the_seeds() -> None:
    assert tuple(c.id for c in data.CAPABILITIES) == CAPABILITY_IDS
    seeds = Path("/work/shared/seeds")
    for cap in data.CAPABILITIES:
        assert cap.baseline in ("REQUIRED", "PREFERRED")
        assert "Table" in cap.source, cap.id
        assert cap.baseline in cap.source, cap.id
        assert cap.note
    if seeds.is_dir():  # the rows quoted exist in the seed texts
        v21 = (seeds / "dod-devsecops-refdesign-cncf-kubernetes-v2.1.md").read_text()
        mc = " ".join((seeds / "dod-cncf-multicluster-kubernetes-refdesign.txt").read_text().split())
        for row in ("GitOps Kubernetes Capability", "Runtime Defense", "Logging agent", "Vulnerability Management"):
            assert row in v21
        for row in ("Admission controller", "Networking service", "Service routing tool", "Release packaging tool"):
            assert row in mc
    agent_caps = {a.capability for a in data.NODE_AGENTS + data.CONTROLLERS}
    assert agent_caps <= set(CAPABILITY_IDS)


def test_large_cluster_is_linear() -> None:
    """10,000 pods in 500 namespaces with 1,500 NetworkPolicies: one evaluation well under a second or two."""
    inv, _ = load_cluster(DATA / "everything.yaml")
    for i in range(10_000):
        ns = f"team-{i % 500}"
        inv.add(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"p{i}",
                    "namespace": ns,
                    "labels": {"app": f"a{i % 7}", "pod": str(i), "security.istio.io/tlsMode": "istio"},
                },
                "status": {"phase": "Running"},
            }
        )
    for n in range(500):
        ns = f"team-{n}"
        inv.add(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
            }
        )
        inv.add(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "deny", "namespace": ns},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
            }
        )
        for a in range(2):
            inv.add(
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": {"name": f"allow-{a}", "namespace": ns},
                    "spec": {
                        "podSelector": {"matchLabels": {"app": f"a{a}"}},
                        "ingress": [{"from": [{"podSelector": {}}]}],
                    },
                }
            )
    start = time.perf_counter()
    results = by_capability(evaluate(inv, []))
    elapsed = time.perf_counter() - start
    assert results["network-policy"].state == "present", results["network-policy"].evidence
    assert results["service-mesh-mtls"].state == "present", results["service-mesh-mtls"].evidence
    assert elapsed < 3.0, elapsed


# --- properties ------------------------------------------------------------------------------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=6))
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)
_fields = st.sampled_from(
    [
        "metadata",
        "spec",
        "status",
        "webhooks",
        "name",
        "namespace",
        "labels",
        "podSelector",
        "mtls",
        "mode",
        "rules",
        "template",
        "containers",
        "image",
        "tolerations",
        "taints",
        "failurePolicy",
        "namespaceSelector",
        "selector",
        "matchLabels",
        "matchExpressions",
        "conditions",
        "validationActions",
        "policyName",
        "verifyImages",
        "validate",
    ]
)
_objects = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_fields, inner, max_size=5)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(WANTED_KEYS)), st.lists(_objects, max_size=3), max_size=8))
def test_malformed_objects_never_crash(garbage: dict[str, list[Any]]) -> None:
    inv, _ = load_cluster(DATA / "everything.yaml")
    for key, objs in garbage.items():
        inv.objects.setdefault(key, []).extend(o if isinstance(o, dict) else {"spec": o} for o in objs)
    results = evaluate(inv, [])
    assert [r.capability for r in results] == list(CAPABILITY_IDS)
    assert all(r.state in STATES for r in results)
    conformance_text(results)


_label_keys = st.sampled_from(["app", "tier", "team"])
_label_values = st.sampled_from(["a", "b", "c"])


@given(
    st.dictionaries(_label_keys, _label_values),
    st.dictionaries(_label_keys, _label_values),
    st.lists(
        st.tuples(
            _label_keys, st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]), st.lists(_label_values, max_size=2)
        ),
        max_size=3,
    ),
)
def test_selector_semantics(
    labels: dict[str, str], match: dict[str, str], exprs: list[tuple[str, str, list[str]]]
) -> None:
    selector = {"matchLabels": match, "matchExpressions": [{"key": k, "operator": o, "values": v} for k, o, v in exprs]}
    expected = all(labels.get(k) == v for k, v in match.items()) and all(
        (o == "In" and k in labels and labels[k] in v)
        or (o == "NotIn" and labels.get(k) not in v)
        or (o == "Exists" and k in labels)
        or (o == "DoesNotExist" and k not in labels)
        for k, o, v in exprs
    )
    assert selector_matches(selector, labels) == expected
    assert selector_matches({}, labels)
    assert selector_matches({"matchExpressions": [{"key": "app", "operator": "Bogus"}]}, labels) is False
