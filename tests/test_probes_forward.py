"""Diagnoses of wrong forward passes inside the gradient functions, the LSTM cell's pre-activation
and cell update, and tbptt's window (issue 22, item 2): each bug is written by hand, in a style
the reference does not use, and the report must locate or name it, and say nothing untrue.

Fast: the probes run in this process against test_probes' fake Bridge.
"""
from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from test_probes import CHECKS, _grade, _terms

from grader.checks import probes as P
from grader.checks.cases import make_inputs
from grader.checks.compare import describe


def _diagnosis(function: str, fn) -> tuple[str, tuple[str, ...]]:
    results, _ = _grade(function, fn)
    failed = [r for r in results if not r.passed]
    assert failed, "the bug must lose points"
    return failed[0].diagnosis, failed[0].mistakes


def _located(function: str, term: str, diagnosis: str) -> bool:
    return any(f": {_terms(function, a)[term]} is wrong." in diagnosis for a in ("tanh", "sigmoid"))


# ------------------------------------------------------------------------------------------------
# gradient_bound: a forward pass, an ||W|| factor


def _bound(x, h0, W, U, b, loss_fn, activation="tanh", *, z_of=None, with_w=True):
    """The bound in a closed form (no running product), with the step's pre-activation ``z_of``."""
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    z_of = z_of or (lambda h, xt: h @ W.T + xt @ U.T + b)
    h, zs = h0, []
    for xt in x:
        zs.append(z_of(h, xt))
        h = act(zs[-1])
    hT = h.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(hT), hT)
    s = act(torch.stack(zs))
    d = 1 - s**2 if activation == "tanh" else s * (1 - s)
    jn = d.reshape(len(zs), -1).abs().max(dim=1).values
    wn = torch.linalg.matrix_norm(W, ord=2) if with_w else torch.tensor(1.0)
    T = len(zs)
    return torch.stack([g.norm() * wn ** (T - t) * jn[t:].prod() for t in range(1, T + 1)]).detach()


@pytest.mark.parametrize("name,z_of,term", [
    ("no bias", lambda W, U, b: lambda h, xt: h @ W.T + xt @ U.T, "forward"),
    ("input twice", lambda W, U, b: lambda h, xt: h @ W.T + 2 * xt @ U.T + b, "forward"),
    ("no recurrence", lambda W, U, b: lambda h, xt: xt @ U.T + b, "recur"),
    ("recurrence twice", lambda W, U, b: lambda h, xt: 2 * h @ W.T + xt @ U.T + b, "recur"),
])
def test_a_wrong_term_of_the_bounds_forward_pass_is_located(name, z_of, term) -> None:
    def student(x, h0, W, U, b, loss_fn, activation="tanh"):
        return _bound(x, h0, W, U, b, loss_fn, activation, z_of=z_of(W, U, b))

    diagnosis, _ = _diagnosis("gradient_bound", student)
    assert _located("gradient_bound", term, diagnosis), (name, diagnosis)


def test_the_closed_form_bound_is_right() -> None:
    results, _ = _grade("gradient_bound", _bound)
    assert all(r.passed for r in results), [r.message for r in results if not r.passed]


def test_a_bound_without_the_norm_of_W_is_located_at_the_power() -> None:
    """T = 1 reaches only ||W||^0, so it must not clear the exponent (it used to, and the report
    said the terms combine wrongly)."""
    diagnosis, _ = _diagnosis("gradient_bound", partial(_bound, with_w=False))
    assert _located("gradient_bound", "exponent", diagnosis), diagnosis


def _draw_bound(seed: int, params: dict, **over) -> dict:
    return make_inputs("gradient_bound", seed, {**params, **over})


def test_the_recurrence_probe_adds_nothing_through_W_and_saturates_nothing() -> None:
    (probe,) = [p for p in P.probes_for("gradient_bound") if p.name == "recurrence_adds_nothing"]
    check = CHECKS["gradient_bound"]
    for case in check.cases + check.public_cases():
        for H in (1, case.params["H"]):
            draw = partial(_draw_bound, check.public_seeds[0], {**case.params, "H": H})
            i = probe.build(draw(), draw)
            assert i["W"].shape[0] >= 2
            act = torch.tanh if i["activation"] == "tanh" else torch.sigmoid
            h = i["h0"]
            for xt in i["x"]:
                assert float((h @ i["W"].T).abs().max()) < 1e-5
                z = h @ i["W"].T + xt @ i["U"].T + i["b"]
                assert float(z.abs().max()) < 8.0
                h = act(z)
            assert float(torch.linalg.matrix_norm(i["W"], ord=2)) > 0


# ------------------------------------------------------------------------------------------------
# hidden_grad_norms


def _norms(x, h0, W, U, b, loss_fn, activation="tanh", *, loss_at=None, keep="grads", of="h"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    states, pre = [h0.clone().requires_grad_(True)], []  # states[0] is h0
    for t in range(len(x)):
        pre.append(states[-1] @ W.T + x[t] @ U.T + b)
        states.append(act(pre[-1]))
    T = len(x)
    wrt = pre if of == "z" else states[1:]
    loss = loss_fn(pre[-1] if of == "z" else states[T - 1 if loss_at == "T-1" else T])
    if keep == "states":
        return torch.stack([s.norm() for s in states[1:]]).detach()
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    return torch.stack([torch.zeros(()) if g is None else g.norm() for g in grads]).detach()


@pytest.mark.parametrize("variant,key", [
    (dict(loss_at="T-1"), "loss_one_step_early"),  # states[T - 1] read as h_T, but states[0] is h0
    (dict(keep="states"), "state_norms"),
    (dict(of="z"), "preactivations_as_states"),
])
def test_gradient_norm_mistakes_are_named(variant, key) -> None:
    _, mistakes = _diagnosis("hidden_grad_norms", partial(_norms, **variant))
    assert describe("hidden_grad_norms", key) in mistakes, mistakes


def test_a_bound_with_z_and_h_swapped_is_named() -> None:
    def student(x, h0, W, U, b, loss_fn, activation="tanh"):
        act = torch.tanh if activation == "tanh" else torch.sigmoid
        h, zs, hs = h0, [], []
        for xt in x:
            zs.append(h @ W.T + xt @ U.T + b)
            h = act(zs[-1])
            hs.append(h)
        hs, zs = zs, hs  # the two lists taken for each other
        hT = hs[-1].detach().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(hT), hT)
        s = act(torch.stack(zs))
        d = 1 - s**2 if activation == "tanh" else s * (1 - s)
        jn = d.reshape(len(zs), -1).abs().max(dim=1).values
        wn = torch.linalg.matrix_norm(W, ord=2)
        T = len(zs)
        return torch.stack([g.norm() * wn ** (T - t) * jn[t:].prod() for t in range(1, T + 1)]).detach()

    _, mistakes = _diagnosis("gradient_bound", student)
    assert describe("gradient_bound", "z_and_h_swapped") in mistakes, mistakes


# ------------------------------------------------------------------------------------------------
# lstm_cell


def _cell(x, h, c, W_ih, W_hh, b_ih, b_hh, *, pre=None, update=None):
    Hd = h.shape[-1]
    inp, rec = x @ W_ih.T + b_ih, h @ W_hh.T + b_hh
    z = pre(inp, rec) if pre else inp + rec
    i, f, o = (torch.sigmoid(z[:, k * Hd:(k + 1) * Hd]) for k in (0, 1, 3))
    g = torch.tanh(z[:, 2 * Hd:3 * Hd])
    c_new = update(i, f, g, c) if update else f * c + i * g
    return o * torch.tanh(c_new), c_new


@pytest.mark.parametrize("pre", [lambda inp, rec: rec, lambda inp, rec: 2 * inp + rec])
def test_a_wrong_input_part_of_the_gates_is_located(pre) -> None:
    diagnosis, _ = _diagnosis("lstm_cell", partial(_cell, pre=pre))
    assert _located("lstm_cell", "weights", diagnosis), diagnosis


@pytest.mark.parametrize("update,key", [
    (lambda i, f, g, c: f + i * g, "old_c_missing"),
    (lambda i, f, g, c: f * c + i, "candidate_missing"),
])
def test_a_factor_missing_from_the_cell_update_is_named(update, key) -> None:
    _, mistakes = _diagnosis("lstm_cell", partial(_cell, update=update))
    assert mistakes == (describe("lstm_cell", key),), mistakes


def test_h_and_c_taken_for_each_other_is_named() -> None:
    def student(x, h, c, W_ih, W_hh, b_ih, b_hh):
        state = (c, h)  # unpacked the wrong way round below
        h, c = state
        return _cell(x, h, c, W_ih, W_hh, b_ih, b_hh)

    _, mistakes = _diagnosis("lstm_cell", student)
    assert mistakes == (describe("lstm_cell", "state_swapped"),), mistakes


# ------------------------------------------------------------------------------------------------
# tbptt_grads


def test_a_loss_on_the_windows_first_state_is_located_in_the_forward_pass() -> None:
    """k = 1 cannot tell h_T from the window's first state, so it must not clear the forward term."""
    def student(x, y, params, k):
        p = {n: v.detach().clone().requires_grad_(True) for n, v in params.items()}
        T = x.shape[0]
        h = torch.zeros(x.shape[1], p["W"].shape[0])
        with torch.no_grad():
            for t in range(T - min(k, T)):
                h = torch.tanh(h @ p["W"].T + x[t] @ p["U"].T + p["b"])
        window = []
        for t in range(T - min(k, T), T):
            h = torch.tanh(h @ p["W"].T + x[t] @ p["U"].T + p["b"])
            window.append(h)
        loss = F.cross_entropy(window[0] @ p["V"].T + p["c"], y)  # the window's first state
        grads = torch.autograd.grad(loss, list(p.values()), allow_unused=True)
        return {n: (torch.zeros_like(v) if g is None else g) for (n, v), g in zip(p.items(), grads)}

    diagnosis, _ = _diagnosis("tbptt_grads", student)
    assert _located("tbptt_grads", "forward", diagnosis), diagnosis


def test_the_bounds_input_free_probe_keeps_its_states_alive_and_unsaturated() -> None:
    """U = 0, b = 0 with a contracting W would let tanh states die out, where act'(z) = act'(h)
    and J built from h reads right (issue 22): ||W|| = 2 keeps them alive, without saturating."""
    (probe,) = [p for p in P.probes_for("gradient_bound") if p.name == "no_input"]
    check = CHECKS["gradient_bound"]
    for case in check.cases + check.public_cases():
        draw = partial(_draw_bound, check.public_seeds[0], case.params)
        i = probe.build(draw(), draw)
        act = torch.tanh if i["activation"] == "tanh" else torch.sigmoid
        h = i["h0"]
        for _ in i["x"]:
            z = h @ i["W"].T
            assert float(z.abs().max()) < 8.0
            h = act(z)
        assert float(h.abs().max()) > 0.1, case.params
