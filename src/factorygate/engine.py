"""The scan engine: manifests -> workload facts -> checks -> findings, with policy applied."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from fnmatch import fnmatchcase
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from factorygate.catalog import Catalog
from factorygate.checks import (
    BUNDLE_CHECKS,
    DOCKERFILE_CHECKS,
    INPUT_ERROR,
    WORKLOAD_CHECKS,
    ImageCheck,
    image_checks,
)
from factorygate.checks.network import (
    NetworkPolicyFacts,
    k8s_network_policy_coverage,
    network_policy_from,
)
from factorygate.facts.workload import WORKLOAD_KINDS, Workload, workload_from
from factorygate.inputs.dockerfile import Dockerfile
from factorygate.inputs.kubernetes import LoadError, Manifest, Skipped
from factorygate.model import (
    CheckMeta,
    Finding,
    Location,
    Outcome,
    Resource,
    Severity,
    Status,
    SubjectKind,
    new_record,
)
from factorygate.policy.load import validate_waiver
from factorygate.policy.schema import Policy, WaiverRule
from factorygate.policy.waivers import WaiverBook

if TYPE_CHECKING:
    from factorygate.facts.image import ImageFacts

INLINE_WAIVER_PREFIX = "factorygate.dev/waive."
DOCKERFILE_WAIVER = re.compile(r"^factorygate:waive\s+(?P<check>\S+)\s*(?P<rest>.*)$")
Item = Manifest | LoadError | Skipped | Dockerfile
# Bounds that keep hostile input from turning into unbounded output: a pod with tens of thousands of
# containers fits in a small file, and every container yields a finding per check.
MAX_CONTAINERS_PER_WORKLOAD = 100
MAX_FINDINGS = 500_000
# The kinds the Kubernetes checks read; loaders need not construct any other.
KUBERNETES_KINDS = WORKLOAD_KINDS | {"NetworkPolicy"}


class ScanStats:
    """Counts a report prints next to the findings. (Plain classes here and for ScanResult: the
    dataclasses module, with inspect, costs a scan more start-up time than the engine itself.)"""

    __slots__ = (
        "dockerfiles",
        "exempt_workloads",
        "images",
        "input_errors",
        "resources",
        "seconds",
        "subjects",
        "workloads",
    )

    def __init__(
        self,
        *,
        resources: int = 0,
        workloads: int = 0,
        dockerfiles: int = 0,
        images: int = 0,
        exempt_workloads: int = 0,
        input_errors: int = 0,
        seconds: float = 0.0,
        subjects: set[str] | None = None,  # subject kinds evaluated: manifest, ...
    ) -> None:
        self.resources = resources
        self.workloads = workloads
        self.dockerfiles = dockerfiles
        self.images = images
        self.exempt_workloads = exempt_workloads
        self.input_errors = input_errors
        self.seconds = seconds
        self.subjects = set() if subjects is None else subjects

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScanStats):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # compared by value and mutable, as the dataclass was

    def __repr__(self) -> str:
        return "ScanStats(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__) + ")"

    def add(self, other: ScanStats) -> None:
        self.resources += other.resources
        self.workloads += other.workloads
        self.dockerfiles += other.dockerfiles
        self.images += other.images
        self.exempt_workloads += other.exempt_workloads
        self.input_errors += other.input_errors
        self.subjects |= other.subjects


class ScanResult:
    """Everything a renderer needs."""

    def __init__(  # noqa: PLR0917 - positional, as the dataclass this class was took them
        self,
        findings: list[Finding],
        catalog: Catalog,
        policy: Policy,
        inputs: list[str],
        stats: ScanStats,
        as_of: dt.date,
    ) -> None:
        self.findings = findings
        self.catalog = catalog
        self.policy = policy
        self.inputs = inputs
        self.stats = stats
        self.as_of = as_of
        self._tally: tuple[list[Finding], int, Counter[tuple[Status, Severity]]] | None = None

    def counts(self) -> Counter[tuple[Status, Severity]]:
        """How many findings of each (status, severity): one pass at C speed, for the exit code and the
        summaries (a scan has tens of thousands of findings; comparing each Severity in Python is slow).
        Kept while ``findings`` is the same list of the same length (results are built, then read)."""
        tally = self._tally
        if tally is None or tally[0] is not self.findings or tally[1] != len(self.findings):
            tally = self._tally = (self.findings, len(self.findings), Counter(map(_STATUS_SEVERITY, self.findings)))
        return tally[2]

    def blocking(self, counts: Counter[tuple[Status, Severity]] | None = None) -> int:
        """Failures at or above the policy's threshold."""
        threshold = self.policy.threshold
        counts = self.counts() if counts is None else counts
        return sum(n for (status, severity), n in counts.items() if status is Status.FAIL and severity >= threshold)

    def exit_code(self) -> int:
        """0 clean, 1 a failure at or above the threshold, 2 an input or check error."""
        counts = self.counts()
        if any(status is Status.ERROR for status, _ in counts):
            return 2
        return 1 if self.blocking(counts) else 0


_STATUS_SEVERITY = attrgetter("status", "severity")


class _WorkloadContext(NamedTuple):
    resource: Resource
    namespace: str | None
    labels: Mapping[str, Any]
    pod_path: str
    location: Location
    waivers: WaiverBook


class PartialScan:
    """The per-object results of part of the inputs, merged by :meth:`Engine.finish`. A plain class:
    cheaper to create at import than a dataclass."""

    __slots__ = ("contexts", "findings", "policies", "stats")

    def __init__(
        self,
        findings: list[Finding] | None = None,
        contexts: list[_WorkloadContext] | None = None,
        policies: list[NetworkPolicyFacts] | None = None,
        stats: ScanStats | None = None,
    ) -> None:
        self.findings = [] if findings is None else findings
        self.contexts = [] if contexts is None else contexts
        self.policies = [] if policies is None else policies
        self.stats = ScanStats() if stats is None else stats


class Engine:
    """Runs the enabled checks of a catalog under a policy."""

    def __init__(self, catalog: Catalog, policy: Policy, as_of: dt.date | None = None) -> None:
        self.catalog = catalog
        self.policy = policy
        self.as_of = as_of or dt.date.today()
        self.params = policy.parameters
        self.workload_checks = [(catalog.checks[cid], fn) for cid, fn in WORKLOAD_CHECKS.items() if policy.enabled(cid)]
        self.bundle_checks = [cid for cid in BUNDLE_CHECKS if policy.enabled(cid)]
        self.dockerfile_checks = [
            (catalog.checks[cid], fn) for cid, fn in DOCKERFILE_CHECKS.items() if policy.enabled(cid)
        ]
        self._image_checks: list[tuple[CheckMeta, ImageCheck]] | None = None
        self.severity = {cid: policy.severity_of(cid, meta.severity) for cid, meta in catalog.checks.items()}
        self.policy_waivers = WaiverBook.from_rules(policy.waivers, "policy", self.as_of)
        self.record_passes = True  # False (admission): passing outcomes make no Finding
        self._produced = 0  # findings so far, against finding_budget
        self.finding_budget = MAX_FINDINGS
        self._exempt_seen: dict[str, bool] = {}

    @property
    def image_checks(self) -> list[tuple[CheckMeta, ImageCheck]]:
        """The enabled image checks (imported on first use: `scan` never needs them)."""
        if self._image_checks is None:
            self._image_checks = [
                (self.catalog.checks[cid], fn) for cid, fn in image_checks().items() if self.policy.enabled(cid)
            ]
        return self._image_checks

    # -- findings -----------------------------------------------------------------------------
    def _finding(
        self,
        check_id: str,
        outcome: Outcome,
        resource: Resource,
        location: Location,
        waivers: WaiverBook,
    ) -> Finding:
        meta = self.catalog.checks[check_id]
        passed, message, _, container, _ = outcome
        waiver = None
        status = Status.PASS
        if not passed:
            status = Status.FAIL
            if waivers.entries or self.policy_waivers.entries:
                waiver = waivers.match(check_id, resource, container) or self.policy_waivers.match(
                    check_id, resource, container
                )
            if waiver is not None:
                if waiver.expired:
                    message = f"{message} (waiver by {waiver.approver} expired on {waiver.expires})"
                else:
                    status = Status.WAIVED
        # positional, built in C (new_record): a scan makes one Finding per check and subject
        return new_record(
            Finding,
            (
                check_id,
                status,
                self.severity[check_id],
                message,
                location,
                meta.requirements,
                meta.nist,
                meta.cci,
                resource,
                container,
                meta.title,
                meta.remediation,
                waiver,
            ),
        )

    def _exempt(self, namespace: str | None) -> bool:
        ns = namespace or ""
        known = self._exempt_seen.get(ns)
        if known is None:
            known = any(fnmatchcase(ns, g) for g in self.params.exempt_namespaces)
            if len(self._exempt_seen) < 4096:  # namespaces repeat; a hostile stream of names must not grow this
                self._exempt_seen[ns] = known
        return known

    def _inline_waivers(
        self,
        entries: Mapping[str, object],
        resource: Resource,
        where: Callable[[str], Location],
        what: str,
    ) -> tuple[WaiverBook, list[Finding]]:
        """Waivers written as ``factorygate.dev/waive.<check>`` annotations (manifests) or labels (images)."""
        rules: list[WaiverRule] = []
        errors: list[Finding] = []
        for key, value in entries.items():
            if not isinstance(key, str) or not key.startswith(INLINE_WAIVER_PREFIX):
                continue
            check_id = key[len(INLINE_WAIVER_PREFIX) :]
            problem = None
            if not self.policy.inline_waivers:
                problem = "inline waivers are disabled by the policy (inline_waivers: false)"
            elif check_id not in self.catalog.checks:
                problem = f"unknown check id {check_id!r}"
            else:
                problem = self._parse_inline_waiver(check_id, value, rules)
            if problem:
                errors.append(self._input_error(where(key), f"{what} {key}: {problem}", resource))
        return WaiverBook.from_rules(rules, "inline", self.as_of, scope=resource), errors

    @staticmethod
    def _parse_inline_waiver(check_id: str, value: object, rules: list[WaiverRule]) -> str | None:
        """Append the waiver an annotation value describes; return the problem when it is invalid."""
        from factorygate.inputs.safeyaml import (
            LoadedDocument,
            YamlProblem,
            load_documents,
        )

        spec = None
        if isinstance(value, str) and len(value) < 4096:  # the bounded loader: annotations are input too
            first = next(iter(load_documents(value.encode("utf-8", "surrogatepass"))), None)
            if isinstance(first, YamlProblem):
                return f"invalid inline waiver: {first.message}"
            spec = first.data if isinstance(first, LoadedDocument) else None
        if not isinstance(spec, dict):
            return "invalid inline waiver: the value must be a mapping {justification, approver, expires}"
        rule = validate_waiver({**spec, "check": check_id})
        if isinstance(rule, str):
            return f"invalid inline waiver: {rule}"
        rules.append(rule)
        return None

    def _crash(self, meta: CheckMeta, e: Exception, location: Location, resource: Resource) -> Finding:
        """The finding of a check that raised: an error naming the check, never a pass."""
        return Finding(
            check=meta.id,
            status=Status.ERROR,
            severity=self.severity[meta.id],
            message=f"check crashed: {type(e).__name__}: {e}",
            location=location,
            requirements=meta.requirements,
            nist=meta.nist,
            cci=meta.cci,
            resource=resource,
            title=meta.title,
        )

    @staticmethod
    def _input_error(location: Location, message: str, resource: Resource | None = None) -> Finding:
        return Finding(
            check=INPUT_ERROR,
            status=Status.ERROR,
            severity=Severity.HIGH,
            message=message,
            location=location,
            resource=resource,
            title="Input could not be evaluated",
        )

    # -- the run ------------------------------------------------------------------------------
    def run(
        self,
        items: Iterable[Item],
        inputs: list[str],
        subjects: Iterable[str] = ("manifest",),
    ) -> ScanResult:
        """Evaluate every item, then the checks over the whole set."""
        started = time.perf_counter()
        return self.finish([self.evaluate(items)], inputs, started, subjects)

    def evaluate(self, items: Iterable[Item]) -> PartialScan:
        """Per-object work: what can be done for each item alone (safe to run in a worker process)."""
        part = PartialScan()
        stats = part.stats
        for item in items:
            if isinstance(item, LoadError):
                stats.input_errors += 1
                part.findings.append(self._input_error(Location(item.file, item.line), item.message))
                continue
            if isinstance(item, Dockerfile):
                stats.dockerfiles += 1
                part.findings.extend(self._evaluate_dockerfile(item))
                continue
            stats.resources += 1
            if isinstance(item, Skipped):
                continue
            doc = item.data
            np = network_policy_from(doc)
            if np is not None:
                part.policies.append(np)
                continue
            w = workload_from(doc, self.record_passes)
            if w is None:
                continue
            if self._exempt(w.namespace):
                stats.exempt_workloads += 1
                continue
            problem = self._too_much(w)
            if problem:
                stats.input_errors += 1
                loc = Location(item.file, item.line, w.pod_path, item.source)
                part.findings.append(self._input_error(loc, problem, Resource(w.kind, w.name, w.namespace)))
                continue
            stats.workloads += 1
            before = len(part.findings)
            part.findings.extend(self._evaluate(item, w, part.contexts))
            self._produced += len(part.findings) - before
        return part

    def _too_much(self, w: Workload) -> str | None:
        if len(w.containers) > MAX_CONTAINERS_PER_WORKLOAD:
            return (
                f"{w.kind} {w.name} has {len(w.containers):,} containers; factorygate evaluates at most "
                f"{MAX_CONTAINERS_PER_WORKLOAD} per workload"
            )
        if self._produced >= self.finding_budget:
            return (
                f"not evaluated: the scan reached its limit of {self.finding_budget:,} findings "
                "(scan fewer inputs at once)"
            )
        return None

    def finish(
        self,
        parts: Iterable[PartialScan],
        inputs: list[str],
        started: float,
        subjects: Iterable[str] = ("manifest",),
    ) -> ScanResult:
        """Merge per-object results, in input order, and run the checks over the whole set.

        ``subjects`` names the kinds of input the scan covered (manifest, dockerfile): requirements
        only other kinds can evidence are reported as not reviewed."""
        stats = ScanStats(subjects=set(subjects))
        findings: list[Finding] = []
        contexts: list[_WorkloadContext] = []
        policies: list[NetworkPolicyFacts] = []
        for part in parts:
            findings.extend(part.findings)
            contexts.extend(part.contexts)
            policies.extend(part.policies)
            stats.add(part.stats)
        if "k8s-network-policy-coverage" in self.bundle_checks:
            for ctx in contexts:
                for outcome in k8s_network_policy_coverage(ctx.namespace, ctx.labels, ctx.pod_path, policies):
                    findings.append(
                        self._finding(
                            "k8s-network-policy-coverage",
                            outcome,
                            ctx.resource,
                            ctx.location,
                            ctx.waivers,
                        )
                    )
        stats.seconds = time.perf_counter() - started
        return ScanResult(findings, self.catalog, self.policy, inputs, stats, self.as_of)

    def _dockerfile_waivers(self, df: Dockerfile, resource: Resource) -> tuple[dict[int, WaiverBook], list[Finding]]:
        """Waivers written as ``# factorygate:waive <check-id> <justification>`` comments in the comment
        block right above an instruction (optional ``approver=NAME`` and ``expires=YYYY-MM-DD``)."""
        comments = dict(df.comments)
        by_line: dict[int, WaiverBook] = {}
        errors: list[Finding] = []
        for stage in df.stages:
            for ins in stage.instructions:
                rules: list[WaiverRule] = []
                line = ins.line - 1
                while line in comments:
                    m = DOCKERFILE_WAIVER.match(comments[line].strip())
                    if m:
                        problem = self._dockerfile_waiver(m.group("check"), m.group("rest"), rules)
                        if problem:
                            loc = Location(df.path, line, "comment")
                            errors.append(self._input_error(loc, problem, resource))
                    line -= 1
                if rules:
                    by_line[ins.line] = WaiverBook.from_rules(rules, "inline", self.as_of, scope=resource)
        return by_line, errors

    def _dockerfile_waiver(self, check_id: str, rest: str, rules: list[WaiverRule]) -> str | None:
        if not self.policy.inline_waivers:
            return "inline waivers are disabled by the policy (inline_waivers: false)"
        if check_id not in self.catalog.checks:
            return f"factorygate:waive names an unknown check id {check_id!r}"
        fields = {"approver": "inline (no approver named)", "expires": "9999-12-31"}
        for key in ("approver", "expires"):
            m = re.search(rf"\b{key}=(\"[^\"]*\"|\S+)", rest)
            if m:
                fields[key] = m.group(1).strip('"')
                rest = rest[: m.start()] + rest[m.end() :]
        rule = validate_waiver({"check": check_id, "justification": rest.strip(), **fields})
        if isinstance(rule, str):
            return f"invalid factorygate:waive comment: {rule}"
        rules.append(rule)
        return None

    def evaluate_image(self, facts: ImageFacts) -> PartialScan:
        """The image checks on one analysed image (see factorygate.image)."""
        part = PartialScan()
        part.stats.images += 1
        resource = Resource(kind="Image", name=facts.name)
        waivers, errors = self._inline_waivers(
            facts.labels,
            resource,
            lambda key: Location(facts.name, None, f"config.Labels.{key}"),
            "label",
        )
        part.findings.extend(errors)
        for meta_check, fn in self.image_checks:
            try:
                outcomes = list(fn(facts, self.params))
            except Exception as e:  # noqa: BLE001 - a crashed check must surface as an error, never a pass
                part.findings.append(self._crash(meta_check, e, Location(facts.name, None, "config"), resource))
                continue
            for o in outcomes:
                part.findings.append(
                    self._finding(
                        meta_check.id,
                        o,
                        resource,
                        Location(facts.name, None, o.path),
                        waivers,
                    )
                )
        return part

    def image_error(self, name: str, message: str) -> PartialScan:
        """An image that could not be read: one input error naming it."""
        part = PartialScan()
        part.stats.input_errors += 1
        part.findings.append(self._input_error(Location(name), message, Resource(kind="Image", name=name)))
        return part

    def _evaluate_dockerfile(self, df: Dockerfile) -> Iterator[Finding]:
        resource = Resource(kind="Dockerfile", name=df.path)
        waivers, errors = self._dockerfile_waivers(df, resource)
        yield from errors
        empty = WaiverBook.empty()
        for meta_check, fn in self.dockerfile_checks:
            try:
                outcomes = list(fn(df, self.params))
            except Exception as e:  # noqa: BLE001 - a crashed check must surface as an error, never a pass
                yield self._crash(meta_check, e, Location(df.path, 1), resource)
                continue
            for o in outcomes:
                loc = new_record(Location, (df.path, o.line, o.path, None))
                book = waivers.get(o.line or 0, empty) if waivers else empty
                yield self._finding(meta_check.id, o, resource, loc, book)

    def _evaluate(self, m: Manifest, w: Workload, contexts: list[_WorkloadContext]) -> Iterator[Finding]:
        meta = m.data.get("metadata")
        api_version = m.data.get("apiVersion")
        resource = Resource(
            kind=w.kind,
            name=w.name,
            namespace=w.namespace,
            api_version=api_version if isinstance(api_version, str) else None,
        )
        waivers, errors = (
            self._inline_waivers(
                w.annotations,
                resource,
                lambda key: Location(
                    m.file,
                    m.line_at(("metadata", "annotations", key)),
                    f"metadata.annotations.{key}",
                    m.source,
                ),
                "annotation",
            )
            if isinstance(meta, dict)
            else (WaiverBook.empty(), [])
        )
        yield from errors
        lines: dict[str, int] = {}

        def locate(path: str) -> Location:
            line = lines.get(path)
            if line is None:
                line = lines[path] = m.line_of(path)
            return Location(m.file, line, path, m.source)

        params, record_passes = self.params, self.record_passes
        for meta_check, fn in self.workload_checks:
            try:
                outcomes = list(fn(w, params))
            except Exception as e:  # noqa: BLE001 - a crashed check must surface as an error, never a pass
                yield self._crash(meta_check, e, locate(w.pod_path), resource)
                continue
            for o in outcomes:
                if record_passes or not o.passed:
                    yield self._finding(meta_check.id, o, resource, locate(o.path), waivers)
        if self.bundle_checks:
            contexts.append(
                _WorkloadContext(
                    resource,
                    w.namespace,
                    w.labels,
                    w.pod_path,
                    locate(w.pod_path),
                    waivers,
                )
            )


def requirement_statuses(result: ScanResult) -> dict[str, str]:
    """Each catalog requirement's status: fail, error, waived, pass, not_applicable or not_reviewed."""
    seen: dict[str, set[Status]] = {}
    findings = result.findings
    # the distinct (requirements, status) pairs first: a few hundred, of tens of thousands of findings
    for requirements, status in set(map(attrgetter("requirements", "status"), findings)):
        for r in requirements:
            seen.setdefault(r, set()).add(status)
    evaluated_kinds = {
        "manifest": {SubjectKind.KUBERNETES_WORKLOAD, SubjectKind.KUBERNETES_BUNDLE},
        "dockerfile": {SubjectKind.DOCKERFILE},
        "image": {SubjectKind.IMAGE},
    }
    ran_subjects = set().union(*(evaluated_kinds.get(s, set()) for s in result.stats.subjects))
    covered = {
        r
        for c in result.catalog.checks.values()
        if c.subject in ran_subjects and result.policy.enabled(c.id)
        for r in c.requirements
    }
    out: dict[str, str] = {}
    for rid in result.catalog.requirements:
        statuses = seen.get(rid, set())
        if Status.FAIL in statuses:
            out[rid] = "fail"
        elif Status.ERROR in statuses:
            out[rid] = "error"
        elif Status.WAIVED in statuses:
            out[rid] = "waived"
        elif Status.PASS in statuses:
            out[rid] = "pass"
        elif rid in covered:
            out[rid] = "not_applicable"
        else:
            out[rid] = "not_reviewed"
    return out
