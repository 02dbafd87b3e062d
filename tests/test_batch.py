from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import psutil
import pytest
from builders import FILES, GOOD_NAME, BatchOfThree, slowness

import grader.batch.job
import grader.batch.run
from grader.batch.run import BatchSettings, assign_folders, run_batch
from grader.errors import UsageError
from grader.folder.gradebook import Gradebook
from grader.folder.grades import grades_csv
from grader.result import SubmissionResult
from grader.rubric import QUESTION_IDS


def test_folders_keep_the_extension_only_where_stems_clash() -> None:
    paths = [Path("a/X_1_Y_2.zip"), Path("b/X_1_Y_2.ipynb"), Path("Z_3_W_4.zip")]
    assert assign_folders(paths) == ["X_1_Y_2.zip", "X_1_Y_2.ipynb", "Z_3_W_4"]


def test_inputs_expand_globs_and_folders(tmp_path: Path) -> None:
    from grader.rubric import load_rubric
    from grader.submission.platform import discover
    subs = tmp_path / "subs"
    subs.mkdir()
    for name in ("A_1_B_2.zip", "C_3_D_4.ipynb", "notes.txt"):
        (subs / name).write_text("x")
    archive = load_rubric().archive

    def found(*paths: Path) -> list[str]:
        return [f.path.name for f in discover([str(p) for p in paths], tmp_path / "staging", archive).found]
    assert found(subs) == ["A_1_B_2.zip", "C_3_D_4.ipynb"]
    assert found(subs / "*.zip", subs / "A_1_B_2.zip") == ["A_1_B_2.zip"]
    with pytest.raises(UsageError, match="no file matches"):
        found(subs / "*.nothing")
    with pytest.raises(UsageError, match="does not exist"):
        found(subs / "missing.zip")


def _result(submission: str, status: str, group: list[dict], flags: list[str]) -> SubmissionResult:
    questions = {q: {"points": 0.5 if q.startswith("11.4") and status == "graded" else 0.0, "max_points": 1.0,
                     "status": "auto" if q.startswith("11.4") else "pending"} for q in QUESTION_IDS}
    return SubmissionResult.from_json({
        "submission": submission, "status": status, "group": group, "max_points": 10.0, "questions": questions,
        "flags": [{"code": c, "question": None, "message": ""} for c in flags], "folder": submission[:-4]})


def test_grades_csv_has_one_row_per_student() -> None:
    members = [{"name": "Ada Lovelace", "student_id": "2571234", "email": "ada@uni.example"},
               {"name": "Alan Turing", "student_id": "2579876", "email": "alan@uni.example"}]
    text = grades_csv([_result("L_2571234_T_2579876.zip", "graded", members, ["late", "late", "words.over_limit"]),
                       _result("Broken_1_Zip_2.zip", "error", [], ["archive.contents"])], list(QUESTION_IDS))
    reader = csv.DictReader(io.StringIO(text))
    # contract §6's columns, checked on the header itself before any row is read by them
    header = list(reader.fieldnames or [])
    for column in ("student_id", "name", "email", "submission", "status", *QUESTION_IDS, "points", "max_points",
                   "flags"):
        assert column in header, f"grades.csv lacks the column {column!r}: {header}"
    rows = list(reader)
    assert [r["student_id"] for r in rows] == ["2571234", "2579876", "1", "2"]
    assert rows[0]["flags"] == "late;words.over_limit"
    assert rows[0]["11.1.1"] == "" and rows[0]["11.4.a"] == "0.5"
    assert rows[0]["points"] == f"{sum(0.5 for q in QUESTION_IDS if q.startswith('11.4')):g}"
    assert rows[2]["name"] == "Broken" and rows[2]["status"] == "error" and rows[2]["11.1.1"] == "0"


@pytest.mark.slow
@pytest.mark.xdist_group("batch_of_three")
def test_batch_writes_everything_and_resumes(batch_of_three: BatchOfThree) -> None:
    # The first run is the shared one (conftest.py); this test then resumes it in place, which
    # leaves its results and grades.csv as they were (asserted below).
    out, first, inputs = batch_of_three.one_dir, batch_of_three.one, batch_of_three.inputs
    assert first.graded_now == 3
    statuses = {r["submission"]: r["status"] for r in first.results}
    assert statuses == {f"{GOOD_NAME}.zip": "graded", "Hopper_2571234_Turing_2579876.ipynb": "graded",
                        "Broken_1111111_Zip_2222222.zip": "error"}
    for folder in (GOOD_NAME, "Hopper_2571234_Turing_2579876", "Broken_1111111_Zip_2222222"):
        assert (out / folder / "report.html").stat().st_size > 0
        assert (out / folder / "tutor.html").stat().st_size > 0
        data = json.loads((out / folder / "result.json").read_text())
        assert set(data["questions"]) == set(QUESTION_IDS)
        assert SubmissionResult.from_json(data).to_json() == data  # typed end to end, nothing lost
    assert (out / "summary.html").exists() and (out / "gradebook.sqlite").exists()
    csv_before = (out / "grades.csv").read_text()
    mtime = (out / GOOD_NAME / "result.json").stat().st_mtime_ns

    again = run_batch(inputs, BatchSettings.make(out))
    assert again.graded_now == 0 and again.skipped == 3
    assert (out / GOOD_NAME / "result.json").stat().st_mtime_ns == mtime
    assert (out / "grades.csv").read_text() == csv_before
    (out / GOOD_NAME / "tutor.html").unlink()  # a folder from before tutor.html existed
    run_batch(inputs, BatchSettings.make(out))
    assert (out / GOOD_NAME / "tutor.html").exists()
    assert (out / GOOD_NAME / "result.json").stat().st_mtime_ns == mtime


@pytest.mark.slow
@pytest.mark.xdist_group("batch_of_three")
def test_two_jobs_give_the_same_grades_as_one(batch_of_three: BatchOfThree) -> None:
    one, two = batch_of_three.one, batch_of_three.two

    def strip(r: dict) -> dict:  # timings differ from run to run; everything else must not
        r = {k: v for k, v in r.items() if k != "seconds"}
        r["cells"] = [{k: v for k, v in c.items() if k != "seconds"} for c in r.get("cells", [])]
        if "recall" in r:
            r["recall"] = {k: v for k, v in r["recall"].items() if not k.endswith("seconds")}
        return r

    assert [strip(r) for r in one.results] == [strip(r) for r in two.results]
    assert (batch_of_three.one_dir / "grades.csv").read_text() == (batch_of_three.two_dir / "grades.csv").read_text()


# -- folder names ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["...ipynb", "..zip", ".ipynb", ".hidden.zip", "a/../b.ipynb",
                                  "x\\..\\y.zip", "ctl\x00\x1b[31m.ipynb", "rlo\u202egpj.ipynb",
                                  "grades.csv.zip", "review.ipynb", "n" * 400 + ".zip"])
def test_folder_names_never_leave_the_output_folder(name: str) -> None:
    (folder,) = assign_folders([Path(name)])
    assert folder not in (".", "..") and not folder.startswith(".")
    assert "/" not in folder and "\\" not in folder and len(folder) <= 130
    assert all(ch.isprintable() and ch != "\u202e" for ch in folder)
    assert folder not in ("grades.csv", "summary.html", "review", "gradebook.sqlite", "similarity.json")


def test_clashing_sanitised_names_get_their_own_folders() -> None:
    folders = assign_folders([Path("a/..ipynb"), Path("b/...ipynb"), Path("c/X.zip"), Path("d/x.zip")])
    assert len({f.lower() for f in folders}) == 4


def _fixture_inputs(tmp_path: Path, *names: str) -> Path:
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    for name in names:
        shutil.copyfile(FILES / "outdir" / name, src / name)
    return src


def test_a_dot_dot_stem_is_graded_inside_the_output_folder(tmp_path: Path) -> None:
    src = _fixture_inputs(tmp_path, "...ipynb")
    parent = tmp_path / "parent"
    out = parent / "graded"
    outcome = run_batch([str(src / "...ipynb")], BatchSettings.make(out))
    (data,) = outcome.results
    assert data["submission"] == "...ipynb" and data["status"] == "error"
    assert sorted(p.name for p in parent.iterdir()) == ["graded"]  # nothing next to -o
    folder = out / data["folder"]
    assert folder.parent == out and (folder / "result.json").exists() and (folder / "report.html").exists()
    assert (out / "grades.csv").exists() and (out / "summary.html").exists()


def test_a_symlink_planted_in_the_output_folder_is_refused(tmp_path: Path) -> None:
    src = _fixture_inputs(tmp_path, "...ipynb", "Lovelace_2571234_Turing_2579876.ipynb")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "Lovelace_2571234_Turing_2579876").symlink_to(elsewhere, target_is_directory=True)
    outcome = run_batch([str(src)], BatchSettings.make(out))
    assert list(elsewhere.iterdir()) == []  # nothing written through the link
    by_name = {r["submission"]: r for r in outcome.results}
    planted = by_name["Lovelace_2571234_Turing_2579876.ipynb"]
    assert planted["status"] == "error" and "symbolic link" in planted["tutor_detail"]
    assert by_name["...ipynb"]["status"] == "error" and (out / by_name["...ipynb"]["folder"] / "result.json").exists()
    assert "Lovelace_2571234_Turing_2579876.ipynb" in (out / "grades.csv").read_text()


# -- the grader's budget per submission ---------------------------------------------------------
def _budget_rubric(tmp_path: Path, seconds: float, memory_mb: int) -> str:
    text = (Path(__file__).resolve().parent.parent / "rubrics" / "sheet11.toml").read_text()
    changed = text.replace("grader_seconds = 2700 ", f"grader_seconds = {seconds} ")
    changed = changed.replace("grader_memory_mb = 4096 ", f"grader_memory_mb = {memory_mb} ")
    assert changed != text
    path = tmp_path / "budget.toml"
    path.write_text(changed)
    return str(path)


def _misbehave(monkeypatch: pytest.MonkeyPatch, victim: str, action) -> None:
    """Make the late step (a post-step of grading, run in the worker) misbehave for one submission;
    the workers are forked, so they see the patch."""
    real = grader.batch.job.apply_late

    def step(result, *args, **kwargs):
        if result.submission == victim:
            action()
        return real(result, *args, **kwargs)

    monkeypatch.setattr(grader.batch.job, "apply_late", step)


def _no_children_left() -> None:
    me = psutil.Process()
    for _ in range(50):
        alive = [p for p in me.children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return
        import time
        time.sleep(0.1)
    raise AssertionError(f"processes left behind: {alive}")


def _two_broken(tmp_path: Path) -> Path:
    src = _fixture_inputs(tmp_path, "Lovelace_2571234_Turing_2579876.ipynb")
    shutil.copyfile(src / "Lovelace_2571234_Turing_2579876.ipynb", src / "Hopper_2570001_Dijkstra_2570002.ipynb")
    return src


def _check_batch_went_on(out: Path, outcome, victim: str, says: str) -> None:
    by_name = {r["submission"]: r for r in outcome.results}
    assert by_name[victim]["status"] == "error" and says in by_name[victim]["message"], by_name[victim]
    other = by_name["Hopper_2570001_Dijkstra_2570002.ipynb"]
    assert other["status"] == "error" and any(f["code"] == "notebook.invalid" for f in other["flags"])
    rows = list(csv.DictReader(io.StringIO((out / "grades.csv").read_text())))
    assert {r["submission"] for r in rows} == set(by_name)
    assert (out / "summary.html").exists()
    with Gradebook(out / "gradebook.sqlite") as book:
        assert len(book.latest_run_folders()) == 2
    for r in outcome.results:
        assert json.loads((out / r["folder"] / "result.json").read_text())["status"] == "error"
        assert (out / r["folder"] / "report.html").exists()
    _no_children_left()


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_exception_in_a_post_step_is_an_error_for_that_submission_only(tmp_path, monkeypatch, jobs) -> None:
    victim = "Lovelace_2571234_Turing_2579876.ipynb"

    def boom() -> None:
        raise RecursionError("maximum recursion depth exceeded")
    _misbehave(monkeypatch, victim, boom)
    out = tmp_path / "out"
    outcome = run_batch([str(_two_broken(tmp_path))], BatchSettings.make(out, jobs=jobs))
    _check_batch_went_on(out, outcome, victim, "could not finish")
    assert "RecursionError" in outcome.typed[[r.submission for r in outcome.typed].index(victim)].tutor_detail


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_submission_over_the_time_budget_is_stopped_and_the_batch_goes_on(tmp_path, monkeypatch, jobs) -> None:
    import time
    victim = "Lovelace_2571234_Turing_2579876.ipynb"
    _misbehave(monkeypatch, victim, lambda: time.sleep(600))
    out = tmp_path / "out"
    t0 = time.monotonic()
    outcome = run_batch([str(_two_broken(tmp_path))], BatchSettings.make(out, rubric_path=_budget_rubric(tmp_path, 3, 4096), jobs=jobs))
    assert time.monotonic() - t0 < 120 * slowness()  # 3 s of budget, not 600 s of sleep (generous: a loaded machine)
    _check_batch_went_on(out, outcome, victim, "over the grader's budget")


def test_a_submission_over_the_memory_budget_is_stopped_and_the_batch_goes_on(tmp_path, monkeypatch) -> None:
    victim = "Lovelace_2571234_Turing_2579876.ipynb"
    hoard: list[bytearray] = []
    _misbehave(monkeypatch, victim, lambda: hoard.append(bytearray(2 * 1024**3)))
    out = tmp_path / "out"
    outcome = run_batch([str(_two_broken(tmp_path))], BatchSettings.make(out, rubric_path=_budget_rubric(tmp_path, 600, 300)))
    _check_batch_went_on(out, outcome, victim, "over the grader's budget")
    assert hoard == []  # the allocation happened in the worker, never here


@pytest.mark.slow
def test_a_kernel_over_the_time_budget_is_killed_with_its_worker(tmp_path: Path) -> None:
    """A real notebook that sleeps in a cell: the budget (not the 120 s cell timeout) stops it,
    and the kernel goes with its worker: no process of the batch is left."""
    import threading
    import time

    from builders import add_code, solution, write_notebook
    src = tmp_path / "in"
    nb = solution(fast=True)
    add_code(nb, "import time\ntime.sleep(600)\n")
    write_notebook(nb, src / "Lovelace_2571234_Turing_2579876.ipynb")
    shutil.copyfile(FILES / "outdir" / "Lovelace_2571234_Turing_2579876.ipynb",
                    src / "Hopper_2570001_Dijkstra_2570002.ipynb")
    seen: dict[int, float] = {}
    stop = threading.Event()

    def watch() -> None:  # every process the batch starts (worker, kernel, bwrap)
        while not stop.is_set():
            for p in psutil.Process().children(recursive=True):
                try:
                    seen.setdefault(p.pid, p.create_time())
                except psutil.Error:
                    pass
            time.sleep(0.1)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.monotonic()
    try:
        outcome = run_batch([str(src)], BatchSettings.make(tmp_path / "out", rubric_path=_budget_rubric(tmp_path, 40, 4096)))
    finally:
        stop.set()
        watcher.join()
    assert time.monotonic() - t0 < 300 * slowness()
    by_name = {r["submission"]: r for r in outcome.results}
    slow = by_name["Lovelace_2571234_Turing_2579876.ipynb"]
    assert slow["status"] == "error" and "over the grader's budget" in slow["message"]
    assert by_name["Hopper_2570001_Dijkstra_2570002.ipynb"]["status"] == "error"
    assert len(seen) > 1, "no kernel was seen"  # the worker and at least its kernel
    deadline = time.monotonic() + 10
    alive = [1]
    while alive and time.monotonic() < deadline:
        alive = []
        for pid, created in seen.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {' '.join(p.cmdline())[:100]}")
            except psutil.Error:
                pass
        time.sleep(0.2)
    assert not alive, alive
