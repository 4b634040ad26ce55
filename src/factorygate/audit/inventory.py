"""What an audit read from a cluster: raw API objects by kind, and what it could not read.

The conformance detection and the checks read only this; live and snapshot readers both produce it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def kind_key(api_version: str, kind: str) -> str:
    """``Kind`` for the core group, ``Kind.group`` otherwise (the key ``kubectl api-resources`` would show).

    >>> kind_key("v1", "Namespace"), kind_key("apps/v1", "DaemonSet")
    ('Namespace', 'DaemonSet.apps')
    """
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    return f"{kind}.{group}" if group else kind


@dataclass
class Inventory:
    cluster: str  # context name, or the snapshot path
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # kind_key -> raw API objects
    forbidden: dict[str, str] = field(default_factory=dict)  # kind_key -> reason: could not be read (coverage gap)
    missing: set[str] = field(default_factory=set)  # kind_key whose API is not served (404: CRD not installed)
    errors: list[str] = field(default_factory=list)  # inputs that could not be read at all (one line each)
    listed: set[str] = field(default_factory=set)  # kind_keys read completely (an empty list is evidence too)
    origins: dict[int, tuple[str, int]] = field(default_factory=dict)  # id(object) -> (file, line): snapshots
    # --namespace: the audit read only these namespaces, so what runs elsewhere (mesh, agents, controllers) is
    # unknown to it rather than absent
    namespaces: tuple[str, ...] = ()

    def of(self, key: str) -> list[dict[str, Any]]:
        return self.objects.get(key, [])

    def add(self, obj: dict[str, Any], file: str | None = None, line: int | None = None) -> str:
        """File an object under its kind (and, from a snapshot, where it was read); its kind_key."""
        key = kind_key(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        self.objects.setdefault(key, []).append(obj)
        if file is not None:
            self.origins[id(obj)] = (file, line or 1)
        return key

    def origin(self, obj: dict[str, Any]) -> tuple[str, int | None]:
        """Where a finding about ``obj`` points: the snapshot file and line, else the cluster."""
        return self.origins.get(id(obj), (self.cluster, None))

    def unreadable(self) -> dict[str, str]:
        """kind_key -> why it could not be read (forbidden), for coverage gaps."""
        return dict(self.forbidden)
