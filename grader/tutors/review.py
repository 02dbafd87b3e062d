"""Review pages and the scoring sheet for the tutors (``grade review``).

Per written question one HTML page shows every group's answer side by side: the answer as the
student wrote it (sanitised), its words and sentences, the rule flags, the reference concepts it
names and misses, the tutor's score so far, and a *suggested* score: the question's points times
the share of the concepts named, rounded to a quarter point. The suggestion only helps to read
quickly; it is never awarded (only a tutor's points in the sheet are). The model answer of
``reference/answers.toml`` heads the page.

The scoring sheet (CSV) has a row per submission and question with the columns ``folder``,
``submission``, ``question``, ``max_points``, ``suggested``, ``points``, ``comment``. ``points``
and ``comment`` are empty, or hold the tutor's score where one was imported already (so a sheet
written again and imported again changes nothing). Only graded submissions are listed: a
rejected one or one that could not be graded has 0 points. ``--question`` and ``--group`` split the
work; each split writes its own sheet (``scores_<question>_<pseudonym>.csv``).

Blind by default (grader/tutors/privacy.py): the pages, the index and the sheet name each group by its
pseudonym only (``Group K7F-2QM``, also in the sheet's ``folder`` column; its ``submission``
column is empty), answers and flags have the group's names, ids and e-mails replaced, and no
page links to a folder (whose name holds the students' names). ``grade scores`` maps the
pseudonyms back. ``reveal`` (``--reveal GROUP --reason TEXT``) shows the named groups with their
file name and members, after recording each reveal (tutor, time, group, reason) in the gradebook.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.errors import UsageError
from grader.folder.grades import SHEET_COLUMNS, safe_csv
from grader.folder.outdir import OutDir, write_atomic
from grader.result import Flag, QuestionResult, SubmissionResult
from grader.written.concepts import suggested_score, suggestion_for

__all__ = ["ReviewOutcome", "refresh_review_index", "review_index_context", "suggested_score", "suggestion_for",
           "suggestion_of", "write_review"]


@dataclass
class ReviewOutcome:
    pages: list[Path] = field(default_factory=list)
    sheet: Path | None = None
    index: Path | None = None
    rows: int = 0


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def suggestion_of(q: QuestionResult, flags: Iterable[Flag]) -> float | None:
    """The suggested score of one written answer (typed; as grader/written/concepts.py's
    ``suggestion_for`` gives it from the JSON): 0 for a missing answer, else the question's points
    times the share of the concepts named, rounded to a quarter point."""
    if any(f.code == "answer.missing" for f in flags):
        return 0.0
    found = len(q.answer.concepts_found) if q.answer is not None else 0
    missing = len(q.answer.concepts_missing) if q.answer is not None else 0
    return suggested_score(q.max_points, found, found + missing)


@dataclass(frozen=True)
class Shown:
    """A result as the review shows it: ``view`` the JSON the templates draw (blind unless
    revealed), ``result`` the same read typed, ``folder`` the real folder (never shown)."""

    view: dict[str, Any]
    result: SubmissionResult
    folder: str

    @property
    def label(self) -> str:
        return str(self.view["pseudonym"])


def review_index_context(shown: Sequence[Shown], written: Iterable[str], pages: Iterable[str] = ()) -> dict[str, Any]:
    """What the review index shows: per written question, of the graded submissions, how many a
    tutor has scored and how many are still to score; ``pages`` are the questions whose page exists."""
    graded = [s.result for s in shown if s.result.status == "graded"]
    have = set(pages)
    rows = []
    for qid in written:
        first = shown[0].result.questions[qid] if shown else None
        scored = sum(1 for r in graded if r.questions[qid].status == "manual")
        rows.append({"id": qid, "title": first.title if first else "", "max_points": first.max_points if first else 0.0,
                     "scored": scored, "to_score": len(graded) - scored, "page": qid in have})
    return {"questions": rows, "graded": len(graded),
            "skipped": [s.view for s in shown if s.result.status != "graded"]}


def _blind_all(results: Sequence[SubmissionResult], labels: Mapping[str, str],
               revealed: Iterable[str] = ()) -> list[Shown]:
    from grader.tutors.privacy import blind_view
    opened = set(revealed)
    out = []
    for r in results:
        data, label = r.to_json(), labels[r.folder]
        view = {**data, "pseudonym": label} if r.folder in opened else blind_view(data, label)
        out.append(Shown(view, SubmissionResult.from_json(view), r.folder))
    return out


def refresh_review_index(out: OutDir, results: Sequence[SubmissionResult]) -> bool:
    """Rewrite ``review/index.html`` from ``results`` where `grade review` made one (after an
    import the progress changes); the pages and the sheet, which a tutor may be filling in, are
    left alone. True if the index changed."""
    from grader.pages.report import render_review_index
    index = out.path("review", "index.html")
    if not index.exists() or not results:
        return False
    from grader.checks.secret import load_secret
    from grader.tutors.privacy import pseudonyms
    labels = pseudonyms(load_secret(create=False), [r.folder for r in results])
    written = [qid for qid, q in results[0].questions.items() if q.written]
    existing = [qid for qid in written if out.path("review", f"{qid}.html").exists()]
    html = render_review_index({**review_index_context(_blind_all(results, labels), written, existing), "blind": True})
    return out.write_if_changed(("review", "index.html"), html)


def _entry(s: Shown, qid: str) -> tuple[dict[str, Any], list[str]]:
    """One answer on a question's page, and its row of the scoring sheet."""
    from grader.pages.report import render_markdown
    from grader.tutors.privacy import slug
    q = s.result.questions[qid]
    flags = [f for f in s.result.flags if f.question == qid]
    suggestion = suggestion_of(q, flags)
    manual = q.status == "manual"
    revealed = not s.view.get("blind")
    answer = q.answer
    entry = {"r": s.view, "q": q.to_json(), "flags": [f.to_json() for f in flags], "suggested": suggestion,
             "manual": manual, "label": s.label, "anchor": slug(s.label), "revealed": revealed,
             "html": render_markdown(answer.markdown, answer.attachments)
             if answer is not None and answer.markdown.strip() else None}
    row = [s.label, s.result.submission if revealed else "", qid, _fmt(q.max_points), _fmt(suggestion),
           _fmt(round(q.points, 4)) if manual else "", q.comment if manual else ""]
    return entry, row


def _reveal_first(out: OutDir, revealed: Sequence[str], reason: str, tutor: str | None, key: bytes) -> None:
    """Record every reveal before anything is written; refused without a reason and a tutor."""
    from grader.tutors.privacy import reveal as record_reveal
    if not revealed:
        return
    if not reason.strip():
        raise UsageError("--reveal needs --reason TEXT: every reveal is recorded with your name, the time and why")
    if not tutor:
        raise UsageError("--reveal needs the tutor's name (--tutor NAME): every reveal is recorded with it")
    for folder in revealed:
        record_reveal(out, folder, tutor, reason, key)


def write_review(out_dir: Path, questions: Iterable[str] = (), groups: Iterable[str] = (),
                 to: Path | None = None, reveal: Iterable[str] = (), reason: str = "",
                 tutor: str | None = None, secret: bytes | None = None) -> ReviewOutcome:
    """Write the review pages, their index and the scoring sheet of the output folder ``out_dir``
    into ``to`` (default: its ``review/``). ``groups`` and ``reveal`` name groups by
    pseudonym (or folder); ``reveal`` needs a ``reason`` and is recorded before anything is written."""
    from grader.checks.secret import load_secret
    from grader.pages.report import render_markdown, render_review_index, render_review_page
    from grader.tutors.privacy import pseudonyms, resolve_group, slug
    from grader.written.concepts import model_answers
    out = OutDir(out_dir)
    typed = out.results()  # names every unreadable result.json instead of leaving a group out
    key = secret if secret is not None else load_secret(create=False)
    labels = pseudonyms(key, [r.folder for r in typed])
    wanted_g = [resolve_group(g, labels) for g in dict.fromkeys(groups)]
    revealed = [resolve_group(g, labels) for g in dict.fromkeys(reveal)]
    _reveal_first(out, revealed, reason, tutor, key)
    shown = _blind_all(typed, labels, revealed)
    written = [qid for qid, q in typed[0].questions.items() if q.written]
    wanted_q = list(dict.fromkeys(questions))
    unknown_q = [q for q in wanted_q if q not in written]
    if unknown_q:
        raise UsageError(f"unknown written question(s) {', '.join(unknown_q)}; the written questions are "
                         f"{', '.join(written)}")
    qids = wanted_q or written
    chosen = [s for s in shown if not wanted_g or s.folder in wanted_g]
    skipped = [s.view for s in chosen if s.result.status != "graded"]
    chosen = [s for s in chosen if s.result.status == "graded"]
    target = to or out.path("review")
    outcome = ReviewOutcome()
    models = model_answers()
    sheet_rows: list[list[str]] = [list(SHEET_COLUMNS)]
    for qid in qids:
        entries = []
        for s in chosen:
            entry, row = _entry(s, qid)
            entries.append(entry)
            sheet_rows.append(row)
            outcome.rows += 1
        model = models.get(qid)
        first = shown[0].result.questions[qid]
        html = render_review_page(dict(
            qid=qid, title=first.title, max_points=first.max_points,
            model_html=render_markdown(model.markdown) if model else None,
            concepts=[c.name for c in model.concepts] if model else [],
            entries=entries, skipped=skipped, questions=qids, all_questions=written, blind=True))
        outcome.pages.append(_write(out, target, f"{qid}.html", html, to))
    # The index counts every graded submission, whatever this run's split: it is the tutors' overview.
    existing = [qid for qid in written if (target / f"{qid}.html").exists()]
    outcome.index = _write(out, target, "index.html", render_review_index(
        {**review_index_context(shown, written, existing), "blind": True}), to)
    suffix = "_".join([*wanted_q, *(slug(labels[g]) for g in wanted_g)])
    # Neutralised for spreadsheets; grade scores restores the exact text (grader/folder/grades.py).
    outcome.sheet = _write(out, target, f"scores_{suffix}.csv" if suffix else "scores.csv", safe_csv(sheet_rows), to)
    return outcome


def _write(out: OutDir, target: Path, name: str, text: str, to: Path | None) -> Path:
    """``text`` as ``target/name``: through the output folder's door where ``target`` is its
    ``review/`` (the default), else into the folder the tutor chose (``--to``)."""
    if to is None:
        return out.write(("review", name), text)
    write_atomic(target / name, text)
    return target / name
