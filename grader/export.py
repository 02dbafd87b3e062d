"""``grade export``: the per-student grades of a graded output folder as CSV or JSON.

One row (CSV) or object (JSON) per student with the columns of ``grades.csv``: ``student_id``,
``name``, ``email``, ``submission``, ``status``, one per question, ``points``, ``max_points``,
``flags``. It is read from the folder's results, which carry the tutors' imported scores (the
gradebook's ``manual_scores``), so it is the current state after grading and scoring. In JSON a
question still waiting for a tutor is ``null`` and points are numbers.

Automatic points a tutor set by hand (``grade serve``) are in the rows like any points; the
command also lists every such override (:func:`list_overrides`: who, when, from what to what,
why) on the standard error, so whoever exports sees what was changed by hand.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from grader.errors import UsageError
from grader.grades import CSV_FIXED, grade_rows, restore, safe_csv
from grader.outdir import OutDir, write_atomic

FORMATS = ("csv", "json")
PLATFORMS = ("moodle", "canvas")


def export_rows(out_dir: Path, rubric_path: str | None = None) -> tuple[list[str], list[dict[str, Any]], str]:
    """The columns, the rows (plain text, as the students wrote their names) and the CSV text
    (every cell neutralised for spreadsheets, see grader/grades.py)."""
    from grader.rubric import load_rubric
    out = OutDir(out_dir)
    results = out.results()
    with out.gradebook() as book:
        confirmed = book.confirmed_members()
    qids = list(load_rubric(rubric_path).questions)
    header, cells = grade_rows(results, qids, confirmed)
    text = safe_csv([header, *cells])
    rows = [dict(zip(header, (restore(c) for c in row))) for row in csv.reader(io.StringIO(text))][1:]
    return header, rows, text


def _typed(row: dict[str, str], numeric: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in numeric:
            out[key] = float(value) if value != "" else None
        else:
            out[key] = value
    return out


def export(out_dir: Path, fmt: str, to: Path | None = None, rubric_path: str | None = None) -> tuple[Path | None, str]:
    """Write the grades as ``fmt`` to ``to`` (default ``out_dir/export.<fmt>``; ``-`` returns the
    text only). Returns the path written and the text."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
    columns, rows, text = export_rows(out_dir, rubric_path)
    if fmt == "json":
        numeric = [c for c in columns if c not in CSV_FIXED and c != "flags"]
        text = json.dumps([_typed(r, numeric) for r in rows], indent=2, ensure_ascii=False) + "\n"
    if to is not None and str(to) == "-":
        return None, text
    path = to or out_dir / f"export.{fmt}"
    write_atomic(path, text)
    return path, text


# -- is grading finished? ---------------------------------------------------------------------
def incomplete(results: list[dict[str, Any]]) -> list[str]:
    """What is not finished: submissions that could not be graded (status ``error``: a tutor
    should look at them and grade them again) and written answers still waiting for a tutor."""
    from grader.scores import is_written
    out = [f"{r['submission']} could not be graded ({r.get('message') or 'status error'}); see its report"
           for r in results if r["status"] == "error"]
    waiting: dict[str, int] = {}
    for r in results:
        if r["status"] != "graded":
            continue
        for qid, q in r["questions"].items():
            if is_written(q) and q.get("status") == "pending":
                waiting[qid] = waiting.get(qid, 0) + 1
    out += [f"{qid}: {n} written answer(s) not scored yet (grade serve, or grade review + grade scores)"
            for qid, n in waiting.items()]
    return out


def export_platform(out_dir: Path, fmt: str, into: Path, to: Path | None = None,
                    column: str | None = None) -> Any:
    """Fill the platform's file ``into`` with the folder's grades; write ``to`` (default: a new
    file ``<into's stem>-graded<suffix>`` beside it; ``to == into`` replaces it atomically)."""
    from grader.platforms import fill_canvas, fill_moodle
    from grader.scores import load_results
    if fmt not in PLATFORMS:
        raise UsageError(f"unknown platform '{fmt}'; use one of {', '.join(PLATFORMS)}")
    results = load_results(out_dir)
    with OutDir(out_dir).gradebook() as book:
        confirmed = book.confirmed_members()  # the members grades.csv grades
    target: Path | None = to or into.with_name(f"{into.stem}-graded{into.suffix or '.csv'}")
    if to is not None and str(to) == "-":
        target = None  # the caller prints the text
    if fmt == "moodle":
        return fill_moodle(into, results, target, confirmed)
    return fill_canvas(into, results, target, column, confirmed)


def list_overrides(out_dir: Path) -> list[str]:
    """One line per automatic question whose points a tutor set by hand: the submission, the
    question, the checks' points and the tutor's, who, when (UTC) and the reason (one line,
    control characters written out)."""
    import time

    from grader.grades import visible
    out = OutDir(out_dir)
    auto = {r.folder: r for r in out.results()}
    with out.gradebook() as book:
        overrides = book.overrides()
    lines = []
    for folder, questions in sorted(overrides.items()):
        r = auto.get(folder)
        for qid, o in sorted(questions.items()):
            q = r.questions.get(qid) if r else None
            was = f"{q.auto_points:g}" if q is not None and q.auto_points is not None else "?"
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(o["set_at"]))
            reason = visible(" ".join(str(o["reason"]).split()))
            name = visible(r.submission if r else folder)
            lines.append(f"{name} {qid}: {was} -> {float(o['points']):g} by {visible(str(o['tutor']))} "
                         f"at {when}: {reason}")
    return lines
