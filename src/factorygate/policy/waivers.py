"""Waivers: match a failed finding to an approved, unexpired exception."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import NamedTuple

from factorygate.model import Resource, Waiver
from factorygate.policy.schema import WaiverRule


class _Entry(NamedTuple):  # NamedTuples, not dataclasses: cheaper to create at import
    rule: WaiverRule
    waiver: Waiver
    scope: Resource | None  # inline waivers only cover the resource that carries them


class WaiverBook(NamedTuple):
    """A set of waivers from one source (the policy file, or one resource's annotations)."""

    entries: tuple[_Entry, ...]

    @classmethod
    def empty(cls) -> WaiverBook:
        return cls(())

    @classmethod
    def from_rules(
        cls, rules: Iterable[WaiverRule], source: str, as_of: dt.date, scope: Resource | None = None
    ) -> WaiverBook:
        entries = []
        for r in rules:
            w = Waiver(
                justification=r.justification,
                approver=r.approver,
                expires=r.expires.isoformat(),
                source=source,
                expired=r.expires < as_of,
            )
            entries.append(_Entry(r, w, scope))
        return cls(tuple(entries))

    def match(self, check_id: str, resource: Resource, container: str | None) -> Waiver | None:
        """The first unexpired matching waiver, else the first expired one, else None."""
        expired = None
        for e in self.entries:
            rule = e.rule
            if rule.check != check_id:
                continue
            sel = rule.resource
            if e.scope is None and not (
                fnmatchcase(resource.kind, sel.kind)
                and fnmatchcase(resource.namespace or "", sel.namespace)
                and fnmatchcase(resource.name, sel.name)
            ):
                continue
            if not fnmatchcase(container or "", sel.container):
                continue
            if not e.waiver.expired:
                return e.waiver
            expired = expired or e.waiver
        return expired
