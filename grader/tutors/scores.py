"""Tutors' scores for the written answers: import a scoring sheet into the gradebook and render
every output of the folder again with them. Also what ``grade serve`` saves one at a time: a
written answer's score (:func:`save_score`) and an automatic question's points set by hand with a
required reason (:func:`save_override`); :func:`apply_manual` applies both, to every render and
every re-grade (:func:`tutor_scores` reads them from the gradebook). The outcomes of the group's
regrade requests (grader/tutors/regrades.py) go into its result the same way
(:func:`regrade_outcomes`, :func:`apply_regrades`), so its report shows them.

The sheet (written by ``grade review``) is read and checked whole by grader/tutors/sheet.py
(:func:`read_sheet`); every problem is reported with its row number and nothing is imported while
one remains.

Order of work, so that a crash can never leave the folder half done: every new result and report
is computed in memory first (a report that cannot be drawn becomes a short page saying so), then
the scores go into the gradebook in one transaction, then the files are written (atomically, only
where they change). The gradebook is the truth: ``sync_outputs`` (run by every ``grade scores``
and every ``grade`` re-run) applies its scores to every result again, so files a crash left stale
are repaired by the next run, and importing the same sheet twice changes nothing.
"""
from __future__ import annotations

import fcntl
import getpass
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grader.errors import ScoreConflict, ScoreRefused, SheetError, UsageError
from grader.folder.gradebook import Gradebook
from grader.folder.grades import SHEET_COLUMNS, is_written
from grader.folder.outdir import OutDir
from grader.result import SubmissionResult
from grader.rubric import load_rubric
from grader.tutors.review import refresh_review_index
from grader.tutors.sheet import MAX_SHEET_MB, Score, check_score, parse_points, parse_sheet, read_sheet

__all__ = ["MAX_SHEET_MB", "SHEET_COLUMNS", "Score", "ScoreConflict", "ScoreRefused", "SheetError", "apply_manual",
           "apply_regrades", "check_override", "check_reason", "check_score", "import_sheet",
           "is_written", "parse_sheet", "read_sheet", "regrade_outcomes", "render_folder", "save_override",
           "save_score", "sync_outputs", "tutor_scores"]


# -- applying scores to a result --------------------------------------------------------------
def tutor_scores(book: Gradebook, folder: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """What tutors decided, per folder and question, for :func:`apply_manual`: the written
    answers' scores and the overridden automatic points (``override: True``, the reason as
    ``comment``)."""
    out = book.manual_scores(folder)
    for f, questions in book.overrides(folder).items():
        for qid, o in questions.items():
            out.setdefault(f, {})[qid] = {"points": o["points"], "comment": o["reason"], "tutor": o["tutor"],
                                          "scored_at": o["set_at"], "override": True}
    return out


def _day(at: float | None) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(at)) if at else ""


def regrade_outcomes(book: Gradebook, folder: str | None = None) -> dict[str, tuple[dict[str, Any], ...]]:
    """``folder -> `` its regrade requests as the students' report shows them, oldest first: the
    question, the day it was asked (``requested``), the ``outcome`` (open, upheld, declined) and,
    once resolved, the day (``decided``), the ``reason`` and, where upheld, the points before and
    after. Never the request's words, who recorded or resolved it, or the replay: those are the
    tutors'."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in book.regrade_requests(folder):
        entry: dict[str, Any] = {"question": row["question"], "requested": _day(row["requested_at"]),
                                 "outcome": row["outcome"]}
        if row["outcome"] != "open":
            entry.update(decided=_day(row["resolved_at"]), reason=row["reason"])
        if row["outcome"] == "upheld":
            entry.update(old_points=row["old_points"], new_points=row["new_points"])
        out.setdefault(row["folder"], []).append(entry)
    return {f: tuple(entries) for f, entries in out.items()}


def apply_regrades(result: SubmissionResult, outcomes: tuple[dict[str, Any], ...] | None) -> SubmissionResult:
    """``result`` with its group's regrade requests as :func:`regrade_outcomes` gives them. Idempotent."""
    wanted = tuple(outcomes or ())
    return result if tuple(result.regrades) == wanted else replace(result, regrades=wanted)


def apply_manual(result: SubmissionResult, manual: Mapping[str, Mapping[str, Any]]) -> SubmissionResult:
    """``result`` with the tutors' scores of its folder: a written answer's (status ``manual``)
    and an automatic question's overridden points (status stays ``auto``; ``auto_points`` keeps
    what the checks gave, ``comment`` the reason); the total follows. Idempotent."""
    out = result
    for qid, score in manual.items():
        q = out.questions.get(qid)
        if q is None:
            continue
        if score.get("override"):
            if q.written or result.status != "graded":
                continue
            auto = q.auto_points if q.auto_points is not None else q.points
            out = out.with_question(replace(q, points=round(float(score["points"]), 4), auto_points=auto,
                                            scored_by=str(score["tutor"]), comment=str(score.get("comment") or "")))
            continue
        if not q.written:
            continue
        out = out.with_question(replace(q, points=round(float(score["points"]), 4), status="manual",
                                        scored_by=str(score["tutor"]), comment=str(score.get("comment") or "")))
    return out


def sync_outputs(out: OutDir, rubric_path: str | None = None) -> list[str]:
    """Apply the gradebook's manual scores to every result of ``out`` and write again what
    changed, then ``grades.csv`` and ``summary.html``. Returns the folders rewritten."""
    rubric = load_rubric(rubric_path)
    with render_lock(out):  # the scores read below are the ones written, not a stale copy (grade serve)
        results = out.results()
        with out.gradebook() as book:
            manual = tutor_scores(book)
            regrades = regrade_outcomes(book)
        final = [apply_regrades(apply_manual(r, manual.get(r.folder, {})), regrades.get(r.folder)) for r in results]
        return _write_all(out, final, rubric_path, rubric)


def _write_all(out: OutDir, final: list[SubmissionResult], rubric_path: str | None, rubric: Any = None) -> list[str]:
    rubric = rubric or load_rubric(rubric_path)
    rewritten = [r.folder for r in final if out.write_submission(r, redraw=True)]
    note = next((r.sandbox_note for r in final if r.sandbox_note), "")
    out.write_batch(final, rubric, note)
    refresh_review_index(out, final)  # the review index's progress
    return rewritten


# -- the sheet (grader/tutors/sheet.py reads it) ----------------------------------------------
@dataclass
class ImportOutcome:
    scores: int                      # rows with points
    changed: list[Score] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)


def import_sheet(sheet: Path, out: OutDir, tutor: str | None = None,
                 rubric_path: str | None = None) -> ImportOutcome:
    """Check ``sheet``, compute every new result and report, store the scores (all or nothing),
    then write what changed; see the module docstring for why in this order."""
    rubric = load_rubric(rubric_path)
    results = out.results()
    from grader.checks.secret import load_secret
    from grader.tutors.privacy import pseudonyms
    labels = pseudonyms(load_secret(create=False), [r.folder for r in results])
    scores = read_sheet(sheet, results, {label: folder for folder, label in labels.items()})
    who = tutor or default_tutor()
    now = time.time()
    outcome = ImportOutcome(len(scores))
    with out.gradebook() as book:
        manual = tutor_scores(book)
        for s in scores:  # what the gradebook will hold once the sheet is in (unchanged: as it was)
            old = manual.get(s.folder, {}).get(s.question)
            if old is None or float(old["points"]) != s.points or old["comment"] != s.comment:
                manual.setdefault(s.folder, {})[s.question] = {"points": s.points, "comment": s.comment,
                                                               "tutor": who}
        final = [apply_manual(r, manual.get(r.folder, {})) for r in results]
        for r in final:
            r.to_json()  # every result must serialise before anything is stored
        with book.transaction():
            for s in scores:
                if book.set_manual_score(s.folder, s.question, s.submission, s.points, s.comment, who,
                                         sheet.name, now):
                    outcome.changed.append(s)
    # Stored: from here on the gradebook is the truth, and a crash is repaired by sync_outputs.
    with render_lock(out):  # from what is stored now: a score saved in `grade serve` meanwhile is kept
        with out.gradebook() as book:
            manual = tutor_scores(book)
            regrades = regrade_outcomes(book)
        final = [apply_regrades(apply_manual(r, manual.get(r.folder, {})), regrades.get(r.folder)) for r in results]
        outcome.rewritten = _write_all(out, final, rubric_path, rubric)
    return outcome


def default_tutor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (e.g. a container): still record something
        return "unknown"


def confirm_members(out: OutDir, folder: str, student_ids: tuple[str, ...] | list[str],
                    tutor: str | None = None, rubric_path: str | None = None,
                    now: float | None = None) -> list[str]:
    """Confirm members of ``folder``'s group whom its file name does not name (so ``grades.csv``
    gives them the group's points); stored in the gradebook, so it survives re-runs. Returns the
    ids confirmed now (not before). Every id must be one of the group cell's."""
    results = {r.folder: r for r in out.results()}
    result = results.get(folder)
    if result is None:
        raise UsageError(f"no submission folder '{folder}' in {out}; the folders are "
                         f"{', '.join(sorted(results)) or 'none'}")
    ids = [str(m.get("student_id", "")) for m in result.group]
    unknown = [s for s in student_ids if s not in ids]
    if unknown:
        raise UsageError(f"{', '.join(unknown)} is not in the group cell of '{result.submission}'; "
                         f"its ids are {', '.join(ids) or 'none (no group cell)'}")
    who = tutor or default_tutor()
    with out.gradebook() as book:
        with book.transaction():
            done = [s for s in dict.fromkeys(student_ids) if book.confirm_member(folder, s, who, now or time.time())]
    sync_outputs(out, rubric_path)
    return done


# -- one score at a time (grade serve) ------------------------------------------------------------


@dataclass(frozen=True)
class SavedScore:
    changed: bool
    version: int
    points: float
    comment: str
    tutor: str
    result: SubmissionResult   # the submission's result as written again


@contextmanager
def render_lock(out: OutDir) -> Iterator[None]:
    """One writer of results at a time, across processes: whoever renders reads the scores after
    taking the lock, so the last file written always holds every committed score."""
    with open(out.path("gradebook.render-lock"), "a+b") as handle:  # the door: no link followed
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def score_version(book: Gradebook, folder: str, question: str) -> int:
    """The id of the latest change of this answer's score (0: never scored): a form's version."""
    last = book.latest_change(folder, question)
    return int(last["id"]) if last else 0


def save_score(out: OutDir, folder: str, question: str, raw_points: str, comment: str,
               tutor: str, based_on: int | None, source: str = "grade serve") -> SavedScore:
    """Check one score as a sheet row is checked, store it with its history in one short
    transaction, and write the submission's result.json and pages again.

    ``based_on`` is the version the tutor's form showed; if the answer was scored since (by
    another tutor, a sheet, another tab), :class:`ScoreConflict` says by whom and when, unless
    the stored score already equals this one."""
    result = out.read_result(folder)
    points, problem = check_score(result, question, raw_points, comment)
    if problem is None and points is None:
        problem = f"enter the points for {question} (0 to {float(result.questions[question].max_points):g})"
    if problem is not None or points is None:
        raise ScoreRefused(problem or "no points")
    comment = comment.replace("\r\n", "\n").replace("\r", "\n").strip()  # browsers send CRLF
    with out.gradebook() as book:
        with book.transaction():
            current = score_version(book, folder, question)
            if based_on is not None and current != based_on and _changed_by_others(book, folder, question,
                                                                                    based_on, tutor):
                now_stored = book.manual_scores(folder).get(folder, {}).get(question)
                if not (now_stored and float(now_stored["points"]) == points and now_stored["comment"] == comment):
                    last = book.latest_change(folder, question) or {}
                    raise ScoreConflict(folder, question,
                                        {"tutor": last.get("tutor"), "changed_at": last.get("changed_at"),
                                         "new_points": last.get("new_points")}, current)
            changed = book.set_manual_score(folder, question, result.submission, points, comment, tutor,
                                            source, time.time())
            version = score_version(book, folder, question)
    return SavedScore(changed, version, points, comment, tutor, render_folder(out, folder))


def _changed_by_others(book: Gradebook, folder: str, question: str, since: int, tutor: str) -> bool:
    """Whether anyone but ``tutor`` changed this answer's score after version ``since``: one's own
    save (a second Enter, a second tab) is no conflict with oneself."""
    return book.changed_by_others(folder, question, since, tutor)


MAX_REASON = 2000


def save_override(out: OutDir, folder: str, question: str, raw_points: str, reason: str,
                  tutor: str) -> SavedScore:
    """Set the points of an automatic question by hand: 0 to its maximum, with a reason (required;
    the students read it in their report). Stored with the tutor and the time in
    ``point_overrides`` and ``score_history``; every later render and re-grade applies it again."""
    result = out.read_result(folder)
    points, reason = check_override(result, question, raw_points, reason)
    with out.gradebook() as book:
        with book.transaction():
            changed = book.set_override(folder, question, result.submission, points, reason, tutor, time.time())
            version = score_version(book, folder, question)
    return SavedScore(changed, version, points, reason, tutor, render_folder(out, folder))


def check_reason(reason: str) -> str:
    """A reason the students read (an override's, a regrade request's resolution): required, at
    most :data:`MAX_REASON` characters, line breaks as ``\n``; else :class:`ScoreRefused`."""
    reason = reason.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not reason:
        raise ScoreRefused("give a reason: the students read it beside the new points")
    if len(reason) > MAX_REASON:
        raise ScoreRefused(f"a reason of at most {MAX_REASON} characters, please")
    return reason


def check_override(result: SubmissionResult, question: str, raw_points: str, reason: str) -> tuple[float, str]:
    """The checks of an automatic question's points set by hand: ``(points, reason)``, else
    :class:`ScoreRefused` saying what is wrong."""
    q = result.questions.get(question)
    if q is None or q.written:
        raise ScoreRefused(f"{question} is not an automatic question; written answers are scored as usual")
    if result.status != "graded":
        raise ScoreRefused(f"'{result.submission}' was not graded (status {result.status}); it gets 0 points")
    reason = check_reason(reason)
    points = parse_points(raw_points)
    if points is None or points < 0 or points > float(q.max_points) + 1e-9:
        raise ScoreRefused(f"points for {question}: a number from 0 to {float(q.max_points):g}")
    return points, reason


def render_folder(out: OutDir, folder: str) -> SubmissionResult:
    """Apply the stored scores to one submission's result.json and pages; the new result."""
    with render_lock(out):
        with out.gradebook() as book:
            manual = tutor_scores(book, folder).get(folder, {})
            regrades = regrade_outcomes(book, folder).get(folder)
        new = apply_regrades(apply_manual(out.read_result(folder), manual), regrades)
        out.write_submission(new, redraw=True)
    return new
