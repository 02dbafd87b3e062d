"""The recall evidence (issue 20): points only for an LSTM whose accuracy comes from what it
learned, and CPU time counted from the training call to the last call on the model.

Fast: the "kernel" is the in-process stand-in of tests/test_bridge.py running the very code the
grader sends (the relabelling harness, grader/checks/recall_kernel.py), with this process as the
kernel's process tree; the models train at a short seq_len. The student code is the hostile
fixtures' own (tests/make_hostile_fixtures.py). The real-kernel runs are in tests/test_hostile.py.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from make_hostile_fixtures import RECALL_PEEK, RECALL_THREAD
from make_recall_fixtures import OWN_STREAM
from test_bridge import FakeSession

import reference
from grader.checks import recall as R
from grader.checks.bridge import Bridge
from grader.rubric import Rubric, load_rubric

SEQ_LEN = 10


class TreeSession(FakeSession):
    restarts = 0

    def kernel_pid(self) -> int:
        return os.getpid()


def _rubric() -> Rubric:
    rubric = load_rubric()
    return dataclasses.replace(rubric, recall=dataclasses.replace(rubric.recall, heldout_n=600, evidence_n=600))


def _bridge(tmp_path: Path, source: str | None = None, **names: Any) -> Bridge:
    namespace: dict[str, Any] = {"__name__": "__main__", "make_recall_data": reference.make_recall_data}
    namespace.update(names)
    if source is not None:
        exec(compile(source, "<student>", "exec"), namespace)
    calls = tmp_path / "calls"
    calls.mkdir(exist_ok=True)
    return Bridge(TreeSession(calls, namespace))  # type: ignore[arg-type]


#: The honest fixture of tests/make_recall_fixtures.py (nn.LSTM, its own batch seeds), shorter.
HONEST = OWN_STREAM.replace("range(3000)", "range(500)")


def _attempt(bridge: Bridge, rubric: Rubric) -> R.Attempt:
    perm = R.draw_permutation(rubric.recall.n_classes, R.permutation_key(b"k" * 32, "ab" * 32))
    x, y = R.heldout(rubric.recall.heldout_n, SEQ_LEN, rubric.recall.n_classes, 4242, perm)
    return R._attempt(bridge, rubric, "lstm", 0, perm, x, y)


def test_an_honest_lstm_passes_with_its_memory_shown(tmp_path):
    rubric = _rubric()
    got = _attempt(_bridge(tmp_path, HONEST), rubric)
    assert got.status == "ok" and got.accuracy is not None and got.accuracy >= 0.9, got.problem
    assert got.passed(rubric.recall.threshold, rubric.recall.cpu_time_limit)
    assert got.memory is not None and got.memory >= rubric.recall.memory_min_accuracy
    assert got.memory_reset is not None and got.memory_reset < 0.35  # re-initialised: about chance (1/8)


def test_reading_the_relabelling_off_one_batch_earns_nothing(tmp_path):
    """The issue's attack: 100 % held-out accuracy without training; the decoy LSTM is run but
    its state (rebuilt and run by the grader) does not hold the first token."""
    rubric = _rubric()
    got = _attempt(_bridge(tmp_path, RECALL_PEEK), rubric)
    assert got.accuracy == 1.0  # the relabelling is no secret to a trainer: the evidence decides
    assert got.status == "no-memory" and not got.passed(rubric.recall.threshold, rubric.recall.cpu_time_limit)
    assert "names the first token for only" in got.problem and got.memory is not None and got.memory < 0.4
    assert not R.should_retry(got, rubric.recall.threshold, rubric.recall.cpu_time_limit)


class _NoRecurrence(torch.nn.Module):
    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10 * torch.nn.functional.one_hot(self.table[x[0].argmax(-1)], 8).float()


class _Reversed(torch.nn.Module):
    """A real, trained LSTM that reads the sequence backwards: the first token is its last step."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.as_tensor(x).flip(0))


def _peek_table(seq_len: int, n_classes: int, seed: int) -> torch.Tensor:
    x, y = reference.make_recall_data(512, seq_len, n_classes, seed)  # rebound to the relabelling
    table = torch.zeros(n_classes, dtype=torch.long)
    table[x[0].argmax(-1)] = y
    return table


def test_a_model_without_an_lstm_earns_nothing(tmp_path):
    rubric = _rubric()
    bridge = _bridge(tmp_path)
    ns = bridge.session.namespace  # type: ignore[attr-defined]
    ns["train_recall"] = lambda c, s, n, seed: _NoRecurrence(
        (lambda x, y: torch.zeros(n, dtype=torch.long).index_put_((x[0].argmax(-1),), y))(
            *ns["make_recall_data"](512, s, n, seed)))
    got = _attempt(bridge, rubric)
    assert got.accuracy == 1.0 and got.status == "no-memory"
    assert "found no LSTM in the model" in got.problem


#: Correct LSTMs by other hands, without torch.nn.LSTM: the notebook's own lstm_cell in a loop
#: (the calibration's cell_loop), and an inline LSTM with its gates in an order of its own.
OWN_CELL = """
import torch
import torch.nn.functional as F

def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new

class Loop(torch.nn.Module):
    def __init__(self, n_classes, hidden=32):
        super().__init__()
        k = hidden ** -0.5
        self.W_ih = torch.nn.Parameter(torch.empty(4 * hidden, n_classes).uniform_(-k, k))
        self.W_hh = torch.nn.Parameter(torch.empty(4 * hidden, hidden).uniform_(-k, k))
        self.b_ih = torch.nn.Parameter(torch.zeros(4 * hidden))
        self.b_hh = torch.nn.Parameter(torch.zeros(4 * hidden))
        with torch.no_grad():
            self.b_ih[hidden:2 * hidden] = 5.0
        self.hidden = hidden
        self.out = torch.nn.Linear(hidden, n_classes)

    def forward(self, x):
        x = torch.as_tensor(x).float()
        h = x.new_zeros(x.shape[1], self.hidden)
        c = x.new_zeros(x.shape[1], self.hidden)
        for t in range(x.shape[0]):
            h, c = lstm_cell(x[t], h, c, self.W_ih, self.W_hh, self.b_ih, self.b_hh)
        return self.out(h)

def train_recall(cell, seq_len, n_classes, seed):
    torch.manual_seed(seed)
    model = Loop(n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(400):
        x, y = make_recall_data(32, seq_len, n_classes, seed * 100_000 + step)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return model
"""
# Gates stacked (f, o, i, g), the cell written out in forward, and no function called lstm_cell.
INLINE = OWN_CELL.replace("def lstm_cell(", "def my_step(").replace(
    "h, c = lstm_cell(", "h, c = my_step(").replace(
    "i, f, g, o = (", "f, o, i, g = (").replace(
    "self.b_ih[hidden:2 * hidden] = 5.0", "self.b_ih[0:hidden] = 5.0")


@pytest.mark.slow
@pytest.mark.parametrize("source", [OWN_CELL, INLINE], ids=["own_lstm_cell", "inline_gates_f_o_i_g"])
def test_a_hand_written_lstm_passes_with_its_memory_shown(tmp_path, source):
    rubric = _rubric()
    got = _attempt(_bridge(tmp_path, source), rubric)
    assert got.status == "ok" and got.accuracy is not None and got.accuracy >= 0.9, got.problem
    assert got.memory is not None and got.memory >= rubric.recall.memory_min_accuracy
    assert got.memory_reset is not None and got.memory_reset < 0.35


def test_lstm_shaped_decoy_weights_beside_a_lookup_table_earn_nothing(tmp_path):
    """The peek again, now with untrained LSTM-shaped parameters for the grader to find."""
    rubric = _rubric()
    bridge = _bridge(tmp_path)
    ns = bridge.session.namespace  # type: ignore[attr-defined]

    def train(c, s, n, seed):
        x, y = ns["make_recall_data"](512, s, n, seed)  # the grader's relabelling, read off one batch
        model = _NoRecurrence(torch.zeros(n, dtype=torch.long).index_put_((x[0].argmax(-1),), y))
        model.W_hh = torch.nn.Parameter(torch.randn(4 * 16, 16))
        model.W_ih = torch.nn.Parameter(torch.randn(4 * 16, n))
        return model
    ns["train_recall"] = train
    got = _attempt(bridge, rubric)
    assert got.accuracy == 1.0 and got.status == "no-memory", got.problem
    assert "names the first token for only" in got.problem


def test_an_lstm_that_reads_the_sequence_backwards_earns_nothing(tmp_path):
    rubric = _rubric()

    def backwards(cell: str, seq_len: int, n_classes: int, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        model = reference.RecallClassifier(cell, n_classes, 16)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for step in range(150):  # the label is the last step now: easy
            x, y = bridge.session.namespace["make_recall_data"](64, seq_len, n_classes, step)  # type: ignore[attr-defined]
            loss = torch.nn.functional.cross_entropy(model(x.flip(0)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return _Reversed(model)

    bridge = _bridge(tmp_path, train_recall=backwards)
    got = _attempt(bridge, rubric)
    assert got.accuracy is not None and got.accuracy >= 0.9
    assert got.status == "no-memory" and "not that step's token alone, in order" in got.problem


def test_training_in_a_background_thread_is_counted(tmp_path):
    """The issue's attack: the train call returns at once, the forward waits for the thread."""
    rubric = _rubric()
    source = RECALL_THREAD.replace("steps=3000", "steps=400")
    baseline = threading.active_count()
    t0 = time.process_time()
    got = _attempt(_bridge(tmp_path, source), rubric)
    spent = time.process_time() - t0
    end = time.monotonic() + 10
    while threading.active_count() > baseline and time.monotonic() < end:
        time.sleep(0.05)
    assert got.cpu_seconds is not None and got.cpu_seconds >= 0.6 * spent, (got.cpu_seconds, spent)
    assert spent > 0.2  # it did train (in the thread, after the train call returned)


def test_probe_reads_a_state_that_holds_the_label_and_not_one_that_does_not():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 8, 400)
    holds = np.eye(8)[labels] + 0.1 * rng.standard_normal((400, 8))
    noise = rng.standard_normal((400, 32))
    assert R.probe_accuracy(np.hstack([holds, noise]), labels, 8) > 0.95
    assert R.probe_accuracy(noise, labels, 8) < 0.3


@pytest.mark.parametrize("entry, words", [
    ({}, "found no LSTM in the model"),
    ({"modules": ({"kind": 0.0, "calls": 1.0, "hidden_size": 4.0, "input_size": 8.0, "bias": 1.0,
                   "num_layers": 1.0, "batch_first": 0.0, "bidirectional": 1.0, "proj_size": 0.0},)},
     "bidirectional"),
    ({"modules": ({"kind": 0.0, "calls": 1.0, "hidden_size": 4.0, "input_size": 8.0, "bias": 1.0,
                   "num_layers": 1.0, "batch_first": 0.0, "bidirectional": 0.0, "proj_size": 0.0,
                   "weights": {}},)}, "could not be rebuilt"),
])
def test_forged_or_odd_evidence_is_refused_in_plain_words(entry, words):
    tokens = np.zeros((SEQ_LEN, 40), dtype=np.int64)
    got = R.judge_memory(entry, tokens, "lstm", 8, 0.6)
    assert got.problem and words in got.problem
