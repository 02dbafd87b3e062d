"""``grade export``: per-student grades as CSV (the columns of grades.csv) or JSON."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from grader.cli import main
from test_scores import GOOD, MEMBERS, _standard, _write_sheet


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
