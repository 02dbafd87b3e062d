"""What a kernel runs right now, counted from outside it: its processes and their threads.

The contract rule "a call leaves no threads or processes running" (grader/checks/contract.py) compares
this count before and after a call. It is read in the grader's process, never asked of the
kernel: from the kernel's cgroup where the grader made one (``pids.current`` counts every task,
thread or process, that lives in it; nothing the kernel starts can leave it), else from ``/proc``
of the process the grader started for the kernel and all its descendants (``/proc/PID/task``
lists a process's threads). ``None`` where neither can be read (the rule then says so instead of
guessing).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["kernel_tasks", "process_tree_tasks"]


def _parent(pid: int, proc: Path) -> int | None:
    try:
        raw = (proc / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    close = raw.rfind(")")  # the command name may hold spaces and parentheses
    fields = raw[close + 2:].split() if close >= 0 else []
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def process_tree_tasks(root_pid: int, proc: Path = Path("/proc")) -> int | None:
    """Threads (each process's main thread included) of ``root_pid`` and all its descendants.

    One pass over ``/proc``; ``None`` when ``root_pid`` is gone.
    """
    try:
        entries = [int(e) for e in os.listdir(proc) if e.isdigit()]
    except OSError:
        return None
    children: dict[int, list[int]] = {}
    alive = set()
    for pid in entries:
        parent = _parent(pid, proc)
        if parent is None:
            continue
        alive.add(pid)
        children.setdefault(parent, []).append(pid)
    if root_pid not in alive:
        return None
    total, stack, seen = 0, [root_pid], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            total += sum(1 for e in os.listdir(proc / str(pid) / "task") if e.isdigit())
        except OSError:
            continue  # ended while counted: it runs no longer
        stack.extend(children.get(pid, ()))
    return total


def kernel_tasks(session: Any) -> int | None:
    """Threads and processes the kernel holds now: its cgroup's ``pids.current``, else ``/proc``.

    ``session`` is a :class:`grader.kernel.execute.KernelSession` (or anything with ``cgroup`` and
    ``kernel_pid()``; a stand-in without them counts as unknown).
    """
    cgroup = getattr(session, "cgroup", None)
    for d in getattr(cgroup, "dirs", None) or ():
        try:
            return int((Path(d) / "pids.current").read_text().strip())
        except (OSError, ValueError):
            continue
    kernel_pid = getattr(session, "kernel_pid", None)
    pid = kernel_pid() if callable(kernel_pid) else None
    return process_tree_tasks(pid) if isinstance(pid, int) else None
