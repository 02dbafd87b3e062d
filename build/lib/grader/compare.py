"""Compare what a student's function returned with the reference, in the grader's process.

A case passes when the returned value has the expected structure, a floating dtype, the expected
shape and values within the rubric's tolerances. A failed case says why in plain words: the
named mistake it matches, or the first difference with shapes, a slice and the largest errors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from grader.bridge import ArrayInfo, Returned, TypeInfo
from grader.mistakes import mistakes_for

GRAD_KEYS = ("W", "U", "b", "V", "c")


@dataclass(frozen=True)
class CaseResult:
    """One hidden case of one function: a finding, immutable."""

    function: str
    index: int
    params: str
    shapes: str
    passed: bool
    points: float
    max_points: float
    message: str = ""
    mistakes: tuple[str, ...] = ()
    expected: str = ""
    got: str = ""
    max_abs: float | None = None
    max_rel: float | None = None
    series: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.function}, case {self.index} ({self.params})"


def to_numpy(value: Any) -> Any:
    """Reference/mistake output (tensors, tuples, dicts) as float64 numpy in the same structure."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    if isinstance(value, np.ndarray):
        return value.astype(np.float64)
    if isinstance(value, (tuple, list)):
        return tuple(to_numpy(v) for v in value)
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    return value


def _describe(value: Any) -> str:
    if isinstance(value, ArrayInfo):
        return f"a {value.kind} of shape {tuple(value.array.shape)} and dtype {value.dtype}"
    if isinstance(value, TypeInfo):
        return "None" if value.kind == "NoneType" else f"a {value.kind}"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(value)}"
    if isinstance(value, float):
        return f"the number {value:g}"
    return type(value).__name__


def _expected_text(expected: Any) -> str:
    if isinstance(expected, np.ndarray):
        return f"a float32 tensor of shape {tuple(expected.shape)}"
    if isinstance(expected, tuple):
        return "a tuple (h_new, c_new) of two tensors of shape " + str(tuple(expected[0].shape))
    return "a dict with the keys " + ", ".join(GRAD_KEYS) + " (one gradient tensor each)"


def _flatten(expected: Any, got: Any) -> tuple[list[tuple[str, np.ndarray, ArrayInfo]], str]:
    """Pair expected arrays with returned ones, or say what is wrong with the structure."""
    if isinstance(expected, np.ndarray):
        pairs = [("", expected, got)]
    elif isinstance(expected, tuple):
        if not isinstance(got, tuple) or len(got) != len(expected):
            return [], f"returned {_describe(got)}; expected {_expected_text(expected)}"
        pairs = [(n, e, g) for n, e, g in zip(("h_new", "c_new"), expected, got)]
    else:
        if not isinstance(got, dict):
            return [], f"returned {_describe(got)}; expected {_expected_text(expected)}"
        missing = [k for k in expected if k not in got]
        if missing:
            return [], f"the returned dict has no {', '.join(map(repr, missing))}; expected the keys {', '.join(GRAD_KEYS)}"
        pairs = [(k, expected[k], got[k]) for k in expected]
    for label, exp, g in pairs:
        where = f"{label}: " if label else ""
        if not isinstance(g, ArrayInfo):
            return [], f"{where}returned {_describe(g)}; expected a tensor of shape {tuple(exp.shape)}"
        if not ("float" in g.dtype or "double" in g.dtype or "half" in g.dtype):
            return [], f"{where}returned dtype {g.dtype}; expected a floating-point tensor (torch.float32)"
        if g.array.shape != exp.shape:
            return [], f"{where}returned shape {tuple(g.array.shape)}; expected {tuple(exp.shape)}"
    return pairs, ""


def _close(exp: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> bool:
    return bool(np.all(np.isfinite(got)) and np.allclose(got, exp, rtol=rtol, atol=atol))


def _fmt(a: np.ndarray) -> str:
    return np.array2string(a, precision=5, separator=", ", suppress_small=False, max_line_width=100)


def _matches(exp: Any, value: Any, rtol: float, atol: float) -> bool:
    pairs, problem = _flatten(exp, value)
    return not problem and all(_close(e, g.array, rtol, atol) for _, e, g in pairs)


def named_mistakes(function: str, inputs: Mapping[str, Any], got: Any,
                   rtol: float, atol: float) -> tuple[str, ...]:
    """The descriptions of every known mistake whose output the returned value matches."""
    found = []
    for mistake in mistakes_for(function):
        try:
            if not mistake.applies(inputs):
                continue
            wrong = to_numpy(mistake.compute(**inputs))
        except Exception:  # noqa: BLE001 - a variant that cannot run on these inputs is no match
            continue
        if _matches(wrong, got, rtol, atol):
            found.append(mistake.description)
    return tuple(found)


def compare_case(function: str, index: int, params: str, shapes: str, inputs: Mapping[str, Any],
                 expected: Any, returned: Returned, rtol: float, atol: float,
                 points: float) -> CaseResult:
    """Score one case; ``expected`` is the reference's output as numpy (see :func:`to_numpy`)."""
    base = dict(function=function, index=index, params=params, shapes=shapes, max_points=points)
    if returned.status == "timeout":
        return CaseResult(**base, passed=False, points=0.0,
                          message=f"`{function}` did not finish in time on this case and was stopped")
    if returned.status == "died":
        return CaseResult(**base, passed=False, points=0.0,
                          message=f"the kernel crashed while `{function}` ran on this case")
    if returned.status == "raised":
        return CaseResult(**base, passed=False, points=0.0,
                          message=f"`{function}` raised {returned.error}; expected {_expected_text(expected)}")
    if returned.status != "ok":
        return CaseResult(**base, passed=False, points=0.0, message=returned.error)
    pairs, problem = _flatten(expected, returned.value)
    if problem:
        return CaseResult(**base, passed=False, points=0.0, message=problem)
    series = {}
    if function in ("hidden_grad_norms", "gradient_bound"):
        series = {"got": tuple(map(float, pairs[0][2].array)), "expected": tuple(map(float, pairs[0][1]))}
    bad = [(label, e, g.array) for label, e, g in pairs if not _close(e, g.array, rtol, atol)]
    if not bad:
        return CaseResult(**base, passed=True, points=points, series=series)
    label, exp, got = bad[0]
    mistakes = named_mistakes(function, inputs, returned.value, rtol, atol)
    diff = np.abs(got - exp)
    rel = diff / np.maximum(np.abs(exp), atol)
    first = np.unravel_index(int(np.argmax(~np.isclose(got, exp, rtol=rtol, atol=atol))), exp.shape) if exp.ndim else ()
    window = tuple(slice(i, i + 1) for i in first[:-1]) + ((slice(max(0, first[-1] - 1), first[-1] + 3),) if first else ())
    where = f" in {label}" if label else ""
    if not np.all(np.isfinite(got)):
        message = f"the result{where} holds NaN or infinite values"
    elif mistakes:
        message = f"your output matches `{function}` " + "; or ".join(mistakes)
    else:
        message = f"the values{where} differ from the expected ones (first at index {tuple(int(i) for i in first)})"
    return CaseResult(**base, passed=False, points=0.0, message=message, mistakes=mistakes,
                      expected=_fmt(exp[window]) if exp.ndim else _fmt(exp),
                      got=_fmt(got[window]) if got.ndim else _fmt(got),
                      max_abs=float(np.nanmax(diff)) if diff.size else 0.0,
                      max_rel=float(np.nanmax(rel)) if rel.size else 0.0, series=series)


def missing_case(function: str, index: int, params: str, shapes: str, points: float,
                 why: str = "") -> CaseResult:
    """A case that could not be run: the function is missing, or ``why`` it could not be called."""
    return CaseResult(function=function, index=index, params=params, shapes=shapes, passed=False,
                      points=0.0, max_points=points,
                      message=why or f"no function named `{function}` was defined after the notebook ran")
