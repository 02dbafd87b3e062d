"""Tutors' scores for the written answers: import a scoring sheet into the gradebook and render
every output of the folder again with them.

The sheet (written by ``grade review``) has a row per submission and question with the columns
``folder``, ``submission``, ``question``, ``max_points``, ``suggested``, ``points``, ``comment``.
Rows whose ``points`` cell is empty are skipped. The whole sheet is checked before anything is
stored; every problem is reported with its row number (the header is row 1, as a spreadsheet
shows it) and nothing is imported while one remains. The scores go into the gradebook in one
transaction, with the tutor and the time, and every change is kept in ``score_history``. Then each
``result.json`` gets its manual points and comments (status ``manual``) and a new total, the
reports are rendered again from it, and ``grades.csv`` and ``summary.html`` are rewritten. Files
are written (atomically) only where their content changes, so importing the same sheet twice
changes nothing.
"""
from __future__ import annotations

import copy
import csv
import fcntl
import getpass
import io
import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from grader.errors import GraderError, UsageError
from grader.gradebook import Gradebook
from grader.late import recompute_points

SHEET_COLUMNS = ("folder", "submission", "question", "max_points", "suggested", "points", "comment")


class SheetError(GraderError):
    """The scoring sheet has problems; nothing was imported. The message lists every one."""

    def __init__(self, sheet: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{sheet}: nothing was imported; fix these rows and import the sheet again:\n  "
                         + "\n  ".join(problems))


# -- reading an output folder -----------------------------------------------------------------
def gradebook_path(out_dir: Path) -> Path:
    return out_dir / "gradebook.sqlite"


def load_results(out_dir: Path) -> list[dict[str, Any]]:
    """The results of a graded output folder, in the order of its latest grading run."""
    if not out_dir.is_dir():
        raise UsageError(f"'{out_dir}' is not a folder; give the output folder of `grade` with -o")
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(out_dir.glob("*/result.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        data.setdefault("folder", path.parent.name)
        found[path.parent.name] = data
    if not found:
        raise UsageError(f"'{out_dir}' holds no graded submissions (no <folder>/result.json); run `grade` first")
    order: list[str] = []
    if gradebook_path(out_dir).exists():
        with Gradebook(gradebook_path(out_dir)) as book:
            order = [f for f in book.latest_run_folders() if f in found]
    if not order:
        order = sorted(found)
    return [found[f] for f in order]


def is_written(question: Mapping[str, Any]) -> bool:
    return question.get("status") != "auto" and not question.get("checks")


# -- applying scores to a result --------------------------------------------------------------
def apply_manual(data: Mapping[str, Any], manual: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``data`` with the tutor's scores of its folder (a new dict), total recomputed."""
    out = copy.deepcopy(dict(data))
    for qid, score in manual.items():
        q = out["questions"].get(qid)
        if q is None or not is_written(q):
            continue
        q["points"] = round(float(score["points"]), 4)
        q["status"] = "manual"
        q["scored_by"] = score["tutor"]
        if score.get("comment"):
            q["comment"] = score["comment"]
        else:
            q.pop("comment", None)
    return recompute_points(out)


def result_text(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def save_result(out_dir: Path, data: Mapping[str, Any]) -> bool:
    """Write ``result.json`` and the pages rendered from it where they change; True if they did."""
    from grader.batch import write_atomic
    from grader.report import render_pages
    folder = out_dir / data["folder"]
    text = result_text(data)
    changed = False
    for path, content in ((folder / "result.json", text),
                          *((folder / name, html) for name, html in render_pages(data).items())):
        try:
            same = path.read_text(encoding="utf-8") == content
        except OSError:
            same = False
        if not same:
            write_atomic(path, content)
            changed = True
    return changed


def sync_outputs(out_dir: Path, rubric_path: str | None = None) -> list[str]:
    """Apply the gradebook's manual scores to every result of ``out_dir`` and write again what
    changed, then ``grades.csv`` and ``summary.html``. Returns the folders rewritten."""
    from grader.batch import write_outputs
    from grader.rubric import load_rubric
    rubric = load_rubric(rubric_path)
    with render_lock(out_dir):  # the scores read below are written, not a stale copy (grade serve)
        results = load_results(out_dir)
        with Gradebook(gradebook_path(out_dir)) as book:
            manual = book.manual_scores()
        rewritten = []
        final = []
        for data in results:
            new = apply_manual(data, manual.get(data["folder"], {}))
            if save_result(out_dir, new):
                rewritten.append(new["folder"])
            final.append(new)
        note = next((r.get("sandbox", "") for r in final if r.get("sandbox")), "")
        write_outputs(final, out_dir, rubric, note)
        from grader.review import refresh_review_index
        refresh_review_index(out_dir, final)  # the review index's progress (scored / to score)
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


def check_score(result: Mapping[str, Any], qid: str, raw_points: str,
                comment: str) -> tuple[float | None, str | None]:
    """The checks of one score, shared by the sheet and ``grade serve``: ``(points, None)``,
    ``(None, problem)``, or ``(None, None)`` where neither points nor a comment are given."""
    questions = result["questions"]
    if qid not in questions:
        return None, (f"unknown question '{qid}' (the written questions are "
                      f"{', '.join(q for q, v in questions.items() if is_written(v))})")
    if not is_written(questions[qid]):
        return None, f"question {qid} is graded automatically; the sheet scores only written answers"
    raw_points = raw_points.strip()
    if not raw_points:
        return None, (f"a comment but no points for {qid} of '{result['submission']}'" if comment.strip() else None)
    points = _number(raw_points)
    maximum = float(questions[qid].get("max_points", 0.0))
    if points is None:
        return None, f"points '{raw_points}' is not a number"
    if points < 0:
        return None, f"points {raw_points} is negative"
    if points > maximum + 1e-9:
        return None, f"points {raw_points} is above the maximum {maximum:g} of {qid}"
    if result["status"] != "graded":
        return None, (f"'{result['submission']}' was not graded (status {result['status']}); "
                      "it gets 0 points and cannot be scored")
    return points, None


def read_sheet(sheet: Path, results: list[dict[str, Any]]) -> list[Score]:
    """Every scored row of ``sheet``, checked against ``results``; :class:`SheetError` lists all
    problems at once."""
    try:
        text = sheet.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the scoring sheet {sheet}: {exc}") from None
    first = text.split("\n", 1)[0]
    try:
        delimiter = csv.Sniffer().sniff(first, delimiters=",;\t").delimiter if first else ","
    except csv.Error:
        delimiter = ","
    # Only the delimiter is sniffed: from a header without quotes the sniffer guesses
    # doublequote=False, which cut a comment such as `Cite "Elman, 1990"` at its comma. And the
    # text, not its lines: a quoted comment may hold a line break.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in ("question", "points") if c not in header]
    if missing or not ({"folder", "submission"} & set(header)):
        need = missing + ([] if {"folder", "submission"} & set(header) else ["folder (or submission)"])
        raise SheetError(str(sheet), [f"row 1 (the header): the column(s) {', '.join(need)} are missing; "
                                      f"the sheet of `grade review` has: {', '.join(SHEET_COLUMNS)}"])
    by_folder = {r["folder"]: r for r in results}
    by_submission: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_submission.setdefault(r["submission"], []).append(r)
    problems: list[str] = []
    scores: list[Score] = []
    seen: dict[tuple[str, str], int] = {}
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        row = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
        where = f"row {number}"
        folder, submission, qid = row.get("folder", ""), row.get("submission", ""), row.get("question", "")
        result = None
        if folder:
            result = by_folder.get(folder)
            if result is None:
                problems.append(f"{where}: unknown submission folder '{folder}' (not in this output folder)")
                continue
            if submission and submission != result["submission"]:
                problems.append(f"{where}: folder '{folder}' holds '{result['submission']}', not '{submission}'")
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
        key = (result["folder"], qid)
        if key in seen:
            problems.append(f"{where}: {qid} of '{result['submission']}' is scored again (first in row {seen[key]})")
            continue
        seen[key] = number
        scores.append(Score(number, result["folder"], result["submission"], qid, points, comment))
    if problems:
        raise SheetError(str(sheet), problems)
    return scores


def import_sheet(sheet: Path, out_dir: Path, tutor: str | None = None,
                 rubric_path: str | None = None) -> ImportOutcome:
    """Check ``sheet``, store its scores (all or nothing) and render the folder again."""
    results = load_results(out_dir)
    scores = read_sheet(sheet, results)
    who = tutor or default_tutor()
    now = time.time()
    outcome = ImportOutcome(len(scores))
    with Gradebook(gradebook_path(out_dir)) as book:
        with book.transaction():
            for s in scores:
                if book.set_manual_score(s.folder, s.question, s.submission, s.points, s.comment, who,
                                         sheet.name, now):
                    outcome.changed.append(s)
    outcome.rewritten = sync_outputs(out_dir, rubric_path)
    return outcome


def default_tutor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (e.g. a container): still record something
        return "unknown"


# -- one score at a time (grade serve) ------------------------------------------------------------
class ScoreRefused(GraderError):
    """A single score failed the sheet's checks; nothing was stored."""


class ScoreConflict(GraderError):
    """The answer's score changed since the tutor's form was loaded; nothing was stored."""

    def __init__(self, folder: str, question: str, change: Mapping[str, Any], version: int) -> None:
        self.change, self.version = dict(change), version
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(change["changed_at"]))
        super().__init__(f"{question} of {folder} was changed by {change['tutor']} at {when} "
                         f"(to {change['new_points']:g} points) after you opened it; your entry was not saved. "
                         "Look at the new score and save again if yours should replace it.")


@dataclass(frozen=True)
class SavedScore:
    changed: bool
    version: int
    points: float
    comment: str
    tutor: str
    result: dict[str, Any]   # the submission's result as written again


@contextmanager
def render_lock(out_dir: Path) -> Iterator[None]:
    """One writer of results at a time, across processes: whoever renders reads the scores after
    taking the lock, so the last file written always holds every committed score."""
    with open(out_dir / "gradebook.render-lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def score_version(book: Gradebook, folder: str, question: str) -> int:
    """The id of the latest change of this answer's score (0: never scored): a form's version."""
    row = book.db.execute("SELECT MAX(id) FROM score_history WHERE folder=? AND question=?",
                          (folder, question)).fetchone()
    return int(row[0] or 0)


def save_score(out_dir: Path, result: Mapping[str, Any], question: str, raw_points: str, comment: str,
               tutor: str, based_on: int | None, source: str = "grade serve") -> SavedScore:
    """Check one score as a sheet row is checked, store it with its history in one short
    transaction, and render the submission's result.json and report.html again.

    ``based_on`` is the version the tutor's form showed; if the answer was scored since (by
    another tutor, a sheet, another tab), :class:`ScoreConflict` says by whom and when, unless
    the stored score already equals this one."""
    points, problem = check_score(result, question, raw_points, comment)
    if problem is None and points is None:
        problem = f"enter the points for {question} (0 to {float(result['questions'][question]['max_points']):g})"
    if problem is not None or points is None:
        raise ScoreRefused(problem or "no points")
    comment = comment.replace("\r\n", "\n").replace("\r", "\n").strip()  # browsers send CRLF
    folder = result["folder"]
    with Gradebook(gradebook_path(out_dir)) as book:
        with book.transaction():
            current = score_version(book, folder, question)
            if based_on is not None and current != based_on:
                now_stored = book.manual_scores(folder).get(folder, {}).get(question)
                if not (now_stored and float(now_stored["points"]) == points and now_stored["comment"] == comment):
                    last = book.db.execute("SELECT tutor, changed_at, new_points FROM score_history WHERE id=?",
                                           (current,)).fetchone()
                    raise ScoreConflict(folder, question,
                                        {"tutor": last[0], "changed_at": last[1], "new_points": last[2]}, current)
            changed = book.set_manual_score(folder, question, result["submission"], points, comment, tutor,
                                            source, time.time())
            version = score_version(book, folder, question)
    return SavedScore(changed, version, points, comment, tutor, render_folder(out_dir, folder))


def render_folder(out_dir: Path, folder: str) -> dict[str, Any]:
    """Apply the stored scores to one submission's result.json and report.html; the new result."""
    with render_lock(out_dir):
        data = json.loads((out_dir / folder / "result.json").read_text(encoding="utf-8"))
        data.setdefault("folder", folder)
        with Gradebook(gradebook_path(out_dir)) as book:
            manual = book.manual_scores(folder).get(folder, {})
        new = apply_manual(data, manual)
        save_result(out_dir, new)
    return new
