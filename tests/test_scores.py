"""Importing the tutors' scoring sheet: the whole loop on a graded batch (slow), and every kind of
bad sheet on a synthetic output folder (fast): the row is named and nothing changes."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from pathlib import Path

import pytest

from builders import set_answer, set_group, solution, write_notebook, write_zip, notebook_bytes
from grader.batch import run_batch, write_atomic, write_outputs
from grader.gradebook import Gradebook
from grader.report import render_pages
from grader.rubric import AUTO_IDS, QUESTION_IDS, WRITTEN_IDS, load_rubric
from grader.scores import SheetError, import_sheet, load_results
from grader.review import write_review

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
    out.mkdir(parents=True, exist_ok=True)
    for data in results:
        write_atomic(out / data["folder"] / "result.json", json.dumps(data, indent=2, ensure_ascii=False))
        for name, html in render_pages(data).items():  # report.html and tutor.html, as a batch writes them
            write_atomic(out / data["folder"] / name, html)
    write_outputs(results, out, load_rubric(), "")
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
        import_sheet(_write_sheet(tmp_path / "sheet.csv", rows), out, tutor="ada")
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
        import_sheet(_write_sheet(tmp_path / "s.csv", rows), out)
    text = str(info.value)
    assert "row 2: points 'x' is not a number" in text
    assert "row 4: 11.1.1 of 'Lovelace_2571234_Turing_2579876.ipynb' is scored again (first in row 3)" in text
    assert "row 5: unknown submission folder 'Zed'" in text


def test_import_is_idempotent_and_a_later_sheet_wins_with_history(tmp_path: Path) -> None:
    out = _standard(tmp_path)
    sheet = _write_sheet(tmp_path / "s.csv", [GOOD, dict(GOOD, question="11.1.1", points="0,25", comment="")])
    first = import_sheet(sheet, out, tutor="ada")
    assert len(first.changed) == 2 and first.rewritten == ["Lovelace_2571234_Turing_2579876"]
    data = json.loads((out / GOOD["folder"] / "result.json").read_text())
    assert data["questions"]["11.2.1"]["status"] == "manual" and data["questions"]["11.2.1"]["points"] == 0.5
    assert data["questions"]["11.2.1"]["comment"] == "fine" and data["questions"]["11.2.1"]["scored_by"] == "ada"
    assert data["points"] == 4.75
    snap = _snapshot(out)
    again = import_sheet(sheet, out, tutor="bob")
    assert again.changed == [] and again.rewritten == []
    assert _snapshot(out) == snap

    later = _write_sheet(tmp_path / "later.csv", [dict(GOOD, points="0.75", comment="on reflection: full marks")])
    import_sheet(later, out, tutor="bob")
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
        import_sheet(sheet, out)


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
    run_batch(_submissions(tmp_path), out)
    review = write_review(out)
    assert sorted(p.name for p in review.pages) == sorted(f"{q}.html" for q in WRITTEN_IDS)
    rows = list(csv.DictReader(io.StringIO(review.sheet.read_text())))
    assert len(rows) == 3 * len(WRITTEN_IDS) and all(r["points"] == "" for r in rows)
    for r in rows:  # the tutor fills in every row; the suggestion as points, a comment on 11.1.1
        r["points"] = r["suggested"] or "0"
        if r["question"] == "11.1.1":
            r["comment"] = f"Right <b>idea</b> for {r['folder'][:6]}"
    sheet = _write_sheet(tmp_path / "filled.csv", rows)
    import_sheet(sheet, out, tutor="ada")

    grades = list(csv.DictReader(io.StringIO((out / "grades.csv").read_text())))
    assert len(grades) == 6
    for g in grades:
        mine = [r for r in rows if r["submission"] == g["submission"]]
        for r in mine:
            assert float(g[r["question"]]) == float(r["points"])
        auto = sum(float(g[q]) for q in AUTO_IDS)
        assert float(g["points"]) == pytest.approx(auto + sum(float(r["points"]) for r in mine))
    for folder in ("Lovelace_2571234_Turing_2579876", "Hopper_2570001_Dijkstra_2570002"):
        data = json.loads((out / folder / "result.json").read_text())
        assert all(data["questions"][q]["status"] == "manual" for q in WRITTEN_IDS)
        html = (out / folder / "report.html").read_text()
        assert f"Right &lt;b&gt;idea&lt;/b&gt; for {folder[:6]}" in html
    assert "Lovelace_2571234_Turing_2579876.zip" in [g["submission"] for g in grades]
    snap = _snapshot(out)
    import_sheet(sheet, out, tutor="ada")
    assert _snapshot(out) == snap

    # a rubric fix: re-grading keeps the tutors' scores and says what changed
    rubric = (Path(__file__).resolve().parent.parent / "rubrics" / "sheet11.toml").read_text()
    fixed = tmp_path / "fixed.toml"
    fixed.write_text(rubric.replace('function = "rnn_forward"\npoints = 1.0\nrtol = 1e-4\natol = 1e-5',
                                    'function = "rnn_forward"\npoints = 1.0\nrtol = 1e-30\natol = 1e-30'))
    assert fixed.read_text() != rubric
    again = run_batch([str(tmp_path / "in" / "*")], out, rubric_path=str(fixed), regrade=True)
    data = json.loads((out / "Hopper_2570001_Dijkstra_2570002" / "result.json").read_text())
    assert all(data["questions"][q]["status"] == "manual" for q in WRITTEN_IDS)
    assert data["questions"]["11.1.1"]["comment"].startswith("Right <b>idea</b>")
    moved = {c["folder"]: c["questions"] for c in again.changes}
    if data["questions"]["11.4.a"]["points"] != 1.0:  # float32 results cannot meet a tolerance of 1e-30
        assert moved["Hopper_2570001_Dijkstra_2570002"]["11.4.a"] == [1.0, data["questions"]["11.4.a"]["points"]]
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        assert db.execute("SELECT COUNT(DISTINCT run_id) FROM run_results").fetchone()[0] == 2
    assert [r["folder"] for r in load_results(out)] == [r["folder"] for r in again.results]
