"""k8s-network-policy-coverage: every workload is selected by a NetworkPolicy in its namespace.

The check is evaluated over all inputs at once, so these tests scan multi-document streams with the
whole engine; ``selector_matches`` (metav1.LabelSelector semantics) is also tested on its own.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from factorygate.catalog import load_catalog
from factorygate.checks.network import network_policy_from, selector_matches
from factorygate.engine import KUBERNETES_KINDS, Engine
from factorygate.inputs.kubernetes import manifests_from_bytes
from factorygate.model import Finding, Status
from factorygate.policy import default_policy_text, parse_policy

CATALOG = load_catalog()
CHECK = "k8s-network-policy-coverage"


def scan(text: str, policy_text: str | None = None) -> list[Finding]:
    """The coverage findings of a full engine run over dedented inline YAML (no error allowed)."""
    pol = parse_policy(policy_text or default_policy_text(), "p", set(CATALOG.checks))
    items = manifests_from_bytes(textwrap.dedent(text).lstrip("\n").encode(), "t.yaml", kinds=KUBERNETES_KINDS)
    findings = Engine(CATALOG, pol).run(items, ["t.yaml"]).findings
    assert [f for f in findings if f.status is Status.ERROR] == []
    return [f for f in findings if f.check == CHECK]


def coverage(findings: Iterable[Finding]) -> dict[str, str]:
    """The namespace/name of each workload -> status (one finding per workload, never per container)."""
    out: dict[str, str] = {}
    for f in findings:
        assert f.resource is not None
        assert f.container is None
        key = f"{f.resource.namespace or ''}/{f.resource.name}"
        assert key not in out, f"two coverage findings for {key}"
        out[key] = f.status.value
    return out


def deployment(name: str, namespace: str | None, labels: str = "{app: web}") -> str:
    ns = f", namespace: {namespace}" if namespace else ""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}{ns}}}
spec:
  template:
    metadata: {{labels: {labels}}}
    spec:
      containers:
        - {{name: app, image: x}}
---"""


def netpol(name: str, namespace: str | None, selector: str = "{}") -> str:
    ns = f", namespace: {namespace}" if namespace else ""
    return f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {name}{ns}}}
spec:
  podSelector: {selector}
---"""


# -- selector semantics -----------------------------------------------------------------------------
LABELS = {"app": "web", "tier": "frontend"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ({}, True),
        ({"matchLabels": {}}, True),
        ({"matchLabels": {"app": "web"}}, True),
        ({"matchLabels": {"app": "web", "tier": "frontend"}}, True),
        ({"matchLabels": {"app": "api"}}, False),
        ({"matchLabels": {"app": "web", "tier": "backend"}}, False),
        ({"matchLabels": {"missing": "web"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend", "edge"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["backend"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["backend"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["frontend"]}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "app", "operator": "Equals", "values": ["web"]}]}, False),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "Exists"},
                    {"key": "zone", "operator": "DoesNotExist"},
                ],
            },
            True,
        ),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["backend"]}],
            },
            False,
        ),
        ({"matchLabels": "oops", "matchExpressions": [1, None]}, False),
    ],
)
def test_selector_matches(selector: Mapping[str, Any], matches: bool) -> None:
    assert selector_matches(selector, LABELS) is matches


def test_empty_selector_matches_a_pod_without_labels() -> None:
    assert selector_matches({}, {}) is True
    assert selector_matches({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}) is True
    assert selector_matches({"matchLabels": {"a": "b"}}, {}) is False


def test_network_policy_facts() -> None:
    np = network_policy_from(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}}},
        }
    )
    assert np is not None
    assert (np.namespace, np.name, dict(np.pod_selector)) == ("shop", "deny", {"matchLabels": {"app": "web"}})
    missing = network_policy_from({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"})
    assert missing is not None
    assert (missing.namespace, missing.name, dict(missing.pod_selector)) == (None, "<unnamed>", {})
    assert network_policy_from({"apiVersion": "v1", "kind": "ConfigMap"}) is None
    assert network_policy_from({"apiVersion": "apps/v1", "kind": "NetworkPolicy"}) is None


# -- coverage over a set of manifests -----------------------------------------------------------------
def test_deployment_without_any_network_policy_fails() -> None:
    text = deployment("web", "shop")
    findings = scan(text)
    assert coverage(findings) == {"shop/web": "fail"}
    f = findings[0]
    assert f.message == "no NetworkPolicy in namespace shop"
    assert f.location.path == "spec.template.spec"
    lines = textwrap.dedent(text).lstrip("\n").splitlines()
    assert lines[f.location.line - 1].strip() in ("spec:", "containers:")
    assert f.requirements == ("CK-microsegmentation",)


def test_empty_pod_selector_covers_every_pod_in_its_namespace() -> None:
    findings = scan(
        deployment("web", "shop")
        + deployment("api", "shop", "{app: api}")
        + deployment("nolabels", "shop", "{}")
        + netpol("default-deny", "shop")
    )
    assert coverage(findings) == {"shop/web": "pass", "shop/api": "pass", "shop/nolabels": "pass"}
    assert {f.message for f in findings} == {"selected by NetworkPolicy default-deny"}


def test_policy_listed_after_or_before_the_workload_counts() -> None:
    before = scan(netpol("default-deny", "shop") + deployment("web", "shop"))
    after = scan(deployment("web", "shop") + netpol("default-deny", "shop"))
    assert coverage(before) == coverage(after) == {"shop/web": "pass"}


@pytest.mark.parametrize(
    ("selector", "status"),
    [
        ("{matchLabels: {app: web}}", "pass"),
        ("{matchLabels: {app: api}}", "fail"),
        ("{matchLabels: {app: web, tier: backend}}", "fail"),
        ("{matchExpressions: [{key: app, operator: In, values: [web, api]}]}", "pass"),
        ("{matchExpressions: [{key: app, operator: In, values: [api]}]}", "fail"),
        ("{matchExpressions: [{key: app, operator: NotIn, values: [api]}]}", "pass"),
        ("{matchExpressions: [{key: app, operator: NotIn, values: [web]}]}", "fail"),
        ("{matchExpressions: [{key: app, operator: Exists}]}", "pass"),
        ("{matchExpressions: [{key: team, operator: Exists}]}", "fail"),
        ("{matchExpressions: [{key: team, operator: DoesNotExist}]}", "pass"),
        ("{matchExpressions: [{key: app, operator: DoesNotExist}]}", "fail"),
    ],
)
def test_pod_selector_match_and_mismatch(selector: str, status: str) -> None:
    findings = scan(deployment("web", "shop") + netpol("web-policy", "shop", selector))
    assert coverage(findings) == {"shop/web": status}
    if status == "pass":
        assert findings[0].message == "selected by NetworkPolicy web-policy"
    else:
        assert findings[0].message == "no NetworkPolicy in namespace shop selects its pods (1 policies there)"


def test_selector_matches_pod_template_labels_not_deployment_labels() -> None:
    findings = scan(
        textwrap.dedent("""
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: web
              namespace: shop
              labels: {app: web}
            spec:
              template:
                metadata: {labels: {app: web-pod}}
                spec:
                  containers: [{name: app, image: x}]
            ---""")
        + netpol("only-web", "shop", "{matchLabels: {app: web}}")
        + netpol("web-pods", "shop", "{matchLabels: {app: web-pod}}")
    )
    assert coverage(findings) == {"shop/web": "pass"}
    assert findings[0].message == "selected by NetworkPolicy web-pods"


def test_policy_in_another_namespace_does_not_count() -> None:
    findings = scan(deployment("web", "shop") + netpol("default-deny", "other") + netpol("allow-all", None))
    assert coverage(findings) == {"shop/web": "fail"}
    assert findings[0].message == "no NetworkPolicy in namespace shop"


def test_each_workload_is_judged_by_its_own_namespace() -> None:
    findings = scan(
        deployment("web", "shop")
        + deployment("web", "blog")
        + deployment("web", None)
        + netpol("default-deny", "shop")
        + netpol("api-only", "blog", "{matchLabels: {app: api}}")
    )
    assert coverage(findings) == {"shop/web": "pass", "blog/web": "fail", "/web": "fail"}
    messages = {f.resource.namespace if f.resource else None: f.message for f in findings}
    assert messages["blog"] == "no NetworkPolicy in namespace blog selects its pods (1 policies there)"
    assert messages[None] == "no NetworkPolicy in the manifests' (unset) namespace"


def test_manifests_without_namespace_match_policies_without_namespace() -> None:
    findings = scan(deployment("web", None) + netpol("default-deny", None))
    assert coverage(findings) == {"/web": "pass"}
    assert findings[0].message == "selected by NetworkPolicy default-deny"


def test_policy_without_namespace_does_not_cover_a_namespaced_workload() -> None:
    # the documented semantics: unset only matches unset (no guessing that unset means "default")
    assert coverage(scan(deployment("web", "default") + netpol("deny", None))) == {"default/web": "fail"}
    assert coverage(scan(deployment("web", None) + netpol("deny", "default"))) == {"/web": "fail"}


def test_several_matching_policies_are_named_sorted_and_capped() -> None:
    findings = scan(
        deployment("web", "shop")
        + netpol("d-policy", "shop")
        + netpol("a-policy", "shop", "{matchLabels: {app: web}}")
        + netpol("c-policy", "shop")
        + netpol("b-policy", "shop", "{matchExpressions: [{key: app, operator: Exists}]}")
        + netpol("z-other", "shop", "{matchLabels: {app: other}}")
    )
    assert coverage(findings) == {"shop/web": "pass"}
    assert findings[0].message == "selected by NetworkPolicy a-policy, b-policy, c-policy"


def test_every_workload_kind_gets_one_coverage_finding() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: pod, namespace: shop, labels: {app: web}}
        spec:
          containers: [{name: a, image: x}, {name: b, image: x}]
        ---
        apiVersion: batch/v1
        kind: CronJob
        metadata: {name: cron, namespace: shop}
        spec:
          jobTemplate:
            spec:
              template:
                metadata: {labels: {app: web}}
                spec:
                  containers: [{name: a, image: x}]
        ---
        apiVersion: v1
        kind: PodTemplate
        metadata: {name: tmpl, namespace: shop}
        template:
          metadata: {labels: {app: other}}
          spec:
            containers: [{name: a, image: x}]
        ---
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata: {name: web, namespace: shop}
        spec:
          podSelector: {matchLabels: {app: web}}
        """)
    assert coverage(findings) == {"shop/pod": "pass", "shop/cron": "pass", "shop/tmpl": "fail"}
    paths = {f.resource.name if f.resource else "": f.location.path for f in findings}
    assert paths == {"pod": "spec", "cron": "spec.jobTemplate.spec.template.spec", "tmpl": "template.spec"}


def test_network_policy_inside_a_list_counts() -> None:
    findings = scan("""
        apiVersion: v1
        kind: List
        items:
          - apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: deny, namespace: shop}
            spec: {podSelector: {}}
          - apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web, namespace: shop}
            spec:
              template:
                metadata: {labels: {app: web}}
                spec:
                  containers: [{name: app, image: x}]
        """)
    assert coverage(findings) == {"shop/web": "pass"}


def test_a_network_policy_is_not_itself_a_workload() -> None:
    assert scan(netpol("deny", "shop")) == []


def test_malformed_network_policies_do_not_crash() -> None:
    findings = scan(
        deployment("web", "shop")
        + """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: broken, namespace: shop}
spec: "oops"
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: [1]
spec:
  podSelector: {matchLabels: [1], matchExpressions: {a: b}}
---"""
    )
    # spec "oops" reads as an empty podSelector: it selects every pod in shop
    assert coverage(findings) == {"shop/web": "pass"}
    assert findings[0].message == "selected by NetworkPolicy broken"


def test_exempt_namespaces_get_no_coverage_finding() -> None:
    pol = "apiVersion: factorygate.dev/v1\nkind: Policy\nparameters:\n  exempt_namespaces: ['kube-*']\n"
    findings = scan(deployment("proxy", "kube-system") + deployment("web", "shop"), pol)
    assert coverage(findings) == {"shop/web": "fail"}


def test_disabled_check_yields_nothing() -> None:
    pol = f"apiVersion: factorygate.dev/v1\nkind: Policy\nchecks:\n  {CHECK}: {{enabled: false}}\n"
    assert scan(deployment("web", "shop"), pol) == []
