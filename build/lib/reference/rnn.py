"""Exercise 11.4.a: the vanilla RNN forward pass, and the activation Jacobian of 11.4.b."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["ACTIVATIONS", "activation", "activation_jacobian", "as_tensor", "rnn_forward"]

#: Names accepted wherever an ``activation`` argument appears.
ACTIVATIONS: tuple[str, ...] = ("tanh", "sigmoid")

ArrayLike = torch.Tensor | np.ndarray


def as_tensor(a: ArrayLike, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert a tensor or numpy array to a tensor without changing its float dtype.

    Parameters
    ----------
    a : torch.Tensor or numpy.ndarray
        Input of any shape.
    dtype : torch.dtype, optional
        Target dtype; by default the input's own dtype is kept.

    Returns
    -------
    torch.Tensor
        Same shape as ``a``.
    """
    t = torch.as_tensor(a)
    return t if dtype is None else t.to(dtype)


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Look up an activation function by name.

    Parameters
    ----------
    name : {"tanh", "sigmoid"}
        Activation name.

    Returns
    -------
    callable
        Elementwise function tensor -> tensor of the same shape.

    Raises
    ------
    ValueError
        For any other name; the message lists the allowed ones.
    """
    if name == "tanh":
        return torch.tanh
    if name == "sigmoid":
        return torch.sigmoid
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


# The public functions take an argument called ``activation`` (the contract's name), which
# shadows the helper inside them; they reach it through this alias.
_lookup = activation


def _derivative(name: str, z: torch.Tensor) -> torch.Tensor:
    # Closed forms in terms of the activation's value: exact and cheaper than autograd.
    if name == "tanh":
        return 1.0 - torch.tanh(z) ** 2
    if name == "sigmoid":
        s = torch.sigmoid(z)
        return s * (1.0 - s)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def rnn_forward(
    x: ArrayLike,
    h0: ArrayLike,
    W: ArrayLike,
    U: ArrayLike,
    b: ArrayLike,
    activation: str = "tanh",
) -> torch.Tensor:
    """Run a vanilla RNN over a batch of sequences.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        (T, B, D) inputs; time step t = 1..T is stored at index t-1.
    h0 : torch.Tensor or numpy.ndarray
        (B, Hd) initial hidden state.
    W : torch.Tensor or numpy.ndarray
        (Hd, Hd) recurrent weights.
    U : torch.Tensor or numpy.ndarray
        (Hd, D) input weights.
    b : torch.Tensor or numpy.ndarray
        (Hd,) bias.
    activation : {"tanh", "sigmoid"}
        Elementwise non-linearity.

    Returns
    -------
    torch.Tensor
        H of shape (T, B, Hd) with H[t-1] = h_t, in x's dtype.

    Raises
    ------
    ValueError
        For an unknown activation.

    Notes
    -----
    z_t = W h_{t-1} + U x_t + b and h_t = act(z_t). With row-vector batches this is
    ``h @ W.T + x_t @ U.T + b``, the same computation as ``torch.nn.RNN`` with
    weight_hh = W, weight_ih = U and bias_ih + bias_hh = b. The result stays connected to the
    autograd graph of the inputs, so 11.4.b can differentiate through it.
    """
    act = _lookup(activation)
    x = as_tensor(x)
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    x = x.to(dtype)
    h = as_tensor(h0, dtype)
    W, U, b = as_tensor(W, dtype), as_tensor(U, dtype), as_tensor(b, dtype)
    # The input projection has no time dependence, so do it for all steps in one matmul.
    xu = x @ U.T + b
    hs: list[torch.Tensor] = []
    for t in range(x.shape[0]):
        h = act(h @ W.T + xu[t])
        hs.append(h)
    if not hs:
        return x.new_zeros((0, h.shape[0], W.shape[0]))
    return torch.stack(hs)


def activation_jacobian(z: ArrayLike, activation: str = "tanh") -> torch.Tensor:
    """Jacobian of h = act(z) with respect to z.

    Parameters
    ----------
    z : torch.Tensor or numpy.ndarray
        (Hd,) pre-activation.
    activation : {"tanh", "sigmoid"}
        Elementwise non-linearity.

    Returns
    -------
    torch.Tensor
        J of shape (Hd, Hd) = diag(act'(z)), in z's dtype.

    Raises
    ------
    ValueError
        For an unknown activation.

    Notes
    -----
    This is J_{k+1} of equation (1) of the sheet when z = z_{k+1}: an elementwise activation
    has a diagonal Jacobian, so its spectral norm is max_i |act'(z_i)| (<= 1 for tanh,
    <= 1/4 for sigmoid).
    """
    z = as_tensor(z)
    if not z.is_floating_point():
        z = z.to(torch.get_default_dtype())
    return torch.diag(_derivative(activation, z.reshape(-1)))
