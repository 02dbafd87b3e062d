"""The cases of one contract function, called in the student's kernel and scored in the grader.

:func:`_run_check` draws each case's inputs (the rubric's public examples, or the hidden cases
under the course secret: grader/checks/cases.py), computes the expected value with the reference
implementation in the grader's process, calls the student's function through the bridge (twice,
on fresh copies, with the inputs' state reported: contract §3), compares (grader/checks/compare.py)
and applies the contract's rules (grader/checks/contract.py): a broken rule costs
``contract_penalty`` of the case's points and is named in its message. A hidden case's messages
never show what the student's code made of a hidden input. After the last call of every function,
:func:`_recheck_inputs` looks at every verified call's inputs again (a changed input costs its
case as at the first look).

grader/grade.py runs these steps for every check of the rubric and is the front door: every name
here is importable from there.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import reference
from grader.checks import cases as case_inputs
from grader.checks import learned
from grader.checks.bridge import Bridge, Returned
from grader.checks.compare import compare_case, missing_case, redacted_hidden, to_numpy
from grader.checks.contract import recheck_violations, redact_hidden
from grader.checks.contract import violations as contract_violations
from grader.checks.secret import secret_id
from grader.errors import SecretError
from grader.result import CaseResult
from grader.rubric import Check, Rubric, case_key

__all__ = ["FUNCTIONS", "REFERENCE", "Verified"]

FUNCTIONS = ("rnn_forward", "activation_jacobian", "hidden_grad_norms", "gradient_bound",
             "lstm_cell", "tree_encode", "tbptt_grads", "train_recall")

REFERENCE: dict[str, Callable[..., Any]] = {name: getattr(reference, name) for name in FUNCTIONS}


@dataclass(frozen=True)
class Verified:
    """A verified call whose inputs are looked at again after the last call (contract §3)."""

    check: Check
    index: int
    inputs: Mapping[str, Any]
    call_id: str
    restarts: int  # the kernel's restarts when it was made: a later restart lost its evidence
    hidden: bool = False  # a hidden case's call: its messages say only what a hidden case may


def _recheck_inputs(bridge: Bridge, rubric: Rubric, verified: list[Verified],
                    by_question: dict[str, list[CaseResult]]) -> None:
    """Every verified call's inputs, looked at again after the functions' last calls and a
    settle (rubric ``[contract_rules] settle_seconds``); a changed input costs its case as at the
    first look (grader/checks/contract.py, :func:`~grader.checks.contract.recheck_violations`).

    Calls made before a kernel restart are not looked at again: their kernel is gone, and the
    crash is flagged (``kernel.died``) and costs the crashing call already.
    """
    restarts = getattr(bridge.session, "restarts", 0)
    live = [v for v in verified if v.call_id and v.restarts == restarts]
    if not live:
        return
    time.sleep(rubric.contract_settle)
    states = bridge.recheck([v.call_id for v in live], rubric.limits.call_timeout)
    if states is None and getattr(bridge.session, "restarts", 0) != restarts:
        return  # the re-check itself found the kernel dead (restarted): nothing left to look at
    when = f"after its last call and {rubric.contract_settle:g} s"
    for v in live:
        broken = recheck_violations(v.inputs, None if states is None else states.get(v.call_id),
                                    v.check.function, when)
        if v.hidden:
            broken = [redact_hidden(b) for b in broken]
        if not broken:
            continue
        cases = by_question[rubric.question_of(v.check.function)]
        for n, case in enumerate(cases):
            if case.function == v.check.function and case.index == v.index:
                points = round(min(case.points, case.max_points * (1.0 - v.check.contract_penalty)), 6)
                cases[n] = replace(case, passed=False, points=points,
                                   message="; ".join(p for p in (case.message, *broken) if p))
                break


def _run_check(bridge: Bridge, check: Check, defined: bool, rubric: Rubric,
               public: bool = False, why: str = "", secret: bytes | None = None,
               verified: list[Verified] | None = None,
               fingerprints: dict[str, str] | None = None, cells: Sequence[str] = ()) -> list[CaseResult]:
    """The cases of ``check``, scored; ``fingerprints`` (when given) gets each case's output
    fingerprint under its case key (grader/checks/learned.py); ``cells``: the notebook's code cells
    as the grader read them, where a raise is traced back (grader/checks/causes.py)."""
    out = []
    sid = None if public or secret is None else secret_id(secret)
    cases = check.public_cases() if public else check.cases
    if not public and secret is None:
        # Hidden inputs drawn from the rubric's seeds alone could be searched by the kernel.
        raise SecretError("hidden cases need the course secret; build the context with "
                          "Context.create (it loads grader/checks/secret.py's secret file)")
    share = check.points / len(cases)
    stuck: Returned | None = None  # a call that crashed or hung: the later cases are not tried
    for i, case in enumerate(cases, start=1):
        inputs = case_inputs.make_inputs(check.function, case.seed, case.params,
                                         None if public else secret)
        shapes = case_inputs.shapes_of(inputs)
        params = case.describe()
        if not defined:
            out.append(missing_case(check.function, i, params, shapes, share, why))
            if fingerprints is not None:
                fingerprints[case_key("public" if public else "hidden", case.seed, case.params, sid)] = \
                    f"status:{out[-1].call_status}"
            continue
        expected = to_numpy(REFERENCE[check.function](**inputs))
        if stuck is not None:
            returned = stuck
        else:
            # verify: called twice on fresh copies, the inputs' state reported (contract §3).
            returned = bridge.call(f"{check.function}(**__args)", inputs, rubric.limits.call_timeout,
                                   verify=True)
            if returned.status in ("died", "timeout"):
                # Every further call would restart the kernel and run the notebook again.
                stuck = returned
            elif verified is not None and returned.status == "ok" and returned.call_id:
                verified.append(Verified(check, i, inputs, returned.call_id,
                                         getattr(bridge.session, "restarts", 0), not public))
        result = compare_case(check.function, i, params, shapes, inputs, expected, returned,
                              check.rtol, check.atol, share, cells)
        if fingerprints is not None:
            fingerprints[case_key("public" if public else "hidden", case.seed, case.params, sid)] = \
                learned.case_fingerprint(result, returned, expected, rubric.learned.quantum)
        if not public:  # a student's report never shows what their code made of a hidden input
            result = redacted_hidden(result)
        out.append(_with_contract_rules(result, inputs, returned, check, hidden=not public))
    return out


def _with_contract_rules(result: CaseResult, inputs: dict[str, Any], returned: Returned,
                         check: Check, hidden: bool = False) -> CaseResult:
    """The case after the rules of contract §3: a broken rule costs ``contract_penalty`` of the
    case's points and is named in its message (grader/checks/contract.py explains why a kernel that
    forges the evidence gains nothing)."""
    # hidden: keys other than the contract's and a second call's message can quote the hidden
    # inputs, so the rule and the input are named without them (contract.redact_hidden)
    broken = contract_violations(inputs, returned, check.rtol, check.atol, check.function, hidden=hidden)
    if not broken:
        return result
    points = round(min(result.points, result.max_points * (1.0 - check.contract_penalty)), 6)
    message = "; ".join(part for part in (result.message, *broken) if part)
    return replace(result, passed=False, points=points, message=message)

