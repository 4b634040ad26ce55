"""Benchmark the admission webhook against a floor: the same stack answering without evaluating.

Servers, each started as its own process on 127.0.0.1 with the same self-signed certificate:

- ``factorygate``: ``python -m factorygate.admission.server`` (``--workers N`` for each N asked);
- ``floor``: starlette + uvicorn (h11, asyncio) + the same TLS context, a route that reads the body
  and answers one fixed AdmissionReview (``python bench/bench_admission.py floor ...``).

For each server:

1. paced load, open loop: a Python asyncio client over raw TLS keep-alive connections sends the
   request at a fixed rate (100, 200, 300, 600 req/s by default) for a bounded time and records
   each latency from the request's *scheduled* send time (a late client counts against the server,
   so the numbers are conservative), reporting p50/p99/max;
2. maximum throughput: ``wrk -t2 -c16 -d10s --latency`` with a Lua script posting the request.

Each paced run also reports the server's CPU time per request (all its processes, from /proc): on a
shared machine that is steadier than throughput. Every measurement is checked for other processes'
CPU use meanwhile (all busy time minus the server's, this client's and wrk's) and taken again, up
to ``--retries`` times, when they used more than 0.05 CPUs; ``--wait-idle S`` also waits for idle
CPUs before each one.

The request is a realistic ``admission.k8s.io/v1`` AdmissionReview of a Deployment as the API
server sends it (defaulted fields, managedFields, userInfo). Targets: p99 under 10 ms at
300 req/s, and at least 60% of the floor's throughput. Debian's wrk 4.x has no ``-R`` (rate), hence
the Python pacer. Standard library + the project's venv (httpx is not used: its own per-request
cost would be the bottleneck).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_P99_MS = 10.0
TARGET_RATE = 300
TARGET_FLOOR_RATIO = 0.60
MAX_FOREIGN_CPU = 0.05  # other processes' load (in CPUs) above which a measurement is taken again
IDLE_S = 3.0  # the paced client's idle-connection timeout (below the servers' keep-alive of 5 s)
FIXED_RESPONSE = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"0","allowed":true}}'
IRONBANK_IMAGE = (
    "registry1.dso.mil/ironbank/opensource/nginx/nginx:1.27.2"
    "@sha256:3f0c5b6a1e8a4d8f2b7c9e0d1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
)


class BenchError(Exception):
    """A server would not start or a load run failed."""


# -- the request ---------------------------------------------------------------------------------------


def deployment(compliant: bool) -> dict[str, Any]:
    """A Deployment as the API server hands it to validating webhooks."""
    security: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    container: dict[str, Any] = {
        "name": "web",
        "image": IRONBANK_IMAGE if compliant else "docker.io/library/nginx:latest",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "web-db", "key": "password"}}}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - a path in the pod, not here
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": security if compliant else {"privileged": True},
    }
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "6a0f3c3e-4a52-4f0e-9a53-0b6f2d1c9e11",
            "generation": 1,
            "creationTimestamp": "2026-01-15T10:00:00Z",
            "labels": {"app.kubernetes.io/name": "web"},
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "managedFields": [
                {
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": "apps/v1",
                    "time": "2026-01-15T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {}}}}},
                }
            ],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
            "template": {
                "metadata": {
                    "creationTimestamp": None,
                    "labels": {"app.kubernetes.io/name": "web", "tier": "frontend"},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "nodeSelector": {"node-pool": "general"},
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "serviceAccountName": "default",
                    "serviceAccount": "default",
                    "schedulerName": "default-scheduler",
                },
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {},
    }


def review_body(compliant: bool) -> bytes:
    gvk = {"group": "apps", "version": "v1", "kind": "Deployment"}
    gvr = {"group": "apps", "version": "v1", "resource": "deployments"}
    review = {
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": "web",
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": deployment(compliant),
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl"},
        },
    }
    return json.dumps(review).encode()


# -- the floor server --------------------------------------------------------------------------------------


def run_floor(cert: str, key: str, host: str, port: int, workers: int) -> int:
    """starlette + uvicorn + TLS, answering a fixed AdmissionReview; N forked workers on one socket."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from factorygate.admission.tls import ReloadingContext

    async def validate(request: Request) -> Response:
        await request.body()
        return Response(FIXED_RESPONSE, media_type="application/json")

    app = Starlette(routes=[Route("/validate", validate, methods=["POST"])])
    tls = ReloadingContext(cert, key)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        app,
        http="h11",
        loop="asyncio",
        lifespan="off",
        access_log=False,
        server_header=False,
        log_level="warning",
        ssl_context_factory=lambda config, default: tls.current,
    )
    print(json.dumps({"event": "listening", "port": sock.getsockname()[1]}), flush=True)
    if workers == 1:
        uvicorn.Server(config).run(sockets=[sock])
        return 0
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            uvicorn.Server(config).run(sockets=[sock])
            os._exit(0)
        children.append(pid)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    for pid in children:
        os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)
    return 0


# -- servers as processes ----------------------------------------------------------------------------------


@dataclass
class Server:
    label: str
    proc: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_server(label: str, argv: list[str], tls: ssl.SSLContext, env: dict[str, str]) -> Server:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO_ROOT, env=env)
    assert proc.stdout is not None
    port: list[int] = []

    def pump() -> None:  # read the port, then keep draining the JSON log lines so the pipe never fills
        assert proc.stdout is not None
        for raw in proc.stdout:
            if not port:
                with_port = re.search(rb'"event":\s*"listening".*?"port":\s*(\d+)', raw)
                if with_port:
                    port.append(int(with_port.group(1)))

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 60
    while not port and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if not port:
        proc.kill()
        raise BenchError(f"{label}: did not start (exit {proc.poll()})")
    server = Server(label, proc, port[0])
    while time.monotonic() < deadline:  # ready: a POST answers 200
        try:
            status, _ = asyncio.run(_one(server.port, tls, review_body(True)))
            if status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    server.stop()
    raise BenchError(f"{label}: never answered")


T = TypeVar("T")


def _busy_seconds() -> float:
    """CPU seconds spent not idle, all CPUs together, since boot (Linux /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _our_seconds(server: Server) -> float:
    """CPU seconds of the server's processes, this process and its finished children (wrk)."""
    t = os.times()
    return tree_cpu_seconds(server.proc.pid) + t.user + t.system + t.children_user + t.children_system


def measured(run: Callable[[], T], server: Server, args: argparse.Namespace) -> tuple[T, float, float]:
    """Run one measurement; retry it (up to --retries) while other processes took CPU during it.

    Returns the result with the least other load, the server's CPU seconds during it, and the other
    load in CPUs (all busy time minus the server's, this client's and wrk's, over the wall time)."""
    best: tuple[T, float, float] | None = None
    for _ in range(args.retries + 1):
        if args.wait_idle:
            wait_for_idle(args.wait_idle)
        busy0, ours0, server0, wall0 = (
            _busy_seconds(),
            _our_seconds(server),
            tree_cpu_seconds(server.proc.pid),
            time.monotonic(),
        )
        result = run()
        wall = time.monotonic() - wall0
        foreign = max(0.0, (_busy_seconds() - busy0) - (_our_seconds(server) - ours0)) / wall
        attempt = (result, tree_cpu_seconds(server.proc.pid) - server0, foreign)
        if best is None or foreign < best[2]:
            best = attempt
        if foreign <= MAX_FOREIGN_CPU:
            break
        print(f"[bench] other processes used {foreign:.2f} CPUs meanwhile: measuring again", file=sys.stderr)
    assert best is not None
    return best


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a process and its descendants (Linux /proc; NaN elsewhere)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    if root not in times:
        return float("nan")
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(times[p] for p in tree)


# -- the paced client --------------------------------------------------------------------------------------


class Connection:
    """One TLS keep-alive connection speaking just enough HTTP/1.1."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.last_used = time.monotonic()

    @classmethod
    async def open(cls, port: int, tls: ssl.SSLContext) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls, server_hostname="127.0.0.1")
        return cls(reader, writer)

    async def post(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if length is None:
            raise BenchError("response without Content-Length")
        return int(head.split(b" ", 2)[1]), await self.reader.readexactly(int(length.group(1)))

    def close(self) -> None:
        self.writer.close()


def http_request(payload: bytes) -> bytes:
    head = (
        "POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def _one(port: int, tls: ssl.SSLContext, payload: bytes) -> tuple[int, bytes]:
    conn = await Connection.open(port, tls)
    try:
        return await asyncio.wait_for(conn.post(http_request(payload)), 10)
    finally:
        conn.close()


@dataclass
class PacedResult:
    server: str
    rate: int
    seconds: float
    sent: int
    ok: int
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    p99_from_send_ms: float  # latency from the actual write, without the client's own lag
    cpu_ms_per_request: float = float("nan")  # the server's CPU time (all its processes) per request
    foreign_cpu: float = float("nan")  # other processes' load during the run, in CPUs


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


class Pool:
    """Keep-alive connections to one server, opened on demand up to a maximum."""

    def __init__(self, port: int, tls: ssl.SSLContext, maximum: int) -> None:
        self.port, self.tls, self.maximum = port, tls, maximum
        self.idle: list[Connection] = []
        self.opened = 0
        self.freed = asyncio.Condition()

    async def warm(self, n: int) -> None:
        for _ in range(n):
            self.idle.append(await Connection.open(self.port, self.tls))
            self.opened += 1

    async def acquire(self) -> Connection:
        async with self.freed:
            while True:
                # Like Go's http.Transport (IdleConnTimeout), drop connections idle for longer than the
                # server keeps them (uvicorn: 5 s), rather than write into one it is closing.
                while self.idle and time.monotonic() - self.idle[0].last_used > IDLE_S:
                    self.idle.pop(0).close()
                    self.opened -= 1
                if self.idle:
                    return self.idle.pop()
                if self.opened < self.maximum:
                    self.opened += 1
                    return await Connection.open(self.port, self.tls)
                await self.freed.wait()

    async def release(self, conn: Connection) -> None:
        async with self.freed:
            conn.last_used = time.monotonic()
            self.idle.append(conn)
            self.freed.notify()

    async def discard(self, conn: Connection) -> None:
        conn.close()
        async with self.freed:
            self.opened -= 1
            self.freed.notify()

    def close(self) -> None:
        for conn in self.idle:
            conn.close()


async def paced(
    server: Server, tls: ssl.SSLContext, payload: bytes, *, rate: int, seconds: float, max_connections: int = 64
) -> PacedResult:
    loop = asyncio.get_running_loop()
    request = http_request(payload)
    pool = Pool(server.port, tls, max_connections)
    await pool.warm(8)
    latencies: list[float] = []
    from_send: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = loop.time() + 0.2

    async def one(i: int) -> None:
        nonlocal errors
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await pool.acquire()
        sent_at = loop.time()
        try:
            status, _ = await asyncio.wait_for(conn.post(request), 10)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, BenchError):
            errors += 1
            await pool.discard(conn)
            return
        done = loop.time()
        await pool.release(conn)
        if status != 200:
            errors += 1
            return
        latencies.append(done - scheduled)
        from_send.append(done - sent_at)

    await asyncio.gather(*(one(i) for i in range(total)))
    pool.close()
    latencies.sort()
    from_send.sort()
    return PacedResult(
        server=server.label,
        rate=rate,
        seconds=seconds,
        sent=total,
        ok=len(latencies),
        errors=errors,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        max_ms=(latencies[-1] if latencies else float("nan")) * 1000,
        p99_from_send_ms=_percentile(from_send, 0.99) * 1000,
    )


# -- wrk ---------------------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    server: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: str
    raw: str = field(repr=False)
    foreign_cpu: float = float("nan")


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_wrk(server: Server, lua: Path, threads: int, connections: int, seconds: int) -> WrkResult:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(lua),
        f"https://127.0.0.1:{server.port}/validate",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if rps is None:
        raise BenchError(f"wrk on {server.label} printed no Requests/sec:\n{out}")
    return WrkResult(
        server=server.label,
        requests_per_s=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)) if p50 else float("nan"),
        p99_ms=_ms(p99.group(1)) if p99 else float("nan"),
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        errors=errors.group(0) if errors else "",
        raw=out,
    )


def wrk_script(payload: bytes, path: Path) -> None:
    # A Lua long bracket holds the JSON as is (it contains no "]==]").
    body = payload.decode()
    path.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[{body}]==]\n',
        encoding="utf-8",
    )


# -- certificate -------------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


# -- the run -----------------------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def measure_server(
    server: Server, args: argparse.Namespace, tls: ssl.SSLContext, payload: bytes, lua: Path
) -> tuple[list[PacedResult], WrkResult]:
    """The paced runs and the best wrk run against one server."""
    status, answer = asyncio.run(_one(server.port, tls, payload))
    print(f"[bench] {server.label}: {status} {answer[:110].decode()}", file=sys.stderr)
    results = []
    for rate in args.rates:

        def run_paced(rate: int = rate) -> PacedResult:
            return asyncio.run(paced(server, tls, payload, rate=rate, seconds=args.seconds))

        r, cpu, foreign = measured(run_paced, server, args)
        r.cpu_ms_per_request = cpu * 1000 / max(1, r.sent)
        r.foreign_cpu = foreign
        print(f"[bench] {server.label} {rate}/s: p99 {r.p99_ms:.2f} ms, other load {foreign:.2f}", file=sys.stderr)
        results.append(r)
    runs = []
    for _ in range(args.repeat):
        w, _, foreign = measured(lambda: run_wrk(server, lua, 2, 16, args.wrk_seconds), server, args)
        w.foreign_cpu = foreign
        runs.append(w)
    print(f"[bench] {server.label} wrk: {[round(x.requests_per_s) for x in runs]} req/s", file=sys.stderr)
    return results, max(runs, key=lambda x: x.requests_per_s)


def bench(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print("bench: wrk not found (apt-get install -y wrk)", file=sys.stderr)
        return 2
    payload = review_body(not args.noncompliant)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    paced_results: list[PacedResult] = []
    wrk_results: list[WrkResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = self_signed(Path(tmp))
        tls = ssl.create_default_context(cafile=str(cert))
        lua = Path(tmp) / "post.lua"
        wrk_script(payload, lua)
        plans: list[tuple[str, list[str]]] = []
        for n in args.floor_workers:
            floor = [sys.executable, __file__, "floor", "--tls-cert", str(cert), "--tls-key", str(key), "--port", "0"]
            plans.append((f"floor w={n}", [*floor, "--workers", str(n)]))
        for n in args.workers:
            fg = [sys.executable, "-m", "factorygate.admission.server", "--host", "127.0.0.1", "--port", "0"]
            plans.append(
                (f"factorygate w={n}", [*fg, "--tls-cert", str(cert), "--tls-key", str(key), "--workers", str(n)])
            )
        for label, argv in plans:
            server = start_server(label, argv, tls, env)
            try:
                paced_runs, best = measure_server(server, args, tls, payload, lua)
            finally:
                server.stop()
            paced_results.extend(paced_runs)
            wrk_results.append(best)
    report(args, payload, paced_results, wrk_results)
    return 0


def report(
    args: argparse.Namespace, payload: bytes, paced_results: list[PacedResult], wrk_results: list[WrkResult]
) -> None:
    import uvicorn

    kind = "non-compliant (denied)" if args.noncompliant else "compliant (allowed)"
    print(
        f"\nadmission webhook benchmark: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"uvicorn {uvicorn.__version__} (h11, asyncio), {dt.date.today()}"
    )
    print(f"request: Deployment AdmissionReview, {len(payload):,} bytes, {kind}")
    print(f"load average before / after: {args.load_before} / {_loadavg()}")
    print(f"\npaced load, open loop, {args.seconds:g} s per rate; latency from the scheduled send time")
    columns = (("rate/s", 7), ("sent", 6), ("ok", 6), ("err", 4), ("p50 ms", 7), ("p99 ms", 7), ("max ms", 7))
    header = " ".join(f"{name:>{width}s}" for name, width in columns)
    print(f"{'server':18s} {header}  p99 from send  CPU ms/req  other load")
    for r in paced_results:
        print(
            f"{r.server:18s} {r.rate:7d} {r.sent:6d} {r.ok:6d} {r.errors:4d} {r.p50_ms:7.2f} {r.p99_ms:7.2f} "
            f"{r.max_ms:7.2f} {r.p99_from_send_ms:14.2f} {r.cpu_ms_per_request:11.3f} {r.foreign_cpu:11.2f}"
        )
    print(f"\nmaximum throughput: wrk -t2 -c16 -d{args.wrk_seconds}s --latency (best of {args.repeat})")
    columns = (("req/s", 9), ("p50 ms", 7), ("p99 ms", 7), ("non-2xx", 8), ("other load", 11))
    print(f"{'server':18s} " + " ".join(f"{name:>{width}s}" for name, width in columns) + "  socket errors")
    for w in wrk_results:
        row = f"{w.requests_per_s:9,.0f} {w.p50_ms:7.2f} {w.p99_ms:7.2f} {w.non_2xx:8d} {w.foreign_cpu:11.2f}"
        print(f"{w.server:18s} {row}  {w.errors or '-'}")
    floors = {w.server: w.requests_per_s for w in wrk_results if w.server.startswith("floor")}
    floor1 = floors.get("floor w=1")
    target_ratio = TARGET_FLOOR_RATIO
    print("\ntargets")
    for r in paced_results:
        if r.server.startswith("factorygate") and r.rate == TARGET_RATE:
            ok = r.p99_ms < TARGET_P99_MS and r.errors == 0
            print(
                f"  {r.server}: p99 at {TARGET_RATE} req/s {r.p99_ms:.2f} ms (< {TARGET_P99_MS:g} ms)  {_verdict(ok)}"
            )
    for w in wrk_results:
        if not w.server.startswith("factorygate"):
            continue
        same = floors.get(w.server.replace("factorygate", "floor"))
        target = f"(>= {TARGET_FLOOR_RATIO:.2f})"
        if floor1:
            ratio = w.requests_per_s / floor1
            verdict = _verdict(ratio >= target_ratio)
            print(f"  {w.server}: {ratio:.2f} x floor w=1 ({floor1:,.0f} req/s) {target}  {verdict}")
        if same and w.server != "factorygate w=1":
            ratio = w.requests_per_s / same
            name = w.server.replace("factorygate", "floor")
            print(f"  {w.server}: {ratio:.2f} x {name} ({same:,.0f} req/s) {target}  {_verdict(ratio >= target_ratio)}")
    cpu = {(r.server, r.rate): r.cpu_ms_per_request for r in paced_results}
    top = max(args.rates)
    if ("floor w=1", top) in cpu and ("factorygate w=1", top) in cpu:
        floor_ms, fg_ms = cpu[("floor w=1", top)], cpu[("factorygate w=1", top)]
        print(
            f"  server CPU per request at {top} req/s: factorygate {fg_ms:.3f} ms, floor {floor_ms:.3f} ms: "
            f"{floor_ms / fg_ms:.2f} x the floor's requests per CPU-second (less sensitive to other load than wrk)"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "date": dt.date.today().isoformat(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "request_bytes": len(payload),
                    "load_before": args.load_before,
                    "compliant": not args.noncompliant,
                    "paced": [asdict(r) for r in paced_results],
                    "wrk": [{k: v for k, v in asdict(w).items() if k != "raw"} for w in wrk_results],
                },
                indent=2,
            )
        )


def _cpu_idle(interval: float) -> float:
    """The fraction of CPU time idle over ``interval`` seconds (Linux /proc/stat; 1.0 elsewhere)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)

    try:
        idle0, total0 = sample()
        time.sleep(interval)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return 1.0
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_for_idle(limit_s: float) -> None:
    """Wait (at most ``limit_s``) until the machine is idle: others' work would be counted against ours."""
    deadline = time.monotonic() + limit_s
    said = False
    while time.monotonic() < deadline:
        idle = _cpu_idle(2.0)
        if idle >= 0.95:
            return
        if not said:
            print(f"[bench] waiting up to {limit_s:g} s for idle CPUs ({idle:.0%} idle)", file=sys.stderr)
            said = True
    print("[bench] the CPUs are still busy; measuring anyway", file=sys.stderr)


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("expected positive integers")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["floor"]:
        f = argparse.ArgumentParser(prog="bench_admission.py floor")
        f.add_argument("--tls-cert", required=True)
        f.add_argument("--tls-key", required=True)
        f.add_argument("--host", default="127.0.0.1")
        f.add_argument("--port", type=int, default=0)
        f.add_argument("--workers", type=int, default=1)
        fa = f.parse_args(argv[1:])
        return run_floor(fa.tls_cert, fa.tls_key, fa.host, fa.port, fa.workers)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=_ints, default=[1, 2], help="factorygate worker counts to run (default 1,2)")
    p.add_argument("--floor-workers", type=_ints, default=[1, 2], help="floor worker counts to run (default 1,2)")
    p.add_argument(
        "--rates", type=_ints, default=[100, 200, 300, 600], help="paced rates, req/s (default 100,200,300,600)"
    )
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per paced rate (default 10)")
    p.add_argument("--wrk-seconds", type=int, default=10, help="wrk duration (default 10)")
    p.add_argument(
        "--wait-idle", type=float, default=0, metavar="S", help="before each server, wait up to S s for idle CPUs"
    )
    p.add_argument(
        "--retries", type=int, default=3, help="measure again while other processes load the CPUs (default 3)"
    )
    p.add_argument("--repeat", type=int, default=1, help="wrk runs per server; the best is reported (default 1)")
    p.add_argument("--noncompliant", action="store_true", help="post a Deployment that is denied (default: allowed)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = p.parse_args(argv)
    args.load_before = _loadavg()
    return bench(args)


if __name__ == "__main__":
    raise SystemExit(main())
