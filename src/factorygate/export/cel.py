"""CEL translations of the Kubernetes workload checks (factorygate.checks.kubernetes).

Each translation is a boolean CEL expression over ``object`` (the admitted workload) and the shared
``variables`` below, true exactly when the Python check yields no failed outcome for that object
(tests/test_vap_export.py evaluates both on every fixture and on generated pod specs). Only the
standard CEL library is used (``has``, macros, ``in``, ``size``, ``startsWith``, ``matches`` with
RE2), so the expressions evaluate the same in the API server and in a reference interpreter.

A translation names its failing items (containers, volumes, sysctls) in a ``violations`` variable so
that the message can say which. A check without a faithful translation raises :class:`Unsupported`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from factorygate.checks.kubernetes import APPARMOR_ANNOTATION, RESTRICTED_VOLUME_TYPES, SELINUX_TYPES
from factorygate.export import patterns as rx
from factorygate.export.patterns import Unsupported
from factorygate.model import CheckMeta
from factorygate.policy.schema import Parameters

POD_SPEC = "variables.podSpec"
POD_SC = f"{POD_SPEC}.securityContext"
SC = "c.securityContext"

# Variables every policy may use, in evaluation order (a variable may use the ones before it).
SHARED_VARIABLES: tuple[tuple[str, str], ...] = (
    (
        "podSpec",
        "object.kind == 'Pod' ? object.spec : object.kind == 'PodTemplate' ? object.template.spec : "
        "object.kind == 'CronJob' ? object.spec.jobTemplate.spec.template.spec : object.spec.template.spec",
    ),
    (
        "containers",
        f"(has({POD_SPEC}.containers) ? {POD_SPEC}.containers : []) + "
        f"(has({POD_SPEC}.initContainers) ? {POD_SPEC}.initContainers : []) + "
        f"(has({POD_SPEC}.ephemeralContainers) ? {POD_SPEC}.ephemeralContainers : [])",
    ),
    ("volumes", f"has({POD_SPEC}.volumes) ? {POD_SPEC}.volumes : []"),
    ("windows", f"has({POD_SPEC}.os) && has({POD_SPEC}.os.name) && {POD_SPEC}.os.name == 'windows'"),
    (
        "longRunning",
        "!(object.kind in ['Job', 'CronJob']) && !(object.kind == 'Pod' && "
        f"has({POD_SPEC}.restartPolicy) && {POD_SPEC}.restartPolicy in ['Never', 'OnFailure'])",
    ),
    (
        "podLabels",
        "object.kind == 'Pod' ? (has(object.metadata.labels) ? object.metadata.labels : {}) : "
        "object.kind == 'PodTemplate' ? (has(object.template.metadata) && has(object.template.metadata.labels) ? "
        "object.template.metadata.labels : {}) : object.kind == 'CronJob' ? "
        "(has(object.spec.jobTemplate.spec.template.metadata) && "
        "has(object.spec.jobTemplate.spec.template.metadata.labels) ? "
        "object.spec.jobTemplate.spec.template.metadata.labels : {}) : "
        "(has(object.spec.template.metadata) && has(object.spec.template.metadata.labels) ? "
        "object.spec.template.metadata.labels : {})",
    ),
    (
        "templateAnnotations",
        "object.kind == 'Pod' ? {} : object.kind == 'PodTemplate' ? "
        "(has(object.template.metadata) && has(object.template.metadata.annotations) ? "
        "object.template.metadata.annotations : {}) : object.kind == 'CronJob' ? "
        "(has(object.spec.jobTemplate.spec.template.metadata) && "
        "has(object.spec.jobTemplate.spec.template.metadata.annotations) ? "
        "object.spec.jobTemplate.spec.template.metadata.annotations : {}) : "
        "(has(object.spec.template.metadata) && has(object.spec.template.metadata.annotations) ? "
        "object.spec.template.metadata.annotations : {})",
    ),
    ("objectAnnotations", "has(object.metadata.annotations) ? object.metadata.annotations : {}"),
)
SHARED_NAMES = tuple(name for name, _ in SHARED_VARIABLES)

# Checks no CEL expression can decide with the Python check's meaning, and why.
NOT_EXPRESSIBLE = {
    "k8s-network-policy-coverage": (
        "needs every NetworkPolicy of the namespace; an admission policy sees one object at a time "
        "(and a NetworkPolicy created later would change the verdict)"
    ),
    "k8s-no-env-credentials": (
        "credential heuristics rely on Python regular-expression semantics (Unicode word boundaries over "
        "Unicode \\w, Unicode case-insensitive matching) that RE2 cannot reproduce compactly; "
        "use `factorygate scan` or the admission webhook"
    ),
}
# The same sets the Python checks read (one definition: the export cannot drift from the checks).
_SELINUX_TYPES = tuple(sorted(SELINUX_TYPES))
_RESTRICTED_VOLUME_TYPES = tuple(sorted(RESTRICTED_VOLUME_TYPES))
_APPARMOR_ANNOTATION = APPARMOR_ANNOTATION


@dataclass(frozen=True)
class CelCheck:
    """One check as CEL: its own variables (after the shared ones), the validation and its message."""

    variables: tuple[tuple[str, str], ...]
    expression: str
    message: str  # static, used when the message expression cannot be evaluated
    message_expression: str


# -- CEL syntax helpers -------------------------------------------------------------------------------
def cel_str(text: str) -> str:
    """A CEL string literal (ASCII only: other characters as \\u / \\U escapes)."""
    out = []
    for c in text:
        if c in "\\'":
            out.append("\\" + c)
        elif " " <= c <= "~":
            out.append(c)
        elif ord(c) <= 0xFFFF:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return "'" + "".join(out) + "'"


def cel_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(cel_str(i) for i in items) + "]"


def has_chain(base: str, path: Sequence[str]) -> str:
    """``has(base.a) && has(base.a.b) ...`` for every step of ``path``."""
    return " && ".join(f"has({base}.{'.'.join(path[: i + 1])})" for i in range(len(path)))


def field_ok(base: str, path: Sequence[str], pred: Callable[[str], str], if_absent: bool) -> str:
    """``pred`` of the field at ``path`` under ``base``; ``if_absent`` when a step is missing."""
    if not path:
        return pred(base)
    present, value = has_chain(base, path), f"{base}.{'.'.join(path)}"
    if if_absent:
        return f"(!({present}) || {pred(value)})"
    return f"({present} && {pred(value)})"


def inherited(path: Sequence[str], unit: int, pred: Callable[[str], str], if_absent: bool) -> str:
    """A security context field a container inherits from the pod (facts.workload.INHERITED_FIELDS):
    the container's ``path[:unit]`` when set, else the pod's, then ``pred`` of ``path`` under it."""
    own = has_chain("c", ("securityContext", *path[:unit]))
    own_ok = field_ok(f"{SC}.{'.'.join(path[:unit])}", path[unit:], pred, if_absent)
    pod_ok = field_ok(POD_SPEC, ("securityContext", *path), pred, if_absent)
    return f"(({own}) ? {own_ok} : {pod_ok})"


def matches(value: str, pattern: str | None) -> str:
    return "false" if pattern is None else f"{value}.matches({cel_str(pattern)})"


def _is(literal: str) -> Callable[[str], str]:
    return lambda v: f"{v} == {literal}"


def _in(items: Iterable[str]) -> Callable[[str], str]:
    listed = cel_list(items)
    return lambda v: f"{v} in {listed}"


# -- check shapes ---------------------------------------------------------------------------------------
def _prefix(meta: CheckMeta) -> str:
    return f"{', '.join(meta.requirements)} ({meta.id}): "


def per_item(
    meta: CheckMeta,
    items: str,
    ok: Callable[[str], str],
    problem: str,
    *,
    what: str = "container",
    gate: str | None = None,
    var: str = "c",
) -> CelCheck:
    """A check with one outcome per item of ``items``; it passes when every item is ``ok``
    (or ``gate`` holds: the check does not apply to the object)."""
    source = items if items.startswith("variables.") else f"({items})"
    violations = f"{source}.filter({var}, !({ok(var)})).map({var}, {var}.name)"
    expression = "size(variables.violations) == 0"
    if gate:
        expression = f"{gate} || {expression}"
    more = "(size(variables.violations) > 1 ? ' (and ' + string(size(variables.violations) - 1) + ' more)' : '')"
    head = cel_str(f"{_prefix(meta)}{what} ")
    message_expression = f"{head} + variables.violations[0] + {more} + {cel_str(': ' + problem)}"
    return CelCheck((("violations", violations),), expression, f"{_prefix(meta)}{problem}", message_expression)


def pod_level(meta: CheckMeta, expression: str, problem: str) -> CelCheck:
    """A check with one outcome per pod."""
    message_expression = f"{cel_str(_prefix(meta))} + object.kind + {cel_str(' ' + problem)}"
    return CelCheck((), expression, f"{_prefix(meta)}{problem}", message_expression)


# -- translations -----------------------------------------------------------------------------------------
def _host_path_check(meta: CheckMeta, pattern: str | None, problem: str) -> CelCheck:
    def ok(v: str) -> str:
        return f"!has({v}.hostPath) || !has({v}.hostPath.path) || !{matches(f'{v}.hostPath.path', pattern)}"

    return per_item(meta, "variables.volumes", ok, problem, what="hostPath volume", var="v")


def runtime_socket(meta: CheckMeta, p: Parameters) -> CelCheck:
    hits = [h for s in p.runtime_socket_paths for h in rx.socket_hits(s)]
    pattern = rx.host_path_re2(hits, []) if p.runtime_socket_paths else None
    return _host_path_check(meta, pattern, "mounts a container runtime socket or a directory holding one")


def sensitive_host_path(meta: CheckMeta, p: Parameters) -> CelCheck:
    exact, under = rx.sensitive_dirs(p.sensitive_host_paths)
    return _host_path_check(meta, rx.host_path_re2(exact, under), "mounts a sensitive host directory")


def seccomp(meta: CheckMeta, p: Parameters) -> CelCheck:
    ok = inherited(("seccompProfile", "type"), 1, _in(["RuntimeDefault", "Localhost"]), False)
    problem = "seccompProfile.type is not RuntimeDefault or Localhost (pod or container)"
    return per_item(meta, "variables.containers", lambda c: ok, problem, gate="variables.windows")


def _limit(c: str, resource: str) -> str:
    return f"({has_chain(c, ('resources', 'limits', resource))} && {c}.resources.limits.{resource} != '')"


def _request(c: str, resource: str) -> str:
    requested = has_chain(c, ("resources", "requests", resource))
    return f"(({requested}) ? {c}.resources.requests.{resource} != '' : {_limit(c, resource)})"


_REGULAR_CONTAINERS = (
    f"(has({POD_SPEC}.containers) ? {POD_SPEC}.containers : []) + "
    f"(has({POD_SPEC}.initContainers) ? {POD_SPEC}.initContainers : [])"
)
_PROBED_CONTAINERS = (
    f"(has({POD_SPEC}.containers) ? {POD_SPEC}.containers : []) + (has({POD_SPEC}.initContainers) ? "
    f"{POD_SPEC}.initContainers.filter(i, has(i.restartPolicy) && i.restartPolicy == 'Always') : [])"
)


def resource_limits(meta: CheckMeta, p: Parameters) -> CelCheck:
    return per_item(
        meta,
        _REGULAR_CONTAINERS,
        lambda c: f"{_limit(c, 'cpu')} && {_limit(c, 'memory')}",
        "no cpu or memory limit",
    )


def resource_requests(meta: CheckMeta, p: Parameters) -> CelCheck:
    return per_item(
        meta,
        _REGULAR_CONTAINERS,
        lambda c: f"{_request(c, 'cpu')} && {_request(c, 'memory')}",
        "no cpu or memory request (nor a limit the API server defaults it to)",
    )


def _own(field: str, pred: Callable[[str], str], if_absent: bool) -> Callable[[str], str]:
    return lambda c: field_ok(c, ("securityContext", field), pred, if_absent)


def read_only_root_filesystem(meta: CheckMeta, p: Parameters) -> CelCheck:
    ok = _own("readOnlyRootFilesystem", _is("true"), False)
    return per_item(meta, "variables.containers", ok, "readOnlyRootFilesystem is not true")


def _probe(meta: CheckMeta, field: str) -> CelCheck:
    return per_item(
        meta, _PROBED_CONTAINERS, lambda c: f"has({c}.{field})", f"no {field}", gate="!variables.longRunning"
    )


def liveness_probe(meta: CheckMeta, p: Parameters) -> CelCheck:
    return _probe(meta, "livenessProbe")


def readiness_probe(meta: CheckMeta, p: Parameters) -> CelCheck:
    return _probe(meta, "readinessProbe")


def host_namespaces(meta: CheckMeta, p: Parameters) -> CelCheck:
    unshared = [f"(!has({POD_SPEC}.{f}) || {POD_SPEC}.{f} == false)" for f in ("hostNetwork", "hostPID", "hostIPC")]
    return pod_level(meta, " && ".join(unshared), "shares a host namespace (hostNetwork, hostPID or hostIPC)")


def labels_and_placement(meta: CheckMeta, p: Parameters) -> CelCheck:
    selector = f"(has({POD_SPEC}.nodeSelector) && size({POD_SPEC}.nodeSelector) > 0)"
    affinity = f"({has_chain(POD_SPEC, ('affinity', 'nodeAffinity'))} && size({POD_SPEC}.affinity.nodeAffinity) > 0)"
    expression = f"size(variables.podLabels) > 0 && ({selector} || {affinity})"
    return pod_level(meta, expression, "pods need labels and a nodeSelector or nodeAffinity")


def run_as_non_root(meta: CheckMeta, p: Parameters) -> CelCheck:
    ok = inherited(("runAsNonRoot",), 1, _is("true"), False)
    return per_item(meta, "variables.containers", lambda c: ok, "runAsNonRoot is not true (pod or container)")


def run_as_non_root_user(meta: CheckMeta, p: Parameters) -> CelCheck:
    ok = inherited(("runAsUser",), 1, lambda v: f"{v} != 0", True)
    return per_item(meta, "variables.containers", lambda c: ok, "runAsUser is 0 (root)")


def no_privilege_escalation(meta: CheckMeta, p: Parameters) -> CelCheck:
    ok = _own("allowPrivilegeEscalation", _is("false"), False)
    return per_item(meta, "variables.containers", ok, "allowPrivilegeEscalation is not false", gate="variables.windows")


def not_privileged(meta: CheckMeta, p: Parameters) -> CelCheck:
    ok = _own("privileged", _is("false"), True)
    return per_item(meta, "variables.containers", ok, "runs privileged")


def _unprivileged_port(port: str, field: str) -> str:
    return f"(!has({port}.{field}) || {port}.{field} <= 0 || {port}.{field} >= 1024)"


def privileged_ports(meta: CheckMeta, p: Parameters) -> CelCheck:
    def ok(c: str) -> str:
        each = f"{_unprivileged_port('p', 'containerPort')} && {_unprivileged_port('p', 'hostPort')}"
        return f"(!has({c}.ports) || {c}.ports.all(p, {each}))"

    return per_item(meta, "variables.containers", ok, "uses a port below 1024 (containerPort or hostPort)")


def host_ports(meta: CheckMeta, p: Parameters) -> CelCheck:
    def ok(c: str) -> str:
        return f"(!has({c}.ports) || {c}.ports.all(p, !has(p.hostPort) || p.hostPort == 0))"

    return per_item(meta, "variables.containers", ok, "binds a host port")


def capabilities(meta: CheckMeta, p: Parameters) -> CelCheck:
    # str(x).upper() == "ALL"; str(x).upper().removeprefix("CAP_") == "NET_BIND_SERVICE"
    drop_all = f"^{rx.upper_equals_re2('ALL')}$"
    bind_only = rx.anchored(
        rx.alternation(rx.upper_equals_re2(n) for n in ("NET_BIND_SERVICE", "CAP_NET_BIND_SERVICE"))
    )
    caps = f"{SC}.capabilities"

    def ok(c: str) -> str:
        drops = has_chain(c, ("securityContext", "capabilities", "drop"))
        drops += f" && {caps}.drop.exists(d, {matches('d', drop_all)})"
        adds = f"(!has({caps}.add) || {caps}.add.all(a, {matches('a', bind_only)}))"
        return f"({drops} && {adds})"

    problem = "capabilities must drop ALL and add at most NET_BIND_SERVICE"
    return per_item(meta, "variables.containers", ok, problem, gate="variables.windows")


def _allowed_image(image: str, p: Parameters) -> str:
    forms = rx.image_forms(p.allowed_registries)
    registry = f"(!{matches(image, rx.DOTTED_I_HOST)} && {matches(image, forms.registry)})"
    decide = (
        f"{matches(image, rx.ALIAS_FORM)} ? {matches(image, forms.alias)} : "
        f"{matches(image, rx.REGISTRY_FORM)} ? {registry} : "
        f"{matches(image, rx.PATH_FORM)} ? {matches(image, forms.path)} : {matches(image, forms.bare)}"
    )
    return f"(has({image}) && {image} != '' && !{matches(image, rx.EDGE_WHITESPACE)} && ({decide}))"


def allowed_registry(meta: CheckMeta, p: Parameters) -> CelCheck:
    return per_item(
        meta, "variables.containers", lambda c: _allowed_image(f"{c}.image", p), "image is not from an allowed registry"
    )


def image_digest(meta: CheckMeta, p: Parameters) -> CelCheck:
    def ok(c: str) -> str:
        return f"(has({c}.image) && {matches(f'{c}.image', rx.DIGEST_PINNED)})"

    return per_item(meta, "variables.containers", ok, "image is not pinned by a sha256 or sha512 digest")


def volume_types(meta: CheckMeta, p: Parameters) -> CelCheck:
    allowed = cel_list(_RESTRICTED_VOLUME_TYPES)
    return per_item(
        meta,
        "variables.volumes",
        lambda v: f"{v}.all(k, k == 'name' || k in {allowed})",
        "volume type is not one of " + ", ".join(_RESTRICTED_VOLUME_TYPES),
        what="volume",
        var="v",
    )


def host_path(meta: CheckMeta, p: Parameters) -> CelCheck:
    return per_item(
        meta, "variables.volumes", lambda v: f"!has({v}.hostPath)", "hostPath volume", what="volume", var="v"
    )


def _selinux_ok(base: str) -> str:
    type_ok = field_ok(base, ("type",), _in(_SELINUX_TYPES), True)
    user_ok = field_ok(base, ("user",), _is("''"), True)
    role_ok = field_ok(base, ("role",), _is("''"), True)
    return f"{type_ok} && {user_ok} && {role_ok}"


def _selinux_options_ok(base: str) -> str:
    """seLinuxOptions under ``base``.securityContext are unset or carry nothing custom."""
    options = f"{base}.securityContext.seLinuxOptions"
    return f"(!({has_chain(base, ('securityContext', 'seLinuxOptions'))}) || ({_selinux_ok(options)}))"


def selinux_options(meta: CheckMeta, p: Parameters) -> CelCheck:
    # Pod and container options are checked separately (no inheritance), for every container.
    pod = _selinux_options_ok(POD_SPEC)

    def ok(c: str) -> str:
        return f"{pod} && {_selinux_options_ok(c)}"

    return per_item(meta, "variables.containers", ok, "custom SELinux type, user or role (pod or container)")


def proc_mount(meta: CheckMeta, p: Parameters) -> CelCheck:
    return per_item(meta, "variables.containers", _own("procMount", _is("'Default'"), True), "procMount is not Default")


def safe_sysctls(meta: CheckMeta, p: Parameters) -> CelCheck:
    sysctls = f"({has_chain(POD_SPEC, ('securityContext', 'sysctls'))} ? {POD_SC}.sysctls : [])"
    allowed = cel_list(p.allowed_sysctls)
    return per_item(
        meta, sysctls, lambda s: f"has({s}.name) && {s}.name in {allowed}", "unsafe sysctl", what="sysctl", var="s"
    )


def apparmor(meta: CheckMeta, p: Parameters) -> CelCheck:
    profile = inherited(("appArmorProfile", "type"), 1, _in(["RuntimeDefault", "Localhost"]), True)

    def legacy_ok(value: str) -> str:
        return f"({value} == 'runtime/default' || {value}.startsWith('localhost/'))"

    def ok(c: str) -> str:
        key = f"{cel_str(_APPARMOR_ANNOTATION)} + {c}.name"
        tpl, obj = "variables.templateAnnotations", "variables.objectAnnotations"
        legacy = (
            f"(({key}) in {tpl} ? {legacy_ok(f'{tpl}[{key}]')} : (!(({key}) in {obj}) || {legacy_ok(f'{obj}[{key}]')}))"
        )
        return f"{profile} && {legacy}"

    return per_item(meta, "variables.containers", ok, "AppArmor is unconfined (appArmorProfile or legacy annotation)")


def host_process(meta: CheckMeta, p: Parameters) -> CelCheck:
    ok = inherited(("windowsOptions", "hostProcess"), 2, _is("false"), True)
    return per_item(meta, "variables.containers", lambda c: ok, "is a Windows HostProcess container")


Translation = Callable[[CheckMeta, Parameters], CelCheck]
TRANSLATIONS: dict[str, Translation] = {
    "k8s-no-container-runtime-socket": runtime_socket,
    "k8s-seccomp-profile": seccomp,
    "k8s-no-sensitive-host-path": sensitive_host_path,
    "k8s-resource-limits": resource_limits,
    "k8s-resource-requests": resource_requests,
    "k8s-read-only-root-filesystem": read_only_root_filesystem,
    "k8s-liveness-probe": liveness_probe,
    "k8s-readiness-probe": readiness_probe,
    "k8s-no-host-namespaces": host_namespaces,
    "k8s-labels-and-placement": labels_and_placement,
    "k8s-run-as-non-root": run_as_non_root,
    "k8s-run-as-non-root-user": run_as_non_root_user,
    "k8s-no-privilege-escalation": no_privilege_escalation,
    "k8s-not-privileged": not_privileged,
    "k8s-no-privileged-ports": privileged_ports,
    "k8s-no-host-ports": host_ports,
    "k8s-capabilities-restricted": capabilities,
    "k8s-allowed-registry": allowed_registry,
    "k8s-image-digest": image_digest,
    "k8s-volume-types": volume_types,
    "k8s-no-host-path": host_path,
    "k8s-selinux-options": selinux_options,
    "k8s-proc-mount": proc_mount,
    "k8s-safe-sysctls": safe_sysctls,
    "k8s-apparmor": apparmor,
    "k8s-no-host-process": host_process,
}


def translate(meta: CheckMeta, params: Parameters) -> CelCheck:
    """The CEL form of a check under the policy parameters; :class:`Unsupported` when there is none."""
    if meta.id in NOT_EXPRESSIBLE:
        raise Unsupported(NOT_EXPRESSIBLE[meta.id])
    fn = TRANSLATIONS.get(meta.id)
    if fn is None:
        raise Unsupported("no CEL translation (not a Kubernetes workload check)")
    return fn(meta, params)
