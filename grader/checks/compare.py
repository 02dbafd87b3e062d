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

This module is the front door of the comparison: it scores a case, attributes mistakes over
observations and words the messages. Its parts live beside it: grader/checks/outputs.py (the
outputs in numpy, the structure check and the one tolerance test), grader/checks/structural.py
(the findings above) and grader/checks/hidden.py (a hidden case as a student may see it); the
names other modules use are importable from here.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from grader.checks.bridge import Returned
from grader.checks.causes import cause_sentence, raise_cause
from grader.checks.hidden import CHECK_PUBLIC, HIDDEN_GOT, redacted_hidden
from grader.checks.hidden import hidden_structure as _hidden_structure
from grader.checks.mistakes import mistakes_for
from grader.checks.outputs import GRAD_KEYS, same, select, to_numpy
from grader.checks.outputs import all_close as _close
from grader.checks.outputs import describe_value as _describe
from grader.checks.outputs import expected_text as _expected_text
from grader.checks.outputs import fmt_array as _fmt
from grader.checks.outputs import matches as _matches
from grader.checks.outputs import pair_arrays as _flatten
from grader.checks.raised import neutralised, raising_line
from grader.checks.structural import AXES, SCALED, TIME_FIRST, structural_finding
from grader.result import CaseResult, Evidence

# The names other modules import from here, wherever the comparison's part that defines them lives.
__all__ = ["AXES", "CHECK_PUBLIC", "GRAD_KEYS", "HIDDEN_GOT", "SCALED", "TIME_FIRST", "CaseResult", "Evidence",
           "_describe", "_flatten", "_hidden_structure", "attribute", "attribute_by_setting", "compare_case",
           "describe", "missing_case", "mistake_evidence", "mistake_message", "named_mistakes",
           "redacted_hidden", "same", "select", "setting_message", "settings_of", "structural_finding",
           "to_numpy", "with_attribution"]


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
                 points: float, cells: Sequence[str] = ()) -> CaseResult:
    """Score one case; ``expected`` is the reference's output as numpy (see :func:`to_numpy`);
    ``cells``: the notebook's code cells, where a raise is traced back (grader/checks/causes.py)."""
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
        # where the raise came from, traced back in the notebook's own source (feedback only)
        cause = raise_cause(function, returned.frames, cells, inputs, returned.error_type, returned.error)
        return CaseResult(**base, passed=False, points=0.0, error_type=returned.error_type,
                          message=f"`{function}` raised {neutralised(returned.error)}{at}; "
                                  f"expected {_expected_text(expected)}" + cause_sentence(cause.words if cause else ""),
                          cause=cause.words if cause else "", cause_lines=cause.lines if cause else ())
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


def missing_case(function: str, index: int, params: str, shapes: str, points: float,
                 why: str = "") -> CaseResult:
    """A case that could not be run: the function is missing, or ``why`` it could not be called."""
    return CaseResult(function=function, index=index, params=params, shapes=shapes, passed=False,
                      points=0.0, max_points=points, call_status="not_called" if why else "missing",
                      message=why or f"no function named `{function}` was defined after the notebook ran")
