"""Signing keys: ECDSA P-256 pairs in the files cosign itself writes and reads.

* private key: PEM ``ENCRYPTED SIGSTORE PRIVATE KEY`` (what ``cosign generate-key-pair`` writes since v2): JSON
  ``{"kdf": {"name": "scrypt", "params": {"N", "r", "p"}, "salt"}, "cipher": {"name": "nacl/secretbox",
  "nonce"}, "ciphertext"}`` whose plaintext is the PKCS#8 DER key; the older ``ENCRYPTED COSIGN PRIVATE KEY``
  header and PKCS#8 PEM (encrypted or not, e.g. from openssl) are read too;
* public key: PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo), as cosign writes it;
* fingerprint: ``sha256:`` + hex SHA-256 of the DER SubjectPublicKeyInfo.

The passphrase comes from ``FACTORYGATE_KEY_PASSWORD`` or a terminal prompt; it and the key never reach a log.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from factorygate.errors import FactorygateError

PASSWORD_ENV = "FACTORYGATE_KEY_PASSWORD"  # noqa: S105 (the variable's name, not a value)
SIGSTORE_PEM = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_PEM = "ENCRYPTED COSIGN PRIVATE KEY"  # cosign before v2
SCRYPT_N, SCRYPT_R, SCRYPT_P = 32768, 8, 1  # what cosign (go-securesystemslib "encrypted") writes
_ACCEPTED_N = frozenset({32768, 65536})  # bounded: a key file must not make us allocate gigabytes
SALT_BYTES, NONCE_BYTES, BOX_KEY_BYTES = 32, 24, 32
MAX_KEY_FILE_BYTES = 64 * 1024
_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)\r?\n-----END \1-----", re.DOTALL)


class KeyFileError(FactorygateError):
    """A key file is missing, malformed, of the wrong kind, or its passphrase is wrong."""


def read_password(prompt: str, confirm: bool = False) -> bytes:
    """The key passphrase: ``FACTORYGATE_KEY_PASSWORD`` when set (even empty), else asked on the terminal."""
    value = os.environ.get(PASSWORD_ENV)
    if value is not None:
        return value.encode()
    if not sys.stdin.isatty():
        raise KeyFileError(f"no passphrase: set {PASSWORD_ENV} (no terminal to ask on)")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Enter again: ") != first:
        raise KeyFileError("the passphrases do not match")
    return first.encode()


def fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """``sha256:<hex>`` of the DER SubjectPublicKeyInfo (the same value for the same key, whatever the file)."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# ---- the sigstore encrypted format --------------------------------------------------------------------------------


def _pem_block(label: str, der: bytes) -> bytes:
    body = base64.b64encode(der)
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n".encode() + lines + f"\n-----END {label}-----\n".encode()


def _box_key(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=BOX_KEY_BYTES, n=n, r=r, p=p).derive(password)


def encrypt_private_key(key: ec.EllipticCurvePrivateKey, password: bytes) -> bytes:
    """The PEM text of ``key`` in cosign's ``ENCRYPTED SIGSTORE PRIVATE KEY`` format."""
    import nacl.secret

    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    box = nacl.secret.SecretBox(_box_key(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    ciphertext = box.encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }
    return _pem_block(SIGSTORE_PEM, json.dumps(doc, separators=(",", ":")).encode())


def _b64_field(doc: dict[str, Any], name: str, size: int | None, where: str) -> bytes:
    value = doc.get(name)
    if not isinstance(value, str):
        raise KeyFileError(f"{where}: {name} is missing")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{where}: {name} is not base64") from None
    if size is not None and len(raw) != size:
        raise KeyFileError(f"{where}: {name} has {len(raw)} bytes, expected {size}")
    return raw


def decrypt_sigstore_key(body: bytes, password: bytes, where: str) -> bytes:
    """The PKCS#8 DER inside a sigstore/cosign encrypted key (its PEM body, base64-decoded)."""
    import nacl.exceptions
    import nacl.secret

    try:
        doc = json.loads(body)
    except ValueError:
        raise KeyFileError(f"{where}: the encrypted key is not JSON") from None
    kdf = doc.get("kdf") if isinstance(doc, dict) else None
    cipher = doc.get("cipher") if isinstance(doc, dict) else None
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise KeyFileError(f"{where}: unsupported key derivation (expected scrypt)")
    if not isinstance(cipher, dict) or cipher.get("name") != "nacl/secretbox":
        raise KeyFileError(f"{where}: unsupported cipher (expected nacl/secretbox)")
    params = kdf.get("params")
    if not isinstance(params, dict):
        raise KeyFileError(f"{where}: scrypt parameters missing")
    n, r, p = params.get("N"), params.get("r"), params.get("p")
    if n not in _ACCEPTED_N or r != SCRYPT_R or p != SCRYPT_P:
        raise KeyFileError(f"{where}: unexpected scrypt parameters N={n!r} r={r!r} p={p!r}")
    salt = _b64_field(kdf, "salt", None, where)
    nonce = _b64_field(cipher, "nonce", NONCE_BYTES, where)
    ciphertext = _b64_field(doc, "ciphertext", None, where)
    assert isinstance(n, int)  # noqa: S101 (narrowed by the membership test above)
    box = nacl.secret.SecretBox(_box_key(password, salt, n, SCRYPT_R, SCRYPT_P))
    try:
        return bytes(box.decrypt(ciphertext, nonce))
    except nacl.exceptions.CryptoError:
        raise KeyFileError(f"{where}: wrong passphrase (or the key file is corrupt)") from None


# ---- files --------------------------------------------------------------------------------------------------------


def _read_small(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path}: over {MAX_KEY_FILE_BYTES} bytes: not a key file")
    return data


def _p256_private(key: object, where: str) -> ec.EllipticCurvePrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyFileError(f"{where}: not an ECDSA P-256 private key")
    return key


def _p256_public(key: object, where: str) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyFileError(f"{where}: not an ECDSA P-256 public key")
    return key


def parse_private_key(data: bytes, password: bytes | None, where: str) -> ec.EllipticCurvePrivateKey:
    """A private key from PEM text: sigstore/cosign encrypted, PKCS#8 (encrypted or not) or SEC1."""
    match = _PEM.search(data)
    if match is None:
        raise KeyFileError(f"{where}: no PEM block (expected a cosign or PKCS#8 private key)")
    label = match.group(1).decode()
    if label in (SIGSTORE_PEM, COSIGN_PEM):
        if password is None:
            raise KeyFileError(f"{where}: the key is encrypted; a passphrase is needed")
        try:
            body = base64.b64decode(b"".join(match.group(2).split()), validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"{where}: the PEM body is not base64") from None
        der = decrypt_sigstore_key(body, password, where)
        try:
            key = serialization.load_der_private_key(der, None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyFileError(f"{where}: the decrypted key is not PKCS#8") from None
        return _p256_private(key, where)
    if label not in ("ENCRYPTED PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY"):
        raise KeyFileError(f"{where}: a {label!r} PEM block is not a private key")
    try:
        key = serialization.load_pem_private_key(match.group(0), password if label.startswith("ENCRYPTED") else None)
    except TypeError:
        raise KeyFileError(f"{where}: the key is encrypted; a passphrase is needed") from None
    except (ValueError, UnsupportedAlgorithm):
        hint = "wrong passphrase or " if label.startswith("ENCRYPTED") else ""
        raise KeyFileError(f"{where}: cannot load the private key ({hint}malformed)") from None
    return _p256_private(key, where)


def parse_public_key(data: bytes, where: str) -> ec.EllipticCurvePublicKey:
    match = _PEM.search(data)
    if match is None or match.group(1) != b"PUBLIC KEY":
        raise KeyFileError(f"{where}: no PEM PUBLIC KEY block (give the .pub file)")
    try:
        key = serialization.load_pem_public_key(match.group(0))
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{where}: malformed public key") from None
    return _p256_public(key, where)


def load_private_key(path: str | Path, password: bytes | None) -> ec.EllipticCurvePrivateKey:
    path = Path(path)
    return parse_private_key(_read_small(path), password, str(path))


def load_public_key(path: str | Path) -> ec.EllipticCurvePublicKey:
    path = Path(path)
    return parse_public_key(_read_small(path), str(path))


def _write_new(path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise KeyFileError(f"{path}: exists (refusing to overwrite a key)") from None
    except OSError as e:
        raise KeyFileError(f"{path}: cannot write ({e.strerror or e})") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def generate(prefix: str, password: bytes, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write PREFIX.key (encrypted, mode 0600) and PREFIX.pub (mode 0644); returns their paths."""
    key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    if not overwrite:
        for path in (key_path, pub_path):
            if path.exists():
                raise KeyFileError(f"{path}: exists (refusing to overwrite a key)")
    key = ec.generate_private_key(ec.SECP256R1())
    _write_new(key_path, encrypt_private_key(key, password), 0o600, overwrite)
    _write_new(pub_path, public_pem(key.public_key()), 0o644, overwrite)
    return key_path, pub_path


def is_encrypted(path: str | Path) -> bool:
    """Whether the private key file at ``path`` needs a passphrase (KeyFileError when it cannot be read)."""
    match = _PEM.search(_read_small(Path(path)))
    return match is not None and match.group(1).startswith(b"ENCRYPTED")
