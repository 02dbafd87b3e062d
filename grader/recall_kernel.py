"""Kernel side of the recall evidence (11.4.d): what the trained model's recurrent part saw and holds.

This module runs **in the student's kernel**: grader/recall.py sends its source (this file, read
from the grader's installation) with every evidence call and executes it in a fresh namespace, so
a notebook cannot have replaced it. It imports only torch, and only inside :func:`evidence`.

:func:`evidence` looks for the recurrent modules of the requested kind in the returned model
(exactly ``torch.nn.LSTM`` or ``torch.nn.LSTMCell`` for ``"lstm"``, ``torch.nn.RNN`` or
``torch.nn.RNNCell`` for ``"rnn"``), runs the model once on the grader's held-out sequences with
a forward hook on each, and returns plain data for the bridge (tensors, numbers, lists, dicts):

- ``modules``: for each such module (at most :data:`MAX_MODULES`), its configuration as numbers,
  its weights (``state_dict``), how often it was called, and the inputs it was given, stacked to
  (T, B, D) for a cell called once per step.

Nothing here is a verdict. The grader (grader/recall.py, :func:`grader.recall.judge_memory`)
rebuilds each module from these weights with its own torch, feeds it the inputs it was given,
and measures in its own process whether the module's recurrent state carries the first token.
A kernel that forges this answer must still hand over weights of a recurrent network that
remembers the first token through the whole sequence when the grader runs it.
"""
from __future__ import annotations

from typing import Any

MAX_MODULES = 4
#: Codes of the module kinds, as numbers (the bridge sends numbers, not strings).
KIND_CODES = {"LSTM": 0.0, "LSTMCell": 1.0, "RNN": 2.0, "RNNCell": 3.0}
WANTED = {"lstm": ("LSTM", "LSTMCell"), "rnn": ("RNN", "RNNCell")}


def evidence(model: Any, x: Any, cell: str) -> dict[str, Any]:
    """The recurrent modules of kind ``cell`` in ``model`` and what they saw on ``x``."""
    import torch

    kinds = tuple(getattr(torch.nn, name) for name in WANTED[cell])
    if not isinstance(model, torch.nn.Module):
        return {"modules": [], "not_a_module": 1.0}
    found: list[Any] = [m for m in model.modules() if type(m) in kinds][:MAX_MODULES]
    seen: dict[int, list[Any]] = {id(m): [] for m in found}

    def keep(module: Any, args: Any, output: Any) -> None:
        first = args[0] if args else None
        calls = seen[id(module)]
        if len(calls) <= 10_000:  # a module called without end is reported by its count only
            calls.append(first.detach().clone() if isinstance(first, torch.Tensor) else None)

    hooks = [m.register_forward_hook(keep) for m in found]
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    modules = []
    for m in found:
        calls = seen[id(m)]
        name = type(m).__name__
        entry: dict[str, Any] = {"kind": KIND_CODES[name], "calls": float(len(calls)),
                                 "hidden_size": float(m.hidden_size), "input_size": float(m.input_size),
                                 "bias": float(bool(m.bias))}
        if name in ("LSTM", "RNN"):
            entry.update(num_layers=float(m.num_layers), batch_first=float(bool(m.batch_first)),
                         bidirectional=float(bool(m.bidirectional)),
                         proj_size=float(getattr(m, "proj_size", 0)),
                         tanh=float(getattr(m, "nonlinearity", "tanh") == "tanh"))
            inputs = calls[0] if len(calls) == 1 else None
        else:
            entry.update(tanh=float(getattr(m, "nonlinearity", "tanh") == "tanh"))
            ok = calls and all(isinstance(c, torch.Tensor) and c.shape == calls[0].shape for c in calls)
            inputs = torch.stack(calls) if ok else None
        entry["inputs"] = inputs if isinstance(inputs, torch.Tensor) else None
        entry["weights"] = {k: v.detach().clone() for k, v in list(m.state_dict().items())[:16]}
        modules.append(entry)
    return {"modules": modules}
