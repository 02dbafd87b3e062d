"""reference.tbptt_grads against autograd written out here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference import tbptt_grads

NAMES = ("W", "U", "b", "V", "c")


def _problem(T: int, B: int = 4, D: int = 3, H: int = 5, C: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    params = {
        "W": torch.randn(H, H, generator=g) * 0.5,
        "U": torch.randn(H, D, generator=g),
        "b": torch.randn(H, generator=g),
        "V": torch.randn(C, H, generator=g),
        "c": torch.randn(C, generator=g),
    }
    x = torch.randn(T, B, D, generator=g)
    y = torch.randint(0, C, (B,), generator=g)
    return x, y, params


def _oracle(x, y, params, detach_at: int | None):
    p = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    h = torch.zeros(x.shape[1], p["W"].shape[0])
    for t in range(1, x.shape[0] + 1):
        if detach_at is not None and t - 1 == detach_at:
            h = h.detach()  # h_{T-k} is held constant
        h = torch.tanh(h @ p["W"].T + x[t - 1] @ p["U"].T + p["b"])
    loss = F.cross_entropy(h @ p["V"].T + p["c"], y)
    loss.backward()
    return {k: p[k].grad for k in NAMES}


@pytest.mark.parametrize("T,k", [(1, 1), (6, 6), (6, 7), (6, 100)])
def test_full_bptt(T: int, k: int) -> None:
    x, y, params = _problem(T)
    got = tbptt_grads(x, y, params, k)
    expected = _oracle(x, y, params, None)
    assert set(got) == set(NAMES)
    for name in NAMES:
        torch.testing.assert_close(got[name], expected[name])


@pytest.mark.parametrize("T,k", [(6, 1), (6, 2), (6, 5), (12, 3)])
def test_truncated(T: int, k: int) -> None:
    x, y, params = _problem(T, seed=T + k)
    got = tbptt_grads(x, y, params, k)
    expected = _oracle(x, y, params, T - k)
    for name in NAMES:
        assert got[name].shape == params[name].shape
        torch.testing.assert_close(got[name], expected[name])
    # Truncation must change the result. U's gradient shows it for every k < T (each step's input
    # enters through U); W's does not at k = T - 1, where the dropped step starts from h_0 = 0.
    full = _oracle(x, y, params, None)
    assert not torch.allclose(got["U"], full["U"])


def test_params_unchanged() -> None:
    x, y, params = _problem(5)
    params["W"].requires_grad_(True)
    before = {k: v.detach().clone() for k, v in params.items()}
    tbptt_grads(x, y, params, 2)
    for k in NAMES:
        assert torch.equal(params[k], before[k])
    assert params["W"].grad is None and not params["U"].requires_grad


def test_numpy_and_float64() -> None:
    x, y, params = _problem(5)
    got = tbptt_grads(x.numpy(), y.numpy(), {k: v.numpy() for k, v in params.items()}, 3)
    expected = _oracle(x, y, params, 2)
    for name in NAMES:
        torch.testing.assert_close(got[name], expected[name])
    got64 = tbptt_grads(x.double(), y, {k: v.double() for k, v in params.items()}, 3)
    assert got64["W"].dtype == torch.float64
    np.testing.assert_allclose(got64["W"].numpy(), expected["W"].numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("k", [0, -1])
def test_bad_window_raises(k: int) -> None:
    x, y, params = _problem(3)
    with pytest.raises(ValueError):
        tbptt_grads(x, y, params, k)
