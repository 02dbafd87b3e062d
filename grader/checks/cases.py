"""Inputs of the function checks, drawn in the grader's process.

The kernel receives only the arrays made here (never a seed), and the reference sees exactly the
same tensors, so a difference in output is the student's.

Two ways to draw, one generator (numpy's PCG64 under a :class:`numpy.random.SeedSequence`):

- **public** examples from the rubric's seed alone (``secret=None``), so students can reproduce
  them from the release bundle;
- **hidden** cases from ``HMAC-SHA256(secret, function, case seed, case parameters)``: 256 bits
  of entropy under the course secret of :mod:`grader.checks.secret`. The rubric's case seed only names
  the case; a student function that sees the inputs cannot search the seed space for them, and a
  leaked rubric does not give them away. The same secret draws the same inputs (re-grades agree).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from grader.checks.secret import derive

Tree = Any  # a str leaf or a (left, right) pair
Rng = np.random.Generator


def case_rng(function: str, seed: int, params: Mapping[str, Any], secret: bytes | None) -> Rng:
    """The generator of one case: from ``seed`` alone when public, keyed by ``secret`` when hidden."""
    if secret is None:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    # The parameters are part of the key: a rubric that changes a case's shapes gets new numbers,
    # and two cases that share a seed by mistake still differ.
    digest = derive(secret, "sheet11-hidden-inputs", function, seed,
                    json.dumps(dict(params), sort_keys=True))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int.from_bytes(digest, "big"))))


def _randn(g: Rng, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.from_numpy((g.standard_normal(shape) * scale).astype(np.float32))


def _with_spectral_norm(w: torch.Tensor, target: float) -> torch.Tensor:
    factor: torch.Tensor = target / torch.linalg.matrix_norm(w.double(), ord=2)
    return (w * factor).float()


def linear_loss(a: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda h: (h * a.to(h.dtype)).sum()


def squared_loss(target: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda h: 0.5 * ((h - target.to(h.dtype)) ** 2).sum()


def _rnn_inputs(g: Rng, T: int, B: int, D: int, H: int) -> dict[str, torch.Tensor]:
    return {"x": _randn(g, T, B, D), "h0": _randn(g, B, H, scale=0.5),
            "W": _randn(g, H, H, scale=0.6 / H ** 0.5 * 2), "U": _randn(g, H, D, scale=1 / D ** 0.5),
            "b": _randn(g, H, scale=0.3)}


def rnn_forward(g: Rng, p: Mapping[str, Any]) -> dict[str, Any]:
    return {**_rnn_inputs(g, p["T"], p["B"], p["D"], p["H"]), "activation": p["activation"]}


def activation_jacobian(g: Rng, p: Mapping[str, Any]) -> dict[str, Any]:
    return {"z": _randn(g, p["H"], scale=1.5), "activation": p["activation"]}


def _gradient_inputs(g: Rng, p: Mapping[str, Any]) -> dict[str, Any]:
    inputs: dict[str, Any] = _rnn_inputs(g, p["T"], 1, p["D"], p["H"])
    inputs["W"] = _with_spectral_norm(inputs["W"], p["spectral_norm"])
    # Small inputs keep tanh near its linear region, so an exploding W really explodes.
    inputs["x"] = inputs["x"] * 0.3
    vec = _randn(g, 1, p["H"])
    inputs["loss_fn"] = LossSpec(p["loss"], vec)
    inputs["activation"] = p["activation"]
    return inputs


hidden_grad_norms = _gradient_inputs
gradient_bound = _gradient_inputs


class LossSpec:
    """A loss on h_T that can be rebuilt in the kernel from one plain array."""

    def __init__(self, kind: str, vector: torch.Tensor) -> None:
        self.kind, self.vector = kind, vector
        self.fn = linear_loss(vector) if kind == "linear" else squared_loss(vector)

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return self.fn(h)


def lstm_cell(g: Rng, p: Mapping[str, Any]) -> dict[str, Any]:
    B, D, H = p["B"], p["D"], p["H"]
    k = 1 / H ** 0.5
    return {"x": _randn(g, B, D), "h": _randn(g, B, H, scale=0.5), "c": _randn(g, B, H),
            "W_ih": _randn(g, 4 * H, D, scale=k), "W_hh": _randn(g, 4 * H, H, scale=k),
            "b_ih": _randn(g, 4 * H, scale=k), "b_hh": _randn(g, 4 * H, scale=k)}


def make_tree(words: list[str], shape: str, rng: Rng) -> Tree:
    """A binary tree over ``words`` in order: balanced, random split points, or a left chain."""
    if shape == "left_chain":
        tree: Tree = words[0]
        for w in words[1:]:
            tree = (tree, w)
        return tree
    # Build bottom-up with an explicit stack so deep trees need no recursion.
    spans: list[tuple[int, int]] = [(0, len(words))]
    splits: dict[tuple[int, int], int] = {}
    while spans:
        lo, hi = spans.pop()
        if hi - lo > 1:
            mid = (lo + hi) // 2 if shape == "balanced" else int(rng.integers(lo + 1, hi))
            splits[(lo, hi)] = mid
            spans += [(lo, mid), (mid, hi)]
    built: dict[tuple[int, int], Tree] = {}
    for lo, hi in sorted(splits | {(i, i + 1): 0 for i in range(len(words))}, key=lambda s: s[1] - s[0]):
        built[(lo, hi)] = words[lo] if hi - lo == 1 else (built[(lo, splits[(lo, hi)])],
                                                          built[(splits[(lo, hi)], hi)])
    return built[(0, len(words))]


def tree_encode(g: Rng, p: Mapping[str, Any]) -> dict[str, Any]:
    d, n = p["d"], p["leaves"]
    vocab = [f"w{i}" for i in range(max(2, n - n // 3))]
    words = [vocab[int(i)] for i in g.integers(0, len(vocab), size=n)]
    embed = {w: _randn(g, d) for w in vocab}
    return {"tree": make_tree(words, p["shape"], g), "embed": embed,
            "W": _randn(g, d, 2 * d, scale=1 / d ** 0.5), "b": _randn(g, d, scale=0.3)}


def tbptt_grads(g: Rng, p: Mapping[str, Any]) -> dict[str, Any]:
    T, B, D, H, C = p["T"], p["B"], p["D"], p["H"], p["C"]
    params = {"W": _randn(g, H, H, scale=1 / H ** 0.5), "U": _randn(g, H, D, scale=1 / D ** 0.5),
              "b": _randn(g, H, scale=0.3), "V": _randn(g, C, H, scale=1 / H ** 0.5),
              "c": _randn(g, C, scale=0.3)}
    return {"x": _randn(g, T, B, D), "y": torch.from_numpy(g.integers(0, C, size=B, dtype=np.int64)),
            "params": params, "k": p["k"]}


MAKERS: dict[str, Callable[[Rng, Mapping[str, Any]], dict[str, Any]]] = {
    "rnn_forward": rnn_forward,
    "activation_jacobian": activation_jacobian,
    "hidden_grad_norms": hidden_grad_norms,
    "gradient_bound": gradient_bound,
    "lstm_cell": lstm_cell,
    "tree_encode": tree_encode,
    "tbptt_grads": tbptt_grads,
}


def make_inputs(function: str, seed: int, params: Mapping[str, Any],
                secret: bytes | None = None) -> dict[str, Any]:
    """The keyword arguments of ``function`` for one case.

    Parameters
    ----------
    function, seed, params
        The check's function and the case as the rubric gives it.
    secret
        ``None`` for a public example (reproducible from ``seed``); the course secret for a hidden
        case (see :func:`case_rng`).
    """
    return MAKERS[function](case_rng(function, seed, params, secret), params)


def shapes_of(inputs: Mapping[str, Any]) -> str:
    """A plain description of the inputs' shapes, for a report."""
    parts = []
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor):
            parts.append(f"{key} {tuple(value.shape)}")
        elif isinstance(value, dict):
            inner = next(iter(value.values()), None)
            shape = tuple(inner.shape) if isinstance(inner, torch.Tensor) else ""
            parts.append(f"{key} ({len(value)} entries {shape})")
        elif isinstance(value, LossSpec):
            parts.append(f"loss_fn ({value.kind} in h_T)")
        elif isinstance(value, (str, int)):
            parts.append(f"{key}={value!r}")
        else:
            parts.append(f"{key} (a tree)" if key == "tree" else key)
    return ", ".join(parts)
