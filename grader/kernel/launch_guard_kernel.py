"""Kernel side of the launch guard: the first code the kernel's process runs, so it dies with the grader.

Run as ``python -I -S -c SOURCE PARENT COMMAND...`` (grader/kernel/sandbox.py's
``die_with_launcher_argv`` sends this file's source, never its path; standard library only). It
asks Linux to SIGKILL this process when the thread that forked it ends (``PR_SET_PDEATHSIG``,
kept across the execs that follow: sh, prlimit, bwrap, and with ``--sandbox none`` the kernel
itself), then checks that ``PARENT`` is still its parent (the grading process may have died before
the signal was set, and then none will ever come), then execs ``COMMAND``.

Exit codes: 96 the signal could not be set, 98 the parent was already gone.
"""
from __future__ import annotations

PR_SET_PDEATHSIG = 1
SIGKILL = 9


def main() -> None:
    import ctypes
    import os
    import sys
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0:
        sys.exit(96)
    if os.getppid() != int(sys.argv[1]):
        sys.exit(98)
    os.execvp(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
