"""Checks of Dockerfiles and Containerfiles (DISA guide section 2, before the image is built).

Pure functions from a parsed Dockerfile to outcomes; each outcome carries the exact line. The final
stage (with the stages it is built FROM) decides what the shipped image looks like: USER, EXPOSE,
HEALTHCHECK, installed tools. Every stage is checked for secrets, unsafe fetches and TLS downgrades.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator

from factorygate.facts.dockerfile import (
    RunScript,
    is_stage_reference,
    lineage,
    run_script,
    runs,
    shipped_instructions,
)
from factorygate.facts.images import parse_image, pinning_problem, registry_allowed
from factorygate.facts.secrets import credential_reason, high_entropy
from factorygate.facts.shell import Command
from factorygate.inputs.dockerfile import Dockerfile, Instruction, Stage, expand
from factorygate.model import Outcome, new_record
from factorygate.policy.schema import Parameters

_VERSION_SPEC = re.compile(r"[=<>:]")
_RUNS_SSHD = re.compile(r"(^|[/\s\"'])(sshd|dropbear)(\s|\"|'|$)")
_CURL_K = re.compile(r"-[a-zA-Z]*k[a-zA-Z]*")
_GIT_NO_VERIFY = re.compile(r"sslverify\s*=?\s*false|GIT_SSL_NO_VERIFY", re.IGNORECASE)
_SEGMENTS = re.compile(r"&&|\|\||;|\n")
_APT_LISTS_RM = re.compile(r"rm\s+(-[a-zA-Z]+\s+)*\S*/var/lib/apt/lists")
_RPM_CLEAN = re.compile(r"\b(yum|dnf|microdnf|tdnf)\s+clean\s+all|rm\s+(-[a-zA-Z]+\s+)*\S*/var/cache/(yum|dnf)")
_APT_UNAUTH = re.compile(r"AllowUnauthenticated\s*=?\s*(1|true)", re.IGNORECASE)
_URL_ARG = re.compile(r"(https?|git\+\w+)://")
_GPGCHECK_OFF = re.compile(r"gpgcheck\s*=\s*0")
_INSTALL_VERBS = {
    "apt-get": ("install",), "apt": ("install",), "apk": ("add",), "yum": ("install",),
    "dnf": ("install",), "microdnf": ("install",), "zypper": ("install", "in"), "tdnf": ("install",),
}  # fmt: skip


def _at(ins: Instruction, passed: bool, message: str) -> Outcome:
    return new_record(Outcome, (passed, message, ins.keyword, None, ins.line))


def _all_instructions(df: Dockerfile) -> Iterator[Instruction]:
    for s in df.stages:
        yield from s.instructions


def _installs(cmd: Command) -> tuple[str, ...]:
    """Package names a package-manager command installs (every check asks: computed once)."""
    return _package_installs(cmd) if cmd.program in _INSTALL_VERBS else ()


@functools.lru_cache(maxsize=8192)
def _package_installs(cmd: Command) -> tuple[str, ...]:
    wanted = _INSTALL_VERBS[cmd.program]
    argv = [a for a in cmd.argv[1:] if not a.startswith("-")]
    if not argv or argv[0] not in wanted:
        return ()
    return tuple(_VERSION_SPEC.split(a, maxsplit=1)[0] for a in argv[1:])


# -- 2.1 ------------------------------------------------------------------------------------------
_SSH_PACKAGES = {"openssh-server", "openssh", "dropbear", "dropbear-bin", "openssh-server-pam"}


def df_no_ssh_server(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    found = False
    for ins in shipped_instructions(df):
        if ins.keyword == "RUN":
            for c in run_script_commands(ins):
                pkgs = [x for x in _installs(c) if x in _SSH_PACKAGES]
                if pkgs:
                    found = True
                    yield _at(ins, False, f"installs an SSH server ({', '.join(pkgs)})")
                elif c.program in ("sshd", "dropbear") or (
                    c.program in ("service", "rc-service") and c.has("ssh", "sshd")
                ):
                    found = True
                    yield _at(ins, False, "starts an SSH daemon")
        elif ins.keyword == "EXPOSE" and any(port_number(x) == 22 for x in _exposed(df, ins)):
            found = True
            yield _at(ins, False, "exposes port 22 (SSH)")
        elif ins.keyword in ("CMD", "ENTRYPOINT") and _RUNS_SSHD.search(ins.args):
            found = True
            yield _at(ins, False, f"{ins.keyword} runs an SSH daemon")
    if not found:
        yield _at(df.final.instructions[0], True, "no SSH server installed, started or exposed")


def run_script_commands(ins: Instruction) -> tuple[Command, ...]:
    return run_script(ins).commands


# -- 2.2 ------------------------------------------------------------------------------------------
def _stage_env(df: Dockerfile, stage: Stage) -> dict[str, str | None]:
    env: dict[str, str | None] = dict(df.global_args)
    for ins in stage.instructions:
        if ins.keyword in ("ARG", "ENV"):
            for key, value in _assignments(ins):
                if ins.keyword == "ENV" or key not in env or value is not None:
                    env[key] = value if value is not None else env.get(key)
    return env


_ASSIGN = re.compile(r"""([A-Za-z_][A-Za-z0-9_.-]*)(?:=("(?:[^"\\]|\\.)*"|'[^']*'|\S*))?""")


def _assignments(ins: Instruction) -> list[tuple[str, str | None]]:
    """KEY=value pairs of ENV/ARG/LABEL (and the legacy ``ENV KEY value`` form)."""
    text = ins.args.strip()
    if ins.keyword == "ENV" and "=" not in text.split(None, 1)[0]:
        key, _, value = text.partition(" ")
        return [(key, value.strip())] if key else []
    out: list[tuple[str, str | None]] = []
    for m in _ASSIGN.finditer(text):
        value = m.group(2)
        if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out.append((m.group(1), value))
    return out


def _user(df: Dockerfile) -> tuple[Instruction | None, str | None]:
    """The last USER of the shipped stages and its expanded value."""
    last: Instruction | None = None
    for ins in shipped_instructions(df):
        if ins.keyword == "USER":
            last = ins
    if last is None:
        return None, None
    stage = next(s for s in df.stages if last in s.instructions)
    return last, expand(last.args.strip(), _stage_env(df, stage))


def df_non_root_user(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    ins, value = _user(df)
    if ins is None or value is None:
        yield _at(df.final.instructions[0], False, "no USER in the final stage: the image runs as root")
        return
    user = value.split(":", 1)[0].strip()
    if user in ("", "root", "0"):
        yield _at(ins, False, f"USER {value} is root")
    elif user.startswith("$"):
        yield _at(ins, False, f"USER {value} cannot be resolved at build time; set a literal non-root user")
    else:
        yield _at(ins, True, f"runs as USER {value}")


# -- 2.3 ------------------------------------------------------------------------------------------
_SYMBOLIC_SET = re.compile(r"^[ugoa]*[+=][rwxXt]*s[rwxXst]*$")
_OCTAL_SET = re.compile(r"^0?[2-7][0-7]{3}$")
_SYMBOLIC_STRIP = re.compile(r"^[ugoa]*-[rwxXt]*s[rwxXt]*$")


def _modes(argv: Iterable[str]) -> Iterator[str]:
    for arg in argv:
        yield from arg.split(",")


def df_no_setuid(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    bad = False
    strips: Instruction | None = None
    for run in runs(shipped_instructions(df)):
        for c in run.commands:
            if c.program not in ("chmod", "find"):
                continue
            args = (
                c.argv[1:] if c.program == "chmod" else c.argv[c.argv.index("chmod") + 1 :] if "chmod" in c.argv else []
            )
            for mode in _modes(args):
                if _SYMBOLIC_SET.match(mode) or _OCTAL_SET.match(mode):
                    bad = True
                    yield _at(run.instruction, False, f"sets the setuid/setgid bit (chmod {mode})")
                elif _SYMBOLIC_STRIP.match(mode):
                    strips = run.instruction
    if not bad:
        if strips is not None:
            yield _at(strips, True, "strips setuid/setgid bits from the image")
        else:
            yield _at(df.final.instructions[0], True, "sets no setuid/setgid bit")


# -- 2.4 ------------------------------------------------------------------------------------------
_URL = re.compile(r"^(https?|ftp)://|^git@|\.git(#.*)?$", re.IGNORECASE)


def df_no_remote_add(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    found = False
    for ins in _all_instructions(df):
        if ins.keyword != "ADD":
            continue
        sources = list(ins.json_args[:-1]) if ins.json_args else ins.args.split()[:-1]
        remote = [s for s in sources if _URL.search(s)]
        if remote:
            found = True
            yield _at(ins, False, f"ADD fetches remote content ({remote[0]}); download in a verified step or COPY it")
    if not found:
        yield _at(df.final.instructions[0], True, "no ADD of remote content")


_SHELL_PROGRAMS = {"sh", "bash", "ash", "dash", "zsh", "ksh", "python", "python3", "perl", "ruby", "node"}
_FETCHERS = {"curl", "wget", "fetch"}


def df_no_pipe_to_shell(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    found = False
    for run in runs(list(_all_instructions(df))):
        for pipe in run.pipelines:
            progs = [c.program for c in pipe.commands]
            for i, prog in enumerate(progs[:-1]):
                if prog in _FETCHERS and progs[i + 1] in _SHELL_PROGRAMS:
                    found = True
                    yield _at(run.instruction, False, f"pipes a download into a shell ({prog} | {progs[i + 1]})")
    if not found:
        yield _at(df.final.instructions[0], True, "no download piped into a shell")


_NETWORK = _FETCHERS | {"git", "svn", "hg", "scp", "rsync", "go", "ftp"}


def df_offline_build(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    found = False
    for run in runs(list(_all_instructions(df))):
        fetches = sorted(
            {
                c.program
                for c in run.commands
                if c.program in _FETCHERS
                or (c.program == "git" and c.has("clone", "fetch", "pull"))
                or (c.program == "go" and c.has("get", "install"))
            }
        )
        if fetches:
            found = True
            yield _at(run.instruction, False, f"fetches from the network during the build ({', '.join(fetches)})")
    if not found:
        yield _at(df.final.instructions[0], True, "no network fetch outside package managers")


# -- 2.5 / 2.13 -----------------------------------------------------------------------------------
def _exposed(df: Dockerfile, ins: Instruction) -> list[str]:
    stage = next(s for s in df.stages if ins in s.instructions)
    return expand(ins.args, _stage_env(df, stage)).split()


def port_number(spec: str) -> int | None:
    """The port of an EXPOSE/ExposedPorts entry (``80``, ``80/tcp``, the first of ``8000-8010``)."""
    number = spec.split("/", 1)[0].split("-", 1)[0]
    return int(number) if number.isdigit() else None


def _exposes(df: Dockerfile) -> list[tuple[Instruction, str]]:
    return [(ins, x) for ins in shipped_instructions(df) if ins.keyword == "EXPOSE" for x in _exposed(df, ins)]


def df_non_privileged_ports(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    exposed = _exposes(df)
    low = [(ins, x) for ins, x in exposed if (n := port_number(x)) is not None and n < 1024]
    for ins, x in low:
        yield _at(ins, False, f"EXPOSE {x}: a privileged port below 1024; listen on 1024+ and map the port")
    if not low:
        last = exposed[-1][0] if exposed else df.final.instructions[0]
        yield _at(last, True, "exposes no port below 1024")


def df_single_service_port(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    exposed = _exposes(df)
    ports = sorted({x for _, x in exposed})
    if len(ports) > 1:
        yield _at(exposed[-1][0], False, f"exposes {len(ports)} ports ({', '.join(ports)}): review that each is used")
    else:
        yield _at(exposed[0][0] if exposed else df.final.instructions[0], True, "exposes at most one port")


# -- 2.6 ------------------------------------------------------------------------------------------
def df_healthcheck(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    last = None
    for ins in shipped_instructions(df):
        if ins.keyword == "HEALTHCHECK":
            last = ins
    if last is None:
        yield _at(df.final.instructions[0], False, "no HEALTHCHECK in the final stage (waive it for short-lived jobs)")
    elif last.args.strip().upper() == "NONE":
        yield _at(last, False, "HEALTHCHECK NONE disables the health check")
    else:
        yield _at(last, True, "HEALTHCHECK defined")


# -- 2.7 ------------------------------------------------------------------------------------------
_HTTP_SOURCE = re.compile(r"\bhttp://(?!localhost\b|127\.0\.0\.1\b)[^\s\"']+")
_SOURCE_FILES = re.compile(
    r"sources\.list|/repositories\b|\.repo\b|pip\.conf|\.npmrc|\.yarnrc|registry|index-url|baseurl"
)
_INSTALLERS = {"pip", "pip3", "npm", "yarn", "pnpm", "apk", "gem", "go", "helm", "apt-get", "apt", "yum", "dnf"}


def _is_pip(c: Command) -> bool:
    return c.program in ("pip", "pip3") or (c.program.startswith("python") and "pip" in c.argv)


def _tls_downgrade(c: Command) -> str | None:
    a = c.argv[1:]
    joined = " ".join(c.argv)
    if c.program == "curl" and any(x == "--insecure" or _CURL_K.fullmatch(x) for x in a):
        return "curl -k/--insecure"
    if c.program == "wget" and "--no-check-certificate" in a:
        return "wget --no-check-certificate"
    if _is_pip(c) and any(x == "--trusted-host" or x.startswith("--trusted-host=") for x in a):
        return "pip --trusted-host"
    if c.program in ("npm", "yarn", "pnpm") and "strict-ssl" in joined and "false" in joined:
        return f"{c.program} strict-ssl false"
    if "ssl" in joined.lower() and _GIT_NO_VERIFY.search(joined):  # the substring test skips the regex
        return "git http.sslVerify=false"
    url = _HTTP_SOURCE.search(joined) if "http://" in joined else None
    if url and (c.program in _INSTALLERS or _SOURCE_FILES.search(joined)):
        return f"a plain-HTTP package source or registry ({url.group()})"
    return None


def df_tls_verification(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    found = False
    for run in runs(list(_all_instructions(df))):
        whats = [w for w in (_tls_downgrade(c) for c in run.commands) if w]
        # a plain-HTTP source written into a package manager's configuration (echo ... > sources.list):
        # redirections are not part of argv, so look at each command of the script as written
        for segment in _SEGMENTS.split(run.script) if "http://" in run.script else ():
            url = _HTTP_SOURCE.search(segment)
            if url and _SOURCE_FILES.search(segment) and not whats:
                whats.append(f"a plain-HTTP package source ({url.group()})")
        for what in whats[:1]:
            found = True
            yield _at(run.instruction, False, f"disables TLS verification or uses plain HTTP: {what}")
    if not found:
        yield _at(df.final.instructions[0], True, "no TLS downgrade")


# -- 2.8 ------------------------------------------------------------------------------------------
def _cache_problem(run: RunScript) -> str | None:
    cmds = run.commands
    text = run.script
    cached = "type=cache" in " ".join(run.instruction.flags)  # a cache mount keeps caches out of the layer
    apt_installs = any(_installs(c) for c in cmds if c.program in ("apt-get", "apt"))
    if apt_installs and not cached and not _APT_LISTS_RM.search(text):
        return "apt-get install without removing /var/lib/apt/lists in the same RUN"
    if any(c.program in ("apt-get", "apt") and c.has("update") for c in cmds) and not any(_installs(c) for c in cmds):
        return "apt-get update alone in a layer: its lists go stale in the cache; update and install in one RUN"
    for c in cmds:
        if c.program == "apk" and _installs(c) and not c.has("--no-cache") and "/var/cache/apk" not in text:
            return "apk add without --no-cache"
        if c.program in ("yum", "dnf", "microdnf", "tdnf") and _installs(c) and not _RPM_CLEAN.search(text):
            return f"{c.program} install without '{c.program} clean all'"
        if (
            (c.program in ("pip", "pip3") or (c.program.startswith("python") and "pip" in c.argv))
            and c.has("install")
            and not c.has("--no-cache-dir")
            and "PIP_NO_CACHE_DIR" not in text
        ):
            return "pip install without --no-cache-dir"
    return None


def df_package_cache(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    found = False
    for run in runs(shipped_instructions(df)):
        problem = _cache_problem(run)
        if problem:
            found = True
            yield _at(run.instruction, False, problem)
    if not found:
        yield _at(df.final.instructions[0], True, "package manager caches are cleaned where packages are installed")


# -- 2.9 / 2.18 -----------------------------------------------------------------------------------
_SENSITIVE_FILE = re.compile(
    r"(^|/)(\.env(\.[\w-]+)?|id_rsa|id_dsa|id_ecdsa|id_ed25519|[^/]*\.pem|[^/]*\.key|[^/]*\.p12|[^/]*\.pfx|"
    r"\.npmrc|\.pypirc|\.netrc|\.git-credentials|\.docker/config\.json|credentials(\.json)?|\.aws/credentials)$"
)


def _secret_in_assignments(ins: Instruction) -> str | None:
    for key, value in _assignments(ins):
        if value:
            reason = credential_reason(key, value)
            if reason:
                return f"{ins.keyword} {key}: {reason}"
            if high_entropy(value) and not value.startswith(("sha256:", "sha512:")):
                return f"{ins.keyword} {key}: a high-entropy literal"
    return None


def _secret_in_run(run: RunScript) -> str | None:
    reason = credential_reason("", run.script)
    if reason:
        return f"RUN: {reason}"
    for c in run.commands:
        for word in c.argv[1:]:
            key, sep, value = word.partition("=")
            if sep and value and not value.startswith("$"):
                reason = credential_reason(key.lstrip("-"), value)
                if reason:
                    return f"RUN {c.program}: {key.lstrip('-')}: {reason}"
        if c.program in ("curl", "wget"):
            for i, word in enumerate(c.argv[1:-1], start=1):
                nxt = c.argv[i + 1]
                if word in ("-u", "--user") and ":" in nxt and not nxt.split(":", 1)[1].startswith("$"):
                    return f"RUN {c.program}: a literal user:password"
                if word in ("-H", "--header") and re.match(
                    r"(?i)(authorization|private-token|x-api-key)\s*:\s*[^$\s]", nxt
                ):
                    return f"RUN {c.program}: a literal authorization header"
    return None


def df_no_secrets(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    found = False
    for ins in _all_instructions(df):
        problem = None
        if ins.keyword in ("ENV", "ARG", "LABEL"):
            problem = _secret_in_assignments(ins)
        elif ins.keyword == "RUN":
            problem = _secret_in_run(run_script(ins))
        elif ins.keyword in ("COPY", "ADD"):
            sources = list(ins.json_args[:-1]) if ins.json_args else ins.args.split()[:-1]
            hit = next((s for s in sources if _SENSITIVE_FILE.search(s.rstrip("/"))), None)
            if hit:
                problem = f"{ins.keyword} of a credential file ({hit})"
        if problem:
            found = True
            yield _at(ins, False, problem + "; value not shown")
    if not found:
        yield _at(df.final.instructions[0], True, "no literal credential or credential file")


# -- 2.10 / 2.14 / 2.17 ---------------------------------------------------------------------------
def _base_stages(df: Dockerfile) -> list[Stage]:
    return [s for s in df.stages if not is_stage_reference(df, s)]


def df_base_image_registry(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    for s in _base_stages(df):
        ref = parse_image(s.base)
        if registry_allowed(ref, p.allowed_registries):
            yield _at(s.instructions[0], True, f"base image {s.base} comes from an allowed registry")
        else:
            yield _at(
                s.instructions[0], False, f"base image {s.base} comes from {ref.registry}, not an allowed registry"
            )


def df_base_image_digest(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    for s in _base_stages(df):
        ins = s.instructions[0]
        problem = pinning_problem(parse_image(s.base))
        if "$" in s.base:
            yield _at(ins, False, f"base image {s.base_raw} depends on an ARG without a default digest")
        elif problem is None:
            yield _at(ins, True, f"base image {s.base} is pinned by digest")
        else:
            yield _at(ins, False, f"base image {s.base} {problem}")


# -- 2.11 -----------------------------------------------------------------------------------------
def _unverified(c: Command, text: str) -> str | None:
    a = c.argv[1:]
    if c.program in ("apt-get", "apt") and any(x in a for x in ("--allow-unauthenticated", "--force-yes")):
        return f"{c.program} --allow-unauthenticated/--force-yes"
    if "llowunauthenticated" in " ".join(a).lower() and any(_APT_UNAUTH.search(x) for x in a):
        return "APT::Get::AllowUnauthenticated"
    if c.program in ("yum", "dnf", "microdnf", "tdnf", "zypper") and any(
        x in ("--nogpgcheck", "--no-gpg-checks") or x.startswith("--setopt=gpgcheck=0") for x in a
    ):
        return f"{c.program} without GPG checks"
    if c.program == "rpm" and any(x in ("--nosignature", "--nodigest") for x in a):
        return "rpm --nosignature"
    if c.program == "apk" and "--allow-untrusted" in a:
        return "apk --allow-untrusted"
    if c.program in ("pip", "pip3") and "install" in a:
        urls = [x for x in a if _URL_ARG.match(x)]
        if urls and "--require-hashes" not in a and "#sha256=" not in " ".join(urls):
            return f"pip install of a URL without a hash ({urls[0]})"
    if c.program in ("echo", "printf", "sed", "tee") and _GPGCHECK_OFF.search(" ".join(a)):
        return "gpgcheck=0 in a repository definition"
    del text
    return None


def df_verified_packages(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    found = False
    for run in runs(list(_all_instructions(df))):
        for c in run.commands:
            what = _unverified(c, run.script)
            if what:
                found = True
                yield _at(run.instruction, False, f"installs packages without verifying them: {what}")
    if not found:
        yield _at(df.final.instructions[0], True, "package signature verification left on")


# -- 2.12 -----------------------------------------------------------------------------------------
_ATTACK_SURFACE = {
    "sudo", "su-exec", "gosu", "gcc", "g++", "clang", "make", "cmake", "build-essential", "build-base",
    "gcc-c++", "automake", "autoconf", "libtool", "gdb", "strace", "tcpdump", "nmap", "netcat", "netcat-openbsd",
    "ncat", "socat", "telnet", "curl", "wget", "git", "vim", "nano",
}  # fmt: skip


def df_essential_tools(df: Dockerfile, p: Parameters) -> Iterator[Outcome]:
    found = False
    final = lineage(df)
    for ins in (i for s in final for i in s.instructions):
        if ins.keyword != "RUN":
            continue
        extra = sorted({pkg for c in run_script_commands(ins) for pkg in _installs(c) if pkg in _ATTACK_SURFACE})
        if extra:
            found = True
            yield _at(
                ins, False, f"installs tools that widen the attack surface into the final image: {', '.join(extra)}"
            )
    if not found:
        yield _at(df.final.instructions[0], True, "no compilers, sudo or download tools installed in the final image")
