"""The API kinds the conformance detection reads (the live reader lists ``WANTED``; 404 -> Inventory.missing)."""

from __future__ import annotations

from dataclasses import dataclass

from factorygate.audit.inventory import Inventory


@dataclass(frozen=True)
class ApiKind:
    """One API resource the live reader lists (404: not served -> Inventory.missing)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def key(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


ADM = "admissionregistration.k8s.io"
WANTED: tuple[ApiKind, ...] = (
    ApiKind("", "v1", "namespaces", "Namespace", False),
    ApiKind("", "v1", "nodes", "Node", False),
    ApiKind("", "v1", "pods", "Pod", True),
    ApiKind("apps", "v1", "daemonsets", "DaemonSet", True),
    ApiKind("apps", "v1", "deployments", "Deployment", True),
    ApiKind("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True),
    ApiKind(ADM, "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False),
    ApiKind(ADM, "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", False),
    ApiKind(ADM, "v1", "validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", False),
    ApiKind("security.istio.io", "v1beta1", "peerauthentications", "PeerAuthentication", True),
    ApiKind("crd.projectcalico.org", "v1", "globalnetworkpolicies", "GlobalNetworkPolicy", False),
    ApiKind("cilium.io", "v2", "ciliumnetworkpolicies", "CiliumNetworkPolicy", True),
    ApiKind("cilium.io", "v2", "ciliumclusterwidenetworkpolicies", "CiliumClusterwideNetworkPolicy", False),
    ApiKind("kyverno.io", "v1", "clusterpolicies", "ClusterPolicy", False),
    ApiKind("kyverno.io", "v1", "policies", "Policy", True),
    ApiKind("templates.gatekeeper.sh", "v1", "constrainttemplates", "ConstraintTemplate", False),
    ApiKind("source.toolkit.fluxcd.io", "v1", "gitrepositories", "GitRepository", True),
    ApiKind("source.toolkit.fluxcd.io", "v1beta2", "ocirepositories", "OCIRepository", True),
    ApiKind("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization", True),
    ApiKind("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease", True),
    ApiKind("argoproj.io", "v1alpha1", "applications", "Application", True),
    ApiKind("policy.sigstore.dev", "v1beta1", "clusterimagepolicies", "ClusterImagePolicy", False),
    ApiKind("cert-manager.io", "v1", "certificates", "Certificate", True),
    ApiKind("cert-manager.io", "v1", "issuers", "Issuer", True),
    ApiKind("cert-manager.io", "v1", "clusterissuers", "ClusterIssuer", False),
)
WANTED_KEYS = frozenset(k.key for k in WANTED)

NAMESPACE, NODE, POD = "Namespace", "Node", "Pod"
DAEMONSET, DEPLOYMENT = "DaemonSet.apps", "Deployment.apps"
NETPOL = "NetworkPolicy.networking.k8s.io"
VWC = f"ValidatingWebhookConfiguration.{ADM}"
VAP, VAPB = f"ValidatingAdmissionPolicy.{ADM}", f"ValidatingAdmissionPolicyBinding.{ADM}"
PEER_AUTH = "PeerAuthentication.security.istio.io"
CALICO_GNP = "GlobalNetworkPolicy.crd.projectcalico.org"
CILIUM_NP, CILIUM_CNP = "CiliumNetworkPolicy.cilium.io", "CiliumClusterwideNetworkPolicy.cilium.io"
KYVERNO_CP, KYVERNO_P = "ClusterPolicy.kyverno.io", "Policy.kyverno.io"
GK_TEMPLATE, GK_CONSTRAINTS = "ConstraintTemplate.templates.gatekeeper.sh", ".constraints.gatekeeper.sh"
FLUX_GIT, FLUX_OCI = "GitRepository.source.toolkit.fluxcd.io", "OCIRepository.source.toolkit.fluxcd.io"
FLUX_KS, FLUX_HR = "Kustomization.kustomize.toolkit.fluxcd.io", "HelmRelease.helm.toolkit.fluxcd.io"
ARGO_APP = "Application.argoproj.io"
SIGSTORE_CIP = "ClusterImagePolicy.policy.sigstore.dev"
CM_CERT, CM_ISSUER, CM_CISSUER = (
    "Certificate.cert-manager.io",
    "Issuer.cert-manager.io",
    "ClusterIssuer.cert-manager.io",
)


def dynamic_kinds(inv: Inventory) -> tuple[ApiKind, ...]:
    """Gatekeeper constraint kinds, known only from the ConstraintTemplates read (list them after WANTED)."""
    kinds: dict[str, ApiKind] = {}
    for template in inv.of(GK_TEMPLATE):
        node: object = template
        for step in ("spec", "crd", "spec", "names", "kind"):
            node = node.get(step) if isinstance(node, dict) else None
        kind = node
        if isinstance(kind, str) and kind.isidentifier():
            kinds[kind] = ApiKind("constraints.gatekeeper.sh", "v1beta1", kind.lower(), kind, False)
    return tuple(kinds.values())
