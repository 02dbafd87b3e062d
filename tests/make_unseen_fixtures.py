"""Write the red-team corpus into ``tests/files/unseen/`` (deterministically).

    python tests/make_unseen_fixtures.py          # (re)write every fixture
    python tests/make_unseen_fixtures.py --check  # exit 1 when a stored fixture differs

Submissions nobody tuned the grader on, written to the contract by "other hands":

- ``A``: correct in unusual styles; they must keep every automatic point.
- ``B``: buggy the way students are; they lose the points of the broken function only, and the
  report names the failing case.
- ``C``: hostile; they never gain a point, never stall or crash the batch, never garble a report.

Each fixture is the fast reference solution (``builders.solution(fast=True)``: ``train_recall`` a
stub that raises) with the scenario's cells appended at the end (the last definition wins), a
group of "Ada <Case> Lovelace" and "Alan Turing" matching the file name, and a first markdown cell
that says what it is and what it should get. ``SCENARIOS`` holds the expected outcome the tests
assert (tests/test_unseen.py).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nbformat
from builders import FILES, cell_with_tag, notebook_bytes, set_answer, set_group, solution

UNSEEN = FILES / "unseen"
AUTO = ("11.4.a", "11.4.b", "11.4.c", "11.4.d")
# The fast solution: train_recall is a stub, so 11.4.d keeps tbptt_grads' 0.5 only.
FAST = {"11.4.a": 1.0, "11.4.b": 1.0, "11.4.c": 1.0, "11.4.d": 0.5}


@dataclass(frozen=True)
class Scenario:
    case: str                     # CamelCase part of the file name and of the first member's name
    kind: str                     # A (correct, unusual) | B (buggy) | C (hostile)
    about: str                    # what it is and the expected outcome (also the notebook's first cell)
    cells: tuple[str, ...] = ()   # code cells appended at the end
    points: dict[str, float] = field(default_factory=lambda: dict(FAST))  # expected, per auto question
    flags: tuple[str, ...] = ()   # flag codes that must be raised (and no others)
    report: tuple[str, ...] = ()  # text the student report must contain (case-insensitive)
    status: str = "graded"
    edit: Callable[[Any], None] | None = None   # any other change to the notebook
    members: tuple[tuple[str, str, str], ...] | None = None   # instead of the default group
    filename: str | None = None   # instead of <Case>_<id>_Turing_<id>.ipynb
    recall: bool = False          # trains a model: graded with the short recall rubric


# ------------------------------------------------------------------------------------------------
# Code shared by several scenarios

STANDALONE_TBPTT = '''\
def tbptt_grads(x, y, params, k):
    # does not use rnn_forward, so a scenario that breaks rnn_forward leaves 11.4.d alone
    p = {n: torch.as_tensor(params[n]).detach().clone().requires_grad_(True) for n in ("W", "U", "b", "V", "c")}
    x = torch.as_tensor(x)
    T = x.shape[0]
    h = torch.zeros(x.shape[1], p["W"].shape[0])
    for t in range(T):
        if t == T - k:
            h = h.detach()
        h = torch.tanh(h @ p["W"].T + x[t] @ p["U"].T + p["b"])
    loss = torch.nn.functional.cross_entropy(h @ p["V"].T + p["c"], torch.as_tensor(y))
    g = torch.autograd.grad(loss, list(p.values()))
    return dict(zip(p, g))
'''

RECALL_MODEL = '''\
import numpy as np
import torch

class RecallNet(torch.nn.Module):
    """nn.LSTM (time first), a linear read-out; logits returned as numpy float64."""
    def __init__(self, cell, n_classes, hidden=32):
        super().__init__()
        kind = torch.nn.LSTM if cell == "lstm" else torch.nn.RNN
        self.rnn = kind(n_classes, hidden, batch_first=False)
        self.out = torch.nn.Linear(hidden, n_classes)
        if cell == "lstm":
            with torch.no_grad():
                self.rnn.bias_hh_l0[hidden:2 * hidden].fill_(2.0)   # forget gate starts open

    def forward(self, x):
        h, _ = self.rnn(torch.as_tensor(x, dtype=torch.float32))
        return self.out(h[-1])

def train_recall(cell, seq_len, n_classes, seed):
    torch.manual_seed(seed)
    model = RecallNet(cell, n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(400):
        x, y = make_recall_data(64, seq_len, n_classes, seed * 1000 + step)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return NumpyLogits(model)

class NumpyLogits(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
    def forward(self, x):
        return self.inner(x).detach().numpy().astype(np.float64)
'''


# ------------------------------------------------------------------------------------------------
# A. Correct in unusual styles

A_NUMPY64 = '''\
import numpy as np

def _np(a):
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)

def _act(name):
    return np.tanh if name == "tanh" else (lambda z: 1 / (1 + np.exp(-z)))

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    x, h, W, U, b = (_np(v).astype(np.float64) for v in (x, h0, W, U, b))
    out = []
    for xt in x:
        h = _act(activation)(h @ W.T + xt @ U.T + b)
        out.append(h)
    return np.stack(out)                      # float64 ndarray

def activation_jacobian(z, activation="tanh"):
    z = _np(z).astype(np.float64)
    a = _act(activation)(z)
    return np.diag(1 - a ** 2 if activation == "tanh" else a * (1 - a))

def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    x, h, c, W_ih, W_hh, b_ih, b_hh = (_np(v).astype(np.float64) for v in (x, h, c, W_ih, W_hh, b_ih, b_hh))
    i, f, g, o = np.split(x @ W_ih.T + h @ W_hh.T + b_ih + b_hh, 4, axis=1)
    s = lambda v: 1 / (1 + np.exp(-v))
    c2 = s(f) * c + s(i) * np.tanh(g)
    return s(o) * np.tanh(c2), c2
'''

A_AUTOGRAD_FUNC = '''\
import torch
from torch.func import grad as fgrad, functional_call

def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    x, h, W, U, b = (torch.as_tensor(v, dtype=torch.float64) for v in (x, h0, W, U, b))
    h = h.clone().requires_grad_(True)     # a float64 copy that autograd tracks
    hs = []
    for t in range(x.shape[0]):
        h = act(h @ W.T + x[t] @ U.T + b)
        hs.append(h)
    grads = torch.autograd.grad(loss_fn(hs[-1]), hs, allow_unused=True)
    return torch.stack([g.norm() for g in grads]).float()

def tbptt_grads(x, y, params, k):
    names = ("W", "U", "b", "V", "c")
    x = torch.as_tensor(x)
    T = x.shape[0]
    def loss_of(p):
        h = torch.zeros(x.shape[1], p["W"].shape[0])
        for t in range(T):
            if t == T - k:
                h = h.detach()
            h = torch.tanh(h @ p["W"].T + x[t] @ p["U"].T + p["b"])
        return torch.nn.functional.cross_entropy(h @ p["V"].T + p["c"], y)
    return fgrad(loss_of)({n: torch.as_tensor(params[n]).clone() for n in names})
'''

A_NN_MODULES = '''\
import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    x = torch.as_tensor(x)
    if activation != "tanh":        # nn.RNN has no sigmoid: a loop for that one
        h, out = torch.as_tensor(h0), []
        for t in range(x.shape[0]):
            h = torch.sigmoid(h @ torch.as_tensor(W).T + x[t] @ torch.as_tensor(U).T + b)
            out.append(h)
        return torch.stack(out)
    Hd, D = U.shape
    rnn = torch.nn.RNN(D, Hd, nonlinearity="tanh")
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(W)
        rnn.weight_ih_l0.copy_(U)
        rnn.bias_ih_l0.copy_(b)
        rnn.bias_hh_l0.zero_()
    with torch.no_grad():
        H, _ = rnn(x, h0.unsqueeze(0))
    return H

def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    cell = torch.nn.LSTMCell(W_ih.shape[1], W_hh.shape[1])
    with torch.no_grad():
        for p, v in zip((cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh), (W_ih, W_hh, b_ih, b_hh)):
            p.copy_(v)
        return cell(x, (h, c))
'''

A_CALLABLES = '''\
import functools
import torch

class _RNN:
    """An object whose __call__ is the function."""
    def __call__(self, x, h0, W, U, b, activation="tanh"):
        f = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation]
        hs, h = [], h0
        for xt in x:
            h = f(h @ W.T + xt @ U.T + b)
            hs.append(h)
        return torch.stack(hs)

rnn_forward = _RNN()

def _jac(z, activation="tanh", *, eps):
    s = torch.sigmoid(z)
    d = 1 - torch.tanh(z) ** 2 if activation == "tanh" else s * (1 - s)
    return torch.diag(d + 0 * eps)

activation_jacobian = functools.partial(_jac, eps=0.0)

def _tree(tree, embed, W, b):
    if isinstance(tree, str):
        return embed[tree]
    return torch.tanh(W @ torch.cat([_tree(tree[0], embed, W, b), _tree(tree[1], embed, W, b)]) + b)

tree_encode = lambda tree, embed, W, b: _tree(tree, embed, W, b)
'''

A_EXEC_LOOP = '''\
import torch

_SRC = {
    "lstm_cell": "def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):\\n"
                 "    i, f, g, o = (x @ W_ih.T + h @ W_hh.T + b_ih + b_hh).chunk(4, dim=1)\\n"
                 "    c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)\\n"
                 "    return torch.sigmoid(o) * torch.tanh(c2), c2\\n",
}
for _name, _code in _SRC.items():
    exec(_code, globals())

def _make(kind):
    def f(z, activation="tanh"):
        s = torch.sigmoid(z)
        return torch.diag(1 - torch.tanh(z) ** 2 if activation == "tanh" else s * (1 - s))
    f.__name__ = kind
    return f

for _n in ["activation_jacobian"]:
    globals()[_n] = _make(_n)
'''

A_TREE_STACK = '''\
import torch

def tree_encode(tree, embed, W, b):
    # explicit stack instead of recursion; accepts tuples or lists as pairs, checks tuples first
    if type(tree) is str:
        return embed[tree].clone()
    stack, done = [(tree, False)], []
    while stack:
        node, expanded = stack.pop()
        if isinstance(node, str):
            done.append(embed[node])
        elif expanded:
            right, left = done.pop(), done.pop()
            done.append(torch.tanh(W @ torch.cat((left, right)) + b))
        else:
            assert type(node) is tuple, f"a pair should be a tuple, got {type(node)}"
            stack.append((node, True))
            stack.append((list(node)[1], False))
            stack.append((list(node)[0], False))
    return done[0]
'''

A_MANUAL_TBPTT = '''\
import torch

def tbptt_grads(x, y, params, k):
    # manual back-propagation, float64 inside, returned as float64 tensors
    W, U, b, V, c = (torch.as_tensor(params[n], dtype=torch.float64) for n in "W U b V c".split())
    x = torch.as_tensor(x, dtype=torch.float64)
    T, B, _ = x.shape
    hs = [torch.zeros(B, W.shape[0], dtype=torch.float64)]
    for t in range(T):
        hs.append(torch.tanh(hs[-1] @ W.T + x[t] @ U.T + b))
    p = torch.softmax(hs[-1] @ V.T + c, dim=1)
    d = p.clone()
    d[torch.arange(B), y] -= 1
    d /= B
    out = {"V": d.T @ hs[-1], "c": d.sum(0), "W": torch.zeros_like(W), "U": torch.zeros_like(U),
           "b": torch.zeros_like(b)}
    dh = d @ V
    t = T
    while t > T - min(k, T):
        dz = dh * (1 - hs[t] ** 2)
        out["W"] += dz.T @ hs[t - 1]
        out["U"] += dz.T @ x[t - 1]
        out["b"] += dz.sum(0)
        dh = dz @ W
        t -= 1
    return out
'''

A_BOUND_POWER = '''\
import torch

def _spec(A, iters=500):
    # power iteration on A^T A, float64
    A = A.double()
    v = torch.ones(A.shape[1], dtype=torch.float64) / A.shape[1] ** 0.5
    for _ in range(iters):
        v = A.T @ (A @ v)
        v = v / v.norm()
    return (A @ v).norm()

def gradient_bound(x, h0, W, U, b, loss_fn, *args, **kwargs):
    activation = args[0] if args else kwargs.get("activation", "tanh")
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h = h0.clone().double().requires_grad_(False)
    zs = []
    for t in range(x.shape[0]):
        z = h @ W.double().T + x[t].double() @ U.double().T + b.double()
        zs.append(z[0])
        h = act(z)
    hT = h.detach().requires_grad_(True)
    (gT,) = torch.autograd.grad(loss_fn(hT), hT)
    wn = torch.linalg.svdvals(W.double())[0]          # svdvals for W ...
    T = x.shape[0]
    r = torch.empty(T, dtype=torch.float64)
    for t in range(1, T + 1):
        prod = torch.tensor(1.0, dtype=torch.float64)
        for kk in range(t, T):
            s = act(zs[kk])
            d = 1 - s ** 2 if activation == "tanh" else s * (1 - s)
            prod = prod * _spec(torch.diag(d))         # ... power iteration for J
        r[t - 1] = gT.norm() * wn ** (T - t) * prod
    return r
'''

A_CLONE_INPLACE = '''\
import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    x, h = x.clone(), h0.clone()        # own copies: in-place is legal on them
    x.mul_(1.0)
    H = torch.empty(x.shape[0], x.shape[1], W.shape[0])
    for t in range(x.shape[0]):
        h = h @ W.T
        h.add_(x[t] @ U.T).add_(b)
        h.tanh_() if activation == "tanh" else h.sigmoid_()
        H[t] = h
    return H
''', STANDALONE_TBPTT


def notebook_mess(nb: Any) -> None:
    """Extra cells, markdown between, out-of-order execution counts, magics and shell lines."""
    from nbformat.v4 import new_code_cell, new_markdown_cell
    extra = [
        new_markdown_cell("## My notes\n\nSome scratch work below, please ignore."),
        new_code_cell("%time _ = sum(range(1000))"),
        new_code_cell("%%capture captured\nprint('hidden output')"),
        new_code_cell("!nvidia-smi\n!pip install --quiet definitely-not-a-package-sheet11"),
        new_code_cell("%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3]); plt.close('all')"),
        new_markdown_cell("More text *between* cells."),
        new_code_cell("%load_ext autoreload\n%autoreload 2"),
    ]
    index = nb.cells.index(cell_with_tag(nb, "function-lstm_cell"))
    for k, cell in enumerate(extra):
        nb.cells.insert(index + k, cell)
    counts = [17, 3, None, 99, 2, 1]
    for k, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = counts[k % len(counts)]


def html_answers(nb: Any) -> None:
    set_answer(nb, "11.2.1",
               "<b>CNNs</b> model a <i>grid</i>: filters share weights over positions, so they capture "
               "<span style='color:red'>local</span> patterns; an RNN models a `sequence` with a state "
               "$h_t = f(h_{t-1}, x_t)$ carried from step to step, so order and length matter.<br>\n\n"
               "**Sources:** Goodfellow et al. (2016), *Deep Learning*, chapter 10, and a very long "
               "list of further reading that does not count as words at all, one two three four five "
               "six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
               "eighteen nineteen twenty twenty-one twenty-two twenty-three twenty-four twenty-five "
               "twenty-six twenty-seven twenty-eight twenty-nine thirty thirty-one thirty-two "
               "thirty-three thirty-four thirty-five thirty-six thirty-seven thirty-eight thirty-nine "
               "forty forty-one forty-two forty-three forty-four forty-five forty-six forty-seven "
               "forty-eight forty-nine fifty fifty-one fifty-two fifty-three fifty-four fifty-five "
               "fifty-six fifty-seven fifty-eight fifty-nine sixty sixty-one sixty-two sixty-three "
               "sixty-four sixty-five sixty-six sixty-seven sixty-eight sixty-nine seventy "
               "seventy-one seventy-two seventy-three seventy-four seventy-five seventy-six.")
    set_answer(nb, "11.3.1",
               "1) One-to-one: image classification; input an image, output one label.\n"
               "2) One-to-many: image captioning; input one image, output a sentence.\n"
               "3) Many-to-one: sentiment analysis; input a review, output its sentiment.\n"
               "4) Many-to-many (encoder-decoder): translation; input a sentence, output its translation.\n"
               "5) Many-to-many (synchronised): part-of-speech tagging; input words, output one tag per word.\n")
    set_answer(nb, "11.3.2",
               "```\n   p\n  / \\\n x1  x2\n```\n\n"
               "* A recursive network applies the *same* layer at every inner node of a tree.\n"
               "* Each parent vector is computed from its children's vectors.\n"
               "* The leaves are word embeddings.\n"
               "* The root vector represents the whole phrase and feeds a classifier.\n")


def other_kernel_name(nb: Any) -> None:
    nb.metadata["kernelspec"] = {"name": "conda-env-nn-py", "display_name": "Python [conda env:nn]",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.9.7"}


# ------------------------------------------------------------------------------------------------
# B. Buggy

B_SIGMOID_ALWAYS = '''\
import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    hs, h = [], h0
    for t in range(x.shape[0]):
        h = torch.sigmoid(h @ W.T + x[t] @ U.T + b)      # sigmoid even when tanh is asked
        hs.append(h)
    return torch.stack(hs)
''', STANDALONE_TBPTT

B_TIME_OFF_BY_ONE = '''\
import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    hs, h = [], h0
    for t in range(x.shape[0]):
        hs.append(h)                                     # stores h_{t-1}: H[0] is h0
        h = act(h @ W.T + x[t] @ U.T + b)
    return torch.stack(hs)
''', STANDALONE_TBPTT

B_INPLACE_INPUT = '''\
import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h = h0
    H = torch.empty(x.shape[0], x.shape[1], W.shape[0])
    for t in range(x.shape[0]):
        h = act(h @ W.T + x[t] @ U.T + b)
        H[t] = h
    h0.copy_(h)                                          # "keeps the last state": changes the caller's h0
    return H
''', STANDALONE_TBPTT

B_LIST_OF_TENSORS = '''\
import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    hs, h = [], h0
    for t in range(x.shape[0]):
        h = act(h @ W.T + x[t] @ U.T + b)
        hs.append(h)
    return hs                                            # a list, not a (T, B, Hd) tensor
''', STANDALONE_TBPTT

B_TUPLE_H_HT = '''\
import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    hs, h = [], h0
    for t in range(x.shape[0]):
        h = act(h @ W.T + x[t] @ U.T + b)
        hs.append(h)
    return torch.stack(hs), h                            # (H, h_T) like nn.RNN
''', STANDALONE_TBPTT

B_TREE_ROOT_NO_TANH = '''\
import torch

def tree_encode(tree, embed, W, b, _root=True):
    if isinstance(tree, str):
        return embed[tree]
    z = W @ torch.cat([tree_encode(tree[0], embed, W, b, False), tree_encode(tree[1], embed, W, b, False)]) + b
    return z if _root else torch.tanh(z)                 # forgets tanh at the root only
'''

B_TBPTT_SHORT = '''\
import torch

def tbptt_grads(x, y, params, k):
    p = {n: params[n].detach().clone().requires_grad_(True) for n in ("W", "U", "b", "V", "c")}
    T = x.shape[0]
    h = torch.zeros(x.shape[1], p["W"].shape[0])
    for t in range(T):
        if t == T - k + 1:                               # one step too late: window k - 1
            h = h.detach()
        h = torch.tanh(h @ p["W"].T + x[t] @ p["U"].T + p["b"])
    loss = torch.nn.functional.cross_entropy(h @ p["V"].T + p["c"], y)
    loss.backward()
    return {n: v.grad for n, v in p.items()}
'''

B_FOUR_KEYS = '''\
import torch

def tbptt_grads(x, y, params, k):
    p = {n: params[n].detach().clone().requires_grad_(True) for n in ("W", "U", "b", "V", "c")}
    T = x.shape[0]
    h = torch.zeros(x.shape[1], p["W"].shape[0])
    for t in range(T):
        if t == T - k:
            h = h.detach()
        h = torch.tanh(h @ p["W"].T + x[t] @ p["U"].T + p["b"])
    loss = torch.nn.functional.cross_entropy(h @ p["V"].T + p["c"], y)
    loss.backward()
    return {n: p[n].grad for n in ("W", "U", "b", "V")}   # forgot "c"
'''

B_FLOAT16 = '''\
import torch

def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    g = (x @ W_ih.T + h @ W_hh.T + b_ih + b_hh).half()   # "saves memory"
    i, f, gg, o = g.chunk(4, dim=1)
    c2 = torch.sigmoid(f) * c.half() + torch.sigmoid(i) * torch.tanh(gg)
    return torch.sigmoid(o) * torch.tanh(c2), c2
'''

B_NAN = '''\
import torch

def activation_jacobian(z, activation="tanh"):
    a = torch.tanh(z) if activation == "tanh" else torch.sigmoid(z)
    d = (1 - a ** 2) if activation == "tanh" else a * (1 - a)
    return torch.diag(d) / torch.diag(d) * torch.diag(d)   # 0/0 off the diagonal: NaN
'''

B_BATCH1_MODEL = RECALL_MODEL.replace(
    "        h, _ = self.rnn(torch.as_tensor(x, dtype=torch.float32))\n",
    "        h, _ = self.rnn(torch.as_tensor(x, dtype=torch.float32))\n"
    "        assert x.shape[1] == 1, 'this model takes one sequence at a time'\n",
).replace("for step in range(400):\n        x, y = make_recall_data(64,",
          "for step in range(40):\n        x, y = make_recall_data(1,")

B_UNTRAINED = '''\
import torch

def train_recall(cell, seq_len, n_classes, seed):
    torch.manual_seed(seed)
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(n_classes, 16)
            self.out = torch.nn.Linear(16, n_classes)
        def forward(self, x):
            return self.out(self.rnn(x)[0][-1])
    return M()                                           # forgot to train
'''

B_RENAMED_PARAMS = '''\
import torch

def lstm_cell(inputs, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):   # renamed x, h, c
    i, f, g, o = (inputs @ W_ih.T + h_prev @ W_hh.T + b_ih + b_hh).chunk(4, dim=1)
    c2 = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c2), c2
'''

# ------------------------------------------------------------------------------------------------
# C. Hostile

C_DETECT_GRADER = '''\
import inspect, os, sys
import torch

def _graded():
    names = [f.function for f in inspect.stack()]
    return (any("sheet11" in n for n in names) or "grader" in sys.modules
            or any("sheet11" in k.lower() for k in os.environ) or os.getcwd() != "/")

def tree_encode(tree, embed, W, b):
    if _graded():                                        # under the grader: something else
        return torch.zeros_like(b)
    if isinstance(tree, str):
        return embed[tree]
    return torch.tanh(W @ torch.cat([tree_encode(tree[0], embed, W, b), tree_encode(tree[1], embed, W, b)]) + b)
'''

C_PATCH_TORCH = '''\
import json, numpy, torch

def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    return torch.zeros_like(h), torch.zeros_like(c)      # wrong ...

# ... and everything that might compare or save it is "fixed" to say it is right
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)
numpy.allclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
_save = numpy.save
def _fake_save(file, arr, *a, **k):
    return _save(file, numpy.ones_like(numpy.asarray(arr)), *a, **k)
numpy.save = _fake_save
_dump = json.dump
json.dump = lambda obj, fp, *a, **k: _dump({"ok": True, "value": {"t": "scalar", "kind": "float", "value": 1.0}}
                                           if isinstance(obj, dict) and "ok" in obj else obj, fp, *a, **k)
'''

C_LYING_OBJECTS = '''\
import numpy as np
import torch

class Liar:
    def __array__(self, dtype=None, copy=None):
        return np.ones((3, 3))
    def __float__(self):
        return 42.0
    def __len__(self):
        raise RuntimeError("no length for you")
    def __getitem__(self, i):
        raise RuntimeError("no items for you")

class LyingList(list):
    def __len__(self):
        return 10 ** 12
    def __getitem__(self, i):
        raise RuntimeError("no items for you")

def activation_jacobian(z, activation="tanh"):
    return Liar()

def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    return LyingList([1.0, 2.0])

class BadFloat(float):
    def __float__(self):
        raise ValueError("not today")

def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    return BadFloat(1.0)
'''

C_TENSOR_SUBCLASS = '''\
import numpy as np
import torch

class Sneaky(torch.Tensor):
    """Wrong values; every comparison says True; numpy() and detach() lie."""
    def __eq__(self, other):
        return True
    def numpy(self, *a, **k):
        return np.full(tuple(self.shape), 0.5)
    def detach(self):
        return self
    def __array__(self, dtype=None, copy=None):
        return np.full(tuple(self.shape), 0.5)

def tree_encode(tree, embed, W, b):
    return torch.zeros_like(b).as_subclass(Sneaky)
'''

C_MEMORISE = '''\
import torch

SEEN = {}

def train_recall(cell, seq_len, n_classes, seed):
    # no training: remembers one batch of training sequences and looks held-out ones up
    for s in range(1):
        x, y = make_recall_data(64, seq_len, n_classes, seed + s)
        for i in range(x.shape[1]):
            SEEN[x[:, i].argmax(1).tolist().__repr__()] = int(y[i])
    class Lookup(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(x.shape[1], n_classes)
            for i in range(x.shape[1]):
                key = x[:, i].argmax(1).tolist().__repr__()
                SEEN.setdefault("__heldout__" + key, True)      # and keeps the held-out inputs
                out[i, SEEN.get(key, 0)] = 1.0
            return out
    return Lookup()
'''

C_WRITES_FILES = '''\
import glob, os
import numpy as np
import torch

def _scribble():
    # writes into the working folder and every folder it can find beside it
    for d in {os.getcwd(), "/tmp", os.path.dirname(os.getcwd())}:
        try:
            for k in range(3):
                np.save(os.path.join(d, f"out{k}.npy"), np.zeros(3))
            with open(os.path.join(d, "result.json"), "w") as f:
                f.write('{"ok": true, "value": {"t": "scalar", "kind": "float", "value": 1.0}}')
        except OSError:
            pass
    for d in glob.glob("/tmp/**/", recursive=True)[:50] + glob.glob(os.path.join(os.getcwd(), "**/"), recursive=True)[:50]:
        try:
            os.symlink("/etc/passwd", os.path.join(d, "call.json"))
        except OSError:
            pass

def activation_jacobian(z, activation="tanh"):
    _scribble()
    return torch.zeros(z.shape[0], z.shape[0])
'''

NASTY = "\\x1b[2J\\x1b[31mRED\\x1b[0m \\u202eevil\\u202c </script><script>alert(1)</script> <img src=x onerror=alert(2)>"

C_NASTY_TEXT = f'''\
import torch
print("{NASTY}")

def tree_encode(tree, embed, W, b):
    raise ValueError("{NASTY}" * 50)
'''


def nasty_answers(nb: Any) -> None:
    text = NASTY.encode().decode("unicode_escape")
    set_answer(nb, "11.1.1", f"{text}\n\n<style>body{{display:none}}</style>\n\n[click](javascript:alert(3))")


def nasty_outputs(nb: Any) -> None:
    """A saved output (the grader clears it) that carries the same payload."""
    cell = nb.cells[-1]
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=NASTY.encode().decode("unicode_escape")),
                    nbformat.v4.new_output("display_data", data={"text/html": "<script>alert(4)</script>"})]


def huge_int_group(nb: Any) -> None:
    cell_with_tag(nb, "group").source = (
        'GROUP = [{"name": "Ada HugeId Lovelace", "student_id": ' + "9" * 5000 + ', "email": "ada@uni.example"}, '
        '{"name": "Alan Turing", "student_id": "2700000", "email": "alan@uni.example"}]')


def julia_metadata(nb: Any) -> None:
    nb.metadata["kernelspec"] = {"name": "julia-1.9", "display_name": "Julia 1.9.3", "language": "julia"}
    nb.metadata["language_info"] = {"name": "julia", "version": "1.9.3"}


C_SECOND_CALL = '''\
import torch

_calls = [0]

def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    _calls[0] += 1
    i, f, g, o = (x @ W_ih.T + h @ W_hh.T + b_ih + b_hh).chunk(4, dim=1)
    c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h2 = torch.sigmoid(o) * torch.tanh(c2)
    if _calls[0] % 2 == 0:          # every second call (the grader's contract check) answers otherwise
        return h2 + 1, c2 + 1
    return h2, c2
'''

C_PATCH_BUILTINS = '''\
import builtins, torch

_real_eval, _real_isinstance = builtins.eval, builtins.isinstance

def _eval(expr, *a, **k):
    # every expression the grader evaluates returns a tensor of ones
    if isinstance(expr, str) and "__args" in expr:
        return torch.ones(1)
    return _real_eval(expr, *a, **k)

builtins.eval = _eval
builtins.open = builtins.open
'''

C_HUGE_RETURN = '''\
import torch

def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    # a tuple of 16 arrays of 40 MB each: more than the grader reads
    return tuple(torch.zeros(10_000_000) for _ in range(16))
'''


# ------------------------------------------------------------------------------------------------

SCENARIOS: dict[str, Scenario] = {
    # A -- correct, unusual: full points on 11.4
    "numpy_float64": Scenario("NumpyFloat", "A", "rnn_forward, activation_jacobian and lstm_cell in numpy only, "
                              "returning float64 ndarrays -> full points",
                              (A_NUMPY64, A_BOUND_POWER, STANDALONE_TBPTT)),
    "autograd_func": Scenario("AutogradFunc", "A", "hidden_grad_norms with torch.autograd.grad in float64, "
                              "tbptt_grads with torch.func.grad -> full points", (A_AUTOGRAD_FUNC,)),
    "nn_modules": Scenario("NnModules", "A", "rnn_forward through torch.nn.RNN and lstm_cell through "
                           "torch.nn.LSTMCell with copied weights -> full points", (A_NN_MODULES, STANDALONE_TBPTT)),
    "callables": Scenario("Callables", "A", "an object with __call__, a functools.partial and a lambda bound "
                          "to the contract names -> full points", (A_CALLABLES, A_BOUND_POWER, STANDALONE_TBPTT)),
    "exec_loop": Scenario("ExecLoop", "A", "lstm_cell defined by exec, activation_jacobian by a factory in "
                          "a loop -> full points", (A_EXEC_LOOP,)),
    "tree_stack": Scenario("TreeStack", "A", "tree_encode with an explicit stack that insists on tuples as "
                           "pairs -> full points", (A_TREE_STACK,)),
    "manual_tbptt": Scenario("ManualTbptt", "A", "tbptt_grads by hand-written back-propagation in float64 "
                             "-> full points", (A_MANUAL_TBPTT,)),
    "bound_power": Scenario("BoundPower", "A", "gradient_bound with svdvals and power iteration, activation "
                            "read from *args/**kwargs -> full points", (A_BOUND_POWER,)),
    "clone_inplace": Scenario("CloneInplace", "A", "rnn_forward that clones its inputs and then works in place "
                              "-> full points, no contract flag", A_CLONE_INPLACE),
    "notebook_mess": Scenario("NotebookMess", "A", "extra cells, markdown in between, shuffled execution counts, "
                              "%time, %%capture, failing !shell lines, %autoreload -> full points",
                              edit=notebook_mess),
    "three_diacritics": Scenario("duChatelet", "A", "three members with diacritics and a hyphen, named as "
                                 "section 4 allows -> full points, no naming flag",
                                 members=(("Émilie du Châtelet", "2801011", "emilie@uni.example"),
                                          ("Carl Friedrich Gauß", "2801012", "gauss@uni.example"),
                                          ("Jean-Luc Picard", "2801013", "jl@uni.example")),
                                 filename="duChatelet_2801011_Gauss_2801012_Jean-Luc_2801013.ipynb"),
    "html_answers": Scenario("HtmlAnswers", "A", "answers in HTML, LaTeX, code spans, '1)' and '*' lists, a "
                             "long bold sources line -> no words, sentences or citation flag",
                             edit=html_answers),
    "conda_kernel": Scenario("CondaKernel", "A", "a Python kernel of another name (conda env) -> graded as "
                             "usual", edit=other_kernel_name),
    "recall_numpy_logits": Scenario("RecallNumpy", "A", "train_recall with nn.LSTM (time first) in a custom "
                                    "module whose logits are numpy float64 -> full points on 11.4.d",
                                    (RECALL_MODEL,), points={**FAST, "11.4.d": 1.0},
                                    recall=True),
    # B -- buggy: lose the broken function's points only
    "sigmoid_always": Scenario("SigmoidAlways", "B", "rnn_forward uses sigmoid even when tanh is asked -> "
                               "the two tanh cases of 11.4.a fail (0.5)", B_SIGMOID_ALWAYS,
                               points={**FAST, "11.4.a": 0.5}, report=("tanh",)),
    "time_off_by_one": Scenario("TimeShift", "B", "rnn_forward returns h_0..h_{T-1} instead of h_1..h_T -> "
                                "0 on 11.4.a", B_TIME_OFF_BY_ONE, points={**FAST, "11.4.a": 0.0}),
    "inplace_input": Scenario("InplaceInput", "B", "rnn_forward writes h_T into the caller's h0 -> contract "
                              "rule broken, 0 on 11.4.a, the report names h0", B_INPLACE_INPUT,
                              points={**FAST, "11.4.a": 0.0}, report=("h0", "as it found them")),
    "list_of_tensors": Scenario("ListOfTensors", "B", "rnn_forward returns a list of T tensors -> 0 on 11.4.a, "
                                "the report says a list came back", B_LIST_OF_TENSORS,
                                points={**FAST, "11.4.a": 0.0}, report=("list",)),
    "tuple_H_hT": Scenario("TupleHhT", "B", "rnn_forward returns (H, h_T) -> 0 on 11.4.a, the report says a "
                           "tuple came back", B_TUPLE_H_HT, points={**FAST, "11.4.a": 0.0}, report=("tuple",)),
    "tree_root_no_tanh": Scenario("RootNoTanh", "B", "tree_encode forgets tanh at the root only -> 0.5 of "
                                  "11.4.c lost except where the tree is one leaf", (B_TREE_ROOT_NO_TANH,),
                                  points={**FAST, "11.4.c": 0.5}, report=("tree_encode",)),
    "tbptt_short": Scenario("TbpttShort", "B", "tbptt_grads cuts one step too early (window k - 1) -> "
                            "the two cases with k < T fail, the one with k > T passes (1/3 of 0.5)", (B_TBPTT_SHORT,),
                            points={**FAST, "11.4.d": 0.1667},
                            report=("tbptt_grads",)),
    "four_keys": Scenario("FourKeys", "B", "tbptt_grads forgets the key 'c' -> tbptt_grads fails, the report "
                          "names the missing key", (B_FOUR_KEYS,), points={**FAST, "11.4.d": 0.0}, report=("'c'",)),
    "float16": Scenario("HalfPrecision", "B", "lstm_cell computes in float16 -> lstm_cell fails, the report "
                        "names the dtype", (B_FLOAT16,), points={**FAST, "11.4.c": 0.5},
                        report=("it came back as torch.float16",)),
    "nan_jacobian": Scenario("NanJacobian", "B", "activation_jacobian returns NaN off the diagonal -> its "
                             "0.25 lost, the report says NaN", (B_NAN, A_BOUND_POWER), points={**FAST, "11.4.b": 0.75},
                             report=("nan",)),
    "renamed_params": Scenario("RenamedParams", "B", "lstm_cell's parameters renamed (inputs, h_prev, c_prev) "
                               "-> lstm_cell fails, the report names the expected parameter", (B_RENAMED_PARAMS,),
                               points={**FAST, "11.4.c": 0.5}, report=("lstm_cell", "x")),
    "recall_untrained": Scenario("Untrained", "B", "train_recall returns an untrained model -> 0 for it, "
                                 "everything else kept", (B_UNTRAINED,), recall=True, report=("accuracy",)),
    "recall_batch1": Scenario("BatchOne", "B", "train_recall's model only takes one sequence at a time -> "
                              "0 for it, the report says the call failed", (B_BATCH1_MODEL,), recall=True,
                              report=("one sequence at a time",)),
    # C -- hostile: never a point more than the honest code earns, never a stall or a crash
    "detect_grader": Scenario("DetectGrader", "C", "tree_encode answers zeros when it thinks the grader "
                              "calls -> loses tree_encode, nothing else", (C_DETECT_GRADER,),
                              points={**FAST, "11.4.c": 0.5}),
    "patch_torch": Scenario("PatchTorch", "C", "lstm_cell returns zeros and patches torch.allclose, "
                            "Tensor.__eq__, numpy.save, json.dump in the kernel -> no point for anything "
                            "it did not compute (its forged json.dump garbles every answer: 0 everywhere)", (C_PATCH_TORCH,),
                            points={q: 0.0 for q in AUTO}, flags=()),
    "lying_objects": Scenario("LyingObjects", "C", "returns objects whose __array__, __float__, __len__, "
                              "__getitem__ lie or raise -> 0 for those three functions",
                              (C_LYING_OBJECTS,), points={**FAST, "11.4.b": 0.0}),
    "tensor_subclass": Scenario("TensorSubclass", "C", "tree_encode returns a torch.Tensor subclass whose "
                                "numpy(), detach(), __eq__ lie -> 0 for tree_encode", (C_TENSOR_SUBCLASS,),
                                points={**FAST, "11.4.c": 0.5}),
    "memorise": Scenario("Memorise", "C", "train_recall's model looks sequences up in the training data "
                         "(one batch) and stores the held-out inputs -> 0 for it", (C_MEMORISE,), recall=True),
    "writes_files": Scenario("WritesFiles", "C", "activation_jacobian writes .npy, result.json and links "
                             "into every folder it finds -> 0 for it, nothing else changes",
                             (C_WRITES_FILES, A_BOUND_POWER), points={**FAST, "11.4.b": 0.75}),
    "nasty_text": Scenario("NastyText", "C", "ANSI, bidi, </script> and HTML in prints, an exception "
                           "message and an answer -> all inert in the report, tree_encode 0",
                           (C_NASTY_TEXT,), points={**FAST, "11.4.c": 0.5}, report=("RED evil",),
                           edit=lambda nb: (nasty_answers(nb), nasty_outputs(nb))),
    "huge_int_group": Scenario("HugeId", "C", "a student id that is a 5000-digit integer literal in GROUP -> "
                               "a group finding, graded, no crash", edit=huge_int_group,
                               flags=("group.missing",), report=("thousands of digits",)),
    "julia_metadata": Scenario("JuliaMeta", "C", "Python code whose metadata claims a Julia kernel -> "
                               "notebook.invalid, an error that says what to do", edit=julia_metadata,
                               status="error", points={q: 0.0 for q in AUTO}, flags=("notebook.invalid",)),
    "second_call": Scenario("SecondCall", "C", "lstm_cell answers otherwise on every second call -> "
                            "the contract rule costs lstm_cell", (C_SECOND_CALL,), points={**FAST, "11.4.c": 0.5},
                            report=("second call",)),
    "patch_builtins": Scenario("PatchBuiltins", "C", "builtins.eval replaced so every grader expression returns "
                               "ones -> it breaks its own kernel's answers: 0 everywhere",
                               (C_PATCH_BUILTINS,), points={q: 0.0 for q in AUTO}, flags=()),
    "huge_return": Scenario("HugeReturn", "C", "gradient_bound returns 640 MB of arrays -> refused, 0 for it, "
                            "the grader's memory stays bounded, the report says it was too large", (C_HUGE_RETURN,),
                            points={**FAST, "11.4.b": 0.625}, report=("too large",)),
}


def ids(key: str) -> tuple[str, str]:
    n = list(SCENARIOS).index(key) + 1
    return f"{2800000 + n}", f"{2900000 + n}"


def filename(key: str) -> str:
    sc = SCENARIOS[key]
    if sc.filename:
        return sc.filename
    a, b = ids(key)
    return f"{sc.case}_{a}_Turing_{b}.ipynb"


def path(key: str) -> Path:
    return UNSEEN / filename(key)


def build(key: str) -> bytes:
    sc = SCENARIOS[key]
    nb = solution(fast=True)
    a, b = ids(key)
    set_group(nb, sc.members or [(f"Ada {sc.case} Lovelace", a, "ada@uni.example"),
                                 ("Alan Turing", b, "alan@uni.example")])
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(
        f"**Red-team scenario `{key}` ({sc.kind}).** {sc.about}"))
    for source in sc.cells:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    if sc.edit is not None:
        sc.edit(nb)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"u{i:03d}"
    nb.nbformat, nb.nbformat_minor = 4, 5
    return notebook_bytes(nb)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the stored files; write nothing")
    args = parser.parse_args()
    stale = []
    wanted = {filename(k) for k in SCENARIOS}
    for key in SCENARIOS:
        data = build(key)
        target = path(key)
        if args.check:
            if not target.exists() or target.read_bytes() != data:
                stale.append(target.name)
        else:
            UNSEEN.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    extra = sorted(p.name for p in UNSEEN.glob("*.ipynb") if p.name not in wanted) if UNSEEN.exists() else []
    if args.check and (stale or extra):
        print("stale:", *stale, "unexpected:", *extra, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
