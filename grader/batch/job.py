"""One submission of a batch: the :class:`Job` a worker is given, the steps after grading that
every result passes through (kept results again too), and the ``error`` result of a submission
that could not be graded.

- :func:`grade_job` grades one submission in a grading process and draws its pages; every failure
  of the steps after grading becomes an ``error`` result for that submission, never a stopped
  batch (a ``MemoryError`` is left to the worker, which reports the budget).
- :func:`post_grade` applies, on the typed result, the group's suspicious identities
  (:func:`suspicious_flags`), the late policy and the tutors' scores; it is idempotent.
- :func:`stopped_result` is a result made without grading: status ``error``, every question 0.

grader/batch/run.py is the front door: every name here is importable from there.
"""
from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from grader.batch.late import apply_late
from grader.cleantext import identity_problems, skeleton
from grader.folder.grades import suspicious, visible
from grader.folder.outdir import safe_pages
from grader.grade import Context, grade_submission
from grader.result import Flag, QuestionResult, SubmissionResult
from grader.rubric import Rubric
from grader.tutors.scores import apply_manual

__all__ = ["Job", "grade_job", "post_grade", "stopped_result", "suspicious_flags"]


@dataclass(frozen=True)
class Job:
    path: Path
    folder: str
    sha256: str
    # Late submissions (grader/batch/late.py): ISO times, only when a deadline was given.
    deadline: str | None = None
    submitted: str | None = None
    submitted_source: str = ""
    # The tutors' scores of this folder (gradebook), applied before the report is drawn.
    manual: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)



def stopped_result(rubric: Rubric, job: Job, message: str, detail: str = "",
                   submission: str | None = None) -> SubmissionResult:
    """An ``error`` result for ``job`` made without grading (every question 0 points)."""
    questions = {q.id: QuestionResult(q.id, q.title, 0.0, q.points, "auto" if q.automatic else "pending")
                 for q in rubric.questions.values()}
    return SubmissionResult(submission=submission or job.path.name, sha256=job.sha256, status="error", group=(),
                            questions=questions, flags=(), max_points=rubric.max_points, message=message,
                            tutor_detail=detail[-4000:], folder=job.folder, rubric_sha256=rubric.sha256)


def suspicious_flags(result: SubmissionResult) -> SubmissionResult:
    """A ``group.suspicious`` flag for a name, id or e-mail of the group cell that may pretend to
    be another (grader/cleantext.py's :func:`~grader.cleantext.identity_problems`): control, bidi
    or other invisible characters (U+202E makes a name read backwards), look-alike compatibility
    characters (the Kelvin sign for K), words mixing scripts (a Cyrillic "а" in "Alan"), and in an
    id or e-mail any character outside ASCII; also two members who read the same. Shown escaped."""
    found = []
    seen: dict[tuple[str, str], str] = {}
    for m in result.group:
        for key in ("name", "student_id", "email"):
            value = str(m.get(key, ""))
            problems = identity_problems(value, ascii_only=key != "name")
            chars = suspicious(value)
            if chars and not problems:
                problems = [f"characters {', '.join(chars)}"]
            if problems:
                found.append(f"{key} '{visible(value)}' holds {'; '.join(problems)}")
            same = (key, skeleton(value))
            if same[1] and key != "name" and seen.get(same, value) != value:
                found.append(f"{key} '{visible(value)}' reads the same as '{visible(seen[same])}'")
            seen.setdefault(same, value)
    kept = tuple(f for f in result.flags if f.code != "group.suspicious")
    if not found:
        return replace(result, flags=kept)
    message = ("the group cell holds identities that may pretend to be others: " + "; ".join(found)
               + "; a tutor must check who this group is")
    return replace(result, flags=(*kept, Flag("group.suspicious", None, message)))


def post_grade(result: SubmissionResult, job: Job, rubric: Rubric) -> SubmissionResult:
    """The steps after grading, on a typed result: the group's characters, the late policy, the
    tutors' scores. Idempotent, so a kept result passes through them again."""
    result = suspicious_flags(replace(result, folder=job.folder))
    deadline = datetime.fromisoformat(job.deadline) if job.deadline else None
    submitted = datetime.fromisoformat(job.submitted) if job.submitted else None
    result = apply_late(result, rubric.late, deadline, submitted, job.submitted_source)
    return apply_manual(result, job.manual)


def grade_job(job: Job, ctx: Context) -> tuple[SubmissionResult, dict[str, str]]:
    """Grade one submission and draw its pages; every failure becomes an ``error`` result."""
    result = grade_submission(job.path, ctx)
    try:
        result = post_grade(result, job, ctx.rubric)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad submission never stops a batch
        result = stopped_result(ctx.rubric, job, "the grader could not finish this submission; a tutor will "
                                "look at it", "".join(traceback.format_exception(exc)), result.submission)
    return result, safe_pages(result)
