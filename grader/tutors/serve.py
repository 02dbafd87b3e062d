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

The app is a class (:class:`TutorApp`) whose routes are its methods and whose state (the output
folder, the tutor, the token, the pseudonyms, the results) is made once, at start; its rooms:
grader/tutors/serve_guard.py (the safety above), serve_state.py (the state and the blind views),
serve_answers.py (scoring the written answers), serve_groups.py (a group's report, reveal and
automatic points; the groups of alike mistakes), serve_requests.py (the regrade requests).
"""
from __future__ import annotations

import logging
import secrets
import socket
import unicodedata
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from grader.errors import GraderError, UsageError
from grader.resources import static_file
from grader.tutors.scores import sync_outputs
from grader.tutors.serve_answers import AnswerRoutes, point_choices
from grader.tutors.serve_guard import Guard, posted
from grader.tutors.serve_requests import RequestRoutes, replay_command
from grader.tutors.serve_state import ServeState

__all__ = ["HOST", "ServeState", "TutorApp", "clean_tutor", "create_app", "free_port", "point_choices",
           "replay_command", "serve"]

log = logging.getLogger(__name__)
HOST = "127.0.0.1"  # never another interface: the app has no accounts, only the token
MAX_TUTOR = 60
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


def clean_tutor(raw: str) -> str | None:
    """A tutor's name as typed: printable, one line, at most MAX_TUTOR characters; else None."""
    name = " ".join(raw.split())
    if not name or len(name) > MAX_TUTOR or any(unicodedata.category(ch)[0] == "C" for ch in name):
        return None
    return name


class TutorApp(AnswerRoutes, RequestRoutes):
    """One server's app: its state (:class:`~grader.tutors.serve_state.ServeState`, made once)
    and its routes, each a method; :meth:`starlette` is the ASGI app uvicorn runs."""

    @posted
    async def publish(self, request: Request, form: dict[str, str]) -> Response:
        rewritten = await run_in_threadpool(sync_outputs, self.out, self.rubric_path)
        self.published = len(rewritten)
        return RedirectResponse("/?notice=published", 303)

    async def static(self, request: Request) -> Response:
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
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        running = self.replay_process
        if running is not None and running.poll() is None:  # a replay does not outlive its server
            running.kill()
        try:  # the batch files follow the scores when the server stops
            sync_outputs(self.out, self.rubric_path)
        except GraderError as exc:
            log.warning("grades.csv and summary.html were not written: %s; run `grade scores` or "
                        "`grade serve` again to write them", exc)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index),
            Route("/q/{qid}", self.first),
            Route("/q/{qid}/{n:int}", self.answer, methods=["GET"]),
            Route("/q/{qid}/{n:int}", self.save, methods=["POST"]),
            Route("/q/{qid}/comments", self.keep_comment, methods=["POST"]),
            Route("/q/{qid}/comments/{cid:int}", self.edit_comment, methods=["POST"]),
            Route("/auto/{key}", self.auto, methods=["GET"]),
            Route("/auto/{key}", self.set_auto, methods=["POST"]),
            Route("/reveal/{key}", self.reveal_group, methods=["POST"]),
            Route("/publish", self.publish, methods=["POST"]),
            Route("/requests", self.requests_queue, methods=["GET"]),
            Route("/requests", self.add_request, methods=["POST"]),
            Route("/requests/{rid:int}/replay", self.replay_request, methods=["POST"]),
            Route("/requests/{rid:int}/resolve", self.resolve_request, methods=["POST"]),
            Route("/report/{key}", self.report),
            Route("/static/{name}", self.static),
            Route("/mistakes", self.mistakes, methods=["GET"]),
            Route("/mistakes/{key}", self.name_mistake, methods=["POST"]),
        ]

    def starlette(self) -> Starlette:
        app = Starlette(routes=self.routes(), lifespan=self.lifespan)
        app.add_middleware(Guard, keys=self.keys)
        app.state.serve = self
        return app


def create_app(out_dir: Path, tutor: str, token: str | None = None, rubric_path: str | None = None,
               submissions: Path | None = None) -> Starlette:
    """The app over ``out_dir`` for the tutor named ``tutor`` (who every save is recorded as);
    ``token`` (default: a new random one) is what the URL must carry; ``submissions``: the folder
    of the submitted files, for the regrade requests' replays."""
    return TutorApp(out_dir, tutor, token, rubric_path, submissions).starlette()


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
