"""What one ``grade serve`` holds while it runs (grader/tutors/serve.py): decided once at start,
shared by every route.

:class:`ServeState` is made once per server: the output folder (one :class:`~grader.folder.outdir.OutDir`,
the only door to it), the tutor every save is recorded as (the server's to say; nothing a browser
sends changes it), the token's :class:`~grader.tutors.serve_guard.Keys`, the course secret (the
groups' pseudonyms), the rubric's time budget for replays, the written questions' prompts, and
the folder's results, typed (:class:`~grader.result.SubmissionResult`, read again by
:meth:`ServeState.reload` when a page shows the folder as it is now).

What a tutor scores from is a *view* (:meth:`ServeState.view`): blind (the pseudonym; no name, id,
e-mail or file name; grader/tutors/privacy.py's ``blind_view``) unless this tutor revealed the
group with a recorded reason. A view is the JSON the ``serve/`` templates draw; the server itself
reads it typed (:meth:`ServeState.shown`). A group's address is a key derived from the token
(:meth:`ServeState.report_key`), and a key is only ever compared with the folders the app listed
itself (:meth:`ServeState.folder_of`): no text from a URL becomes a path.
"""
from __future__ import annotations

import secrets
import subprocess
import threading
from pathlib import Path
from typing import Any

from starlette.responses import Response

from grader.folder.outdir import OutDir
from grader.result import SubmissionResult
from grader.tutors.serve_guard import Keys, page

MAX_COMMENT = 4000


class ServeState:
    """The state of one server; see the module docstring."""

    def __init__(self, out_dir: Path, tutor: str, token: str | None = None, rubric_path: str | None = None,
                 submissions: Path | None = None) -> None:
        from grader.checks.secret import load_secret
        from grader.rubric import load_rubric
        self.out_dir = out_dir
        self.out = OutDir(out_dir)
        self.tutor = tutor
        self.keys = Keys(token or secrets.token_urlsafe(32))
        self.secret = load_secret(create=False)  # the groups' pseudonyms (grader/tutors/privacy.py)
        self.submissions = submissions   # where the submitted files are, for replays (--submissions)
        self.rubric_path = rubric_path
        self.results: dict[str, SubmissionResult] = {}   # folder -> result, latest run's order
        self.written: list[str] = []
        self.labels: dict[str, str] = {}   # folder -> pseudonym
        self.revealed: set[str] = set()    # folders this tutor asked to see, recorded
        self.published = 0   # reports rendered again by the last "write the batch files"
        self.replaying: dict[int, float] = {}   # request id -> when its replay started
        self.replay_failed: dict[int, str] = {}  # request id -> why no outcome was kept
        self.replay_lock = threading.Lock()
        self.replay_process: subprocess.Popen[bytes] | None = None   # the replay running now
        self.reload()  # refuses a folder without results first
        self.prompts = prompts()
        self.budget = load_rubric(rubric_path).budget.seconds

    @property
    def token(self) -> str:
        return self.keys.token

    @property
    def cookie_name(self) -> str:
        return self.keys.cookie_name

    def derived(self, purpose: str) -> str:
        return self.keys.derived(purpose)

    def reload(self) -> None:
        from grader.tutors.privacy import pseudonyms
        results = self.out.results()
        self.results = {r.folder: r for r in results}
        self.labels = pseudonyms(self.secret, list(self.results))
        first = next((r for r in results if r.status == "graded"), results[0])
        self.written = [qid for qid, q in first.questions.items() if q.written]

    def view(self, folder: str) -> dict[str, Any]:
        """A result as the tutor scores from it, as the templates draw it: blind (the pseudonym, no
        name, id, e-mail or file name; grader/tutors/privacy.py's blind_view) unless this tutor
        revealed the group, with a reason that is recorded; then the result with its pseudonym
        beside the names."""
        from grader.tutors.privacy import blind_cells, blind_view
        r, label = self.results[folder], self.labels.get(folder, "Group ?")
        data = r.to_json()
        if folder in self.revealed:
            return {**data, "pseudonym": label, "submission": f"{label} ({r.submission})", "blind": False}
        return {**blind_view(data, label), "cells": blind_cells(data)}  # the code beside an answer, names hidden

    def shown(self, view: dict[str, Any]) -> SubmissionResult:
        """A view (:meth:`view`) read as a result: what the tutor sees, typed."""
        return SubmissionResult.from_json(view)

    def report_key(self, folder: str) -> str:
        """A group's address: keyed by this server's token, so no name (with its '%', '#', '?' or
        '..') is ever read back from a URL and turned into a path, and no address names a group."""
        return self.derived("group:" + folder)[:20]

    def folder_of(self, key: str) -> str | None:
        """Only a folder the app listed itself, found by its digest; a URL never becomes a path."""
        return next((f for f in self.results if self.report_key(f) == key), None)

    def graded(self) -> list[SubmissionResult]:
        return [r for r in self.results.values() if r.status == "graded"]

    def common(self) -> dict[str, Any]:
        """What every page's frame shows."""
        return {"csrf": self.derived("csrf"), "tutor": self.tutor, "questions": self.written}

    def missing(self, title: str, message: str) -> Response:
        """A 404 page saying what is not there (never echoing the address)."""
        return page("message.html.j2", 404, title=title, message=message, **self.common())


def prompts() -> dict[str, Any]:
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
