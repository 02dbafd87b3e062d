"""The bridge's contract-rule evidence (grader/checks/bridge.py, ``verify=True``) and the grader's verdict
(grader/checks/contract.py, grade._run_check).

Fast: the kernel is replaced by an in-process stand-in that executes the very code the bridge
sends (the harness and the call) in a namespace holding the "student's" functions, so the same
channel (files, JSON, .npy) is exercised without starting a kernel. The end-to-end run in a real
sandboxed kernel is in tests/test_grade_functions.py (slow).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import reference
from grader.checks import cases as case_inputs
from grader.checks.bridge import ArrayInfo, Bridge, InputState, Returned, TypeInfo
from grader.checks.contract import RULE_INPUTS, RULE_REPEAT, input_changes, repeat_difference, violations
from grader.grade import _run_check
from grader.kernel.execute import CodeResult
from grader.rubric import load_rubric

SECRET = b"bridge-test-secret-0123456789abcdef"


class _Sandbox:
    confined = False


class FakeSession:
    """Runs the bridge's code in this process, in ``namespace`` (the 'kernel's globals')."""

    def __init__(self, calls: Path, namespace: dict[str, Any]) -> None:
        self.calls, self.namespace, self.sandbox = calls, namespace, _Sandbox()

    def run_code(self, source: str, timeout: float) -> CodeResult:
        start = time.monotonic()
        try:
            exec(compile(source, "<grader>", "exec"), self.namespace)
        except Exception as exc:  # noqa: BLE001 - reported like a failed cell
            return CodeResult("error", time.monotonic() - start, repr(exc))
        return CodeResult("ok", time.monotonic() - start)


def _bridge(tmp_path: Path, **functions: Any) -> Bridge:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    namespace.update({name: getattr(reference, name) for name in
                      ("rnn_forward", "activation_jacobian", "hidden_grad_norms", "gradient_bound",
                       "lstm_cell", "tree_encode", "tbptt_grads")})
    namespace.update(functions)
    calls = tmp_path / "calls"
    calls.mkdir(exist_ok=True)
    return Bridge(FakeSession(calls, namespace))  # type: ignore[arg-type]


def _tbptt_inputs() -> dict[str, Any]:
    return case_inputs.make_inputs("tbptt_grads", 5, dict(T=6, B=3, D=3, H=4, C=3, k=2))


# ---------------------------------------------------------------- student functions under test

def tbptt_requires_grad_on_caller(x, y, params, k):
    """The issue's attack: marks the caller's tensors, returns their .grad (right the first time)."""
    for p in params.values():
        p.requires_grad_(True)
    T = x.shape[0]
    h = torch.zeros(x.shape[1], params["W"].shape[0])
    for t in range(T):
        if t == T - k:
            h = h.detach()
        h = torch.tanh(h @ params["W"].T + x[t] @ params["U"].T + params["b"])
    logits = h @ params["V"].T + params["c"]
    torch.nn.functional.cross_entropy(logits, y).backward()
    return {n: p.grad for n, p in params.items()}


def tbptt_zeroes_params(x, y, params, k):
    """Correct gradients, then wipes the caller's parameters."""
    grads = reference.tbptt_grads(x, y, params, k)
    for p in params.values():
        p.zero_()
    return grads


def tbptt_inplace_on_own_clones(x, y, params, k):
    """Unusual but correct: in-place ops on its own float64 clones, numpy out."""
    own = {n: p.detach().clone().double() for n, p in params.items()}
    own["W"].mul_(1.0)
    own["b"].add_(0.0)
    grads = reference.tbptt_grads(x.double(), y, own, k)
    return {n: g.numpy() for n, g in grads.items()}


def tbptt_adds_a_key(x, y, params, k):
    grads = reference.tbptt_grads(x, y, params, k)
    params["cache"] = torch.zeros(1)
    return grads


def tbptt_replaces_a_tensor(x, y, params, k):
    grads = reference.tbptt_grads(x, y, params, k)
    params["W"] = params["W"].clone()
    return grads


def tbptt_changes_dtype(x, y, params, k):
    grads = reference.tbptt_grads(x, y, params, k)
    x.data = x.data.double()
    return grads


_CALLS = [0]


def tbptt_counts_calls(x, y, params, k):
    """Keeps state between calls: the second call returns something else."""
    _CALLS[0] += 1
    grads = reference.tbptt_grads(x, y, params, k)
    return {n: g * _CALLS[0] for n, g in grads.items()}


def tree_scales_embedding(tree, embed, W, b):
    out = reference.tree_encode(tree, embed, W, b)
    next(iter(embed.values())).mul_(2.0)
    return out


# ---------------------------------------------------------------- the channel

def test_a_correct_call_keeps_the_rules_and_reports_both_calls(tmp_path):
    inputs = _tbptt_inputs()
    got = _bridge(tmp_path).call("tbptt_grads(**__args)", inputs, 30, verify=True)
    assert got.status == "ok" and isinstance(got.value, dict)
    assert got.second is not None and got.second.status == "ok"
    assert got.inputs_after is not None
    paths = {s.path for s in got.inputs_after}
    assert {"x", "y", "params", "params['W']", "params['c']"} <= paths
    assert violations(inputs, got, 1e-4, 1e-6) == []


def test_without_verify_nothing_is_called_twice(tmp_path):
    calls = []
    bridge = _bridge(tmp_path, f=lambda: calls.append(1) or 1.0)
    got = bridge.call("f()", {}, 30)
    assert got.status == "ok" and got.value == 1.0 and calls == [1]
    assert got.second is None and got.inputs_after is None


def test_requires_grad_on_the_callers_tensors_breaks_the_rule(tmp_path):
    inputs = _tbptt_inputs()
    bridge = _bridge(tmp_path, tbptt_grads=tbptt_requires_grad_on_caller)
    got = bridge.call("tbptt_grads(**__args)", inputs, 30, verify=True)
    # The first call's gradients are right: only the rule can tell.
    expected = reference.tbptt_grads(**inputs)
    assert np.allclose(got.value["W"].array, expected["W"].double().numpy(), atol=1e-6)
    found = violations(inputs, got, 1e-4, 1e-6, "tbptt_grads")
    text = " ".join(found)
    assert RULE_INPUTS in text
    assert "`requires_grad` of `params['W']` was switched on" in text
    assert "`.grad` of `params['W']` was set" in text


def test_zeroing_the_callers_params_breaks_the_rule(tmp_path):
    inputs = _tbptt_inputs()
    got = _bridge(tmp_path, tbptt_grads=tbptt_zeroes_params).call(
        "tbptt_grads(**__args)", inputs, 30, verify=True)
    found = violations(inputs, got, 1e-4, 1e-6, "tbptt_grads")
    assert len(found) == 1 and RULE_INPUTS in found[0]
    assert "`params['W']` was changed in place (values)" in found[0]
    assert "and 2 more changes" in found[0]  # five params changed: three named, the rest counted


@pytest.mark.parametrize("student, change", [
    (tbptt_adds_a_key, "`params` was changed (keys 'cache' added)"),
    (tbptt_replaces_a_tensor, "`params['W']` was replaced by another object"),
    (tbptt_changes_dtype, "`x` was changed in place (dtype torch.float32 -> torch.float64)"),
])
def test_each_kind_of_change_is_named(tmp_path, student, change):
    inputs = _tbptt_inputs()
    got = _bridge(tmp_path, tbptt_grads=student).call("tbptt_grads(**__args)", inputs, 30, verify=True)
    assert change in " ".join(violations(inputs, got, 1e-4, 1e-6))


def test_a_changed_embedding_of_tree_encode_is_named(tmp_path):
    inputs = case_inputs.make_inputs("tree_encode", 3, dict(d=3, leaves=5, shape="random"))
    got = _bridge(tmp_path, tree_encode=tree_scales_embedding).call(
        "tree_encode(**__args)", inputs, 30, verify=True)
    first = next(iter(inputs["embed"]))
    assert f"`embed[{first!r}]` was changed in place (values)" in " ".join(violations(inputs, got, 1e-4, 1e-5))


def test_a_second_call_that_differs_breaks_the_repeat_rule(tmp_path):
    inputs = _tbptt_inputs()
    got = _bridge(tmp_path, tbptt_grads=tbptt_counts_calls).call(
        "tbptt_grads(**__args)", inputs, 30, verify=True)
    found = violations(inputs, got, 1e-4, 1e-6, "tbptt_grads")
    assert found == [f'`tbptt_grads` breaks the rule "{RULE_REPEAT}": a second call with fresh '
                     "copies of the same inputs returned different values"]


def test_correct_unusual_styles_keep_the_rules(tmp_path):
    inputs = _tbptt_inputs()
    got = _bridge(tmp_path, tbptt_grads=tbptt_inplace_on_own_clones).call(
        "tbptt_grads(**__args)", inputs, 30, verify=True)
    assert got.status == "ok" and got.value["W"].kind == "ndarray"
    assert violations(inputs, got, 1e-4, 1e-6) == []


def test_every_rubric_function_on_the_reference_keeps_the_rules(tmp_path):
    bridge = _bridge(tmp_path)
    for check in load_rubric().checks():
        for case in check.public_cases():
            inputs = case_inputs.make_inputs(check.function, case.seed, case.params)
            got = bridge.call(f"{check.function}(**__args)", inputs, 30, verify=True)
            assert got.status == "ok", (check.function, got.error)
            assert violations(inputs, got, check.rtol, check.atol) == [], check.function


# ---------------------------------------------------------------- forged or missing evidence

def test_missing_evidence_is_a_violation_not_a_pass():
    inputs = _tbptt_inputs()
    value = {k: ArrayInfo(np.zeros(1), "tensor", "torch.float32") for k in "WUbVc"}
    forged = Returned("ok", value, second=None, inputs_after=None)
    found = violations(inputs, forged, 1e-4, 1e-6)
    assert "could not be verified" in found[0] and "could not be verified" in found[1]
    # A report that leaves out one input is as good as none.
    partial = (InputState("x", value=ArrayInfo(inputs["x"].double().numpy(), "tensor", "torch.float32")),)
    assert input_changes(inputs, partial) == ["the state of the inputs after the call could not be verified"]


def test_the_grader_compares_with_its_own_inputs_not_the_kernels_snapshot():
    """A kernel that reports 'unchanged' but with other numbers than were sent is caught: the
    reference is the grader's copy."""
    inputs = {"x": torch.ones(2, 2, dtype=torch.float32)}
    lie = (InputState("x", value=ArrayInfo(np.zeros((2, 2)), "tensor", "torch.float32")),)
    assert input_changes(inputs, lie) == ["`x` was changed in place (values)"]


def test_a_second_call_that_raises_is_named():
    first = Returned("ok", 1.0)
    assert "raised ValueError: no" in repeat_difference(first, Returned("raised", error="ValueError: no"), 1e-4, 1e-6)
    assert repeat_difference(first, Returned("ok", 1.0), 1e-4, 1e-6) == ""


# ---------------------------------------------------------------- points (grade._run_check)

def _check(function: str, **changes: Any):
    check = next(c for c in load_rubric().checks() if c.function == function)
    return dataclasses.replace(check, **changes)


def test_a_broken_rule_costs_the_case_by_default(tmp_path):
    rubric = load_rubric()
    check = _check("tbptt_grads")
    bridge = _bridge(tmp_path, tbptt_grads=tbptt_zeroes_params)
    got = _run_check(bridge, check, True, rubric, public=False, secret=SECRET)
    assert len(got) == len(check.cases)
    assert all(not c.passed and c.points == 0.0 for c in got)
    assert all(RULE_INPUTS in c.message and "`params['W']` was changed in place (values)" in c.message
               for c in got)


def test_the_penalty_is_the_rubrics(tmp_path):
    rubric = load_rubric()
    check = _check("tbptt_grads", contract_penalty=0.25)
    got = _run_check(_bridge(tmp_path, tbptt_grads=tbptt_requires_grad_on_caller), check, True,
                     rubric, public=False, secret=SECRET)
    share = check.points / len(check.cases)
    assert [c.points for c in got] == [pytest.approx(share * 0.75)] * len(check.cases)
    assert all(not c.passed and "`.grad` of `params['W']` was set" in c.message for c in got)


def test_the_reference_gets_full_points_on_the_hidden_cases(tmp_path):
    rubric = load_rubric()
    bridge = _bridge(tmp_path)
    for check in rubric.checks():
        got = _run_check(bridge, check, True, rubric, public=False, secret=SECRET)
        assert all(c.passed for c in got), [c.message for c in got if not c.passed]
        assert sum(c.points for c in got) == pytest.approx(check.points)


def test_hidden_cases_refuse_to_run_without_a_secret(tmp_path):
    from grader.errors import SecretError
    with pytest.raises(SecretError):
        _run_check(_bridge(tmp_path), _check("lstm_cell"), True, load_rubric(), public=False, secret=None)


def test_a_large_embedding_table_is_verified_whole(tmp_path):
    """Hundreds of words (more than any cap on a dict's keys could cut short): no false alarm,
    and a change to the last word is still seen."""
    inputs = case_inputs.make_inputs("tree_encode", 4, dict(d=2, leaves=600, shape="random"))
    assert len(inputs["embed"]) == 400
    got = _bridge(tmp_path).call("tree_encode(**__args)", inputs, 60, verify=True)
    assert violations(inputs, got, 1e-4, 1e-5) == []

    def touches_last(tree, embed, W, b):
        out = reference.tree_encode(tree, embed, W, b)
        embed[list(embed)[-1]].add_(1.0)
        return out
    got = _bridge(tmp_path, tree_encode=touches_last).call("tree_encode(**__args)", inputs, 60, verify=True)
    assert "`embed['w399']` was changed in place (values)" in " ".join(violations(inputs, got, 1e-4, 1e-5))


def test_a_kernel_that_hides_the_evidence_loses_the_case(tmp_path, monkeypatch):
    """The student's code patches json.dump (shared with the harness in the kernel) to drop the
    evidence and zeroes its inputs: the value is right, the rules cannot be verified, the case
    fails. Hiding the evidence is no way to keep the points of a rule-breaking function."""
    import json
    monkeypatch.setattr(json, "dump", json.dump)  # restored after the test: the 'kernel' is us

    def hides(x, y, params, k):
        real = json.dump.__wrapped__ if hasattr(json.dump, "__wrapped__") else json.dump

        def dump(obj, fp, *a, **kw):
            if isinstance(obj, dict):
                obj = {key: v for key, v in obj.items() if key not in ("inputs", "second")}
            return real(obj, fp, *a, **kw)
        dump.__wrapped__ = real  # type: ignore[attr-defined]
        json.dump = dump
        return tbptt_zeroes_params(x, y, params, k)

    rubric = load_rubric()
    check = _check("tbptt_grads")
    got = _run_check(_bridge(tmp_path, tbptt_grads=hides), check, True, rubric, public=False, secret=SECRET)
    assert all(not c.passed and c.points == 0.0 for c in got)
    assert all("could not be verified" in c.message for c in got), [c.message for c in got]


def test_an_answer_too_large_to_read_is_not_asked_for_twice(tmp_path):
    from grader.checks.bridge import MAX_RESULT_BYTES
    calls = []

    def huge(z, activation="tanh"):
        calls.append(1)
        return torch.zeros(MAX_RESULT_BYTES // 8 + 1, dtype=torch.float64)

    inputs = case_inputs.make_inputs("activation_jacobian", 1, dict(H=3, activation="tanh"))
    got = _bridge(tmp_path, activation_jacobian=huge).call("activation_jacobian(**__args)", inputs, 30,
                                                           verify=True)
    # Not written at all: described as too large (not blamed on a full disk), and not asked for twice.
    assert got.status == "ok" and calls == [1]
    assert isinstance(got.value, TypeInfo) and got.value.kind.startswith("result too large to send back")
