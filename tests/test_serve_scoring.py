"""``grade serve`` for a tutor scoring 200 groups in an evening (Starlette's TestClient, no kernel):
the prompt and the group's own code beside the answer, moving on to the next question, one's own
second save is no conflict, automatic points set by hand with a reason (stored with tutor and time,
shown in the tutor's view, applied again on a re-grade, listed by ``grade export``), and comments
kept for reuse per question."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_scores import MEMBERS, fake_output, fake_result
from test_serve import ADA, GRACE, TOKEN, _client, _form, _key, _position, _reveal, _score, _table

from grader.cli.main import main
from grader.folder.gradebook import Gradebook
from grader.folder.outdir import OutDir
from grader.result import SubmissionResult
from grader.tutors.scores import apply_manual, sync_outputs, tutor_scores


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    one = fake_result(ADA, MEMBERS[0])
    one["cells"] = [{"index": 12, "status": "ok", "seconds": 0.1, "error": None, "self_check": False,
                     "outputs": [{"kind": "text", "text": "gradient norm 0.125 at t=3"}]}]
    one["questions"]["11.2.1"]["answer"]["nearby"] = [
        {"index": 12, "source": "import torch\nprint('gradient norm', 0.125, 'at t=3')  # <b>ours</b>"}]
    two = fake_result(GRACE, MEMBERS[1])
    return fake_output(tmp_path / "out", [one, two])


@pytest.fixture()
def app(out: Path) -> Any:
    from grader.tutors.serve import create_app
    return create_app(out, "ada", TOKEN)


def test_the_prompt_and_the_groups_code_and_outputs_are_beside_the_answer(app: Any) -> None:
    client = _client(app)
    page = client.get(f"/q/11.2.1/{_position(client, '11.2.1', ADA)}").text
    prompt = page.split('id="prompt"')[1].split("</details>")[0]
    assert "CNN and RNN" in prompt  # the template's question, as the students read it
    code = page.split('id="group-code"')[1].split('<p class="muted">Names:')[0]
    assert "Cell 13" in code and "gradient norm 0.125 at t=3" in code
    assert "&lt;b&gt;ours&lt;/b&gt;" in code and "<b>ours</b>" not in code  # the group's code is text
    other = client.get(f"/q/11.2.1/{_position(client, '11.2.1', GRACE)}").text
    assert "No code of the group's own follows this answer." in other


def test_the_last_answer_of_a_question_moves_on_to_the_next_question(app: Any) -> None:
    client = _client(app)
    page = client.get("/q/11.2.1/2").text
    assert 'id="next-question" href="/q/11.2.2"' in page and 'id="prev-question" href="/q/11.1.2"' in page
    assert _score(client, "11.2.1", 1, "0.5").headers["location"] == "/q/11.2.1/2?saved=1"
    moved = _score(client, "11.2.1", 2, "0.5")
    assert moved.headers["location"] == "/q/11.2.2?after=11.2.1"
    landed = client.get(moved.headers["location"])
    assert landed.url.path == "/q/11.2.2/1" and "Saved the last answer of 11.2.1; on to 11.2.2." in landed.text
    last = app.state.serve.written[-1]
    _score(client, last, 1, "0.25")
    assert _score(client, last, 2, "0.25").headers["location"] == "/?notice=done"


def test_ones_own_second_save_is_no_conflict_but_another_tutors_is(app: Any, out: Path) -> None:
    from grader.tutors.serve import create_app
    client = _client(app)
    stale = _form(client.get("/q/11.3.3/1").text)
    first = client.post("/q/11.3.3/1", data={**stale, "points": "0.5", "comment": "one"}, follow_redirects=False)
    second = client.post("/q/11.3.3/1", data={**stale, "points": "0.75", "comment": "two"}, follow_redirects=False)
    assert first.status_code == 303 and second.status_code == 303  # two quick Enters, one tutor
    assert [(r[3], r[4]) for r in _table(out, "manual_scores")] == [(0.75, "two")]
    bob = _client(create_app(out, "bob", TOKEN))
    refused = bob.post("/q/11.3.3/1", data={**stale, "points": "0.25", "comment": "bob"})
    assert refused.status_code == 409 and "changed by ada" in refused.text


def test_automatic_points_are_overridden_only_with_a_reason_and_kept(app: Any, out: Path) -> None:
    client = _client(app)
    page = client.get(f"/auto/{_key(ADA)}").text
    csrf = _form(client.get("/q/11.2.1/1").text)["csrf"]
    assert 'id="auto-11.4.a"' in page
    no_reason = client.post(f"/auto/{_key(ADA)}", data={"csrf": csrf, "question": "11.4.a", "points": "0.5",
                                                          "reason": "   "})
    assert no_reason.status_code == 400 and "give a reason" in no_reason.text
    too_many = client.post(f"/auto/{_key(ADA)}", data={"csrf": csrf, "question": "11.4.a", "points": "7",
                                                         "reason": "x"})
    assert too_many.status_code == 400
    written = client.post(f"/auto/{_key(ADA)}", data={"csrf": csrf, "question": "11.2.1", "points": "0.5",
                                                        "reason": "x"})
    assert written.status_code == 400 and "not an automatic question" in written.text
    assert _table(out, "point_overrides") == []
    done = client.post(f"/auto/{_key(ADA)}", data={"csrf": csrf, "question": "11.4.a", "points": "0.5",
                                                     "reason": "W transposed; the sheet's notation was ambiguous"},
                       follow_redirects=False)
    assert done.status_code == 303
    with Gradebook(out / "gradebook.sqlite") as book:
        history = [h for h in book.history(ADA) if h["sheet"] == "override"]
    assert [(h["question"], h["old_points"], h["new_points"], h["tutor"]) for h in history] == \
        [("11.4.a", None, 0.5, "ada")] and history[0]["changed_at"] > 0
    data = json.loads((out / ADA / "result.json").read_text())
    q = data["questions"]["11.4.a"]
    assert (q["points"], q["auto_points"], q["scored_by"], q["status"]) == (0.5, 1.0, "ada", "auto")
    assert data["points"] == 3.5
    _reveal(client, ADA)
    tutor_view = client.get(f"/report/{_key(ADA)}").text
    assert "Points set by a tutor (ada)" in tutor_view and "notation was ambiguous" in tutor_view
    assert "(ada)" not in (out / ADA / "report.html").read_text().split("Points set by a tutor")[1][:20]
    assert "set by ada at" in client.get(f"/auto/{_key(ADA)}").text
    # a re-grade: a fresh result (the checks' points again) gets the override applied once more
    fresh = SubmissionResult.from_json(fake_result(ADA, MEMBERS[0]))
    with Gradebook(out / "gradebook.sqlite") as book:
        again = apply_manual(fresh, tutor_scores(book).get(ADA, {}))
    assert again.questions["11.4.a"].points == 0.5 and again.questions["11.4.a"].auto_points == 1.0
    sync_outputs(OutDir(out))  # idempotent: the checks' points stay what the checks gave
    assert json.loads((out / ADA / "result.json").read_text())["questions"]["11.4.a"]["auto_points"] == 1.0
    # grade export lists it
    result = CliRunner().invoke(main, ["export", "-o", str(out), "--to", "-"])
    assert result.exit_code == 0, result.output
    assert "Automatic points set by hand (1):" in result.stderr
    assert f"{ADA}.ipynb 11.4.a: 1 -> 0.5 by ada at" in result.stderr and "notation was ambiguous" in result.stderr


def test_comments_are_kept_per_question_inserted_by_key_and_edited(app: Any, out: Path) -> None:
    client = _client(app)
    form = _form(client.get("/q/11.2.1/1").text)
    kept = client.post("/q/11.2.1/comments", data={**form, "back": "1", "points": "0.5",
                                                   "comment": "Cite a source for the claim."})
    assert kept.status_code == 200 and 'value="0.5"' in kept.text  # what was typed stays in the form
    assert 'data-key="1" data-text="Cite a source for the claim."' in kept.text
    assert "Cite a source" not in client.get("/q/11.2.2/1").text  # per question
    assert _table(out, "manual_scores") == []  # keeping a comment scores nothing
    (cid,) = [r[0] for r in _table(out, "saved_comments")]
    edited = client.post(f"/q/11.2.1/comments/{cid}", data={"csrf": form["csrf"], "back": "2",
                                                             "text": "Cite one source, please."},
                         follow_redirects=False)
    assert edited.status_code == 303 and edited.headers["location"] == "/q/11.2.1/2"
    assert "Cite one source, please." in client.get("/q/11.2.1/2").text
    client.post(f"/q/11.2.1/comments/{cid}", data={"csrf": form["csrf"], "back": "1", "text": ""})
    assert _table(out, "saved_comments") == []
    assert client.post("/q/11.2.1/comments", data={"csrf": "wrong", "comment": "x"}).status_code == 403
