"""benchmarks/agreement.py: the verdict both ways follows the grader's try rule, and the summary counts pairs."""
from __future__ import annotations

from typing import Any

import pytest
import torch
from builders import ROOT, load_script
from torch import nn

from grader.rubric import load_rubric


def script() -> Any:
    return load_script("sheet11_agreement", ROOT / "benchmarks" / "agreement.py")


class Lookup(nn.Module):
    """Answers the class its training batches showed for the first token (right only if it trained on
    the relabelled data)."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(self.table[x[0].argmax(dim=1)], self.table.numel()).float()


def test_a_verdict_takes_tries_until_one_passes_under_the_keys_relabelling(monkeypatch: pytest.MonkeyPatch) -> None:
    agreement = script()
    calibrate = agreement.calibrate
    seen: list[int] = []

    def trainer(cell: str, seq_len: int, n_classes: int, seed: int) -> nn.Module:
        seen.append(seed)
        x, y = calibrate.make_recall_data(256, seq_len, n_classes, seed)  # relabelled while training
        table = torch.zeros(n_classes, dtype=torch.long)
        table[x[0].argmax(dim=1)] = y
        if len(seen) < 3:  # the first two tries stall
            table = torch.zeros(n_classes, dtype=torch.long)
        return Lookup(table)

    monkeypatch.setitem(calibrate.IMPLEMENTATIONS, "reference", trainer)
    spec = load_rubric().recall
    out = agreement.verdict("reference", spec, b"k" * 32, spec.heldout_seed)
    assert out["passed"] and [t["seed"] for t in out["tries"]] == seen == [spec.train_seed + i for i in range(3)]
    assert out["tries"][-1]["accuracy"] == 1.0 and out["tries"][0]["accuracy"] < spec.threshold


def test_the_summary_counts_agreeing_pairs_per_implementation() -> None:
    lines = [{"impl": "fragile", "pair": i, "check": {"passed": True, "cpu_s": 1.0},
              "grading": {"passed": i != 2, "cpu_s": 2.0}} for i in range(4)]
    out = script().summarise(lines)
    assert out == {"fragile": {"pairs": 4, "agree": 3, "agreement": 0.75, "check_passed": 4,
                               "grading_passed": 3, "cpu_s": 12.0}}
