"""Where a kernel session keeps its files, and the folders of killed grading processes swept.

Every :class:`~grader.kernel.execute.KernelSession` makes one run folder,
``<root>/sheet11-run-<pid>-<random>`` (the kernel's scratch space, the grader's call and
connection folders, the sockets' folders), and removes it when it closes. A grading process
killed before it could (SIGKILL, power loss) leaves its folder behind; the next session removes
every folder whose pid no longer runs, and the cgroups of dead grading processes with it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from grader.kernel.cgroup import sweep_stale_cgroups


def run_root() -> str:
    """Where sessions keep their folders: the temp dir, unless its path is so long that the
    kernel's IPC socket paths (``<root>/sheet11-run-<pid>-<x>/kernel/ipc-<n>``) would pass the
    107-byte limit of a Unix socket's name; then ``/tmp``."""
    root = tempfile.gettempdir()
    if len(os.fsencode(root)) > 60 and os.path.isdir("/tmp"):
        return "/tmp"
    return root


def sweep_stale_runs(root: str) -> None:
    """Remove the scratch folders of grading processes that were killed (SIGKILL, power loss)
    before they could clean up: their names carry the pid, which no longer runs."""
    for stale in Path(root).glob("sheet11-run-*-*"):
        pid = stale.name.split("-")[2]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        try:
            if stale.stat().st_uid == os.geteuid():
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass
    sweep_stale_cgroups()


def new_run_folder() -> Path:
    """A fresh run folder of this process (after sweeping those of dead grading processes)."""
    root = run_root()
    sweep_stale_runs(root)
    return Path(tempfile.mkdtemp(prefix=f"sheet11-run-{os.getpid()}-", dir=root))
