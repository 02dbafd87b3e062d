"""Regrade requests in ``grade serve`` (grader/tutors/serve.py; the requests themselves:
grader/tutors/regrades.py).

A tutor records a student's request from a small form on a group's page (``/auto/KEY``) or on
the queue page ``/requests``, by the student's id or e-mail, which the server matches to the
group (from a group's page the student must be of that group). The queue is blind (pseudonyms,
the request's words with the group's identities hidden). Beside each request its latest replay;
"Replay" runs ``grade requests replay ID`` as a separate process (:func:`replay_command`; one at a
time, bounded by the rubric's ``[budget] grader_seconds`` plus a minute) over the folder of
submissions given at start with ``--submissions``, never a path from a request; where a replay
keeps no outcome (it stopped, or took too long), the queue says why. Each request is resolved
with an outcome (upheld with new points, or declined) and a reason.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from grader.errors import ScoreRefused, UsageError
from grader.tutors.serve_groups import GroupRoutes
from grader.tutors.serve_guard import NOTICES, page, posted
from grader.tutors.serve_state import ServeState


def replay_command(st: ServeState, request_id: int) -> list[str]:
    """The command a replay from the queue runs: ``grade requests replay`` in its own process."""
    assert st.submissions is not None
    return [sys.executable, "-m", "grader.cli.main", "requests", "replay", str(request_id), "-o", str(st.out_dir),
            "--submissions", str(st.submissions), *(["--rubric", st.rubric_path] if st.rubric_path else [])]


class RequestRoutes(GroupRoutes):
    """The queue of regrade requests: record, replay, resolve (a group's page shows its own)."""

    def requests_page(self, status: int = 200, error: str = "", asked: Mapping[str, str] | None = None,
                      failed_id: int | None = None, notice: str = "") -> Response:
        """The queue, blind: every request under its group's pseudonym, its replay, its outcome."""
        from grader.tutors.regrades import queue
        self.reload()
        items = queue(self.out, self.secret)
        questions = list(next(iter(self.results.values())).questions) if self.results else []
        return page("requests.html.j2", status, items=items, error=error, failed_id=failed_id, asked=asked or {},
                    notice=notice, replaying=set(self.replaying), replay_failed=dict(self.replay_failed),
                    can_replay=self.submissions is not None, all_questions=questions,
                    keys={i.id: self.report_key(i.folder) for i in items}, today=time.strftime("%Y-%m-%d"),
                    **self.common())

    async def requests_queue(self, request: Request) -> Response:
        code = request.query_params.get("notice", "")  # a code only: the sentence is the server's
        return await run_in_threadpool(self.requests_page, 200, "", None, None, NOTICES.get(code, ""))

    @posted
    async def add_request(self, request: Request, form: dict[str, str]) -> Response:
        """Record a request: the student's id or e-mail, matched to a group here; from a group's
        page (its key: the student must be of that group) or from the queue."""
        from grader.tutors.regrades import record_request
        asked = {k: form.get(k, "") for k in ("student", "question", "date", "text")}
        key = form.get("key", "")
        folder = self.folder_of(key) if key else None
        if key and folder is None:
            return self.missing("No such submission", "There is no such submission.")
        try:
            _, new = await run_in_threadpool(record_request, self.out, self.secret, asked["student"],
                                             asked["question"], asked["text"], asked["date"], self.tutor,
                                             "grade serve", folder or "")
        except ScoreRefused as exc:
            if folder is not None:
                return self.auto_page(folder, 400, request_error=f"Not recorded: {exc}", asked=asked)
            return await run_in_threadpool(self.requests_page, 400, f"Not recorded: {exc}", asked)
        return RedirectResponse(f"/requests?notice={'recorded' if new else 'known'}", 303)

    @posted
    async def replay_request(self, request: Request, form: dict[str, str]) -> Response:
        rid = request.path_params["rid"]
        if self.submissions is None:
            return await run_in_threadpool(
                self.requests_page, 400, "A replay needs the submitted files: start grade serve with --submissions "
                "DIR (the folder that holds the submissions as they were graded), or run `grade requests replay` in "
                "a terminal.", None, rid)
        with self.out.gradebook() as book:
            if book.regrade_request(rid) is None:
                return self.missing("No such request", "There is no such request.")
        if rid not in self.replaying:
            self.replaying[rid] = time.time()
            threading.Thread(target=self.run_replay, args=(rid, self.budget + 60.0), daemon=True,
                             name=f"replay-{rid}").start()
        return RedirectResponse("/requests?notice=replaying", 303)

    @posted
    async def resolve_request(self, request: Request, form: dict[str, str]) -> Response:
        from grader.tutors.regrades import resolve
        rid = request.path_params["rid"]
        typed = {k: form.get(k, "") for k in ("outcome", "points", "reason")}
        try:
            await run_in_threadpool(resolve, self.out, self.secret, rid, typed["outcome"], typed["reason"],
                                    self.tutor, typed["points"])
        except (ScoreRefused, UsageError) as exc:
            return await run_in_threadpool(self.requests_page, 400, f"Not resolved: {exc}", typed, rid)
        return RedirectResponse("/requests?notice=resolved", 303)

    def replayed_at(self, request_id: int) -> object:
        with self.out.gradebook() as book:
            return (book.regrade_request(request_id) or {}).get("replayed_at")

    def run_replay(self, request_id: int, seconds: float) -> None:
        """One replay at a time, in a process of its own (a thread waits for it); what it finds is
        kept in the gradebook by the command itself. Where it keeps nothing (it stopped, or took
        longer than ``seconds``), the queue says so."""
        with self.replay_lock:
            before = self.replayed_at(request_id)
            why = self.run_replay_process(request_id, seconds)
            if self.replayed_at(request_id) == before:
                self.replay_failed[request_id] = (why or "the replay kept no outcome") + (
                    f"; run `grade requests replay {request_id} -o DIR --submissions DIR` in a terminal to see why")
            else:
                self.replay_failed.pop(request_id, None)
            self.replaying.pop(request_id, None)

    def run_replay_process(self, request_id: int, seconds: float) -> str:
        """Run the replay's process to its end or for ``seconds``; why it kept nothing, or ''."""
        why = ""
        try:
            self.replay_process = subprocess.Popen(
                replay_command(self, request_id), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={**os.environ, "OMP_NUM_THREADS": "1"})
            try:
                code = self.replay_process.wait(timeout=seconds)
                if code not in (0, 1, 2):
                    why = f"the replay stopped (exit {code})"
            except subprocess.TimeoutExpired:
                self.replay_process.kill()
                self.replay_process.wait()
                why = f"the replay took longer than {seconds:g} s and was stopped"
        except OSError as exc:
            why = f"the replay could not start ({exc.strerror})"
        finally:
            self.replay_process = None
        return why
