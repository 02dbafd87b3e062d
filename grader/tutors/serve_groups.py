"""A group's pages in ``grade serve`` (grader/tutors/serve.py), each at an address keyed by the
server's token (``/report/KEY``, ``/auto/KEY``), and the batch's groups of alike mistakes.

- ``/report/KEY``: the tutor's page of the submission (``tutor.html``, read through the output
  folder's one door), which names the group: blind until this tutor asks for a reveal with a
  reason, which is recorded first (``POST /reveal/KEY``, grader/tutors/privacy.py's ``reveal``).
- ``/auto/KEY``: a graded submission's automatic questions, whose points a tutor may set by hand
  with a required reason (:func:`grader.tutors.scores.save_override`), and the group's regrade
  requests with a form to record one.
- ``/mistakes``: the batch's groups of alike failing submissions (grader/checks/learned.py), each
  once with its members under their pseudonyms and a representative failing case as a blind view
  shows it; a tutor names a group (a title and an explanation for the students) with
  ``POST /mistakes/{key}``, recorded with the tutor and the time, and the members' reports are
  drawn again with it. A key is only ever compared with the groups the app computed itself.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from grader.checks.learned import Group
from grader.errors import OutputFolderError, ScoreRefused
from grader.pages.report import PAGES
from grader.tutors.scores import save_override
from grader.tutors.serve_guard import REPORT_CSP, page, posted
from grader.tutors.serve_state import MAX_COMMENT, ServeState


class GroupRoutes(ServeState):
    """A group's report, its reveal, its automatic points; the groups of alike mistakes."""

    async def report(self, request: Request) -> Response:
        folder = self.folder_of(request.path_params["key"])
        if folder is None:
            return self.missing("No such report", "There is no such submission.")
        if folder not in self.revealed:  # the tutor's page names the group: blind until a recorded reveal
            return page("reveal.html.j2", 200, title="Blind scoring", label=self.labels.get(folder, ""),
                        key=request.path_params["key"], **self.common())
        try:  # the folder's one door: plain names only, no link followed, nothing outside it
            path = self.out.path(folder, PAGES["tutor"])
        except OutputFolderError:
            path = None
        if path is None or not path.is_file():
            return self.missing("No report", "This submission has no report yet.")
        response = HTMLResponse(path.read_text(encoding="utf-8"))
        response.headers["Content-Security-Policy"] = REPORT_CSP
        return response

    @posted
    async def reveal_group(self, request: Request, form: dict[str, str]) -> Response:
        """Show who a group is, after recording who asked, when and why (grader/tutors/privacy.py)."""
        from grader.tutors.privacy import reveal
        folder = self.folder_of(request.path_params["key"])
        if folder is None:
            return self.missing("No such submission", "There is no such submission.")
        reason = form.get("reason", "").strip()
        if not reason or len(reason) > MAX_COMMENT:
            return page("reveal.html.j2", 400, title="Blind scoring", label=self.labels.get(folder, ""),
                        key=request.path_params["key"], error="Give a reason (it is recorded with your name).",
                        **self.common())
        await run_in_threadpool(reveal, self.out, folder, self.tutor, reason, self.secret)
        self.revealed.add(folder)
        return RedirectResponse(f"/report/{request.path_params['key']}", 303)

    # -- automatic points set by hand ----------------------------------------------------------------
    def auto_page(self, folder: str, status: int = 200, error: str = "", typed: Mapping[str, str] | None = None,
                  request_error: str = "", asked: Mapping[str, str] | None = None) -> Response:
        from grader.tutors.regrades import queue
        view = self.view(folder)
        shown = self.shown(view)
        with self.out.gradebook() as book:
            overrides = book.overrides(folder).get(folder, {})
        autos = [(qid, q.to_json(), overrides.get(qid)) for qid, q in shown.questions.items() if not q.written]
        when = {qid: time.strftime("%Y-%m-%d %H:%M", time.localtime(o["set_at"])) for qid, _, o in autos if o}
        requests = [i for i in queue(self.out, self.secret) if i.folder == folder]
        key = self.report_key(folder)
        return page("auto.html.j2", status, r=view, autos=autos, when=when, error=error, typed=typed or {},
                    key=key, report_url=f"/report/{key}", requests=requests, request_error=request_error,
                    asked=asked or {}, all_questions=list(self.results[folder].questions),
                    today=time.strftime("%Y-%m-%d"), **self.common())

    def graded_of(self, key: str) -> str | None:
        folder = self.folder_of(key)
        return folder if folder is not None and self.results[folder].status == "graded" else None

    async def auto(self, request: Request) -> Response:
        folder = self.graded_of(request.path_params["key"])
        if folder is None:
            return self.missing("No such submission", "There is no such graded submission.")
        return self.auto_page(folder)

    @posted
    async def set_auto(self, request: Request, form: dict[str, str]) -> Response:
        folder = self.graded_of(request.path_params["key"])
        if folder is None:
            return self.missing("No such submission", "There is no such graded submission.")
        typed = {k: form.get(k, "") for k in ("question", "points", "reason")}
        if typed["question"] not in self.results[folder].questions:
            return self.auto_page(folder, 400, "Choose one of the automatic questions listed; nothing was saved.")
        try:
            saved = await run_in_threadpool(save_override, self.out, folder, typed["question"], typed["points"],
                                            typed["reason"], self.tutor)
        except ScoreRefused as exc:
            return self.auto_page(folder, 400, f"Not saved: {exc}", typed)
        self.results[folder] = saved.result
        return RedirectResponse(f"/auto/{self.report_key(folder)}", 303)

    # -- groups of alike mistakes (grader/checks/learned.py) ------------------------------------------
    def groups(self) -> list[Group]:
        from grader.checks.learned import batch_groups
        return batch_groups(self.results.values())

    def group_shown(self, g: Group, names: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        rep = self.shown(self.view(g.members[0]))  # blind unless this tutor revealed the group
        case = next((c for q in rep.questions.values() for c in q.cases
                     if c.function == g.function and not c.passed), None)
        return {"key": g.key, "function": g.function, "count": len(g.members),
                "members": [(self.labels.get(f, "Group ?"), self.report_key(f)) for f in g.members],
                "case": case.name if case else "", "message": case.message if case else "",
                "diagnosis": case.diagnosis if case else "", "name": names.get(g.key)}

    def mistakes_page(self, status: int = 200, error: str = "", typed: Mapping[str, str] | None = None) -> Response:
        with self.out.gradebook() as book:
            names = book.group_names()
        return page("mistakes.html.j2", status, groups=[self.group_shown(g, names) for g in self.groups()],
                    error=error, typed=typed or {}, **self.common())

    async def mistakes(self, request: Request) -> Response:
        self.reload()
        return self.mistakes_page()

    @posted
    async def name_mistake(self, request: Request, form: dict[str, str]) -> Response:
        from grader.checks.learned import clean_name
        key = request.path_params["key"]
        group = next((g for g in self.groups() if g.key == key), None)
        typed = {"key": key, "title": form.get("title", ""), "explanation": form.get("explanation", "")}
        if group is None:
            return self.mistakes_page(404, "That group is gone (the batch was graded again); nothing was saved.")
        try:
            title, explanation = clean_name(typed["title"], typed["explanation"])
        except ValueError as exc:
            return self.mistakes_page(400, f"Not saved: {exc}.", typed)
        await run_in_threadpool(self.name_group, group, title, explanation)
        self.reload()
        return RedirectResponse(f"/mistakes#{group.key}", 303)

    def name_group(self, group: Group, title: str, explanation: str) -> None:
        """Store a group's name (chained, grader/folder/gradebook.py) and draw its members' reports
        again, which then carry the explanation beside the failing check (grader/checks/learned.py)."""
        from grader.tutors.scores import render_folder
        with self.out.gradebook() as book:
            book.name_group(group.key, group.function, title, explanation, self.tutor, time.time())
        for folder in group.members:
            render_folder(self.out, folder)
