"""What a wrong result is, when it is the expected one rearranged: said in words, each checked
within the rubric's tolerance.

:func:`structural_finding` says how a returned result relates to the expected one ("" when it is
none of these). For one array the findings are tried in this order, the first that fits said
(nothing for a result with NaN or infinite values):

1. a single number where a vector was expected, equal to its last or first entry;
2. for a function with one entry per time step (:data:`TIME_FIRST`), another number of steps:
   none, the first n or the last n of them, or only the count wrong;
3. the last or the first step alone;
4. axes 0 and 1 swapped (in the contract's axis names where :data:`AXES` has them, "transposed"
   for a matrix);
5. an extra axis of length 1;
6. the steps in reverse order along the first axis;
7. a constant multiple of the expected result (:data:`SCALED`), the factor not 1.

A pair (h_new, c_new) that came back as (c_new, h_new) is said so; for a dict of gradients every
wrong array in it must have a finding, and they are joined with "; " (else nothing is said).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from grader.checks.bridge import ArrayInfo
from grader.checks.outputs import all_close

__all__ = ["AXES", "SCALED", "TIME_FIRST", "structural_finding"]

#: How a finding that the result is a multiple of the expected one begins.
SCALED = "every value is the expected one times the same factor"

#: What the axes of an expected result are called, where a finding can say it in the contract's words.
AXES = {"rnn_forward": ("T", "B", "H")}

#: The functions whose result has one entry per time step along its first axis.
TIME_FIRST = ("rnn_forward", "hidden_grad_norms", "gradient_bound")


@dataclass(frozen=True)
class _Tolerance:
    """The case's tolerance: two arrays are close when they have one shape and equal values within it."""

    rtol: float
    atol: float

    def close(self, a: np.ndarray, b: np.ndarray) -> bool:
        return a.shape == b.shape and all_close(a, b, self.rtol, self.atol)


def _single_number(function: str, exp: np.ndarray, got: np.ndarray, tol: _Tolerance) -> str:
    if exp.ndim == 1 and exp.shape[0] > 1 and got.ndim == 0:
        for index, which in ((-1, "last"), (0, "first")):
            if tol.close(exp[index], got):
                return (f"it equals the {which} entry alone: a single number came back, where all "
                        f"{exp.shape[0]} entries were expected")
    return ""


def _step_count(function: str, exp: np.ndarray, got: np.ndarray, tol: _Tolerance) -> str:
    if exp.ndim >= 1 and got.ndim == exp.ndim and got.shape[1:] == exp.shape[1:] and \
            got.shape[0] != exp.shape[0] and function in TIME_FIRST:
        n, want = got.shape[0], exp.shape[0]
        if n == 0:
            return f"it is empty along the first axis (time), where {want} steps are expected"
        if n < want and tol.close(exp[:n], got):
            return (f"it equals the first {n} of the {want} expected steps: the loop over time "
                    "stops early")
        if n < want and tol.close(exp[-n:], got):
            return f"it equals the last {n} of the {want} expected steps: the earlier steps are missing"
        return (f"it has {n} entries along the first axis (time) where {want} are expected, one per "
                "step: the number of steps the loop runs is wrong")
    return ""


def _one_step(function: str, exp: np.ndarray, got: np.ndarray, tol: _Tolerance) -> str:
    if exp.ndim >= 2 and exp.shape[0] > 1:
        if tol.close(exp[-1], got):
            return (f"it equals the last step alone (the last entry along the first axis, shape "
                    f"{tuple(exp.shape[1:])}): only the last step came back, where every step was expected")
        if tol.close(exp[0], got):
            return ("it equals the first step alone (the first entry along the first axis): "
                    "only the first step came back, where every step was expected")
    return ""


def _axes_swapped(function: str, exp: np.ndarray, got: np.ndarray, tol: _Tolerance) -> str:
    if exp.ndim >= 2 and exp.shape[0] != 1 and exp.shape[1] != 1 or exp.ndim >= 2 and got.shape != exp.shape:
        swapped = np.swapaxes(exp, 0, 1)
        if tol.close(swapped, got) and not tol.close(exp, got):
            names = AXES.get(function)
            if names and len(names) == exp.ndim:
                order = ", ".join((names[1], names[0], *names[2:]))
                want = ", ".join(names)
                return (f"it holds the expected values with axes 0 and 1 swapped: ({order}) order "
                        f"where ({want}) is expected")
            if exp.ndim == 2:
                return "it is the expected matrix transposed"
            return "it holds the expected values with axes 0 and 1 swapped"
    return ""


def _extra_axis(function: str, exp: np.ndarray, got: np.ndarray, tol: _Tolerance) -> str:
    if got.shape != exp.shape and got.size == exp.size and \
            [n for n in got.shape if n != 1] == [n for n in exp.shape if n != 1]:
        if tol.close(exp, got.reshape(exp.shape)):
            return (f"it holds the expected values with an extra axis of length 1 (shape "
                    f"{tuple(got.shape)} where {tuple(exp.shape)} is expected)")
    return ""


def _reversed(function: str, exp: np.ndarray, got: np.ndarray, tol: _Tolerance) -> str:
    if got.shape == exp.shape and exp.ndim >= 1 and exp.shape[0] > 1:
        if tol.close(np.flip(exp, 0), got):
            return "it holds the expected values in reverse order along the first axis"
    return ""


def _scaled(function: str, exp: np.ndarray, got: np.ndarray, tol: _Tolerance) -> str:
    if got.shape == exp.shape and exp.size > 1:
        denom = float(np.dot(exp.ravel(), exp.ravel()))
        if denom > 0:
            c = float(np.dot(exp.ravel(), got.ravel())) / denom
            if abs(c - 1) > 10 * tol.rtol and abs(c) > 1e-12 and tol.close(c * exp, got):
                return (f"{SCALED} {c:.6g}: a factor "
                        "that multiplies the whole result is wrong or missing")
    return ""


#: The findings for one array, tried in this order (the module's list): each gives "" when it does not fit.
_STEPS: tuple[Callable[[str, np.ndarray, np.ndarray, _Tolerance], str], ...] = (
    _single_number, _step_count, _one_step, _axes_swapped, _extra_axis, _reversed, _scaled)


def _array_finding(function: str, exp: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> str:
    """How ``got`` relates to ``exp`` when it is a slice, a transposition, a reshaping, a
    reversal or a multiple of it ("" when none fits). Each is checked exactly, within tolerance."""
    if not np.all(np.isfinite(got)):
        return ""
    tol = _Tolerance(rtol, atol)
    for step in _STEPS:
        found = step(function, exp, got, tol)
        if found:
            return found
    return ""


def structural_finding(function: str, expected: Any, got: Any, rtol: float, atol: float) -> str:
    """A slice, transposition, reshaping, reversal or multiple of the expected result, or a
    pair of results in the wrong order, said in words ("" when the result is none of these)."""
    if isinstance(expected, np.ndarray):
        if isinstance(got, ArrayInfo):
            return _array_finding(function, expected, got.array, rtol, atol)
        return ""
    if isinstance(expected, tuple):
        if (isinstance(got, tuple) and len(got) == 2 == len(expected)
                and all(isinstance(g, ArrayInfo) for g in got)):
            a, b = (g.array for g in got)
            h, c = expected
            if (a.shape == c.shape and b.shape == h.shape and all_close(c, a, rtol, atol)
                    and all_close(h, b, rtol, atol) and not all_close(h, a, rtol, atol)):
                return ("the two results came back in the order (c_new, h_new): "
                        "`lstm_cell` returns (h_new, c_new)")
        return ""
    if isinstance(expected, dict) and isinstance(got, dict):
        found = []
        for key in expected:
            g = got.get(key)
            if isinstance(g, ArrayInfo) and not (g.array.shape == expected[key].shape
                                                 and all_close(expected[key], g.array, rtol, atol)):
                what = _array_finding(function, expected[key], g.array, rtol, atol)
                if not what:
                    return ""
                found.append(f"{key}: {what}")
        return "; ".join(found)
    return ""
