"""``factorygate key generate | sign | verify | attest | verify-attestation`` (cosign-compatible).

Exit codes: 0 done / verified, 1 verification failed (unsigned, tampered, wrong key), 2 error (bad input,
unreachable registry, wrong passphrase).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factorygate.argtypes import iso_datetime
from factorygate.oci.registry_args import add_registry_arguments, registry_options

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from factorygate.oci.push import RegistryWriter
    from factorygate.oci.reference import Reference

EXIT_OK, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def add_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    if command == "key":
        actions = parser.add_subparsers(dest="key_action", metavar="ACTION", required=True)
        gen = actions.add_parser("generate", help="write PREFIX.key (encrypted) and PREFIX.pub (ECDSA P-256)")
        gen.add_argument("prefix", metavar="PREFIX", help="file name prefix, e.g. cosign -> cosign.key, cosign.pub")
        gen.add_argument("--force", action="store_true", help="overwrite existing key files")
        return
    parser.add_argument("image", metavar="IMAGE_REF", help="host[:port]/repo[:tag][@digest]")
    if command in ("sign", "attest"):
        parser.add_argument("--key", required=True, metavar="FILE", help="private key (cosign or PKCS#8 PEM)")
    else:
        parser.add_argument(
            "--key", required=True, action="append", metavar="FILE.pub", help="trusted public key (repeatable)"
        )
        parser.add_argument("--format", "-f", choices=("text", "json"), default="text", help="output (text)")
    if command == "sign":
        parser.add_argument(
            "-a",
            "--annotation",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="extra signed claim (the payload's optional section)",
        )
    if command == "attest":
        _attest_arguments(parser)
    if command == "verify-attestation":
        parser.add_argument(
            "--type", metavar="TYPE", help="predicate type: slsaprovenance1, gate or a URI (default: any)"
        )
    add_registry_arguments(parser)


def _attest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--type", required=True, metavar="TYPE", help="slsaprovenance1 (build provenance), gate, or a URI"
    )
    parser.add_argument("--predicate", metavar="FILE", help="the predicate as a JSON file (for a URI --type)")
    g = parser.add_argument_group("gate (--type gate)")
    g.add_argument("--report", action="append", default=[], metavar="RESULT.json", help="factorygate JSON report")
    s = parser.add_argument_group("SLSA provenance (--type slsaprovenance1)")
    s.add_argument("--builder-id", metavar="URI", help="runDetails.builder.id, e.g. the CI system's URI")
    s.add_argument("--build-type", metavar="URI", help="buildDefinition.buildType")
    s.add_argument("--source-uri", metavar="URI", help="resolved dependency: the source, e.g. git+https://...")
    s.add_argument("--source-digest", metavar="ALG=HEX", help="its digest, e.g. gitCommit=1a2b...")
    s.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="externalParameters entry")
    s.add_argument("--invocation-id", metavar="ID", help="runDetails.metadata.invocationId (CI run URL or id)")
    s.add_argument("--started-on", type=iso_datetime, metavar="ISO-8601", help="build start")
    s.add_argument("--finished-on", type=iso_datetime, metavar="ISO-8601", help="build end")


def _pairs(values: list[str], option: str) -> dict[str, str]:
    from factorygate.errors import FactorygateError

    out: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise FactorygateError(f"{option} {value[:80]!r}: expected KEY=VALUE")
        out[key] = text
    return out


def run(args: argparse.Namespace) -> int:
    command = args.command
    if command == "key":
        return _key_generate(args)
    if command == "sign":
        return _sign(args)
    if command == "verify":
        return _verify(args)
    if command == "attest":
        return _attest(args)
    return _verify_attestation(args)


# ---- helpers ------------------------------------------------------------------------------------------------------


def _key_generate(args: argparse.Namespace) -> int:
    from factorygate.supply import keys

    password = keys.read_password("Enter passphrase for the private key: ", confirm=True)
    key_path, pub_path = keys.generate(args.prefix, password, overwrite=args.force)
    fp = keys.fingerprint(keys.load_public_key(pub_path))
    print(f"Private key written to {key_path}\nPublic key written to {pub_path}\nFingerprint: {fp}")
    return EXIT_OK


def _private_key(path: str) -> ec.EllipticCurvePrivateKey:
    from factorygate.supply import keys

    password = keys.read_password(f"Enter passphrase for {path}: ") if keys.is_encrypted(path) else None
    return keys.load_private_key(path, password)


def _public_keys(paths: list[str]) -> list[ec.EllipticCurvePublicKey]:
    from factorygate.supply import keys

    return [keys.load_public_key(p) for p in paths]


def _open(args: argparse.Namespace) -> tuple[RegistryWriter, Reference, str]:
    """The image's repository session, its parsed reference and the manifest digest it names."""
    from factorygate.oci.push import RegistryWriter
    from factorygate.oci.reference import parse_reference

    ref = parse_reference(args.image)
    writer = RegistryWriter(f"{ref.registry}/{ref.repository}", registry_options(args))
    try:
        digest = ref.digest or writer.resolve(ref.tag or "latest")
    except BaseException:
        writer.close()
        raise
    return writer, ref, digest


def _sign(args: argparse.Namespace) -> int:
    from factorygate.supply import cosign, keys

    key = _private_key(args.key)
    annotations = _pairs(args.annotation, "--annotation")
    writer, ref, digest = _open(args)
    with writer:
        sig_digest = cosign.sign_image(writer, writer.repository, digest, key, annotations or None)
    fp = keys.fingerprint(key.public_key())
    tag = cosign.signature_tag(digest)
    print(f"Signed {writer.repository}@{digest} with key {fp}")
    print(f"Signature: {writer.repository}:{tag} ({sig_digest})")
    if ref.digest is None:
        print(f"note: {args.image} was resolved to {digest}; deploy by digest", file=sys.stderr)
    return EXIT_OK


def _emit(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    if args.format == "json":
        json.dump(doc, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(text)


def _verify(args: argparse.Namespace) -> int:
    from factorygate.supply import cosign

    keys = _public_keys(args.key)
    writer, _, digest = _open(args)
    with writer:
        try:
            verified = cosign.verify_image(writer, writer.repository, digest, keys)
        except cosign.SignatureError as e:
            doc = {"image": args.image, "digest": digest, "verified": False, "unsigned": isinstance(e, cosign.Unsigned)}
            _emit(args, {**doc, "reason": e.reason}, f"NOT VERIFIED: {e.reason}")
            print(f"factorygate: verify: {e.reason}", file=sys.stderr)
            return EXIT_FAIL
    doc = {
        "image": args.image,
        "digest": verified.digest,
        "verified": True,
        "dockerReference": verified.docker_reference,
        "signer": verified.fingerprint,
        "annotations": verified.annotations,
    }
    _emit(
        args,
        doc,
        f"Verified {writer.repository}@{verified.digest}\n  docker-reference: {verified.docker_reference}\n"
        f"  signer key: {verified.fingerprint}",
    )
    return EXIT_OK


def _predicate_type(value: str) -> str:
    from factorygate.errors import FactorygateError
    from factorygate.supply.attest import PREDICATE_ALIASES

    if value in PREDICATE_ALIASES:
        return PREDICATE_ALIASES[value]
    if "://" not in value:
        known = ", ".join(sorted(PREDICATE_ALIASES))
        raise FactorygateError(f"--type {value[:80]!r}: give one of {known} or a predicate type URI")
    return value


def _predicate(args: argparse.Namespace, predicate_type: str) -> dict[str, Any]:
    from factorygate.errors import FactorygateError
    from factorygate.supply import attest

    if args.predicate:
        try:
            doc = json.loads(Path(args.predicate).read_bytes())
        except OSError as e:
            raise FactorygateError(f"--predicate {args.predicate}: cannot read ({e.strerror or e})") from None
        except ValueError:
            raise FactorygateError(f"--predicate {args.predicate}: not JSON") from None
        if not isinstance(doc, dict):
            raise FactorygateError(f"--predicate {args.predicate}: not a JSON object")
        return doc
    if predicate_type == attest.GATE_PREDICATE:
        return attest.gate_decision(args.report)
    if predicate_type == attest.SLSA_PROVENANCE_V1:
        digest = _pairs([args.source_digest], "--source-digest") if args.source_digest else None
        return attest.slsa_provenance(
            builder_id=args.builder_id or "",
            build_type=args.build_type or attest.DEFAULT_BUILD_TYPE,
            external_parameters=_pairs(args.param, "--param"),
            source_uri=args.source_uri,
            source_digest=digest,
            invocation_id=args.invocation_id,
            started_on=args.started_on,
            finished_on=args.finished_on,
        )
    raise FactorygateError(f"--type {predicate_type}: give the predicate with --predicate FILE")


def _attest(args: argparse.Namespace) -> int:
    from factorygate.supply import attest, keys

    predicate_type = _predicate_type(args.type)
    predicate = _predicate(args, predicate_type)
    key = _private_key(args.key)
    writer, _, digest = _open(args)
    with writer:
        att_digest = attest.attach(writer, writer.repository, digest, key, predicate_type, predicate)
    print(f"Attested {writer.repository}@{digest}: {predicate_type}")
    print(f"Signed with key {keys.fingerprint(key.public_key())}; stored as {att_digest}")
    if predicate_type == attest.GATE_PREDICATE:
        print(f"Gate decision: {predicate['decision']}")
    return EXIT_OK


def _verify_attestation(args: argparse.Namespace) -> int:
    from factorygate.supply import attest, cosign

    predicate_type = _predicate_type(args.type) if args.type else None
    keys = _public_keys(args.key)
    writer, _, digest = _open(args)
    with writer:
        try:
            found = attest.verify_attestations(writer, writer.repository, digest, keys, predicate_type)
        except cosign.SignatureError as e:
            doc = {"image": args.image, "digest": digest, "verified": False, "reason": e.reason}
            _emit(args, doc, f"NOT VERIFIED: {e.reason}")
            print(f"factorygate: verify-attestation: {e.reason}", file=sys.stderr)
            return EXIT_FAIL
    rows = [{"predicateType": a.predicate_type, "signer": a.fingerprint, "predicate": a.predicate} for a in found]
    lines = [f"Verified {len(found)} attestation(s) of {writer.repository}@{digest}"]
    for a in found:
        extra = f" decision={a.predicate.get('decision')}" if a.predicate_type == attest.GATE_PREDICATE else ""
        lines.append(f"  {a.predicate_type} signed by {a.fingerprint}{extra}")
    _emit(args, {"image": args.image, "digest": digest, "verified": True, "attestations": rows}, "\n".join(lines))
    return EXIT_OK
