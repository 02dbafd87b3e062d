"""The computations of Exercise 11.4 with switches: each a small implementation whose keyword
switches default to the correct computation, so that a mistake is one switch flipped.

Every function of 11.4 (CONTRACT.md section 3) has one implementation here, taking the contract
function's arguments plus keyword-only switches; with every switch at its default it computes what
the contract says (tests/test_mistakes.py checks each against an independent oracle). The
catalogue of mistakes (grader/checks/mistakes.py) is a table of switch settings over these
implementations; :data:`CORRECT` maps each contract function name to its implementation.

These implementations deliberately do not import the ``reference`` package: a mistake library
that shared the reference's code would share its bugs. Gradients are taken with autograd enabled
inside, so every implementation also runs under ``torch.no_grad()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import torch
import torch.nn.functional as F

__all__ = ["CORRECT", "Activation", "Tree", "bound", "dact", "encode_tree", "grad_norms", "jacobian",
           "lstm", "rnn", "tbptt", "tree_leaves"]

#: An elementwise function of a tensor (an activation, a gate's squashing).
Activation: TypeAlias = Callable[[torch.Tensor], torch.Tensor]

#: A parse tree of 11.4's tree_encode: a word, or a pair (left, right) of trees.
Tree: TypeAlias = "str | tuple[Tree, Tree]"

ACT: dict[str, Activation] = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda z: z}


def dact(z: torch.Tensor, name: str) -> torch.Tensor:
    """The derivative of activation ``name`` ("tanh" or "sigmoid") at ``z``."""
    if name == "tanh":
        return 1 - torch.tanh(z) ** 2
    if name == "sigmoid":
        s = torch.sigmoid(z)
        return s * (1 - s)
    raise ValueError(f"unknown activation {name!r}")


def rnn(x: torch.Tensor, h0: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
        activation: str = "tanh", *, act: str | None = None, transpose_W: bool = False,
        transpose_U: bool = False, swap_WU: bool = False, use_bias: bool = True, use_h0: bool = True,
        update_state: bool = True, shifted: bool = False, recurrence: bool = True,
        bias_times: int = 1, swap_time_batch: bool = False) -> torch.Tensor:
    """rnn_forward: h_1..h_T stacked, h_t = act(W h_{t-1} + U x_t + b) for a batch of rows."""
    f = ACT[act or activation]
    if swap_WU:
        W, U = U, W
    if swap_time_batch:  # x read as (B, T, D): the batch is walked as time, the steps as a batch
        x = x.transpose(0, 1)
        if h0.shape[0] == 1:  # only then does h0 broadcast over the T "batch" rows
            h0 = h0.expand(x.shape[1], -1)
    Wm = W if transpose_W else W.T  # batch rows: h @ W.T is W h for each row
    Um = U if transpose_U else U.T
    h = start = h0 if use_h0 else torch.zeros_like(h0)
    hs = []
    for t in range(x.shape[0]):
        z = x[t] @ Um
        if recurrence:
            z = z + (h if update_state else start) @ Wm
        h = f(z + bias_times * b if use_bias else z)
        hs.append(h)
    if shifted:
        hs = [h0] + hs[:-1]
    out = torch.stack(hs)
    return out.transpose(0, 1) if swap_time_batch else out


def jacobian(z: torch.Tensor, activation: str = "tanh", *, act: str | None = None,
             form: str = "derivative") -> torch.Tensor:
    """activation_jacobian: diag(act'(z)); ``form`` names what stands on the diagonal instead."""
    a = act or activation
    d: dict[str, Callable[[], torch.Tensor]] = {
        "derivative": lambda: dact(z, a),
        "value": lambda: ACT[a](z),
        "tanh_no_square": lambda: 1 - torch.tanh(z),
        "output_formula_on_z": lambda: 1 - z**2 if a == "tanh" else z * (1 - z),
        "sigmoid_times_1_minus_z": lambda: torch.sigmoid(z) * (1 - z),
    }
    return torch.diag(d[form]())


def _unroll(x: torch.Tensor, h0: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
            activation: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """z_1..z_T and h_0..h_T as lists, inside the autograd graph."""
    f = ACT[activation]
    zs: list[torch.Tensor] = []
    hs = [h0]
    for t in range(x.shape[0]):
        zs.append(hs[-1] @ W.T + x[t] @ U.T + b)
        hs.append(f(zs[-1]))
    return zs, hs


def _norms_without_derivative(x: torch.Tensor, h0: torch.Tensor, W: torch.Tensor, U: torch.Tensor,
                              b: torch.Tensor, loss_fn: Activation, a: str) -> torch.Tensor:
    """||dL/dh_t|| carried back through W only: dL/dh_t = W^T dL/dh_{t+1}, act'(z) forgotten."""
    with torch.no_grad():
        _, hs = _unroll(x, h0, W, U, b, a)
    with torch.enable_grad():
        hT = hs[-1].detach().clone().requires_grad_(True)
        (d,) = torch.autograd.grad(loss_fn(hT).sum(), hT)
    ds = [d]
    for _ in range(x.shape[0] - 1):
        ds.append(ds[-1] @ W.to(d.dtype))
    return torch.stack([torch.linalg.vector_norm(v) for v in ds[::-1]]).float()


def _total(losses: list[torch.Tensor]) -> torch.Tensor:
    """The sum of ``losses``, added in order."""
    total = losses[0]
    for loss in losses[1:]:
        total = total + loss
    return total


def grad_norms(x: torch.Tensor, h0: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
               loss_fn: Activation, activation: str = "tanh", *, act: str | None = None, wrt: str = "h",
               reverse: bool = False, squared: bool = False, loss_on_all: bool = False,
               local: bool = False, loss_at: int = -1, no_derivative: bool = False) -> torch.Tensor:
    """hidden_grad_norms: ||dL/dh_t|| for t = 1..T, L = loss_fn(h_T) summed."""
    a = act or activation
    if no_derivative:
        return _norms_without_derivative(x, h0, W, U, b, loss_fn, a)
    grads: tuple[torch.Tensor | None, ...]
    with torch.enable_grad():
        h0 = h0.detach().clone().requires_grad_(True)
        zs, hs = _unroll(x.detach(), h0, W.detach(), U.detach(), b.detach(), a)
        targets = {"h": hs[1:], "z": zs, "h_prev": hs[:-1]}[wrt]
        if local:  # d loss_fn(h_t) / d h_t at each t, h_t taken as a leaf
            grads = tuple(_local_grad(loss_fn, h) for h in hs[1:])
        else:
            # loss_on_all: L = sum_t loss_fn(h_t), as if every state had a target
            loss = (_total([loss_fn(h).sum() for h in hs[1:]]) if loss_on_all
                    else loss_fn(hs[1:][loss_at]).sum())
            grads = torch.autograd.grad(loss, targets, allow_unused=True)
    n = torch.stack([torch.zeros(()) if g is None else torch.linalg.vector_norm(g) for g in grads])
    n = n**2 if squared else n
    return (n.flip(0) if reverse else n).float()


def _local_grad(loss_fn: Activation, h: torch.Tensor) -> torch.Tensor:
    leaf = h.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(leaf).sum(), leaf)
    return g


def _jacobian_norms(ds: list[torch.Tensor], W: torch.Tensor, j_ord: str, full_step: bool) -> torch.Tensor:
    """||J_j|| for each diagonal ``ds[j-1]`` of J_j (or of the whole step J_j W when ``full_step``)."""
    if full_step:  # the norm of the whole step Jacobian diag(d) W, and no separate ||W|| power
        return torch.stack([torch.linalg.matrix_norm(torch.diag(d) @ W, ord=2) for d in ds])
    if j_ord == "fro":
        return torch.stack([torch.linalg.vector_norm(d) for d in ds])
    return torch.stack([d.abs().max() for d in ds])  # spectral norm of a diagonal matrix: its largest |entry|


def bound(x: torch.Tensor, h0: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
          loss_fn: Activation, activation: str = "tanh", *, act: str | None = None, exp_shift: int = 0,
          w_ord: int | str = 2, j_ord: str = "spectral", j_of: str = "derivative", j_first: int = 1,
          j_last: int = 0, combine: str = "prod", full_step: bool = False,
          j_from_h: bool = False) -> torch.Tensor:
    """gradient_bound: r[i] = ||dL/dh_T|| ||W||^(T-t) combine(||J_j|| for j in the window), t = i + 1.

    The norms ||J_j||, J_j = diag(act'(z_j)), j = 1..T, sit at nJ[j-1]; the correct window
    J_{t+1}..J_T is nJ[i + j_first : T + j_last] with j_first = 1, j_last = 0.
    """
    a = act or activation
    with torch.no_grad():
        zs, hs = _unroll(x, h0, W, U, b, a)
    with torch.enable_grad():
        hT = hs[-1].detach().clone().requires_grad_(True)
        (gT,) = torch.autograd.grad(loss_fn(hT).sum(), hT)
    gT = torch.linalg.vector_norm(gT.float())
    T = len(zs)
    pre = [h[0] for h in hs[1:]] if j_from_h else [z[0] for z in zs]  # j_from_h: act'(h), not act'(z)
    ds = [dact(z, a) if j_of == "derivative" else ACT[a](z) for z in pre]
    nJ = _jacobian_norms(ds, W, j_ord, full_step)
    wn = (torch.linalg.eigvals(W).abs().max() if w_ord == "radius"
          else torch.linalg.matrix_norm(W, ord=w_ord))
    r = []
    for i in range(T):
        seg = nJ[max(i + j_first, 0): T + j_last]
        fac = {"prod": seg.prod(), "sum": seg.sum(), "none": torch.tensor(1.0)}[combine]
        power = 1.0 if full_step else wn ** (T - (i + 1) + exp_shift)
        r.append(gT * power * fac)
    return torch.stack(r).float()


def lstm(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor,
         b_ih: torch.Tensor, b_hh: torch.Tensor, *, order: str = "ifgo", forget: bool = True,
         tanh_c: bool = True, old_c: bool = False, g_act: Activation = torch.tanh,
         o_act: Activation = torch.sigmoid, use_b_ih: bool = True, use_b_hh: bool = True,
         sig: Activation = torch.sigmoid) -> tuple[torch.Tensor, torch.Tensor]:
    """lstm_cell: (h_new, c_new) of one step of torch's LSTM cell (gate blocks i, f, g, o)."""
    z = x @ W_ih.T + h @ W_hh.T
    if use_b_ih:
        z = z + b_ih
    if use_b_hh:
        z = z + b_hh
    gate = dict(zip(order, z.chunk(4, dim=-1)))  # `order` names the four stacked blocks
    i, f = (sig(gate[k]) for k in "if")
    o = (sig if o_act is torch.sigmoid else o_act)(gate["o"])
    g = g_act(gate["g"])
    c_new = i * g + (f * c if forget else 0)
    cc = c if old_c else c_new
    return o * (torch.tanh(cc) if tanh_c else cc), c_new


def tree_leaves(t: Tree) -> list[str]:
    """The words of ``t`` from left to right."""
    return [t] if isinstance(t, str) else [w for s in t for w in tree_leaves(s)]


def encode_tree(tree: Tree, embed: Mapping[str, torch.Tensor], W: torch.Tensor, b: torch.Tensor, *,
         swap: bool = False, squash: bool = True, squash_leaves: bool = False, use_bias: bool = True,
         bias_outside: bool = False, as_sequence: bool = False) -> torch.Tensor:
    """tree_encode: a leaf is embed[word], a pair is tanh(W [v_left ; v_right] + b)."""
    def leaf(word: str) -> torch.Tensor:
        v = embed[word]
        return torch.tanh(v) if squash_leaves else v

    def node(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        if swap:
            left, right = right, left
        z = W @ torch.cat([left, right])
        if use_bias and not bias_outside:
            z = z + b
        p = torch.tanh(z) if squash else z
        return p + b if use_bias and bias_outside else p

    def enc(s: Tree) -> torch.Tensor:
        if isinstance(s, str):
            return leaf(s)
        left, right = s
        return node(enc(left), enc(right))

    if as_sequence:  # ((w1, w2), w3), ...: the tree read as a left-to-right sequence
        words = tree_leaves(tree)
        p = leaf(words[0])
        for w in words[1:]:
            p = node(p, leaf(w))
        return p
    return enc(tree)


def _same_window(k: int) -> int:
    return k


def tbptt(x: torch.Tensor, y: torch.Tensor, params: Mapping[str, torch.Tensor], k: int, *,
          window: Callable[[int], int] = _same_window, chunked: bool = False, restart: bool = False,
          reduction: str = "mean", softmax_first: bool = False, transpose_W: bool = False,
          transpose_V: bool = False, loss_every_step: bool = False) -> dict[str, torch.Tensor]:
    """tbptt_grads: the gradients of the cross-entropy on h_T with h_{T-k} held constant."""
    with torch.enable_grad():
        p = {n: v.detach().clone().requires_grad_(True) for n, v in params.items()}
        T, B = x.shape[0], x.shape[1]
        w = window(k)
        h = torch.zeros(B, p["W"].shape[0], dtype=x.dtype)
        Wm = p["W"] if transpose_W else p["W"].T
        Vm = p["V"] if transpose_V else p["V"].T
        states = []
        for t in range(max(T - w, 0) if restart else 0, T):  # step t + 1 computes h_{t+1}
            if chunked:
                if t > 0 and t % k == 0:
                    h = h.detach()
            elif t == T - w:  # h_{T-w} held constant
                h = h.detach()
            h = torch.tanh(h @ Wm + x[t] @ p["U"].T + p["b"])
            states.append(h)
        if not chunked and w <= 0:
            h = h.detach()
        # loss_every_step: the label y used as the target of every step (many-to-many), summed
        seen = states if loss_every_step else [h]
        loss = torch.zeros(())
        for s in seen:
            logits = s @ Vm + p["c"]
            if softmax_first:
                logits = logits.softmax(dim=-1)
            loss = loss + F.cross_entropy(logits, y, reduction=reduction)
        grads = torch.autograd.grad(loss, list(p.values()), allow_unused=True)
    return {n: torch.zeros_like(v) if g is None else g for (n, v), g in zip(p.items(), grads)}


#: The correct computations by contract function name, for the catalogue, for tests and for a
#: grader that wants to check a match is not trivial.
CORRECT: dict[str, Callable[..., Any]] = {
    "rnn_forward": rnn, "activation_jacobian": jacobian, "hidden_grad_norms": grad_norms,
    "gradient_bound": bound, "lstm_cell": lstm, "tree_encode": encode_tree, "tbptt_grads": tbptt,
}
