"""The scale benchmark (benchmarks/scale.py) in a tiny configuration, and what it made the
coordinator do differently: each group's part of the copied-work comparison made once, as its
result arrives, and reused at the end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from grader.batch import bounded as batch
from grader.batch.run import Job, SimilarityPrep, bounded_similarity, stopped_result
from grader.rubric import load_rubric

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("submissions", "workers", "makespan_s", "ideal_s", "ratio", "lost", "graded_twice",
          "coordinator_peak_mb", "time_compression")


@pytest.mark.slow
def test_a_tiny_course_on_three_workers_with_one_killed_loses_nothing_and_grades_nothing_twice() -> None:
    pytest.importorskip("distributed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("SHEET11_SECRET_FILE", None)  # the benchmark makes a course of its own
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--submissions", "20",
                           "--workers", "3", "--kill-fraction", "0.34", "--time-compression", "10"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("scale: ")
    report = json.loads(last[len("scale: "):])
    assert all(name in report for name in FIELDS), report
    assert (report["submissions"], report["workers"], report["killed"]) == (20, 3, 1)
    assert report["lost"] == 0 and report["graded_twice"] == 0, json.dumps(report)
    assert report["coordinator_exit"] == 0
    assert report["ideal_s"] > 0 and report["ratio"] == pytest.approx(report["makespan_s"] / report["ideal_s"], abs=0.01)
    assert 0 < report["coordinator_peak_mb"] < 1024


def _results(n: int) -> list[Any]:
    rubric = load_rubric()
    return [stopped_result(rubric, Job(Path(f"Ann_{100 + i}.ipynb"), f"Ann_{100 + i}", f"{i:064x}"), "x")
            for i in range(n)], rubric


def test_the_comparison_made_as_results_arrive_is_reused_at_the_end_not_made_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    results, rubric = _results(4)
    forks: list[str] = []
    real = batch.run_bounded

    def counting(fn: Any, arg: Any, seconds: float, memory_mb: int) -> Any:
        forks.append(arg.folder)
        return real(fn, arg, seconds, memory_mb)

    monkeypatch.setattr(batch, "run_bounded", counting)
    alone = bounded_similarity(results, rubric.budget)
    assert sorted(forks) == sorted(r.folder for r in results)
    forks.clear()
    prep = SimilarityPrep(rubric.budget)
    for r in results:  # as a batch does, result by result
        prep.add(r)
    assert len(forks) == 4
    assert bounded_similarity(results, rubric.budget, prep) == alone
    assert len(forks) == 4  # nothing made twice
    # a result that changed after it was prepared (another object) is made again
    from dataclasses import replace
    changed = replace(results[0], message="another")
    bounded_similarity([changed, *results[1:]], rubric.budget, prep)
    assert forks[4:] == [changed.folder]
