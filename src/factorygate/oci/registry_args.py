"""The registry options every registry-facing command takes: `image`, `sign`, `verify`, `attest`,
`verify-attestation` and `bundle` (one table, so they mean the same everywhere)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from factorygate.errors import FactorygateError
from factorygate.oci.registry import RegistryOptions


def add_registry_arguments(
    parser: argparse.ArgumentParser,
    insecure_help: str = "allow plain HTTP to this loopback registry",
) -> None:
    g = parser.add_argument_group("registry")
    g.add_argument("--username", help="registry user (else ~/.docker/config.json, else anonymous)")
    g.add_argument("--password-stdin", action="store_true", help="read the registry password from stdin")
    g.add_argument("--ca-file", metavar="FILE", help="trust this CA bundle besides the system's")
    g.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]", help=insecure_help)
    g.add_argument("--timeout", type=float, default=30.0, metavar="S", help="registry timeout per request (30)")


def registry_options(args: argparse.Namespace, stdin_taken: bool = False, **more: Any) -> RegistryOptions:
    """RegistryOptions from the parsed table; ``stdin_taken``: the command reads its input from stdin,
    so the password cannot come from there too. ``more``: further RegistryOptions fields (platform)."""
    password = None
    if args.password_stdin:
        if not args.username:
            raise FactorygateError("--password-stdin needs --username")
        if stdin_taken:
            raise FactorygateError("--password-stdin cannot be used when the input comes from stdin")
        password = sys.stdin.readline().rstrip("\r\n")
    return RegistryOptions(
        username=args.username,
        password=password,
        ca_file=args.ca_file,
        insecure_registries=tuple(args.insecure_registry),
        timeout=args.timeout,
        **more,
    )
