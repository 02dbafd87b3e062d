"""The code that ran (grader/checks/identity.py): a graded name bound to text that is not in the
notebook is flagged. Fast: the in-process stand-in kernel of tests/test_bridge.py, with cells
compiled as IPython does (the cell's text kept in ``linecache`` under its file name)."""
from __future__ import annotations

import linecache
from pathlib import Path
from typing import Any

from make_hostile_fixtures import RECALL_EXEC, RECALL_PEEK
from test_bridge import FakeSession

import reference
from grader.checks.bridge import Bridge
from grader.checks.identity import find_origins

HONEST = "import torch\n\ndef train_recall(cell, seq_len, n_classes, seed):\n    return torch.nn.LSTM(8, 4)\n"


def _run_cells(tmp_path: Path, cells: list[str]) -> Bridge:
    namespace: dict[str, Any] = {"__name__": "__main__", "make_recall_data": reference.make_recall_data}
    for i, source in enumerate(cells):
        name = f"/tmp/ipykernel_0/cell{i}-{abs(hash(source))}.py"
        linecache.cache[name] = (len(source), None, source.splitlines(keepends=True), name)
        exec(compile(source, name, "exec"), namespace)
    calls = tmp_path / "calls"
    calls.mkdir(exist_ok=True)
    return Bridge(FakeSession(calls, namespace))  # type: ignore[arg-type]


def test_functions_defined_by_cells_are_not_flagged(tmp_path):
    cells = [HONEST, "def tbptt_grads(x, y, params, k):\n    return {}\n"]
    got = find_origins(_run_cells(tmp_path, cells), ["train_recall", "tbptt_grads"], cells, 30)
    assert [(o.function, o.cell, o.problem) for o in got] == [("train_recall", 0, ""), ("tbptt_grads", 1, "")]


def test_exec_of_an_encoded_string_is_flagged(tmp_path):
    """The issue's attack: an honest def in one cell, the cheat bound by exec in a later one."""
    cells = [HONEST, RECALL_EXEC]
    (got,) = find_origins(_run_cells(tmp_path, cells), ["train_recall"], cells, 30)
    assert got.cell is None and "not defined by any cell of the notebook" in got.problem
    assert "<string>" in got.problem


def test_assignment_and_compile_under_a_cells_name_are_flagged(tmp_path):
    cells = [HONEST, RECALL_PEEK.replace("def train_recall(", "def _peek("), "train_recall = _peek\n"]
    (got,) = find_origins(_run_cells(tmp_path, cells), ["train_recall"], cells, 30)
    assert got.cell == 1 and "is `_peek` of code cell 2" in got.problem
