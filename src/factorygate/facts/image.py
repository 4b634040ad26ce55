"""Facts about a built image: its config, its history as Dockerfile instructions, its filesystem.

The layer walker keeps the bytes of only the files :func:`wants_content` asks for: package
databases (for the SBOM), account and OS files, and files whose name says they may hold a
credential. Everything a check needs is computed here once per image.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from factorygate.inputs.dockerfile import Dockerfile, parse_dockerfile
from factorygate.oci.inventory import Package, wants_content
from factorygate.oci.model import FileEntry, ImageFilesystem, ResolvedImage

MAX_SECRET_FILE_BYTES = 1024 * 1024
PASSWD = "/etc/passwd"  # noqa: S105 - a path

# Files whose name says they may hold a credential; their content decides (see checks/image.py).
_CREDENTIAL_NAME = re.compile(
    r"(^|/)(id_rsa|id_dsa|id_ecdsa|id_ed25519|ssh_host_[a-z0-9]+_key|[^/]*\.pem|[^/]*\.key|\.env(\.[\w-]+)?|"
    r"\.npmrc|\.pypirc|\.netrc|\.git-credentials|\.vault-token|\.docker/config\.json|\.aws/credentials|"
    r"\.kube/config|application_default_credentials\.json|credentials\.json|\.s3cfg|\.boto)$"
)
# Cheap first test (called for every file of the image): the last path component's last characters.
_CREDENTIAL_TAILS = (
    "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "_key", ".pem", ".key", ".npmrc", ".pypirc", ".netrc",
    "-credentials", ".vault-token", "config.json", "credentials", "/config", "credentials.json", ".s3cfg",
    ".boto",
)  # fmt: skip


def credential_candidate(path: str) -> bool:
    """Whether a file's path says it may hold a credential (its content is then read)."""
    if path.endswith(_CREDENTIAL_TAILS) or "/.env" in path:
        return _CREDENTIAL_NAME.search(path) is not None
    return False


def want(path: str, size: int) -> bool:
    """The capture predicate handed to the layer walker: what the checks and the SBOM read."""
    if path == PASSWD:
        return size <= MAX_SECRET_FILE_BYTES
    if wants_content(path, size):  # package databases and os-release
        return True
    return size <= MAX_SECRET_FILE_BYTES and credential_candidate(path)


@dataclass(frozen=True, slots=True)
class HistoryStep:
    """One entry of the image config's history."""

    index: int
    created_by: str
    empty_layer: bool
    layer: int | None  # index of the layer it made (None for metadata-only steps)
    dockerfile: Dockerfile | None  # the step as a one-instruction Dockerfile, when it reads as one


@dataclass(frozen=True, slots=True)
class SignatureEvidence:
    """What a signature lookup (CICDG-2.10) found for the image or its declared base."""

    subject: str  # "image" | "base"
    reference: str  # repository@digest that was looked up
    verified: bool
    detail: str  # what was verified (signer key, where) or why not


@dataclass(frozen=True, slots=True)
class SignatureFacts:
    """Signature evidence gathered by factorygate.supply.evidence (checks never do I/O)."""

    trusted_keys: int  # how many trusted keys the policy gave
    evidence: tuple[SignatureEvidence, ...] = ()
    problem: str | None = None  # why the lookup could not be done (unreadable key, unreachable registry)


@dataclass(slots=True)
class ImageFacts:
    """Everything the image checks read."""

    name: str
    image: ResolvedImage
    fs: ImageFilesystem
    user: str
    exposed_ports: list[str]
    healthcheck: dict[str, Any] | None
    env: list[str]
    labels: dict[str, str]
    history: list[HistoryStep]
    packages: list[Package] = field(default_factory=list)
    inventory_problems: list[str] = field(default_factory=list)
    signatures: SignatureFacts | None = None  # None: not gathered (no policy keys were looked at)

    def text(self, path: str) -> str | None:
        data = self.fs.contents.get(path)
        return data.decode("utf-8", "replace") if data is not None else None

    def files_under(self, *prefixes: str) -> Iterator[FileEntry]:
        for path, entry in self.fs.files.items():
            if path.startswith(prefixes):
                yield entry

    def layer_label(self, layer: int) -> str:
        digest = self.image.layers[layer].digest if layer < len(self.image.layers) else "?"
        return f"layer {layer + 1}/{len(self.image.layers)} {digest}"


# -- history ----------------------------------------------------------------------------------
_NOP = re.compile(r"^/bin/(?:ba)?sh -c #\(nop\)\s*")
_SHELL = re.compile(r"^/bin/(?:ba)?sh -c ")
_BUILD_ARGS = re.compile(r"^\|\d+ ((?:[A-Za-z_][A-Za-z0-9_]*=\S* )*)")  # classic builder: "|2 A=1 B=2 /bin/sh -c"
_KEYWORDS = frozenset(
    [
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    ]
)
_HEREDOC_END = "FACTORYGATE_HISTORY_EOF"


def history_instruction(created_by: str) -> str | None:
    """A history ``created_by`` as the Dockerfile instruction it records, or None when it is not one
    (``umoci repack``, free text). Build arguments the classic builder prefixes (``|1 K=V``) become ARGs
    on lines before the instruction, so the secret checks see them."""
    text = created_by.strip()
    if text.endswith("# buildkit"):
        text = text[: -len("# buildkit")].rstrip()
    args: list[str] = []
    m = _BUILD_ARGS.match(text)
    if m:
        args = [f"ARG {a}" for a in m.group(1).split()]
        text = text[m.end() :]
    nop, shell = _NOP.match(text), _SHELL.match(text)
    if nop:
        text = text[nop.end() :]
    elif shell:
        text = "RUN " + text[shell.end() :]
    keyword = text.split(None, 1)[0].upper() if text.split() else ""
    if keyword not in _KEYWORDS:
        return "\n".join(args) or None
    if keyword == "RUN":  # BuildKit records the shell form as "RUN /bin/sh -c SCRIPT"
        body = text[3:].lstrip()
        shell = _SHELL.match(body)
        body = body[shell.end() :] if shell else body
        # a multi-line script: a heredoc keeps its lines as lines
        text = f"RUN <<{_HEREDOC_END}\n{body}\n{_HEREDOC_END}" if "\n" in body else f"RUN {body}"
    return "\n".join([*args, text])


def history_steps(config: dict[str, Any], layer_count: int) -> list[HistoryStep]:
    raw = config.get("history")
    steps: list[HistoryStep] = []
    layer = 0
    for i, h in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(h, dict):
            continue
        created_by = h.get("created_by")
        created_by = created_by if isinstance(created_by, str) else ""
        empty = h.get("empty_layer") is True
        layer_index = None if empty or layer >= layer_count else layer
        if not empty:
            layer += 1
        instruction = history_instruction(created_by) if created_by else None
        df = None
        if instruction:
            parsed = parse_dockerfile(f"FROM scratch\n{instruction}\n".encode(), f"history[{i}]")
            df = parsed if isinstance(parsed, Dockerfile) else None
        steps.append(HistoryStep(i, created_by, empty, layer_index, df))
    return steps


# -- config ------------------------------------------------------------------------------------
def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def image_facts(image: ResolvedImage, fs: ImageFilesystem, packages: list[Package], problems: list[str]) -> ImageFacts:
    cfg = image.config.get("config")
    cfg = cfg if isinstance(cfg, dict) else {}
    ports = cfg.get("ExposedPorts")
    env = cfg.get("Env")
    labels = cfg.get("Labels")
    health = cfg.get("Healthcheck")
    return ImageFacts(
        name=image.name,
        image=image,
        fs=fs,
        user=_str(cfg.get("User")).strip(),
        exposed_ports=sorted(str(p) for p in ports) if isinstance(ports, dict) else [],
        healthcheck=health if isinstance(health, dict) else None,
        env=[e for e in env if isinstance(e, str)] if isinstance(env, list) else [],
        labels={k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}
        if isinstance(labels, dict)
        else {},
        history=history_steps(image.config, len(image.layers)),
        packages=packages,
        inventory_problems=problems,
    )


def passwd_uid(passwd: str | None, name: str) -> int | None:
    """The uid /etc/passwd gives ``name``, or None."""
    for line in (passwd or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[0] == name and parts[2].isdigit():
            return int(parts[2])
    return None
