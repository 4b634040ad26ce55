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

import re
from typing import NamedTuple


class Command(NamedTuple):
    """One simple command."""

    program: str  # basename of the program, e.g. "apt-get"
    argv: tuple[str, ...]  # argv[0] is the program as written

    def has(self, *options: str) -> bool:
        """Whether any of ``options`` appears as an argument (exact word match)."""
        return any(o in self.argv[1:] for o in options)


class Pipeline(NamedTuple):
    """Commands joined by ``|``; ``commands[i]`` writes into ``commands[i + 1]``."""

    commands: tuple[Command, ...]


MAX_SHELL_DEPTH = 8  # nested ``sh -c`` scripts expanded
_MAX_LEX_DEPTH = 64  # $( "$( ... )" ) nesting followed when looking for the end of a word
_MAX_PENDING_HEREDOCS = 64  # heredocs opened on one line

# Token kinds
_WORD, _OP, _REDIR = 0, 1, 2


# A token: (kind, text, raw). ``text`` is a word's value (quotes and escapes removed) or the
# operator; ``raw`` is the word as written ("" for operators): a word whose raw text is its value
# can be a reserved word, and one whose raw text starts with NAME= is an assignment.
_Token = tuple[int, str, str]


_PLAIN = re.compile(r"[^ \t\r\n'\"\\$`;&|()<>]++")
_DQ_PLAIN = re.compile(r'[^"\\$`]++')
_PAREN_PLAIN = re.compile(r"[^()'\"\\`$]++")
_BRACE_PLAIN = re.compile(r"[^{}'\"\\`$]++")
_BACKTICK_BODY = re.compile(r"(?:[^`\\]++|\\.)*+", re.DOTALL)
_ANSI_C = re.compile(r"\$'((?:[^'\\]++|\\.)*+)'?", re.DOTALL)
_OPERATOR = re.compile(r"&>>|&>|&&|\|\||;;&|;;|;&|\|&|>>|>&|>\||<<<|<<-|<<|<&|<>|[;&|()<>]")
_REDIRS = frozenset({"&>>", "&>", ">>", ">&", ">|", "<<<", "<<-", "<<", "<&", "<>", ">", "<"})
_ASSIGN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*+(?:\[[^\]]*+\])?\+?=")
_FD = re.compile(r"[0-9]++|\{[A-Za-z_][A-Za-z0-9_]*+\}")
_NEWLINE: _Token = (_OP, "\n", "")


def _backtick_end(s: str, i: int) -> int:
    """``i`` is after an opening backtick: the index after the closing one (or len(s))."""
    m = _BACKTICK_BODY.match(s, i)
    j = m.end() if m else i
    return j + 1 if j < len(s) else len(s)


def _dquote(s: str, i: int, depth: int) -> tuple[str, int]:
    """``i`` is after an opening double quote: (value, index after the closing quote)."""
    out: list[str] = []
    n = len(s)
    while i < n:
        m = _DQ_PLAIN.match(s, i)
        if m:
            out.append(m.group())
            i = m.end()
            continue
        c = s[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            nxt = s[i + 1 : i + 2]
            if nxt != "\n":  # backslash-newline is a line continuation: both go
                out.append(nxt if nxt in '"\\$`' else "\\" + nxt)
            i += 2
        elif c == "$":
            text, i = _dollar(s, i, depth)
            out.append(text)
        else:  # a backtick: kept as written
            j = _backtick_end(s, i + 1)
            out.append(s[i:j])
            i = j
    return "".join(out), n


def _nested_end(s: str, i: int, depth: int, brace: bool = False) -> int:
    """``i`` is after ``$(`` (or ``${`` with ``brace``): the index after the matching ``)`` (``}``),
    quotes, escapes and nested substitutions skipped; len(s) when it is not closed."""
    open_, close, plain = ("{", "}", _BRACE_PLAIN) if brace else ("(", ")", _PAREN_PLAIN)
    level = 1
    n = len(s)
    while i < n:
        m = plain.match(s, i)
        if m:
            i = m.end()
            continue
        c = s[i]
        if c == open_:
            level += 1
            i += 1
        elif c == close:
            level -= 1
            i += 1
            if not level:
                return i
        elif c == "'":
            j = s.find("'", i + 1)
            i = n if j < 0 else j + 1
        elif c == '"':
            i = _dquote(s, i + 1, depth)[1]
        elif c == "\\":
            i += 2
        elif c == "`":
            i = _backtick_end(s, i + 1)
        else:  # "$"
            i = _dollar(s, i, depth)[1]
    return n


def _dollar(s: str, i: int, depth: int) -> tuple[str, int]:
    """``s[i]`` is "$": (the text kept in the word, index after it). ``$(...)``, ``$((...))`` and
    ``${...}`` are kept whole, as written."""
    if depth < _MAX_LEX_DEPTH:
        if s.startswith("$(", i):
            j = _nested_end(s, i + 2, depth + 1)
            return s[i:j], j
        if s.startswith("${", i):
            j = _nested_end(s, i + 2, depth + 1, brace=True)
            return s[i:j], j
    return "$", i + 1


def _word(s: str, i: int) -> tuple[str, int]:
    """The word starting at ``i``: (value with quotes and escapes removed, index after it)."""
    out: list[str] = []
    n = len(s)
    while i < n:
        m = _PLAIN.match(s, i)
        if m:
            out.append(m.group())
            i = m.end()
            continue
        c = s[i]
        if c in " \t\r\n;&|()<>":
            break
        if c == "'":
            j = s.find("'", i + 1)
            j = n if j < 0 else j
            out.append(s[i + 1 : j])
            i = j + 1
        elif c == '"':
            text, i = _dquote(s, i + 1, 0)
            out.append(text)
        elif c == "\\":
            nxt = s[i + 1 : i + 2]
            if nxt != "\n":
                out.append(nxt)
            i += 2
        elif c == "$":
            if s.startswith("$'", i):
                m = _ANSI_C.match(s, i)
                j = m.end() if m else n
                out.append(m.group(1) if m else s[i + 2 :])
                i = j
            else:
                text, i = _dollar(s, i, 0)
                out.append(text)
        else:  # a backtick: kept as written
            j = _backtick_end(s, i + 1)
            out.append(s[i:j])
            i = j
    return "".join(out), min(i, n)


def _heredoc_end(s: str, i: int, delimiter: str, tabs: bool) -> int:
    """A heredoc body starts at ``i`` (a line start): the index after its delimiter line, the line
    that is exactly ``delimiter`` (after leading tabs with ``<<-``); len(s) if none. C-speed
    searches: a candidate is ``delimiter`` at the end of a line, one per line at most."""
    n = len(s)
    j = i
    while j <= n:
        k = s.find(delimiter + "\n", j)
        if k < 0:
            if not s.endswith(delimiter) or n - len(delimiter) < j:
                return n
            k = n - len(delimiter)
        line_start = s.rfind("\n", i, k) + 1 or i
        before = s[line_start:k]
        if not before or (tabs and not before.strip("\t")):
            return min(k + len(delimiter) + 1, n)
        j = k + len(delimiter) + 1
    return n


# The common tokens, matched one after the other: blanks, then a word made only of plain
# characters, backslash escapes, single-quoted strings, double-quoted strings without escapes or
# substitutions, and $NAME / ${NAME} (it must end the word, or the word takes the slow path from
# its start; "#" does not start one: a comment does); a newline, a comment, a line continuation,
# a process substitution (slow path) or an operator. Where none matches, the slow path
# (:func:`_word`) reads one word.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*+"
_SIMPLE_DOLLAR = rf"\$(?:{_NAME}|\{{{_NAME}\}}|[0-9@*#?$!-]|(?![({{'\"]))"
_FAST = re.compile(
    rf"""[ \t\r]*+(?:
      (?P<word>(?!\#)
        (?:[^ \t\r\n'"\\$`;&|()<>]++|\\[^\n]|'[^']*+'|"(?:[^"\\$`]++|{_SIMPLE_DOLLAR})*+"|{_SIMPLE_DOLLAR})++
      )(?=[ \t\r\n;&|()]|\Z)
    | (?P<newline>\n)
    | (?P<comment>\#[^\n]*+)
    | (?P<continuation>\\\n)
    | (?P<substitution>[<>]\()
    | (?P<op>&>>|&>|&&|\|\||;;&|;;|;&|\|&|>>|>&|>\||<<<|<<-|<<|<&|<>|[;&|()<>])
    | (?P<slow>)
    )""",
    re.VERBOSE,
)
_FAST_QUOTES = re.compile(r"""'([^']*+)'|"([^"]*+)"|\\(.)""")
_BLANKS = re.compile(r"[ \t\r]*+")


def _unquote_fast(m: re.Match[str]) -> str:
    return m.group(m.lastindex or 0)


class _Lexer:
    """Words, operators and redirections of a script (comments, heredoc bodies and line
    continuations dropped; fd numbers of redirections too). One forward pass."""

    def __init__(self, s: str) -> None:
        self.s = s
        self.tokens: list[_Token] = []
        self.pending: list[tuple[str, bool]] = []  # heredocs opened on the current line
        self.delimiter_next = ""  # "<<" or "<<-" just seen: the next word is a heredoc delimiter

    def run(self) -> list[_Token]:
        s = self.s
        append = self.tokens.append
        fast = _FAST.match
        i, n = 0, len(s)
        while i < n:
            m = fast(s, i)
            kind = m.lastgroup if m else "slow"  # the regex always matches: the last alternative is empty
            if m is None or kind == "slow":
                i = self._slow_word(i)
                continue
            i = m.end()
            if kind == "word":
                raw = m.group("word")
                value = _FAST_QUOTES.sub(_unquote_fast, raw) if "'" in raw or '"' in raw or "\\" in raw else raw
                if self.delimiter_next:
                    self._delimiter(value)
                append((_WORD, value, raw))
            elif kind == "op":
                op = m.group("op")
                append((_REDIR if op in _REDIRS else _OP, op, ""))
                self.delimiter_next = op if op in ("<<", "<<-") else ""
            elif kind == "newline":
                append(_NEWLINE)
                if self.pending:
                    for delimiter, tabs in self.pending:
                        i = _heredoc_end(s, i, delimiter, tabs)
                    self.pending.clear()
            elif kind == "substitution":  # <(...) and >(...): a word, as written
                start = i - 2
                i = _nested_end(s, i, 1)
                append((_WORD, s[start:i], ""))
        return self.tokens

    def _delimiter(self, value: str) -> None:
        if value and len(self.pending) < _MAX_PENDING_HEREDOCS:
            self.pending.append((value, self.delimiter_next == "<<-"))
        self.delimiter_next = ""

    def _slow_word(self, i: int) -> int:
        """Read the word (after blanks) at ``i`` that the token regex cannot: the index after it."""
        s = self.s
        m = _BLANKS.match(s, i)
        start = m.end() if m else i
        if start >= len(s):
            return start
        value, end = _word(s, start)
        if end == start:  # unreachable (every character starts a token or a word), but never loop
            return end + 1
        raw = s[start:end]
        if s.startswith(("<", ">"), end) and _FD.fullmatch(raw):
            return end  # "2>&1": the fd number belongs to the redirection
        if self.delimiter_next:
            self._delimiter(value)
        self.tokens.append((_WORD, value, raw))
        return end


def _tokens(s: str) -> list[_Token]:
    return _Lexer(s).run()


# Reserved words skipped at the start of a command (the commands they introduce are what runs).
_SKIPPED_RESERVED = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}"})
_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh"})
_PREFIXES = frozenset({"sudo", "env", "exec", "nohup", "time", "command"})
_SEPARATORS = frozenset({"&&", "||", ";", "&", "\n", ";;", ";&", ";;&"})
_CASE_END = frozenset({";;", ";&", ";;&"})
_SUDO_WITH_ARG = frozenset({"-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-T", "-U", "-R"})
_ENV_WITH_ARG = frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"})
_TIME_WITH_ARG = frozenset({"-f", "--format", "-o", "--output"})


def _skip_options(argv: list[str], k: int, with_arg: frozenset[str], assignments: bool) -> int:
    """Skip the options (and, with ``assignments``, NAME=value words) from argv[k]."""
    while k < len(argv):
        a = argv[k]
        if a == "--":
            return k + 1
        if a.startswith("-") and len(a) > 1:
            k += 2 if a in with_arg else 1
        elif assignments and _ASSIGN.match(a):
            k += 1
        else:
            break
    return k


def _strip_prefixes(argv: list[str]) -> list[str]:
    """argv without the leading sudo/env/exec/nohup/time/command (and their options); when nothing
    is left, the last of them stays as the program."""
    k = 0
    while k < len(argv):
        program = argv[k].rsplit("/", 1)[-1]
        if program == "sudo":
            nxt = _skip_options(argv, k + 1, _SUDO_WITH_ARG, assignments=True)
        elif program == "env":
            nxt = _skip_options(argv, k + 1, _ENV_WITH_ARG, assignments=True)
        elif program == "exec":
            nxt = _skip_options(argv, k + 1, frozenset({"-a"}), assignments=False)
        elif program == "nohup":
            nxt = k + 1
        elif program == "time":
            nxt = _skip_options(argv, k + 1, _TIME_WITH_ARG, assignments=False)
        elif program == "command" and not (len(argv) > k + 1 and argv[k + 1] in ("-v", "-V")):
            nxt = _skip_options(argv, k + 1, frozenset(), assignments=False)
        else:
            break
        if nxt >= len(argv):
            break
        k = nxt
    return argv[k:]


def _inner_script(cmd: Command) -> str | None:
    """The script of ``sh -c 'script'`` (``-ec``, ``-euo pipefail -c`` ...), else None."""
    if cmd.program not in _SHELLS:
        return None
    args = cmd.argv
    has_c = False
    k = 1
    while k < len(args):
        a = args[k]
        if a == "--":
            k += 1
            break
        if a.startswith("--"):
            k += 2 if a in ("--rcfile", "--init-file") else 1
        elif len(a) > 1 and a[0] in "-+":
            letters = a[1:]
            has_c = has_c or (a[0] == "-" and "c" in letters)
            k += 1 + sum(1 for ch in letters if ch in "oO")  # -o pipefail: the option takes a word
        else:
            break
    return args[k] if has_c and k < len(args) else None


class _Splitter:
    """Tokens to pipelines: a small state machine over reserved words and operators."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.pipelines: list[Pipeline] = []
        self.commands: list[Command] = []  # of the current pipeline
        self.words: list[tuple[str, str]] = []  # of the current command: (value, raw)
        self.mode = "command"  # or "header" (for/select), "subject" (case ... in), "pattern"
        self.cases = 0  # open case statements
        self.closed = False  # ")" ended the last command: a word now starts a new pipeline
        self.skip_word = False  # the name after "function"
        self.skip_close = False  # the ")" of "name()"

    def run(self, tokens: list[_Token]) -> list[Pipeline]:
        skip_target = False
        words = self.words
        for k, (kind, text, raw) in enumerate(tokens):
            if kind == _WORD:
                if skip_target:
                    skip_target = False
                elif words and self.mode == "command":  # the common case: an argument
                    words.append((text, raw))
                else:
                    self._word(text, raw)
                    words = self.words
            elif kind == _REDIR:
                skip_target = True
            else:
                skip_target = False
                self._operator(text, tokens[k + 1] if k + 1 < len(tokens) else None)
                words = self.words
        self._end_pipeline()
        return self.pipelines

    def _word(self, text: str, raw: str) -> None:
        reserved = text if raw == text else ""
        if self.mode == "pattern":
            if reserved == "esac":
                self.cases -= 1
                self.mode = "command"
            return
        if self.mode == "subject":
            if reserved == "in":
                self.mode = "pattern"
            return
        if self.mode == "header":
            if reserved == "do":
                self.mode = "command"
            return
        if self.skip_word:
            self.skip_word = False
            return
        if not self.words:
            if reserved in _SKIPPED_RESERVED:
                self.closed = reserved == "}"
                return
            if reserved == "esac" and self.cases:
                self.cases -= 1
                return
            if reserved in ("for", "select"):
                self.mode = "header"
                return
            if reserved == "function":
                self.skip_word = True
                return
            if reserved == "case":
                self.cases += 1
                self.mode = "subject"
                return
            if self.closed:
                self._end_pipeline()
        self.words.append((text, raw))

    def _operator(self, op: str, after: _Token | None) -> None:
        if self.mode == "pattern":
            if op == ")":
                self.mode = "command"
            return
        if self.mode == "header":  # for NAME in WORDS; do
            if op in _SEPARATORS:
                self.mode = "command"
            return
        if self.mode == "subject":  # case WORD in
            return
        if op in ("|", "|&"):
            self._end_command()
            self.closed = False
        elif op in _SEPARATORS:
            self._end_pipeline()
            if op in _CASE_END and self.cases:
                self.mode = "pattern"
        elif op == "(":
            if self.words and after is not None and after[:2] == (_OP, ")"):
                self.words.clear()  # "name()": a function definition
                self.skip_close = True
            elif self.words:
                self._end_command()
                self._end_pipeline()
        elif op == ")":
            if self.skip_close:
                self.skip_close = False
                return
            self._end_command()
            self.closed = True

    def _end_command(self) -> None:
        words = self.words
        if not words:
            return
        self.words = []
        k = 0
        while k < len(words) and "=" in words[k][1] and _ASSIGN.match(words[k][1]):
            k += 1
        argv = [w[0] for w in words[k:]]
        if argv and (argv[0] in _PREFIXES or "/" in argv[0]):
            argv = _strip_prefixes(argv)
        if argv:
            program = argv[0]
            if "/" in program:
                program = program.rsplit("/", 1)[-1] or program
            self.commands.append(Command(program, tuple(argv)))

    def _end_pipeline(self) -> None:
        if self.words:
            self._end_command()
        self.closed = False
        commands = self.commands
        if not commands:
            return
        self.commands = []
        self.pipelines.append(Pipeline(tuple(commands)))
        if self.depth < MAX_SHELL_DEPTH:
            for cmd in commands:
                if cmd.program in _SHELLS:
                    inner = _inner_script(cmd)
                    if inner is not None:
                        self.pipelines.extend(_split(inner, self.depth + 1))


def _split(script: str, depth: int) -> list[Pipeline]:
    return _Splitter(depth).run(_tokens(script))


def split_script(script: str) -> list[Pipeline]:
    """The pipelines a shell would run for ``script`` (see the module contract)."""
    try:
        return _split(script, 0)
    except RecursionError:  # bounded by _MAX_LEX_DEPTH; a safety net, never expected
        return []


def commands(script: str) -> list[Command]:
    """Every command of every pipeline, in order."""
    return [c for p in split_script(script) for c in p.commands]
