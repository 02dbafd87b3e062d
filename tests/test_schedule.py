"""The order of a batch: longest expected first (grader/batch/schedule.py), and that run_batch uses it."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from builders import FILES, GOOD_NAME

import grader.batch.run
from grader.batch.run import BatchSettings, run_batch
from grader.batch.schedule import SIZE_FACTOR_MAX, History, longest_first, read_history
from grader.folder.gradebook import Gradebook


@dataclass(frozen=True)
class FakeJob:
    path: Path
    folder: str
    sha256: str


def _jobs(tmp_path: Path, sizes: dict[str, int]) -> list[FakeJob]:
    jobs = []
    for name, size in sizes.items():
        path = tmp_path / f"{name}.ipynb"
        path.write_bytes(b"x" * size)
        jobs.append(FakeJob(path, name, f"sha-{name}"))
    return jobs


def names(jobs: list[FakeJob]) -> list[str]:
    return [j.folder for j in jobs]


def test_without_history_the_largest_notebook_goes_first_and_ties_keep_the_input_order(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, {"a": 10, "b": 300, "c": 10, "d": 50})
    assert names(longest_first(jobs)) == ["b", "d", "a", "c"]


def test_durations_of_an_earlier_run_decide_over_size(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, {"small_slow": 10, "big_fast": 900, "mid": 100})
    history = History({"sha-small_slow": 95.0, "sha-big_fast": 4.0, "sha-mid": 20.0}, {})
    assert names(longest_first(jobs, history)) == ["small_slow", "mid", "big_fast"]


def test_a_changed_file_takes_the_duration_of_its_folder(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, {"resubmitted": 10, "other": 10})
    history = History({"sha-other": 30.0}, {"resubmitted": 80.0, "other": 30.0})
    assert names(longest_first(jobs, history)) == ["resubmitted", "other"]


def test_a_new_submission_is_estimated_from_the_known_ones_by_size_within_bounds(tmp_path: Path) -> None:
    # known: 10 s at 100 bytes and 30 s at 100 bytes (median 20 s, median size 100 bytes)
    jobs = _jobs(tmp_path, {"k10": 100, "k30": 100, "new_huge": 100_000, "new_tiny": 1})
    history = History({"sha-k10": 10.0, "sha-k30": 30.0}, {})
    order = names(longest_first(jobs, history))
    # new_huge: 20 s x at most SIZE_FACTOR_MAX (2) = 40 s, first; new_tiny: 20 x 0.5 = 10 s, ties k10, after it
    assert SIZE_FACTOR_MAX == 2.0
    assert order == ["new_huge", "k30", "k10", "new_tiny"]


def test_history_is_read_from_the_gradebook_latest_first_and_without_unusable_rows(tmp_path: Path) -> None:
    with Gradebook(tmp_path / "gradebook.sqlite") as book:
        rows = [("f1", "s1", 12.5, 1.0), ("f1", "s1b", 40.0, 2.0),  # f1 re-graded later: 40 s counts
                ("f2", "s2", 0.0, 1.0),                               # stopped before grading: left out
                ("f3", "s3", "not a number", 1.0)]
        for folder, sha, seconds, at in rows:
            book.db.execute("INSERT INTO results VALUES (?, ?, ?, 'r', 'graded', 0, ?, ?, 1)",
                            (folder, folder, sha, json.dumps({"seconds": seconds}), at))
        history = read_history(book)
    assert history.by_folder == {"f1": 40.0}
    assert history.by_sha256 == {"s1": 12.5, "s1b": 40.0}


def test_a_gradebook_sqlite_cannot_read_gives_no_history() -> None:
    import sqlite3

    class NoJson:  # an SQLite without the JSON functions
        def durations(self) -> list:
            raise sqlite3.OperationalError("no such function: json_extract")
    assert read_history(NoJson()) == History.empty()  # type: ignore[arg-type]


def test_run_batch_hands_the_jobs_to_the_workers_longest_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook in run_batch: a re-grade orders by the durations in the gradebook."""
    src = FILES / "outdir" / f"{GOOD_NAME}.ipynb"
    inputs = []
    for i, name in enumerate(("Aa_1_Bb_2", "Cc_3_Dd_4", "Ee_5_Ff_6")):
        inputs.append(tmp_path / "in" / f"{name}.ipynb")
        inputs[-1].parent.mkdir(exist_ok=True)
        shutil.copy(src, inputs[-1])
        (inputs[-1]).write_bytes(inputs[-1].read_bytes() + b" " * i)  # distinct content
    out = tmp_path / "out"
    out.mkdir()
    with Gradebook(out / "gradebook.sqlite") as book:
        for name, seconds in (("Aa_1_Bb_2", 5.0), ("Cc_3_Dd_4", 50.0), ("Ee_5_Ff_6", 20.0)):
            book.db.execute("INSERT INTO results VALUES (?, ?, 'old', 'r', 'graded', 0, ?, ?, 1)",
                            (name, name, json.dumps({"seconds": seconds}), time.time()))
    seen: list[str] = []

    def record(todo, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.extend(j.folder for j in todo)
        raise KeyboardInterrupt  # stop here: the order is what this test is about

    monkeypatch.setattr(grader.batch.run, "_grade_all", record)
    with pytest.raises(KeyboardInterrupt):
        run_batch([str(p) for p in inputs], BatchSettings.make(out, sandbox_mode="none"))
    assert seen == ["Cc_3_Dd_4", "Ee_5_Ff_6", "Aa_1_Bb_2"]
