"""DSSE envelopes (secure-systems-lab ``envelope.md``), signed with the same ECDSA P-256 keys as signatures.

``{"payloadType": T, "payload": base64(BODY), "signatures": [{"keyid": "", "sig": base64(SIG)}]}`` where SIG
is the ECDSA/SHA-256 signature of PAE(T, BODY) = ``"DSSEv1" SP len(T) SP T SP len(BODY) SP BODY`` (lengths as
ASCII decimal). cosign leaves ``keyid`` empty for key-based signing; so does factorygate.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from factorygate.supply.cosign import SignatureError, sign_bytes, strict_json, verify_bytes_with

MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO_PAYLOAD = "application/vnd.in-toto+json"
MAX_ENVELOPE_SIGNATURES = 16


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def seal(key: ec.EllipticCurvePrivateKey, payload_type: str, payload: bytes) -> bytes:
    """A one-signature envelope (compact JSON bytes)."""
    envelope = {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "", "sig": sign_bytes(key, pae(payload_type, payload))}],
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Opened:
    payload_type: str
    payload: bytes
    fingerprint: str  # of the key whose signature verified


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise SignatureError(f"{what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        try:  # DSSE allows URL-safe base64 too
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise SignatureError(f"{what} is not base64") from None


def open_envelope(data: bytes, keys: Sequence[ec.EllipticCurvePublicKey]) -> Opened:
    """The payload of an envelope one of whose signatures verifies with one of ``keys``; SignatureError if not."""
    try:
        doc = strict_json(data)
    except ValueError as e:
        raise SignatureError(f"envelope is not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise SignatureError("envelope is not a JSON object")
    payload_type = doc.get("payloadType")
    if not isinstance(payload_type, str):
        raise SignatureError("envelope has no payloadType")
    payload = _b64(doc.get("payload"), "envelope payload")
    signatures = doc.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise SignatureError("envelope has no signatures")
    if len(signatures) > MAX_ENVELOPE_SIGNATURES:
        raise SignatureError(f"envelope has {len(signatures)} signatures (limit {MAX_ENVELOPE_SIGNATURES})")
    message = pae(payload_type, payload)
    for entry in signatures:
        sig = entry.get("sig") if isinstance(entry, dict) else None
        if not isinstance(sig, str):
            continue
        signer = verify_bytes_with(keys, message, sig)
        if signer is not None:
            return Opened(payload_type, payload, signer)
    raise SignatureError("the envelope's signature does not verify with the trusted key(s)")
