"""The detectors: per capability, the known implementations found in an inventory and what is wrong with them.

Each detector returns ``(implementations, kinds that would show one, notes for when none is found)``."""

from __future__ import annotations

import fnmatch
from collections import Counter, defaultdict
from typing import Any

from factorygate.audit import conformance_data as data
from factorygate.audit.conformance_facts import (
    Impl,
    View,
    add_webhooks,
    as_dict,
    as_int,
    as_list,
    as_text,
    containers_of,
    daemonset_problems,
    deployment_problems,
    dig,
    labels_of,
    matches_agent,
    name_of,
    namespace_of,
    ready_problems,
    ref_of,
    selector_empty,
    selector_matches,
    selector_text,
    some,
    workload_problems,
)
from factorygate.audit.conformance_kinds import (
    ARGO_APP,
    CALICO_GNP,
    CILIUM_CNP,
    CILIUM_NP,
    CM_CERT,
    CM_CISSUER,
    CM_ISSUER,
    DAEMONSET,
    DEPLOYMENT,
    FLUX_GIT,
    FLUX_HR,
    FLUX_KS,
    FLUX_OCI,
    GK_CONSTRAINTS,
    GK_TEMPLATE,
    KYVERNO_CP,
    KYVERNO_P,
    NAMESPACE,
    NETPOL,
    NODE,
    PEER_AUTH,
    POD,
    SIGSTORE_CIP,
    VAP,
    VAPB,
    VWC,
    dynamic_kinds,
)
from factorygate.audit.declarations import DeclaredImplementation

# --- the capabilities --------------------------------------------------------------------------------------

Detection = tuple[list[Impl], list[str], list[str]]  # implementations, kinds that show them, notes when absent


def _service_mesh(view: View) -> Detection:
    impls: list[Impl] = []
    istiods = view.found("service-mesh-mtls", "Istio")
    control_ns = {namespace_of(d) for d in istiods}
    if istiods or view.inv.of(PEER_AUTH):
        impls.append(_istio(view, istiods, control_ns))
    destinations = view.found("service-mesh-mtls", "Linkerd")
    if destinations:
        control_ns |= {namespace_of(d) for d in destinations}
        impls.append(_linkerd(view, destinations, control_ns))
    if impls:
        _mesh_membership(view, impls[0], control_ns)
    return impls, [DEPLOYMENT, PEER_AUTH], []


def _istio(view: View, istiods: list[dict[str, Any]], control_ns: set[str]) -> Impl:
    impl = Impl("Istio")
    for dep in istiods:
        impl.problems += deployment_problems(dep)
    root = namespace_of(istiods[0]) if istiods else "istio-system"  # meshConfig.rootNamespace: where istiod runs
    if view.state(PEER_AUTH) != "read":
        impl.unknowns += view.unread([PEER_AUTH])
        return impl
    mesh_mode, ns_mode = "", {}
    for pa in view.inv.of(PEER_AUTH):
        mode = as_text(dig(pa, "spec", "mtls", "mode")) or "UNSET"
        port_modes = {as_text(dig(v, "mode")) for v in as_dict(dig(pa, "spec", "portLevelMtls")).values()}
        weak = ({mode} | port_modes) & {"PERMISSIVE", "DISABLE"}
        if not selector_empty(dig(pa, "spec", "selector")):  # workload-level
            if weak:
                impl.problems.append(
                    f"PeerAuthentication {ref_of(pa)} relaxes mTLS to {'/'.join(sorted(weak))} for the workloads it"
                    " selects"
                )
        elif namespace_of(pa) == root:
            mesh_mode = mode
            impl.evidence.append(f"mesh-wide PeerAuthentication {ref_of(pa)}: mode {mode}")
        elif mode != "UNSET":
            ns_mode[namespace_of(pa)] = mode
    if not mesh_mode:
        impl.evidence.append(f"no mesh-wide PeerAuthentication in {root} (Istio then accepts plaintext: PERMISSIVE)")
    effective = mesh_mode if mesh_mode not in ("", "UNSET") else "PERMISSIVE"
    workload_ns = [ns for ns in view.workload_namespaces() if ns not in control_ns]
    weak_ns = [f"{ns} ({ns_mode.get(ns, effective)})" for ns in workload_ns if ns_mode.get(ns, effective) != "STRICT"]
    if weak_ns:
        impl.problems.append(f"mTLS is not STRICT in namespaces {some(weak_ns)}")
    elif not workload_ns and effective != "STRICT":
        impl.problems.append(f"mesh-wide mTLS mode is {effective}, not STRICT")
    return impl


def _linkerd(view: View, destinations: list[dict[str, Any]], control_ns: set[str]) -> Impl:
    impl = Impl("Linkerd")
    default = data.LINKERD_DEFAULT_POLICY
    for dep in destinations:
        impl.problems += deployment_problems(dep)
        for c in containers_of(dep):
            for arg in as_list(c.get("args")):
                if isinstance(arg, str) and arg.startswith(("--default-policy=", "-default-policy=")):
                    default = arg.partition("=")[2]
    impl.evidence.append(f"cluster default inbound policy: {default}")
    open_ns = []
    for ns in view.workload_namespaces():
        policy = view.ns_annotations.get(ns, {}).get(data.LINKERD_POLICY_ANNOTATION, default)
        if ns not in control_ns and policy not in data.LINKERD_AUTHENTICATED:
            open_ns.append(f"{ns} ({policy})")
    if open_ns:
        impl.problems.append(f"default inbound policy accepts unauthenticated (plaintext) traffic in {some(open_ns)}")
    return impl


def _mesh_membership(view: View, impl: Impl, control_ns: set[str]) -> None:
    if view.state(POD) != "read":
        impl.evidence += view.unread([POD])
        return
    outside = []
    for ns in view.workload_namespaces():
        if ns in control_ns:
            continue
        ns_labels = view.labels_of_namespace(ns)
        if ns_labels.get("istio.io/dataplane-mode") == "ambient":
            continue
        count = 0
        for labels, n in view.pods.get(ns, Counter()).items():
            keys = {k for k, _ in labels}
            if data.ISTIO_SIDECAR_LABEL in keys or data.LINKERD_MESHED_LABEL in keys:
                continue
            if ("istio.io/dataplane-mode", "ambient") in labels:
                continue
            count += n
        if count:
            outside.append(f"{ns} ({count})")
    if outside:
        impl.problems.append(f"pods outside the mesh (no sidecar, not ambient) in {some(outside)}")


def _aws_node_enforces(ds: dict[str, Any]) -> bool:
    for c in containers_of(ds):
        if as_text(c.get("name")) == "aws-network-policy-agent":
            return "--enable-network-policy=true" in [str(a) for a in as_list(c.get("args"))]
    return False


def _np_denies(policy: dict[str, Any]) -> set[str]:
    """Directions a Kubernetes NetworkPolicy denies by default for every pod of its namespace."""
    spec = as_dict(policy.get("spec"))
    if not selector_empty(spec.get("podSelector")):
        return set()
    types = {str(t) for t in as_list(spec.get("policyTypes"))} or (
        {"Ingress", "Egress"} if "egress" in spec else {"Ingress"}
    )
    out = set()
    if "Ingress" in types and not as_list(spec.get("ingress")):
        out.add("Ingress")
    if "Egress" in types and not as_list(spec.get("egress")):
        out.add("Egress")
    return out


def _cilium_denies(policy: dict[str, Any], ns: str) -> set[str]:
    """Directions a Cilium policy puts every endpoint of ``ns`` into default deny for."""
    spec = as_dict(policy.get("spec"))
    if not selector_matches(spec.get("endpointSelector"), {"io.kubernetes.pod.namespace": ns}):
        return set()
    if not selector_empty(spec.get("endpointSelector")):
        sel = as_dict(spec.get("endpointSelector"))
        if sel.get("matchLabels") or any(
            as_text(dig(e, "key")) != "io.kubernetes.pod.namespace" for e in as_list(sel.get("matchExpressions"))
        ):
            return set()
    enable = as_dict(spec.get("enableDefaultDeny"))
    out = set()
    if ("ingress" in spec or "ingressDeny" in spec) and enable.get("ingress") is not False:
        out.add("Ingress")
    if ("egress" in spec or "egressDeny" in spec) and enable.get("egress") is not False:
        out.add("Egress")
    return out


def _calico_denies(policy: dict[str, Any]) -> tuple[set[str], set[str]] | None:
    """(directions, excluded namespaces) of a Calico GlobalNetworkPolicy that denies by default, else None."""
    spec = as_dict(policy.get("spec"))
    selector = as_text(spec.get("selector")).strip()
    excluded: set[str] = set()
    if selector and selector != "all()":
        prefix = "projectcalico.org/namespace not in"
        if not selector.startswith(prefix):
            return None
        inner = selector[len(prefix) :].strip()
        if not (inner.startswith("{") and inner.endswith("}")):
            return None
        excluded = {v.strip().strip("'\"") for v in inner[1:-1].split(",") if v.strip()}
    if as_text(spec.get("namespaceSelector")).strip() not in ("", "all()"):
        return None
    types = {str(t) for t in as_list(spec.get("types"))} or {"Ingress"}
    out: set[str] = set()
    for direction in ("Ingress", "Egress"):
        rules = as_list(spec.get(direction.lower()))
        if direction in types and all(as_text(dig(r, "action")) == "Deny" for r in rules):
            out.add(direction)
    return (out, excluded) if out else None


def _network_policy(view: View) -> Detection:
    inv = view.inv
    cnis: list[tuple[data.Cni, dict[str, Any]]] = []
    for ds in inv.of(DAEMONSET):
        for cni in data.CNIS:
            if matches_agent(ds, cni, cni.daemonset_names):
                cnis.append((cni, ds))
                break
    enforcing = [(c, ds) for c, ds in cnis if c.enforces or (c.name == "AWS VPC CNI" and _aws_node_enforces(ds))]
    passive = sorted({c.name for c, ds in cnis if (c, ds) not in enforcing})
    policies = [p for p in inv.of(NETPOL) if isinstance(p, dict)]
    cilium = [p for p in inv.of(CILIUM_NP) if isinstance(p, dict)]
    cluster_cilium = [p for p in inv.of(CILIUM_CNP) if isinstance(p, dict)]
    calico = [p for p in inv.of(CALICO_GNP) if isinstance(p, dict)]
    total = len(policies) + len(cilium) + len(cluster_cilium) + len(calico)
    relevant = [DAEMONSET, NETPOL]
    if not enforcing and not total:
        notes = [f"CNI {', '.join(passive)} does not enforce NetworkPolicy"] if passive else []
        if view.state(DAEMONSET) == "read" and not passive:
            notes.append("no known CNI DaemonSet (kube-proxy only, or a CNI factorygate does not know)")
        notes.append("no NetworkPolicy, CiliumNetworkPolicy or Calico GlobalNetworkPolicy objects")
        return [], relevant, notes
    unnamed = "NetworkPolicy objects (CNI not read)" if view.state(DAEMONSET) != "read" else "NetworkPolicy objects"
    impl = Impl(", ".join(sorted({c.name for c, _ in enforcing})) or unnamed)
    for _cni, ds in enforcing:
        impl.problems += daemonset_problems(ds, view)
    if not enforcing:
        if view.state(DAEMONSET) != "read":
            impl.unknowns += view.unread([DAEMONSET])
        else:
            why = f"{', '.join(passive)} does not enforce NetworkPolicy" if passive else "no known CNI DaemonSet found"
            impl.problems.append(f"{why}: the {total} network policies are not enforced")
    if view.state(NETPOL) != "read" or (view.state(POD) != "read" and view.state(NAMESPACE) != "read"):
        impl.unknowns += view.unread([NETPOL, POD, NAMESPACE]) or ["default-deny coverage could not be judged"]
        return [impl], relevant, []
    workload_ns = view.workload_namespaces()
    gaps = _default_deny_gaps(view, workload_ns)
    if gaps:
        impl.problems.append(f"no default-deny policy in namespaces {some(gaps)}")
    impl.evidence.append(
        f"default-deny ingress and egress in {len(workload_ns) - len(gaps)} of {len(workload_ns)}"
        f" workload namespaces; {total} network policies"
    )
    impl.problems += _policy_hygiene(view, policies)
    if view.state(POD) != "read":
        impl.evidence += view.unread([POD])
    return [impl], relevant, []


def _default_deny_gaps(view: View, workload_ns: list[str]) -> list[str]:
    """Workload namespaces without default-deny ingress and egress, as "ns (directions)"."""
    denied: dict[str, set[str]] = defaultdict(set)
    for p in view.inv.of(NETPOL):
        denied[namespace_of(p)] |= _np_denies(p)
    for p in view.inv.of(CILIUM_NP):
        denied[namespace_of(p)] |= _cilium_denies(p, namespace_of(p))
    calico = [r for p in view.inv.of(CALICO_GNP) if (r := _calico_denies(p)) is not None]
    cluster_cilium = view.inv.of(CILIUM_CNP)
    gaps = []
    for ns in workload_ns:
        have = set(denied.get(ns, set()))
        for directions, excluded in calico:
            if ns not in excluded:
                have |= directions
        for p in cluster_cilium:
            have |= _cilium_denies(p, ns)
        missing = {"Ingress", "Egress"} - have
        if missing:
            gaps.append(f"{ns} ({'+'.join(sorted(missing)).lower()})")
    return gaps


def _policy_hygiene(view: View, policies: list[dict[str, Any]]) -> list[str]:
    """NetworkPolicies that select no pod of their namespace, and those that allow everything."""
    dead, open_all = [], []
    cache: dict[tuple[str, str], bool] = {}
    pods_read = view.state(POD) == "read"
    for p in policies:
        spec = as_dict(p.get("spec"))
        selector = spec.get("podSelector")
        if selector_empty(selector):
            if any(r == {} for r in as_list(spec.get("ingress"))) or any(r == {} for r in as_list(spec.get("egress"))):
                open_all.append(ref_of(p))
            continue
        if not pods_read:
            continue
        key = (namespace_of(p), selector_text(selector))
        if key not in cache:
            cache[key] = any(selector_matches(selector, dict(labels)) for labels in view.pods.get(namespace_of(p), {}))
        if not cache[key]:
            dead.append(f"{ref_of(p)} {key[1]}")
    problems = []
    if dead:
        problems.append(f"NetworkPolicies whose podSelector selects no pod: {some(dead)}")
    if open_all:
        problems.append(f"NetworkPolicies that allow all traffic to every pod of their namespace: {some(open_all)}")
    return problems


def _rule_action(policy: dict[str, Any], rule: dict[str, Any], part: str) -> str:
    """Enforce or Audit, for a Kyverno validate or verifyImages rule (1.13 failureAction, then the policy's)."""
    nested = rule.get(part)
    entries = nested if isinstance(nested, list) else [nested]
    for entry in entries:
        action = as_text(dig(entry, "failureAction"))
        if action:
            return action.capitalize()
    return (as_text(dig(policy, "spec", "validationFailureAction")) or "Audit").capitalize()


def _kyverno_rules(view: View, part: str) -> tuple[list[str], list[str], list[str]]:
    """(enforcing, audit-only, failing-open) policy refs for Kyverno rules with ``part``."""
    enforce: list[str] = []
    audit: list[str] = []
    fail_open: list[str] = []
    for policy in view.inv.of(KYVERNO_CP) + view.inv.of(KYVERNO_P):
        actions = {
            _rule_action(policy, r, part)
            for r in as_list(dig(policy, "spec", "rules"))
            if isinstance(r, dict) and r.get(part)
        }
        if not actions:
            continue
        (enforce if "Enforce" in actions else audit).append(ref_of(policy))
        if "Enforce" in actions and as_text(dig(policy, "spec", "failurePolicy")) == "Ignore":
            fail_open.append(ref_of(policy))
    return enforce, audit, fail_open


def _kyverno(view: View, part: str, what: str) -> Impl | None:
    enforce, audit, fail_open = _kyverno_rules(view, part)
    controllers = view.found("admission-control", "Kyverno")
    if not (enforce or audit or (controllers and part == "validate")):
        return None
    impl = Impl("Kyverno")
    for dep in controllers:
        impl.problems += deployment_problems(dep)
    if enforce:
        impl.evidence.append(f"policies enforcing {what} ({len(enforce)}): {some(enforce)}")
    else:
        impl.problems.append(f"no policy enforces {what}" + (f" ({len(audit)} in Audit mode only)" if audit else ""))
    if audit and enforce:
        impl.evidence.append(f"policies in Audit mode only ({len(audit)}): {some(audit)}")
    if fail_open:
        impl.problems.append(f"enforcing policies with failurePolicy Ignore: {some(fail_open)}")
    impl.problems += ready_problems(
        (p for p in view.inv.of(KYVERNO_CP) + view.inv.of(KYVERNO_P) if ref_of(p) in enforce), "Kyverno policies"
    )
    return impl


def _gatekeeper(view: View) -> Impl | None:
    inv = view.inv
    templates = [t for t in inv.of(GK_TEMPLATE) if isinstance(t, dict)]
    controllers = view.found("admission-control", "Gatekeeper")
    if not (templates or controllers or view.webhooks.get("Gatekeeper")):
        return None
    impl = Impl("Gatekeeper")
    for dep in controllers:
        impl.problems += deployment_problems(dep)
    add_webhooks(impl, view)
    kinds = [k.key for k in dynamic_kinds(inv)]
    unread = [k for k in kinds if view.state(k) not in ("read", "missing")]
    constraints = [
        c for key, objs in inv.objects.items() if key.endswith(GK_CONSTRAINTS) for c in objs if isinstance(c, dict)
    ]
    deny = [ref_of(c) for c in constraints if (as_text(dig(c, "spec", "enforcementAction")) or "deny") == "deny"]
    if unread:
        impl.unknowns.append(f"constraints not read ({some(unread)}): their enforcementAction is unknown")
    elif not constraints:
        impl.problems.append("no constraints: Gatekeeper enforces nothing")
    elif not deny:
        impl.problems.append(f"all {len(constraints)} constraints are dryrun/warn (enforcementAction), none deny")
    else:
        impl.evidence.append(f"{len(deny)} of {len(constraints)} constraints deny")
    return impl


def _vap(view: View) -> Impl | None:
    inv = view.inv
    policies = {name_of(p): p for p in inv.of(VAP) if isinstance(p, dict)}
    bindings = [b for b in inv.of(VAPB) if isinstance(b, dict)]
    if not policies and not bindings:
        return None
    impl = Impl("ValidatingAdmissionPolicy")
    denying, dangling, fail_open = [], [], []
    for b in bindings:
        target = as_text(dig(b, "spec", "policyName"))
        actions = {str(a) for a in as_list(dig(b, "spec", "validationActions"))}
        if target not in policies:
            dangling.append(f"{name_of(b)} -> {target or '?'}")
            continue
        if "Deny" in actions:
            denying.append(target)
            if as_text(dig(policies[target], "spec", "failurePolicy")) == "Ignore":
                fail_open.append(target)
    unbound = sorted(set(policies) - {as_text(dig(b, "spec", "policyName")) for b in bindings})
    ours = sum(1 for p in policies.values() if labels_of(p).get("app.kubernetes.io/managed-by") == "factorygate")
    impl.evidence.append(f"policies: {len(policies)} ({ours} from factorygate), bound with Deny: {len(set(denying))}")
    if not denying:
        impl.problems.append("no ValidatingAdmissionPolicyBinding with validationActions [Deny] (Warn/Audit only)")
    if fail_open:
        impl.problems.append(f"policies bound with Deny but failurePolicy Ignore: {some(sorted(set(fail_open)))}")
    if dangling:
        impl.problems.append(f"bindings to policies that do not exist: {some(dangling)}")
    if unbound:
        impl.evidence.append(f"policies without a binding (not enforced): {some(unbound)}")
    return impl


def _admission(view: View) -> Detection:
    impls = []
    if view.webhooks.get("factorygate"):
        impl = Impl("factorygate")
        add_webhooks(impl, view)
        impls.append(impl)
    for found in (_kyverno(view, "validate", "validate rules"), _gatekeeper(view), _vap(view)):
        if found is not None:
            impls.append(found)
    return impls, [VWC, VAP, VAPB, KYVERNO_CP, GK_TEMPLATE, DEPLOYMENT], []


def _node_agents(capability: str) -> Any:
    def detect(view: View) -> Detection:
        by_name: dict[str, Impl] = {}
        for agent, ds in view.agents.get(capability, []):
            impl = by_name.setdefault(agent.name, Impl(agent.name))
            impl.problems += daemonset_problems(ds, view)
            status = as_dict(ds.get("status"))
            impl.evidence.append(
                f"DaemonSet {ref_of(ds)}: {as_int(status.get('numberReady'))} of"
                f" {as_int(status.get('desiredNumberScheduled'))} pods ready"
            )
        if by_name and view.state(NODE) != "read":
            for impl in by_name.values():
                impl.evidence.append("nodes not read: coverage judged from the DaemonSet status only")
        return list(by_name.values()), [DAEMONSET], []

    return detect


def _controllers(capability: str, view: View) -> dict[str, Impl]:
    by_name: dict[str, Impl] = {}
    for agent, dep in view.agents.get(capability, []):
        impl = by_name.setdefault(agent.name, Impl(agent.name))
        problems = deployment_problems(dep)
        impl.problems += problems
        if not problems:
            impl.evidence.append(f"Deployment {ref_of(dep)} available")
    return by_name


def _vulnerability_management(view: View) -> Detection:
    return list(_controllers("vulnerability-management", view).values()), [DEPLOYMENT], []


def _gitops(view: View) -> Detection:
    inv = view.inv
    found = _controllers("gitops", view)
    reconcilers = [o for key in (FLUX_KS, FLUX_HR) for o in inv.of(key) if isinstance(o, dict)]
    sources = [o for key in (FLUX_GIT, FLUX_OCI) for o in inv.of(key) if isinstance(o, dict)]
    if reconcilers or sources or "Flux" in found:
        impl = found.setdefault("Flux", Impl("Flux"))
        if not reconcilers:
            impl.problems.append("no Kustomization or HelmRelease: Flux reconciles nothing")
        suspended = [
            f"{as_text(o.get('kind'))} {ref_of(o)}" for o in reconcilers + sources if dig(o, "spec", "suspend") is True
        ]
        if suspended:
            impl.problems.append(f"suspended (not reconciled): {some(suspended)}")
        impl.problems += ready_problems(reconcilers + sources, "Flux objects")
        impl.evidence.append(f"{len(sources)} sources, {len(reconcilers)} Kustomizations/HelmReleases")
    apps = [a for a in inv.of(ARGO_APP) if isinstance(a, dict)]
    if apps or "Argo CD" in found:
        impl = found.setdefault("Argo CD", Impl("Argo CD"))
        if not apps:
            impl.problems.append("no Application: Argo CD reconciles nothing")
        manual = [ref_of(a) for a in apps if not isinstance(dig(a, "spec", "syncPolicy", "automated"), dict)]
        if manual:
            impl.problems.append(f"Applications without automated sync (no continuous reconciliation): {some(manual)}")
        drift = []
        for a in apps:
            sync, health = as_text(dig(a, "status", "sync", "status")), as_text(dig(a, "status", "health", "status"))
            if sync == "OutOfSync" or health in ("Degraded", "Missing"):
                drift.append(f"{ref_of(a)} ({sync}/{health})")
        if drift:
            impl.problems.append(f"Applications out of sync or unhealthy: {some(drift)}")
        impl.evidence.append(f"{len(apps)} Applications")
    return list(found.values()), [DEPLOYMENT, FLUX_KS, ARGO_APP], []


def _image_verification(view: View) -> Detection:
    inv, impls, notes = view.inv, [], []
    kyverno = _kyverno(view, "verifyImages", "image signatures (verifyImages)")
    if kyverno is not None:
        impls.append(kyverno)
    found = _controllers("image-signature-verification", view)
    cips = [c for c in inv.of(SIGSTORE_CIP) if isinstance(c, dict)]
    if cips or "Sigstore policy-controller" in found or view.webhooks.get("Sigstore policy-controller"):
        impl = found.setdefault("Sigstore policy-controller", Impl("Sigstore policy-controller"))
        add_webhooks(impl, view)
        if not cips:
            impl.problems.append("no ClusterImagePolicy: nothing is verified")
        warn = [name_of(c) for c in cips if as_text(dig(c, "spec", "mode")) == "warn"]
        if warn:
            impl.problems.append(f"ClusterImagePolicies in warn mode: {some(warn)}")
        impl.evidence.append(f"{len(cips)} ClusterImagePolicies")
    if "Connaisseur" in found or view.webhooks.get("Connaisseur"):
        impl = found.setdefault("Connaisseur", Impl("Connaisseur"))
        add_webhooks(impl, view)
    impls += found.values()
    oci = [o for o in inv.of(FLUX_OCI) if isinstance(o, dict)]
    verified = [ref_of(o) for o in oci if isinstance(dig(o, "spec", "verify"), dict)]
    unverified = [ref_of(o) for o in oci if ref_of(o) not in set(verified)]
    if verified:
        impl = Impl("Flux OCIRepository verification")
        impl.evidence.append(f"{len(verified)} OCIRepositories verify signatures: {some(verified)}")
        if unverified:
            impl.problems.append(f"OCIRepositories without spec.verify: {some(unverified)}")
        impls.append(impl)
    elif unverified:
        notes.append(f"OCIRepositories without spec.verify: {some(unverified)}")
    return impls, [DEPLOYMENT, VWC, KYVERNO_CP, SIGSTORE_CIP], notes


def _certificates(view: View) -> Detection:
    inv = view.inv
    found = _controllers("certificate-management", view)
    issuers = [o for key in (CM_ISSUER, CM_CISSUER) for o in inv.of(key) if isinstance(o, dict)]
    certs = [o for o in inv.of(CM_CERT) if isinstance(o, dict)]
    if issuers or certs or "cert-manager" in found:
        impl = found.setdefault("cert-manager", Impl("cert-manager"))
        if not issuers and view.state(CM_CISSUER) == "read":
            impl.problems.append("no Issuer or ClusterIssuer: cert-manager can issue nothing")
        impl.problems += ready_problems(issuers, "issuers")
        impl.problems += ready_problems(certs, "certificates")
        impl.evidence.append(f"{len(issuers)} issuers, {len(certs)} certificates")
    return list(found.values()), [DEPLOYMENT, CM_CISSUER], []


DETECTORS: dict[str, Any] = {
    "service-mesh-mtls": _service_mesh,
    "network-policy": _network_policy,
    "admission-control": _admission,
    "logging-agent": _node_agents("logging-agent"),
    "runtime-defense": _node_agents("runtime-defense"),
    "vulnerability-management": _vulnerability_management,
    "gitops": _gitops,
    "image-signature-verification": _image_verification,
    "certificate-management": _certificates,
}


# --- declared implementations ------------------------------------------------------------------------------


def declared_impl(view: View, decl: DeclaredImplementation) -> tuple[Impl | None, str]:
    """The declared implementation if its objects are there (or unreadable), else (None, a note)."""
    det = decl.detect
    name = f"{decl.name} (declared)"
    where = " ".join(
        p
        for p in (
            det.kind,
            f"{det.namespace or '*'}/{det.name or '*'}",
            ",".join(f"{k}={v}" for k, v in sorted(det.labels.items())),
        )
        if p
    )
    state = view.state(det.kind)
    if state in ("forbidden", "unread"):
        return Impl(name, unknowns=[f"{decl.name}: " + view.unread([det.kind])[0]]), ""
    matched = []
    for obj in view.inv.of(det.kind):
        if det.namespace is not None and not fnmatch.fnmatchcase(namespace_of(obj), det.namespace):
            continue
        if det.name is not None and not fnmatch.fnmatchcase(name_of(obj), det.name):
            continue
        labels = labels_of(obj)
        if any(labels.get(k) != v for k, v in det.labels.items()):
            continue
        matched.append(obj)
    if not matched:
        return None, f"declared {decl.name}: no {where}" + (" (the API is not served)" if state == "missing" else "")
    impl = Impl(name, evidence=[f"declared {decl.name}: found {det.kind} {some([ref_of(o) for o in matched])}"])
    for obj in matched:
        impl.problems += workload_problems(obj, view)
    return impl, ""
