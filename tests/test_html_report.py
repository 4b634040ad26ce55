"""The HTML report (`--format html`) and the vulnerability HTML page.

Fast tests check the pieces without a browser: the JSON embedding, the summaries, autoescaping.
The browser tests load real reports in headless Chromium over the DevTools protocol and check
that the page runs without errors, loads nothing, filters and searches for real, and shows hostile
strings as text without running them. They skip only when `chromium` is not installed
(scripts/system-deps.sh installs it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ROOT, run_cli

from factorygate.catalog import load_catalog
from factorygate.engine import KUBERNETES_KINDS, Engine, ScanResult
from factorygate.inputs.kubernetes import ReadOptions, manifests_from_bytes
from factorygate.model import Status
from factorygate.policy import parse_policy
from factorygate.render import Format, render
from factorygate.render import html as html_report
from factorygate.scan import scan_paths

AS_OF = dt.date(2026, 6, 1)
FIXTURES = ROOT / "tests" / "fixtures" / "checks"
# Real fixtures: privileged containers (fail) and hardened ones (pass), read-only root filesystems.
FIXTURE_INPUTS = [
    str(FIXTURES / "k8s-not-privileged"),
    str(FIXTURES / "k8s-read-only-root-filesystem"),
]
# Three waivers as of AS_OF: one expiring within 30 days, one expired, one with months left.
POLICY = """\
apiVersion: factorygate.dev/v1
kind: Policy
threshold: medium
waivers:
  - check: k8s-not-privileged
    resource: {kind: DaemonSet, name: node}
    justification: The node agent loads kernel modules; tracked in SEC-1234.
    approver: J. Smith (ISSM)
    expires: 2026-06-15
  - check: k8s-not-privileged
    resource: {kind: Pod, name: web}
    justification: Debug session approved for the incident review only.
    approver: A. Jones (ISSO)
    expires: 2026-05-01
  - check: k8s-read-only-root-filesystem
    justification: Legacy apps write to their root filesystem until the 2027 migration.
    approver: J. Smith (ISSM)
    expires: 2027-01-31
"""

H_SCRIPT = "</script><script>alert(1)</script>"
H_ATTR = '"><img src=x onerror=alert(1)>'
H_CONTROL = "ctl\x01\x07\x1b[31m\x7f\x85\u2028\u2029end"
NON_ASCII = "żółw-日本語-🚀"
HOSTILE_NAME = H_SCRIPT + H_CONTROL + NON_ASCII


def _yaml_quoted(s: str) -> str:
    """``s`` as a YAML double-quoted scalar (escapes for everything YAML will not take raw)."""
    out = []
    for c in s:
        raw = (0x20 <= ord(c) < 0x7F and c not in '"\\') or (ord(c) > 0xA0 and c not in "\u2028\u2029")
        out.append(c if raw else f"\\u{ord(c):04x}")
    return '"' + "".join(out) + '"'


_WAIVER = {"justification": f"Needed {H_SCRIPT}{H_ATTR} {NON_ASCII}", "approver": H_ATTR, "expires": "2099-01-01"}
HOSTILE_MANIFEST = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {_yaml_quoted(HOSTILE_NAME)}
  namespace: {_yaml_quoted(H_ATTR)}
  annotations:
    factorygate.dev/waive.k8s-liveness-probe: {_yaml_quoted(json.dumps(_WAIVER, ensure_ascii=False))}
spec:
  template:
    metadata: {{labels: {{app: x}}}}
    spec:
      containers:
        - name: {_yaml_quoted(H_ATTR + NON_ASCII)}
          image: {_yaml_quoted("registry.example/" + H_ATTR + "<link rel=stylesheet href=http://127.0.0.1:9/x.css>")}
          securityContext: {{privileged: true}}
"""


def fixture_scan() -> ScanResult:
    catalog = load_catalog()
    policy = parse_policy(POLICY, "policy.yaml", set(catalog.checks))
    engine = Engine(catalog, policy, as_of=AS_OF)
    return scan_paths(engine, FIXTURE_INPUTS, ReadOptions(kinds=KUBERNETES_KINDS))


def hostile_scan() -> ScanResult:
    catalog = load_catalog()
    policy = parse_policy(POLICY, "policy.yaml", set(catalog.checks))
    name = f"{H_SCRIPT}.yaml"
    items = manifests_from_bytes(HOSTILE_MANIFEST.encode(), name, kinds=KUBERNETES_KINDS)
    return Engine(catalog, policy, as_of=AS_OF).run(items, [name])


@pytest.fixture(scope="module")
def result() -> ScanResult:
    return fixture_scan()


@pytest.fixture(scope="module")
def hostile() -> ScanResult:
    return hostile_scan()


def html_of(result: ScanResult) -> str:
    out = io.StringIO()
    render(result, Format.HTML, out)
    return out.getvalue()


def embedded_json(page: str) -> Any:
    m = re.search(r'<script type="application/json" id="table-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


class _Tags(HTMLParser):
    """Every start tag of a page, as the HTML tokenizer sees it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def tags_of(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser


# -- fast tests: no browser -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        H_SCRIPT,
        "<!-- <script>",
        "a & b > c",
        "line\u2028sep\u2029para",
        H_CONTROL,
        NON_ASCII,
        "lone \ud800 surrogate",
        {"k</script>": ["\x00", 1, None, True, 2.5]},
    ],
)
def test_script_json_round_trips_and_cannot_break_out(value: object) -> None:
    text = html_report.script_json(value)
    assert json.loads(text) == value
    assert not set(text) & set("<>&\u2028\u2029\x7f\x85")
    assert not re.search("[\x00-\x1f\ud800-\udfff]", text)
    text.encode("utf-8")  # writable as UTF-8, even with a lone surrogate in the data


def test_nist_family() -> None:
    assert html_report.nist_family("AC-6 (10)") == "AC"
    assert html_report.nist_family("cm-7 a") == "CM"
    assert html_report.nist_family("SC-4") == "SC"
    assert html_report.nist_family("XX-1") == "other"
    assert html_report.nist_family("") == "other"


def test_requirement_and_family_summaries(result: ScanResult) -> None:
    rows = html_report.requirement_rows(result)
    by_id = {r["id"]: r for r in rows}
    assert list(by_id) == list(result.catalog.requirements)  # every requirement, catalog order
    assert by_id["CICDG-2.3"]["status"] == "fail"  # privileged containers
    assert by_id["CICDG-2.3"]["ia_control"] == "AC-6 (10)"
    assert by_id["CICDG-2.3"]["cci"] == ["CCI-002235"]
    assert by_id["CICDG-2.3"]["counts"]["fail"] > 0
    assert by_id["CICDG-2.1"]["status"] == "not_reviewed"  # SSH: Dockerfile/image only
    assert {r["status"] for r in rows} >= {"fail", "pass", "not_reviewed"}
    for r in rows:
        failing = sum(1 for f in result.findings if r["id"] in f.requirements and f.status is Status.FAIL)
        assert r["counts"]["fail"] == failing

    families = {f["family"]: f for f in html_report.family_rows(result, rows)}
    assert {"AC", "CM", "SC"} <= set(families)
    ac = families["AC"]
    assert ac["name"] == "Access Control"
    assert "AC-6 (10)" in ac["controls"]
    assert ac["requirement_total"] == sum(1 for r in rows if r["family"] == "AC")
    assert ac["status"] == "fail"
    expected_ac = Counter(
        f.status.value for f in result.findings if any(by_id[r]["family"] == "AC" for r in f.requirements)
    )
    assert ac["findings"] == {s: expected_ac[s] for s in html_report.STATUS_ORDER}


def test_waiver_rows_flag_expired_and_expiring(result: ScanResult) -> None:
    rows = html_report.waiver_rows(result)
    states = {(r.check, r.subject.split()[0]): r for r in rows}
    expiring = states[("k8s-not-privileged", "DaemonSet")]
    assert (expiring.state, expiring.days_left, expiring.approver) == ("expiring", 14, "J. Smith (ISSM)")
    expired = states[("k8s-not-privileged", "Pod")]
    assert expired.state == "expired"
    assert expired.days_left is not None
    assert expired.days_left < 0
    assert [r.state for r in rows][:2] == ["expired", "expiring"]  # the ones needing attention first
    active = [r for r in rows if r.check == "k8s-read-only-root-filesystem"]
    assert active
    assert all(r.state == "active" and r.days_left == 244 for r in active)
    # The expired waiver no longer waives: its findings still fail.
    web = [f for f in result.findings if f.check == "k8s-not-privileged" and f.resource and f.resource.name == "web"]
    expired_findings = [f for f in web if f.waiver is not None]
    assert expired_findings
    assert all(f.status is Status.FAIL and f.waiver and f.waiver.expired for f in expired_findings)


def test_page_is_self_contained_and_complete(result: ScanResult) -> None:
    page = html_of(result)
    parsed = tags_of(page)
    tags = parsed.tags
    # Nothing that could load anything: no src/href to anywhere but fragments, no link/img/iframe.
    for tag, attrs in tags:
        assert tag not in {"link", "img", "iframe", "object", "embed", "base", "form"} or (
            tag == "form" and "action" not in attrs
        ), tag
        assert "src" not in attrs, (tag, attrs)
        href = attrs.get("href")
        assert href is None or href.startswith("#"), href
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page)
    assert "@import" not in page
    assert "url(" not in page
    csp = next(a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert csp is not None
    assert "default-src 'none'" in csp
    assert "'unsafe-inline'" not in csp
    scripts = [a for t, a in tags if t == "script"]
    assert scripts == [{"type": "application/json", "id": "table-data"}, {}]
    # Header: tool version, inputs, date, threshold, verdict.
    text = " ".join(parsed.text)
    from factorygate import __version__

    assert f"factorygate {__version__}" in text
    assert "Gate: Fail" in text
    assert AS_OF.isoformat() in text
    assert all(i in text for i in result.inputs)
    assert re.search(r"Policy threshold\s+medium\s+and above fail the gate", text)
    # Requirements with IA control, CCIs and every status; families; waivers flagged.
    for rid, req in result.catalog.requirements.items():
        assert rid in text
        assert all(c in text for c in req.cci)
    assert "Not reviewed" in text
    assert "Access Control" in text
    assert "System and Communications Protection" in text
    assert "Expired 2026-05-01" in text
    assert "Expires in 14 days" in text
    assert "The node agent loads kernel modules; tracked in SEC-1234." in text
    # Charts: SVG with accessible names and per-segment titles.
    assert page.count('role="img"') >= 3
    assert '<desc id="donut-d">' in page


def test_embedded_findings_match_the_scan(result: ScanResult) -> None:
    table = embedded_json(html_of(result))
    assert len(table["rows"]) == len(result.findings)
    statuses = Counter(r["f"]["status"] for r in table["rows"])
    assert statuses == Counter(f.status.value for f in result.findings)
    order = [html_report.STATUS_ORDER.index(r["f"]["status"]) for r in table["rows"]]
    assert order == sorted(order)  # worst first
    fail = next(r for r in table["rows"] if r["f"]["status"] == "fail")
    texts = [seg[1] for cell in fail["cells"] for seg in cell]
    assert any(re.fullmatch(r".+\.yaml:\d+", t) for t in texts)  # file:line
    assert any(t.startswith("Fix: ") for t in texts)  # remediation
    waived = next(r for r in table["rows"] if r["f"]["status"] == "waived")
    assert any(seg[1].startswith("Waived by J. Smith (ISSM) until") for cell in waived["cells"] for seg in cell)
    keys = [f["key"] for f in table["filters"]]
    assert keys == ["status", "severity", "requirement"]
    assert table["filters"][0]["default"] == "fail|error|waived"


def test_hostile_strings_are_escaped_in_the_markup(hostile: ScanResult) -> None:
    page = html_of(hostile)
    parsed = tags_of(page)
    assert [t for t, _ in parsed.tags].count("script") == 2
    assert not any(t in {"img", "link"} for t, _ in parsed.tags)
    assert "alert(1)</script>" not in page.replace("alert(1)&lt;/script&gt;", "")
    assert "<img" not in page
    text = "".join(parsed.text)
    assert H_SCRIPT in text  # the input name in the header, decoded back to the same text
    assert f"Needed {H_SCRIPT}{H_ATTR} {NON_ASCII}" in text  # the inline waiver's justification
    table = embedded_json(page)
    subjects = {seg[1] for r in table["rows"] for seg in r["cells"][3]}
    assert f"Deployment {H_ATTR}/{HOSTILE_NAME}" in subjects  # every control character intact


@pytest.mark.parametrize(
    ("text", "verdict", "statuses"),
    [
        # Only a NetworkPolicy: the manifest checks ran and found nothing in scope.
        (
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: a}\n"
            "spec: {podSelector: {}}\n",
            "Gate: Pass",
            {"not_applicable", "not_reviewed"},
        ),
        ("kind: [unclosed\n", "Gate: Error", {"not_applicable", "not_reviewed"}),
    ],
)
def test_verdicts_and_requirement_statuses(text: str, verdict: str, statuses: set[str]) -> None:
    catalog = load_catalog()
    policy = parse_policy(POLICY, "policy.yaml", set(catalog.checks))
    items = manifests_from_bytes(text.encode(), "t.yaml", kinds=KUBERNETES_KINDS)
    result = Engine(catalog, policy, as_of=AS_OF).run(items, ["t.yaml"])
    page = html_of(result)
    words = " ".join(tags_of(page).text)
    assert verdict in words
    assert {r["status"] for r in html_report.requirement_rows(result)} == statuses
    assert "Not applicable" in words
    assert "No waiver applied to any finding of this scan." in words
    table = embedded_json(page)
    assert len(table["rows"]) == len(result.findings)
    if verdict == "Gate: Error":
        assert [r["f"]["status"] for r in table["rows"]] == ["error"]
        assert table["filters"][0]["default"] == "fail|error|waived"
    else:
        assert table["rows"] == []
        assert table["filters"][0]["default"] == ""


def test_lone_surrogates_are_written_as_replacement_characters() -> None:
    result = fixture_scan()
    result.inputs.append("bad\ud800name")
    page = html_of(result)
    page.encode("utf-8")
    assert "bad\ufffdname" in page


def test_html_format_on_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    proc = run_cli("scan", *FIXTURE_INPUTS, "--format", "html", "--output", str(out))
    assert proc.returncode == 1, proc.stderr
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "Gate: Fail" in page
    assert "failing at or above" in proc.stderr


def test_jinja2_is_imported_only_to_render_html() -> None:
    code = (
        "import sys; import factorygate.cli, factorygate.render, factorygate.render.html; "
        "assert 'jinja2' not in sys.modules, 'jinja2 imported early'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


MERGED = {
    "scanners": ["grype", "trivy"],
    "summary": {"critical": 1, "high": 1, "medium": 1, "low": 0, "negligible": 0, "unknown": 0},
    "findings": [
        {
            "id": "CVE-2024-0001",
            "aliases": ["GHSA-aaaa-bbbb-cccc"],
            "package": {"name": "openssl", "version": "3.0.1", "type": "deb", "purl": "pkg:deb/debian/openssl@3.0.1"},
            "severity": "critical",
            "severity_by_scanner": {"grype": "critical", "trivy": "high"},
            "fixed_versions": ["3.0.2"],
            "scanners": ["grype", "trivy"],
            "title": f"Buffer overflow {H_SCRIPT}",
        },
        {
            "id": "CVE-2024-0002",
            "aliases": [],
            "package": {"name": "zlib", "version": "1.2.11", "type": "deb", "purl": "pkg:deb/debian/zlib@1.2.11"},
            "severity": "medium",
            "severity_by_scanner": {"trivy": "medium"},
            "fixed_versions": [],
            "scanners": ["trivy"],
            "title": "",
        },
        {
            "id": "GHSA-xxxx-yyyy-zzzz",
            "aliases": [],
            "package": {"name": "requests", "version": "2.0", "type": "pypi", "purl": "pkg:pypi/requests@2.0"},
            "severity": "high",
            "severity_by_scanner": {"grype": "high"},
            "fixed_versions": ["2.32.0"],
            "scanners": ["grype"],
            "title": H_ATTR,
        },
    ],
    "only_in": {"grype": ["GHSA-xxxx-yyyy-zzzz requests@2.0"], "trivy": ["CVE-2024-0002 zlib@1.2.11"]},
    "severity_conflicts": [
        {"id": "CVE-2024-0001", "package": "openssl", "severity_by_scanner": {"grype": "critical", "trivy": "high"}}
    ],
}


def _decision() -> dict[str, Any]:
    """A real gate decision over the merged findings above."""
    from factorygate.vulns.gate import GatePolicy, decide
    from factorygate.vulns.justify import JustificationBook
    from factorygate.vulns.merge import merge
    from factorygate.vulns.model import Observation, Package

    observations = []
    for f in MERGED["findings"]:
        p = f["package"]
        for scanner in f["scanners"]:
            observations.append(
                Observation(
                    scanner=scanner,
                    vuln_id=f["id"],
                    aliases=frozenset(f["aliases"]),
                    package=Package(name=p["name"], version=p["version"], type=p["type"], purl=p["purl"]),
                    severity=f["severity_by_scanner"][scanner],
                    fixed_versions=tuple(f["fixed_versions"]),
                    title=f["title"],
                )
            )
    merged = merge(observations)
    decision = decide(merged.findings, JustificationBook([]), GatePolicy(), {"trivy.json": "sha256:00"}, AS_OF)
    return decision.to_json()


def vulns_page(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    html_report.render_vulns_html(doc, out)
    return out.getvalue()


def test_vulns_merge_page() -> None:
    page = vulns_page(MERGED)
    parsed = tags_of(page)
    text = " ".join(parsed.text)
    assert "Vulnerability report" in text
    assert "Only grype reported" in text
    assert "GHSA-xxxx-yyyy-zzzz requests@2.0" in text
    assert "Severity conflicts" in text
    assert not any(t in {"img", "link"} for t, _ in parsed.tags)
    table = embedded_json(page)
    assert [r["f"]["severity"] for r in table["rows"]] == ["critical", "high", "medium"]
    assert table["columns"][0] == "Severity"
    assert {f["key"] for f in table["filters"]} == {"severity", "scanner"}
    first = [seg[1] for cell in table["rows"][0]["cells"] for seg in cell]
    assert f"Buffer overflow {H_SCRIPT}" in first
    assert "Fixed in 3.0.2" in first
    assert "Scanners disagree: grype critical, trivy high" in first
    assert "No fix published" in [seg[1] for cell in table["rows"][2]["cells"] for seg in cell]


def test_vulns_gate_page() -> None:
    doc = _decision()
    assert doc["decision"] == "no-go"
    page = vulns_page(doc)
    text = " ".join(tags_of(page).text)
    assert "Decision: no-go" in text
    assert "Vulnerability gate" in text
    for reason in doc["reasons"]:
        assert reason in text
    assert "sha256:00" in text
    table = embedded_json(page)
    assert table["columns"][0] == "Gate"
    assert {f["key"] for f in table["filters"]} == {"status", "blocking", "severity", "scanner"}
    blocking = [r for r in table["rows"] if r["f"]["blocking"] == "yes"]
    assert len(blocking) == doc["summary"]["blocking"] > 0
    assert table["rows"][: len(blocking)] == blocking  # blocking first


# -- headless Chromium over the DevTools protocol --------------------------------------------------

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/system-deps.sh installs Debian's chromium)"
)
BROWSER_TIMEOUT = 30.0


class Page:
    """A tab of a headless Chromium, driven over the DevTools protocol (one websocket, flat sessions)."""

    def __init__(self, user_data_dir: Path) -> None:
        import websocket

        assert CHROMIUM is not None
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                f"--user-data-dir={user_data_dir}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.events: list[dict[str, Any]] = []
        self.dialogs: list[str] = []
        self._next = 0
        try:
            port, path = self._devtools_port(user_data_dir / "DevToolsActivePort")
            self.ws = websocket.create_connection(
                f"ws://127.0.0.1:{port}{path}", timeout=BROWSER_TIMEOUT, suppress_origin=True
            )
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable", session=self.session)
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, port_file: Path) -> tuple[str, str]:
        """Chromium writes the port it chose (``--remote-debugging-port=0``) and the browser's path."""
        deadline = time.monotonic() + BROWSER_TIMEOUT
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        return port, path

    def _send(self, method: str, params: dict[str, Any] | None, session: str | None) -> int:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        return self._next

    def _pump(self) -> dict[str, Any]:
        msg: dict[str, Any] = json.loads(self.ws.recv())
        if msg.get("method") == "Page.javascriptDialogOpening":
            self.dialogs.append(msg["params"].get("message", ""))
            self._send("Page.handleJavaScriptDialog", {"accept": False}, msg.get("sessionId"))
        if "method" in msg:
            self.events.append(msg)
        return msg

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + BROWSER_TIMEOUT
        while time.monotonic() < deadline:
            msg = self._pump()
            if msg.get("id") == wanted:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
        raise TimeoutError(method)

    def open(self, path: Path) -> str:
        url = path.resolve().as_uri()
        start = len(self.events)
        self.call("Page.navigate", {"url": url}, session=self.session)
        deadline = time.monotonic() + BROWSER_TIMEOUT
        while not any(e["method"] == "Page.loadEventFired" for e in self.events[start:]):
            if time.monotonic() > deadline:
                raise TimeoutError("page load")
            self._pump()
        self.js("new Promise(r => setTimeout(r, 50))")  # let the reset handler's timers and layout settle
        return url

    def js(self, expression: str) -> Any:
        res = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=self.session,
        )
        if "exceptionDetails" in res:
            raise AssertionError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, log errors (CSP violations, failed loads)."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails']}")
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in {"error", "warning", "assert"}:
                out.append(f"console.{p['type']}: {p.get('args')}")
            elif e["method"] == "Log.entryAdded" and p["entry"].get("level") in {"error", "warning"}:
                out.append(f"log {p['entry'].get('source')}: {p['entry'].get('text')}")
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def close(self) -> None:
        import websocket

        ws = getattr(self, "ws", None)
        if ws is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                self._send("Browser.close", None, None)
            ws.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    p = Page(tmp_path / "chromium-profile")
    try:
        yield p
    finally:
        p.close()


def write(tmp_path: Path, result: ScanResult, name: str = "report.html") -> Path:
    path = tmp_path / name
    with path.open("w", encoding="utf-8") as out:
        render(result, Format.HTML, out)
    return path


ROWS = "[...document.querySelectorAll('#table-body tr:not(.empty)')]"


def choose(page: Page, key: str, value: str) -> int:
    """Set a filter as a person would (value, then a change event); the number of rows shown."""
    n = page.js(
        f"(() => {{ const s = document.getElementById('filter-{key}'); s.value = {json.dumps(value)};"
        f" s.dispatchEvent(new Event('change')); return {ROWS}.length; }})()"
    )
    assert isinstance(n, int)
    return n


def type_search(page: Page, text: str) -> int:
    n = page.js(
        f"(() => {{ const s = document.getElementById('table-search'); s.value = {json.dumps(text)};"
        f" s.dispatchEvent(new Event('input')); return {ROWS}.length; }})()"
    )
    assert isinstance(n, int)
    return n


@needs_chromium
def test_report_runs_clean_and_loads_nothing(page: Page, tmp_path: Path, result: ScanResult) -> None:
    url = page.open(write(tmp_path, result))
    assert page.problems() == []
    assert page.requests() == [url]  # the document itself, nothing else
    assert page.js("performance.getEntriesByType('resource').length") == 0
    assert page.js("document.title") == "factorygate scan report: Fail"
    assert page.js("document.getElementById('table-controls').hidden") is False
    assert page.dialogs == []


@needs_chromium
def test_filters_and_search_hide_rows(page: Page, tmp_path: Path, result: ScanResult) -> None:
    page.open(write(tmp_path, result))
    counts = Counter(f.status.value for f in result.findings)
    problems = counts["fail"] + counts["error"] + counts["waived"]
    assert page.js(f"{ROWS}.length") == problems  # the default view: what needs attention
    assert page.js(f"{ROWS}.every(r => r.dataset.status !== 'pass')")
    assert page.js("document.getElementById('table-count').textContent") == (
        f"Showing {problems} of {problems} matching findings ({len(result.findings)} in total)."
    )

    assert choose(page, "status", "") == len(result.findings)
    assert choose(page, "status", "pass") == counts["pass"]
    assert page.js(f"{ROWS}.every(r => r.dataset.status === 'pass')")
    assert choose(page, "status", "waived") == counts["waived"] > 0
    assert page.js(f"{ROWS}.every(r => r.textContent.includes('Waived by'))")

    assert choose(page, "status", "") == len(result.findings)
    high = sum(1 for f in result.findings if f.severity.value == "high")
    assert 0 < choose(page, "severity", "high") == high < len(result.findings)
    assert page.js(f"{ROWS}.every(r => r.dataset.severity === 'high')")
    choose(page, "severity", "")

    in_23 = sum(1 for f in result.findings if "CICDG-2.3" in f.requirements)
    assert 0 < choose(page, "requirement", "CICDG-2.3") == in_23 < len(result.findings)
    assert page.js(f"{ROWS}.every(r => r.dataset.requirement.split(' ').includes('CICDG-2.3'))")
    choose(page, "requirement", "")

    # Free text, case-insensitive, every word must match somewhere in the row.
    debugger = sum(1 for f in result.findings if f.container == "debugger")
    assert 0 < type_search(page, "DEBUGGER") == debugger
    assert page.js(f"{ROWS}.every(r => r.textContent.toLowerCase().includes('debugger'))")
    # Two words narrow it down: rows with both, anywhere (the same rule computed from the embedded data).
    rows = embedded_json((tmp_path / "report.html").read_text(encoding="utf-8"))["rows"]
    texts = [" ".join(seg[1] for cell in r["cells"] for seg in cell).lower() for r in rows]
    both = sum(1 for t in texts if "debugger" in t and "runs privileged" in t)
    assert type_search(page, "Debugger  RUNS privileged") == both == 1
    assert type_search(page, "no-such-text-anywhere") == 0
    assert page.js("document.querySelector('#table-body tr.empty').textContent") == "No findings match these filters."

    page.js("document.getElementById('table-reset').click()")
    page.js("new Promise(r => setTimeout(r, 50))")
    assert page.js(f"{ROWS}.length") == problems
    assert page.js("document.getElementById('table-search').value") == ""
    assert page.problems() == []


@needs_chromium
def test_row_limit_and_show_all(
    page: Page, tmp_path: Path, result: ScanResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(html_report, "ROW_LIMIT", 5)
    page.open(write(tmp_path, result))
    choose(page, "status", "")
    assert page.js(f"{ROWS}.length") == 5
    assert page.js("document.getElementById('show-all').hidden") is False
    page.js("document.getElementById('show-all').click()")
    assert page.js(f"{ROWS}.length") == len(result.findings)
    assert page.js("document.getElementById('show-all').hidden") is True
    assert page.problems() == []


@needs_chromium
def test_hostile_strings_show_as_text_and_never_run(page: Page, tmp_path: Path, hostile: ScanResult) -> None:
    url = page.open(write(tmp_path, hostile, "hostile.html"))
    choose(page, "status", "")  # every row, passes included
    assert page.dialogs == []
    assert page.problems() == []
    assert page.requests() == [url]
    assert page.js("document.scripts.length") == 2
    assert page.js("document.querySelectorAll('img, link, iframe, object, embed').length") == 0
    assert page.js("document.querySelectorAll('#table-body script, #waivers script').length") == 0
    # The strings are in the page as text, exactly (control characters and all).
    subjects = page.js(f"{ROWS}.map(r => r.cells[3].firstChild.textContent)")
    assert set(subjects) == {f"Deployment {H_ATTR}/{HOSTILE_NAME}"}
    assert page.js("document.querySelector('.inputs code').textContent") == f"{H_SCRIPT}.yaml"
    justifications = page.js("[...document.querySelectorAll('#waivers .justification')].map(e => e.textContent)")
    assert f"Needed {H_SCRIPT}{H_ATTR} {NON_ASCII}" in justifications
    approvers = page.js(
        "[...document.querySelectorAll('#waivers .waiver-meta div:first-child dd')].map(e => e.textContent)"
    )
    assert H_ATTR in approvers
    body = page.js("document.body.innerText")
    assert "alert(1)" in body
    assert NON_ASCII in body
    # Searching for the markup finds the rows: it is data, not DOM.
    assert type_search(page, "<img src=x") == len(hostile.findings)


@needs_chromium
def test_vulns_pages_run_clean_and_filter(page: Page, tmp_path: Path) -> None:
    path = tmp_path / "gate.html"
    doc = _decision()
    path.write_text(vulns_page(doc), encoding="utf-8")
    url = page.open(path)
    assert page.problems() == []
    assert page.requests() == [url]
    assert page.js(f"{ROWS}.length") == len(doc["findings"])
    assert choose(page, "blocking", "yes") == doc["summary"]["blocking"]
    assert choose(page, "blocking", "") == len(doc["findings"])
    assert choose(page, "severity", "critical") == 1
    choose(page, "severity", "")
    assert choose(page, "scanner", "grype") == 2
    assert page.dialogs == []

    merged = tmp_path / "merged.html"
    merged.write_text(vulns_page(MERGED), encoding="utf-8")
    page.events.clear()
    url = page.open(merged)
    assert page.problems() == []
    assert page.requests() == [url]
    assert type_search(page, "openssl") == 1
    assert page.js("document.querySelectorAll('img').length") == 0
    assert page.dialogs == []
