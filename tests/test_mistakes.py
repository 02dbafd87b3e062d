"""Tests of grader/checks/mistakes.py and grader/checks/variants.py: the correct configurations
against independent oracles, and every mistake distinguishable from the correct output on inputs
of the rubric's shapes."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from grader.checks import mistakes as M
from grader.checks import variants as V

RUBRIC = Path(__file__).resolve().parents[1] / "rubrics" / "sheet11.toml"
FUNCTIONS = ["rnn_forward", "activation_jacobian", "hidden_grad_norms", "gradient_bound",
             "lstm_cell", "tree_encode", "tbptt_grads"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(g, *shape, scale=1.0):
    return torch.randn(*shape, generator=g) * scale


def _loss_fn(kind: str, H: int, g):
    a = _randn(g, 1, H)
    if kind == "linear":
        return lambda h: (h * a.to(h.dtype)).sum()
    return lambda h: 0.5 * ((h - a.to(h.dtype)) ** 2).sum()


def _with_spectral_norm(W, s):
    return W / torch.linalg.matrix_norm(W, ord=2) * s


def _tree(words, shape, g):
    if len(words) == 1:
        return words[0]
    if shape == "left_chain":
        return (_tree(words[:-1], shape, g), words[-1])
    cut = len(words) // 2 if shape == "balanced" else int(torch.randint(1, len(words), (1,), generator=g))
    return (_tree(words[:cut], shape, g), _tree(words[cut:], shape, g))


def make_inputs(function: str, case: dict, seed: int) -> dict:
    """Generic random inputs of a rubric case's shapes (own seeds, not the hidden ones)."""
    g = _gen(seed)
    if function == "rnn_forward":
        T, B, D, H = case["T"], case["B"], case["D"], case["H"]
        return dict(x=_randn(g, T, B, D), h0=_randn(g, B, H, scale=0.5),
                    W=_randn(g, H, H, scale=H**-0.5), U=_randn(g, H, D, scale=D**-0.5),
                    b=_randn(g, H, scale=0.5), activation=case["activation"])
    if function == "activation_jacobian":
        return dict(z=_randn(g, case["H"], scale=1.5), activation=case["activation"])
    if function in ("hidden_grad_norms", "gradient_bound"):
        T, D, H = case["T"], case["D"], case["H"]
        return dict(x=_randn(g, T, 1, D), h0=_randn(g, 1, H, scale=0.5),
                    W=_with_spectral_norm(_randn(g, H, H), case["spectral_norm"]),
                    U=_randn(g, H, D, scale=D**-0.5), b=_randn(g, H, scale=0.5),
                    loss_fn=_loss_fn(case["loss"], H, g), activation=case["activation"])
    if function == "lstm_cell":
        B, D, H = case["B"], case["D"], case["H"]
        return dict(x=_randn(g, B, D), h=_randn(g, B, H, scale=0.5), c=_randn(g, B, H),
                    W_ih=_randn(g, 4 * H, D, scale=0.5), W_hh=_randn(g, 4 * H, H, scale=0.5),
                    b_ih=_randn(g, 4 * H, scale=0.5), b_hh=_randn(g, 4 * H, scale=0.5))
    if function == "tree_encode":
        d, n = case["d"], case["leaves"]
        words = [f"w{j}" for j in range(n)]
        return dict(tree=_tree(words, case["shape"], g),
                    embed={w: _randn(g, d) for w in words},
                    W=_randn(g, d, 2 * d, scale=(2 * d) ** -0.5), b=_randn(g, d, scale=0.5))
    if function == "tbptt_grads":
        T, B, D, H, C = case["T"], case["B"], case["D"], case["H"], case["C"]
        params = dict(W=_randn(g, H, H, scale=H**-0.5), U=_randn(g, H, D, scale=D**-0.5),
                      b=_randn(g, H, scale=0.5), V=_randn(g, C, H), c=_randn(g, C, scale=0.5))
        return dict(x=_randn(g, T, B, D), y=torch.randint(0, C, (B,), generator=g),
                    params=params, k=case["k"])
    raise AssertionError(function)


def _rubric_cases():
    data = tomllib.loads(RUBRIC.read_text())
    out = []
    for q in data["questions"].values():
        for check in q.get("checks", []):
            for j, case in enumerate(check["cases"]):
                out.append((check["function"], case, 1000 + 17 * j + len(out)))
    return out


CASES = _rubric_cases()


def _flat(out) -> torch.Tensor:
    if isinstance(out, dict):
        return torch.cat([torch.as_tensor(out[k]).reshape(-1) for k in sorted(out)])
    if isinstance(out, tuple):
        return torch.cat([torch.as_tensor(o).reshape(-1) for o in out])
    return torch.as_tensor(out).reshape(-1)


def _clone(inputs):
    return {k: ({n: t.clone() for n, t in v.items()} if isinstance(v, dict) else
                v.clone() if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}


# ---------------------------------------------------------------------------------------------
# The correct configurations against independent oracles.


@pytest.mark.parametrize("case", [(6, 3, 4, 5), (1, 2, 5, 4), (5, 4, 3, 3)])
def test_rnn_tanh_matches_torch_rnn(case):
    T, B, D, H = case
    inp = make_inputs("rnn_forward", dict(T=T, B=B, D=D, H=H, activation="tanh"), 7)
    rnn = torch.nn.RNN(D, H)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(inp["W"]), rnn.weight_ih_l0.copy_(inp["U"])
        rnn.bias_ih_l0.copy_(inp["b"]), rnn.bias_hh_l0.zero_()
        expected, _ = rnn(inp["x"], inp["h0"].unsqueeze(0))
    torch.testing.assert_close(V.rnn(**inp), expected, rtol=1e-5, atol=1e-6)


def test_rnn_sigmoid_matches_hand_loop():
    inp = make_inputs("rnn_forward", dict(T=5, B=4, D=3, H=3, activation="sigmoid"), 8)
    x, W, U, b = (inp[k].double().numpy() for k in "xWUb")
    h, hs = inp["h0"].double().numpy(), []
    for t in range(x.shape[0]):
        h = np.stack([1 / (1 + np.exp(-(W @ h[n] + U @ x[t, n] + b))) for n in range(h.shape[0])])
        hs.append(h)
    np.testing.assert_allclose(V.rnn(**inp).numpy(), np.stack(hs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_jacobian_matches_autograd(activation):
    z = _randn(_gen(3), 6, scale=2.0)
    f = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation]
    expected = torch.autograd.functional.jacobian(f, z)
    torch.testing.assert_close(V.jacobian(z, activation), expected, rtol=1e-5, atol=1e-7)


def _manual_backprop_norms(inp):
    """dL/dh_{t-1} = W^T (act'(z_t) * dL/dh_t), written out in float64."""
    act = inp["activation"]
    x, h0, W, U, b = (inp[k].double() for k in ("x", "h0", "W", "U", "b"))
    h, zs = h0[0], []
    for t in range(x.shape[0]):
        zs.append(W @ h + U @ x[t, 0] + b)
        h = torch.tanh(zs[-1]) if act == "tanh" else torch.sigmoid(zs[-1])
    hT = h.unsqueeze(0).clone().requires_grad_(True)
    (delta,) = torch.autograd.grad(inp["loss_fn"](hT), hT)
    delta, norms = delta[0], []
    for t in reversed(range(x.shape[0])):
        norms.append(float(delta.norm()))
        s = torch.sigmoid(zs[t])
        d = 1 - torch.tanh(zs[t]) ** 2 if act == "tanh" else s * (1 - s)
        delta = W.T @ (d * delta)
    return np.array(norms[::-1]), [float(d.abs().max()) for d in
                                   [(1 - torch.tanh(z) ** 2) if act == "tanh" else
                                    torch.sigmoid(z) * (1 - torch.sigmoid(z)) for z in zs]]


@pytest.mark.parametrize("function,case,seed", [c for c in CASES if c[0] == "hidden_grad_norms"])
def test_grad_norms_match_manual_backprop(function, case, seed):
    inp = make_inputs(function, case, seed)
    expected, _ = _manual_backprop_norms(inp)
    np.testing.assert_allclose(V.grad_norms(**inp).numpy(), expected, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("function,case,seed", [c for c in CASES if c[0] == "gradient_bound"])
def test_bound_matches_formula_and_bounds_norms(function, case, seed):
    inp = make_inputs(function, case, seed)
    g, maxd = _manual_backprop_norms(inp)
    T, w = case["T"], float(np.linalg.norm(inp["W"].double().numpy(), 2))
    # r[t-1] = ||dL/dh_T|| ||W||^(T-t) prod_{k=t}^{T-1} ||J_{k+1}||, J_j at maxd[j-1]
    expected = [g[-1] * w ** (T - t) * math.prod(maxd[k] for k in range(t, T))
                for t in range(1, T + 1)]
    r = V.bound(**inp).numpy()
    np.testing.assert_allclose(r, expected, rtol=1e-4)
    assert np.all(g <= r * (1 + 1e-4))
    assert r[-1] == pytest.approx(g[-1], rel=1e-5)


@pytest.mark.parametrize("seed", [1, 2])
def test_lstm_matches_torch_lstmcell(seed):
    inp = make_inputs("lstm_cell", dict(B=3, D=4, H=5), seed)
    cell = torch.nn.LSTMCell(4, 5)
    with torch.no_grad():
        for name in ("W_ih", "W_hh", "b_ih", "b_hh"):
            getattr(cell, name.replace("W", "weight").replace("b_", "bias_")).copy_(inp[name])
        h, c = cell(inp["x"], (inp["h"], inp["c"]))
    h_new, c_new = V.lstm(**inp)
    torch.testing.assert_close(h_new, h, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c_new, c, rtol=1e-5, atol=1e-6)


def test_tree_matches_hand_computation():
    embed = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, 1.0]),
             "c": torch.tensor([1.0, 1.0])}
    W = torch.tensor([[0.5, 0.0, 0.0, 1.0], [0.0, -1.0, 0.5, 0.0]])
    b = torch.tensor([0.1, -0.2])
    p1 = [math.tanh(0.5 + 1.0 + 0.1), math.tanh(-0.2)]  # (a, b)
    root = [math.tanh(0.5 * p1[0] + 1.0 + 0.1), math.tanh(-p1[1] + 0.5 - 0.2)]  # ((a, b), c)
    out = V.encode_tree((("a", "b"), "c"), embed, W, b)
    np.testing.assert_allclose(out.numpy(), root, rtol=1e-6)
    assert torch.equal(V.encode_tree("a", embed, W, b), embed["a"])


def _tbptt_oracle(x, y, params, k):
    """nn.RNN without grad over the first T-k steps, with grad over the last k."""
    T, _, D = x.shape
    H = params["W"].shape[0]
    rnn = torch.nn.RNN(D, H)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(params["W"]), rnn.weight_ih_l0.copy_(params["U"])
        rnn.bias_ih_l0.copy_(params["b"]), rnn.bias_hh_l0.zero_()
    start = max(T - k, 0)
    h = torch.zeros(1, x.shape[1], H)
    if start:
        with torch.no_grad():
            _, h = rnn(x[:start], h)
    _, hT = rnn(x[start:], h)
    V = params["V"].clone().requires_grad_(True)
    c = params["c"].clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(hT[0] @ V.T + c, y)
    loss.backward()
    return dict(W=rnn.weight_hh_l0.grad, U=rnn.weight_ih_l0.grad, b=rnn.bias_ih_l0.grad,
                V=V.grad, c=c.grad)


@pytest.mark.parametrize("k", [1, 2, 3, 7, 9])
def test_tbptt_matches_detach_oracle(k):
    inp = make_inputs("tbptt_grads", dict(T=7, B=4, D=3, H=5, C=3, k=k), 5)
    before = _clone(inp)
    got = V.tbptt(**inp)
    expected = _tbptt_oracle(**inp)
    assert set(got) == set(expected)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6)
    assert all(torch.equal(before["params"][n], inp["params"][n]) for n in inp["params"])


def test_tbptt_window_zero_means_h_T_held_constant():
    inp = make_inputs("tbptt_grads", dict(T=6, B=2, D=2, H=4, C=4, k=1), 6)
    (m,) = [m for m in M.mistakes_for("tbptt_grads") if m.key == "window_one_shorter"]
    out = m.compute(**inp)
    assert all(torch.count_nonzero(out[n]) == 0 for n in "WUb")
    torch.testing.assert_close(out["V"], V.tbptt(**inp)["V"])


# ---------------------------------------------------------------------------------------------
# The mistakes.


def test_mistakes_for_and_descriptions():
    assert {m.function for m in M.MISTAKES} == set(FUNCTIONS)
    for fn in FUNCTIONS:
        ms = M.mistakes_for(fn)
        assert ms and all(m.function == fn for m in ms)
        keys = [m.key for m in ms]
        assert len(keys) == len(set(keys)), fn
    assert M.mistakes_for("train_recall") == ()
    assert len(M.MISTAKES) == sum(len(M.mistakes_for(fn)) for fn in FUNCTIONS)
    for m in M.MISTAKES:
        d = m.description
        assert d and d == d.strip() and "\n" not in d and not d.endswith("."), m.key
        assert d[0].islower() or d[0] == "`", m.key
        assert m.key.isidentifier()


# Extra inputs, beyond the rubric's shapes, so that every mistake applies at least once.
EXTRA = [("tree_encode", dict(d=3, leaves=6, shape="balanced"), 77),
         ("tbptt_grads", dict(T=7, B=1, D=3, H=3, C=3, k=7), 78)]


@pytest.mark.parametrize("function,case,seed", CASES + EXTRA)
def test_mistakes_differ_from_correct_and_are_deterministic(function, case, seed):
    inp = make_inputs(function, case, seed)
    correct = _flat(V.CORRECT[function](**inp))
    scale = float(correct.abs().max())
    for m in M.mistakes_for(function):
        if not m.applies(inp):
            continue
        before = _clone(inp)
        out = m.compute(**inp)
        got = _flat(out)
        assert got.dtype == torch.float32, m.key
        assert torch.equal(got, _flat(m.compute(**inp))), f"{m.key} is not deterministic"
        assert got.shape == correct.shape, m.key
        diff = float((got - correct).abs().max())
        assert diff > 1e-3 * scale, f"{function}/{m.key} indistinguishable: {diff} vs {scale}"
        for k, v in before.items():  # the inputs are left alone
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, inp[k]), (m.key, k)
            elif isinstance(v, dict):
                assert all(torch.equal(v[n], inp[k][n]) for n in v), (m.key, k)


def test_every_mistake_applies_somewhere():
    applied = set()
    for function, case, seed in CASES + EXTRA:
        inp = make_inputs(function, case, seed)
        applied |= {(m.function, m.key) for m in M.mistakes_for(function) if m.applies(inp)}
    missing = {(m.function, m.key) for m in M.MISTAKES} - applied
    assert not missing


def test_applies_conditions():
    by = {(m.function, m.key): m for m in M.MISTAKES}
    rnn = make_inputs("rnn_forward", dict(T=3, B=2, D=4, H=5, activation="tanh"), 1)
    assert not by["rnn_forward", "activation_ignored"].applies(rnn)
    assert not by["rnn_forward", "U_transposed"].applies(rnn)  # D != Hd
    assert not by["rnn_forward", "bias_missing"].applies({**rnn, "b": torch.zeros(5)})
    tree = {"tree": (("a", "b"), "c")}
    assert not by["tree_encode", "read_as_sequence"].applies(tree)  # a left chain
    assert not by["tree_encode", "children_swapped"].applies({"tree": ("a", "a")})
    assert by["tree_encode", "children_swapped"].applies(tree)
    tb = make_inputs("tbptt_grads", dict(T=5, B=3, D=3, H=3, C=2, k=9), 2)
    assert not by["tbptt_grads", "no_truncation"].applies(tb)
    assert not by["tbptt_grads", "window_one_shorter"].applies(tb)
    assert by["tbptt_grads", "detach_every_step"].applies(tb)


def test_compute_raises_or_returns_for_unfitting_shapes():
    # U transposed cannot run when D != Hd: the caller treats the exception as "no match"
    inp = make_inputs("rnn_forward", dict(T=3, B=2, D=4, H=5, activation="tanh"), 1)
    (m,) = [m for m in M.mistakes_for("rnn_forward") if m.key == "U_transposed"]
    with pytest.raises(RuntimeError):
        m.compute(**inp)


def test_mistakes_run_under_no_grad_and_with_default_activation():
    # the grader may call inside torch.no_grad(), and may leave out a defaulted `activation`
    case = dict(T=4, D=3, H=5, activation="tanh", spectral_norm=2.0, loss="squared")
    for function in ("hidden_grad_norms", "gradient_bound"):
        inp = make_inputs(function, case, 9)
        expected = V.CORRECT[function](**inp)
        del inp["activation"]
        with torch.no_grad():
            torch.testing.assert_close(V.CORRECT[function](**inp), expected)
            for m in M.mistakes_for(function):
                assert m.compute(**inp).shape == (4,)
    inp = make_inputs("tbptt_grads", dict(T=5, B=2, D=3, H=4, C=3, k=2), 9)
    with torch.no_grad():
        assert all(m.compute(**inp)["W"].shape == (4, 4)
                   for m in M.mistakes_for("tbptt_grads") if m.applies(inp))


# ---------------------------------------------------------------------------------------------
# The known confusions: pairs of mistakes that coincide on some inputs and differ on others. The
# grader must then say "consistent with A or B" (grader/checks/compare.py), so the coincidence is real.


def _by(function: str, key: str) -> M.Mistake:
    (m,) = [m for m in M.mistakes_for(function) if m.key == key]
    return m


def test_missing_recurrence_equals_h0_ignored_at_T1_only() -> None:
    no_rec, no_h0 = _by("rnn_forward", "no_recurrence"), _by("rnn_forward", "h0_ignored")
    t1 = make_inputs("rnn_forward", dict(T=1, B=2, D=5, H=4, activation="sigmoid"), 3)
    torch.testing.assert_close(no_rec.compute(**t1), no_h0.compute(**t1))
    t6 = make_inputs("rnn_forward", dict(T=6, B=3, D=4, H=5, activation="tanh"), 3)
    assert not torch.allclose(no_rec.compute(**t6), no_h0.compute(**t6), atol=1e-3)
    # and it is what its description says: act(U x_t + b) at every step
    expected = torch.tanh(t6["x"] @ t6["U"].T + t6["b"])
    torch.testing.assert_close(no_rec.compute(**t6), expected)


def test_swapped_axes_equal_a_state_never_updated_at_batch_one_only() -> None:
    swapped, frozen = _by("rnn_forward", "time_batch_swapped"), _by("rnn_forward", "state_not_updated")
    b1 = make_inputs("rnn_forward", dict(T=9, B=1, D=2, H=7, activation="tanh"), 4)
    assert swapped.applies(b1)
    torch.testing.assert_close(swapped.compute(**b1), frozen.compute(**b1))
    square = make_inputs("rnn_forward", dict(T=3, B=3, D=2, H=4, activation="tanh"), 4)
    assert swapped.applies(square)
    assert not torch.allclose(swapped.compute(**square), frozen.compute(**square), atol=1e-3)
    assert not swapped.applies(make_inputs("rnn_forward", dict(T=6, B=3, D=4, H=5, activation="tanh"), 4))


def test_loss_on_every_state_matches_autograd_of_the_summed_loss() -> None:
    inp = make_inputs("hidden_grad_norms", dict(T=5, D=3, H=4, activation="tanh", spectral_norm=2.0,
                                                loss="squared"), 5)
    x, W, U, b = (inp[k].double() for k in ("x", "W", "U", "b"))
    h, hs = inp["h0"].double().clone().requires_grad_(True), []
    for t in range(x.shape[0]):
        h = torch.tanh(h @ W.T + x[t] @ U.T + b)
        h.retain_grad()
        hs.append(h)
    sum(inp["loss_fn"](s) for s in hs).backward()
    expected = torch.stack([s.grad.norm() for s in hs]).float()
    torch.testing.assert_close(_by("hidden_grad_norms", "loss_on_every_state").compute(**inp), expected,
                               rtol=1e-4, atol=1e-6)


def test_tanh_output_gate_and_loss_every_step_against_hand_computations() -> None:
    inp = make_inputs("lstm_cell", dict(B=3, D=4, H=5), 6)
    z = inp["x"] @ inp["W_ih"].T + inp["b_ih"] + inp["h"] @ inp["W_hh"].T + inp["b_hh"]
    i, f, g, o = z.chunk(4, dim=1)
    c_new = torch.sigmoid(f) * inp["c"] + torch.sigmoid(i) * torch.tanh(g)
    h_new, c_got = _by("lstm_cell", "tanh_on_output_gate").compute(**inp)
    torch.testing.assert_close(h_new, torch.tanh(o) * torch.tanh(c_new))
    torch.testing.assert_close(c_got, c_new)

    tb = make_inputs("tbptt_grads", dict(T=4, B=3, D=3, H=5, C=3, k=4), 7)
    p = {n: v.clone().requires_grad_(True) for n, v in tb["params"].items()}
    h, loss = torch.zeros(3, 5), torch.zeros(())
    for t in range(4):
        h = torch.tanh(h @ p["W"].T + tb["x"][t] @ p["U"].T + p["b"])
        loss = loss + torch.nn.functional.cross_entropy(h @ p["V"].T + p["c"], tb["y"])
    loss.backward()
    got = _by("tbptt_grads", "loss_every_step").compute(**tb)
    for n in p:
        torch.testing.assert_close(got[n], p[n].grad, rtol=1e-4, atol=1e-6)


def test_all_frobenius_uses_both_frobenius_norms() -> None:
    inp = make_inputs("gradient_bound", dict(T=4, D=3, H=5, activation="tanh", spectral_norm=2.0,
                                             loss="linear"), 8)
    r = _by("gradient_bound", "all_frobenius").compute(**inp)
    x, W, U, b = (inp[k].double() for k in ("x", "W", "U", "b"))
    h, zs = inp["h0"].double(), []
    for t in range(4):
        zs.append(h @ W.T + x[t] @ U.T + b)
        h = torch.tanh(zs[-1])
    hT = h.clone().requires_grad_(True)
    (gT,) = torch.autograd.grad(inp["loss_fn"](hT), hT)
    wf = torch.linalg.matrix_norm(W)  # Frobenius
    jf = [torch.linalg.vector_norm(1 - torch.tanh(z) ** 2) for z in zs]
    expected = [float(gT.norm() * wf ** (4 - t) * math.prod(float(jf[k]) for k in range(t, 4)))
                for t in range(1, 5)]
    np.testing.assert_allclose(r.numpy(), expected, rtol=1e-4)
