"""Why a recall model failed, from its held-out predictions alone (issue 22, item 2b).

A pure function of arrays, computed in the grader's process: :func:`diagnose_recall` takes the
model's predictions on the held-out data the grader drew, the targets (the first token of each
sequence under the grader's relabelling), the last and the first token of each sequence, and the
relabelling permutation (``permutation[token]`` is the class the grader trains and scores that
token as). It returns a typed :class:`RecallDiagnosis`, one of:

- ``constant``: one class makes up at least :data:`FIT` of the predictions (the model collapsed);
- ``unrelabelled``: the predictions are the first tokens *before* relabelling on at least
  :data:`FIT` of the sequences where the relabelling changes the class: the model learned the
  task from data it made or read elsewhere, not from what ``train_recall`` was given;
- ``last_token``: the predictions are the last token (relabelled or not) on at least :data:`FIT`
  of the sequences where that differs from the target: the model remembers the end of the
  sequence, not its start;
- ``chance``: the accuracy is within :data:`CHANCE_SIGMAS` binomial standard deviations of
  ``1 / n_classes``: the model learned nothing usable;
- ``none``: none of these (a model that learned part of the task).

Each fit is measured only on the sequences where the alternative and the target differ, and needs
at least :data:`MIN_TELLING` of them, so a claim is made only where the data can tell it apart
from a right answer. The message is plain words for the student; only ``unrelabelled`` mentions
the relabelling, because only there is it the cause. Nothing here trains, calls a kernel or reads
a file; grader/checks/recall.py owns the experiment and decides where the message is shown.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["CHANCE_SIGMAS", "FIT", "MIN_TELLING", "RecallDiagnosis", "RecallKind", "diagnose_recall"]

RecallKind = Literal["constant", "unrelabelled", "last_token", "chance", "none"]

#: Share of the telling sequences a pattern must explain to be named.
FIT = 0.9
#: Sequences on which a pattern and the target must differ before the pattern can be named.
MIN_TELLING = 20
#: Accuracy within this many binomial standard deviations of 1 / n_classes is chance.
CHANCE_SIGMAS = 3.0


@dataclass(frozen=True)
class RecallDiagnosis:
    kind: RecallKind
    message: str      # for the student; "" for kind "none"
    accuracy: float   # the held-out accuracy the diagnosis was made on
    fit: float        # the share of the telling sequences the named pattern explains (0 for none/chance)


def _ints(name: str, a: ArrayLike, n: int | None = None) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        raise ValueError(f"{name} must be a 1-d array" + (f" of length {n}" if n is not None else "")
                         + f", got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold class indices (integers)")
    return arr.astype(np.int64)


def _fit(predictions: np.ndarray, pattern: np.ndarray, targets: np.ndarray) -> float | None:
    telling = pattern != targets
    if int(telling.sum()) < MIN_TELLING:
        return None
    return float(np.mean(predictions[telling] == pattern[telling]))


def diagnose_recall(predictions: ArrayLike, targets: ArrayLike, last_tokens: ArrayLike,
                    first_tokens: ArrayLike, permutation: ArrayLike) -> RecallDiagnosis:
    """The diagnosis of a recall model from its held-out predictions.

    Parameters
    ----------
    predictions
        (n,) predicted classes, or (n, C) logits (their argmax is taken).
    targets
        (n,) the classes scored against: ``permutation[first_tokens]``.
    last_tokens, first_tokens
        (n,) the last and the first token of each held-out sequence, before relabelling.
    permutation
        (C,) ``permutation[token]`` is the class of ``token`` under the grader's relabelling.

    Raises
    ------
    ValueError
        Shapes that do not agree, non-integer classes, or a ``permutation`` that is not one.
    """
    pred = np.asarray(predictions)
    if pred.ndim == 2:
        pred = np.argmax(pred, axis=1)
    pred = _ints("predictions", pred)
    n = pred.shape[0]
    if n == 0:
        raise ValueError("predictions is empty: no held-out sequence to diagnose")
    target = _ints("targets", targets, n)
    last = _ints("last_tokens", last_tokens, n)
    first = _ints("first_tokens", first_tokens, n)
    perm = _ints("permutation", permutation)
    classes = perm.shape[0]
    if sorted(perm.tolist()) != list(range(classes)):
        raise ValueError("permutation must hold each class 0..C-1 exactly once")
    for name, arr in (("last_tokens", last), ("first_tokens", first), ("targets", target)):
        if arr.min() < 0 or arr.max() >= classes:
            raise ValueError(f"{name} must lie in 0..{classes - 1}")
    if not np.array_equal(target, perm[first]):
        raise ValueError("targets must be permutation[first_tokens]")
    accuracy = float(np.mean(pred == target))

    values, counts = np.unique(pred, return_counts=True)
    top = int(np.argmax(counts))
    share = float(counts[top] / n)
    if share >= FIT and classes > 1:
        return RecallDiagnosis("constant", (
            f"the model predicts the same class ({int(values[top])}) for {100 * share:.0f} % of the "
            "held-out sequences: it did not learn to tell the sequences apart (check that the loss "
            "falls during training and that the classifier reads the recurrent state)."), accuracy, share)

    raw = _fit(pred, first, target)
    if raw is not None and raw >= FIT:
        return RecallDiagnosis("unrelabelled", (
            f"the model predicts the first token as it was before the grader relabelled the classes "
            f"(on {100 * raw:.0f} % of the sequences where the relabelling changes the class): it learned "
            "the labels from data it made or read itself, not from the data `train_recall` was given. "
            "Train on make_recall_data(n, seq_len, n_classes, seed) inside train_recall: the grader "
            "relabels the classes there."), accuracy, raw)

    for pattern, words in ((perm[last], "the last token"), (last, "the last token")):
        fit = _fit(pred, pattern, target)
        if fit is not None and fit >= FIT:
            return RecallDiagnosis("last_token", (
                f"the model predicts {words} of each sequence (on {100 * fit:.0f} % of the sequences where "
                "it differs from the first one), not the first: the label is the first token, so the "
                "model must carry it through all the later steps (check which step's output the classifier "
                "reads and which token the targets are)."), accuracy, fit)

    chance = 1.0 / classes
    sigma = float(np.sqrt(chance * (1 - chance) / n))
    if accuracy <= chance + CHANCE_SIGMAS * sigma:
        return RecallDiagnosis("chance", (
            f"the held-out accuracy {100 * accuracy:.0f} % is what guessing gives ({100 * chance:.0f} % "
            f"with {classes} classes): the model did not learn the task (check the training loop, the "
            "learning rate and that the loss falls)."), accuracy, 0.0)
    return RecallDiagnosis("none", "", accuracy, 0.0)
