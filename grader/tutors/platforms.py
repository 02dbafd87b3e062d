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
"""
from __future__ import annotations

import html
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.cleantext import skeleton
from grader.errors import PlatformError, UsageError
from grader.folder.grades import visible

# A downloaded gradebook of a course of a few thousand students is well below this; a bigger
# file is not a gradebook, and the parser's work stays bounded.
MAX_BYTES = 20 * 1024 * 1024




# -- a CSV reader that remembers where every field is ------------------------------------------
@dataclass(frozen=True)
class Field:
    start: int     # offsets into the decoded text, quotes included
    end: int
    value: str
    quoted: bool


@dataclass(frozen=True)
class Record:
    fields: tuple[Field, ...]
    line: int      # 1-based line where the record starts, for messages

    def value(self, index: int) -> str:
        return self.fields[index].value if index < len(self.fields) else ""

    @property
    def blank(self) -> bool:
        return all(not f.value.strip() for f in self.fields)


def parse_csv(text: str, delimiter: str = ",") -> list[Record]:
    """RFC 4180 records with each field's span in ``text``; linear in its length. Raises
    ValueError naming the line of an unterminated quote or text after a closing quote."""
    records: list[Record] = []
    i, n, line = 0, len(text), 1
    stops = (delimiter, "\r", "\n")
    while i < n:
        fields: list[Field] = []
        start_line = line
        while True:
            start = i
            if i < n and text[i] == '"':
                i += 1
                parts: list[str] = []
                while True:
                    j = text.find('"', i)
                    if j < 0:
                        raise ValueError(f"line {start_line}: a quoted field is never closed")
                    parts.append(text[i:j])
                    if j + 1 < n and text[j + 1] == '"':
                        parts.append('"')
                        i = j + 2
                        continue
                    i = j + 1
                    break
                value = "".join(parts)
                line += value.count("\n") + value.count("\r") - value.count("\r\n")
                if i < n and text[i] not in stops:
                    raise ValueError(f"line {line}: text after the closing quote of a field")
                fields.append(Field(start, i, value, True))
            else:
                j = i
                while j < n and text[j] not in stops:
                    j += 1
                fields.append(Field(start, j, text[i:j], False))
                i = j
            if i < n and text[i] == delimiter:
                i += 1
                continue
            break
        if text.startswith("\r\n", i):
            i += 2
        elif i < n:
            i += 1
        line += 1
        records.append(Record(tuple(fields), start_line))
    return records


def quote_like(value: str, original: Field, delimiter: str) -> str:
    """``value`` as a CSV field, quoted where the original was or where it must be."""
    needs = any(ch in value for ch in (delimiter, '"', "\r", "\n")) or value != value.strip()
    if original.quoted or needs:
        return '"' + value.replace('"', '""') + '"'
    return value


def splice(text: str, changes: Iterable[tuple[Field, str]]) -> str:
    """``text`` with each field replaced by its new (already quoted) text; the rest unchanged."""
    out: list[str] = []
    at = 0
    for f, new in sorted(changes, key=lambda c: c[0].start):
        out.append(text[at:f.start])
        out.append(new)
        at = f.end
    out.append(text[at:])
    return "".join(out)


@dataclass
class Sheet:
    """A platform's file as read: its text, how to write it back, its records."""

    path: Path
    text: str
    bom: bool
    delimiter: str
    records: list[Record]
    header: list[str]

    def column(self, *names: str) -> int | None:
        wanted = [n.casefold() for n in names]
        for i, h in enumerate(self.header):
            if h.strip().casefold() in wanted:
                return i
        return None

    def encode(self, text: str) -> bytes:
        return (b"\xef\xbb\xbf" if self.bom else b"") + text.encode("utf-8")


def read_sheet(path: Path, what: str) -> Sheet:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror}; give the file downloaded from the "
                         "platform with --into") from None
    if size > MAX_BYTES:
        raise UsageError(f"{path} has {size} bytes, more than a {what} of {MAX_BYTES // 2**20} MiB; "
                         "is it the right file?")
    raw = path.read_bytes()  # bytes, not read_text: universal newlines would change the line endings
    bom = raw.startswith(b"\xef\xbb\xbf")
    try:
        text = raw[3 if bom else 0:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 (byte {exc.start}); download the {what} again as CSV (UTF-8) "
                         "and do not save it from a spreadsheet in another encoding") from None
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    try:
        records = parse_csv(text, delimiter)
    except ValueError as exc:
        raise UsageError(f"{path}: not a readable CSV file ({exc})") from None
    if not records:
        raise UsageError(f"{path} is empty; download the {what} again")
    header = [f.value.strip() for f in records[0].fields]
    return Sheet(path, text, bom, delimiter, records, header)


# -- the sheet's students -----------------------------------------------------------------------
@dataclass(frozen=True)
class Student:
    name: str
    student_id: str
    email: str
    folder: str
    submission: str
    status: str
    points: float
    max_points: float
    feedback: str
    pending: tuple[str, ...] = ()   # written answers not scored yet
    message: str = ""               # why a submission could not be graded


def points_text(value: float) -> str:
    """7.5 -> "7.5", 10.0 -> "10": a plain decimal point, as both platforms read it."""
    return f"{round(value, 4):.4f}".rstrip("0").rstrip(".")


def pending_written(result: Mapping[str, Any]) -> list[str]:
    """The written answers of a graded result still waiting for a tutor."""
    from grader.folder.grades import is_written
    if result.get("status") != "graded":
        return []
    return [qid for qid, q in result.get("questions", {}).items() if is_written(q) and q.get("status") == "pending"]


def feedback_for(result: Mapping[str, Any], partial: bool = False) -> str:
    """The platform's comment (HTML, every text escaped): the total, why a submission got 0
    points, each question's points, one line per failing check, each tutor's comment by
    question, and, where written answers are still pending (``partial``), which ones."""
    def e(text: str) -> str:
        return html.escape(text, quote=False)  # element text: quotes are plain there

    total = f"Sheet 11: {points_text(float(result['points']))} of {points_text(float(result['max_points']))} points"
    pending = pending_written(result)
    lines = [e(total + (" so far (provisional)." if partial and pending else "."))]
    if partial and pending:
        lines.append(e(f"Not scored yet: {', '.join(pending)}; the grade will change when they are."))
    if result.get("status") != "graded" and result.get("message"):
        lines.append(e(" ".join(str(result["message"]).split())))
    for qid, q in result.get("questions", {}).items():
        shown = "pending" if q.get("status") == "pending" else \
            f"{points_text(float(q.get('points', 0)))} / {points_text(float(q.get('max_points', 0)))}"
        lines.append(f"<b>{e(qid)}</b>: {e(shown)}")
        for c in q.get("checks") or []:
            if not c.get("passed", True):
                why = " ".join(str(c.get("message") or "failed").split())[:300]
                lines.append(f"&nbsp;&nbsp;- {e(str(c.get('name', '')))}: {e(why)}")
        if q.get("comment"):
            lines.append(f"&nbsp;&nbsp;{e(' '.join(str(q['comment']).split()))}")
    return "<br>".join(lines)


def students_of(results: Iterable[Mapping[str, Any]], confirmed: Mapping[str, Iterable[str]] | None = None,
                skipped: list[str] | None = None, partial: bool = False) -> tuple[list[Student], list[str]]:
    """Every member of every result whom grades.csv grades, and the problems (a student in two
    groups, by name). A member the file name does not name, the platform does not name and no
    tutor confirmed gets no grade, as in grades.csv; they are added to ``skipped``."""
    from grader.folder.grades import members
    from grader.result import SubmissionResult
    out: list[Student] = []
    problems: list[str] = []
    seen: dict[str, tuple[str, str]] = {}
    for r in results:
        pending = tuple(pending_written(r))
        for m in members(SubmissionResult.from_json(r), (confirmed or {}).get(r["folder"], ())):
            if not m.confirmed:
                if skipped is not None:
                    skipped.append(f"{m.name} ({m.student_id}) of {r['submission']}: not in the file name, not named "
                                   "by the platform and not confirmed (grade confirm), so no grade, as in grades.csv")
                continue
            s = Student(m.name, m.student_id.strip(), m.email.strip(), r["folder"], r["submission"], r["status"],
                        float(r["points"]), float(r["max_points"]), feedback_for(r, partial), pending,
                        str(r.get("message", "")))
            # compared as a reader tells them apart: a look-alike of another group's member is that member
            keys = [f"id {skeleton(s.student_id)}" if s.student_id else "",
                    f"e-mail {skeleton(s.email)}" if s.email else ""]
            for key in filter(None, keys):
                if key in seen and seen[key][0] != s.folder:
                    problems.append(f"{s.name} ({key}) is a member of two groups, {seen[key][0]} and {s.folder}: "
                                    "which grade counts is for you to decide; remove one of the results")
                seen.setdefault(key, (s.folder, s.name))
            out.append(s)
    return out, problems


# -- matching -----------------------------------------------------------------------------------
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


def _match(students: list[Student], rows: list[Record], email_cols: list[int], id_cols: list[int],
           describe: Any, manual: Mapping[str, str] | None = None,
           manual_cols: Sequence[int] = ()) -> tuple[dict[int, Student], list[str]]:
    """Row index -> student: a tutor's match first (``manual``: a student's id or e-mail -> a
    value of one of the row's identity columns), then by e-mail, then by id. A problem, naming
    the student, for every doubt; that student is left out.

    Identities are compared by their skeletons (NFKC, case folded, invisible characters dropped,
    look-alike letters folded: grader/cleantext.py's :func:`~grader.cleantext.skeleton`), so a
    look-alike of a row's e-mail address finds that row, and then conflicts: a row is a conflict
    when the student's e-mail or id is written with other characters than the row's (the Kelvin
    sign for K), or when the row holds a student id and the student's is not it. A tutor's own
    match settles a conflict."""
    by_email: dict[str, list[int]] = {}
    by_id: dict[str, list[int]] = {}
    by_any: dict[str, list[int]] = {}
    for k, rec in enumerate(rows):
        for c in email_cols:
            v = skeleton(rec.value(c))
            if v:
                by_email.setdefault(v, []).append(k)
        for c in id_cols:
            v = skeleton(rec.value(c))
            if v:
                by_id.setdefault(v, [])
                if k not in by_id[v]:
                    by_id[v].append(k)
        for c in {*email_cols, *id_cols, *manual_cols}:
            v = rec.value(c).strip().casefold()
            if v and k not in by_any.setdefault(v, []):
                by_any[v].append(k)
    manual = {k.strip().casefold(): v.strip().casefold() for k, v in (manual or {}).items()}
    matched: dict[int, Student] = {}
    problems: list[str] = []
    for s in students:
        who = (f"{visible(s.name)} ({visible(s.student_id) or 'no id'}, {visible(s.email) or 'no e-mail'}) "
               f"of {s.submission}")
        hand = manual.get(s.student_id.strip().casefold()) or manual.get(s.email.strip().casefold())
        if hand is not None:
            found = by_any.get(hand, [])
            if len(found) != 1:
                problems.append(f"{who}: your match --match to '{hand}' finds {len(found)} rows; give a value of one "
                                "row's identity column (e.g. the Identifier, the e-mail address or the ID)")
                continue
            row: int | None = found[0]
        else:
            e_rows = by_email.get(skeleton(s.email), []) if s.email else []
            i_rows = by_id.get(skeleton(s.student_id), []) if s.student_id else []
            if len(e_rows) > 1 or (not e_rows and len(i_rows) > 1):
                found = e_rows if len(e_rows) > 1 else i_rows
                problems.append(f"{who} matches several rows ({', '.join(describe(rows[k]) for k in found)}); "
                                "choose one with --match")
                continue
            others = [k for k in i_rows if e_rows and k != e_rows[0]]
            if others:
                problems.append(f"{who}: the e-mail address matches {describe(rows[e_rows[0]])} but the student id "
                                f"(also) matches {', '.join(describe(rows[k]) for k in others)}; choose one with "
                                "--match")
                continue
            row = e_rows[0] if e_rows else i_rows[0] if i_rows else None
        if row is None:
            problems.append(f"{who} is not in the file (no row with this e-mail address or student id); if the "
                            f"student is there under another address: --match '{s.student_id or s.email}=<the row's "
                            "e-mail address or identifier>'")
            continue
        conflict = "" if hand is not None else _identity_conflict(s, rows[row], email_cols, id_cols)
        if conflict:
            problems.append(f"{who} conflicts with {describe(rows[row])}: {conflict}; the row is left as it is "
                            f"until a tutor settles who this is (--match '{s.student_id or s.email}=<the row's "
                            "identifier>' if it is this student)")
            continue
        if row in matched and matched[row].folder != s.folder:
            problems.append(f"{describe(rows[row])} matches {who} and {matched[row].name} of "
                            f"{matched[row].submission}; choose with --match")
            continue
        matched[row] = s
    return matched, problems


def _ascii_lower(text: str) -> str:
    return text.strip().translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _identity_conflict(s: Student, rec: Record, email_cols: list[int], id_cols: list[int]) -> str:
    """Why the row a student matched may be someone else's ('' when it is theirs)."""
    emails = [rec.value(c).strip() for c in email_cols if rec.value(c).strip()]
    # a column that is both (Canvas's SIS Login ID) is an e-mail-like login, not the student id
    ids = [rec.value(c).strip() for c in id_cols if c not in email_cols and rec.value(c).strip()]
    same = [e for e in emails if skeleton(e) == skeleton(s.email)] if s.email else []
    if same and all(_ascii_lower(e) != _ascii_lower(s.email) for e in same):
        return (f"the e-mail address '{visible(s.email)}' only looks like the row's '{visible(same[0])}' "
                "(other characters)")
    same_id = [i for i in ids if skeleton(i) == skeleton(s.student_id)] if s.student_id else []
    if same_id and all(i != s.student_id.strip() for i in same_id):
        return f"the student id '{visible(s.student_id)}' only looks like the row's '{visible(same_id[0])}'"
    if s.student_id and ids and not same_id:
        return f"the row's student id is {', '.join(ids)}, the group cell says {visible(s.student_id)}"
    return ""


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


def _fill(sheet: Sheet, cols: Columns, rows: list[Record], results: Sequence[Mapping[str, Any]],
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
    matched, more = _match(students, rows, cols.emails, cols.ids, cols.describe, manual, [cols.label])
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


def write_atomic_bytes(path: Path, data: bytes) -> None:
    """Write then rename: the platform's file is either the old one or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finish(sheet: Sheet, changes: list[tuple[Field, str]], to: Path | None) -> FillOutcome:
    new = splice(sheet.text, [(f, quote_like(v, f, sheet.delimiter)) for f, v in changes])
    data = sheet.encode(new)
    outcome = FillOutcome(to, changed=sum(1 for f, v in changes if f.value != v), text=data)
    if to is not None:
        write_atomic_bytes(to, data)
    return outcome


def fill_moodle(path: Path, results: Sequence[Mapping[str, Any]], to: Path | None,
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


def fill_canvas(path: Path, results: Sequence[Mapping[str, Any]], to: Path | None,
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
