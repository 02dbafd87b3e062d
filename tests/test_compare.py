"""Tests of grader/checks/compare.py's attribution: a mistake is named only on evidence that tells it
apart; otherwise "consistent with A or B". In process, no kernel."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import reference
from grader.checks.bridge import ArrayInfo, Returned
from grader.checks.cases import make_inputs
from grader.checks.compare import (
    Evidence,
    attribute,
    compare_case,
    describe,
    mistake_evidence,
    mistake_message,
    same,
    select,
    to_numpy,
    with_attribution,
)
from grader.checks.mistakes import MISTAKES
from grader.result import QuestionResult


def _returned(value) -> Returned:
    if isinstance(value, torch.Tensor):
        return Returned("ok", ArrayInfo(value.detach().double().numpy(), "tensor", str(value.dtype)))
    if isinstance(value, tuple):
        return Returned("ok", tuple(_returned(v).value for v in value))
    return Returned("ok", {k: _returned(v).value for k, v in value.items()})


def _compute(function: str, key: str, inputs):
    (m,) = [m for m in MISTAKES if m.function == function and m.key == key]
    return m.compute(**inputs)


RNN_T1 = dict(T=1, B=2, D=5, H=4, activation="sigmoid")  # the rubric's T = 1 case shape
RNN_T6 = dict(T=6, B=3, D=4, H=5, activation="tanh")


def _case(function, params, seed, value, index=1):
    inputs = make_inputs(function, seed, params)
    expected = to_numpy(getattr(reference, function)(**inputs))
    return compare_case(function, index, "", "", inputs, expected, _returned(value), 1e-4, 1e-5, 0.25)


# ------------------------------------------------------------------------------------------------


def test_attribute_keeps_only_mistakes_consistent_everywhere_and_supported() -> None:
    a, b, c = "a", "b", "c"
    case1 = (Evidence(a, True, True), Evidence(b, True, True), Evidence(c, True, False))
    case2 = (Evidence(a, True, True), Evidence(b, True, False))  # c could not run here
    assert attribute([(case1, True)]) == (a, b)
    assert attribute([(case1, True), (case2, True)]) == (a,)
    # agreeing with a pass (not distinct from correct) supports nothing on its own
    assert attribute([((Evidence(a, False, True),), False)]) == ()
    # a mistake that differs from correct on a case the student passed is ruled out
    assert attribute([(case1, True), ((Evidence(a, True, False),), False)]) == (b,)
    # agreeing only where the mistake equals the correct output explains no failure
    assert attribute([((Evidence(a, False, True),), True)]) == ()


def test_missing_recurrence_at_T1_is_either_until_another_case_decides() -> None:
    inputs = make_inputs("rnn_forward", 5, RNN_T1)
    wrong = _compute("rnn_forward", "no_recurrence", inputs)
    case = _case("rnn_forward", RNN_T1, 5, wrong)
    assert not case.passed and case.mistakes == ()
    assert set(case.consistent_with) == {describe("rnn_forward", "no_recurrence"),
                                         describe("rnn_forward", "h0_ignored")}
    assert case.message.startswith("your output is consistent with 2 known mistakes")
    # a longer case tells them apart: across both, only the missing recurrence remains
    long = _case("rnn_forward", RNN_T6, 6, _compute("rnn_forward", "no_recurrence",
                                                     make_inputs("rnn_forward", 6, RNN_T6)), 2)
    keys = attribute([(case.evidence, True), (long.evidence, True)])
    assert keys == ("no_recurrence",)
    restated = with_attribution(case, keys)
    assert restated.mistakes == (describe("rnn_forward", "no_recurrence"),)
    assert restated.consistent_with == ()
    assert restated.message == "your output matches `rnn_forward` " + describe("rnn_forward", "no_recurrence")


def test_a_per_case_match_ruled_out_elsewhere_is_not_stated() -> None:
    inputs = make_inputs("rnn_forward", 5, RNN_T1)
    case = _case("rnn_forward", RNN_T1, 5, _compute("rnn_forward", "h0_ignored", inputs))
    restated = with_attribution(case, ())
    assert restated.mistakes == () and restated.consistent_with == ()
    assert restated.message.startswith("the values differ from the expected ones (first at index")
    assert "h0" not in restated.message


def test_no_catalogued_mistake_gives_the_plain_difference() -> None:
    inputs = make_inputs("rnn_forward", 6, RNN_T6)
    wrong = reference.rnn_forward(**inputs) * 1.5
    case = _case("rnn_forward", RNN_T6, 6, wrong)
    assert case.message == case.values_note and case.mistakes == () and case.consistent_with == ()
    assert case.wrong_values


def test_passed_case_and_wrong_kinds_have_no_findings() -> None:
    inputs = make_inputs("rnn_forward", 6, RNN_T6)
    ok = _case("rnn_forward", RNN_T6, 6, reference.rnn_forward(**inputs))
    assert ok.passed and ok.findings_json() == {} and ok.evidence == ()
    assert with_attribution(ok, ("bias_missing",), "x") is ok
    expected = to_numpy(reference.rnn_forward(**inputs))
    raised = compare_case("rnn_forward", 1, "", "", inputs, expected, Returned("raised", error="E"),
                          1e-4, 1e-5, 0.25)
    assert not raised.wrong_values
    again = with_attribution(raised, ("bias_missing",), "the bias is wrong", ({"setting": "s"},))
    assert again.message == raised.message and again.mistakes == ()
    assert again.findings_json() == {"diagnosis": "the bias is wrong", "probes": [{"setting": "s"}]}


def test_findings_reach_the_result_json_beside_the_contract_keys() -> None:
    inputs = make_inputs("rnn_forward", 5, RNN_T1)
    case = _case("rnn_forward", RNN_T1, 5, _compute("rnn_forward", "no_recurrence", inputs))
    q = QuestionResult("11.4.a", "rnn_forward", 0.0, 1.0, "auto", (case,))
    (check,) = q.to_json()["checks"]
    assert {"name", "passed", "points", "max_points", "message"} <= set(check)
    assert len(check["consistent_with"]) == 2
    assert "evidence" not in check  # the grader's own


def test_select_and_same_on_every_output_structure() -> None:
    h, c = np.ones((2, 3)), np.zeros((2, 3))
    assert select((h, c), ("c_new",)) == (c,)
    grads = {k: np.full(2, i, float) for i, k in enumerate("WUbVc")}
    assert set(select(grads, ("V", "c"))) == {"V", "c"}
    assert same(grads, {k: ArrayInfo(v, "tensor", "torch.float32") for k, v in grads.items()}, 1e-4, 0)
    assert not same(h, ArrayInfo(h.T, "tensor", "torch.float32"), 1e-4, 0)  # shapes differ
    assert not same(h, np.full((2, 3), np.nan), 1e-4, 0)
    assert not same((h, c), (h,), 1e-4, 0)
    assert not same(grads, {"W": grads["W"]}, 1e-4, 0)


def test_mistake_evidence_on_a_part_only() -> None:
    inputs = make_inputs("lstm_cell", 3, dict(B=3, D=4, H=5))
    expected = to_numpy(reference.lstm_cell(**inputs))
    got = _returned(_compute("lstm_cell", "tanh_on_output_gate", inputs)).value
    full = {e.key: e for e in mistake_evidence("lstm_cell", inputs, expected, got, 1e-4, 1e-5)}
    assert full["tanh_on_output_gate"].agrees and full["tanh_on_output_gate"].distinct
    c_only = {e.key: e for e in mistake_evidence("lstm_cell", inputs, expected, got, 1e-4, 1e-5, ("c_new",))}
    # c_new is not touched by the output gate: there the mistake is not distinct from correct
    assert not c_only["tanh_on_output_gate"].distinct and c_only["tanh_on_output_gate"].agrees


def test_mistake_message_wording() -> None:
    assert mistake_message("rnn_forward", ()) == ""
    one = mistake_message("rnn_forward", ("bias_missing",))
    assert one == "your output matches `rnn_forward` without the bias `b`"
    two = mistake_message("rnn_forward", ("bias_missing", "h0_ignored"))
    assert two.startswith("your output is consistent with 2 known mistakes, which these inputs cannot tell apart")
    with pytest.raises(KeyError):
        describe("rnn_forward", "no_such_mistake")


@pytest.mark.parametrize("message, shown", [
    ("returned a list of 6 (each a tensor of shape (3, 5) and dtype torch.float32); expected a tensor of shape (6, 3, 5)",
     "returned a list; expected a tensor"),
    ("the returned dict has no 'c'; expected the keys W, U, b, V, c", "the returned dict has no 'c'"),
    ("returned shape (6, 5, 3); expected (6, 3, 5)", "returned a tensor of another shape; expected shape (6, 3, 5)"),
    ("returned dtype torch.int64; expected a floating-point tensor (torch.float32)", "returned dtype torch.int64"),
    ("the returned dict has no 'a secret word'; expected the keys W, U, b, V, c", "another structure"),
    ("returned a C4711 of 3; expected a tensor of shape (4,)", "returned a value; expected a tensor"),
])
def test_a_hidden_cases_structure_is_said_without_what_could_carry_an_input(message: str, shown: str) -> None:
    """Kinds, a dtype name and the contract's keys are said; a returned shape, length, own key
    or made-up type name is not (grader/checks/compare.py, redacted_hidden)."""
    from grader.checks.compare import _hidden_structure
    said = _hidden_structure(message)
    assert shown in said
    for secret in ("(6, 5, 3)", " 6 ", "secret", "C4711", "(3, 5)"):
        assert secret not in said


def test_a_hidden_cases_shape_finding_keeps_the_graders_words_without_the_returned_shape() -> None:
    from grader.checks.compare import _hidden_structure
    said = _hidden_structure("returned shape (9, 7, 1); expected (9, 1, 7): it holds the expected values with an "
                             "extra axis of length 1 (shape (9, 7, 1) where (9, 1, 7) is expected)")
    assert said == ("returned a tensor of another shape; expected shape (9, 1, 7): it holds the expected values "
                    "with an extra axis of length 1")
