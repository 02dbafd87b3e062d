"""Kernel side of the recall evidence (11.4.d): what the trained model's recurrent part saw and holds.

This module runs **in the student's kernel**: grader/checks/recall.py sends its source (this file, read
from the grader's installation) with every evidence call and executes it in a fresh namespace, so
a notebook cannot have replaced it. It imports only torch, and only inside :func:`evidence`.

:func:`evidence` looks for the recurrent part of the requested kind in the returned model, in
this order, and stops at the first that it finds:

1. modules: exactly ``torch.nn.LSTM`` or ``torch.nn.LSTMCell`` for ``"lstm"``, ``torch.nn.RNN``
   or ``torch.nn.RNNCell`` for ``"rnn"``, each watched by a forward hook;
2. for ``"lstm"``, the notebook's own ``lstm_cell`` (contract §3, 11.4.c: gates i, f, g, o as in
   ``torch.nn.LSTMCell``) called by the model: the name is rebound to a recorder for the one
   evidence run and put back after it, and each call's input and weights are kept, so a
   hand-written loop over the student's cell is an ``LSTMCell`` called once per step;
3. for ``"lstm"``, LSTM-shaped parameters of the model (a (4H, H) matrix, a (4H, D) matrix and
   (4H,) biases) fed with the one-hot input itself (D = the number of classes) or with the output
   of a ``torch.nn.Linear``/``Embedding`` of width D that the model runs on the whole sequence:
   an inline LSTM. Its gate order is the student's, so the grader tries each order
   (``any_gate_order``).

It runs the model once on the grader's held-out sequences and returns plain data for the bridge
(tensors, numbers, lists, dicts):

- ``modules``: for each such module (at most :data:`MAX_MODULES`), its configuration as numbers,
  its weights (``state_dict``), how often it was called, and the inputs it was given, stacked to
  (T, B, D) for a cell called once per step.

Nothing here is a verdict. The grader (grader/checks/recall.py, :func:`grader.checks.recall.judge_memory`)
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


def evidence(model: Any, x: Any, cell: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recurrent part of kind ``cell`` in ``model`` and what it saw on ``x``; ``namespace``:
    the notebook's globals (where its ``lstm_cell`` lives)."""
    import torch

    kinds = tuple(getattr(torch.nn, name) for name in WANTED[cell])
    if not isinstance(model, torch.nn.Module):
        return {"modules": [], "not_a_module": 1.0}
    found: list[Any] = [m for m in model.modules() if type(m) in kinds][:MAX_MODULES]
    if not found and cell == "lstm":
        own = _own_cell(model, x, namespace) or _inline_cell(model, x)
        return {"modules": [own] if own else []}
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


def _cell_entry(inputs: Any, weights: dict[str, Any], calls: int, any_order: bool) -> dict[str, Any]:
    """An ``LSTMCell`` entry from a hand-written cell's weights and the inputs of its steps."""
    hidden = int(weights["weight_hh"].shape[1])
    return {"kind": KIND_CODES["LSTMCell"], "calls": float(calls), "hidden_size": float(hidden),
            "input_size": float(weights["weight_ih"].shape[1]), "bias": 1.0, "tanh": 1.0,
            "any_gate_order": float(any_order), "inputs": inputs, "weights": weights}


def _own_cell(model: Any, x: Any, namespace: dict[str, Any] | None) -> dict[str, Any] | None:
    """The notebook's ``lstm_cell`` as the model calls it on ``x``: its inputs and weights."""
    import torch

    original = namespace.get("lstm_cell") if namespace is not None else None
    if namespace is None or not callable(original):
        return None
    calls: list[tuple[Any, ...]] = []

    def recorder(*args: Any, **kwargs: Any) -> Any:
        names = ("x", "h", "c", "W_ih", "W_hh", "b_ih", "b_hh")
        bound = dict(zip(names, args))
        bound.update({k: v for k, v in kwargs.items() if k in names})
        if len(calls) <= 10_000 and all(isinstance(bound.get(k), torch.Tensor) for k in names):
            calls.append(tuple(bound[k].detach().clone() if k == "x" else bound[k] for k in
                               ("x", "W_ih", "W_hh", "b_ih", "b_hh")))
        return original(*args, **kwargs)

    namespace["lstm_cell"] = recorder
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        namespace["lstm_cell"] = original
    if not calls or any(c[0].shape != calls[0][0].shape or any(w is not v for w, v in zip(c[1:], calls[0][1:]))
                        for c in calls):
        return None  # not one cell with one set of weights over steps of one shape
    _, w_ih, w_hh, b_ih, b_hh = calls[0]
    weights = {"weight_ih": w_ih.detach().clone(), "weight_hh": w_hh.detach().clone(),
               "bias_ih": b_ih.detach().clone(), "bias_hh": b_hh.detach().clone()}
    return _cell_entry(torch.stack([c[0] for c in calls]), weights, len(calls), False)


def _inline_cell(model: Any, x: Any) -> dict[str, Any] | None:
    """LSTM-shaped parameters of ``model`` and the per-step inputs they read (see the module docstring)."""
    import torch

    params = [p for p in model.parameters() if isinstance(p, torch.Tensor)][:256]
    for w_hh in params:
        if w_hh.dim() != 2 or w_hh.shape[0] != 4 * w_hh.shape[1]:
            continue
        rows = w_hh.shape[0]
        w_ihs = [p for p in params if p is not w_hh and p.dim() == 2 and p.shape[0] == rows]
        biases = [p for p in params if p.dim() == 1 and p.shape[0] == rows][:2]
        for w_ih in w_ihs:
            inputs = _step_inputs(model, x, int(w_ih.shape[1]))
            if inputs is None:
                continue
            zero = torch.zeros(rows, dtype=w_hh.dtype)
            b_ih = biases[0] if biases else zero
            b_hh = biases[1] if len(biases) > 1 else zero
            weights = {"weight_ih": w_ih.detach().clone(), "weight_hh": w_hh.detach().clone(),
                       "bias_ih": b_ih.detach().clone(), "bias_hh": b_hh.detach().clone()}
            return _cell_entry(inputs, weights, int(inputs.shape[0]), True)
    return None


def _step_inputs(model: Any, x: Any, width: int) -> Any:
    """(T, B, width) inputs per step: ``x`` itself, or what a Linear/Embedding of that width made of it."""
    import torch

    x = torch.as_tensor(x)
    if x.shape[-1] == width:
        return x.detach().clone()
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))
              and (getattr(m, "out_features", None) == width or getattr(m, "embedding_dim", None) == width)]
    outputs: list[Any] = []

    def keep(module: Any, args: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.shape[:2] == x.shape[:2] and not outputs:
            outputs.append(output.detach().clone())

    hooks = [m.register_forward_hook(keep) for m in layers[:MAX_MODULES]]
    try:
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs[0] if outputs else None
