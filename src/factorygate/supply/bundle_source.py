"""What goes into a bundle: the files of a directory, a rendered kustomization, or stdin.

* a directory: every regular file beneath it, except hidden files and directories (``.git``, ``.env``);
  a symbolic link, FIFO or device is an error (a bundle holds the bytes that were reviewed, nothing
  that points elsewhere);
* a directory holding ``kustomization.yaml``: by default the output of ``kubectl kustomize`` as one
  file, ``manifests.yaml`` (``--kustomize render``), or its sources as they are
  (``--kustomize source``, for Flux's kustomize-controller to build);
* ``-``: standard input as one file (``--name``, default ``manifests.yaml``).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

from factorygate.inputs.kubernetes import KUSTOMIZATION_FILES, KUSTOMIZE_TIMEOUT_S, find_kubectl
from factorygate.supply.bundle_archive import BundleError, BundleFile, check_relative_path

RENDERED_NAME = "manifests.yaml"
STDIN_NAME = "manifests.yaml"
DEFAULT_MAX_INPUT_BYTES = 256 << 20  # all files together


def is_kustomization(directory: Path) -> bool:
    return any((directory / name).is_file() for name in KUSTOMIZATION_FILES)


def read_stdin(name: str, max_bytes: int = DEFAULT_MAX_INPUT_BYTES, stream: BinaryIO | None = None) -> list[BundleFile]:
    path = check_relative_path(name, "--name")
    data = (stream if stream is not None else sys.stdin.buffer).read(max_bytes + 1)
    if len(data) > max_bytes:
        raise BundleError(f"-: standard input is over the {max_bytes}-byte limit")
    if not data:
        raise BundleError("-: standard input is empty")
    return [BundleFile(path, data)]


def read_directory(root: Path, max_bytes: int = DEFAULT_MAX_INPUT_BYTES) -> list[BundleFile]:
    """Every non-hidden regular file under ``root`` with its path relative to ``root`` (POSIX), sorted."""
    files: list[BundleFile] = []
    total = 0
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=errors.append):
        if errors:
            raise _walk_error(errors[0])
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                raise BundleError(
                    f"{full}: a symbolic link; a bundle holds regular files only (copy what it points to)"
                )
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError as e:
                raise BundleError(f"{full}: cannot read: {e.strerror or e}") from None
            if not stat.S_ISREG(st.st_mode):
                kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
                raise BundleError(f"{full}: {kind}; a bundle holds regular files only")
            total += st.st_size
            if total > max_bytes:
                raise BundleError(f"{root}: more than {max_bytes} bytes of files")
            try:
                with open(full, "rb") as f:
                    data = f.read(st.st_size + 1)
            except OSError as e:
                raise BundleError(f"{full}: cannot read: {e.strerror or e}") from None
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            files.append(BundleFile(check_relative_path(rel, str(root)), data))
    if errors:
        raise _walk_error(errors[0])
    if not files:
        raise BundleError(f"{root}: no files to bundle (hidden files are left out)")
    return files


def _walk_error(err: OSError) -> BundleError:
    return BundleError(f"{err.filename}: cannot read directory: {err.strerror or err}")


def render_kustomization(directory: Path, max_bytes: int = DEFAULT_MAX_INPUT_BYTES) -> bytes:
    """``kubectl kustomize DIR`` output; a BundleError naming the directory when it cannot be rendered."""
    from factorygate.inputs.kubernetes import _kubectl_error

    kubectl = find_kubectl()
    if kubectl is None:
        raise BundleError(
            f"{directory}: holds a kustomization but kubectl is not installed; install kubectl or use "
            "--kustomize source to ship the sources for Flux to build"
        )
    try:
        proc = subprocess.run(
            [kubectl, "kustomize", str(directory)], capture_output=True, timeout=KUSTOMIZE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BundleError(f"{directory}: kubectl kustomize failed ({e})") from None
    if proc.returncode != 0:
        raise BundleError(f"{directory}: kubectl kustomize failed: {_kubectl_error(proc.stderr, proc.returncode)}")
    if len(proc.stdout) > max_bytes:
        raise BundleError(f"{directory}: rendered kustomization is over the {max_bytes}-byte limit")
    if not proc.stdout.strip():
        raise BundleError(f"{directory}: the kustomization renders no objects")
    return proc.stdout


def collect(
    source: str,
    *,
    kustomize: str = "render",
    name: str = STDIN_NAME,
    max_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    stdin: BinaryIO | None = None,
) -> tuple[list[BundleFile], bool]:
    """The files of a bundle from ``source`` and whether they are a rendered kustomization."""
    if source == "-":
        return read_stdin(name, max_bytes, stdin), False
    path = Path(source)
    if path.is_file():
        if path.is_symlink():
            raise BundleError(f"{source}: a symbolic link; give the file it points to")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise BundleError(f"{source}: cannot read: {e.strerror or e}") from None
        if len(data) > max_bytes:
            raise BundleError(f"{source}: over the {max_bytes}-byte limit")
        return [BundleFile(check_relative_path(path.name, source), data)], False
    if not path.is_dir():
        raise BundleError(f"{source}: no such file or directory")
    if kustomize == "render" and is_kustomization(path):
        return [BundleFile(RENDERED_NAME, render_kustomization(path, max_bytes))], True
    return read_directory(path, max_bytes), False
