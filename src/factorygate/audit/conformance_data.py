"""What the conformance scorecard knows, as data: the capabilities with the seed rows and baselines they come
from, and the known implementations of each with the API objects that show them.

Seeds (in /work/shared/seeds, quoted by section and table row):
  v2.1 = "DoD Enterprise DevSecOps Reference Design: CNCF Kubernetes", Version 2.1, September 2021
  MC   = "DoD CNCF Multi-Cluster Kubernetes Reference Design"
  CK   = Compliant Kubernetes, "DoD Enterprise DevSecOps Reference Design for Kubernetes" mapping (names the
         implementations it uses for the Table 1 rows: fluentd, Falco, Calico, Trivy Operator, Argo CD)
Where v2.1 has a row for a capability, its baseline is the one reported; MC rows are cited beside it.
"""

from __future__ import annotations

from typing import NamedTuple

V21 = "DoD Enterprise DevSecOps Reference Design: CNCF Kubernetes v2.1"
MC = "DoD CNCF Multi-Cluster Kubernetes Reference Design"


class Capability(NamedTuple):
    id: str
    title: str
    baseline: str  # "REQUIRED" | "PREFERRED", as the cited row states it
    source: str  # seed, section, table and row
    note: str  # where the seeds are silent or disagree, said here


CAPABILITIES: tuple[Capability, ...] = (
    Capability(
        "service-mesh-mtls",
        "Service mesh with strict mTLS for east-west traffic",
        "REQUIRED",
        f"{V21}, §5 Table 11 (Deploy Phase Tools), row 'Service mesh': 'Ability to enforce Zero trust mTLS traffic"
        " for east/west traffic' (REQUIRED); §3.4 Table 1 rows 'Service Mesh', 'Service Mesh proxy' and 'Zero Trust"
        " model down to the container level' (REQUIRED); §3 'Use of a service mesh ... to manage all east-west"
        f" network traffic'. {MC}, §5 Table 9 row 'Service routing tool' (mTLS, REQUIRED).",
        "v2.1 Table 1 says the mesh is 'only required if the application uses microservices'.",
    ),
    Capability(
        "network-policy",
        "CNI enforcing NetworkPolicy, default-deny in every namespace",
        "REQUIRED",
        f"{MC}, §5 Table 9 (Deploy Phase Tools), row 'Networking service': 'a secure and configurable mechanism to"
        " control network communications of pods' (REQUIRED), with Table 10 activity 'Cluster network management';"
        f" {V21}, §3.4 Table 1 row 'Zero Trust model down to the container level': 'whitelisting of East-West"
        " traffic down to the Pod level' (REQUIRED).",
        "Neither seed names NetworkPolicy or default-deny; v2.1 §3.5 describes a traffic model 'that can deny all"
        " network traffic by default'.",
    ),
    Capability(
        "admission-control",
        "Admission controller that fails closed (failurePolicy: Fail, enforcing)",
        "REQUIRED",
        f"{MC}, §5 Table 5 (Test Phase Tools), row 'Admission controller' (REQUIRED); {V21}, §5 Table 14 (Monitor"
        " Phase Tools), row 'Resource, Service, Container policy enforcement' (REQUIRED).",
        "The seeds do not mention failurePolicy; an admission controller that admits requests when it is down does"
        " not 'prevent unsuitable ... bundles/components from entering' (MC Table 5).",
    ),
    Capability(
        "logging-agent",
        "Logging agent on every node",
        "REQUIRED",
        f"{V21}, §3.4 Table 1 (Sidecar Security Monitoring Components), row 'Logging agent' (REQUIRED); §5 Table 15"
        " row 'Centralized Logging' (REQUIRED).",
        "v2.1 places the agent in the security sidecar; a node agent (DaemonSet) is the common Kubernetes form"
        " (CK maps the row to fluentd).",
    ),
    Capability(
        "runtime-defense",
        "Runtime defense (behavior detection) on every node",
        "REQUIRED",
        f"{V21}, §3.4 Table 1, row 'Runtime Defense' (REQUIRED); §5.1 'Continuous monitoring of a K8s cluster must"
        " include behavior and signature-based detection in the runtime environment'.",
        "CK maps the row to Falco.",
    ),
    Capability(
        "vulnerability-management",
        "Vulnerability management of running workloads",
        "REQUIRED",
        f"{V21}, §5 Table 14 (Monitor Phase Tools), row 'Vulnerability Management' (REQUIRED); §3.4 Table 1 rows"
        " 'Vulnerability Management' and 'CVE Service / Host Based Security' (REQUIRED).",
        "CK maps the rows to the Trivy Operator.",
    ),
    Capability(
        "gitops",
        "GitOps reconciler",
        "PREFERRED",
        f"{V21}, §5 Table 9 (Release and Deliver Phase Tools), row 'GitOps Kubernetes Capability' (PREFERRED);"
        f" {MC}, §5 Table 7, row 'Kubernetes bundle reconciliation tool' ('An example implementation can be a"
        " GitOps flow', REQUIRED).",
        "The seeds disagree: v2.1 (reported) says PREFERRED, the multi-cluster design REQUIRED.",
    ),
    Capability(
        "image-signature-verification",
        "Image signature verification at admission",
        "PREFERRED",
        f"{MC}, §5 Table 3 (Build Phase Tools), row 'Release packaging tool' (PREFERRED) and Table 4 activity"
        " 'Artifact signing/validation'; §4.5 'Admission and Validation' gives 'enforcing only signed images' as an"
        " example.",
        f"{V21} states no baseline for signature verification (§3.3 describes Iron Bank images as digitally"
        " signed); the baseline is MC's row for signing and validation.",
    ),
    Capability(
        "certificate-management",
        "Certificate management",
        "REQUIRED",
        f"{MC}, §5 Table 9 (Deploy Phase Tools), row 'Service routing tool': 'Ability to administer mutual TLS"
        " (mTLS) and TLS across environments', inputs 'Requests for certificates' (REQUIRED); {V21}, §5 Table 11"
        " row 'Service mesh', inputs 'authentication certificates'.",
        "No seed has a row named certificate management; the baseline is that of the row whose inputs are"
        " certificate requests.",
    ),
)


class Agent(NamedTuple):
    """A known implementation that runs as a node agent (DaemonSet) or a controller (Deployment)."""

    capability: str
    name: str
    images: tuple[str, ...]  # image repository, or its trailing path components (registry-independent)
    workload_names: tuple[str, ...] = ()  # DaemonSet/Deployment names that identify it when the image does not


# Node agents: must run and be ready on every node.
NODE_AGENTS: tuple[Agent, ...] = (
    Agent("logging-agent", "Fluent Bit", ("fluent-bit",), ("fluent-bit",)),
    Agent("logging-agent", "Fluentd", ("fluentd", "fluentd-kubernetes-daemonset"), ("fluentd",)),
    Agent("logging-agent", "Vector", ("timberio/vector", "vector"), ("vector", "vector-agent")),
    Agent("logging-agent", "Promtail", ("promtail",), ("promtail",)),
    Agent("logging-agent", "Grafana Alloy", ("grafana/alloy", "alloy"), ("alloy",)),
    Agent("logging-agent", "Grafana Agent", ("grafana-agent", "grafana/agent"), ("grafana-agent",)),
    Agent("logging-agent", "Filebeat", ("beats/filebeat", "filebeat"), ("filebeat",)),
    Agent(
        "logging-agent",
        "OpenTelemetry Collector",
        ("opentelemetry-collector", "opentelemetry-collector-contrib", "opentelemetry-collector-k8s"),
        (),
    ),
    Agent("logging-agent", "Splunk OpenTelemetry Collector", ("splunk-otel-collector",), ()),
    Agent("runtime-defense", "Falco", ("falco", "falco-no-driver", "falco-distroless"), ("falco",)),
    Agent("runtime-defense", "Tetragon", ("cilium/tetragon", "tetragon"), ("tetragon",)),
    Agent("runtime-defense", "NeuVector enforcer", ("neuvector/enforcer",), ("neuvector-enforcer-pod",)),
    Agent("runtime-defense", "KubeArmor", ("kubearmor/kubearmor", "kubearmor"), ("kubearmor",)),
    Agent("runtime-defense", "Sysdig agent", ("sysdig/agent", "sysdig/agent-slim"), ("sysdig-agent",)),
    Agent("runtime-defense", "Prisma Cloud Defender", ("twistlock/defender",), ("twistlock-defender-ds",)),
    Agent("runtime-defense", "Aqua Enforcer", ("aquasec/enforcer",), ("aqua-agent",)),
)

# Controllers: must be available (all replicas ready).
CONTROLLERS: tuple[Agent, ...] = (
    Agent("vulnerability-management", "Trivy Operator", ("trivy-operator",), ("trivy-operator",)),
    Agent("vulnerability-management", "Starboard Operator", ("starboard-operator",), ("starboard-operator",)),
    Agent("vulnerability-management", "NeuVector scanner", ("neuvector/scanner",), ("neuvector-scanner-pod",)),
    Agent("vulnerability-management", "Kubescape kubevuln", ("kubescape/kubevuln", "kubevuln"), ("kubevuln",)),
    Agent("certificate-management", "cert-manager", ("cert-manager-controller",), ("cert-manager",)),
    Agent("gitops", "Flux", ("fluxcd/source-controller",), ("source-controller",)),
    Agent("gitops", "Argo CD", ("argoproj/argocd",), ("argocd-repo-server", "argocd-server")),
    Agent("admission-control", "Kyverno", ("kyverno/kyverno",), ("kyverno-admission-controller", "kyverno")),
    Agent("admission-control", "Gatekeeper", ("openpolicyagent/gatekeeper",), ("gatekeeper-controller-manager",)),
    Agent(
        "image-signature-verification",
        "Sigstore policy-controller",
        ("sigstore/policy-controller/policy-controller", "policy-controller/policy-controller"),
        ("policy-controller-webhook",),
    ),
    Agent(
        "image-signature-verification",
        "Connaisseur",
        ("securesystemsengineering/connaisseur", "sse-secure-systems/connaisseur", "connaisseur"),
        ("connaisseur-deployment",),
    ),
    Agent("service-mesh-mtls", "Istio", ("istio/pilot",), ("istiod",)),
    Agent("service-mesh-mtls", "Linkerd", ("linkerd/controller",), ("linkerd-destination",)),
)


class Cni(NamedTuple):
    name: str
    images: tuple[str, ...]
    daemonset_names: tuple[str, ...]
    enforces: bool  # enforces Kubernetes NetworkPolicy as installed (aws-node: see conformance._aws_node)


CNIS: tuple[Cni, ...] = (
    Cni("Calico", ("calico/node",), ("calico-node",), True),
    Cni("Canal", (), ("canal",), True),
    Cni("Cilium", ("cilium/cilium",), ("cilium",), True),
    Cni("GKE Dataplane V2 (Cilium)", (), ("anetd",), True),
    Cni("Antrea", ("antrea/antrea-agent-ubuntu", "antrea/antrea-ubuntu", "antrea-agent"), ("antrea-agent",), True),
    Cni("Weave Net", ("weaveworks/weave-kube", "weave-kube"), ("weave-net",), True),
    Cni("kube-router", ("cloudnativelabs/kube-router", "kube-router"), ("kube-router",), True),
    Cni("Azure Network Policy Manager", ("azure-npm",), ("azure-npm",), True),
    Cni("OVN-Kubernetes", ("ovn-kubernetes",), ("ovnkube-node",), True),
    Cni("Kube-OVN", ("kubeovn/kube-ovn",), ("kube-ovn-cni",), True),
    Cni("AWS VPC CNI", ("amazon-k8s-cni", "amazon/aws-network-policy-agent"), ("aws-node",), False),
    Cni("Flannel", ("flannel/flannel", "flannel", "flannel-io/flannel"), ("kube-flannel-ds", "kube-flannel"), False),
)

# Namespaces that need neither default-deny nor mesh enrolment: the control plane's own.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})

# Istio: pods that got a sidecar carry this label (ambient pods and namespaces: istio.io/dataplane-mode=ambient).
ISTIO_SIDECAR_LABEL = "security.istio.io/tlsMode"
# Linkerd: injected pods carry this label; the default inbound policy is set on the destination controller and
# overridden per namespace or pod by the annotation.
LINKERD_MESHED_LABEL = "linkerd.io/control-plane-ns"
LINKERD_POLICY_ANNOTATION = "config.linkerd.io/default-inbound-policy"
LINKERD_DEFAULT_POLICY = "all-unauthenticated"
LINKERD_AUTHENTICATED = frozenset({"all-authenticated", "cluster-authenticated", "deny"})

# Webhook configurations of known admission controllers: (implementation, capability, webhook name fragment).
WEBHOOKS: tuple[tuple[str, str, str], ...] = (
    ("factorygate", "admission-control", "factorygate"),
    ("Gatekeeper", "admission-control", "gatekeeper.sh"),
    ("Sigstore policy-controller", "image-signature-verification", "policy.sigstore.dev"),
    ("Connaisseur", "image-signature-verification", "connaisseur"),
)
