"""Justifications files: validation with line numbers, the two-person rule, expiry, matching."""

from __future__ import annotations

import datetime as dt
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from factorygate.vulns.justify import (
    Justification,
    JustificationBook,
    load_justifications,
    parse_justifications,
)
from factorygate.vulns.model import Package, VulnInputError

DAY = dt.date(2024, 6, 1)
OPENSSL = Package("openssl", "3.0.11-1~deb12u2", "deb", "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64")


@dataclass(frozen=True)
class F:
    id: str
    aliases: tuple[str, ...] = ()
    package: Package = OPENSSL


def entry(**kw: object) -> str:
    fields: dict[str, object] = {
        "vulnerability": "CVE-2024-0001",
        "status": "not_affected",
        "justification": "The vulnerable function is never called here.",
        "author": "alice",
        "approver": "bob",
        "approved": "2024-05-01",
        "expires": "2024-07-01",
    }
    fields.update(kw)
    body = "\n".join(f"    {k}: {v}" for k, v in fields.items() if v is not None)
    return "  -" + body[3:] + "\n"


def doc(*entries: str) -> str:
    return "apiVersion: factorygate.dev/v1\nkind: Justifications\njustifications:" + (
        "\n" + "".join(entries) if entries else " []\n"
    )


def problems(text: str) -> str:
    with pytest.raises(VulnInputError) as e:
        parse_justifications(text, "j.yaml")
    return str(e.value)


def test_a_valid_file_loads_with_lines(tmp_path: Path) -> None:
    p = tmp_path / "j.yaml"
    p.write_text(doc(entry(), entry(vulnerability="GHSA-abcd-efgh-ijkl", status="risk_accepted")), encoding="utf-8")
    book = load_justifications(p)
    assert [e.vulnerability for e in book.entries] == ["CVE-2024-0001", "GHSA-abcd-efgh-ijkl"]
    assert book.entries[0].approved == dt.date(2024, 5, 1)
    assert book.where(book.entries[1]) == f"{p}:11"
    assert book.entries[1].status == "risk_accepted"


def test_an_empty_list_is_valid() -> None:
    assert parse_justifications(doc(), "j.yaml").entries == ()


def test_two_person_rule_names_the_line() -> None:
    msg = problems(doc(entry(), entry(author="carol", approver=" Carol ")))
    assert "j.yaml:15: justifications.1.approver: " in msg
    assert "two-person rule" in msg


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"status": "wontfix"}, "j.yaml:5: justifications.0.status"),
        ({"expires": "2024-04-01"}, "j.yaml:10: justifications.0.expires: "),
        ({"expires": "not a date"}, "j.yaml:10: justifications.0.expires"),
        ({"justification": "short"}, "j.yaml:6: justifications.0.justification"),
        ({"vulnerability": "'CVE 2024'"}, "j.yaml:4: justifications.0.vulnerability"),
        ({"approver": None}, "j.yaml:4: justifications.0.approver: Field required"),
        ({"severity": "high"}, "j.yaml:11: justifications.0.severity: unknown field"),
        ({"vex_justification": "because"}, "j.yaml:11: justifications.0.vex_justification"),
        (
            {"status": "risk_accepted", "vex_justification": "component_not_present"},
            "justifications.0.vex_justification",
        ),
    ],
)
def test_invalid_entries_name_file_line_and_field(change: dict[str, object], where: str) -> None:
    assert where in problems(doc(entry(**change)))


def test_wrong_kind_and_not_a_mapping() -> None:
    assert "j.yaml:2: kind" in problems("apiVersion: factorygate.dev/v1\nkind: Policy\n")
    assert "j.yaml:1: a justifications file is a mapping" in problems("- a\n- b\n")
    assert "j.yaml:" in problems("apiVersion: [unclosed\n")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(VulnInputError, match="cannot read justifications"):
        load_justifications(tmp_path / "missing.yaml")


def j(**kw: object) -> Justification:
    base: dict[str, object] = {
        "vulnerability": "CVE-2024-0001",
        "status": "not_affected",
        "justification": "Not reachable from any entry point.",
        "author": "alice",
        "approver": "bob",
        "approved": dt.date(2024, 5, 1),
        "expires": dt.date(2024, 7, 1),
    }
    base.update(kw)
    return Justification(**base)  # type: ignore[arg-type]


def test_match_by_id_or_alias_case_insensitively() -> None:
    book = JustificationBook((j(vulnerability="GHSA-xxxx-yyyy-zzzz"),))
    assert book.match(F("CVE-2024-0001", ("GHSA-XXXX-yyyy-zzzz",)), DAY).state == "justified"
    assert book.match(F("ghsa-xxxx-yyyy-zzzz"), DAY).state == "justified"
    assert book.match(F("CVE-2024-0002", ("GHSA-other",)), DAY).state == "unjustified"


def test_package_glob_matches_name_or_purl() -> None:
    assert JustificationBook((j(package="openssl"),)).match(F("CVE-2024-0001"), DAY).state == "justified"
    assert JustificationBook((j(package="pkg:deb/debian/openssl@*"),)).match(F("CVE-2024-0001"), DAY).justification
    other = JustificationBook((j(package="libssl*"),))
    assert other.match(F("CVE-2024-0001"), DAY).state == "unjustified"


def test_image_glob_needs_a_matching_image() -> None:
    book = JustificationBook((j(image="registry.example.com/team/*"),))
    finding = F("CVE-2024-0001")
    assert book.match(finding, DAY, "registry.example.com/team/app:1").state == "justified"
    assert book.match(finding, DAY, "docker.io/library/app:1").state == "unjustified"
    assert book.match(finding, DAY).state == "unjustified"  # no image given: a scoped justification does not count


def test_expiry_and_approval_window() -> None:
    book = JustificationBook((j(expires=dt.date(2024, 6, 1)),))
    finding = F("CVE-2024-0001")
    assert book.match(finding, dt.date(2024, 5, 31)).state == "justified"
    m = book.match(finding, dt.date(2024, 6, 1))  # expires at the start of the expiry day
    assert m.state == "expired"
    assert m.justification is book.entries[0]
    assert book.match(finding, dt.date(2024, 4, 30)).state == "unjustified"  # not yet approved


def test_first_active_entry_wins_and_a_newer_one_replaces_an_expired_one() -> None:
    old = j(expires=dt.date(2024, 5, 15), justification="Old reasoning, now lapsed.")
    new = j(approved=dt.date(2024, 5, 20), status="fix_pending", justification="Upgrade scheduled next sprint.")
    book = JustificationBook((old, new))
    m = book.match(F("CVE-2024-0001"), DAY)
    assert m.state == "justified"
    assert m.justification is new


def test_constructing_in_code_applies_the_rules() -> None:
    with pytest.raises(ValueError, match="two-person"):
        j(approver="ALICE")
    assert j(author="  alice ").author == "alice"


def test_loaded_file_round_trip_from_example(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        apiVersion: factorygate.dev/v1
        kind: Justifications
        justifications:
          - vulnerability: CVE-2023-44487
            package: "pkg:golang/golang.org/x/net@*"
            image: "registry.example.com/*"
            status: mitigated
            vex_justification: inline_mitigations_already_exist
            justification: HTTP/2 is disabled at the ingress; the server only speaks HTTP/1.1.
            author: alice@example.com
            approver: bob@example.com
            approved: 2024-01-10
            expires: 2024-07-10
        """
    )
    p = tmp_path / "j.yaml"
    p.write_text(text, encoding="utf-8")
    (e,) = load_justifications(p).entries
    assert e.status == "mitigated"
    assert e.vex_justification == "inline_mitigations_already_exist"
    assert e.image == "registry.example.com/*"
