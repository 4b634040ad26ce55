"""An AdmissionReview (``admission.k8s.io/v1``) in, a decision and the response out. Pure: no I/O.

The API server sends one object per request. Workload kinds are run through the engine's
per-object checks (the bundle check, NetworkPolicy coverage, needs the whole namespace and is left
to ``factorygate scan``). Failures at or above the policy threshold deny; lower ones become
warnings. An evaluation error denies unless the namespace is fail-open
(``parameters.fail_open_namespaces``). A body that is not an AdmissionReview raises
:class:`ReviewError` (HTTP 400), never an answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

import orjson

from factorygate.engine import Engine
from factorygate.facts.workload import workload_from
from factorygate.inputs.kubernetes import Manifest
from factorygate.model import Finding, Severity, Status

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
# The workload kinds factorygate evaluates, by API group ("" is the core group). A custom resource
# that happens to share a kind name is not a workload.
WORKLOAD_GROUPS: Mapping[str, str] = {
    "Pod": "",
    "PodTemplate": "",
    "ReplicationController": "",
    "Deployment": "apps",
    "StatefulSet": "apps",
    "DaemonSet": "apps",
    "ReplicaSet": "apps",
    "Job": "batch",
    "CronJob": "batch",
}
# Subresources whose writes change what runs: `kubectl debug` adds containers through this one.
EVALUATED_SUBRESOURCES = frozenset({"", "ephemeralcontainers"})
# Audit annotation keys: the API server prefixes each with the webhook's name ("<webhook>/<key>"),
# so a key is a bare name ([A-Za-z0-9][-A-Za-z0-9_.]*, at most 63 characters).
ANNOTATION_FAILED = "failed-checks"
ANNOTATION_WARNED = "warned-checks"
ANNOTATION_WAIVED = "waived-checks"
ANNOTATION_ERROR = "evaluation-error"
ANNOTATION_EXEMPT = "exempt-namespace"
# Bounds on what goes back to the API server (it truncates warnings over 256 characters, and all of
# them past 4 KiB) and into audit logs.
MAX_WARNINGS = 20
MAX_WARNING_CHARS = 256
MAX_ANNOTATION_CHARS = 2048
MAX_MESSAGE_CHARS = 8192
MAX_DETAILS_PER_CHECK = 3
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class ReviewError(ValueError):
    """The body is not an AdmissionReview this webhook can answer (HTTP 400 with this message)."""


class AdmissionRequest(NamedTuple):
    """The fields of ``request`` a decision and its log line need."""

    uid: str
    kind: str  # request.kind.kind
    group: str  # request.kind.group ("" for the core group)
    namespace: str  # "" for cluster-scoped objects
    name: str  # "" when the object is created with generateName
    operation: str  # CREATE, UPDATE, DELETE or CONNECT
    sub_resource: str
    dry_run: bool
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Decision:
    """What to answer, and what to log about it."""

    allowed: bool
    evaluated: bool
    reason: str  # why: "compliant", "policy failures", "evaluation error", "DELETE not evaluated", ...
    message: str = ""  # status.message when denied
    warnings: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    failed: tuple[str, ...] = ()  # check ids failing at or above the threshold
    warned: tuple[str, ...] = ()  # check ids failing below it
    error: str | None = None  # the evaluation error, denied or admitted fail-open

    @property
    def outcome(self) -> str:
        """The metrics label: allowed, denied (a policy failure) or error (denied: could not evaluate)."""
        if self.allowed:
            return "allowed"
        return "denied" if self.failed else "error"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def parse_review(body: bytes) -> AdmissionRequest:
    """Validate an AdmissionReview body; raise :class:`ReviewError` naming the first problem."""
    try:
        # orjson: a third of the stdlib parser's cost on an AdmissionReview (the webhook's hottest
        # step after the checks); it refuses invalid UTF-8, lone surrogates, NaN and nesting over 1024
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:  # a ValueError
        raise ReviewError(f"body is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ReviewError("body is not a JSON object")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != KIND:
        raise ReviewError(
            f"expected apiVersion {API_VERSION} and kind {KIND}, got "
            f"{str(doc.get('apiVersion'))[:64]!r} and {str(doc.get('kind'))[:64]!r}"
        )
    req = doc.get("request")
    if not isinstance(req, dict):
        raise ReviewError("request is missing or not an object")
    uid = req.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("request.uid is missing or not a string")
    operation = req.get("operation")
    if operation not in OPERATIONS:
        raise ReviewError(f"request.operation must be one of {sorted(OPERATIONS)}, got {str(operation)[:32]!r}")
    gvk = req.get("kind")
    if not isinstance(gvk, dict) or not isinstance(gvk.get("kind"), str):
        raise ReviewError("request.kind is missing or has no kind")
    obj, old = req.get("object"), req.get("oldObject")
    if obj is not None and not isinstance(obj, dict):
        raise ReviewError("request.object is not an object")
    if old is not None and not isinstance(old, dict):
        raise ReviewError("request.oldObject is not an object")
    if operation in ("CREATE", "UPDATE") and obj is None:
        raise ReviewError(f"request.object is missing on {operation}")
    dry_run = req.get("dryRun", False)
    return AdmissionRequest(
        uid=uid,
        kind=gvk["kind"],
        group=_text(gvk.get("group")),
        namespace=_text(req.get("namespace")),
        name=_text(req.get("name")),
        operation=operation,
        sub_resource=_text(req.get("subResource")),
        dry_run=dry_run is True,
        object=obj,
        old_object=old,
    )


def _skip_reason(req: AdmissionRequest) -> str | None:
    """Why a request is admitted without evaluation, or None when it must be evaluated."""
    if req.operation not in ("CREATE", "UPDATE"):
        return f"{req.operation} not evaluated"
    if WORKLOAD_GROUPS.get(req.kind) != req.group:
        return f"{req.group or 'core'}/{req.kind} is not a workload kind"
    if req.sub_resource not in EVALUATED_SUBRESOURCES:
        return f"subresource {req.sub_resource} not evaluated"
    if req.operation == "UPDATE" and req.old_object is not None and req.object is not None:
        meta = req.object.get("metadata")
        if isinstance(meta, dict) and meta.get("deletionTimestamp"):
            return "object is being deleted"  # finalizers must still be removable
        new_w, old_w = workload_from(_with_kind(req.object, req)), workload_from(_with_kind(req.old_object, req))
        if new_w is not None and old_w is not None and new_w.pod_spec == old_w.pod_spec:
            return "pod spec unchanged"  # as Pod Security admission: label and scale updates of running workloads
    return None


def _with_kind(obj: dict[str, Any], req: AdmissionRequest) -> dict[str, Any]:
    return obj if obj.get("kind") == req.kind else {**obj, "kind": req.kind}


def _subject(req: AdmissionRequest) -> dict[str, Any]:
    """The object as the checks must see it: the request's kind and namespace are authoritative."""
    obj = req.object if req.object is not None else {}
    if "kind" not in obj:
        obj = {**obj, "kind": req.kind}
    meta = obj.get("metadata")
    if req.namespace and (not isinstance(meta, dict) or meta.get("namespace") != req.namespace):
        obj = {**obj, "metadata": {**(meta if isinstance(meta, dict) else {}), "namespace": req.namespace}}
    return obj


def object_name(req: AdmissionRequest) -> str:
    """The object's name; for one created with generateName, that prefix and ``*``; else ``""``."""
    if req.name:
        return req.name
    obj = req.object if req.object is not None else req.old_object
    meta = obj.get("metadata") if obj is not None else None
    if not isinstance(meta, dict):
        return ""
    name = _text(meta.get("name"))
    if name:
        return name
    prefix = _text(meta.get("generateName"))
    return prefix + "*" if prefix else ""


def display_name(req: AdmissionRequest) -> str:
    """``Kind namespace/name``, as messages name the object."""
    ns = f"{req.namespace}/" if req.namespace else ""
    return f"{req.kind} {ns}{object_name(req) or '<unnamed>'}"


# A request the checks ran on: (the object as checked, its findings) before the verdict (more may be added:
# image signatures). A plain tuple: built in C on the webhook's hot path.
Evaluated = tuple[dict[str, Any], list[Finding]]


def decide(engine: Engine, req: AdmissionRequest) -> Decision:
    """Evaluate one admission request under the engine's policy."""
    result = evaluate(engine, req)
    return result if isinstance(result, Decision) else _verdict(engine, req, result[1])


def verdict(engine: Engine, req: AdmissionRequest, findings: Sequence[Finding]) -> Decision:
    """The decision on an evaluated request's findings (see :func:`evaluate`)."""
    return _verdict(engine, req, findings)


def evaluate(engine: Engine, req: AdmissionRequest) -> Decision | Evaluated:
    """The per-object checks of one request: a final Decision (skipped, exempt, error) or its findings."""
    skip = _skip_reason(req)
    if skip is not None:
        return Decision(allowed=True, evaluated=False, reason=skip)
    obj = _subject(req)
    if obj.get("kind") != req.kind:
        return _error(engine, req, f"object kind {str(obj.get('kind'))[:64]!r} does not match request kind {req.kind}")
    try:
        part = engine.evaluate([Manifest(obj, display_name(req), 1, None)])
    except Exception as e:  # noqa: BLE001 - any failure to evaluate must deny (fail closed), never admit
        return _error(engine, req, f"evaluation failed: {type(e).__name__}: {e}")
    stats = part.stats
    if stats.exempt_workloads:
        return Decision(
            allowed=True,
            evaluated=False,
            reason="exempt namespace",
            annotations={ANNOTATION_EXEMPT: _bounded(req.namespace, MAX_ANNOTATION_CHARS)},
        )
    if not stats.workloads and not stats.input_errors:
        return _error(engine, req, f"{req.kind} was not evaluated (no pod spec found)")
    return obj, part.findings


def _verdict(engine: Engine, req: AdmissionRequest, findings: Sequence[Finding]) -> Decision:
    threshold = engine.policy.threshold
    failing: list[Finding] = []
    below: list[Finding] = []
    errors: list[Finding] = []
    waived: list[str] = []
    for f in findings:
        if f.status is Status.FAIL:
            (failing if f.severity >= threshold else below).append(f)
        elif f.status is Status.ERROR:
            errors.append(f)
        elif f.status is Status.WAIVED:
            waived.append(f.check)
    failed = _ids(failing)
    warned = _ids(below)
    annotations: dict[str, str] = {}
    if failed:
        annotations[ANNOTATION_FAILED] = _joined(failed)
    if warned:
        annotations[ANNOTATION_WARNED] = _joined(warned)
    if waived:
        annotations[ANNOTATION_WAIVED] = _joined(_ids_of(waived))
    error = "; ".join(dict.fromkeys(_one_line(f.message) for f in errors)) if errors else None
    if error:
        annotations[ANNOTATION_ERROR] = _bounded(error, MAX_ANNOTATION_CHARS)
    warnings = _warnings(below)
    if failing:
        return Decision(
            allowed=False,
            evaluated=True,
            reason="policy failures",
            message=_deny_message(display_name(req), failing, threshold, error),
            warnings=warnings,
            annotations=annotations,
            failed=failed,
            warned=warned,
            error=error,
        )
    if error is not None:
        if _fail_open(engine, req.namespace):
            note = f"factorygate: admitted without a complete evaluation (namespace {req.namespace} is fail-open): "
            return Decision(
                allowed=True,
                evaluated=True,
                reason="evaluation error, fail-open namespace",
                warnings=(_bounded(note + error, MAX_WARNING_CHARS), *warnings)[:MAX_WARNINGS],
                annotations=annotations,
                warned=warned,
                error=error,
            )
        return Decision(
            allowed=False,
            evaluated=True,
            reason="evaluation error",
            message=_bounded(f"factorygate could not evaluate {display_name(req)}: {error}", MAX_MESSAGE_CHARS),
            warnings=warnings,
            annotations=annotations,
            warned=warned,
            error=error,
        )
    return Decision(
        allowed=True,
        evaluated=True,
        reason="compliant" if not warned else "findings below the threshold",
        warnings=warnings,
        annotations=annotations,
        warned=warned,
    )


def _error(engine: Engine, req: AdmissionRequest, error: str) -> Decision:
    """An evaluation that could not run at all: deny, or admit with a warning in a fail-open namespace."""
    error = _bounded(_one_line(error), MAX_ANNOTATION_CHARS)
    annotations = {ANNOTATION_ERROR: error}
    if _fail_open(engine, req.namespace):
        note = f"factorygate: admitted without evaluation (namespace {req.namespace} is fail-open): {error}"
        return Decision(
            allowed=True,
            evaluated=False,
            reason="evaluation error, fail-open namespace",
            warnings=(_bounded(note, MAX_WARNING_CHARS),),
            annotations=annotations,
            error=error,
        )
    return Decision(
        allowed=False,
        evaluated=False,
        reason="evaluation error",
        message=f"factorygate could not evaluate {display_name(req)}: {error}",
        annotations=annotations,
        error=error,
    )


def _fail_open(engine: Engine, namespace: str) -> bool:
    return any(fnmatchcase(namespace, g) for g in engine.policy.parameters.fail_open_namespaces)


def _ids(findings: Iterable[Finding]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(f.check for f in findings))


def _ids_of(checks: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(checks))


def _joined(ids: Sequence[str]) -> str:
    """Comma-joined check ids, cut at a whole id when too long (with a count of the rest)."""
    text = ",".join(ids)
    if len(text) <= MAX_ANNOTATION_CHARS:
        return text
    kept: list[str] = []
    size = 0
    for i, cid in enumerate(ids):
        if size + len(cid) + 1 > MAX_ANNOTATION_CHARS - 16:
            return ",".join(kept) + f",+{len(ids) - i} more"
        kept.append(cid)
        size += len(cid) + 1
    return ",".join(kept)


def _one_line(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _detail(f: Finding) -> str:
    where = f"container {f.container}: " if f.container else ""
    return where + _one_line(f.message)


def _grouped(findings: Iterable[Finding]) -> dict[str, list[Finding]]:
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(f.check, []).append(f)
    return groups


def _details(group: Sequence[Finding]) -> str:
    shown = "; ".join(dict.fromkeys(_detail(f) for f in group[:MAX_DETAILS_PER_CHECK]))
    more = len(group) - MAX_DETAILS_PER_CHECK
    return shown + (f" (+{more} more)" if more > 0 else "")


def _deny_message(subject: str, failing: Sequence[Finding], threshold: Severity, error: str | None) -> str:
    groups = _grouped(failing)
    lines = [f"factorygate: {subject} fails {len(groups)} check(s) at or above severity {threshold.value}:"]
    for check, group in groups.items():
        first = group[0]
        reqs = ", ".join(first.requirements)
        fix = _one_line(first.remediation)
        lines.append(
            f"- {check} ({first.severity.value}{'; ' + reqs if reqs else ''}): {_details(group)}."
            + (f" Remediation: {fix}" if fix else "")
        )
    if error:
        lines.append(f"- evaluation error: {error}")
    return _bounded("\n".join(lines), MAX_MESSAGE_CHARS)


def _warnings(below: Sequence[Finding]) -> tuple[str, ...]:
    if not below:
        return ()
    out: list[str] = []
    groups = _grouped(below)
    for check, group in groups.items():
        if len(out) == MAX_WARNINGS - 1 and len(groups) > MAX_WARNINGS:
            out.append(f"factorygate: {len(groups) - len(out)} more check(s) below the threshold")
            break
        text = f"factorygate: {check} ({group[0].severity.value}): {_details(group)}"
        out.append(_bounded(text, MAX_WARNING_CHARS))
    return tuple(out)


def response_body(uid: str, decision: Decision) -> dict[str, Any]:
    """The AdmissionReview the API server expects back (it checks apiVersion, kind and uid)."""
    response: dict[str, Any] = {"uid": uid, "allowed": decision.allowed}
    if not decision.allowed:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": decision.message}
    if decision.warnings:
        response["warnings"] = list(decision.warnings)
    if decision.annotations:
        response["auditAnnotations"] = dict(decision.annotations)
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}
