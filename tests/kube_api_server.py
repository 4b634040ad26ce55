"""A recorded Kubernetes API on 127.0.0.1 over real HTTPS, for `factorygate audit` tests.

It answers collection GETs exactly as an API server does: ``<Kind>List`` objects whose items carry no
apiVersion/kind, chunked with ``limit`` and an opaque ``metadata.continue`` token; ``403 Forbidden``
Status objects for the resources a test forbids; ``410 Gone`` (reason Expired) for a continue token the
test expires; ``404 NotFound`` for APIs that are not served (a CRD not installed); ``401`` without the
bearer token. :func:`write_kubeconfig` writes a kubeconfig with the server's CA, so the real Kubernetes
client talks to it over verified TLS.
"""

from __future__ import annotations

import base64
import http.server
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.registry_server import Certs, make_certs, server_context

from factorygate.audit.kinds import CORE_KINDS, ApiKind

TOKEN = "kube-api-test-token"
RESOURCE_VERSION = "48213"


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


@dataclass
class Recorded:
    """What a test asked the server to answer, and what it was asked."""

    collections: dict[str, tuple[ApiKind, list[dict[str, Any]]]] = field(default_factory=dict)  # plural path
    forbidden: set[str] = field(default_factory=set)  # plurals answered 403
    expire: dict[str, int] = field(default_factory=dict)  # plural -> how many continue tokens to expire (410)
    requests: list[str] = field(default_factory=list)  # path?query of every request
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        rec = self.server.recorded
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        with rec.lock:
            rec.requests.append(self.path)
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            return
        parts = url.path.strip("/").split("/")
        namespace = None
        if "namespaces" in parts[:-1] and len(parts) >= 5:  # /api/v1/namespaces/NS/pods, /apis/g/v/namespaces/NS/x
            i = parts.index("namespaces")
            namespace = parts[i + 1]
            parts = parts[:i] + parts[i + 2 :]
        key = "/" + "/".join(parts)
        entry = rec.collections.get(key)
        if entry is None:
            self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))
            return
        kind, objects = entry
        group = kind.group
        if kind.plural in rec.forbidden:
            scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
            message = (
                f'{kind.plural} is forbidden: User "system:serviceaccount:audit:reader" cannot list resource '
                f'"{kind.plural}" in API group "{group}" {scope}'
            )
            self._send(403, _status(403, "Forbidden", message, {"group": group, "kind": kind.plural}))
            return
        if namespace is not None:
            objects = [o for o in objects if o.get("metadata", {}).get("namespace") == namespace]
        token = query.get("continue", "")
        start = 0
        if token:
            with rec.lock:
                expire = rec.expire.get(kind.plural, 0)
                if expire:
                    rec.expire[kind.plural] = expire - 1
            if expire:
                message = (
                    "The provided continue parameter is too old to display a consistent list result. You can "
                    "start a new list without the continue parameter, or use the continue token in this "
                    "response to retrieve the remainder of the results."
                )
                self._send(410, _status(410, "Expired", message))
                return
            try:
                start = int(json.loads(base64.urlsafe_b64decode(token))["start"])
            except (ValueError, KeyError, TypeError):
                self._send(400, _status(400, "BadRequest", "continue key is not valid"))
                return
        limit = int(query.get("limit", "0") or 0)
        end = len(objects) if limit <= 0 else min(len(objects), start + limit)
        items = []
        for obj in objects[start:end]:
            item = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
            items.append(item)
        meta: dict[str, Any] = {"resourceVersion": RESOURCE_VERSION}
        if end < len(objects):
            meta["continue"] = base64.urlsafe_b64encode(json.dumps({"rv": RESOURCE_VERSION, "start": end}).encode())
            meta["continue"] = meta["continue"].decode()
            meta["remainingItemCount"] = len(objects) - end
        self._send(200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": meta, "items": items})


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, recorded: Recorded, ctx: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.recorded = recorded
        self.ctx = ctx

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.settimeout(10)
        return sock, addr

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class KubeApiServer:
    """Serves ``objects`` (raw API objects with apiVersion and kind) under their collection URLs; every core kind
    factorygate lists is served (empty when the objects hold none), ``served`` adds more (CRDs installed)."""

    def __init__(self, directory: Path, objects: Iterable[dict[str, Any]], served: Iterable[ApiKind] = ()) -> None:
        self.certs: Certs = make_certs(directory)
        self.recorded = Recorded()
        kinds: dict[tuple[str, str], ApiKind] = {}
        for k in (*CORE_KINDS, *served):
            kinds[(k.api_version, k.kind)] = k
            self.recorded.collections[k.path()] = (k, [])
        for obj in objects:
            k = kinds.get((obj["apiVersion"], obj["kind"]))
            if k is None:
                raise ValueError(f"no served kind for {obj['apiVersion']} {obj['kind']}")
            self.recorded.collections[k.path()][1].append(obj)
        ctx = server_context(self.certs)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self._server = _Server(self.recorded, ctx)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def forbid(self, *plurals: str) -> None:
        self.recorded.forbidden.update(plurals)

    def expire_continue(self, plural: str, times: int = 1) -> None:
        self.recorded.expire[plural] = times

    @property
    def requests(self) -> list[str]:
        with self.recorded.lock:
            return list(self.recorded.requests)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def write_kubeconfig(path: Path, clusters: dict[str, KubeApiServer], current: str | None = None) -> Path:
    """A kubeconfig with one context per server (named as the dict keys), trusting each server's certificate."""
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "contexts": [],
        "users": [{"name": "auditor", "user": {"token": TOKEN}}],
        "current-context": current or next(iter(clusters)),
    }
    for name, server in clusters.items():
        ca = base64.b64encode(server.certs.cert.read_bytes()).decode()
        doc["clusters"].append({"name": name, "cluster": {"server": server.url, "certificate-authority-data": ca}})
        doc["contexts"].append({"name": name, "context": {"cluster": name, "user": "auditor"}})
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path
