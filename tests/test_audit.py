"""The mutation audit (grader/tutors/audit.py, `grade audit`): mutants made by operator rules from the
reference's source, graded in process with the grader's own code.

A fixed, small sample runs here (fast); the full audit's figures are in docs/guides/diagnoses.md.
The counting logic is shown to fail: a rubric weakened on purpose lets a planted mutant survive,
and the audit reports it, refuses the rubric and names a case that catches it.
"""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import reference
from grader.checks.bridge import ArrayInfo
from grader.checks.compare import structural_finding
from grader.checks.secret import load_secret
from grader.cli.main import main
from grader.result import CaseResult
from grader.rubric import Rubric, load_rubric
from grader.tutors import audit

RUBRIC = load_rubric()


@pytest.fixture(scope="module")
def mutants() -> list[audit.Mutant]:
    return audit.all_mutants()


def test_mutants_come_from_operator_rules_over_all_functions(mutants: list[audit.Mutant]) -> None:
    assert len(mutants) >= 150
    assert {m.function for m in mutants} == set(audit.FUNCTIONS)
    assert {m.operator for m in mutants} == set(audit.OPERATORS)
    assert len({m.program for m in mutants}) == len(mutants)  # no two the same program
    for function in audit.FUNCTIONS:
        original = ast.unparse(audit._program_tree(function))
        assert all(m.program != original for m in mutants if m.function == function)


def test_a_mutant_is_a_real_function_and_its_program_stands_alone() -> None:
    (m,) = [m for m in audit.generate("lstm_cell") if m.change == "`(h_new, c_new)` -> `(c_new, h_new)`"]
    assert "reference" not in m.program  # the notebook cell of the pipeline sample needs no package
    fn = m.compile()
    args = [torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4), torch.randn(16, 3),
            torch.randn(16, 4), torch.randn(16), torch.randn(16)]
    h, c = reference.lstm_cell(*args)
    got = fn(*args)
    assert torch.equal(got[0], c) and torch.equal(got[1], h)


def test_a_fixed_sample_is_killed_and_mostly_named(mutants: list[audit.Mutant]) -> None:
    picked = audit.sample(mutants, 2, seed=0)
    assert len(picked) == 2 * len(audit.FUNCTIONS)
    report = audit.audit(RUBRIC, load_secret(), picked, draws=12)
    assert not report.refused, report.refusals()
    assert report.killed_rate == 1.0
    counts = report.counts()
    assert sum(row["mutants"] for row in counts.values()) == len(picked)
    for v in report.verdicts:
        assert v.equivalent or v.killed
        assert v.kind != "none" or not v.killed


def _weakened(rubric: Rubric, function: str, activation: str) -> Rubric:
    """The rubric with ``function``'s hidden cases cut to one activation (a rubric a mutant of
    the other activation's branch survives)."""
    questions = {}
    for qid, q in rubric.questions.items():
        checks = tuple(dataclasses.replace(c, cases=tuple(k for k in c.cases if k.params.get("activation") == activation))
                       if c.function == function else c for c in q.checks)
        questions[qid] = dataclasses.replace(q, checks=checks)
    return dataclasses.replace(rubric, questions=questions)


def test_a_planted_survivor_is_reported_and_the_rubric_refused() -> None:
    """The counting can fail: with the sigmoid cases cut from the rubric, a mutant whose sigmoid
    branch computes tanh keeps full points. The audit names it and a sigmoid case that catches it;
    the real rubric kills the same mutant."""
    (m,) = [m for m in audit.generate("rnn_forward")
            if m.where.startswith("activation,") and m.change == "`torch.sigmoid` -> `torch.tanh`"]
    weak = audit.audit(_weakened(RUBRIC, "rnn_forward", "tanh"), load_secret(), [m], draws=12)
    assert weak.refused and weak.survivors[0].mutant is m
    assert weak.killed_rate == 0.0
    (line,) = weak.refusals()
    assert m.ident in line and 'activation = "sigmoid"' in line and "seed = " in line
    real = audit.audit(RUBRIC, load_secret(), [m], draws=12)
    assert not real.refused and real.verdicts[0].killed and real.verdicts[0].named_or_located


def test_an_equivalent_mutant_is_listed_with_its_reason() -> None:
    (m,) = [m for m in audit.generate("lstm_cell") if m.change == "`(b_ih, b_hh)` -> `(b_hh, b_ih)`"]
    report = audit.audit(RUBRIC, load_secret(), [m], draws=12)
    (v,) = report.verdicts
    assert v.equivalent and not v.killed and not report.refused
    assert "agrees with the reference on 12 random inputs" in v.reason


def test_a_mutant_that_changes_an_input_in_place_breaks_the_contract_rule() -> None:
    (m,) = [m for m in audit.generate("lstm_cell") if m.operator == "in_place" and "c.mul_" in m.change]
    (v,) = audit.audit(RUBRIC, load_secret(), [m], draws=12).verdicts
    assert v.difference is not None and v.difference.why == "it changes an input in place"
    assert v.killed and v.kind == "contract"


def _case(**kw: object) -> CaseResult:
    base: dict[str, object] = dict(function="rnn_forward", index=1, params="", shapes="", passed=False,
                                   points=0.0, max_points=0.25, call_status="ok", expected="x")
    return CaseResult(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize("case,kind", [
    (_case(mistakes=("without the bias `b`",), message="your output matches ..."), "named"),
    (_case(message="in the sigmoid case your output matches `rnn_forward` ..."), "setting"),
    (_case(structure="it equals the last step alone", message="returned shape"), "layout"),
    (_case(diagnosis="With `W = 0` your output matches the reference; with `U = 0, b = 0` it does not: "
                     "the recurrence term `W h_{t-1}` is wrong."), "located"),
    (_case(diagnosis="With every probe (a) your output differs from the reference: the wrong part could "
                     "not be located (no single term ...)."), "unlocated"),
    (_case(call_status="raised", message="`rnn_forward` raised IndexError: ...", expected=""), "error"),
    (_case(message='`rnn_forward` breaks the rule "a function leaves its arguments as it found them": ...'),
     "contract"),
])
def test_the_finding_kind_reads_the_report_words(case: CaseResult, kind: str) -> None:
    assert audit.finding_kind([case])[0] == kind
    assert audit.finding_kind([dataclasses.replace(case, passed=True)])[0] == "none"


def test_grade_audit_prints_the_table_and_exits_0_for_the_rubric() -> None:
    result = CliRunner().invoke(main, ["audit", "--function", "activation_jacobian", "--sample", "3"])
    assert result.exit_code == 0, result.output
    assert "activation_jacobian" in result.output and "killed 3" in result.output.replace("killed 3 (", "killed 3")


def test_grade_audit_refuses_a_rubric_a_mutant_survives(tmp_path: Path) -> None:
    text = Path(RUBRIC.path).read_text(encoding="utf-8")
    # activation_jacobian's hidden cases cut to the tanh one: its sigmoid branch goes unchecked
    weak = text.replace('  { seed = 804223, H = 4, activation = "sigmoid" },\n', "")
    assert weak != text
    path = tmp_path / "weak.toml"
    path.write_text(weak, encoding="utf-8")
    result = CliRunner().invoke(main, ["audit", "--function", "activation_jacobian", "--rubric", str(path)])
    assert result.exit_code == 1, result.output
    assert "Refused" in result.output and 'activation = "sigmoid"' in result.output


def test_an_unknown_function_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["audit", "--function", "train_recall"])
    assert result.exit_code == 2 and "is not one of" in result.output


# ---------------------------------------------------------------------------- diagnoses it drove

E = np.arange(6 * 2 * 3, dtype=np.float64).reshape(6, 2, 3) / 7 - 1


def _a(x: np.ndarray) -> ArrayInfo:
    return ArrayInfo(np.asarray(x, dtype=np.float64), "tensor", "torch.float32")


@pytest.mark.parametrize("function,exp,got,words", [
    ("rnn_forward", E, E[:5], "the first 5 of the 6 expected steps: the loop over time stops early"),
    ("rnn_forward", E, E[2:], "the last 4 of the 6 expected steps"),
    ("rnn_forward", E, E[:0], "empty along the first axis (time)"),
    ("rnn_forward", E, E[:3] + 1, "3 entries along the first axis (time) where 6 are expected"),
    ("gradient_bound", E[:, 0, 0], np.float64(E[-1, 0, 0]), "the last entry alone"),
    ("hidden_grad_norms", E[:, 0, 0], E[:7, 0, 0][:4], "the first 4 of the 6 expected steps"),
])
def test_a_wrong_number_of_time_steps_is_a_layout_finding(function: str, exp: np.ndarray, got: np.ndarray,
                                                          words: str) -> None:
    assert words in structural_finding(function, exp, _a(got), 1e-4, 1e-5)


def test_no_step_count_finding_for_a_function_without_a_time_axis() -> None:
    assert structural_finding("tree_encode", E[:, 0, 0], _a(E[:3, 0, 0] + 1), 1e-4, 1e-5) == ""


def test_a_wrong_input_term_in_a_gradient_function_is_located() -> None:
    """hidden_grad_norms whose forward pass forgets the bias: the T = 1 linear-loss probe clears
    the loss term, W = 0 does not match, and only the input term explains every probe."""
    from test_probes import _grade

    def norms(x, h0, W, U, b, loss_fn, activation="tanh"):
        act = torch.tanh if activation == "tanh" else torch.sigmoid
        h = h0.clone().requires_grad_(True)
        hs = []
        for t in range(x.shape[0]):
            h = act(h @ W.T + x[t] @ U.T)  # the bias is missing
            hs.append(h)
        grads = torch.autograd.grad(loss_fn(hs[-1]), hs)
        return torch.stack([g.norm() for g in grads]).detach()

    results, _ = _grade("hidden_grad_norms", norms)
    failed = [r for r in results if not r.passed]
    assert failed and ": the input term U x_t + b of the forward pass" in failed[0].diagnosis, failed[0].diagnosis


@pytest.mark.slow
def test_the_pipeline_agrees_with_the_in_process_audit(tmp_path: Path) -> None:
    """Two mutants through grade_submission in a kernel: the same points and the same kind of
    finding as in process."""
    from builders import quick_context
    picked = [m for m in audit.generate("lstm_cell") if m.change == "`(h_new, c_new)` -> `(c_new, h_new)`"]
    picked += [m for m in audit.generate("rnn_forward") if m.change == "`range(x.shape[0])` -> `range(x.shape[0] - 1)`"]
    assert len(picked) == 2
    report = audit.audit(RUBRIC, load_secret(), picked, draws=12)
    agreements = audit.pipeline_sample(picked, {v.mutant.ident: v for v in report.verdicts}, quick_context(),
                                       tmp_path)
    assert [a.pipeline[1] for a in agreements] == ["layout", "layout"]
    assert all(a.agrees for a in agreements), agreements


def test_a_claim_is_checked_against_the_mutants_change() -> None:
    from grader.tutors.audit_claims import claimed_terms, touched_terms
    by_change = {m.change: m for m in audit.generate("rnn_forward")}
    dropped_input = by_change["`x @ U.T + b` -> `b` (the term `x @ U.T` dropped)"]
    assert touched_terms(dropped_input) == {"input"}
    dropped_bias = by_change["`x @ U.T + b` -> `x @ U.T` (the term `b` dropped)"]
    assert touched_terms(dropped_bias) == {"bias"}
    text = ("With `W = 0` your output matches the reference; with `U = 0, b = 0` it does not: "
            "the bias term `b` is wrong.")
    assert claimed_terms("rnn_forward", text) == ("bias",)


def test_a_raise_on_the_changed_line_is_located_and_counted_right() -> None:
    (m,) = [m for m in audit.generate("rnn_forward") if m.change == "`x` -> `x.T` in `x @ U.T`"]
    (v,) = audit.audit(RUBRIC, load_secret(), [m], draws=4).verdicts
    assert v.kind == "raised_line" and v.claim_right is True and v.named_or_located
    assert f"line {m.line} of your cell" in v.text
