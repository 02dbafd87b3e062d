"""reference.recall: the data contract, the model interface and (slow) the calibrated gap."""

from __future__ import annotations

import pytest
import torch

from reference import accuracy, make_recall_data, train_recall


def test_make_recall_data_contract() -> None:
    x, y = make_recall_data(5, 7, 4, seed=3)
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 4, (7, 5), generator=g)
    assert x.shape == (7, 5, 4) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and torch.equal(y, tokens[0])
    assert torch.equal(x.argmax(-1), tokens)
    assert torch.equal(x.sum(-1), torch.ones(7, 5))


def test_model_interface_quick() -> None:
    for cell in ("rnn", "lstm"):
        model = train_recall(cell, 5, 3, 0, steps=3, hidden=4, batch=8)
        assert isinstance(model, torch.nn.Module)
        x, _ = make_recall_data(6, 5, 3, seed=1)
        with torch.no_grad():
            out = model(x.double().numpy())
        assert out.shape == (6, 3)
    with pytest.raises(ValueError):
        train_recall("gru", 5, 3, 0, steps=1)


@pytest.mark.slow
def test_lstm_learns_and_rnn_does_not() -> None:
    """At the rubric's task and threshold, seed 0 (the grader's first try): the LSTM passes, the
    vanilla RNN does not (it passes on some seeds, which is why it earns nothing)."""
    from grader.rubric import load_rubric
    spec = load_rubric().recall
    x, y = make_recall_data(spec.heldout_n, spec.seq_len, spec.n_classes, seed=spec.heldout_seed)
    assert accuracy(train_recall("lstm", spec.seq_len, spec.n_classes, spec.train_seed), x, y) >= spec.threshold
    assert accuracy(train_recall("rnn", spec.seq_len, spec.n_classes, spec.train_seed), x, y) <= 0.6
