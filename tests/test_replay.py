"""Grades that can be replayed: result.json's manifest and `grade replay` (grader/batch/replay.py)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from builders import FILES
from click.testing import CliRunner
from test_scores import MEMBERS, fake_output, fake_result

from grader.batch.replay import ReplayRefused, differences, replay, unmet
from grader.cli.main import main
from grader.folder.outdir import OutDir
from grader.result import SubmissionResult
from grader.submission.intake import file_sha256

FIXTURE = FILES / "flags" / "missing_function.ipynb"


def _stored_with(tmp_path: Path, **manifest: object) -> tuple[Path, Path]:
    sub = tmp_path / "Lovelace_2571234_Turing_2579876.ipynb"
    sub.write_text("{}")
    data = fake_result("Lovelace_2571234_Turing_2579876", MEMBERS[0])
    data["sha256"] = file_sha256(sub)
    data["manifest"] = {"submission_sha256": data["sha256"], "rubric_sha256": data["rubric_sha256"],
                        "grader_version": "0.0.1-old", "torch_version": "1.0", "python_version": "3.0",
                        "sandbox": "none", "cases": "hidden", "secret_id": "0" * 16, **manifest}
    return fake_output(tmp_path / "out", [data]), sub


def test_the_manifest_round_trips_and_an_old_result_has_none() -> None:
    data = fake_result("F", MEMBERS[0])
    assert "manifest" not in SubmissionResult.from_json(data).to_json()  # results of older graders still read
    data["manifest"] = {"rubric_sha256": "x"}
    assert SubmissionResult.from_json(data).to_json()["manifest"] == {"rubric_sha256": "x"}


def test_a_replay_refuses_naming_what_differs(tmp_path: Path) -> None:
    out, sub = _stored_with(tmp_path, rubric_sha256="f" * 64)
    with pytest.raises(ReplayRefused) as caught:
        replay(sub, OutDir(out))
    text = str(caught.value)
    assert "rubric_sha256: recorded ffffffffffff" in text and "grader_version: recorded 0.0.1-old" in text
    assert "torch_version: recorded 1.0" in text and "secret_id" in text
    run = CliRunner().invoke(main, ["replay", str(sub), "-o", str(out)])
    assert run.exit_code == 2 and "cannot be replayed here" in run.output


def test_a_result_without_a_manifest_is_refused_and_an_unknown_file_named(tmp_path: Path) -> None:
    out, sub = _stored_with(tmp_path)
    path = out / "Lovelace_2571234_Turing_2579876" / "result.json"
    data = json.loads(path.read_text())
    del data["manifest"]
    path.write_text(json.dumps(data))
    with pytest.raises(ReplayRefused, match="no manifest"):
        replay(sub, OutDir(out))
    other = tmp_path / "other.ipynb"
    other.write_text("[]")
    with pytest.raises(Exception, match="no result in"):
        replay(other, OutDir(out))


def test_differences_name_each_point_and_check() -> None:
    stored = fake_result("F", MEMBERS[0])
    stored["questions"]["11.4.a"]["checks"] = [{"name": "case 1", "passed": True, "points": 0.25}]
    again = json.loads(json.dumps(stored))
    assert differences(stored, again) == []
    again["questions"]["11.4.a"].update(points=0.75, checks=[{"name": "case 1", "passed": False, "points": 0.0}])
    again["points"] = 3.75
    again["flags"] = [{"code": "cell.timeout", "question": None, "message": "x"}]
    found = differences(stored, again)
    assert "11.4.a points: stored 1.0, replayed 0.75" in found
    assert "11.4.a check case 1: stored passed 0.25, replayed failed 0" in found
    assert "flags: replayed only cell.timeout" in found and "points: stored 4.0, replayed 3.75" in found


def test_unmet_reads_only_the_required_keys() -> None:
    a = {"rubric_sha256": "a", "python_version": "3.11"}
    assert unmet(a, {**a, "python_version": "3.12"}) == []
    assert unmet(a, {**a, "rubric_sha256": "b"}) == ["rubric_sha256: recorded a, here b"]


@pytest.mark.slow
def test_a_graded_submission_replays_the_same_and_an_edit_is_a_difference(tmp_path: Path) -> None:
    from grader.batch.run import BatchSettings, run_batch
    sub = tmp_path / "missing_function.ipynb"
    shutil.copy(FIXTURE, sub)
    run_batch([str(sub)], BatchSettings.make(tmp_path / "out", sandbox_mode="auto"))
    out = OutDir(tmp_path / "out")
    stored = out.results()[0]
    assert stored.manifest and stored.manifest["submission_sha256"] == file_sha256(sub)
    assert stored.manifest["secret_id"] and "secret" not in json.dumps(stored.manifest).replace("secret_id", "")
    outcome = replay(sub, out)
    assert outcome.same, outcome.differences
    # a result.json edited by hand is what the code does not give
    path = tmp_path / "out" / stored.folder / "result.json"
    data = json.loads(path.read_text())
    data["questions"]["11.4.a"]["points"] = 0.5
    path.write_text(json.dumps(data))
    assert "11.4.a points: stored 0.5, replayed" in " ".join(replay(sub, out).differences)
