"""Dockerfile / Containerfile parser: bytes in, a :class:`Dockerfile` (or a :class:`DockerfileError`) out.

CONTRACT (the checks are written against these types; keep them stable):

- Parser directives (``# syntax=``, ``# escape=``, ``# check=``) are read only at the very top of
  the file, before any other comment, blank line or instruction, as BuildKit does. ``escape`` is
  ``\\`` (default) or a backtick.
- Line continuations: a line whose last non-blank character is the escape character continues on
  the next line. Comment lines (``#`` first non-blank) and empty lines inside a continuation are
  dropped. ``Instruction.line`` is the line of the keyword, ``end_line`` the last physical line.
- Heredocs (``RUN <<EOF``, ``<<-EOF``, ``<<"EOF"``, several per instruction, ``COPY <<EOF /dst``):
  bodies are collected into ``Instruction.heredocs`` and their lines belong to the instruction
  (``end_line`` is the delimiter line). An unterminated heredoc is a DockerfileError naming the line
  where it started.
- ``args`` is the argument text after the keyword and its flags, continuations joined with a space.
  ``flags`` are the leading ``--name[=value]`` options (``COPY --from=build``, ``RUN --mount=...``,
  ``FROM --platform=...``), kept verbatim. ``json_args`` is the exec form when the arguments are a
  JSON array of strings (``CMD ["a", "b"]``), else None.
- ARG substitution: ``expand(text, env)`` implements ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
  ``${VAR:+alt}`` (and the ``-``/``+`` forms without colon); unknown variables expand to "".
  ``Stage.base`` is the FROM image with the global ARGs (those before the first FROM, with their
  defaults) substituted; ``Stage.base_raw`` is the text as written.
- Stages: every FROM starts one; ``Stage.instructions`` includes the FROM itself first.
  ``Stage.name`` is the lower-cased ``AS name``. Instructions before the first FROM other than ARG
  (and comments) make the file invalid ("instruction before FROM") - except that an empty file
  or one without FROM is also an error ("no FROM instruction").
- ``Dockerfile.comments`` holds every full-line comment as (line, text without the leading ``#``
  and blanks), directives excluded: inline waivers (``# factorygate:waive <check-id> <why>``) are
  read from there.
- Never raises on any input: :func:`parse_dockerfile` returns a DockerfileError for bytes that are
  not UTF-8 text, contain NUL/control characters, exceed the limits, or are malformed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_DOCKERFILE_BYTES = 8 * 1024 * 1024
MAX_INSTRUCTION_CHARS = 1024 * 1024  # one logical instruction (continuations and heredocs included)


@dataclass(frozen=True, slots=True)
class Heredoc:
    """A heredoc body attached to an instruction."""

    delimiter: str
    body: str  # text between the introducer line and the delimiter line (leading tabs removed for <<-)
    line: int  # line of the first body line
    quoted: bool  # <<"EOF" or <<'EOF': no variable expansion
    strip_tabs: bool  # <<-EOF


@dataclass(frozen=True, slots=True)
class Instruction:
    """One instruction, continuations joined."""

    keyword: str  # upper case: FROM, RUN, COPY, ADD, USER, EXPOSE, ENV, ARG, LABEL, HEALTHCHECK, CMD, ...
    args: str  # arguments after the flags, continuations joined with one space
    line: int  # 1-based line of the keyword
    end_line: int
    flags: tuple[str, ...] = ()  # leading --flags, verbatim ("--from=build")
    json_args: tuple[str, ...] | None = None  # exec form, when the arguments are a JSON array of strings
    heredocs: tuple[Heredoc, ...] = ()
    original: str = ""  # the instruction as written (physical lines joined with "\n")

    def flag(self, name: str) -> str | None:
        """The value of ``--name=value`` (or "" for a bare ``--name``), else None."""
        for f in self.flags:
            key, sep, value = f[2:].partition("=")
            if key == name:
                return value if sep else ""
        return None


@dataclass(frozen=True, slots=True)
class Stage:
    """A build stage: FROM and what follows until the next FROM."""

    index: int
    base: str  # FROM image with global ARGs substituted
    base_raw: str  # as written
    name: str | None  # "AS name", lower-cased
    line: int
    instructions: tuple[Instruction, ...]  # FROM first


@dataclass(frozen=True, slots=True)
class Dockerfile:
    """A parsed Dockerfile."""

    path: str
    escape: str
    directives: dict[str, str]
    global_args: dict[str, str | None]  # ARGs before the first FROM, with their defaults
    stages: tuple[Stage, ...]
    comments: tuple[tuple[int, str], ...] = field(default=())

    @property
    def final(self) -> Stage:
        return self.stages[-1]


@dataclass(frozen=True, slots=True)
class DockerfileError:
    """A Dockerfile that cannot be parsed, with the line when known."""

    path: str
    message: str
    line: int | None = None


def expand(text: str, env: dict[str, str | None]) -> str:
    """Substitute ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:+alt}`` (and ``-``/``+``)."""
    raise NotImplementedError


def parse_dockerfile(data: bytes, path: str) -> Dockerfile | DockerfileError:
    """Parse a Dockerfile; never raises."""
    raise NotImplementedError
