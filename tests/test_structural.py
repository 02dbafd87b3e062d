"""Tests of grader/checks/structural.py: every finding for one array, and which one is said when
several fit (the order of the module's list), in the grader's exact words."""
from __future__ import annotations

import numpy as np
import pytest

from grader.checks.bridge import ArrayInfo
from grader.checks.compare import structural_finding as front_door
from grader.checks.structural import SCALED, structural_finding

RTOL, ATOL = 1e-5, 1e-6
E = np.arange(1.0, 25.0).reshape(2, 3, 4)  # (T, B, H) of rnn_forward
V = np.array([1.0, 2.0, 3.0])              # one entry per step (hidden_grad_norms)
M = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def _finding(function: str, expected: np.ndarray, got: np.ndarray) -> str:
    return structural_finding(function, expected, ArrayInfo(got, "tensor", "torch.float32"), RTOL, ATOL)


# (scenario, function, expected, returned, the finding said)
ROWS = [
    ("single_number_last", "hidden_grad_norms", V, np.array(3.0),
     "it equals the last entry alone: a single number came back, where all 3 entries were expected"),
    ("single_number_first", "hidden_grad_norms", V, np.array(1.0),
     "it equals the first entry alone: a single number came back, where all 3 entries were expected"),
    ("no_steps", "hidden_grad_norms", V, np.zeros(0),
     "it is empty along the first axis (time), where 3 steps are expected"),
    ("first_steps", "hidden_grad_norms", V, V[:2],
     "it equals the first 2 of the 3 expected steps: the loop over time stops early"),
    ("last_steps", "hidden_grad_norms", V, V[1:],
     "it equals the last 2 of the 3 expected steps: the earlier steps are missing"),
    ("step_count", "hidden_grad_norms", V, np.array([9.0, 9.0, 9.0, 9.0]),
     "it has 4 entries along the first axis (time) where 3 are expected, one per step: "
     "the number of steps the loop runs is wrong"),
    ("last_step", "rnn_forward", E, E[-1],
     "it equals the last step alone (the last entry along the first axis, shape (3, 4)): "
     "only the last step came back, where every step was expected"),
    ("first_step", "rnn_forward", E, E[0],
     "it equals the first step alone (the first entry along the first axis): "
     "only the first step came back, where every step was expected"),
    ("axes_named", "rnn_forward", E, np.swapaxes(E, 0, 1),
     "it holds the expected values with axes 0 and 1 swapped: (B, T, H) order where (T, B, H) is expected"),
    ("axes_unnamed", "lstm_cell", E, np.swapaxes(E, 0, 1),
     "it holds the expected values with axes 0 and 1 swapped"),
    ("transposed", "activation_jacobian", M, M.T, "it is the expected matrix transposed"),
    ("extra_axis", "rnn_forward", E, E[:, :, None, :],
     "it holds the expected values with an extra axis of length 1 (shape (2, 3, 1, 4) where (2, 3, 4) "
     "is expected)"),
    ("reversed", "rnn_forward", E, E[::-1],
     "it holds the expected values in reverse order along the first axis"),
    ("scaled", "rnn_forward", E, 2.5 * E,
     f"{SCALED} 2.5: a factor that multiplies the whole result is wrong or missing"),
    # several fit: the first in the module's list is said
    ("last_before_first_entry", "hidden_grad_norms", np.array([4.0, 4.0]), np.array(4.0),
     "it equals the last entry alone: a single number came back, where all 2 entries were expected"),
    ("first_steps_before_last_steps", "hidden_grad_norms", np.ones(3), np.ones(2),
     "it equals the first 2 of the 3 expected steps: the loop over time stops early"),
    ("reversed_before_scaled", "hidden_grad_norms", np.array([1.0, -1.0]), np.array([-1.0, 1.0]),
     "it holds the expected values in reverse order along the first axis"),
    ("last_step_before_first_step", "rnn_forward", np.ones((2, 3, 4)), np.ones((3, 4)),
     "it equals the last step alone (the last entry along the first axis, shape (3, 4)): "
     "only the last step came back, where every step was expected"),
    # none fits
    ("unrelated", "rnn_forward", E, E + 1.0, ""),
    ("not_finite", "rnn_forward", E, np.full_like(E, np.nan), ""),
    ("count_outside_time_functions", "lstm_cell", V, V[:2], ""),
]


@pytest.mark.parametrize(("function", "expected", "got", "said"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_one_array_finding(function: str, expected: np.ndarray, got: np.ndarray, said: str) -> None:
    assert _finding(function, expected, got) == said


def test_a_pair_in_the_wrong_order_is_said() -> None:
    h, c = np.ones((2, 3)), np.full((2, 3), 2.0)
    got = (ArrayInfo(c, "tensor", "torch.float32"), ArrayInfo(h, "tensor", "torch.float32"))
    assert structural_finding("lstm_cell", (h, c), got, RTOL, ATOL) == (
        "the two results came back in the order (c_new, h_new): `lstm_cell` returns (h_new, c_new)")


def test_a_dict_needs_a_finding_for_every_wrong_array() -> None:
    expected = {"W": M, "U": M + 1, "b": V}
    right = {k: ArrayInfo(v, "tensor", "torch.float32") for k, v in expected.items()}
    both = {**right, "W": ArrayInfo(M.T, "tensor", "torch.float32"), "b": ArrayInfo(V[::-1], "tensor", "x")}
    assert structural_finding("tbptt_grads", expected, both, RTOL, ATOL) == (
        "W: it is the expected matrix transposed; "
        "b: it holds the expected values in reverse order along the first axis")
    one_unexplained = {**both, "U": ArrayInfo(M + 7, "tensor", "torch.float32")}
    assert structural_finding("tbptt_grads", expected, one_unexplained, RTOL, ATOL) == ""


def test_the_front_door_is_the_same_function() -> None:
    assert front_door is structural_finding
