"""reference.rnn against torch.nn.RNN, a hand-written loop, and autograd Jacobians."""

from __future__ import annotations

import pytest
import torch

from reference import activation, activation_jacobian, rnn_forward


def _random(T: int, B: int, D: int, H: int, seed: int, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    return r(T, B, D), r(B, H), r(H, H) / H**0.5, r(H, D), r(H)


@pytest.mark.parametrize("T,B,D,H", [(1, 1, 1, 1), (5, 3, 4, 6), (12, 2, 7, 3), (20, 8, 2, 16)])
def test_tanh_matches_torch_rnn(T: int, B: int, D: int, H: int) -> None:
    x, h0, W, U, b = _random(T, B, D, H, seed=T * 100 + H)
    rnn = torch.nn.RNN(D, H, nonlinearity="tanh")
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(W)
        rnn.weight_ih_l0.copy_(U)
        rnn.bias_ih_l0.copy_(b)
        rnn.bias_hh_l0.zero_()
        expected, _ = rnn(x, h0.unsqueeze(0))
    torch.testing.assert_close(rnn_forward(x, h0, W, U, b), expected, rtol=1e-5, atol=1e-6)


def test_split_bias_matches_torch_rnn() -> None:
    x, h0, W, U, _ = _random(9, 4, 3, 5, seed=7)
    rnn = torch.nn.RNN(3, 5)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(W)
        rnn.weight_ih_l0.copy_(U)
        expected, _ = rnn(x, h0.unsqueeze(0))
        b = rnn.bias_ih_l0 + rnn.bias_hh_l0
    torch.testing.assert_close(rnn_forward(x, h0, W, U, b), expected, rtol=1e-5, atol=1e-6)


def test_sigmoid_matches_hand_loop() -> None:
    x, h0, W, U, b = _random(7, 3, 4, 5, seed=3)
    h = h0
    expected = []
    for t in range(7):
        h = 1.0 / (1.0 + torch.exp(-(h @ W.T + x[t] @ U.T + b)))
        expected.append(h)
    got = rnn_forward(x, h0, W, U, b, activation="sigmoid")
    assert got.shape == (7, 3, 5)
    torch.testing.assert_close(got, torch.stack(expected), rtol=1e-5, atol=1e-6)


def test_float64_stays_float64() -> None:
    x, h0, W, U, b = _random(4, 2, 3, 3, seed=1, dtype=torch.float64)
    assert rnn_forward(x, h0, W, U, b).dtype == torch.float64


def test_numpy_input() -> None:
    args = _random(6, 2, 3, 4, seed=2)
    got = rnn_forward(*(a.numpy() for a in args))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    torch.testing.assert_close(got, rnn_forward(*args))


def test_unknown_activation_raises() -> None:
    args = _random(2, 1, 1, 1, seed=0)
    with pytest.raises(ValueError, match="tanh.*sigmoid"):
        rnn_forward(*args, activation="relu")
    with pytest.raises(ValueError):
        activation("softplus")
    with pytest.raises(ValueError):
        activation_jacobian(torch.zeros(3), activation="relu")


@pytest.mark.parametrize("name,fn", [("tanh", torch.tanh), ("sigmoid", torch.sigmoid)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_activation_jacobian_matches_autograd(name: str, fn, dtype: torch.dtype) -> None:
    z = torch.linspace(-4.0, 4.0, 7, dtype=dtype)
    expected = torch.autograd.functional.jacobian(fn, z)
    got = activation_jacobian(z, activation=name)
    assert got.shape == (7, 7) and got.dtype == dtype
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(activation_jacobian(z.numpy(), activation=name), expected)
