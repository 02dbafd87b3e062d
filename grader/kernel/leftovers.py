"""No kernel outlives its grading process, and none is left behind.

A grading process killed with SIGKILL can clean up nothing, so its kernels must die on their own.
Each link of the chain has a parent-death signal: the batch's worker (grader/batch/run.py), bwrap
(``--die-with-parent``, outside and as PID 1 of the kernel's namespace, whose end kills every
process in it). The gap was the launch: bwrap sets its signal only once it runs, after the fork,
``sh`` (the cgroup join) and ``prlimit``; a grading process that died in that window left a bwrap
whose parent was already gone, and no signal ever came. The launch guard
(:func:`die_with_launcher_argv`, grader/kernel/launch_guard_kernel.py) closes it.

What gets through anyway is killed by the next session: :func:`reap_kernel_processes` ends what
one session's kernel left (forks, daemons) before a restart, :func:`sweep_stale_kernels` what
kernels of dead grading processes left (grader/kernel/cgroup.py sweeps their cgroups first). A
process is killed only when it runs under a kernel uid (grader/kernel/uids.py) *and* carries a
kernel session's mark, and only through a pidfd checked again, so no unrelated process of the
machine, and no process that took over a dead one's pid, is ever signalled.
"""
from __future__ import annotations

import errno
import os
import signal
import sys
import time
from collections.abc import Callable

import psutil

from grader.kernel.kernelcode import kernel_source
from grader.kernel.uids import drop_privileges, kernel_owner, kernel_uid

#: The guard's code (sent as ``python -c`` source, never a path): grader/kernel/launch_guard_kernel.py.
LAUNCH_GUARD_MODULE = ("grader.kernel", "launch_guard_kernel.py")


def reap_kernel_processes(timeout: float = 10.0, uid: int | None = None, *, mark: str) -> int:
    """Kill every process still running of one kernel session; wait for them.

    A kernel's forks, background processes and daemons end with its PID namespace, but not at
    once; a restarted kernel under the same uid would find the process limit still used up by
    them. A process is the session's when it runs under the session's kernel uid *and* carries
    the session's ``mark`` (the name of its run folder, ``sheet11-run-<pid>-...``): in the path
    of its cgroup (which no process can leave) or in its environment (HOME, MPLCONFIGDIR: the
    kernel's, inherited by all it starts). A uid alone is no proof: 100000 and up is also where
    /etc/subuid puts rootless containers' users, so an unrelated process of that uid is never
    touched. Returns how many were left when the time ran out (0: all gone). Does nothing unless
    the grader is root.
    """
    if not drop_privileges():
        return 0
    if not mark.startswith("sheet11-run-"):
        raise ValueError(f"not a kernel session's mark: {mark!r}")
    uid = kernel_uid() if uid is None else uid

    def ours(pid: int) -> bool:
        return _real_uid(pid) == uid and _carries(pid, mark)
    return kill_until_gone(lambda: [pid for pid in _pids() if ours(pid)], timeout, ours)


def _carries(pid: int, mark: str) -> bool:
    """Whether process ``pid`` is in a cgroup named with ``mark`` or has it in its environment."""
    return mark in _proc_text(pid, "cgroup") or mark in _proc_text(pid, "environ")


def _pids() -> list[int]:
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]


def _real_uid(pid: int) -> int | None:
    """The real uid of ``pid`` (from ``status``), or ``None`` when it is gone.

    Not the owner of ``/proc/<pid>``: a process that makes itself non-dumpable shows a root-owned
    entry there, and no kernel can change its real uid.
    """
    line = next((ln for ln in _proc_text(pid, "status", 4096).splitlines() if ln.startswith("Uid:")), "")
    try:
        return int(line.split()[1])
    except (IndexError, ValueError):
        return None


def die_with_launcher_argv(parent: int | None = None) -> list[str]:
    """A prefix that makes the command after it die with ``parent`` (default: this process).

    Kernel-enforced (``PR_SET_PDEATHSIG``), set before anything else runs, and followed by a
    check that ``parent`` is still the parent, so no moment is left in which the grading
    process's death goes unnoticed. Linux ties the signal to the *thread* that forked: kernels
    are launched from the grading process's main thread (nbclient's ``run_sync`` runs in the
    calling thread), which lives as long as the process, or, a submission's second kernel, from
    the thread that also closes it (grader/checks/recall_side.py).
    """
    if not sys.platform.startswith("linux"):
        return []  # no PR_SET_PDEATHSIG; there is no bubblewrap there either
    parent = os.getpid() if parent is None else parent
    return [sys.executable, "-I", "-S", "-c", kernel_source(*LAUNCH_GUARD_MODULE), str(parent)]


def _start_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch), or ``None`` when it does not run."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def owner_gone(owner: int, since: float) -> bool:
    """Whether grading process ``owner`` is gone for something that existed at ``since``: it does
    not run, or its pid now belongs to a process started later (pids are reused)."""
    started = _start_time(owner)
    # One second of slack: create_time is rounded to clock ticks, and a grading process always
    # starts well before the kernels and cgroups it makes.
    return started is None or started > since + 1.0


def kill_until_gone(pids_now: Callable[[], list[int]], timeout: float,
                     ours: Callable[[int], bool]) -> int:
    """SIGKILL what ``pids_now`` lists until it lists nothing; how many are left at the timeout.

    Each process is held by a pidfd before ``ours`` checks it again and the signal goes through
    that pidfd: a listed process that ended and whose pid was given to another process in the
    meantime is never signalled (the check then sees the newcomer, which is not ours).
    """
    deadline = time.monotonic() + timeout
    while True:
        left = pids_now()
        if not left or time.monotonic() > deadline:
            return len(left)
        for pid in left:
            _kill_if(pid, ours)
        time.sleep(0.05)


def _kill_if(pid: int, ours: Callable[[int], bool]) -> None:
    try:
        fd = os.pidfd_open(pid)
    except OSError as exc:
        if exc.errno == errno.ENOSYS and ours(pid):  # Linux < 5.3: no pidfds, the plain way
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return  # otherwise gone already
    try:
        if ours(pid):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(fd)


def _proc_text(pid: int, name: str, limit: int = 65536) -> str:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _is_sheet11_kernel(pid: int, owner: int) -> bool:
    """Whether process ``pid`` was started for a kernel of grading process ``owner``.

    A uid in the kernels' range is not proof enough: 100000 and up is also where /etc/subuid
    puts rootless containers' users. A kernel's process sits in its session's cgroup
    (``sheet11-run-<owner>-...``, which it cannot leave) or has the session's folders in its
    environment (HOME, MPLCONFIGDIR; inherited by everything it starts).
    """
    mark = f"sheet11-run-{owner}-"
    return mark in _proc_text(pid, "cgroup") or mark in _proc_text(pid, "environ")


def _is_stale_kernel(pid: int) -> bool:
    """Whether ``pid`` is a process of a kernel whose grading process is gone."""
    uid = _real_uid(pid)
    owner = None if uid is None else kernel_owner(uid)
    if owner is None or owner == os.getpid():
        return False
    started = _start_time(pid)
    return started is not None and owner_gone(owner, started) and _is_sheet11_kernel(pid, owner)


def _stale_kernel_pids() -> list[int]:
    """Processes of kernels whose grading process is gone (see :func:`sweep_stale_kernels`)."""
    return [pid for pid in _pids() if _is_stale_kernel(pid)]


def sweep_stale_kernels(timeout: float = 10.0) -> int:
    """Kill the processes of kernels whose grading process is gone (killed before it could stop
    them); returns how many were left at the timeout. Root only (only then do kernels have uids
    of their own).

    The second line of defence behind the death signals: each process runs under a kernel uid
    that names its grading process, and is killed only when that process no longer runs (or its
    pid now belongs to a younger process) and it carries a kernel's marks (:func:`_is_sheet11_kernel`),
    so the kernels of grading processes still running, this machine's other users and rootless
    containers are never touched.
    """
    if not drop_privileges():
        return 0
    return kill_until_gone(_stale_kernel_pids, timeout, _is_stale_kernel)
