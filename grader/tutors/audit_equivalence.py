"""Whether a mutant is equivalent to the reference, and grading it in the grader's process.

:func:`find_difference` calls a mutant and the reference on :data:`EQUIVALENCE_DRAWS` random inputs
over the rubric's settings with random sizes (values within 1e-5, inputs untouched, the same
result twice); :func:`reached_lines` says which lines of the reference's program those inputs run.
:class:`InProcessSession` is what the grader's Bridge needs of a kernel session, in this process,
for the project's own (mutated) code only.
"""
from __future__ import annotations

import signal
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

import numpy as np
import torch

import reference
from grader.checks import cases as case_inputs
from grader.checks.compare import to_numpy
from grader.kernel.execute import CodeResult
from grader.rubric import Check
from grader.tutors.audit_mutants import FUNCTIONS, program_file, run_program

__all__ = ["CALL_SECONDS", "EQUIVALENCE_DRAWS", "Difference", "InProcessSession", "find_difference",
           "random_params", "reached_lines"]


#: Random inputs a mutant must agree with the reference on to count as equivalent.
EQUIVALENCE_DRAWS = 40
#: Equivalence tolerance: far tighter than any check's, looser than float32 reordering.
EQUIVALENCE_RTOL, EQUIVALENCE_ATOL = 1e-5, 1e-6
#: Seconds one in-process call of a mutant may take (a mutant that loops is stopped).
CALL_SECONDS = 20.0

# ------------------------------------------------------------------------------------------------
# Equivalence: the mutant against the reference on many random inputs.

_SIZES = {"T": (1, 7), "B": (1, 4), "D": (1, 6), "H": (1, 6), "d": (1, 5), "leaves": (1, 9), "C": (2, 5)}


def random_params(check: Check, rng: np.random.Generator) -> dict[str, Any]:
    """A rubric case's parameters (hidden or public) with some sizes drawn anew."""
    pool = list(check.cases) + list(check.public)
    params = dict(pool[int(rng.integers(len(pool)))].params)
    for key, (lo, hi) in _SIZES.items():
        if key in params and rng.random() < 0.6:
            params[key] = int(rng.integers(lo, hi + 1))
    if "k" in params:
        params["k"] = int(rng.integers(1, params["T"] + 2))
    for key, options in (("activation", ("tanh", "sigmoid")), ("loss", ("linear", "squared")),
                         ("shape", ("balanced", "random", "left_chain"))):
        if key in params and rng.random() < 0.5:
            params[key] = options[int(rng.integers(len(options)))]
    return params


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def _same_inputs(before: Any, after: Any) -> bool:
    if isinstance(before, torch.Tensor):
        return (isinstance(after, torch.Tensor) and before.dtype == after.dtype and before.shape == after.shape
                and bool(torch.equal(before, after.detach())) and not after.requires_grad and after.grad is None)
    if isinstance(before, dict):
        return isinstance(after, dict) and list(before) == list(after) and all(
            _same_inputs(before[k], after[k]) for k in before)
    if isinstance(before, case_inputs.LossSpec):
        return bool(torch.equal(before.vector, after.vector))
    return True


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.shape == b.shape and bool(np.all(np.isfinite(b)))
                and bool(np.allclose(b, a, rtol=EQUIVALENCE_RTOL, atol=EQUIVALENCE_ATOL)))
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(_close(a[k], b[k]) for k in a)
    return False


@dataclass(frozen=True)
class Difference:
    """An input on which a mutant differs from the reference: what a new case would use."""

    seed: int
    params: Mapping[str, Any]
    why: str

    def describe(self, function: str) -> str:
        inner = ", ".join(f"{k} = {v!r}".replace("'", '"') for k, v in self.params.items())
        return (f"{{ seed = {self.seed}, {inner} }} ({self.why}; the inputs are "
                f"grader.checks.cases.make_inputs({function!r}, {self.seed}, params))")


def find_difference(function: str, fn: Callable[..., Any], check: Check, draws: int = EQUIVALENCE_DRAWS,
                    seed: int = 0) -> tuple[Difference | None, float]:
    """The first random input on which ``fn`` differs from the reference (None: none found),
    and the largest relative difference seen (0 where none)."""
    rng = np.random.default_rng([seed, FUNCTIONS.index(function)])
    worst = 0.0
    ref = getattr(reference, function)
    for _ in range(draws):
        params = random_params(check, rng)
        case_seed = int(rng.integers(10**6, 10**7))
        inputs = case_inputs.make_inputs(function, case_seed, params)
        expected = to_numpy(ref(**_clone(inputs)))
        given = _clone(inputs)
        try:
            with _time_limit(CALL_SECONDS), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = to_numpy(fn(**given))
                again = to_numpy(fn(**_clone(inputs)))
        except Exception as exc:  # noqa: BLE001 - a mutant that raises differs here
            return Difference(case_seed, params, f"it raises {type(exc).__name__}"), worst
        if not _close(expected, got):
            return Difference(case_seed, params, "its result differs"), worst
        if not all(_same_inputs(inputs[k], given[k]) for k in inputs):
            return Difference(case_seed, params, "it changes an input in place"), worst
        if not _close(got, again):
            return Difference(case_seed, params, "a second call returns another result"), worst
        worst = max(worst, _max_rel(expected, got))
    return None, worst


def _max_rel(a: Any, b: Any) -> float:
    if isinstance(a, np.ndarray):
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), EQUIVALENCE_ATOL))) if a.size else 0.0
    if isinstance(a, tuple):
        return max((_max_rel(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, dict):
        return max((_max_rel(a[k], b[k]) for k in a), default=0.0)
    return 0.0


def reached_lines(function: str, program: str, check: Check, draws: int = EQUIVALENCE_DRAWS,
                  seed: int = 0) -> set[int]:
    """The lines of the reference's own program that run on the equivalence inputs."""
    name = f"reached-{function}"
    fn = run_program(program, name)[function]
    lines: set[int] = set()
    filename = program_file(name)

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != filename:
            return None
        if event == "line":
            lines.add(frame.f_lineno)
        return tracer

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        find_difference(function, fn, check, draws, seed)
    finally:
        sys.settrace(old)
    return lines


# ------------------------------------------------------------------------------------------------
# Grading a mutant in the grader's process, with the grader's own code.


class _Stop(BaseException):
    pass


class _time_limit:
    """SIGALRM after ``seconds`` (main thread only; elsewhere no limit)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self.armed = False

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        self.fired = True
        raise _Stop()

    def __enter__(self) -> _time_limit:
        import threading
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            self.armed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)


class InProcessSession:
    """What :class:`~grader.checks.bridge.Bridge` needs of a kernel session, in this process: the
    kernel-side call code runs in the mutant's namespace (the same files, the same encoding,
    the same double call and input report as in a kernel). For the project's own code only."""

    def __init__(self, namespace: dict[str, Any], folder: Path) -> None:
        self.namespace = namespace
        self.calls = folder
        self.sandbox = SimpleNamespace(confined=False, note="")
        self.uid = -1

    def run_code(self, code: str, timeout: float) -> CodeResult:
        start = time.perf_counter()
        limit = _time_limit(timeout)
        try:
            with limit, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a mutant's deprecation warnings are not the audit's
                exec(compile(code, "<sheet11-call>", "exec"), self.namespace)
        except _Stop:
            pass
        seconds = time.perf_counter() - start
        if limit.fired:
            return CodeResult("timeout", seconds)
        return CodeResult("ok", seconds)

