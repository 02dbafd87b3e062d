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
import getpass
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

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
    """Write ``result.json`` and the report rendered from it where they change; True if they did."""
    from grader.batch import write_atomic
    from grader.report import render_report
    folder = out_dir / data["folder"]
    text = result_text(data)
    html = render_report(data)
    changed = False
    for path, content in ((folder / "result.json", text), (folder / "report.html", html)):
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


def read_sheet(sheet: Path, results: list[dict[str, Any]]) -> list[Score]:
    """Every scored row of ``sheet``, checked against ``results``; :class:`SheetError` lists all
    problems at once."""
    try:
        text = sheet.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the scoring sheet {sheet}: {exc}") from None
    lines = text.splitlines()
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t") if lines else csv.excel
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(lines, dialect)
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
        questions = result["questions"]
        if qid not in questions:
            problems.append(f"{where}: unknown question '{qid}' (the written questions are "
                            f"{', '.join(q for q, v in questions.items() if is_written(v))})")
            continue
        if not is_written(questions[qid]):
            problems.append(f"{where}: question {qid} is graded automatically; the sheet scores only written answers")
            continue
        raw_points, comment = row.get("points", ""), row.get("comment", "")
        if not raw_points:
            if comment:
                problems.append(f"{where}: a comment but no points for {qid} of '{result['submission']}'")
            continue
        points = _number(raw_points)
        maximum = float(questions[qid].get("max_points", 0.0))
        if points is None:
            problems.append(f"{where}: points '{raw_points}' is not a number")
            continue
        if points < 0:
            problems.append(f"{where}: points {raw_points} is negative")
            continue
        if points > maximum + 1e-9:
            problems.append(f"{where}: points {raw_points} is above the maximum {maximum:g} of {qid}")
            continue
        if result["status"] != "graded":
            problems.append(f"{where}: '{result['submission']}' was not graded (status {result['status']}); "
                            "it gets 0 points and cannot be scored")
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
