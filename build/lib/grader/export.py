"""``grade export``: the per-student grades of a graded output folder as CSV or JSON.

One row (CSV) or object (JSON) per student with the columns of ``grades.csv``: ``student_id``,
``name``, ``email``, ``submission``, ``status``, one per question, ``points``, ``max_points``,
``flags``. It is read from the folder's results, which carry the tutors' imported scores (the
gradebook's ``manual_scores``), so it is the current state after grading and scoring. In JSON a
question still waiting for a tutor is ``null`` and points are numbers.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from grader.batch import CSV_FIXED, grades_csv, write_atomic
from grader.errors import UsageError
from grader.scores import load_results

FORMATS = ("csv", "json")


def export_rows(out_dir: Path, rubric_path: str | None = None) -> tuple[list[str], list[dict[str, Any]], str]:
    from grader.rubric import load_rubric
    results = load_results(out_dir)
    qids = list(load_rubric(rubric_path).questions)
    text = grades_csv(results, qids)
    rows = list(csv.DictReader(io.StringIO(text)))
    return [*CSV_FIXED, *qids, "points", "max_points", "flags"], rows, text


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
