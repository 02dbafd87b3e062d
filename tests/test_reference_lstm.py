"""reference.lstm_cell against torch.nn.LSTMCell."""

from __future__ import annotations

import pytest
import torch

from reference import lstm_cell


@pytest.mark.parametrize("B,D,H", [(1, 1, 1), (3, 4, 5), (8, 2, 16)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_lstmcell(B: int, D: int, H: int, dtype: torch.dtype) -> None:
    torch.manual_seed(B + D + H)
    cell = torch.nn.LSTMCell(D, H).to(dtype)
    x = torch.randn(B, D, dtype=dtype)
    h = torch.randn(B, H, dtype=dtype)
    c = torch.randn(B, H, dtype=dtype)
    with torch.no_grad():
        h_exp, c_exp = cell(x, (h, c))
    params = [p.detach().clone() for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]
    h_new, c_new = lstm_cell(x, h, c, *params)
    assert h_new.dtype == dtype and h_new.shape == (B, H) and c_new.shape == (B, H)
    torch.testing.assert_close(h_new, h_exp)
    torch.testing.assert_close(c_new, c_exp)


def test_numpy_inputs_and_gate_order() -> None:
    # Only the forget gate open and only the cell kept: c_new must equal sigmoid(big) * c ~ c,
    # which fails if the reference stacks the gates in another order.
    H, D = 3, 2
    W_ih = torch.zeros(4 * H, D)
    W_hh = torch.zeros(4 * H, H)
    b = torch.zeros(4 * H)
    b[:H] = -30.0  # input gate shut
    b[H : 2 * H] = 30.0  # forget gate open
    c = torch.tensor([[0.5, -1.0, 2.0]])
    h_new, c_new = lstm_cell(
        torch.ones(1, D).numpy(), torch.zeros(1, H).numpy(), c.numpy(), W_ih, W_hh, b, torch.zeros(4 * H)
    )
    torch.testing.assert_close(c_new, c)
    torch.testing.assert_close(h_new, 0.5 * torch.tanh(c))
