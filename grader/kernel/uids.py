"""Which uid a confined kernel runs under, and how the grader hands it files.

When the grader is root, each kernel runs under an unprivileged uid of its own, so that the process
limit counts only that kernel's processes: :func:`kernel_uid` encodes the grading process's pid and
the kernel's pool slot in it (:func:`kernel_owner` reads them back), :func:`drop_privileges` is the
``setpriv`` prefix that switches to it, and :func:`give_to_kernel` hands a folder of the scratch
space over, never through a link. Without root there is no uid to switch to: kernels run under the
grader's own uid in a user namespace, and all of these do nothing.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

# Each kernel runs under its own unprivileged uid (when the grader is root), so the process
# limit counts only that kernel's processes: a fork bomb in one submission cannot starve a
# kernel graded beside it. The uid follows the grading process, which runs one kernel at a time.
UID_BASE = 100_000
# A grading process may hold a second kernel, started ahead for its next submission
# (grader/kernel/kernelpool.py), beside the one it grades: each slot is a uid of its own, so the two
# never share a process limit, signals or a reap. The stride is above Linux's largest pid.
UID_SLOT_STRIDE = 1 << 22


def kernel_uid(slot: int = 0) -> int:
    """The uid of this grading process's kernel in pool slot ``slot``."""
    return UID_BASE + slot * UID_SLOT_STRIDE + os.getpid()


def runs_as_kernel_uid() -> bool:
    """Whether confined kernels run under :func:`kernel_uid` (the grader is root) or, without
    root, under the grader's own uid (in a user namespace)."""
    return bool(drop_privileges())


def give_to_kernel(path: Path | str, uid: int | None = None) -> None:
    """Hand a file or folder of the scratch space to the kernel's uid (root only).

    Never through a link: the kernel may have planted one where the grader looks.
    """
    if drop_privileges():
        uid = kernel_uid() if uid is None else uid
        os.chown(path, uid, uid, follow_symlinks=False)


# More than a grading process's pool ever holds at once (grader/kernel/kernelpool.py: AHEAD + 1 + ...).
MAX_SLOTS = 16


def kernel_owner(uid: int) -> int | None:
    """The grading process's pid encoded in a kernel uid (see :func:`kernel_uid`), or ``None``."""
    if uid < UID_BASE:
        return None
    slot, owner = divmod(uid - UID_BASE, UID_SLOT_STRIDE)
    # A pool holds a few slots at most; a uid far above is none of ours.
    return owner if 0 < owner and slot < MAX_SLOTS else None


def drop_privileges(uid: int | None = None) -> list[str]:
    """The prefix that makes the command after it run as kernel uid ``uid`` (default: slot 0's)
    without groups, capabilities or a way back; empty unless the grader is root (with ``setpriv``)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return []
    uid = kernel_uid() if uid is None else uid
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]

