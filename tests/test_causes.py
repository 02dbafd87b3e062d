"""Why a function raised (grader/checks/causes.py): a raise traced back to the line that made the
wrong value, on student code written in styles the reference does not use.

Each scenario runs a notebook cell's code in this process under a cell's file name, takes the
frames as the kernel-side call code reports them (grader/checks/bridge_kernel.py, through JSON as
over the real channel) and asks for the cause with the cell as the notebook's only code cell.
"""
from __future__ import annotations

import json
import linecache
from pathlib import Path
from typing import Any

import pytest
import torch
from builders import GOOD_NAME, quick_context, set_function, solution, write_notebook

from grader.checks.bridge import Returned
from grader.checks.bridge_kernel import _failed
from grader.checks.causes import MAX_LINES, raise_cause
from grader.checks.compare import compare_case, redacted_hidden
from grader.checks.raised import frames_from
from grader.grade import grade_submission

CELL = "/tmp/ipykernel_4242/{}.py"


def _inputs(T: int = 5, B: int = 3, D: int = 2, H: int = 4, **extra: Any) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    return {"x": torch.randn(T, B, D, generator=g), "h0": torch.randn(B, H, generator=g),
            "W": torch.randn(H, H, generator=g) * 0.3, "U": torch.randn(H, D, generator=g),
            "b": torch.randn(H, generator=g), **extra}


def _raise(source: str, function: str, inputs: dict[str, Any], cell: int = 1) -> tuple[Returned, list[str]]:
    """Run ``function`` of the cell ``source`` on ``inputs``; what the kernel would report of its raise."""
    filename = CELL.format(1000 + cell)
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), namespace)
    try:
        namespace[function](**inputs)
    except Exception as exc:  # noqa: BLE001 - the scenario wants the failure as the kernel reports it
        sent = json.loads(json.dumps(_failed(exc)))
        return Returned("raised", error=sent["error"], error_type=sent["type"], trace=sent["trace"],
                        frames=frames_from(sent["frames"])), [source]
    raise AssertionError("the scenario did not raise")


def _cause(source: str, function: str, inputs: dict[str, Any]) -> Any:
    returned, cells = _raise(source, function, inputs)
    return raise_cause(function, returned.frames, cells, inputs, returned.error_type, returned.error)


def test_parameters_swapped_in_the_function_are_traced_to_the_swap() -> None:
    source = '''import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    f = torch.tanh if activation == "tanh" else torch.sigmoid
    W, U = U, W
    states = []
    h = h0
    for x_t in x:
        h = f(h @ W.T + x_t @ U.T + b)
        states.append(h)
    return torch.stack(states)
'''
    cause = _cause(source, "rnn_forward", _inputs())
    assert cause is not None and cause.rule == "wrong_value" and cause.lines == (5,)
    assert "`W` here holds a value shaped like the argument `U` (4, 2)" in cause.words


def test_a_value_reshaped_from_its_own_argument_is_not_blamed_on_another() -> None:
    # h0 squeezed to (H,) looks like b, but it came from h0 itself: nothing tells where the bug is
    source = '''import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    h0 = h0.squeeze(0)
    return torch.cat([h0, x[0]], dim=1)
'''
    assert _cause(source, "rnn_forward", _inputs(B=1)) is None


def test_arguments_swapped_at_a_helpers_call_are_traced_to_the_call() -> None:
    source = '''import torch


def step(h, x_t, W, U, b):
    return torch.tanh(h @ W.T + x_t @ U.T + b)


def rnn_forward(x, h0, W, U, b, activation="tanh"):
    h, out = h0, []
    for x_t in x:
        h = step(h, x_t, U, W, b)
        out.append(h)
    return torch.stack(out)
'''
    cause = _cause(source, "rnn_forward", _inputs())
    assert cause is not None and cause.rule == "wrong_value" and cause.lines == (11,)


def test_a_value_from_the_notebooks_own_helper_names_its_return() -> None:
    source = '''import torch

def prepare(*arrays):
    return [torch.as_tensor(a, dtype=torch.float32) for a in reversed(arrays)]

def gradient_bound(x, h0, W, U, b, loss_fn=None, activation="tanh"):
    b, U, W, h0, x = prepare(x, h0, W, U, b)
    b, U, W, h0, x = reversed([b, U, W, h0, x])
    h = h0
    for t in range(x.shape[0]):
        h = torch.tanh(h @ W.T + x[t] @ U.T + b)
    return h
'''
    # the helper reverses the order and the caller undoes it a second time: x holds b
    cause = _cause(source, "gradient_bound", _inputs())
    assert cause is not None and cause.rule == "wrong_value" and 8 in cause.lines


def test_sizes_read_off_the_wrong_axes_are_traced_to_where_they_were_read() -> None:
    source = '''import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    B, T, D = x.shape
    Hd = W.shape[0]
    out = torch.zeros(T, B, Hd)
    h = h0
    for t in range(T):
        h = torch.tanh(h @ W.T + x[t] @ U.T + b)
        out[t] = h
    return out
'''
    cause = _cause(source, "rnn_forward", _inputs(T=5, B=3))
    assert cause is not None and cause.rule == "wrong_size" and cause.lines == (4,)
    assert "holds 3, the batch size B on this case, not the number of steps T (5)" in cause.words \
        or "holds 5, the number of steps T on this case, not the batch size B (3)" in cause.words


def test_a_loop_one_step_too_far_is_traced_to_its_range() -> None:
    source = '''import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    steps = len(x)
    h = h0
    out = torch.empty(steps, h0.shape[0], W.shape[0])
    for step in range(1, steps + 1):
        h = torch.tanh(x[step] @ U.T + h @ W.T + b)
        out[step - 1] = h
    return out
'''
    cause = _cause(source, "rnn_forward", _inputs())
    assert cause is not None and cause.rule == "loop_index" and cause.lines == (7, 8)
    assert "`step` runs past the end" in cause.words


def test_an_index_into_a_list_the_function_built_is_not_blamed_on_the_loop() -> None:
    # the list holds T entries (h0 and T - 1 states) and is the short one; a list's right length
    # is the student's convention, so nothing is said
    source = '''import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    hs = [h0]
    for t in range(x.shape[0] - 1):
        hs.append(torch.tanh(hs[-1] @ W.T + x[t] @ U.T + b))
    out = torch.zeros(x.shape[0], *h0.shape)
    for t in range(x.shape[0]):
        out[t] = hs[t + 1]
    return out
'''
    assert _cause(source, "rnn_forward", _inputs()) is None


def test_the_students_own_check_that_refuses_a_valid_input_names_the_test() -> None:
    source = '''import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    if activation not in ("tanh", "sigmod"):
        raise ValueError(f"unknown activation {activation!r}")
    return x
'''
    cause = _cause(source, "rnn_forward", _inputs(activation="sigmoid"))
    assert cause is not None and cause.rule == "own_raise" and cause.lines == (4,)
    chain = '''import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    if activation == "tanh":
        act = torch.tanh
    elif activation == "sigmoïd":
        act = torch.sigmoid
    else:
        raise ValueError(activation)
    return act(x)
'''
    cause = _cause(chain, "rnn_forward", _inputs(activation="sigmoid"))
    assert cause is not None and cause.rule == "own_raise" and cause.lines == (4, 6)


@pytest.mark.parametrize("body", [
    "    raise NotImplementedError",                                   # the template's stub
    "    raise NotImplementedError('11.4 (a)')",
    "    raise ValueError('todo')",                                    # not guarded by any test
])
def test_a_raise_no_test_decides_has_no_cause(body: str) -> None:
    source = f"import torch\n\ndef rnn_forward(x, h0, W, U, b, activation='tanh'):\n{body}\n"
    assert _cause(source, "rnn_forward", _inputs()) is None


def test_gradients_asked_inside_no_grad_name_the_block() -> None:
    source = '''import torch


def forward(x, h0, W, U, b):
    states = [h0]
    for x_t in x:
        states.append(torch.tanh(states[-1] @ W.T + x_t @ U.T + b))
    return states[1:]


def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    with torch.no_grad():
        hs = forward(x, h0.clone().requires_grad_(), W, U, b)
        loss = loss_fn(hs[-1])
    return torch.stack([g.norm() for g in torch.autograd.grad(loss, hs)])
'''
    inputs = _inputs(loss_fn=lambda h: (h ** 2).sum())
    cause = _cause(source, "hidden_grad_norms", inputs)
    assert cause is None  # the raise is outside the block: the block is not on the raising line's path
    inside = source.replace("        loss = loss_fn(hs[-1])\n    return", "        loss = loss_fn(hs[-1])\n        return")
    cause = _cause(inside, "hidden_grad_norms", inputs)
    assert cause is not None and cause.rule == "no_grad" and cause.lines == (12,)


def test_unpacking_what_a_helper_returns_names_its_return() -> None:
    source = '''import torch

def split_params(W, U, b):
    return W, U

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    W2, U2, b2 = split_params(W, U, b)
    return x
'''
    cause = _cause(source, "rnn_forward", _inputs())
    assert cause is not None and cause.rule == "unpack" and cause.lines == (4,)


def test_a_library_call_refusing_a_helpers_result_names_the_helper_return() -> None:
    source = '''import torch

def slope(z, activation):
    if activation == "tanh":
        return 1 - torch.tanh(z).pow(2).sum()
    return torch.sigmoid(z) * (1 - torch.sigmoid(z))

def activation_jacobian(z, activation="tanh"):
    return torch.diag(slope(z.reshape(-1), activation))
'''
    inputs = {"z": torch.randn(1, 4), "activation": "tanh"}
    cause = _cause(source, "activation_jacobian", inputs)
    assert cause is not None and cause.rule == "own_result" and cause.lines == (5, 6)


def test_forged_or_unmatched_frames_give_no_cause() -> None:
    assert frames_from([{"file": CELL.format(1), "line": "3", "fn": "f", "shapes": {}},
                        {"file": 7, "line": 3, "fn": "f"}, "x", None]) == ()
    frames = frames_from([{"file": CELL.format(1), "line": 2, "fn": "rnn_forward",
                           "shapes": {"W": [3, 3], "bad name": [1], "U": ["a"], "b": [True]}}])
    assert frames and dict(frames[0].shapes) == {"W": (3, 3)}
    # a frame whose function is not in the notebook's cells (a forged file or name): nothing said
    cells = ["def other():\n    return 1\n"]
    assert raise_cause("rnn_forward", frames, cells, _inputs(), "RuntimeError", "boom") is None
    # a cell that is not Python at all
    assert raise_cause("rnn_forward", frames, ["%%bash\necho hi\n"], _inputs(), "RuntimeError", "x") is None


def test_a_public_case_and_a_hidden_case_both_carry_the_cause() -> None:
    source = '''import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    U, b = b, U
    return torch.stack([torch.tanh(h0 @ W.t() + x_t @ U.t() + b) for x_t in x])
'''
    inputs = _inputs()
    returned, cells = _raise(source, "rnn_forward", inputs)
    case = compare_case("rnn_forward", 1, "seed = 1", "x (5, 3, 2)", inputs, torch.zeros(5, 3, 4).numpy(),
                        returned, 1e-4, 1e-5, 1.0, cells)
    said = "`U` here holds a value shaped like the argument `b` (4,), not like `U` (4, 2); it got that value on line 4"
    assert case.cause_lines == (4,) and "Where it comes from: `" in case.message and said in case.message
    hidden = redacted_hidden(case)
    assert said in hidden.message and hidden.cause_lines == (4,)
    assert len(case.cause_lines) <= MAX_LINES
    # result.json keeps it (a regrade or a replay reads the same case back)
    from grader.result import _case_from_json, _case_json
    back = _case_from_json(json.loads(json.dumps(_case_json(hidden))))
    assert back.cause == hidden.cause and back.cause_lines == (4,)


@pytest.mark.slow
def test_a_real_kernel_reports_the_frames_and_the_report_traces_the_raise(tmp_path: Path) -> None:
    """Through the whole pipeline: IPython's cell files, the kernel-side frames, the notebook's cells."""
    nb = solution()
    set_function(nb, "rnn_forward", '''import torch


def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation]
    W, U, b = torch.as_tensor(b), torch.as_tensor(U), torch.as_tensor(W)
    h, out = torch.as_tensor(h0), []
    for x_t in torch.as_tensor(x):
        h = act(h @ W.T + x_t @ U.T + b)
        out.append(h)
    return torch.stack(out)
''')
    path = write_notebook(nb, tmp_path / f"{GOOD_NAME}.ipynb")
    result = grade_submission(path, quick_context())
    raised = [c for c in result.questions["11.4.a"].cases if c.function == "rnn_forward" and c.call_status == "raised"]
    assert raised  # where H = D a case may run through with wrong values instead
    for case in raised:
        assert case.cause_lines == (6,), case.message
        assert "Where it comes from: `" in case.message and "it got that value on line 6" in case.message
        assert "`W` here holds a value shaped like the argument `b`" in case.message
