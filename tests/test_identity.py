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


def test_an_assignment_after_an_honest_def_is_traced_to_the_cell_that_ran(tmp_path):
    """The honest def is not what ran: the origin names the cell of `_peek`, which the report
    shows (marked) instead of the def; the code is in the notebook, so no flag."""
    cells = [HONEST, RECALL_PEEK.replace("def train_recall(", "def _peek("), "train_recall = _peek\n"]
    (got,) = find_origins(_run_cells(tmp_path, cells), ["train_recall"], cells, 30)
    assert (got.cell, got.bound, got.problem) == (1, True, "")


def test_correct_code_by_other_hands_is_not_flagged(tmp_path):
    """Styles of the unseen corpus (tests/make_unseen_fixtures.py): a lambda bound to a contract
    name with no def of it, a factory's inner function, and exec of text written in the notebook."""
    cells = [HONEST,
             "tbptt_grads = lambda x, y, params, k: {}\n",
             "def _factory():\n    def inner(z, activation='tanh'):\n        return z\n    return inner\n"
             "activation_jacobian = _factory()\n",
             "exec(\"def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):\\n    return h, c\\n\")\n"]
    got = find_origins(_run_cells(tmp_path, cells), ["tbptt_grads", "activation_jacobian", "lstm_cell"], cells, 30)
    assert [(o.function, o.cell, o.bound, o.problem) for o in got] == [
        ("tbptt_grads", 1, True, ""), ("activation_jacobian", 2, True, ""), ("lstm_cell", 3, True, "")]
