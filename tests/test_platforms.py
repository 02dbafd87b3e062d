"""Grades into the learning platforms' own files (``grade export --format moodle|canvas``).

The sample files in tests/files/platforms/ were written from the platforms' documented layouts:

- Moodle, the assignment's offline grading worksheet ("Download grading worksheet", feedback type
  "Offline grading worksheet"): https://docs.moodle.org/401/en/Assignment_settings (Feedback
  types), and the columns the download writes, in Moodle's mod/assign/gradingtable.php
  (https://github.com/moodle/moodle/commit/16668320a68a2a2050d73aae724d5c0c8c4fe5ff: "Grade",
  "Maximum Grade", "Grade can be changed", ...): "Identifier", "Full name", "Email address",
  "Status", "Grade", "Maximum Grade", "Grade can be changed", "Last modified (submission)",
  "Last modified (grade)", "Feedback comments", plus the site's identity fields (e.g. "ID number").
- Canvas, the gradebook export and import (Grades > Export / Import):
  https://teaching.resources.osu.edu/toolsets/carmencanvas/guides/calculating-final-grades/import-csv-file-carmen-grades
  (columns Student, ID, SIS User ID, SIS Login ID, Section, then the assignments) and
  https://ts.vcu.edu/askit/teaching-and-learning/canvas/faculty/grading-faculty/gradebook-action-menu-faculty/
  (read-only score columns); assignment columns are "Name (id)" and the second row is
  "Points Possible". Canvas's CSV rules (quotes doubled inside quoted fields, UTF-8):
  https://developerdocs.instructure.com/services/canvas/sis/file.sis_csv
"""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from test_scores import MEMBERS, _write_sheet, fake_output, fake_result

from grader.cli.main import main
from grader.errors import UsageError
from grader.folder.outdir import OutDir
from grader.tutors.platforms import PlatformError, fill_canvas, fill_moodle, parse_csv, quote_like, splice
from grader.tutors.scores import import_sheet

FILES = Path(__file__).resolve().parent / "files" / "platforms"
ADA = "Lovelace_2571234_Turing_2579876"
GRACE = "Hopper_2570001_Dijkstra_2570002"
EMMY = "Noether_2570003_Goedel_2570004"


def _out(tmp_path: Path, members: list | None = None) -> Path:
    """Ada/Alan and Grace/Edsger graded (4 points each before scoring), Emmy/Kurt not gradable."""
    groups = members or MEMBERS
    return fake_output(tmp_path / "out", [fake_result(ADA, groups[0]), fake_result(GRACE, groups[1]),
                                          fake_result(EMMY, groups[2], status="error")])


def _copy(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copy(FILES / name, tmp_path / name))


def _fields(data: bytes) -> list[list[str]]:
    """The file's raw field texts (quotes included), to compare byte for byte."""
    text = data.decode("utf-8-sig")
    return [[text[f.start:f.end] for f in r.fields] for r in parse_csv(text)]


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


# -- Moodle ----------------------------------------------------------------------------------------
def test_moodle_worksheet_gets_grade_and_feedback_and_keeps_every_other_byte(tmp_path: Path) -> None:
    out = _out(tmp_path)
    import_sheet(_write_sheet(tmp_path / "s.csv", [{"folder": ADA, "question": "11.2.1", "points": "0.5",
                                                     "comment": 'Cite "Elman, 1990" <properly>'}]), OutDir(out), tutor="ada")
    sheet = _copy(tmp_path, "moodle_worksheet.csv")
    before = sheet.read_bytes()
    outcome = fill_moodle(sheet, OutDir(out).results(), tmp_path / "filled.csv", allow_partial=True)
    assert sheet.read_bytes() == before  # a new file; the download is left alone
    after = (tmp_path / "filled.csv").read_bytes()
    assert after.startswith(b"\xef\xbb\xbf") and after.count(b"\r\n") == before.count(b"\r\n")
    assert b"\n" not in after.replace(b"\r\n", b"")  # CRLF kept, no bare LF added
    rows = {r["Email address"]: r for r in _rows(after)}
    assert rows["ada@uni.example"]["Grade"] == "4.5" and rows["ALAN@uni.example"]["Grade"] == "4.5"
    ada = rows["ada@uni.example"]["Feedback comments"]
    assert ada.startswith("Sheet 11: 4.5 of 10 points so far (provisional).<br>Not scored yet: 11.1.1")
    assert "<b>11.2.1</b>: 0.5 / 0.75<br>&nbsp;&nbsp;Cite \"Elman, 1990\" &lt;properly&gt;" in ada
    assert rows["grace.h@other.example"]["Grade"] == "4"           # matched by the ID number
    assert rows["ed@uni.example"]["Grade"] == "4"                  # no ID number: by e-mail; old grade replaced
    assert rows["ed@uni.example"]["Feedback comments"].startswith("Sheet 11: 4 of 10 points so far")
    # an error is not a grade: left as it is, and named with the reason
    assert rows["emmy@uni.example"]["Grade"] == "" and rows["emmy@uni.example"]["Feedback comments"] == ""
    assert any(c.startswith("Emmy Noether (2570003) of Noether") and "kernel died" in c for c in outcome.cannot)
    assert rows["emilie@uni.example"]["Grade"] == "" and rows["emilie@uni.example"]["Feedback comments"] == ""
    assert outcome.filled == 4 and outcome.not_in_grades == ["line 6 (Émilie du Châtelet, Participant 105)"]
    # byte for byte: every field but Grade (5) and Feedback comments (10) of the matched rows
    old, new = _fields(before), _fields(after)
    assert len(old) == len(new) and old[0] == new[0]
    for o, n in zip(old[1:], new[1:]):
        assert [x for i, x in enumerate(o) if i not in (5, 10)] == [x for i, x in enumerate(n) if i not in (5, 10)]
    assert old[5] == new[5]  # Émilie's row untouched
    assert before.split(b"\r\n")[5] == after.split(b"\r\n")[5]


def test_moodle_a_student_missing_from_the_worksheet_is_named_and_the_rest_is_written(tmp_path: Path) -> None:
    out = _out(tmp_path)
    sheet = _copy(tmp_path, "moodle_worksheet.csv")
    text = sheet.read_bytes().replace(b"Participant 107,Kurt G\xc3\xb6del,kurt@uni.example,2570004",
                                      b"Participant 107,Kurt G\xc3\xb6del,kurt@elsewhere.example,2579999")
    sheet.write_bytes(text)
    target = tmp_path / "filled.csv"
    outcome = fill_moodle(sheet, OutDir(out).results(), target, allow_partial=True)
    said = "\n".join(outcome.cannot)
    assert "Kurt Goedel (2570004, kurt@uni.example)" in said and "is not in the file" in said and "--match" in said
    assert target.exists() and outcome.filled == 4


@pytest.mark.parametrize("edit, says", [
    ((b"ada@uni.example,2571234,Submitted for grading,,10.00",
      b"ada@uni.example,2571234,Submitted for grading,,100.00"),
     "maximum grade is '100.00' but the sheet has 10 points"),
    ((b"2579876,Submitted for grading,,10.00,Yes", b"2579876,Submitted for grading,,10.00,No"),
     "Alan Turing cannot be changed"),
    ((b"grace.h@other.example,2570001", b"ed@uni.example,2570001"),
     "matches several rows"),
    ((b"ed@uni.example,,", b"ed@uni.example,2571234,"),
     "Ada Lovelace (2571234, ada@uni.example) of Lovelace_2571234_Turing_2579876.ipynb: the e-mail address "
     "matches line 2 (Ada \"Countess\" Lovelace, Participant 101) but the student id (also) matches line 5 "
     "(Edsger Dijkstra, Participant 104)"),
])
def test_moodle_every_doubt_leaves_that_student_out_by_name(tmp_path: Path, edit: tuple, says: str) -> None:
    out = _out(tmp_path)
    sheet = _copy(tmp_path, "moodle_worksheet.csv")
    assert edit[0] in sheet.read_bytes()
    sheet.write_bytes(sheet.read_bytes().replace(edit[0], edit[1], 1))
    outcome = fill_moodle(sheet, OutDir(out).results(), tmp_path / "filled.csv", allow_partial=True)
    assert any(says in c for c in outcome.cannot), outcome.cannot
    assert (tmp_path / "filled.csv").exists() and outcome.filled < 6


def test_moodle_names_with_quotes_commas_and_accents_in_the_grades(tmp_path: Path) -> None:
    members = [[('Zoë "Zed" Ångström, Jr.', "2571234", "ada@uni.example"),
                ("Alan Turing", "2579876", "alan@uni.example")], *MEMBERS[1:]]
    out = _out(tmp_path, members)
    sheet = _copy(tmp_path, "moodle_worksheet.csv")
    outcome = fill_moodle(sheet, OutDir(out).results(), sheet, allow_partial=True)  # in place, atomically
    assert outcome.path == sheet
    rows = {r["Email address"]: r for r in _rows(sheet.read_bytes())}
    assert rows["ada@uni.example"]["Full name"] == 'Ada "Countess" Lovelace'  # the platform's name is kept
    assert rows["ada@uni.example"]["Grade"] == "4"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_moodle_header_without_the_columns_names_what_is_missing(tmp_path: Path) -> None:
    sheet = tmp_path / "w.csv"
    sheet.write_text("Name,Points\nAda,3\n")
    with pytest.raises(PlatformError, match="no column 'Grade' or 'Email address \\(or ID number\\)'"):
        fill_moodle(sheet, OutDir(_out(tmp_path)).results(), None)


def test_a_student_in_two_groups_is_not_guessed(tmp_path: Path) -> None:
    members = [MEMBERS[0], [("Grace Hopper", "2570001", "grace@uni.example"),
                            ("Alan Turing", "2579876", "alan@uni.example")], MEMBERS[2]]
    out = fake_output(tmp_path / "out", [fake_result(ADA, members[0]),
                                         fake_result("Hopper_2570001_Turing_2579876", members[1])])
    outcome = fill_moodle(_copy(tmp_path, "moodle_worksheet.csv"), OutDir(out).results(), None, allow_partial=True)
    assert any("Alan Turing (id 2579876) is a member of two groups" in c for c in outcome.cannot)


def test_a_member_the_file_name_does_not_name_gets_no_grade_as_in_grades_csv(tmp_path: Path) -> None:
    members = [MEMBERS[0], [*MEMBERS[1], ("Emilie du Chatelet", "2570099", "emilie@uni.example")], MEMBERS[2]]
    outcome = fill_moodle(_copy(tmp_path, "moodle_worksheet.csv"), OutDir(_out(tmp_path, members)).results(), None,
                          allow_partial=True)
    rows = {r["Email address"]: r for r in _rows(outcome.text)}
    assert rows["emilie@uni.example"]["Grade"] == "" and rows["grace.h@other.example"]["Grade"] == "4"
    assert len(outcome.unconfirmed) == 1 and "Emilie du Chatelet (2570099)" in outcome.unconfirmed[0]


@pytest.mark.parametrize("content, says", [(b"\xff\xfeG\x00r\x00", "is not UTF-8"),
                                           (b'Identifier,Grade\n"Participant 1,3\n', "never closed"),
                                           (b'Identifier,Grade\n"Participant 1"x,3\n', "after the closing quote")])
def test_an_unreadable_file_is_refused(tmp_path: Path, content: bytes, says: str) -> None:
    sheet = tmp_path / "w.csv"
    sheet.write_bytes(content)
    with pytest.raises(UsageError, match=says):
        fill_moodle(sheet, [], None)


# -- Canvas ----------------------------------------------------------------------------------------
def test_canvas_fills_the_named_assignment_column_only(tmp_path: Path) -> None:
    out = _out(tmp_path)
    sheet = _copy(tmp_path, "canvas_gradebook.csv")
    with pytest.raises(PlatformError, match="several assignment columns; name the one to fill with --column, "
                                            "e.g. --column 'Sheet 11 \\(4711\\)'$"):
        fill_canvas(sheet, OutDir(out).results(), tmp_path / "x.csv")
    with pytest.raises(PlatformError, match="no assignment column 'Sheet 12'"):
        fill_canvas(sheet, OutDir(out).results(), tmp_path / "x.csv", column="Sheet 12")
    assert not (tmp_path / "x.csv").exists()
    before = sheet.read_bytes()
    outcome = fill_canvas(sheet, OutDir(out).results(), tmp_path / "filled.csv", column="Sheet 11", allow_partial=True)
    after = (tmp_path / "filled.csv").read_bytes()
    assert not after.endswith(b"\n") and b"\r" not in after  # LF kept, no newline added at the end
    rows = _rows(after)
    by_login = {r["SIS Login ID"]: r for r in rows[1:]}
    assert by_login["ada@uni.example"]["Sheet 11 (4711)"] == "4"
    assert by_login["aturing"]["Sheet 11 (4711)"] == "4"                      # by SIS User ID
    assert by_login["ed@uni.example"]["Sheet 11 (4711)"] == "4"               # 2.00 replaced
    assert by_login["emmy@uni.example"]["Sheet 11 (4711)"] == ""                # could not be graded
    assert by_login["emilie@uni.example"]["Sheet 11 (4711)"] == ""
    assert outcome.filled == 4
    assert [x.split(",")[0] for x in outcome.not_in_grades] == ["line 7 (Châtelet", "line 10 (Student"]
    old, new = _fields(before), _fields(after)
    for o, n in zip(old, new):
        assert o[:6] + o[7:] == n[:6] + n[7:]  # every column but Sheet 11 (4711), byte for byte
    assert old[0] == new[0] and old[1] == new[1]  # the header and the Points Possible row
    untouched = (b"Student, Test", "Châtelet".encode())
    assert [line for line in before.split(b"\n") if any(u in line for u in untouched)] == \
        [line for line in after.split(b"\n") if any(u in line for u in untouched)]
    # by the assignment id, too
    assert fill_canvas(sheet, OutDir(out).results(), None, column="4711", allow_partial=True).text == after


def test_canvas_points_possible_must_match(tmp_path: Path) -> None:
    sheet = _copy(tmp_path, "canvas_gradebook.csv")
    sheet.write_bytes(sheet.read_bytes().replace(b"Points Possible,,,,,10.00,10.00",
                                                 b"Points Possible,,,,,10.00,20.00"))
    with pytest.raises(PlatformError, match="Sheet 11 \\(4711\\) has '20.00' points possible but the sheet has 10"):
        fill_canvas(sheet, OutDir(_out(tmp_path)).results(), None, column="Sheet 11 (4711)")


# -- the command -------------------------------------------------------------------------------------
def test_export_into_moodle_warns_when_incomplete_and_require_complete_writes_nothing(tmp_path: Path) -> None:
    out = _out(tmp_path)
    sheet = _copy(tmp_path, "moodle_worksheet.csv")
    runner = CliRunner()
    strict = runner.invoke(main, ["export", "-o", str(out), "--format", "moodle", "--into", str(sheet),
                                  "--require-complete"])
    assert strict.exit_code == 1, strict.output
    assert "grading is not complete" in strict.output and "could not be graded" in strict.output
    assert "11.2.1: 2 written answer(s) not scored yet" in strict.output
    assert not (tmp_path / "moodle_worksheet-graded.csv").exists()
    loose = runner.invoke(main, ["export", "-o", str(out), "--format", "moodle", "--into", str(sheet),
                                 "--allow-partial"])
    assert loose.exit_code == 1, loose.output  # rows left out (Emmy's, Kurt's: errors) are listed, the rest written
    assert "grading is not complete" in loose.output and "4 student(s) filled in" in loose.output
    assert "line 6 (Émilie du Châtelet, Participant 105)" in loose.output and "Kurt Goedel (2570004)" in loose.output
    assert (tmp_path / "moodle_worksheet-graded.csv").exists()
    piped = runner.invoke(main, ["export", "-o", str(out), "--format", "moodle", "--into", str(sheet), "--to", "-",
                                 "--allow-partial"])
    assert piped.exit_code == 1 and piped.stdout_bytes == (tmp_path / "moodle_worksheet-graded.csv").read_bytes()
    assert not (tmp_path / "-").exists()
    assert runner.invoke(main, ["export", "-o", str(out), "--format", "moodle"]).exit_code == 2
    assert runner.invoke(main, ["export", "-o", str(out), "--format", "csv", "--into", str(sheet)]).exit_code == 2
    bad = runner.invoke(main, ["export", "-o", str(out), "--format", "canvas", "--into",
                               str(_copy(tmp_path, "canvas_gradebook.csv"))])
    assert bad.exit_code == 2 and "--column" in bad.output and "nothing was written" in bad.output


def test_export_require_complete_passes_when_everything_is_scored(tmp_path: Path) -> None:
    out = fake_output(tmp_path / "out", [fake_result(ADA, MEMBERS[0]), fake_result(GRACE, MEMBERS[1])])
    from grader.rubric import WRITTEN_IDS
    rows = [{"folder": f, "question": q, "points": "0.25"} for f in (ADA, GRACE) for q in WRITTEN_IDS]
    import_sheet(_write_sheet(tmp_path / "all.csv", rows), OutDir(out), tutor="ada")
    result = CliRunner().invoke(main, ["export", "-o", str(out), "--format", "canvas", "--column", "Sheet 11",
                                       "--require-complete", "--into", str(_copy(tmp_path, "canvas_gradebook.csv")),
                                       "--to", str(tmp_path / "up.csv")])
    assert result.exit_code == 0, result.output
    assert "not complete" not in result.output and "4 student(s) filled in" in result.output
    # the export's other students (no submission) are listed and left as they are
    assert "Noether, Emmy" in result.output and "Student, Test" in result.output
    rows = {r["SIS User ID"]: r for r in _rows((tmp_path / "up.csv").read_bytes())}
    assert rows["2571234"]["Sheet 11 (4711)"] == "6.25" and rows["2570002"]["Sheet 11 (4711)"] == "6.25"
    assert rows["2570003"]["Sheet 11 (4711)"] == ""


# -- the CSV reader ------------------------------------------------------------------------------------
_cell = st.text(alphabet=st.sampled_from(list('ab ,"\r\né;')), max_size=6)


@given(st.lists(st.lists(_cell, min_size=1, max_size=4), min_size=1, max_size=5),
       st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_the_reader_agrees_with_csv_and_a_splice_of_nothing_is_the_same_text(rows: list, newline: str,
                                                                           final: bool) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=newline, quoting=csv.QUOTE_MINIMAL).writerows(rows)
    text = buf.getvalue() if final else buf.getvalue()[:-len(newline)]
    records = parse_csv(text)
    blank = [""]  # a blank line: csv yields [], this reader one empty field; both mean "no data"
    assert [[f.value for f in r.fields] if [f.value for f in r.fields] != blank else [] for r in records] == \
        [r if r != blank else [] for r in csv.reader(io.StringIO(text, newline=""))]
    assert splice(text, []) == text
    first = records[0].fields[0]
    changed = splice(text, [(first, quote_like('new, "value"', first, ","))])
    assert next(csv.reader(io.StringIO(changed, newline="")))[0] == 'new, "value"'
    assert changed[len(quote_like('new, "value"', first, ",")):] == text[first.end:]
