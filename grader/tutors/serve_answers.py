"""Scoring the written answers in ``grade serve`` (grader/tutors/serve.py): the start page, and per
written question each graded submission's answer, one after the other.

An answer's page shows the answer as the tutor may see it (a blind view unless revealed,
grader/tutors/serve_state.py), the question's prompt, the model answer and concept hints, the
suggested score of ``grade review``, the group's code after the answer, the score so far and the
comments kept for reuse on that question. Each form carries the key of the answer it was drawn
for and the version of its score (the id of its latest ``score_history`` row): a save whose list
of answers moved (a re-grade) is refused, and one whose version is stale because another tutor
changed the score since is refused with who changed it and when
(:func:`grader.tutors.scores.save_score`). After a question's last answer the next question
follows. Kept comments are added and edited (an empty text drops one) with the tutor and time.
"""
from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from grader.errors import ScoreConflict, ScoreRefused
from grader.result import QuestionResult
from grader.tutors.scores import save_score, score_version
from grader.tutors.serve_guard import NOTICES, number_in, page, posted
from grader.tutors.serve_state import MAX_COMMENT, ServeState

POINT_STEP = 0.25   # the points the number keys offer; the same step as grade review's suggestion


def point_choices(maximum: float) -> list[tuple[str, float]]:
    """(key, points) for the number keys: 0, 0.25, ... up to the maximum, at most ten."""
    steps = int(round(maximum / POINT_STEP))
    return [(str(k), round(k * POINT_STEP, 4)) for k in range(min(steps, 9) + 1)]


class AnswerRoutes(ServeState):
    """The start page and the written answers' pages and forms."""

    def manual(self) -> dict[str, dict[str, dict[str, Any]]]:
        with self.out.gradebook() as book:
            return book.manual_scores()

    def progress(self, manual: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
        graded = self.graded()
        return {qid: (sum(1 for r in graded if qid in manual.get(r.folder, {})), len(graded))
                for qid in self.written}

    def neighbour(self, qid: str, step: int) -> str | None:
        at = self.written.index(qid) + step
        return self.written[at] if 0 <= at < len(self.written) else None

    def question_or_404(self, qid: str) -> Response | None:
        if qid not in self.written:  # never echo the address: only the rubric's ids are named
            return self.missing("No such question", f"There is no such written question; the written questions "
                                                    f"are {', '.join(self.written)}.")
        return None

    async def index(self, request: Request) -> Response:
        self.reload()  # a re-grade or a `grade scores` import since the last page: show the folder as it is
        code = request.query_params.get("notice", "")
        notice = NOTICES[code].format(published=self.published) if code in NOTICES else ""
        return page("index.html.j2", out_dir=str(self.out_dir), progress=self.progress(self.manual()),
                    skipped=[self.view(f) for f, r in self.results.items() if r.status != "graded"],
                    graded=[(self.view(r.folder), self.report_key(r.folder)) for r in self.graded()],
                    notice=notice, **self.common())

    async def first(self, request: Request) -> Response:
        qid = request.path_params["qid"]
        missing = self.question_or_404(qid)
        if missing:
            return missing
        manual = self.manual()
        at = next((i for i, r in enumerate(self.graded(), 1) if qid not in manual.get(r.folder, {})), 1)
        after = request.query_params.get("after", "")
        return RedirectResponse(f"/q/{qid}/{at}" + (f"?after={after}" if after in self.written else ""), 303)

    @staticmethod
    def group_code(view: Mapping[str, Any], q: QuestionResult) -> list[dict[str, Any]]:
        """The code cells the group put after this answer, highlighted, with their outputs."""
        from grader.pages.highlight import highlight_python
        from grader.pages.report import cell_outputs_for
        outputs = cell_outputs_for(view.get("cells") or ())
        shown = []
        for c in q.answer.nearby if q.answer is not None else ():
            index = int(c.get("index", 0))
            html, _ = highlight_python(str(c.get("source", "")))
            shown.append({"index": index, "html": html, "outputs": outputs.get(index, [])})
        return shown

    def answer_page(self, request: Request, qid: str, n: int, status: int = 200, error: str = "",
                    typed: Mapping[str, str] | None = None, version: int | None = None) -> Response:
        from grader.pages.markdown import render_comment, render_markdown
        from grader.tutors.review import suggestion_of
        from grader.written.concepts import model_answers
        graded = self.graded()
        if not 1 <= n <= len(graded):
            return self.missing("No such answer", f"{qid} has {len(graded)} answer(s) to score; there is no "
                                                  "answer of this number.")
        folder = graded[n - 1].folder
        view = self.view(folder)  # what the tutor scores from: blind unless revealed
        shown = self.shown(view)
        q = shown.questions[qid]
        flags = [f for f in shown.flags if f.question == qid]
        with self.out.gradebook() as book:
            manual = book.manual_scores()
            current = version if version is not None else score_version(book, folder, qid)
            kept = book.saved_comments(qid)
        stored = manual.get(folder, {}).get(qid)
        model = model_answers().get(qid)
        form = {"points": f"{stored['points']:g}" if stored else "", "comment": stored["comment"] if stored else ""}
        if typed is not None:
            form = {"points": typed.get("points", ""), "comment": typed.get("comment", "")}
        after = request.query_params.get("after", "")
        key = self.report_key(folder)
        return page(
            "answer.html.j2", status, qid=qid, n=n, total=len(graded), r=view, q=q.to_json(), flags=flags,
            answer_html=render_markdown(q.answer.markdown, q.answer.attachments)
            if q.answer is not None and q.answer.markdown.strip() else None,
            prompt_html=self.prompts.get(qid), code=self.group_code(view, q),
            model_html=render_markdown(model.markdown) if model else None,
            concepts=[c.name for c in model.concepts] if model else [],
            suggested=suggestion_of(q, flags), stored=stored,
            stored_comment=render_comment(stored["comment"]) if stored and stored["comment"] else None,
            stored_when=time.strftime("%Y-%m-%d %H:%M", time.localtime(stored["scored_at"])) if stored else "",
            version=current, form=form, error=error, choices=point_choices(q.max_points),
            report_url=f"/report/{key}", key=key, auto_url=f"/auto/{key}", progress=self.progress(manual)[qid],
            saved=number_in(request.query_params.get("saved", ""), 1, len(graded)),
            after=after if after in self.written else "",
            next_question=self.neighbour(qid, 1), prev_question=self.neighbour(qid, -1),
            kept=kept[:9], kept_more=kept[9:], **self.common())

    async def answer(self, request: Request) -> Response:
        qid, n = request.path_params["qid"], request.path_params["n"]
        return self.question_or_404(qid) or self.answer_page(request, qid, n)

    @posted
    async def save(self, request: Request, form: dict[str, str]) -> Response:
        qid, n = request.path_params["qid"], request.path_params["n"]
        missing = self.question_or_404(qid)
        if missing:
            return missing
        typed = {k: form.get(k, "") for k in ("key", "version", "points", "comment")}
        graded = self.graded()
        if not 1 <= n <= len(graded) or self.report_key(graded[n - 1].folder) != typed["key"]:
            # The list moved under the form (a re-grade): never store a score on the wrong answer.
            return page("message.html.j2", 409, title="The list of answers changed",
                        message="The answers were graded again since this page was loaded; nothing was saved. "
                                f"Open {qid} again from the start page.", **self.common())
        if not re.fullmatch(r"[0-9]{1,15}", typed["version"]):
            return self.answer_page(request, qid, n, 400, "The form lost its version; reload the page.", typed)
        if len(typed["comment"]) > MAX_COMMENT:
            return self.answer_page(request, qid, n, 400, f"A comment of at most {MAX_COMMENT} characters, please; "
                                    "nothing was saved.", typed)
        folder = graded[n - 1].folder
        try:
            # Blocking work (SQLite, rendering) off the event loop: other tutors' pages keep coming.
            saved = await run_in_threadpool(save_score, self.out, folder, qid, typed["points"],
                                            typed["comment"], self.tutor, int(typed["version"]))
        except ScoreConflict as exc:
            return self.answer_page(request, qid, n, 409, str(exc), typed, version=exc.version)
        except ScoreRefused as exc:
            return self.answer_page(request, qid, n, 400, f"Not saved: {exc}", typed)
        self.results[folder] = saved.result
        if n < len(graded):
            return RedirectResponse(f"/q/{qid}/{n + 1}?saved={n}", 303)
        following = self.neighbour(qid, 1)  # the question's last answer: on to the next question
        if following is not None:
            return RedirectResponse(f"/q/{following}?after={qid}", 303)
        return RedirectResponse("/?notice=done", 303)

    @posted
    async def keep_comment(self, request: Request, form: dict[str, str]) -> Response:
        """Keep the comment typed in the scoring form for reuse on this question."""
        qid = request.path_params["qid"]
        missing = self.question_or_404(qid)
        if missing:
            return missing
        n = number_in(form.get("back", ""), 1, len(self.graded())) or 1
        typed = {k: form.get(k, "") for k in ("points", "comment")}
        text = typed["comment"].replace("\r\n", "\n").strip()
        if not text or len(text) > MAX_COMMENT:
            return self.answer_page(request, qid, n, 400, f"Type a comment of 1 to {MAX_COMMENT} characters first, "
                                    "then keep it for reuse.", typed)
        with self.out.gradebook() as book:
            book.keep_comment(qid, text, self.tutor, time.time())
        return self.answer_page(request, qid, n, 200, "", typed)

    @posted
    async def edit_comment(self, request: Request, form: dict[str, str]) -> Response:
        """Change a kept comment's text; an empty text drops it."""
        qid, cid = request.path_params["qid"], request.path_params["cid"]
        missing = self.question_or_404(qid)
        if missing:
            return missing
        n = number_in(form.get("back", ""), 1, len(self.graded())) or 1
        text = form.get("text", "").replace("\r\n", "\n").strip()
        if len(text) > MAX_COMMENT:
            return self.answer_page(request, qid, n, 400, f"A kept comment of at most {MAX_COMMENT} characters, "
                                    "please.")
        with self.out.gradebook() as book:
            if not book.edit_comment(qid, cid, text, self.tutor, time.time()):
                return self.answer_page(request, qid, n, 404, "That kept comment is gone (another tutor dropped it).")
        return RedirectResponse(f"/q/{qid}/{n}", 303)
