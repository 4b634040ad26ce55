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

import fnmatch
import functools
import json
import re
from typing import NamedTuple

MAX_DOCKERFILE_BYTES = 8 * 1024 * 1024
MAX_INSTRUCTION_CHARS = 1024 * 1024  # one logical instruction (continuations and heredocs included)
MAX_INSTRUCTIONS = 50_000  # real Dockerfiles have hundreds at most; parsing one costs microseconds
MAX_COMMENTS = 100_000  # full-line comments


class Heredoc(NamedTuple):
    """A heredoc body attached to an instruction."""

    delimiter: str
    body: str  # text between the introducer line and the delimiter line (leading tabs removed for <<-)
    line: int  # line of the first body line
    quoted: bool  # <<"EOF" or <<'EOF': no variable expansion
    strip_tabs: bool  # <<-EOF


class Instruction(NamedTuple):
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


# Records are NamedTuples, not dataclasses: a dataclass costs ~4 M instructions to create at import
# (and the dataclasses module, with inspect, ~70 M) on a path where start-up is a large share of a scan.
class Stage(NamedTuple):
    """A build stage: FROM and what follows until the next FROM."""

    position: int  # 0 for the first stage
    base: str  # FROM image with global ARGs substituted
    base_raw: str  # as written
    name: str | None  # "AS name", lower-cased
    line: int
    instructions: tuple[Instruction, ...]  # FROM first


class Dockerfile(NamedTuple):
    """A parsed Dockerfile."""

    path: str
    escape: str
    directives: dict[str, str]
    global_args: dict[str, str | None]  # ARGs before the first FROM, with their defaults
    stages: tuple[Stage, ...]
    comments: tuple[tuple[int, str], ...] = ()

    @property
    def final(self) -> Stage:
        return self.stages[-1]


class DockerfileError(NamedTuple):
    """A Dockerfile that cannot be parsed, with the line when known."""

    path: str
    message: str
    line: int | None = None


# -- variable substitution ---------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_EXPANSION_DEPTH = 16  # ${A:-${B:-...}} nesting; deeper "${" is kept as text
_MAX_PATTERN_VALUE = 256  # ${VAR#pattern} and friends are applied to values up to this length
_TWO_CHAR_OPS = (":-", ":+", ":?", ":=", "##", "%%")


def _trim_pattern(value: str, op: str, pattern: str) -> str:
    """``${VAR#p}``, ``${VAR##p}``, ``${VAR%p}``, ``${VAR%%p}`` with a shell glob ``p``."""
    if not pattern or len(value) > _MAX_PATTERN_VALUE or len(pattern) > _MAX_PATTERN_VALUE:
        return value
    rx = re.compile(fnmatch.translate(pattern))
    n = len(value)
    if op in ("#", "##"):
        cuts = range(n + 1) if op == "#" else range(n, -1, -1)
        for i in cuts:
            if rx.match(value[:i]):
                return value[i:]
    else:
        cuts = range(n, -1, -1) if op == "%" else range(n + 1)
        for i in cuts:
            if rx.match(value[i:]):
                return value[:i]
    return value


@functools.cache
def _expander_regexes(escape: str, quotes: bool) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """Runs of characters with no meaning to :class:`_Expander`: at the top, inside ``${...}``,
    inside double quotes."""
    specials = "$" + escape + ("'\"" if quotes else "")
    return (
        re.compile(f"[^{re.escape(specials)}]++"),
        re.compile(f"[^{re.escape(specials + '}')}]++"),
        re.compile(f'[^{re.escape("$" + escape)}"]++'),
    )


class _Expander:
    """Variable substitution over a text, in one forward pass (linear in the text).

    With ``quotes`` (how BuildKit processes a FROM image or an ARG default) quotes are removed,
    nothing is substituted inside single quotes, and the escape character escapes the next one.
    Without (:func:`expand`) only variables are substituted: the rest of the text, quotes and
    escapes included, is kept, and an escaped ``$`` is not substituted.
    """

    def __init__(self, env: dict[str, str | None], escape: str, quotes: bool, substitute: bool = True) -> None:
        self.env = env
        self.substitute = substitute
        self.esc = escape
        self.quotes = quotes
        self.plain, self.plain_braced, self.plain_dq = _expander_regexes(escape, quotes)
        self.budget = MAX_INSTRUCTION_CHARS  # characters of values substituted, at most
        self.overflow = False

    def run(self, text: str) -> str:
        return self._until(text, 0, "", 0)[0]

    def _value(self, value: str | None) -> str:
        """A variable's value, within the budget (an ``A=$A$A`` chain doubles at every step)."""
        if not value:
            return ""
        self.budget -= len(value)
        if self.budget < 0:
            self.overflow = True
            return ""
        return value

    def _until(self, text: str, pos: int, stop: str, depth: int) -> tuple[str, int]:
        """Process ``text[pos:]`` up to an unquoted ``stop`` character: (result, index of ``stop``
        or len(text))."""
        out: list[str] = []
        plain = self.plain_braced if stop else self.plain
        n = len(text)
        while pos < n:
            m = plain.match(text, pos)
            if m:
                out.append(m.group())
                pos = m.end()
                continue
            c = text[pos]
            if c == stop:
                break
            if c == "$":
                s, pos = self._dollar(text, pos, depth)
                out.append(s)
            elif c == self.esc:
                out.append(text[pos + 1 : pos + 2] if self.quotes else text[pos : pos + 2])
                pos += 2
            elif c == "'":
                end = text.find("'", pos + 1)
                end = n if end < 0 else end
                out.append(text[pos + 1 : end])
                pos = end + 1
            else:  # '"'
                s, pos = self._double(text, pos + 1, depth)
                out.append(s)
        return "".join(out), min(pos, n)

    def _double(self, text: str, pos: int, depth: int) -> tuple[str, int]:
        """Inside double quotes (``pos`` after the opening one): (result, index after the closing one)."""
        out: list[str] = []
        n = len(text)
        while pos < n:
            m = self.plain_dq.match(text, pos)
            if m:
                out.append(m.group())
                pos = m.end()
                continue
            c = text[pos]
            if c == '"':
                return "".join(out), pos + 1
            if c == "$":
                s, pos = self._dollar(text, pos, depth)
                out.append(s)
            else:  # the escape character: only escapes '"', '$' and itself
                nxt = text[pos + 1 : pos + 2]
                out.append(nxt if nxt in ('"', "$", self.esc) else text[pos : pos + 2])
                pos += 2
        return "".join(out), n

    def _dollar(self, text: str, pos: int, depth: int) -> tuple[str, int]:
        """``text[pos]`` is "$": (substitution, index after it)."""
        if not self.substitute:
            return "$", pos + 1
        if text.startswith("{", pos + 1) and depth < _MAX_EXPANSION_DEPTH:
            m = _NAME.match(text, pos + 2)
            if not m:
                return "$", pos + 1
            value = self.env.get(m.group())
            k = m.end()
            if text.startswith("}", k):
                return self._value(value), k + 1
            op = text[k : k + 2] if text.startswith(_TWO_CHAR_OPS, k) else text[k : k + 1]
            word, end = self._until(text, k + len(op), "}", depth + 1)
            if end >= len(text):  # no closing brace: the rest is kept as written
                return text[pos:], len(text)
            if op in (":-", ":="):
                result = self._value(value) or word
            elif op in ("-", "="):
                result = word if value is None else self._value(value)
            elif op == ":+":
                result = word if value else ""
            elif op == "+":
                result = "" if value is None else word
            elif op in ("#", "##", "%", "%%"):
                result = _trim_pattern(self._value(value), op, word)
            else:  # ":?", "?" (never an error here) and modifiers not supported: the value
                result = self._value(value)
            return result, end + 1
        m = _NAME.match(text, pos + 1)
        if m:
            return self._value(self.env.get(m.group())), m.end()
        return "$", pos + 1


@functools.cache
def _unquoter(escape: str) -> _Expander:
    return _Expander({}, escape, quotes=True, substitute=False)


def expand(text: str, env: dict[str, str | None]) -> str:
    """Substitute ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:+alt}`` (and ``-``/``+``).

    A variable whose value is None is unset. ``${VAR#pattern}``/``##``/``%``/``%%`` trim a shell
    glob; ``:?`` gives the value (never an error); other modifiers give the value unchanged.
    ``\\$`` is not substituted; quotes are kept and do not prevent substitution. Linear in the text,
    and bounded: values past MAX_INSTRUCTION_CHARS characters in all are not substituted.
    """
    if "$" not in text:
        return text
    return _Expander(env, "\\", quotes=False).run(text)


# -- parsing -----------------------------------------------------------------------------------

_CONTROL_BYTES = bytes(range(9)) + b"\x0b\x0c" + bytes(range(14, 32)) + b"\x7f"
_NOT_CONTROL = bytes(range(256)).translate(None, _CONTROL_BYTES)
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_BLANKS = re.compile(r"\s*+")
_KEYWORD = re.compile(r"([^\t\r ]+)[\t\r ]*")
_HEREDOC = re.compile(r"(\d*)<<(-?)([^<]*)")
_HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})
_JSON_KEYWORDS = frozenset({"RUN", "CMD", "ENTRYPOINT", "SHELL", "COPY", "ADD", "VOLUME"})


@functools.cache
def _word_regex(escape: str) -> re.Pattern[str]:
    """A word of an instruction: whitespace outside quotes ends it; quotes and escapes are kept."""
    e = re.escape(escape)
    return re.compile(
        rf"""(?:[^\s'"{e}]++|'[^']*+(?:'|\Z)|"(?:[^"{e}]++|{e}.)*+(?:"|\Z)|{e}.?)++""",
        re.DOTALL,
    )


def _unquote(word: str, escape: str) -> str:
    """A word with its quotes and escapes removed, no substitution."""
    if not any(c in word for c in ("'", '"', escape)):
        return word
    return _unquoter(escape).run(word)


def _match_end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where a match of ``pattern`` at ``pos`` ends (``pos`` when it does not match)."""
    m = pattern.match(text, pos)
    return m.end() if m else pos


def _split_flags(rest: str, escape: str) -> tuple[tuple[str, ...], str]:
    """Leading ``--name[=value]`` words of the arguments (unquoted, as BuildKit reads them) and the
    arguments after them; a bare ``--`` ends the flags."""
    if not rest.startswith("--"):
        return (), rest
    flags: list[str] = []
    words = _word_regex(escape)
    pos, n = 0, len(rest)
    while pos < n and rest.startswith("--", pos):
        m = words.match(rest, pos)
        if m is None:  # unreachable: "--" is a word
            break
        word = m.group()
        pos = _match_end(_BLANKS, rest, m.end())
        if word == "--":
            break
        flags.append(_unquote(word, escape))
    return tuple(flags), rest[pos:]


def _json_array(args: str) -> tuple[str, ...] | None:
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


class _PendingHeredoc(NamedTuple):
    delimiter: str
    quoted: bool
    strip_tabs: bool


def _heredocs_in(line: str) -> list[_PendingHeredoc]:
    """The heredocs a logical line introduces (``<<EOF``, ``<<-EOF``, ``<<"EOF"``, ``2<<EOF``), as
    BuildKit finds them: words of the line (backslash escapes) matching ``\\d*<<-?word``."""
    found: list[_PendingHeredoc] = []
    for m in _word_regex("\\").finditer(line):
        h = _HEREDOC.fullmatch(m.group())
        if h is None or not h.group(3):
            continue
        raw = h.group(3)
        name = _unquote(raw, "\\")
        if name:
            found.append(_PendingHeredoc(name, "'" in raw or '"' in raw, h.group(2) == "-"))
    return found


def _can_have_heredoc(keyword: str, args: str, json_args: tuple[str, ...] | None) -> bool:
    if keyword == "ONBUILD":
        inner = _KEYWORD.match(args)
        if inner is None:
            return False
        keyword = inner.group(1).upper()
        json_args = _json_array(args[inner.end() :]) if keyword in _JSON_KEYWORDS else None
    return keyword in _HEREDOC_KEYWORDS and json_args is None


def _bad_bytes(data: bytes) -> tuple[int, str] | None:
    """Offset and reason of the first byte that makes ``data`` not a UTF-8 text file."""
    found: list[tuple[int, str]] = []
    if data.translate(None, _NOT_CONTROL):
        m = _CONTROL.search(data)
        if m:
            found.append((m.start(), f"control character 0x{data[m.start()]:02x}"))
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            found.append((e.start, f"invalid UTF-8 (byte 0x{data[e.start]:02x})"))
    return min(found) if found else None


def _shown(text: str, limit: int = 40) -> str:
    """``text`` for an error message: cut when long."""
    return text if len(text) <= limit else text[:limit] + "..."


class _Malformed(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class _StageBuilder(NamedTuple):  # instructions grow; the other fields are set once
    position: int
    base: str
    base_raw: str
    name: str | None
    line: int
    instructions: list[Instruction]

    def build(self) -> Stage:
        return Stage(self.position, self.base, self.base_raw, self.name, self.line, tuple(self.instructions))


@functools.cache
def _block_regex(escape: str) -> re.Pattern[str]:
    """One logical line from the start of its first line: lines ending with the escape character
    (blanks after it allowed), each followed by any empty or comment lines (dropped inside a
    continuation), then the line that ends it. Linear: every line is tried at most twice."""
    e = re.escape(escape)
    return re.compile(rf"(?:[^\n]*{e}[ \t]*+(?:\n|\Z)(?:[^\S\n]*+(?:#[^\n]*+)?\n)*+)*+[^\n]*+")


@functools.cache
def _escape_at_end_regex(escape: str) -> re.Pattern[str]:
    """The escape character ending a line (blanks after it allowed)."""
    return re.compile(rf"{re.escape(escape)}[ \t]*+(?=\n|\Z)")


@functools.cache
def _glued_regex(escape: str) -> re.Pattern[str]:
    """What the fast join cannot do: a line break right after a word character (Docker glues the
    words: no space is added)."""
    e = re.escape(escape)
    return re.compile(rf"(?<=\S){e}[ \t]*+\n")


# the regexes that depend on the escape character are built on first use (`escape=` is rare)
_COMMENT_LINE = re.compile(r"\n[^\S\n]*+#([^\n]*+)")  # after the first line of a block
_BLANK_LINES = re.compile(r"(?:[^\S\n]*+\n)*+[^\S\n]*+")
_DIRECTIVE = re.compile(r"[^\S\n]*+#[ \t]*+([a-zA-Z][a-zA-Z0-9]*+)[ \t]*+=([^\n]*+)")
_LINE_END_CR = re.compile(r"\r++(?=\n|\Z)")


def _find_delimiter_line(text: str, start: int, limit: int, name: str, tabs: bool) -> int:
    """Where the line that is exactly ``name`` (after leading tabs with ``tabs``) starts, looking
    in ``text[start:limit]`` from the line starting at ``start``; -1 when there is none. C-speed
    searches: a candidate is an occurrence of ``name`` at the end of a line, one per line at most."""
    if start > limit:
        return -1
    if not tabs:
        if text.startswith(name + "\n", start, limit) or (limit - start == len(name) and text.startswith(name, start)):
            return start
        k = text.find("\n" + name + "\n", start, limit)
        if k < 0 and text.endswith("\n" + name, start, limit) and limit == len(text):
            k = limit - len(name) - 1
        return k + 1 if k >= 0 else -1
    j = start
    while True:
        k = text.find(name + "\n", j, limit)
        if k < 0:
            k = limit - len(name) if limit == len(text) and text.endswith(name, j, limit) else -1
            if k < 0:
                return -1
        line_start = text.rfind("\n", start, k) + 1 or start
        if not text[line_start:k].strip("\t"):
            return line_start
        if k + len(name) >= limit:
            return -1
        j = k + len(name) + 1


def _glued(raw: str, escape: str) -> bool:
    """Whether a line of ``raw`` ends with the escape character right after a word character (the
    fast join cannot tell): counted with str methods, the regex only when blanks follow an escape."""
    ends = raw.count(escape + "\n")
    if ends != raw.count(" " + escape + "\n") + raw.count("\t" + escape + "\n"):
        return True
    if escape + " " in raw or escape + "\t" in raw:
        return _glued_regex(escape).search(raw) is not None
    return False


class _Parser:
    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.escape = "\\"
        self.directives: dict[str, str] = {}
        self.comments: list[tuple[int, str]] = []
        self.global_args: dict[str, str | None] = {}
        self.stages: list[_StageBuilder] = []
        self.count = 0  # instructions

    def parse(self) -> Dockerfile:
        text = self.text
        n = len(text)
        pos, line = self._directives()
        esc = self.escape
        block, escape_at_end = _block_regex(esc).match, _escape_at_end_regex(esc)
        blank_lines = _BLANK_LINES.match
        while pos < n:
            m = blank_lines(text, pos)
            j = m.end() if m else pos
            if j >= n:
                break
            skipped = text.count("\n", pos, j)
            if skipped:
                line += skipped
                pos = text.rfind("\n", pos, j) + 1
            if text[j] == "#":
                end = text.find("\n", j)
                end = n if end < 0 else end
                self.comments.append((line, text[j + 1 : end].strip()))
                if len(self.comments) > MAX_COMMENTS:
                    raise _Malformed(f"more than {MAX_COMMENTS:,} comment lines", line)
                pos, line = end + 1, line + 1
                continue
            m = block(text, pos)
            end = m.end() if m else n
            if end - pos > MAX_INSTRUCTION_CHARS:
                raise self._too_long(line)
            raw = text[pos:end]
            breaks = raw.count("\n")
            if not breaks:
                logical = escape_at_end.sub("", raw).strip() if esc in raw else raw.strip()
            elif _glued(raw, esc):
                logical = self._join_slowly(raw, line)
            else:
                # The lines without their escape character, comment lines and blanks, joined with a space.
                joined = self._take_comments(raw, line) if "#" in raw else raw
                physical = escape_at_end.sub("", joined).split("\n")
                logical = " ".join(filter(None, map(str.strip, physical)))
            last = line + breaks - (1 if raw.endswith("\n") else 0)  # a "\n" ends a block only at EOF
            pos, line = self._instruction(logical, pos, end, line, last)
        if not self.stages:
            raise _Malformed("no FROM instruction", None)
        return Dockerfile(
            path=self.path,
            escape=self.escape,
            directives=self.directives,
            global_args=self.global_args,
            stages=tuple(s.build() for s in self.stages),
            comments=tuple(self.comments),
        )

    def _directives(self) -> tuple[int, int]:
        """Read the parser directives at the top: (offset, line) of the first line after them."""
        text = self.text
        pos, line = 0, 1
        while pos < len(text):
            m = _DIRECTIVE.match(text, pos)
            key = m.group(1).lower() if m else ""
            value = m.group(2).strip(" \t") if m else ""
            if m is None or key not in _DIRECTIVES or not value or (m.end() < len(text) and text[m.end()] != "\n"):
                break
            if key in self.directives:
                raise _Malformed(f"only one {key} parser directive can be used", line)
            if key == "escape":
                if value not in ("\\", "`"):
                    raise _Malformed(f"invalid escape token {_shown(value)!r} (only \\ and ` are allowed)", line)
                self.escape = value
            self.directives[key] = value
            pos, line = m.end() + 1, line + 1
        return pos, line

    @staticmethod
    def _too_long(line: int) -> _Malformed:
        return _Malformed(f"instruction longer than {MAX_INSTRUCTION_CHARS:,} characters", line)

    def _take_comments(self, raw: str, line: int) -> str:
        """Record the comment lines of a block (after its first line) and blank them."""
        at = 0
        found = False
        for m in _COMMENT_LINE.finditer(raw):
            line += raw.count("\n", at, m.start() + 1)
            at = m.start() + 1
            self.comments.append((line, m.group(1).strip()))
            found = True
        if len(self.comments) > MAX_COMMENTS:
            raise _Malformed(f"more than {MAX_COMMENTS:,} comment lines", line)
        return _COMMENT_LINE.sub("\n", raw) if found else raw

    def _join_slowly(self, raw: str, line: int) -> str:
        """Continuation lines joined one by one (comment lines recorded), for what the regex cannot."""
        esc = self.escape
        lines = raw.split("\n")
        parts: list[str] = []
        space = False
        for k, physical in enumerate(lines):
            ls = physical.lstrip()
            if not ls:  # an empty line inside a continuation is dropped
                continue
            if ls[0] == "#" and k:  # so is a comment line
                self.comments.append((line + k, ls[1:].strip()))
                if len(self.comments) > MAX_COMMENTS:
                    raise _Malformed(f"more than {MAX_COMMENTS:,} comment lines", line + k)
                continue
            body = ls.rstrip(" \t")
            if body.endswith(esc):
                body = body[:-1]
            core = body.rstrip()
            if core:
                # Joined with one space, or with nothing when the line break splits a word.
                if parts and (space or len(ls) != len(physical)):
                    parts.append(" ")
                parts.append(core)
                space = len(core) != len(body)
            else:
                space = True
        return "".join(parts)

    def _instruction(self, logical: str, pos: int, end: int, line: int, last: int) -> tuple[int, int]:
        """Make the instruction of ``logical`` (``text[pos:end]``, lines ``line`` to ``last``), with
        its heredocs: (offset, line) after it."""
        kw = _KEYWORD.match(logical)
        if kw is None:  # only escape characters: nothing to parse
            return end + 1, last + 1
        keyword = kw.group(1).upper()
        flags, args = _split_flags(logical[kw.end() :], self.escape)
        args = args.strip()
        json_args = _json_array(args) if keyword in _JSON_KEYWORDS else None
        heredocs: list[Heredoc] = []
        if "<<" in logical and _can_have_heredoc(keyword, args, json_args):
            for pending in _heredocs_in(logical):
                end, last, heredoc = self._heredoc(pending, end, last, line, pos)
                heredocs.append(heredoc)
        inst = Instruction(
            keyword=keyword,
            args=args,
            line=line,
            end_line=last,
            flags=flags,
            json_args=json_args,
            heredocs=tuple(heredocs),
            original=self.text[pos:end].removesuffix("\n"),
        )
        self._add(inst)
        return end + 1, last + 1

    def _heredoc(self, pending: _PendingHeredoc, end: int, last: int, line: int, pos: int) -> tuple[int, int, Heredoc]:
        """The heredoc whose body starts after ``text[end]`` (the end of line ``last``): (end of its
        delimiter line, its line, the heredoc)."""
        text, name = self.text, pending.delimiter
        start = end + 1  # the first line of the body
        window = pos + MAX_INSTRUCTION_CHARS + 1  # the instruction may not go past it
        found = _find_delimiter_line(text, start, min(window, len(text)), name, pending.strip_tabs)
        if found < 0:
            if window < len(text):
                raise self._too_long(line)
            raise _Malformed(f"unterminated heredoc <<{_shown(name)} (the instruction starts on line {line})", line)
        stop = text.find("\n", found)
        stop = len(text) if stop < 0 else stop
        if stop - pos > MAX_INSTRUCTION_CHARS:
            raise self._too_long(line)
        body = text[start:found]
        if pending.strip_tabs and "\t" in body:
            body = "\n".join(b.lstrip("\t") for b in body.split("\n"))
        heredoc = Heredoc(name, body, last + 1, pending.quoted, pending.strip_tabs)
        return stop, last + 1 + body.count("\n"), heredoc

    def _add(self, inst: Instruction) -> None:
        self.count += 1
        if self.count > MAX_INSTRUCTIONS:
            raise _Malformed(f"more than {MAX_INSTRUCTIONS:,} instructions", inst.line)
        if inst.keyword == "FROM":
            self._from(inst)
        elif self.stages:
            self.stages[-1].instructions.append(inst)
        elif inst.keyword == "ARG":
            self._global_arg(inst)
        else:
            message = f"instruction before FROM: {_shown(inst.keyword)} (only ARG may come before the first FROM)"
            raise _Malformed(message, inst.line)

    def _global_arg(self, inst: Instruction) -> None:
        env = self.global_args
        for m in _word_regex(self.escape).finditer(inst.args):
            name, eq, value = m.group().partition("=")
            if not name:
                continue
            if eq:
                expander = _Expander(env, self.escape, quotes=True)
                env[name] = expander.run(value)
                if expander.overflow:
                    raise _Malformed(
                        f"ARG {_shown(name)} longer than {MAX_INSTRUCTION_CHARS:,} characters once substituted",
                        inst.line,
                    )
            else:
                env.setdefault(name, None)

    def _from(self, inst: Instruction) -> None:
        words = inst.args.split()
        if not words:
            raise _Malformed("FROM without an image", inst.line)
        base_raw = words[0]
        expander = _Expander(self.global_args, self.escape, quotes=True)
        name = None
        if len(words) >= 3 and words[1].lower() == "as":
            name = expander.run(words[2]).lower()
        plain = not any(c in base_raw for c in ("$", "'", '"', self.escape))
        base = base_raw if plain else expander.run(base_raw)
        if expander.overflow:
            raise _Malformed(f"FROM image longer than {MAX_INSTRUCTION_CHARS:,} characters once substituted", inst.line)
        stage = _StageBuilder(len(self.stages), base, base_raw, name, inst.line, [inst])
        self.stages.append(stage)


def _parse(data: bytes, path: str) -> Dockerfile | DockerfileError:
    if len(data) > MAX_DOCKERFILE_BYTES:
        return DockerfileError(path, f"file of {len(data):,} bytes is over the {MAX_DOCKERFILE_BYTES:,}-byte limit")
    bad = _bad_bytes(data)
    if bad is not None:
        at, reason = bad
        return DockerfileError(path, f"not a text file: {reason}", data.count(b"\n", 0, at) + 1)
    text = data.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:  # line ends: "\r\n" (any "\r" before a line break goes, as BuildKit's scanner does)
        text = _LINE_END_CR.sub("", text)
    try:
        return _Parser(text, path).parse()
    except _Malformed as e:
        return DockerfileError(path, e.message, e.line)


def parse_dockerfile(data: bytes, path: str) -> Dockerfile | DockerfileError:
    """Parse a Dockerfile; never raises."""
    try:
        return _parse(data, path)
    except RecursionError:
        return DockerfileError(path, "Dockerfile nested too deeply to parse")
    except MemoryError:
        return DockerfileError(path, "Dockerfile too large to parse in memory")
    except Exception as e:  # noqa: BLE001 - a bug must not stop the scan of the other inputs
        return DockerfileError(path, f"cannot parse: {type(e).__name__}: {e}"[:300])
