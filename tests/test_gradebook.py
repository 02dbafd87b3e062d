"""The SQLite gradebook: runs, results, manual scores with history, confirmed members."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from test_scores import MEMBERS, fake_result

from grader.folder.gradebook import Gradebook
from grader.result import SubmissionResult


def _typed(folder: str = "Lovelace_2571234_Turing_2579876") -> SubmissionResult:
    return SubmissionResult.from_json(fake_result(folder, MEMBERS[0]))


def test_runs_record_points_and_a_later_run_sees_the_earlier(tmp_path: Path) -> None:
    with Gradebook(tmp_path / "g.sqlite") as book:
        first = book.start_run("r1", 1)
        result = _typed()
        book.record(first, result)
        book.record_run(first, [result])
        second = book.start_run("r1", 1)
        before = book.previous_points(result.folder, second)
        assert before is not None and before["status"] == "graded" and before["points"] == result.points
        assert before["questions"]["11.1.1"] == [0.0, "pending"]
        assert book.previous_points(result.folder, first) is None  # nothing before the first run
        q = result.questions["11.4.a"]
        book.record_run(second, [result.with_question(replace(q, points=0.25))])
        assert book.latest_run_folders() == [result.folder]
        third = book.start_run("r1", 1)
        assert book.previous_points(result.folder, third)["questions"]["11.4.a"] == [0.25, "auto"]


def test_manual_scores_keep_their_history(tmp_path: Path) -> None:
    with Gradebook(tmp_path / "g.sqlite") as book:
        with book.transaction():
            assert book.set_manual_score("F", "11.2.1", "F.zip", 0.5, "fine", "ada", "s.csv", 1.0)
        with book.transaction():
            assert not book.set_manual_score("F", "11.2.1", "F.zip", 0.5, "fine", "bob", "s.csv", 2.0)
            assert book.set_manual_score("F", "11.2.1", "F.zip", 0.75, 'Say "why"', "bob", "t.csv", 3.0)
        assert book.manual_scores()["F"]["11.2.1"] == {"points": 0.75, "comment": 'Say "why"', "tutor": "bob",
                                                        "scored_at": 3.0}
        assert [(h["old_points"], h["new_points"], h["tutor"]) for h in book.history("F")] == \
            [(None, 0.5, "ada"), (0.5, 0.75, "bob")]


def test_a_failed_transaction_stores_nothing(tmp_path: Path) -> None:
    with Gradebook(tmp_path / "g.sqlite") as book:
        try:
            with book.transaction():
                book.set_manual_score("F", "11.2.1", "F.zip", 0.5, "", "ada", "s.csv", 1.0)
                raise RuntimeError("stop")
        except RuntimeError:
            pass
        assert book.manual_scores() == {} and book.history() == []


def test_confirmed_members_survive_reopening(tmp_path: Path) -> None:
    with Gradebook(tmp_path / "g.sqlite") as book:
        assert book.confirm_member("F", "2570001", "ada", 1.0)
        assert not book.confirm_member("F", "2570001", "bob", 2.0)  # already
    with Gradebook(tmp_path / "g.sqlite") as book:
        assert book.confirmed_members() == {"F": {"2570001"}}
