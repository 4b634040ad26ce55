"""Shell commands of RUN instructions, split into what actually runs.

CONTRACT (the checks are written against these types; keep them stable):

- :func:`split_script` tokenises a POSIX shell script (quotes, escapes, ``#`` comments, newlines)
  and splits it into :class:`Pipeline` objects at ``&&``, ``||``, ``;``, ``&`` and newlines; a
  pipeline is the list of :class:`Command` joined by ``|``. ``curl x | sh`` is one pipeline of two
  commands.
- ``sh -c '...'``, ``bash -c "..."``, ``/bin/sh -c``, ``ash``/``dash``/``zsh -c`` (and ``-ec``,
  ``-exc`` style combined flags) are expanded: the string after ``-c`` is split again and its
  pipelines appended in place (a check sees the inner commands); nesting depth is bounded (8).
- Leading ``VAR=value`` assignments, ``sudo``, ``env``, ``exec``, ``nohup``, ``time``, ``command`` are
  skipped to find the program: ``Command.program`` is the basename of the program
  (``/usr/bin/apt-get`` -> ``apt-get``), ``Command.argv`` the full argv after those prefixes
  (argv[0] is the program as written). Subshells ``( ... )`` and ``{ ...; }`` groups are flattened.
  ``$(...)`` and backticks are kept as text inside their word.
- Redirections (``>``, ``>>``, ``2>&1``, ``<``) are removed from argv.
- Never raises: unbalanced quotes are closed at the end of the script.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Command:
    """One simple command."""

    program: str  # basename of the program, e.g. "apt-get"
    argv: tuple[str, ...]  # argv[0] is the program as written

    def has(self, *options: str) -> bool:
        """Whether any of ``options`` appears as an argument (exact word match)."""
        return any(o in self.argv[1:] for o in options)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """Commands joined by ``|``; ``commands[i]`` writes into ``commands[i + 1]``."""

    commands: tuple[Command, ...]


def split_script(script: str) -> list[Pipeline]:
    """The pipelines a shell would run for ``script`` (see the module contract)."""
    raise NotImplementedError


def commands(script: str) -> list[Command]:
    """Every command of every pipeline, in order."""
    return [c for p in split_script(script) for c in p.commands]
