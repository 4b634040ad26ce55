"""Kubernetes inputs: files, directories, stdin and kustomizations, turned into manifests.

Loaders never judge what they read. They yield :class:`Manifest` (one Kubernetes object with
the node tree needed for line numbers) or :class:`LoadError` (one line naming the input).
"""

from __future__ import annotations

import bisect
import json
import os
import re
import stat
import sys
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from factorygate.inputs.dockerfile import Dockerfile, DockerfileError, parse_dockerfile

if TYPE_CHECKING:  # PyYAML is imported with the first manifest: a Dockerfile-only scan never needs it
    import yaml

    from factorygate.inputs.safeyaml import LoadedDocument, YamlProblem

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
KUSTOMIZE_TIMEOUT_S = 120
_HELM_SOURCE = re.compile(rb"^# Source: (.+?)\s*$", re.MULTILINE)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class Manifest(NamedTuple):
    """One Kubernetes object as read from an input."""

    data: Mapping[str, Any]
    file: str
    line: int
    node: yaml.Node | None
    source: str | None = None  # Helm "# Source:" template, or "kustomize"

    def line_of(self, path: str) -> int:
        """The 1-based line of the deepest existing node on a JSON path such as ``spec.containers[0].image``."""
        if self.node is None:  # JSON read without a node tree, or an admission request: no lines to find
            return self.line
        return self.line_at(_split_path(path))

    def line_at(self, parts: Sequence[str | int]) -> int:
        """Like :meth:`line_of`, for a path given as keys and indexes (keys may contain dots)."""
        node = self.node
        if node is None:
            return self.line
        import yaml

        line = node.start_mark.line + 1
        for part in parts:
            nxt: yaml.Node | None = None
            at: yaml.Node | None = None  # the node whose line names this step: a key, or a list item
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for k, v in node.value:
                    if getattr(k, "value", None) == part:
                        nxt, at = v, k
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                nxt = at = node.value[part]
            if nxt is None or at is None:
                break
            node = nxt
            line = at.start_mark.line + 1
        return line


class LoadError(NamedTuple):
    """An input that could not be read or parsed."""

    file: str
    message: str
    line: int | None = None


class Skipped(NamedTuple):
    """A Kubernetes object of a kind the caller did not ask for (counted, not parsed further)."""

    file: str
    line: int


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _split_path(path: str) -> list[str | int]:
    return [name if name else int(idx) for name, idx in _PATH_PART.findall(path)]


def is_kubernetes_object(doc: object) -> bool:
    """A mapping with string apiVersion and kind: everything else is skipped quietly."""
    return isinstance(doc, dict) and isinstance(doc.get("apiVersion"), str) and isinstance(doc.get("kind"), str)


def _helm_sources(data: bytes) -> tuple[list[int], list[str]] | None:
    """Lines (1-based) of ``# Source:`` comments that helm template writes before each document."""
    if b"# Source: " not in data:
        return None
    lines, names = [], []
    for m in _HELM_SOURCE.finditer(data):
        lines.append(data.count(b"\n", 0, m.start()) + 1)
        names.append(m.group(1).decode("utf-8", "replace"))
    return lines, names


def root_kind(node: yaml.Node) -> str | None:
    """The ``kind`` of a composed document when it looks like a Kubernetes object, else None."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return None
    kind = api = None
    for k, v in node.value:
        key = k.value if isinstance(k, yaml.ScalarNode) else None
        if key == "kind" and isinstance(v, yaml.ScalarNode):
            kind = v.value
        elif key == "apiVersion" and isinstance(v, yaml.ScalarNode):
            api = v.value
    return kind if kind and api else None


def _has_merge_key(node: yaml.Node) -> bool:
    import yaml

    return isinstance(node, yaml.MappingNode) and any(k.tag == _MERGE_TAG for k, _ in node.value)


def manifests_from_bytes(
    data: bytes, name: str, source: str | None = None, kinds: Container[str] | None = None
) -> Iterator[Manifest | LoadError | Skipped]:
    """Parse a YAML/JSON stream into Kubernetes objects (``List`` kinds are expanded).

    With ``kinds``, objects of other kinds are yielded as :class:`Skipped` without being constructed.
    """
    from factorygate.inputs.safeyaml import SkippedDocument, YamlProblem, load_documents

    helm = _helm_sources(data) if source is None else None
    want = None
    if kinds is not None:

        def want(node: yaml.Node) -> bool:
            kind = root_kind(node)
            if kind is None:
                # `<<: *base` may supply kind or apiVersion: construct it and look
                return _has_merge_key(node)
            return kind in kinds or kind.endswith("List")

    loaded_any = False
    for item in load_documents(data, want):
        if isinstance(item, YamlProblem):
            if not loaded_any and name.endswith(".json") and item.message.startswith("not valid YAML"):
                # JSON that libyaml refuses (surrogate-pair escapes such as "\ud83d\ude00"): read it
                # as JSON, without line numbers
                yield from _from_json(data, name, item)
                return
            yield LoadError(name, item.message, item.line)
            return
        loaded_any = True
        if isinstance(item, SkippedDocument):
            if root_kind(item.node) is not None:
                yield Skipped(name, item.line)
            continue
        yield from _objects(item, name, source, helm)


def _from_json(data: bytes, name: str, problem: YamlProblem) -> Iterator[Manifest | LoadError | Skipped]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        yield LoadError(name, problem.message, problem.line)
        return
    items = value.get("items") if is_kubernetes_object(value) and value["kind"].endswith("List") else [value]
    for obj in items if isinstance(items, list) else []:
        if is_kubernetes_object(obj):
            yield Manifest(obj, name, 1, None)


def _objects(
    doc: LoadedDocument, name: str, source: str | None, helm: tuple[list[int], list[str]] | None
) -> Iterator[Manifest]:
    if not is_kubernetes_object(doc.data):
        return
    import yaml

    if helm is not None:
        i = bisect.bisect_right(helm[0], doc.line) - 1
        source = helm[1][i] if i >= 0 else None
    data = doc.data
    if data["kind"].endswith("List") and isinstance(data.get("items"), list):
        items_node = None
        if isinstance(doc.node, yaml.MappingNode):
            items_node = next((v for k, v in doc.node.value if getattr(k, "value", None) == "items"), None)
        for i, item in enumerate(data["items"]):
            if not is_kubernetes_object(item):
                continue
            node = None
            if isinstance(items_node, yaml.SequenceNode) and i < len(items_node.value):
                node = items_node.value[i]
            line = node.start_mark.line + 1 if node is not None else doc.line
            yield Manifest(item, name, line, node, source)
        return
    yield Manifest(data, name, doc.line, doc.node, source)


def _read_bounded(stream: BinaryIO, name: str, max_bytes: int) -> bytes | LoadError:
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        return LoadError(name, f"input is larger than the {max_bytes // (1024 * 1024)} MiB limit (--max-file-size)")
    return data


def read_file(path: Path, max_bytes: int) -> bytes | LoadError:
    """Read a whole file, refusing it when it is over ``max_bytes``."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return LoadError(
                name,
                f"file is {size / (1024 * 1024):.1f} MiB, over the {max_bytes // (1024 * 1024)} MiB limit"
                " (--max-file-size)",
            )
        with path.open("rb") as f:
            return _read_bounded(f, name, max_bytes)
    except OSError as e:
        return LoadError(name, f"cannot read: {e.strerror or e}")


def find_kubectl() -> str | None:
    """kubectl on PATH, or next to the running interpreter (a virtualenv's bin/)."""
    import shutil  # here, with subprocess below: only kustomizations need them (import time)

    found = shutil.which("kubectl")
    if found:
        return found
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


_KLOG_PREFIX = re.compile(r'^[EWI]\d{4} [\d:.]+\s+\d+ \S+\] (?:"command failed" err=)?')


def _kubectl_error(stderr: bytes, returncode: int) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return f"exit code {returncode}"
    # klog writes `... "command failed" err=<` and the message on the following lines
    first = _KLOG_PREFIX.sub("", lines[0]).strip('"')
    msg = lines[1] if first in ("<", "err=<") and len(lines) > 1 else first
    msg = " ".join(msg.split())
    return msg if len(msg) <= 300 else msg[:297] + "..."


class ReadOptions(NamedTuple):
    """How inputs are read."""

    kustomize: bool = True
    max_bytes: int = DEFAULT_MAX_BYTES
    kinds: Container[str] | None = None  # construct only these kinds (None: all)
    input_type: str = "auto"  # auto (by file name) | kubernetes | dockerfile


_DOCKERFILE_NAME = re.compile(
    r"^(docker|container)file([._-][\w.-]*)?$|^[\w.-]+\.(docker|container)file$", re.IGNORECASE
)
_NOT_DOCKERFILE_SUFFIXES = (".py", ".go", ".md", ".txt", ".sh", ".yaml", ".yml", ".json", ".toml", ".rs", ".js")


def is_dockerfile_name(name: str) -> bool:
    """Dockerfile, Containerfile, Dockerfile.<x>, Dockerfile-<x>, Dockerfile_<x>, <x>.Dockerfile (and the
    Containerfile forms), case-insensitive; not source or data files such as dockerfile_test.py."""
    return bool(_DOCKERFILE_NAME.match(name)) and not name.lower().endswith(_NOT_DOCKERFILE_SUFFIXES)


def _unit_for_file(path: str, name: str, walked: bool, opts: ReadOptions) -> Unit | None:
    """The unit a file is, by --type and its name; None when a directory walk skips it."""
    if opts.input_type == "dockerfile":
        dockerfile = not walked or is_dockerfile_name(name)
        if not dockerfile:
            return None
    else:
        dockerfile = opts.input_type == "auto" and is_dockerfile_name(name)
    if dockerfile:
        return Unit("dockerfile", path)
    if walked and (not name.endswith(MANIFEST_SUFFIXES) or name.startswith(".")):
        return None
    return Unit("file", path)


def render_kustomization(directory: Path, opts: ReadOptions) -> Iterator[Manifest | LoadError | Skipped] | LoadError:
    """Render a kustomization with ``kubectl kustomize``; a LoadError when it cannot be rendered."""
    import subprocess

    name = str(directory)
    kubectl = find_kubectl()
    if kubectl is None:
        return LoadError(
            name,
            "holds a kustomization but kubectl is not installed: install kubectl, pipe `kustomize build` "
            "output to `factorygate scan -`, or use --kustomize never; its files were read as plain manifests",
        )
    try:
        proc = subprocess.run(
            [kubectl, "kustomize", str(directory)],
            capture_output=True,
            timeout=KUSTOMIZE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return LoadError(name, f"kubectl kustomize failed ({e}); its files were read as plain manifests")
    if proc.returncode != 0:
        return LoadError(
            name,
            f"kubectl kustomize failed: {_kubectl_error(proc.stderr, proc.returncode)}; "
            "its files were read as plain manifests",
        )
    if len(proc.stdout) > opts.max_bytes:
        return LoadError(name, f"rendered kustomization is over the {opts.max_bytes // (1024 * 1024)} MiB limit")
    return manifests_from_bytes(proc.stdout, name, source="kustomize", kinds=opts.kinds)


def _has_kustomization(names: Iterable[str]) -> bool:
    return any(n in KUSTOMIZATION_FILES for n in names)


def _walk_errors(errors: list[OSError]) -> Iterator[LoadError]:
    """Directories os.walk could not list (it would skip them silently)."""
    for e in errors:
        yield LoadError(str(e.filename), f"cannot read directory: {e.strerror or e}")
    errors.clear()


def _not_regular(path: str) -> LoadError | None:
    """A file met in a directory walk that is a FIFO, socket or device (or a link to one, such as
    ``x.yaml -> /dev/stdin``): reading it would block or never end. Paths named on the command line
    are read as given (``<(helm template ...)`` is a FIFO)."""
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return None  # read_file reports why it cannot be read
    return None if regular else LoadError(path, "not a regular file (a FIFO, socket or device); not read")


class Unit(NamedTuple):
    """One independent piece of input: loading it needs nothing from the others, so units can be
    loaded in any process. ``kind`` is "file" (Kubernetes YAML/JSON), "dockerfile", "kustomization"
    (a directory to render), "bytes" or "dockerfile-bytes" (stdin, already read) or "error"."""

    kind: str
    name: str
    data: bytes | None = None
    error: LoadError | None = None


def _walk(root: Path, opts: ReadOptions) -> Iterator[Unit]:
    """Files under ``root`` in a stable order; a directory holding a kustomization is one unit
    (what lies beneath it is part of the kustomization)."""
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=errors.append):
        yield from (Unit("error", str(e.file), error=e) for e in _walk_errors(errors))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if opts.kustomize and _has_kustomization(filenames):
            dirnames[:] = []
            yield Unit("kustomization", dirpath)
            continue
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            unit = _unit_for_file(path, name, True, opts)
            if unit is not None:
                problem = _not_regular(path)
                yield unit if problem is None else Unit("error", path, error=problem)
    yield from (Unit("error", str(e.file), error=e) for e in _walk_errors(errors))


def plan_inputs(paths: Iterable[str], opts: ReadOptions, stdin: BinaryIO | None = None) -> Iterator[Unit]:
    """The units of work the inputs consist of, in order (stdin is read here)."""
    for raw in paths:
        if raw == "-":
            data = _read_bounded(stdin if stdin is not None else sys.stdin.buffer, "-", opts.max_bytes)
            kind = "dockerfile-bytes" if opts.input_type == "dockerfile" else "bytes"
            yield Unit("error", "-", error=data) if isinstance(data, LoadError) else Unit(kind, "-", data)
            continue
        path = Path(raw)
        if path.is_dir():
            yield from _walk(path, opts)
        elif path.exists():
            yield _unit_for_file(raw, path.name, False, opts) or Unit("file", raw)
        else:
            yield Unit("error", raw, error=LoadError(raw, "no such file or directory"))


def load_unit(unit: Unit, opts: ReadOptions) -> Iterator[Manifest | LoadError | Skipped | Dockerfile]:
    """The objects of one unit; problems are yielded, never raised. When a kustomization cannot be
    rendered, the error is reported and its files are read as plain manifests (nothing goes unchecked)."""
    if unit.error is not None:
        yield unit.error
    elif unit.kind in ("dockerfile", "dockerfile-bytes"):
        data = unit.data if unit.data is not None else read_file(Path(unit.name), opts.max_bytes)
        if isinstance(data, LoadError):
            yield data
            return
        parsed = parse_dockerfile(data, unit.name)
        yield LoadError(parsed.path, parsed.message, parsed.line) if isinstance(parsed, DockerfileError) else parsed
    elif unit.kind == "bytes":
        yield from manifests_from_bytes(unit.data or b"", unit.name, kinds=opts.kinds)
    elif unit.kind == "file":
        yield from _from_file(Path(unit.name), opts)
    elif unit.kind == "kustomization":
        here = Path(unit.name)
        rendered = render_kustomization(here, opts)
        if not isinstance(rendered, LoadError):
            yield from rendered
            return
        yield rendered
        for plain in _walk(here, opts._replace(kustomize=False)):
            yield from load_unit(plain, opts)


def iter_manifests(
    paths: Iterable[str], opts: ReadOptions | None = None, *, stdin: BinaryIO | None = None
) -> Iterator[Manifest | LoadError | Skipped | Dockerfile]:
    """Every Kubernetes object of every input, in order; problems are yielded, never raised."""
    opts = opts or ReadOptions()
    for unit in plan_inputs(paths, opts, stdin):
        yield from load_unit(unit, opts)


def _from_file(path: Path, opts: ReadOptions) -> Iterator[Manifest | LoadError | Skipped]:
    data = read_file(path, opts.max_bytes)
    if isinstance(data, LoadError):
        yield data
        return
    yield from manifests_from_bytes(data, str(path), kinds=opts.kinds)
