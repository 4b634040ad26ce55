"""Registry image references: ``[host[:port]/]repo[:tag][@digest]``, normalised the way docker does.

* no host part, or a first component without ``.``/``:`` that is not ``localhost`` → ``docker.io``;
* single-component docker.io names get the ``library/`` prefix; ``index.docker.io`` is ``docker.io``;
* neither tag nor digest → tag ``latest``; with a digest the digest is what is pulled.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from factorygate.oci.digest import check_digest
from factorygate.oci.model import ImageError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"
MAX_NAME_LENGTH = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:.]+\])(?::[0-9]{{1,5}})?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


@dataclass(frozen=True, slots=True)
class Reference:
    registry: str  # "docker.io", "ghcr.io", "127.0.0.1:5000", "[::1]:5000"
    repository: str  # "library/alpine", "team/app"
    tag: str | None
    digest: str | None

    @property
    def host(self) -> str:
        """The registry's host name or address, without port or IPv6 brackets."""
        return split_host_port(self.registry)[0]

    @property
    def api_host(self) -> str:
        """Where the Distribution API answers (Docker Hub's API lives on another host)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def object(self) -> str:
        """The manifest to fetch: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def split_host_port(registry: str) -> tuple[str, int | None]:
    """``host:port`` / ``[v6]:port`` / ``host`` → (host, port); brackets removed from IPv6 addresses."""
    if registry.startswith("["):
        end = registry.find("]")
        host, rest = registry[1:end], registry[end + 1 :]
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if registry.count(":") > 1:  # a bare IPv6 address
        return registry, None
    host, sep, port = registry.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return registry, None


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or the name ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown(text: str) -> str:
    return repr(text if len(text) <= 200 else text[:200] + "...")


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        return first, rest
    return DOCKER_HUB, name


def parse_reference(text: str) -> Reference:
    """Parse and normalise one image reference; a one-line ImageError names what is wrong with it."""
    if not text or text != text.strip() or any(c.isspace() for c in text):
        raise ImageError(f"image reference {_shown(text)}: empty or contains whitespace")
    if "://" in text:
        raise ImageError(f"image reference {_shown(text)}: give host/repository[:tag], without a URL scheme")
    remainder, _, digest_text = text.partition("@")
    digest = check_digest(digest_text, f"image reference {_shown(text)}") if digest_text else None
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    tag = None
    if colon > slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ImageError(f"image reference {_shown(text)}: invalid tag {_shown(tag)}")
    if len(remainder) > MAX_NAME_LENGTH:
        raise ImageError(f"image reference {_shown(text)}: name is longer than {MAX_NAME_LENGTH} characters")
    registry, repository = _split_domain(remainder)
    if not _HOST.fullmatch(registry):
        raise ImageError(f"image reference {_shown(text)}: invalid registry host {_shown(registry)}")
    if registry.startswith("[") and not _is_ipv6(registry):
        raise ImageError(f"image reference {_shown(text)}: invalid IPv6 address in {_shown(registry)}")
    if registry.lower() == "index.docker.io":
        registry = DOCKER_HUB
    for component in repository.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            hint = " (repository names must be lowercase)" if component.lower() != component else ""
            raise ImageError(f"image reference {_shown(text)}: invalid repository component {_shown(component)}{hint}")
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest)


def _is_ipv6(registry: str) -> bool:
    try:
        ipaddress.IPv6Address(split_host_port(registry)[0])
    except ValueError:
        return False
    return True
