"""``grade serve``: the routes with Starlette's TestClient on an output folder built from
result.json fixtures (no kernel): the token and its cookie, CSRF, Host and Origin checks, the
same validation and history as ``grade scores``, conflicts between tutors, two tutors scoring at
once from two threads, and that nothing outside the folder's own data is served."""
from __future__ import annotations

import csv
import hashlib
import hmac
import html
import io
import json
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient
from test_scores import MEMBERS, _write_sheet, fake_output, fake_result

from grader.cli.main import main
from grader.errors import UsageError
from grader.folder.gradebook import Gradebook
from grader.folder.outdir import OutDir
from grader.rubric import WRITTEN_IDS
from grader.tutors.scores import import_sheet
from grader.tutors.serve import create_app, free_port

TOKEN = "test-token-0123456789"
BASE = "http://127.0.0.1:8011"
ADA = "Lovelace_2571234_Turing_2579876"
GRACE = "Hopper_2570001_Dijkstra_2570002"


def _out(tmp_path: Path) -> Path:
    """Two graded groups (one with a hostile answer) and one that could not be graded."""
    one = fake_result(ADA, MEMBERS[0], answer='<img src=x onerror="alert(1)"><script>alert(2)</script> '
                                              "A CNN uses local filters.")
    two = fake_result(GRACE, MEMBERS[1])
    three = fake_result("Noether_2570003_Goedel_2570004", MEMBERS[2], status="error")
    return fake_output(tmp_path / "out", [one, two, three])


def _client(app: Any, login: bool = True) -> TestClient:
    client = TestClient(app, base_url=BASE)
    if login:
        assert client.get(f"/?token={TOKEN}").status_code == 200
    return client


def _form(html: str) -> dict[str, str]:
    return {name: re.search(rf'name="{name}" value="([^"]*)"', html)[1]  # type: ignore[index]
            for name in ("csrf", "key", "version")}


def _key(folder: str) -> str:
    """A group's address in the app: keyed by the server's token (no address names a group)."""
    return hmac.new(TOKEN.encode(), ("group:" + folder).encode(), hashlib.sha256).hexdigest()[:20]


def _label(folder: str) -> str:
    """The group's pseudonym (blind scoring, grader/tutors/privacy.py)."""
    from grader.checks.secret import load_secret
    from grader.tutors.privacy import pseudonym
    return pseudonym(load_secret(), folder)


def _table(out: Path, table: str) -> list[tuple]:
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        return db.execute(f"SELECT * FROM {table}").fetchall()


def _reveal(client: TestClient, folder: str, reason: str = "a test looks at the tutor's page") -> None:
    """Ask to see who a group is (blind scoring records it); its tutor's page is then served."""
    csrf = _form(client.get("/q/11.2.1/1").text)["csrf"]
    got = client.post(f"/reveal/{_key(folder)}", data={"csrf": csrf, "reason": reason}, follow_redirects=False)
    assert got.status_code == 303, got.text


def _position(client: TestClient, qid: str, folder: str) -> int:
    for n in range(1, 10):
        page = client.get(f"/q/{qid}/{n}")
        assert page.status_code == 200, page.text
        if _form(page.text)["key"] == _key(folder):
            return n
    raise AssertionError(folder)


def _score(client: TestClient, qid: str, n: int, points: str, comment: str = "", **override: str) -> Any:
    fields = {**_form(client.get(f"/q/{qid}/{n}").text), "points": points, "comment": comment, **override}
    return client.post(f"/q/{qid}/{n}", data=fields, follow_redirects=False)


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    return _out(tmp_path)


@pytest.fixture()
def app(out: Path) -> Any:
    return create_app(out, "ada", TOKEN)


# -- the token, the cookie, the Host ---------------------------------------------------------------
def test_every_page_needs_the_token_once_then_the_cookie(app: Any) -> None:
    client = _client(app, login=False)
    for path in ("/", "/q/11.2.1/1", f"/report/{_key(ADA)}", "/static/app.js"):
        denied = client.get(path)
        assert denied.status_code == 403 and "?token=" in denied.text, path
    assert client.get("/?token=wrong").status_code == 403
    first = client.get(f"/q/11.2.1/1?token={TOKEN}", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/q/11.2.1/1"  # the token leaves the address
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and TOKEN not in cookie
    assert client.get("/q/11.2.1/1").status_code == 200
    assert client.get("/").status_code == 200
    other = create_app(app.state.serve.out_dir, "ada", "another-token")
    stranger = _client(other, login=False)
    for name, value in client.cookies.items():
        stranger.cookies.set(name, value)
    assert stranger.get("/").status_code == 403  # another server's cookie opens nothing here


def test_a_foreign_host_or_origin_is_refused(app: Any, out: Path) -> None:
    client = _client(app)
    # DNS rebinding: a page of evil.example whose name resolves to 127.0.0.1 sends its own Host.
    assert client.get("/", headers={"host": "evil.example:8011"}).status_code == 400
    response = _score(client, "11.2.1", 1, "0.5")  # a normal save works ...
    assert response.status_code == 303
    fields = {**_form(client.get("/q/11.2.1/2").text), "points": "0.5", "comment": ""}
    refused = client.post("/q/11.2.1/2", data=fields, headers={"origin": "https://evil.example"})
    assert refused.status_code == 403 and "another site" in refused.text
    assert len(_table(out, "manual_scores")) == 1


def test_a_post_without_the_csrf_field_stores_nothing(app: Any, out: Path) -> None:
    client = _client(app)
    for csrf in ("", "0" * 64, "wrong"):
        response = _score(client, "11.2.1", 1, "0.5", csrf=csrf)
        assert response.status_code == 403 and "nothing was saved" in response.text
        assert client.post("/publish", data={"csrf": csrf}).status_code == 403
    assert _table(out, "manual_scores") == [] and _table(out, "score_history") == []


def test_every_post_route_reads_its_form_through_the_one_door(app: Any) -> None:
    """A route that accepts POST is wrapped by serve_guard.posted (the CSRF check), so a new one
    cannot forget it; and a wrong CSRF field reaches none of their handlers."""
    from starlette.routing import Route
    posts = [r for r in app.routes if isinstance(r, Route) and "POST" in (r.methods or ())]
    assert len(posts) >= 10
    unguarded = [r.path for r in posts if getattr(r.endpoint, "__wrapped__", None) is None]
    assert unguarded == []
    client = _client(app)
    for route in posts:
        path = route.path.replace("{qid}", "11.2.1").replace("{n:int}", "1").replace("{cid:int}", "1") \
            .replace("{rid:int}", "1").replace("{key}", _key(ADA))
        response = client.post(path, data={"csrf": "wrong"}, follow_redirects=False)
        assert response.status_code == 403 and "nothing was saved" in response.text, path


def test_security_headers_and_sanitised_student_html(app: Any) -> None:
    client = _client(app)
    n = _position(client, "11.2.1", ADA)
    page = client.get(f"/q/11.2.1/{n}")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    answer = page.text.split('id="answer"')[1].split("</section>")[0]
    assert "onerror" not in answer and "<script" not in answer and "A CNN uses local filters" in answer
    assert page.text.count("<script") == 1 and '<script src="/static/app.js" defer>' in page.text
    assert f'href="/report/{_key(ADA)}"' in page.text
    _reveal(client, ADA)
    report = client.get(f"/report/{_key(ADA)}")
    assert report.status_code == 200 and "script-src" not in report.headers["content-security-policy"]
    assert "onerror" not in report.text


@pytest.mark.parametrize("path", ["/report/..%2F..%2Fetc%2Fpasswd", "/report/gradebook.sqlite",
                                  "/report/Nobody_1_Else_2", f"/report/{ADA}", "/static/..%2Fserve.py",
                                  "/static/_style.css.j2",
                                  "/q/..%2F..%2Fetc/1", "/q/11.4.a/1", "/q/11.2.1/99", "/q/11.2.1/0",
                                  "/review/11.2.1.html", "/grades.csv"])
def test_nothing_but_the_folders_data_is_served(app: Any, path: str) -> None:
    response = _client(app).get(path)
    assert response.status_code == 404, (path, response.text[:200])
    assert "root:" not in response.text and "import " not in response.text


def test_a_report_that_became_a_link_is_not_followed(app: Any, out: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.html"
    secret.write_text("tutor's secret")
    (out / GRACE / "tutor.html").unlink(missing_ok=True)
    (out / GRACE / "tutor.html").symlink_to(secret)
    client = _client(app)
    _reveal(client, GRACE)
    response = client.get(f"/report/{_key(GRACE)}")
    assert response.status_code == 404 and "secret" not in response.text


# -- saving -------------------------------------------------------------------------------------
def test_a_save_goes_into_the_gradebook_with_history_and_renders_the_report(app: Any, out: Path) -> None:
    client = _client(app)
    n = _position(client, "11.2.1", ADA)
    response = _score(client, "11.2.1", n, "0,5", "Good <b>point</b>, cite the source")
    assert response.status_code == 303  # on to the next answer; after the last one, to the next question
    assert response.headers["location"] == (f"/q/11.2.1/{n + 1}?saved={n}" if n == 1 else "/q/11.2.2?after=11.2.1")
    assert [(r[0], r[1], r[3], r[4], r[5]) for r in _table(out, "manual_scores")] == \
        [(ADA, "11.2.1", 0.5, "Good <b>point</b>, cite the source", "ada")]
    with Gradebook(out / "gradebook.sqlite") as book:
        history = book.history(ADA)
    assert [(h["old_points"], h["new_points"], h["tutor"], h["sheet"]) for h in history] == \
        [(None, 0.5, "ada", "grade serve")]
    data = json.loads((out / ADA / "result.json").read_text())
    assert data["questions"]["11.2.1"] == {**data["questions"]["11.2.1"], "status": "manual", "points": 0.5,
                                           "scored_by": "ada", "comment": "Good <b>point</b>, cite the source"}
    assert data["points"] == 4.5
    assert "Good &lt;b&gt;point&lt;/b&gt;, cite the source" in (out / ADA / "report.html").read_text()
    page = client.get(f"/q/11.2.1/{n}").text  # reload: the score is there
    assert 'value="0.5"' in page and "Stored: 0.5 by ada" in page
    assert ">Good &lt;b&gt;point&lt;/b&gt;, cite the source</textarea>" in page
    # the batch files follow on request
    assert client.post("/publish", data={"csrf": _form(page)["csrf"]}).status_code == 200
    grades = list(csv.DictReader(io.StringIO((out / "grades.csv").read_text())))
    assert next(g for g in grades if g["student_id"] == "2571234")["11.2.1"] == "0.5"


def test_stopping_the_server_writes_the_batch_files(out: Path) -> None:
    before = (out / "grades.csv").read_text()
    with TestClient(create_app(out, "ada", TOKEN), base_url=BASE) as client:  # `with`: start and stop
        client.get(f"/?token={TOKEN}")
        _score(client, "11.3.3", 1, "0.5")
        assert (out / "grades.csv").read_text() == before  # per save: result.json and report.html only
    grades = list(csv.DictReader(io.StringIO((out / "grades.csv").read_text())))
    assert sorted(g["11.3.3"] for g in grades)[-2:] == ["0.5", "0.5"]


@pytest.mark.parametrize("points, says", [("-0.25", "negative"), ("lots", "'lots' is not a number"),
                                          ("0.8", "above the maximum 0.75"), ("nan", "not a number"),
                                          ("", "a comment but no points"), ("inf", "not a number")])
def test_a_bad_score_is_refused_with_the_sheets_words(app: Any, out: Path, points: str, says: str) -> None:
    client = _client(app)
    response = _score(client, "11.2.1", 1, points, "a comment")
    assert response.status_code == 400 and says in html.unescape(response.text), response.text[:400]
    assert f'value="{points}"' in response.text  # the tutor's input is kept on the page
    assert _table(out, "manual_scores") == []
    empty = _score(client, "11.2.1", 1, "", "")
    assert empty.status_code == 400 and "enter the points for 11.2.1 (0 to 0.75)" in empty.text


def test_a_form_for_another_answer_or_an_overlong_comment_stores_nothing(app: Any, out: Path) -> None:
    client = _client(app)
    n = _position(client, "11.2.1", ADA)
    moved = _score(client, "11.2.1", n, "0.5", key=_key(GRACE))
    assert moved.status_code == 409 and "nothing was saved" in moved.text
    long = _score(client, "11.2.1", n, "0.5", "x" * 4001)
    assert long.status_code == 400
    huge = client.post(f"/q/11.2.1/{n}", content=b"a=" + b"x" * 70_000,
                       headers={"content-type": "application/x-www-form-urlencoded"})
    assert huge.status_code == 413
    for version in ("x", "\u00b2", "9" * 5000, ""):  # "²".isdigit() is True, int() refuses it
        assert _score(client, "11.2.1", n, "0.5", version=version).status_code == 400
    assert _table(out, "manual_scores") == []


def test_who_saves_is_the_servers_to_say_not_a_cookie_or_a_field(app: Any, out: Path) -> None:
    """Cookies are not separated by port: a page on another 127.0.0.1 port can set any cookie for
    this server. No cookie and no form field changes whose name a score is saved under."""
    client = _client(app)
    client.cookies.set("grade_tutor", "mallory")  # what the old app read the name from
    page = client.get("/q/11.1.1/1").text
    assert "scoring as <strong>ada</strong>" in page and "mallory" not in page
    assert _score(client, "11.1.1", 1, "0.25", tutor="mallory").status_code == 303
    assert _table(out, "manual_scores")[0][5] == "ada"
    assert client.post("/tutor", data={"csrf": _form(page)["csrf"], "tutor": "mallory"}).status_code in (404, 405)


@pytest.mark.parametrize("path", ["/?notice=<b>Call+0800+now</b>", "/?notice=published%3Cscript%3E",
                                  "/q/11.2.1/1?saved=<i>hi</i>", "/q/11.2.1/1?saved=99",
                                  "/q/11.2.1/1?after=<i>hi</i>", "/q/<i>hi</i>", "/q/11.2.1?after=<i>hi</i>"])
def test_no_text_from_the_address_is_shown(app: Any, path: str) -> None:
    client = _client(app)
    page = client.get(path)
    assert "hi</i>" not in page.text and "&lt;i&gt;" not in page.text and "Call" not in page.text
    assert "0800" not in page.text and 'role="status"' not in page.text
    assert client.get("/?notice=published").text.count('role="status"') == 1  # a known code: its own sentence


def test_progress_per_question(app: Any) -> None:
    client = _client(app)
    _score(client, "11.3.3", 1, "0.75")
    index = client.get("/").text
    row = index.split('id="progress-11.3.3"')[1].split("</tr>")[0]
    assert '<td class="scored">1</td>' in row and '<td class="to-score">1</td>' in row
    other = index.split('id="progress-11.1.1"')[1].split("</tr>")[0]
    assert '<td class="scored">0</td>' in other and '<td class="to-score">2</td>' in other
    # blind: the group that could not be graded is listed by its pseudonym, no name or file name
    assert f"{_label('Noether_2570003_Goedel_2570004')} (error)" in index and "Noether" not in index
    # /q/<id> opens the first answer still to score
    assert client.get("/q/11.3.3", follow_redirects=False).headers["location"] == "/q/11.3.3/2"


# -- several tutors ----------------------------------------------------------------------------------
def test_a_conflicting_edit_is_refused_with_who_and_when(app: Any, out: Path) -> None:
    ada, bob = _client(app), _client(create_app(out, "bob", TOKEN))  # bob runs his own server
    bob_form = _form(bob.get("/q/11.2.1/1").text)   # bob opens the answer ...
    assert _score(ada, "11.2.1", 1, "0.25", "ada was first").status_code == 303   # ... ada saves first
    refused = bob.post("/q/11.2.1/1", data={**bob_form, "points": "0.75", "comment": "bob"})
    assert refused.status_code == 409
    assert "changed by ada at" in refused.text and "to 0.25 points" in refused.text and "not saved" in refused.text
    assert [r[3] for r in _table(out, "manual_scores")] == [0.25]
    # bob has seen it; his page now carries the new version, and saving again replaces ada's score
    again = bob.post("/q/11.2.1/1", data={**_form(refused.text), "points": "0.75", "comment": "bob"},
                     follow_redirects=False)
    assert again.status_code == 303
    with Gradebook(out / "gradebook.sqlite") as book:
        assert [(h["new_points"], h["tutor"]) for h in book.history()] == [(0.25, "ada"), (0.75, "bob")]
    # the same entry sent twice (a double click) is no conflict
    assert bob.post("/q/11.2.1/1", data={**_form(refused.text), "points": "0.75", "comment": "bob"},
                    follow_redirects=False).status_code == 303


def test_the_csv_round_trip_writes_the_same_tables_and_conflicts_with_an_open_form(app: Any, out: Path,
                                                                                   tmp_path: Path) -> None:
    client = _client(app)
    n = _position(client, "11.2.1", ADA)
    open_form = _form(client.get(f"/q/11.2.1/{n}").text)
    sheet = _write_sheet(tmp_path / "s.csv", [{"folder": ADA, "question": "11.2.1", "points": "0.5",
                                               "comment": "from the sheet"}])
    import_sheet(sheet, OutDir(out), tutor="carol")
    refused = client.post(f"/q/11.2.1/{n}", data={**open_form, "points": "0.25", "comment": ""})
    assert refused.status_code == 409 and "changed by carol" in refused.text
    page = client.get(f"/q/11.2.1/{n}").text
    assert "Stored: 0.5 by carol" in page and "from the sheet</textarea>" in page
    assert _score(client, "11.2.1", n, "0.75", "web").status_code == 303
    with Gradebook(out / "gradebook.sqlite") as book:
        assert [(h["new_points"], h["tutor"], h["sheet"]) for h in book.history()] == \
            [(0.5, "carol", "s.csv"), (0.75, "ada", "grade serve")]
    # and the sheet of `grade review` written now shows the web's score, ready for the CSV way
    from grader.checks.secret import load_secret
    from grader.tutors.privacy import pseudonym
    from grader.tutors.review import write_review
    rows = list(csv.DictReader(io.StringIO(write_review(out).sheet.read_text())))
    blind = pseudonym(load_secret(), ADA)  # the sheet is blind: the group's pseudonym (grader/tutors/privacy.py)
    assert next(r for r in rows if r["folder"] == blind and r["question"] == "11.2.1")["points"] == "0.75"


def test_two_tutors_scoring_at_once_lose_nothing(app: Any, out: Path) -> None:
    """Two browsers, two threads: ada scores every answer of the first half of the questions, bob
    of the second half, and both score 11.3.3 (the same answers) at the same time."""
    # bob on a second server over the same folder, as a second tutor's `grade serve` would be
    clients = {"ada": _client(app), "bob": _client(create_app(out, "bob", TOKEN))}
    half = len(WRITTEN_IDS) // 2
    plan = {"ada": [q for q in WRITTEN_IDS[:half]] + ["11.3.3"], "bob": [q for q in WRITTEN_IDS[half:]]}
    errors: list[str] = []
    conflicts: list[str] = []
    start = threading.Barrier(2)

    def work(name: str) -> None:
        client = clients[name]
        start.wait()
        try:
            for qid in plan[name]:
                for n in (1, 2):
                    response = _score(client, qid, n, "0.25" if name == "ada" else "0.5", f"{name} {qid}")
                    if response.status_code == 409:
                        conflicts.append(f"{name} {qid} {n}")
                    elif response.status_code != 303:
                        errors.append(f"{name} {qid} {n}: {response.status_code} {response.text[:200]}")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(name,)) for name in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    stored = {(r[0], r[1]): (r[3], r[5]) for r in _table(out, "manual_scores")}
    assert len(stored) == 2 * len(WRITTEN_IDS)  # every answer of every question has its score
    for qid in WRITTEN_IDS:
        for folder in (ADA, GRACE):
            points, tutor = stored[(folder, qid)]
            assert (points, tutor) in ((0.25, "ada"), (0.5, "bob")), (qid, folder)
    history = _table(out, "score_history")
    attempts = 2 * (len(plan["ada"]) + len(plan["bob"]))
    assert len(history) == attempts - len(conflicts)  # every save that was not refused left its row
    # each result.json holds every stored score: no rendering was lost to a race
    for folder in (ADA, GRACE):
        data = json.loads((out / folder / "result.json").read_text())
        for qid in WRITTEN_IDS:
            q = data["questions"][qid]
            assert q["status"] == "manual" and (q["points"], q["scored_by"]) == stored[(folder, qid)]


# -- the command -------------------------------------------------------------------------------------
def test_serve_refuses_a_folder_without_results_and_a_busy_port(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "-o", str(tmp_path / "nothing"), "--port", "0"])
    assert result.exit_code == 2 and "is not a folder" in result.output
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(UsageError, match="choose another port"):
            free_port(busy.getsockname()[1])
    result = CliRunner().invoke(main, ["serve", "-o", str(tmp_path), "--tutor", " "])
    assert result.exit_code == 2 and "--tutor" in result.output


def test_an_odd_folder_name_links_to_its_own_report(tmp_path: Path) -> None:
    odd = "Odd #1 %20 ?name"  # a badly named submission is flagged, not rejected: its folder keeps the name
    out = fake_output(tmp_path / "out", [fake_result(odd, MEMBERS[0]), fake_result(GRACE, MEMBERS[1])])
    client = _client(create_app(out, "ada", TOKEN))
    page = client.get(f"/q/11.2.1/{_position(client, '11.2.1', odd)}").text
    assert "Odd #1" not in html.unescape(page)  # blind: the pseudonym only
    link = re.search(r'<a href="(/report/[^"]+)"', page)[1]  # type: ignore[index]
    assert re.fullmatch(r"/report/[0-9a-f]{20}", link)
    blind = client.get(link)  # scoring is blind: the tutor's page names the group only after a reveal
    assert blind.status_code == 200 and "Odd #1" not in html.unescape(blind.text)
    key = link.rsplit("/", 1)[1]
    csrf = _form(page)["csrf"]
    refused = client.post(f"/reveal/{key}", data={"csrf": csrf, "reason": " "}, follow_redirects=False)
    assert refused.status_code == 400 and "Odd #1" not in html.unescape(refused.text)
    shown = client.post(f"/reveal/{key}", data={"csrf": csrf, "reason": "the group asked about its mark"})
    assert shown.status_code == 200 and "Odd #1 %20 ?name.ipynb" in html.unescape(shown.text)
    assert [r[2:4] for r in _table(out, "reveals")] == [("ada", "the group asked about its mark")]


def test_an_answer_with_math_is_rendered_like_the_reports(tmp_path: Path) -> None:
    maths = fake_result(ADA, MEMBERS[0], answer=r"The state $h_t = \tanh(W h_{t-1} + U x_t)$ carries the past.")
    out = fake_output(tmp_path / "out", [maths])
    page = _client(create_app(out, "ada", TOKEN)).get("/q/11.3.3/1").text
    answer = page.split('id="answer"')[1].split("</div>")[0]
    assert "<math" in answer and "$h_t" not in answer  # MathML on the server, no script needed


def test_scoring_is_blind_no_name_id_or_email_on_any_page(app: Any, out: Path) -> None:
    """Blind by default (issue 25): the index, every answer page and every automatic-points page
    name each group by its pseudonym only; the tutor's page needs a reveal, which is recorded."""
    from test_scores import MEMBERS
    client = _client(app)
    pages = [client.get("/").text]
    for qid in ("11.1.1", "11.2.1", "11.3.3"):
        pages += [client.get(f"/q/{qid}/{n}").text for n in (1, 2)]
    pages += [client.get(f"/auto/{_key(f)}").text for f in (ADA, GRACE)]
    pages += [client.get(f"/report/{_key(f)}").text for f in (ADA, GRACE)]
    text = html.unescape("\n".join(pages))
    secrets_of = {part for group in MEMBERS for m in group for part in (*m[0].split(), m[1], m[2])}
    secrets_of |= {ADA, GRACE, *ADA.split("_"), *GRACE.split("_")}
    leaked = sorted(s for s in secrets_of if s and s in text)
    assert not leaked, leaked
    assert _label(ADA) in text and _label(GRACE) in text
    assert _table(out, "reveals") == []  # nothing was revealed by looking
