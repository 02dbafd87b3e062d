"""A cgroup per kernel: one cap on the memory and the processes of a kernel and all it starts.

``prlimit`` limits each process; a kernel that forks ten memory-hungry children would still
exhaust the machine. A cgroup (v2, or v1's memory and pids controllers; v1's cpuacct where there
is one) counts them all: :class:`KernelCgroup` makes one per kernel session, the kernel joins it
before exec, and nothing it starts can leave it. It is also the one list of a kernel's processes
(grader/kernel/tree.py counts them, the recall's CPU time is read from it) and what removing it
kills. Cgroups of grading processes that died are swept by the next session
(:func:`sweep_stale_cgroups`). Where this process may create no cgroup (not root, no writable
hierarchy), :func:`cgroup_layout` is ``''`` and the limits apply per process only
(:func:`cgroup_note` says so).
"""
from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from grader.kernel.leftovers import kill_until_gone, owner_gone, sweep_stale_kernels
from grader.rubric import Limits

CGROUP_ROOT = Path("/sys/fs/cgroup")


class KernelCgroup:
    """A cap on the memory and the processes of one kernel and everything it starts.

    ``prlimit`` limits each process; a kernel that forks ten memory-hungry children would still
    exhaust the machine. A cgroup (v2, or v1's memory and pids controllers) counts them all. The
    grader joins the kernel to it before exec, so nothing the kernel starts escapes it.
    """

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs

    @classmethod
    def create(cls, name: str, limits: Limits) -> KernelCgroup | None:
        layout = cgroup_layout()
        if not layout:
            return None
        memory = str(limits.memory_mb * 1024 * 1024)
        made: list[Path] = []
        try:
            if layout == "v2":
                d = CGROUP_ROOT / name
                d.mkdir()
                made.append(d)
                (d / "memory.max").write_text(memory)
                (d / "memory.swap.max").write_text("0") if (d / "memory.swap.max").exists() else None
                (d / "pids.max").write_text(str(limits.max_processes))
            else:
                mem, pids = CGROUP_ROOT / "memory" / name, CGROUP_ROOT / "pids" / name
                for d in (mem, pids):
                    d.mkdir()
                    made.append(d)
                (mem / "memory.limit_in_bytes").write_text(memory)
                if (mem / "memory.memsw.limit_in_bytes").exists():
                    (mem / "memory.memsw.limit_in_bytes").write_text(memory)
                (pids / "pids.max").write_text(str(limits.max_processes))
                # Optional: CPU accounting of the whole kernel (the recall time limit); without
                # it the grader falls back to /proc.
                acct = CGROUP_ROOT / "cpuacct" / name
                if (CGROUP_ROOT / "cpuacct" / "cpuacct.usage").exists():
                    try:
                        acct.mkdir()
                        made.append(acct)
                    except OSError:
                        pass
        except OSError:
            cls(made).remove()
            return None
        return cls(made)

    def argv(self) -> list[str]:
        """A prefix that moves the starting process into the cgroup, then execs the rest."""
        script = 'while [ "$1" != "--" ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"'
        return ["sh", "-c", script, "sh", *[str(d / "cgroup.procs") for d in self.dirs], "--"]

    def cpu_seconds(self) -> float | None:
        """CPU seconds used by every process that ran in the cgroup (v2 ``cpu.stat``, v1 ``cpuacct``)."""
        for d in self.dirs:
            try:
                if (d / "cpu.stat").exists():
                    for line in (d / "cpu.stat").read_text().splitlines():
                        if line.startswith("usage_usec "):
                            return int(line.split()[1]) / 1e6
                if (d / "cpuacct.usage").exists():
                    return int((d / "cpuacct.usage").read_text().strip()) / 1e9
            except (OSError, ValueError):
                continue
        return None

    def procs(self) -> list[int]:
        """The processes in the cgroup now (every directory of it, v1 or v2)."""
        return _cgroup_procs(self.dirs)

    def remove(self) -> None:
        """Kill whatever still runs in the cgroup, then remove it.

        A cgroup with a process in it cannot be removed, and a process left in it would be a
        kernel's that outlived its session (a daemon the kernel started, a reap that timed out):
        the cgroup is the one list of a kernel's processes that none of them can leave.
        """
        kill_until_gone(self.procs, 10.0, functools.partial(_in_cgroup, self.dirs))
        for d in self.dirs:
            for _ in range(50):  # the kernel's processes may take a moment to be reaped
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def _in_cgroup(dirs: list[Path], pid: int) -> bool:
    return pid in _cgroup_procs(dirs)


def _cgroup_procs(dirs: list[Path]) -> list[int]:
    pids: set[int] = set()
    for d in dirs:
        try:
            text = (d / "cgroup.procs").read_text()
        except OSError:
            continue
        pids.update(int(x) for x in text.split() if x.isdigit())
    return sorted(pids)


def sweep_stale_cgroups(prefix: str = "sheet11-run-") -> None:
    """Stop what grading processes that were killed (SIGKILL, power loss, a worker over its
    budget, a killed batch or cluster worker, a kernel started ahead for a submission that never
    came) could not stop themselves, then clean up after them; every session start calls this.

    - Their cgroups (names carry the dead process's pid): whatever still runs in one is killed
      first (a non-empty cgroup cannot be removed, and what runs there is a kernel's), then it
      is removed. A cgroup is stale only when its pid no longer runs or now belongs to a process
      younger than the cgroup, so the cgroups of grading processes still running are never
      touched.
    - Kernels outside any cgroup (none here, or a v1 machine without one): by uid slot,
      :func:`sweep_stale_kernels`.
    """
    if cgroup_layout():
        for parent in (CGROUP_ROOT, CGROUP_ROOT / "memory", CGROUP_ROOT / "pids", CGROUP_ROOT / "cpuacct"):
            try:
                stale = [d for d in parent.glob(f"{prefix}*-*") if d.is_dir()]
            except OSError:
                continue
            for d in stale:
                pid = d.name[len(prefix):].split("-")[0]
                try:
                    made = d.stat().st_mtime
                except OSError:
                    continue
                if not pid.isdigit() or not owner_gone(int(pid), made):
                    continue
                kill_until_gone(functools.partial(_cgroup_procs, [d]), 10.0,
                                 functools.partial(_in_cgroup, [d]))
                try:
                    d.rmdir()
                except OSError:
                    pass
    sweep_stale_kernels()


@functools.lru_cache(maxsize=1)
def cgroup_layout() -> str:
    """``v2`` or ``v1`` where this process may create cgroups with memory and pids limits, else ``''``."""
    if os.geteuid() != 0:
        return ""
    probe = f"sheet11-probe-{os.getpid()}"
    controllers = CGROUP_ROOT / "cgroup.subtree_control"
    candidates: list[tuple[str, list[Path]]] = []
    if controllers.exists():
        try:
            enabled = controllers.read_text().split()
        except OSError:
            enabled = []
        if "memory" in enabled and "pids" in enabled:
            candidates.append(("v2", [CGROUP_ROOT / probe]))
    if (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists() and (CGROUP_ROOT / "pids").is_dir():
        candidates.append(("v1", [CGROUP_ROOT / "memory" / probe, CGROUP_ROOT / "pids" / probe]))
    for layout, dirs in candidates:
        made = []
        try:
            for d in dirs:
                d.mkdir()
                made.append(d)
            return layout
        except OSError:
            continue
        finally:
            for d in made:
                try:
                    d.rmdir()
                except OSError:
                    pass
    return ""


def cgroup_note() -> str:
    """What a tutor should know when kernels cannot be put into a cgroup here."""
    if cgroup_layout():
        return ""
    return ("memory and process limits apply per process only (no writable cgroup here; run the "
            "grader as root on a machine with cgroups to cap each kernel as a whole)")

