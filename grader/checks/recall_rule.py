"""The decision rule of the recall verdict (11.4.d): one training call as an :class:`Attempt`, when
another try may help, when the tries together have used their budget, and which attempt decides.

- An :class:`Attempt` passes when a model came back, scored at least the threshold on the
  held-out data, and its training took at most the CPU limit (CPU s where the kernel's CPU time
  could be read, else wall clock).
- Only a model that trained within the time and missed the threshold is tried again with the
  next seed (:func:`should_retry`); a crash, an exception, a wrong model or a timeout would only
  repeat. Further tries stop once the tries together used the rubric's ``cpu_budget``
  (:func:`cpu_budget_spent`) or the wall clock's safety net (:func:`wall_budget_spent`).
- The first attempt that passes counts; without one, the last attempt decides (:func:`decide`).
- How many tries a rate of failure needs (:func:`tries_needed`, from a one-sided Clopper-Pearson
  bound, :func:`failure_upper_bound`) is what the calibration chose the budget from.

Pure functions on plain values: no kernel, no torch. grader/checks/recall.py runs the experiment
and is the front door (every name here is importable from there).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Attempt", "cpu_budget_spent", "decide", "failure_upper_bound", "should_retry", "train_seeds",
           "tries_needed", "tries_within", "wall_budget_spent"]


@dataclass(frozen=True)
class Attempt:
    """One call of ``train_recall`` and what came of it.

    ``status`` is ``ok`` (a model came back and was scored), ``raised``, ``timeout`` (the wall-clock
    safety net stopped it), ``died`` (the kernel crashed), ``bad-model`` (the model could not be
    called or returned the wrong shape) or ``no-memory`` (it scored, but the evidence of
    :func:`judge_memory` did not show a recurrent network of the requested kind carrying it).
    ``cpu_seconds`` (the kernel's, from the training call to the end of the last call on the model)
    is ``None`` where the kernel's CPU time could not be read; the wall clock of the same calls
    then stands in (and the report says so).
    """

    cell: str
    seed: int
    status: str
    accuracy: float | None = None
    cpu_seconds: float | None = None
    wall_seconds: float = 0.0
    problem: str = ""
    error_type: str = ""  # with "raised": the exception's class name (feedback only)
    #: The recurrent memory evidence (:func:`judge_memory`): the probe's held-out accuracy on the
    #: learned module's state, and on the same module re-initialised (``None``: not measured).
    memory: float | None = None
    memory_reset: float | None = None
    #: Why a model under the threshold failed, read from its held-out predictions
    #: (grader/checks/recall_diagnosis.py): the kind and the student's message ("" where none fits).
    diagnosis_kind: str = ""
    diagnosis: str = ""
    #: The pid of the kernel the attempt ran in, where recorded (the vanilla RNN's in a second
    #: kernel: grader/checks/recall_side.py); ``None`` otherwise.
    kernel_pid: int | None = None

    @property
    def seconds(self) -> float:
        """The seconds the time limit is applied to: CPU where known, else wall."""
        return self.cpu_seconds if self.cpu_seconds is not None else self.wall_seconds

    def in_time(self, cpu_limit: float) -> bool:
        return self.status != "timeout" and self.seconds <= cpu_limit

    def passed(self, threshold: float, cpu_limit: float) -> bool:
        return (self.status == "ok" and self.accuracy is not None and self.accuracy >= threshold
                and self.in_time(cpu_limit))


def should_retry(attempt: Attempt, threshold: float, cpu_limit: float) -> bool:
    """Whether another seed may help after ``attempt`` failed.

    Only a model that trained within the time and missed the threshold is retried: that is the
    failure a different seed can fix. A crash, an exception, a wrong model or a timeout would only
    repeat and cost the grader another full limit.
    """
    return attempt.status == "ok" and attempt.in_time(cpu_limit) and not attempt.passed(threshold, cpu_limit)


def wall_budget_spent(attempts: list[Attempt], wall_limit: float) -> bool:
    """No further try once the tries together took the wall-clock safety net's time.

    The safety net bounds the grader's time per submission (at most about twice
    ``wall_time_limit`` for the LSTM, whatever a submission does, e.g. sleep); correct training
    stays far below it (docs/recall.md, "Calibration").
    """
    return sum(a.wall_seconds for a in attempts) >= wall_limit


def cpu_budget_spent(attempts: list[Attempt], budget: float) -> bool:
    """No further try once the tries together used the rubric's CPU budget for them.

    The budget, not a count, bounds the tries: a fast but fragile trainer gets as many as its
    speed allows, a slow one as many as the budget holds (docs/recall.md, "Calibration"). Each
    try counts its CPU seconds where known, else its wall clock (:attr:`Attempt.seconds`).
    """
    return sum(a.seconds for a in attempts) >= budget


def tries_within(budget: float, seconds_per_try: float, cap: int) -> int:
    """How many tries a trainer that takes ``seconds_per_try`` CPU s gets from the budget: a try
    starts while the ones before used less than the budget, so ceil(budget / s), at most ``cap``."""
    if seconds_per_try <= 0:
        return cap
    return max(1, min(cap, math.ceil(budget / seconds_per_try)))


def decide(attempts: list[Attempt], threshold: float, cpu_limit: float) -> tuple[bool, Attempt | None]:
    """The verdict over the LSTM's tries: passed, and the attempt that decides it.

    The first attempt that passes counts. Without one, the deciding attempt is the last one (the
    one whose failure the report explains).
    """
    for attempt in attempts:
        if attempt.passed(threshold, cpu_limit):
            return True, attempt
    return False, (attempts[-1] if attempts else None)


def train_seeds(train_seed: int, tries: int) -> list[int]:
    """The seeds of the LSTM's tries, in order: ``train_seed, train_seed + 1, ...``."""
    return [train_seed + i for i in range(tries)]


def failure_upper_bound(failures: int, runs: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on a per-run failure rate.

    Parameters
    ----------
    failures, runs : int
        Observed failures out of ``runs`` independent runs.
    confidence : float
        Confidence level of the bound.

    Returns
    -------
    float
        The largest rate p for which seeing at most ``failures`` failures still has probability
        at least ``1 - confidence``: 0 failures in 30 runs gives 0.095 at 95 %.
    """
    if runs <= 0 or not 0 <= failures <= runs:
        raise ValueError(f"need 0 <= failures <= runs and runs > 0, got {failures}/{runs}")
    if failures == runs:
        return 1.0
    alpha = 1.0 - confidence

    def cdf(p: float) -> float:  # P(X <= failures) for X ~ Binomial(runs, p)
        return sum(math.comb(runs, i) * p**i * (1 - p) ** (runs - i) for i in range(failures + 1))

    lo, hi = failures / runs, 1.0
    for _ in range(60):  # bisection: cdf falls with p
        mid = (lo + hi) / 2
        if cdf(mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def tries_needed(failures: int, runs: int, target: float = 0.01, confidence: float | None = 0.95,
                 most: int = 10) -> int:
    """The fewest tries k with ``p ** k <= target``, assuming the seeds fail independently.

    ``p`` is the one-sided Clopper-Pearson upper bound at ``confidence``, or the observed rate
    ``failures / runs`` with ``confidence=None``. Returns 0 where even ``most`` tries would not
    reach the target (the implementation fails too often for any number of tries to help).
    """
    p = failures / runs if confidence is None else failure_upper_bound(failures, runs, confidence)
    for k in range(1, most + 1):
        if p**k <= target * (1 + 1e-9):  # 0.1 ** 2 is 0.010000000000000002 in floats
            return k
    return 0
