"""Decide once, hand it down (grader/batch/settings.py): the rubric is read and the sandbox chosen
once, by whoever makes the :class:`BatchSettings`; the forked workers inherit those objects."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

import grader.batch.run as batch_run
import grader.batch.settings as settings_module
import grader.batch.workers as workers
import grader.kernel.sandbox as sandbox_module
import grader.rubric as rubric_module
from grader.batch.run import BatchSettings, run_batch


class NoKernels:
    """Stands in for the workers' kernel pool: these submissions never reach a kernel."""

    def __init__(self, *args: Any) -> None:
        self.more = True

    def prime(self) -> None:
        pass

    def __enter__(self) -> NoKernels:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def test_settings_are_frozen_and_made_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    load, choose = settings_module.load_rubric, settings_module.choose_sandbox
    monkeypatch.setattr(settings_module, "load_rubric", lambda p=None: made.append("rubric") or load(p))
    monkeypatch.setattr(settings_module, "choose_sandbox", lambda m="auto": made.append("sandbox") or choose(m))
    settings = BatchSettings.make(tmp_path / "out", jobs=2, sandbox_mode="none")
    assert made == ["rubric", "sandbox"]
    assert settings.jobs == 2 and settings.sandbox.mode == "none" and settings.out_dir == tmp_path / "out"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.jobs = 3  # type: ignore[misc]


@pytest.mark.parametrize("jobs", [1, 2])
def test_workers_never_load_the_rubric_or_choose_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             jobs: int) -> None:
    """Real forked workers grade two submissions (notebooks that are not JSON: an error result
    each, no kernel); any call of load_rubric or choose_sandbox in a process other than this one
    leaves a mark. The batch's own calls (through BatchSettings.make) are counted apart, so the
    test can tell."""
    marks = tmp_path / "marks"
    marks.mkdir()
    parent = os.getpid()

    def watch(module: Any, name: str) -> None:
        real = getattr(module, name)

        def spy(*args: Any, **kwargs: Any) -> Any:
            (marks / f"{name}-{'parent' if os.getpid() == parent else os.getpid()}").touch()
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, spy)

    for module in (settings_module, rubric_module, batch_run):
        if hasattr(module, "load_rubric"):
            watch(module, "load_rubric")
    for module in (settings_module, sandbox_module, batch_run):
        if hasattr(module, "choose_sandbox"):
            watch(module, "choose_sandbox")
    monkeypatch.setattr(workers, "KernelPool", NoKernels)
    src = tmp_path / "in"
    src.mkdir()
    for name in ("Lovelace_2571234_Turing_2579876", "Hopper_2570001_Dijkstra_2570002"):
        (src / f"{name}.ipynb").write_text("not a notebook")
    outcome = run_batch([str(src)], BatchSettings.make(tmp_path / "out", jobs=jobs, sandbox_mode="none"))
    assert [r["status"] for r in outcome.results] == ["error", "error"]
    assert all("worker" not in r["message"] for r in outcome.results)  # graded by the workers, not lost
    seen = sorted(p.name for p in marks.iterdir())
    assert seen == ["choose_sandbox-parent", "load_rubric-parent"], seen
