"""The policy file schema: immutable NamedTuples.

The built-in default is constructed directly (no validation library on the scan path); a policy *file*
is validated against these classes by pydantic in policy/load.py (unknown fields rejected). Cross-field
rules live in each record's ``_checked`` (run by pydantic after the fields) and raise
:class:`FieldProblem` naming the field, so error messages still point at the right YAML line."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from factorygate.model import Severity

if TYPE_CHECKING:
    # resolved when a policy *file* is validated (policy/load.py has it in scope); a scan never imports it
    from factorygate.audit.declarations import ConformanceDeclarations

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


STRICT: dict[str, Any] = {"extra": "forbid"}  # pydantic ConfigDict, for the dataclass schemas of other files


def _after(schema: Any, check: Callable[[Any], Any]) -> Any:
    """``schema`` followed by ``check`` (its cross-field rules): pydantic's hook, used only when a file is
    validated (pydantic_core is imported here, never on the scan path)."""
    from pydantic_core import core_schema

    return core_schema.no_info_after_validator_function(check, schema)


def _abs_paths(name: str, paths: Sequence[str]) -> None:
    bad = [p for p in paths if not p.startswith("/")]
    if bad:
        raise FieldProblem(name, f"host paths must be absolute: {bad}")


def required_text(name: str, value: str, min_length: int) -> str:
    """A required text field, stripped, at least ``min_length`` characters long."""
    stripped = value.strip()
    if not stripped:
        raise FieldProblem(name, "must not be blank")
    if len(stripped) < min_length:
        raise FieldProblem(name, f"should have at least {min_length} characters")
    return stripped


class Parameters(NamedTuple):
    """Parameters the checks read."""

    allowed_registries: tuple[str, ...] = ("registry1.dso.mil",)
    sensitive_host_paths: tuple[str, ...] = DEFAULT_SENSITIVE_HOST_PATHS
    runtime_socket_paths: tuple[str, ...] = DEFAULT_RUNTIME_SOCKETS
    allowed_sysctls: tuple[str, ...] = DEFAULT_ALLOWED_SYSCTLS
    exempt_namespaces: tuple[str, ...] = ()
    # Admission (factorygate admission serve): namespaces (globs) where an evaluation *error* admits the
    # object instead of denying it. Policy failures still deny there. Empty: fail closed everywhere.
    fail_open_namespaces: tuple[str, ...] = ()
    # Approved base images by digest (CICDG-2.14): the manifest digest of an image, or of its base layers.
    approved_base_digests: tuple[str, ...] = ()
    # More layers than this in an image is reported (CICDG-2.8, "minimal cached layers").
    max_image_layers: int = 40
    # Public keys whose cosign signatures make an image and its base "signed" (CICDG-2.10): PEM text or a
    # path to a .pub file. Empty: the signature check fails ("no trusted keys configured").
    trusted_signing_keys: tuple[str, ...] = ()

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        return _after(handler(source), cls._checked)

    def _checked(self) -> Parameters:
        _abs_paths("sensitive_host_paths", self.sensitive_host_paths)
        _abs_paths("runtime_socket_paths", self.runtime_socket_paths)
        bad = [r for r in self.allowed_registries if not r or "://" in r]
        if bad:
            raise FieldProblem("allowed_registries", f"registries are host[/path] prefixes without a scheme: {bad}")
        if self.max_image_layers < 1:
            raise FieldProblem("max_image_layers", "must be at least 1")
        if any(not k.strip() for k in self.trusted_signing_keys):
            raise FieldProblem("trusted_signing_keys", "entries are PEM public keys or paths to .pub files, not empty")
        bad = [d for d in self.approved_base_digests if not _is_digest(d)]
        if bad:
            raise FieldProblem("approved_base_digests", f"expected sha256:<64 hex> digests: {bad}")
        return self


def _is_digest(text: str) -> bool:
    algo, _, hexpart = text.partition(":")
    return algo == "sha256" and len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart)


class CheckSetting(NamedTuple):
    """Per-check settings."""

    enabled: bool = True
    severity: Severity | None = None


class ResourceSelector(NamedTuple):
    """Which findings a waiver covers; every field is a shell-style glob ("*" matches all)."""

    kind: str = "*"
    namespace: str = "*"
    name: str = "*"
    container: str = "*"


class WaiverRule(NamedTuple):
    """A waiver: an approved, justified, expiring exception to one check."""

    check: str
    justification: str
    approver: str
    expires: dt.date
    resource: ResourceSelector = ResourceSelector()

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        return _after(handler(source), cls._checked)

    def _checked(self) -> WaiverRule:
        if not self.check:
            raise FieldProblem("check", "should have at least 1 character")
        return self._replace(
            justification=required_text("justification", self.justification, 10),
            approver=required_text("approver", self.approver, 2),
        )


_NO_SETTINGS: Mapping[str, CheckSetting] = {}  # read-only by its type (pydantic copies defaults it validates)


class Policy(NamedTuple):
    """A factorygate policy file.

    The schema's records are NamedTuples, not dataclasses: every scan builds the default policy, and the
    dataclasses module (with inspect) and each dataclass cost more at start-up than the rest of the
    policy code. pydantic validates a NamedTuple from a mapping (unknown fields rejected) and runs each
    record's ``_checked`` rules through ``__get_pydantic_core_schema__``."""

    apiVersion: Literal["factorygate.dev/v1"]
    kind: Literal["Policy"]
    threshold: Severity = Severity.MEDIUM
    checks: Mapping[str, CheckSetting] = _NO_SETTINGS
    parameters: Parameters = Parameters()
    waivers: tuple[WaiverRule, ...] = ()
    inline_waivers: bool = True
    conformance: ConformanceDeclarations | None = None  # `factorygate audit`: implementations declared here

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
        return self._replace(threshold=threshold)
