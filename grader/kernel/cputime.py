"""The CPU time a kernel has used, read from outside it: the limit of the recall verdict
(grader/checks/recall.py) is applied to this number, never to one the kernel reports.

:func:`kernel_cpu_seconds` reads the kernel's cgroup where the grader made one (it counts every
process that ever ran in it, across restarts); else ``/proc`` of the process the grader started
for the kernel and all its descendants (:func:`process_tree_cpu_seconds`: a process's own time
and its reaped children's); ``None`` where neither can be read.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from grader.kernel.tree import process_tree

if TYPE_CHECKING:  # pragma: no cover - imports for the type checker only
    from grader.kernel.execute import KernelSession

__all__ = ["kernel_cpu_seconds", "process_tree_cpu_seconds"]


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_tree_cpu_seconds(root_pid: int, proc: Path = Path("/proc")) -> float | None:
    """User + system CPU seconds of ``root_pid`` and all its descendants, from ``/proc``
    (grader/kernel/tree.py's one pass).

    Each process counts its own time and its waited-for children's (``cutime``, ``cstime``), so
    a child that has ended and been reaped is still counted. ``None`` when ``root_pid`` is gone.
    """
    tree = process_tree(root_pid, proc)
    if tree is None:
        return None
    total = 0.0
    for fields in tree.values():
        try:
            total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / _CLK_TCK  # utime stime cutime cstime
        except (IndexError, ValueError):
            continue
    return total


def kernel_cpu_seconds(session: KernelSession) -> float | None:
    """CPU seconds the kernel (with everything it started) has used so far, read from outside.

    The kernel's cgroup where the grader made one (it counts every process that ever ran in it);
    else ``/proc`` of the process the grader started for the kernel and its descendants; ``None``
    where neither can be read. Never a number the kernel reports.
    """
    cgroup = getattr(session, "cgroup", None)
    if cgroup is not None:
        used = cgroup.cpu_seconds()
        if used is not None:
            return float(used)
    pid = session.kernel_pid()
    return process_tree_cpu_seconds(pid) if pid is not None else None
