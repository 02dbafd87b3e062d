"""Tutors' scores for the written answers: import a scoring sheet into the gradebook and render
every output of the folder again with them. Also what ``grade serve`` saves one at a time: a
written answer's score (:func:`save_score`) and an automatic question's points set by hand with a
required reason (:func:`save_override`); :func:`apply_manual` applies both, to every render and
every re-grade (:func:`tutor_scores` reads them from the gradebook). The outcomes of the group's
regrade requests (grader/tutors/regrades.py) go into its result the same way
(:func:`regrade_outcomes`, :func:`apply_regrades`), so its report shows them.

The sheet (written by ``grade review``) has a row per submission and question with the columns
``folder``, ``submission``, ``question``, ``max_points``, ``suggested``, ``points``, ``comment``.
Rows whose ``points`` cell is empty are skipped. The whole file is parsed by the csv module (its
dialect sniffed from the whole sample), so sheets saved by Excel (``;``, UTF-8 BOM, CRLF, ``,``
decimals), LibreOffice and Python round-trip exactly: a comment with quotes, separators, line
breaks or a leading ``=`` arrives as the tutor wrote it. The whole sheet is checked before
anything is stored; every problem is reported with its row number (the header is row 1, as a
spreadsheet shows it; a row holding a line break counts as one row) and nothing is imported while
one remains.

Order of work, so that a crash can never leave the folder half done: every new result and report
is computed in memory first (a report that cannot be drawn becomes a short page saying so), then
the scores go into the gradebook in one transaction, then the files are written (atomically, only
where they change). The gradebook is the truth: ``sync_outputs`` (run by every ``grade scores``
and every ``grade`` re-run) applies its scores to every result again, so files a crash left stale
are repaired by the next run, and importing the same sheet twice changes nothing.
"""
from __future__ import annotations

import csv
import fcntl
import getpass
import io
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grader.errors import ScoreConflict, ScoreRefused, SheetError, UsageError
from grader.folder.gradebook import Gradebook
from grader.folder.grades import SHEET_COLUMNS, is_written, restore
from grader.folder.outdir import GRADEBOOK, OutDir
from grader.result import SubmissionResult
from grader.rubric import load_rubric
from grader.tutors.review import refresh_review_index

MAX_SHEET_MB = 50  # a scoring sheet is a few hundred rows; a larger file is a mistake, not work

__all__ = ["SHEET_COLUMNS", "SheetError", "apply_manual", "apply_regrades", "check_override", "gradebook_path",
           "import_sheet", "is_written", "read_sheet", "regrade_outcomes", "save_override",
           "save_score", "sync_outputs", "tutor_scores"]


def gradebook_path(out_dir: Path | OutDir) -> Path:
    out = out_dir if isinstance(out_dir, OutDir) else OutDir(out_dir)
    return out.path(GRADEBOOK)


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


def sync_outputs(out_dir: Path | OutDir, rubric_path: str | None = None) -> list[str]:
    """Apply the gradebook's manual scores to every result of ``out_dir`` and write again what
    changed, then ``grades.csv`` and ``summary.html``. Returns the folders rewritten."""
    out = out_dir if isinstance(out_dir, OutDir) else OutDir(out_dir)
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
    refresh_review_index(out, [r.to_json() for r in final])  # the review index's progress
    return rewritten


# -- the sheet --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Score:
    row: int
    folder: str
    submission: str
    question: str
    points: float
    comment: str


@dataclass
class ImportOutcome:
    scores: int                      # rows with points
    changed: list[Score] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)


def _number(text: str) -> float | None:
    raw = text.strip()
    if "," in raw and "." not in raw:
        raw = raw.replace(",", ".")  # 0,5 as a German spreadsheet writes it
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_sheet(sheet: Path, what: str = "the scoring sheet",
                needed: frozenset[str] = frozenset({"question", "points"}),
                hint: str = "give the sheet `grade review` wrote") -> list[list[str]]:
    """Every row of ``sheet`` as the csv module reads the whole file: UTF-8 (a BOM is dropped),
    the dialect (``,``, ``;`` or TAB; the quoting) sniffed from the whole sample, line breaks
    inside quoted cells kept, cells as written. ``what`` names the file in errors; where the
    sniffed dialect does not give a header with the ``needed`` columns, another delimiter may."""
    try:
        if sheet.stat().st_size > MAX_SHEET_MB * 1024 * 1024:
            raise UsageError(f"{what} {sheet} is larger than {MAX_SHEET_MB} MB; {hint}")
        text = sheet.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read {what} {sheet}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{what} {sheet} is not UTF-8 text; save it as "
                         "\"CSV UTF-8\" in your spreadsheet and import it again") from None
    candidates: list[Any] = []
    try:
        sniffed: Any = csv.Sniffer().sniff(text[:200_000], delimiters=",;\t")
        sniffed.doublequote = True  # spreadsheets double a quote inside a cell; never a backslash
        sniffed.escapechar = None
        sniffed.quotechar = '"'
        sniffed.skipinitialspace = False  # a comment's leading space is the tutor's
        candidates.append(sniffed)
    except csv.Error:
        pass
    for delimiter in (",", ";", "\t"):  # where the sniffer guessed wrong, the header decides
        candidates.append(type("Sheet", (csv.excel,), {"delimiter": delimiter}))
    first: list[list[str]] | None = None
    for dialect in candidates:
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), dialect))
        except csv.Error:
            continue
        first = rows if first is None else first
        header = {c.strip().lower() for c in rows[0]} if rows else set()
        if needed <= header:
            return rows
    if first is None:
        raise UsageError(f"{what} {sheet} is not valid CSV; save it again as CSV (UTF-8)")
    return first


def check_score(result: SubmissionResult, qid: str, raw_points: str,
                comment: str) -> tuple[float | None, str | None]:
    """The checks of one score, shared by the sheet and ``grade serve``: ``(points, None)``,
    ``(None, problem)``, or ``(None, None)`` where neither points nor a comment are given."""
    questions = result.questions
    if qid not in questions:
        return None, (f"unknown question '{qid}' (the written questions are "
                      f"{', '.join(q for q, v in questions.items() if v.written)})")
    if not questions[qid].written:
        return None, f"question {qid} is graded automatically; the sheet scores only written answers"
    raw_points = raw_points.strip()
    if not raw_points:
        return None, (f"a comment but no points for {qid} of '{result.submission}'" if comment.strip() else None)
    points = _number(raw_points)
    maximum = float(questions[qid].max_points)
    if points is None:
        return None, f"points '{raw_points}' is not a number"
    if points < 0:
        return None, f"points {raw_points} is negative"
    if points > maximum + 1e-9:
        return None, f"points {raw_points} is above the maximum {maximum:g} of {qid}"
    if result.status != "graded":
        return None, (f"'{result.submission}' was not graded (status {result.status}); "
                      "it gets 0 points and cannot be scored")
    return points, None


def read_sheet(sheet: Path, results: list[SubmissionResult],
               aliases: Mapping[str, str] | None = None) -> list[Score]:
    """Every scored row of ``sheet``, checked against ``results``; :class:`SheetError` lists all
    problems at once. ``aliases`` maps the pseudonyms of a blind sheet (grader/tutors/privacy.py) to folders."""
    rows = parse_sheet(sheet)
    reader = iter(rows)
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in ("question", "points") if c not in header]
    if missing or not ({"folder", "submission"} & set(header)):
        need = missing + ([] if {"folder", "submission"} & set(header) else ["folder (or submission)"])
        raise SheetError(str(sheet), [f"row 1 (the header): the column(s) {', '.join(need)} are missing; "
                                      f"the sheet of `grade review` has: {', '.join(SHEET_COLUMNS)}"])
    by_folder = {r.folder: r for r in results}
    by_submission: dict[str, list[SubmissionResult]] = {}
    for r in results:
        by_submission.setdefault(r.submission, []).append(r)
    problems: list[str] = []
    scores: list[Score] = []
    seen: dict[tuple[str, str], int] = {}
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        # The grader's own cells are stripped; the comment is kept exactly as the tutor wrote it
        # (less the apostrophe `grade review` put before a leading = + - @).
        row = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
        if "comment" in header and header.index("comment") < len(cells):
            row["comment"] = restore(cells[header.index("comment")])
        for key in ("folder", "submission"):
            if key in row:
                row[key] = restore(row[key])
        where = f"row {number}"
        folder, submission, qid = row.get("folder", ""), row.get("submission", ""), row.get("question", "")
        result = None
        if folder:
            result = by_folder.get(folder) or by_folder.get((aliases or {}).get(folder, ""))
            if result is None:
                problems.append(f"{where}: unknown submission folder '{folder}' (not in this output folder)")
                continue
            if submission and submission != result.submission:
                problems.append(f"{where}: folder '{folder}' holds '{result.submission}', not '{submission}'")
                continue
        elif submission:
            matches = by_submission.get(submission, [])
            if not matches:
                problems.append(f"{where}: unknown submission '{submission}' (not in this output folder)")
                continue
            if len(matches) > 1:
                problems.append(f"{where}: '{submission}' names several folders; fill in the folder column")
                continue
            result = matches[0]
        else:
            problems.append(f"{where}: neither a folder nor a submission is given")
            continue
        comment = row.get("comment", "")
        points, problem = check_score(result, qid, row.get("points", ""), comment)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        if points is None:
            continue
        scored = (result.folder, qid)
        if scored in seen:
            problems.append(f"{where}: {qid} of '{result.submission}' is scored again (first in row {seen[scored]})")
            continue
        seen[scored] = number
        scores.append(Score(number, result.folder, result.submission, qid, points, comment))
    if problems:
        raise SheetError(str(sheet), problems)
    return scores


def import_sheet(sheet: Path, out_dir: Path | OutDir, tutor: str | None = None,
                 rubric_path: str | None = None) -> ImportOutcome:
    """Check ``sheet``, compute every new result and report, store the scores (all or nothing),
    then write what changed; see the module docstring for why in this order."""
    out = out_dir if isinstance(out_dir, OutDir) else OutDir(out_dir)
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


def confirm_members(out_dir: Path | OutDir, folder: str, student_ids: tuple[str, ...] | list[str],
                    tutor: str | None = None, rubric_path: str | None = None,
                    now: float | None = None) -> list[str]:
    """Confirm members of ``folder``'s group whom its file name does not name (so ``grades.csv``
    gives them the group's points); stored in the gradebook, so it survives re-runs. Returns the
    ids confirmed now (not before). Every id must be one of the group cell's."""
    out = out_dir if isinstance(out_dir, OutDir) else OutDir(out_dir)
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
def render_lock(out_dir: Path | OutDir) -> Iterator[None]:
    """One writer of results at a time, across processes: whoever renders reads the scores after
    taking the lock, so the last file written always holds every committed score."""
    out = out_dir if isinstance(out_dir, OutDir) else OutDir(out_dir)
    with open(out.gradebook_path.with_name("gradebook.render-lock"), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def score_version(book: Gradebook, folder: str, question: str) -> int:
    """The id of the latest change of this answer's score (0: never scored): a form's version."""
    last = book.latest_change(folder, question)
    return int(last["id"]) if last else 0


def save_score(out_dir: Path | OutDir, folder: str, question: str, raw_points: str, comment: str,
               tutor: str, based_on: int | None, source: str = "grade serve") -> SavedScore:
    """Check one score as a sheet row is checked, store it with its history in one short
    transaction, and write the submission's result.json and pages again.

    ``based_on`` is the version the tutor's form showed; if the answer was scored since (by
    another tutor, a sheet, another tab), :class:`ScoreConflict` says by whom and when, unless
    the stored score already equals this one."""
    out = out_dir if isinstance(out_dir, OutDir) else OutDir(out_dir)
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


def save_override(out_dir: Path | OutDir, folder: str, question: str, raw_points: str, reason: str,
                  tutor: str) -> SavedScore:
    """Set the points of an automatic question by hand: 0 to its maximum, with a reason (required;
    the students read it in their report). Stored with the tutor and the time in
    ``point_overrides`` and ``score_history``; every later render and re-grade applies it again."""
    out = out_dir if isinstance(out_dir, OutDir) else OutDir(out_dir)
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
    points = _number(raw_points)
    if points is None or points < 0 or points > float(q.max_points) + 1e-9:
        raise ScoreRefused(f"points for {question}: a number from 0 to {float(q.max_points):g}")
    return points, reason


def render_folder(out_dir: Path | OutDir, folder: str) -> SubmissionResult:
    """Apply the stored scores to one submission's result.json and pages; the new result."""
    out = out_dir if isinstance(out_dir, OutDir) else OutDir(out_dir)
    with render_lock(out):
        with out.gradebook() as book:
            manual = tutor_scores(book, folder).get(folder, {})
            regrades = regrade_outcomes(book, folder).get(folder)
        new = apply_regrades(apply_manual(out.read_result(folder), manual), regrades)
        out.write_submission(new, redraw=True)
    return new
