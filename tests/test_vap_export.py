"""``factorygate export vap``: structure of the generated admission policies, and parity of every
exported CEL expression with its Python check.

CEL is evaluated with cel-python (celpy, whose ``matches()`` is RE2) the way the API server does it:
``variables`` first, in order, each bound as ``variables.<name>``, then the validation. Parity: for
every exported check and every workload document of tests/fixtures/checks (all of them, not only the
check's own) and for generated pod specs, the CEL verdict equals "the Python check yields no failed
outcome". Documents go through what the API server does before admission (nulls dropped, quantities
as strings); those it would reject for their types are left out. Where the export is stricter by
design (documented in the export's header) CEL may deny what Python passes, never the reverse.
"""

from __future__ import annotations

import argparse
import fnmatch
import functools
import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import celpy  # type: ignore[import-untyped,unused-ignore]
import pytest
import yaml
from celpy.adapter import json_to_cel  # type: ignore[import-untyped,unused-ignore]
from celpy.evaluation import CELEvalError  # type: ignore[import-untyped,unused-ignore]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factorygate.catalog import load_catalog
from factorygate.checks import WORKLOAD_CHECKS
from factorygate.engine import KUBERNETES_KINDS, Engine
from factorygate.errors import PolicyError
from factorygate.export import VapExport, add_export_arguments, export_vap, render, run_export_vap
from factorygate.export import patterns as rx
from factorygate.export.vap import NAMESPACE_LABEL, WORKLOAD_RESOURCES
from factorygate.facts.images import parse_image, registry_allowed
from factorygate.facts.workload import WORKLOAD_KINDS, workload_from
from factorygate.inputs.kubernetes import manifests_from_bytes
from factorygate.model import Severity, SubjectKind
from factorygate.policy import default_policy_text, parse_policy
from factorygate.policy.schema import Parameters, Policy

CATALOG = load_catalog()
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "checks"
DIGEST = "sha256:" + "ab" * 32
ENV = celpy.Environment()
KUBERNETES_CHECKS = [
    c.id
    for c in CATALOG.checks.values()
    if c.subject in (SubjectKind.KUBERNETES_WORKLOAD, SubjectKind.KUBERNETES_BUNDLE)
]
# A policy whose parameters exercise the translations: registry globs, odd host paths, few sysctls.
CUSTOM_POLICY_TEXT = """
apiVersion: factorygate.dev/v1
kind: Policy
threshold: high
parameters:
  allowed_registries:
    ["registry1.dso.mil/ironbank", "*.dso.mil", "docker.io/library/ngin?", "localhost:5000/", "[a-c]*.example/x"]
  sensitive_host_paths: [/etc, /var/lib/kubelet/, "/srv/a b", /]
  runtime_socket_paths: [/run/containerd/containerd.sock, /var/run/docker.sock]
  allowed_sysctls: [net.ipv4.tcp_syncookies]
"""


def policy_from(text: str) -> Policy:
    return parse_policy(textwrap.dedent(text), "policy.yaml", set(CATALOG.checks))


DEFAULT_POLICY = policy_from(default_policy_text())
CUSTOM_POLICY = policy_from(CUSTOM_POLICY_TEXT)


# -- a CEL evaluator for admission policies ---------------------------------------------------------
@functools.cache
def program(expression: str) -> Any:
    return ENV.program(ENV.compile(expression))


def to_cel(value: Any) -> Any:
    return json_to_cel(value)


class CelError(AssertionError):
    """An expression did not evaluate (the API server would apply failurePolicy Fail: deny)."""


def evaluate(expression: str, activation: Mapping[str, Any]) -> Any:
    try:
        result = program(expression).evaluate(dict(activation))
    except CELEvalError as e:
        raise CelError(f"{expression[:200]}: {e}") from e
    if isinstance(result, CELEvalError):
        raise CelError(f"{expression[:200]}: {result}")
    return result


class AdmissionPolicy:
    """One exported ValidatingAdmissionPolicy, evaluated like the API server evaluates it."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc
        self.check: str = doc["metadata"]["annotations"]["factorygate.dev/check"]
        spec = doc["spec"]
        self.conditions = [c["expression"] for c in spec.get("matchConditions", [])]
        self.variables = [(v["name"], v["expression"]) for v in spec["variables"]]
        self.validations = spec["validations"]

    def activation(self, obj: Mapping[str, Any], namespace: str) -> dict[str, Any]:
        act = {"object": to_cel(obj), "request": to_cel({"namespace": namespace})}
        bound: dict[Any, Any] = {}
        for name, expression in self.variables:
            bound[celpy.celtypes.StringType(name)] = evaluate(
                expression, {**act, "variables": celpy.celtypes.MapType(bound)}
            )
        act["variables"] = celpy.celtypes.MapType(bound)
        return act

    def applies(self, namespace: str) -> bool:
        request = {"request": to_cel({"namespace": namespace})}
        return all(bool(evaluate(c, request)) for c in self.conditions)

    def admits(self, obj: Mapping[str, Any], namespace: str = "default") -> bool:
        """Whether every validation holds; a failing one must also produce its message."""
        act = self.activation(obj, namespace)
        for v in self.validations:
            result = evaluate(v["expression"], act)
            assert isinstance(result, celpy.celtypes.BoolType), result
            if not result:
                message = evaluate(v["messageExpression"], act)
                assert isinstance(message, str), message
                assert self.check in message, message
                return False
        return True


_EXPORTS: dict[str, tuple[VapExport, dict[str, AdmissionPolicy]]] = {}  # by repr(policy): policies are unhashable


def _export(policy: Policy) -> tuple[VapExport, dict[str, AdmissionPolicy]]:
    key = repr(policy)
    if key not in _EXPORTS:
        export = export_vap(CATALOG, policy)
        docs = [AdmissionPolicy(d) for d in export.documents if d["kind"] == "ValidatingAdmissionPolicy"]
        _EXPORTS[key] = (export, {p.check: p for p in docs})
    return _EXPORTS[key]


def exported(policy: Policy) -> VapExport:
    return _export(policy)[0]


def admission_policies(policy: Policy) -> dict[str, AdmissionPolicy]:
    return _export(policy)[1]


def python_passes(check: str, doc: Mapping[str, Any], params: Parameters) -> bool:
    workload = workload_from(doc)
    assert workload is not None
    return all(o.passed for o in WORKLOAD_CHECKS[check](workload, params))


# -- the corpus: every workload document of the fixtures, as the API server would admit it ------------
def as_admitted(value: Any, key: str | None = None) -> Any:
    """Nulls dropped (the API server decodes them to unset fields), quantities serialised as strings."""
    if isinstance(value, dict):
        inner = {k: as_admitted(v, k) for k, v in value.items() if v is not None}
        if key in ("limits", "requests"):
            inner = {
                k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for k, v in inner.items()
            }
        return inner
    if isinstance(value, list):
        return [as_admitted(v) for v in value]
    return value


_SC_COMMON: dict[str, Any] = {
    "runAsNonRoot": bool,
    "runAsUser": int,
    "seccompProfile": {"type": str},
    "appArmorProfile": {"type": str},
    "seLinuxOptions": {"type": str, "user": str, "role": str, "level": str},
    "windowsOptions": {"hostProcess": bool},
}
_CONTAINER: dict[str, Any] = {
    "name": str,
    "image": str,
    "restartPolicy": str,
    "ports": [{"containerPort": int, "hostPort": int}],
    "resources": {"limits": {"*": str}, "requests": {"*": str}},
    "livenessProbe": dict,
    "readinessProbe": dict,
    "env": [{"name": str, "value": str}],
    "volumeMounts": [{"name": str}],
    "securityContext": {
        **_SC_COMMON,
        "privileged": bool,
        "allowPrivilegeEscalation": bool,
        "readOnlyRootFilesystem": bool,
        "procMount": str,
        "capabilities": {"add": [str], "drop": [str]},
    },
}
_POD_SPEC: dict[str, Any] = {
    "containers": [_CONTAINER],
    "initContainers": [_CONTAINER],
    "ephemeralContainers": [_CONTAINER],
    "volumes": [{"name": str, "hostPath": {"path": str}}],
    "hostNetwork": bool,
    "hostPID": bool,
    "hostIPC": bool,
    "restartPolicy": str,
    "os": {"name": str},
    "nodeSelector": {"*": str},
    "affinity": {"nodeAffinity": dict},
    "securityContext": {**_SC_COMMON, "sysctls": [{"name": str, "value": str}]},
}
_META: dict[str, Any] = {"name": str, "namespace": str, "labels": {"*": str}, "annotations": {"*": str}}


def type_problem(value: Any, schema: Any, path: str = "") -> str | None:
    """Where ``value`` breaks the API types of the fields the checks read (None: it does not)."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return f"{path}: not a mapping"
        for key, item in value.items():
            sub = schema.get(key, schema.get("*"))
            problem = None if sub is None else type_problem(item, sub, f"{path}.{key}")
            if problem:
                return problem
        return None
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{path}: not a list"
        return next((p for i, v in enumerate(value) if (p := type_problem(v, schema[0], f"{path}[{i}]"))), None)
    if schema is int and isinstance(value, bool):
        return f"{path}: a boolean where the API wants an integer"
    return None if isinstance(value, schema) else f"{path}: {type(value).__name__} is not {schema.__name__}"


def api_problem(doc: Mapping[str, Any]) -> str | None:
    """Why the API server would refuse the object before admission (types, required pod fields)."""
    workload = workload_from(doc)
    assert workload is not None
    problem = type_problem(doc.get("metadata"), _META, "metadata") or type_problem(workload.pod_spec, _POD_SPEC, "pod")
    if problem:
        return problem
    if not workload.pod_spec.get("containers"):
        return "a pod needs at least one container"
    names = [c.name for c in workload.containers]
    if len(set(names)) != len(names) or any(not c.spec.get("name") for c in workload.containers):
        return "container names must be set and unique"
    volumes = [v.get("name") for v in workload.pod_spec.get("volumes", [])]
    if len(set(volumes)) != len(volumes) or not all(volumes):
        return "volume names must be set and unique"
    return None


def fixture_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(FIXTURES.rglob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text(encoding="utf-8"))):
            if isinstance(doc, dict) and workload_from(doc) is not None:
                docs.append((f"{path.relative_to(FIXTURES)}#{i}", as_admitted(doc)))
    return docs


CORPUS = fixture_documents()
ADMITTED = [(name, doc) for name, doc in CORPUS if api_problem(doc) is None]
REFUSED = {name: api_problem(doc) for name, doc in CORPUS if api_problem(doc) is not None}


def stricter_by_design(check: str, doc: Mapping[str, Any]) -> bool:
    """Inputs on which the export denies what the scan passes (listed in the export's header)."""
    workload = workload_from(doc)
    assert workload is not None
    if check in ("k8s-no-container-runtime-socket", "k8s-no-sensitive-host-path"):
        paths = [v.get("hostPath", {}).get("path") for v in workload.pod_spec.get("volumes", [])]
        return any(isinstance(p, str) and ".." in p.strip().split("/") for p in paths)
    if check == "k8s-allowed-registry":
        images = [c.spec.get("image") for c in workload.containers]
        return any(isinstance(i, str) and (i != i.strip() or "\u0130" in i) for i in images)
    return False


def verdicts(policy: Policy, check: str, doc: Mapping[str, Any]) -> tuple[bool, bool]:
    """(CEL admits, Python passes) for one document."""
    return admission_policies(policy)[check].admits(doc), python_passes(check, doc, policy.parameters)


def assert_parity(policy: Policy, check: str, docs: list[tuple[str, dict[str, Any]]]) -> None:
    disagreements = []
    for name, doc in docs:
        cel_admits, py_passes = verdicts(policy, check, doc)
        if cel_admits != py_passes and not (py_passes and stricter_by_design(check, doc)):
            disagreements.append((name, "CEL admits" if cel_admits else "CEL denies"))
    assert disagreements == []


# -- parity on the fixtures -----------------------------------------------------------------------
def test_corpus_covers_the_fixtures() -> None:
    assert len(CORPUS) >= 100
    # Only documents the API server refuses for their types are left out, and they are few.
    assert len(REFUSED) <= 3, REFUSED
    kinds = {doc["kind"] for _, doc in ADMITTED}
    assert {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"} <= kinds


EXPORTED_DEFAULT = exported(DEFAULT_POLICY).exported


@pytest.mark.parametrize("check", EXPORTED_DEFAULT)
def test_cel_agrees_with_python_on_every_fixture(check: str) -> None:
    assert_parity(DEFAULT_POLICY, check, ADMITTED)


@pytest.mark.parametrize("check", exported(CUSTOM_POLICY).exported)
def test_cel_agrees_with_python_under_custom_parameters(check: str) -> None:
    assert_parity(CUSTOM_POLICY, check, ADMITTED)


def test_each_check_fails_somewhere_in_the_corpus() -> None:
    """The parity runs are not vacuous: every exported check denies its own fail fixtures."""
    for check in EXPORTED_DEFAULT:
        denied = [
            n for n, doc in ADMITTED if n.startswith(f"{check}/fail/") and not verdicts(DEFAULT_POLICY, check, doc)[0]
        ]
        admitted = [
            n for n, doc in ADMITTED if n.startswith(f"{check}/pass/") and verdicts(DEFAULT_POLICY, check, doc)[0]
        ]
        assert denied, f"{check}: no fail fixture denied"
        assert admitted, f"{check}: no pass fixture admitted"


def test_host_path_backsteps_are_denied_and_documented() -> None:
    """A hostPath with a '..' segment is denied (Python normalises it; the API server rejects it)."""
    pod = pod_with(volumes=[{"name": "d", "hostPath": {"path": "/data/../data"}}])
    assert python_passes("k8s-no-sensitive-host-path", pod, DEFAULT_POLICY.parameters)
    assert not admission_policies(DEFAULT_POLICY)["k8s-no-sensitive-host-path"].admits(pod)
    text = render(exported(DEFAULT_POLICY))
    assert "'..' segment" in text
    assert "leading or trailing whitespace" in text


# -- generated pod specs ------------------------------------------------------------------------
def pod_with(
    containers: list[dict[str, Any]] | None = None, volumes: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers or [{"name": "app", "image": f"registry1.dso.mil/a@{DIGEST}"}]}
    if volumes is not None:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def some(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A mapping with any subset of the fields."""
    return st.fixed_dictionaries({}, optional=fields)


def compact(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def one_of_words(words: str) -> st.SearchStrategy[str]:
    return st.sampled_from(words.split())


REGISTRIES = "registry1.dso.mil/ REGISTRY1.dso.mil/ docker.io/ index.docker.io/ localhost:5000/ evil.com/ "
REGISTRIES += "registry1.dso.mil.evil.com/ b.example/ x.dso.mil/"
_IMAGES = st.builds(
    lambda *parts: "".join(parts),
    st.sampled_from(["", *REGISTRIES.split()]),
    one_of_words("nginx ngin ironbank/nginx library/nginx ironbank/a/b x a:b/c"),
    st.sampled_from(["", ":1.25", ":latest", ":"]),
    st.sampled_from(["", f"@{DIGEST}", "@sha256:abc", "@sha512:" + "0f" * 64, "@"]),
)
PATH_SEGMENTS = [
    "",
    ".",
    "..",
    "a b",
    " ",
    *["etc", "var", "run", "lib", "kubelet", "docker.sock", "containerd", "containerd.sock", "srv"],
]
_PATHS = (
    st.lists(st.sampled_from(PATH_SEGMENTS), max_size=4)
    .map("/".join)
    .flatmap(lambda p: st.sampled_from([p, "/" + p, p + "/"]))
)
_CAPS = some(
    drop=st.lists(one_of_words("ALL all aLl NET_RAW"), max_size=2),
    add=st.lists(one_of_words("NET_BIND_SERVICE cap_net_bind_service SYS_ADMIN net_b\u0131nd_service"), max_size=2),
)
_COMMON_SC = {
    "runAsNonRoot": st.booleans(),
    "runAsUser": st.sampled_from([0, 1000]),
    "seccompProfile": some(type=one_of_words("RuntimeDefault Localhost Unconfined")),
    "appArmorProfile": some(type=one_of_words("RuntimeDefault Unconfined")),
    "seLinuxOptions": some(
        type=st.sampled_from(["", "container_t", "spc_t"]),
        user=st.sampled_from(["", "system_u"]),
        role=st.sampled_from(["", "system_r"]),
    ),
    "windowsOptions": some(hostProcess=st.booleans()),
}
_CONTAINER_SC = some(
    **_COMMON_SC,
    privileged=st.booleans(),
    allowPrivilegeEscalation=st.booleans(),
    readOnlyRootFilesystem=st.booleans(),
    procMount=one_of_words("Default Unmasked"),
    capabilities=_CAPS,
)
_QUANTITIES = some(cpu=one_of_words("100m 1"), memory=st.just("64Mi"))
_PORTS = st.lists(
    some(containerPort=st.sampled_from([0, 80, 1023, 1024, 8080]), hostPort=st.sampled_from([0, 53, 8443]))
)
_SYSCTLS = st.lists(
    st.fixed_dictionaries({"name": one_of_words("net.ipv4.tcp_syncookies kernel.msgmax"), "value": st.just("1")}),
    max_size=2,
)
_PROBE = st.just({"tcpSocket": {"port": 8080}})
_LABELS = st.sampled_from([{}, {"app": "w"}])


@st.composite
def containers(draw: st.DrawFn, prefix: str, least: int = 0, sidecars: bool = False) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(least, 2))):
        fields = {
            "image": _IMAGES,
            "securityContext": _CONTAINER_SC,
            "ports": _PORTS,
            "resources": some(limits=_QUANTITIES, requests=_QUANTITIES),
            "livenessProbe": _PROBE,
            "readinessProbe": _PROBE,
            **({"restartPolicy": st.just("Always")} if sidecars else {}),
        }
        out.append({"name": f"{prefix}{i}"} | compact({k: draw(maybe(v)) for k, v in fields.items()}))
    return out


@st.composite
def volumes(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for name in draw(st.lists(one_of_words("a b c"), unique=True, max_size=3)):
        kind = draw(one_of_words("emptyDir hostPath nfs configMap gcePersistentDisk"))
        out.append({"name": name, kind: {"path": draw(_PATHS)} if kind == "hostPath" else {}})
    return out


@st.composite
def workloads(draw: st.DrawFn) -> dict[str, Any]:
    """A workload of any kind, with security contexts, ports, volumes, probes, images and annotations."""
    app, init = draw(containers("app", least=1)), draw(containers("init", sidecars=True))
    apparmor_keys = [f"container.apparmor.security.beta.kubernetes.io/{c['name']}" for c in app + init]
    annotations = st.dictionaries(
        st.sampled_from(apparmor_keys), one_of_words("runtime/default localhost/k8s unconfined"), max_size=2
    )
    pod_sc = compact({k: draw(maybe(v)) for k, v in _COMMON_SC.items()} | {"sysctls": draw(maybe(_SYSCTLS))})
    affinities = [{"nodeAffinity": {}}, {"nodeAffinity": {"x": {}}}, {"podAntiAffinity": {}}]
    spec = compact(
        {
            "containers": app,
            "initContainers": init or None,
            "volumes": draw(volumes()) or None,
            "securityContext": pod_sc or None,
            "hostNetwork": draw(maybe(st.booleans())),
            "hostPID": draw(maybe(st.booleans())),
            "os": draw(maybe(st.sampled_from([{"name": "linux"}, {"name": "windows"}]))),
            "nodeSelector": draw(maybe(st.sampled_from([{}, {"pool": "a"}]))),
            "affinity": draw(maybe(st.sampled_from(affinities))),
            "restartPolicy": draw(maybe(one_of_words("Always Never OnFailure"))),
        }
    )
    meta = {"name": "w"} | compact({"labels": draw(maybe(_LABELS)), "annotations": draw(maybe(annotations))})
    template_meta = compact({"labels": draw(maybe(_LABELS)), "annotations": draw(maybe(annotations))})
    template = {"metadata": template_meta, "spec": spec}
    kind = draw(one_of_words("Pod Deployment Job CronJob DaemonSet PodTemplate"))
    shapes = {
        "Pod": {"spec": spec},
        "PodTemplate": {"template": template},
        "CronJob": {"spec": {"jobTemplate": {"spec": {"template": template}}}},
    }
    return {"apiVersion": "v1", "kind": kind, "metadata": meta} | shapes.get(kind, {"spec": {"template": template}})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads(), st.sampled_from([DEFAULT_POLICY, CUSTOM_POLICY]))
def test_generated_workloads(doc: dict[str, Any], policy: Policy) -> None:
    assert api_problem(doc) is None, api_problem(doc)
    for check in exported(policy).exported:
        cel_admits, py_passes = verdicts(policy, check, doc)
        assert cel_admits == py_passes or (py_passes and stricter_by_design(check, doc)), check


IMAGE_PARTS = ["a", "A", "x", ".", ":", "/", "@", "-", "*", " ", "K", "\u212a", "\u0130", "\u3000"]
IMAGE_PARTS += ["library", "docker.io", "registry-1.docker.io", "localhost", "nginx"]
ALLOWED_ENTRIES = "registry1.dso.mil *.dso.mil docker.io docker.io/library/ DOCKER.io/*/n?inx * localhost:5000/a "
ALLOWED_ENTRIES += "a.b/[!x]* k.y//c [!a] docker.*/library/x:y"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(IMAGE_PARTS), max_size=8).map("".join),
    st.lists(one_of_words(ALLOWED_ENTRIES), max_size=3),
)
def test_registry_expression_matches_registry_allowed(image: str, allowed: list[str]) -> None:
    policy = Policy("factorygate.dev/v1", "Policy", parameters=Parameters(allowed_registries=allowed))
    pod = pod_with([{"name": "app", "image": image}])
    cel_admits = admission_policies(policy)["k8s-allowed-registry"].admits(pod)
    expected = bool(image.strip()) and registry_allowed(parse_image(image), allowed)
    assert cel_admits == expected or (expected and stricter_by_design("k8s-allowed-registry", pod))


@settings(max_examples=300, deadline=None)
@given(_PATHS, st.lists(one_of_words("/ /etc /etc/ /a/./b //z /var/run/docker.sock") | st.just("/ x"), max_size=3))
def test_host_path_expressions_match_normalisation(path: str, dirs: list[str]) -> None:
    params = Parameters(sensitive_host_paths=dirs, runtime_socket_paths=dirs)
    policy = Policy("factorygate.dev/v1", "Policy", parameters=params)
    pod = pod_with(volumes=[{"name": "v", "hostPath": {"path": path}}])
    for check in ("k8s-no-sensitive-host-path", "k8s-no-container-runtime-socket"):
        cel_admits, py_passes = verdicts(policy, check, pod)
        assert cel_admits == py_passes or (py_passes and stricter_by_design(check, pod)), (check, path, dirs)


# -- the RE2 building blocks against the Python semantics they reproduce ------------------------------
def re2_search(pattern: str, text: str) -> bool:
    return bool(evaluate("text.matches(pattern)", {"text": to_cel(text), "pattern": to_cel(pattern)}))


_GLOB_ALPHABET = st.sampled_from([*"ab*?[]!-^\\/", "K", "\u212a", "\u0130", "\u03c3"])
_GLOB_TEXT = st.sampled_from([*"abAB-^]![\\K", "\u212a", "\u0130"])


@settings(max_examples=400, deadline=None)
@given(st.text(_GLOB_ALPHABET, max_size=6), st.text(_GLOB_TEXT, max_size=5))
def test_glob_translation_matches_fnmatchcase(pattern: str, text: str) -> None:
    universe = rx.CharSet.everything()
    plain = rx.glob_re2(pattern, universe)
    assert (plain is not None and re2_search(f"^(?:{plain})$", text)) == fnmatch.fnmatchcase(text, pattern)
    try:
        folded = rx.glob_re2(pattern.lower(), rx.SEGMENT, lower=True)
    except rx.Unsupported:
        return
    if "/" not in text and "@" not in text and "\u0130" not in text:
        hit = folded is not None and re2_search(f"^(?:{folded})$", text)
        assert hit == fnmatch.fnmatchcase(text.lower(), pattern.lower())


UPPER_TEXT = st.sampled_from([*"alLAnNeEtT_bBiIdDsScCpPrRvVx", "\u0131", "\u017f", "\u00df", "\ufb00"])


@given(st.text(UPPER_TEXT, max_size=22))
def test_upper_case_patterns_match_str_upper(text: str) -> None:
    for target in ("ALL", "NET_BIND_SERVICE", "CAP_NET_BIND_SERVICE"):
        assert re2_search(f"^{rx.upper_equals_re2(target)}$", text) == (text.upper() == target)


def test_unicode_tables_match_this_python() -> None:
    points = range(sys.maxunicode + 1)
    assert [p for p in points if chr(p).isspace()] == list(rx.PY_WHITESPACE)
    assert {p: chr(p).lower() for p in points if p > 0x7F and chr(p).lower().isascii()} == rx.NON_ASCII_LOWER_TO_ASCII
    assert [p for p in points if len(chr(p).lower()) > 1] == [rx.DOTTED_CAPITAL_I]
    assert {p: chr(p).upper() for p in points if p > 0x7F and chr(p).upper().isascii()} == rx.NON_ASCII_UPPER_TO_ASCII


# -- structure of the export ---------------------------------------------------------------------------
def _documents(export: VapExport, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in export.documents if d["kind"] == kind}


def test_policies_and_bindings_are_well_formed() -> None:
    export = exported(DEFAULT_POLICY)
    policies = _documents(export, "ValidatingAdmissionPolicy")
    bindings = _documents(export, "ValidatingAdmissionPolicyBinding")
    assert set(policies) == set(bindings) == {f"factorygate-{c}" for c in export.exported}
    assert len(export.documents) == 2 * len(export.exported)
    for name, doc in policies.items():
        assert doc["apiVersion"] == "admissionregistration.k8s.io/v1"
        spec = doc["spec"]
        assert spec["failurePolicy"] == "Fail"
        assert set(doc["metadata"]["annotations"]["factorygate.dev/requirements"].split(", ")) == set(
            CATALOG.checks[name.removeprefix("factorygate-")].requirements
        )
        defined: list[str] = []
        for var in spec["variables"]:
            used = set(re.findall(r"\bvariables\.(\w+)", var["expression"]))
            assert used <= set(defined), f"{name}: {var['name']} uses {used - set(defined)} before it is defined"
            defined.append(var["name"])
        for validation in spec["validations"]:
            assert set(validation) == {"expression", "message", "messageExpression", "reason"}
            assert set(re.findall(r"\bvariables\.(\w+)", validation["expression"])) <= set(defined)
            assert name.removeprefix("factorygate-") in validation["message"]
        binding = bindings[name]
        assert binding["apiVersion"] == "admissionregistration.k8s.io/v1"
        assert binding["spec"]["policyName"] == name


def test_every_expression_compiles_in_celpy() -> None:
    for policy in (DEFAULT_POLICY, CUSTOM_POLICY):
        for doc in exported(policy).documents:
            spec = doc["spec"]
            expressions = [v["expression"] for v in spec.get("variables", [])]
            expressions += [c["expression"] for c in spec.get("matchConditions", [])]
            for v in spec.get("validations", []):
                expressions += [v["expression"], v["messageExpression"]]
            for expression in expressions:
                ENV.compile(expression)  # raises CELParseError


def test_rules_match_every_workload_kind() -> None:
    rules = exported(DEFAULT_POLICY).documents[0]["spec"]["matchConstraints"]["resourceRules"]
    resources = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in rules)
    plural = {k: k.lower() + "s" for k in WORKLOAD_KINDS}
    groups = {"": {"Pod", "PodTemplate", "ReplicationController"}, "batch": {"Job", "CronJob"}}
    expected = {(next((g for g, ks in groups.items() if k in ks), "apps"), plural[k]) for k in WORKLOAD_KINDS}
    assert expected | {("", "pods/ephemeralcontainers")} == resources
    assert {g for g, _ in WORKLOAD_RESOURCES} == {"", "apps", "batch"}


def test_unsupported_checks_are_listed_with_reasons() -> None:
    export = exported(DEFAULT_POLICY)
    unsupported = dict(export.unsupported)
    assert set(unsupported) == {"k8s-network-policy-coverage", "k8s-no-env-credentials"}
    assert all(len(reason) > 30 for reason in unsupported.values())
    assert set(export.exported) | set(unsupported) == set(KUBERNETES_CHECKS)
    header = render(export).split("\n---\n", 1)[0]
    assert all(line.startswith("#") for line in header.splitlines())
    for check, reason in export.unsupported:
        assert f"{check}: {reason}" in header


def test_a_registry_pattern_without_exact_translation_is_not_exported() -> None:
    # str.lower() picks the Greek small sigma by context: no RE2 class gives the same verdicts.
    policy = Policy("factorygate.dev/v1", "Policy", parameters=Parameters(allowed_registries=["\u03c3.example"]))
    unsupported = dict(exported(policy).unsupported)
    assert "'\u03c3.example'" in unsupported["k8s-allowed-registry"]
    assert "k8s-allowed-registry" not in exported(policy).exported


def test_threshold_decides_deny_or_warn() -> None:
    policy = policy_from(
        """
        apiVersion: factorygate.dev/v1
        kind: Policy
        threshold: high
        checks:
          k8s-resource-limits: {severity: critical}
        """
    )
    bindings = _documents(exported(policy), "ValidatingAdmissionPolicyBinding")
    for name, binding in bindings.items():
        check = name.removeprefix("factorygate-")
        severity = policy.severity_of(check, CATALOG.checks[check].severity)
        expected = ["Deny", "Audit"] if severity >= Severity.HIGH else ["Warn", "Audit"]
        assert binding["spec"]["validationActions"] == expected, check
    assert bindings["factorygate-k8s-resource-limits"]["spec"]["validationActions"] == ["Deny", "Audit"]
    assert bindings["factorygate-k8s-read-only-root-filesystem"]["spec"]["validationActions"] == ["Warn", "Audit"]
    assert bindings["factorygate-k8s-not-privileged"]["spec"]["validationActions"] == ["Deny", "Audit"]


def test_disabled_checks_are_not_exported() -> None:
    policy = policy_from(
        """
        apiVersion: factorygate.dev/v1
        kind: Policy
        checks:
          k8s-apparmor: {enabled: false}
          k8s-network-policy-coverage: {enabled: false}
        """
    )
    export = exported(policy)
    assert "k8s-apparmor" not in export.exported
    assert not [d for d in export.documents if "k8s-apparmor" in d["metadata"]["name"]]
    assert export.disabled == ["k8s-apparmor", "k8s-network-policy-coverage"]
    assert dict(export.unsupported).keys() == {"k8s-no-env-credentials"}
    assert "Disabled by the policy: k8s-apparmor, k8s-network-policy-coverage" in render(export)


def test_exempt_namespaces_are_excluded_by_binding_and_match_condition() -> None:
    policy = policy_from(
        """
        apiVersion: factorygate.dev/v1
        kind: Policy
        parameters:
          exempt_namespaces: [kube-system, "team-?", "ops-*", "[ab]-tools", Not_A_Namespace!]
        """
    )
    export = exported(policy)
    binding = _documents(export, "ValidatingAdmissionPolicyBinding")["factorygate-k8s-not-privileged"]
    selector = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert selector == [{"key": NAMESPACE_LABEL, "operator": "NotIn", "values": ["kube-system"]}]
    assert any("Not_A_Namespace!" in note for note in export.notes)
    admission = admission_policies(policy)["k8s-not-privileged"]
    privileged = pod_with([{"name": "a", "image": "x", "securityContext": {"privileged": True}}])
    for ns in ["kube-system", "team-1", "team-12", "ops-", "ops-x", "a-tools", "c-tools", "default", "kube", "shop"]:
        by_selector = ns in selector[0]["values"]
        skipped = by_selector or not admission.applies(ns)
        scan = Engine(CATALOG, policy).run(
            manifests_from_bytes(
                yaml.safe_dump({**privileged, "metadata": {"name": "p", "namespace": ns}}).encode(),
                "t.yaml",
                kinds=KUBERNETES_KINDS,
            ),
            ["t.yaml"],
        )
        assert skipped == (scan.stats.exempt_workloads == 1), ns
        assert skipped or not admission.admits(privileged, ns)


def test_no_exemptions_no_selector_or_condition() -> None:
    export = exported(DEFAULT_POLICY)
    assert all("matchResources" not in d["spec"] for d in export.documents if d["kind"].endswith("Binding"))
    assert all("matchConditions" not in d["spec"] for d in export.documents if d["kind"].endswith("Policy"))


def test_waivers_are_not_applied_and_say_so() -> None:
    policy = policy_from(
        """
        apiVersion: factorygate.dev/v1
        kind: Policy
        waivers:
          - check: k8s-read-only-root-filesystem
            justification: Vendor binary writes to /tmp/cache until Q3.
            approver: J. Smith (ISSM)
            expires: 2099-06-30
        """
    )
    export = exported(policy)
    assert any("1 policy waiver(s) are not applied (k8s-read-only-root-filesystem)" in n for n in export.notes)
    waiver = "{justification: Vendor binary writes to /tmp/cache., approver: J. Smith, expires: 2099-01-01}"
    pod = pod_with()
    pod["metadata"]["annotations"] = {"factorygate.dev/waive.k8s-read-only-root-filesystem": waiver}
    assert not admission_policies(policy)["k8s-read-only-root-filesystem"].admits(pod)
    assert "Inline waivers" in render(export)


def test_messages_name_the_check_and_requirement() -> None:
    admission = admission_policies(DEFAULT_POLICY)["k8s-read-only-root-filesystem"]
    pod = pod_with([{"name": "web", "image": "x"}, {"name": "side", "image": "y"}])
    act = admission.activation(pod, "default")
    message = evaluate(admission.validations[0]["messageExpression"], act)
    assert message == (
        "CICDG-3.7 (k8s-read-only-root-filesystem): container web (and 1 more): readOnlyRootFilesystem is not true"
    )


def test_render_round_trips() -> None:
    export = exported(CUSTOM_POLICY)
    text = render(export)
    assert text.isascii()
    assert list(yaml.safe_load_all(text)) == export.documents
    assert "&id" not in text  # no YAML anchors: every document stands alone


# -- command line --------------------------------------------------------------------------------------
def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_export_arguments(parser)
    return parser.parse_args(list(argv))


def test_run_export_vap_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(CUSTOM_POLICY_TEXT, encoding="utf-8")
    out = tmp_path / "vap.yaml"
    assert run_export_vap(_parse("--policy", str(policy), "-o", str(out), "--threshold", "critical")) == 0
    docs = list(yaml.safe_load_all(out.read_text(encoding="utf-8")))
    assert docs == exported(CUSTOM_POLICY.with_threshold(Severity.CRITICAL)).documents
    assert f"from policy {policy}" in out.read_text(encoding="utf-8")
    assert "wrote 26 ValidatingAdmissionPolicies" in capsys.readouterr().err


def test_run_export_vap_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_export_vap(_parse()) == 0
    assert list(yaml.safe_load_all(capsys.readouterr().out)) == exported(DEFAULT_POLICY).documents


def test_run_export_vap_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: factorygate.dev/v1\nkind: Policy\nthreshold: severe\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="threshold"):
        run_export_vap(_parse("--policy", str(bad)))
    assert run_export_vap(_parse("-o", str(tmp_path / "missing" / "vap.yaml"))) == 2
    assert "cannot write" in capsys.readouterr().err


def test_the_package_does_not_import_celpy() -> None:
    code = "import sys, factorygate.export.vap; print('celpy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "False"
