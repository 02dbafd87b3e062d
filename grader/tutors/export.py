"""``grade export``: the per-student grades of a graded output folder as CSV or JSON.

One row (CSV) or object (JSON) per student with the columns of ``grades.csv``: ``student_id``,
``name``, ``email``, ``submission``, ``status``, one per question, ``points``, ``max_points``,
``flags``. It is read from the folder's results, which carry the tutors' imported scores (the
gradebook's ``manual_scores``), so it is the current state after grading and scoring. In JSON a
question still waiting for a tutor is ``null`` and points are numbers.

Automatic points a tutor set by hand (``grade serve``) are in the rows like any points; the
command also lists every such override (:func:`list_overrides`: who, when, from what to what,
why) on the standard error, so whoever exports sees what was changed by hand.

The rows are typed (:class:`GradeRow`, the cells as ``grades.csv`` has them before they are made
safe for spreadsheets); text is made only for the file: CSV (:meth:`Grades.csv`, every cell
neutralised, grader/folder/grades.py) or JSON (:meth:`Grades.json`). Every read and write of the
output folder goes through its :class:`~grader.folder.outdir.OutDir`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import UsageError
from grader.folder.grades import grade_rows, safe_csv
from grader.folder.outdir import MATCHES, OutDir, write_atomic
from grader.result import SubmissionResult
from grader.tutors.platforms import FillOutcome

FORMATS = ("csv", "json")
REPORT = "report.html"  # the page a student reads (contract §6)
PLATFORMS = ("moodle", "canvas")


@dataclass(frozen=True)
class GradeRow:
    """One student's row: the cells of ``grades.csv`` as plain text, before they are made safe
    for spreadsheets (``questions``: question id -> points, "" while a tutor has not scored it)."""

    student_id: str
    name: str
    email: str
    submission: str
    status: str
    questions: Mapping[str, str]
    points: str
    max_points: str
    flags: str

    @classmethod
    def of(cls, cells: Sequence[str], qids: Sequence[str]) -> GradeRow:
        """A row of :func:`grader.folder.grades.grade_rows` (its columns: CSV_FIXED, ``qids``, CSV_TAIL)."""
        n = len(qids)
        student_id, name, email, submission, status = cells[:5]
        return cls(student_id, name, email, submission, status, dict(zip(qids, cells[5:5 + n])),
                   cells[5 + n], cells[6 + n], cells[7 + n])

    def cells(self) -> list[str]:
        return [self.student_id, self.name, self.email, self.submission, self.status, *self.questions.values(),
                self.points, self.max_points, self.flags]

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON object: a question waiting for a tutor is null, points are numbers."""
        def number(text: str) -> float | None:
            return float(text) if text != "" else None
        return {"student_id": self.student_id, "name": self.name, "email": self.email,
                "submission": self.submission, "status": self.status,
                **{qid: number(v) for qid, v in self.questions.items()},
                "points": number(self.points), "max_points": number(self.max_points), "flags": self.flags}


@dataclass(frozen=True)
class Grades:
    """The export: its columns and one :class:`GradeRow` per student."""

    columns: list[str]
    rows: list[GradeRow]

    def csv(self) -> str:
        """The CSV text, every cell neutralised for spreadsheets (grader/folder/grades.py)."""
        return safe_csv([self.columns, *(r.cells() for r in self.rows)])

    def json(self) -> str:
        return json.dumps([r.to_json() for r in self.rows], indent=2, ensure_ascii=False) + "\n"


def export_rows(out: OutDir, rubric_path: str | None = None) -> Grades:
    """The grades of ``out``'s results, one row per student, as ``grades.csv`` has them."""
    from grader.rubric import load_rubric
    results = out.results()
    with out.gradebook() as book:
        confirmed = book.confirmed_members()
    qids = list(load_rubric(rubric_path).questions)
    header, cells = grade_rows(results, qids, confirmed, absent=out.absent(results))
    return Grades(header, [GradeRow.of(row, qids) for row in cells])


def export(out: OutDir, fmt: str, to: Path | None = None, rubric_path: str | None = None) -> tuple[Path | None, str]:
    """Write the grades as ``fmt`` to ``to`` (default ``export.<fmt>`` in the output folder; ``-``
    returns the text only). Returns the path written and the text."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
    grades = export_rows(out, rubric_path)
    text = grades.json() if fmt == "json" else grades.csv()
    if to is not None and str(to) == "-":
        return None, text
    if to is None:
        return out.write((f"export.{fmt}",), text), text
    write_atomic(to, text)  # a path the tutor chose, outside the output folder's door
    return to, text


# -- is grading finished? ---------------------------------------------------------------------
def incomplete(results: Sequence[SubmissionResult]) -> list[str]:
    """What is not finished: submissions that could not be graded (status ``error``: a tutor
    should look at them and grade them again) and written answers still waiting for a tutor."""
    out = [f"{r.submission} could not be graded ({r.message or 'status error'}); see its report"
           for r in results if r.status == "error"]
    waiting: dict[str, int] = {}
    for r in results:
        if r.status != "graded":
            continue
        for qid, q in r.questions.items():
            if q.written and q.status == "pending":
                waiting[qid] = waiting.get(qid, 0) + 1
    out += [f"{qid}: {n} written answer(s) not scored yet (grade serve, or grade review + grade scores)"
            for qid, n in waiting.items()]
    return out


def read_matches(out: OutDir, given: Sequence[str] = ()) -> dict[str, str]:
    """The tutor's matches (student id or e-mail -> a value of the platform row's identity):
    those stored in the output folder by earlier exports, with ``given`` ("KEY=VALUE") added and
    stored for later exports. An empty VALUE removes a match."""
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
        out.write((MATCHES,), json.dumps([{"student": k, "row": v} for k, v in sorted(stored.items())],
                                         indent=1, ensure_ascii=False))
    return stored


def export_platform(out: OutDir, fmt: str, into: Path, to: Path | None = None,
                    column: str | None = None, allow_partial: bool = False, matches: Sequence[str] = (),
                    feedback_zip: Path | None = None) -> FillOutcome:
    """Fill the platform's file ``into`` with the folder's grades; write ``to`` (default: a new
    file ``<into's stem>-graded<suffix>`` beside it; ``to == into`` replaces it atomically).
    ``feedback_zip``: also the groups' reports in the zip layout the platform imports (see
    :func:`feedback_files`)."""
    from grader.tutors.platforms import fill_canvas, fill_moodle
    if fmt not in PLATFORMS:
        raise UsageError(f"unknown platform '{fmt}'; use one of {', '.join(PLATFORMS)}")
    results = out.results()
    manual = read_matches(out, matches)
    with out.gradebook() as book:
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
        outcome.feedback = feedback_files(out, fmt, outcome, results, feedback_zip)
    return outcome


def platform_summary(outcome: FillOutcome, fmt: str, feedback_zip: str | None) -> list[str]:
    """What an export into a platform's file did, in lines for the tutor: how many filled in, the
    rows left as they are and why, where to upload the file and the feedback zip."""
    lines = [f"{outcome.filled} student(s) filled in; {outcome.changed} field(s) changed; "
             f"written to {outcome.path or 'standard output'}"]
    if outcome.not_in_grades:
        lines.append(f"Not in the grades, left as they are ({len(outcome.not_in_grades)}; no submission?):")
        lines += [f"  {line}" for line in outcome.not_in_grades]
    lines += [f"  no grade: {line}" for line in outcome.unconfirmed]
    if outcome.cannot:
        lines.append(f"Not filled in, left as they are ({len(outcome.cannot)}); fix these and export again:")
        lines += [f"  {line}" for line in outcome.cannot]
    lines.append(f"Upload {outcome.path or 'it'} to " + ("Moodle (Grading action: Upload grading worksheet)."
                                                      if fmt == "moodle" else "Canvas (Grades > Import)."))
    if feedback_zip:
        lines.append(f"{len(outcome.feedback)} report(s) in {feedback_zip}; upload it to " + (
            "Moodle (Grading action: Upload multiple feedback files in a zip)." if fmt == "moodle" else
            "Canvas (the assignment's page: Re-upload submissions); each student finds the report as a comment "
            "on their submission."))
    elif fmt == "canvas":
        lines.append("Canvas's gradebook import takes points only: give the reports with --feedback-zip and upload "
                     "that zip (Re-upload submissions), or they do not reach the students.")
    return lines


def _canvas_uploads(result: SubmissionResult) -> list[tuple[str, str]]:
    """(user id, attachment id) of each Canvas upload the intake recorded for ``result``."""
    handed_in = (result.platform or {}).get("handed_in_by", [])
    return [(str(u.get("user_id", "")), str(u.get("attachment", ""))) for u in handed_in
            if isinstance(u, Mapping) and u.get("platform") == "canvas"
            and str(u.get("user_id", "")).isdigit() and str(u.get("attachment", "")).isdigit()]


def feedback_files(out: OutDir, fmt: str, outcome: FillOutcome, results: Sequence[SubmissionResult],
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
            for user, attachment in _canvas_uploads(r):
                entries[f"feedback_{user}_{attachment}_{REPORT}"] = out.path(r.folder, REPORT).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(entries.items()):
            zf.writestr(name, data)
    from grader.tutors.platforms import write_atomic_bytes
    write_atomic_bytes(to, buffer.getvalue())
    return sorted(entries)


def list_overrides(out: OutDir, results: Sequence[SubmissionResult] | None = None) -> list[str]:
    """One line per automatic question whose points a tutor set by hand: the submission, the
    question, the checks' points and the tutor's, who, when (UTC) and the reason (one line,
    control characters written out). ``results``: ``out``'s, where they are read already."""
    import time

    from grader.folder.grades import visible
    auto = {r.folder: r for r in (out.results() if results is None else results)}
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
