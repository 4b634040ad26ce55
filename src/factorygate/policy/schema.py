"""The policy file schema: frozen stdlib dataclasses.

The built-in default is constructed directly (no validation library on the scan path); a policy *file*
is validated against these classes by pydantic in policy/load.py (unknown fields rejected through
``__pydantic_config__``). Cross-field rules live in ``__post_init__`` and raise :class:`FieldProblem`
naming the field, so error messages still point at the right YAML line."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

from factorygate.model import Severity

DEFAULT_SENSITIVE_HOST_PATHS = (
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib64",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/usr",
    "/var/lib/containerd",
    "/var/lib/crio",
    "/var/lib/docker",
    "/var/lib/etcd",
    "/var/lib/kubelet",
    "/var/run",
)
DEFAULT_RUNTIME_SOCKETS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/run/crio/crio.sock",
    "/var/run/podman/podman.sock",
    "/run/podman/podman.sock",
    "/var/run/cri-dockerd.sock",
    "/run/cri-dockerd.sock",
    "/var/run/dockershim.sock",
)
# Pod Security Standards, Baseline "Sysctls" (safe, namespaced sysctls), up to Kubernetes v1.32.
DEFAULT_ALLOWED_SYSCTLS = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
)


class FieldProblem(ValueError):
    """A value that parses but breaks a rule; ``field`` names it relative to its dataclass."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


STRICT: dict[str, Any] = {"extra": "forbid"}  # pydantic ConfigDict, applied when a file is validated


def _abs_paths(name: str, paths: list[str]) -> None:
    bad = [p for p in paths if not p.startswith("/")]
    if bad:
        raise FieldProblem(name, f"host paths must be absolute: {bad}")


def required_text(obj: object, name: str, value: str, min_length: int) -> None:
    """Strip a required text field in place and enforce its minimum length."""
    stripped = value.strip()
    if not stripped:
        raise FieldProblem(name, "must not be blank")
    if len(stripped) < min_length:
        raise FieldProblem(name, f"should have at least {min_length} characters")
    object.__setattr__(obj, name, stripped)


@dataclass(frozen=True)
class Parameters:
    """Parameters the checks read."""

    __pydantic_config__: ClassVar[dict[str, Any]] = STRICT
    allowed_registries: list[str] = field(default_factory=lambda: ["registry1.dso.mil"])
    sensitive_host_paths: list[str] = field(default_factory=lambda: list(DEFAULT_SENSITIVE_HOST_PATHS))
    runtime_socket_paths: list[str] = field(default_factory=lambda: list(DEFAULT_RUNTIME_SOCKETS))
    allowed_sysctls: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOWED_SYSCTLS))
    exempt_namespaces: list[str] = field(default_factory=list)
    # Admission (factorygate admission serve): namespaces (globs) where an evaluation *error* admits the
    # object instead of denying it. Policy failures still deny there. Empty: fail closed everywhere.
    fail_open_namespaces: list[str] = field(default_factory=list)
    # Approved base images by digest (CICDG-2.14): the manifest digest of an image, or of its base layers.
    approved_base_digests: list[str] = field(default_factory=list)
    # More layers than this in an image is reported (CICDG-2.8, "minimal cached layers").
    max_image_layers: int = 40

    def __post_init__(self) -> None:
        _abs_paths("sensitive_host_paths", self.sensitive_host_paths)
        _abs_paths("runtime_socket_paths", self.runtime_socket_paths)
        bad = [r for r in self.allowed_registries if not r or "://" in r]
        if bad:
            raise FieldProblem("allowed_registries", f"registries are host[/path] prefixes without a scheme: {bad}")
        if self.max_image_layers < 1:
            raise FieldProblem("max_image_layers", "must be at least 1")
        bad = [d for d in self.approved_base_digests if not _is_digest(d)]
        if bad:
            raise FieldProblem("approved_base_digests", f"expected sha256:<64 hex> digests: {bad}")


def _is_digest(text: str) -> bool:
    algo, _, hexpart = text.partition(":")
    return algo == "sha256" and len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart)


@dataclass(frozen=True)
class CheckSetting:
    """Per-check settings."""

    __pydantic_config__: ClassVar[dict[str, Any]] = STRICT
    enabled: bool = True
    severity: Severity | None = None


@dataclass(frozen=True)
class ResourceSelector:
    """Which findings a waiver covers; every field is a shell-style glob ("*" matches all)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = STRICT
    kind: str = "*"
    namespace: str = "*"
    name: str = "*"
    container: str = "*"


@dataclass(frozen=True)
class WaiverRule:
    """A waiver: an approved, justified, expiring exception to one check."""

    __pydantic_config__: ClassVar[dict[str, Any]] = STRICT
    check: str
    justification: str
    approver: str
    expires: dt.date
    resource: ResourceSelector = field(default_factory=ResourceSelector)

    def __post_init__(self) -> None:
        if not self.check:
            raise FieldProblem("check", "should have at least 1 character")
        required_text(self, "justification", self.justification, 10)
        required_text(self, "approver", self.approver, 2)


@dataclass(frozen=True)
class Policy:
    """A factorygate policy file."""

    __pydantic_config__: ClassVar[dict[str, Any]] = STRICT
    apiVersion: Literal["factorygate.dev/v1"]
    kind: Literal["Policy"]
    threshold: Severity = Severity.MEDIUM
    checks: dict[str, CheckSetting] = field(default_factory=dict)
    parameters: Parameters = field(default_factory=Parameters)
    waivers: list[WaiverRule] = field(default_factory=list)
    inline_waivers: bool = True

    @classmethod
    def default(cls) -> Policy:
        """The built-in policy (docs/policy.md; the same as policy/default-policy.yaml, tested)."""
        return cls("factorygate.dev/v1", "Policy")

    def enabled(self, check_id: str) -> bool:
        setting = self.checks.get(check_id)
        return setting is None or setting.enabled

    def severity_of(self, check_id: str, default: Severity) -> Severity:
        setting = self.checks.get(check_id)
        return setting.severity if setting and setting.severity else default

    def with_threshold(self, threshold: Severity) -> Policy:
        return replace(self, threshold=threshold)
