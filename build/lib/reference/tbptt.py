"""Exercise 11.4.d (first half): truncated back-propagation through time."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reference.rnn import ArrayLike, as_tensor, rnn_forward

__all__ = ["PARAM_NAMES", "tbptt_grads"]

#: Keys of the parameter dict and of the returned gradients.
PARAM_NAMES: tuple[str, ...] = ("W", "U", "b", "V", "c")


def tbptt_grads(
    x: ArrayLike, y: ArrayLike, params: dict[str, ArrayLike], k: int
) -> dict[str, torch.Tensor]:
    """Gradients of a many-to-one RNN classifier under truncated BPTT.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        (T, B, D) inputs.
    y : torch.Tensor or numpy.ndarray
        (B,) int64 class labels.
    params : dict
        "W" (Hd, Hd), "U" (Hd, D), "b" (Hd,), "V" (C, Hd), "c" (C,). Not modified.
    k : int
        Truncation window, k >= 1; k >= T is full back-propagation.

    Returns
    -------
    dict
        Same five keys, dL/dparam with the parameter's shape, detached.

    Raises
    ------
    ValueError
        If k < 1.
    KeyError
        If a parameter is missing.

    Notes
    -----
    h_0 = 0, h_t = tanh(W h_{t-1} + U x_t + b), logits = h_T V^T + c and
    L = cross_entropy(logits, y) averaged over the batch. The first T-k steps run without a
    graph and h_{T-k} enters the last k steps as a constant, so only those k steps contribute
    to dL/dW, dL/dU and dL/db; V and c are untouched by truncation. Gradients are taken on
    detached copies, so the caller's tensors keep their values, ``requires_grad`` and ``.grad``.
    """
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"truncation window k must be an integer >= 1, got {k!r}")
    k = int(k)
    missing = [name for name in PARAM_NAMES if name not in params]
    if missing:
        raise KeyError(f"params is missing {missing}; expected keys {PARAM_NAMES}")
    p = {name: as_tensor(params[name]).detach().clone() for name in PARAM_NAMES}
    dtype = p["W"].dtype if p["W"].is_floating_point() else torch.get_default_dtype()
    p = {name: t.to(dtype).requires_grad_(True) for name, t in p.items()}
    x = as_tensor(x, dtype).detach()
    y = as_tensor(y).long()
    T, B = x.shape[0], x.shape[1]
    h = x.new_zeros(B, p["W"].shape[0])
    split = max(T - k, 0)
    if split > 0:
        # Steps 1..T-k only produce h_{T-k}, which the truncation treats as a constant.
        with torch.no_grad():
            h = rnn_forward(x[:split], h, p["W"], p["U"], p["b"])[-1]
    with torch.enable_grad():
        h_T = rnn_forward(x[split:], h, p["W"], p["U"], p["b"])[-1] if split < T else h
        logits = h_T @ p["V"].T + p["c"]
        loss = F.cross_entropy(logits, y)
        grads = torch.autograd.grad(loss, [p[name] for name in PARAM_NAMES], allow_unused=True)
    return {
        name: (torch.zeros_like(p[name]) if g is None else g).detach()
        for name, g in zip(PARAM_NAMES, grads)
    }
