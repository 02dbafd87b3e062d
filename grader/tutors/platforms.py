"""Grades into a learning platform's own file: Moodle's offline grading worksheet and Canvas's
gradebook export (``grade export --format moodle|canvas --into FILE``).

The tutor downloads the platform's file, this module fills in the sheet's grades and uploads go
back through the platform's own import. The platform's file is the authority on who is in the
course, so it is changed as little as possible: the file is parsed into fields *with their byte
positions* and only the fields that get a new value are replaced in the original text; every
other byte (other columns, quoting, line endings, a byte-order mark, a missing final newline) is
kept. A student is matched by e-mail address first and then by student id, never by name; a
student of the grades whom no row matches, a row matched twice, a conflicting match or a
maximum that differs from the sheet's is a *problem*, and nothing is written while one remains.
Rows of the platform's file without a submission (students who handed nothing in) are listed
and left as they are.

Moodle (assignment > "Download grading worksheet", with the feedback type "Offline grading
worksheet" enabled): columns "Identifier", "Full name", "Email address" (and other identity
fields such as "ID number" where the site shows them), "Status", "Grade", "Maximum Grade",
"Grade can be changed", "Last modified (submission)", "Last modified (grade)", "Feedback
comments". We fill "Grade" and "Feedback comments".

Canvas (Grades > Export): columns "Student", "ID", "SIS User ID", "SIS Login ID", (sometimes
"Integration ID", "Root Account"), "Section", then one column per assignment named
"Name (assignment id)" and read-only totals; the second row is "Points Possible". We fill one
assignment column, chosen with ``--column`` where the export has several.

Its rooms: grader/tutors/platforms_csv.py (the CSV reader that keeps every field's position, and
the atomic write), grader/tutors/platforms_match.py (the students of the grades, and each one's
row of the platform's file).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import PlatformError
from grader.result import SubmissionResult
from grader.tutors.platforms_csv import (
    MAX_BYTES,
    Field,
    Record,
    Sheet,
    parse_csv,
    quote_like,
    read_sheet,
    splice,
    write_atomic_bytes,
)
from grader.tutors.platforms_match import Student, feedback_for, match, pending_written, points_text, students_of

__all__ = ["CANVAS", "MAX_BYTES", "MOODLE", "Columns", "Field", "FillOutcome", "Platform", "PlatformError", "Record",
           "Sheet", "Student", "canvas_assignments", "feedback_for", "fill_canvas", "fill_moodle", "parse_csv",
           "pending_written", "points_text", "quote_like", "read_sheet", "splice", "students_of",
           "write_atomic_bytes"]


# -- filling ------------------------------------------------------------------------------------
@dataclass
class FillOutcome:
    path: Path | None                 # the file written
    filled: int = 0                   # students whose row got a value
    changed: int = 0                  # fields whose text changed
    not_in_grades: list[str] = field(default_factory=list)   # platform rows without a submission
    unconfirmed: list[str] = field(default_factory=list)     # group members left out, as in grades.csv
    cannot: list[str] = field(default_factory=list)          # students left out, by name, and why
    text: bytes = b""
    rows: dict[int, Student] = field(default_factory=dict)   # row index -> the student filled in
    records: list[Record] = field(default_factory=list)      # the rows (for the feedback files)
    label_col: int = 0                                       # the rows' identity ("Participant N")
    name_col: int | None = None                              # the rows' student name
    feedback: list[str] = field(default_factory=list)        # the feedback zip's entries

@dataclass(frozen=True)
class Platform:
    """What tells one platform's file apart: which header names its rows' identities. Everything
    else (matching, the problems, writing) is the same code for every platform."""

    what: str                        # the file's name in messages and errors
    email_columns: tuple[str, ...]   # a student is matched by e-mail address here first, ...
    id_columns: tuple[str, ...]      # ... then by student id here
    label_column: str                # a row's identity in messages; column 0 where absent
    name_column: str                 # a row's student name in messages


MOODLE = Platform("Moodle grading worksheet", email_columns=("Email address",),
                  id_columns=("ID number", "Student ID", "Matriculation number"), label_column="Identifier",
                  name_column="Full name")
# Canvas has no e-mail column; the SIS login is the university account, often the e-mail address.
CANVAS = Platform("Canvas gradebook export", email_columns=("SIS Login ID",),
                  id_columns=("SIS User ID", "SIS Login ID"), label_column="ID", name_column="Student")


@dataclass(frozen=True)
class Columns:
    """A platform's identity columns as found in one file's header (indices)."""

    emails: list[int]
    ids: list[int]
    label: int
    name: int | None

    @classmethod
    def of(cls, sheet: Sheet, platform: Platform) -> Columns:
        def present(names: tuple[str, ...]) -> list[int]:
            return [c for c in (sheet.column(n) for n in names) if c is not None]
        label = sheet.column(platform.label_column)
        return cls(present(platform.email_columns), present(platform.id_columns),
                   label if label is not None else 0, sheet.column(platform.name_column))

    def describe(self, rec: Record) -> str:
        """"line 7 (Ada Lovelace, Participant 104)": the row's name and label."""
        first = (self.emails + self.ids)[:1]
        label = rec.value(self.label) or (rec.value(first[0]) if first else "")
        name = rec.value(self.name).strip() if self.name is not None else ""
        return f"line {rec.line} ({', '.join(x for x in (name, label) if x)})"


# A row's new field texts (column index, value), or why this student's row is left out.
RowFill = Callable[[Record, Student], list[tuple[int, str]] | str]


def _fill(sheet: Sheet, cols: Columns, rows: list[Record], results: Sequence[SubmissionResult],
          confirmed: Mapping[str, Iterable[str]] | None, to: Path | None, row_fill: RowFill,
          check: Callable[[list[Student]], list[str]] = lambda students: [],
          allow_partial: bool = False, manual: Mapping[str, str] | None = None) -> FillOutcome:
    """The one matching of every platform: the sheet's students to ``rows`` (a tutor's match,
    then by e-mail, then by id), ``check`` on the students (a problem there is the file's:
    :class:`PlatformError`, nothing written), ``row_fill`` on every matched row. A student who
    cannot be filled in (no row or several, a submission that could not be graded, written
    answers not scored yet unless ``allow_partial``) is left out and listed by name with the
    reason in ``cannot``; every other row is written to ``to``."""
    skipped: list[str] = []
    students, cannot = students_of(results, confirmed, skipped, allow_partial)
    matched, more = match(students, rows, cols.emails, cols.ids, cols.describe, manual, [cols.label])
    cannot += more
    problems = check(students)
    if problems:
        raise PlatformError(str(sheet.path), problems)
    changes: list[tuple[Field, str]] = []
    filled: dict[int, Student] = {}
    for k, s in matched.items():
        rec = rows[k]
        who = f"{s.name} ({s.student_id or s.email}) of {s.submission}, {cols.describe(rec)}"
        if s.status == "error":
            cannot.append(f"{who}: could not be graded ({s.message or 'see its report'}); grade it again or score it "
                          "by hand; the row is left as it is")
            continue
        if s.pending and not allow_partial:
            cannot.append(f"{who}: written answers not scored yet ({', '.join(s.pending)}); score them "
                          "(grade serve) or export with --allow-partial to write provisional points")
            continue
        fill = row_fill(rec, s)
        if isinstance(fill, str):
            cannot.append(fill)
            continue
        if any(c >= len(rec.fields) for c, _ in fill):
            cannot.append(f"{who}: the row has {len(rec.fields)} fields, fewer than the header")
            continue
        changes += [(rec.fields[c], value) for c, value in fill]
        filled[k] = s
    outcome = _finish(sheet, changes, to)
    outcome.filled = len(filled)
    outcome.rows = filled
    outcome.records = rows
    outcome.label_col, outcome.name_col = cols.label, cols.name
    outcome.cannot = cannot
    outcome.not_in_grades = [cols.describe(rec) for k, rec in enumerate(rows) if k not in matched and not rec.blank]
    outcome.unconfirmed = skipped
    return outcome


def _number(text: str) -> float | None:
    raw = text.strip().replace(",", ".") if "." not in text else text.strip()
    try:
        return float(raw)
    except ValueError:
        return None

def _finish(sheet: Sheet, changes: list[tuple[Field, str]], to: Path | None) -> FillOutcome:
    new = splice(sheet.text, [(f, quote_like(v, f, sheet.delimiter)) for f, v in changes])
    data = sheet.encode(new)
    outcome = FillOutcome(to, changed=sum(1 for f, v in changes if f.value != v), text=data)
    if to is not None:
        write_atomic_bytes(to, data)
    return outcome


def fill_moodle(path: Path, results: Sequence[SubmissionResult], to: Path | None,
                confirmed: Mapping[str, Iterable[str]] | None = None, allow_partial: bool = False,
                manual: Mapping[str, str] | None = None) -> FillOutcome:
    """Fill "Grade" and "Feedback comments" of Moodle's offline grading worksheet ``path``.

    Writes ``to`` (atomically) unless it is None, with every row that can be filled; the others
    are in ``FillOutcome.cannot``. Raises :class:`PlatformError` (nothing written) where the file
    itself is wrong (its header)."""
    sheet = read_sheet(path, MOODLE.what)
    grade = sheet.column("Grade")
    feedback = sheet.column("Feedback comments")
    maximum = sheet.column("Maximum Grade")
    can_change = sheet.column("Grade can be changed")
    cols = Columns.of(sheet, MOODLE)
    identified = bool(cols.emails or cols.ids)
    if grade is None or not identified:
        need = (["Grade"] if grade is None else []) + ([] if identified else ["Email address (or ID number)"])
        raise PlatformError(str(path), [
            f"line 1 (the header): no column {' or '.join(repr(n) for n in need)}; the header has: "
            f"{', '.join(sheet.header)}. Download the worksheet again (Assignment > View all submissions > "
            "Grading action: Download grading worksheet; the site's language must be English)"])

    def row_fill(rec: Record, s: Student) -> list[tuple[int, str]] | str:
        if maximum is not None and rec.value(maximum).strip():
            top = _number(rec.value(maximum))
            if top is None or abs(top - s.max_points) > 1e-9:
                return (f"{cols.describe(rec)}: the assignment's maximum grade is {rec.value(maximum)!r} but the "
                        f"sheet has {points_text(s.max_points)} points; set the maximum grade in Moodle "
                        f"to {points_text(s.max_points)} and download the worksheet again")
        if can_change is not None and rec.value(can_change).strip().casefold() in ("no", "0", "false"):
            return (f"{cols.describe(rec)}: Moodle says the grade of {s.name} cannot be changed (it is locked "
                    "or overridden in the gradebook); unlock it, then download the worksheet again")
        assert grade is not None  # checked above; mypy does not follow it into the closure
        return [(grade, points_text(s.points))] + ([(feedback, s.feedback)] if feedback is not None else [])

    return _fill(sheet, cols, sheet.records[1:], results, confirmed, to, row_fill, allow_partial=allow_partial,
                 manual=manual)


_CANVAS_ASSIGNMENT = re.compile(r"^(?P<name>.*\S)\s*\((?P<id>\d+)\)$")


def canvas_assignments(sheet: Sheet) -> list[int]:
    """Columns of gradable assignments: "Name (id)", not marked read-only in the points row."""
    points = next((r for r in sheet.records[1:3] if r.value(0).strip() == "Points Possible"), None)
    out = []
    for i, h in enumerate(sheet.header):
        if _CANVAS_ASSIGNMENT.match(h) and not (points and "read only" in points.value(i)):
            out.append(i)
    return out


def fill_canvas(path: Path, results: Sequence[SubmissionResult], to: Path | None,
                column: str | None = None, confirmed: Mapping[str, Iterable[str]] | None = None,
                allow_partial: bool = False, manual: Mapping[str, str] | None = None,
                sheet_number: str = "11") -> FillOutcome:
    """Fill one assignment column of a Canvas gradebook export ``path`` with the points.

    ``column`` names it ("Sheet 11 (4711)", "Sheet 11" or "4711") where the export has several."""
    sheet = read_sheet(path, CANVAS.what)
    cols = Columns.of(sheet, CANVAS)
    student_col = sheet.column("Student")
    if student_col is None or not cols.ids:
        raise PlatformError(str(path), [
            f"line 1 (the header): a Canvas gradebook export has the columns Student, ID, SIS User ID, SIS Login ID, "
            f"Section; this header has: {', '.join(sheet.header)}. Export the gradebook again (Grades > Export); "
            "the SIS columns are there for teachers with the permission to see SIS data"])
    candidates = canvas_assignments(sheet)
    chosen: int | None = None
    if column is not None:
        for i in candidates:
            m = _CANVAS_ASSIGNMENT.match(sheet.header[i])
            if m and column.strip() in (sheet.header[i], m["name"], m["id"]):
                if chosen is not None:
                    raise PlatformError(str(path), [f"--column {column!r} names several columns; give the full "
                                                    f"header, e.g. {sheet.header[i]!r}"])
                chosen = i
        if chosen is None:
            raise PlatformError(str(path), [f"no assignment column {column!r}; " + _suggest(sheet, candidates,
                                                                                        sheet_number)])
    elif len(candidates) == 1:
        chosen = candidates[0]
    else:
        raise PlatformError(str(path), [
            ("the export has several assignment columns; " if candidates else
             "the export has no assignment column (\"Name (id)\"); create the assignment in Canvas first and "
             "export the gradebook again. ") + _suggest(sheet, candidates, sheet_number)])
    meta = [r for r in sheet.records[1:] if r.value(student_col).strip() in ("Points Possible", "") and
            not any(r.value(c).strip() for c in cols.ids)]
    rows = [r for r in sheet.records[1:] if r not in meta]
    possible = next((r for r in meta if r.value(student_col).strip() == "Points Possible"), None)
    header = sheet.header[chosen]
    target = chosen

    def check(students: list[Student]) -> list[str]:
        if possible is None or not students:
            return []
        top = _number(possible.value(target))
        if top is not None and abs(top - students[0].max_points) <= 1e-9:
            return []
        return [f"line {possible.line}: {header} has {possible.value(target)!r} points possible but the "
                f"sheet has {points_text(students[0].max_points)}; set the assignment's points in "
                f"Canvas to {points_text(students[0].max_points)} and export again"]

    return _fill(sheet, cols, rows, results, confirmed, to, lambda rec, s: [(target, points_text(s.points))], check,
                 allow_partial, manual)


def _suggest(sheet: Sheet, candidates: list[int], number: str) -> str:
    """Which --column to give: only columns of this sheet's assignment (a name holding the
    sheet's number as a number of its own: "Sheet 11", "Übung 11", not "Sheet 110")."""
    if not candidates:
        return ""
    mine = [sheet.header[i] for i in candidates
            if re.search(rf"(?<![\d.]){re.escape(number)}(?![\d.])", _CANVAS_ASSIGNMENT.match(sheet.header[i])["name"])]  # type: ignore[index]
    if len(mine) == 1:
        return f"name the one to fill with --column, e.g. --column {mine[0]!r}"
    if mine:
        return f"name the one to fill with --column; of this sheet's: {', '.join(repr(m) for m in mine)}"
    return (f"no column's name holds the sheet's number {number}; name the assignment's column with --column "
            f"'<its name> (<its id>)' (the assignment columns are: {', '.join(sheet.header[i] for i in candidates)})")
