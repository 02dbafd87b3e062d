"""An output of a contract function as the grader reads it: the reference's in numpy, the
student's as the Bridge returned it, and the two paired array by array.

:func:`to_numpy` turns the reference's (or a mistake's) output into float64 numpy in the same
structure (an array, a tuple, a dict of gradients). :func:`pair_arrays` pairs its arrays with the
returned ones, or says in words what is wrong with the returned structure: its kind (with
:func:`describe_value`), a missing key of the contract's (:data:`GRAD_KEYS`), a non-floating
dtype or another shape, checked in that order, the first problem said. :func:`all_close` is the
one tolerance test (finite and within ``rtol``/``atol``); :func:`same` and :func:`matches` apply it
to whole structures, :func:`select` picks the named parts of one. Nothing here raises on a value of
an unexpected structure: it compares unequal.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from grader.checks.bridge import ArrayInfo, TypeInfo

__all__ = ["GRAD_KEYS", "all_close", "describe_value", "expected_text", "fmt_array", "matches", "pair_arrays",
           "same", "select", "to_numpy"]

GRAD_KEYS = ("W", "U", "b", "V", "c")


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


def describe_value(value: Any) -> str:
    """What a returned value is, in words ("a tensor of shape (2, 3) and dtype torch.float64")."""
    if isinstance(value, ArrayInfo):
        return f"a {value.kind} of shape {tuple(value.array.shape)} and dtype {value.dtype}"
    if isinstance(value, TypeInfo):
        return "None" if value.kind == "NoneType" else f"a {value.kind}"
    if isinstance(value, tuple):
        kind, length = getattr(value, "kind", "tuple"), getattr(value, "length", len(value))
        items = {describe_value(v) for v in value}
        each = f" (each {items.pop()})" if len(items) == 1 and length == len(value) else ""
        return f"a {kind} of {length}{each}"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(value)}"
    if isinstance(value, float):
        return f"the number {value:g}"
    return type(value).__name__


def expected_text(expected: Any) -> str:
    """What the contract expects back, in words, from the reference's output."""
    if isinstance(expected, np.ndarray):
        return f"a float32 tensor of shape {tuple(expected.shape)}"
    if isinstance(expected, tuple):
        return "a tuple (h_new, c_new) of two tensors of shape " + str(tuple(expected[0].shape))
    return "a dict with the keys " + ", ".join(GRAD_KEYS) + " (one gradient tensor each)"


def pair_arrays(expected: Any, got: Any) -> tuple[list[tuple[str, np.ndarray, ArrayInfo]], str]:
    """Pair expected arrays with returned ones, or say what is wrong with the structure."""
    if isinstance(expected, np.ndarray):
        pairs = [("", expected, got)]
    elif isinstance(expected, tuple):
        if not isinstance(got, tuple) or len(got) != len(expected):
            return [], f"returned {describe_value(got)}; expected {expected_text(expected)}"
        pairs = [(n, e, g) for n, e, g in zip(("h_new", "c_new"), expected, got)]
    else:
        if not isinstance(got, dict):
            return [], f"returned {describe_value(got)}; expected {expected_text(expected)}"
        missing = [k for k in expected if k not in got]
        if missing:
            return [], (f"the returned dict has no {', '.join(map(repr, missing))}; "
                        f"expected the keys {', '.join(GRAD_KEYS)}")
        pairs = [(k, expected[k], got[k]) for k in expected]
    for label, exp, g in pairs:
        where = f"{label}: " if label else ""
        if not isinstance(g, ArrayInfo):
            return [], f"{where}returned {describe_value(g)}; expected a tensor of shape {tuple(exp.shape)}"
        if not ("float" in g.dtype or "double" in g.dtype or "half" in g.dtype):
            return [], f"{where}returned dtype {g.dtype}; expected a floating-point tensor (torch.float32)"
        if g.array.shape != exp.shape:
            return [], f"{where}returned shape {tuple(g.array.shape)}; expected {tuple(exp.shape)}"
    return pairs, ""


def all_close(exp: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> bool:
    """``got`` is finite and equals ``exp`` within the tolerance."""
    return bool(np.all(np.isfinite(got)) and np.allclose(got, exp, rtol=rtol, atol=atol))


def fmt_array(a: np.ndarray) -> str:
    """An array as a report shows it (5 decimals)."""
    return np.array2string(a, precision=5, separator=", ", suppress_small=False, max_line_width=100)


def matches(exp: Any, value: Any, rtol: float, atol: float) -> bool:
    """The returned ``value`` has ``exp``'s structure and values within the tolerance."""
    pairs, problem = pair_arrays(exp, value)
    return not problem and all(all_close(e, g.array, rtol, atol) for _, e, g in pairs)


def select(value: Any, part: Sequence[str] | None) -> Any:
    """The named parts of an output (``h_new``/``c_new`` of a tuple, keys of a dict); all if None.

    Works on numpy structures (:func:`to_numpy`) and on what the Bridge returned; a value of
    another structure is given back unchanged, so a comparison with it fails as it should.
    """
    if not part:
        return value
    if isinstance(value, tuple):
        names = ("h_new", "c_new")
        if len(value) != len(names):
            return value
        return tuple(value[names.index(p)] for p in part)
    if isinstance(value, dict):
        if not all(p in value for p in part):
            return value
        return {p: value[p] for p in part}
    return value


def same(reference: Any, value: Any, rtol: float, atol: float) -> bool:
    """``value`` (numpy structure or the Bridge's) equals ``reference`` (numpy) within tolerance."""
    if isinstance(reference, np.ndarray):
        arr = value.array if isinstance(value, ArrayInfo) else value
        return isinstance(arr, np.ndarray) and arr.shape == reference.shape and all_close(reference, arr, rtol, atol)
    if isinstance(reference, tuple):
        return (isinstance(value, tuple) and len(value) == len(reference)
                and all(same(r, v, rtol, atol) for r, v in zip(reference, value)))
    if isinstance(reference, dict):
        return (isinstance(value, dict) and all(k in value for k in reference)
                and all(same(reference[k], value[k], rtol, atol) for k in reference))
    return False
