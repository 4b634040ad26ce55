"""JUnit XML (GitLab, Jenkins): one test suite per check, one test case per subject."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import TextIO

from factorygate.engine import ScanResult
from factorygate.model import Finding, Status


def _case_name(f: Finding) -> str:
    who = f.resource.display() if f.resource else f.location.file
    return f"{who} [{f.container}]" if f.container else who


def render_junit(result: ScanResult, out: TextIO) -> None:
    by_check: dict[str, list[Finding]] = defaultdict(list)
    for f in result.findings:
        by_check[f.check].append(f)
    root = ET.Element("testsuites", name="factorygate")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for check_id, findings in by_check.items():
        counts = {
            "tests": len(findings),
            "failures": sum(f.status is Status.FAIL for f in findings),
            "errors": sum(f.status is Status.ERROR for f in findings),
            "skipped": sum(f.status is Status.WAIVED for f in findings),
        }
        for k, v in counts.items():
            totals[k] += v
        suite = ET.SubElement(root, "testsuite", {"name": check_id, **{k: str(v) for k, v in counts.items()}})
        for f in findings:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=check_id,
                name=_case_name(f),
                file=f.location.file,
                line=str(f.location.line or 1),
            )
            detail = (
                f"{f.message}\nfile: {f.location.file}:{f.location.line}\npath: {f.location.path}\n"
                f"requirements: {', '.join(f.requirements)}\nnist: {', '.join(f.nist)}\ncci: {', '.join(f.cci)}\n"
                f"remediation: {f.remediation}"
            )
            if f.status is Status.FAIL:
                ET.SubElement(case, "failure", message=f.message, type=f.severity.value).text = detail
            elif f.status is Status.ERROR:
                ET.SubElement(case, "error", message=f.message, type="error").text = detail
            elif f.status is Status.WAIVED and f.waiver is not None:
                ET.SubElement(
                    case,
                    "skipped",
                    message=f"waived ({f.waiver.source}) by {f.waiver.approver} until {f.waiver.expires}: "
                    f"{f.waiver.justification}",
                )
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ET.tostring(root, encoding="unicode"))
    out.write("\n")
