"""Late submissions: the rubric's policy as a post-step on a result's JSON."""
from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_scores import MEMBERS, fake_result

from grader.batch.late import apply_late, parse_time, read_manifest, submission_time
from grader.batch.run import Job, post_grade
from grader.errors import UsageError
from grader.pages.report import render_report
from grader.result import SubmissionResult
from grader.rubric import Late, load_rubric

DEADLINE = datetime(2024, 2, 1, 23, 59, tzinfo=UTC)


def _result() -> SubmissionResult:
    data = fake_result("Lovelace_2571234_Turing_2579876", MEMBERS[0])
    data["questions"]["11.2.1"].update(points=0.5, status="manual")
    result = SubmissionResult.from_json(data)
    assert result.points == 4.5
    return result


@pytest.mark.parametrize("policy, late_by, deduction, points", [
    ("flag", timedelta(minutes=5), 0.0, 4.5),
    ("per_day", timedelta(minutes=5), 1.0, 3.5),
    ("per_day", timedelta(days=1, seconds=1), 2.0, 2.5),
    ("per_day", timedelta(days=9), 9.0, 0.0),
    ("zero", timedelta(seconds=30), 10.0, 0.0),
])
def test_policies(policy: str, late_by: timedelta, deduction: float, points: float) -> None:
    typed = apply_late(_result(), Late(policy, 1.0), DEADLINE, DEADLINE + late_by, "manifest")
    out = typed.to_json()
    assert out["late"]["seconds"] == round(late_by.total_seconds())
    assert out["late"]["deduction"] == deduction and out["points"] == points
    flags = [f for f in out["flags"] if f["code"] == "late"]
    assert len(flags) == 1 and flags[0]["question"] is None
    assert "after the deadline 2024-02-01 23:59" in flags[0]["message"]
    assert SubmissionResult.from_json(out) == typed  # what result.json holds reads back the same
    html = render_report(typed)
    assert "Late" in html and "after the deadline" in html


def test_on_time_no_deadline_or_policy_none_raise_nothing() -> None:
    for deadline, submitted, policy in ((DEADLINE, DEADLINE - timedelta(hours=1), "per_day"),
                                        (None, DEADLINE + timedelta(days=3), "per_day"),
                                        (DEADLINE, DEADLINE + timedelta(days=3), "none")):
        out = apply_late(_result(), Late(policy, 1.0), deadline, submitted).to_json()
        assert "late" not in out and not [f for f in out["flags"] if f["code"] == "late"] and out["points"] == 4.5


def test_applying_again_replaces_the_earlier_late_step() -> None:
    once = apply_late(_result(), Late("per_day", 1.0), DEADLINE, DEADLINE + timedelta(days=2))
    twice = apply_late(once, Late("per_day", 1.0), DEADLINE, DEADLINE + timedelta(days=2))
    assert once == twice
    without = apply_late(once, Late("per_day", 1.0), None, None)  # re-run without a deadline
    assert without.late is None and without.points == 4.5 and without.flags == ()
    assert without == _result()


def test_manifest_then_mtime(tmp_path: Path) -> None:
    sub = tmp_path / "Lovelace_2571234_Turing_2579876.zip"
    sub.write_bytes(b"x")
    other = tmp_path / "Other_1_Two_2.ipynb"
    other.write_bytes(b"x")
    os.utime(other, (1706831940 + 3600, 1706831940 + 3600))
    manifest = tmp_path / "times.csv"
    manifest.write_text("submission,time\nLovelace_2571234_Turing_2579876.zip,2024-02-02T10:00:00+01:00\n")
    times = read_manifest(manifest)
    assert submission_time(sub, times) == (datetime(2024, 2, 2, 9, 0, tzinfo=UTC), "manifest")
    when, source = submission_time(other, times)
    assert source == "mtime" and when.timestamp() == 1706831940 + 3600
    manifest.write_text("submission,time\nX.zip,yesterday\n")
    with pytest.raises(UsageError, match="row 2.*'yesterday' is not an ISO-8601 time"):
        read_manifest(manifest)
    manifest.write_text("name,when\n")
    with pytest.raises(UsageError, match="columns 'submission' and 'time'"):
        read_manifest(manifest)


def test_a_naive_deadline_is_local_time() -> None:
    assert parse_time("2024-02-01T23:59") == datetime(2024, 2, 1, 23, 59).astimezone()
    assert parse_time("2024-02-01T23:59Z") == datetime(2024, 2, 1, 23, 59, tzinfo=UTC)


def test_the_batch_post_step(tmp_path: Path) -> None:
    rubric = load_rubric()
    data = _result()
    job = Job(tmp_path / "x.zip", "x", "0", DEADLINE.isoformat(), (DEADLINE + timedelta(hours=2)).isoformat(), "mtime")
    out = post_grade(data, job, rubric)
    assert out.late is not None and out.late.policy == rubric.late.policy and out.late.seconds == 7200
    assert out.folder == "x" and post_grade(out, job, rubric) == out  # idempotent
    assert post_grade(data, Job(tmp_path / "x.zip", "x", "0"), rubric).late is None
