"""Read a live cluster with the official Kubernetes Python client: read-only, paginated lists.

Every kind is listed with ``limit``/``continue`` (the API's chunked lists). A ``410 Gone`` (the continue
token expired while paging) restarts that kind's list from the beginning, at most ``MAX_RESTARTS`` times;
a ``403`` marks the kind as a coverage gap (never a pass); a ``404`` means the API is not served (a CRD
that is not installed). The number of pages per kind is bounded too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from factorygate.audit.inventory import Inventory
from factorygate.audit.kinds import ApiKind
from factorygate.errors import InputError

PAGE_SIZE = 500
MAX_PAGES = 2000  # 1,000,000 objects of one kind at the default page size
MAX_RESTARTS = 3
MAX_PAGE_BYTES = 256 * 1024 * 1024


class ClusterError(InputError):
    """The cluster cannot be reached, or the kubeconfig cannot be used."""


@dataclass(frozen=True)
class LiveOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespaces: tuple[str, ...] = ()
    page_size: int = PAGE_SIZE
    timeout: float = 30.0
    in_cluster: bool = False
    allow_http_loopback: bool = False  # `kubectl proxy` on 127.0.0.1 serves plain HTTP


def _api_client(opts: LiveOptions) -> tuple[Any, str]:
    """The client and the cluster's name (the context, or ``in-cluster``)."""
    import kubernetes.client
    import kubernetes.config
    import yaml
    from kubernetes.config.config_exception import ConfigException

    client: Any = kubernetes.client  # the package's functions are untyped
    config: Any = kubernetes.config

    if opts.in_cluster:
        cfg = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=cfg)
        except ConfigException as e:
            raise ClusterError(f"in-cluster configuration: {e}") from None
        return client.ApiClient(configuration=cfg), opts.context or "in-cluster"
    path = opts.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
    path = os.path.expanduser(path)
    where = f"kubeconfig {path}"
    try:
        contexts, active = config.list_kube_config_contexts(config_file=path)
        names = [c.get("name") for c in contexts or ()]
        name = opts.context or (active or {}).get("name")
        if opts.context and opts.context not in names:
            raise ClusterError(f"{where}: no context named {opts.context!r} (contexts: {', '.join(map(str, names))})")
        api = config.new_client_from_config(config_file=path, context=opts.context)
    except ConfigException as e:
        raise ClusterError(f"{where}: {e}") from None
    except OSError as e:
        raise ClusterError(f"{where}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where_line = f" line {mark.line + 1}" if mark is not None else ""
        raise ClusterError(f"{where}:{where_line} not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # malformed kubeconfig content
        raise ClusterError(f"{where}: not a usable kubeconfig ({type(e).__name__}: {e})") from None
    _refuse_insecure(api, where, opts)
    return api, str(name or "default")


def _refuse_insecure(api: Any, where: str, opts: LiveOptions) -> None:
    """TLS with verification, always; plain HTTP only to a loopback address, and only when allowed."""
    import ipaddress
    import urllib.parse

    cfg = api.configuration
    url = urllib.parse.urlsplit(str(cfg.host))
    if not cfg.verify_ssl:
        api.close()
        raise ClusterError(f"{where}: the context disables TLS verification (insecure-skip-tls-verify); refused")
    if url.scheme == "http":
        host = url.hostname or ""
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not (loopback and opts.allow_http_loopback):
            api.close()
            why = "pass --allow-http-loopback for `kubectl proxy`" if loopback else "only loopback may use plain HTTP"
            raise ClusterError(f"{where}: plain HTTP to {cfg.host} refused ({why})")
    elif url.scheme != "https":
        api.close()
        raise ClusterError(f"{where}: server {cfg.host!r} is not an https:// URL")


class ApiStatus(Exception):
    """A non-2xx answer of the API server."""

    def __init__(self, status: int, reason: str, body: bytes) -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.body = status, reason, body

    def line(self) -> str:
        """One line: the status, and the Status object's message when the server sent one."""
        message = None
        try:
            doc = orjson.loads(self.body or b"{}")
            message = doc.get("message") if isinstance(doc, dict) else None
        except orjson.JSONDecodeError:
            pass
        text = f"{self.status} {self.reason}" + (f": {message}" if message else "")
        return text if len(text) < 400 else text[:400] + "..."


def _get(api: Any, path: str, query: list[tuple[str, Any]], timeout: float) -> bytes:
    """GET one URL through the client (its TLS, auth and proxy settings); the body of a 2xx answer."""
    from kubernetes.client.exceptions import ApiException

    headers = {"Accept": "application/json"}
    try:
        if hasattr(api, "param_serialize"):  # client >= 31 (openapi-generator 7)
            method, url, hdrs, _, _ = api.param_serialize(
                "GET", path, query_params=query, header_params=headers, auth_settings=["BearerToken"]
            )
            resp = api.call_api(method, url, header_params=hdrs, _request_timeout=timeout)
            data = resp.read()
            status, reason = int(resp.status), str(resp.reason)
        else:
            resp = api.call_api(
                path,
                "GET",
                query_params=query,
                header_params=headers,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout,
            )
            data, status, reason = resp.data, int(resp.status), str(resp.reason)
    except ApiException as e:
        if not e.status:  # TLS and connection failures come as status 0
            raise ClusterError(f"cannot reach the API server: {_first_line(str(e.reason))}") from None
        body = e.body or b""
        raise ApiStatus(int(e.status), str(e.reason), body.encode() if isinstance(body, str) else body) from None
    if not 200 <= status < 300:
        raise ApiStatus(status, reason, data or b"")
    return bytes(data or b"")


def _first_line(text: str) -> str:
    lines = [x for x in text.splitlines() if x.strip()]
    out = lines[-1] if lines else text
    return out if len(out) < 300 else out[:300] + "..."


class _Gone(Exception):
    """410: the continue token expired."""


def _list_all(api: Any, kind: ApiKind, namespace: str | None, opts: LiveOptions) -> list[dict[str, Any]]:
    """Every object of a kind, page by page. Raises ApiStatus for 403/404/..."""
    path = kind.path(namespace)
    for _ in range(MAX_RESTARTS + 1):
        items: list[dict[str, Any]] = []
        token = ""
        try:
            for _page in range(MAX_PAGES):
                query: list[tuple[str, Any]] = [("limit", opts.page_size)]
                if token:
                    query.append(("continue", token))
                try:
                    data = _get(api, path, query, opts.timeout)
                except ApiStatus as e:
                    if e.status == 410 and token:
                        raise _Gone from None
                    raise
                if len(data) > MAX_PAGE_BYTES:
                    raise ClusterError(f"{path}: a page larger than {MAX_PAGE_BYTES >> 20} MiB")
                try:
                    page = orjson.loads(data)
                except orjson.JSONDecodeError as e:
                    raise ClusterError(f"{path}: the answer is not JSON ({e})") from None
                if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                    raise ClusterError(f"{path}: the answer is not a Kubernetes list")
                for obj in page["items"]:
                    if isinstance(obj, dict):
                        # list items carry no apiVersion/kind: the list's own kind says what they are
                        obj.setdefault("apiVersion", kind.api_version)
                        obj.setdefault("kind", kind.kind)
                        items.append(obj)
                meta = page.get("metadata")
                token = meta.get("continue", "") if isinstance(meta, dict) else ""
                if not isinstance(token, str) or not token:
                    return items
            raise ClusterError(f"{path}: more than {MAX_PAGES} pages; stopped")
        except _Gone:
            continue  # the token expired: list again from the start (a consistent list)
    raise ClusterError(f"{path}: the continue token expired {MAX_RESTARTS + 1} times (410 Gone)")


def read_cluster(opts: LiveOptions, kinds: Sequence[ApiKind], into: Inventory | None = None) -> Inventory:
    """List every kind (namespaced kinds in each of ``opts.namespaces`` when given) into an Inventory.
    Raises ClusterError when the API server cannot be reached at all."""
    import urllib3

    api, name = _api_client(opts)
    inv = into if into is not None else Inventory(cluster=name)
    inv.namespaces = tuple(opts.namespaces)
    try:
        for kind in kinds:
            scopes: Sequence[str | None] = opts.namespaces if (kind.namespaced and opts.namespaces) else (None,)
            got: list[dict[str, Any]] = []
            ok = True
            for ns in scopes:
                try:
                    got += _list_all(api, kind, ns, opts)
                except ApiStatus as e:
                    ok = False
                    if e.status == 404:
                        inv.missing.add(kind.key)
                    elif e.status in (401, 403):
                        inv.forbidden[kind.key] = e.line() + (f" (namespace {ns})" if ns else "")
                    else:
                        inv.errors.append(f"{name}: listing {kind.path(ns)}: {e.line()}")
                    break
                except ClusterError as e:
                    if str(e).startswith("cannot reach"):
                        raise ClusterError(f"{name}: {e}") from None
                    ok = False
                    inv.errors.append(f"{name}: {e}")
                    break
            if ok:
                inv.listed.add(kind.key)
                if opts.namespaces and kind.key == "Namespace":
                    got = [o for o in got if (o.get("metadata") or {}).get("name") in opts.namespaces]
                inv.objects.setdefault(kind.key, []).extend(got)
    except urllib3.exceptions.HTTPError as e:
        raise ClusterError(f"{name}: cannot reach the API server: {_first_line(str(e))}") from None
    finally:
        api.close()
    return inv
