"""grader/checks/recall_diagnosis.py: a recall failure diagnosed from held-out predictions (issue 22, 2b).

Pure arrays: each scenario builds the held-out tokens, a relabelling and the predictions a model
of that kind would make, and checks the kind and that only the relabelled case speaks of the
relabelling.
"""
from __future__ import annotations

import numpy as np
import pytest

from grader.checks.recall_diagnosis import FIT, MIN_TELLING, diagnose_recall

C, N = 8, 400


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, C, size=(30, N))
    perm = rng.permutation(C)
    while np.any(perm == np.arange(C)):  # every class moved, so "before relabelling" can be told
        perm = rng.permutation(C)
    first, last = tokens[0], tokens[-1]
    return first, last, perm, perm[first]


def _noisy(pred: np.ndarray, share: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = pred.copy()
    flip = rng.random(pred.shape[0]) < share
    out[flip] = rng.integers(0, C, size=int(flip.sum()))
    return out


@pytest.mark.parametrize("make,kind", [
    (lambda first, last, perm, target: np.full(N, 3), "constant"),
    (lambda first, last, perm, target: first, "unrelabelled"),
    (lambda first, last, perm, target: perm[last], "last_token"),
    (lambda first, last, perm, target: last, "last_token"),
    (lambda first, last, perm, target: np.random.default_rng(5).integers(0, C, N), "chance"),
    (lambda first, last, perm, target: _noisy(target, 0.5), "none"),  # learned part of the task
])
def test_each_failure_gets_its_own_kind(make, kind: str) -> None:
    first, last, perm, target = _data()
    d = diagnose_recall(make(first, last, perm, target), target, last, first, perm)
    assert d.kind == kind, d
    assert ("relabel" in d.message) == (kind == "unrelabelled"), d.message
    assert (d.message == "") == (kind == "none")


def test_logits_are_read_by_their_argmax() -> None:
    first, last, perm, target = _data()
    logits = np.eye(C)[perm[last]] * 5.0
    assert diagnose_recall(logits, target, last, first, perm).kind == "last_token"


def test_a_small_share_of_noise_keeps_the_diagnosis_and_too_much_loses_it() -> None:
    first, last, perm, target = _data()
    assert diagnose_recall(_noisy(perm[last], 0.05), target, last, first, perm).kind == "last_token"
    assert diagnose_recall(_noisy(perm[last], 0.4), target, last, first, perm).kind != "last_token"


def test_no_claim_without_sequences_that_tell_it_apart() -> None:
    """Where the last token equals the first on all but a few sequences, predicting the last
    token is (almost) right: no "last token" claim on fewer than MIN_TELLING telling sequences."""
    first, _, perm, target = _data()
    last = first.copy()
    last[: MIN_TELLING - 1] = (first[: MIN_TELLING - 1] + 1) % C
    d = diagnose_recall(perm[last], target, last, first, perm)
    assert d.kind == "none" and d.accuracy > FIT


def test_a_right_model_gets_no_diagnosis() -> None:
    first, last, perm, target = _data()
    d = diagnose_recall(target, target, last, first, perm)
    assert d.kind == "none" and d.accuracy == 1.0


@pytest.mark.parametrize("bad", [
    dict(permutation=np.zeros(C, dtype=int)),
    dict(targets=np.zeros(N, dtype=int)),
    dict(predictions=np.zeros(N - 1, dtype=int)),
    dict(predictions=np.full(N, 0.5)),
    dict(last_tokens=np.full(N, C)),
])
def test_inconsistent_arrays_are_refused(bad: dict) -> None:
    first, last, perm, target = _data()
    args = dict(predictions=target, targets=target, last_tokens=last, first_tokens=first, permutation=perm)
    with pytest.raises(ValueError):
        diagnose_recall(**{**args, **bad})
