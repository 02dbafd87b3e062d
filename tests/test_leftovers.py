"""No kernel outlives its grading process, however that process dies.

Whatever is killed with SIGKILL (the batch's main process, one of its workers, ``grade check``),
every process of its kernels (the kernel, a child it started, a daemon in a session of its own)
is gone within a bounded wait, and no ``sheet11-run-<pid>-`` cgroup of it holds a process. What
an earlier death left behind anyway (planted here) is swept by the next run, and nothing of a
grading process that still runs, nor a stranger's process under a uid of the same range, is.

The assertions read the process table (psutil, real uids) and ``cgroup.procs``; the waits are
bounds, scaled by the machine's load, never measured.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from builders import FILES, GOOD_NAME, slowness

from grader.kernel import sandbox as sandbox_mod
from grader.kernel.execute import KernelSession
from grader.kernel.sandbox import UID_BASE, UID_SLOT_STRIDE, choose_sandbox
from grader.rubric import load_rubric

ROOT = Path(__file__).resolve().parent.parent
SLEEPER = FILES / "leftovers" / "sleeps_in_a_cell.ipynb"
needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                reason="kernels have uids of their own only when the grader is root")
needs_bwrap = pytest.mark.skipif(sandbox_mod._bwrap_problem() != "", reason="bubblewrap cannot run here")
# How long a dead grading process's kernels may take to go (death signals, then PID namespaces).
GONE_WITHIN = 30.0


# -- the process table ----------------------------------------------------------------------------
def _real_uid(p: psutil.Process) -> int | None:
    try:
        return p.uids().real
    except psutil.Error:
        return None


def _kernel_processes(owners: set[int]) -> list[str]:
    """Running processes under a kernel uid of one of the grading processes ``owners``."""
    found = []
    for p in psutil.process_iter():
        uid = _real_uid(p)
        if uid is not None and uid >= UID_BASE and (uid - UID_BASE) % UID_SLOT_STRIDE in owners:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    found.append(f"{p.pid} uid {uid}: {' '.join(p.cmdline())[:80]}")
            except psutil.Error:
                pass
    return found


def _busy_cgroups(owners: set[int]) -> list[str]:
    """The ``sheet11-run-<owner>-*`` cgroups of ``owners`` that still hold a process."""
    busy = []
    for parent in (sandbox_mod.CGROUP_ROOT, *(sandbox_mod.CGROUP_ROOT / c for c in ("memory", "pids", "cpuacct"))):
        for owner in owners:
            for d in parent.glob(f"sheet11-run-{owner}-*"):
                try:
                    procs = (d / "cgroup.procs").read_text().split()
                except OSError:
                    continue
                if procs:
                    busy.append(f"{d}: {procs}")
    return busy


def _left(owners: set[int], pids: list[int]) -> list[str]:
    alive = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid}: {' '.join(p.cmdline())[:80]}")
        except psutil.Error:
            pass
    return _kernel_processes(owners) + _busy_cgroups(owners) + alive


def _wait_gone(owners: set[int], pids: list[int] = ()) -> list[str]:
    """What of ``owners``' kernels (and of ``pids``) is still there after the bounded wait."""
    deadline = time.monotonic() + GONE_WITHIN * slowness()
    while True:
        left = _left(owners, list(pids))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _sleeping_kernels(root: subprocess.Popen, want: int = 1) -> tuple[set[int], list[int]]:
    """Wait until ``want`` kernels below ``root`` sleep in the notebook's cell (its `sleep`
    children run); returns the grading processes that own them and every process below root."""
    deadline = time.monotonic() + 240 * slowness()
    while True:
        assert root.poll() is None, f"the command ended ({root.returncode}) before its kernel slept"
        assert time.monotonic() < deadline, "no kernel reached the sleeping cell"
        try:
            below = psutil.Process(root.pid).children(recursive=True)
        except psutil.Error:
            below = []
        sleepers = []
        for p in below:
            try:
                if p.cmdline()[:2] == ["sleep", "3600"]:
                    sleepers.append(p)
            except psutil.Error:
                pass
        if len(sleepers) >= want:
            owners = set()
            for p in sleepers:
                uid = _real_uid(p)
                assert uid is not None and uid >= UID_BASE, "the kernel does not run under a kernel uid"
                owners.add((uid - UID_BASE) % UID_SLOT_STRIDE)
            # The daemon the cell started is in a session of its own; it has had time to start.
            time.sleep(1.0)
            return owners, [p.pid for p in psutil.Process(root.pid).children(recursive=True)]
        time.sleep(0.2)


@pytest.fixture
def run_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    # A private, short temp dir for the grading processes (their IPC socket paths are limited).
    tmp = Path(tempfile.mkdtemp(prefix="lo-", dir="/tmp"))
    yield {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp)}
    shutil.rmtree(tmp, ignore_errors=True)


def _submissions(tmp_path: Path, n: int) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    names = [GOOD_NAME, "Hopper_2570001_Dijkstra_2570002"][:n]
    for name in names:
        shutil.copyfile(SLEEPER, src / f"{name}.ipynb")
    return src


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "grader.cli.main", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=60)


# -- a grading process killed with SIGKILL ------------------------------------------------------
@pytest.mark.slow
@needs_root
@needs_bwrap
def test_killed_batch_leaves_no_kernel(tmp_path, run_env):
    # Two submissions and one worker: the worker also holds the next submission's kernel,
    # started ahead (grader/kernel/kernelpool.py), beside the sleeping one.
    batch = _cli([str(_submissions(tmp_path, 2)), "-o", str(tmp_path / "out"), "-j", "1"], run_env)
    try:
        owners, below = _sleeping_kernels(batch)
        ahead = [p for p in below if (_real_uid(psutil.Process(p)) or 0) >= UID_BASE + UID_SLOT_STRIDE]
        assert ahead, "no kernel was started ahead; the test would not cover it"
        os.kill(batch.pid, signal.SIGKILL)  # the main process only: nothing of it can clean up
        batch.wait(timeout=30)
        assert _wait_gone(owners, below) == []
    finally:
        _end(batch)


@pytest.mark.slow
@needs_root
@needs_bwrap
def test_killed_worker_leaves_no_kernel_and_the_batch_goes_on(tmp_path, run_env):
    out = tmp_path / "out"
    batch = _cli([str(_submissions(tmp_path, 1)), "-o", str(out), "-j", "1"], run_env)
    try:
        owners, below = _sleeping_kernels(batch)
        (worker,) = owners
        assert psutil.Process(worker).ppid() == batch.pid
        os.kill(worker, signal.SIGKILL)
        assert _wait_gone(owners, [p for p in below if p != batch.pid]) == []
        # The submission is an error, the batch ends as usual.
        assert batch.wait(timeout=120 * slowness()) == 1
        assert '"status": "error"' in (out / GOOD_NAME / "result.json").read_text()
    finally:
        _end(batch)


@pytest.mark.slow
@needs_root
@needs_bwrap
def test_killed_grade_check_leaves_no_kernel(tmp_path, run_env):
    nb = tmp_path / f"{GOOD_NAME}.ipynb"
    shutil.copyfile(SLEEPER, nb)
    check = _cli(["check", str(nb)], run_env)
    try:
        owners, below = _sleeping_kernels(check)
        assert owners == {check.pid}  # grade check grades in its own process
        os.kill(check.pid, signal.SIGKILL)
        check.wait(timeout=30)
        assert _wait_gone(owners, below) == []
    finally:
        _end(check)


@pytest.mark.slow
@needs_root
@needs_bwrap
def test_killed_cluster_worker_and_coordinator_leave_no_kernel(tmp_path, run_env):
    pytest.importorskip("distributed")
    batch = _cli([str(_submissions(tmp_path, 1)), "-o", str(tmp_path / "out"), "--cluster", "local:1"], run_env)
    try:
        owners, _ = _sleeping_kernels(batch)
        (grader,) = owners
        # The Dask worker process; the grading process was forked from one of its threads.
        dask_worker = psutil.Process(grader).ppid()
        assert dask_worker != batch.pid
        os.kill(dask_worker, signal.SIGKILL)
        assert _wait_gone(owners, [grader, dask_worker]) == []
        # Dask starts another worker, which takes the task again; then the coordinator (the
        # command) is killed: nothing of the cluster it started stays.
        owners, below = _sleeping_kernels(batch)
        os.kill(batch.pid, signal.SIGKILL)
        batch.wait(timeout=30)
        assert _wait_gone(owners, below) == []
    finally:
        _end(batch)


# -- the launch guard: no moment in which the grader's death goes unnoticed ----------------------
def test_a_launch_whose_grader_is_already_gone_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    # The parent named is not this command's parent: as if the grader died before the guard ran.
    dead = subprocess.Popen(["true"])
    dead.wait()
    run = subprocess.run([*sandbox_mod.die_with_launcher_argv(dead.pid), "touch", str(marker)], timeout=60)
    assert run.returncode == 98 and not marker.exists()
    run = subprocess.run([*sandbox_mod.die_with_launcher_argv(), "touch", str(marker)], timeout=60)
    assert run.returncode == 0 and marker.exists()


def test_a_launched_command_dies_with_its_launcher():
    # A launcher (standing for a grading process) starts a command through the guard, which
    # execs it; the launcher is then killed, and nothing of it can clean up.
    code = ("import subprocess, time\n"
            "from grader.kernel.sandbox import die_with_launcher_argv\n"
            "p = subprocess.Popen(die_with_launcher_argv() + ['sleep', '3600'])\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(3600)\n")
    launcher = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        child = int(launcher.stdout.readline())
        deadline = time.monotonic() + 60 * slowness()
        while psutil.Process(child).cmdline()[:1] != ["sleep"]:  # the guard has exec'd
            assert time.monotonic() < deadline
            time.sleep(0.05)
        launcher.kill()
        launcher.wait(timeout=30)
        assert _wait_gone(set(), [child]) == []
    finally:
        _end(launcher)
        launcher.stdout.close()


# -- what an earlier death left behind ----------------------------------------------------------
def _as_uid(uid: int, env: dict[str, str], *command: str) -> subprocess.Popen:
    return subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
                             *(command or ("sleep", "3600"))], env=env, stdin=subprocess.DEVNULL)


# A kernel's process that makes itself non-dumpable: its /proc files then belong to root.
HIDING = ("import ctypes, os, time\n"
          "ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)\n"  # PR_SET_DUMPABLE 0
          "time.sleep(3600)\n")  # no exec: exec would make it dumpable again


@needs_root
def test_leftovers_of_a_dead_grader_are_swept_by_the_next_run(tmp_path):
    limits = load_rubric().limits
    # Stands for the grading process that dies: alive while its leftovers are planted, since any
    # kernel session that starts meanwhile (other tests, with -n 2) sweeps a dead one's at once.
    owner = subprocess.Popen(["sleep", "3600"])
    dead = owner.pid
    living = subprocess.Popen(["sleep", "3600"])  # stands for a grading process still at work
    marked = {"PATH": os.environ["PATH"], "HOME": f"/tmp/sheet11-run-{dead}-planted/kernel"}
    planted, kept = [], []
    group = None
    try:
        # A kernel and the kernel started ahead of a grading process killed before it could stop
        # them (slots 0 and 1), with a kernel's marks.
        planted += [_as_uid(UID_BASE + dead, marked), _as_uid(UID_BASE + UID_SLOT_STRIDE + dead, marked)]
        hiding = _as_uid(UID_BASE + dead, marked, sys.executable, "-I", "-c", HIDING)
        planted.append(hiding)
        # Not ours to kill: a kernel of a grading process that still runs, and a process of the
        # same uid range without a kernel's marks (a rootless container's user).
        kept.append(_as_uid(UID_BASE + living.pid,
                            {**marked, "HOME": f"/tmp/sheet11-run-{living.pid}-x/kernel"}))
        kept.append(_as_uid(UID_BASE + dead, {"PATH": os.environ["PATH"], "HOME": "/home/someone"}))
        # A cgroup of the dead grading process with a process still in it (any uid).
        group = sandbox_mod.KernelCgroup.create(f"sheet11-run-{dead}-planted", limits)
        if group is not None:
            planted.append(subprocess.Popen([*group.argv(), "sleep", "3600"], env={"PATH": os.environ["PATH"]}))
            deadline = time.monotonic() + 30
            while not group.procs():
                assert time.monotonic() < deadline
                time.sleep(0.05)
        deadline = time.monotonic() + 30
        while any(psutil.Process(p.pid).cmdline()[:1] != ["sleep"] for p in planted + kept if p is not hiding):
            assert time.monotonic() < deadline  # setpriv and the join have exec'd
            time.sleep(0.05)
        while Path(f"/proc/{hiding.pid}/status").stat().st_uid != 0:
            assert time.monotonic() < deadline  # it has hidden
            time.sleep(0.05)

        owner.kill()  # the grading process dies, its leftovers stay
        owner.wait(timeout=30)
        # The next run: any kernel session's start sweeps first.
        with KernelSession(choose_sandbox("bwrap" if sandbox_mod._bwrap_problem() == "" else "none"), limits):
            pass
        for p in planted:
            assert p.wait(timeout=30) == -signal.SIGKILL
        if group is not None:
            assert not any(d.exists() for d in group.dirs)
        assert all(p.poll() is None for p in kept)
        assert _kernel_processes({dead}) == [f"{kept[1].pid} uid {UID_BASE + dead}: sleep 3600"]
    finally:
        for p in [*planted, *kept, living, owner]:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
        if group is not None:
            group.remove()


@needs_root
def test_a_removed_cgroup_leaves_no_process_behind():
    group = sandbox_mod.KernelCgroup.create(f"sheet11-leftover-test-{os.getpid()}", load_rubric().limits)
    if group is None:
        pytest.skip("no writable cgroup here (needs cgroup memory/pids controllers)")
    daemon = subprocess.Popen([*group.argv(), "sh", "-c", "sleep 3600 & sleep 3600"])
    try:
        deadline = time.monotonic() + 30
        while len(group.procs()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        inside = group.procs()
        group.remove()
        assert not any(d.exists() for d in group.dirs)
        assert _wait_gone(set(), inside) == []
    finally:
        group.remove()  # again, should the test have failed before
        if daemon.poll() is None:
            daemon.kill()
        daemon.wait(timeout=30)
