"""Tests of grader/checks/probes.py: designed inputs that isolate one term, and the verdicts they give.

Fast tests run the probes in this process against a fake Bridge that calls a Python function
(a catalogued mistake or a student's cell) and hands back what the kernel would: plain float64
arrays. The slow tests grade the fixture notebooks end to end, in the sandboxed kernel.
"""
from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import nbformat
import numpy as np
import pytest
import torch
from builders import GOOD_NAME, quick_context
from make_function_fixtures import EITHER, MISTAKES_DIR, SINGLE_BUG_DIR, SINGLE_BUGS, SingleBug, build_single_bugs

import reference
from grader.checks import probes as P
from grader.checks.bridge import ArrayInfo, Returned
from grader.checks.cases import make_inputs
from grader.checks.compare import compare_case, describe, to_numpy
from grader.checks.mistakes import MISTAKES
from grader.grade import grade_submission
from grader.pages.report import render_report
from grader.rubric import load_rubric

FUNCTIONS = ("rnn_forward", "activation_jacobian", "hidden_grad_norms", "gradient_bound",
             "lstm_cell", "tree_encode", "tbptt_grads")
RUBRIC = load_rubric()
CHECKS = {c.function: c for c in RUBRIC.checks()}


def _kernel_value(v: Any) -> Any:
    """What the kernel's dump and the grader's decode make of a returned value."""
    if isinstance(v, torch.Tensor):
        return ArrayInfo(v.detach().double().numpy(), "tensor", str(v.dtype))
    if isinstance(v, np.ndarray):
        return ArrayInfo(v.astype(np.float64), "ndarray", str(v.dtype))
    if isinstance(v, (tuple, list)):
        return tuple(_kernel_value(x) for x in v)
    if isinstance(v, dict):
        return {k: _kernel_value(x) for k, x in v.items()}
    return v


def _fresh(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.clone()
    if isinstance(v, dict):
        return {k: _fresh(x) for k, x in v.items()}
    return v


class FakeBridge:
    """Calls ``fn`` in this process; ``stop_after`` calls later every call times out; each call
    reports ``seconds`` as the kernel's time."""

    def __init__(self, fn: Callable[..., Any], stop_after: int | None = None, seconds: float = 0.01) -> None:
        self.fn, self.stop_after, self.seconds, self.calls = fn, stop_after, seconds, []

    def call(self, expr: str, args: dict[str, Any], timeout: float) -> Returned:
        self.calls.append((expr, timeout))
        if self.stop_after is not None and len(self.calls) > self.stop_after:
            return Returned("timeout", seconds=timeout)
        try:
            value = _kernel_value(self.fn(**{k: _fresh(v) for k, v in args.items()}))
            return Returned("ok", value, seconds=self.seconds)
        except Exception as exc:  # noqa: BLE001 - as the kernel reports a student's exception
            return Returned("raised", error=f"{type(exc).__name__}: {exc}", seconds=self.seconds)


def _grade(function: str, fn: Callable[..., Any], bridge: FakeBridge | None = None):
    """The hidden cases of ``function`` on ``fn`` in process, then the probe step."""
    check = CHECKS[function]
    bridge = bridge or FakeBridge(fn)
    share = check.points / len(check.cases)
    results = []
    for i, case in enumerate(check.cases, start=1):
        inputs = make_inputs(function, case.seed, case.params)
        expected = to_numpy(getattr(reference, function)(**inputs))
        returned = bridge.call(f"{function}(**__args)", inputs, 1.0)
        results.append(compare_case(function, i, case.describe(), "", inputs, expected, returned,
                                    check.rtol, check.atol, share))
    return P.review(check, results, bridge, RUBRIC.limits.call_timeout), bridge


def _mistake(function: str, key: str) -> Callable[..., Any]:
    (m,) = [m for m in MISTAKES if m.function == function and m.key == key]
    return m.compute


def _cell(bug: SingleBug) -> Callable[..., Any]:
    """The student's cell run here, next to the reference's other functions (as in the notebook)."""
    namespace: dict[str, Any] = {"torch": torch, "activation_jacobian": reference.activation_jacobian,
                                 "rnn_forward": reference.rnn_forward}
    exec(compile(bug.source, f"<{bug.function}>", "exec"), namespace)
    return namespace[bug.function]


def _terms(function: str, activation: str | None = "tanh") -> dict[str, str]:
    return P._terms(function, activation)


def names_the_bug(results, bug: SingleBug) -> bool:
    """The report names the catalogued mistake (alone), or says the bug's term is wrong."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return False
    if bug.mistake:
        description = describe(bug.function, bug.mistake)
        if any(r.mistakes == (description,) for r in failed) and description in failed[0].diagnosis:
            return True
    if bug.term:
        text = {t for a in ("tanh", "sigmoid") for t in [_terms(bug.function, a)[bug.term]]}
        return any(f": {t} is wrong." in failed[0].diagnosis for t in text)
    return False


# ------------------------------------------------------------------------------------------------
# The table


def test_probe_table_is_well_formed() -> None:
    assert {p.function for p in P.PROBES} == set(FUNCTIONS)
    for function in FUNCTIONS:
        probes = P.probes_for(function)
        assert 2 <= len(probes) <= P.MAX_PROBES, function  # the bound on calls per function
        names = [p.name for p in probes]
        assert len(names) == len(set(names)), function
        for p in probes:
            assert p.covers and p.covers <= set(P.TERMS[function]), (function, p.name)
            assert p.setting and not p.setting.endswith("."), p.name
    assert P.probes_for("train_recall") == ()


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_term_can_be_isolated(function: str) -> None:
    """Each term has a probe that covers it, and no two terms are covered by the same probes
    unless one probe set strictly contains the other (then the verdict can still say "one of")."""
    probes = P.probes_for(function)
    for term in P.TERMS[function]:
        assert any(term in p.covers for p in probes), (function, term)


SHAPES = [(c.function, i, case.params) for c in RUBRIC.checks()
          for i, case in enumerate(c.cases + c.public_cases())]


@pytest.mark.parametrize("function,i,params", SHAPES, ids=[f"{f}-{i}" for f, i, _ in SHAPES])
def test_probe_inputs_are_valid_deterministic_and_leave_the_base_alone(function: str, i: int,
                                                                         params: dict) -> None:
    """On every shape of the rubric (any case may be the first to fail) the reference runs on
    every probe, gives finite values, and the same values when drawn again."""
    check = CHECKS[function]
    seed = check.public_seeds[0]

    def draw(**over):
        return make_inputs(function, seed, {**params, **over})

    base = draw()
    snapshot = {k: _fresh(v) for k, v in base.items()}
    for probe in P.probes_for(function):
        a, b = probe.build(base, draw), probe.build(draw(), draw)
        out_a = to_numpy(getattr(reference, function)(**a))
        out_b = to_numpy(getattr(reference, function)(**b))
        flat_a = np.concatenate([np.ravel(v) for v in (out_a.values() if isinstance(out_a, dict) else
                                                       out_a if isinstance(out_a, tuple) else [out_a])])
        flat_b = np.concatenate([np.ravel(v) for v in (out_b.values() if isinstance(out_b, dict) else
                                                       out_b if isinstance(out_b, tuple) else [out_b])])
        assert np.all(np.isfinite(flat_a)), probe.name
        np.testing.assert_array_equal(flat_a, flat_b)
    for k, v in snapshot.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, base[k]), (function, k)


def _draw_lstm(seed: int, params: dict, **over: Any) -> dict:
    return make_inputs("lstm_cell", seed, {**params, **over})


def test_lstm_probes_hold_gates_at_zero_and_never_saturate() -> None:
    """A held gate's pre-activation is exactly 0 (sigmoid 1/2, tanh 0, under a right or a sign-
    flipped sigmoid alike); no gate of any probe is driven into saturation (issue 22)."""
    check = CHECKS["lstm_cell"]
    for case in check.cases:
        draw = partial(_draw_lstm, check.public_seeds[0], case.params)
        for probe in P.probes_for("lstm_cell"):
            i = probe.build(draw(), draw)
            z = i["x"] @ i["W_ih"].T + i["h"] @ i["W_hh"].T + i["b_ih"] + i["b_hh"]
            assert float(z.abs().max()) < 8.0, probe.name  # sigmoid'(8) ~ 3e-4: not saturated


# ------------------------------------------------------------------------------------------------
# Verdicts


def test_correct_function_is_never_probed() -> None:
    results, bridge = _grade("rnn_forward", reference.rnn_forward)
    assert all(r.passed for r in results)
    assert len(bridge.calls) == len(CHECKS["rnn_forward"].cases)
    assert all(not r.probes and not r.diagnosis for r in results)


@pytest.mark.parametrize("key,term,matched,differed", [
    ("no_recurrence", "recur", "`W = 0`", "`U = 0, b = 0`"),
    ("W_transposed", "recur", "`W = 0`", "`U = 0, b = 0`"),
    ("U_transposed", "input", "`U = 0, b = 0`", "`W = 0`"),
    ("bias_missing", "bias", "`U = 0, b = 0`", "`W = 0, U = 0`"),
    ("h0_ignored", "h0", "`h0 = 0, b = 0`", "`U = 0, b = 0` and T = 1"),
    ("state_not_updated", "update", "`U = 0, b = 0` and T = 1", "`h0 = 0, b = 0`"),
])
def test_rnn_probe_verdicts(key: str, term: str, matched: str, differed: str) -> None:
    results, _ = _grade("rnn_forward", _mistake("rnn_forward", key))
    failed = [r for r in results if not r.passed]
    diagnosis = failed[0].diagnosis
    head, _, tail = diagnosis.partition(" it does not")
    assert head.startswith("With ") and matched in head.split("; with ")[0], diagnosis
    assert differed in head.split("; with ")[1], diagnosis
    assert tail.startswith(f": {_terms('rnn_forward')[term]} is wrong."), diagnosis
    outcomes = {p["setting"]: p["outcome"] for p in failed[0].probes}
    assert outcomes[matched] == "matches" and outcomes[differed] == "differs"


def test_the_briefs_example_sentence() -> None:
    results, _ = _grade("rnn_forward", _mistake("rnn_forward", "no_recurrence"))
    diagnosis = [r for r in results if not r.passed][0].diagnosis
    assert diagnosis.startswith("With `W = 0`")
    assert "your output matches the reference; with `U = 0, b = 0`" in diagnosis
    assert "it does not: the recurrence term `W h_{t-1}` is wrong." in diagnosis


@pytest.mark.parametrize("function,key,term", [
    ("activation_jacobian", "activation_ignored", "d"),
    ("hidden_grad_norms", "activation_ignored", "act"),
    ("gradient_bound", "W_frobenius", "wnorm"),
    ("gradient_bound", "exponent_plus_one", "exponent"),
    ("gradient_bound", "J_index_shifted", "jprod"),
    ("lstm_cell", "b_hh_dropped", "bias"),
    ("tree_encode", "children_swapped", "order"),
    ("tree_encode", "read_as_sequence", "nesting"),
    ("tree_encode", "bias_missing", "bias"),
    ("tbptt_grads", "window_one_longer", "trunc"),
    ("tbptt_grads", "loss_every_step", "forward"),
    ("tbptt_grads", "softmax_twice", "loss"),
])
def test_probe_verdicts_name_the_term(function: str, key: str, term: str) -> None:
    results, _ = _grade(function, _mistake(function, key))
    failed = [r for r in results if not r.passed]
    activation = CHECKS[function].cases[failed[0].index - 1].params.get("activation")
    expected = _terms(function, activation)[term]
    # A term no probe tells apart from another (the Jacobians of the bound's product and how the
    # product accumulates into r) is stated as "one of these", with the other beside it.
    alone = f": {expected} is wrong."
    hedge = re.search(r"one of these is wrong: (.*?)\.(?: |$)", failed[0].diagnosis)
    assert alone in failed[0].diagnosis or (hedge and expected in hedge.group(1)), \
        failed[0].diagnosis


@pytest.mark.parametrize("key,terms", [("tanh_on_output_gate", ("o", "out")),
                                       ("h_without_tanh", ("o", "out"))])
def test_output_side_lstm_mistakes_are_named_and_hedged_between_o_and_out(key: str, terms: tuple) -> None:
    """o and tanh(c_new) always meet in h_new: without saturating probes none tells them apart,
    so the probes say "one of these" and the catalogue names the mistake."""
    results, _ = _grade("lstm_cell", _mistake("lstm_cell", key))
    failed = [r for r in results if not r.passed]
    t = _terms("lstm_cell")
    assert f"one of these is wrong: {t[terms[0]]}; {t[terms[1]]}." in failed[0].diagnosis
    assert failed[0].mistakes == (describe("lstm_cell", key),)


def test_several_wrong_terms_are_never_claimed_beyond_the_evidence() -> None:
    # gates read as i, f, o, g: the catalogue names it; the probes hedge among terms that differ
    results, _ = _grade("lstm_cell", _mistake("lstm_cell", "gates_ifog"))
    failed = [r for r in results if not r.passed]
    assert failed[0].mistakes == (describe("lstm_cell", "gates_ifog"),)
    assert " is wrong: " not in failed[0].diagnosis.replace("one of these is wrong: ", "")
    # torch.norm for both norms of the bound: J's norm is pinned by the symmetric rank-1 W (on
    # which W's norms agree); the catalogue names both
    results, _ = _grade("gradient_bound", _mistake("gradient_bound", "all_frobenius"))
    failed = [r for r in results if not r.passed]
    t = _terms("gradient_bound")
    assert f": {t['jnorm']} is wrong." in failed[0].diagnosis, failed[0].diagnosis
    assert failed[0].mistakes == (describe("gradient_bound", "all_frobenius"),)


def _run(name: str, outcome: str) -> P.ProbeRun:
    (probe,) = [p for p in P.probes_for("rnn_forward") if p.name == name]
    return P.ProbeRun(probe, outcome)


def test_verdict_set_algebra() -> None:
    t = _terms("rnn_forward")
    assert P.verdict("rnn_forward", [_run("input_path", "matches")]) == ("", ())
    text, keys = P.verdict("rnn_forward", [_run("input_path", "matches"), _run("recurrence", "differs"),
                                           _run("first_step", "matches")])
    assert keys == ("update",) and text.endswith(f": {t['update']} is wrong.")
    # one differing probe, nothing cleared: every term its output depends on may be the one,
    # the zeroed input term and recurrence too (a broken one can still change the output)
    text, keys = P.verdict("rnn_forward", [_run("bias_only", "differs")])
    assert keys == ("act", "input", "bias", "recur", "out") and "one of these is wrong" in text
    assert text.startswith("With every probe (`W = 0, U = 0`) your output differs")
    # a differing probe whose every term was cleared elsewhere: the terms combine wrongly
    text, keys = P.verdict("rnn_forward", [_run("zero_start", "matches"), _run("bias_only", "matches"),
                                           _run("input_path", "differs")])
    assert keys == () and "how the terms combine" in text
    # a raise counts as a difference (the zeroed recurrence is covered by `W = 0, U = 0`, and not
    # cleared by `W = 0`)
    assert P.verdict("rnn_forward", [_run("bias_only", "raised"), _run("input_path", "matches")])[1] == ("recur",)


def test_probes_give_no_points_and_leave_passing_cases_alone() -> None:
    fn = _mistake("rnn_forward", "activation_ignored")  # fails only the sigmoid cases
    results, _ = _grade("rnn_forward", fn)
    assert [r.passed for r in results] == [True, True, False, False]
    for r in results:
        assert r.points == (r.max_points if r.passed else 0.0)
        assert bool(r.probes) == (not r.passed)


def test_probing_is_bounded_and_stops_after_a_timeout() -> None:
    n = len(CHECKS["tree_encode"].cases)
    fn = _mistake("tree_encode", "children_swapped")
    results, bridge = _grade("tree_encode", fn, FakeBridge(fn, stop_after=n + 2))
    assert len(bridge.calls) == n + 3  # two probes ran, the third timed out, no fourth was tried
    probes = [r for r in results if not r.passed][0].probes
    assert [p["outcome"] for p in probes][-1] == "stopped" and len(probes) == 3
    assert all(t == RUBRIC.limits.call_timeout for _, t in bridge.calls[n:])
    _, bridge = _grade("lstm_cell", _mistake("lstm_cell", "gates_ifog"))
    assert len(bridge.calls) <= len(CHECKS["lstm_cell"].cases) + P.MAX_PROBES


def test_no_probing_after_a_hidden_case_hung() -> None:
    fn = _mistake("rnn_forward", "bias_missing")
    results, bridge = _grade("rnn_forward", fn, FakeBridge(fn, stop_after=1))
    assert len(bridge.calls) == len(CHECKS["rnn_forward"].cases)
    assert all(not r.probes for r in results)


def test_no_probing_when_nothing_came_back_of_the_right_kind() -> None:
    def raises(**kw):
        raise ValueError("not yet")

    results, bridge = _grade("lstm_cell", raises)
    assert len(bridge.calls) == len(CHECKS["lstm_cell"].cases)
    assert all(not r.probes for r in results)


def test_a_probe_that_raises_counts_as_differing_and_says_so() -> None:
    def fails_on_one_step(x, y, params, k):
        if x.shape[0] == 1:
            raise IndexError("needs two steps")
        return _mistake("tbptt_grads", "window_one_longer")(x, y, params, k)

    results, _ = _grade("tbptt_grads", fails_on_one_step)
    probes = [r for r in results if not r.passed][0].probes
    first = probes[0]
    assert first["outcome"] == "raised" and "IndexError: needs two steps" in first["text"]


def test_probe_inputs_come_from_a_public_seed() -> None:
    seen: list[dict] = []
    fn = _mistake("rnn_forward", "h0_ignored")

    class Recording(FakeBridge):
        def call(self, expr, args, timeout):
            seen.append(args)
            return super().call(expr, args, timeout)

    _grade("rnn_forward", fn, Recording(fn))
    check = CHECKS["rnn_forward"]
    probe_args = seen[len(check.cases):]
    assert probe_args
    # every hidden case's x is absent from the probes' inputs
    hidden = [make_inputs("rnn_forward", c.seed, c.params)["x"] for c in check.cases]
    for args in probe_args:
        assert not any(args["x"].shape == h.shape and torch.equal(args["x"], h) for h in hidden)
    public = make_inputs("rnn_forward", check.public_seeds[0], check.cases[0].params)
    assert any(torch.equal(args["x"], public["x"]) for args in probe_args)


# ------------------------------------------------------------------------------------------------
# Honest attribution across cases and probes


def test_missing_recurrence_is_not_called_h0_ignored() -> None:
    results, _ = _grade("rnn_forward", _mistake("rnn_forward", "no_recurrence"))
    t1 = [r for r in results if "T=1" in r.params][0]
    assert {e.key for e in t1.evidence if e.agrees} >= {"no_recurrence", "h0_ignored"}  # at T = 1 both fit
    for r in results:
        assert "h0" not in " ".join(r.mistakes)
        assert r.mistakes == (describe("rnn_forward", "no_recurrence"),), r.message


def test_swapped_axes_at_batch_one_are_reported_as_either() -> None:
    """At B = 1 swapped time and batch axes equal "the state is never updated"; a student whose
    function only runs at B = 1 is told both, not one of them flatly."""
    def swapped(x, h0, W, U, b, activation="tanh"):
        if x.shape[1] != 1:
            raise RuntimeError("shapes cannot be multiplied")
        return _mistake("rnn_forward", "time_batch_swapped")(x, h0, W, U, b, activation)

    results, _ = _grade("rnn_forward", swapped)
    b1 = [r for r in results if "B=1" in r.params][0]
    assert not b1.passed and b1.mistakes == ()
    assert set(b1.consistent_with) == {describe("rnn_forward", "state_not_updated"),
                                       describe("rnn_forward", "time_batch_swapped")}
    assert b1.message.startswith("your output is consistent with 2 known mistakes")
    assert "consistent with 2 known mistakes" in b1.diagnosis


def test_state_not_updated_is_named_once_a_case_tells_it_apart() -> None:
    results, _ = _grade("rnn_forward", _mistake("rnn_forward", "state_not_updated"))
    failed = [r for r in results if not r.passed]
    named = [r for r in failed if r.mistakes == (describe("rnn_forward", "state_not_updated"),)]
    assert named, [r.message for r in failed]


# ------------------------------------------------------------------------------------------------
# The twelve single-bug notebooks, in process (fast) and graded (slow)


def test_single_bug_set_covers_every_function() -> None:
    assert len(SINGLE_BUGS) == 12
    assert {b.function for b in SINGLE_BUGS.values()} == set(FUNCTIONS)
    for name, bug in SINGLE_BUGS.items():
        assert bug.mistake or bug.term, name
        if bug.mistake:
            describe(bug.function, bug.mistake)
        if bug.term:
            assert bug.term in P.TERMS[bug.function], name
    catalogued = sum(bool(b.mistake) for b in SINGLE_BUGS.values())
    assert 0 < catalogued < 12  # some are found only by the probes


def _in_process_rate() -> tuple[int, dict[str, str]]:
    named, misses = 0, {}
    for name, bug in SINGLE_BUGS.items():
        results, _ = _grade(bug.function, _cell(bug))
        assert not all(r.passed for r in results), name
        if names_the_bug(results, bug):
            named += 1
        else:
            misses[name] = [r for r in results if not r.passed][0].diagnosis
    return named, misses


def test_single_bugs_named_in_process() -> None:
    named, misses = _in_process_rate()
    assert named >= 10, misses


def test_single_bug_fixtures_are_up_to_date() -> None:
    built = build_single_bugs()
    assert set(SINGLE_BUG_DIR.glob("*.ipynb")) == set(built), "run: python tests/make_function_fixtures.py"
    for path, nb in built.items():
        on_disk = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        for cell in on_disk.cells + nb.cells:
            cell.pop("id", None)
        assert on_disk == nb, f"{path.name} is stale; run: python tests/make_function_fixtures.py"


@pytest.fixture(scope="module")
def graded_bugs(tmp_path_factory: pytest.TempPathFactory):
    """name -> SubmissionResult, each fixture graded at most once per module, when first asked."""
    ctx = quick_context()
    paths = {**{n: SINGLE_BUG_DIR / f"{n}.ipynb" for n in SINGLE_BUGS},
             **{n: MISTAKES_DIR / f"{n}.ipynb" for n in EITHER}}
    cache: dict[str, Any] = {}

    def grade(name: str):
        if name not in cache:
            target = tmp_path_factory.mktemp(name) / f"{GOOD_NAME}.ipynb"
            shutil.copyfile(paths[name], target)
            cache[name] = grade_submission(target, ctx)
        return cache[name]

    return grade


@pytest.mark.slow
def test_at_least_ten_of_twelve_single_bug_reports_name_the_bug(graded_bugs) -> None:
    named, lines = 0, []
    for name, bug in SINGLE_BUGS.items():
        result = graded_bugs(name)
        assert result.status == "graded", (name, result.message, result.tutor_detail)
        cases = [c for c in result.questions[bug.question].cases if c.function == bug.function]
        ok = names_the_bug(cases, bug)
        named += ok
        failed = [c for c in cases if not c.passed]
        lines.append(f"{'NAMED ' if ok else 'missed'} {name}: {failed[0].diagnosis if failed else 'passed'}")
    print(f"\nsingle-bug notebooks whose report names the bug or the wrong term: {named} of 12")
    print("\n".join(lines))
    assert named >= 10, "\n".join(lines)


@pytest.mark.slow
def test_probe_findings_reach_result_json_and_the_report(graded_bugs) -> None:
    result = graded_bugs("rnn_input_sign")
    data = result.to_json()
    checks = data["questions"]["11.4.a"]["checks"]
    failed = [c for c in checks if not c["passed"]]
    assert failed and all("probes" in c and "diagnosis" in c for c in failed)
    for c in failed:  # contract §6 keys kept
        assert {"name", "passed", "points", "max_points", "message"} <= set(c)
        assert {p["outcome"] for p in c["probes"]} <= {"matches", "close", "differs", "raised", "stopped"}
    assert all("probes" not in c for c in checks if c["passed"])
    assert "the input term `U x_t` is wrong" in failed[0]["diagnosis"]
    html = render_report(result)
    assert "What the probes found" in html
    assert "the input term <code>U x_t</code> is wrong" in html or "the input term `U x_t` is wrong" in html
    assert "<script" not in html


def test_a_grader_error_while_probing_costs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug in a probe")

    monkeypatch.setattr(P, "run_probes", broken)
    results, _ = _grade("rnn_forward", _mistake("rnn_forward", "no_recurrence"))
    failed = [r for r in results if not r.passed]
    assert failed and all(r.points == 0 for r in failed) and all(r.diagnosis == "" for r in failed)
    assert failed[0].probes == ({"outcome": "grader_error",
                                 "text": "probing failed in the grader: ZeroDivisionError: a bug in a probe"},)
    # each case's own finding still stands (at T = 1 it cannot tell the two causes apart)
    for r in failed:
        assert r.mistakes == (describe("rnn_forward", "no_recurrence"),) or len(r.consistent_with) == 2


def test_results_that_are_not_the_rubrics_cases_are_left_alone() -> None:
    """Another grading step may add a result of its own (a rule, a renamed case): it is no
    observation of the function, changes nothing in the findings, and breaks nothing."""
    fn = _mistake("rnn_forward", "bias_missing")
    results, _ = _grade("rnn_forward", fn)
    extra = replace(results[0], index=99, params="a rule of its own", probes=(), diagnosis="")
    check = CHECKS["rnn_forward"]
    again = P.review(check, [*results, extra], FakeBridge(fn), 1.0)
    assert again[-1].index == 99 and again[:-1] == P.review(check, results, FakeBridge(fn), 1.0)


@pytest.mark.slow
def test_swapped_axes_notebook_is_reported_as_either(graded_bugs) -> None:
    result = graded_bugs("rnn_time_batch_swapped")
    assert result.status == "graded", result.tutor_detail
    cases = [c for c in result.questions["11.4.a"].cases if c.function == "rnn_forward"]
    b1 = [c for c in cases if "B=1" in c.params]
    assert b1 and all(not c.passed and c.mistakes == () for c in b1)
    both = {describe("rnn_forward", "state_not_updated"), describe("rnn_forward", "time_batch_swapped")}
    assert all(set(c.consistent_with) == both for c in b1), [c.message for c in b1]
    assert all(c.message.startswith("your output is consistent with 2 known mistakes") for c in b1)
    # Neither mistake is named (the inputs cannot tell them apart); a located term is stated only
    # when the probes pin it (grader/checks/probes.py), so here either the update or nothing
    t = _terms("rnn_forward")
    assert b1[0].diagnosis in ("",) or f": {t['update']} is wrong." in b1[0].diagnosis, b1[0].diagnosis
    others = [c for c in cases if "B=1" not in c.params]  # they raise or return a wrong shape
    assert others and all(not c.passed and not c.wrong_values for c in others), [c.message for c in others]


def test_a_slow_function_is_probed_within_one_call_timeout_in_total() -> None:
    timeout = RUBRIC.limits.call_timeout
    fn = _mistake("rnn_forward", "no_recurrence")
    n = len(CHECKS["rnn_forward"].cases)
    results, bridge = _grade("rnn_forward", fn, FakeBridge(fn, seconds=0.4 * timeout))
    probes = [r for r in results if not r.passed][0].probes
    assert len(bridge.calls) == n + 3  # 0.4 + 0.4 < 1 <= 1.2: the fourth probe is not tried
    assert [p["outcome"] for p in probes].count("skipped") == len(P.probes_for("rnn_forward")) - 3
    assert all(p["outcome"] != "skipped" for p in probes[:3])
