"""Read a saved cluster state: the output of ``kubectl get <kinds> -A -o yaml`` (or ``-o json``), a
``List`` or a stream of objects, from a file or a directory of such files (recursively, *.yaml, *.yml,
*.json, in name order).

YAML goes through the bounded loader (factorygate.inputs.safeyaml: depth, alias and node limits); JSON
through orjson, which is an order of magnitude faster for large snapshots (``-o json``). Nothing is
evaluated here: objects are filed by kind in an :class:`Inventory`, and every unreadable input is one
line in ``Inventory.errors``; the other files are still read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from factorygate.audit.inventory import Inventory
from factorygate.inputs.kubernetes import is_kubernetes_object, read_file

SUFFIXES = (".yaml", ".yml", ".json")
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
MAX_FILES = 100_000
STREAM_JSON_BYTES = 8 * 1024 * 1024  # JSON documents larger than this are read item by item


def read_snapshot(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Inventory:
    """The objects of a snapshot file or directory."""
    inv = Inventory(cluster=path)
    root = Path(path)
    if root.is_dir():
        files: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: inv.errors.append(f"{path}: {e}")):
            dirnames.sort()
            files += [Path(dirpath, n) for n in sorted(filenames) if n.endswith(SUFFIXES)]
            if len(files) > MAX_FILES:
                inv.errors.append(f"{path}: more than {MAX_FILES:,} files; read the first {MAX_FILES:,}")
                files = files[:MAX_FILES]
                break
        if not files:
            inv.errors.append(f"{path}: no .yaml, .yml or .json file in the directory")
    elif root.exists():
        files = [root]
    else:
        inv.errors.append(f"{path}: no such file or directory")
        files = []
    for f in files:
        read_snapshot_file(inv, f, max_bytes)
    inv.listed = set(inv.objects)
    return inv


def read_snapshot_file(inv: Inventory, file: Path, max_bytes: int) -> None:
    name = str(file)
    data = read_file(file, max_bytes)
    if not isinstance(data, bytes):
        inv.errors.append(f"{name}: {data.message}")
        return
    before = sum(len(v) for v in inv.objects.values())
    head = data.lstrip()[:1]
    if head == b"{" and len(data) > STREAM_JSON_BYTES:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            del data  # the text and the objects, never the bytes too: peak memory stays near the objects' size
            counts = {k: len(v) for k, v in inv.objects.items()}
            try:
                seen_list = _add_json_stream(inv, text, name)
            except (ValueError, IndexError, RecursionError):
                _rollback(inv, counts)
                data = text.encode("utf-8")  # not JSON after all: the loaders below say why
            else:
                if not seen_list:
                    _none_found(inv, name, before)
                return
    if head in (b"{", b"["):
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # YAML flow style, or broken JSON: the YAML loader says which, with a line
        else:
            del data
            if not _add(inv, doc, name, 1):
                _none_found(inv, name, before)
            return
    from factorygate.inputs.safeyaml import LoadedDocument, YamlProblem, load_documents

    seen_list = False
    for item in load_documents(data):
        if isinstance(item, YamlProblem):
            line = f":{item.line}" if item.line else ""
            inv.errors.append(f"{name}{line}: {item.message}")
            return
        if isinstance(item, LoadedDocument):
            seen_list |= _add(inv, item.data, name, item.line, item.node)
    if not seen_list:
        _none_found(inv, name, before)


_WS = " \t\r\n"


def _add_json_stream(inv: Inventory, text: str, name: str) -> bool:
    """File the objects of a large JSON document (``kubectl get -o json``) one ``items`` element at a time:
    parsing the whole document at once holds the parser's tree, the bytes and the objects together
    (over 4x the file). True when the document is a List. Raises ValueError when the text is not JSON."""
    import json

    decoder = json.JSONDecoder()
    n = len(text)
    top: dict[str, Any] = {}
    pos = _skip(text, 0)
    if text[pos] != "{":
        raise ValueError("not an object")
    pos = _skip(text, pos + 1)
    items_seen = False
    while pos < n and text[pos] != "}":
        key, pos = decoder.raw_decode(text, pos)
        pos = _skip(text, pos)
        if text[pos] != ":":
            raise ValueError("expected ':'")
        pos = _skip(text, pos + 1)
        if key == "items" and text[pos] == "[":
            items_seen = True
            pos = _skip(text, pos + 1)
            while text[pos] != "]":
                obj, pos = decoder.raw_decode(text, pos)
                if is_kubernetes_object(obj):
                    inv.add(obj, name, 1)
                pos = _skip(text, pos)
                if text[pos] == ",":
                    pos = _skip(text, pos + 1)
                elif text[pos] != "]":
                    raise ValueError("expected ',' or ']'")
            pos += 1
        else:
            top[str(key)], pos = decoder.raw_decode(text, pos)
        pos = _skip(text, pos)
        if text[pos] == ",":
            pos = _skip(text, pos + 1)
        elif text[pos] != "}":
            raise ValueError("expected ',' or '}'")
    if pos >= n or text[pos + 1 :].strip(_WS):
        raise ValueError("trailing data")
    if items_seen:  # a List (kubectl's List, or a typed PodList ...)
        return True
    if is_kubernetes_object(top):
        inv.add(top, name, 1)
    return False


def _rollback(inv: Inventory, counts: dict[str, int]) -> None:
    """Forget the objects filed since ``counts`` was taken (a document that turned out malformed)."""
    for key in list(inv.objects):
        keep = counts.get(key, 0)
        for obj in inv.objects[key][keep:]:
            inv.origins.pop(id(obj), None)
        if keep:
            del inv.objects[key][keep:]
        else:
            del inv.objects[key]


def _skip(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in _WS:
        pos += 1
    if pos >= n:
        raise ValueError("unexpected end of JSON")
    return pos


def _none_found(inv: Inventory, name: str, before: int) -> None:
    if sum(len(v) for v in inv.objects.values()) == before:
        inv.errors.append(f"{name}: no Kubernetes object (expected the output of kubectl get -o yaml)")


def _add(inv: Inventory, doc: Any, name: str, line: int, node: Any = None) -> bool:
    """File one document: a List's items (each with its line when the node tree is at hand) or an object.
    True when the document is a List (an empty List is a valid snapshot of nothing)."""
    if isinstance(doc, list):  # a JSON array of objects
        for obj in doc:
            if is_kubernetes_object(obj):
                inv.add(obj, name, line)
        return False
    if not isinstance(doc, dict):
        return False
    items = doc.get("items")
    if isinstance(items, list) and str(doc.get("kind", "List")).endswith("List"):
        lines = _item_lines(node, len(items))
        for i, obj in enumerate(items):
            if is_kubernetes_object(obj):
                inv.add(obj, name, lines[i] if lines else line)
        return True
    if is_kubernetes_object(doc):
        inv.add(doc, name, line)
    return False


def _item_lines(node: Any, n: int) -> list[int] | None:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return None
    items = next((v for k, v in node.value if getattr(k, "value", None) == "items"), None)
    if not isinstance(items, yaml.SequenceNode) or len(items.value) != n:
        return None
    return [v.start_mark.line + 1 for v in items.value]
