from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from builders import FILES, GOOD_NAME
from grader.batch import assign_folders, expand_inputs, grades_csv, run_batch
from grader.errors import UsageError
from grader.rubric import QUESTION_IDS


def test_folders_keep_the_extension_only_where_stems_clash() -> None:
    paths = [Path("a/X_1_Y_2.zip"), Path("b/X_1_Y_2.ipynb"), Path("Z_3_W_4.zip")]
    assert assign_folders(paths) == ["X_1_Y_2.zip", "X_1_Y_2.ipynb", "Z_3_W_4"]


def test_inputs_expand_globs_and_folders(tmp_path: Path) -> None:
    for name in ("A_1_B_2.zip", "C_3_D_4.ipynb", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in expand_inputs([str(tmp_path)])] == ["A_1_B_2.zip", "C_3_D_4.ipynb"]
    assert [p.name for p in expand_inputs([str(tmp_path / "*.zip"), str(tmp_path / "A_1_B_2.zip")])] == ["A_1_B_2.zip"]
    with pytest.raises(UsageError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.nothing")])
    with pytest.raises(UsageError, match="does not exist"):
        expand_inputs([str(tmp_path / "missing.zip")])


def _result(submission: str, status: str, group: list[dict], flags: list[str]) -> dict:
    questions = {q: {"points": 0.5 if q.startswith("11.4") else 0.0,
                     "status": "auto" if q.startswith("11.4") else "pending"} for q in QUESTION_IDS}
    return {"submission": submission, "status": status, "group": group, "points": 2.0 if status == "graded" else 0.0,
            "max_points": 10.0, "questions": questions,
            "flags": [{"code": c, "question": None, "message": ""} for c in flags]}


def test_grades_csv_has_one_row_per_student() -> None:
    members = [{"name": "Ada Lovelace", "student_id": "2571234", "email": "ada@uni.example"},
               {"name": "Alan Turing", "student_id": "2579876", "email": "alan@uni.example"}]
    text = grades_csv([_result("L_2571234_T_2579876.zip", "graded", members, ["late", "late", "words.over_limit"]),
                       _result("Broken_1_Zip_2.zip", "error", [], ["archive.contents"])], list(QUESTION_IDS))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["student_id"] for r in rows] == ["2571234", "2579876", "1", "2"]
    assert rows[0]["flags"] == "late;words.over_limit"
    assert rows[0]["11.1.1"] == "" and rows[0]["11.4.a"] == "0.5" and rows[0]["points"] == "2"
    assert rows[2]["name"] == "Broken" and rows[2]["status"] == "error" and rows[2]["11.1.1"] == "0"
    for column in ("student_id", "name", "email", "submission", "status", "points", "max_points", "flags"):
        assert column in rows[0]


def _batch_inputs(tmp_path: Path) -> list[str]:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copyfile(FILES / "flags" / "passes_all.zip", src / f"{GOOD_NAME}.zip")
    shutil.copyfile(FILES / "flags" / "over_word_limit.ipynb", src / "Hopper_2571234_Turing_2579876.ipynb")
    (src / "Broken_1111111_Zip_2222222.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    return [str(src / "*")]


@pytest.mark.slow
def test_batch_writes_everything_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_batch(_batch_inputs(tmp_path), out)
    assert first.graded_now == 3
    statuses = {r["submission"]: r["status"] for r in first.results}
    assert statuses == {f"{GOOD_NAME}.zip": "graded", "Hopper_2571234_Turing_2579876.ipynb": "graded",
                        "Broken_1111111_Zip_2222222.zip": "error"}
    for folder in (GOOD_NAME, "Hopper_2571234_Turing_2579876", "Broken_1111111_Zip_2222222"):
        assert (out / folder / "report.html").stat().st_size > 0
        assert (out / folder / "tutor.html").stat().st_size > 0
        data = json.loads((out / folder / "result.json").read_text())
        assert set(data["questions"]) == set(QUESTION_IDS)
    assert (out / "summary.html").exists() and (out / "gradebook.sqlite").exists()
    csv_before = (out / "grades.csv").read_text()
    mtime = (out / GOOD_NAME / "result.json").stat().st_mtime_ns

    again = run_batch([str(tmp_path / "in" / "*")], out)
    assert again.graded_now == 0 and again.skipped == 3
    assert (out / GOOD_NAME / "result.json").stat().st_mtime_ns == mtime
    assert (out / "grades.csv").read_text() == csv_before
    (out / GOOD_NAME / "tutor.html").unlink()  # a folder from before tutor.html existed
    run_batch([str(tmp_path / "in" / "*")], out)
    assert (out / GOOD_NAME / "tutor.html").exists()
    assert (out / GOOD_NAME / "result.json").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_two_jobs_give_the_same_grades_as_one(tmp_path: Path) -> None:
    inputs = _batch_inputs(tmp_path)
    one = run_batch(inputs, tmp_path / "one", jobs=1)
    two = run_batch(inputs, tmp_path / "two", jobs=2)

    def strip(r: dict) -> dict:  # timings differ from run to run; everything else must not
        r = {k: v for k, v in r.items() if k != "seconds"}
        r["cells"] = [{k: v for k, v in c.items() if k != "seconds"} for c in r.get("cells", [])]
        if "recall" in r:
            r["recall"] = {k: v for k, v in r["recall"].items() if not k.endswith("seconds")}
        return r

    assert [strip(r) for r in one.results] == [strip(r) for r in two.results]
    assert (tmp_path / "one" / "grades.csv").read_text() == (tmp_path / "two" / "grades.csv").read_text()
