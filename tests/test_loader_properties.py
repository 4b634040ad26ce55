"""Properties of the loaders and the engine under arbitrary input.

- ``load_documents`` and ``manifests_from_bytes`` never raise, whatever the bytes or text: they
  yield values, at most one problem and only as the last item, and they finish quickly.
- JSON-compatible data dumped with ``yaml.safe_dump`` or ``json.dumps`` loads back equal (types
  included: ``True`` is not ``1``).
- Documents before a broken one are still yielded, whatever breaks it.
- No check crashes on a Deployment whose security fields hold values of any type.
"""

from __future__ import annotations

import functools
import json
import math
import signal
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from factorygate.catalog import load_catalog
from factorygate.checks import INPUT_ERROR
from factorygate.engine import KUBERNETES_KINDS, Engine
from factorygate.inputs import safeyaml
from factorygate.inputs.kubernetes import LoadError, Manifest, Skipped, manifests_from_bytes
from factorygate.inputs.safeyaml import LoadedDocument, SkippedDocument, YamlProblem, load_documents
from factorygate.model import Status
from factorygate.policy import default_policy_text, parse_policy

QUICK_S = 2.0  # per example; inputs are a few KiB, so this only trips on a hang or a blow-up
SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]


class Hung(BaseException):
    """Raised by the alarm: a BaseException, so that no ``except Exception`` can swallow it."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Interrupt a hang (an endless Python loop) instead of waiting for it forever."""

    def on_alarm(signum: int, frame: object) -> None:
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_stream(items: Iterable[object], values: tuple[type, ...], problem: type) -> list[object]:
    """Only ``values`` and ``problem`` items, and a problem only as the last one."""
    out = list(items)
    for i, item in enumerate(out):
        assert isinstance(item, (*values, problem)), item
        if isinstance(item, problem):
            assert i == len(out) - 1, out
    return out


def load_everything(data: bytes | str) -> None:
    """Every loader entry point over ``data``: none may raise, all must be quick."""
    started = time.perf_counter()
    with deadline(5 * QUICK_S):
        assert_stream(load_documents(data), (LoadedDocument, SkippedDocument), YamlProblem)
        assert_stream(load_documents(data, lambda node: False), (SkippedDocument,), YamlProblem)
        raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
        for kinds in (None, KUBERNETES_KINDS):
            items = manifests_from_bytes(raw, "in.yaml", kinds=kinds)
            for item in assert_stream(items, (Manifest, Skipped), LoadError):
                assert isinstance(item, (Manifest, Skipped, LoadError))
                assert item.file == "in.yaml"
    assert time.perf_counter() - started < QUICK_S


# -- arbitrary input never raises ---------------------------------------------------------------

# Pieces of YAML syntax, Kubernetes keys, tags whose constructors have sharp edges, and bytes
# libyaml's reader refuses: random byte strings alone rarely get past the first byte.
YAML_PIECES = [
    b"- ", b"? ", b": ", b":", b"[", b"]", b"{", b"}", b", ", b"&a ", b"&b ", b"*a", b"*b", b"<<: ",
    b"<<: *a", b"<<: [*a, *b]", b"!!int ", b"!!float ", b"!!bool ", b"!!null ", b"!!timestamp ",
    b"!!binary ", b"!!set ", b"!!omap ", b"!!pairs ", b"!!str ", b"!!seq ", b"!!map ", b"!!merge ",
    b"!!value ", b"!local ", b"'", b'"', b"\\", b"\n", b"\r\n", b"\r", b"  ", b"    ", b"\t", b"---\n",
    b"--- ", b"...\n", b"# c\n", b"|\n", b">-\n", b"%YAML 1.1\n", b"%TAG ! tag:x,2000:\n", b"x", b"1",
    b"0x", b"0b", b"0o", b"1:2", b"-1.5e3", b".inf", b".nan", b"~", b"null", b"yes", b"=", b"''",
    b"2001-12-14", b"kind: Deployment\n", b"kind: List\n", b"apiVersion: apps/v1\n", b"items:\n",
    b"metadata: {name: x}\n", b"spec:\n", b"containers: ", b"securityContext: ", b"\x00", b"\xff",
    b"\xc2\x85", b"\xe2\x80\xa8", b"\xef\xbb\xbf", b"\xff\xfe", b"\xed\xa0\x80",
]  # fmt: skip
yamlish = st.lists(st.sampled_from(YAML_PIECES) | st.binary(max_size=3), max_size=60).map(b"".join)


@settings(max_examples=500, deadline=None, suppress_health_check=SLOW_OK)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    load_everything(data)


@settings(max_examples=1000, deadline=None, suppress_health_check=SLOW_OK)
@given(yamlish)
@example(b"a: !!bool maybe\n")  # PyYAML's constructors raise KeyError,
@example(b"a: !!int ''\n")  # IndexError,
@example(b"a: !!timestamp nope\n")  # AttributeError
@example(b"a: &a [*a]\n")  # a recursive alias: its expansion never ends
@example(b"apiVersion: v1\nkind: Pod\nx: &a {<<: *a}\n")
@example(b"- ? " * 30_000)  # compact nesting the depth guard once missed
@example(b"\xff\xfe" + "- ".encode("utf-16-le") * 30_000)  # UTF-16 hid nesting from the guard
@example(b"a: 1" + b":59" * 30_000)  # a sexagesimal integer: quadratic to build
def test_yaml_like_bytes_never_raise(data: bytes) -> None:
    load_everything(data)


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW_OK)
@given(st.text(st.characters(exclude_categories=()), max_size=500))  # lone surrogates included
@example("a: \ud800")  # a lone surrogate cannot even be encoded
def test_arbitrary_text_never_raises(text: str) -> None:
    load_everything(text)


@settings(max_examples=60, deadline=None, suppress_health_check=SLOW_OK)
@given(yamlish, st.integers(min_value=1, max_value=300))
def test_repeated_yaml_like_bytes_never_raise(piece: bytes, times: int) -> None:
    """Repetition reaches the guards' thresholds (nesting, aliases, node counts) cheaply."""
    load_everything(piece * times)


# -- round trips --------------------------------------------------------------------------------

# What YAML carries unescaped: no control characters (JSON leaves DEL and C1 raw), no
# surrogates, no noncharacters; and no NEL/LS/PS, which YAML 1.1 folds as line breaks.
yaml_text = st.text(st.characters(exclude_categories=("Cs", "Cc", "Cn", "Zl", "Zp"), exclude_characters="\ufeff"))
json_text = yaml_text | st.text(st.sampled_from("\t\n\r\"\\/ab{}[]:,-?#&*!|>'%@`"))
scalars = st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
json_values = st.recursive(
    scalars | json_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(json_text, inner, max_size=5),
    max_leaves=30,
)
# What yaml.safe_dump can write: no surrogates (libyaml refuses their escapes), and no NEL, LS or
# PS, which PyYAML's emitter writes raw inside single quotes, where they fold to a space.
dump_chars = st.characters(exclude_categories=("Cs",), exclude_characters="\x85\u2028\u2029")
dump_text = st.text(dump_chars)
any_text_values = st.recursive(
    scalars | dump_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(dump_text, inner, max_size=5),
    max_leaves=30,
)


def strictly_equal(a: object, b: object) -> bool:
    """Equal with the same types all the way down (``1 == True`` and ``0 == False`` do not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))  # NaN loads as NaN


def load_one(text: str) -> Any:
    with deadline(5 * QUICK_S):
        docs = list(load_documents(text.encode("utf-8")))
    assert len(docs) == 1, docs
    assert isinstance(docs[0], LoadedDocument), docs
    return docs[0].data


@settings(max_examples=200, deadline=None, suppress_health_check=SLOW_OK)
@given(any_text_values, st.booleans(), st.sampled_from([None, True, False]))
def test_safe_dump_round_trips(value: Any, allow_unicode: bool, flow: bool | None) -> None:
    text = yaml.safe_dump(value, allow_unicode=allow_unicode, default_flow_style=flow)
    assert strictly_equal(load_one(text), value)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(json_values, st.sampled_from([None, 2]), st.booleans())
def test_json_dumps_round_trips(value: Any, indent: int | None, ensure_ascii: bool) -> None:
    raw = json.dumps(value, indent=indent, ensure_ascii=False)
    # JSON escapes astral characters as surrogate pairs ("\\ud83d\\ude00"), which libyaml refuses
    ensure_ascii = ensure_ascii and all(ord(c) <= 0xFFFF for c in raw)
    text = json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)
    assert strictly_equal(load_one(text), value)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(st.lists(json_values, min_size=1, max_size=4), yamlish)
def test_documents_before_a_broken_one_are_kept(values: list[Any], tail: bytes) -> None:
    stream = b"".join(b"---\n" + json.dumps(v, ensure_ascii=False).encode() + b"\n" for v in values)
    items = assert_stream(load_documents(stream + b"---\n" + tail), (LoadedDocument, SkippedDocument), YamlProblem)
    assert len(items) >= len(values), items
    for item, value in zip(items, values, strict=False):
        assert isinstance(item, LoadedDocument), item
        assert strictly_equal(item.data, value)


# -- guards stay linear -------------------------------------------------------------------------


def test_depth_guard_is_linear_on_many_shallow_compact_runs() -> None:
    """Rows of 249 block indicators (one short of the limit) once took a minute per 4 MiB."""
    rows = (b"- " * 249 + b"x\n") * 8400
    started = time.perf_counter()
    safeyaml._check_depth(rows)
    assert time.perf_counter() - started < 3


# -- no check crashes on weird types ----------------------------------------------------------


@functools.cache
def engine() -> Engine:
    catalog = load_catalog()
    return Engine(catalog, parse_policy(default_policy_text(), "policy.yaml", set(catalog.checks)))


CHECK_IDS = sorted(load_catalog().checks)
WORDS = [
    "", "0", "1000", "-1", "true", "yes", "null", "ALL", "NET_RAW", "SYS_ADMIN", "NET_BIND_SERVICE",
    "RuntimeDefault", "Localhost", "Unconfined", "Default", "Unmasked", "Always", "Never",
    "container_t", "spc_t", "windows", "linux", "/", "/var/run/docker.sock", "/etc", "..",
    "nginx", "nginx:latest", "registry.example.com/app@sha256:" + "a" * 64, "kernel.shm_rmid_forced",
    "net.core.somaxconn", "AKIAABCDEFGHIJKLMNOP", "password", "PASSWORD", "hostPath", "emptyDir",
]  # fmt: skip
words = st.sampled_from(WORDS)
weird_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, 1, 22, 80, 999, 1000, 65535, 65536, -1])
    | st.floats()
    | st.text(dump_chars, max_size=12)
    | words
)
anything = st.recursive(
    weird_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(words | st.text(dump_chars, max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def maybe(shape: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right shape, usually; anything at all, sometimes."""
    return shape | anything


def fields(**shapes: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in shapes.items()})


security_context = fields(
    runAsUser=weird_scalars,
    runAsGroup=weird_scalars,
    runAsNonRoot=weird_scalars,
    privileged=weird_scalars,
    allowPrivilegeEscalation=weird_scalars,
    readOnlyRootFilesystem=weird_scalars,
    procMount=weird_scalars,
    capabilities=fields(add=st.lists(anything, max_size=3), drop=st.lists(anything, max_size=3)),
    seccompProfile=fields(type=weird_scalars, localhostProfile=weird_scalars),
    appArmorProfile=fields(type=weird_scalars, localhostProfile=weird_scalars),
    seLinuxOptions=fields(type=weird_scalars, user=weird_scalars, role=weird_scalars, level=weird_scalars),
    windowsOptions=fields(hostProcess=weird_scalars),
    sysctls=st.lists(fields(name=weird_scalars, value=weird_scalars), max_size=3),
    fsGroup=weird_scalars,
    supplementalGroups=st.lists(weird_scalars, max_size=3),
)
container = fields(
    name=weird_scalars,
    image=weird_scalars,
    securityContext=security_context,
    ports=st.lists(fields(containerPort=weird_scalars, hostPort=weird_scalars, protocol=weird_scalars), max_size=3),
    env=st.lists(fields(name=weird_scalars, value=weird_scalars, valueFrom=anything), max_size=3),
    volumeMounts=st.lists(fields(name=weird_scalars, mountPath=weird_scalars), max_size=3),
    resources=fields(limits=fields(cpu=weird_scalars, memory=weird_scalars), requests=anything),
    livenessProbe=anything,
    readinessProbe=anything,
    restartPolicy=weird_scalars,
)
volume = fields(
    name=weird_scalars,
    hostPath=fields(path=weird_scalars, type=weird_scalars),
    emptyDir=anything,
    configMap=anything,
)
pod_spec = fields(
    containers=st.lists(container, max_size=3),
    initContainers=st.lists(container, max_size=2),
    ephemeralContainers=st.lists(container, max_size=1),
    securityContext=security_context,
    volumes=st.lists(volume, max_size=3),
    hostNetwork=weird_scalars,
    hostPID=weird_scalars,
    hostIPC=weird_scalars,
    nodeSelector=anything,
    affinity=anything,
    os=fields(name=weird_scalars),
    restartPolicy=weird_scalars,
)
annotations = st.dictionaries(
    st.sampled_from([*CHECK_IDS, "nope"]).map(lambda c: "factorygate.dev/waive." + c) | words,
    weird_scalars | st.sampled_from(["{justification: x, approver: y, expires: 2999-01-01}", "[1]", "{"]),
    max_size=2,
)
metadata = fields(name=weird_scalars, namespace=weird_scalars, labels=anything, annotations=annotations)
deployments = st.fixed_dictionaries(
    {
        "apiVersion": st.just("apps/v1"),
        "kind": st.just("Deployment"),
        "metadata": maybe(metadata),
        "spec": maybe(fields(template=fields(metadata=metadata, spec=pod_spec))),
    }
)


@settings(max_examples=400, deadline=None, suppress_health_check=SLOW_OK)
@given(deployments)
def test_no_check_crashes_on_fields_of_any_type(doc: dict[str, Any]) -> None:
    text = yaml.safe_dump(doc, allow_unicode=True)
    items = list(manifests_from_bytes(text.encode(), "gen.yaml", kinds=KUBERNETES_KINDS))
    assert len(items) == 1, items
    assert isinstance(items[0], Manifest), items
    assert strictly_equal(items[0].data, doc)
    result = engine().run(items, ["gen.yaml"])
    assert result.findings
    crashed = [f for f in result.findings if f.status is Status.ERROR and f.check != INPUT_ERROR]
    assert not crashed, [(f.check, f.message) for f in crashed]
    # the only input errors are invalid inline waivers (annotations), never a loading failure
    inputs = [f for f in result.findings if f.check == INPUT_ERROR]
    assert all(f.message.startswith("annotation ") for f in inputs), [f.message for f in inputs]


TRICKY_SCALARS = [
    "", "~", "null", "Null", "NULL", "yes", "No", "on", "OFF", "y", "n", "true", "False", "1", "-1", "+1",
    "0x1F", "0o17", "017", "1_000", "1:30", "1e3", "1.5", ".5", "-.inf", ".NaN", "2001-12-14",
    "2001-12-14t21:59:43.10-05:00", "<<", "=", "0", "00", "1.2.3", "v1", "apps/v1", "8080", "3.10",
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(st.lists(st.one_of(st.sampled_from(TRICKY_SCALARS), st.text(max_size=12)), min_size=1, max_size=20))
def test_fast_resolver_gives_pyyaml_tags(values: list[str]) -> None:
    """The loader's cached resolver must type every plain scalar exactly as PyYAML's CSafeLoader."""
    lines = []
    for i, v in enumerate(values):
        if v and (v.strip() != v or any(c in v for c in ":#\n\r{}[],&*!|>'\"%@`-?") or not v.isprintable()):
            continue
        lines.append(f"k{i}: {v}")
    if not lines:
        return
    text = "\n".join(lines) + "\n"
    try:
        expected = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return
    docs = [d for d in load_documents(text.encode()) if isinstance(d, LoadedDocument)]
    assert docs
    assert docs[0].data == expected
    assert {k: type(v) for k, v in (docs[0].data or {}).items()} == {k: type(v) for k, v in (expected or {}).items()}


def test_fast_resolver_on_the_tricky_scalars_one_by_one() -> None:
    for v in TRICKY_SCALARS:
        text = f"a: {v}\nb: [{v}]\n" if v not in ("<<", "=") else f"a: x{v}\n"
        expected = yaml.load(text, Loader=yaml.CSafeLoader)
        (doc,) = [d for d in load_documents(text.encode()) if isinstance(d, LoadedDocument)]
        assert doc.data == expected, v
        assert type(doc.data["a"]) is type(expected["a"]), v
