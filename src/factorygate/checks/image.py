"""Checks of built images (DISA guide section 2, on the image itself).

Pure functions from :class:`ImageFacts` to outcomes. ``Outcome.path`` names what the finding is
about: a config field (``config.User``), a file (``/usr/bin/sudo``) or a history step
(``history[3]``). The history's commands go through the same functions as Dockerfile RUN lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from factorygate.checks import dockerfile as d
from factorygate.facts.image import ImageFacts, credential_candidate, passwd_uid
from factorygate.facts.images import parse_image, registry_allowed
from factorygate.facts.secrets import credential_reason, high_entropy
from factorygate.inputs.dockerfile import Dockerfile
from factorygate.model import Outcome
from factorygate.oci.model import OCI_CONFIG, FileEntry
from factorygate.policy.schema import Parameters

_BIN_DIRS = ("/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/", "/usr/local/bin/", "/usr/local/sbin/")


def _ok(path: str, message: str) -> Outcome:
    return Outcome(True, message, path)


def _bad(path: str, message: str) -> Outcome:
    return Outcome(False, message, path)


def _executables(facts: ImageFacts, names: set[str]) -> Iterator[FileEntry]:
    for path, entry in facts.fs.files.items():
        if (
            entry.type in ("file", "hardlink", "symlink")
            and path.startswith(_BIN_DIRS)
            and (path.rsplit("/", 1)[-1] in names)
        ):
            yield entry


# -- 2.1 ------------------------------------------------------------------------------------------
_SSH_DAEMONS = {"sshd", "dropbear"}
_SSH_CONFIGS = ("/etc/ssh/sshd_config", "/etc/dropbear/")


def img_no_ssh_server(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    found = False
    for e in _executables(facts, _SSH_DAEMONS):
        found = True
        yield _bad(e.path, f"SSH daemon {e.path} in the image ({facts.layer_label(e.layer)})")
    for e in facts.files_under(*_SSH_CONFIGS):
        if e.type == "file":
            found = True
            yield _bad(e.path, f"SSH server configuration {e.path} in the image")
    if any(d.port_number(x) == 22 for x in facts.exposed_ports):
        found = True
        yield _bad("config.ExposedPorts", "exposes port 22 (SSH)")
    if not found:
        yield _ok("config", "no SSH daemon, server configuration or exposed port 22")


# -- 2.2 ------------------------------------------------------------------------------------------
def img_non_root_user(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    user = facts.user
    if not user:
        yield _bad("config.User", "no User set: the container runs as root")
        return
    name = user.split(":", 1)[0]
    if name.isdigit():
        if int(name) == 0:
            yield _bad("config.User", f"User {user!r} is uid 0 (root)")
        else:
            yield _ok("config.User", f"runs as uid {name}")
        return
    if name == "root":
        yield _bad("config.User", f"User {user!r} is root")
        return
    uid = passwd_uid(facts.text("/etc/passwd"), name)
    if uid == 0:
        yield _bad("config.User", f"User {name!r} has uid 0 in /etc/passwd")
    elif uid is None:
        yield _ok("config.User", f"runs as {name!r} (not in /etc/passwd: the runtime must resolve it)")
    else:
        yield _ok("config.User", f"runs as {name!r} (uid {uid})")


# -- 2.3 ------------------------------------------------------------------------------------------
def img_no_setuid(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    found = False
    for path, e in sorted(facts.fs.files.items()):
        if e.type == "file" and e.mode & 0o6000:
            found = True
            bits = " and ".join(b for b, m in (("setuid", 0o4000), ("setgid", 0o2000)) if e.mode & m)
            yield _bad(path, f"{bits} executable {path} (mode {e.mode:04o}, owner {e.uid})")
    if not found:
        yield _ok("/", "no setuid or setgid files")


# -- history through the Dockerfile checks (2.4, 2.7, 2.11, 2.9) ----------------------------------
DockerfileCheck = Callable[[Dockerfile, Parameters], Iterator[Outcome]]


def _history_failures(
    facts: ImageFacts, p: Parameters, *checks: DockerfileCheck, quote: bool = True
) -> Iterator[Outcome]:
    """Failures of Dockerfile checks on each history step; ``quote=False`` never repeats the command
    (the secrets check: the step holds the credential)."""
    for step in facts.history:
        if step.dockerfile is None:
            continue
        for check in checks:
            for o in check(step.dockerfile, p):
                if not o.passed:
                    shown = f": {_shorten(step.created_by)}" if quote else ""
                    yield _bad(f"history[{step.index}]", f"{o.message}{shown}")


def _shorten(text: str, limit: int = 120) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


def img_history_known_outcomes(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    found = False
    for o in _history_failures(facts, p, d.df_no_remote_add, d.df_no_pipe_to_shell):
        found = True
        yield o
    if not found:
        yield _ok("history", f"{len(facts.history)} history steps: no remote ADD, no download piped into a shell")


def img_history_verified_packages(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    found = False
    for o in _history_failures(facts, p, d.df_verified_packages):
        found = True
        yield o
    if not found:
        yield _ok("history", "no package signature bypass in the history")


# -- 2.5 / 2.13 ---------------------------------------------------------------------------------
def img_non_privileged_ports(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    low = [x for x in facts.exposed_ports if (n := d.port_number(x)) is not None and n < 1024]
    for x in low:
        yield _bad("config.ExposedPorts", f"exposes privileged port {x}")
    if not low:
        yield _ok("config.ExposedPorts", f"exposed ports: {', '.join(facts.exposed_ports) or 'none'}")


def img_single_service_port(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    if len(facts.exposed_ports) > 1:
        yield _bad("config.ExposedPorts", f"exposes {len(facts.exposed_ports)} ports: {', '.join(facts.exposed_ports)}")
    else:
        yield _ok("config.ExposedPorts", "at most one exposed port")


# -- 2.6 ------------------------------------------------------------------------------------------
def img_healthcheck(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    hc = facts.healthcheck
    test = hc.get("Test") if hc else None
    if not isinstance(test, list) or not test:
        config = facts.image.manifest.get("config")
        oci = isinstance(config, dict) and config.get("mediaType") == OCI_CONFIG
        why = " (the OCI image config format has no health check field)" if oci else ""
        yield _bad("config.Healthcheck", f"no health check defined{why}")
    elif test[0] == "NONE":
        yield _bad("config.Healthcheck", "health check disabled (NONE)")
    else:
        yield _ok("config.Healthcheck", f"health check: {_shorten(' '.join(str(x) for x in test[1:]))}")


# -- 2.7 ------------------------------------------------------------------------------------------
def img_tls_transport(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    found = False
    if facts.image.insecure_transport:
        found = True
        yield _bad("transport", f"pulled from {facts.image.registry} over plain HTTP (--insecure-registry)")
    for o in _history_failures(facts, p, d.df_tls_verification):
        found = True
        yield o
    if not found:
        how = "over TLS 1.2+" if facts.image.registry else "from a local archive"
        yield _ok("transport", f"read {how}; no TLS downgrade in the history")


# -- 2.8 ------------------------------------------------------------------------------------------
_CACHES = (
    ("apt package lists", "/var/lib/apt/lists/", ("lock", "/partial", "/auxfiles")),
    ("apt package archives", "/var/cache/apt/", ("lock", "/partial")),
    ("apk cache", "/var/cache/apk/", ()),
    ("yum cache", "/var/cache/yum/", ()),
    ("dnf cache", "/var/cache/dnf/", ()),
    ("zypper cache", "/var/cache/zypp/", ()),
    ("pip cache", "/root/.cache/pip/", ()),
    ("npm cache", "/root/.npm/_cacache/", ()),
)


def img_package_cache(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    found = False
    sizes: dict[str, tuple[str, int, int]] = {}
    for path, e in facts.fs.files.items():
        if e.type != "file" or e.size == 0:
            continue
        for what, prefix, ignored in _CACHES:
            if path.startswith(prefix) and not path.endswith(ignored) and not any(x + "/" in path for x in ignored):
                _, n, total = sizes.get(what, (prefix, 0, 0))
                sizes[what] = (prefix, n + 1, total + e.size)
    for what, (prefix, n, total) in sizes.items():
        found = True
        yield _bad(prefix, f"{what} left in the image: {n} files, {total / 1e6:.1f} MB under {prefix}")
    layers = len(facts.image.layers)
    if layers > p.max_image_layers:
        found = True
        yield _bad("layers", f"{layers} layers (policy max_image_layers: {p.max_image_layers})")
    if not found:
        yield _ok("layers", f"{layers} layers, no package manager cache left")


# -- 2.9 / 2.18 -----------------------------------------------------------------------------------
_PRIVATE_KEY = re.compile(rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----")
_FILE_SECRETS = (
    (re.compile(rb"aws_secret_access_key\s*=\s*\S"), "an AWS secret access key"),
    (re.compile(rb'"auths"\s*:\s*\{[^}]*"(auth|identitytoken|password)"\s*:\s*"[^"]'), "registry credentials"),
    (re.compile(rb"://[^/\s:@]+:[^/\s@]+@"), "a URL with a password"),
    (re.compile(rb"(_authToken|_auth|_password)\s*=\s*\S"), "an npm registry token"),
    (re.compile(rb"(?m)^\s*password\s*[=:]?\s*\S"), "a password"),
    (re.compile(rb'"(private_key|refresh_token|client_secret)"\s*:\s*"[^"]'), "a cloud service credential"),
    (re.compile(rb"(?m)^\s*(token|client-key-data):\s*\S"), "a Kubernetes credential"),
)


def _file_secret(path: str, data: bytes) -> str | None:
    m = _PRIVATE_KEY.search(data)
    if m:
        kind = m.group(1).decode(errors="replace").strip()
        return f"a private key ({kind})" if kind else "a private key"
    if path.endswith(".vault-token") and data.strip():
        return "a Vault token"
    for pattern, what in _FILE_SECRETS:
        if pattern.search(data):
            return what
    if "/.env" in path:
        for line in data.decode("utf-8", "replace").splitlines():
            key, sep, value = line.partition("=")
            if sep and credential_reason(key.strip().removeprefix("export "), value.strip().strip("\"'")):
                return f"a credential ({key.strip()})"
    return None


def _env_secret(entry: str) -> str | None:
    key, _, value = entry.partition("=")
    reason = credential_reason(key, value)
    if reason:
        return reason
    if high_entropy(value) and not value.startswith(("sha256:", "sha512:")):
        return "a high-entropy literal"
    return None


def img_no_secrets(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    found = False
    for entry in facts.env:
        reason = _env_secret(entry)
        if reason:
            found = True
            yield _bad("config.Env", f"Env {entry.partition('=')[0]}: {reason}; value not shown")
    for key, value in sorted(facts.labels.items()):
        reason = credential_reason(key, value)
        if reason:
            found = True
            yield _bad("config.Labels", f"Label {key}: {reason}; value not shown")
    for path, data in sorted(facts.fs.contents.items()):
        if not credential_candidate(path):
            continue
        what = _file_secret(path, data)
        if what:
            found = True
            e = facts.fs.files[path]
            yield _bad(path, f"{what} in {path} ({facts.layer_label(e.layer)})")
    for e, old in facts.fs.removed:
        if old is None or not credential_candidate(e.path):
            continue
        what = _file_secret(e.path, old)
        if what:
            found = True
            yield _bad(
                e.path,
                f"{what} in {e.path}: deleted from the final filesystem by a later layer, but still in the "
                f"image history ({facts.layer_label(e.layer)}) and extractable from it",
            )
    for o in _history_failures(facts, p, d.df_no_secrets, quote=False):
        found = True
        yield o
    if not found:
        yield _ok("config", "no credential in Env, labels, history or credential files")


# -- 2.12 -----------------------------------------------------------------------------------------
_ATTACK_SURFACE_BINARIES = {
    "sudo", "su-exec", "gosu", "doas", "gcc", "g++", "cc", "c++", "clang", "make", "cmake", "ld", "as",
    "gdb", "strace", "ltrace", "tcpdump", "nmap", "nc", "netcat", "ncat", "socat", "telnet", "ftp",
    "curl", "wget", "git", "vim", "vi", "nano",
}  # fmt: skip


def img_essential_tools(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    found = sorted({e.path.rsplit("/", 1)[-1] for e in _executables(facts, _ATTACK_SURFACE_BINARIES)})
    if found:
        yield _bad("/usr/bin", f"tools that widen the attack surface: {', '.join(found)}")
    else:
        yield _ok("/usr/bin", "no sudo, compilers, debuggers, download or network tools found")


# -- 2.14 -----------------------------------------------------------------------------------------
BASE_DIGEST = "org.opencontainers.image.base.digest"
BASE_NAME = "org.opencontainers.image.base.name"


def img_approved_base(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    approved = set(p.approved_base_digests)
    img = facts.image
    declared = img.manifest.get("annotations", {}).get(BASE_DIGEST) if isinstance(img.manifest, dict) else None
    declared = declared if isinstance(declared, str) else None
    if img.manifest_digest in approved:
        yield _ok("manifest", f"the image itself ({img.manifest_digest}) is an approved base")
    elif declared in approved:
        yield _ok(f"annotations.{BASE_DIGEST}", f"declared base {declared} is approved")
    elif img.layers and (img.layers[0].digest in approved or (img.diff_ids and img.diff_ids[0] in approved)):
        yield _ok("layers[0]", f"bottom layer {img.layers[0].digest} belongs to an approved base")
    else:
        seen = ", ".join(
            x
            for x in (
                f"image {img.manifest_digest}" if img.manifest_digest else "",
                f"declared base {declared}" if declared else "no base annotation",
                f"bottom layer {img.layers[0].digest}" if img.layers else "",
            )
            if x
        )
        none = " (the policy lists no approved_base_digests)" if not approved else ""
        yield _bad("manifest", f"not built from an approved base{none}: {seen}")


# -- 2.17 -----------------------------------------------------------------------------------------
def img_trusted_registry(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    img = facts.image
    found = False
    if img.registry:
        ref = parse_image(f"{img.registry}/{img.repository or ''}")
        if not registry_allowed(ref, p.allowed_registries):
            found = True
            yield _bad("reference", f"pulled from {ref.name}, not an allowed registry")
    base = img.manifest.get("annotations", {}).get(BASE_NAME) if isinstance(img.manifest, dict) else None
    if isinstance(base, str) and base:
        ref = parse_image(base)
        if not registry_allowed(ref, p.allowed_registries):
            found = True
            yield _bad(f"annotations.{BASE_NAME}", f"declared base {base} is not from an allowed registry")
    if not found:
        where = f"pulled from {img.registry}" if img.registry else "read from a local archive"
        yield _ok("reference", f"{where}; base {base or 'not declared'}")


# -- 2.10 -----------------------------------------------------------------------------------------
def img_signed(facts: ImageFacts, p: Parameters) -> Iterator[Outcome]:
    """The image and its declared base carry a valid cosign signature by a trusted key (evidence gathered by
    factorygate.supply.evidence before the checks run)."""
    sig = facts.signatures
    if not p.trusted_signing_keys:
        yield _bad(
            "signature",
            "no trusted keys configured (policy parameters.trusted_signing_keys): signatures cannot be verified",
        )
        return
    if sig is None:
        yield _bad("signature", "signatures were not looked up for this image")
        return
    if sig.problem:
        yield _bad("signature", f"signatures could not be verified: {sig.problem}")
        return
    for ev in sig.evidence:
        where = f" {ev.reference}" if ev.reference else ""
        if ev.verified:
            yield _ok(f"signature.{ev.subject}", f"{ev.subject}{where}: {ev.detail}")
        else:
            yield _bad(f"signature.{ev.subject}", f"{ev.subject}{where} is not signed by a trusted key: {ev.detail}")
