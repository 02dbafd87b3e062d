"""Kernels started ahead: the next submission's kernel boots while the current one is graded.

Starting a sandboxed kernel and importing numpy and torch in it costs a few seconds per
submission, most of it CPU work in the new kernel process. A grading process that knows another
submission will follow launches that submission's kernel as soon as it starts on the current
one (:meth:`KernelSession.launch`), so the start overlaps the current notebook's run and the
kernel is ready when its turn comes.

Isolation is the same as without the pool:

- every kernel is a fresh :class:`~grader.kernel.execute.KernelSession` (own scratch folder, own cgroup,
  same sandbox command and limits) handed to exactly one submission and closed after it; a
  session is never handed out twice;
- the kernel started ahead runs beside the current one under a uid of its own (a *slot* of
  grader/kernel/sandbox.py), so the two never share a process limit, signals or the reap that ends a
  kernel's leftover processes; a slot is used again only after its previous session is closed;
- a kernel started ahead has run nothing but its own start-up and the import of numpy and
  torch (grader/kernel/execute.py ``PREIMPORT``; every kernel of the pool does it, restarts included,
  so all submissions of a batch meet the same kernel).

A submission's second kernel (grader/checks/recall_side.py: the vanilla-RNN comparison beside the
LSTM's tries, where a CPU is spare) comes from :meth:`KernelPool.side_session`: a fresh session of
the same kind, on a slot no open session holds, never started ahead and never handed out to another
submission. Slots are taken and given back under a lock, since that kernel is opened and closed in a
thread of its own.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any

from grader.kernel.execute import KernelSession, KernelStartError
from grader.kernel.sandbox import Sandbox
from grader.rubric import Limits

# One kernel ahead per grading process: with -j N there are N grading processes, so the
# machine holds at most 2N kernels, N of them idle and waiting.
AHEAD = 1


class PooledSession(KernelSession):
    """A :class:`KernelSession` that gives its uid slot back to its pool when it is closed."""

    def __init__(self, pool: KernelPool, slot: int) -> None:
        super().__init__(pool.sandbox, pool.limits, pool.threads, slot, preimport=True)
        self.slot = slot
        self._pool: KernelPool | None = pool

    def close(self) -> None:
        try:
            super().close()
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:  # once: close() may be called again by __exit__
                pool._release(self)


class KernelPool:
    """Fresh, sandboxed kernels for one grading process; one per submission, never reused.

    ``session()`` hands out the kernel started ahead (or a new session when there is none), and
    then starts the next one ahead while ``more`` says another submission will follow.
    """

    def __init__(self, sandbox: Sandbox, limits: Limits, threads: int = 1, ahead: int = AHEAD) -> None:
        if ahead < 0:
            raise ValueError(f"ahead must be >= 0, got {ahead}")
        self.sandbox, self.limits, self.threads, self.ahead = sandbox, limits, threads, ahead
        self.more = True  # set by the caller: will another submission follow the next one?
        self._ready: deque[PooledSession] = deque()  # launched, never handed out
        self._slots_in_use: set[int] = set()
        self._lock = threading.Lock()  # slots: a second kernel is opened and closed in a thread of its own
        self.handed_out = 0  # sessions given to submissions (for tests and the benchmark)
        self.launched = 0    # sessions started ahead

    # -- what the grading code calls --------------------------------------------------------
    def prime(self) -> None:
        """Start kernels ahead before the first submission arrives."""
        self._fill()

    def session(self) -> PooledSession:
        """The kernel session for the next submission (use it as a context manager)."""
        session = self._ready.popleft() if self._ready else self._new()
        self.handed_out += 1
        if self.more:
            self._fill()
        return session

    def side_session(self) -> PooledSession:
        """A second kernel for the submission being graded (not started ahead; not counted as
        handed out): the same sandbox, limits, threads and pre-import, on a slot of its own."""
        return self._new()

    def close(self) -> None:
        """Stop the kernels started ahead that no submission took."""
        while self._ready:
            self._ready.popleft().close()

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- inside ---------------------------------------------------------------------------
    def _new(self) -> PooledSession:
        with self._lock:
            slot = next(s for s in range(self.ahead + 1 + len(self._slots_in_use)) if s not in self._slots_in_use)
            self._slots_in_use.add(slot)
        try:
            return PooledSession(self, slot)
        except BaseException:
            with self._lock:
                self._slots_in_use.discard(slot)
            raise

    def _fill(self) -> None:
        """Launch sessions ahead up to ``ahead``, each on a slot no open session holds."""
        while len(self._ready) < self.ahead:
            session = self._new()
            try:
                session.launch()
            except KernelStartError:
                # Not hidden: the session stays unlaunched, so the submission that takes it
                # starts its kernel itself and reports a failure exactly as without the pool.
                pass
            self.launched += 1
            self._ready.append(session)

    def _release(self, session: PooledSession) -> None:
        with self._lock:
            self._slots_in_use.discard(session.slot)
        if session in self._ready:
            self._ready.remove(session)
