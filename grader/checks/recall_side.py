"""The vanilla-RNN comparison of 11.4.d in a second kernel, beside the LSTM's tries.

The comparison does not depend on the LSTM's tries: the same ``train_recall("rnn", ...)`` call on
the same relabelled data. When a CPU is spare (grader/kernel/spare.py), it runs in a second
sandboxed kernel of the same submission while the first kernel does the function checks and the
LSTM's tries; otherwise it runs in the first kernel after the tries, as it always did.

- **Exactly once.** One :class:`Claim` decides who runs the RNN attempt, under a lock: the
  waiting thread of :class:`SecondKernel` claims it for the second kernel only together with a
  token it takes at that moment (no token is consumed for a claim it cannot make); the grading
  thread claims it for the first kernel when it reaches the comparison and no token came first.
  Whoever does not hold the claim never runs the attempt.
- **The same kernel, the same way.** The second kernel is opened by the caller's factory (the
  same sandbox, limits and thread count; a uid slot of its own: grader/kernel/kernelpool.py), shares
  the submission's time budget (its end is the first kernel's), runs the same notebook cells the
  same way (:meth:`~grader.kernel.execute.KernelSession.run_notebook` on a copy of the
  notebook), and only then runs the RNN attempt; that attempt's CPU time is read from outside the
  second kernel as for any attempt (grader/kernel/cputime.py). The kernel is opened, used and closed
  in the waiting thread (a kernel dies with the thread that launched it:
  grader/kernel/sandbox.py's launch guard), which is inside the grading process, so the
  submission's budget and the kill of its grading process cover it.
- **No silent fallback, no lost result.** Where the second kernel cannot start, does not hold
  ``train_recall`` after the notebook ran, dies during the attempt or fails in any other way, the
  RNN attempt runs in the first kernel after the tries, and :attr:`SecondKernel.notes` says why
  (the tutor's technical detail shows it).
- **Nothing left running.** :meth:`SecondKernel.close` ends the waiting (a claim no one made is
  then made for no one) and waits for a second kernel at work, so no kernel of a submission
  outlives its grading.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Literal

from grader.checks.recall_rule import Attempt
from grader.kernel.spare import SpareSlots

__all__ = ["Claim", "SecondKernel", "SideRun"]

Owner = Literal["first", "second", "nobody"]
#: What the second kernel gives back: the RNN attempt, or why it could not make one.
SideRun = Callable[[], "Attempt | str"]
#: Seconds between two looks at the stop signal while no token is there.
POLL_SECONDS = 0.25


class Claim:
    """Who runs the RNN attempt: set once, under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.owner: Owner | None = None

    def take(self, who: Owner, also: Callable[[], bool] | None = None) -> bool:
        """Claim for ``who`` unless someone holds it; ``also`` (taking a token) must succeed too,
        and is tried only while the claim is free, under the same lock."""
        with self._lock:
            if self.owner is not None:
                return False
            if also is not None and not also():
                return False
            self.owner = who
            return True


def _close_thread_loop() -> None:
    """Close the event loop nbclient's ``run_sync`` made for this thread (jupyter_core keeps one per
    thread); the thread's kernel is closed by now."""
    from jupyter_core.utils import ensure_event_loop
    loop = ensure_event_loop()
    if not loop.is_running():
        loop.close()
    asyncio.set_event_loop(None)


class SecondKernel:
    """One submission's RNN attempt, claimed by a second kernel when a spare slot comes first.

    ``run`` is called in the waiting thread once it holds the claim and a token: it opens the
    second kernel, runs the notebook, makes the RNN attempt and closes the kernel, and returns the
    attempt or, where it could not make one, why (:data:`SideRun`).
    """

    def __init__(self, slots: SpareSlots, run: SideRun, poll: float = POLL_SECONDS) -> None:
        self.slots, self._run, self._poll = slots, run, poll
        self.claim = Claim()
        self.notes: list[str] = []  # for the tutor: why the second kernel's attempt did not count
        self.attempt: Attempt | None = None  # the RNN attempt the second kernel made (for the record)
        self._outcome: Attempt | str = "the second kernel did not report"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SecondKernel:
        """Begin waiting for a spare slot (a thread of this grading process)."""
        self._thread = threading.Thread(target=self._wait, name="sheet11-second-kernel", daemon=True)
        self._thread.start()
        return self

    def _wait(self) -> None:
        while not self._stop.is_set():
            if not self.slots.wait(self._poll):
                continue
            if self.claim.take("second", self.slots.take):
                self._side()
                return
            if self.claim.owner is not None:
                return
            self._stop.wait(0.01)  # a token another process took: look again soon

    def _side(self) -> None:
        try:
            self._outcome = self._run()
        except BaseException as exc:  # noqa: BLE001 - reported, and the first kernel runs it
            self._outcome = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            self.slots.give_back()
            _close_thread_loop()
        if isinstance(self._outcome, Attempt):
            self.attempt = self._outcome

    def result(self, here: Callable[[], Attempt]) -> Attempt:
        """The RNN attempt, made exactly once: ``here`` (in the first kernel) when no spare slot
        came first, else the second kernel's, waited for; ``here`` after all, with a note for
        the tutor, when the second kernel could not make it."""
        if self.claim.take("first"):
            self._stop.set()
            return here()
        if self.claim.owner == "second":
            self._join()
            if isinstance(self._outcome, Attempt):
                return self._outcome
            self.notes.append("the vanilla-RNN comparison was to run in a second kernel, which could not make "
                              f"it ({self._outcome}); it ran in the submission's kernel after the LSTM's tries")
        return here()

    def close(self) -> None:
        """No attempt starts after this; a second kernel at work is waited for (it closes itself).
        A thread that only waits for a token is not: it ends by itself within a poll and touches
        nothing once the claim is made."""
        self.claim.take("nobody")
        self._stop.set()
        if self.claim.owner == "second":
            self._join()

    def _join(self) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> SecondKernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
