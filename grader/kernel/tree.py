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

__all__ = ["kernel_tasks", "process_tree", "process_tree_tasks"]


def _stat_fields(pid: int, proc: Path) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or None where it cannot be read."""
    try:
        raw = (proc / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    close = raw.rfind(")")
    return raw[close + 2:].split() if close >= 0 else None


def process_tree(root_pid: int, proc: Path = Path("/proc")) -> dict[int, list[str]] | None:
    """``root_pid`` and all its descendants, each with its ``stat`` fields after the command name
    (index 1 is the parent, 11-14 utime, stime, cutime, cstime); ``None`` when ``root_pid`` is gone.

    One pass over ``/proc`` (linear in the number of processes), then a walk down from the root;
    the one reader of the process tree (:func:`process_tree_tasks` here and
    grader/kernel/cputime.py's CPU time).
    """
    try:
        entries = [int(e) for e in os.listdir(proc) if e.isdigit()]
    except OSError:
        return None
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for pid in entries:
        fields = _stat_fields(pid, proc)
        if fields is None or len(fields) < 2 or not fields[1].lstrip("-").isdigit():
            continue
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    if root_pid not in stats:
        return None
    tree: dict[int, list[str]] = {}
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        if pid in tree:
            continue
        tree[pid] = stats[pid]
        stack.extend(children.get(pid, ()))
    return tree


def process_tree_tasks(root_pid: int, proc: Path = Path("/proc")) -> int | None:
    """Threads (each process's main thread included) of ``root_pid`` and all its descendants;
    ``None`` when ``root_pid`` is gone."""
    tree = process_tree(root_pid, proc)
    if tree is None:
        return None
    total = 0
    for pid in tree:
        try:
            total += sum(1 for e in os.listdir(proc / str(pid) / "task") if e.isdigit())
        except OSError:
            continue  # ended while counted: it runs no longer
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
