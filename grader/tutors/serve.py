"""``grade serve``: tutors score the written answers in the browser, answer after answer.

A small Starlette app over one output folder, served by uvicorn on 127.0.0.1 only. Per written
question it shows each graded submission's answer (rendered and sanitised as in the reports),
the model answer and concept hints of ``reference/answers.toml`` and the suggested score of
``grade review``, the question's prompt (from the student template) and the code cells and outputs
the group put right after its answer; the tutor types points and a comment (or inserts one kept
for reuse on that question) and moves on with the keyboard; after a question's last answer Enter
goes on to the next question. Every save
goes through :func:`grader.tutors.scores.save_score`: the checks of a ``grade scores`` sheet row, the same
``manual_scores`` and ``score_history`` tables, one short transaction, then that submission's
``result.json`` and pages (``report.html``, ``tutor.html``) rendered again. ``grades.csv`` and ``summary.html`` are
rewritten on request (a button) and when the server stops.

Who scores is the server's to say: the name given at start (``--tutor``, default the login
name) is recorded with every save; nothing a browser sends (no cookie, no form field) changes it,
so a page on another 127.0.0.1 port, which shares this server's cookies, cannot make a score
someone else's. Tutors who score at the same time each run their own server over the folder.
No text from a URL is ever shown: notices travel as codes mapped to sentences here, numbers are
checked as numbers, and a question id is shown only when it is one of the rubric's.

Automatic points: a tutor may set an automatic question's points by hand with a required reason
(:func:`grader.tutors.scores.save_override`), from the tutor's page of a submission.

Regrade requests (grader/tutors/regrades.py): a tutor records a student's request from a small
form on a group's page (``/auto/KEY``) or on the queue page ``/requests``, by the student's id or
e-mail, which the server matches to the group. The queue is blind (pseudonyms, the request's words
with the group's identities hidden). Beside each request its latest replay; "Replay" runs
``grade requests replay ID`` as a separate process (one at a time, bounded by the rubric's
``[budget] grader_seconds``) over the folder of submissions given with ``--submissions``. Each
request is resolved with an outcome (upheld with new points, or declined) and a reason.

Safety, as Jupyter does it: a random token in the URL printed at start is exchanged for an
HttpOnly, SameSite=Strict cookie; every POST carries a CSRF token derived from it; the Host header
must name the loopback address (no DNS rebinding); every page has a Content-Security-Policy that
allows only the app's own script and style; the only things read from disk are the output
folder's result.json / tutor.html of a folder that the app itself listed (never a path built
from a request), the gradebook, the student template (the questions' prompts, read once at start)
and the app's two static files. A replay reads the submissions only through ``grade requests
replay``, in the folder named at start (``--submissions``), never a path from a request.

Several tutors at once: each form carries the version of the answer's score it was based on
(the id of its latest ``score_history`` row); a save whose version is stale because another tutor
changed the score since is refused with who changed it and when (one's own earlier save, e.g. a
second Enter, is no conflict). SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` transactions, so
tutors on one server, or on several servers over the same folder, never lose a score.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from grader.errors import GraderError, UsageError
from grader.folder.gradebook import Gradebook
from grader.folder.outdir import OutDir
from grader.pages.report import PAGES
from grader.resources import static_file
from grader.rubric import load_rubric
from grader.tutors.scores import (
    ScoreConflict,
    ScoreRefused,
    gradebook_path,
    is_written,
    load_results,
    save_override,
    save_score,
    score_version,
    sync_outputs,
)

log = logging.getLogger(__name__)
HOST = "127.0.0.1"  # never another interface: the app has no accounts, only the token
ALLOWED_HOSTS = ("127.0.0.1", "localhost")
POINT_STEP = 0.25   # the points the number keys offer; the same step as grade review's suggestion
MAX_FORM_BYTES = 64 * 1024
MAX_COMMENT = 4000
MAX_TUTOR = 60

STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
# A report is a self-contained page with inline style and no script: it keeps that, nothing more.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"


@dataclass
class ServeState:
    out_dir: Path
    tutor: str
    token: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)   # folder -> result, latest run's order
    written: list[str] = field(default_factory=list)
    published: int = 0   # reports rendered again by the last "write the batch files"
    secret: bytes = b""  # the course secret: the groups' pseudonyms (grader/tutors/privacy.py)
    labels: dict[str, str] = field(default_factory=dict)   # folder -> pseudonym
    revealed: set[str] = field(default_factory=set)        # folders this tutor asked to see, recorded
    submissions: Path | None = None   # where the submitted files are, for replays (--submissions)
    rubric_path: str | None = None
    replaying: dict[int, float] = field(default_factory=dict)   # request id -> when its replay started
    replay_failed: dict[int, str] = field(default_factory=dict)  # request id -> why no outcome was kept
    replay_lock: threading.Lock = field(default_factory=threading.Lock)
    replay_process: subprocess.Popen[bytes] | None = None   # the replay running now, stopped with the server

    @property
    def cookie_name(self) -> str:
        # One name per server: two `grade serve` on different ports share the browser's cookie jar.
        return "grade_serve_" + hashlib.sha256(self.token.encode()).hexdigest()[:10]

    def derived(self, purpose: str) -> str:
        return hmac.new(self.token.encode(), purpose.encode(), hashlib.sha256).hexdigest()

    def reload(self) -> None:
        from grader.tutors.privacy import pseudonyms
        results = load_results(self.out_dir)
        self.results = {r["folder"]: r for r in results}
        self.labels = pseudonyms(self.secret, list(self.results))
        first = next((r for r in results if r["status"] == "graded"), results[0])
        self.written = [qid for qid, q in first["questions"].items() if is_written(q)]

    def view(self, folder: str) -> dict[str, Any]:
        """A result as the tutor scores from it: blind (the pseudonym, no name, id, e-mail or file
        name; grader/tutors/privacy.py's blind_view) unless this tutor revealed the group, with a
        reason that is recorded; then the result with its pseudonym beside the names."""
        from grader.tutors.privacy import blind_view
        r, label = self.results[folder], self.labels.get(folder, "Group ?")
        if folder in self.revealed:
            return {**r, "pseudonym": label, "submission": f"{label} ({r.get('submission', '')})", "blind": False}
        from grader.tutors.privacy import blind_cells
        return {**blind_view(r, label), "cells": blind_cells(r)}  # the code beside an answer, names hidden

    def report_key(self, folder: str) -> str:
        """A group's address: keyed by this server's token, so no name (with its '%', '#', '?' or
        '..') is ever read back from a URL and turned into a path, and no address names a group."""
        return self.derived("group:" + folder)[:20]

    def graded(self) -> list[dict[str, Any]]:
        return [r for r in self.results.values() if r["status"] == "graded"]


def clean_tutor(raw: str) -> str | None:
    """A tutor's name as typed: printable, one line, at most MAX_TUTOR characters; else None."""
    name = " ".join(raw.split())
    if not name or len(name) > MAX_TUTOR or any(unicodedata.category(ch)[0] == "C" for ch in name):
        return None
    return name


def point_choices(maximum: float) -> list[tuple[str, float]]:
    """(key, points) for the number keys: 0, 0.25, ... up to the maximum, at most ten."""
    steps = int(round(maximum / POINT_STEP))
    return [(str(k), round(k * POINT_STEP, 4)) for k in range(min(steps, 9) + 1)]


class Guard(BaseHTTPMiddleware):
    """Host check, token-for-cookie exchange, cookie check, Origin and size of POSTs, security
    headers. (The CSRF field is checked where the form is read: :func:`read_form`.)"""

    def __init__(self, app: Any, state: ServeState) -> None:
        super().__init__(app)
        self.state = state

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        st = self.state
        host = request.headers.get("host", "")
        hostname = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        # A page of another site that resolves its own name to 127.0.0.1 would send its own Host.
        if hostname not in ALLOWED_HOSTS:
            return _secure(PlainTextResponse("This server answers only to http://127.0.0.1 (or localhost).", 400))
        token = request.query_params.get("token")
        if token is not None:
            if not hmac.compare_digest(token.encode(), st.token.encode()):
                return _secure(_denied("The token in this address is not this server's. Open the address that "
                                       "`grade serve` printed when it started.", 403))
            # Take the token out of the address bar and history at once; the cookie carries on.
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response: Response = RedirectResponse(target, 303)
            response.set_cookie(st.cookie_name, st.derived("cookie"), httponly=True, samesite="strict", path="/")
            return _secure(response)
        cookie = request.cookies.get(st.cookie_name, "")
        if not hmac.compare_digest(cookie.encode(), st.derived("cookie").encode()):
            return _secure(_denied("Open the address that `grade serve` printed when it started (it ends in "
                                   "?token=...). The server was perhaps restarted: each start has a new token.", 403))
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1].rsplit(":", 1)[0] not in ALLOWED_HOSTS:
                return _secure(_denied("A page of another site tried to send this form; nothing was saved.", 403))
            length = request.headers.get("content-length")
            if length is None or not length.isdigit() or int(length) > MAX_FORM_BYTES:
                return _secure(_denied(f"A form of at most {MAX_FORM_BYTES // 1024} KiB is accepted; nothing was "
                                       "saved.", 413))
        return _secure(await call_next(request))


def _secure(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"  # no-referrer would make form POSTs say Origin: null
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    from grader.pages.report import environment
    return HTMLResponse(environment().get_template(f"serve/{name}").render(**context), status_code=status)


def _denied(message: str, status: int) -> HTMLResponse:
    return _page("message.html.j2", status, title="Not allowed", message=message, csrf="")


async def read_form(request: Request, state: ServeState) -> dict[str, str] | Response:
    """The POSTed fields, or a refusal when the CSRF field is not this server's."""
    form = await request.form(max_files=0, max_fields=20)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    sent = fields.get("csrf", "")
    if not hmac.compare_digest(sent.encode(), state.derived("csrf").encode()):
        return _denied("This form is from an older start of the server (or from another site); nothing was saved. "
                       "Reload the page and enter it again.", 403)
    return fields


# Notices travel in the address as codes only; the sentences are the server's.
NOTICES = {
    "published": "grades.csv and summary.html written; {published} report(s) rendered again.",
    "done": "Every written question's last answer is saved. Write grades.csv and summary.html below, "
            "or stop the server (Ctrl-C), which writes them too.",
    "recorded": "The request is recorded; the group's report shows it as received.",
    "known": "This request was recorded before (the same student, question, words and date); nothing was added.",
    "resolved": "The request is resolved; the group's report shows the outcome and your reason.",
    "replaying": "The replay runs (one at a time); reload this page to see its outcome.",
}


def _prompts() -> dict[str, Any]:
    """Each written question's prompt as the student template words it (rendered like an answer)."""
    import nbformat

    from grader import resources
    from grader.pages.markdown import render_markdown
    from grader.submission.notebook import tags
    path = resources.template_notebook()
    if not path.exists():
        return {}
    nb = nbformat.read(str(path), as_version=4)
    out: dict[str, Any] = {}
    for cell in nb.cells:
        for tag in tags(cell):
            if tag.startswith("question-"):
                out[tag.removeprefix("question-")] = render_markdown("".join(cell.source))
    return out


def _number_in(raw: str, low: int, high: int) -> int | None:
    """``raw`` as a whole number from ``low`` to ``high``, else None (a URL's or form's digits)."""
    if not re.fullmatch(r"[0-9]{1,9}", raw or ""):
        return None
    value = int(raw)
    return value if low <= value <= high else None


def replay_command(st: ServeState, request_id: int) -> list[str]:
    """The command a replay from the queue runs: ``grade requests replay`` in its own process."""
    assert st.submissions is not None
    return [sys.executable, "-m", "grader.cli.main", "requests", "replay", str(request_id), "-o", str(st.out_dir),
            "--submissions", str(st.submissions), *(["--rubric", st.rubric_path] if st.rubric_path else [])]


def run_replay(st: ServeState, request_id: int, seconds: float) -> None:
    """One replay at a time, in a process of its own (a thread waits for it); what it finds is
    kept in the gradebook by the command itself. Where it keeps nothing (it stopped, or took
    longer than ``seconds``), the queue says so."""
    import os
    with st.replay_lock:
        with Gradebook(gradebook_path(st.out_dir)) as book:
            before = (book.regrade_request(request_id) or {}).get("replayed_at")
        why = ""
        try:
            st.replay_process = subprocess.Popen(  # noqa: S603 - our own command, no shell
                replay_command(st, request_id), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={**os.environ, "OMP_NUM_THREADS": "1"})
            try:
                code = st.replay_process.wait(timeout=seconds)
                if code not in (0, 1, 2):
                    why = f"the replay stopped (exit {code})"
            except subprocess.TimeoutExpired:
                st.replay_process.kill()
                st.replay_process.wait()
                why = f"the replay took longer than {seconds:g} s and was stopped"
        except OSError as exc:
            why = f"the replay could not start ({exc.strerror})"
        finally:
            st.replay_process = None
        with Gradebook(gradebook_path(st.out_dir)) as book:
            after = (book.regrade_request(request_id) or {}).get("replayed_at")
        if after == before:
            st.replay_failed[request_id] = (why or "the replay kept no outcome") + (
                f"; run `grade requests replay {request_id} -o DIR --submissions DIR` in a terminal to see why")
        else:
            st.replay_failed.pop(request_id, None)
        st.replaying.pop(request_id, None)


def create_app(out_dir: Path, tutor: str, token: str | None = None, rubric_path: str | None = None,
               submissions: Path | None = None) -> Starlette:
    """The app over ``out_dir`` for the tutor named ``tutor`` (who every save is recorded as);
    ``token`` (default: a new random one) is what the URL must carry; ``submissions``: the folder
    of the submitted files, for the regrade requests' replays."""
    from grader.checks.secret import load_secret
    st = ServeState(out_dir, tutor, token or secrets.token_urlsafe(32), secret=load_secret(create=False),
                    submissions=submissions, rubric_path=rubric_path)
    st.reload()
    prompts = _prompts()

    def common(request: Request | None = None) -> dict[str, Any]:
        return {"csrf": st.derived("csrf"), "tutor": st.tutor, "questions": st.written}

    def scores() -> dict[str, dict[str, dict[str, Any]]]:
        with Gradebook(gradebook_path(out_dir)) as book:
            return book.manual_scores()

    def progress(manual: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
        graded = st.graded()
        return {qid: (sum(1 for r in graded if qid in manual.get(r["folder"], {})), len(graded))
                for qid in st.written}

    def neighbour(qid: str, step: int) -> str | None:
        at = st.written.index(qid) + step
        return st.written[at] if 0 <= at < len(st.written) else None

    async def index(request: Request) -> Response:
        st.reload()  # a re-grade or a `grade scores` import since the last page: show the folder as it is
        manual = scores()
        code = request.query_params.get("notice", "")
        notice = NOTICES[code].format(published=st.published) if code in NOTICES else ""
        return _page("index.html.j2", out_dir=str(out_dir), progress=progress(manual),
                     skipped=[st.view(r["folder"]) for r in st.results.values() if r["status"] != "graded"],
                     graded=[(st.view(r["folder"]), st.report_key(r["folder"])) for r in st.graded()],
                     notice=notice, **common())

    def question_or_404(qid: str) -> Response | None:
        if qid not in st.written:  # never echo the address: only the rubric's ids are named
            return _page("message.html.j2", 404, title="No such question",
                         message=f"There is no such written question; the written questions are "
                                 f"{', '.join(st.written)}.", **common())
        return None

    async def first(request: Request) -> Response:
        qid = request.path_params["qid"]
        missing = question_or_404(qid)
        if missing:
            return missing
        manual = scores()
        graded = st.graded()
        at = next((i for i, r in enumerate(graded, 1) if qid not in manual.get(r["folder"], {})), 1)
        after = request.query_params.get("after", "")
        return RedirectResponse(f"/q/{qid}/{at}" + (f"?after={after}" if after in st.written else ""), 303)

    def group_code(r: Mapping[str, Any], answer: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The code cells the group put after this answer, highlighted, with their outputs."""
        from grader.pages.highlight import highlight_python
        from grader.pages.report import cell_outputs_for
        outputs = cell_outputs_for(r.get("cells") or ())
        shown = []
        for c in answer.get("nearby") or []:
            if not isinstance(c, Mapping):
                continue
            html, _ = highlight_python(str(c.get("source", "")))
            shown.append({"index": int(c.get("index", 0)), "html": html,
                          "outputs": outputs.get(int(c.get("index", 0)), [])})
        return shown

    def answer_page(request: Request, qid: str, n: int, status: int = 200, error: str = "",
                    typed: Mapping[str, str] | None = None, version: int | None = None) -> Response:
        from grader.pages.markdown import render_comment, render_markdown
        from grader.tutors.review import suggestion_for
        from grader.written.concepts import model_answers
        graded = st.graded()
        if not 1 <= n <= len(graded):
            return _page("message.html.j2", 404, title="No such answer",
                         message=f"{qid} has {len(graded)} answer(s) to score; there is no answer of this number.",
                         **common())
        folder = graded[n - 1]["folder"]
        r = st.view(folder)  # what the tutor scores from: blind unless revealed
        q = r["questions"][qid]
        flags = [f for f in r.get("flags", []) if f.get("question") == qid]
        answer = q.get("answer") or {}
        with Gradebook(gradebook_path(out_dir)) as book:
            manual = book.manual_scores()
            current = version if version is not None else score_version(book, folder, qid)
            kept = book.saved_comments(qid)
        stored = manual.get(folder, {}).get(qid)
        model = model_answers().get(qid)
        form = {"points": f"{stored['points']:g}" if stored else "", "comment": stored["comment"] if stored else ""}
        if typed is not None:
            form = {"points": typed.get("points", ""), "comment": typed.get("comment", "")}
        after = request.query_params.get("after", "")
        return _page(
            "answer.html.j2", status, qid=qid, n=n, total=len(graded), r=r, q=q, flags=flags,
            answer_html=render_markdown(answer.get("markdown", ""), answer.get("attachments"))
            if answer.get("markdown", "").strip() else None,
            prompt_html=prompts.get(qid), code=group_code(r, answer),
            model_html=render_markdown(model.markdown) if model else None,
            concepts=[c.name for c in model.concepts] if model else [],
            suggested=suggestion_for(q, flags), stored=stored,
            stored_comment=render_comment(stored["comment"]) if stored and stored["comment"] else None,
            stored_when=time.strftime("%Y-%m-%d %H:%M", time.localtime(stored["scored_at"])) if stored else "",
            version=current, form=form, error=error, choices=point_choices(float(q.get("max_points", 0.0))),
            report_url=f"/report/{st.report_key(folder)}", key=st.report_key(folder),
            auto_url=f"/auto/{st.report_key(folder)}", progress=progress(manual)[qid],
            saved=_number_in(request.query_params.get("saved", ""), 1, len(graded)),
            after=after if after in st.written else "",
            next_question=neighbour(qid, 1), prev_question=neighbour(qid, -1),
            kept=kept[:9], kept_more=kept[9:], **common())

    async def answer(request: Request) -> Response:
        qid, n = request.path_params["qid"], request.path_params["n"]
        return question_or_404(qid) or answer_page(request, qid, n)

    async def save(request: Request) -> Response:
        qid, n = request.path_params["qid"], request.path_params["n"]
        missing = question_or_404(qid)
        if missing:
            return missing
        form = await read_form(request, st)
        if isinstance(form, Response):
            return form
        typed = {k: form.get(k, "") for k in ("key", "version", "points", "comment")}
        graded = st.graded()
        if not 1 <= n <= len(graded) or st.report_key(graded[n - 1]["folder"]) != typed["key"]:
            # The list moved under the form (a re-grade): never store a score on the wrong answer.
            return _page("message.html.j2", 409, title="The list of answers changed",
                         message="The answers were graded again since this page was loaded; nothing was saved. "
                                 f"Open {qid} again from the start page.", **common())
        if not re.fullmatch(r"[0-9]{1,15}", typed["version"]):
            return answer_page(request, qid, n, 400, "The form lost its version; reload the page.", typed)
        if len(typed["comment"]) > MAX_COMMENT:
            return answer_page(request, qid, n, 400, f"A comment of at most {MAX_COMMENT} characters, please; "
                               "nothing was saved.", typed)
        result = graded[n - 1]
        try:
            # Blocking work (SQLite, rendering) off the event loop: other tutors' pages keep coming.
            saved = await run_in_threadpool(save_score, out_dir, result["folder"], qid, typed["points"],
                                            typed["comment"], st.tutor, int(typed["version"]))
        except ScoreConflict as exc:
            return answer_page(request, qid, n, 409, str(exc), typed, version=exc.version)
        except ScoreRefused as exc:
            return answer_page(request, qid, n, 400, f"Not saved: {exc}", typed)
        st.results[result["folder"]] = saved.result
        if n < len(graded):
            return RedirectResponse(f"/q/{qid}/{n + 1}?saved={n}", 303)
        following = neighbour(qid, 1)  # the question's last answer: on to the next question
        if following is not None:
            return RedirectResponse(f"/q/{following}?after={qid}", 303)
        return RedirectResponse("/?notice=done", 303)

    async def keep_comment(request: Request) -> Response:
        """Keep the comment typed in the scoring form for reuse on this question."""
        qid = request.path_params["qid"]
        missing = question_or_404(qid)
        if missing:
            return missing
        form = await read_form(request, st)
        if isinstance(form, Response):
            return form
        n = _number_in(form.get("back", ""), 1, len(st.graded())) or 1
        typed = {k: form.get(k, "") for k in ("points", "comment")}
        text = typed["comment"].replace("\r\n", "\n").strip()
        if not text or len(text) > MAX_COMMENT:
            return answer_page(request, qid, n, 400, f"Type a comment of 1 to {MAX_COMMENT} characters first, "
                               "then keep it for reuse.", typed)
        with Gradebook(gradebook_path(out_dir)) as book:
            book.keep_comment(qid, text, st.tutor, time.time())
        return answer_page(request, qid, n, 200, "", typed)

    async def edit_comment(request: Request) -> Response:
        """Change a kept comment's text; an empty text drops it."""
        qid, cid = request.path_params["qid"], request.path_params["cid"]
        missing = question_or_404(qid)
        if missing:
            return missing
        form = await read_form(request, st)
        if isinstance(form, Response):
            return form
        n = _number_in(form.get("back", ""), 1, len(st.graded())) or 1
        text = form.get("text", "").replace("\r\n", "\n").strip()
        if len(text) > MAX_COMMENT:
            return answer_page(request, qid, n, 400, f"A kept comment of at most {MAX_COMMENT} characters, please.")
        with Gradebook(gradebook_path(out_dir)) as book:
            if not book.edit_comment(qid, cid, text, st.tutor, time.time()):
                return answer_page(request, qid, n, 404, "That kept comment is gone (another tutor dropped it).")
        return RedirectResponse(f"/q/{qid}/{n}", 303)

    def folder_of(key: str) -> str | None:
        # Only a folder the app listed itself, found by its digest; a URL never becomes a path.
        return next((f for f in st.results if st.report_key(f) == key), None)

    def auto_page(folder: str, status: int = 200, error: str = "", typed: Mapping[str, str] | None = None,
                  request_error: str = "", asked: Mapping[str, str] | None = None) -> Response:
        r = st.view(folder)
        with Gradebook(gradebook_path(out_dir)) as book:
            overrides = book.overrides(folder).get(folder, {})
        autos = [(qid, q, overrides.get(qid)) for qid, q in r["questions"].items() if not is_written(q)]
        when = {qid: time.strftime("%Y-%m-%d %H:%M", time.localtime(o["set_at"])) for qid, q, o in autos if o}
        from grader.tutors.regrades import queue
        requests = [i for i in queue(OutDir(out_dir), st.secret) if i.folder == folder]
        return _page("auto.html.j2", status, r=r, autos=autos, when=when, error=error, typed=typed or {},
                     key=st.report_key(folder), report_url=f"/report/{st.report_key(folder)}",
                     requests=requests, request_error=request_error, asked=asked or {},
                     all_questions=list(st.results[folder]["questions"]), today=time.strftime("%Y-%m-%d"),
                     **common())

    async def auto(request: Request) -> Response:
        folder = folder_of(request.path_params["key"])
        if folder is None or st.results[folder]["status"] != "graded":
            return _page("message.html.j2", 404, title="No such submission",
                         message="There is no such graded submission.", **common())
        return auto_page(folder)

    async def set_auto(request: Request) -> Response:
        folder = folder_of(request.path_params["key"])
        if folder is None or st.results[folder]["status"] != "graded":
            return _page("message.html.j2", 404, title="No such submission",
                         message="There is no such graded submission.", **common())
        form = await read_form(request, st)
        if isinstance(form, Response):
            return form
        typed = {k: form.get(k, "") for k in ("question", "points", "reason")}
        if typed["question"] not in st.results[folder]["questions"]:
            return auto_page(folder, 400, "Choose one of the automatic questions listed; nothing was saved.")
        try:
            saved = await run_in_threadpool(save_override, out_dir, folder, typed["question"], typed["points"],
                                            typed["reason"], st.tutor)
        except ScoreRefused as exc:
            return auto_page(folder, 400, f"Not saved: {exc}", typed)
        st.results[folder] = saved.result
        return RedirectResponse(f"/auto/{st.report_key(folder)}", 303)

    # -- regrade requests (grader/tutors/regrades.py) ------------------------------------------------
    budget = load_rubric(rubric_path).budget.seconds

    def requests_page(status: int = 200, error: str = "", asked: Mapping[str, str] | None = None,
                      failed_id: int | None = None, notice: str = "") -> Response:
        """The queue, blind: every request under its group's pseudonym, its replay, its outcome."""
        from grader.tutors.regrades import queue
        st.reload()
        items = queue(OutDir(out_dir), st.secret)
        questions = list(next(iter(st.results.values()))["questions"]) if st.results else []
        return _page("requests.html.j2", status, items=items, error=error, failed_id=failed_id, asked=asked or {},
                     notice=notice, replaying=set(st.replaying), replay_failed=dict(st.replay_failed),
                     can_replay=st.submissions is not None, all_questions=questions,
                     keys={i.id: st.report_key(i.folder) for i in items}, today=time.strftime("%Y-%m-%d"),
                     **common())

    async def requests_queue(request: Request) -> Response:
        code = request.query_params.get("notice", "")  # a code only: the sentence is the server's
        return await run_in_threadpool(requests_page, 200, "", None, None, NOTICES.get(code, ""))

    async def add_request(request: Request) -> Response:
        """Record a request: the student's id or e-mail, matched to a group here; from a group's
        page (its key: the student must be of that group) or from the queue."""
        from grader.tutors.regrades import record_request
        form = await read_form(request, st)
        if isinstance(form, Response):
            return form
        asked = {k: form.get(k, "") for k in ("student", "question", "date", "text")}
        key = form.get("key", "")
        folder = folder_of(key) if key else None
        if key and folder is None:
            return _page("message.html.j2", 404, title="No such submission",
                         message="There is no such submission.", **common())
        try:
            _, new = await run_in_threadpool(record_request, OutDir(out_dir), st.secret, asked["student"],
                                             asked["question"], asked["text"], asked["date"], st.tutor,
                                             "grade serve", folder or "")
        except ScoreRefused as exc:
            if folder is not None:
                return auto_page(folder, 400, request_error=f"Not recorded: {exc}", asked=asked)
            message = f"Not recorded: {exc}"
            return await run_in_threadpool(requests_page, 400, message, asked)
        return RedirectResponse(f"/requests?notice={'recorded' if new else 'known'}", 303)

    async def replay_request(request: Request) -> Response:
        rid = request.path_params["rid"]
        form = await read_form(request, st)
        if isinstance(form, Response):
            return form
        if st.submissions is None:
            return await run_in_threadpool(
                requests_page, 400, "A replay needs the submitted files: start grade serve with --submissions DIR "
                "(the folder that holds the submissions as they were graded), or run `grade requests replay` in a "
                "terminal.", None, rid)
        with Gradebook(gradebook_path(out_dir)) as book:
            if book.regrade_request(rid) is None:
                return _page("message.html.j2", 404, title="No such request", message="There is no such request.",
                             **common())
        if rid not in st.replaying:
            st.replaying[rid] = time.time()
            threading.Thread(target=run_replay, args=(st, rid, budget + 60.0), daemon=True,
                             name=f"replay-{rid}").start()
        return RedirectResponse("/requests?notice=replaying", 303)

    async def resolve_request(request: Request) -> Response:
        from grader.tutors.regrades import resolve
        rid = request.path_params["rid"]
        form = await read_form(request, st)
        if isinstance(form, Response):
            return form
        typed = {k: form.get(k, "") for k in ("outcome", "points", "reason")}
        try:
            await run_in_threadpool(resolve, OutDir(out_dir), st.secret, rid, typed["outcome"], typed["reason"],
                                    st.tutor, typed["points"])
        except (ScoreRefused, UsageError) as exc:
            message = f"Not resolved: {exc}"
            return await run_in_threadpool(requests_page, 400, message, typed, rid)
        return RedirectResponse("/requests?notice=resolved", 303)

    async def publish(request: Request) -> Response:
        form = await read_form(request, st)
        if isinstance(form, Response):
            return form
        rewritten = await run_in_threadpool(sync_outputs, out_dir, rubric_path)
        st.published = len(rewritten)
        return RedirectResponse("/?notice=published", 303)

    async def report(request: Request) -> Response:
        folder = folder_of(request.path_params["key"])
        if folder is None:
            return _page("message.html.j2", 404, title="No such report", message="There is no such submission.",
                         **common())
        if folder not in st.revealed:  # the tutor's page names the group: blind until a recorded reveal
            return _page("reveal.html.j2", 200, title="Blind scoring", label=st.labels.get(folder, ""),
                         key=request.path_params["key"], **common())
        # The tutor's page of the submission (the student's report plus hints and detail).
        from grader.errors import OutputFolderError
        from grader.folder.outdir import OutDir
        try:  # the folder's one door: plain names only, no link followed, nothing outside it
            path = OutDir(out_dir).path(folder, PAGES["tutor"])
        except OutputFolderError:
            path = None
        if path is None or not path.is_file():
            return _page("message.html.j2", 404, title="No report", message="This submission has no report yet.",
                         **common())
        response = HTMLResponse(path.read_text(encoding="utf-8"))
        response.headers["Content-Security-Policy"] = REPORT_CSP
        return response

    async def reveal_group(request: Request) -> Response:
        """Show who a group is, after recording who asked, when and why (grader/tutors/privacy.py)."""
        from grader.folder.outdir import OutDir
        from grader.tutors.privacy import reveal
        folder = folder_of(request.path_params["key"])
        if folder is None:
            return _page("message.html.j2", 404, title="No such submission", message="There is no such submission.",
                         **common())
        form = await read_form(request, st)
        if isinstance(form, Response):
            return form
        reason = form.get("reason", "").strip()
        if not reason or len(reason) > MAX_COMMENT:
            return _page("reveal.html.j2", 400, title="Blind scoring", label=st.labels.get(folder, ""),
                         key=request.path_params["key"], error="Give a reason (it is recorded with your name).",
                         **common())
        await run_in_threadpool(reveal, OutDir(out_dir), folder, st.tutor, reason, st.secret)
        st.revealed.add(folder)
        return RedirectResponse(f"/report/{request.path_params['key']}", 303)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_FILES:
            return PlainTextResponse("not found", 404)
        if name == "app.css":
            from grader.pages.report import environment
            env = environment()  # the reports' look, and their math and code styles
            text = "\n".join((env.get_template("_style.css.j2").render(), str(env.globals.get("highlight_css", "")),
                               static_file(name).read_text(encoding="utf-8")))
        else:
            text = static_file(name).read_text(encoding="utf-8")
        return Response(text, media_type=STATIC_FILES[name])

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        running = st.replay_process
        if running is not None and running.poll() is None:  # a replay does not outlive its server
            running.kill()
        try:  # the batch files follow the scores when the server stops
            sync_outputs(out_dir, rubric_path)
        except GraderError as exc:
            log.warning("grades.csv and summary.html were not written: %s; run `grade scores` or "
                        "`grade serve` again to write them", exc)

    app = Starlette(routes=[
        Route("/", index),
        Route("/q/{qid}", first),
        Route("/q/{qid}/{n:int}", answer, methods=["GET"]),
        Route("/q/{qid}/{n:int}", save, methods=["POST"]),
        Route("/q/{qid}/comments", keep_comment, methods=["POST"]),
        Route("/q/{qid}/comments/{cid:int}", edit_comment, methods=["POST"]),
        Route("/auto/{key}", auto, methods=["GET"]),
        Route("/auto/{key}", set_auto, methods=["POST"]),
        Route("/reveal/{key}", reveal_group, methods=["POST"]),
        Route("/publish", publish, methods=["POST"]),
        Route("/requests", requests_queue, methods=["GET"]),
        Route("/requests", add_request, methods=["POST"]),
        Route("/requests/{rid:int}/replay", replay_request, methods=["POST"]),
        Route("/requests/{rid:int}/resolve", resolve_request, methods=["POST"]),
        Route("/report/{key}", report),
        Route("/static/{name}", static),
        *_mistakes_routes(st, common),
    ], lifespan=lifespan)
    app.add_middleware(Guard, state=st)
    app.state.serve = st
    return app


def _name_group(out_dir: Path, key: str, function: str, title: str, explanation: str, tutor: str,
                members: tuple[str, ...]) -> None:
    """Store a group's name (chained, grader/folder/gradebook.py) and draw its members' reports
    again, which then carry the explanation beside the failing check (grader/checks/learned.py)."""
    from grader.tutors.scores import render_folder
    with Gradebook(gradebook_path(out_dir)) as book:
        book.name_group(key, function, title, explanation, tutor, time.time())
    for folder in members:
        render_folder(out_dir, folder)


def _mistakes_routes(st: ServeState, common: Callable[..., dict[str, Any]]) -> list[Route]:
    """``/mistakes``: the batch's groups of alike failing submissions (grader/checks/learned.py), each
    once with its members under their pseudonyms (blind: no name, id, e-mail or file name) and a
    representative failing case as a blind view shows it; a tutor names a group (a title and an
    explanation for the students) with ``POST /mistakes/{key}``, recorded with the tutor and the
    time, and the members' reports are drawn again with it. A key is only ever compared with the
    groups the app computed itself."""
    from grader.checks.learned import Group, batch_groups, clean_name
    from grader.result import SubmissionResult

    def groups() -> list[Group]:
        return batch_groups(SubmissionResult.from_json(r) for r in st.results.values())

    def shown(g: Group, names: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        rep = st.view(g.members[0])  # blind unless this tutor revealed the group
        case: Mapping[str, Any] = next((c for q in rep["questions"].values() for c in q.get("checks", [])
                     if c.get("function") == g.function and not c.get("passed")), {})
        return {"key": g.key, "function": g.function, "count": len(g.members),
                "members": [(st.labels.get(f, "Group ?"), st.report_key(f)) for f in g.members],
                "case": case.get("name", ""), "message": case.get("message", ""),
                "diagnosis": case.get("diagnosis", ""), "name": names.get(g.key)}

    def page(status: int = 200, error: str = "", typed: Mapping[str, str] | None = None) -> Response:
        with Gradebook(gradebook_path(st.out_dir)) as book:
            names = book.group_names()
        return _page("mistakes.html.j2", status, groups=[shown(g, names) for g in groups()], error=error,
                     typed=typed or {}, **common())

    async def mistakes(request: Request) -> Response:
        st.reload()
        return page()

    async def name(request: Request) -> Response:
        form = await read_form(request, st)
        if isinstance(form, Response):
            return form
        key = request.path_params["key"]
        group = next((g for g in groups() if g.key == key), None)
        typed = {"key": key, "title": form.get("title", ""), "explanation": form.get("explanation", "")}
        if group is None:
            return page(404, "That group is gone (the batch was graded again); nothing was saved.")
        try:
            title, explanation = clean_name(typed["title"], typed["explanation"])
        except ValueError as exc:
            return page(400, f"Not saved: {exc}.", typed)
        await run_in_threadpool(_name_group, st.out_dir, group.key, group.function, title, explanation,
                                st.tutor, group.members)
        st.reload()
        return RedirectResponse(f"/mistakes#{group.key}", 303)

    return [Route("/mistakes", mistakes, methods=["GET"]), Route("/mistakes/{key}", name, methods=["POST"])]


def free_port(port: int) -> int:
    """``port`` if it can be bound on 127.0.0.1 (0: any free one); else UsageError."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError as exc:
            raise UsageError(f"cannot listen on {HOST}:{port} ({exc.strerror}); choose another port with "
                             "--port N") from None
        return int(s.getsockname()[1])


def serve(out_dir: Path, port: int, tutor: str, echo: Callable[[str], None], rubric_path: str | None = None,
          submissions: Path | None = None) -> None:
    """Run the app until Ctrl-C; ``echo`` prints the address with the token."""
    import uvicorn
    token = secrets.token_urlsafe(32)
    app = create_app(out_dir, tutor, token, rubric_path, submissions)  # refuses a folder without results first
    port = free_port(port)
    echo(f"Scoring {out_dir} as {tutor}. Open in your browser (only on this machine):")
    echo(f"    http://{HOST}:{port}/?token={token}")
    echo("Ctrl-C stops the server; grades.csv and summary.html are then written again.")
    # No access log: the first request's line would hold the token.
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False)
