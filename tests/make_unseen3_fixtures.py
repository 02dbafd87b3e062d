"""Write the third unseen set of single-bug notebooks into ``tests/files/mistakes/unseen3/``.

    python tests/make_unseen3_fixtures.py          # (re)write every fixture
    python tests/make_unseen3_fixtures.py --check  # exit 1 when a stored fixture is stale

Bugs written to the contract in styles the other fixtures do not use (numpy with explicit
einsum, hand-written activations, functools.reduce, small classes, in-place list building),
covering the bugs that issue 22 found unnamed or misleadingly named on notebooks the project had
never seen. Each ``Unseen3`` says what an honest report may say about it:

- ``mistakes``: catalogued mistakes (keys of grader/checks/mistakes.py) whose naming is right;
- ``terms``: probe terms (keys of grader.checks.probes.TERMS) whose location is right;
- ``phrases``: other words that name the bug (the shape/slice matcher's findings).

A report *names or locates* the bug when it says one of these; it *misleads* when it names a
mistake or locates a term that is not among them (tests/test_diagnoses.py measures both).
Each fixture is the fast reference solution with the bug's cell added after the function's own.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import nbformat  # noqa: E402
from builders import FILES, set_function, solution  # noqa: E402

UNSEEN3_DIR = FILES / "mistakes" / "unseen3"


@dataclass(frozen=True)
class Unseen3:
    function: str
    question: str
    source: str
    about: str
    mistakes: tuple[str, ...] = ()
    terms: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()


UNSEEN3: dict[str, Unseen3] = {
    "jacobian_sigmoid_value": Unseen3("activation_jacobian", "11.4.b", '''\
import numpy as np

def activation_jacobian(z, activation="tanh"):
    zz = np.asarray(z.detach(), dtype=np.float64)
    if activation == "tanh":
        diag = 1.0 - np.tanh(zz) ** 2
    else:
        diag = 1.0 / (1.0 + np.exp(-zz))          # sigma(z), the derivative was meant
    return torch.from_numpy(np.diagflat(diag)).float()
''', "the sigmoid branch puts sigma(z) on the diagonal; tanh is right",
        mistakes=("value_not_derivative",), terms=("d",)),
    "rnn_sigmoid_branch_no_bias": Unseen3("rnn_forward", "11.4.a", '''\
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    steps = []
    h = h0
    for x_t in x.unbind(0):
        if activation == "tanh":
            h = torch.tanh(torch.einsum("ij,bj->bi", W, h) + torch.einsum("ij,bj->bi", U, x_t) + b)
        else:
            h = torch.sigmoid(torch.einsum("ij,bj->bi", W, h) + torch.einsum("ij,bj->bi", U, x_t))
        steps.append(h)
    return torch.stack(steps)
''', "the sigmoid branch forgets the bias; tanh is right",
        mistakes=("bias_missing",), terms=("bias",)),
    "rnn_last_state_only": Unseen3("rnn_forward", "11.4.a", '''\
from functools import reduce

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    f = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation]
    return reduce(lambda h, x_t: f(h @ W.T + x_t @ U.T + b), x, h0)   # h_T alone
''', "returns only h_T", phrases=("only the last step",)),
    "rnn_batch_first": Unseen3("rnn_forward", "11.4.a", '''\
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    f = torch.tanh if activation == "tanh" else torch.sigmoid
    out = torch.empty(x.shape[1], x.shape[0], W.shape[0])
    h = h0
    for t in range(x.shape[0]):
        h = f(h @ W.T + x[t] @ U.T + b)
        out[:, t] = h                      # stored batch first, (B, T, H)
    return out
''', "returns (B, T, H) instead of (T, B, H)", phrases=("(B, T, H) order", "axes 0 and 1 swapped")),
    "rnn_activation_never_applied": Unseen3("rnn_forward", "11.4.a", '''\
class Elman:
    def __init__(self, W, U, b, activation):
        self.W, self.U, self.b, self.activation = W, U, b, activation
    def step(self, h, x_t):
        z = h @ self.W.T + x_t @ self.U.T + self.b
        return z                           # the activation is never applied

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    cell, h, out = Elman(W, U, b, activation), h0, []
    for x_t in x:
        h = cell.step(h, x_t)
        out.append(h)
    return torch.stack(out)
''', "never applies the activation", mistakes=("no_activation",), terms=("act",)),
    "grad_norms_local_loss": Unseen3("hidden_grad_norms", "11.4.b", '''\
def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    f = torch.tanh if activation == "tanh" else torch.sigmoid
    h, norms = h0, []
    for t in range(x.shape[0]):
        h = f(h @ W.T + x[t] @ U.T + b).detach().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(h), h)      # the loss at h_t, locally
        norms.append(g.norm())
    return torch.stack(norms)
''', "differentiates loss_fn(h_t) at each t instead of L = loss_fn(h_T) through time",
        mistakes=("local_loss",), terms=("only_last",)),
    "grad_norms_manual_no_derivative": Unseen3("hidden_grad_norms", "11.4.b", '''\
def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    f = torch.tanh if activation == "tanh" else torch.sigmoid
    h = h0
    for t in range(x.shape[0]):
        h = f(h @ W.T + x[t] @ U.T + b)
    hT = h.detach().requires_grad_(True)
    (d,) = torch.autograd.grad(loss_fn(hT), hT)
    norms = [d.norm()]
    for t in range(x.shape[0] - 1):
        d = d @ W                          # back through W, but act'(z) is forgotten
        norms.append(d.norm())
    return torch.stack(norms[::-1])
''', "back-propagates by hand through W without the activation's derivative",
        mistakes=("no_activation_derivative",), terms=("chain",)),
    "grad_norms_loss_at_first_state": Unseen3("hidden_grad_norms", "11.4.b", '''\
def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    f = torch.tanh if activation == "tanh" else torch.sigmoid
    states, h = [], h0.clone().requires_grad_(True)
    for x_t in x:
        h = f(h @ W.T + x_t @ U.T + b)
        states.append(h)
    loss = loss_fn(states[0])              # the wrong end of the sequence
    grads = torch.autograd.grad(loss, states, allow_unused=True)
    return torch.stack([torch.zeros(()) if g is None else g.norm() for g in grads])
''', "applies the loss to h_1 instead of h_T", mistakes=("loss_at_first_state",),
        terms=("only_last",)),
    "bound_jacobian_of_h": Unseen3("gradient_bound", "11.4.b", '''\
def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    f = torch.tanh if activation == "tanh" else torch.sigmoid
    hs, h = [], h0
    for x_t in x:
        h = f(h @ W.T + x_t @ U.T + b)
        hs.append(h[0])
    hT = hs[-1].detach().unsqueeze(0).requires_grad_(True)
    (gT,) = torch.autograd.grad(loss_fn(hT), hT)
    w = torch.linalg.matrix_norm(W, ord=2)
    T = len(hs)
    jn = [torch.linalg.matrix_norm(activation_jacobian(hs[k], activation), ord=2) for k in range(T)]
    r = [gT.norm() * w ** (T - t) * torch.prod(torch.stack(jn[t:] or [torch.ones(())]))
         for t in range(1, T + 1)]
    return torch.stack(r)                  # J built from h_{k+1}, not from z_{k+1}
''', "builds J_{k+1} from h_{k+1} instead of z_{k+1}", mistakes=("J_of_h",), terms=("jnorm", "jprod")),
    "bound_spectral_radius": Unseen3("gradient_bound", "11.4.b", '''\
def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    f = torch.tanh if activation == "tanh" else torch.sigmoid
    zs, h = [], h0
    for x_t in x:
        z = h @ W.T + x_t @ U.T + b
        zs.append(z[0])
        h = f(z)
    hT = h.detach().requires_grad_(True)
    (gT,) = torch.autograd.grad(loss_fn(hT), hT)
    rho = torch.linalg.eigvals(W).abs().max()      # spectral radius, not the spectral norm
    T = len(zs)
    out = []
    for t in range(1, T + 1):
        v = gT.norm() * rho ** (T - t)
        for k in range(t, T):
            v = v * torch.linalg.matrix_norm(activation_jacobian(zs[k], activation), ord=2)
        out.append(v)
    return torch.stack(out)
''', "uses the spectral radius of W for its spectral norm",
        mistakes=("W_spectral_radius",), terms=("wnorm",)),
    "lstm_handwritten_sigmoid_sign": Unseen3("lstm_cell", "11.4.c", '''\
def _sig(v):
    return 1.0 / (1.0 + torch.exp(v))      # sign error: this is sigmoid(-v)

def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    gates = torch.addmm(b_ih + b_hh, x, W_ih.t()) + h @ W_hh.t()
    H = h.shape[-1]
    i, f, g, o = (gates[:, j * H:(j + 1) * H] for j in range(4))
    c_new = _sig(f) * c + _sig(i) * torch.tanh(g)
    return _sig(o) * torch.tanh(c_new), c_new
''', "a hand-written sigmoid with a sign error, used for i, f and o",
        mistakes=("sigmoid_negated",), terms=("i", "f", "o")),  # the three gates it squashes
    "lstm_returns_c_then_h": Unseen3("lstm_cell", "11.4.c", '''\
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).split(h.shape[1], dim=1)
    c2 = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return c2, o.sigmoid() * c2.tanh()     # (c_new, h_new): the wrong order
''', "returns (c_new, h_new)", phrases=("(c_new, h_new)",)),
    "tbptt_V_grad_transposed": Unseen3("tbptt_grads", "11.4.d", '''\
import torch.nn.functional as F

def tbptt_grads(x, y, params, k):
    W, U, b, V, c = (params[n].detach().clone().requires_grad_(True) for n in ("W", "U", "b", "V", "c"))
    T = x.shape[0]
    h = torch.zeros(x.shape[1], W.shape[0])
    for t in range(T):
        if t == T - k:
            h = h.detach()
        h = torch.tanh(h @ W.T + x[t] @ U.T + b)
    loss = F.cross_entropy(h @ V.T + c, y)
    gW, gU, gb, gV, gc = torch.autograd.grad(loss, (W, U, b, V, c))
    return {"W": gW, "U": gU, "b": gb, "V": gV.T, "c": gc}   # V's gradient transposed
''', "returns dL/dV transposed", phrases=("transposed",)),
    "tree_extra_axis": Unseen3("tree_encode", "11.4.c", '''\
def tree_encode(tree, embed, W, b):
    def vec(t):
        if isinstance(t, str):
            return embed[t].reshape(1, -1)
        both = torch.cat([vec(t[0]), vec(t[1])], dim=1)
        return torch.tanh(both @ W.T + b)
    return vec(tree)                       # shape (1, d): an extra axis
''', "returns shape (1, d)", phrases=("extra axis of length 1",)),
}


def _normalise_ids(nb: Any) -> Any:
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    return nb


def notebook(bug: Unseen3) -> Any:
    nb = solution(fast=True)
    set_function(nb, bug.function, bug.source)
    return _normalise_ids(nb)


def build() -> dict[Path, str]:
    return {UNSEEN3_DIR / f"{name}.ipynb": nbformat.writes(notebook(bug)) for name, bug in UNSEEN3.items()}


def main(argv: list[str]) -> int:
    built = build()
    if "--check" in argv:
        stale = [p for p, text in built.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        for p in stale:
            print(f"stale: {p.name}")
        return 1 if stale else 0
    UNSEEN3_DIR.mkdir(parents=True, exist_ok=True)
    for old in UNSEEN3_DIR.glob("*.ipynb"):
        if old not in built:
            old.unlink()
    for p, text in built.items():
        p.write_text(text, encoding="utf-8")
        print(f"wrote {p.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
