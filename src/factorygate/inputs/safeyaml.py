"""YAML loading with bounds: PyYAML's C parser, guarded against hostile documents.

- Nesting depth: libyaml's composer recurses in C and crashes the process on very deep nesting
  (about 100,000 levels here), so depth is bounded before the parser sees the bytes (flow
  brackets, indentation, and runs of block indicators such as ``- ? - ? x`` on one line).
- Bytes libyaml's reader refuses (invalid UTF-8, control characters) are found up front too: its
  decoding runs ahead of the parser, and its error would lose the documents before them.
  Documents before a refused one are still loaded, whatever the problem.
- Alias bombs ("billion laughs", merge-key amplification): composing is linear, but constructing
  or walking an aliased graph is not. When a document has anchors, the size of its expanded
  graph is computed on the composed nodes (memoised, so linear) and refused above a limit; a
  recursive alias (a node containing itself) expands without end and is refused too.
- Node count: a composed node costs about 300 bytes of memory, and dense YAML has a node every
  byte or two. When the bytes allow more than MAX_DOCUMENT_NODES nodes in a document, libyaml's
  event stream (no nodes built) counts them first, and a document over the limit is refused.
- Constructors with superlinear cost are bounded: integers (sexagesimal ones are quadratic to
  build, and Python refuses to print more than 4300 digits) and merge keys (quadratic per mapping).
- UTF-16 input (which libyaml accepts after a BOM) is transcoded to UTF-8 first, so the byte-level
  guards see what the parser will.
- Everything that can go wrong while parsing is turned into :class:`YamlProblem` naming the line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import Any, NamedTuple

import yaml

MAX_DEPTH = 1000
MAX_EXPANDED_NODES = 2_000_000
MAX_DOCUMENT_NODES = 1_000_000
MAX_INT_DIGITS = 4000
MAX_MERGE_KEYS = 1000

_FLOW = bytes(range(256)).translate(None, b"[]{}")  # every byte but the flow brackets
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_DEEP_INDENT = b" " * (MAX_DEPTH // 2)
# A run of block indicators on one line ("- - - x", "- ? - ? x", "? x\n: - : - x") nests without
# indentation. Matching runs of 16 or more (never a prefix of a shorter run) keeps the search linear.
_COMPACT_RUN = re.compile(rb"(?:[-?:][ \t]+){16,}")
# Block indicators to "-", the rest to "x" (blanks are deleted): a cheap first look for such runs.
_INDICATORS = bytes(45 if b in b"-?:" else 120 for b in range(256))
# An anchor: "&name" not preceded by "&" or a word character. The literal comes first so the regex
# engine can skip ahead to each "&" (a leading lookbehind makes it try every position).
_AMPERSAND_NAME = re.compile(rb"&[\w.-]")
_WORDISH = frozenset(b"&_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Every node but a document's root starts at or after one of these bytes; a few nodes per byte at most.
_NODE_BYTES = b",[{:-?\n\r"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# What libyaml's reader refuses: C0 controls but tab and line breaks, DEL, C1 controls but NEL, U+FFFE/F
_ASCII_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NOT_ASCII_CONTROL = bytes(range(256)).translate(None, bytes(range(9)) + b"\x0b\x0c" + bytes(range(14, 32)) + b"\x7f")
_NON_ASCII_CONTROL = re.compile(rb"\xc2[\x80-\x84\x86-\x9f]|\xef\xbf[\xbe\xbf]")
# A line starting a document: libyaml ends any collection or scalar there (or fails)
_DOCUMENT_START = re.compile(rb"^---(?=[ \t\r\n]|\Z)", re.MULTILINE)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlProblem(Exception):
    """A document that cannot be loaded; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class LoadedDocument(NamedTuple):
    """A parsed document and its node tree (for line numbers)."""

    data: Any
    node: yaml.Node
    line: int  # 1-based line where the document starts


def _may_have_compact_run(data: bytes) -> bool:
    """Whether 16 block indicators follow each other, blanks aside: C-speed byte operations, as the
    regex tries a match at every ": " of every mapping, which is slow on big inputs."""
    return b"-" * 16 in data.translate(_INDICATORS, b" \t")


def _check_depth(data: bytes) -> None:
    brackets = data.translate(None, _FLOW)
    # Empty flow collections ({} and []) are common and add no depth worth counting.
    for _ in range(3):
        if len(brackets) <= MAX_DEPTH:
            break
        brackets = brackets.replace(b"[]", b"").replace(b"{}", b"")
    if len(brackets) > MAX_DEPTH:
        deepest = max(accumulate(_BRACKET_STEP[b] for b in brackets))
        if deepest > MAX_DEPTH:
            raise YamlProblem(f"flow collections nested deeper than {MAX_DEPTH} levels")
    indented = [i + 1 for i in (data.find(b"\n" + _DEEP_INDENT), data.find(b"\r" + _DEEP_INDENT)) if i >= 0]
    at = min(indented) if indented else 0 if data.startswith(_DEEP_INDENT) else -1
    if at < 0 and _may_have_compact_run(data):
        for m in _COMPACT_RUN.finditer(data):
            run = m.group()
            if run.count(b"-") + run.count(b"?") + run.count(b":") >= MAX_DEPTH // 4:
                at = m.start()
                break
    if at >= 0:
        line = data.count(b"\n", 0, at) + 1
        raise YamlProblem(f"block collections nested deeper than the {MAX_DEPTH}-level limit", line)


def expanded_size(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> int:
    """The number of nodes the graph has once aliases are expanded (stops counting past ``limit``)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # entered, children not done: the path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if not children_done and key in open_nodes:
            return limit + 1  # a node inside itself (`&a [*a]`): its expansion never ends
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
        if children_done:
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
            open_nodes.discard(key)
        else:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _problem_from(e: BaseException, raw: bytes = b"") -> YamlProblem:
    if isinstance(e, YamlProblem):
        return e
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "syntax error"
        if e.problem and e.context and e.context_mark and mark and e.context_mark.line != mark.line:
            problem = f"{problem} ({e.context} on line {e.context_mark.line + 1})"  # an unclosed quote...
        return YamlProblem(f"not valid YAML: {problem}", mark.line + 1 if mark is not None else None)
    if isinstance(e, yaml.reader.ReaderError):
        # libyaml reports the byte (or code point) as an int and its byte offset in the input
        char = f"0x{e.character:02x}" if isinstance(e.character, int) else repr(e.character)
        line = raw.count(b"\n", 0, e.position) + 1 if isinstance(e.position, int) and raw else None
        return YamlProblem(f"not a text file: {e.reason} ({char})"[:200], line)
    if isinstance(e, RecursionError):
        return YamlProblem("document nested too deeply to load")
    if isinstance(e, MemoryError):
        return YamlProblem("document too large to load in memory")
    return YamlProblem(f"cannot load: {type(e).__name__}: {e}"[:300])


def _has_anchor(raw: bytes) -> bool:
    return any(m.start() == 0 or raw[m.start() - 1] not in _WORDISH for m in _AMPERSAND_NAME.finditer(raw))


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    if isinstance(node.value, str) and len(node.value) > MAX_INT_DIGITS:
        raise YamlProblem(
            f"integer of {len(node.value):,} characters (the limit is {MAX_INT_DIGITS:,} digits)",
            node.start_mark.line + 1,
        )
    value = loader.construct_yaml_int(node)
    if abs(value) >= _INT_BOUND:  # 0x... with 4,000 hex digits: too long to print in decimal
        raise YamlProblem(f"integer of more than {MAX_INT_DIGITS:,} digits", node.start_mark.line + 1)
    return value


_INT_BOUND = 10**MAX_INT_DIGITS


_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_RESOLVED: dict[str, str] = {}  # plain scalar -> tag, for short values (keys, enums, numbers)
_RESOLVED_MAX = 65536


class _Loader(yaml.CSafeLoader):
    """CSafeLoader with the constructors whose cost is superlinear bounded, and a faster resolver.

    libyaml calls ``resolve`` (Python) for every node it composes; PyYAML's version matches the
    implicit-type regexes every time. The same short scalars (keys, enum values) recur all over a
    bundle, so their tag is remembered. SafeLoader has no path resolvers, so descending and
    ascending need no bookkeeping. The tags are exactly PyYAML's (tests compare with CSafeLoader).
    """

    def resolve(self, kind: type[yaml.Node], value: str | None, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            if not implicit[0] or value is None:
                return _STR_TAG
            tag = _RESOLVED.get(value)
            if tag is None:
                tag = _STR_TAG
                for candidate, regexp in self.yaml_implicit_resolvers.get(value[:1], ()):
                    if regexp.match(value):
                        tag = candidate
                        break
                if len(value) <= 64 and len(_RESOLVED) < _RESOLVED_MAX:
                    _RESOLVED[value] = tag
            return tag
        return _SEQ_TAG if kind is yaml.SequenceNode else _MAP_TAG

    def descend_resolver(self, current_node: yaml.Node | None, current_index: object) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # PyYAML deletes merge keys from the middle of the list one at a time: quadratic in their number
        if sum(1 for k, _ in node.value if k.tag == _MERGE_TAG) > MAX_MERGE_KEYS:
            line = node.start_mark.line + 1
            raise YamlProblem(f"a mapping with more than {MAX_MERGE_KEYS:,} merge keys (<<)", line)
        super().flatten_mapping(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _over_node_limit(raw: bytes) -> tuple[int, int] | None:
    """(index, line) of the first document with more than MAX_DOCUMENT_NODES nodes, counted on
    libyaml's events (nothing is built); None when there is none or the bytes cannot hold one."""
    if 3 * (len(raw) - len(raw.translate(None, _NODE_BYTES))) + 1 <= MAX_DOCUMENT_NODES:
        return None
    parser = yaml.CSafeLoader(raw)
    counted = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
    index, line, nodes = -1, 1, 0
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, counted):
                nodes += 1
                if nodes > MAX_DOCUMENT_NODES:
                    return index, line
            elif isinstance(event, yaml.DocumentStartEvent):
                index, nodes = index + 1, 0
                line = event.start_mark.line + 1 if event.start_mark is not None else line
    except yaml.YAMLError:
        return None  # the composer stops at the same error and reports it
    finally:
        parser.dispose()
    return None


class SkippedDocument(NamedTuple):
    """A document the caller's ``want`` predicate declined: composed, never constructed."""

    node: yaml.Node
    line: int


def _utf8(data: bytes | str) -> bytes:
    """The bytes libyaml will read, as UTF-8 (UTF-16 after a BOM is transcoded)."""
    if isinstance(data, str):
        try:
            return data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate: libyaml refuses the bytes, reported as unreadable
            return data.encode("utf-8", "surrogatepass")
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16").encode("utf-8")
        except UnicodeError:
            raise YamlProblem("not a text file: invalid UTF-16") from None
    return data


def _unreadable(raw: bytes) -> tuple[int, YamlProblem] | None:
    """The first bytes libyaml's reader refuses (invalid UTF-8, control characters), found up front:
    libyaml decodes ahead of the parser, and its error would discard the documents before them."""
    found: list[tuple[int, str]] = []
    if raw.translate(None, _NOT_ASCII_CONTROL):
        m = _ASCII_CONTROL.search(raw)
        if m:
            found.append((m.start(), f"control characters are not allowed (0x{raw[m.start()]:02x})"))
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            found.append((e.start, f"invalid UTF-8 (0x{raw[e.start]:02x})"))
        m = _NON_ASCII_CONTROL.search(raw)
        if m:
            code = ord(m.group().decode("utf-8"))
            found.append((m.start(), f"control characters are not allowed (U+{code:04X})"))
    if not found:
        return None
    at, reason = min(found)
    return at, YamlProblem(f"not a text file: {reason}", raw.count(b"\n", 0, at) + 1)


def _too_deep(raw: bytes) -> tuple[int, YamlProblem] | None:
    """Nesting beyond MAX_DEPTH, with the offset of the document holding it (no document can nest
    across a ``---`` line, so the ones before it are safe to load)."""
    try:
        _check_depth(raw)
    except YamlProblem:
        starts = [0] + [m.start() for m in _DOCUMENT_START.finditer(raw) if m.start() > 0]
        for begin, end in zip(starts, [*starts[1:], len(raw)], strict=True):
            try:
                _check_depth(raw[begin:end])
            except YamlProblem as e:
                first_line = raw.count(b"\n", 0, begin) + 1
                return begin, YamlProblem(e.message, first_line + (e.line or 1) - 1)
    return None


def load_documents(
    data: bytes | str, want: Callable[[yaml.Node], bool] | None = None
) -> Iterator[LoadedDocument | SkippedDocument | YamlProblem]:
    """Yield each document of a YAML (or JSON) stream; a problem ends the stream.

    ``want`` sees each composed root node; documents it declines are not constructed (constructing
    is most of the cost of loading YAML in Python, and most bytes of real bundles are CRDs).
    Documents before a problem are yielded first, whatever the problem.
    """
    try:
        raw = _utf8(data)
        bad = _unreadable(raw)
        deep = _too_deep(raw[: bad[0]] if bad else raw)
    except YamlProblem as e:
        yield e
        return
    except MemoryError as e:
        yield _problem_from(e)
        return
    first = deep or bad
    if first is None:
        yield from _load(raw, want)
        return
    at, problem = first
    cut = at
    if first is bad:  # the documents before the one holding the bytes
        marks = [m.start() for m in _DOCUMENT_START.finditer(raw, 0, at)]
        cut = marks[-1] if marks else 0
    for item in _load(raw[:cut], want) if cut else ():
        yield item
        if isinstance(item, YamlProblem):
            return
    yield problem


def _load(
    raw: bytes, want: Callable[[yaml.Node], bool] | None
) -> Iterator[LoadedDocument | SkippedDocument | YamlProblem]:
    try:
        too_big = _over_node_limit(raw)
    except MemoryError as e:
        yield _problem_from(e)
        return
    check_aliases = b"&" in raw and _has_anchor(raw)
    loader = _Loader(raw)
    index = -1
    try:
        while True:
            line: int | None = None
            try:
                index += 1
                if too_big is not None and index == too_big[0]:
                    yield YamlProblem(f"document has more than {MAX_DOCUMENT_NODES:,} nodes", too_big[1])
                    return
                if not loader.check_node():
                    return
                node = loader.get_node()
                if node is None:
                    return
                line = node.start_mark.line + 1
                if want is not None and not want(node):
                    yield SkippedDocument(node, line)
                    continue
                if check_aliases and expanded_size(node) > MAX_EXPANDED_NODES:
                    yield YamlProblem(
                        f"aliases expand to more than {MAX_EXPANDED_NODES:,} nodes "
                        "(YAML alias bomb, or an alias inside its own anchor)",
                        line,
                    )
                    return
                value = loader.construct_document(node)
            except Exception as e:  # noqa: BLE001 - constructors raise KeyError, IndexError...: never escape
                problem = _problem_from(e, raw)
                yield problem if problem.line is not None else YamlProblem(problem.message, line)
                return
            yield LoadedDocument(value, node, line)
    finally:
        loader.dispose()
