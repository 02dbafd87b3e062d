"""Spare CPU slots: where a submission's independent work may go to a second kernel.

A grading process grades one submission at a time in one kernel. When a CPU would otherwise sit
idle, part of that submission's work that does not depend on the rest (the vanilla-RNN comparison
of grader/checks/recall.py) may run in a second sandboxed kernel of the same submission
(grader/checks/recall_side.py). Whether a CPU is spare is decided where the CPUs are known and
handed down as *tokens*, one per idle slot:

- :class:`TokenPipe`: a batch (grader/batch/run.py) makes one pipe before it forks its grading
  processes; they inherit it. The batch writes one token when a grading process of its own has
  nothing left to grade (its queue is empty) while another still works; with one grading process
  (``-j 1``) there is no pipe and so never a token. A grading process takes a token without
  blocking (:meth:`TokenPipe.take`: one byte, read by exactly one of the processes that wait),
  and gives it back when its second kernel is closed, so another submission may use the slot.
- :class:`AlwaysSpare`: ``grade check --full`` on a machine with at least two usable CPUs
  (:func:`usable_cpus`, the process's CPU affinity): a slot is spare from the start.

Both ends are non-blocking and close on exec, so no kernel (started with exec) ever holds them;
a token carries no data, only the permission to use one more CPU.
"""
from __future__ import annotations

import os
import select
from typing import Protocol

__all__ = ["AlwaysSpare", "SpareSlots", "TokenPipe", "usable_cpus"]

_TOKEN = b"t"


class SpareSlots(Protocol):
    """Where a grading process learns that one more CPU is free for a second kernel."""

    def wait(self, timeout: float) -> bool:
        """Whether a token may be there now (it may still be taken by another), after waiting
        at most ``timeout`` seconds."""

    def take(self) -> bool:
        """Take one token without blocking; False when there is none."""

    def give_back(self) -> None:
        """Return a token taken before: the slot is free again."""


class TokenPipe:
    """Spare slots as bytes in a pipe shared by a batch and its forked grading processes."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd

    @classmethod
    def create(cls) -> TokenPipe:
        """A new pipe, both ends non-blocking and closed on exec (made before the fork)."""
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        return cls(read_fd, write_fd)

    def fds(self) -> tuple[int, int]:
        return self.read_fd, self.write_fd

    def hand_out(self) -> None:
        """One more spare slot (the batch: a grading process has nothing left to grade)."""
        self.give_back()

    def wait(self, timeout: float) -> bool:
        try:
            readable, _, _ = select.select([self.read_fd], [], [], max(0.0, timeout))
        except (OSError, ValueError):  # closed: no token will come
            return False
        return bool(readable)

    def take(self) -> bool:
        try:
            return os.read(self.read_fd, 1) == _TOKEN
        except (BlockingIOError, InterruptedError):
            return False  # another process took it first
        except OSError:
            return False

    def give_back(self) -> None:
        try:
            os.write(self.write_fd, _TOKEN)
        except OSError:  # full (far beyond any number of slots) or closed: the slot is not used again
            pass

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class AlwaysSpare:
    """A slot that is always free (``grade check --full`` on a machine with two or more CPUs)."""

    def wait(self, timeout: float) -> bool:
        return True

    def take(self) -> bool:
        return True

    def give_back(self) -> None:
        return None


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
