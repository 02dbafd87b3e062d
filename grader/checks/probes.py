"""Probes: after a function failed its hidden cases, find which term of it is wrong.

A probe is the failing function called once more, on an input designed so that only some terms
of the computation matter: ``rnn_forward`` with ``W = 0`` exercises the input path alone, with
``U = 0, b = 0`` the recurrence alone. Each probe says which terms it exercises (``covers``: the
terms a wrong implementation of which would change the output on that input). The student's
output either matches the reference's there or not, and the wrong term is then found by set
algebra, as in fault localisation: the terms every differing probe exercises, minus the terms of
the probes that matched. "With `W = 0` your output matches the reference; with `U = 0, b = 0` it
does not: the recurrence term `W h_{t-1}` is wrong."

The probes are data (:data:`PROBES` in grader/checks/probe_table.py, like grader/checks/mistakes.py's
catalogue): a table of (function, name, the setting in words, how to build the inputs from a base
input, the terms its output depends on, the terms a match clears). How a verdict is read from
them, and when it may be stated, is grader/checks/probe_verdict.py.

Rules, each for a reason:

- Feedback only, never points: a probe is not a case of the rubric, and a student must not lose
  (or win) points on an input the rubric does not list.
- Public-safe: the base input is drawn from the check's first *public* seed on the shape of the
  first failing case (shapes are shown in every report), never from a hidden seed, so a probe's
  inputs may be shown to a student.
- Computed in the grader: the reference runs here on the same tensors; the student's function is
  called through the Bridge (npy/JSON, no pickle) with the rubric's call timeout.
- Bounded: at most :data:`MAX_PROBES` calls per function, each with the rubric's call timeout,
  and no new probe once the function's probes have used that timeout in total (so probing costs
  at most about two call timeouts per failing function, however slow the function is); a probe
  that crashes the kernel or runs out of time ends the probing of that function (a further call
  would restart the kernel and run the whole notebook again), as `_run_check` does for the
  hidden cases.
- Verified: a probe clears its terms only on a match within :data:`CLEAR_RTOL` (a near match is
  "close" and clears nothing); a located term is stated only as far as the probes verify it (see
  :func:`verdict`), else the report says the wrong part could not be located. No probe saturates
  an activation.
- Pure functions only: a function that changes one of its inputs in place (contract rule
  "a function leaves its arguments as it found them") reads changed values later in the same
  call, so a probe that matched proves nothing about the terms computed after the change; no term
  is located for it (the report says why).
- Probes are also observations for naming mistakes: every catalogued mistake is evaluated on
  them too (grader/checks/compare.py), so a named mistake is consistent with what the probes found.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import reference
from grader.checks import cases as case_inputs
from grader.checks.bridge import Returned
from grader.checks.compare import (
    SCALED,
    _flatten,
    attribute,
    attribute_by_setting,
    describe,
    mistake_evidence,
    same,
    select,
    setting_message,
    to_numpy,
    with_attribution,
)
from grader.checks.contract import RULE_INPUTS
from grader.checks.probe_table import MAX_PROBES, PROBES, TERMS, Inputs, Probe, probes_for
from grader.checks.probe_verdict import ProbeRun, term_words, verdict
from grader.result import CaseResult, Evidence
from grader.rubric import Case, Check

__all__ = ["CLEAR_RTOL", "MAX_PROBES", "PROBES", "TERMS", "Probe", "ProbeRun", "probes_for", "review",
           "run_probes", "verdict"]

#: A probe clears the terms it exercises only when the student's output equals the reference's
#: within this relative tolerance (and the check's atol, which float32 rounding near 0 needs): a
#: match within the check's own, looser rtol may hide a wrong term whose effect is small there.
CLEAR_RTOL = 1e-5

_terms = term_words  # the name the tests and tests/diagnosis_rate.py use

#: What a report says instead of a located term when the function changed an input in place.
IN_PLACE = ("Your function changes one of its inputs in place (see the rule above), so later steps "
            "of the same call read changed values and the probes cannot tell which term is wrong; "
            "leave the inputs alone first.")


class Caller(Protocol):
    def call(self, expr: str, args: dict[str, Any], timeout: float) -> Returned: ...


def run_probes(function: str, base_params: Mapping[str, Any], seed: int, bridge: Caller,
               timeout: float, rtol: float, atol: float) -> list[ProbeRun]:
    """Call ``function`` in the kernel on each of its probes; at most :data:`MAX_PROBES` calls."""
    def draw(**over: Any) -> Inputs:
        return case_inputs.make_inputs(function, seed, {**base_params, **over})

    base = draw()
    runs: list[ProbeRun] = []
    spent = 0.0  # the function's own time on the probes so far, as the kernel measured it
    for probe in probes_for(function)[:MAX_PROBES]:
        if spent >= timeout:
            runs.append(ProbeRun(probe, "skipped"))
            continue
        inputs = probe.build(base, draw)
        expected = to_numpy(getattr(reference, function)(**inputs))
        returned = bridge.call(f"{function}(**__args)", inputs, timeout)
        spent += returned.seconds
        if returned.status in ("died", "timeout"):
            runs.append(ProbeRun(probe, "stopped"))
            break  # a further call would restart the kernel and run the notebook again
        if returned.status != "ok":
            runs.append(ProbeRun(probe, "raised", returned.error[:200]))
            continue
        _, problem = _flatten(select(expected, probe.part), select(returned.value, probe.part))
        if problem:
            runs.append(ProbeRun(probe, "differs", problem))
            continue
        ref, got = select(expected, probe.part), select(returned.value, probe.part)
        matched = same(ref, got, CLEAR_RTOL, atol)
        outcome = "matches" if matched else "close" if same(ref, got, rtol, atol) else "differs"
        evidence = mistake_evidence(function, inputs, expected, returned.value, rtol, atol, probe.part)
        runs.append(ProbeRun(probe, outcome, evidence=evidence))
    return runs



def _case_of(check: Check, result: CaseResult, public: bool) -> Case | None:
    """The rubric case ``result`` reports on, or None when it is not one of them (a result added
    by another step of grading, e.g. a rule check, is not an observation of the function)."""
    cases = check.public_cases() if public else check.cases
    if result.function != check.function or not 1 <= result.index <= len(cases):
        return None
    case = cases[result.index - 1]
    return case if case.describe() == result.params else None


def _case_evidence(check: Check, case: Case, secret: bytes | None = None) -> tuple[Evidence, ...]:
    """The catalogued mistakes on a case the student passed (its output equals the reference's).

    ``secret``: the course secret a hidden case was drawn under (None for a public example), so
    these are the very inputs the student was called on (grader/checks/cases.py)."""
    inputs = case_inputs.make_inputs(check.function, case.seed, case.params, secret)
    expected = to_numpy(getattr(reference, check.function)(**inputs))
    return mistake_evidence(check.function, inputs, expected, None, check.rtol, check.atol)


def _keys(check: Check, results: Sequence[CaseResult], failing: Sequence[CaseResult],
          runs: Sequence[ProbeRun], public: bool,
          secret: bytes | None = None) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The catalogued mistakes that explain every case and every probe (see compare.attribute),
    and, where none does, those that explain every case and probe of one setting alone."""
    observations = [(r.evidence, True) for r in failing]
    passed = [_case_of(check, r, public) for r in results if r.passed]
    observations += [(_case_evidence(check, case, None if public else secret), False)
                     for case in passed if case is not None]
    observations += [(r.evidence, r.outcome != "matches") for r in runs if r.evidence]
    keys = attribute(observations)
    return keys, (() if keys else attribute_by_setting(observations))


def review(check: Check, results: Sequence[CaseResult], bridge: Caller, timeout: float,
           public: bool = False, secret: bytes | None = None) -> list[CaseResult]:
    """``results`` of one check restated after probing, when some case failed on its values.

    Returns the results unchanged when every case passed, when no case returned a value of the
    right kind (a probe would only show the same shape or error again), or when a call crashed
    or hung (a further call would restart the kernel). Otherwise every failed case carries the
    probes and the diagnosis, and names a catalogued mistake only as grader/checks/compare.py's
    :func:`~grader.checks.compare.attribute` allows over all cases and probes. Never raises: feedback
    must never cost a submission its grade, so a failure of the grader's own probing leaves the
    results as they were, with the reason in result.json for the tutor (the report shows none).
    """
    results = list(results)
    try:
        return _review(check, results, bridge, timeout, public, secret)
    except Exception as exc:  # noqa: BLE001 - see above: the points stand whatever happens here
        failure = f"probing failed in the grader: {type(exc).__name__}: {exc}"[:300]
        return [r if r.passed else replace(r, probes=({"outcome": "grader_error", "text": failure},))
                for r in results]


def _review(check: Check, results: list[CaseResult], bridge: Caller, timeout: float,
            public: bool, secret: bytes | None = None) -> list[CaseResult]:
    failing = [r for r in results if r.wrong_values and _case_of(check, r, public) is not None]
    if not failing or any(r.call_status in ("died", "timeout") for r in results):
        return results
    if any(r.structure and not r.structure.startswith(SCALED) for r in results if not r.passed):
        # a slice, transposition or reordering of the expected result explains a failure: that
        # finding is the diagnosis; probes would only meet the same layout again
        return results
    base = _case_of(check, failing[0], public)
    assert base is not None  # filtered above
    runs: list[ProbeRun] = []
    if check.public_seeds:  # the base is drawn from a public seed only (public-safe inputs)
        runs = run_probes(check.function, base.params, check.public_seeds[0], bridge, timeout,
                          check.rtol, check.atol)
    keys, in_setting = _keys(check, results, failing, runs, public, secret)
    activation = base.params.get("activation")
    finding, _ = verdict(check.function, runs, activation)
    if finding and any(RULE_INPUTS in r.message for r in results):
        finding = IN_PLACE
    sentences = [finding] if finding else []
    if len(keys) == 1:
        sentences.append(f"Over all cases{' and probes' if runs else ''} your output matches "
                         f"`{check.function}` {describe(check.function, keys[0])}.")
    elif keys:
        sentences.append(f"Your output is consistent with {len(keys)} known mistakes: `{check.function}` "
                         + "; or ".join(describe(check.function, k) for k in keys) + ".")
    elif len(in_setting) == 1:
        key, setting = in_setting[0]
        sentences.append(f"Over all cases{' and probes' if runs else ''}, "
                         f"{setting_message(check.function, key, setting)}; every other case is right.")
    terms = term_words(check.function, activation)
    probes_json = tuple(r.to_json(terms, activation) for r in runs)
    one = in_setting if len(in_setting) == 1 else ()
    return [r if r.passed else with_attribution(r, keys, " ".join(sentences), probes_json, one)
            for r in results]
