"""Self-check for Exercise Sheet 11: run the public examples of 11.4 against your functions.

In the notebook::

    from sheet11_check import check
    check("11.4.a")          # the public examples of one question
    check("lstm_cell")       # or of one function
    check()                  # everything

It looks up your functions by name in the notebook (the live kernel), calls them on the public
examples stored in ``sheet11_public.json`` and ``sheet11_public.npz`` (kept next to the notebook,
or next to this file) and says what passes and what to fix: the shape or dtype that came back and
the one expected, the first element that differs, and the known mistake your output matches,
including the mistakes your tutors named in earlier terms (with their note) where your outputs on
the public examples are the ones those students' code returned.
Like the grader, it also checks the rules of the contract that every function keeps: the call
leaves its arguments as it found them (values, dtype, shape, ``requires_grad``, ``.grad``), and a
second call with fresh copies of the same arguments returns the same result.

The grader runs the same functions on hidden examples of the same sizes as well, so passing here
is necessary, not sufficient. This file needs only numpy and torch; it does not reach the network
and contains no solution.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
import traceback
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["check", "run_checks", "Result"]

DATA_STEM = "sheet11_public"
_LOADED: dict[str, tuple[dict[str, Any], dict[str, np.ndarray]]] = {}


class Result:
    """The outcome of one public example: ``status`` is pass, fail, todo (not implemented) or
    missing (not defined)."""

    def __init__(self, function: str, example: str, status: str, message: str = "",
                 fingerprint: str = "") -> None:
        self.function, self.example, self.status, self.message = function, example, status, message
        #: the output's fingerprint as the grader computes it (see "Mistakes your tutors named")
        self.fingerprint = fingerprint

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def __repr__(self) -> str:
        return f"Result({self.function!r}, {self.example!r}, {self.status!r}, {self.message!r})"


# ------------------------------------------------------------------------------ the data file

def _find_data() -> Path | None:
    places = [Path.cwd(), Path(__file__).resolve().parent]
    for place in places:
        if (place / f"{DATA_STEM}.json").is_file() and (place / f"{DATA_STEM}.npz").is_file():
            return place / DATA_STEM
    return None


def _load() -> tuple[dict[str, Any], Any] | None:
    stem = _find_data()
    if stem is None:
        return None
    key = str(stem)
    if key not in _LOADED:
        spec: dict[str, Any] = json.loads(Path(f"{stem}.json").read_text(encoding="utf-8"))
        with np.load(f"{stem}.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        _LOADED[key] = (spec, arrays)
    return _LOADED[key]


def _build(desc: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """An input value from its description: a fresh tensor every time (a call may change it)."""
    kind = desc["t"]
    if kind == "array":
        return torch.from_numpy(np.array(arrays[desc["key"]], copy=True))
    if kind == "dict":
        return {k: _build(v, arrays) for k, v in desc["items"].items()}
    if kind == "tree":
        def tup(t: Any) -> Any:
            return t if isinstance(t, str) else tuple(tup(s) for s in t)
        return tup(desc["value"])
    if kind == "loss":
        vec = torch.from_numpy(np.array(arrays[desc["key"]], copy=True))
        if desc["kind"] == "linear":
            return lambda h: (h * vec.to(h.dtype)).sum()
        return lambda h: 0.5 * ((h - vec.to(h.dtype)) ** 2).sum()
    return desc["value"]


def _expected(desc: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    kind = desc["t"]
    if kind == "array":
        return arrays[desc["key"]]
    if kind == "tuple":
        return tuple(_expected(d, arrays) for d in desc["items"])
    return {k: _expected(v, arrays) for k, v in desc["items"].items()}


# ------------------------------------------------------------------------------ the namespace

def _namespace() -> dict[str, Any]:
    try:
        from IPython import get_ipython  # present in every Jupyter kernel
        shell = get_ipython()
        if shell is not None:
            user_ns: dict[str, Any] = shell.user_ns
            return user_ns
    except ImportError:
        pass
    return sys.modules["__main__"].__dict__


# ------------------------------------------------------------------------------ comparing

def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"a numpy array of shape {value.shape} and dtype {value.dtype}"
    if value is None:
        return "None (is a `return` missing?)"
    if isinstance(value, (list, tuple)):
        inner = ""
        if value and all(isinstance(v, (torch.Tensor, np.ndarray)) for v in value):
            inner = f" of {'tensors' if isinstance(value[0], torch.Tensor) else 'arrays'} " \
                    f"of shape {tuple(value[0].shape)}"
        return f"a {type(value).__name__} of {len(value)} item{'s' if len(value) != 1 else ''}{inner}"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return f"a {type(value).__name__}"


def _as_array(value: Any, expected: np.ndarray, where: str) -> tuple[np.ndarray | None, str]:
    """The returned value as float64 numpy, or why it is not an acceptable tensor."""
    want = f"a float32 tensor of shape {tuple(expected.shape)}"
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            return None, f"{where}returned dtype {value.dtype}; expected {want} (a floating-point dtype)"
        cpu = value.detach().cpu()
        arr: np.ndarray = (cpu.float() if cpu.dtype == torch.bfloat16 else cpu).numpy().astype(np.float64)
        dtype = str(value.dtype)
    elif isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            return None, f"{where}returned dtype {value.dtype}; expected {want} (a floating-point dtype)"
        arr, dtype = value.astype(np.float64), str(value.dtype)
    else:
        hint = ""
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], (torch.Tensor, np.ndarray)):
            hint = " (torch.stack turns a list of tensors into one tensor)"
        return None, f"{where}returned {_describe(value)}; expected {want}{hint}"
    if arr.shape != expected.shape:
        hint = ""
        if sorted(arr.shape) == sorted(expected.shape):
            hint = " (the same sizes in another order: check which axis is time, batch, features)"
        return None, (f"{where}returned shape {tuple(arr.shape)} (dtype {dtype}); "
                      f"expected shape {tuple(expected.shape)}{hint}")
    return arr, ""


def _pairs(expected: Any, value: Any) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], str]:
    """(label, expected, got) for every array of the expected structure, or the problem."""
    if isinstance(expected, np.ndarray):
        got, problem = _as_array(value, expected, "")
        return ([("", expected, got)], "") if got is not None else ([], problem)
    if isinstance(expected, tuple):
        shape = tuple(expected[0].shape)
        if not isinstance(value, (tuple, list)) or len(value) != len(expected):
            return [], (f"returned {_describe(value)}; expected a tuple (h_new, c_new) of two "
                        f"tensors of shape {shape}")
        out = []
        for label, e, v in zip(("h_new", "c_new"), expected, value):
            got, problem = _as_array(v, e, f"{label}: ")
            if got is None:
                return [], problem
            out.append((label, e, got))
        return out, ""
    keys = list(expected)
    if not isinstance(value, dict):
        return [], (f"returned {_describe(value)}; expected a dict with the keys "
                    f"{', '.join(keys)} (one gradient tensor each)")
    missing = [k for k in keys if k not in value]
    if missing:
        return [], (f"the returned dict has no {', '.join(map(repr, missing))}; expected the keys "
                    f"{', '.join(keys)}")
    out = []
    for k in keys:
        got, problem = _as_array(value[k], expected[k], f"grads[{k!r}]: ")
        if got is None:
            return [], problem
        out.append((f"grads[{k!r}]", expected[k], got))
    return out, ""


def _close(e: np.ndarray, g: np.ndarray, rtol: float, atol: float) -> bool:
    return bool(np.all(np.isfinite(g)) and np.allclose(g, e, rtol=rtol, atol=atol))


def _matches(expected: Any, value: Any, rtol: float, atol: float) -> bool:
    pairs, problem = _pairs(expected, value)
    return not problem and all(_close(e, g, rtol, atol) for _, e, g in pairs)


def _difference(label: str, e: np.ndarray, g: np.ndarray, rtol: float, atol: float) -> str:
    where = f" in {label}" if label else ""
    bad = ~np.isclose(g, e, rtol=rtol, atol=atol)
    if e.ndim == 0:
        first: tuple[int, ...] = ()
    else:
        first = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), e.shape))
    if not np.all(np.isfinite(g)):
        nonfinite = tuple(int(i) for i in np.argwhere(~np.isfinite(g))[0]) if g.ndim else ()
        return f"the result{where} holds NaN or infinite values (first at index {nonfinite})"
    n_bad = int(bad.sum())
    return (f"the values{where} differ from the expected ones: first at index {first}, "
            f"got {g[first]:.6g}, expected {e[first]:.6g} "
            f"({n_bad} of {e.size} elements differ; largest difference {np.max(np.abs(g - e)):.3g}; "
            f"tolerance rtol={rtol:g}, atol={atol:g})")


def _raised(name: str, exc: BaseException) -> str:
    """The exception and the line of the student's code it came from."""
    libraries = (os.path.dirname(np.__file__), os.path.dirname(torch.__file__))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename != __file__ and not f.filename.startswith(libraries)]
    where = ""
    if frames:
        f = frames[-1]
        line = (f.line or "").strip()
        where = f" in `{f.name}`" + (f": `{line}`" if line else "")
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    return f"`{name}` raised {text[:300]}{where}"


# ------------------------------------------------------------------------------ mistakes your tutors named
# A mistake tutors named in an earlier term is recognised as the grader recognises it
# (grader/checks/learned.py): by the fingerprint of the output on each public example. The value is
# first put in the form in which the grader's kernel sends a result back (grader/checks/bridge.py:
# arrays and tensors of a real or integer dtype as float64, other dtypes by name only, lists and
# tuples by their first 16 items, dicts by their first 16 keys as text, numbers as floats, anything
# else by its type's name, five levels deep at most, 64 MB at most); every number is then rounded
# to a grid of ``quantum`` times the largest |value| of the expected result, and the structure is
# hashed. An exception counts by its class name.

#: The most a result sends back, as float64 bytes (the grader's MAX_RESULT_BYTES).
_MAX_RESULT_BYTES = 64_000_000
_PASS = "pass"


def _scale(expected: Any) -> float:
    if isinstance(expected, np.ndarray):
        finite = np.abs(expected[np.isfinite(expected)]) if expected.size else np.zeros(0)
        return float(finite.max()) if finite.size else 0.0
    if isinstance(expected, tuple):
        return max((_scale(e) for e in expected), default=0.0)
    if isinstance(expected, dict):
        return max((_scale(e) for e in expected.values()), default=0.0)
    return 0.0


def _plain(text: str) -> str:
    return "".join(ch for ch in text[:400] if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf"))[:100]


def _array_form(value: Any, q: float, written: list[int]) -> list[Any]:
    kind = "tensor" if isinstance(value, torch.Tensor) else "ndarray"
    try:
        if kind == "tensor":
            arr = value.detach().cpu()
            arr = (arr.float() if arr.dtype == torch.bfloat16 else arr).numpy()
        else:
            arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            return ["t", _plain(f"{kind} of {value.dtype}")]
        if written[0] + arr.size * 8 > _MAX_RESULT_BYTES:
            written[0] = _MAX_RESULT_BYTES + 1
            return ["t", "result too large to send back (%d MB as float64)" % (arr.size * 8 // 1000000)]
        arr = arr.astype(np.float64)
    except Exception as exc:  # noqa: BLE001 - as the kernel reports it
        return ["t", _plain(f"{kind} ({type(exc).__name__})")]
    written[0] += arr.nbytes
    grid = np.rint(arr / q)
    return ["a", list(grid.shape), grid.ravel().tolist()]


def _form(value: Any, q: float, written: list[int], depth: int = 0) -> list[Any]:
    """``value`` as the grader's fingerprint sees it (see above)."""
    if depth > 4:
        return ["t", "nested too deep"]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return _array_form(value, q, written)
    if isinstance(value, (bool, int, float)):
        number = float(value)
        return ["n", float(np.rint(number / q)) if math.isfinite(number) else repr(number)]
    if isinstance(value, (tuple, list)):
        return ["l", [_form(v, q, written, depth + 1) for v in value[:16]]]
    if isinstance(value, dict):
        items = {str(k): _form(v, q, written, depth + 1) for k, v in list(value.items())[:16]}
        return ["d", [[k, items[k]] for k in sorted(items)]]
    return ["t", _plain(type(value).__name__)]


def _error_type(exc: BaseException) -> str:
    name = type(exc).__name__[:100]
    return name if name.isidentifier() else "an exception"


def _fingerprint(value: Any, raised: BaseException | None, expected: Any, quantum: float | None,
                 passed: bool = False) -> str:
    """The grader's fingerprint of one call on one public example ("" without a quantum)."""
    if quantum is None:
        return ""
    if passed:
        return _PASS
    canon: list[Any]
    if raised is not None:
        canon = ["raised", _error_type(raised)]
    else:
        scale = _scale(expected)
        try:
            canon = _form(value, quantum * (scale if scale > 0 else 1.0), [0])
        except Exception as exc:  # noqa: BLE001 - the kernel's report of such a value raises too
            canon = ["raised", _error_type(exc)]
    text = json.dumps(canon, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _is_output(fp: str) -> bool:
    return fp != _PASS and not fp.startswith("status:")


def _learned_match(cases: dict[str, str], fingerprints: dict[str, str]) -> bool:
    """The grader's rule: equal on every example both have a fingerprint of, and a failing output
    among them."""
    common = [k for k in cases if k in fingerprints
              and not cases[k].startswith("status:") and not fingerprints[k].startswith("status:")]
    return any(_is_output(cases[k]) for k in common) and all(cases[k] == fingerprints[k] for k in common)


def _with_learned(name: str, results: list[Result], entries: list[dict[str, Any]]) -> list[Result]:
    """``results`` (one function's public examples, in order) with the note of every mistake
    tutors named that the outputs match, beside each example that does not pass."""
    fingerprints = {str(i): r.fingerprint for i, r in enumerate(results, start=1) if r.fingerprint}
    notes = [f"A note from your tutors on `{name}`: {e['title']}\n{e['explanation']}"
             for e in entries if _learned_match(e["cases"], fingerprints)]
    for r in results:
        if notes and not r.passed:
            r.message = "\n".join([r.message, *notes] if r.message else notes)
    return results


# ------------------------------------------------------------------------------ running

# The rules of contract section 3 that every function keeps, checked as the grader checks them.
RULE_INPUTS = "a function leaves its arguments as it found them"
RULE_REPEAT = "the same arguments give the same result"


def _snapshot(value: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    """(path, the object, its state) for every mutable input, nested dicts and lists included."""
    if isinstance(value, torch.Tensor):
        grad = None if value.grad is None else value.grad.detach().clone()
        out.append((path, value, (value.dtype, tuple(value.shape), value.detach().clone(),
                                  value.requires_grad, grad)))
    elif isinstance(value, np.ndarray):
        out.append((path, value, (value.dtype, value.shape, value.copy())))
    elif isinstance(value, dict):
        items = list(value.items())
        for k, v in items:
            _snapshot(v, f"{path}[{k!r}]", out)
        out.append((path, value, items))
    elif isinstance(value, list):
        items = list(value)
        for i, v in enumerate(items):
            _snapshot(v, f"{path}[{i}]", out)
        out.append((path, value, items))


def _tensor_changes(path: str, obj: torch.Tensor, before: Any) -> list[str]:
    dtype, shape, values, requires_grad, grad = before
    out = []
    if obj.dtype != dtype:
        out.append(f"`{path}` was changed in place (dtype {dtype} -> {obj.dtype})")
    elif tuple(obj.shape) != shape:
        out.append(f"`{path}` was changed in place (shape {shape} -> {tuple(obj.shape)})")
    elif not torch.equal(obj.detach(), values):
        out.append(f"`{path}` was changed in place (values)")
    if obj.requires_grad and not requires_grad:
        out.append(f"`requires_grad` of `{path}` was switched on")
    if obj.grad is not None and (grad is None or not torch.equal(obj.grad, grad)):
        out.append(f"`.grad` of `{path}` was set")
    return out


def _dict_changes(path: str, obj: dict[Any, Any], before: Any) -> list[str]:
    out = []
    now = list(obj.items())
    keys, old_keys = [k for k, _ in now], [k for k, _ in before]
    if keys != old_keys:
        added = [k for k in keys if k not in old_keys]
        lost = [k for k in old_keys if k not in keys]
        what = "; ".join(x for x in (f"keys {', '.join(map(repr, added))} added" if added else "",
                                     f"keys {', '.join(map(repr, lost))} removed" if lost else "") if x)
        out.append(f"`{path}` was changed ({what or 'its keys were reordered'})")
    for k, v in before:
        if k in obj and obj[k] is not v:
            out.append(f"`{path}[{k!r}]` was replaced by another object")
    return out


def _changes(snapshot: list[tuple[str, Any, Any]]) -> list[str]:
    """What a call changed in its inputs, in the grader's words (empty: nothing)."""
    out: list[str] = []
    for path, obj, before in snapshot:
        if isinstance(obj, torch.Tensor):
            out += _tensor_changes(path, obj, before)
        elif isinstance(obj, np.ndarray):
            dtype, shape, values = before
            if obj.dtype != dtype or obj.shape != shape or not np.array_equal(obj, values):
                out.append(f"`{path}` was changed in place")
        elif isinstance(obj, dict):
            out += _dict_changes(path, obj, before)
        elif isinstance(obj, list):
            if len(obj) != len(before) or any(a is not b for a, b in zip(obj, before)):
                out.append(f"`{path}` was changed")
    return out


def _rules(name: str, changes: list[str], differs: str) -> str:
    parts = []
    if changes:
        more = len(changes) - 3
        parts.append(f'`{name}` breaks the rule "{RULE_INPUTS}": ' + "; ".join(changes[:3])
                     + (f"; and {more} more change{'s' if more != 1 else ''}" if more > 0 else ""))
    if differs:
        parts.append(f'`{name}` breaks the rule "{RULE_REPEAT}": {differs}')
    return "; ".join(parts)


def _second_call(name: str, fn: Callable[..., Any], case: dict[str, Any], arrays: dict[str, np.ndarray],
                 expected: Any, pairs: list[tuple[str, np.ndarray, np.ndarray]], rtol: float, atol: float) -> str:
    """Why a second call on fresh copies of the same inputs breaks the rule (empty: it does not)."""
    try:
        again = fn(**{k: _build(d, arrays) for k, d in case["args"].items()})
        pairs2, problem2 = _pairs(expected, again)
        if problem2 or not all(np.allclose(g1, g2, rtol=rtol, atol=atol, equal_nan=True)
                               for (_, _, g1), (_, _, g2) in zip(pairs, pairs2)):
            return "a second call with fresh copies of the same inputs returned different values"
    except Exception as exc:  # noqa: BLE001
        return "a second call with fresh copies of the same inputs failed: " + _raised(name, exc)
    return ""


def _wrong_values(name: str, case: dict[str, Any], arrays: dict[str, np.ndarray], value: Any,
                  pairs: list[tuple[str, np.ndarray, np.ndarray]], rtol: float, atol: float) -> str:
    """What is wrong with values of the right structure: a known mistake, else the first difference."""
    named = [m["description"] for m in case.get("mistakes", [])
             if _matches(_expected(m["output"], arrays), value, rtol, atol)]
    if named and all(np.all(np.isfinite(g)) for _, _, g in pairs):
        return f"your output matches `{name}` " + "; or ".join(named)
    lab, e, g = next((lab, e, g) for lab, e, g in pairs if not _close(e, g, rtol, atol))
    return _difference(lab, e, g, rtol, atol)


def _run_case(name: str, fn: Callable[..., Any], case: dict[str, Any], spec: dict[str, Any],
              arrays: dict[str, np.ndarray], index: int, quantum: float | None = None) -> Result:
    """One public example; with ``quantum`` (the bundle's) the result carries the output's
    fingerprint, which names the mistakes tutors named (:func:`_with_learned`)."""
    label = f"example {index} ({case['params']})"
    args = {k: _build(d, arrays) for k, d in case["args"].items()}
    snapshot: list[tuple[str, Any, Any]] = []
    for k, v in args.items():
        _snapshot(v, k, snapshot)
    expected = _expected(case["expected"], arrays)
    rtol, atol = spec["rtol"], spec["atol"]
    try:
        value = fn(**args)
    except NotImplementedError as exc:
        return Result(name, label, "todo", f"`{name}` is not implemented yet",
                      _fingerprint(None, exc, expected, quantum))
    except Exception as exc:  # noqa: BLE001 - whatever the student's code raises is the message
        return Result(name, label, "fail", _raised(name, exc), _fingerprint(None, exc, expected, quantum))
    changes = _changes(snapshot)
    pairs, problem = _pairs(expected, value)
    right = not problem and all(_close(e, g, rtol, atol) for _, e, g in pairs)
    # Of the first call's value, before a second call could change a buffer it returned.
    fingerprint = _fingerprint(value, None, expected, quantum, right)
    if problem:
        return Result(name, label, "fail", "; ".join(x for x in (problem, _rules(name, changes, "")) if x),
                      fingerprint)
    # The grader calls every function a second time on fresh copies of the same inputs; the
    # first result is already copied out (pairs), so a function returning a buffer it reuses
    # is caught too.
    broken = _rules(name, changes, _second_call(name, fn, case, arrays, expected, pairs, rtol, atol))
    if right:
        return Result(name, label, "fail" if broken else "pass", broken, fingerprint)
    note = f"; {broken}" if broken else ""
    return Result(name, label, "fail", _wrong_values(name, case, arrays, value, pairs, rtol, atol) + note,
                  fingerprint)


def _run_recall(fn: Callable[..., Any], recall: dict[str, Any], arrays: dict[str, np.ndarray]) -> Result:
    name = recall["function"]
    sl, nc = recall["check_seq_len"], recall["n_classes"]
    label = f"a short run (cell='lstm', seq_len={sl}, n_classes={nc})"
    x = _build(recall["x"], arrays)
    y = arrays[recall["y"]["key"]]
    start = time.process_time()
    try:
        model = fn("lstm", sl, nc, recall["seed"])
    except NotImplementedError:
        return Result(name, label, "todo", f"`{name}` is not implemented yet")
    except Exception as exc:  # noqa: BLE001
        return Result(name, label, "fail", _raised(name, exc))
    seconds = time.process_time() - start
    if not isinstance(model, torch.nn.Module):
        return Result(name, label, "fail", f"returned {_describe(model)}; expected a trained torch.nn.Module")
    try:
        model.eval()
        with torch.no_grad():
            logits = model(x)
    except Exception as exc:  # noqa: BLE001
        return Result(name, label, "fail", "calling the returned model on x of shape "
                      f"{tuple(x.shape)} failed: " + _raised("model", exc))
    want = (x.shape[1], nc)
    shape = tuple(getattr(logits, "shape", ()))
    if not isinstance(logits, (torch.Tensor, np.ndarray)) or shape != want:
        got = _describe(logits)
        return Result(name, label, "fail", f"the model returned {got} for x of shape {tuple(x.shape)}; "
                      f"expected logits of shape {want}")
    acc = float(np.mean(np.argmax(np.asarray(torch.as_tensor(logits).float()), axis=1) == y))
    tries = recall["tries"]
    return Result(name, label, "pass",
                  f"returns an nn.Module with logits of shape {want} (trained in {seconds:.1f} CPU s; "
                  f"accuracy {acc:.0%} on {len(y)} public sequences). Only the interface is checked "
                  f"here, without long training: the grader trains cell='lstm' at seq_len="
                  f"{recall['seq_len']}, n_classes={nc} on a make_recall_data that relabels the classes "
                  f"and needs at least {recall['threshold']:.0%} held-out accuracy within "
                  f"{recall['cpu_time_limit']:g} CPU s, trying up to {tries} seed{'s' if tries != 1 else ''}; "
                  "`grade check --full` runs that experiment")


def _selected(spec: dict[str, Any], what: tuple[str, ...]) -> list[str]:
    questions: dict[str, list[str]] = spec["questions"]
    everything = [f for fs in questions.values() for f in fs]
    if not what:
        return everything
    chosen: list[str] = []
    for item in what:
        if item in questions:
            chosen += questions[item]
        elif item in everything:
            chosen.append(item)
        else:
            raise ValueError(f"unknown question or function {item!r}; use one of "
                             f"{', '.join(list(questions) + everything)}")
    return list(dict.fromkeys(chosen))


def run_checks(*what: str, namespace: dict[str, Any] | None = None) -> list[Result]:
    """The results of the public examples of ``what`` (question ids or function names; all when
    empty) against the functions in ``namespace`` (the notebook's, by default)."""
    loaded = _load()
    if loaded is None:
        raise FileNotFoundError(
            f"{DATA_STEM}.json and {DATA_STEM}.npz were not found in {Path.cwd()} or next to "
            f"{Path(__file__).name}; copy them from the course's release bundle next to this notebook")
    spec, arrays = loaded
    ns = _namespace() if namespace is None else namespace
    results: list[Result] = []
    for name in _selected(spec, what):
        fn = ns.get(name)
        if not callable(fn):
            results.append(Result(name, "", "missing",
                                  f"no function named `{name}` is defined: run its cell first "
                                  "(keep the name exactly as given)"))
            continue
        if name == spec["recall"]["function"]:
            results.append(_run_recall(fn, spec["recall"], arrays))
            continue
        fspec = spec["functions"][name]
        quantum = spec.get("learned_quantum")
        results += _with_learned(name, [_run_case(name, fn, case, fspec, arrays, i, quantum)
                                        for i, case in enumerate(fspec["cases"], start=1)],
                                 fspec.get("learned", []))
    return results


_MARK = {"pass": "PASS", "fail": "FAIL", "todo": "TODO", "missing": "MISSING"}


def check(*what: str) -> None:
    """Run the public examples of ``what`` (e.g. ``"11.4.a"`` or ``"lstm_cell"``; all when empty)
    and print what passes and what to fix."""
    try:
        results = run_checks(*what)
    except (FileNotFoundError, ValueError) as exc:
        print(f"check: {exc}")
        return
    for r in results:
        head = f"{_MARK[r.status]:<7} {r.function}" + (f", {r.example}" if r.example else "")
        message = r.message.replace("\n", "\n        ")
        print(head + (f"\n        {message}" if message else ""))
    passed = sum(r.passed for r in results)
    todo = sum(r.status in ("todo", "missing") for r in results)
    if passed == len(results):
        print(f"All {len(results)} public check(s) pass. The grader also runs hidden examples of "
              "the same sizes.")
    else:
        print(f"{passed} of {len(results)} public check(s) pass"
              + (f"; {todo} not implemented or not defined yet" if todo else "") + ".")
    sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover - `python sheet11_check.py` explains itself
    print(__doc__)

