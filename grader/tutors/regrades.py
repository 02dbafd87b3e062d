"""Regrade requests: a student contests a question's points; a tutor records, replays and resolves it.

Recording. A request names the student (a student id or an e-mail), the question, the student's
words and the day it was asked. It comes from ``grade serve`` (a form on a group's page and on the
queue page ``/requests``) or from a CSV (``grade requests import FILE -o DIR``; the learning
platform's export or a tutor's own file: columns for the student id and/or e-mail, ``question``,
the text and the date; header names as :data:`COLUMNS` lists, any case). The student is matched to
a group here, in the grader (:func:`match_student`: an id exactly, an e-mail in any case, against
every group's members); the tutor never picks a group by name. A CSV is checked whole before
anything is stored: every problem is named with its row number and nothing is recorded while one
remains; a request already recorded (same group, question, student, words and day) is not
recorded twice. Each request is a row of the gradebook's chained ``regrade_requests`` table
(grader/folder/gradebook.py; ``grade verify`` checks it).

The queue (:func:`queue`; ``grade serve`` ``/requests``, ``grade requests list -o DIR``) is blind:
each request under its group's pseudonym (grader/tutors/privacy.py), its words with the group's
names, ids and e-mails replaced by ``[hidden]``, never the student's id or e-mail. Beside each
request: the latest replay of the group's submission (grader/batch/replay.py, run on demand with
``grade requests replay ID`` or from the queue page; the submitted file is found by its SHA-256 in
the folder the tutor names, :func:`find_submission`), stored with the request (:func:`store_replay`):
``same``, each difference, or why it could not be replayed.

Resolving (:func:`resolve`) needs a reason, which the students read, and an outcome: ``upheld`` with
new points for the question, stored through the same paths as every other score (a written
answer's score, grader/tutors/scores.py's ``manual_scores`` and ``score_history``; an automatic
question's points set by hand, ``point_overrides``), in the same transaction as the resolution; or
``declined``. A request is resolved once. The group's report then shows each request's question,
the day it was asked, the outcome, the day it was decided and the reason (and, upheld, the points
before and after): never the request's words, the replay or who resolved it
(grader/tutors/scores.py's ``regrade_outcomes``). ``grade privacy`` lists the table; ``grade purge``
removes a group's requests with the rest of its data.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from grader.errors import ScoreRefused, SheetError, UsageError
from grader.folder.outdir import OutDir
from grader.result import SubmissionResult
from grader.tutors.privacy import course_pseudonyms, identity_tokens, redactor, resolve_group
from grader.tutors.scores import (
    check_override,
    check_reason,
    check_score,
    parse_sheet,
    render_folder,
)

MAX_TEXT = 4000           # characters of a request's words
MAX_FILES_SEARCHED = 5000  # files hashed at most while looking for a submission by its SHA-256
OUTCOMES = ("upheld", "declined")
#: A CSV's columns: what each is called by platforms and tutors (header cells compared in lower case).
COLUMNS = {
    "student_id": ("student_id", "student id", "id number", "idnumber", "matrikelnummer", "matriculation number",
                   "student number", "sis user id"),
    "email": ("email", "e-mail", "email address", "e-mail address", "mail"),
    "question": ("question", "frage", "aufgabe", "task"),
    "text": ("text", "request", "message", "comment", "reason", "anliegen"),
    "date": ("date", "requested", "requested at", "submitted", "time", "datum"),
    "group": ("group", "pseudonym"),
}
_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S",
                 "%d.%m.%Y", "%d.%m.%Y %H:%M", "%d/%m/%Y", "%d/%m/%Y %H:%M")


def parse_date(text: str) -> float | None:
    """A request's date as a tutor or a platform writes it (``2026-12-01``, ``2026-12-01 14:30``,
    ISO with ``T``, ``01.12.2026``, ``01/12/2026``), local time; None where it is none of these."""
    raw = " ".join(text.split())
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).timestamp()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return None


def match_student(results: Sequence[SubmissionResult], who: str) -> list[str]:
    """The folders whose group holds the student ``who``: a student id (exactly) or an e-mail (any
    case). Matching happens here, so no page or sheet ever asks a tutor to pick a group by name."""
    who = who.strip()
    if not who:
        return []
    if "@" in who:
        wanted = who.casefold()
        return [r.folder for r in results
                if any(str(m.get("email", "")).strip().casefold() == wanted for m in r.group)]
    return [r.folder for r in results if any(str(m.get("student_id", "")).strip() == who for m in r.group)]


def _clean_text(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


@dataclass(frozen=True)
class Draft:
    """A request checked and matched, not yet stored."""

    folder: str
    question: str
    student: str
    text: str
    requested_at: float


def check_request(results: Mapping[str, SubmissionResult], labels: Mapping[str, str], who: str, question: str,
                  text: str, requested: str, group: str = "", now: float | None = None) -> Draft:
    """One request checked against the folder's results: the student matched to one group (the one
    ``group`` names, a pseudonym or folder, where given), a question of the rubric, words of 1 to
    :data:`MAX_TEXT` characters, a date not in the future. :class:`ScoreRefused` says what is
    wrong, naming groups by pseudonym only."""
    who = " ".join(who.split())
    if not who:
        raise ScoreRefused("give the student's id or e-mail: the request is matched to a group by it")
    folders = match_student(list(results.values()), who)
    if group:
        try:
            wanted = resolve_group(group, labels)
        except UsageError as exc:
            raise ScoreRefused(str(exc)) from None
        if wanted not in folders:
            raise ScoreRefused(f"the student '{who}' is not a member of {labels.get(wanted, 'this group')}; "
                               "check the id or e-mail")
        folders = [wanted]
    if not folders:
        raise ScoreRefused(f"no group of this course has a member with the id or e-mail '{who}'; "
                           "check it against the platform")
    if len(folders) > 1:
        names = ", ".join(labels.get(f, "?") for f in folders)
        raise ScoreRefused(f"'{who}' is a member of several groups ({names}); say which one (a group column with "
                           "its pseudonym, or record it from that group's page in grade serve)")
    result = results[folders[0]]
    question = question.strip()
    if question not in result.questions:
        raise ScoreRefused(f"unknown question '{question}' (the questions are {', '.join(result.questions)})")
    text = _clean_text(text)
    if not text:
        raise ScoreRefused("the request's text is empty: copy in what the student wrote")
    if len(text) > MAX_TEXT:
        raise ScoreRefused(f"a request of at most {MAX_TEXT} characters, please")
    at = parse_date(requested)
    if at is None:
        raise ScoreRefused(f"the date '{requested.strip()}' is not a date (write it as YYYY-MM-DD, or "
                           "YYYY-MM-DD HH:MM)")
    if at > (now or time.time()) + 86400:
        raise ScoreRefused(f"the date {requested.strip()} is in the future")
    return Draft(folders[0], question, who, text, at)


def _course(out: OutDir, secret: bytes) -> tuple[dict[str, SubmissionResult], dict[str, str]]:
    results = {r.folder: r for r in out.results()}
    return results, course_pseudonyms(out, secret)


def record_request(out: OutDir, secret: bytes, who: str, question: str, text: str, requested: str, tutor: str,
                   source: str = "grade serve", group: str = "", now: float | None = None) -> tuple[int, bool]:
    """Check and store one request (see :func:`check_request`), then draw the group's report again
    (it shows the request as received); ``(id, recorded now)``."""
    results, labels = _course(out, secret)
    draft = check_request(results, labels, who, question, text, requested, group, now)
    with out.gradebook() as book:
        request_id, new = book.add_regrade_request(draft.folder, draft.question, draft.student, draft.text,
                                                   draft.requested_at, source, tutor, now or time.time())
    if new:
        render_folder(out, draft.folder)
    return request_id, new


@dataclass
class ImportOutcome:
    recorded: list[tuple[int, str, str]] = field(default_factory=list)  # (id, pseudonym, question)
    already: int = 0


def _column(header: list[str], name: str) -> int | None:
    for i, cell in enumerate(header):
        if cell in COLUMNS[name]:
            return i
    return None


def import_requests(csv_path: Path, out: OutDir, secret: bytes, tutor: str,
                    now: float | None = None) -> ImportOutcome:
    """Every request of a CSV, checked whole first (:class:`SheetError` lists each bad row; nothing
    is stored then), then recorded in one transaction; requests recorded before are skipped."""
    rows = parse_sheet(csv_path, "the requests file", frozenset({"question"}),
                       "give the platform's export of the requests")
    header = [" ".join(h.split()).lower() for h in (rows[0] if rows else [])]
    at = {name: _column(header, name) for name in COLUMNS}
    missing = [name for name in ("question", "text", "date") if at[name] is None]
    if at["student_id"] is None and at["email"] is None:
        missing.insert(0, "student_id or email")
    if missing:
        raise SheetError(str(csv_path), [
            f"row 1 (the header): no column for {', '.join(missing)}; the columns may be called "
            + "; ".join(f"{k}: {', '.join(v[:3])}" for k, v in COLUMNS.items() if k != "group")])
    results, labels = _course(out, secret)
    stamp = now or time.time()
    drafts: list[Draft] = []
    problems: list[str] = []

    def cell(cells: list[str], name: str) -> str:
        i = at[name]
        return cells[i] if i is not None and i < len(cells) else ""
    for number, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        who = cell(cells, "student_id").strip() or cell(cells, "email").strip()
        try:
            drafts.append(check_request(results, labels, who, cell(cells, "question"), cell(cells, "text"),
                                        cell(cells, "date"), cell(cells, "group").strip(), stamp))
        except ScoreRefused as exc:
            problems.append(f"row {number}: {exc}")
    if problems:
        raise SheetError(str(csv_path), problems)
    outcome = ImportOutcome()
    with out.gradebook() as book:
        with book.transaction():
            for d in drafts:
                request_id, new = book.add_regrade_request(d.folder, d.question, d.student, d.text, d.requested_at,
                                                           csv_path.name, tutor, stamp)
                if new:
                    outcome.recorded.append((request_id, labels.get(d.folder, "?"), d.question))
                else:
                    outcome.already += 1
    for folder in dict.fromkeys(d.folder for d in drafts):
        render_folder(out, folder)
    return outcome


# -- the queue ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueItem:
    """A request as the blind queue shows it. ``folder`` is for the server's own use (the group's
    address); nothing shows it."""

    id: int
    folder: str
    label: str
    question: str
    requested: str
    text: str
    outcome: str
    points: float | None       # the question's points now
    max_points: float | None
    written: bool
    reason: str = ""
    resolved_by: str = ""
    decided: str = ""
    old_points: float | None = None
    new_points: float | None = None
    replay: Mapping[str, Any] | None = None   # {"state": same|differs|refused, "lines", "notes", "at"}


def _when(at: float | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return time.strftime(fmt, time.localtime(at)) if at else ""


def queue(out: OutDir, secret: bytes, open_only: bool = False) -> list[QueueItem]:
    """Every request, open ones first, then the resolved, each oldest first; blind (see the module
    docstring)."""
    results, labels = _course(out, secret)
    with out.gradebook() as book:
        rows = book.regrade_requests()
    items = []
    for row in rows:
        if open_only and row["outcome"] != "open":
            continue
        result = results.get(row["folder"])
        data = result.to_json() if result else {"folder": row["folder"]}
        redact = redactor(sorted({*identity_tokens(data), row["student"], row["student"].split("@")[0]} - {""},
                                 key=lambda t: (-len(t), t)))
        replay: dict[str, Any] | None = None
        if row["replay_json"]:
            stored = json.loads(row["replay_json"])
            replay = {"state": stored.get("state", ""), "lines": [redact(str(x)) for x in stored.get("lines", [])],
                      "notes": [redact(str(x)) for x in stored.get("notes", [])], "at": _when(row["replayed_at"])}
        q = result.questions.get(row["question"]) if result else None
        items.append(QueueItem(
            int(row["id"]), row["folder"], labels.get(row["folder"], "Group ?"), row["question"],
            _when(row["requested_at"], "%Y-%m-%d"), redact(row["text"]), row["outcome"],
            round(q.points, 4) if q else None, float(q.max_points) if q else None, bool(q and q.written),
            redact(row["reason"]), row["resolved_by"], _when(row["resolved_at"]), row["old_points"],
            row["new_points"], replay))
    items.sort(key=lambda i: (i.outcome != "open", i.id))
    return items


# -- replays ------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_submission(result: SubmissionResult, where: Path, label: str) -> Path:
    """The submitted file ``result`` was graded from, in ``where`` (that file itself, or a folder
    holding the submissions): the file of the same name first, else every regular file (links are
    not followed; at most :data:`MAX_FILES_SEARCHED`) by its SHA-256. Only the SHA-256 decides:
    no name from the result becomes a path unchecked."""
    if where.is_file():
        if _sha256(where) != result.sha256:
            raise UsageError(f"{where} is not the file {label} was graded from (its SHA-256 differs); give the "
                             "submission as it was graded, or the folder of the submissions")
        return where
    if not where.is_dir():
        raise UsageError(f"{where} is neither a file nor a folder; give the folder that holds the submissions "
                         "as they were graded (--submissions)")
    name = result.submission
    if name and "/" not in name and "\\" not in name and name not in (".", ".."):
        same = where / name
        if same.is_file() and not same.is_symlink() and _sha256(same) == result.sha256:
            return same
    for n, path in enumerate(p for p in sorted(where.rglob("*")) if p.is_file() and not p.is_symlink()):
        if n >= MAX_FILES_SEARCHED:
            break
        if _sha256(path) == result.sha256:
            return path
    raise UsageError(f"no file in {where} is the one {label} was graded from (none has its SHA-256 "
                     f"{result.sha256[:12]}...); give the folder that holds the submissions as they were graded")


def request_for_replay(out: OutDir, secret: bytes, request_id: int) -> tuple[SubmissionResult, str]:
    """The stored result of the request's group and its pseudonym; :class:`UsageError` where
    there is no such request (or its group has no result any more)."""
    results, labels = _course(out, secret)
    with out.gradebook() as book:
        row = book.regrade_request(request_id)
    if row is None:
        raise UsageError(f"there is no regrade request {request_id}; `grade requests list -o {out}` lists them")
    result = results.get(row["folder"])
    if result is None:
        raise UsageError(f"request {request_id}: its group has no result in {out} any more")
    return result, labels.get(row["folder"], "Group ?")


def store_replay(out: OutDir, request_id: int, state: str, lines: Sequence[str], notes: Sequence[str] = (),
                 now: float | None = None) -> None:
    """Keep a replay's outcome beside the request: ``state`` same, differs or refused; ``lines``
    the differences or why it was refused."""
    assert state in ("same", "differs", "refused")
    data = json.dumps({"state": state, "lines": list(lines), "notes": list(notes)}, ensure_ascii=False)
    with out.gradebook() as book:
        if not book.record_replay(request_id, data, now or time.time()):
            raise UsageError(f"there is no regrade request {request_id}")


# -- resolving ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Resolution:
    id: int
    label: str
    question: str
    outcome: str
    old_points: float | None
    new_points: float | None


def resolve(out: OutDir, secret: bytes, request_id: int, outcome: str, reason: str, tutor: str,
            raw_points: str = "", now: float | None = None) -> Resolution:
    """Resolve an open request with a reason (required; the students read it) and an outcome:
    ``upheld`` with new points for the question (a written answer's score, or an automatic
    question's points set by hand: the same checks and tables as every other score), stored in
    one transaction with the resolution; or ``declined``. Then the group's report is drawn again."""
    if outcome not in OUTCOMES:
        raise ScoreRefused("choose an outcome: upheld (with new points) or declined")
    reason = check_reason(reason)
    results, labels = _course(out, secret)
    with out.gradebook() as book:
        row = book.regrade_request(request_id)
    if row is None:
        raise UsageError(f"there is no regrade request {request_id}; `grade requests list -o {out}` lists them")
    label = labels.get(row["folder"], "Group ?")
    if row["outcome"] != "open":
        raise ScoreRefused(f"request {request_id} was resolved already ({row['outcome']} by {row['resolved_by']} "
                           f"at {_when(row['resolved_at'])}); a further request is recorded as a new one")
    result = results.get(row["folder"])
    if result is None:
        raise UsageError(f"request {request_id}: its group has no result in {out} any more")
    qid = row["question"]
    q = result.questions[qid]
    old = round(q.points, 4)
    points: float | None = None
    if outcome == "upheld":
        if q.written:
            points, problem = check_score(result, qid, raw_points, "")
            if problem is not None or points is None:
                raise ScoreRefused(problem or f"upheld: give the new points for {qid} "
                                              f"(0 to {float(q.max_points):g})")
        else:
            points, reason = check_override(result, qid, raw_points, reason)
        if math.isclose(points, old, abs_tol=1e-9):
            raise ScoreRefused(f"{qid} has {old:g} points already; upheld means new points (or decline it)")
    stamp = now or time.time()
    with out.gradebook() as book:
        with book.transaction():
            if points is not None and q.written:
                comment = book.manual_scores(row["folder"]).get(row["folder"], {}).get(qid, {}).get("comment", "")
                book.set_manual_score(row["folder"], qid, result.submission, points, comment, tutor,
                                      f"regrade request {request_id}", stamp)
            elif points is not None:
                book.set_override(row["folder"], qid, result.submission, points, reason, tutor, stamp)
            if not book.resolve_regrade_request(request_id, outcome, reason, old if points is not None else None,
                                                points, tutor, stamp):
                raise ScoreRefused(f"request {request_id} was resolved by someone else meanwhile; nothing was "
                                   "stored. Reload the queue.")
    render_folder(out, row["folder"])
    return Resolution(request_id, label, qid, outcome, old if points is not None else None, points)

