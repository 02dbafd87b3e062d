"""Diagnoses that generalise and are verified before they are shown (issue 22, item 2).

The named-or-located rate and the misleading count on the single-bug set and the third unseen
set (tests/diagnosis_rate.py), and unit tests of the pieces: the slice/transposition matcher,
mistakes named for one setting, verified term locations, tight clearing.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diagnosis_rate import measure
from make_unseen3_fixtures import UNSEEN3, UNSEEN3_DIR, build
from test_probes import _grade, _mistake

from grader.checks import probes as P
from grader.checks.bridge import ArrayInfo
from grader.checks.compare import attribute, attribute_by_setting, structural_finding
from grader.result import Evidence


def _a(x: np.ndarray) -> ArrayInfo:
    return ArrayInfo(np.asarray(x, dtype=np.float64), "tensor", "torch.float32")


def test_unseen3_fixtures_are_up_to_date() -> None:
    built = build()
    assert set(UNSEEN3_DIR.glob("*.ipynb")) == set(built), "run: python tests/make_unseen3_fixtures.py"
    stale = [p.name for p, text in built.items() if p.read_text(encoding="utf-8") != text]
    assert not stale, f"run: python tests/make_unseen3_fixtures.py ({stale})"
    assert len(UNSEEN3) >= 12


def test_every_bug_is_named_or_located_and_nothing_misleads() -> None:
    """Measured in process with the grading code (before issue 22's item 2: unseen3 2 of 14,
    5 misleading; single-bug set 12 of 12)."""
    totals = measure(verbose=False)
    assert totals["single_bug"] == (12, 0, 12), totals
    good, bad, n = totals["unseen3"]
    assert bad == 0 and good == n, totals


# ---------------------------------------------------------------------------------------- (c)

E = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4) / 7 - 1


@pytest.mark.parametrize("got,words", [
    (E[-1], "only the last step came back"),
    (E[0], "only the first step came back"),
    (E.transpose(1, 0, 2), "(B, T, H) order where (T, B, H) is expected"),
    (E[None], "an extra axis of length 1"),
    (E[::-1], "reverse order along the first axis"),
    (2.5 * E, "times the same factor 2.5"),
])
def test_a_slice_or_layout_of_the_expected_result_is_named(got: np.ndarray, words: str) -> None:
    assert words in structural_finding("rnn_forward", E, _a(got), 1e-4, 1e-5)


def test_no_layout_finding_for_unrelated_values() -> None:
    rng = np.random.default_rng(0)
    assert structural_finding("rnn_forward", E, _a(rng.normal(size=E.shape)), 1e-4, 1e-5) == ""
    assert structural_finding("rnn_forward", E, _a(rng.normal(size=(3, 4))), 1e-4, 1e-5) == ""


def test_pairs_in_the_wrong_order_and_transposed_gradients_are_named() -> None:
    h, c = E[0], E[1]
    assert "(c_new, h_new)" in structural_finding("lstm_cell", (h, c), (_a(c), _a(h)), 1e-4, 1e-5)
    grads = {"W": E[0, :, :3], "V": E[1]}
    got = {"W": _a(grads["W"]), "V": _a(grads["V"].T)}
    assert structural_finding("tbptt_grads", grads, got, 1e-4, 1e-5) == "V: it is the expected matrix transposed"


# ---------------------------------------------------------------------------------------- (a)

def _ev(key: str, agrees: bool, distinct: bool, act: str) -> Evidence:
    return Evidence(key, distinct, agrees, {"activation": f"the {act} case"})


def test_a_mistake_explaining_one_setting_is_named_for_it() -> None:
    obs = [((_ev("value", True, True, "sigmoid"),), True),
           ((_ev("value", False, True, "tanh"),), False)]
    assert attribute(obs) == ()
    assert attribute_by_setting(obs) == (("value", "the sigmoid case"),)
    # a failure outside the setting: the mistake does not explain the function's output
    obs.append(((_ev("value", False, True, "tanh"),), True))
    assert attribute_by_setting(obs) == ()


def test_the_sigmoid_branch_bug_is_named_in_the_sigmoid_case() -> None:
    def jac(z, activation="tanh"):
        d = 1 - torch.tanh(z) ** 2 if activation == "tanh" else torch.sigmoid(z)
        return torch.diag(d)

    results, _ = _grade("activation_jacobian", jac)
    failed = [r for r in results if not r.passed]
    assert failed and all("sigmoid" in r.params for r in failed)
    assert failed[0].message.startswith("in the sigmoid case your output matches `activation_jacobian` "
                                        "with the activation's value act(z)")


# ---------------------------------------------------------------------------------------- (e)

def _run(function: str, name: str, outcome: str) -> P.ProbeRun:
    (probe,) = [p for p in P.probes_for(function) if p.name == name]
    return P.ProbeRun(probe, outcome)


def test_an_unpinned_term_is_not_stated() -> None:
    """Every probe differs: the intersection of their terms is no evidence (an rnn_forward that
    never applies the activation was told "which states are returned is wrong")."""
    runs = [_run("rnn_forward", p.name, "differs") for p in P.probes_for("rnn_forward")]
    text, keys = P.verdict("rnn_forward", runs)
    assert keys == () and "could not be located" in text


def test_a_close_probe_neither_clears_nor_differs() -> None:
    runs = [_run("rnn_forward", "input_path", "close"), _run("rnn_forward", "recurrence", "differs"),
            _run("rnn_forward", "zero_start", "matches")]
    text, keys = P.verdict("rnn_forward", runs)
    assert keys == ("h0",), text  # input_path's terms were not cleared by a near match


def test_a_loose_match_does_not_clear_a_term() -> None:
    """gradient_bound with J from h: within the check's rtol on some probe, but not tight."""
    results, _ = _grade("gradient_bound", _mistake("gradient_bound", "J_of_h"))
    failed = [r for r in results if not r.passed]
    for p in failed[0].probes:
        if p["outcome"] == "matches":
            assert "jprod" not in p["exercises"] and "J_{k+1}" not in p["exercises"], p


def test_a_mistake_that_does_not_apply_where_the_student_failed_is_not_named() -> None:
    """Where a mistake does not apply it computes the reference's output: it cannot explain a
    failure there, so it is not named for the whole function."""
    obs = [((Evidence("m", True, True),), True), ((Evidence("m", False, False),), True)]
    assert attribute(obs) == ()
