"""The tutors' scoring sheet as read back (``grade scores``; grader/tutors/scores.py imports it).

The sheet (written by ``grade review``) has a row per submission and question with the columns
``folder``, ``submission``, ``question``, ``max_points``, ``suggested``, ``points``, ``comment``.
Rows whose ``points`` cell is empty are skipped. The whole file is parsed by the csv module
(:func:`parse_sheet`; its dialect sniffed from the whole sample), so sheets saved by Excel (``;``,
UTF-8 BOM, CRLF, ``,`` decimals), LibreOffice and Python round-trip exactly: a comment with quotes,
separators, line breaks or a leading ``=`` arrives as the tutor wrote it. The whole sheet is
checked (:func:`read_sheet`) before anything is stored; every problem is reported with its row
number (the header is row 1, as a spreadsheet shows it; a row holding a line break counts as one
row), and :class:`~grader.errors.SheetError` lists them all. A row's folder may be a pseudonym
of a blind sheet (grader/tutors/privacy.py). :func:`check_score` is the one check of a written
answer's score, shared by the sheet and ``grade serve``.
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import SheetError, UsageError
from grader.folder.grades import SHEET_COLUMNS, restore
from grader.result import SubmissionResult

MAX_SHEET_MB = 50  # a scoring sheet is a few hundred rows; a larger file is a mistake, not work

@dataclass(frozen=True)
class Score:
    row: int
    folder: str
    submission: str
    question: str
    points: float
    comment: str

def parse_points(text: str) -> float | None:
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
    points = parse_points(raw_points)
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


@dataclass
class Lookup:
    """The folder's results by folder (or a blind sheet's pseudonym) and by submission."""

    by_folder: dict[str, SubmissionResult]
    by_submission: dict[str, list[SubmissionResult]]
    aliases: Mapping[str, str]

    @classmethod
    def of(cls, results: Sequence[SubmissionResult], aliases: Mapping[str, str] | None) -> Lookup:
        by_submission: dict[str, list[SubmissionResult]] = {}
        for r in results:
            by_submission.setdefault(r.submission, []).append(r)
        return cls({r.folder: r for r in results}, by_submission, aliases or {})

    def result(self, folder: str, submission: str) -> SubmissionResult | str:
        """The result a row names (by folder, else by submission), or the problem (text)."""
        if folder:
            result = self.by_folder.get(folder) or self.by_folder.get(self.aliases.get(folder, ""))
            if result is None:
                return f"unknown submission folder '{folder}' (not in this output folder)"
            if submission and submission != result.submission:
                return f"folder '{folder}' holds '{result.submission}', not '{submission}'"
            return result
        if not submission:
            return "neither a folder nor a submission is given"
        matches = self.by_submission.get(submission, [])
        if not matches:
            return f"unknown submission '{submission}' (not in this output folder)"
        if len(matches) > 1:
            return f"'{submission}' names several folders; fill in the folder column"
        return matches[0]


def _header(sheet: Path, rows: Sequence[list[str]]) -> list[str]:
    """The sheet's columns (lower case), or :class:`SheetError` where needed ones are missing."""
    header = [h.strip().lower() for h in (rows[0] if rows else [])]
    missing = [c for c in ("question", "points") if c not in header]
    if missing or not ({"folder", "submission"} & set(header)):
        need = missing + ([] if {"folder", "submission"} & set(header) else ["folder (or submission)"])
        raise SheetError(str(sheet), [f"row 1 (the header): the column(s) {', '.join(need)} are missing; "
                                      f"the sheet of `grade review` has: {', '.join(SHEET_COLUMNS)}"])
    return header


def _cells(header: list[str], cells: list[str]) -> dict[str, str]:
    """A row by column. The grader's own cells are stripped; the comment is kept exactly as the
    tutor wrote it (less the apostrophe `grade review` put before a leading = + - @)."""
    row = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
    if "comment" in header and header.index("comment") < len(cells):
        row["comment"] = restore(cells[header.index("comment")])
    for key in ("folder", "submission"):
        if key in row:
            row[key] = restore(row[key])
    return row


def read_sheet(sheet: Path, results: list[SubmissionResult],
               aliases: Mapping[str, str] | None = None) -> list[Score]:
    """Every scored row of ``sheet``, checked against ``results``; :class:`SheetError` lists all
    problems at once. ``aliases`` maps the pseudonyms of a blind sheet (grader/tutors/privacy.py) to folders."""
    rows = parse_sheet(sheet)
    header = _header(sheet, rows)
    lookup = Lookup.of(results, aliases)
    problems: list[str] = []
    scores: list[Score] = []
    seen: dict[tuple[str, str], int] = {}
    for number, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        row = _cells(header, cells)
        result = lookup.result(row.get("folder", ""), row.get("submission", ""))
        qid, comment = row.get("question", ""), row.get("comment", "")
        points, problem = check_score(result, qid, row.get("points", ""), comment) \
            if isinstance(result, SubmissionResult) else (None, result)
        if problem:
            problems.append(f"row {number}: {problem}")
            continue
        if points is None or not isinstance(result, SubmissionResult):
            continue
        scored = (result.folder, qid)
        if scored in seen:
            problems.append(f"row {number}: {qid} of '{result.submission}' is scored again (first in row "
                            f"{seen[scored]})")
            continue
        seen[scored] = number
        scores.append(Score(number, result.folder, result.submission, qid, points, comment))
    if problems:
        raise SheetError(str(sheet), problems)
    return scores
