"""``factorygate bundle push|pull``: signed bundles of Kubernetes manifests (Flux OCI artifacts)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from factorygate.argtypes import megabytes
from factorygate.oci.registry_args import add_registry_arguments

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2

if TYPE_CHECKING:
    from factorygate.oci.registry import RegistryOptions


def _push_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="DIR|FILE|-", help="manifests: a directory, a kustomization, a file, or - (stdin)")
    p.add_argument("ref", metavar="REF", help="where to push: host[:port]/repository[:tag] (tag default: latest)")
    p.add_argument(
        "--key", required=True, metavar="KEY", help="cosign private key (passphrase: FACTORYGATE_KEY_PASSWORD)"
    )
    p.add_argument(
        "--kustomize",
        choices=("render", "source"),
        default="render",
        help="a directory with kustomization.yaml: ship `kubectl kustomize` output as manifests.yaml (render, "
        "default) or the sources for Flux to build (source; the image lock still comes from the rendered output)",
    )
    p.add_argument("--name", default="manifests.yaml", help="file name for stdin input (default manifests.yaml)")
    p.add_argument("--source", dest="source_url", metavar="URL", help="org.opencontainers.image.source (e.g. git URL)")
    p.add_argument("--revision", metavar="REV", help="org.opencontainers.image.revision (e.g. main@sha1:<commit>)")
    p.add_argument(
        "--created",
        metavar="RFC3339",
        help="org.opencontainers.image.created (default: SOURCE_DATE_EPOCH when set, else now)",
    )
    p.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE", help="extra manifest annotation")
    p.add_argument(
        "--allow-unresolved",
        action="store_true",
        help="record images whose digest cannot be resolved as unresolved instead of refusing the bundle",
    )
    p.add_argument("--lock-file", metavar="PATH", help="also write the image lock here")
    add_registry_arguments(p)


def _pull_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", metavar="REF", help="host[:port]/repository[:tag][@digest]")
    p.add_argument(
        "--key",
        required=True,
        action="append",
        metavar="KEY.pub",
        help="trusted cosign public key (repeat for several; one must verify)",
    )
    p.add_argument("--output", "-o", default=".", metavar="DIR", help="where to write the files (default: .)")
    p.add_argument("--force", action="store_true", help="overwrite files that exist in DIR")
    p.add_argument("--lock-file", metavar="PATH", help="write the image lock here (default DIR/images.lock.json)")
    p.add_argument(
        "--max-bundle-size",
        type=megabytes,
        default=64 * 1024 * 1024,
        metavar="MiB",
        help="refuse a compressed content layer larger than this (default 64)",
    )
    add_registry_arguments(p)


def add_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    _push_arguments(
        actions.add_parser("push", help="pack manifests + image lock into a Flux OCI artifact, push it, sign it")
    )
    _pull_arguments(actions.add_parser("pull", help="verify a bundle's signature, then unpack it"))


def _registry_options(args: argparse.Namespace) -> RegistryOptions:
    from factorygate.oci.registry_args import registry_options

    return registry_options(args, stdin_taken=args.action == "push" and args.source == "-")


def _say(text: str) -> None:
    print(f"factorygate: {text}", file=sys.stderr)


def run_push(args: argparse.Namespace) -> int:
    from factorygate.supply import keys
    from factorygate.supply.bundle import build_artifact, bundle_annotations, push_artifact
    from factorygate.supply.bundle_archive import BundleFile, write_files
    from factorygate.supply.bundle_lock import (
        build_lock,
        encode_lock,
        find_images_in_directory,
        find_images_in_files,
        registry_resolver,
    )
    from factorygate.supply.bundle_source import collect, is_kustomization

    opts = _registry_options(args)
    annotations = bundle_annotations(args.created, args.source_url, args.revision, args.annotation)
    files, rendered = collect(args.source, kustomize=args.kustomize, name=args.name)
    source_dir = Path(args.source)
    if args.source != "-" and source_dir.is_dir() and not rendered:
        uses = find_images_in_directory(source_dir)  # kustomizations below are rendered for the lock
    else:
        uses = find_images_in_files(files)
    if args.source != "-" and source_dir.is_dir() and rendered:
        _say(f"{args.source}: kustomization rendered into manifests.yaml")
    elif args.source != "-" and source_dir.is_dir() and is_kustomization(source_dir):
        _say(f"{args.source}: kustomization shipped as sources; the image lock is from its rendered output")
    lock = build_lock(uses, registry_resolver(opts), args.allow_unresolved)
    for entry in lock:
        if entry.digest is None:
            _say(f"warning: image {entry.reference!r} left unresolved ({entry.problem})")
    artifact = build_artifact(files, lock, annotations, f"bundle {args.ref}")
    key = keys.load_private_key(args.key, keys.read_password(f"Enter password for private key {args.key}: "))
    pushed = push_artifact(artifact, args.ref, opts, key)
    if args.lock_file:
        target = Path(args.lock_file)
        write_files([BundleFile(target.name, encode_lock(lock))], target.parent, args.lock_file, force=True)
    _say(
        f"pushed {pushed.repository}:{pushed.tag} ({pushed.files} files, {pushed.images} images locked, "
        f"content {pushed.content_digest}); signed {pushed.digest}"
    )
    print(f"{pushed.repository}@{pushed.digest}")
    return EXIT_OK


def run_pull(args: argparse.Namespace) -> int:
    from factorygate.supply import keys
    from factorygate.supply.bundle import pull_bundle
    from factorygate.supply.cosign import SignatureError

    trusted = [keys.load_public_key(k) for k in args.key]
    opts = _registry_options(args)
    try:
        pulled = pull_bundle(
            args.ref,
            opts,
            trusted,
            Path(args.output),
            force=args.force,
            lock_path=Path(args.lock_file) if args.lock_file else None,
            max_bundle_bytes=args.max_bundle_size,
        )
    except SignatureError as e:
        _say(f"bundle {args.ref}: refused: {e.reason}")
        return EXIT_FAIL
    lock = "" if pulled.lock is not None else "; it carries no image lock"
    _say(
        f"verified {pulled.repository}@{pulled.digest} (signer {pulled.fingerprint}); "
        f"wrote {len(pulled.files)} files to {args.output}{lock}"
    )
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    if args.action == "push":
        return run_push(args)
    return run_pull(args)
