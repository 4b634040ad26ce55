"""Built-in checks, registered explicitly in one typed table (no import side effects)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from factorygate.checks import dockerfile as d
from factorygate.checks import kubernetes as k
from factorygate.facts.workload import Workload
from factorygate.inputs.dockerfile import Dockerfile
from factorygate.model import Outcome
from factorygate.policy.schema import Parameters

if TYPE_CHECKING:
    from factorygate.facts.image import ImageFacts

WorkloadCheck = Callable[[Workload, Parameters], Iterator[Outcome]]
DockerfileCheck = Callable[[Dockerfile, Parameters], Iterator[Outcome]]
ImageCheck = Callable[["ImageFacts", Parameters], Iterator[Outcome]]

WORKLOAD_CHECKS: dict[str, WorkloadCheck] = {
    "k8s-no-container-runtime-socket": k.k8s_no_container_runtime_socket,
    "k8s-seccomp-profile": k.k8s_seccomp_profile,
    "k8s-no-sensitive-host-path": k.k8s_no_sensitive_host_path,
    "k8s-resource-limits": k.k8s_resource_limits,
    "k8s-resource-requests": k.k8s_resource_requests,
    "k8s-read-only-root-filesystem": k.k8s_read_only_root_filesystem,
    "k8s-liveness-probe": k.k8s_liveness_probe,
    "k8s-readiness-probe": k.k8s_readiness_probe,
    "k8s-no-host-namespaces": k.k8s_no_host_namespaces,
    "k8s-labels-and-placement": k.k8s_labels_and_placement,
    "k8s-run-as-non-root": k.k8s_run_as_non_root,
    "k8s-run-as-non-root-user": k.k8s_run_as_non_root_user,
    "k8s-no-privilege-escalation": k.k8s_no_privilege_escalation,
    "k8s-not-privileged": k.k8s_not_privileged,
    "k8s-no-privileged-ports": k.k8s_no_privileged_ports,
    "k8s-no-host-ports": k.k8s_no_host_ports,
    "k8s-capabilities-restricted": k.k8s_capabilities_restricted,
    "k8s-allowed-registry": k.k8s_allowed_registry,
    "k8s-image-digest": k.k8s_image_digest,
    "k8s-no-env-credentials": k.k8s_no_env_credentials,
    "k8s-volume-types": k.k8s_volume_types,
    "k8s-no-host-path": k.k8s_no_host_path,
    "k8s-selinux-options": k.k8s_selinux_options,
    "k8s-proc-mount": k.k8s_proc_mount,
    "k8s-safe-sysctls": k.k8s_safe_sysctls,
    "k8s-apparmor": k.k8s_apparmor,
    "k8s-no-host-process": k.k8s_no_host_process,
}

DOCKERFILE_CHECKS: dict[str, DockerfileCheck] = {
    "df-no-ssh-server": d.df_no_ssh_server,
    "df-non-root-user": d.df_non_root_user,
    "df-no-setuid": d.df_no_setuid,
    "df-no-remote-add": d.df_no_remote_add,
    "df-no-pipe-to-shell": d.df_no_pipe_to_shell,
    "df-offline-build": d.df_offline_build,
    "df-non-privileged-ports": d.df_non_privileged_ports,
    "df-single-service-port": d.df_single_service_port,
    "df-healthcheck": d.df_healthcheck,
    "df-tls-verification": d.df_tls_verification,
    "df-package-cache": d.df_package_cache,
    "df-no-secrets": d.df_no_secrets,
    "df-base-image-registry": d.df_base_image_registry,
    "df-base-image-digest": d.df_base_image_digest,
    "df-verified-packages": d.df_verified_packages,
    "df-essential-tools": d.df_essential_tools,
}


# Image checks (factorygate image): the table lives behind a function so that `scan` does not import
# the image readers.
def image_checks() -> dict[str, ImageCheck]:
    from factorygate.checks import image as i

    table: dict[str, ImageCheck] = {
        "img-no-ssh-server": i.img_no_ssh_server,
        "img-non-root-user": i.img_non_root_user,
        "img-no-setuid": i.img_no_setuid,
        "img-history-known-outcomes": i.img_history_known_outcomes,
        "img-non-privileged-ports": i.img_non_privileged_ports,
        "img-healthcheck": i.img_healthcheck,
        "img-tls-transport": i.img_tls_transport,
        "img-package-cache": i.img_package_cache,
        "img-no-secrets": i.img_no_secrets,
        "img-history-verified-packages": i.img_history_verified_packages,
        "img-essential-tools": i.img_essential_tools,
        "img-single-service-port": i.img_single_service_port,
        "img-approved-base": i.img_approved_base,
        "img-trusted-registry": i.img_trusted_registry,
        "img-signed": i.img_signed,
    }
    return table


# Checks evaluated over all inputs at once (see factorygate.engine).
BUNDLE_CHECKS = frozenset({"k8s-network-policy-coverage"})

# Checks only the admission webhook evaluates, with registry access (`admission serve --verify-signatures`;
# factorygate.admission.signatures). `scan` and `image` never run them: a scan reports their requirement from
# the checks it does run, never a pass of these.
ADMISSION_CHECKS = frozenset({"img-signed-at-admission"})

# Pseudo-check id of findings that report unreadable input.
INPUT_ERROR = "input-error"
CHECK_ERROR = "check-error"

__all__ = [
    "ADMISSION_CHECKS",
    "BUNDLE_CHECKS",
    "CHECK_ERROR",
    "DOCKERFILE_CHECKS",
    "INPUT_ERROR",
    "WORKLOAD_CHECKS",
    "DockerfileCheck",
    "ImageCheck",
    "WorkloadCheck",
    "image_checks",
]
