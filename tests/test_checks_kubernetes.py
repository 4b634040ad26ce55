"""The Kubernetes workload checks, through the whole engine.

Two layers:
- fixture files under tests/fixtures/checks/<check-id>/{pass,fail}/ (Checkov style): each file is
  scanned and the named check must only pass (pass/) or fail exactly where the file's
  ``# expect-fail: <container>[, <container>...]`` markers say (fail/; ``pod`` means a pod-level
  finding, container None);
- named unit tests with inline YAML for the semantics that are easy to get wrong (inheritance of
  pod-level security context fields, init/ephemeral containers, Windows pods, image references,
  host paths, credentials in env, every workload kind, malformed manifests).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest

from factorygate.catalog import load_catalog
from factorygate.engine import KUBERNETES_KINDS, Engine
from factorygate.facts.images import parse_image
from factorygate.facts.workload import INHERITED_FIELDS, workload_from
from factorygate.inputs.kubernetes import manifests_from_bytes
from factorygate.model import Finding, Status, SubjectKind
from factorygate.policy import default_policy_text, parse_policy

CATALOG = load_catalog()
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "checks"
DIGEST = "sha256:" + "0123456789abcdef" * 4
IRONBANK = f"registry1.dso.mil/ironbank/opensource/nginx:1.25@{DIGEST}"
KUBERNETES_CHECKS = sorted(
    c.id
    for c in CATALOG.checks.values()
    if c.subject in (SubjectKind.KUBERNETES_WORKLOAD, SubjectKind.KUBERNETES_BUNDLE)
)
# Checks that yield one finding per container; the others yield one per pod (container None).
POD_LEVEL_CHECKS = {
    "k8s-no-host-namespaces",
    "k8s-labels-and-placement",
    "k8s-volume-types",
    "k8s-no-host-path",
    "k8s-safe-sysctls",
    "k8s-network-policy-coverage",
}


# -- helpers ----------------------------------------------------------------------------------
def scan_text(text: str, policy_text: str | None = None, name: str = "t.yaml") -> list[Finding]:
    """Every finding of a full engine run over one YAML stream."""
    pol = parse_policy(policy_text or default_policy_text(), "p", set(CATALOG.checks))
    items = manifests_from_bytes(text.encode(), name, kinds=KUBERNETES_KINDS)
    return Engine(CATALOG, pol).run(items, [name]).findings


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def scan(text: str, policy_text: str | None = None) -> list[Finding]:
    """scan_text over dedented inline YAML; the run must not produce any error finding."""
    findings = scan_text(yaml_text(text), policy_text)
    errors = [(f.check, f.message) for f in findings if f.status is Status.ERROR]
    assert not errors
    return findings


def policy(**parameters: list[str]) -> str:
    """A policy that sets only the given parameters (everything else keeps its default)."""
    lines = ["apiVersion: factorygate.dev/v1", "kind: Policy", "parameters:"]
    lines += [f"  {k}: [{', '.join(repr(v) for v in vs)}]" for k, vs in parameters.items()]
    return "\n".join(lines) + "\n"


def of(findings: Iterable[Finding], check: str) -> list[Finding]:
    assert check in CATALOG.checks, check
    return [f for f in findings if f.check == check]


def by_container(findings: Iterable[Finding], check: str) -> dict[str | None, str]:
    """container (None for the pod) -> status, asserting one finding per container."""
    out: dict[str | None, str] = {}
    for f in of(findings, check):
        assert f.container not in out, f"two findings of {check} for {f.container!r}"
        out[f.container] = f.status.value
    return out


def only(findings: Iterable[Finding], check: str, container: str | None = None) -> Finding:
    """The single finding of ``check`` about ``container`` (None: the pod)."""
    hits = [f for f in of(findings, check) if f.container == container]
    assert len(hits) == 1, [(f.container, f.status.value, f.message) for f in of(findings, check)]
    return hits[0]


def line_of(text: str, needle: str) -> int:
    """1-based line of the one line of the dedented ``text`` containing ``needle``."""
    lines = yaml_text(text).splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if needle in line]
    assert len(hits) == 1, f"{needle!r} is on lines {hits}"
    return hits[0]


# -- fixture files ----------------------------------------------------------------------------
_MARKER = re.compile(r"#\s*expect-fail:\s*(.+?)\s*$")


def _fixture_files(status: str) -> list[tuple[str, Path]]:
    return [(p.parent.parent.name, p) for p in sorted(FIXTURES.glob(f"*/{status}/*.yaml"))]


def _fixture_id(item: tuple[str, Path]) -> str:
    return f"{item[0]}/{item[1].parent.name}/{item[1].name}"


def _expected_failures(text: str) -> list[tuple[int, str | None]]:
    """(line, container or None) for each marker."""
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        m = _MARKER.search(line)
        if not m:
            continue
        for raw in m.group(1).split(","):
            name = raw.strip()
            out.append((n, None if name == "pod" else name))
    return out


def _scan_fixture(path: Path) -> list[Finding]:
    findings = scan_text(path.read_text(encoding="utf-8"), name=str(path))
    errors = [(f.check, f.message) for f in findings if f.status is Status.ERROR]
    assert not errors, f"{path}: {errors}"
    return findings


@pytest.mark.parametrize("item", _fixture_files("pass"), ids=_fixture_id)
def test_fixture_passes(item: tuple[str, Path]) -> None:
    check, path = item
    assert not _MARKER.search(path.read_text(encoding="utf-8")), "pass fixtures carry no expect-fail marker"
    findings = of(_scan_fixture(path), check)
    assert findings, f"{check} yielded nothing for {path.name}: the fixture does not exercise it"
    assert [(f.container, f.message) for f in findings if f.status is not Status.PASS] == []


@pytest.mark.parametrize("item", _fixture_files("fail"), ids=_fixture_id)
def test_fixture_fails_where_marked(item: tuple[str, Path]) -> None:
    check, path = item
    text = path.read_text(encoding="utf-8")
    expected = _expected_failures(text)
    assert expected, f"{path.name} has no '# expect-fail: <container>' marker"
    failed = [f for f in of(_scan_fixture(path), check) if f.status is Status.FAIL]
    assert failed, f"{check} did not fail on {path.name}"
    assert all(f.location.file == str(path) for f in failed)
    if check in POD_LEVEL_CHECKS:
        assert all(f.container is None for f in failed)
    # A finding points at the line of the key of the offending field (``resources:``, ``spec:``).
    unmatched = [(f.location.line, f.container, f.message) for f in failed]
    for line, container in expected:
        hit = next((u for u in unmatched if u[0] == line and u[1] == container), None)
        assert hit is not None, f"no {check} failure for {container or 'the pod'} at line {line}: {unmatched}"
        unmatched.remove(hit)
    assert unmatched == [], "failures the file does not mark"


def test_every_kubernetes_check_has_pass_and_fail_fixtures() -> None:
    assert len(KUBERNETES_CHECKS) >= 28
    missing = []
    for check in KUBERNETES_CHECKS:
        for status in ("pass", "fail"):
            if not list((FIXTURES / check / status).glob("*.yaml")):
                missing.append(f"{check}/{status}")
    assert missing == [], "add fixture manifests under tests/fixtures/checks/<check-id>/{pass,fail}/"


def test_fixture_folders_name_catalog_checks() -> None:
    folders = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    assert folders == set(KUBERNETES_CHECKS)
    strays = [p for p in FIXTURES.glob("*/*") if p.name not in ("pass", "fail")]
    assert strays == []


def test_pod_level_checks_are_the_documented_ones() -> None:
    for check in POD_LEVEL_CHECKS:
        meta = CATALOG.checks[check]
        assert "pod-level finding" in meta.description or meta.subject is SubjectKind.KUBERNETES_BUNDLE, check


# -- a fully hardened workload passes everything -----------------------------------------------
HARDENED = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  template:
    metadata:
      labels: {{app: web}}
    spec:
      nodeSelector: {{node-pool: general}}
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        seccompProfile: {{type: RuntimeDefault}}
      containers:
        - name: web
          image: {IRONBANK}
          ports: [{{containerPort: 8080}}]
          resources:
            requests: {{cpu: 100m, memory: 128Mi}}
            limits: {{cpu: 500m, memory: 256Mi}}
          livenessProbe: {{httpGet: {{path: /healthz, port: 8080}}}}
          readinessProbe: {{httpGet: {{path: /ready, port: 8080}}}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {{drop: [ALL]}}
          volumeMounts: [{{name: tmp, mountPath: /tmp}}]
      volumes:
        - {{name: tmp, emptyDir: {{}}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: default-deny, namespace: shop}}
spec:
  podSelector: {{}}
"""


def test_hardened_deployment_passes_every_check() -> None:
    findings = scan(HARDENED)
    assert {f.check for f in findings} == set(KUBERNETES_CHECKS)
    assert [(f.check, f.message) for f in findings if f.status is not Status.PASS] == []
    for f in findings:
        expected = None if f.check in POD_LEVEL_CHECKS else "web"
        assert f.container == expected, f.check
        assert f.resource is not None
        assert (f.resource.kind, f.resource.namespace, f.resource.name) == ("Deployment", "shop", "web")


# -- inheritance of pod-level security context -------------------------------------------------
def test_pod_run_as_non_root_is_inherited() -> None:
    text = """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          securityContext:
            runAsNonRoot: true
          initContainers:
            - {name: init, image: x}
          containers:
            - {name: a, image: x}
            - {name: b, image: x}
        """
    findings = scan(text)
    assert by_container(findings, "k8s-run-as-non-root") == {"init": "pass", "a": "pass", "b": "pass"}
    assert {f.location.line for f in of(findings, "k8s-run-as-non-root")} == {line_of(text, "runAsNonRoot: true")}


def test_container_run_as_non_root_false_overrides_pod_true() -> None:
    text = """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          securityContext: {runAsNonRoot: true}
          containers:
            - name: rooty
              image: x
              securityContext:
                runAsNonRoot: false
            - {name: fine, image: x}
        """
    findings = scan(text)
    assert by_container(findings, "k8s-run-as-non-root") == {"rooty": "fail", "fine": "pass"}
    bad = only(findings, "k8s-run-as-non-root", "rooty")
    assert bad.location.line == line_of(text, "runAsNonRoot: false")
    assert bad.location.path == "spec.containers[0].securityContext.runAsNonRoot"
    assert "False" in bad.message


def test_run_as_non_root_unset_fails_at_the_container() -> None:
    text = """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
            - name: app
              image: x
        """
    bad = only(scan(text), "k8s-run-as-non-root", "app")
    assert bad.status is Status.FAIL
    assert "not set" in bad.message
    assert bad.location.line == line_of(text, "- name: app")


def test_container_run_as_user_overrides_pod_root() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          securityContext: {runAsUser: 0}
          containers:
            - name: app
              image: x
              securityContext: {runAsUser: 1000}
        """)
    ok = only(findings, "k8s-run-as-non-root-user", "app")
    assert ok.status is Status.PASS
    assert "1000" in ok.message


def test_pod_run_as_user_zero_is_inherited_and_points_at_the_pod() -> None:
    text = """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: d}
        spec:
          template:
            spec:
              securityContext:
                runAsUser: 0
              containers:
                - {name: app, image: x}
        """
    bad = only(scan(text), "k8s-run-as-non-root-user", "app")
    assert bad.status is Status.FAIL
    assert bad.location.path == "spec.template.spec.securityContext.runAsUser"
    assert bad.location.line == line_of(text, "runAsUser: 0")
    assert "inherits" in bad.message


def test_run_as_user_unset_passes() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers: [{name: app, image: x}]
        """)
    assert by_container(findings, "k8s-run-as-non-root-user") == {"app": "pass"}


def test_pod_seccomp_profile_is_inherited() -> None:
    text = """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          securityContext:
            seccompProfile: {type: RuntimeDefault}
          initContainers: [{name: init, image: x}]
          containers: [{name: app, image: x}]
          ephemeralContainers: [{name: debug, image: x}]
        """
    findings = scan(text)
    assert by_container(findings, "k8s-seccomp-profile") == {"init": "pass", "app": "pass", "debug": "pass"}
    assert {f.location.line for f in of(findings, "k8s-seccomp-profile")} == {line_of(text, "RuntimeDefault")}


def test_container_unconfined_seccomp_overrides_pod_runtime_default() -> None:
    text = """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          securityContext:
            seccompProfile: {type: RuntimeDefault}
          containers:
            - name: loose
              image: x
              securityContext:
                seccompProfile:
                  type: Unconfined
            - {name: strict, image: x}
        """
    findings = scan(text)
    assert by_container(findings, "k8s-seccomp-profile") == {"loose": "fail", "strict": "pass"}
    bad = only(findings, "k8s-seccomp-profile", "loose")
    assert bad.location.line == line_of(text, "type: Unconfined")
    assert "'Unconfined'" in bad.message


@pytest.mark.parametrize("level", ["pod", "container"])
def test_seccomp_localhost_passes(level: str) -> None:
    sc = "securityContext: {seccompProfile: {type: Localhost, localhostProfile: my.json}}"
    pod_sc, container_sc = (sc, "") if level == "pod" else ("", sc)
    findings = scan(f"""
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  {pod_sc}
  containers:
    - name: app
      image: x
      {container_sc}
""")
    ok = only(findings, "k8s-seccomp-profile", "app")
    assert ok.status is Status.PASS
    assert ok.message == "seccomp profile Localhost"


def test_seccomp_unset_fails() -> None:
    bad = only(
        scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers: [{name: app, image: x}]
        """),
        "k8s-seccomp-profile",
        "app",
    )
    assert bad.status is Status.FAIL
    assert "no seccomp profile" in bad.message


def test_pod_apparmor_unconfined_is_inherited() -> None:
    text = """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          securityContext:
            appArmorProfile: {type: Unconfined}
          containers:
            - {name: a, image: x}
            - name: b
              image: x
              securityContext:
                appArmorProfile: {type: RuntimeDefault}
        """
    findings = scan(text)
    assert by_container(findings, "k8s-apparmor") == {"a": "fail", "b": "pass"}
    bad = only(findings, "k8s-apparmor", "a")
    assert bad.location.path == "spec.securityContext.appArmorProfile.type"
    assert bad.location.line == line_of(text, "type: Unconfined")
    assert "Unconfined" in bad.message


@pytest.mark.parametrize(
    ("value", "status"),
    [("unconfined", "fail"), ("runtime/default", "pass"), ("localhost/x", "pass")],
)
def test_legacy_apparmor_annotation(value: str, status: str) -> None:
    findings = scan(f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: d}}
        spec:
          template:
            metadata:
              annotations:
                container.apparmor.security.beta.kubernetes.io/app: {value}
            spec:
              containers:
                - {{name: app, image: x}}
                - {{name: other, image: x}}
        """)
    assert by_container(findings, "k8s-apparmor") == {"app": status, "other": "pass"}
    if status == "fail":
        assert "container.apparmor.security.beta.kubernetes.io/app" in only(findings, "k8s-apparmor", "app").message


@pytest.mark.parametrize(
    ("options", "status"),
    [
        ("{user: system_u}", "fail"),
        ("{role: system_r}", "fail"),
        ("{type: container_t}", "pass"),
        ("{type: container_init_t}", "pass"),
        ("{type: spc_t}", "fail"),
        ("{level: 's0:c1,c2'}", "pass"),
    ],
)
@pytest.mark.parametrize("level", ["pod", "container"])
def test_selinux_options(options: str, status: str, level: str) -> None:
    sc = f"securityContext: {{seLinuxOptions: {options}}}"
    pod_sc, container_sc = (sc, "") if level == "pod" else ("", sc)
    text = f"""
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  {pod_sc}
  containers:
    - name: app
      image: x
      {container_sc}
    - {{name: other, image: x}}
"""
    findings = scan(text)
    expected_other = status if level == "pod" else "pass"  # a pod-level value applies to every container
    assert by_container(findings, "k8s-selinux-options") == {"app": status, "other": expected_other}
    if status == "fail":
        bad = only(findings, "k8s-selinux-options", "app")
        assert bad.location.line == line_of(text, "seLinuxOptions")
        assert f"{level} seLinuxOptions" in bad.message


def test_pod_host_process_is_inherited() -> None:
    text = """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          os: {name: windows}
          securityContext:
            windowsOptions:
              hostProcess: true
          containers:
            - {name: a, image: x}
            - {name: b, image: x}
        """
    findings = scan(text)
    assert by_container(findings, "k8s-no-host-process") == {"a": "fail", "b": "fail"}
    for f in of(findings, "k8s-no-host-process"):
        assert f.location.line == line_of(text, "hostProcess: true")
        assert "inherits" in f.message


def test_container_host_process_fails_only_that_container() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
            - name: a
              image: x
              securityContext: {windowsOptions: {hostProcess: true}}
            - name: b
              image: x
              securityContext: {windowsOptions: {hostProcess: false}}
        """)
    assert by_container(findings, "k8s-no-host-process") == {"a": "fail", "b": "pass"}


# -- container-only fields are not inherited ---------------------------------------------------
def test_container_only_fields_at_pod_level_mean_nothing() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          securityContext:
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
            privileged: true
            procMount: Unmasked
          containers:
            - {name: app, image: x}
        """)
    # the safe values set on the pod do not make the container pass ...
    for check in ("k8s-read-only-root-filesystem", "k8s-no-privilege-escalation", "k8s-capabilities-restricted"):
        bad = only(findings, check, "app")
        assert bad.status is Status.FAIL, check
        assert bad.location.path == "spec.containers[0]", check
    # ... and the unsafe ones do not make it fail
    assert by_container(findings, "k8s-not-privileged") == {"app": "pass"}
    assert by_container(findings, "k8s-proc-mount") == {"app": "pass"}


def test_effective_security_context_merges_only_pod_level_fields() -> None:
    pod_sc = {
        "runAsUser": 1000,
        "runAsGroup": 3000,
        "runAsNonRoot": True,
        "seLinuxOptions": {"level": "s0:c1"},
        "seccompProfile": {"type": "RuntimeDefault"},
        "appArmorProfile": {"type": "RuntimeDefault"},
        "windowsOptions": {"runAsUserName": "u"},
        # container-only (or pod-only) fields placed at pod level
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": True,
        "capabilities": {"drop": ["ALL"]},
        "procMount": "Unmasked",
        "sysctls": [{"name": "kernel.msgmax"}],
        "fsGroup": 2000,
    }
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "securityContext": pod_sc,
            "containers": [
                {"name": "plain"},
                {"name": "own", "securityContext": {"runAsUser": 5, "seccompProfile": {"type": "Localhost"}}},
            ],
        },
    }
    w = workload_from(doc)
    assert w is not None
    plain, own = w.containers
    assert set(INHERITED_FIELDS) == {
        "runAsUser",
        "runAsGroup",
        "runAsNonRoot",
        "seLinuxOptions",
        "seccompProfile",
        "appArmorProfile",
        "windowsOptions",
    }
    assert dict(plain.effective) == {f: pod_sc[f] for f in INHERITED_FIELDS}
    assert plain.security_context == {}
    assert own.effective["runAsUser"] == 5
    assert own.effective["seccompProfile"] == {"type": "Localhost"}
    assert own.effective["runAsNonRoot"] is True


# -- init and ephemeral containers -------------------------------------------------------------
SECURITY_CONTEXT_CHECKS = [
    "k8s-seccomp-profile",
    "k8s-read-only-root-filesystem",
    "k8s-run-as-non-root",
    "k8s-run-as-non-root-user",
    "k8s-no-privilege-escalation",
    "k8s-not-privileged",
    "k8s-capabilities-restricted",
    "k8s-selinux-options",
    "k8s-proc-mount",
    "k8s-apparmor",
    "k8s-no-host-process",
]


@pytest.mark.parametrize("check", SECURITY_CONTEXT_CHECKS)
def test_init_and_ephemeral_containers_are_checked_and_named(check: str) -> None:
    text = """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          initContainers:
            - name: setup
              image: x
              securityContext:
                privileged: true
                runAsUser: 0
                procMount: Unmasked
                seLinuxOptions: {type: spc_t}
                appArmorProfile: {type: Unconfined}
                windowsOptions: {hostProcess: true}
          containers:
            - name: app
              image: x
              securityContext:
                runAsNonRoot: true
                seccompProfile: {type: RuntimeDefault}
                allowPrivilegeEscalation: false
                readOnlyRootFilesystem: true
                capabilities: {drop: [ALL]}
          ephemeralContainers:
            - name: debug
              image: x
              securityContext:
                privileged: true
                runAsUser: 0
                procMount: Unmasked
                seLinuxOptions: {type: spc_t}
                appArmorProfile: {type: Unconfined}
                windowsOptions: {hostProcess: true}
        """
    findings = scan(text)
    assert by_container(findings, check) == {"setup": "fail", "app": "pass", "debug": "fail"}
    setup, debug = only(findings, check, "setup"), only(findings, check, "debug")
    assert setup.location.path is not None
    assert setup.location.path.startswith("spec.initContainers[0]")
    assert debug.location.path is not None
    assert debug.location.path.startswith("spec.ephemeralContainers[0]")
    assert setup.location.line < line_of(text, "- name: app") < debug.location.line


@pytest.mark.parametrize("check", ["k8s-liveness-probe", "k8s-readiness-probe"])
@pytest.mark.parametrize(
    "workload",
    [
        pytest.param(
            """
            apiVersion: batch/v1
            kind: Job
            metadata: {name: j}
            spec:
              template:
                spec:
                  restartPolicy: Never
                  containers: [{name: app, image: x}]
            """,
            id="job",
        ),
        pytest.param(
            """
            apiVersion: batch/v1
            kind: CronJob
            metadata: {name: cj}
            spec:
              schedule: "@daily"
              jobTemplate:
                spec:
                  template:
                    spec:
                      restartPolicy: OnFailure
                      initContainers: [{name: side, image: x, restartPolicy: Always}]
                      containers: [{name: app, image: x}]
            """,
            id="cronjob",
        ),
        pytest.param(
            """
            apiVersion: v1
            kind: Pod
            metadata: {name: once}
            spec:
              restartPolicy: Never
              containers: [{name: app, image: x}]
            """,
            id="pod-restart-never",
        ),
        pytest.param(
            """
            apiVersion: v1
            kind: Pod
            metadata: {name: once}
            spec:
              restartPolicy: OnFailure
              containers: [{name: app, image: x}]
            """,
            id="pod-restart-on-failure",
        ),
    ],
)
def test_probes_not_required_on_run_to_completion_workloads(check: str, workload: str) -> None:
    findings = scan(workload)
    assert of(findings, check) == []
    assert of(findings, "k8s-read-only-root-filesystem"), "the workload itself is evaluated"


@pytest.mark.parametrize("check", ["k8s-liveness-probe", "k8s-readiness-probe"])
def test_probes_scope_init_sidecar_and_ephemeral(check: str) -> None:
    findings = scan("""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: d}
        spec:
          template:
            spec:
              initContainers:
                - {name: migrate, image: x}
                - {name: proxy, image: x, restartPolicy: Always}
                - {name: once-more, image: x, restartPolicy: Never}
              containers:
                - {name: app, image: x}
              ephemeralContainers:
                - {name: debug, image: x}
        """)
    assert by_container(findings, check) == {"proxy": "fail", "app": "fail"}
    probe = check.removeprefix("k8s-").removesuffix("-probe")
    assert only(findings, check, "app").message == f"no {probe}Probe"


@pytest.mark.parametrize("restart", ["Always", None])
def test_probes_required_on_long_running_bare_pods(restart: str | None) -> None:
    policy_line = f"restartPolicy: {restart}" if restart else ""
    findings = scan(f"""
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  {policy_line}
  containers:
    - name: app
      image: x
      livenessProbe: {{tcpSocket: {{port: 8080}}}}
""")
    assert by_container(findings, "k8s-liveness-probe") == {"app": "pass"}
    assert by_container(findings, "k8s-readiness-probe") == {"app": "fail"}


def test_a_probe_that_is_not_a_mapping_does_not_count() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
            - {name: app, image: x, livenessProbe: yes, readinessProbe: []}
        """)
    assert by_container(findings, "k8s-liveness-probe") == {"app": "fail"}
    assert by_container(findings, "k8s-readiness-probe") == {"app": "fail"}


@pytest.mark.parametrize("check", ["k8s-resource-limits", "k8s-resource-requests"])
def test_ephemeral_containers_are_not_checked_for_resources(check: str) -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          initContainers:
            - {name: init, image: x}
          containers:
            - name: app
              image: x
              resources: {limits: {cpu: "1", memory: 1Gi}}
          ephemeralContainers:
            - {name: debug, image: x}
        """)
    assert by_container(findings, check) == {"init": "fail", "app": "pass"}


# -- resources -----------------------------------------------------------------------------------
def test_requests_implied_by_limits_pass() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
            - name: implied
              image: x
              resources:
                limits: {cpu: 500m, memory: 256Mi}
            - name: mixed
              image: x
              resources:
                requests: {memory: 64Mi}
                limits: {cpu: 500m}
            - name: partial
              image: x
              resources:
                limits: {cpu: 500m}
        """)
    assert by_container(findings, "k8s-resource-requests") == {"implied": "pass", "mixed": "pass", "partial": "fail"}
    assert only(findings, "k8s-resource-requests", "partial").message == "no memory request"
    assert by_container(findings, "k8s-resource-limits") == {"implied": "pass", "mixed": "fail", "partial": "fail"}
    assert only(findings, "k8s-resource-limits", "mixed").message == "no memory limit"


def test_limits_do_not_follow_from_requests() -> None:
    text = """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
            - name: app
              image: x
              resources: {requests: {cpu: 100m, memory: 64Mi}}
        """
    findings = scan(text)
    bad = only(findings, "k8s-resource-limits", "app")
    assert bad.status is Status.FAIL
    assert bad.message == "no cpu or memory limit"
    assert bad.location.line == line_of(text, "resources:")
    assert by_container(findings, "k8s-resource-requests") == {"app": "pass"}


# -- Windows pods ------------------------------------------------------------------------------
def test_windows_pods_skip_linux_only_checks() -> None:
    findings = scan("""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: iis}
        spec:
          template:
            spec:
              os: {name: windows}
              containers:
                - name: iis
                  image: x
                  securityContext:
                    allowPrivilegeEscalation: true
                    capabilities: {add: [SYS_ADMIN]}
                    seccompProfile: {type: Unconfined}
        """)
    for check in ("k8s-seccomp-profile", "k8s-no-privilege-escalation", "k8s-capabilities-restricted"):
        assert of(findings, check) == [], check
    # the rest of the checks still run on the Windows pod
    assert by_container(findings, "k8s-run-as-non-root") == {"iis": "fail"}
    assert by_container(findings, "k8s-not-privileged") == {"iis": "pass"}


def test_linux_os_is_evaluated_like_no_os() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          os: {name: linux}
          containers: [{name: app, image: x}]
        """)
    for check in ("k8s-seccomp-profile", "k8s-no-privilege-escalation", "k8s-capabilities-restricted"):
        assert by_container(findings, check) == {"app": "fail"}, check


# -- capabilities ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("capabilities", "status", "message"),
    [
        ("{drop: [ALL], add: [NET_BIND_SERVICE]}", "pass", "drops ALL, adds NET_BIND_SERVICE only"),
        ("{drop: [ALL], add: [CAP_NET_BIND_SERVICE]}", "pass", "drops ALL, adds NET_BIND_SERVICE only"),
        ("{drop: [all]}", "pass", "drops ALL"),
        ("{drop: [ALL]}", "pass", "drops ALL"),
        ("{drop: [ALL], add: [SYS_ADMIN]}", "fail", "adds SYS_ADMIN"),
        ("{drop: [ALL], add: [NET_BIND_SERVICE, NET_RAW]}", "fail", "adds NET_RAW"),
        ("{drop: [NET_RAW]}", "fail", "capabilities.drop does not include ALL"),
        ("{add: [NET_BIND_SERVICE]}", "fail", "capabilities.drop does not include ALL"),
        ("{add: [SYS_ADMIN]}", "fail", "capabilities.drop does not include ALL; adds SYS_ADMIN"),
        ("{drop: ALL}", "fail", "capabilities.drop does not include ALL"),
    ],
)
def test_capabilities(capabilities: str, status: str, message: str) -> None:
    text = f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: p}}
        spec:
          containers:
            - name: app
              image: x
              securityContext:
                capabilities: {capabilities}
        """
    f = only(scan(text), "k8s-capabilities-restricted", "app")
    assert f.status.value == status
    assert f.message == message
    assert f.location.line == line_of(text, "capabilities:")


def test_no_capabilities_fails_at_the_container() -> None:
    text = """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
            - name: app
              image: x
        """
    f = only(scan(text), "k8s-capabilities-restricted", "app")
    assert f.status is Status.FAIL
    assert f.message == "capabilities.drop does not include ALL"
    assert f.location.line == line_of(text, "- name: app")


# -- image references ---------------------------------------------------------------------------
def _image_findings(image: str, policy_text: str | None = None) -> tuple[Finding, Finding]:
    text = f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: p}}
        spec:
          containers:
            - name: app
              image: "{image}"
        """
    findings = scan(text, policy_text)
    registry, digest = only(findings, "k8s-allowed-registry", "app"), only(findings, "k8s-image-digest", "app")
    assert registry.location.line == digest.location.line == line_of(text, "image:")
    return registry, digest


def test_ironbank_image_with_tag_and_digest_passes_both() -> None:
    registry, digest = _image_findings(IRONBANK)
    assert registry.status is Status.PASS
    assert digest.status is Status.PASS
    assert digest.message == f"image {IRONBANK} is pinned by digest"


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("nginx", "neither tag nor digest"),
        ("nginx:latest", "uses the latest tag and no digest"),
        ("nginx:1.25", "pinned by tag only"),
        ("registry1.dso.mil/ironbank/nginx:1.25", "pinned by tag only"),
        ("localhost:5000/app", "neither tag nor digest"),
        ("nginx@sha256:1234", "malformed digest"),
        (f"nginx@{DIGEST.upper()}", "malformed digest"),
    ],
)
def test_image_without_valid_digest_fails(image: str, message: str) -> None:
    _, digest = _image_findings(image)
    assert digest.status is Status.FAIL
    assert message in digest.message


@pytest.mark.parametrize(
    "image",
    [
        f"registry1.dso.mil/ironbank/app@{DIGEST}",
        f"nginx@{DIGEST}",
        f"localhost:5000/app:1@{DIGEST}",
        "nginx@sha512:" + "ab" * 64,
    ],
)
def test_image_pinned_by_digest_passes(image: str) -> None:
    _, digest = _image_findings(image)
    assert digest.status is Status.PASS


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("nginx", "docker.io"),
        ("library/nginx:1", "docker.io"),
        ("index.docker.io/library/nginx", "docker.io"),
        ("localhost:5000/app:1", "localhost:5000"),
        ("localhost/app", "localhost"),
        ("registry1.dso.mil.evil.com/x", "registry1.dso.mil.evil.com"),
        ("Registry1.DSO.mil/ironbank/x:1", "registry1.dso.mil"),
    ],
)
def test_image_registry_normalisation(image: str, registry: str) -> None:
    ref = parse_image(image)
    assert ref.registry == registry
    reg, _ = _image_findings(image)
    assert reg.status is (Status.PASS if registry == "registry1.dso.mil" else Status.FAIL)
    if reg.status is Status.FAIL:
        assert f"comes from {registry}, not an allowed registry" in reg.message


def test_parse_image_tag_and_port() -> None:
    ref = parse_image(f"localhost:5000/team/app:1.2@{DIGEST}")
    assert (ref.registry, ref.repository, ref.tag, ref.digest, ref.digest_valid) == (
        "localhost:5000",
        "team/app",
        "1.2",
        DIGEST,
        True,
    )
    assert parse_image("nginx").name == "docker.io/library/nginx"
    assert parse_image("nginx").tag is None


@pytest.mark.parametrize(
    "image",
    [
        "registry1.dso.mil.evil.com/x",
        "registry1.dso.mil.evil.com/ironbank/nginx:1",
        "evil.com/registry1.dso.mil/x",
        "registry1.dso.mil",  # a Docker Hub image named "registry1.dso.mil"
        "nginx",
    ],
)
def test_registry_prefix_tricks_do_not_pass(image: str) -> None:
    reg, _ = _image_findings(image)
    assert reg.status is Status.FAIL


def test_localhost_registry_allowed_by_policy() -> None:
    reg, _ = _image_findings("localhost:5000/app:1", policy(allowed_registries=["localhost:5000"]))
    assert reg.status is Status.PASS
    reg, _ = _image_findings("localhost:5001/app:1", policy(allowed_registries=["localhost:5000"]))
    assert reg.status is Status.FAIL


@pytest.mark.parametrize(
    ("image", "status"),
    [
        ("registry1.dso.mil/ironbank/x:1", "pass"),
        ("registry2.dso.mil/x:1", "pass"),
        ("registry1.dso.mil.evil.com/x:1", "fail"),
        # a glob never spans "/": Docker Hub repositories whose names end in .dso.mil do not pass
        ("evil/app.dso.mil:1", "fail"),
        ("app.dso.mil", "fail"),
        ("evil.com/x.dso.mil/app", "fail"),
    ],
)
def test_registry_glob(image: str, status: str) -> None:
    reg, _ = _image_findings(image, policy(allowed_registries=["*.dso.mil"]))
    assert reg.status.value == status


@pytest.mark.parametrize(
    ("image", "status"),
    [
        ("registry1.dso.mil/ironbank/opensource/nginx:1", "pass"),
        ("registry1.dso.mil/ironbank:1", "pass"),
        ("registry1.dso.mil/ironbank-evil/x:1", "fail"),
        ("registry1.dso.mil/other/x:1", "fail"),
    ],
)
def test_registry_path_prefix(image: str, status: str) -> None:
    reg, _ = _image_findings(image, policy(allowed_registries=["registry1.dso.mil/ironbank/"]))
    assert reg.status.value == status


def test_docker_hub_library_prefix_allowed_by_policy() -> None:
    reg, _ = _image_findings("nginx:1.25", policy(allowed_registries=["docker.io/library"]))
    assert reg.status is Status.PASS
    reg, _ = _image_findings("someone/nginx:1.25", policy(allowed_registries=["docker.io/library"]))
    assert reg.status is Status.FAIL


@pytest.mark.parametrize("image", ["42", "''", "'   '", "[a, b]", "null"])
def test_missing_or_non_string_image_fails_both_image_checks(image: str) -> None:
    text = f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: p}}
        spec:
          containers:
            - name: app
              image: {image}
        """
    findings = scan(text)
    for check in ("k8s-allowed-registry", "k8s-image-digest"):
        f = only(findings, check, "app")
        assert f.status is Status.FAIL
        assert f.message == "no image set"
        assert f.location.line == line_of(text, "- name: app")


# -- host paths ---------------------------------------------------------------------------------
def _host_path_pod(path: str, mounted: bool = True) -> str:
    mounts = "volumeMounts: [{name: host, mountPath: /host}]" if mounted else ""
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: p}}
spec:
  containers:
    - name: app
      image: x
      {mounts}
  volumes:
    - name: host
      hostPath:
        path: {path}
"""


def test_docker_socket_fails_socket_sensitive_and_host_path_checks() -> None:
    text = _host_path_pod("/var/run/docker.sock")
    findings = scan(text)
    line = line_of(text, "path: /var/run/docker.sock")
    sock = only(findings, "k8s-no-container-runtime-socket", "app")
    assert sock.status is Status.FAIL
    assert sock.location.line == line
    assert "mounts the socket" in sock.message
    sensitive = only(findings, "k8s-no-sensitive-host-path", "app")
    assert sensitive.status is Status.FAIL
    assert sensitive.location.line == line
    assert "under /var/run" in sensitive.message
    host_path = only(findings, "k8s-no-host-path", None)
    assert host_path.status is Status.FAIL
    assert "host (/var/run/docker.sock)" in host_path.message
    assert set(sock.requirements) == {"CICDG-3.1"}
    assert set(sensitive.requirements) == {"CICDG-3.4"}


@pytest.mark.parametrize("path", ["/var/run", "/run", "/var", "/run/containerd", "/var/run/crio/", "/"])
def test_directory_holding_a_socket_fails(path: str) -> None:
    f = only(scan(_host_path_pod(path)), "k8s-no-container-runtime-socket", "app")
    assert f.status is Status.FAIL
    assert "a directory holding" in f.message


@pytest.mark.parametrize("path", ["/data/app", "/var/run-app", "/var/lib/app", "/var/run/secrets-not"])
def test_non_socket_host_path_passes_socket_check(path: str) -> None:
    f = only(scan(_host_path_pod(path)), "k8s-no-container-runtime-socket", "app")
    assert f.status is Status.PASS


def test_data_host_path_passes_sensitive_but_fails_pss_host_path() -> None:
    text = _host_path_pod("/data/app")
    findings = scan(text)
    assert by_container(findings, "k8s-no-sensitive-host-path") == {"app": "pass"}
    assert by_container(findings, "k8s-no-container-runtime-socket") == {"app": "pass"}
    f = only(findings, "k8s-no-host-path", None)
    assert f.status is Status.FAIL
    assert f.location.path == "spec.volumes[0].hostPath"
    assert f.location.line in (line_of(text, "hostPath:"), line_of(text, "path: /data/app"))
    assert by_container(findings, "k8s-volume-types") == {None: "fail"}


@pytest.mark.parametrize(
    ("path", "hit"),
    [
        ("/etc/../etc/ssl", "/etc/ssl (volume 'host', under /etc)"),
        ("//etc//kubernetes/", "/etc/kubernetes (volume 'host', under /etc)"),
        ("/", "/ (volume 'host', under /)"),
        ("/var/lib/kubelet/pods", "/var/lib/kubelet/pods (volume 'host', under /var/lib/kubelet)"),
        ("/proc", "/proc (volume 'host', under /proc)"),
    ],
)
def test_sensitive_host_path_is_normalised(path: str, hit: str) -> None:
    f = only(scan(_host_path_pod(path)), "k8s-no-sensitive-host-path", "app")
    assert f.status is Status.FAIL
    assert f.message == f"mounts sensitive host path {hit}"


@pytest.mark.parametrize("path", ["/data", "/etcd-backup", "/var/log", "/usrlocal", "/srvdata"])
def test_root_only_matches_itself(path: str) -> None:
    f = only(scan(_host_path_pod(path)), "k8s-no-sensitive-host-path", "app")
    assert f.status is Status.PASS


def test_unmounted_host_path_volume_is_a_pod_level_finding() -> None:
    text = _host_path_pod("/var/run/docker.sock", mounted=False)
    findings = scan(text)
    for check in ("k8s-no-container-runtime-socket", "k8s-no-sensitive-host-path"):
        assert by_container(findings, check) == {None: "fail", "app": "pass"}, check
        assert only(findings, check, None).location.line == line_of(text, "path: /var/run/docker.sock")


def test_host_path_without_a_path_is_still_a_host_path() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers: [{name: app, image: x}]
          volumes:
            - {name: weird, hostPath: {type: Directory}}
        """)
    f = only(findings, "k8s-no-host-path", None)
    assert f.status is Status.FAIL
    assert "weird (no path)" in f.message


def test_a_container_mounting_two_socket_volumes_gets_two_failures() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
            - name: app
              image: x
              volumeMounts:
                - {name: docker, mountPath: /a}
                - {name: containerd, mountPath: /b}
            - {name: clean, image: x}
          volumes:
            - {name: docker, hostPath: {path: /var/run/docker.sock}}
            - {name: containerd, hostPath: {path: /run/containerd/containerd.sock}}
        """)
    sock = of(findings, "k8s-no-container-runtime-socket")
    assert sorted((f.container, f.status.value, f.location.path) for f in sock) == [
        ("app", "fail", "spec.volumes[0].hostPath.path"),
        ("app", "fail", "spec.volumes[1].hostPath.path"),
        ("clean", "pass", "spec.containers[1]"),
    ]


def test_custom_runtime_socket_parameter() -> None:
    pol = policy(runtime_socket_paths=["/opt/agent/agent.sock"])
    findings = scan(_host_path_pod("/opt/agent"), pol)
    assert by_container(findings, "k8s-no-container-runtime-socket") == {"app": "fail"}
    findings = scan(_host_path_pod("/var/run/docker.sock"), pol)
    assert by_container(findings, "k8s-no-container-runtime-socket") == {"app": "pass"}


# -- ports ----------------------------------------------------------------------------------------
def _ports_pod(ports: str) -> str:
    return f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: p}}
        spec:
          containers:
            - name: app
              image: x
              ports: {ports}
        """


def test_container_port_80_fails_privileged_ports() -> None:
    text = _ports_pod("[{containerPort: 8080}, {containerPort: 80}]")
    findings = scan(text)
    f = only(findings, "k8s-no-privileged-ports", "app")
    assert f.status is Status.FAIL
    assert f.location.path == "spec.containers[0].ports[1].containerPort"
    assert f.location.line == line_of(text, "ports:")
    assert f.message == "privileged port(s) below 1024: containerPort 80"
    assert by_container(findings, "k8s-no-host-ports") == {"app": "pass"}


def test_high_host_port_fails_host_ports_but_not_privileged_ports() -> None:
    findings = scan(_ports_pod("[{containerPort: 8080, hostPort: 8080}]"))
    f = only(findings, "k8s-no-host-ports", "app")
    assert f.status is Status.FAIL
    assert f.message == "binds host port(s) 8080"
    assert f.location.path == "spec.containers[0].ports[0].hostPort"
    assert by_container(findings, "k8s-no-privileged-ports") == {"app": "pass"}


def test_low_host_port_fails_both() -> None:
    findings = scan(_ports_pod("[{containerPort: 8053, hostPort: 53}]"))
    assert by_container(findings, "k8s-no-privileged-ports") == {"app": "fail"}
    assert by_container(findings, "k8s-no-host-ports") == {"app": "fail"}
    assert "hostPort 53" in only(findings, "k8s-no-privileged-ports", "app").message


@pytest.mark.parametrize(
    ("ports", "status"),
    [
        ('[{containerPort: "8080"}]', "pass"),
        ('[{containerPort: "80"}]', "fail"),
        ('[{containerPort: "http"}]', "pass"),
        ("[{containerPort: true}]", "pass"),
        ("[{containerPort: 0}]", "pass"),
        ("[{containerPort: 1023}]", "fail"),
        ("[{containerPort: 1024}]", "pass"),
        ("[{containerPort: null}]", "pass"),
        ("{a: b}", "pass"),
        ("[8080, oops]", "pass"),
    ],
)
def test_port_values_of_any_type(ports: str, status: str) -> None:
    findings = scan(_ports_pod(ports))
    assert by_container(findings, "k8s-no-privileged-ports") == {"app": status}
    assert by_container(findings, "k8s-no-host-ports") == {"app": "pass"}


# -- credentials in env ---------------------------------------------------------------------------
def _env_pod(env: str) -> str:
    return f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: p}}
        spec:
          containers:
            - name: app
              image: x
              env:
{textwrap.indent(textwrap.dedent(env).strip(), " " * 16)}
        """


def test_literal_password_fails_without_showing_the_value() -> None:
    text = _env_pod("""
        - {name: LOG_LEVEL, value: info}
        - name: DB_PASSWORD
          value: hunter2hunter2
        """)
    findings = scan(text)
    f = only(findings, "k8s-no-env-credentials", "app")
    assert f.status is Status.FAIL
    assert f.location.path == "spec.containers[0].env[1].value"
    assert f.location.line == line_of(text, "hunter2hunter2")
    assert "DB_PASSWORD" in f.message
    assert "value not shown" in f.message
    for finding in findings:
        assert "hunter2" not in finding.message
        assert "hunter2" not in finding.remediation
        assert "hunter2" not in (finding.location.path or "")


@pytest.mark.parametrize(
    "env",
    [
        "- name: PASSWORD\n  valueFrom: {secretKeyRef: {name: s, key: password}}",
        "- {name: API_TOKEN, value: $(OTHER)}",
        "- {name: API_TOKEN, value: '${OTHER}'}",
        "- {name: LOG_LEVEL, value: debug}",
        "- {name: DB_PASSWORD, value: ''}",
        "- {name: DB_PASSWORD, value: abc}",
        "- {name: DB_PASSWORD, value: changeme}",
        "- {name: DB_PASSWORD, value: '<set me>'}",
        "- {name: PASSWORD_FILE, value: /run/secrets/db}",
        "- {name: TLS_KEY, value: tls.key}",
        "- {name: USE_TOKEN, value: 'true'}",
        "- {name: DSN_HOST, value: db.example.com}",
        "- {name: DATABASE_URL, value: 'postgres://db.example.com:5432/app'}",
    ],
)
def test_env_that_is_not_a_literal_credential_passes(env: str) -> None:
    f = only(scan(_env_pod(env)), "k8s-no-env-credentials", "app")
    assert f.status is Status.PASS


@pytest.mark.parametrize(
    ("env", "reason", "secret"),
    [
        (
            '- {name: TLS, value: "-----BEGIN RSA PRIVATE KEY-----\\nMIIBOgIBAAJBAKj34"}',
            "value looks like a private key",
            "MIIBOgIBAAJBAKj34",
        ),
        ("- {name: HARMLESS, value: AKIAIOSFODNN7EXAMPLE}", "value looks like an AWS access key id", "IOSFODNN7"),
        (
            "- {name: GIT, value: ghp_" + "a1B2" * 9 + "}",
            "value looks like a GitHub token",
            "a1B2a1B2",
        ),
        (
            "- {name: DATABASE_URL, value: 'postgres://app:s3cr3tpw@db:5432/app'}",
            "value looks like a URL with a password",
            "s3cr3tpw",
        ),
        ("- {name: DB_PASSWORD, value: hunter2hunter2}", "variable name suggests a credential", "hunter2"),
        ("- {name: my_api_key, value: 0f9e8d7c6b5a}", "variable name suggests a credential", "0f9e8d7c6b5a"),
        ("- {name: CLIENT_SECRET, value: xyzzy-plugh}", "variable name suggests a credential", "xyzzy"),
    ],
)
def test_literal_credentials_fail(env: str, reason: str, secret: str) -> None:
    findings = scan(_env_pod(env))
    f = only(findings, "k8s-no-env-credentials", "app")
    assert f.status is Status.FAIL
    assert reason in f.message
    assert all(secret not in x.message for x in findings)


def test_several_credentials_are_counted_in_one_finding() -> None:
    f = only(
        scan(
            _env_pod("""
            - {name: A_PASSWORD, value: hunter2hunter2}
            - {name: B_TOKEN, value: tok-123456}
            - {name: C, value: AKIAIOSFODNN7EXAMPLE}
            """)
        ),
        "k8s-no-env-credentials",
        "app",
    )
    assert f.status is Status.FAIL
    assert f.location.path == "spec.containers[0].env[0].value"
    assert "A_PASSWORD" in f.message
    assert "(and 2 more)" in f.message


def test_env_credentials_in_init_and_ephemeral_containers() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          initContainers:
            - {name: init, image: x, env: [{name: TOKEN, value: abcdefgh}]}
          containers:
            - {name: app, image: x}
          ephemeralContainers:
            - {name: debug, image: x, env: [{name: PASSWD, value: abcdefgh}]}
        """)
    assert by_container(findings, "k8s-no-env-credentials") == {"init": "fail", "app": "pass", "debug": "fail"}


# -- host namespaces ----------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["hostNetwork", "hostPID", "hostIPC"])
def test_each_host_namespace_fails(field: str) -> None:
    text = f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: p}}
        spec:
          containers: [{{name: a, image: x}}, {{name: b, image: x}}]
          {field}: true
        """
    findings = scan(text)
    f = only(findings, "k8s-no-host-namespaces", None)
    assert len(of(findings, "k8s-no-host-namespaces")) == 1
    assert f.status is Status.FAIL
    assert f.message == f"shares host namespaces: {field}"
    assert f.location.path == f"spec.{field}"
    assert f.location.line == line_of(text, f"{field}: true")


def test_all_host_namespaces_named() -> None:
    text = """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          hostIPC: true
          hostPID: true
          hostNetwork: true
          containers: [{name: a, image: x}]
        """
    f = only(scan(text), "k8s-no-host-namespaces", None)
    assert f.message == "shares host namespaces: hostNetwork, hostPID, hostIPC"
    assert f.location.line == line_of(text, "hostNetwork: true")


def test_host_namespaces_all_false_pass() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          hostNetwork: false
          hostPID: false
          hostIPC: false
          containers: [{name: a, image: x}, {name: b, image: x}]
        """)
    assert by_container(findings, "k8s-no-host-namespaces") == {None: "pass"}


# -- sysctls --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sysctls", "status", "message"),
    [
        ("[{name: net.ipv4.tcp_syncookies, value: '1'}]", "pass", "only safe sysctls"),
        ("[]", "pass", "only safe sysctls"),
        ("[{name: kernel.msgmax, value: '65536'}]", "fail", "unsafe sysctl(s): kernel.msgmax"),
        (
            "[{name: net.ipv4.tcp_syncookies, value: '1'}, {name: kernel.msgmax}, {name: vm.swappiness}]",
            "fail",
            "unsafe sysctl(s): kernel.msgmax, vm.swappiness",
        ),
        ("[{value: '1'}]", "fail", "unsafe sysctl(s): None"),
        ("[{name: [kernel.msgmax]}]", "fail", "unsafe sysctl(s): ['kernel.msgmax']"),
        ("oops", "pass", "only safe sysctls"),
    ],
)
def test_sysctls(sysctls: str, status: str, message: str) -> None:
    findings = scan(f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: p}}
        spec:
          securityContext:
            sysctls: {sysctls}
          containers: [{{name: a, image: x}}]
        """)
    f = only(findings, "k8s-safe-sysctls", None)
    assert f.status.value == status
    assert f.message == message


def test_allowed_sysctls_parameter() -> None:
    findings = scan(
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          securityContext:
            sysctls: [{name: kernel.msgmax, value: '1'}, {name: net.ipv4.tcp_syncookies, value: '1'}]
          containers: [{name: a, image: x}]
        """,
        policy(allowed_sysctls=["kernel.msgmax"]),
    )
    f = only(findings, "k8s-safe-sysctls", None)
    assert f.message == "unsafe sysctl(s): net.ipv4.tcp_syncookies"
    assert f.location.path == "spec.securityContext.sysctls[1]"


# -- volume types ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("volume", "status"),
    [
        ("{name: v, configMap: {name: c}}", "pass"),
        ("{name: v, secret: {secretName: s}}", "pass"),
        ("{name: v, emptyDir: {}}", "pass"),
        ("{name: v, projected: {sources: []}}", "pass"),
        ("{name: v, persistentVolumeClaim: {claimName: c}}", "pass"),
        ("{name: v, csi: {driver: d}}", "pass"),
        ("{name: v, ephemeral: {volumeClaimTemplate: {spec: {}}}}", "pass"),
        ("{name: v, downwardAPI: {items: []}}", "pass"),
        ("{name: v, nfs: {server: s, path: /x}}", "fail"),
        ("{name: v, hostPath: {path: /data}}", "fail"),
        ("{name: v, gcePersistentDisk: {pdName: d}}", "fail"),
        ("{name: v, awsElasticBlockStore: {volumeID: x}}", "fail"),
        ("{name: v, iscsi: {targetPortal: x, iqn: y, lun: 0}}", "fail"),
    ],
)
def test_volume_types(volume: str, status: str) -> None:
    text = f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: p}}
        spec:
          containers: [{{name: a, image: x}}]
          volumes:
            - {{name: ok, emptyDir: {{}}}}
            - {volume}
        """
    f = only(scan(text), "k8s-volume-types", None)
    assert f.status.value == status
    if status == "fail":
        kind = volume.split(",")[1].split(":", maxsplit=1)[0].strip()
        assert f.message == f"disallowed volume type(s): v ({kind})"
        assert f.location.path == "spec.volumes[1]"
        assert f.location.line == line_of(text, volume)


def test_several_disallowed_volumes_listed() -> None:
    f = only(
        scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers: [{name: a, image: x}]
          volumes:
            - {name: share, nfs: {server: s, path: /x}}
            - {name: tmp, emptyDir: {}}
            - {name: disk, gcePersistentDisk: {pdName: d}}
        """),
        "k8s-volume-types",
        None,
    )
    assert f.message == "disallowed volume type(s): share (nfs), disk (gcePersistentDisk)"
    assert f.location.path == "spec.volumes[0]"


# -- labels and placement -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("metadata", "placement", "status", "message"),
    [
        ("{name: p}", "", "fail", "the pod has no labels; no nodeSelector or nodeAffinity"),
        ("{name: p}", "nodeSelector: {pool: a}", "fail", "the pod has no labels"),
        ("{name: p, labels: {}}", "nodeSelector: {pool: a}", "fail", "the pod has no labels"),
        ("{name: p, labels: {app: p}}", "nodeSelector: {pool: a}", "pass", "labelled and placed by selector"),
        (
            "{name: p, labels: {app: p}}",
            "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: []}}}",
            "pass",
            "labelled and placed by selector",
        ),
        (
            "{name: p, labels: {app: p}}",
            "affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: []}}",
            "fail",
            "no nodeSelector or nodeAffinity",
        ),
        ("{name: p, labels: {app: p}}", "nodeSelector: {}", "fail", "no nodeSelector or nodeAffinity"),
    ],
)
def test_labels_and_placement(metadata: str, placement: str, status: str, message: str) -> None:
    findings = scan(f"""
        apiVersion: v1
        kind: Pod
        metadata: {metadata}
        spec:
          {placement}
          containers: [{{name: a, image: x}}]
        """)
    f = only(findings, "k8s-labels-and-placement", None)
    assert len(of(findings, "k8s-labels-and-placement")) == 1
    assert f.status.value == status
    assert f.message == message


# -- every workload kind ---------------------------------------------------------------------------
_POD_SPEC = """
      containers:
        - name: app
          image: nginx:latest
"""


def _indent(text: str, n: int) -> str:
    return textwrap.indent(textwrap.dedent(text).strip("\n"), " " * n)


WORKLOADS = {
    "Pod": ("v1", "spec:\n" + _indent(_POD_SPEC, 2), "spec"),
    "PodTemplate": ("v1", "template:\n  spec:\n" + _indent(_POD_SPEC, 4), "template.spec"),
    **{
        kind: (api, "spec:\n  template:\n    spec:\n" + _indent(_POD_SPEC, 6), "spec.template.spec")
        for kind, api in (
            ("Deployment", "apps/v1"),
            ("StatefulSet", "apps/v1"),
            ("DaemonSet", "apps/v1"),
            ("ReplicaSet", "apps/v1"),
            ("ReplicationController", "v1"),
            ("Job", "batch/v1"),
        )
    },
    "CronJob": (
        "batch/v1",
        "spec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n" + _indent(_POD_SPEC, 10),
        "spec.jobTemplate.spec.template.spec",
    ),
}


@pytest.mark.parametrize("kind", list(WORKLOADS))
def test_every_workload_kind_is_evaluated(kind: str) -> None:
    api, body, pod_path = WORKLOADS[kind]
    text = f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: w, namespace: ns}}\n{body}\n"
    findings = scan_text(text)
    assert not [f for f in findings if f.status is Status.ERROR]
    digest = only(findings, "k8s-image-digest", "app")
    assert digest.status is Status.FAIL
    assert digest.location.path == f"{pod_path}.containers[0].image"
    assert digest.location.line == line_of(text, "image: nginx:latest")
    assert digest.resource is not None
    assert (digest.resource.kind, digest.resource.namespace, digest.resource.name) == (kind, "ns", "w")
    assert only(findings, "k8s-no-host-namespaces", None).location.path == f"{pod_path}"
    # every per-container workload check ran on the container
    per_container = {f.check for f in findings if f.container == "app"}
    expected = set(KUBERNETES_CHECKS) - POD_LEVEL_CHECKS
    if kind in ("Job", "CronJob"):
        expected -= {"k8s-liveness-probe", "k8s-readiness-probe"}
    assert per_container == expected


def test_non_workload_kinds_yield_no_findings() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Service
        metadata: {name: s}
        spec:
          ports: [{port: 80}]
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: c}
        data: {spec: x}
        ---
        apiVersion: example.com/v1
        kind: Deployment2
        metadata: {name: d}
        spec: {template: {spec: {containers: [{name: a, image: nginx}]}}}
        """)
    assert findings == []


def test_list_of_two_deployments_evaluates_both_with_lines_inside_the_list() -> None:
    text = """
        apiVersion: v1
        kind: List
        items:
          - apiVersion: apps/v1
            kind: Deployment
            metadata: {name: first}
            spec:
              template:
                spec:
                  containers:
                    - name: app
                      image: nginx:1.0
          - apiVersion: apps/v1
            kind: Deployment
            metadata: {name: second}
            spec:
              template:
                spec:
                  containers:
                    - name: app
                      image: nginx:2.0
        """
    findings = scan(text)
    digests = of(findings, "k8s-image-digest")
    assert sorted((f.resource.name if f.resource else "", f.status.value, f.location.line) for f in digests) == [
        ("first", "fail", line_of(text, "nginx:1.0")),
        ("second", "fail", line_of(text, "nginx:2.0")),
    ]
    for f in digests:
        assert f.location.path == "spec.template.spec.containers[0].image"
    assert len(of(findings, "k8s-no-host-namespaces")) == 2


def test_multi_document_stream_lines_are_per_document() -> None:
    text = """
        apiVersion: v1
        kind: Pod
        metadata: {name: a}
        spec:
          containers: [{name: app, image: "nginx:1"}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: b}
        spec:
          containers: [{name: app, image: "nginx:2"}]
        """
    digests = {f.resource.name: f.location.line for f in of(scan(text), "k8s-image-digest") if f.resource}
    assert digests == {"a": line_of(text, "nginx:1"), "b": line_of(text, "nginx:2")}


def test_unnamed_containers_get_a_positional_name() -> None:
    findings = scan("""
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          initContainers: [{image: x}]
          containers: [{image: x}, {image: y}]
        """)
    assert set(by_container(findings, "k8s-not-privileged")) == {
        "initContainers[0]",
        "containers[0]",
        "containers[1]",
    }


# -- malformed but parseable manifests --------------------------------------------------------------
MALFORMED = {
    "containers-string": """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers: "oops"
        """,
    "security-context-list": """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          securityContext: []
          containers:
            - {name: a, image: x, securityContext: []}
        """,
    "env-junk": """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
            - {name: a, image: x, env: [1, null, "x", {name: [1]}, {name: PASSWORD, value: 42}]}
        """,
    "ports-mapping": """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
            - {name: a, image: x, ports: {a: b}}
        """,
    "volumes-null": """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          volumes: null
          containers:
            - {name: a, image: x, volumeMounts: [{name: [x]}, 3]}
        """,
    "image-number": """
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
            - {name: a, image: 42}
        """,
    "everything-wrong": """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: [x], namespace: 7, labels: oops, annotations: [1]}
        spec:
          template:
            metadata: {labels: [a], annotations: "x"}
            spec:
              hostNetwork: "yes"
              nodeSelector: [a]
              affinity: {nodeAffinity: 3}
              os: windows
              securityContext:
                seccompProfile: RuntimeDefault
                appArmorProfile: {type: [x]}
                seLinuxOptions: {type: {a: b}, user: [u]}
                windowsOptions: [true]
                sysctls: [1, {name: {a: b}}, null]
                runAsUser: [0]
              volumes: [1, "x", {name: h, hostPath: "/"}, {hostPath: {path: 9}}]
              initContainers: {a: b}
              ephemeralContainers: 5
              containers:
                - 1
                - null
                - name: {a: b}
                  image: [x]
                  resources: {limits: [1], requests: "x"}
                  livenessProbe: "x"
                  ports: [{containerPort: [80]}, {hostPort: {a: 1}}, null]
                  env: {a: b}
                  volumeMounts: "x"
                  securityContext:
                    capabilities: {drop: "ALL", add: {a: b}}
                    privileged: "true"
                    procMount: [x]
                    seccompProfile: {type: [x]}
                    allowPrivilegeEscalation: "false"
                    readOnlyRootFilesystem: 1
                    runAsNonRoot: "true"
        """,
    "pod-spec-not-a-mapping": """
        apiVersion: apps/v1
        kind: Deployment
        metadata: "m"
        spec: [1, 2]
        """,
    "cronjob-without-job-template": """
        apiVersion: batch/v1
        kind: CronJob
        metadata: {name: c}
        spec: {schedule: "@daily"}
        """,
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_manifests_never_crash_a_check(name: str) -> None:
    findings = scan_text(yaml_text(MALFORMED[name]))
    assert findings, "a workload is still reported on"
    crashed = [(f.check, f.message) for f in findings if f.status is Status.ERROR]
    assert crashed == []
    assert {f.check for f in findings} <= set(KUBERNETES_CHECKS)


def test_malformed_values_read_as_unset_or_unsafe() -> None:
    findings = scan(MALFORMED["everything-wrong"])
    container = "{'a': 'b'}"
    # string "true"/"false" are not booleans: the safe reading wins
    assert only(findings, "k8s-not-privileged", container).status is Status.FAIL
    assert only(findings, "k8s-no-privilege-escalation", container).status is Status.FAIL
    assert only(findings, "k8s-run-as-non-root", container).status is Status.FAIL
    assert only(findings, "k8s-read-only-root-filesystem", container).status is Status.FAIL
    assert only(findings, "k8s-apparmor", container).status is Status.FAIL
    assert only(findings, "k8s-selinux-options", container).status is Status.FAIL
    assert only(findings, "k8s-proc-mount", container).status is Status.FAIL
    assert only(findings, "k8s-no-host-namespaces", None).status is Status.FAIL
    assert only(findings, "k8s-safe-sysctls", None).status is Status.FAIL
    assert only(findings, "k8s-labels-and-placement", None).status is Status.FAIL
    assert only(findings, "k8s-image-digest", container).message == "no image set"
    # "os: windows" is not the documented {name: windows}: the pod is evaluated as Linux
    assert only(findings, "k8s-seccomp-profile", container).status is Status.FAIL
    assert only(findings, "k8s-capabilities-restricted", container).status is Status.FAIL
    # the hostPath volume with a numeric path is still a hostPath volume
    assert only(findings, "k8s-no-host-path", None).status is Status.FAIL


def test_malformed_containers_string_reports_pod_level_checks_only() -> None:
    findings = scan(MALFORMED["containers-string"])
    assert {f.container for f in findings} == {None}
    assert {f.check for f in findings} == POD_LEVEL_CHECKS


@pytest.mark.parametrize(
    ("name", "value", "flagged"),
    [
        ("TOKEN_TTL", "3600", False),
        ("SECRET_NAME", "my-app-secret", False),
        ("PASSWORD_FILE", "/run/secrets/db", False),
        ("API_KEY_HEADER", "X-Api-Key", False),
        ("MAX_INPUT_TOKENS", "4096", False),
        ("MAX_TOTAL_TOKENS", "8192", False),
        ("HF_TOKEN", "hf_abcdefghijklmnop", True),
        ("DB_PASSWORD", "12345678", True),
        ("CLIENT_SECRET", "x9f8s7d6", True),
    ],
)
def test_env_credential_names_that_describe_a_secret_are_not_credentials(name: str, value: str, flagged: bool) -> None:
    from factorygate.facts.secrets import credential_reason as _credential_reason

    assert (_credential_reason(name, value) is not None) is flagged


def test_names_of_the_wrong_type_are_reported_as_invalid() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: [1], namespace: {a: b}}\nspec: {containers: [{name: c}]}\n"
    findings = scan_text(text)
    assert {f.resource.display() for f in findings if f.resource} == {"Pod <invalid namespace>/<invalid name>"}


def test_without_passes_the_checks_yield_exactly_their_failures() -> None:
    """At admission a workload is built with passes=False: every check must yield the same failures
    (same order, same messages and paths) and nothing else, on every fixture of every check."""
    from factorygate.checks import WORKLOAD_CHECKS

    params = parse_policy(default_policy_text(), "p", set(load_catalog().checks)).parameters
    seen = 0
    for path in sorted(FIXTURES.glob("*/*/*.yaml")):
        for m in manifests_from_bytes(path.read_bytes(), str(path), kinds=KUBERNETES_KINDS):
            if not hasattr(m, "data"):
                continue
            full, failures_only = workload_from(m.data), workload_from(m.data, passes=False)
            if full is None or failures_only is None:
                continue
            for fn in WORKLOAD_CHECKS.values():
                expected = [o for o in fn(full, params) if not o.passed]
                assert list(fn(failures_only, params)) == expected, (path, fn.__name__)
                seen += len(expected)
    assert seen > 50  # the fixtures do fail checks: the comparison is not vacuous
