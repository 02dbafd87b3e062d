"""Exercise 11.4.c (first half): one step of an LSTM cell."""

from __future__ import annotations

import torch

from reference.rnn import ArrayLike, as_tensor

__all__ = ["lstm_cell"]


def lstm_cell(
    x: ArrayLike,
    h: ArrayLike,
    c: ArrayLike,
    W_ih: ArrayLike,
    W_hh: ArrayLike,
    b_ih: ArrayLike,
    b_hh: ArrayLike,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step, laid out like ``torch.nn.LSTMCell``.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray
        (B, D) input (a single (D,) vector is accepted too).
    h, c : torch.Tensor or numpy.ndarray
        (B, Hd) previous hidden and cell state.
    W_ih : torch.Tensor or numpy.ndarray
        (4 Hd, D) input weights, gates stacked in the order i, f, g, o.
    W_hh : torch.Tensor or numpy.ndarray
        (4 Hd, Hd) recurrent weights, same stacking.
    b_ih, b_hh : torch.Tensor or numpy.ndarray
        (4 Hd,) biases, same stacking.

    Returns
    -------
    h_new : torch.Tensor
        (B, Hd) new hidden state o * tanh(c_new).
    c_new : torch.Tensor
        (B, Hd) new cell state f * c + i * g.

    Notes
    -----
    i, f, o are sigmoid gates and g = tanh(...) is the candidate. The cell update is additive,
    so dc_new/dc = diag(f): with f near 1 the gradient passes many steps without shrinking,
    which is the LSTM's answer to equation (1) of the sheet. Computed in x's dtype.
    """
    x = as_tensor(x)
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    x = x.to(dtype)
    h, c = as_tensor(h, dtype), as_tensor(c, dtype)
    W_ih, W_hh = as_tensor(W_ih, dtype), as_tensor(W_hh, dtype)
    b_ih, b_hh = as_tensor(b_ih, dtype), as_tensor(b_hh, dtype)
    gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    return h_new, c_new
