"""The memory evidence of the recall verdict (11.4.d), judged in the grader's process: does the
returned model's recurrent module of the requested kind carry the first token?

The kernel describes the module (grader/checks/recall_kernel.py): its kind, sizes, plain weights
and the inputs it was given for the held-out sequences. Here the grader rebuilds the module with
its own torch from those weights (:func:`judge_memory`; the student's forward is never run) and
requires that

- the module is exactly of the requested kind (``torch.nn.LSTM``/``LSTMCell`` for the LSTM,
  ``torch.nn.RNN``/``RNNCell`` for the RNN), not bidirectional, with sizes in range;
- it was run once over all steps of each held-out sequence, and what it read at a step is one and
  the same function of that step's token alone, in order (:func:`_time_local`);
- a linear probe (:func:`probe_accuracy`) fitted on half the sequences names the first token from
  the module's final state on the other half with at least ``memory_min_accuracy``. The same
  module with its weights re-initialised is measured beside it (about chance).

A :class:`Memory` with an empty ``problem`` is evidence that holds. grader/checks/recall.py is the
front door (every public name here is importable from there).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["Memory", "judge_memory", "probe_accuracy"]


@dataclass(frozen=True)
class Memory:
    """What :func:`judge_memory` found: ``problem`` is empty where the evidence holds."""

    problem: str
    learned: float | None = None  # the probe's held-out accuracy on the learned module's state
    reset: float | None = None    # the same with the module's weights re-initialised


_KIND_NAMES = {0.0: "LSTM", 1.0: "LSTMCell", 2.0: "RNN", 3.0: "RNNCell"}
_WANTED = {"lstm": "torch.nn.LSTM or torch.nn.LSTMCell", "rnn": "torch.nn.RNN or torch.nn.RNNCell"}


def _number(entry: dict[str, Any], key: str) -> float:
    value = entry.get(key)
    if not isinstance(value, float) or not math.isfinite(value):
        raise ValueError(f"{key} missing")
    return value


def _rebuild(entry: dict[str, Any]) -> tuple[torch.nn.Module, str]:
    """The module the kernel described, built by the grader's torch from the plain weights."""
    from grader.checks.bridge import ArrayInfo
    kind = _KIND_NAMES.get(_number(entry, "kind"), "")
    hidden, inp = int(_number(entry, "hidden_size")), int(_number(entry, "input_size"))
    bias = _number(entry, "bias") == 1.0
    if not (0 < hidden <= 4096 and 0 < inp <= 4096):
        raise ValueError("sizes out of range")
    nonlinearity = "tanh" if entry.get("tanh", 1.0) == 1.0 else "relu"
    module: torch.nn.Module
    if kind in ("LSTM", "RNN"):
        layers = int(_number(entry, "num_layers"))
        if not 0 < layers <= 4:
            raise ValueError("num_layers out of range")
        if _number(entry, "bidirectional") == 1.0:
            raise ValueError("bidirectional")
        if kind == "LSTM":
            module = torch.nn.LSTM(inp, hidden, layers, bias=bias, proj_size=int(_number(entry, "proj_size")))
        else:
            module = torch.nn.RNN(inp, hidden, layers, bias=bias, nonlinearity=nonlinearity)
    elif kind == "LSTMCell":
        module = torch.nn.LSTMCell(inp, hidden, bias=bias)
    elif kind == "RNNCell":
        module = torch.nn.RNNCell(inp, hidden, bias=bias, nonlinearity=nonlinearity)
    else:
        raise ValueError("unknown kind")
    weights = entry.get("weights")
    if not isinstance(weights, dict):
        raise ValueError("weights missing")
    state = {}
    for name, param in module.state_dict().items():
        got = weights.get(name)
        if not isinstance(got, ArrayInfo) or tuple(got.array.shape) != tuple(param.shape):
            raise ValueError(f"weight {name} missing or of another shape")
        state[name] = torch.from_numpy(got.array).to(torch.float32)
    module.load_state_dict(state)
    return module.eval(), kind


def _final_state(module: torch.nn.Module, kind: str, inputs: torch.Tensor) -> np.ndarray:
    """The module's state after the whole sequence (T, B, D), from zero: features per sequence."""
    with torch.no_grad():
        if kind in ("LSTM", "RNN"):
            _, state = module(inputs)
            parts = state if isinstance(state, tuple) else (state,)
            feats = torch.cat([p.permute(1, 0, 2).reshape(inputs.shape[1], -1) for p in parts], dim=1)
        else:
            h = None
            for t in range(inputs.shape[0]):
                h = module(inputs[t], h)
            parts = h if isinstance(h, tuple) else (h,)
            feats = torch.cat(list(parts), dim=1)
    return feats.double().numpy()


def probe_accuracy(features: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Held-out accuracy of a ridge-regression probe from ``features`` to ``labels``.

    Fitted on the first half of the sequences, measured on the second, features standardised
    on the first half. Linear in the features: it reads what the state holds, it learns no
    memory of its own.
    """
    half = len(labels) // 2
    train, test = features[:half], features[half:]
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    a = np.hstack([(train - mean) / std, np.ones((half, 1))])
    b = np.hstack([(test - mean) / std, np.ones((len(test), 1))])
    target = np.eye(n_classes)[labels[:half]]
    ridge = 1e-2 * half * np.eye(a.shape[1])
    coef = np.linalg.solve(a.T @ a + ridge, a.T @ target)
    return float(np.mean(np.argmax(b @ coef, axis=1) == labels[half:]))


def _time_local(inputs: np.ndarray, tokens: np.ndarray) -> bool:
    """Whether the module's input at every step is one and the same function of that step's
    token (a one-hot vector, an embedding, a linear map...), read in order: rows of equal tokens
    are equal, and the first token is not copied into later steps or read backwards."""
    flat = inputs.reshape(-1, inputs.shape[-1])
    keys = tokens.reshape(-1)
    scale = max(1.0, float(np.max(np.abs(flat)))) if flat.size else 1.0
    first: dict[int, np.ndarray] = {}
    for k in np.unique(keys):
        rows = flat[keys == k]
        if np.max(np.abs(rows - rows[0])) > 1e-4 * scale:
            return False
        first[int(k)] = rows[0]
    # Distinct tokens must give distinct inputs (else the token is not what the module reads).
    vectors = list(first.values())
    return all(np.max(np.abs(u - v)) > 1e-6 * scale for i, u in enumerate(vectors) for v in vectors[i + 1:])


def judge_memory(found: object, tokens: np.ndarray, cell: str, n_classes: int, min_accuracy: float) -> Memory:
    """Whether the model's recurrent module of kind ``cell`` carries the first token (see the
    module docstring); ``tokens`` (T, B) are the held-out tokens the evidence ran on."""
    from grader.checks.bridge import ArrayInfo
    modules = found.get("modules") if isinstance(found, dict) else None
    if not isinstance(modules, tuple) or not modules:
        return Memory(f"the grader found no LSTM in the model ({_WANTED[cell]}, calls of the notebook's own "
                      "lstm_cell, or LSTM-shaped weights): it checks that the accuracy comes from a recurrent "
                      "network of that kind (see the docstring of train_recall)" if cell == "lstm" else
                      f"the model holds no {_WANTED[cell]}: the grader checks that the accuracy comes "
                      "from a recurrent network of that kind (see the docstring of train_recall)")
    T, B = tokens.shape
    labels = tokens[0].astype(np.int64)
    best: Memory | None = None
    problems = []
    for entry in modules:
        try:
            module, kind = _rebuild(entry)
        except (ValueError, RuntimeError, TypeError) as exc:
            problems.append("its recurrent module is bidirectional (it reads the sequence backwards too)"
                            if str(exc) == "bidirectional" else f"its recurrent module could not be rebuilt ({exc})")
            continue
        inputs = entry.get("inputs")
        calls = entry.get("calls")
        arr = inputs.array if isinstance(inputs, ArrayInfo) else None
        if arr is not None and kind in ("LSTM", "RNN") and entry.get("batch_first") == 1.0 and arr.ndim == 3:
            arr = arr.transpose(1, 0, 2)
        want_calls = 1.0 if kind in ("LSTM", "RNN") else float(T)
        if arr is None or calls != want_calls or arr.ndim != 3 or arr.shape[:2] != (T, B):
            problems.append(f"its {kind} was not run once over all {T} steps of each held-out sequence")
            continue
        if not _time_local(arr, tokens):
            problems.append(f"what its {kind} reads at a step is not that step's token alone, in order")
            continue
        x = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32)
        try:
            learned = max(probe_accuracy(_final_state(m, kind, x), labels, n_classes)
                          for m in _gate_orders(module, entry.get("any_gate_order") == 1.0))
            torch.manual_seed(0)
            fresh = _reset(module)
            reset = probe_accuracy(_final_state(fresh, kind, x), labels, n_classes)
        except (RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
            problems.append(f"its {kind} could not be run on its own inputs ({type(exc).__name__})")
            continue
        got = Memory("" if learned >= min_accuracy else
                     f"its {kind}'s state after the last step names the first token for only {learned:.0%} "
                     f"of held-out sequences ({min_accuracy:.0%} needed; re-initialised: {reset:.0%})",
                     learned, reset)
        if best is None or (got.learned or 0.0) > (best.learned or 0.0):
            best = got
    if best is not None:
        return best
    return Memory("; ".join(problems[:2]) or "no recurrent module could be judged")


def _gate_orders(module: torch.nn.Module, any_order: bool) -> list[torch.nn.Module]:
    """``module`` as it is, or, for an inline LSTM whose gate order is the student's own, the
    module under each of the 24 orders of its four gate blocks (the grader's LSTMCell reads i, f, g, o)."""
    if not any_order:
        return [module]
    import copy
    import itertools
    state = module.state_dict()
    hidden = int(state["weight_hh"].shape[1])
    out = []
    for order in itertools.permutations(range(4)):
        index = torch.cat([torch.arange(k * hidden, (k + 1) * hidden) for k in order])
        other = copy.deepcopy(module)
        other.load_state_dict({name: value[index] for name, value in state.items()})
        out.append(other)
    return out


def _reset(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` with every weight re-initialised as torch does (seeded by the caller)."""
    import copy
    fresh = copy.deepcopy(module)
    reset = getattr(fresh, "reset_parameters", None)
    if callable(reset):
        reset()
    return fresh
