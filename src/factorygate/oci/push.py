"""Registry writes (OCI Distribution push API) for one repository, over the pull client's session.

The session is :mod:`factorygate.oci.registry`'s: TLS 1.2+, ``--ca-file``, plain HTTP only to a loopback registry
named with ``--insecure-registry``, Basic or Bearer auth (push scopes are asked for when the registry challenges
a write), credentials from the options or the docker config. What is read back is verified against its digest.

* blobs: ``HEAD`` first (no upload when the registry has it), else ``POST`` an upload session and ``PUT`` the
  bytes with ``?digest=`` (monolithic upload, which every registry supports);
* manifests: ``PUT`` by tag or digest with the manifest's media type; the digest the registry answers with must
  be the digest of the bytes sent.
"""

from __future__ import annotations

from types import TracebackType

import httpx

from factorygate.oci.digest import check_digest, digest_of, verify_bytes
from factorygate.oci.index import MAX_MANIFEST_BYTES
from factorygate.oci.model import ImageError
from factorygate.oci.reference import Reference, parse_reference
from factorygate.oci.registry import MANIFEST_ACCEPT, RegistryOptions, connect

# what get_manifest asks for: images, indexes, and the artifact manifests others push (OCI 1.1 artifacts)
ACCEPT = MANIFEST_ACCEPT + ", application/vnd.oci.artifact.manifest.v1+json"
_NOT_FOUND_CODES = ("MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN", "NOT_FOUND")


def parse_repository(repository: str) -> Reference:
    """``host[:port]/path`` without tag or digest (a one-line ImageError otherwise)."""
    if "@" in repository or ":" in repository.rsplit("/", 1)[-1]:
        raise ImageError(f"repository {repository[:200]!r}: give host[:port]/name without a tag or digest")
    ref = parse_reference(repository)
    return Reference(ref.registry, ref.repository, None, None)


class RegistryWriter:
    """Push and read blobs and manifests of one repository (``127.0.0.1:5000/team/app``); a context manager."""

    def __init__(self, repository: str, opts: RegistryOptions) -> None:
        self.ref = parse_repository(repository)
        self.repository = f"{self.ref.registry}/{self.ref.repository}"
        self._client = connect(Reference(self.ref.registry, self.ref.repository, "latest", None), repository, opts)

    @property
    def insecure_transport(self) -> bool:
        """True when the session uses plain HTTP (allowed only for a named loopback registry)."""
        return bool(self._client.insecure)

    def __enter__(self) -> RegistryWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # ---- helpers -----------------------------------------------------------------------------------------------

    def _url(self, path: str) -> httpx.URL:
        return self._client.base.copy_with(path=f"/v2/{self.ref.repository}/{path}")

    def _read(self, response: httpx.Response, limit: int, what: str) -> bytes:
        try:
            return self._client.read_limited(response, limit, what)
        finally:
            response.close()

    # ---- blobs -------------------------------------------------------------------------------------------------

    def blob_exists(self, digest: str) -> bool:
        digest = check_digest(digest, f"{self.repository}: blob")
        response = self._client.call("HEAD", self._url(f"blobs/{digest}"))
        response.close()
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise ImageError(f"{self.repository}: HEAD blob {digest} answered HTTP {response.status_code}")

    def push_blob(self, data: bytes) -> str:
        """Upload ``data`` unless the registry has it; returns its digest (``sha256:...``)."""
        digest = digest_of(data)
        if self.blob_exists(digest):
            return digest
        what = f"{self.repository}: upload of blob {digest}"
        response = self._client.call("POST", self._url("blobs/uploads/"), {"Content-Length": "0"}, b"")
        if response.status_code != 202:
            raise self._client.fail(response, what)
        response.close()
        location = response.headers.get("location")
        if not location:
            raise ImageError(f"{what}: the registry gave no upload location")
        try:
            url = self._client.base.join(location)
        except httpx.InvalidURL:
            raise ImageError(f"{what}: the registry gave an invalid upload location") from None
        params = url.params.set("digest", digest)
        response = self._client.call(
            "PUT", url.copy_with(params=params), {"Content-Type": "application/octet-stream"}, data
        )
        if response.status_code not in (201, 204):
            raise self._client.fail(response, what)
        response.close()
        return digest

    def get_blob(self, digest: str, limit: int) -> bytes:
        """The blob's bytes (at most ``limit``), verified against ``digest``."""
        digest = check_digest(digest, f"{self.repository}: blob")
        what = f"{self.repository}: blob {digest}"
        response = self._client.get(f"/v2/{self.ref.repository}/blobs/{digest}", None)
        if response.status_code != 200:
            raise self._client.fail(response, what)
        data = self._read(response, limit, what)
        return verify_bytes(data, digest, what)

    # ---- manifests ---------------------------------------------------------------------------------------------

    def push_manifest(self, data: bytes, media_type: str, reference: str) -> str:
        """PUT a manifest by tag or digest; returns its digest (checked against the registry's answer)."""
        digest = digest_of(data)
        what = f"{self.repository}: manifest {reference}"
        if len(data) > MAX_MANIFEST_BYTES:
            raise ImageError(f"{what}: {len(data)} bytes is over the {MAX_MANIFEST_BYTES}-byte limit")
        if reference.startswith("sha256:") and reference != digest:
            raise ImageError(f"{what}: the bytes have digest {digest}")
        response = self._client.call("PUT", self._url(f"manifests/{reference}"), {"Content-Type": media_type}, data)
        if response.status_code not in (200, 201):
            raise self._client.fail(response, what)
        response.close()
        answered = response.headers.get("docker-content-digest")
        if answered and answered.strip() != digest:
            raise ImageError(f"{what}: the registry stored digest {answered.strip()[:80]}, not {digest}")
        return digest

    def get_manifest(self, reference: str) -> tuple[bytes, str, str] | None:
        """(bytes, media type, digest) of a manifest by tag or digest; None when the registry does not know it."""
        what = f"{self.repository}: manifest {reference}"
        response = self._client.get(f"/v2/{self.ref.repository}/manifests/{reference}", ACCEPT)
        if response.status_code == 404:
            response.close()
            return None
        if response.status_code != 200:
            raise self._client.fail(response, what)
        data = self._read(response, MAX_MANIFEST_BYTES, what)
        if reference.startswith("sha256:"):
            verify_bytes(data, reference, what)
            digest = reference
        else:
            digest = digest_of(data)
            header = response.headers.get("docker-content-digest")
            if header and header.strip() != digest:
                raise ImageError(f"{what}: Docker-Content-Digest does not match the manifest bytes")
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
        return data, media_type, digest

    def resolve(self, reference: str) -> str:
        """The digest a tag (or digest) names; ImageError when unknown."""
        found = self.get_manifest(reference)
        if found is None:
            raise ImageError(f"{self.repository}:{reference}: not found on {self.ref.registry}")
        return found[2]
