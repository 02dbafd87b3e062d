"""The tutor's day with a learning platform: its download in, grades and feedback out.

The fixtures are built in the tests, in the platforms' real layouts, after their source code:

- Moodle "Download all submissions": moodle/moodle mod/assign/classes/downloader.php
  (get_student_prefix: "<Full name>_<participant id>", load_submissionplugin_filelist:
  "<prefix>_assignsubmission_file" + the file's path; Moodle 3.x wrote "..._file_/").
- Moodle "Upload multiple feedback files in a zip": moodle/moodle
  mod/assign/feedback/file/importziplib.php (is_valid_filename_for_import: the path split at "_"
  into 5 parts, [1] the participant id, [2]/[3] the plugin) and its test
  mod/assign/feedback/file/tests/importziplib_test.php ("Student Name_<id>_assignsubmission_file_").
- Moodle grading worksheet: mod/assign/feedback/offline (headers as in tests/files/platforms/).
- Canvas "Download submissions": instructure/canvas-lms lib/content_zipper.rb (get_filename:
  "[sortable name]_[LATE]_<user id>", add_upload_submission: "_<attachment id>_<display name>").
- Canvas "Re-upload submissions": instructure/canvas-lms app/models/assignment.rb
  (infer_comment_context_from_filename: the first two all-digit "_" parts: user id, attachment id).
- Canvas gradebook export: Student, ID, SIS User ID, SIS Login ID, Section, "Name (id)" columns.
"""
from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import notebook_bytes, set_group, template
from click.testing import CliRunner

from grader.batch.run import BatchSettings, run_batch, stopped_result
from grader.cli.main import main
from grader.errors import UsageError
from grader.folder.grades import members
from grader.result import SubmissionResult
from grader.rubric import load_rubric
from grader.submission.intake import read_submission
from grader.submission.naming import read_group
from grader.submission.notebook import find_group_source, parse_notebook
from grader.submission.platform import apply_platform, discover, read_roster

ADA = ("Ada Lovelace", "2571234", "ada@uni.example")
ALAN = ("Alan Turing", "2579876", "alan@uni.example")
GRACE = ("Grace Hopper", "2570001", "grace@uni.example")
EDSGER = ("Edsger Dijkstra", "2570002", "ed@uni.example")
EMMY = ("Emmy Noether", "2570003", "emmy@uni.example")
KURT = ("Kurt Goedel", "2570004", "kurt@uni.example")
RUBRIC = load_rubric()


def _nb(*members: tuple[str, str, str], salt: str = "") -> bytes:
    nb = set_group(template(), members)
    if salt:
        nb.cells[-1].source += f"\n# {salt}"
    return notebook_bytes(nb)


def _zip(entries: dict[str, bytes], path: Path | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    if path is not None:
        path.write_bytes(buf.getvalue())
    return buf.getvalue()


def moodle_download(path: Path, damaged: bool = True) -> Path:
    """Moodle's download (mod/assign/classes/downloader.php): Ada and Alan each uploaded the same
    group zip (which holds another zip's worth: a zip in the download's zip), Grace uploaded the
    notebook, Emmy's entry is damaged in the download."""
    group_zip = _zip({"sheet11/sheet11.ipynb": _nb(ADA, ALAN), "sheet11/notes.pdf": b"%PDF-1.4"})
    entries = {
        "Ada Lovelace_1043206_assignsubmission_file/Lovelace_2571234_Turing_2579876.zip": group_zip,
        "Alan Turing_1043207_assignsubmission_file/Lovelace_2571234_Turing_2579876.zip": group_zip,
        "Grace Hopper_1043208_assignsubmission_file/Hopper_2570001_Dijkstra_2570002.ipynb": _nb(GRACE, EDSGER),
        "Emmy Noether_1043210_assignsubmission_file/Noether_2570003_Goedel_2570004.ipynb": _nb(EMMY, KURT),
    }
    _zip(entries, path)
    if damaged:  # a bit flipped in Emmy's compressed data: CRC error on reading
        data = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("Emmy Noether_1043210_assignsubmission_file/Noether_2570003_Goedel_2570004.ipynb")
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 40
        data[start] ^= 0xFF
        path.write_bytes(bytes(data))
    return path


def canvas_download(path: Path) -> Path:
    """Canvas's download (lib/content_zipper.rb): flat, renamed; Ada's group late; Grace's group
    handed in twice (Edsger first, then Grace a newer file that Canvas named "-1")."""
    _zip({
        "lovelaceada_LATE_5001_9001_Lovelace_2571234_Turing_2579876.ipynb": _nb(ADA, ALAN),
        "dijkstraedsger_5004_8000_Hopper_2570001_Dijkstra_2570002.ipynb": _nb(GRACE, EDSGER, salt="v1"),
        "hoppergrace_5003_9002_Hopper_2570001_Dijkstra_2570002-1.ipynb": _nb(GRACE, EDSGER, salt="v2"),
    }, path)
    return path


# -- intake -------------------------------------------------------------------------------------
def test_moodle_download_is_recognised_deduplicated_and_a_damaged_entry_is_reported(tmp_path: Path) -> None:
    found = discover([str(moodle_download(tmp_path / "course-Sheet 11-42.zip"))], tmp_path / "stage",
                     RUBRIC.archive)
    by_name = {f.path.name: f for f in found.found}
    assert set(by_name) == {"Lovelace_2571234_Turing_2579876.zip", "Hopper_2570001_Dijkstra_2570002.ipynb",
                            "Noether_2570003_Goedel_2570004.ipynb"}
    ada = by_name["Lovelace_2571234_Turing_2579876.zip"]
    assert [(u.user_id, u.name) for u in ada.uploaders] == [("1043206", "Ada Lovelace"), ("1043207", "Alan Turing")]
    assert ada.path.is_relative_to(tmp_path / "stage") and not ada.problem
    # the inner zip is not refused for lying in the platform's zip: intake reads its notebook
    intake = read_submission(ada.path, RUBRIC.archive, RUBRIC.limits.max_notebook_mb)
    assert intake.problem_code == "" and intake.notebook_name == "sheet11/sheet11.ipynb"
    emmy = by_name["Noether_2570003_Goedel_2570004.ipynb"]
    assert "Emmy Noether" in emmy.problem and "cannot be read" in emmy.problem
    assert ada.uploaders[0].submitted  # the time Moodle's zip entry carries


def test_the_same_download_unpacked_is_found_in_its_folders(tmp_path: Path) -> None:
    src = moodle_download(tmp_path / "dl.zip", damaged=False)
    root = tmp_path / "unpacked"
    with zipfile.ZipFile(src) as zf:
        zf.extractall(root)  # the test's own fixture, trusted
    found = discover([str(root)], tmp_path / "stage", RUBRIC.archive)
    assert sorted(f.path.name for f in found.found) == ["Hopper_2570001_Dijkstra_2570002.ipynb",
                                                        "Lovelace_2571234_Turing_2579876.zip",
                                                        "Noether_2570003_Goedel_2570004.ipynb"]
    assert all(f.uploaders and f.uploaders[0].platform == "moodle" for f in found.found)


def test_canvas_download_names_the_original_file_the_late_marker_and_the_latest_attempt(tmp_path: Path) -> None:
    found = discover([str(canvas_download(tmp_path / "submissions.zip"))], tmp_path / "stage", RUBRIC.archive)
    by_name = {f.path.name: f for f in found.found}
    assert set(by_name) == {"Lovelace_2571234_Turing_2579876.ipynb", "Hopper_2570001_Dijkstra_2570002.ipynb"}
    ada = by_name["Lovelace_2571234_Turing_2579876.ipynb"]
    assert ada.uploaders[0].late and ada.uploaders[0].user_id == "5001" and ada.uploaders[0].attachment == "9001"
    grace = by_name["Hopper_2570001_Dijkstra_2570002.ipynb"]
    assert b"v2" in grace.path.read_bytes()  # attachment 9002 is newer than 8000
    assert grace.attempts == ["dijkstraedsger_5004_8000_Hopper_2570001_Dijkstra_2570002.ipynb"]
    assert {u.user_id for u in grace.uploaders} == {"5003", "5004"}


def test_a_zip_of_several_submissions_in_no_known_layout_is_refused_naming_both(tmp_path: Path) -> None:
    odd = tmp_path / "odd.zip"
    _zip({"group1/a.zip": _zip({"sheet11.ipynb": _nb(ADA, ALAN)}), "group2/b.zip": _zip({"x.ipynb": b"{}"})}, odd)
    with pytest.raises(UsageError) as err:
        discover([str(odd)], tmp_path / "stage", RUBRIC.archive)
    assert "assignsubmission_file" in str(err.value) and "[_LATE]_<user id>" in str(err.value)


def test_a_students_zip_with_a_nested_archive_is_still_refused_by_intake(tmp_path: Path) -> None:
    own = tmp_path / "Lovelace_2571234_Turing_2579876.zip"
    _zip({"sheet11.ipynb": _nb(ADA, ALAN), "data.zip": b"PK"}, own)
    found = discover([str(own)], tmp_path / "stage", RUBRIC.archive)
    assert [f.path for f in found.found] == [own] and not found.found[0].uploaders
    assert read_submission(own, RUBRIC.archive, 5).problem_code == "archive.unsafe"


# -- identity into the result -------------------------------------------------------------------
def _result(members_: list[tuple[str, str, str]], name: str = "sheet11.ipynb") -> SubmissionResult:
    from grader.batch.run import Job
    base = stopped_result(RUBRIC, Job(Path(name), "f", ""), "")
    group = tuple({"name": n, "student_id": i, "email": e} for n, i, e in members_)
    return SubmissionResult.from_json({**base.to_json(), "status": "graded", "group": [dict(g) for g in group]})


def test_platform_uploaders_confirm_members_and_a_stranger_is_a_flag_with_both_sides(tmp_path: Path) -> None:
    info = {"handed_in_by": [{"platform": "moodle", "user_id": "1043206", "name": "Ada Lovelace"},
                             {"platform": "moodle", "user_id": "1043209", "name": "Mallory Example"}],
            "attempts": []}
    plain = _result([ADA, ALAN])  # "sheet11.ipynb" names no one: without the platform, nobody is confirmed
    assert not any(m.confirmed for m in members(plain))
    named = apply_platform(plain, info)
    confirmed = {m.student_id: m.confirmed for m in members(named)}
    assert confirmed == {"2571234": True, "2579876": False}
    flag = next(f for f in named.flags if f.code == "platform.member")
    assert "Mallory Example" in flag.message and "Ada Lovelace (2571234)" in flag.message
    assert apply_platform(named, info) == named  # idempotent


def test_canvas_login_matches_the_member_and_late_marker_flags_without_a_deadline() -> None:
    info = {"handed_in_by": [{"platform": "canvas", "user_id": "5001", "name": "lovelaceada", "late": True}]}
    result = apply_platform(_result([ADA, ALAN]), info)
    assert [m.confirmed for m in members(result)] == [True, False]
    assert any(f.code == "late" and "Canvas marks" in f.message for f in result.flags)
    assert not any(f.code == "platform.member" for f in result.flags)


def test_roster_matches_the_platform_id_exactly_and_flags_a_member_not_on_it(tmp_path: Path) -> None:
    roster = tmp_path / "participants.csv"
    roster.write_text('"Identifier","Full name","Email address","Status"\n'
                      '"Participant 1043206","Ada L.","ada@uni.example","Submitted"\n', encoding="utf-8")
    people = read_roster(roster)
    info = {"handed_in_by": [{"platform": "moodle", "user_id": "1043206", "name": "A. Lovelace"}]}
    result = apply_platform(_result([ADA, ALAN]), info, people)
    assert [m.confirmed for m in members(result)] == [True, False]  # by the id, not the name
    flag = next(f for f in result.flags if f.code == "roster.missing")
    assert "Alan Turing" in flag.message and "Ada" not in flag.message


# -- the day, end to end ------------------------------------------------------------------------
def _fake_grading(points: dict[str, float]) -> Callable[..., None]:
    """Grades without a kernel: the group cell read as grading reads it, automatic points fixed,
    written answers pending (the rest of the pipeline, intake to export, is the real one)."""
    def grade_all(todo: list[Any], rubric: Any, rubric_path: Any, mode: str, jobs: int, finished: Any) -> None:
        for job in todo:
            intake = read_submission(job.path, rubric.archive, rubric.limits.max_notebook_mb)
            nb = parse_notebook(intake.notebook, rubric.limits)
            group = read_group(find_group_source(nb)[0])
            base = stopped_result(rubric, job, "").to_json()
            questions = {qid: {**q, "points": points.get(qid, 0.0) if q["status"] == "auto" else 0.0}
                         for qid, q in base["questions"].items()}
            questions["11.4.a"]["checks"] = [{"name": "rnn_forward, sigmoid", "passed": False, "points": 0.0,
                                              "max_points": 0.5, "message": "H differs <at> t=3"}]
            data = {**base, "status": "graded", "questions": questions, "message": "",
                    "group": [{"name": m.name, "student_id": m.student_id, "email": m.email} for m in group],
                    "submission": job.path.name, "sha256": job.sha256, "rubric_sha256": rubric.sha256}
            finished(SubmissionResult.from_json(data), None)
    return grade_all


WORKSHEET = ('\ufeff"Identifier","Full name","Email address","Status","Grade","Maximum Grade",'
             '"Grade can be changed","Last modified (submission)","Last modified (grade)","Feedback comments"\r\n'
             + "".join(f'"Participant {pid}","{n}","{e}","Submitted for grading","","10.00","Yes","","",""\r\n'
                       for pid, (n, _, e) in [("1043206", ADA), ("1043207", ALAN), ("1043208", GRACE),
                                              ("1043209", EDSGER), ("1043210", EMMY), ("1043211", KURT),
                                              ("1043212", ("Barbara Liskov", "2570005", "barbara@uni.example"))]))


def test_moodle_day_download_grade_export_feedback(tmp_path: Path) -> None:
    dl = moodle_download(tmp_path / "dl.zip")
    sheet = tmp_path / "worksheet.csv"
    sheet.write_bytes(WORKSHEET.encode("utf-8"))
    out = tmp_path / "graded"
    outcome = run_batch([str(dl)], BatchSettings.make(out, grade_all=_fake_grading({"11.4.a": 0.5, "11.4.b": 1.0}), roster=sheet))
    by_sub = {r["submission"]: r for r in outcome.results}
    assert by_sub["Noether_2570003_Goedel_2570004.ipynb"]["status"] == "error"
    grades = (out / "grades.csv").read_text(encoding="utf-8")
    assert "Barbara Liskov" in grades and "no submission" in grades
    assert "unconfirmed" not in grades  # the file names name every member
    assert "roster.json" in {p.name for p in out.iterdir()}

    runner = CliRunner()
    res = runner.invoke(main, ["export", "-o", str(out), "--format", "moodle", "--into", str(sheet),
                               "--feedback-zip", str(tmp_path / "feedback.zip")])
    assert res.exit_code == 1, res.output  # rows it could not fill: listed, not a refusal
    assert "Ada Lovelace" in res.output and "written answers not scored yet" in res.output
    assert "Emmy Noether" in res.output and "could not be graded" in res.output

    res = runner.invoke(main, ["export", "-o", str(out), "--format", "moodle", "--into", str(sheet),
                               "--allow-partial", "--feedback-zip", str(tmp_path / "feedback.zip")])
    assert res.exit_code == 1, res.output  # Emmy's is still an error
    filled = (tmp_path / "worksheet-graded.csv").read_text(encoding="utf-8-sig")
    ada_row = next(line for line in filled.splitlines() if "ada@uni.example" in line)
    assert '"1.5"' in ada_row or ",1.5," in ada_row
    assert "provisional" in ada_row and "Not scored yet: 11.1.1" in ada_row
    assert "<b>11.4.a</b>: 0.5 / 1" in ada_row and "H differs &lt;at&gt; t=3" in ada_row
    with zipfile.ZipFile(tmp_path / "feedback.zip") as zf:
        names = zf.namelist()
    assert "Ada Lovelace_1043206_assignfeedback_file_/report.html" in names
    assert "Alan Turing_1043207_assignfeedback_file_/report.html" in names
    for name in names:  # as importziplib.php reads it
        parts = ("/" + name).split("_", 4)
        assert len(parts) == 5 and parts[1].isdigit() and parts[2:4] == ["assignfeedback", "file"]


def test_a_tutor_match_by_hand_is_kept_for_later_exports(tmp_path: Path) -> None:
    dl = moodle_download(tmp_path / "dl.zip", damaged=False)
    sheet = tmp_path / "worksheet.csv"
    sheet.write_bytes(WORKSHEET.replace("grace@uni.example", "g.hopper@navy.example").encode("utf-8"))
    out = tmp_path / "graded"
    run_batch([str(dl)], BatchSettings.make(out, grade_all=_fake_grading({})))
    runner = CliRunner()
    res = runner.invoke(main, ["export", "-o", str(out), "--format", "moodle", "--into", str(sheet),
                               "--allow-partial"])
    assert res.exit_code == 1 and "Grace Hopper (2570001, grace@uni.example)" in res.output
    assert "--match" in res.output
    res = runner.invoke(main, ["export", "-o", str(out), "--format", "moodle", "--into", str(sheet),
                               "--allow-partial", "--match", "2570001=Participant 1043208"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["export", "-o", str(out), "--format", "moodle", "--into", str(sheet),
                               "--allow-partial"])
    assert res.exit_code == 0, res.output  # the match was kept
    filled = (tmp_path / "worksheet-graded.csv").read_text(encoding="utf-8-sig")
    assert "Sheet 11" in next(line for line in filled.splitlines() if "g.hopper@navy.example" in line)


CANVAS_EXPORT = ("Student,ID,SIS User ID,SIS Login ID,Section,Sheet 10 (4710),Sheet 11 (4711),Sheet 12 (4712)\n"
                 "Points Possible,,,,,10,10,10\n"
                 + "".join(f'"{n.split()[1]}, {n.split()[0]}",{uid},{sid},{e},NN,,,\n'
                           for uid, (n, sid, e) in [("5001", ADA), ("5002", ALAN), ("5003", GRACE),
                                                    ("5004", EDSGER)]))


def test_canvas_day_download_grade_export_and_reupload_zip(tmp_path: Path) -> None:
    dl = canvas_download(tmp_path / "submissions.zip")
    book = tmp_path / "gradebook.csv"
    book.write_text(CANVAS_EXPORT, encoding="utf-8")
    out = tmp_path / "graded"
    outcome = run_batch([str(dl)], BatchSettings.make(out, grade_all=_fake_grading({"11.4.a": 1.0}), roster=book))
    ada = next(r for r in outcome.results if r["submission"].startswith("Lovelace"))
    assert any(f["code"] == "late" for f in ada["flags"])
    grace = next(r for r in outcome.results if r["submission"].startswith("Hopper"))
    assert any(f["code"] == "platform.attempts" for f in grace["flags"])
    runner = CliRunner()
    res = runner.invoke(main, ["export", "-o", str(out), "--format", "canvas", "--into", str(book),
                               "--allow-partial"])
    assert res.exit_code == 2 and "Sheet 11 (4711)" in res.output and "Sheet 10 (4710)" not in res.output \
        .split("e.g.")[-1]
    res = runner.invoke(main, ["export", "-o", str(out), "--format", "canvas", "--into", str(book),
                               "--column", "Sheet 11 (4711)", "--allow-partial",
                               "--feedback-zip", str(tmp_path / "comments.zip")])
    assert res.exit_code == 0, res.output
    with zipfile.ZipFile(tmp_path / "comments.zip") as zf:
        names = zf.namelist()
    assert "feedback_5001_9001_report.html" in names and "feedback_5003_9002_report.html" in names
    for name in names:  # as assignment.rb's infer_comment_context_from_filename reads it
        assert [p for p in name.split("_") if p.isdigit()][:2] in (["5001", "9001"], ["5003", "9002"],
                                                                  ["5004", "8000"])
