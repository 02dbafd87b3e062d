"""Who is who between the grades and a learning platform's file (grader/tutors/platforms.py): the
students of the folder's results, and each student's row of the platform's file.

:func:`students_of` lists every member of every result whom ``grades.csv`` grades (a member the
file name does not name, the platform does not name and no tutor confirmed gets no grade, as in
``grades.csv``), with the points and the platform's comment (:func:`feedback_for`); a student in
two groups is a problem. :func:`match` finds each student's row: a tutor's match first (``--match``:
a student's id or e-mail -> a value of one of the row's identity columns), then by e-mail, then by
student id, never by name. Identities are compared by their skeletons (NFKC, case folded,
invisible characters dropped, look-alike letters folded: grader/cleantext.py's
:func:`~grader.cleantext.skeleton`), so a look-alike of a row's e-mail address finds that row, and
then conflicts: a row is a conflict when the student's e-mail or id is written with other
characters than the row's (the Kelvin sign for K), or when the row holds a student id and the
student's is not it. A tutor's own match settles a conflict. Every doubt (no row, several rows,
e-mail and id pointing at different rows, a conflict, a row matched by two groups) is a problem
naming the student, and that student is left out.
"""
from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from grader.cleantext import skeleton
from grader.folder.grades import visible
from grader.result import SubmissionResult
from grader.tutors.platforms_csv import Record


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


def pending_written(result: SubmissionResult) -> list[str]:
    """The written answers of a graded result still waiting for a tutor."""
    if result.status != "graded":
        return []
    return [qid for qid, q in result.questions.items() if q.written and q.status == "pending"]


def feedback_for(result: SubmissionResult, partial: bool = False) -> str:
    """The platform's comment (HTML, every text escaped): the total, why a submission got 0
    points, each question's points, one line per failing check, each tutor's comment by
    question, and, where written answers are still pending (``partial``), which ones."""
    def e(text: str) -> str:
        return html.escape(text, quote=False)  # element text: quotes are plain there

    total = f"Sheet 11: {points_text(result.points)} of {points_text(result.max_points)} points"
    pending = pending_written(result)
    lines = [e(total + (" so far (provisional)." if partial and pending else "."))]
    if partial and pending:
        lines.append(e(f"Not scored yet: {', '.join(pending)}; the grade will change when they are."))
    if result.status != "graded" and result.message:
        lines.append(e(" ".join(result.message.split())))
    for qid, q in result.questions.items():
        shown = "pending" if q.status == "pending" else f"{points_text(q.points)} / {points_text(q.max_points)}"
        lines.append(f"<b>{e(qid)}</b>: {e(shown)}")
        for c in q.cases:
            if not c.passed:
                why = " ".join((c.message or "failed").split())[:300]
                lines.append(f"&nbsp;&nbsp;- {e(c.name)}: {e(why)}")
        if q.comment:
            lines.append(f"&nbsp;&nbsp;{e(' '.join(q.comment.split()))}")
    return "<br>".join(lines)


def students_of(results: Iterable[SubmissionResult], confirmed: Mapping[str, Iterable[str]] | None = None,
                skipped: list[str] | None = None, partial: bool = False) -> tuple[list[Student], list[str]]:
    """Every member of every result whom grades.csv grades, and the problems (a student in two
    groups, by name). A member the file name does not name, the platform does not name and no
    tutor confirmed gets no grade, as in grades.csv; they are added to ``skipped``."""
    from grader.folder.grades import members
    out: list[Student] = []
    problems: list[str] = []
    seen: dict[str, tuple[str, str]] = {}
    for r in results:
        pending = tuple(pending_written(r))
        for m in members(r, (confirmed or {}).get(r.folder, ())):
            if not m.confirmed:
                if skipped is not None:
                    skipped.append(f"{m.name} ({m.student_id}) of {r.submission}: not in the file name, not named "
                                   "by the platform and not confirmed (grade confirm), so no grade, as in grades.csv")
                continue
            s = Student(m.name, m.student_id.strip(), m.email.strip(), r.folder, r.submission, r.status,
                        r.points, r.max_points, feedback_for(r, partial), pending, r.message)
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


@dataclass
class RowIndex:
    """The platform's rows by their identities: by e-mail and by student id (skeletons), and by
    any identity value as typed (case folded) for a tutor's own matches."""

    by_email: dict[str, list[int]] = field(default_factory=dict)
    by_id: dict[str, list[int]] = field(default_factory=dict)
    by_any: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Sequence[Record], email_cols: Sequence[int], id_cols: Sequence[int],
           manual_cols: Sequence[int]) -> RowIndex:
        index = cls()
        for k, rec in enumerate(rows):
            for c in email_cols:
                v = skeleton(rec.value(c))
                if v:
                    index.by_email.setdefault(v, []).append(k)
            for c in id_cols:
                v = skeleton(rec.value(c))
                if v and k not in index.by_id.setdefault(v, []):
                    index.by_id[v].append(k)
            for c in {*email_cols, *id_cols, *manual_cols}:
                v = rec.value(c).strip().casefold()
                if v and k not in index.by_any.setdefault(v, []):
                    index.by_any[v].append(k)
        return index


def _row_of(s: Student, index: RowIndex, rows: Sequence[Record], hand: str | None, who: str,
            describe: Callable[[Record], str]) -> int | str | None:
    """The row of student ``s``: by a tutor's match ``hand``, else by e-mail, else by id; a
    problem (text) where that is in doubt; None where no row has the student."""
    if hand is not None:
        found = index.by_any.get(hand, [])
        if len(found) != 1:
            return (f"{who}: your match --match to '{hand}' finds {len(found)} rows; give a value of one "
                    "row's identity column (e.g. the Identifier, the e-mail address or the ID)")
        return found[0]
    e_rows = index.by_email.get(skeleton(s.email), []) if s.email else []
    i_rows = index.by_id.get(skeleton(s.student_id), []) if s.student_id else []
    if len(e_rows) > 1 or (not e_rows and len(i_rows) > 1):
        found = e_rows if len(e_rows) > 1 else i_rows
        return (f"{who} matches several rows ({', '.join(describe(rows[k]) for k in found)}); "
                "choose one with --match")
    others = [k for k in i_rows if e_rows and k != e_rows[0]]
    if others:
        return (f"{who}: the e-mail address matches {describe(rows[e_rows[0]])} but the student id "
                f"(also) matches {', '.join(describe(rows[k]) for k in others)}; choose one with --match")
    return e_rows[0] if e_rows else i_rows[0] if i_rows else None


def match(students: Sequence[Student], rows: Sequence[Record], email_cols: Sequence[int], id_cols: Sequence[int],
          describe: Callable[[Record], str], manual: Mapping[str, str] | None = None,
          manual_cols: Sequence[int] = ()) -> tuple[dict[int, Student], list[str]]:
    """Row index -> student, and a problem naming the student for every doubt (see the module
    docstring); that student is left out."""
    index = RowIndex.of(rows, email_cols, id_cols, manual_cols)
    by_hand = {k.strip().casefold(): v.strip().casefold() for k, v in (manual or {}).items()}
    matched: dict[int, Student] = {}
    problems: list[str] = []
    for s in students:
        who = (f"{visible(s.name)} ({visible(s.student_id) or 'no id'}, {visible(s.email) or 'no e-mail'}) "
               f"of {s.submission}")
        hand = by_hand.get(s.student_id.strip().casefold()) or by_hand.get(s.email.strip().casefold())
        row = _row_of(s, index, rows, hand, who, describe)
        if isinstance(row, str):
            problems.append(row)
            continue
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


def _identity_conflict(s: Student, rec: Record, email_cols: Sequence[int], id_cols: Sequence[int]) -> str:
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
