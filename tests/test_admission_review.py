"""Admission decisions (factorygate.admission.review): pure, no server."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from tests.admission_objects import (
    INVALID_WAIVER,
    SECRET_LITERAL,
    body,
    configmap,
    cronjob,
    deployment,
    inline_waiver,
    pod,
    policy_text,
    review,
)

from factorygate.admission.app import EngineClock
from factorygate.admission.review import (
    ANNOTATION_ERROR,
    ANNOTATION_EXEMPT,
    ANNOTATION_FAILED,
    ANNOTATION_WAIVED,
    ANNOTATION_WARNED,
    MAX_ANNOTATION_CHARS,
    MAX_WARNING_CHARS,
    MAX_WARNINGS,
    AdmissionRequest,
    Decision,
    ReviewError,
    decide,
    parse_review,
    response_body,
)
from factorygate.catalog import load_catalog
from factorygate.engine import MAX_FINDINGS, Engine
from factorygate.model import Finding, Location, Severity, Status
from factorygate.policy import parse_policy

# An audit annotation key, once the API server has prefixed "<webhook name>/": a qualified name's name part.
ANNOTATION_KEY = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
BAD_POD_FAILS = {
    "k8s-not-privileged",
    "k8s-no-privilege-escalation",
    "k8s-allowed-registry",
    "k8s-image-digest",
    "k8s-no-env-credentials",
    "k8s-liveness-probe",
    "k8s-readiness-probe",
}


def make_engine(text: str | None = None, as_of: dt.date | None = None) -> Engine:
    catalog = load_catalog()
    return Engine(catalog, parse_policy(text or policy_text(), "policy.yaml", set(catalog.checks)), as_of=as_of)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return make_engine()


def run(engine: Engine, obj: dict[str, Any] | None, **kwargs: Any) -> tuple[Decision, dict[str, Any]]:
    """Parse the request body as the endpoint does, decide, and build the response."""
    req = parse_review(body(obj, **kwargs))
    decision = decide(engine, req)
    out = response_body(req.uid, decision)
    json.dumps(out)  # the response must serialise
    return decision, out["response"]


def assert_valid_annotations(response: dict[str, Any]) -> None:
    for key, value in response.get("auditAnnotations", {}).items():
        assert ANNOTATION_KEY.match(key), key
        assert isinstance(value, str)
        assert len(value) <= MAX_ANNOTATION_CHARS


# -- allowed and denied ---------------------------------------------------------------------------------


@pytest.mark.parametrize("obj", [pod(), deployment(), cronjob(), pod(owner="web-5d9c7b")], ids=lambda o: o["kind"])
def test_compliant_workloads_are_allowed_without_status(engine: Engine, obj: dict[str, Any]) -> None:
    decision, response = run(engine, obj, uid="7f9c1e2a-0000-4000-8000-000000000001")
    assert response["uid"] == "7f9c1e2a-0000-4000-8000-000000000001"
    assert response["allowed"] is True
    assert "status" not in response
    assert decision.evaluated
    assert decision.reason == "compliant"


def test_noncompliant_pod_is_denied_naming_check_requirement_and_remediation(engine: Engine) -> None:
    decision, response = run(engine, pod(compliant=False), uid="uid-deny")
    assert response["uid"] == "uid-deny"
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    message = response["status"]["message"]
    assert message.startswith("factorygate: Pod shop/web fails ")
    assert set(decision.failed) >= BAD_POD_FAILS
    catalog = load_catalog()
    for check in decision.failed:
        line = next(line for line in message.splitlines() if line.startswith(f"- {check} "))
        meta = catalog.checks[check]
        assert all(req in line for req in meta.requirements), line
        assert "Remediation: " in line
    assert "container web: runs privileged" in message
    assert SECRET_LITERAL not in json.dumps(response)
    assert response["auditAnnotations"][ANNOTATION_FAILED] == ",".join(decision.failed)
    assert_valid_annotations(response)
    assert decision.outcome == "denied"


def test_findings_below_the_threshold_are_warnings_not_denials(engine: Engine) -> None:
    obj = pod()
    del obj["spec"]["containers"][0]["resources"]  # resource limits and requests: low severity
    decision, response = run(engine, obj)
    assert response["allowed"] is True
    assert decision.warned == ("k8s-resource-limits", "k8s-resource-requests")
    assert response["warnings"] == [
        "factorygate: k8s-resource-limits (low): container web: no cpu or memory limit",
        "factorygate: k8s-resource-requests (low): container web: no cpu or memory request",
    ]
    assert response["auditAnnotations"] == {ANNOTATION_WARNED: "k8s-resource-limits,k8s-resource-requests"}


def test_threshold_decides_what_denies() -> None:
    critical = make_engine(policy_text(threshold="critical"))
    decision, response = run(critical, pod(compliant=False))
    assert response["allowed"] is False
    assert decision.failed == ("k8s-not-privileged",)
    assert "k8s-allowed-registry" in decision.warned  # high: below a critical threshold
    assert all(w.startswith("factorygate: ") and len(w) <= MAX_WARNING_CHARS for w in response["warnings"])


def test_controller_created_pod_is_evaluated_under_the_request_namespace(engine: Engine) -> None:
    obj = pod(namespace=None, compliant=False, owner="web-5d9c7b")  # no name, no namespace in the object yet
    _decision, response = run(engine, obj, namespace="shop")
    assert response["allowed"] is False
    assert "Pod shop/web-5d9c7b-* fails" in response["status"]["message"]
    exempt, _ = run(engine, pod(namespace=None, compliant=False, owner="agent-1"), namespace="kube-system")
    assert exempt.allowed
    assert exempt.reason == "exempt namespace"


# -- waivers, exemptions, errors ----------------------------------------------------------------------


def test_inline_waiver_annotation_applies(engine: Engine) -> None:
    obj = pod(annotations=inline_waiver("k8s-resource-limits"))
    del obj["spec"]["containers"][0]["resources"]["limits"]
    decision, response = run(engine, obj)
    assert response["allowed"] is True
    assert "k8s-resource-limits" not in decision.warned
    assert response["auditAnnotations"][ANNOTATION_WAIVED] == "k8s-resource-limits"


def test_policy_waiver_applies_and_expired_one_does_not() -> None:
    waiver = (
        "waivers:\n"
        "  - check: k8s-not-privileged\n"
        "    resource: {kind: Pod, namespace: shop, name: web}\n"
        "    justification: The vendor agent needs device access until its rework.\n"
        "    approver: J. Smith (ISSM)\n"
        "    expires: 2030-01-01\n"
    )
    obj = pod(compliant=False)
    before = make_engine(policy_text(waivers=waiver), as_of=dt.date(2030, 1, 1))
    decision, response = run(before, obj)
    assert "k8s-not-privileged" not in decision.failed
    assert "k8s-not-privileged" in response["auditAnnotations"][ANNOTATION_WAIVED]
    after = make_engine(policy_text(waivers=waiver), as_of=dt.date(2030, 1, 2))  # valid through its date
    decision, response = run(after, obj)
    assert "k8s-not-privileged" in decision.failed
    assert "expired on 2030-01-01" in response["status"]["message"]


def test_exempt_namespace_is_allowed_without_evaluation(engine: Engine) -> None:
    decision, response = run(engine, pod("agent", "kube-system", compliant=False))
    assert response["allowed"] is True
    assert not decision.evaluated
    assert response["auditAnnotations"] == {ANNOTATION_EXEMPT: "kube-system"}


def test_evaluation_error_denies_by_default(engine: Engine) -> None:
    decision, response = run(engine, pod(annotations=INVALID_WAIVER))  # compliant, but the waiver is invalid
    assert response["allowed"] is False
    assert decision.outcome == "error"
    assert response["status"]["message"].startswith("factorygate could not evaluate Pod shop/web: annotation ")
    assert "factorygate.dev/waive.k8s-not-privileged" in response["status"]["message"]
    assert ANNOTATION_ERROR in response["auditAnnotations"]


def test_fail_open_namespace_admits_an_evaluation_error_with_a_warning(engine: Engine) -> None:
    decision, response = run(engine, pod("web", "sandbox-alice", annotations=INVALID_WAIVER))
    assert response["allowed"] is True
    assert decision.error is not None
    assert response["warnings"][0].startswith(
        "factorygate: admitted without a complete evaluation (namespace sandbox-alice is fail-open): "
    )
    assert decision.outcome == "allowed"


def test_fail_open_namespace_still_denies_policy_failures(engine: Engine) -> None:
    decision, response = run(engine, pod("web", "sandbox-alice", compliant=False, annotations=INVALID_WAIVER))
    assert response["allowed"] is False
    assert decision.error is not None
    assert "- evaluation error: annotation " in response["status"]["message"]


def test_an_exception_in_the_engine_denies_or_fails_open(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(items: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine, "evaluate", boom)
    decision, response = run(engine, pod())
    assert decision.outcome == "error"
    assert response["allowed"] is False
    assert response["status"]["message"] == (
        "factorygate could not evaluate Pod shop/web: evaluation failed: RuntimeError: disk on fire"
    )
    _decision, response = run(engine, pod("web", "sandbox-bob"))
    assert response["allowed"] is True
    assert "RuntimeError: disk on fire" in response["warnings"][0]
    assert response["auditAnnotations"][ANNOTATION_ERROR] == "evaluation failed: RuntimeError: disk on fire"


def test_too_many_containers_is_an_evaluation_error(engine: Engine) -> None:
    obj = pod()
    obj["spec"]["containers"] = [dict(obj["spec"]["containers"][0], name=f"c{i}") for i in range(101)]
    _decision, response = run(engine, obj)
    assert response["allowed"] is False
    assert "has 101 containers" in response["status"]["message"]


def test_object_kind_that_contradicts_the_request_is_an_error(engine: Engine) -> None:
    _decision, response = run(engine, deployment(), kind="Pod")
    assert response["allowed"] is False
    assert "does not match request kind Pod" in response["status"]["message"]


# -- what is not evaluated --------------------------------------------------------------------------------


def test_delete_and_connect_are_allowed_without_evaluation(engine: Engine) -> None:
    decision, response = run(engine, None, operation="DELETE", old=pod(compliant=False))
    assert response == {"uid": response["uid"], "allowed": True}
    assert decision.reason == "DELETE not evaluated"
    decision, _ = run(engine, None, operation="CONNECT", old=pod(), sub_resource="exec")
    assert decision.allowed
    assert not decision.evaluated


def test_non_workload_kinds_are_allowed(engine: Engine) -> None:
    decision, response = run(engine, configmap())
    assert response["allowed"] is True
    assert not decision.evaluated


def test_a_custom_resource_sharing_a_workload_kind_name_is_not_a_workload(engine: Engine) -> None:
    doc = review(deployment(compliant=False))
    doc["request"]["kind"]["group"] = "example.com"
    decision = decide(engine, parse_review(json.dumps(doc).encode()))
    assert decision.allowed
    assert decision.reason == "example.com/Deployment is not a workload kind"


def test_update_is_evaluated_when_the_pod_spec_changes(engine: Engine) -> None:
    old = deployment()
    new = deployment(image="docker.io/library/nginx:latest")
    decision, response = run(engine, new, operation="UPDATE", old=old)
    assert response["allowed"] is False
    assert "k8s-allowed-registry" in decision.failed


def test_update_that_leaves_the_pod_spec_alone_is_allowed(engine: Engine) -> None:
    old = deployment(compliant=False)
    new = deployment(compliant=False, replicas=5)
    new["metadata"]["labels"]["team"] = "payments"
    decision, _ = run(engine, new, operation="UPDATE", old=old)
    assert decision.allowed
    assert decision.reason == "pod spec unchanged"


def test_update_of_an_object_being_deleted_is_allowed(engine: Engine) -> None:
    old = pod(compliant=False)
    new = pod(compliant=False)
    new["spec"]["containers"][0]["image"] = "docker.io/other:latest"
    new["metadata"]["deletionTimestamp"] = "2026-01-15T11:00:00Z"
    decision, _ = run(engine, new, operation="UPDATE", old=old)
    assert decision.allowed
    assert decision.reason == "object is being deleted"


def test_status_subresource_is_allowed_and_ephemeral_containers_are_evaluated(engine: Engine) -> None:
    old = pod(compliant=False)
    decision, _ = run(engine, pod(compliant=False), operation="UPDATE", old=old, sub_resource="status")
    assert decision.allowed
    debug = pod()
    debug["spec"]["ephemeralContainers"] = [
        {"name": "debugger", "image": "busybox", "securityContext": {"privileged": True}}
    ]
    decision, _ = run(engine, debug, operation="UPDATE", old=pod(), sub_resource="ephemeralcontainers")
    assert not decision.allowed
    assert "k8s-not-privileged" in decision.failed


def test_dry_run_is_parsed(engine: Engine) -> None:
    req = parse_review(body(pod(), dry_run=True))
    assert req.dry_run is True
    assert parse_review(body(pod())).dry_run is False


# -- malformed requests -------------------------------------------------------------------------------


def _with(**changes: Any) -> bytes:
    doc = review(pod())
    for key, value in changes.items():
        target, _, field = key.rpartition("__")
        holder = doc["request"] if target == "request" else doc
        if value is None:
            holder.pop(field, None)
        else:
            holder[field] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "body is not JSON: Input is a zero-length, empty document"),
        (b'{"apiVersion": NaN}', "body is not JSON"),
        (b'{"apiVersion": "\\ud800"}', "body is not JSON"),  # a lone surrogate
        (b"{not json", "body is not JSON"),
        (b"\xff\xfe{}", "body is not JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "body is not JSON"),
        (
            _with(apiVersion="admission.k8s.io/v1beta1"),
            "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview",
        ),
        (_with(kind="AdmissionResponse"), "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview"),
        (_with(request=None), "request is missing or not an object"),
        (_with(request__uid=None), "request.uid is missing or not a string"),
        (_with(request__uid=""), "request.uid is missing or not a string"),
        (_with(request__operation="PATCH"), "request.operation must be one of"),
        (_with(request__kind="Pod"), "request.kind is missing or has no kind"),
        (_with(request__object="a string"), "request.object is not an object"),
        (_with(request__object=None), "request.object is missing on CREATE"),
        (_with(request__oldObject=[1]), "request.oldObject is not an object"),
    ],
)
def test_malformed_reviews_raise_review_error(raw: bytes, message: str) -> None:
    with pytest.raises(ReviewError) as exc:
        parse_review(raw)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


# -- bounds ----------------------------------------------------------------------------------------------


def _finding(check: str, severity: Severity, message: str) -> Finding:
    return Finding(check, Status.FAIL, severity, message, Location("x"), container="c")


def test_warnings_are_bounded_in_count_and_length() -> None:
    from factorygate.admission.review import _warnings

    many = [_finding(f"check-{i}", Severity.LOW, "x" * 1000) for i in range(50)]
    out = _warnings(many)
    assert len(out) == MAX_WARNINGS
    assert all(len(w) <= MAX_WARNING_CHARS for w in out)
    assert out[-1] == "factorygate: 31 more check(s) below the threshold"
    control = _warnings([_finding("c", Severity.LOW, "line one\nline two\r\x1b[31m")])
    assert control == ("factorygate: c (low): container c: line one line two [31m",)


def test_audit_annotation_values_are_cut_at_a_whole_id() -> None:
    from factorygate.admission.review import _joined

    ids = [f"k8s-some-rather-long-check-identifier-{i:03d}" for i in range(200)]
    text = _joined(ids)
    assert len(text) <= MAX_ANNOTATION_CHARS
    assert re.search(r",\+\d+ more$", text)
    kept = text.rsplit(",", 1)[0].split(",")
    assert kept == ids[: len(kept)]


# -- the engine over a long run -----------------------------------------------------------------------


def test_server_engine_keeps_evaluating_after_the_scan_finding_budget() -> None:
    engine = make_engine()
    clock = EngineClock(engine, follow_clock=True)
    engine._produced = MAX_FINDINGS  # as after ~20,000 denials of a pod like this one
    decision, _ = run(clock.get(), pod(compliant=False))
    assert decision.error is None
    assert set(decision.failed) >= BAD_POD_FAILS


def test_engine_clock_rebuilds_at_midnight_only_when_following_the_clock() -> None:
    engine = make_engine()
    clock = EngineClock(engine, follow_clock=True)
    assert clock.get() is engine
    clock._next = 0.0  # midnight has passed
    fresh = clock.get()
    assert fresh is not engine
    assert fresh.as_of == dt.date.today()
    assert fresh.finding_budget == engine.finding_budget
    pinned = EngineClock(make_engine(as_of=dt.date(2030, 1, 1)), follow_clock=True)
    pinned._next = 0.0
    assert pinned.get().as_of == dt.date(2030, 1, 1)


def test_request_fields_are_typed() -> None:
    req = parse_review(body(pod(), uid="u-1"))
    assert isinstance(req, AdmissionRequest)
    assert (req.uid, req.kind, req.group, req.namespace, req.name, req.operation) == (
        "u-1",
        "Pod",
        "",
        "shop",
        "web",
        "CREATE",
    )
