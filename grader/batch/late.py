"""Late submissions: a post-step on a typed result, applied by the batch before it is written.

The submission time comes from a manifest CSV (columns ``submission,time``, ISO-8601), else from
the learning platform's download (the time Moodle's zip entry carries; grader/submission/platform.py,
source ``platform``), else from the file's modification time. Canvas's own ``LATE`` marker is a
``late`` flag of its own (grader/submission/platform.py), as Canvas's due date is a deadline
given. The rubric's ``[late]`` policy decides what follows: ``none`` (nothing), ``flag`` (a
``late`` flag), ``per_day`` (the flag and ``per_day`` points off per started day) or ``zero`` (the
flag and no points). Without a deadline there is never a ``late`` flag. The step is idempotent:
it first removes what an earlier application left, so a result can be passed through it again with another deadline.
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from grader.errors import UsageError
from grader.result import Flag, LateNote, SubmissionResult
from grader.rubric import Late

DAY = 86400.0


def parse_time(text: str, what: str = "time") -> datetime:
    """An ISO-8601 time; without a zone it is the local time of this machine."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith("Z") else raw)
    except ValueError:
        raise UsageError(f"{what} '{text}' is not an ISO-8601 time such as 2024-02-01T23:59 "
                         "or 2024-02-01T23:59:00+01:00") from None
    if value.tzinfo is None:
        value = value.astimezone()  # local time
    return value


def read_manifest(path: Path) -> dict[str, datetime]:
    """``submission -> time`` from a CSV with the columns ``submission`` and ``time``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read the manifest {path}: {exc.strerror}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = {c.strip().lower() for c in reader.fieldnames or []}
    if not {"submission", "time"} <= columns:
        raise UsageError(f"the manifest {path} needs the columns 'submission' and 'time' "
                         f"(it has: {', '.join(sorted(columns)) or 'none'})")
    out: dict[str, datetime] = {}
    for number, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("submission"):
            continue
        out[Path(row["submission"]).name] = parse_time(row.get("time", ""), f"{path} row {number}: time")
    return out


def submission_time(path: Path, manifest: Mapping[str, datetime] | None) -> tuple[datetime, str]:
    """When ``path`` was handed in and where that came from (``manifest`` or ``mtime``)."""
    if manifest:
        for key in (path.name, path.stem):
            if key in manifest:
                return manifest[key], "manifest"
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).astimezone(), "mtime"


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes or not parts:
        parts.append(f"{minutes} min")
    return " ".join(parts)


def strip_late(result: SubmissionResult) -> SubmissionResult:
    """``result`` without what an earlier application of the late policy left."""
    return replace(result, late=None, flags=tuple(f for f in result.flags if f.code != "late"))


def apply_late(result: SubmissionResult, policy: Late, deadline: datetime | None,
               submitted: datetime | None, source: str = "") -> SubmissionResult:
    """``result`` with the late policy applied (a new result; the total follows from ``late``)."""
    out = strip_late(result)
    if deadline is None or submitted is None or policy.policy == "none":
        return out
    seconds = (submitted - deadline).total_seconds()
    if seconds <= 0:
        return out
    days = math.ceil(seconds / DAY)
    if policy.policy == "per_day":
        deduction = round(days * policy.per_day, 4)
        consequence = (f"{deduction:g} point{'s' if deduction != 1 else ''} deducted "
                       f"({policy.per_day:g} per started day)")
    elif policy.policy == "zero":
        deduction = float(out.max_points)
        consequence = "no points are given for a late submission"
    else:
        deduction = 0.0
        consequence = "no points deducted; your tutor was told"
    when = {"manifest": "from the submission list",
            "platform": "by the time the learning platform's download gives the file"}.get(
        source, "by the file's modification time")
    message = (f"handed in {_duration(seconds)} after the deadline {deadline.strftime('%Y-%m-%d %H:%M')} "
               f"({when}); {consequence}")
    note = LateNote(seconds=round(seconds), days=days, deduction=deduction, policy=policy.policy,
                    deadline=deadline.isoformat(), submitted=submitted.isoformat(), source=source,
                    message=message)
    return replace(out, late=note, flags=(*out.flags, Flag("late", None, message)))
