"""Write the recall fixture (deterministically): a correct implementation of ``train_recall``
in the fast reference solution; and the cheat that ``tests/make_hostile_fixtures.py`` writes.

    python tests/make_recall_fixtures.py          # (re)write them
    python tests/make_recall_fixtures.py --check  # exit 1 when a stored fixture differs

- ``tests/files/hostile/RecallCheat_...`` (written by make_hostile_fixtures.py, which owns that
  folder): ``train_recall`` returns an untrained module whose
  forward is ``10 * x[0]`` (it reads the label, the first token, off the input). It must earn
  nothing: the grader relabels the classes.
- ``tests/files/recall/RecallOwnStream_...``: a correct ``train_recall`` written another way than
  the reference (``nn.LSTM`` with hidden 32, forget-gate bias on ``bias_hh``, batch 32, lr 1e-2,
  its own batch seeds), so its random stream differs from the reference's. It must pass.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from builders import FILES, notebook_bytes, set_group, solution

CHEAT = '''
import torch

class _FirstToken(torch.nn.Module):
    """Not trained: the label is the first token, so just read it off the input."""

    def forward(self, x):
        return 10 * torch.as_tensor(x, dtype=torch.float32)[0]

def train_recall(cell, seq_len, n_classes, seed):
    return _FirstToken()
'''

OWN_STREAM = '''
import torch
import torch.nn.functional as F

class RecallNet(torch.nn.Module):
    def __init__(self, cell, n_classes, hidden=32):
        super().__init__()
        self.rnn = torch.nn.LSTM(n_classes, hidden) if cell == "lstm" else torch.nn.RNN(n_classes, hidden)
        self.out = torch.nn.Linear(hidden, n_classes)
        if cell == "lstm":
            with torch.no_grad():
                self.rnn.bias_hh_l0[hidden:2 * hidden] = 5.0   # forget gate starts open

    def forward(self, x):
        h, _ = self.rnn(torch.as_tensor(x).float())
        return self.out(h[-1])

def train_recall(cell, seq_len, n_classes, seed):
    torch.manual_seed(seed)
    model = RecallNet(cell, n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(3000):
        x, y = make_recall_data(32, seq_len, n_classes, seed * 100_000 + step)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return model
'''

FIXTURES = {
    "own_stream": (FILES / "recall" / "RecallOwnStream_2600102_Turing_2700102.ipynb", OWN_STREAM),
}


def replace_stub(nb, source: str) -> None:  # type: ignore[no-untyped-def]
    """Put ``source`` in place of the fast solution's train_recall stub (its own cell)."""
    stub = [c for c in nb.cells if c.cell_type == "code" and "skipped in this test" in c.source]
    assert len(stub) == 1, "builders.solution(fast=True) changed"
    stub[0].source = source.lstrip("\n")


def build(key: str) -> bytes:
    path, source = FIXTURES[key]
    case, a, _, b = path.stem.split("_")
    nb = solution(fast=True)
    set_group(nb, [(f"Ada {case} Lovelace", a, "ada@uni.example"), ("Alan Turing", b, "alan@uni.example")])
    replace_stub(nb, source)
    for i, cell in enumerate(nb.cells):  # stable ids: the same bytes every time
        cell["id"] = f"c{i:03d}"
    nb.nbformat, nb.nbformat_minor = 4, 5
    return notebook_bytes(nb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare with the stored files")
    args = parser.parse_args(argv)
    stale = []
    for key, (path, _) in FIXTURES.items():
        data = build(key)
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path}")
    if stale:
        print("stale (run python tests/make_recall_fixtures.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
