"""Kernels started ahead (grader/kernel/kernelpool.py): one fresh kernel per submission, never reused,
confined exactly like a kernel started on demand."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from builders import quick_context

from grader.kernel.execute import KERNEL_NAME, KernelSession
from grader.kernel.kernelpool import KernelPool
from grader.kernel.sandbox import choose_sandbox, kernel_uid


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list[KernelSession]:
    """No kernel is started: launch() only records which session would have started one."""
    launched: list[KernelSession] = []
    monkeypatch.setattr(KernelSession, "launch", lambda self: launched.append(self))
    return launched


def _pool() -> KernelPool:
    ctx = quick_context("none")
    return KernelPool(choose_sandbox("none"), ctx.rubric.limits)


def test_every_submission_gets_its_own_session_and_the_next_one_is_started_ahead(launches: list) -> None:
    with _pool() as pool:
        pool.prime()
        assert len(launches) == 1
        handed = []
        for _ in range(4):
            session = pool.session()
            with session:
                handed.append(session)
                # the next submission's kernel is launched while this one is in use, on another uid
                ahead = launches[-1]
                assert ahead is not session and ahead.uid != session.uid
        assert len({id(s) for s in handed}) == 4          # never the same session twice
        assert handed[0] is launches[0]                    # the primed one went to the first submission
        assert all(h is launches[i] for i, h in enumerate(handed))
        assert pool.handed_out == 4


def test_a_uid_slot_is_only_used_again_after_its_session_was_closed(launches: list) -> None:
    with _pool() as pool:
        first = pool.session()             # slot 0; slot 1 launched ahead
        second = pool.session()            # the one ahead; first still open: a third slot
        assert len({first.uid, second.uid, launches[-1].uid}) == 3
        first.close()
        second.close()
        third = pool.session()             # the one launched ahead
        fourth_ahead = launches[-1]
        assert fourth_ahead.uid in {first.uid, second.uid} and fourth_ahead.uid != third.uid
        third.close()
    assert kernel_uid(0) == first.uid       # slot 0 keeps the uid a session without pool has


def test_nothing_is_started_ahead_when_no_submission_follows_and_unused_ones_are_closed(launches: list) -> None:
    pool = _pool()
    pool.more = False
    with pool.session():
        pass
    assert launches == []                  # no waste at the end of a batch
    pool.more = True
    with pool.session():
        pass
    waiting = launches[-1]
    assert waiting.base.exists()
    pool.close()
    assert not waiting.base.exists()       # the unused kernel's folder (and cgroup) are gone


# -- with real kernels ----------------------------------------------------------------------------
_PROBE = r"""
import json, os, resource, sys
names = {"RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE"}
# Into the kernel's own folder (its working directory), which the test reads: the grader's calls
# do not read a kernel's printed output.
with open("probe.json", "w") as _out:
  _out.write(json.dumps({
    "uid": os.getuid(),
    "limits": {n: resource.getrlimit(getattr(resource, n)) for n in sorted(names)},
    "hostname": os.uname().nodename,
    "pid1": open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode(),
    "net": sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else [],
    "torch_imported": "torch" in sys.modules,
    "torch_name": "torch" in globals(),
    "secret": "SECRET" in globals(),
    "env": sorted(os.environ),
  }))
"""


def _probe(session: KernelSession) -> dict[str, Any]:
    ran = session.run_code(_PROBE, 60)
    assert ran.status == "ok", ran
    return json.loads((session.scratch / "probe.json").read_text())


def _argv(session: KernelSession) -> list[str]:
    """The kernel's command with what differs by design (its folders, its uid) replaced."""
    spec = json.loads((session.base / "kernels" / KERNEL_NAME / "kernel.json").read_text())
    text = json.dumps(spec["argv"]).replace(str(session.base), "<base>").replace(session.base.name, "<run>")
    return json.loads(re.sub(rf"\b{session.uid}\b", "<uid>", text))


def _notebook(source: str) -> Any:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])


@pytest.mark.slow
def test_a_kernel_started_ahead_is_fresh_and_confined_like_a_kernel_started_on_demand() -> None:
    ctx = quick_context()
    with KernelSession(ctx.sandbox, ctx.rubric.limits) as plain:
        plain.run_notebook(_notebook("SECRET = 42"))
        on_demand, on_demand_argv = _probe(plain), _argv(plain)

    with KernelPool(ctx.sandbox, ctx.rubric.limits) as pool:
        first = pool.session()
        ahead = pool._ready[0]                    # launched while `first` is in use
        assert ahead.client is not None
        launched_km = ahead.client.km
        with first:
            first.run_notebook(_notebook("SECRET = 42\nimport os\nos.makedirs('left-behind', exist_ok=True)"))
            used = _probe(first)
            assert used["secret"]
        # `first` is closed: its processes were reaped by uid; the kernel ahead must not be touched
        second = pool.session()
        assert second is ahead and second is not first
        with second:
            run = second.run_notebook(_notebook("import os\nprint(sorted(os.listdir('.')))"))
            assert run.started and not run.flags
            # the very kernel launched ahead answered: closing `first` did not kill it
            assert second.client is not None and second.client.km is launched_km
            fresh = _probe(second)
            second_argv = _argv(second)
            if ctx.sandbox.confined and second.cgroup is not None:
                procs = [(d / "cgroup.procs").read_text().split() for d in second.cgroup.dirs]
                assert all(procs), "the kernel started ahead is not in its own cgroup"

    assert not fresh["secret"]                     # nothing of the submission before
    assert "left-behind" not in str(second.nb.cells[0].outputs)   # nor its files
    assert fresh["uid"] != used["uid"]             # and never the uid of the kernel beside it
    if ctx.sandbox.confined and used["uid"] != 0:
        assert fresh["uid"] == second.uid and used["uid"] == first.uid
    # the same sandbox, limits and environment as a kernel started on demand
    assert second_argv == on_demand_argv
    for key in ("limits", "hostname", "pid1", "net", "env"):
        assert fresh[key] == on_demand[key] == used[key], key
    # numpy and torch were imported ahead, and no name was left behind by that
    assert fresh["torch_imported"] and not fresh["torch_name"]


@pytest.mark.slow
def test_a_kernel_started_ahead_that_died_before_its_turn_is_replaced_by_a_fresh_start(tmp_path: Path) -> None:
    ctx = quick_context()
    with KernelPool(ctx.sandbox, ctx.rubric.limits) as pool:
        pool.prime()
        doomed = pool._ready[0]
        assert doomed.client is not None and doomed.client.km is not None
        dead_km = doomed.client.km
        from jupyter_core.utils import run_sync
        run_sync(doomed.client.km.shutdown_kernel)(now=True)   # gone before any submission used it
        pool.more = False
        with pool.session() as session:
            assert session is doomed
            run = session.run_notebook(_notebook("print('ran')"))
            assert session.client is not None and session.client.km is not dead_km
        assert run.started and not run.flags
        assert "ran" in str(session.nb.cells[0].outputs)


@pytest.mark.slow
def test_grading_with_kernels_started_ahead_gives_the_same_results_as_without(tmp_path: Path) -> None:
    from dataclasses import replace

    from builders import set_function, set_group, solution, write_notebook
    from test_cluster import strip

    from grader.grade import grade_submission
    paths = []
    for i, wrong in enumerate((False, True, False)):
        nb = set_group(solution(fast=True), [(f"Kim{i} Alpha", f"{2_500_000 + i}", f"a{i}@uni.example"),
                                             (f"Lee{i} Beta", f"{2_510_000 + i}", f"b{i}@uni.example")])
        if wrong:  # a wrong function, so mistake matching runs in both
            set_function(nb, "lstm_cell", "def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):\n    return h, c\n")
        if i == 2:  # a kernel that dies: the restart must work the same from a pooled session
            nb.cells.insert(3, nbformat.v4.new_code_cell("import os\nos._exit(1)"))
        paths.append(write_notebook(nb, tmp_path / f"Alpha_{2_500_000 + i}_Beta_{2_510_000 + i}.ipynb"))
    ctx = quick_context()
    alone = [grade_submission(p, ctx).to_json() for p in paths]
    with KernelPool(ctx.sandbox, ctx.rubric.limits) as pool:
        pooled_ctx = replace(ctx, kernels=pool)
        pooled = [grade_submission(p, pooled_ctx).to_json() for p in paths]
        assert pool.handed_out == 3 and pool.launched >= 2
    assert [strip(r) for r in pooled] == [strip(r) for r in alone]
    assert any(f["code"] == "kernel.died" for f in pooled[2]["flags"])


def test_cgroups_of_killed_grading_processes_are_swept_and_live_ones_kept() -> None:
    """A grading process killed with a kernel started ahead (over budget, end of a batch, a
    killed cluster worker) cannot remove that kernel's cgroup; the next session sweeps it."""
    import os
    import subprocess

    from grader.kernel.sandbox import CGROUP_ROOT, _cgroup_layout, sweep_stale_cgroups
    layout = _cgroup_layout()
    if not layout:
        pytest.skip("no writable cgroup here (needs root and cgroup v2 or v1 memory+pids)")
    parents = [CGROUP_ROOT] if layout == "v2" else [CGROUP_ROOT / "memory", CGROUP_ROOT / "pids"]
    gone = subprocess.Popen(["true"])  # a pid that surely ended
    gone.wait()
    dead = gone.pid
    made = []
    for parent in parents:
        for pid in (dead, os.getpid()):
            d = parent / f"sheet11-run-{pid}-sweeptest"
            d.mkdir()
            made.append(d)
    try:
        sweep_stale_cgroups()
        assert all(not d.exists() for d in made if f"-{dead}-" in d.name)
        assert all(d.exists() for d in made if f"-{os.getpid()}-" in d.name)
    finally:
        for d in made:
            if d.exists():
                d.rmdir()
