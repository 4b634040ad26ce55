"""Container image references, normalised the way the container runtime reads them."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable
from typing import NamedTuple

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$|^sha512:[0-9a-f]{128}$")
DOCKER_HUB = "docker.io"


class ImageRef(NamedTuple):
    """A parsed image reference: registry host, repository path, tag and digest."""

    raw: str
    registry: str
    repository: str
    tag: str | None
    digest: str | None
    digest_valid: bool

    @property
    def name(self) -> str:
        """registry/repository, e.g. docker.io/library/nginx."""
        return f"{self.registry}/{self.repository}"


@functools.lru_cache(maxsize=4096)  # a scan or a webhook sees the same few references again and again
def parse_image(ref: str) -> ImageRef:
    """Parse ``[registry/]repo[:tag][@digest]`` (Docker's normalisation rules)."""
    rest, _, digest = ref.strip().partition("@")
    # a tag is after the last ":" that follows the last "/" (a ":" before it is a registry port)
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = None
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, remainder
    else:
        registry, repository = DOCKER_HUB, rest
        if "/" not in repository:
            repository = f"library/{repository}"
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    return ImageRef(
        raw=ref,
        registry=registry.lower(),
        repository=repository,
        tag=tag or None,
        digest=digest or None,
        digest_valid=bool(digest) and bool(_DIGEST.match(digest)),
    )


def _under(name: str, entry: str) -> bool:
    """``name`` (registry/repository) lies under ``entry`` (host[/path] prefix, globs per segment).

    Matching is segment by segment so that a glob never spans a "/": ``*.dso.mil`` accepts
    registry1.dso.mil but not docker.io/evil/app.dso.mil.
    """
    host, _, rest = entry.strip().rstrip("/").partition("/")
    want = [host.lower(), *(rest.split("/") if rest else [])]
    have = name.split("/")
    return len(have) >= len(want) and all(fnmatch.fnmatchcase(h, w) for h, w in zip(have, want, strict=False))


def registry_allowed(ref: ImageRef, allowed: Iterable[str]) -> bool:
    """Whether the image comes from one of the allowed registries (host or host/path prefixes)."""
    return _name_allowed(ref.name, tuple(allowed))


@functools.lru_cache(maxsize=4096)
def _name_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    return any(_under(name, entry) for entry in allowed)


def pinning_problem(ref: ImageRef) -> str | None:
    """Why a reference does not pin its image by digest (CICDG-2.14), or None when it does."""
    if ref.digest_valid:
        return None
    if ref.digest:
        return "has a malformed digest"
    if ref.tag is None:
        return "has neither tag nor digest (resolves to latest)"
    if ref.tag == "latest":
        return "uses the latest tag and no digest"
    return "is pinned by tag only; tags can move, add @sha256:<digest>"
