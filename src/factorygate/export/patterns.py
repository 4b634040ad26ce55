"""RE2 regular expressions that reproduce, exactly, the string logic of the Python checks.

Kubernetes evaluates CEL ``matches()`` with RE2 (Go's regexp), so the export translates to RE2 syntax
only: no lookaround, no backreferences, ``\\x{...}`` for every non-ASCII or control character, and
explicit character classes where Python's semantics are Unicode-aware (``str.strip``,
``str.lower``, ``str.upper``, fnmatch character classes). Where a construct has no exact RE2
counterpart the builders raise :class:`Unsupported` instead of approximating it.
"""

from __future__ import annotations

import bisect
import fnmatch
import functools
import posixpath
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

MAX_CODE_POINT = sys.maxunicode
_SURROGATES = (0xD800, 0xDFFF)  # never in a decoded Kubernetes string (invalid UTF-8)
# Characters Python's str.strip() removes (str.isspace), verified against unicodedata by the tests.
PY_WHITESPACE = (
    *range(0x09, 0x0E),
    *range(0x1C, 0x21),
    0x85,
    0xA0,
    0x1680,
    *range(0x2000, 0x200B),
    0x2028,
    0x2029,
    0x202F,
    0x205F,
    0x3000,
)
# Non-ASCII characters whose str.lower() is a single ASCII character (KELVIN SIGN -> k), and the one
# character whose lower case is two characters (LATIN CAPITAL LETTER I WITH DOT ABOVE -> "i̇").
NON_ASCII_LOWER_TO_ASCII = {0x212A: "k"}
DOTTED_CAPITAL_I = 0x130
# Non-ASCII characters whose str.upper() is ASCII: one character or several (ligatures, sharp s).
NON_ASCII_UPPER_TO_ASCII = {
    0xDF: "SS",
    0x131: "I",
    0x17F: "S",
    0xFB00: "FF",
    0xFB01: "FI",
    0xFB02: "FL",
    0xFB03: "FFI",
    0xFB04: "FFL",
    0xFB05: "ST",
    0xFB06: "ST",
}
_SMALL_SIGMA, _FINAL_SIGMA = 0x3C3, 0x3C2


class Unsupported(Exception):
    """A policy value or check construct that RE2/CEL cannot express with the Python check's meaning."""


@dataclass(frozen=True)
class CharSet:
    """A set of Unicode code points as sorted, disjoint, non-adjacent inclusive ranges."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def from_ranges(cls, ranges: Iterable[tuple[int, int]]) -> CharSet:
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(r for r in ranges if r[0] <= r[1]):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        return cls(tuple(merged))

    @classmethod
    def of(cls, chars: Iterable[int | str]) -> CharSet:
        points = [ord(c) if isinstance(c, str) else c for c in chars]
        return cls.from_ranges((p, p) for p in points)

    @classmethod
    def everything(cls) -> CharSet:
        return cls.from_ranges([(0, _SURROGATES[0] - 1), (_SURROGATES[1] + 1, MAX_CODE_POINT)])

    def complement(self) -> CharSet:
        gaps, start = [], 0
        for lo, hi in self.ranges:
            gaps.append((start, lo - 1))
            start = hi + 1
        gaps.append((start, MAX_CODE_POINT))
        return CharSet.from_ranges(gaps) & CharSet.everything()

    def __and__(self, other: CharSet) -> CharSet:
        out, i, j = [], 0, 0
        while i < len(self.ranges) and j < len(other.ranges):
            lo = max(self.ranges[i][0], other.ranges[j][0])
            hi = min(self.ranges[i][1], other.ranges[j][1])
            if lo <= hi:
                out.append((lo, hi))
            if self.ranges[i][1] < other.ranges[j][1]:
                i += 1
            else:
                j += 1
        return CharSet(tuple(out))

    def __or__(self, other: CharSet) -> CharSet:
        return CharSet.from_ranges([*self.ranges, *other.ranges])

    def __sub__(self, other: CharSet) -> CharSet:
        return self & other.complement()

    def __contains__(self, point: int) -> bool:
        i = bisect.bisect_right(self.ranges, (point, MAX_CODE_POINT + 1)) - 1
        return i >= 0 and self.ranges[i][0] <= point <= self.ranges[i][1]

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def ascii_only(self) -> bool:
        return not self.ranges or self.ranges[-1][1] < 0x80

    def re2(self) -> str:
        """The set as one RE2 atom: a literal, a class or a negated class, whichever is shorter."""
        if self == CharSet.everything():
            return "(?s:.)"
        if len(self.ranges) == 1 and self.ranges[0][0] == self.ranges[0][1]:
            return re2_char(self.ranges[0][0])
        positive = "[" + _class_body(self.ranges) + "]"
        negative = "[^" + _class_body(self.complement().ranges) + "]"
        return negative if len(negative) < len(positive) else positive


def re2_char(point: int) -> str:
    """One code point as an RE2 literal (ASCII punctuation escaped, the rest of non-alnum as \\x{...})."""
    c = chr(point)
    if c.isascii() and (c.isalnum() or c == "_"):
        return c
    if 0x21 <= point <= 0x7E:
        return "\\" + c
    return f"\\x{{{point:x}}}"


def re2_literal(text: str) -> str:
    return "".join(re2_char(ord(c)) for c in text)


def _class_body(ranges: Sequence[tuple[int, int]]) -> str:
    parts = []
    for lo, hi in ranges:
        if lo == hi:
            parts.append(re2_char(lo))
        elif hi == lo + 1:
            parts.append(re2_char(lo) + re2_char(hi))
        else:
            parts.append(f"{re2_char(lo)}-{re2_char(hi)}")
    return "".join(parts)


WHITESPACE = CharSet.of(PY_WHITESPACE)
WS = WHITESPACE.re2()
ANY = "(?s:.)"


def alternation(parts: Iterable[str]) -> str | None:
    """``(?:a|b)`` of the parts, or None when there are none (nothing can match)."""
    items = list(dict.fromkeys(parts))
    if not items:
        return None
    return items[0] if len(items) == 1 else "(?:" + "|".join(items) + ")"


def anchored(body: str | None) -> str | None:
    return None if body is None else f"^{body}$"


# -- shell globs (fnmatch.fnmatchcase) ------------------------------------------------------------
_STAR, _ONE = "*", "?"
_GlobToken = str | CharSet  # "*", "?" or the set of characters one position accepts


@functools.cache
def _class_members(class_text: str) -> CharSet:
    """The characters fnmatch's ``[...]`` token accepts, asked of Python's own translation."""
    rx = re.compile(fnmatch.translate(class_text))
    return _scan(lambda p: rx.match(chr(p)) is not None)


def _glob_tokens(pattern: str) -> list[_GlobToken]:
    """Tokens of a glob, scanned exactly as fnmatch.translate scans it."""
    out: list[_GlobToken] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if not out or out[-1] != _STAR:
                out.append(_STAR)
        elif c == "?":
            out.append(_ONE)
        elif c == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(CharSet.of("["))
            else:
                out.append(_class_members(pattern[i - 1 : j + 1]))
                i = j + 1
        else:
            out.append(CharSet.of(c))
    return out


def _scan(accept: Callable[[int], bool]) -> CharSet:
    """The code points (surrogates aside) ``accept`` holds for, by one pass over Unicode."""
    ranges, start = [], None
    for point in range(MAX_CODE_POINT + 2):
        hit = point <= MAX_CODE_POINT and not _SURROGATES[0] <= point <= _SURROGATES[1] and accept(point)
        if hit and start is None:
            start = point
        elif not hit and start is not None:
            ranges.append((start, point - 1))
            start = None
    return CharSet(tuple(ranges))


@functools.cache
def _lowercase_table() -> tuple[CharSet, dict[int, int]]:
    """(characters str.lower() leaves alone, {character: its different one-character lower case})."""
    fixed = _scan(lambda p: chr(p).lower() == chr(p))
    changed = {p: ord(chr(p).lower()) for p in range(MAX_CODE_POINT + 1) if len(chr(p).lower()) == 1}
    return fixed, {p: low for p, low in changed.items() if low != p}


def lower_preimage(chars: CharSet) -> CharSet:
    """The characters c with ``c.lower()`` a single character in ``chars``.

    Python lower-cases CAPITAL SIGMA by context (final sigma), so a set that holds one of the two
    small sigmas but not the other has no context-free preimage: :class:`Unsupported`."""
    if (_SMALL_SIGMA in chars) != (_FINAL_SIGMA in chars):
        raise Unsupported("a pattern distinguishes the Greek small sigmas, which str.lower() picks by context")
    if chars.ascii_only():
        points = [p for p in range(0x80) if ord(chr(p).lower()) in chars]
        points += [p for p, low in NON_ASCII_LOWER_TO_ASCII.items() if ord(low) in chars]
        return CharSet.of(points)
    fixed, changed = _lowercase_table()
    return (chars & fixed) | CharSet.of(p for p, low in changed.items() if low in chars)


def glob_re2(pattern: str, universe: CharSet, lower: bool = False) -> str | None:
    """RE2 for the strings over ``universe`` that match the glob (``fnmatchcase``).

    With ``lower`` the strings are lower-cased (str.lower) before matching, as registry hosts are.
    None when no string over the universe can match."""
    parts = []
    for token in _glob_tokens(pattern):
        if token == _STAR:
            parts.append(universe.re2() + "*")
            continue
        if isinstance(token, CharSet):
            chars = (lower_preimage(token) if lower else token) & universe
        else:  # "?": one character (of the lower-cased string: not U+0130, which lower-cases to two)
            chars = universe - CharSet.of([DOTTED_CAPITAL_I]) if lower else universe
        if not chars:
            return None
        parts.append(chars.re2())
    return "".join(parts)


def upper_equals_re2(target: str) -> str:
    """RE2 for the strings s with ``s.upper() == target`` (target: ASCII upper case)."""
    if not target.isascii():
        raise Unsupported(f"{target!r} is not ASCII")

    @functools.cache
    def rest(i: int) -> str:
        if i == len(target):
            return ""
        singles = [p for p in range(0x80) if chr(p).upper() == target[i]]
        singles += [p for p, up in NON_ASCII_UPPER_TO_ASCII.items() if up == target[i]]
        options = [CharSet.of(singles).re2() + rest(i + 1)]
        for point, up in NON_ASCII_UPPER_TO_ASCII.items():
            if len(up) > 1 and target.startswith(up, i):
                options.append(re2_char(point) + rest(i + len(up)))
        return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"

    return rest(0)


# -- host paths: posixpath.normpath("/" + path.strip().lstrip("/")) -------------------------------
_DOT_SLASHES, _SLASH_DOTS = r"(?:\.?/)", r"(?:/\.?)"


_WS_CHARS = frozenset(map(chr, PY_WHITESPACE))


def _edge_ws(segment: str) -> tuple[bool, bool]:
    """Whether the segment starts, and whether it ends, with whitespace str.strip() removes."""
    return (segment[:1] in _WS_CHARS, segment[-1:] in _WS_CHARS)


@dataclass
class _PathNode:
    """A trie of normalised paths by segment: whether a path ends here exactly, or anything beneath."""

    exact: bool = False
    under: bool = False
    children: dict[str, _PathNode] = field(default_factory=dict)

    def add(self, segments: Sequence[str], under: bool) -> None:
        node = self
        for segment in segments:
            node = node.children.setdefault(segment, _PathNode())
        if under and segments:
            node.under = True
        else:
            node.exact = True


def _after(segment: str, node: _PathNode) -> str:
    """RE2 for what may follow ``segment`` in a raw path whose normalised form ends at or below ``node``.

    A stripped path cannot end with whitespace: when the segment does, a separator must follow."""
    trail = _edge_ws(segment)[1]
    if node.under:
        return f"/{ANY}*" if trail else f"(?:/{ANY}*)?"
    options = [_SLASH_DOTS + ("+" if trail else "*")] if node.exact else []
    options += [f"/{_DOT_SLASHES}*{re2_literal(s)}{_after(s, child)}" for s, child in node.children.items()]
    return alternation(options) or ""


def _paths_re2(root: _PathNode) -> str | None:
    """RE2 for raw paths (stripped of outer whitespace) that normalise to a path the trie holds.

    Leading separators and "." segments come first; at least one when the first segment starts with
    whitespace (a stripped path cannot start with it)."""
    options = [_DOT_SLASHES + r"*\.?"] if root.exact else []
    for segment, child in root.children.items():
        lead = "+" if _edge_ws(segment)[0] else "*"
        options.append(f"{_DOT_SLASHES}{lead}{re2_literal(segment)}{_after(segment, child)}")
    return alternation(options)


def normal_segments(path: str) -> list[str] | None:
    """The segments of a path in the form the host-path checks normalise to, or None if it is not."""
    if path == "/":
        return []
    if not path.startswith("/") or path.startswith("//"):
        return None
    segments = path[1:].split("/")
    return None if any(s in ("", ".", "..") for s in segments) else segments


# A ".." segment once the path is stripped: Python resolves it, the API server rejects the raw form, and
# the export denies it (RE2 cannot count the segments a chain of ".." removes).
BACKSTEP = f"(?:^{WS}*|/)\\.\\.(?:/|{WS}*$)"


def host_path_re2(exact: Iterable[Sequence[str]], under: Iterable[Sequence[str]]) -> str | None:
    """RE2 for raw hostPath paths whose normalised form is one of ``exact`` or beneath one of ``under``,
    or that hold a ".." segment (denied, see BACKSTEP); None when no path can match."""
    root = _PathNode()
    for segments in exact:
        root.add(segments, under=False)
    for segments in under:
        root.add(segments, under=True)
    body = _paths_re2(root)
    return None if body is None else f"^{WS}*{body}{WS}*$|{BACKSTEP}"


def socket_hits(socket: str) -> list[list[str]]:
    """Normalised host paths a runtime socket check flags: "/", the socket and every directory above it."""
    target = posixpath.normpath(socket)
    candidates = {"/", target, *(target[:i] for i, c in enumerate(target) if c == "/")}
    hits = (normal_segments(p) for p in sorted(candidates))
    return [s for s in hits if s is not None]


def sensitive_dirs(paths: Iterable[str]) -> tuple[list[list[str]], list[list[str]]]:
    """(exact, under) segment lists of sensitive directories ("/" only matches itself)."""
    exact: list[list[str]] = []
    under: list[list[str]] = []
    for raw in paths:
        segments = normal_segments(posixpath.normpath(raw))
        if segments == []:
            exact.append([])
        elif segments is not None:
            under.append(segments)
    return exact, under


# -- image references (facts.images.parse_image + registry_allowed) -------------------------------
DOCKER_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io")
SEGMENT = CharSet.everything() - CharSet.of("/@")  # a path segment of the reference before "@"
_LAST_UNTAGGED = SEGMENT - CharSet.of(":")  # the last segment when no tag follows
_TAG = f"{(_LAST_UNTAGGED).re2()}*"
_DIGEST_TAIL = f"(?:@{ANY}*)?"
_NOT_AT = (CharSet.everything() - CharSet.of("@")).re2()
# The reference forms parse_image distinguishes, decided on the raw (unstripped) image string:
_ALIASES = "(?:" + "|".join(re2_literal(a) for a in DOCKER_HUB_ALIASES) + ")/"
ALIAS_FORM = "^" + _ALIASES
REGISTRY_FORM = f"^(?:{SEGMENT.re2()}*[.:]{SEGMENT.re2()}*|localhost)/"
PATH_FORM = f"^{SEGMENT.re2()}*/"  # a "/" before any "@": docker.io/<path>, else docker.io/library/<name>
DOTTED_I_HOST = f"^{SEGMENT.re2()}*{re2_char(DOTTED_CAPITAL_I)}"
EDGE_WHITESPACE = f"^{WS}|{WS}$"
# facts.images._DIGEST after the first "@" of the stripped reference.
DIGEST_PINNED = f"^{WS}*{_NOT_AT}*@(?:sha256:[0-9a-f]{{64}}|sha512:[0-9a-f]{{128}}){WS}*$"


@dataclass(frozen=True)
class ImageForms:
    """Per reference form, an anchored RE2 for the allowed images of that form (None: none allowed)."""

    alias: str | None
    registry: str | None
    path: str | None
    bare: str | None


def _options(*parts: str | None) -> list[str]:
    return [p for p in parts if p is not None]


def _remainder(patterns: Sequence[str], untagged: bool) -> str | None:
    """The "/"-separated segments after the host: at least len(patterns), each matching its glob;
    ``untagged``: the last segment has no ":" (else a ":" tag would have been cut off it)."""
    globs = [glob_re2(p, SEGMENT) for p in patterns]
    parts = _options(*globs)
    if len(parts) < len(globs):
        return None
    anything = f"{_NOT_AT}*"
    if not parts:
        return f"(?:{anything}/)?{_TAG}" if untagged else anything
    if not untagged:
        return "/".join(parts) + f"(?:/{anything})?"
    head = "".join(p + "/" for p in parts[:-1])
    last = alternation(_options(glob_re2(patterns[-1], _LAST_UNTAGGED), f"{parts[-1]}/(?:{anything}/)?{_TAG}"))
    return None if last is None else head + last


def _tag_and_digest(tagged: str | None, untagged: str | None) -> str | None:
    """A name that ends the reference's path, then an optional ":tag" and "@digest"."""
    body = alternation(_options(None if tagged is None else f"{tagged}:{_TAG}", untagged))
    return None if body is None else body + _DIGEST_TAIL


def _reference_tail(patterns: Sequence[str]) -> str | None:
    """The repository path, its optional ":tag" and "@digest", with the path matching ``patterns``."""
    if not patterns:
        return f"{ANY}*"
    return _tag_and_digest(_remainder(patterns, False), _remainder(patterns, True))


def _bare_name(patterns: Sequence[str]) -> str | None:
    """docker.io/library/<name>: ``patterns`` apply to ["library", name]."""
    if not patterns:
        return f"{ANY}*"
    if not fnmatch.fnmatchcase("library", patterns[0]) or len(patterns) > 2:
        return None
    if len(patterns) == 1:
        return f"{ANY}*"
    return _tag_and_digest(glob_re2(patterns[1], SEGMENT), glob_re2(patterns[1], _LAST_UNTAGGED))


def _entry_forms(entry: str) -> ImageForms:
    host, _, rest = entry.strip().rstrip("/").partition("/")
    host = host.lower()
    patterns = rest.split("/") if rest else []
    tail = _reference_tail(patterns)
    host_re = glob_re2(host, SEGMENT, lower=True)
    registry = None if host_re is None or tail is None else f"{host_re}/{tail}"
    if not fnmatch.fnmatchcase("docker.io", host):
        return ImageForms(None, registry, None, None)
    alias = None if tail is None else _ALIASES + tail
    return ImageForms(alias, registry, tail, _bare_name(patterns))


def image_forms(allowed: Iterable[str]) -> ImageForms:
    """Anchored RE2s, one per reference form, accepting exactly the images registry_allowed() accepts
    (for images without surrounding whitespace)."""
    entries = []
    for entry in allowed:
        try:
            entries.append(_entry_forms(entry))
        except Unsupported as e:
            raise Unsupported(f"allowed_registries entry {entry!r}: {e}") from e

    def union(pick: str) -> str | None:
        return anchored(alternation(getattr(f, pick) for f in entries if getattr(f, pick) is not None))

    return ImageForms(union("alias"), union("registry"), union("path"), union("bare"))
