"""Checks of Kubernetes workloads: pure functions from workload facts to outcomes.

Each function's id, requirements, severity and documentation live in catalog/checks.yaml; the
explicit table in factorygate.checks maps ids to these functions. Checks yield one Outcome per
container (or one per pod for pod-level fields) and never raise on malformed manifests: they read
through ``as_map``/``as_list`` so a wrong type reads as "not set".
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Iterator

from factorygate.facts.images import parse_image, pinning_problem, registry_allowed
from factorygate.facts.secrets import credential_reason
from factorygate.facts.workload import ContainerFacts, Workload, as_list, as_map
from factorygate.model import Outcome, new_record
from factorygate.policy.schema import Parameters

RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
_APPARMOR_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _ok(c: ContainerFacts | None, path: str, message: str) -> Outcome:
    return new_record(Outcome, (True, message, path, c.name if c else None, None))


def _bad(c: ContainerFacts | None, path: str, message: str) -> Outcome:
    return new_record(Outcome, (False, message, path, c.name if c else None, None))


def _runs_linux(w: Workload) -> bool:
    return not w.windows


def _mounted_host_paths(w: Workload) -> Iterator[tuple[ContainerFacts | None, int, str, str]]:
    """(container or None, volume index, volume name, host path) for each hostPath use."""
    volumes = w.host_path_volumes
    used: set[str] = set()
    for c in w.containers:
        for m in as_list(c.spec.get("volumeMounts")):
            vname = as_map(m).get("name")
            if isinstance(vname, str) and vname in volumes:
                used.add(vname)
                yield c, volumes[vname][0], vname, volumes[vname][1]
    for vname, (i, path) in volumes.items():
        if vname not in used:
            yield None, i, vname, path


def _under(path: str, directory: str) -> bool:
    if directory == "/":
        return path == "/"
    return path == directory or path.startswith(directory.rstrip("/") + "/")


@functools.lru_cache(maxsize=64)
def _normalised(paths: tuple[str, ...]) -> tuple[str, ...]:
    """Policy path lists, normalised once per policy rather than once per workload."""
    return tuple(posixpath.normpath(x) for x in paths)


def k8s_no_container_runtime_socket(w: Workload, p: Parameters) -> Iterator[Outcome]:
    sockets = _normalised(tuple(p.runtime_socket_paths))
    flagged: set[str | None] = set()
    for c, i, vname, path in _mounted_host_paths(w):
        hit = next((s for s in sockets if path in (s, "/") or _under(s, path)), None)
        if hit:
            flagged.add(c.name if c else None)
            what = "the socket" if hit == path else f"a directory holding {hit}"
            yield _bad(
                c,
                w.pod_field(f"volumes[{i}].hostPath.path"),
                f"mounts {what} via hostPath volume {vname!r} ({path})",
            )
    for c in w.containers:
        if c.name not in flagged and w.passes:
            yield _ok(c, c.path, "mounts no container runtime socket")


def k8s_seccomp_profile(w: Workload, p: Parameters) -> Iterator[Outcome]:
    if not _runs_linux(w):
        return
    for c in w.containers:
        own = as_map(c.security_context.get("seccompProfile")).get("type")
        kind = as_map(c.effective.get("seccompProfile")).get("type")
        path = (
            c.sc_path("seccompProfile.type") if own is not None else w.pod_field("securityContext.seccompProfile.type")
        )
        if kind in ("RuntimeDefault", "Localhost"):
            if w.passes:
                yield _ok(c, path, f"seccomp profile {kind}")
        elif kind is None:
            yield _bad(c, c.path, "no seccomp profile: set seccompProfile.type RuntimeDefault (pod or container)")
        else:
            yield _bad(c, path, f"seccomp profile {kind!r} is not RuntimeDefault or Localhost")


def k8s_no_sensitive_host_path(w: Workload, p: Parameters) -> Iterator[Outcome]:
    sensitive = _normalised(tuple(p.sensitive_host_paths))
    flagged: set[str | None] = set()
    for c, i, vname, path in _mounted_host_paths(w):
        hit = next((s for s in sensitive if _under(path, s)), None)
        if hit:
            flagged.add(c.name if c else None)
            yield _bad(
                c,
                w.pod_field(f"volumes[{i}].hostPath.path"),
                f"mounts sensitive host path {path} (volume {vname!r}, under {hit})",
            )
    for c in w.containers:
        if c.name not in flagged and w.passes:
            yield _ok(c, c.path, "mounts no sensitive host directory")


def _resource_check(w: Workload, section: str) -> Iterator[Outcome]:
    for c in w.containers:
        if c.role == "ephemeralContainer":
            continue  # ephemeral containers cannot set resources
        res = as_map(c.spec.get("resources"))
        values = dict(as_map(res.get(section)))
        if section == "requests":  # the API server defaults requests to limits
            for k, v in as_map(res.get("limits")).items():
                values.setdefault(k, v)
        missing = [r for r in ("cpu", "memory") if values.get(r) in (None, "")]
        if missing:
            yield _bad(c, f"{c.path}.resources", f"no {' or '.join(missing)} {section.rstrip('s')}")
        elif w.passes:
            yield _ok(c, f"{c.path}.resources.{section}", f"cpu and memory {section} set")


def k8s_resource_limits(w: Workload, p: Parameters) -> Iterator[Outcome]:
    return _resource_check(w, "limits")


def k8s_resource_requests(w: Workload, p: Parameters) -> Iterator[Outcome]:
    return _resource_check(w, "requests")


def k8s_read_only_root_filesystem(w: Workload, p: Parameters) -> Iterator[Outcome]:
    for c in w.containers:
        value = c.security_context.get("readOnlyRootFilesystem")
        if value is True:
            if w.passes:
                yield _ok(c, c.sc_path("readOnlyRootFilesystem"), "root filesystem is read-only")
        elif value is None:
            yield _bad(c, c.path, "readOnlyRootFilesystem is not set (defaults to false)")
        else:
            yield _bad(c, c.sc_path("readOnlyRootFilesystem"), f"readOnlyRootFilesystem is {value!r}")


def _probe_check(w: Workload, field: str) -> Iterator[Outcome]:
    if not w.long_running:
        return
    for c in w.containers:
        if c.role == "ephemeralContainer" or (c.role == "initContainer" and not c.sidecar):
            continue
        if isinstance(c.spec.get(field), dict):
            if w.passes:
                yield _ok(c, f"{c.path}.{field}", f"{field} defined")
        else:
            yield _bad(c, c.path, f"no {field}")


def k8s_liveness_probe(w: Workload, p: Parameters) -> Iterator[Outcome]:
    return _probe_check(w, "livenessProbe")


def k8s_readiness_probe(w: Workload, p: Parameters) -> Iterator[Outcome]:
    return _probe_check(w, "readinessProbe")


def k8s_no_host_namespaces(w: Workload, p: Parameters) -> Iterator[Outcome]:
    shared = [f for f in ("hostNetwork", "hostPID", "hostIPC") if w.pod_spec.get(f) not in (None, False)]
    if shared:
        yield _bad(None, w.pod_field(shared[0]), f"shares host namespaces: {', '.join(shared)}")
    elif w.passes:
        yield _ok(None, w.pod_path, "shares no host namespace")


def k8s_labels_and_placement(w: Workload, p: Parameters) -> Iterator[Outcome]:
    problems = []
    if not w.labels:
        problems.append("the pod has no labels")
    selector = as_map(w.pod_spec.get("nodeSelector"))
    affinity = as_map(as_map(w.pod_spec.get("affinity")).get("nodeAffinity"))
    if not selector and not affinity:
        problems.append("no nodeSelector or nodeAffinity")
    if problems:
        yield _bad(None, w.pod_path, "; ".join(problems))
    elif w.passes:
        yield _ok(None, w.pod_path, "labelled and placed by selector")


def k8s_run_as_non_root(w: Workload, p: Parameters) -> Iterator[Outcome]:
    for c in w.containers:
        own = c.security_context.get("runAsNonRoot")
        value = c.effective.get("runAsNonRoot")
        path = c.sc_path("runAsNonRoot") if own is not None else w.pod_field("securityContext.runAsNonRoot")
        if value is True:
            if w.passes:
                yield _ok(c, path, "runAsNonRoot is true")
        elif value is None:
            yield _bad(c, c.path, "runAsNonRoot is not set at pod or container level")
        else:
            yield _bad(c, path, f"runAsNonRoot is {value!r}")


def k8s_run_as_non_root_user(w: Workload, p: Parameters) -> Iterator[Outcome]:
    pod_uid = w.pod_security_context.get("runAsUser")
    for c in w.containers:
        own = c.security_context.get("runAsUser")
        if own == 0:
            yield _bad(c, c.sc_path("runAsUser"), "runAsUser is 0 (root)")
        elif own is None and pod_uid == 0:
            yield _bad(c, w.pod_field("securityContext.runAsUser"), "inherits runAsUser 0 (root) from the pod")
        else:
            uid = own if own is not None else pod_uid
            if w.passes:
                yield _ok(c, c.path, f"runAsUser is {uid}" if uid is not None else "runAsUser is not set to 0")


def k8s_no_privilege_escalation(w: Workload, p: Parameters) -> Iterator[Outcome]:
    if not _runs_linux(w):
        return
    for c in w.containers:
        value = c.security_context.get("allowPrivilegeEscalation")
        if value is False:
            if w.passes:
                yield _ok(c, c.sc_path("allowPrivilegeEscalation"), "allowPrivilegeEscalation is false")
        elif value is None:
            yield _bad(c, c.path, "allowPrivilegeEscalation is not set (defaults to true)")
        else:
            yield _bad(c, c.sc_path("allowPrivilegeEscalation"), f"allowPrivilegeEscalation is {value!r}")


def k8s_not_privileged(w: Workload, p: Parameters) -> Iterator[Outcome]:
    for c in w.containers:
        value = c.security_context.get("privileged")
        if value in (None, False):
            if w.passes:
                yield _ok(c, c.path, "not privileged")
        else:
            yield _bad(c, c.sc_path("privileged"), "runs privileged")


def _ports(c: ContainerFacts) -> Iterator[tuple[int, dict[str, object]]]:
    for i, port in enumerate(as_list(c.spec.get("ports"))):
        if isinstance(port, dict):
            yield i, port


def _port_number(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def k8s_no_privileged_ports(w: Workload, p: Parameters) -> Iterator[Outcome]:
    for c in w.containers:
        low = []
        for i, port in _ports(c):
            for field in ("containerPort", "hostPort"):
                n = _port_number(port.get(field))
                if n is not None and 0 < n < 1024:
                    low.append((f"{c.path}.ports[{i}].{field}", f"{field} {n}"))
        if low:
            yield _bad(c, low[0][0], "privileged port(s) below 1024: " + ", ".join(x[1] for x in low))
        elif w.passes:
            yield _ok(c, c.path, "no port below 1024")


def k8s_no_host_ports(w: Workload, p: Parameters) -> Iterator[Outcome]:
    for c in w.containers:
        bound = [(i, port.get("hostPort")) for i, port in _ports(c) if port.get("hostPort") not in (None, 0)]
        if bound:
            yield _bad(
                c,
                f"{c.path}.ports[{bound[0][0]}].hostPort",
                "binds host port(s) " + ", ".join(str(h) for _, h in bound),
            )
        elif w.passes:
            yield _ok(c, c.path, "binds no host port")


def k8s_capabilities_restricted(w: Workload, p: Parameters) -> Iterator[Outcome]:
    if not _runs_linux(w):
        return
    for c in w.containers:
        caps = as_map(c.security_context.get("capabilities"))
        drop = {str(x).upper() for x in as_list(caps.get("drop"))}
        added = [str(x) for x in as_list(caps.get("add"))]
        extra = [a for a in added if a.upper().removeprefix("CAP_") != "NET_BIND_SERVICE"]
        problems = []
        if "ALL" not in drop:
            problems.append("capabilities.drop does not include ALL")
        if extra:
            problems.append("adds " + ", ".join(extra))
        if problems:
            path = c.sc_path("capabilities") if caps else c.path
            yield _bad(c, path, "; ".join(problems))
        elif w.passes:
            yield _ok(c, c.sc_path("capabilities"), "drops ALL" + (", adds NET_BIND_SERVICE only" if added else ""))


def _image(c: ContainerFacts) -> str | None:
    image = c.spec.get("image")
    return image if isinstance(image, str) and image.strip() else None


def k8s_allowed_registry(w: Workload, p: Parameters) -> Iterator[Outcome]:
    allowed = p.allowed_registries
    for c in w.containers:
        image = _image(c)
        if image is None:
            yield _bad(c, c.path, "no image set")
            continue
        ref = parse_image(image)
        ok = registry_allowed(ref, allowed)
        if ok:
            if w.passes:
                yield _ok(c, f"{c.path}.image", f"image {image} comes from an allowed registry")
        else:
            yield _bad(c, f"{c.path}.image", f"image {image} comes from {ref.registry}, not an allowed registry")


def k8s_image_digest(w: Workload, p: Parameters) -> Iterator[Outcome]:
    for c in w.containers:
        image = _image(c)
        if image is None:
            yield _bad(c, c.path, "no image set")
            continue
        path = f"{c.path}.image"
        problem = pinning_problem(parse_image(image))
        if problem is None:
            if w.passes:
                yield _ok(c, path, f"image {image} is pinned by digest")
        else:
            yield _bad(c, path, f"image {image} {problem}")


def k8s_no_env_credentials(w: Workload, p: Parameters) -> Iterator[Outcome]:
    for c in w.containers:
        hits = []
        for i, raw_env in enumerate(as_list(c.spec.get("env"))):
            env = as_map(raw_env)
            value = env.get("value")
            if not isinstance(value, str) or not value:
                continue
            reason = credential_reason(str(env.get("name", "")), value)
            if reason:
                hits.append((i, str(env.get("name")), reason))
        if hits:
            i, name, reason = hits[0]
            more = f" (and {len(hits) - 1} more)" if len(hits) > 1 else ""
            yield _bad(c, f"{c.path}.env[{i}].value", f"env {name}: {reason}{more}; value not shown")
        elif w.passes:
            yield _ok(c, c.path, "no literal credential in env")


def k8s_volume_types(w: Workload, p: Parameters) -> Iterator[Outcome]:
    bad = []
    for i, v in enumerate(as_list(w.pod_spec.get("volumes"))):
        kinds = [k for k in as_map(v) if k != "name"]
        disallowed = [k for k in kinds if k not in RESTRICTED_VOLUME_TYPES]
        if disallowed:
            bad.append((i, str(as_map(v).get("name")), disallowed[0]))
    if bad:
        i = bad[0][0]
        yield _bad(
            None,
            w.pod_field(f"volumes[{i}]"),
            "disallowed volume type(s): " + ", ".join(f"{n} ({k})" for _, n, k in bad),
        )
    elif w.passes:
        yield _ok(None, w.pod_path, "only restricted volume types")


def k8s_no_host_path(w: Workload, p: Parameters) -> Iterator[Outcome]:
    paths = w.host_path_volumes
    volumes = [
        (i, str(as_map(v).get("name")))
        for i, v in enumerate(as_list(w.pod_spec.get("volumes")))
        if as_map(v).get("hostPath") is not None
    ]
    if volumes:
        yield _bad(
            None,
            w.pod_field(f"volumes[{volumes[0][0]}].hostPath"),
            "hostPath volume(s): " + ", ".join(f"{n} ({paths[n][1] if n in paths else 'no path'})" for _, n in volumes),
        )
    elif w.passes:
        yield _ok(None, w.pod_path, "no hostPath volume")


def k8s_selinux_options(w: Workload, p: Parameters) -> Iterator[Outcome]:
    pod_opts = as_map(w.pod_security_context.get("seLinuxOptions"))
    for c in w.containers:
        problems: list[str] = []
        path = c.path
        container_opts = as_map(c.security_context.get("seLinuxOptions"))
        if not pod_opts and not container_opts:
            if w.passes:
                yield _ok(c, c.path, "no custom SELinux options")
            continue
        for where, opts in (("pod", pod_opts), ("container", container_opts)):
            before = len(problems)
            if opts.get("type") not in (None, *SELINUX_TYPES):
                problems.append(f"{where} seLinuxOptions.type {opts.get('type')!r}")
            for field in ("user", "role"):
                if opts.get(field) not in (None, ""):
                    problems.append(f"{where} seLinuxOptions.{field} is set")
            if len(problems) > before:
                path = w.pod_field("securityContext.seLinuxOptions") if where == "pod" else c.sc_path("seLinuxOptions")
        if problems:
            yield _bad(c, path, "; ".join(problems))
        elif w.passes:
            yield _ok(c, c.path, "no custom SELinux options")


def k8s_proc_mount(w: Workload, p: Parameters) -> Iterator[Outcome]:
    for c in w.containers:
        value = c.security_context.get("procMount")
        if value in (None, "Default"):
            if w.passes:
                yield _ok(c, c.path, "default /proc mount")
        else:
            yield _bad(c, c.sc_path("procMount"), f"procMount is {value!r}")


def k8s_safe_sysctls(w: Workload, p: Parameters) -> Iterator[Outcome]:
    allowed = set(p.allowed_sysctls)
    unsafe = [
        (i, str(as_map(s).get("name")))
        for i, s in enumerate(as_list(w.pod_security_context.get("sysctls")))
        if not (isinstance(as_map(s).get("name"), str) and as_map(s).get("name") in allowed)
    ]
    if unsafe:
        yield _bad(
            None,
            w.pod_field(f"securityContext.sysctls[{unsafe[0][0]}]"),
            "unsafe sysctl(s): " + ", ".join(n for _, n in unsafe),
        )
    elif w.passes:
        yield _ok(None, w.pod_path, "only safe sysctls")


def k8s_apparmor(w: Workload, p: Parameters) -> Iterator[Outcome]:
    for c in w.containers:
        problems, path = [], c.path
        kind = as_map(c.effective.get("appArmorProfile")).get("type")
        if kind is not None and not (isinstance(kind, str) and kind in _APPARMOR_TYPES):
            own = c.security_context.get("appArmorProfile") is not None
            path = c.sc_path("appArmorProfile.type") if own else w.pod_field("securityContext.appArmorProfile.type")
            problems.append(f"appArmorProfile.type is {kind!r}")
        legacy = w.annotations.get(APPARMOR_ANNOTATION + c.name)
        if legacy is not None and legacy != "runtime/default" and not str(legacy).startswith("localhost/"):
            problems.append(f"annotation {APPARMOR_ANNOTATION}{c.name} is {legacy!r}")
        if problems:
            yield _bad(c, path, "; ".join(problems))
        elif w.passes:
            yield _ok(c, c.path, "AppArmor is not disabled")


def k8s_no_host_process(w: Workload, p: Parameters) -> Iterator[Outcome]:
    pod_hp = as_map(w.pod_security_context.get("windowsOptions")).get("hostProcess")
    for c in w.containers:
        own = as_map(c.security_context.get("windowsOptions")).get("hostProcess")
        if own not in (None, False):
            yield _bad(c, c.sc_path("windowsOptions.hostProcess"), "is a Windows HostProcess container")
        elif own is None and pod_hp not in (None, False):
            yield _bad(
                c,
                w.pod_field("securityContext.windowsOptions.hostProcess"),
                "inherits windowsOptions.hostProcess from the pod",
            )
        elif w.passes:
            yield _ok(c, c.path, "not a HostProcess container")
