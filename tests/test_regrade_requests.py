"""Regrade requests (grader/tutors/regrades.py): recorded from a CSV or from ``grade serve``, matched
to a group by the student's id or e-mail, a blind queue with the replay beside each request,
resolved with a reason, shown in the group's report, in the chained history (``grade verify``),
listed by ``grade privacy`` and removed by ``grade purge``."""
from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient
from test_privacy import FOLDERS, _found, _gradebook_dump, _identities, graded_course
from test_replay import _stored_with
from test_scores import MEMBERS

from grader.checks.secret import load_secret
from grader.cli.main import main
from grader.errors import ScoreRefused, SheetError
from grader.folder.outdir import OutDir
from grader.tutors.privacy import pseudonym
from grader.tutors.regrades import import_requests, resolve
from grader.tutors.retention import purge
from grader.tutors.serve import create_app
from grader.tutors.verify import verify

TOKEN = "test-token-regrade-0123456789"
BASE = "http://127.0.0.1:8011"
ADA, GRACE = FOLDERS[0], FOLDERS[1]
# What a student writes: their own name, id and e-mail among it.
ADA_TEXT = "I am Ada Lovelace (2571234, ada@uni.example); our answer names the hidden state, please look again."


def _csv(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8-sig"))
    return path


def _rows(out: Path) -> list[dict[str, Any]]:
    with OutDir(out).gradebook() as book:
        return book.regrade_requests()


def _label(folder: str) -> str:
    return pseudonym(load_secret(), folder)


@pytest.fixture()
def course(tmp_path: Path) -> Path:
    return graded_course(tmp_path / "out")


def _two_requests(course: Path, tmp_path: Path) -> Path:
    """The platform's export: ``;``-separated, a BOM, headers as Moodle words them; one row by
    e-mail (another case), one by student id."""
    sheet = _csv(tmp_path / "requests.csv",
                 'Email address;ID number;Question;Request;Date\n'
                 f'ADA@uni.example;;11.2.1;"{ADA_TEXT}";2026-12-01 10:15\n'
                 ';2570002;11.4.a;"The hidden case 2 is wrong; we\'d like a replay.";02.12.2026\n')
    import_requests(sheet, OutDir(course), load_secret(), "bob")
    return sheet


# -- recording ----------------------------------------------------------------------------------------
def test_a_csv_is_matched_by_id_or_email_and_importing_it_twice_records_it_once(course: Path,
                                                                               tmp_path: Path) -> None:
    sheet = _two_requests(course, tmp_path)
    rows = _rows(course)
    assert [(r["folder"], r["question"], r["student"], r["outcome"]) for r in rows] == [
        (ADA, "11.2.1", "ADA@uni.example", "open"), (GRACE, "11.4.a", "2570002", "open")]
    assert rows[0]["text"] == ADA_TEXT and rows[0]["source"] == "requests.csv" and rows[0]["recorded_by"] == "bob"
    assert time.strftime("%Y-%m-%d %H:%M", time.localtime(rows[0]["requested_at"])) == "2026-12-01 10:15"
    again = import_requests(sheet, OutDir(course), load_secret(), "bob")
    assert again.recorded == [] and again.already == 2 and len(_rows(course)) == 2
    # the command says it without naming anyone
    run = CliRunner().invoke(main, ["requests", "import", str(sheet), "-o", str(course)])
    assert run.exit_code == 0 and "0 request(s) recorded; 2 recorded before" in run.output


def test_a_bad_csv_records_nothing_and_names_every_row(course: Path, tmp_path: Path) -> None:
    sheet = _csv(tmp_path / "bad.csv",
                 "student_id,question,text,date\n"
                 "2571234,11.2.1,fine,2026-12-01\n"
                 "9999999,11.2.1,who is this,2026-12-01\n"
                 "2571234,11.9,no such question,2026-12-01\n"
                 "2571234,11.2.1,,2026-12-01\n"
                 "2571234,11.2.1,a date,yesterday\n"
                 "2571234,11.2.1,from the future,2999-01-01\n")
    with pytest.raises(SheetError) as caught:
        import_requests(sheet, OutDir(course), load_secret(), "bob")
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == ["row 3", "row 4", "row 5", "row 6", "row 7"]
    assert "9999999" in problems[0] and "unknown question '11.9'" in problems[1] and "empty" in problems[2]
    assert "not a date" in problems[3] and "in the future" in problems[4]
    assert _rows(course) == []  # all or nothing
    no_student = _csv(tmp_path / "cols.csv", "question,text,date\n11.2.1,x,2026-12-01\n")
    with pytest.raises(SheetError, match="student_id or email"):
        import_requests(no_student, OutDir(course), load_secret(), "bob")


# -- grade serve: a request from a group's page, the blind queue ------------------------------------------
def _client(out: Path, **kwargs: Any) -> tuple[TestClient, Any]:
    app = create_app(out, "bob", TOKEN, **kwargs)
    client = TestClient(app, base_url=BASE)
    assert client.get(f"/?token={TOKEN}").status_code == 200
    return client, app


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]*)"', html)[1]  # type: ignore[index]


def _key(app: Any, folder: str) -> str:
    return str(app.state.serve.report_key(folder))


def test_a_request_from_the_groups_page_is_matched_there_and_the_queue_is_blind(course: Path) -> None:
    client, app = _client(course)
    page = client.get(f"/auto/{_key(app, ADA)}")
    assert page.status_code == 200 and 'action="/requests"' in page.text
    assert f'name="key" value="{_key(app, ADA)}"' in page.text  # the form names its group by its address
    csrf = _csrf(page.text)
    fields = {"csrf": csrf, "key": _key(app, ADA), "question": "11.2.1", "date": "2026-12-03", "text": ADA_TEXT}
    other = client.post("/requests", data={**fields, "student": "grace@uni.example"}, follow_redirects=False)
    assert other.status_code == 400 and "not a member of" in other.text and _rows(course) == []
    # the tutor's own typing is given back; whose group it is, is not said
    assert "Hopper" not in other.text and "Dijkstra" not in other.text and _label(GRACE) not in other.text
    done = client.post("/requests", data={**fields, "student": "2579876"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/requests?notice=recorded"
    assert [(r["folder"], r["student"], r["source"], r["recorded_by"]) for r in _rows(course)] == [
        (ADA, "2579876", "grade serve", "bob")]
    # from the queue page (no group given): matched by the e-mail alone
    queued = client.post("/requests", data={"csrf": csrf, "student": "ed@uni.example", "question": "11.4.a",
                                            "date": "2026-12-03", "text": "Please check 11.4.a again."},
                         follow_redirects=False)
    assert queued.status_code == 303 and _rows(course)[1]["folder"] == GRACE
    shown = client.get("/requests")
    assert shown.status_code == 200 and _label(ADA) in shown.text and _label(GRACE) in shown.text
    assert "[hidden]" in shown.text and "please look again" in shown.text
    everyone = [x for members in MEMBERS[:3] for x in _identities(members)]
    assert [x for x in everyone + FOLDERS if x in shown.text] == []
    # the blind queue of the command line too
    listed = CliRunner().invoke(main, ["requests", "list", "-o", str(course)])
    assert listed.exit_code == 0 and _label(ADA) in listed.output and "replay: not run" in listed.output
    assert [x for x in everyone + FOLDERS if x in listed.output] == []


# -- resolving ----------------------------------------------------------------------------------------
def test_a_resolution_needs_a_reason_and_upheld_goes_through_the_score_paths(course: Path, tmp_path: Path) -> None:
    _two_requests(course, tmp_path)
    out = OutDir(course)
    with pytest.raises(ScoreRefused, match="give a reason"):
        resolve(out, load_secret(), 1, "upheld", "  ", "carol", "0.5")
    with pytest.raises(ScoreRefused, match="outcome"):
        resolve(out, load_secret(), 1, "maybe", "a reason", "carol", "0.5")
    with pytest.raises(ScoreRefused, match="above the maximum"):
        resolve(out, load_secret(), 1, "upheld", "a reason", "carol", "99")
    assert _rows(course)[0]["outcome"] == "open"
    done = resolve(out, load_secret(), 1, "upheld", "The answer does name the hidden state.", "carol", "0,5")
    assert (done.outcome, done.old_points, done.new_points) == ("upheld", 0.0, 0.5)
    with out.gradebook() as book:
        history = book.history(ADA)
        assert book.manual_scores(ADA)[ADA]["11.2.1"]["points"] == 0.5
    assert [(h["question"], h["new_points"], h["tutor"], h["sheet"]) for h in history] == [
        ("11.2.1", 0.5, "carol", "regrade request 1")]
    assert out.read_result(ADA).questions["11.2.1"].points == 0.5
    with pytest.raises(ScoreRefused, match="resolved already"):
        resolve(out, load_secret(), 1, "declined", "changed my mind", "dave")
    # an automatic question: upheld with the same points is refused, new points are an override
    with pytest.raises(ScoreRefused, match="upheld means new points"):
        resolve(out, load_secret(), 2, "upheld", "fine", "carol", str(out.read_result(GRACE).questions["11.4.a"].points))
    resolve(out, load_secret(), 2, "upheld", "Case 2 was checked against a wrong shape.", "carol", "0")
    with out.gradebook() as book:
        assert book.overrides(GRACE)[GRACE]["11.4.a"]["reason"] == "Case 2 was checked against a wrong shape."
    assert verify(out, load_secret()).ok


def test_serve_resolves_only_with_a_reason(course: Path, tmp_path: Path) -> None:
    _two_requests(course, tmp_path)
    client, _ = _client(course)
    csrf = _csrf(client.get("/requests").text)
    refused = client.post("/requests/2/resolve", data={"csrf": csrf, "outcome": "declined", "reason": ""},
                          follow_redirects=False)
    assert refused.status_code == 400 and "give a reason" in refused.text and _rows(course)[1]["outcome"] == "open"
    done = client.post("/requests/2/resolve", data={"csrf": csrf, "outcome": "declined",
                                                    "reason": "The checks are right: case 2 returns a list."},
                       follow_redirects=False)
    assert done.status_code == 303
    row = _rows(course)[1]
    assert (row["outcome"], row["resolved_by"], row["new_points"]) == ("declined", "bob", None)
    assert "declined</strong> by bob" in client.get("/requests").text


# -- the student's report ----------------------------------------------------------------------------------
def test_the_report_shows_the_outcome_and_nothing_of_the_tutors(course: Path, tmp_path: Path) -> None:
    _two_requests(course, tmp_path)
    report = (course / ADA / "report.html").read_text()
    assert "Your regrade requests" in report and "received, not decided yet" in report and "2026-12-01" in report
    resolve(OutDir(course), load_secret(), 1, "upheld", "The answer does name the **hidden state**.", "carol", "0.5")
    report = (course / ADA / "report.html").read_text()
    section = report[report.index('id="regrade-requests"'):]
    section = section[:section.index("</table>")]
    assert "11.2.1" in section and "2026-12-01" in section and "upheld" in section
    assert "0.00 &rarr; 0.50 points" in section and "<strong>hidden state</strong>" in section
    assert time.strftime("%Y-%m-%d") in section  # the day it was decided
    # never the request's words, who recorded or resolved it, or the replay
    assert "please look again" not in report and "carol" not in report and "bob" not in report
    assert json.loads((course / ADA / "result.json").read_text())["regrades"] == [
        {"question": "11.2.1", "requested": "2026-12-01", "outcome": "upheld", "decided": time.strftime("%Y-%m-%d"),
         "reason": "The answer does name the **hidden state**.", "old_points": 0.0, "new_points": 0.5}]
    assert "Your regrade requests" not in (course / FOLDERS[2] / "report.html").read_text()
    # a re-render of the whole folder (grade scores, grade serve's publish) keeps it
    from grader.tutors.scores import sync_outputs
    sync_outputs(OutDir(course))
    assert "Your regrade requests" in (course / ADA / "report.html").read_text()


# -- the history ----------------------------------------------------------------------------------------
def test_verify_names_an_edited_request_row_and_a_report_that_differs(course: Path, tmp_path: Path) -> None:
    _two_requests(course, tmp_path)
    resolve(OutDir(course), load_secret(), 2, "declined", "The checks are right.", "carol")
    assert verify(OutDir(course), load_secret()).ok
    db = sqlite3.connect(course / "gradebook.sqlite")
    db.execute("UPDATE regrade_requests SET reason='Upheld after all.' WHERE id=2")
    db.commit()
    verdict = verify(OutDir(course), load_secret())
    assert not verdict.ok
    assert verdict.problems[0].startswith("regrade_requests row 2 (11.4.a of") and "edited outside grade" in \
        verdict.problems[0]
    db.execute("UPDATE regrade_requests SET reason='The checks are right.' WHERE id=2")
    db.execute("DELETE FROM regrade_requests WHERE id=1")
    db.commit()
    db.close()
    assert "regrade_requests row [1]" in " ".join(verify(OutDir(course), load_secret()).problems)


def test_verify_names_a_result_file_whose_requests_were_edited(course: Path, tmp_path: Path) -> None:
    _two_requests(course, tmp_path)
    path = course / GRACE / "result.json"
    data = json.loads(path.read_text())
    data["regrades"][0].update(outcome="upheld", reason="edited by hand")
    path.write_text(json.dumps(data))
    problems = verify(OutDir(course), load_secret()).problems
    assert problems == [f"{GRACE}/result.json differs from the gradebook: its regrade requests are not the "
                        "gradebook's"]


def test_privacy_lists_them_and_purge_removes_them(course: Path, tmp_path: Path) -> None:
    _two_requests(course, tmp_path)
    shown = CliRunner().invoke(main, ["privacy", "-o", str(course)])
    assert shown.exit_code == 0 and "regrade_requests (2 rows)" in shown.output
    assert "Regrade requests recorded: 2 (2 open)" in shown.output and "the student's words" in shown.output
    assert "please look again" in _gradebook_dump(course)
    outcome = purge(OutDir(course), load_secret(), "dpo", student="2571234")
    assert outcome.removed["gradebook_rows"]["regrade_requests"] == 1
    assert [r["folder"] for r in _rows(course)] == [GRACE]  # the other group's request is kept
    dump = _gradebook_dump(course)
    assert "please look again" not in dump and "ADA@uni.example" not in dump
    assert _found(course, _identities(MEMBERS[0]) + [ADA]) == []
    assert verify(OutDir(course), load_secret()).ok
    purge(OutDir(course), load_secret(), "dpo", before="2999-01-01")
    assert _rows(course) == [] and "we'd like a replay" not in _gradebook_dump(course)


# -- the replay beside a request -----------------------------------------------------------------------------
def test_a_replay_is_kept_beside_the_request_from_the_command_and_the_queue(tmp_path: Path) -> None:
    # A result whose manifest this machine cannot meet: the replay refuses at once, naming why.
    out, sub = _stored_with(tmp_path)
    submissions = sub.parent
    sheet = _csv(tmp_path / "r.csv", "student_id,question,text,date\n2571234,11.2.1,look again please,2026-12-01\n")
    import_requests(sheet, OutDir(out), load_secret(), "bob")
    run = CliRunner().invoke(main, ["requests", "replay", "1", "-o", str(out), "--submissions", str(submissions)])
    assert run.exit_code == 2 and ": refused" in run.output and "grader_version: recorded 0.0.1-old" in run.output
    assert ADA not in run.output and "Lovelace" not in run.output  # blind: the folder's name is hidden
    assert json.loads(_rows(out)[0]["replay_json"])["state"] == "refused"
    # from the queue page: in a process of its own, then shown beside the request
    with OutDir(out).gradebook() as book:
        book.record_replay(1, "", 0.0)
        entries = len(book.ledger_entries())
    client, app = _client(out)
    csrf = _csrf(client.get("/requests").text)
    no_files = client.post("/requests/1/replay", data={"csrf": csrf}, follow_redirects=False)
    assert no_files.status_code == 400 and "--submissions" in no_files.text
    client, app = _client(out, submissions=submissions)
    started = client.post("/requests/1/replay", data={"csrf": csrf}, follow_redirects=False)
    assert started.status_code == 303
    deadline = time.monotonic() + 300
    while app.state.serve.replaying and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not app.state.serve.replaying and not app.state.serve.replay_failed
    page = client.get("/requests").text
    assert "refused" in page and "grader_version: recorded 0.0.1-old" in page and "Lovelace" not in page
    # every replay kept is in the chain (the fixture's result itself was never recorded by a batch)
    problems = verify(OutDir(out), load_secret()).problems
    assert [p for p in problems if "result.json" not in p] == []
    with OutDir(out).gradebook() as book:
        assert [e["tbl"] for e in book.ledger_entries()[entries:]] == ["regrade_requests"]


@pytest.mark.slow
def test_a_graded_submission_replays_same_from_the_queue_and_a_regrade_keeps_the_outcome(tmp_path: Path) -> None:
    """The whole path on a real submission: graded, a request by a member's id, its replay `same`,
    declined, graded again with --regrade: the report still shows the outcome, the history verifies."""
    import shutil

    from builders import FILES

    from grader.batch.run import BatchSettings, run_batch
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    sub = submissions / "missing_function.ipynb"
    shutil.copy(FILES / "flags" / "missing_function.ipynb", sub)
    run_batch([str(sub)], BatchSettings.make(tmp_path / "out", sandbox_mode="auto"))
    out = OutDir(tmp_path / "out")
    stored = out.results()[0]
    member = str(stored.group[0]["student_id"])
    sheet = _csv(tmp_path / "r.csv", f"student_id,question,text,date\n{member},11.4.a,please replay,2026-12-01\n")
    import_requests(sheet, out, load_secret(), "bob")
    run = CliRunner().invoke(main, ["requests", "replay", "1", "-o", str(out), "--submissions", str(submissions)])
    assert run.exit_code == 0 and ": same" in run.output, run.output
    resolve(out, load_secret(), 1, "declined", "The replay gives the same points.", "carol")
    run_batch([str(sub)], BatchSettings.make(tmp_path / "out", sandbox_mode="auto", regrade=True))
    report = (tmp_path / "out" / stored.folder / "report.html").read_text()
    assert "Your regrade requests" in report and "The replay gives the same points." in report
    assert verify(out, load_secret()).ok


def test_a_hostile_request_is_text_on_the_page_and_in_the_terminal(course: Path, tmp_path: Path) -> None:
    sheet = _csv(tmp_path / "h.csv", 'student_id,question,text,date\n'
                 '2571234,11.2.1,"<script>alert(1)</script> \x1b]0;owned\x07\x1b[31mred",2026-12-01\n')
    import_requests(sheet, OutDir(course), load_secret(), "bob")
    client, _ = _client(course)
    page = client.get("/requests").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    listed = CliRunner().invoke(main, ["requests", "list", "-o", str(course)])
    assert listed.exit_code == 0 and "\x1b" not in listed.output and "\x07" not in listed.output
    assert "alert(1)" in listed.output
