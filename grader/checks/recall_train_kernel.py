"""Kernel side of the recall training (11.4.d): the student's trainer, fed relabelled data.

This module runs **in the student's kernel**: grader/checks/recall.py sends its source with every
training call and executes it in a fresh namespace, so a notebook cannot have replaced it (torch
only, imported inside :func:`train`). :func:`train` puts a relabelling ``make_recall_data`` into
the notebook's globals for the duration of the call (the template's generator, whose labels are
``perm[first token]``), calls the student's trainer, puts the student's own object back
afterwards whatever the trainer does, and keeps the returned model in the notebook's globals as
``_sheet11_model_<cell>`` for the grader's later calls (held-out logits, memory evidence).
"""
from __future__ import annotations

from typing import Any


def train(g: dict[str, Any], args: dict[str, Any]) -> float:
    """Call ``args["function"]`` of the notebook's globals ``g`` for ``args["cell"]``; 0.0 when it returned."""
    import torch as _torch
    perm = args["perm"].long()
    n_perm = int(perm.numel())

    def make_recall_data(n: int, seq_len: int, n_classes: int, seed: int) -> tuple[Any, Any]:
        """The template's make_recall_data; during grading the classes are relabelled."""
        if int(n_classes) != n_perm:
            raise ValueError("during grading make_recall_data serves n_classes=%d only, got %r"
                             % (n_perm, n_classes))
        gen = _torch.Generator().manual_seed(seed)
        tokens = _torch.randint(0, n_classes, (seq_len, n), generator=gen)
        x = _torch.nn.functional.one_hot(tokens, n_classes).float()
        return x, perm[tokens[0]]

    missing = object()
    saved = g.get("make_recall_data", missing)
    g["make_recall_data"] = make_recall_data
    try:
        model = g[args["function"]](args["cell"], int(args["seq_len"]), int(args["n_classes"]),
                                    int(args["seed"]))
    finally:
        if saved is missing:
            g.pop("make_recall_data", None)
        else:
            g["make_recall_data"] = saved
    g["_sheet11_model_" + args["cell"]] = model
    return 0.0
