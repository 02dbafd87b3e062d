"""Reference solutions for Exercise 11.4 (recurrent networks).

The functions follow section 3 of the grading contract exactly (names, arguments, shapes);
the grader compares students' functions against these.
"""

from __future__ import annotations

from reference.gradients import (
    BoundCheck,
    bound_regimes,
    check_bound,
    gradient_bound,
    hidden_grad_norms,
)
from reference.lstm import lstm_cell
from reference.recall import (
    CALIBRATION,
    LSTMClassifier,
    RecallClassifier,
    RNNClassifier,
    accuracy,
    make_recall_data,
    train_recall,
)
from reference.recursive import RecursiveNN, tree_encode
from reference.rnn import ACTIVATIONS, activation, activation_jacobian, rnn_forward
from reference.tbptt import tbptt_grads

__all__ = [
    "ACTIVATIONS",
    "BoundCheck",
    "CALIBRATION",
    "LSTMClassifier",
    "RNNClassifier",
    "RecallClassifier",
    "RecursiveNN",
    "accuracy",
    "activation",
    "activation_jacobian",
    "bound_regimes",
    "check_bound",
    "gradient_bound",
    "hidden_grad_norms",
    "lstm_cell",
    "make_recall_data",
    "rnn_forward",
    "tbptt_grads",
    "train_recall",
    "tree_encode",
]
