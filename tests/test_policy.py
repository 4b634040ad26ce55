"""Policy files: validation with line numbers, selection, severities, parameters, waivers."""

from __future__ import annotations

import datetime as dt

import pytest
from tests.conftest import scan_text

from factorygate.catalog import load_catalog
from factorygate.errors import PolicyError
from factorygate.model import Severity, Status
from factorygate.policy import Policy, default_policy_text, parse_policy

CHECKS = set(load_catalog().checks)

BAD_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: team-a
spec:
  containers:
    - name: app
      image: registry1.dso.mil/ironbank/app:1@sha256:0000000000000000000000000000000000000000000000000000000000000000
"""


def policy(body: str) -> str:
    return "apiVersion: factorygate.dev/v1\nkind: Policy\n" + body


def test_default_policy_file_equals_the_built_in_defaults() -> None:
    parsed = parse_policy(default_policy_text(), "default", CHECKS)
    assert parsed == Policy(apiVersion="factorygate.dev/v1", kind="Policy")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("threshold: severe\n", "policy.yaml:3: threshold: Input should be"),
        (
            "checks:\n  k8s-no-such-check: {enabled: false}\n",
            "policy.yaml:4: checks.k8s-no-such-check: unknown check id",
        ),
        (
            "checks:\n  k8s-liveness-probe: {enabeld: false}\n",
            "policy.yaml:4: checks.k8s-liveness-probe.enabeld: unknown field",
        ),
        ("parameters:\n  allowed_registries: [https://x.io]\n", "policy.yaml:4: parameters.allowed_registries"),
        ("parameters:\n  sensitive_host_paths: [etc]\n", "host paths must be absolute"),
        (
            "waivers:\n  - check: k8s-liveness-probe\n    justification: long enough reason\n    expires: 2030-01-01\n",
            "policy.yaml:4: waivers.0.approver: Field required",
        ),
        (
            "waivers:\n  - check: k8s-liveness-probe\n    justification: long enough reason\n"
            "    approver: J. Smith\n    expires: someday\n",
            "policy.yaml:7: waivers.0.expires",
        ),
        (
            "waivers:\n  - check: k8s-nope\n    justification: long enough reason\n"
            "    approver: J. Smith\n    expires: 2030-01-01\n",
            "policy.yaml:4: waivers.0.check: unknown check id 'k8s-nope'",
        ),
        (
            "waivers:\n  - check: k8s-liveness-probe\n    justification: '   '\n"
            "    approver: J. Smith\n    expires: 2030-01-01\n",
            "waivers.0.justification",
        ),
    ],
)
def test_invalid_policies_name_line_and_field(body: str, expected: str) -> None:
    with pytest.raises(PolicyError) as exc:
        parse_policy(policy(body), "policy.yaml", CHECKS)
    assert expected in str(exc.value)


def test_policy_that_is_not_yaml_names_the_line() -> None:
    with pytest.raises(PolicyError, match=r"policy.yaml:4: not valid YAML"):
        parse_policy(policy("threshold: [unclosed\n"), "policy.yaml", CHECKS)


def test_wrong_api_version_is_rejected() -> None:
    with pytest.raises(PolicyError, match="apiVersion"):
        parse_policy("apiVersion: v2\nkind: Policy\n", "p.yaml", CHECKS)


def test_disabled_check_produces_no_findings_and_severity_override_applies() -> None:
    text = policy("checks:\n  k8s-liveness-probe: {enabled: false}\n  k8s-resource-limits: {severity: critical}\n")
    findings = scan_text(BAD_POD, text).findings
    assert not [f for f in findings if f.check == "k8s-liveness-probe"]
    limits = [f for f in findings if f.check == "k8s-resource-limits"]
    assert limits
    assert all(f.severity is Severity.CRITICAL for f in limits)


def test_threshold_decides_the_exit_code() -> None:
    # only low-severity checks fail on this pod once the medium+ ones are satisfied
    assert scan_text(BAD_POD, policy("threshold: critical\n")).exit_code() == 0
    assert scan_text(BAD_POD, policy("threshold: low\n")).exit_code() == 1


def test_exempt_namespaces_skip_workloads() -> None:
    result = scan_text(BAD_POD, policy("parameters:\n  exempt_namespaces: ['team-*']\n"))
    assert result.findings == []
    assert result.stats.exempt_workloads == 1


WAIVER = """\
waivers:
  - check: k8s-liveness-probe
    resource: {{kind: Pod, namespace: team-*, name: web, container: app}}
    justification: Batch-like pod; liveness handled by the supervisor.
    approver: J. Smith (ISSM)
    expires: {expires}
"""


def test_waiver_waives_matching_failures_until_it_expires() -> None:
    text = policy(WAIVER.format(expires="2027-01-31"))
    before = scan_text(BAD_POD, text, as_of=dt.date(2027, 1, 31)).findings
    live = [f for f in before if f.check == "k8s-liveness-probe"]
    assert [f.status for f in live] == [Status.WAIVED]
    assert live[0].waiver is not None
    assert live[0].waiver.approver == "J. Smith (ISSM)"
    assert live[0].waiver.source == "policy"
    after = scan_text(BAD_POD, text, as_of=dt.date(2027, 2, 1)).findings
    expired = [f for f in after if f.check == "k8s-liveness-probe"]
    assert [f.status for f in expired] == [Status.FAIL]
    assert expired[0].waiver is not None
    assert expired[0].waiver.expired
    assert "expired on 2027-01-31" in expired[0].message


def test_waiver_selector_must_match() -> None:
    text = policy(WAIVER.format(expires="2099-01-01").replace("container: app", "container: other"))
    findings = scan_text(BAD_POD, text).findings
    assert [f.status for f in findings if f.check == "k8s-liveness-probe"] == [Status.FAIL]


def test_waiver_does_not_touch_passing_findings() -> None:
    text = policy(WAIVER.format(expires="2099-01-01").replace("k8s-liveness-probe", "k8s-not-privileged"))
    findings = scan_text(BAD_POD, text).findings
    assert [f.status for f in findings if f.check == "k8s-not-privileged"] == [Status.PASS]


INLINE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: legacy
  annotations:
    factorygate.dev/waive.k8s-read-only-root-filesystem: >-
      {justification: "Writes its cache to /var/cache until v2", approver: "A. Jones (ISSO)", expires: 2030-01-01}
    factorygate.dev/waive.k8s-liveness-probe: "not a mapping"
    factorygate.dev/waive.k8s-unknown: "{}"
spec:
  template:
    spec:
      containers:
        - name: app
          image: nginx
"""


def test_inline_waiver_is_applied_and_marked_inline() -> None:
    findings = scan_text(INLINE).findings
    ro = [f for f in findings if f.check == "k8s-read-only-root-filesystem"]
    assert [f.status for f in ro] == [Status.WAIVED]
    assert ro[0].waiver is not None
    assert ro[0].waiver.source == "inline"
    assert ro[0].waiver.approver == "A. Jones (ISSO)"


def test_invalid_inline_waivers_are_errors_naming_the_annotation() -> None:
    result = scan_text(INLINE)
    errors = [f for f in result.findings if f.status is Status.ERROR]
    messages = sorted(f.message for f in errors)
    assert len(errors) == 2
    assert "factorygate.dev/waive.k8s-liveness-probe" in messages[0]
    assert "unknown check id 'k8s-unknown'" in messages[1]
    assert sorted(f.location.line for f in errors) == [8, 9]
    assert result.exit_code() == 2
    # the invalid waiver did not waive anything
    assert [f.status for f in result.findings if f.check == "k8s-liveness-probe"] == [Status.FAIL]


def test_inline_waivers_can_be_disabled() -> None:
    result = scan_text(INLINE, policy("inline_waivers: false\n"))
    ro = [f for f in result.findings if f.check == "k8s-read-only-root-filesystem"]
    assert [f.status for f in ro] == [Status.FAIL]
    assert any("inline waivers are disabled" in f.message for f in result.findings if f.status is Status.ERROR)


def test_allowed_registries_parameter() -> None:
    text = policy("parameters:\n  allowed_registries: [docker.io/library]\n")
    findings = scan_text(INLINE, text).findings
    assert [f.status for f in findings if f.check == "k8s-allowed-registry"] == [Status.PASS]


def test_policy_files_are_read_with_the_bounded_loader() -> None:
    bomb = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 12))
    with pytest.raises(PolicyError, match="alias bomb"):
        parse_policy(policy("l0: &l0 [x]\n" + bomb), "policy.yaml", CHECKS)


def test_inline_waiver_values_are_read_with_the_bounded_loader() -> None:
    levels = ", ".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 12))
    value = "{l0: &l0 [x], " + levels + "}"
    assert len(value) < 4096
    text = INLINE.replace('"not a mapping"', "'" + value + "'")
    result = scan_text(text)
    errors = [f.message for f in result.findings if f.status is Status.ERROR]
    assert any("waive.k8s-liveness-probe" in m and "alias bomb" in m for m in errors), errors
