"""The per-student grades table (``grades.csv``, ``grade export``) and the CSV safety rules every
CSV this grader writes follows.

Spreadsheets run a cell that starts with ``= + - @`` (or TAB/CR) as a formula; a student chooses
their name, e-mail and file name, so every text cell that could start one gets a leading
apostrophe (OWASP's "CSV injection" advice). Numbers stay numbers. :func:`restore` undoes
:func:`neutralise` exactly, so a sheet the grader wrote and a tutor filled in reads back as the
tutor's own text.

A group member named in the group cell but absent from the file name gets no points in the table
until a tutor confirms them (``grade confirm``): the row says ``unconfirmed`` instead.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from grader.cleantext import BIDI
from grader.result import SubmissionResult
from grader.submission.naming import Member, parse_filename

CSV_FIXED = ("student_id", "name", "email", "submission", "status")
# The tutors' scoring sheet (grade review writes it, grade scores reads it).
SHEET_COLUMNS = ("folder", "submission", "question", "max_points", "suggested", "points", "comment")
CSV_TAIL = ("points", "max_points", "flags")
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# A plain decimal number (what the grader writes for points, or an id); never a formula.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?")
UNCONFIRMED = "unconfirmed"  # the row status of a member not in the file name, until confirmed
NOT_GRADED = "not graded"    # the row status of a submission a stopped batch did not reach
NO_SUBMISSION = "no submission"  # a student of the roster (grade --roster) in no submission


def is_written(question: Mapping[str, Any]) -> bool:
    """A question of a result's JSON that a tutor scores (not checked automatically)."""
    return question.get("status") != "auto" and not question.get("checks")


def _needs(text: str) -> bool:
    rest = text.lstrip("'")
    return rest[:1] in TRIGGERS and not _NUMBER.fullmatch(rest)


def neutralise(text: str) -> str:
    """``text`` safe for a spreadsheet cell: a leading apostrophe where it could start a formula
    (or already starts with apostrophes before one, so :func:`restore` is exact)."""
    if _NUMBER.fullmatch(text):
        return text
    return "'" + text if _needs(text) else text


def restore(text: str) -> str:
    """The inverse of :func:`neutralise`: ``restore(neutralise(s)) == s`` for every ``s``."""
    if text.startswith("'") and _needs(text[1:]) and not _NUMBER.fullmatch(text[1:]):
        return text[1:]
    return text


def safe_csv(rows: Iterable[Iterable[object]]) -> str:
    """Rows as CSV text (RFC 4180: CRLF line ends, so a CR inside a cell is quoted too), every
    text cell neutralised."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in rows:
        writer.writerow([neutralise(c) if isinstance(c, str) else c for c in row])
    return buf.getvalue()


# -- characters that hide what a name says ------------------------------------------------------


def suspicious(text: str) -> list[str]:
    """The control, format and bidi characters of ``text`` (U+202E etc.), each as ``U+XXXX``."""
    found = [ch for ch in text if ch in BIDI or unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")]
    return [f"U+{ord(ch):04X}" for ch in dict.fromkeys(found)]


def visible(text: str) -> str:
    """``text`` with every suspicious character written out as ``<U+XXXX>``."""
    return "".join(f"<U+{ord(ch):04X}>" if suspicious(ch) else ch for ch in text)


# -- who is confirmed ---------------------------------------------------------------------------
def members(result: SubmissionResult, confirmed: Iterable[str] = ()) -> list[Member]:
    """The students a result grades: the group cell's members (confirmed where the file name
    names their id, the platform says they handed it in, or a tutor confirmed them), else the
    file name's pairs."""
    named = {i for _, i in parse_filename(result.submission).pairs}
    # ... or the learning platform says they handed it in (grader/submission/platform.py)
    ok = set(confirmed) | {str(u.get("member")) for u in (result.platform or {}).get("handed_in_by", [])
                           if u.get("member")}
    if result.group:
        return [Member(str(m.get("name", "")), str(m.get("student_id", "")), str(m.get("email", "")),
                       confirmed=str(m.get("student_id", "")) in named or str(m.get("student_id", "")) in ok)
                for m in result.group]
    pairs = parse_filename(result.submission).pairs
    return [Member(n, i, "", confirmed=True) for n, i in pairs] or [Member("", "", "", confirmed=True)]


def unconfirmed(results: Iterable[SubmissionResult],
                confirmed: Mapping[str, Iterable[str]]) -> list[tuple[SubmissionResult, Member]]:
    return [(r, m) for r in results for m in members(r, confirmed.get(r.folder, ())) if not m.confirmed]


def grade_rows(results: Iterable[SubmissionResult], question_ids: list[str],
               confirmed: Mapping[str, Iterable[str]] | None = None,
               not_reached: Iterable[str] = (),
               absent: Iterable[Mapping[str, str]] = ()) -> tuple[list[str], list[list[str]]]:
    """The header and one row per student (plain text, not yet neutralised); ``absent``: the
    roster's students in no submission (name, student_id, email), a ``no submission`` row each."""
    header = [*CSV_FIXED, *question_ids, *CSV_TAIL]
    rows: list[list[str]] = []
    for r in results:
        per_question = []
        for qid in question_ids:
            q = r.questions.get(qid)
            per_question.append("" if q is None or (q.status == "pending" and r.status == "graded")
                                else f"{round(q.points, 4):g}")
        codes = ";".join(dict.fromkeys(f.code for f in r.flags))
        for m in members(r, (confirmed or {}).get(r.folder, ())):
            ident = [visible(m.student_id), visible(m.name), visible(m.email), visible(r.submission)]
            if m.confirmed:
                rows.append([*ident, r.status, *per_question, f"{r.points:g}", f"{r.max_points:g}", codes])
            else:  # no grade for a student the file name does not name, until a tutor confirms them
                rows.append([*ident, UNCONFIRMED, *[""] * len(question_ids), "", f"{r.max_points:g}", codes])
    for name in not_reached:
        rows.append(["", "", "", visible(name), NOT_GRADED, *[""] * len(question_ids), "", "", ""])
    for p in absent:
        rows.append([visible(p.get("student_id", "")), visible(p.get("name", "")), visible(p.get("email", "")), "",
                     NO_SUBMISSION, *[""] * len(question_ids), "", "", ""])
    return header, rows


def grades_csv(results: Iterable[SubmissionResult], question_ids: list[str],
               confirmed: Mapping[str, Iterable[str]] | None = None, not_reached: Iterable[str] = (),
               absent: Iterable[Mapping[str, str]] = ()) -> str:
    """``grades.csv``: one row per student, every cell safe for a spreadsheet."""
    header, rows = grade_rows(results, question_ids, confirmed, not_reached, absent)
    return safe_csv([header, *rows])
