"""Scanner reports are read as a stream: chunk boundaries anywhere, 200 MB reports in bounded memory,
and the --max-report-size limit through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import ROOT

from factorygate.cli import main
from factorygate.vulns import jsonstream
from factorygate.vulns.model import VulnInputError
from factorygate.vulns.reports import load_report, parse_report

DATA = ROOT / "tests" / "data" / "vulns"
FIXTURES = [DATA / "trivy-app.json", DATA / "grype-app.json", DATA / "cyclonedx-app.json"]
MB = 1024 * 1024


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 7 bytes: every value of the fixtures straddles a chunk boundary somewhere."""
    monkeypatch.setattr(jsonstream, "CHUNK", 7)
    monkeypatch.setattr(jsonstream, "LOW_WATER", 3)


@pytest.mark.usefixtures("tiny_chunks")
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_streamed_equals_parsed_whole_at_any_chunk_size(path: Path) -> None:
    assert load_report(str(path)) == parse_report(json.loads(path.read_text()), str(path))


@pytest.mark.usefixtures("tiny_chunks")
def test_key_order_does_not_matter(tmp_path: Path) -> None:
    """Grype writes its source after the matches; findings may come before a result's Target or before
    the CycloneDX components: the observations are the same."""
    for fixture in FIXTURES:
        doc = json.loads(fixture.read_text())
        reordered: dict[str, Any] = dict(reversed(list(doc.items())))
        for result in reordered.get("Results", []):
            result_items = list(result.items())
            result.clear()
            result.update(reversed(result_items))
        path = tmp_path / fixture.name
        path.write_text(json.dumps(reordered))
        assert load_report(str(path)) == parse_report(doc, str(fixture)), fixture.name


@pytest.mark.usefixtures("tiny_chunks")
def test_skipped_values_with_escapes_across_chunks(tmp_path: Path) -> None:
    doc = json.loads((DATA / "grype-app.json").read_text())
    pad = 'a\\"b\\\\c\u00e9\\u0041 \\\\' * 50  # escaped quotes, backslashes and \\u escapes at every offset
    doc = {"padding": pad, "nested": {"deeper": [pad, {"x": pad}], "n": -1.5e-3}, **doc, "trailer": [True, None]}
    path = tmp_path / "grype.json"
    path.write_text(json.dumps(doc, ensure_ascii=True))
    assert load_report(str(path)) == parse_report(doc, str(path))
    path.write_text(json.dumps(doc, ensure_ascii=False))
    assert load_report(str(path)) == parse_report(doc, str(path))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
report_keys = st.sampled_from(
    ["SchemaVersion", "Results", "Vulnerabilities", "VulnerabilityID", "PkgName", "Target", "matches",
     "vulnerability", "artifact", "id", "name", "source", "bomFormat", "specVersion", "vulnerabilities",
     "components", "bom-ref", "affects", "ref", "metadata"]
)  # fmt: skip
shaped = st.recursive(
    st.none() | st.integers() | st.sampled_from(["CycloneDX", "1.5", "CVE-2024-1", "grype", "x", "r"]) | st.just(2),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(report_keys, children, max_size=5),
    max_leaves=30,
)


def outcome(run: Any) -> tuple[str, Any]:
    try:
        return ("ok", run())
    except VulnInputError as exc:
        return ("error", str(exc).partition(": ")[2])


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.one_of(json_values, shaped), st.sampled_from([5, 64, 1 << 20]))
def test_streamed_and_parsed_agree_on_arbitrary_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: Any, chunk: int
) -> None:
    """Same observations, or the same one-line error, whichever way the document is read."""
    monkeypatch.setattr(jsonstream, "CHUNK", chunk)
    monkeypatch.setattr(jsonstream, "LOW_WATER", chunk // 2)
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(doc, indent=1))
    streamed = outcome(lambda: load_report(str(path)))
    parsed = outcome(lambda: parse_report(doc, str(path)))
    if streamed[0] == "ok" or parsed[0] == "ok":
        assert streamed == parsed
    # Both fail: with a problem in the document as a whole the message is the same; with problems in
    # several findings, the stream may name the first one it met, which is as good a one line.


@pytest.mark.usefixtures("tiny_chunks")
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{\n  "SchemaVersion": 2,\n  "Results": [\n    {"Target": "x",, }\n  ]\n}', "invalid JSON at line 4 column"),
        (b'{"SchemaVersion": 2,\n"Results": []\n}\n\n{"again": 1}', "invalid JSON at line 5 column 1: Extra data"),
        (b'{"SchemaVersion": 2, "Results": [{"Target": "x", "Packages": [1, 2', "truncated JSON"),
        (b'{"matches": [{"vulnerability": {"id": "CVE-1"}, "x": "\\', "truncated JSON"),
        (b'{"a": 1, "b": "\xc3', "not UTF-8 text at byte 16"),  # cut inside a character
        (b'{"a": "\xc3\x28"}', "not UTF-8 text at byte 7"),
        (b'{"skipped": [[[' + b"[" * 50_000 + b"]" * 50_003 + b"}", "JSON nested too deeply"),
    ],
)
def test_stream_errors_name_the_place(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(VulnInputError) as info:
        load_report(str(path))
    assert expected in str(info.value)
    assert str(info.value).startswith(str(path))


# --- a 200 MB report -----------------------------------------------------------------------------

DESCRIPTION = "A crafted input to the parser triggers an out-of-bounds read. " * 40  # 2.5 KB, as NVD texts go


def write_trivy(path: Path, findings: int, padding_packages: int = 0) -> int:
    """A Trivy report of ``findings`` findings (long descriptions and references, as real ones have),
    optionally after a list of ``padding_packages`` packages (--list-all-pkgs), written piecewise."""
    vuln = (
        '{{"VulnerabilityID": "CVE-2024-{n}", "PkgName": "pkg{p}", "PkgIdentifier": {{"PURL": '
        '"pkg:deb/debian/pkg{p}@1.{n}-1?distro=debian-12"}}, "InstalledVersion": "1.{n}-1", '
        '"FixedVersion": "1.{n}-2", "Severity": "HIGH", "Title": "pkg{p}: out-of-bounds read", '
        '"Description": "'
        + DESCRIPTION
        + '", "References": ['
        + ", ".join(['"https://example.org/a/{n}"'] * 12)
        + '], "CVSS": {{"nvd": {{"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", "V3Score": 7.5}}}}}}'
    )
    package = (
        '{{"Name": "pkg{n}", "Version": "1.{n}-1", "Licenses": ["GPL-2.0"], "Layer": {{"Digest": "' + "0" * 64 + '"}}}}'
    )
    with path.open("w", encoding="utf-8") as out:
        out.write('{"SchemaVersion": 2, "ArtifactName": "big:1", "Results": [{"Target": "big:1 (debian 12)", ')
        out.write('"Class": "os-pkgs", "Type": "debian", "Packages": [')
        for start in range(0, padding_packages, 10_000):
            out.write(", ".join(package.format(n=n) for n in range(start, min(start + 10_000, padding_packages))))
            if start + 10_000 < padding_packages:
                out.write(", ")
        out.write('], "Vulnerabilities": [')
        for start in range(0, findings, 5_000):
            out.write(", ".join(vuln.format(n=n, p=n % 3000) for n in range(start, min(start + 5_000, findings))))
            if start + 5_000 < findings:
                out.write(", ")
        out.write("]}]}\n")
    return path.stat().st_size


PEAK = """
import sys
from factorygate.vulns.reports import load_report

def peak():  # VmHWM: this process's peak resident memory, in kB (ru_maxrss would include the parent's)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

before = peak()
observations = load_report(sys.argv[1])
print(len(observations), (peak() - before) * 1024)
"""


def peak_memory(path: Path) -> tuple[int, int]:
    """(observations, growth of the peak resident memory in bytes) of loading ``path`` in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    count, growth = proc.stdout.split()
    return int(count), int(growth)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from /proc (Linux)")
def test_200mb_report_in_memory_that_follows_the_findings(tmp_path: Path) -> None:
    many = tmp_path / "many.json"
    size = write_trivy(many, findings=65_000)
    assert size > 200 * MB
    count, growth = peak_memory(many)
    assert count == 65_000
    # ~1 KB per finding kept, whatever the finding's size in the file (3.2 KB here)
    assert growth < 65_000 * 1500 + 16 * MB, growth
    assert growth < size / 2


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from /proc (Linux)")
def test_200mb_report_that_is_mostly_what_is_not_read(tmp_path: Path) -> None:
    padded = tmp_path / "padded.json"  # 200 MB, mostly a package list (--list-all-pkgs), with 2,000 findings
    size = write_trivy(padded, findings=2_000, padding_packages=1_300_000)
    assert size > 200 * MB
    count, growth = peak_memory(padded)
    assert count == 2_000
    assert growth < 24 * MB, growth  # what is not read is stepped over, never held


def test_max_report_size_through_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "trivy.json"
    size = write_trivy(report, findings=400)  # 1.4 MB
    assert main(["vulns", "merge", str(report), "--max-report-size", "1"]) == 2
    err = capsys.readouterr().err
    assert err == f"factorygate: {report}: {size} bytes is over the {MB}-byte limit for a scanner report\n"
    assert main(["vulns", "merge", str(report), "--max-report-size", "2", "-f", "csv"]) == 0
    assert capsys.readouterr().out.count("\n") == 401
    assert main(["vulns", "gate", str(report), "--max-report-size", "0.5", "--as-of", "2026-11-23"]) == 2
    assert "over the 524288-byte limit" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["vulns", "merge", str(report), "--max-report-size", "none"])
    assert "not a number of MiB" in capsys.readouterr().err
