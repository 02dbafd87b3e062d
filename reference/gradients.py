"""Exercise 11.4.b: hidden-state gradient norms and the bound (1) of the sheet.

Equation (1): ||dL/dh_t|| <= ||dL/dh_T|| ||W||^(T-t) prod_{k=t}^{T-1} ||J_{k+1}||, with
J_{k+1} = diag(act'(z_{k+1})). It follows from dL/dh_t = (W^T J_{t+1}) ... (W^T J_T) dL/dh_T
(Jacobian chain) and submultiplicativity of the spectral norm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from reference.rnn import ArrayLike, _lookup, activation_jacobian, as_tensor

__all__ = [
    "BoundCheck",
    "bound_regimes",
    "check_bound",
    "gradient_bound",
    "hidden_grad_norms",
]

LossFn = Callable[[torch.Tensor], torch.Tensor]


def _prepare(
    x: ArrayLike, h0: ArrayLike, W: ArrayLike, U: ArrayLike, b: ArrayLike
) -> tuple[torch.Tensor, ...]:
    # Detached copies in x's dtype: the norms are diagnostics and must not leave a graph
    # hanging on the caller's tensors (or fail on leaves that do not require grad).
    x = as_tensor(x)
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    return tuple(as_tensor(a, dtype).detach() for a in (x, h0, W, U, b))


def _states(
    x: torch.Tensor,
    h0: torch.Tensor,
    W: torch.Tensor,
    U: torch.Tensor,
    b: torch.Tensor,
    activation: str,
    track: bool,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Pre-activations z_1..z_T and states h_1..h_T as lists (index t-1 holds step t)."""
    act = _lookup(activation)
    h = h0.clone().requires_grad_(track)
    zs: list[torch.Tensor] = []
    hs: list[torch.Tensor] = []
    for t in range(x.shape[0]):
        z = h @ W.T + x[t] @ U.T + b
        h = act(z)
        zs.append(z)
        hs.append(h)
    return zs, hs


def _grad_wrt(loss_fn: LossFn, hs: list[torch.Tensor]) -> list[torch.Tensor]:
    loss = loss_fn(hs[-1])
    if loss.numel() != 1:
        raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
    # allow_unused: a loss that ignores h_T has zero gradient everywhere, not an error.
    grads = torch.autograd.grad(loss.reshape(()), hs, allow_unused=True)
    return [torch.zeros_like(h) if g is None else g for h, g in zip(hs, grads)]


def hidden_grad_norms(
    x: ArrayLike,
    h0: ArrayLike,
    W: ArrayLike,
    U: ArrayLike,
    b: ArrayLike,
    loss_fn: LossFn,
    activation: str = "tanh",
) -> torch.Tensor:
    """Norms of the loss gradient with respect to every hidden state, by autograd.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        (T, 1, D) inputs (batch size 1).
    h0 : torch.Tensor or numpy.ndarray
        (1, Hd) initial state.
    W, U, b : torch.Tensor or numpy.ndarray
        (Hd, Hd), (Hd, D), (Hd,) RNN parameters as in :func:`reference.rnn.rnn_forward`.
    loss_fn : callable
        Maps h_T of shape (1, Hd) to a scalar L.
    activation : {"tanh", "sigmoid"}
        Elementwise non-linearity.

    Returns
    -------
    torch.Tensor
        g of shape (T,), g[t-1] = ||dL/dh_t||_2, in x's dtype.

    Notes
    -----
    dL/dh_t is the *total* derivative through all later steps, which is what
    ``torch.autograd.grad(L, [h_1, ..., h_T])`` returns for intermediate tensors.
    """
    x, h0, W, U, b = _prepare(x, h0, W, U, b)
    if x.shape[0] == 0:
        return x.new_zeros(0)
    with torch.enable_grad():
        _, hs = _states(x, h0, W, U, b, activation, track=True)
        grads = _grad_wrt(loss_fn, hs)
    return torch.stack([torch.linalg.vector_norm(g) for g in grads]).detach()


def gradient_bound(
    x: ArrayLike,
    h0: ArrayLike,
    W: ArrayLike,
    U: ArrayLike,
    b: ArrayLike,
    loss_fn: LossFn,
    activation: str = "tanh",
) -> torch.Tensor:
    """Right-hand side of equation (1) for every t, with spectral norms.

    Parameters
    ----------
    x, h0, W, U, b, loss_fn, activation
        As in :func:`hidden_grad_norms`.

    Returns
    -------
    torch.Tensor
        r of shape (T,), r[t-1] = ||dL/dh_T||_2 * ||W||_2^(T-t) * prod_{k=t}^{T-1} ||J_{k+1}||_2,
        in x's dtype; r[T-1] = ||dL/dh_T||_2.

    Notes
    -----
    J_{k+1} = diag(act'(z_{k+1})) is built by
    :func:`reference.rnn.activation_jacobian`, and every norm is
    ``torch.linalg.matrix_norm(ord=2)``, so r is exactly the quantity the sheet writes down.
    The factors are accumulated backwards in time, one multiplication per step.
    """
    x, h0, W, U, b = _prepare(x, h0, W, U, b)
    T = x.shape[0]
    if T == 0:
        return x.new_zeros(0)
    with torch.no_grad():
        zs, hs = _states(x, h0, W, U, b, activation, track=False)
    with torch.enable_grad():
        h_T = hs[-1].detach().requires_grad_(True)
        (dL_dhT,) = _grad_wrt(loss_fn, [h_T])
    w_norm = torch.linalg.matrix_norm(W, ord=2)
    j_norms = [
        torch.linalg.matrix_norm(activation_jacobian(z.reshape(-1), activation), ord=2)
        for z in zs
    ]
    r = x.new_empty(T)
    factor = torch.linalg.vector_norm(dL_dhT).to(x.dtype)
    r[T - 1] = factor
    # r[t-1] = r[t] * ||W|| * ||J_{t+1}||, and J_{t+1} is built from zs[t].
    for idx in range(T - 2, -1, -1):
        factor = factor * w_norm * j_norms[idx + 1]
        r[idx] = factor
    return r


@dataclass(frozen=True)
class BoundCheck:
    """Gradient norms beside their bound.

    Attributes
    ----------
    norms : torch.Tensor
        (T,) g from :func:`hidden_grad_norms`.
    bound : torch.Tensor
        (T,) r from :func:`gradient_bound`.
    holds : torch.Tensor
        (T,) bool, whether g[t] <= r[t] up to the tolerance used.
    """

    norms: torch.Tensor
    bound: torch.Tensor
    holds: torch.Tensor

    @property
    def all_hold(self) -> bool:
        """Whether the bound holds at every time step."""
        return bool(self.holds.all())


def check_bound(
    x: ArrayLike,
    h0: ArrayLike,
    W: ArrayLike,
    U: ArrayLike,
    b: ArrayLike,
    loss_fn: LossFn,
    activation: str = "tanh",
    rtol: float = 1e-5,
    *,
    atol: float = 0.0,
) -> BoundCheck:
    """Compute g and r and compare them.

    Parameters
    ----------
    x, h0, W, U, b, loss_fn, activation
        As in :func:`hidden_grad_norms`.
    rtol : float
        Relative slack for rounding: g <= r * (1 + rtol) + atol counts as holding.
    atol : float
        Absolute slack, for bounds that underflow to (almost) zero.

    Returns
    -------
    BoundCheck
        norms (T,), bound (T,), holds (T,) bool.

    Notes
    -----
    For Hd = 1 every norm is an absolute value and the bound is an equality, so a slack is
    needed even though the inequality is exact mathematically.
    """
    g = hidden_grad_norms(x, h0, W, U, b, loss_fn, activation)
    r = gradient_bound(x, h0, W, U, b, loss_fn, activation)
    return BoundCheck(norms=g, bound=r, holds=g <= r * (1.0 + rtol) + atol)


def _with_spectral_norm(A: torch.Tensor, target: float) -> torch.Tensor:
    scaled: torch.Tensor = A * (target / torch.linalg.matrix_norm(A, ord=2))
    return scaled


def bound_regimes(T: int = 30, hidden: int = 16, seed: int = 0) -> dict[str, BoundCheck]:
    """Two RNNs in which the gradient norms vanish, respectively explode, back in time.

    Parameters
    ----------
    T : int
        Sequence length.
    hidden : int
        Hidden size Hd; the input size is Hd as well.
    seed : int
        Seed of a private generator for the random weights and inputs.

    Returns
    -------
    dict
        ``{"vanishing": BoundCheck, "exploding": BoundCheck}``, float64.

    Notes
    -----
    *vanishing*: a Gaussian W rescaled to ||W||_2 = 0.5, sigmoid activation (||J|| <= 1/4),
    inputs and bias of order one. Each step back multiplies the bound by at most 0.125, so
    g[0] / g[T-1] <= 0.125^(T-1) (about 1e-26 for T = 30), whatever the loss.

    *exploding*: W = 3 Q with Q a random orthogonal matrix, tanh, h_0 = 0, b = 0 and inputs of
    size 1e-20. The inputs keep every z_t within about 3^T 1e-20 (< 1e-5 for T = 30) of 0,
    where tanh' = 1 to double precision, so dL/dh_t = (W^T)^(T-t) dL/dh_T, and an orthogonal
    Q makes its norm exactly 3^(T-t) ||dL/dh_T||: g[0] / g[T-1] = 3^(T-1) (about 7e13), and
    the bound is tight. A generic W with ||W||_2 = 3 would not do: its spectral radius can be
    well below 3, and large inputs would saturate tanh and shrink the Jacobians.

    The loss is L = <v, h_T> for a fixed random unit vector v, so ||dL/dh_T|| = 1.
    """
    gen = torch.Generator().manual_seed(seed)
    dt = torch.float64

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=dt)

    v = randn(1, hidden)
    v = v / torch.linalg.vector_norm(v)

    def loss_fn(h: torch.Tensor) -> torch.Tensor:
        loss: torch.Tensor = (h * v.to(h.dtype)).sum()
        return loss

    W_v = _with_spectral_norm(randn(hidden, hidden), 0.5)
    U_v = randn(hidden, hidden) / np.sqrt(hidden)
    vanishing = check_bound(
        randn(T, 1, hidden), randn(1, hidden), W_v, U_v, randn(hidden), loss_fn, "sigmoid"
    )

    Q, _ = torch.linalg.qr(randn(hidden, hidden))
    exploding = check_bound(
        1e-20 * randn(T, 1, hidden),
        torch.zeros(1, hidden, dtype=dt),
        3.0 * Q,
        randn(hidden, hidden) / np.sqrt(hidden),
        torch.zeros(hidden, dtype=dt),
        loss_fn,
        "tanh",
    )
    return {"vanishing": vanishing, "exploding": exploding}
