"""reference.gradients: autograd oracle, the bound as a property, equality and regimes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import bound_regimes, check_bound, gradient_bound, hidden_grad_norms


def _loss(h: torch.Tensor) -> torch.Tensor:
    return 0.5 * (h**2).sum() + h[0, 0]


def _setup(T: int, H: int, D: int, spec: float, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    W = r(H, H)
    W = W * (spec / torch.linalg.svdvals(W)[0])
    return r(T, 1, D), r(1, H), W, r(H, D), r(H)


def _oracle_norms(x, h0, W, U, b, loss_fn, act) -> torch.Tensor:
    hs = []
    h = h0.clone().requires_grad_(True)
    for t in range(x.shape[0]):
        h = act(h @ W.T + x[t] @ U.T + b)
        h.retain_grad()
        hs.append(h)
    loss_fn(h).backward()
    return torch.stack([hh.grad.norm() for hh in hs])


@pytest.mark.parametrize("name,act", [("tanh", torch.tanh), ("sigmoid", torch.sigmoid)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_norms_match_autograd_loop(name: str, act, dtype: torch.dtype) -> None:
    x, h0, W, U, b = _setup(9, 5, 3, 1.7, seed=4, dtype=dtype)
    expected = _oracle_norms(x, h0, W, U, b, _loss, act)
    got = hidden_grad_norms(x, h0, W, U, b, _loss, activation=name)
    assert got.shape == (9,) and got.dtype == dtype
    torch.testing.assert_close(got, expected)


def test_numpy_inputs_and_no_side_effects() -> None:
    x, h0, W, U, b = _setup(5, 3, 2, 0.8, seed=1, dtype=torch.float32)
    W.requires_grad_(True)
    got = hidden_grad_norms(x.numpy(), h0.numpy(), W.detach().numpy(), U.numpy(), b.numpy(), _loss)
    torch.testing.assert_close(got, hidden_grad_norms(x, h0, W, U, b, _loss))
    gradient_bound(x, h0, W, U, b, _loss)
    assert W.grad is None


def test_bound_by_hand_for_two_steps() -> None:
    # T = 2: r[0] = ||dL/dh_2|| * ||W||_2 * ||diag(tanh'(z_2))||_2, r[1] = ||dL/dh_2||.
    x, h0, W, U, b = _setup(2, 3, 2, 2.5, seed=9)
    z1 = h0 @ W.T + x[0] @ U.T + b
    z2 = torch.tanh(z1) @ W.T + x[1] @ U.T + b
    h2 = torch.tanh(z2).requires_grad_(True)
    _loss(h2).backward()
    top = h2.grad.norm()
    j2 = (1 - torch.tanh(z2) ** 2).abs().max()
    expected = torch.stack([top * torch.linalg.svdvals(W)[0] * j2, top])
    torch.testing.assert_close(gradient_bound(x, h0, W, U, b, _loss), expected)


@settings(max_examples=200, deadline=None)
@given(
    T=st.integers(1, 12),
    H=st.integers(1, 6),
    D=st.integers(1, 4),
    name=st.sampled_from(["tanh", "sigmoid"]),
    spec=st.floats(0.1, 5.0),
    seed=st.integers(0, 2**16),
)
def test_bound_holds(T: int, H: int, D: int, name: str, spec: float, seed: int) -> None:
    x, h0, W, U, b = _setup(T, H, D, spec, seed)
    g = hidden_grad_norms(x, h0, W, U, b, _loss, activation=name)
    r = gradient_bound(x, h0, W, U, b, _loss, activation=name)
    assert g.shape == r.shape == (T,)
    assert bool((g <= r * (1 + 1e-4) + 1e-7).all()), (g, r)
    torch.testing.assert_close(r[-1], g[-1])
    assert check_bound(x, h0, W, U, b, _loss, activation=name).all_hold


@settings(max_examples=50, deadline=None)
@given(
    T=st.integers(1, 12),
    name=st.sampled_from(["tanh", "sigmoid"]),
    w=st.floats(-3.0, 3.0).filter(lambda v: abs(v) > 1e-3),
    seed=st.integers(0, 2**16),
)
def test_scalar_rnn_meets_bound_with_equality(T: int, name: str, w: float, seed: int) -> None:
    # With Hd = 1 every Jacobian and W are scalars, so the chain rule product *is* the bound.
    x, h0, _, U, b = _setup(T, 1, 2, 1.0, seed)
    W = torch.tensor([[w]], dtype=torch.float64)
    g = hidden_grad_norms(x, h0, W, U, b, _loss, activation=name)
    r = gradient_bound(x, h0, W, U, b, _loss, activation=name)
    # Equal up to float64 rounding, which accumulates over the T - t steps of both products.
    torch.testing.assert_close(g, r, rtol=1e-7, atol=1e-300)


def test_regimes() -> None:
    regimes = bound_regimes(T=30, hidden=16, seed=0)
    van, exp = regimes["vanishing"], regimes["exploding"]
    for check in (van, exp):
        assert check.all_hold and check.norms.shape == (30,) and check.holds.dtype == torch.bool
    assert float(van.norms[0] / van.norms[-1]) < 1e-3
    assert float(exp.norms[0] / exp.norms[-1]) > 1e3
    # The exploding construction makes the bound tight (orthogonal W, tanh' = 1).
    np.testing.assert_allclose(exp.norms.numpy(), exp.bound.numpy(), rtol=1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_regimes_other_seeds(seed: int) -> None:
    regimes = bound_regimes(seed=seed)
    assert float(regimes["vanishing"].norms[0] / regimes["vanishing"].norms[-1]) < 1e-3
    assert float(regimes["exploding"].norms[0] / regimes["exploding"].norms[-1]) > 1e3


def test_bound_check_is_frozen() -> None:
    check = bound_regimes(T=3, hidden=2)["vanishing"]
    with pytest.raises(AttributeError):
        check.norms = torch.zeros(3)  # type: ignore[misc]
