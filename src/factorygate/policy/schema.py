"""The policy file schema (pydantic models, unknown fields rejected)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _abs_paths(paths: list[str]) -> list[str]:
    bad = [p for p in paths if not p.startswith("/")]
    if bad:
        raise ValueError(f"host paths must be absolute: {bad}")
    return paths


class Parameters(_Strict):
    """Parameters the checks read."""

    allowed_registries: list[str] = Field(default_factory=lambda: ["registry1.dso.mil"])
    sensitive_host_paths: list[str] = Field(default_factory=lambda: list(DEFAULT_SENSITIVE_HOST_PATHS))
    runtime_socket_paths: list[str] = Field(default_factory=lambda: list(DEFAULT_RUNTIME_SOCKETS))
    allowed_sysctls: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOWED_SYSCTLS))
    exempt_namespaces: list[str] = Field(default_factory=list)

    _check_paths = field_validator("sensitive_host_paths", "runtime_socket_paths")(_abs_paths)

    @field_validator("allowed_registries")
    @classmethod
    def _registries(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if not r or "://" in r]
        if bad:
            raise ValueError(f"registries are host[/path] prefixes without a scheme: {bad}")
        return v


class CheckSetting(_Strict):
    """Per-check settings."""

    enabled: bool = True
    severity: Severity | None = None


class ResourceSelector(_Strict):
    """Which findings a waiver covers; every field is a shell-style glob ("*" matches all)."""

    kind: str = "*"
    namespace: str = "*"
    name: str = "*"
    container: str = "*"


class WaiverRule(_Strict):
    """A waiver: an approved, justified, expiring exception to one check."""

    check: str = Field(min_length=1)
    resource: ResourceSelector = Field(default_factory=ResourceSelector)
    justification: str = Field(min_length=10)
    approver: str = Field(min_length=2)
    expires: dt.date

    @field_validator("justification", "approver")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()


class Policy(_Strict):
    """A factorygate policy file."""

    apiVersion: Literal["factorygate.dev/v1"]
    kind: Literal["Policy"]
    threshold: Severity = Severity.MEDIUM
    checks: dict[str, CheckSetting] = Field(default_factory=dict)
    parameters: Parameters = Field(default_factory=Parameters)
    waivers: list[WaiverRule] = Field(default_factory=list)
    inline_waivers: bool = True

    def enabled(self, check_id: str) -> bool:
        setting = self.checks.get(check_id)
        return setting is None or setting.enabled

    def severity_of(self, check_id: str, default: Severity) -> Severity:
        setting = self.checks.get(check_id)
        return setting.severity if setting and setting.severity else default
