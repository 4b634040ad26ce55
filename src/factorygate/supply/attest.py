"""in-toto attestations attached the way cosign attaches them (cosign ``specs/ATTESTATION_SPEC.md``).

An attestation is an in-toto Statement v1 (``_type`` ``https://in-toto.io/Statement/v1``, ``subject`` naming the
image by repository and sha256 digest, ``predicateType``, ``predicate``) in a DSSE envelope signed with the
signing key. The envelope is a layer (``application/vnd.dsse.envelope.v1+json``, annotations
``dev.cosignproject.cosign/signature: ""`` and ``predicateType``) of the OCI image manifest tagged
``sha256-<hex>.att``; attestations already there are kept.

Predicates factorygate writes:

* ``https://slsa.dev/provenance/v1`` — SLSA build provenance (buildDefinition + runDetails) for a build;
* :data:`GATE_PREDICATE` — the gate decision of factorygate reports (``pass``/``fail``/``error``) with the
  sha256 digest, exit code and blocking count of every JSON report it was based on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from factorygate import __version__
from factorygate.errors import FactorygateError
from factorygate.oci.digest import check_digest
from factorygate.supply import dsse
from factorygate.supply.cosign import (
    SIGNATURE_ANNOTATION,
    ArtifactStore,
    ArtifactWriter,
    SignatureError,
    Unsigned,
    append_layer,
    normalised_repository,
    signature_tag,
    strict_json,
    summarise_reasons,
)

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"  # what older cosign versions write; accepted when verifying
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
GATE_PREDICATE = "https://factorygate.dev/gate-decision/v1"
DEFAULT_BUILD_TYPE = "https://factorygate.dev/build/container-image/v1"
PREDICATE_ANNOTATION = "predicateType"
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024
MAX_REPORT_BYTES = 512 * 1024 * 1024
PREDICATE_ALIASES = {
    "slsaprovenance1": SLSA_PROVENANCE_V1,
    "slsaprovenance": SLSA_PROVENANCE_V1,
    "gate": GATE_PREDICATE,
}


class AttestationInputError(FactorygateError):
    """An input for an attestation (a report, a parameter) is missing or malformed."""


@dataclass(frozen=True)
class VerifiedAttestation:
    predicate_type: str
    predicate: dict[str, Any]
    fingerprint: str
    subject: list[dict[str, Any]]


def statement(name: str, digest: str, predicate_type: str, predicate: Mapping[str, Any]) -> bytes:
    algorithm, _, hexdigest = check_digest(digest, "subject digest").partition(":")
    doc = {
        "_type": STATEMENT_V1,
        "subject": [{"name": name, "digest": {algorithm: hexdigest}}],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=False).encode()


def attach(  # noqa: PLR0917 (the signature shape of cosign.sign_image, plus the predicate)
    writer: ArtifactWriter,
    docker_reference: str,
    digest: str,
    key: ec.EllipticCurvePrivateKey,
    predicate_type: str,
    predicate: Mapping[str, Any],
) -> str:
    """Sign a statement about ``digest`` and add it to ``sha256-<hex>.att``; the digest of that manifest."""
    envelope = dsse.seal(key, dsse.IN_TOTO_PAYLOAD, statement(docker_reference, digest, predicate_type, predicate))
    annotations = {SIGNATURE_ANNOTATION: "", PREDICATE_ANNOTATION: predicate_type}
    return append_layer(writer, signature_tag(digest, "att"), envelope, dsse.MEDIA_TYPE, annotations)


# ---- predicates ---------------------------------------------------------------------------------------------------


def _timestamp(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def slsa_provenance(
    *,
    builder_id: str,
    build_type: str = DEFAULT_BUILD_TYPE,
    external_parameters: Mapping[str, str] | None = None,
    source_uri: str | None = None,
    source_digest: Mapping[str, str] | None = None,
    invocation_id: str | None = None,
    started_on: dt.datetime | None = None,
    finished_on: dt.datetime | None = None,
) -> dict[str, Any]:
    """A SLSA Provenance v1 predicate (fields of the spec; empty optional ones left out)."""
    if not builder_id:
        raise AttestationInputError("SLSA provenance needs a builder id (--builder-id)")
    dependencies = []
    if source_uri:
        dep: dict[str, Any] = {"uri": source_uri}
        if source_digest:
            dep["digest"] = dict(source_digest)
        dependencies.append(dep)
    build: dict[str, Any] = {"buildType": build_type, "externalParameters": dict(external_parameters or {})}
    if dependencies:
        build["resolvedDependencies"] = dependencies
    metadata = {
        k: v
        for k, v in (
            ("invocationId", invocation_id),
            ("startedOn", _timestamp(started_on)),
            ("finishedOn", _timestamp(finished_on)),
        )
        if v
    }
    run: dict[str, Any] = {"builder": {"id": builder_id}}
    if metadata:
        run["metadata"] = metadata
    return {"buildDefinition": build, "runDetails": run}


def _report_entry(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            data = f.read(MAX_REPORT_BYTES + 1)
    except OSError as e:
        raise AttestationInputError(f"{path}: cannot read report ({e.strerror or e})") from None
    if len(data) > MAX_REPORT_BYTES:
        raise AttestationInputError(f"{path}: report over {MAX_REPORT_BYTES} bytes")
    h.update(data)
    try:
        doc = json.loads(data)
    except ValueError:
        raise AttestationInputError(f"{path}: not a factorygate JSON report (not JSON)") from None
    tool = doc.get("tool") if isinstance(doc, dict) else None
    summary = doc.get("summary") if isinstance(doc, dict) else None
    if not isinstance(tool, dict) or tool.get("name") != "factorygate" or not isinstance(summary, dict):
        raise AttestationInputError(f"{path}: not a factorygate JSON report (--format json)")
    exit_code = summary.get("exit_code")
    if exit_code not in (0, 1, 2):
        raise AttestationInputError(f"{path}: report summary has no exit_code")
    policy = doc.get("policy") if isinstance(doc.get("policy"), dict) else {}
    return {
        "name": path.name,
        "digest": {"sha256": h.hexdigest()},
        "exitCode": exit_code,
        "blocking": summary.get("blocking", 0),
        "threshold": policy.get("threshold"),
        "subjects": summary.get("subjects", []),
        "generatedAt": doc.get("generated_at"),
    }


def gate_decision(reports: Sequence[str | Path], now: dt.datetime | None = None) -> dict[str, Any]:
    """The gate predicate: ``error`` if a report has errors, else ``fail`` if one blocks, else ``pass``."""
    if not reports:
        raise AttestationInputError("a gate attestation needs at least one JSON report (--report)")
    entries = [_report_entry(Path(p)) for p in reports]
    codes = {e["exitCode"] for e in entries}
    decision = "error" if 2 in codes else "fail" if 1 in codes else "pass"
    return {
        "decision": decision,
        "evaluatedAt": _timestamp(now or dt.datetime.now(dt.UTC)),
        "gate": {"name": "factorygate", "version": __version__},
        "reports": entries,
    }


# ---- verification -------------------------------------------------------------------------------------------------


def _check_statement(payload: bytes, digest: str, repository: str) -> dict[str, Any]:
    try:
        doc = strict_json(payload)
    except ValueError as e:
        raise SignatureError(f"statement is not JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("_type") not in (STATEMENT_V1, STATEMENT_V01):
        raise SignatureError("payload is not an in-toto Statement")
    subjects = doc.get("subject")
    if not isinstance(subjects, list):
        raise SignatureError("statement has no subject list")
    algorithm, _, hexdigest = digest.partition(":")
    for subject in subjects:
        digests = subject.get("digest") if isinstance(subject, dict) else None
        if isinstance(digests, dict) and digests.get(algorithm) == hexdigest:
            name = subject.get("name")
            if isinstance(name, str) and name and normalised_repository(name) != repository:
                raise SignatureError(f"statement subject {name[:120]!r} is not {repository!r}")
            return doc
    raise SignatureError(f"no statement subject has the image's digest {digest}")


def verify_attestations(
    store: ArtifactStore,
    docker_reference: str,
    digest: str,
    keys: Sequence[ec.EllipticCurvePublicKey],
    predicate_type: str | None = None,
) -> list[VerifiedAttestation]:
    """Every attestation of ``digest`` that verifies (and has ``predicate_type`` when given); at least one.

    Raises :class:`Unsigned` when the image has no ``.att`` object, :class:`SignatureError` with the reasons
    when none verifies.
    """
    from factorygate.supply.cosign import signature_layers

    digest = check_digest(digest, "image digest")
    what = f"{docker_reference}@{digest}"
    if not keys:
        raise SignatureError(f"{what}: no trusted public keys given")
    repository = normalised_repository(docker_reference)
    tag = signature_tag(digest, "att")
    try:
        layers = signature_layers(store, tag, what)
    except Unsigned:
        raise Unsigned(f"{what}: no attestations (no {tag} in the repository)") from None
    found: list[VerifiedAttestation] = []
    reasons: list[str] = []
    for n, layer in enumerate(layers, 1):
        at = f"attestation {n}"
        if not isinstance(layer, dict) or layer.get("mediaType") != dsse.MEDIA_TYPE:
            reasons.append(f"{at}: not a DSSE envelope layer")
            continue
        try:
            envelope = store.get_blob(check_digest(layer.get("digest"), at), MAX_ENVELOPE_BYTES)
            opened = dsse.open_envelope(envelope, keys)
            if opened.payload_type != dsse.IN_TOTO_PAYLOAD:
                raise SignatureError(f"payloadType {opened.payload_type[:80]!r} is not in-toto")
            doc = _check_statement(opened.payload, digest, repository)
        except FactorygateError as e:
            reasons.append(f"{at}: {str(e)[-200:]}")
            continue
        kind = doc.get("predicateType")
        if predicate_type is not None and kind != predicate_type:
            reasons.append(f"{at}: predicate type {str(kind)[:80]!r}")
            continue
        predicate = doc.get("predicate")
        subject = doc.get("subject")
        found.append(
            VerifiedAttestation(
                str(kind),
                predicate if isinstance(predicate, dict) else {},
                opened.fingerprint,
                subject if isinstance(subject, list) else [],
            )
        )
    if not found:
        wanted = f" of type {predicate_type}" if predicate_type else ""
        raise SignatureError(f"{what}: no valid attestation{wanted}: {summarise_reasons(reasons)}")
    return found
