"""Generate the fixture notebooks of tests/test_grade_functions.py.

    python tests/make_function_fixtures.py          # (re)write tests/files/styles, mistakes, single_bug
    python tests/make_function_fixtures.py --check  # exit 1 if a committed fixture is stale

Every fixture is the fast reference solution (``builders.solution(fast=True)``) with student code
cells added after the functions' own cells (``builders.set_function``), so the student's version
is the one the kernel ends up with:

- ``files/styles/<style>.ipynb``: correct implementations of all seven functions of 11.4.a-d,
  written independently of the reference in another style (numpy, float64 with explicit loops,
  einsum and autograd). They must get full points.
- ``files/mistakes/<scenario>.ipynb``: one function replaced by a buggy version written the way a
  student writes it (never taken from ``grader.checks.mistakes``). ``MISTAKES[scenario]`` says which
  function is replaced and what the grader should say about it.
- ``files/mistakes/single_bug/<name>.ipynb``: twelve typical single-bug notebooks over all seven
  functions (``SINGLE_BUGS``), for the probes' naming rate (tests/test_probes.py).

The output is deterministic: cell ids are renumbered and nothing depends on time or randomness.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from builders import FILES, set_function, solution  # noqa: E402

STYLES_DIR = FILES / "styles"
MISTAKES_DIR = FILES / "mistakes"
FUNCTIONS = ("rnn_forward", "activation_jacobian", "hidden_grad_norms", "gradient_bound",
             "lstm_cell", "tree_encode", "tbptt_grads")

# ------------------------------------------------------------------------------------------------
# Correct solutions in other styles. Each entry: function name -> the student's cell.

NUMPY = {
    "rnn_forward": '''\
import numpy as np

def to_np(a):
    # tensors from the grader -> numpy; numpy stays numpy
    return a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    x, h, W, U, b = (to_np(a).astype(np.float64) for a in (x, h0, W, U, b))
    if activation == "tanh":
        act = np.tanh
    else:
        act = lambda z: 1.0 / (1.0 + np.exp(-z))
    T, B, _ = x.shape
    H = np.zeros((T, B, W.shape[0]))          # float64 numpy array
    for t in range(T):
        h = act(h @ W.T + x[t] @ U.T + b)
        H[t] = h
    return H
''',
    "activation_jacobian": '''\
def activation_jacobian(z, activation="tanh"):
    z = to_np(z).astype(np.float64)
    if activation == "tanh":
        d = 1.0 - np.tanh(z) ** 2
    else:
        s = 1.0 / (1.0 + np.exp(-z))
        d = s * (1.0 - s)
    return np.diag(d).astype(np.float32)
''',
    "hidden_grad_norms": '''\
import torch

def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    # the forward pass in torch so that autograd can do the backward pass; numpy out
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    x, W, U, b = (torch.tensor(to_np(a)) for a in (x, W, U, b))
    h = torch.tensor(to_np(h0), requires_grad=True)
    states = []
    for t in range(x.shape[0]):
        h = act(h @ W.T + x[t] @ U.T + b)
        h.retain_grad()
        states.append(h)
    loss_fn(states[-1]).backward()
    return np.array([np.linalg.norm(s.grad.numpy()) for s in states])
''',
    "gradient_bound": '''\
def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    x, h, W, U, b = (to_np(a).astype(np.float64) for a in (x, h0, W, U, b))
    T = x.shape[0]
    zs = []
    for t in range(T):
        z = h @ W.T + x[t] @ U.T + b
        h = np.tanh(z) if activation == "tanh" else 1.0 / (1.0 + np.exp(-z))
        zs.append(z[0])
    # ||dL/dh_T|| from autograd on the last state only
    hT = torch.tensor(h, requires_grad=True)
    loss_fn(hT).backward()
    gT = np.linalg.norm(hT.grad.numpy())
    w_norm = np.linalg.norm(W, 2)              # spectral norm
    j_norms = [np.linalg.norm(to_np(activation_jacobian(z, activation)), 2) for z in zs]
    r = np.zeros(T, dtype=np.float32)
    for i in range(T):                        # i = t - 1
        r[i] = gT * w_norm ** (T - 1 - i) * np.prod(j_norms[i + 1:])
    return r
''',
    "lstm_cell": '''\
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    x, h, c, W_ih, W_hh, b_ih, b_hh = (to_np(a) for a in (x, h, c, W_ih, W_hh, b_ih, b_hh))
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))
    Hd = h.shape[1]
    gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
    i = sig(gates[:, 0:Hd])
    f = sig(gates[:, Hd:2 * Hd])
    g = np.tanh(gates[:, 2 * Hd:3 * Hd])
    o = sig(gates[:, 3 * Hd:4 * Hd])
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    return h_new, c_new                       # float32 numpy arrays
''',
    "tree_encode": '''\
def tree_encode(tree, embed, W, b):
    W, b = to_np(W).astype(np.float64), to_np(b).astype(np.float64)

    def encode(node):                         # recursive: fine for the depths we get
        if isinstance(node, str):
            return to_np(embed[node]).astype(np.float64)
        left, right = node
        return np.tanh(W @ np.concatenate([encode(left), encode(right)]) + b)

    return encode(tree)
''',
    "tbptt_grads": '''\
def tbptt_grads(x, y, params, k):
    # everything by hand: forward, softmax cross-entropy, backward through the last k steps
    x = to_np(x).astype(np.float64)
    y = to_np(y).astype(np.int64)
    W, U, b, V, c = (to_np(params[n]).astype(np.float64) for n in ("W", "U", "b", "V", "c"))
    T, B, _ = x.shape
    hs = [np.zeros((B, W.shape[0]))]
    for t in range(T):
        hs.append(np.tanh(hs[-1] @ W.T + x[t] @ U.T + b))
    logits = hs[T] @ V.T + c
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = p / p.sum(axis=1, keepdims=True)
    dlogits = p.copy()
    dlogits[np.arange(B), y] -= 1.0
    dlogits /= B
    grads = {"V": dlogits.T @ hs[T], "c": dlogits.sum(axis=0)}
    gW, gU, gb = np.zeros_like(W), np.zeros_like(U), np.zeros_like(b)
    dh = dlogits @ V
    for t in range(T, max(T - k, 0), -1):      # steps T, T-1, ..., T-k+1
        dz = dh * (1.0 - hs[t] ** 2)
        gW += dz.T @ hs[t - 1]                 # h_{t-1} is a constant for the last of them
        gU += dz.T @ x[t - 1]
        gb += dz.sum(axis=0)
        dh = dz @ W
    grads.update(W=gW, U=gU, b=gb)
    return grads
''',
}

FLOAT64_LOOPS = {
    "rnn_forward": '''\
import math
import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    x, h0, W, U, b = (torch.as_tensor(a).double() for a in (x, h0, W, U, b))
    T, B, D = x.shape
    Hd = W.shape[0]
    H = torch.zeros(T, B, Hd, dtype=torch.float64)
    for n in range(B):                      # one sequence at a time
        h = h0[n]
        for t in range(T):
            z = torch.mv(W, h) + torch.mv(U, x[t, n]) + b
            if activation == "tanh":
                h = torch.tanh(z)
            else:
                h = 1.0 / (1.0 + torch.exp(-z))
            H[t, n] = h
    return H
''',
    "activation_jacobian": '''\
def activation_jacobian(z, activation="tanh"):
    z = torch.as_tensor(z).double()
    n = z.shape[0]
    J = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        if activation == "tanh":
            J[i, i] = 1.0 - math.tanh(float(z[i])) ** 2
        else:
            s = 1.0 / (1.0 + math.exp(-float(z[i])))
            J[i, i] = s * (1.0 - s)
    return J
''',
    "hidden_grad_norms": '''\
def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    # backward pass written out: dL/dh_t = W^T (act'(z_{t+1}) * dL/dh_{t+1})
    x, h, W, U, b = (torch.as_tensor(a).double() for a in (x, h0, W, U, b))
    T = x.shape[0]
    hs, ds = [], []
    for t in range(T):
        z = h[0] @ W.T + x[t, 0] @ U.T + b
        if activation == "tanh":
            h = torch.tanh(z).reshape(1, -1)
            ds.append(1.0 - h[0] ** 2)
        else:
            h = torch.sigmoid(z).reshape(1, -1)
            ds.append(h[0] * (1.0 - h[0]))
        hs.append(h)
    hT = hs[-1].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(hT), hT)
    grad = grad[0].double()
    g = torch.zeros(T, dtype=torch.float64)
    g[T - 1] = torch.sqrt((grad ** 2).sum())
    for t in range(T - 2, -1, -1):          # index t holds step t + 1
        grad = W.T @ (ds[t + 1] * grad)
        g[t] = torch.sqrt((grad ** 2).sum())
    return g
''',
    "gradient_bound": '''\
def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    x, h, W, U, b = (torch.as_tensor(a).double() for a in (x, h0, W, U, b))
    T = x.shape[0]
    zs = []
    for t in range(T):
        z = h @ W.T + x[t] @ U.T + b
        h = torch.tanh(z) if activation == "tanh" else torch.sigmoid(z)
        zs.append(z.reshape(-1))
    hT = h.detach().requires_grad_(True)
    loss_fn(hT).backward()
    gT = torch.linalg.vector_norm(hT.grad)
    w_norm = torch.linalg.svdvals(W)[0]     # largest singular value = spectral norm
    r = torch.zeros(T, dtype=torch.float64)
    for t in range(1, T + 1):
        prod = 1.0
        for k in range(t, T):               # k = t .. T-1, J_{k+1} from z_{k+1} = zs[k]
            prod = prod * torch.linalg.matrix_norm(activation_jacobian(zs[k], activation), ord=2)
        r[t - 1] = gT * w_norm ** (T - t) * prod
    return r
''',
    "lstm_cell": '''\
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    x, h, c, W_ih, W_hh, b_ih, b_hh = (torch.as_tensor(a).double()
                                       for a in (x, h, c, W_ih, W_hh, b_ih, b_hh))
    B, Hd = h.shape
    h_new = torch.zeros(B, Hd, dtype=torch.float64)
    c_new = torch.zeros(B, Hd, dtype=torch.float64)
    for n in range(B):
        gates = W_ih @ x[n] + b_ih + W_hh @ h[n] + b_hh
        i, f, g, o = torch.split(gates, Hd)
        c_new[n] = torch.sigmoid(f) * c[n] + torch.sigmoid(i) * torch.tanh(g)
        h_new[n] = torch.sigmoid(o) * torch.tanh(c_new[n])
    return h_new, c_new
''',
    "tree_encode": '''\
def tree_encode(tree, embed, W, b):
    W, b = torch.as_tensor(W).double(), torch.as_tensor(b).double()
    if isinstance(tree, str):
        return torch.as_tensor(embed[tree]).double()
    left = tree_encode(tree[0], embed, W, b)
    right = tree_encode(tree[1], embed, W, b)
    both = torch.tensor(left.tolist() + right.tolist(), dtype=torch.float64)   # a list, no cat
    out = []
    for row in range(W.shape[0]):
        out.append(math.tanh(sum(W[row, j].item() * both[j].item() for j in range(len(both)))
                             + b[row].item()))
    return torch.tensor(out, dtype=torch.float64)
''',
    "tbptt_grads": '''\
import torch.nn.functional as F

def tbptt_grads(x, y, params, k):
    p = {name: torch.as_tensor(v).detach().double().clone().requires_grad_(True)
         for name, v in params.items()}
    x = torch.as_tensor(x).double()
    T, B, _ = x.shape
    h = torch.zeros(B, p["W"].shape[0], dtype=torch.float64)
    for t in range(1, T + 1):
        if t == T - k + 1:                  # h_{T-k} enters the last k steps as a constant
            h = h.detach()
        h = torch.tanh(h @ p["W"].T + x[t - 1] @ p["U"].T + p["b"])
    logits = h @ p["V"].T + p["c"]
    loss = F.cross_entropy(logits, torch.as_tensor(y))
    loss.backward()
    return {name: p[name].grad for name in ("W", "U", "b", "V", "c")}
''',
}

EINSUM = {
    "rnn_forward": '''\
import torch

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = getattr(torch, activation)        # torch.tanh or torch.sigmoid
    xu = torch.einsum("hd,tbd->tbh", U, x) + b
    h, out = h0, []
    for t in range(x.shape[0]):
        h = act(torch.einsum("ij,bj->bi", W, h) + xu[t])
        out.append(h)
    return torch.stack(out)
''',
    "activation_jacobian": '''\
def activation_jacobian(z, activation="tanh"):
    f = getattr(torch, activation)
    return torch.autograd.functional.jacobian(f, z)
''',
    "hidden_grad_norms": '''\
def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    act = getattr(torch, activation)
    with torch.enable_grad():
        h = h0.clone().requires_grad_()
        hs = []
        for t in range(x.shape[0]):
            h = act((W @ h.T).T + (U @ x[t].T).T + b)
            hs.append(h)
        grads = torch.autograd.grad(loss_fn(hs[-1]), hs)
    return torch.stack([torch.linalg.norm(g) for g in grads])
''',
    "gradient_bound": '''\
def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    act = getattr(torch, activation)
    T = x.shape[0]
    h, zs = h0, []
    with torch.no_grad():
        for t in range(T):
            z = torch.einsum("ij,bj->bi", W, h) + torch.einsum("ij,bj->bi", U, x[t]) + b
            h = act(z)
            zs.append(z[0])
    hT = h.clone().requires_grad_()
    (g_T,) = torch.autograd.grad(loss_fn(hT), hT)
    j = torch.stack([activation_jacobian(z, activation).diagonal().abs().max() for z in zs])
    # suffix[t] = prod_{s >= t} j[s]; r[t-1] needs j[t] ... j[T-1], i.e. suffix[t]
    suffix = torch.cat([torch.flip(torch.cumprod(torch.flip(j, [0]), 0), [0]), torch.ones(1)])
    powers = torch.arange(T - 1, -1, -1, dtype=torch.float32)
    return g_T.norm() * torch.linalg.matrix_norm(W, ord=2) ** powers * suffix[1:]
''',
    "lstm_cell": '''\
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    B, Hd = h.shape
    gates = torch.einsum("gd,bd->bg", W_ih, x) + torch.einsum("gh,bh->bg", W_hh, h) + b_ih + b_hh
    i, f, g, o = gates.view(B, 4, Hd).unbind(1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new
''',
    "tree_encode": '''\
def tree_encode(tree, embed, W, b):
    d = W.shape[0]
    W_left, W_right = W[:, :d], W[:, d:]    # W [l; r] = W_left l + W_right r, no concatenation
    if isinstance(tree, str):
        return embed[tree]
    left, right = tree
    return torch.tanh(W_left @ tree_encode(left, embed, W, b)
                      + W_right @ tree_encode(right, embed, W, b) + b)
''',
    "tbptt_grads": '''\
import torch.nn.functional as F

def tbptt_grads(x, y, params, k):
    W, U, b, V, c = (params[n].detach().clone().requires_grad_() for n in ("W", "U", "b", "V", "c"))
    T, B, _ = x.shape
    step = lambda h, x_t: torch.tanh(torch.einsum("ij,bj->bi", W, h) + x_t @ U.T + b)
    h = torch.zeros(B, W.shape[0])
    with torch.no_grad():                   # steps 1 .. T-k: no graph, h_{T-k} is constant
        for t in range(max(T - k, 0)):
            h = step(h, x[t])
    for t in range(max(T - k, 0), T):
        h = step(h, x[t])
    loss = F.cross_entropy(h @ V.T + c, y)
    gW, gU, gb, gV, gc = torch.autograd.grad(loss, [W, U, b, V, c])
    return {"W": gW, "U": gU, "b": gb, "V": gV, "c": gc}
''',
}

STYLES: dict[str, dict[str, str]] = {
    "styles_numpy": NUMPY,
    "styles_float64_loops": FLOAT64_LOOPS,
    "styles_einsum": EINSUM,
}

# ------------------------------------------------------------------------------------------------
# One mistake per notebook, written as a student would write it.


@dataclass(frozen=True)
class Scenario:
    function: str      # the function the student's cell replaces
    question: str      # its question id
    source: str        # the student's cell
    phrase: str = ""   # distinctive words of the expected message (grader.checks.mistakes wording)
    about: str = ""    # what the mistake is, for the test's id and the reader


MISTAKES: dict[str, Scenario] = {
    "rnn_activation_ignored": Scenario("rnn_forward", "11.4.a", '''\
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    h = h0
    H = []
    for t in range(x.shape[0]):
        h = torch.tanh(h @ W.T + x[t] @ U.T + b)
        H.append(h)
    return torch.stack(H)
''', "tanh in place of sigmoid", "the activation argument is ignored"),
    "rnn_W_transposed": Scenario("rnn_forward", "11.4.a", '''\
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h = h0
    H = []
    for t in range(x.shape[0]):
        h = act(h @ W + x[t] @ U.T + b)
        H.append(h)
    return torch.stack(H)
''', "with `W` transposed", "W transposed"),
    "rnn_U_transposed": Scenario("rnn_forward", "11.4.a", '''\
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h = h0
    H = []
    for t in range(x.shape[0]):
        h = act(h @ W.T + x[t] @ U + b)
        H.append(h)
    return torch.stack(H)
''', "with `U` transposed", "U transposed (shows on the case with D == H)"),
    "rnn_bias_missing": Scenario("rnn_forward", "11.4.a", '''\
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h = h0
    H = []
    for t in range(x.shape[0]):
        h = act(h @ W.T + x[t] @ U.T)
        H.append(h)
    return torch.stack(H)
''', "without the bias `b`", "bias left out"),
    "lstm_gates_ifog": Scenario("lstm_cell", "11.4.c", '''\
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
    i, f, o, g = gates.chunk(4, dim=1)
    i, f, o, g = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), torch.tanh(g)
    c_new = f * c + i * g
    h_new = o * torch.tanh(c_new)
    return h_new, c_new
''', "in the order i, f, o, g", "gates in the order i, f, o, g"),
    "tree_children_swapped": Scenario("tree_encode", "11.4.c", '''\
def tree_encode(tree, embed, W, b):
    if isinstance(tree, str):
        return embed[tree]
    left, right = tree
    return torch.tanh(W @ torch.cat([tree_encode(right, embed, W, b),
                                     tree_encode(left, embed, W, b)]) + b)
''', "children concatenated the wrong way round", "children concatenated right before left"),
    "bound_exponent_off_by_one": Scenario("gradient_bound", "11.4.b", '''\
def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    T = x.shape[0]
    h = h0
    zs = []
    for t in range(T):
        z = h @ W.T + x[t] @ U.T + b
        h = act(z)
        zs.append(z[0])
    hT = h.detach().requires_grad_(True)
    loss_fn(hT).backward()
    dL_dhT = hT.grad.norm()
    W_norm = torch.linalg.matrix_norm(W, ord=2)
    J_norms = [torch.linalg.matrix_norm(activation_jacobian(z, activation), ord=2) for z in zs]
    r = torch.zeros(T)
    for t in range(T):
        r[t] = dL_dhT * W_norm ** (T - t)
        for k in range(t + 1, T):
            r[t] = r[t] * J_norms[k]
    return r
''', "the exponent is one too large", "exponent T - t with a 0-based t"),
    "bound_frobenius": Scenario("gradient_bound", "11.4.b", '''\
def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    T = x.shape[0]
    h = h0
    zs = []
    for t in range(T):
        z = h @ W.T + x[t] @ U.T + b
        h = act(z)
        zs.append(z[0])
    hT = h.detach().requires_grad_(True)
    loss_fn(hT).backward()
    dL_dhT = hT.grad.norm()
    W_norm = torch.norm(W)
    J_norms = [torch.linalg.matrix_norm(activation_jacobian(z, activation), ord=2) for z in zs]
    r = torch.zeros(T)
    for t in range(1, T + 1):
        r[t - 1] = dL_dhT * W_norm ** (T - t)
        for k in range(t, T):
            r[t - 1] = r[t - 1] * J_norms[k]
    return r
''', "Frobenius norm of `W`", "torch.norm(W), the Frobenius norm, for ||W||"),
    "tbptt_window_one_longer": Scenario("tbptt_grads", "11.4.d", '''\
import torch.nn.functional as F

def tbptt_grads(x, y, params, k):
    W, U, b, V, c = (params[n].clone().requires_grad_(True) for n in ["W", "U", "b", "V", "c"])
    T, B = x.shape[0], x.shape[1]
    h = torch.zeros(B, W.shape[0])
    for t in range(T):
        if t == T - k - 1:
            h = h.detach()
        h = torch.tanh(h @ W.T + x[t] @ U.T + b)
    loss = F.cross_entropy(h @ V.T + c, y)
    loss.backward()
    return {"W": W.grad, "U": U.grad, "b": b.grad, "V": V.grad, "c": c.grad}
''', "with a window of k + 1 steps", "truncation one step too late (k + 1 steps)"),
    "grad_norms_shifted": Scenario("hidden_grad_norms", "11.4.b", '''\
def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h = h0.clone().requires_grad_(True)
    hs = [h]
    for t in range(x.shape[0]):
        h = act(h @ W.T + x[t] @ U.T + b)
        hs.append(h)
    loss = loss_fn(hs[-1])
    grads = torch.autograd.grad(loss, hs[:-1])
    return torch.stack([g.norm() for g in grads])
''', "shifted by one step", "gradients at h_0..h_{T-1} instead of h_1..h_T"),
    "rnn_no_recurrence": Scenario("rnn_forward", "11.4.a", '''\
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    H = []
    for t in range(x.shape[0]):
        H.append(act(x[t] @ U.T + b))  # one hidden layer per step
    return torch.stack(H)
''', "without the recurrence term", "h_t = act(U x_t + b): no W h_{t-1}"),
    "grad_norms_loss_every_state": Scenario("hidden_grad_norms", "11.4.b", '''\
def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h = h0.clone().requires_grad_(True)
    hs = []
    for t in range(x.shape[0]):
        h = act(h @ W.T + x[t] @ U.T + b)
        h.retain_grad()
        hs.append(h)
    loss = sum(loss_fn(h_t) for h_t in hs)   # a loss on every state
    loss.backward()
    return torch.stack([h_t.grad.norm() for h_t in hs])
''', "with the loss applied to every state", "loss summed over every h_t"),
    "bound_all_frobenius": Scenario("gradient_bound", "11.4.b", '''\
def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    T = x.shape[0]
    h = h0
    zs = []
    for t in range(T):
        z = h @ W.T + x[t] @ U.T + b
        h = act(z)
        zs.append(z[0])
    hT = h.detach().requires_grad_(True)
    loss_fn(hT).backward()
    g_T = hT.grad.norm()
    r = torch.zeros(T)
    for t in range(1, T + 1):
        r[t - 1] = g_T * torch.norm(W) ** (T - t)
        for k in range(t, T):
            r[t - 1] = r[t - 1] * torch.norm(activation_jacobian(zs[k], activation))
    return r
''', "Frobenius norms of both", "torch.norm (Frobenius) for both ||W|| and ||J||"),
    "lstm_tanh_output_gate": Scenario("lstm_cell", "11.4.c", '''\
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
    i, f, g, o = gates.chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.tanh(o) * torch.tanh(c_new)
    return h_new, c_new
''', "tanh in place of the sigmoid on the output gate", "o = tanh(...) instead of sigmoid"),
    "tbptt_loss_every_step": Scenario("tbptt_grads", "11.4.d", '''\
import torch.nn.functional as F

def tbptt_grads(x, y, params, k):
    W, U, b, V, c = (params[n].detach().clone().requires_grad_(True) for n in ["W", "U", "b", "V", "c"])
    T, B = x.shape[0], x.shape[1]
    h = torch.zeros(B, W.shape[0])
    loss = 0
    for t in range(T):
        if t == T - k:
            h = h.detach()
        h = torch.tanh(h @ W.T + x[t] @ U.T + b)
        loss = loss + F.cross_entropy(h @ V.T + c, y)   # a target at every step
    loss.backward()
    return {"W": W.grad, "U": U.grad, "b": b.grad, "V": V.grad, "c": c.grad}
''', "target of every step", "y used as the target of every step"),
    # ---- wrong kinds of return value -----------------------------------------------------------
    "rnn_wrong_shape": Scenario("rnn_forward", "11.4.a", '''\
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h = h0
    H = []
    for t in range(x.shape[0]):
        h = act(h @ W.T + x[t] @ U.T + b)
        H.append(h.T)                  # (Hd, B)
    return torch.stack(H)              # (T, Hd, B)
''', about="returns (T, Hd, B)"),
    "grad_norms_int_dtype": Scenario("hidden_grad_norms", "11.4.b", '''\
def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h = h0.clone().requires_grad_(True)
    hs = []
    for t in range(x.shape[0]):
        h = act(h @ W.T + x[t] @ U.T + b)
        h.retain_grad()
        hs.append(h)
    loss_fn(hs[-1]).backward()
    g = torch.zeros(len(hs), dtype=torch.long)
    for t in range(len(hs)):
        g[t] = hs[t].grad.norm()
    return g
''', about="returns an int64 tensor"),
    "tree_returns_none": Scenario("tree_encode", "11.4.c", '''\
def tree_encode(tree, embed, W, b):
    def enc(node):
        if isinstance(node, str):
            return embed[node]
        return torch.tanh(W @ torch.cat([enc(node[0]), enc(node[1])]) + b)
    p = enc(tree)
    print(p)
''', about="prints the root vector and returns None"),
    "lstm_raises": Scenario("lstm_cell", "11.4.c", '''\
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    gates = W_ih @ x + b_ih + W_hh @ h + b_hh
    i, f, g, o = gates.chunk(4)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new
''', about="raises: W_ih @ x with x of shape (B, D)"),
}

# Mistakes that the cases cannot tell apart from another catalogued one: the report must say
# "consistent with A or B" (tests/test_probes.py), never name one of them flatly.
EITHER: dict[str, Scenario] = {
    # x read as (B, T, D): runs only where B = 1 (the other cases raise), and there it equals
    # "every step computed from h0"
    "rnn_time_batch_swapped": Scenario("rnn_forward", "11.4.a", '''\
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    B, T, D = x.shape          # the axes read the wrong way round
    h = h0
    H = []
    for t in range(T):
        h = act(h @ W.T + x[:, t] @ U.T + b)
        H.append(h)
    return torch.stack(H, dim=1)
''', about="time and batch axes swapped"),
}


# ------------------------------------------------------------------------------------------------
# Twelve typical single-bug notebooks over all seven functions (tests/test_probes.py): some bugs
# are catalogued in grader/checks/mistakes.py, others are found only by the probes of grader/checks/probes.py.
# A report "names the bug" when it names the catalogued mistake ``mistake`` (by its key) or says
# that the probes' term ``term`` (a key of grader.checks.probes.TERMS) is wrong.

SINGLE_BUG_DIR = MISTAKES_DIR / "single_bug"


@dataclass(frozen=True)
class SingleBug:
    function: str
    question: str
    source: str
    mistake: str = ""  # the catalogued mistake that is this bug, if any
    term: str = ""     # the term of grader.checks.probes.TERMS[function] that is wrong
    about: str = ""


SINGLE_BUGS: dict[str, SingleBug] = {
    "rnn_no_recurrence": SingleBug("rnn_forward", "11.4.a", '''\
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h = h0
    out = []
    for t in range(x.shape[0]):
        h = act(x[t] @ U.T + b)
        out.append(h)
    return torch.stack(out)
''', "no_recurrence", "recur", "the recurrence W h_{t-1} left out"),
    "rnn_input_sign": SingleBug("rnn_forward", "11.4.a", '''\
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h, out = h0, []
    for t in range(x.shape[0]):
        h = act(h @ W.T - x[t] @ U.T + b)
        out.append(h)
    return torch.stack(out)
''', "", "input", "wrong sign on the input term"),
    "rnn_bias_twice": SingleBug("rnn_forward", "11.4.a", '''\
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h, out = h0, []
    for t in range(x.shape[0]):
        h = act((h @ W.T + b) + (x[t] @ U.T + b))   # b_hh and b_ih, as in torch.nn.RNN
        out.append(h)
    return torch.stack(out)
''', "bias_twice", "bias", "the bias added twice"),
    "jacobian_sigmoid_derivative": SingleBug("activation_jacobian", "11.4.b", '''\
def activation_jacobian(z, activation="tanh"):
    if activation == "tanh":
        d = 1 - torch.tanh(z) ** 2
    else:
        d = torch.exp(-z) / (1 + torch.exp(-z))   # the square of the denominator is missing
    return torch.diag(d)
''', "", "d", "the sigmoid's derivative without the square"),
    "grad_norms_loss_every_state": SingleBug("hidden_grad_norms", "11.4.b", '''\
def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    hs, h = [], h0.clone().requires_grad_(True)
    for t in range(x.shape[0]):
        h = act(h @ W.T + x[t] @ U.T + b)
        hs.append(h)
    total = sum(loss_fn(s) for s in hs)
    grads = torch.autograd.grad(total, hs)
    return torch.stack([g.norm() for g in grads])
''', "loss_on_every_state", "only_last", "the loss applied to every h_t"),
    "grad_norms_W_transposed": SingleBug("hidden_grad_norms", "11.4.b", '''\
def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    hs, h = [], h0.clone().requires_grad_(True)
    for t in range(x.shape[0]):
        h = act(h @ W + x[t] @ U.T + b)
        hs.append(h)
    grads = torch.autograd.grad(loss_fn(hs[-1]), hs)
    return torch.stack([g.norm() for g in grads])
''', "", "chain", "W transposed in the forward pass"),
    "bound_frobenius": SingleBug("gradient_bound", "11.4.b", '''\
def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    T = x.shape[0]
    h, zs = h0, []
    for t in range(T):
        z = h @ W.T + x[t] @ U.T + b
        h = act(z)
        zs.append(z[0])
    hT = h.detach().requires_grad_(True)
    loss_fn(hT).backward()
    r = []
    for t in range(1, T + 1):
        value = hT.grad.norm() * torch.norm(W) ** (T - t)
        for k in range(t, T):
            value = value * torch.norm(activation_jacobian(zs[k], activation))
        r.append(value)
    return torch.stack(r)
''', "all_frobenius", "", "torch.norm (Frobenius) for both W and J"),
    "bound_no_loss_gradient": SingleBug("gradient_bound", "11.4.b", '''\
def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    T = x.shape[0]
    h, zs = h0, []
    for t in range(T):
        z = h @ W.T + x[t] @ U.T + b
        h = act(z)
        zs.append(z[0])
    w = torch.linalg.matrix_norm(W, ord=2)
    r = []
    for t in range(1, T + 1):
        value = w ** (T - t)
        for k in range(t, T):
            value = value * torch.linalg.matrix_norm(activation_jacobian(zs[k], activation), ord=2)
        r.append(value)
    return torch.stack(r)      # the factor ||dL/dh_T|| is forgotten
''', "", "gT", "the factor ||dL/dh_T|| left out"),
    "lstm_output_gate_tanh": SingleBug("lstm_cell", "11.4.c", '''\
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    z = x @ W_ih.T + h @ W_hh.T + b_ih + b_hh
    Hd = h.shape[1]
    i = torch.sigmoid(z[:, :Hd])
    f = torch.sigmoid(z[:, Hd:2 * Hd])
    g = torch.tanh(z[:, 2 * Hd:3 * Hd])
    o = torch.tanh(z[:, 3 * Hd:])
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new
''', "tanh_on_output_gate", "o", "tanh on the output gate"),
    "lstm_bias_ih_twice": SingleBug("lstm_cell", "11.4.c", '''\
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    z = (x @ W_ih.T + b_ih) + (h @ W_hh.T + b_ih)   # b_ih where b_hh belongs
    i, f, g, o = z.chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new
''', "", "bias", "b_ih added twice, b_hh never"),
    "tree_concat_order": SingleBug("tree_encode", "11.4.c", '''\
def tree_encode(tree, embed, W, b):
    if isinstance(tree, str):
        return embed[tree]
    left = tree_encode(tree[0], embed, W, b)
    right = tree_encode(tree[1], embed, W, b)
    return torch.tanh(W @ torch.cat([right, left]) + b)
''', "children_swapped", "order", "children concatenated right before left"),
    "tbptt_detach_after_step": SingleBug("tbptt_grads", "11.4.d", '''\
import torch.nn.functional as F

def tbptt_grads(x, y, params, k):
    p = {n: v.detach().clone().requires_grad_(True) for n, v in params.items()}
    T, B = x.shape[0], x.shape[1]
    h = torch.zeros(B, p["W"].shape[0])
    for t in range(T):
        h = torch.tanh(h @ p["W"].T + x[t] @ p["U"].T + p["b"])
        if t == T - k:          # one step late: this is h_{T-k+1}
            h = h.detach()
    loss = F.cross_entropy(h @ p["V"].T + p["c"], y)
    grads = torch.autograd.grad(loss, [p[n] for n in ("W", "U", "b", "V", "c")], allow_unused=True)
    return {n: (torch.zeros_like(p[n]) if g is None else g) for n, g in zip(("W", "U", "b", "V", "c"), grads)}
''', "window_one_shorter", "", "the state detached one step late"),
}


def build_single_bugs() -> dict[Path, Any]:
    return {SINGLE_BUG_DIR / f"{name}.ipynb": mistake_notebook(bug) for name, bug in SINGLE_BUGS.items()}


# ------------------------------------------------------------------------------------------------


def _normalise_ids(nb: Any) -> Any:
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    return nb


def style_notebook(functions: dict[str, str]) -> Any:
    nb = solution(fast=True)
    for name in FUNCTIONS:
        set_function(nb, name, functions[name])
    return _normalise_ids(nb)


def mistake_notebook(scenario: Scenario | SingleBug) -> Any:
    nb = solution(fast=True)
    set_function(nb, scenario.function, scenario.source)
    return _normalise_ids(nb)


def build_all() -> dict[Path, Any]:
    """Every fixture path -> its notebook, as this script makes it."""
    out: dict[Path, Any] = {}
    for name, functions in STYLES.items():
        out[STYLES_DIR / f"{name}.ipynb"] = style_notebook(functions)
    for name, scenario in {**MISTAKES, **EITHER}.items():
        out[MISTAKES_DIR / f"{name}.ipynb"] = mistake_notebook(scenario)
    return out


def render(nb: Any) -> str:
    return nbformat.writes(nb)


def main(argv: list[str]) -> int:
    built = {**build_all(), **build_single_bugs()}
    if "--check" in argv:
        stale = [p for p, nb in built.items() if not p.exists() or p.read_text(encoding="utf-8") != render(nb)]
        for p in stale:
            print(f"stale: {p.relative_to(HERE.parent)}")
        return 1 if stale else 0
    for directory in (STYLES_DIR, MISTAKES_DIR, SINGLE_BUG_DIR):
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("*.ipynb"):
            if old not in built:
                old.unlink()
    for path, nb in built.items():
        path.write_text(render(nb), encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
