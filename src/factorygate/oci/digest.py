"""Content digests: validation and a reader that verifies size and digest while streaming."""

from __future__ import annotations

import hashlib
import re
from typing import IO

from factorygate.oci.model import ImageError

_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")


def check_digest(value: object, what: str) -> str:
    """Return ``value`` when it is a sha256/sha512 digest in canonical form, else raise ImageError."""
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise ImageError(f"{what}: {value!r} is not a sha256 or sha512 digest")
    return value


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def verify_bytes(data: bytes, digest: str, what: str, size: int | None = None) -> bytes:
    """Check bytes read in one go (manifests, configs) against their descriptor."""
    if size is not None and len(data) != size:
        raise ImageError(f"{what}: size {len(data)} does not match the descriptor's {size}")
    algorithm = digest.split(":", 1)[0]
    actual = digest_of(data, algorithm)
    if actual != digest:
        raise ImageError(f"{what}: digest mismatch (expected {digest}, got {actual})")
    return data


class VerifyingReader:
    """A read-only binary stream over ``raw`` that fails when the content is not ``digest``/``size``.

    Reading past ``size`` or reaching EOF with a different length or digest raises ImageError; the
    check happens on the read that reaches the end, so a consumer that reads to EOF always verifies.
    """

    def __init__(self, raw: IO[bytes], digest: str, size: int, what: str) -> None:
        self._raw = raw
        self._digest = digest
        self._size = size
        self._what = what
        self._hash = hashlib.new(digest.split(":", 1)[0])
        self._read = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        if n is None or n < 0:
            parts = []
            while chunk := self.read(1 << 20):
                parts.append(chunk)
            return b"".join(parts)
        want = self._size - self._read + 1 if n is None or n < 0 else min(n, self._size - self._read + 1)
        chunk = self._raw.read(want) if want > 0 else b""
        self._read += len(chunk)
        if self._read > self._size:
            raise ImageError(f"{self._what}: blob is larger than its descriptor's {self._size} bytes")
        self._hash.update(chunk)
        if not chunk or self._read == self._size:
            self._finish()
        return chunk

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def _finish(self) -> None:
        if self._read < self._size:
            raise ImageError(f"{self._what}: blob is truncated ({self._read} of {self._size} bytes)")
        # one more byte would mean the blob is longer than declared
        if self._raw.read(1):
            raise ImageError(f"{self._what}: blob is larger than its descriptor's {self._size} bytes")
        actual = f"{self._digest.split(':', 1)[0]}:{self._hash.hexdigest()}"
        if actual != self._digest:
            raise ImageError(f"{self._what}: digest mismatch (expected {self._digest}, got {actual})")
        self._done = True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
