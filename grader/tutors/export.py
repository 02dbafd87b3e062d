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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grader.errors import UsageError
from grader.folder.grades import CSV_FIXED, grade_rows, restore, safe_csv
from grader.folder.outdir import OutDir, write_atomic

FORMATS = ("csv", "json")
REPORT = "report.html"  # the page a student reads (contract §6)
PLATFORMS = ("moodle", "canvas")


def export_rows(out_dir: Path, rubric_path: str | None = None) -> tuple[list[str], list[dict[str, Any]], str]:
    """The columns, the rows (plain text, as the students wrote their names) and the CSV text
    (every cell neutralised for spreadsheets, see grader/folder/grades.py)."""
    from grader.rubric import load_rubric
    out = OutDir(out_dir)
    results = out.results()
    with out.gradebook() as book:
        confirmed = book.confirmed_members()
    qids = list(load_rubric(rubric_path).questions)
    header, cells = grade_rows(results, qids, confirmed, absent=out.absent(results))
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
    path = to or OutDir(out_dir).path(f"export.{fmt}")
    write_atomic(path, text)
    return path, text


# -- is grading finished? ---------------------------------------------------------------------
def incomplete(results: list[dict[str, Any]]) -> list[str]:
    """What is not finished: submissions that could not be graded (status ``error``: a tutor
    should look at them and grade them again) and written answers still waiting for a tutor."""
    from grader.tutors.scores import is_written
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


def read_matches(out_dir: Path, given: Sequence[str] = ()) -> dict[str, str]:
    """The tutor's matches (student id or e-mail -> a value of the platform row's identity):
    those stored in the output folder by earlier exports, with ``given`` ("KEY=VALUE") added and
    stored for later exports. An empty VALUE removes a match."""
    from grader.folder.outdir import MATCHES
    out = OutDir(out_dir)
    stored = {d["student"]: d["row"] for d in out.read_json_list(MATCHES) if d.get("student")}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--match {item!r}: give STUDENT=ROW, e.g. --match '2571234=Participant 1043206' or "
                             "--match 'ada@uni.example=ada.lovelace@uni.example'")
        if value.strip():
            stored[key.strip()] = value.strip()
        else:
            stored.pop(key.strip(), None)
    if given:
        write_atomic(out.path(MATCHES), json.dumps([{"student": k, "row": v} for k, v in sorted(stored.items())],
                                                   indent=1, ensure_ascii=False))
    return stored


def export_platform(out_dir: Path, fmt: str, into: Path, to: Path | None = None,
                    column: str | None = None, allow_partial: bool = False, matches: Sequence[str] = (),
                    feedback_zip: Path | None = None) -> Any:
    """Fill the platform's file ``into`` with the folder's grades; write ``to`` (default: a new
    file ``<into's stem>-graded<suffix>`` beside it; ``to == into`` replaces it atomically).
    ``feedback_zip``: also the groups' reports in the zip layout the platform imports (see
    :func:`feedback_files`)."""
    from grader.tutors.platforms import fill_canvas, fill_moodle
    from grader.tutors.scores import load_results
    if fmt not in PLATFORMS:
        raise UsageError(f"unknown platform '{fmt}'; use one of {', '.join(PLATFORMS)}")
    results = load_results(out_dir)
    manual = read_matches(out_dir, matches)
    with OutDir(out_dir).gradebook() as book:
        confirmed = book.confirmed_members()  # the members grades.csv grades
    target: Path | None = to or into.with_name(f"{into.stem}-graded{into.suffix or '.csv'}")
    if to is not None and str(to) == "-":
        target = None  # the caller prints the text
    if fmt == "moodle":
        outcome = fill_moodle(into, results, target, confirmed, allow_partial, manual)
    else:
        outcome = fill_canvas(into, results, target, column, confirmed, allow_partial, manual)
    outcome.feedback = []
    if feedback_zip is not None:
        outcome.feedback = feedback_files(out_dir, fmt, outcome, results, feedback_zip)
    return outcome


def feedback_files(out_dir: Path, fmt: str, outcome: Any, results: Sequence[Mapping[str, Any]],
                   to: Path) -> list[str]:
    """Write ``to``, a zip of each group's ``report.html`` for every student filled in, named as
    the platform's own import reads it; returns the entries.

    Moodle ("Upload multiple feedback files in a zip", mod/assign/feedback/file/importziplib.php):
    ``<Full name>_<participant id>_assignfeedback_file_/report.html``; the path is split at ``_``
    into five parts, the second the participant id (the worksheet's "Participant N"), the third and
    fourth the plugin. Canvas ("Re-upload submissions", app/models/assignment.rb
    infer_comment_context_from_filename): the first two all-digit ``_`` parts are the user id and
    an attachment id of that user's submission, so ``feedback_<user id>_<attachment id>_report.html``
    for every Canvas upload the intake recorded; Canvas attaches each as a submission comment."""
    import io
    import re
    import zipfile

    out = OutDir(out_dir)
    entries: dict[str, bytes] = {}
    if fmt == "moodle":
        for k, student in outcome.rows.items():
            rec = outcome.records[k]
            pid = re.sub(r"\D", "", rec.value(outcome.label_col))
            name = rec.value(outcome.name_col) if outcome.name_col is not None else student.name
            name = " ".join(name.replace("_", " ").replace("/", " ").split()) or "Participant"
            if pid:
                entries[f"{name}_{pid}_assignfeedback_file_/{REPORT}"] = out.path(student.folder, REPORT).read_bytes()
    else:
        for r in results:
            for u in (r.get("platform") or {}).get("handed_in_by", []):
                if u.get("platform") == "canvas" and str(u.get("user_id", "")).isdigit() and \
                        str(u.get("attachment", "")).isdigit():
                    entries[f"feedback_{u['user_id']}_{u['attachment']}_{REPORT}"] = \
                        out.path(r["folder"], REPORT).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(entries.items()):
            zf.writestr(name, data)
    from grader.tutors.platforms import write_atomic_bytes
    write_atomic_bytes(to, buffer.getvalue())
    return sorted(entries)


def list_overrides(out_dir: Path) -> list[str]:
    """One line per automatic question whose points a tutor set by hand: the submission, the
    question, the checks' points and the tutor's, who, when (UTC) and the reason (one line,
    control characters written out)."""
    import time

    from grader.folder.grades import visible
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
