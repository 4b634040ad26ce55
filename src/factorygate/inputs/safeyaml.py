"""YAML loading with bounds: PyYAML's C parser, guarded against hostile documents.

- Nesting depth: libyaml's composer recurses in C and crashes the process on very deep nesting
  (about 100,000 levels here), so depth is bounded before the parser sees the bytes.
- Alias bombs ("billion laughs", merge-key amplification): composing is linear, but constructing
  or walking an aliased graph is not. When a document has anchors, the size of its expanded
  graph is computed on the composed nodes (memoised, so linear) and refused above a limit.
- Everything that can go wrong while parsing is turned into :class:`YamlProblem` naming the line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import yaml

MAX_DEPTH = 1000
MAX_EXPANDED_NODES = 2_000_000

_FLOW = bytes(range(256)).translate(None, b"[]{}")  # every byte but the flow brackets
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_DEEP_INDENT = b" " * (MAX_DEPTH // 2)
_COMPACT_RUN = re.compile(rb"(?:[-?][ \t]+){%d}" % (MAX_DEPTH // 4))
_ANCHOR = re.compile(rb"(?<![&\w])&[\w.-]")


class YamlProblem(Exception):
    """A document that cannot be loaded; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """A parsed document and its node tree (for line numbers)."""

    data: Any
    node: yaml.Node
    line: int  # 1-based line where the document starts


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
    at = data.find(b"\n" + _DEEP_INDENT)
    if at < 0 and data.startswith(_DEEP_INDENT):
        at = 0
    if at < 0 and (b"- - " in data or b"? ? " in data):
        m = _COMPACT_RUN.search(data)
        at = m.start() if m else -1
    if at >= 0:
        line = data.count(b"\n", 0, at) + 1
        raise YamlProblem(f"block collections nested deeper than the {MAX_DEPTH}-level limit", line)


def expanded_size(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> int:
    """The number of nodes the graph has once aliases are expanded (stops counting past ``limit``)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
        if children_done:
            sizes[key] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _problem_from(e: BaseException) -> YamlProblem:
    if isinstance(e, YamlProblem):
        return e
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "syntax error"
        return YamlProblem(f"not valid YAML: {problem}", mark.line + 1 if mark is not None else None)
    if isinstance(e, yaml.reader.ReaderError):
        return YamlProblem(f"not a text file: {e.reason} (byte 0x{e.character!r})"[:200])
    if isinstance(e, RecursionError):
        return YamlProblem("document nested too deeply to load")
    if isinstance(e, MemoryError):
        return YamlProblem("document too large to load in memory")
    return YamlProblem(f"cannot load: {type(e).__name__}: {e}"[:300])


@dataclass(frozen=True, slots=True)
class SkippedDocument:
    """A document the caller's ``want`` predicate declined: composed, never constructed."""

    node: yaml.Node
    line: int


def load_documents(
    data: bytes | str, want: Callable[[yaml.Node], bool] | None = None
) -> Iterator[LoadedDocument | SkippedDocument | YamlProblem]:
    """Yield each document of a YAML (or JSON) stream; a problem ends the stream.

    ``want`` sees each composed root node; documents it declines are not constructed (constructing
    is most of the cost of loading YAML in Python, and most bytes of real bundles are CRDs).
    """
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    try:
        _check_depth(raw)
    except YamlProblem as e:
        yield e
        return
    check_aliases = b"&" in raw and _ANCHOR.search(raw) is not None
    loader = yaml.CSafeLoader(raw)
    try:
        while True:
            try:
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
                        f"aliases expand to more than {MAX_EXPANDED_NODES:,} nodes (YAML alias bomb)", line
                    )
                    return
                value = loader.construct_document(node)
            except (yaml.YAMLError, ValueError, TypeError, RecursionError, MemoryError, OverflowError) as e:
                yield _problem_from(e)
                return
            yield LoadedDocument(value, node, line)
    finally:
        loader.dispose()
