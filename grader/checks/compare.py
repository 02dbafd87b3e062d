"""Compare what a student's function returned with the reference, in the grader's process.

A case passes when the returned value has the expected structure, a floating dtype, the expected
shape and values within the rubric's tolerances. A failed case says why in plain words: the
named mistake it matches, or the first difference with shapes, a slice and the largest errors.

Naming a mistake is a claim about the student's code, so it is made only on evidence that tells
the catalogued mistakes apart: every catalogued mistake is evaluated on every observation (each
case, and the probes of grader/checks/probes.py), and a mistake is named only when it is the one
mistake consistent with all of them. Where several remain, the message says "consistent with A
or B" rather than picking one (a missing recurrence and "h0 is ignored" coincide at T = 1).

A mistake is verified before it is named: where it does not apply it computes the reference's
output, so it must reproduce the student's output on every case and probe. A mistake that
explains the failures of one setting alone (one activation, T = 1, one k regime, one tree shape;
:func:`settings_of`), the student being right in every other setting, is named for that setting
("in the sigmoid case your output matches ..."). A result that is a slice, transposition,
reshaping, reversal or constant multiple of the expected one, or a pair in the wrong order, is
said so (:func:`structural_finding`), each checked within tolerance; so is a result of a function
with one entry per time step that has the wrong number of steps (the first or last n steps, or
only the count wrong), and a single number where a vector was expected that equals its first or
last entry.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from grader.checks.bridge import ArrayInfo, Returned, TypeInfo
from grader.checks.mistakes import mistakes_for
from grader.checks.raised import at_line, neutralised, raising_line
from grader.result import CaseResult, Evidence

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


def _describe(value: Any) -> str:
    if isinstance(value, ArrayInfo):
        return f"a {value.kind} of shape {tuple(value.array.shape)} and dtype {value.dtype}"
    if isinstance(value, TypeInfo):
        return "None" if value.kind == "NoneType" else f"a {value.kind}"
    if isinstance(value, tuple):
        kind, length = getattr(value, "kind", "tuple"), getattr(value, "length", len(value))
        items = {_describe(v) for v in value}
        each = f" (each {items.pop()})" if len(items) == 1 and length == len(value) else ""
        return f"a {kind} of {length}{each}"
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
            return [], (f"the returned dict has no {', '.join(map(repr, missing))}; "
                        f"expected the keys {', '.join(GRAD_KEYS)}")
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


def _tree_shape(tree: Any) -> str:
    if isinstance(tree, str):
        return "a single leaf"
    chain = tree
    while not isinstance(chain, str) and isinstance(chain[1], str):
        chain = chain[0]
    return "a left chain" if isinstance(chain, str) else "a tree that is not a left chain"


def settings_of(function: str, inputs: Mapping[str, Any]) -> dict[str, str]:
    """The settings an input exercises, in words (one activation, T = 1, a k regime, a tree
    shape): a mistake that explains the failures of one setting alone is named for it."""
    out: dict[str, str] = {}
    if "activation" in inputs:
        out["activation"] = f"the {inputs['activation']} case"
    x = inputs.get("x")
    if isinstance(x, torch.Tensor) and x.ndim == 3 and function != "lstm_cell":
        T = x.shape[0]
        out["T"] = "the case T = 1" if T == 1 else "the cases T > 1"
        if "k" in inputs:
            k = int(inputs["k"])
            out["k"] = ("the case k >= T" if k >= T else "the case k = 1" if k == 1
                        else "the case 1 < k < T")
    if "tree" in inputs:
        out["shape"] = f"the case of {_tree_shape(inputs['tree'])}"
    return out


#: How a finding that the result is a multiple of the expected one begins.
SCALED = "every value is the expected one times the same factor"

#: What the axes of an expected result are called, where a finding can say it in the contract's words.
AXES = {"rnn_forward": ("T", "B", "H")}

#: The functions whose result has one entry per time step along its first axis.
TIME_FIRST = ("rnn_forward", "hidden_grad_norms", "gradient_bound")


def _array_finding(function: str, exp: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> str:
    """How ``got`` relates to ``exp`` when it is a slice, a transposition, a reshaping, a
    reversal or a multiple of it ("" when none fits). Each is checked exactly, within tolerance."""
    def close(a: np.ndarray, b: np.ndarray) -> bool:
        return a.shape == b.shape and _close(a, b, rtol, atol)

    if not np.all(np.isfinite(got)):
        return ""
    if exp.ndim == 1 and exp.shape[0] > 1 and got.ndim == 0:
        for index, which in ((-1, "last"), (0, "first")):
            if close(exp[index], got):
                return (f"it equals the {which} entry alone: a single number came back, where all "
                        f"{exp.shape[0]} entries were expected")
    if exp.ndim >= 1 and got.ndim == exp.ndim and got.shape[1:] == exp.shape[1:] and \
            got.shape[0] != exp.shape[0] and function in TIME_FIRST:
        n, want = got.shape[0], exp.shape[0]
        if n == 0:
            return f"it is empty along the first axis (time), where {want} steps are expected"
        if n < want and close(exp[:n], got):
            return (f"it equals the first {n} of the {want} expected steps: the loop over time "
                    "stops early")
        if n < want and close(exp[-n:], got):
            return f"it equals the last {n} of the {want} expected steps: the earlier steps are missing"
        return (f"it has {n} entries along the first axis (time) where {want} are expected, one per "
                "step: the number of steps the loop runs is wrong")
    if exp.ndim >= 2 and exp.shape[0] > 1:
        if close(exp[-1], got):
            return (f"it equals the last step alone (the last entry along the first axis, shape "
                    f"{tuple(exp.shape[1:])}): only the last step came back, where every step was expected")
        if close(exp[0], got):
            return ("it equals the first step alone (the first entry along the first axis): "
                    "only the first step came back, where every step was expected")
    if exp.ndim >= 2 and exp.shape[0] != 1 and exp.shape[1] != 1 or exp.ndim >= 2 and got.shape != exp.shape:
        swapped = np.swapaxes(exp, 0, 1)
        if close(swapped, got) and not close(exp, got):
            names = AXES.get(function)
            if names and len(names) == exp.ndim:
                order = ", ".join((names[1], names[0], *names[2:]))
                want = ", ".join(names)
                return (f"it holds the expected values with axes 0 and 1 swapped: ({order}) order "
                        f"where ({want}) is expected")
            if exp.ndim == 2:
                return "it is the expected matrix transposed"
            return "it holds the expected values with axes 0 and 1 swapped"
    if got.shape != exp.shape and got.size == exp.size and \
            [n for n in got.shape if n != 1] == [n for n in exp.shape if n != 1]:
        if close(exp, got.reshape(exp.shape)):
            return (f"it holds the expected values with an extra axis of length 1 (shape "
                    f"{tuple(got.shape)} where {tuple(exp.shape)} is expected)")
    if got.shape == exp.shape and exp.ndim >= 1 and exp.shape[0] > 1:
        if close(np.flip(exp, 0), got):
            return "it holds the expected values in reverse order along the first axis"
    if got.shape == exp.shape and exp.size > 1:
        denom = float(np.dot(exp.ravel(), exp.ravel()))
        if denom > 0:
            c = float(np.dot(exp.ravel(), got.ravel())) / denom
            if abs(c - 1) > 10 * rtol and abs(c) > 1e-12 and close(c * exp, got):
                return (f"{SCALED} {c:.6g}: a factor "
                        "that multiplies the whole result is wrong or missing")
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
            if (a.shape == c.shape and b.shape == h.shape and _close(c, a, rtol, atol)
                    and _close(h, b, rtol, atol) and not _close(h, a, rtol, atol)):
                return ("the two results came back in the order (c_new, h_new): "
                        "`lstm_cell` returns (h_new, c_new)")
        return ""
    if isinstance(expected, dict) and isinstance(got, dict):
        found = []
        for key in expected:
            g = got.get(key)
            if isinstance(g, ArrayInfo) and not (g.array.shape == expected[key].shape
                                                 and _close(expected[key], g.array, rtol, atol)):
                what = _array_finding(function, expected[key], g.array, rtol, atol)
                if not what:
                    return ""
                found.append(f"{key}: {what}")
        return "; ".join(found)
    return ""


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
        return isinstance(arr, np.ndarray) and arr.shape == reference.shape and _close(reference, arr, rtol, atol)
    if isinstance(reference, tuple):
        return (isinstance(value, tuple) and len(value) == len(reference)
                and all(same(r, v, rtol, atol) for r, v in zip(reference, value)))
    if isinstance(reference, dict):
        return (isinstance(value, dict) and all(k in value for k in reference)
                and all(same(reference[k], value[k], rtol, atol) for k in reference))
    return False


def mistake_evidence(function: str, inputs: Mapping[str, Any], expected: Any, got: Any,
                     rtol: float, atol: float, part: Sequence[str] | None = None) -> tuple[Evidence, ...]:
    """Every catalogued mistake of ``function`` on one observation.

    ``expected`` is the reference's output (numpy); ``got`` the student's (as the Bridge returned
    it), or ``None`` when the student's output passed, i.e. equals ``expected``. Only ``part``
    of the outputs is compared. A mistake that does not apply or cannot run here gives no
    evidence. Bounded: one evaluation per catalogued mistake.
    """
    out = []
    student = select(expected if got is None else got, part)
    reference_part = select(expected, part)
    correct_here = got is None or same(reference_part, student, rtol, atol)
    settings = settings_of(function, inputs)
    for mistake in mistakes_for(function):
        try:
            runs = mistake.applies(inputs)
            wrong = select(to_numpy(mistake.compute(**inputs)), part) if runs else None
        except Exception:  # noqa: BLE001 - a variant that cannot run here: as the reference
            wrong = None
        if wrong is None:
            # Where a mistake does not apply (or cannot run) it computes what the reference
            # computes: it reproduces the student's output here only if that output is right.
            out.append(Evidence(mistake.key, distinct=False, agrees=correct_here, settings=settings))
            continue
        out.append(Evidence(mistake.key, distinct=not same(reference_part, wrong, rtol, atol),
                            agrees=same(wrong, student, rtol, atol), settings=settings))
    return tuple(out)


def attribute(observations: Iterable[tuple[tuple[Evidence, ...], bool]]) -> tuple[str, ...]:
    """The keys of the catalogued mistakes that explain every observation, in catalogue order.

    Each observation is (its evidence, whether the student's output was wrong there). A mistake
    is kept when the student's output equals the mistake's on every observation where it could
    run, and at least once where the student was wrong and the mistake differs from the correct
    output (so it explains a failure, not merely agrees with a pass). One key: that mistake is
    the only explanation in the catalogue; several: the observations cannot tell them apart.
    """
    consistent: dict[str, bool] = {}
    supported: set[str] = set()
    for evidence, failed in observations:
        for e in evidence:
            consistent[e.key] = consistent.get(e.key, True) and e.agrees
            if failed and e.agrees and e.distinct:
                supported.add(e.key)
    return tuple(k for k, ok in consistent.items() if ok and k in supported)


def attribute_by_setting(observations: Iterable[tuple[tuple[Evidence, ...], bool]]) -> tuple[tuple[str, str], ...]:
    """Mistakes that explain the failures of one setting alone: (key, setting in words).

    A mistake is named for a setting ("the sigmoid case") when, on every observation of that
    setting, the student's output equals the mistake's, it explains at least one failure there,
    and on every observation of the other settings of that kind the student's output is right.
    Used where :func:`attribute` finds no mistake for the whole function.
    """
    obs = list(observations)
    found: list[tuple[str, str]] = []
    kinds = sorted({k for ev, _ in obs for e in ev for k in e.settings})
    for kind in kinds:
        values = sorted({e.settings[kind] for ev, _ in obs for e in ev if kind in e.settings})
        if len(values) < 2:
            continue
        for value in values:
            inside = [(ev, failed) for ev, failed in obs if ev and ev[0].settings.get(kind) == value]
            outside = [(ev, failed) for ev, failed in obs if ev and ev[0].settings.get(kind) != value]
            if any(failed for _, failed in outside) or not inside:
                continue
            for key in attribute(inside):
                if (key, value) not in found and not any(k == key for k, _ in found):
                    found.append((key, value))
    return tuple(found)


def describe(function: str, key: str) -> str:
    """The description of mistake ``key`` of ``function`` (see grader/checks/mistakes.py)."""
    for mistake in mistakes_for(function):
        if mistake.key == key:
            return mistake.description
    raise KeyError(f"{function} has no catalogued mistake {key!r}")


def mistake_message(function: str, keys: Sequence[str]) -> str:
    """One named mistake, or an honest "consistent with A or B" for several; "" for none."""
    if not keys:
        return ""
    if len(keys) == 1:
        return f"your output matches `{function}` {describe(function, keys[0])}"
    return (f"your output is consistent with {len(keys)} known mistakes, which these inputs "
            f"cannot tell apart: `{function}` " + "; or ".join(describe(function, k) for k in keys))


def _values_message(where: str, first: tuple[int, ...]) -> str:
    return f"the values{where} differ from the expected ones (first at index {first})"


def setting_message(function: str, key: str, setting: str) -> str:
    """A mistake named for the one setting whose failures it explains."""
    return f"in {setting} your output matches `{function}` {describe(function, key)}"


def with_attribution(case: CaseResult, keys: Sequence[str], diagnosis: str = "",
                     probes: tuple[Mapping[str, str], ...] = (),
                     in_setting: Sequence[tuple[str, str]] = ()) -> CaseResult:
    """``case`` restated from the attribution over all observations of its function.

    A mistake is named on this case only where the student's output equals it here; several
    candidates that all agree here are reported as "consistent with ..."; a per-case match that
    the other observations ruled out is no longer stated. ``in_setting``: mistakes that explain
    one setting's failures alone (:func:`attribute_by_setting`), named on the cases of that setting.
    """
    if case.passed:
        return case
    if not case.wrong_values:  # a raise or a wrong shape here: the findings still apply
        return replace(case, diagnosis=diagnosis, probes=probes)
    agreeing = {e.key for e in case.evidence if e.agrees}
    here = [k for k in keys if k in agreeing]
    local = [(k, v) for k, v in in_setting
             if k in agreeing and v in case.settings.values()] if not here else []
    if "NaN or infinite" in case.message:
        message = case.message
    elif here:
        message = mistake_message(case.function, here)
    elif len(local) == 1:
        message = setting_message(case.function, *local[0])
        return replace(case, message=message, mistakes=(describe(case.function, local[0][0]),),
                       consistent_with=(), diagnosis=diagnosis, probes=probes)
    else:
        message = case.values_note
    named = (describe(case.function, here[0]),) if len(here) == 1 else ()
    several = tuple(describe(case.function, k) for k in here) if len(here) > 1 else ()
    return replace(case, message=message, mistakes=named, consistent_with=several,
                   diagnosis=diagnosis, probes=probes)


def compare_case(function: str, index: int, params: str, shapes: str, inputs: Mapping[str, Any],
                 expected: Any, returned: Returned, rtol: float, atol: float,
                 points: float) -> CaseResult:
    """Score one case; ``expected`` is the reference's output as numpy (see :func:`to_numpy`)."""
    base: dict[str, Any] = dict(function=function, index=index, params=params, shapes=shapes,
                                max_points=points, call_status=returned.status)
    if returned.status == "timeout":
        return CaseResult(**base, passed=False, points=0.0,
                          message=f"`{function}` did not finish in time on this case and was stopped")
    if returned.status == "died":
        return CaseResult(**base, passed=False, points=0.0,
                          message=f"the kernel crashed while `{function}` ran on this case")
    if returned.status == "raised":
        place = raising_line(returned.trace)  # the student's own line that raised, if in a cell
        at = f", at {place.words(with_code=True)}" if place else ""
        return CaseResult(**base, passed=False, points=0.0, error_type=returned.error_type,
                          message=f"`{function}` raised {neutralised(returned.error)}{at}; "
                                  f"expected {_expected_text(expected)}")
    if returned.status != "ok":
        return CaseResult(**base, passed=False, points=0.0, message=returned.error)
    base["settings"] = settings_of(function, inputs)
    pairs, problem = _flatten(expected, returned.value)
    if problem:
        finding = structural_finding(function, expected, returned.value, rtol, atol)
        return CaseResult(**base, passed=False, points=0.0, structure=finding,
                          message=f"{problem}: {finding}" if finding else problem)
    series = {}
    if function in ("hidden_grad_norms", "gradient_bound"):
        series = {"got": tuple(map(float, pairs[0][2].array)), "expected": tuple(map(float, pairs[0][1]))}
    bad = [(label, e, g.array) for label, e, g in pairs if not _close(e, g.array, rtol, atol)]
    if not bad:
        return CaseResult(**base, passed=True, points=points, series=series)
    label, exp, got = bad[0]
    evidence = mistake_evidence(function, inputs, expected, returned.value, rtol, atol)
    # On this case alone: the mistakes that explain it (grader/checks/probes.py revisits this with the
    # function's other cases and its probes, which may tell them apart).
    keys = attribute([(evidence, True)])
    diff = np.abs(got - exp)
    rel = diff / np.maximum(np.abs(exp), atol)
    first = np.unravel_index(int(np.argmax(~np.isclose(got, exp, rtol=rtol, atol=atol))), exp.shape) if exp.ndim else ()
    window = tuple(slice(i, i + 1) for i in first[:-1]) + (
        (slice(max(0, first[-1] - 1), first[-1] + 3),) if first else ())
    where = f" in {label}" if label else ""
    plain = _values_message(where, tuple(int(i) for i in first))
    finding = structural_finding(function, expected, returned.value, rtol, atol)
    if finding:
        plain = f"{plain}: {finding}"
    # A half-precision answer misses any float32 tolerance by rounding alone: say so, or the
    # student hunts for a wrong formula that is not there (kept in values_note, which the
    # attribution over all cases falls back on).
    dtype = next((g.dtype for lab, _, g in pairs if lab == label), "")
    if any(low in dtype for low in ("float16", "bfloat16", "half")):
        plain += f" (it came back as {dtype}, which keeps about 3 digits: compute and return float32)"
    if not np.all(np.isfinite(got)):
        message = f"the result{where} holds NaN or infinite values"
    elif keys:
        message = mistake_message(function, keys)
    else:
        message = plain
    return CaseResult(**base, passed=False, points=0.0, message=message,
                      mistakes=(describe(function, keys[0]),) if len(keys) == 1 else (),
                      consistent_with=tuple(describe(function, k) for k in keys) if len(keys) > 1 else (),
                      values_note=plain, evidence=evidence, structure=finding,
                      expected=_fmt(exp[window]) if exp.ndim else _fmt(exp),
                      got=_fmt(got[window]) if got.ndim else _fmt(got),
                      max_abs=float(np.nanmax(diff)) if diff.size else 0.0,
                      max_rel=float(np.nanmax(rel)) if rel.size else 0.0, series=series)


HIDDEN_GOT = "(not shown: the case's inputs are hidden)"
CHECK_PUBLIC = "`grade check` runs the public examples and shows it in full"


_LABEL = r"(?:(?:h_new|c_new|[WUbVc]): )?"
# Only the grader's own words for a kind: a class name the code made up could spell an input.
_KIND = re.compile(r"^(None|the number|an? (?:list|tuple|dict|tensor|numpy array|ndarray|str|int|float|bool|"
                   r"function|generator|set))\b")
_DTYPE = re.compile(r"^(?:torch\.)?[a-z]{3,8}\d{0,3}$")


def _kind(text: str) -> str:
    """The kind of a value from its description, without its shape, length, keys or values."""
    m = _KIND.match(text.strip())
    return "a number" if m and m.group(1) == "the number" else (m.group(1) if m else "a value")


def _hidden_structure(message: str) -> str:
    """A structure message of a hidden case in words that carry no input out: the kind of what
    came back (list, tuple, dict, None, tensor), a dtype (one of a few names), the contract's
    missing keys; never a returned shape, length, key of its own or value. Anything else: the
    plain sentence that the structure differs."""
    label = re.match(_LABEL, message)
    where = label.group(0) if label else ""
    rest = message[len(where):]
    m = re.fullmatch(r"returned dtype (\S+); expected a floating-point tensor \(torch\.float32\)", rest)
    if m and _DTYPE.match(m.group(1)):
        return f"{where}returned dtype {m.group(1)}; expected a floating-point tensor (torch.float32)"
    m = re.fullmatch(r"returned shape \([\d, ]*\); expected (\([\d, ]*\))(?:: (.*))?", rest, re.S)
    if m:
        # the grader's finding (axes swapped, an extra axis, ...) stays; the returned shape in it goes
        finding = re.sub(r"\s*\([^()]*\)", "", re.sub(r"\([\d, ]*\)", "", m.group(2) or ""))
        # a number left in it could come from the output (a factor): only an axis's length 1 may stay
        finding = "" if re.search(r"\d", re.sub(r"\b(?:length|axis) 1\b", "", finding)) else finding.strip()
        return (f"{where}returned a tensor of another shape; expected shape {m.group(1)}"
                + (f": {finding}" if finding else ""))
    m = re.fullmatch(r"the returned dict has no ((?:'[A-Za-z]', )*'[A-Za-z]'); expected the keys (.*)", rest)
    if m and all(k.strip("' ") in GRAD_KEYS for k in m.group(1).split(",")):
        return f"the returned dict has no {m.group(1)}; expected the keys {', '.join(GRAD_KEYS)}"
    m = re.fullmatch(r"returned (.+?); expected (.+)", rest)
    if m:
        got, want = _kind(m.group(1)), _kind(m.group(2))
        if got != want:
            return f"{where}returned {got}; expected {want}"
        return f"{where}returned {got} of another structure, shape or dtype than expected"
    return "returned a value of another structure, type, shape or dtype than expected"


def redacted_hidden(case: CaseResult) -> CaseResult:
    """``case`` as a student may see it when its inputs are hidden: nothing the student's code
    made of them is shown (an exception's message, a value it returned, its type, keys or shape,
    its largest error, its curve), since any of it can carry the hidden inputs out. What stays is
    the grader's own wording (a named mistake, "the values differ ... first at index ..."), the
    exception's class name and the reference's values; the public examples reproduce a failure
    with everything shown."""
    # the chart keeps the reference's curve; the student's is a channel out (one value per step)
    series = {"expected": tuple(case.series["expected"]), "got": ()} if "expected" in case.series else {}
    if case.passed:
        return replace(case, series=series)
    if case.call_status == "raised":
        place = at_line(case.message)  # the line number and function only, not the quoted source
        at = f", at {place.words(with_code=False)}" if place else ""
        message = (f"`{case.function}` raised {case.error_type or 'an exception'} on this hidden case{at} "
                   f"(its message is not shown, as it may quote the hidden inputs; {CHECK_PUBLIC})")
    elif case.call_status == "ok" and not case.wrong_values and "NaN or infinite" not in case.message:
        message = f"{_hidden_structure(case.message)} on this hidden case ({CHECK_PUBLIC})"
    elif case.call_status not in ("ok", "timeout", "died", "missing", "not_called"):
        message = f"`{case.function}`'s answer on this hidden case could not be read ({CHECK_PUBLIC})"
    else:
        message = case.message  # the grader's own words only (a mistake, where the values differ)
    return replace(case, message=message, got=HIDDEN_GOT if case.got else "", max_abs=None,
                   max_rel=None, series=series)


def missing_case(function: str, index: int, params: str, shapes: str, points: float,
                 why: str = "") -> CaseResult:
    """A case that could not be run: the function is missing, or ``why`` it could not be called."""
    return CaseResult(function=function, index=index, params=params, shapes=shapes, passed=False,
                      points=0.0, max_points=points, call_status="not_called" if why else "missing",
                      message=why or f"no function named `{function}` was defined after the notebook ran")
