"""The mistakes students really make in Exercise 11.4, each a variant of the correct computation.

Every function of 11.4 (CONTRACT.md section 3) has a small implementation in
grader/checks/variants.py whose keyword switches default to the correct computation; each mistake
here is a row of a table: that implementation with one switch flipped, a description and the
inputs on which it can be told apart from the correct output. The grader calls
``m.compute(**inputs)`` for every ``m`` in ``mistakes_for(function)`` with ``m.applies(inputs)``
and, when a student's output matches, says "your output matches `rnn_forward` with tanh in place
of sigmoid: ...".

Neither this table nor the implementations import the ``reference`` package: a mistake library
that shared the reference's code would share its bugs. Several mistakes can coincide on one input
(in `tbptt_grads` with T = 7, k = 3, "chunked windows" and "detach every step" both keep one step),
so a report should name every match, not only the first. Some entries are generated from a
class of mistakes rather than written one by one (every order of the LSTM's four gate blocks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import permutations
from typing import Any, TypeAlias

import torch

from grader.checks.variants import CORRECT, Tree, dact, lstm, rnn

__all__ = ["Mistake", "MISTAKES", "mistakes_for"]


#: Whether a mistake can be told apart from the correct output on a case's inputs.
Applies: TypeAlias = Callable[[Mapping[str, Any]], bool]

#: The switches of a grader/checks/variants.py implementation that make it a mistake.
Switches: TypeAlias = dict[str, Any]


@dataclass(frozen=True)
class Mistake:
    function: str  # contract function name, e.g. "rnn_forward"
    key: str  # short id, unique per function
    description: str  # completes "your output matches `function` ..."; no trailing period
    compute: Callable[..., Any]  # same keyword arguments as the contract function
    applies: Applies  # can this mistake be told apart on these inputs?


# --------------------------------------------------------------------------------------------
# When a mistake can be told apart from the correct output on given inputs.


def _always(i: Mapping[str, Any]) -> bool:
    return True


def _act_is(name: str) -> Applies:
    return lambda i: i.get("activation", "tanh") == name


def _nonzero(name: str) -> Applies:
    return lambda i: bool(torch.as_tensor(i[name]).abs().max() > 0)


def _asym(t: Any) -> bool:
    m = torch.as_tensor(t)
    return m.shape[0] == m.shape[-1] and not torch.allclose(m, m.T)


def _steps(i: Mapping[str, Any], n: int = 2) -> bool:
    return bool(i["x"].shape[0] >= n)


def _W_norm_not_1(i: Mapping[str, Any]) -> bool:
    return abs(float(torch.linalg.matrix_norm(torch.as_tensor(i["W"]), ord=2)) - 1) > 1e-3


def _mirror(t: Tree) -> Tree:
    return t if isinstance(t, str) else (_mirror(t[1]), _mirror(t[0]))


def _is_left_chain(t: Tree) -> bool:
    return isinstance(t, str) or (isinstance(t[1], str) and _is_left_chain(t[0]))


def _is_pair(i: Mapping[str, Any]) -> bool:
    return not isinstance(i["tree"], str)


def _k_lt_T(i: Mapping[str, Any]) -> bool:
    return bool(i["k"] < i["x"].shape[0])


def _sig_neg(z: torch.Tensor) -> torch.Tensor:
    """A hand-written sigmoid that lost its minus sign: 1 / (1 + exp(z))."""
    return torch.sigmoid(-z)


#: One row of the table: function, key, description, when it applies, the switches it flips.
_Row: TypeAlias = tuple[str, str, str, Applies, Switches]

_ROWS: list[_Row] = [
    # ---- rnn_forward ---------------------------------------------------------------
    ("rnn_forward", "activation_ignored",  # the argument is there but `torch.tanh` hard-coded
     "with tanh in place of sigmoid: the `activation` argument is ignored",
     _act_is("sigmoid"), dict(act="tanh")),
    ("rnn_forward", "sigmoid_for_tanh",  # "sigma" in the sheet's formula read as the sigmoid
     "with sigmoid in place of tanh: the activation is always the sigmoid",
     _act_is("tanh"), dict(act="sigmoid")),
    ("rnn_forward", "W_transposed",  # W h_{t-1} written as h @ W for a batch of rows
     "with `W` transposed: `h @ W` where a batch of row vectors needs `h @ W.T`",
     lambda i: _asym(i["W"]), dict(transpose_W=True)),
    ("rnn_forward", "U_transposed",  # only visible (and only runs) when D == Hd
     "with `U` transposed: `x_t @ U` where a batch of row vectors needs `x_t @ U.T`",
     lambda i: _asym(i["U"]), dict(transpose_U=True)),
    ("rnn_forward", "W_U_swapped",
     "with `W` and `U` swapped: `W` applied to the input x_t and `U` to the state h_{t-1}",
     lambda i: i["U"].shape == i["W"].shape and not torch.equal(i["U"], i["W"]),
     dict(swap_WU=True)),
    ("rnn_forward", "bias_missing", "without the bias `b`", _nonzero("b"),
     dict(use_bias=False)),
    ("rnn_forward", "h0_ignored",  # h = torch.zeros(...) copied from a tutorial
     "with h_0 = 0: the given `h0` is ignored", _nonzero("h0"), dict(use_h0=False)),
    ("rnn_forward", "state_not_updated",  # `h_new = ...` but the loop keeps using `h0`
     "with every step computed from `h0`: the state h_{t-1} is never updated in the loop",
     _steps, dict(update_state=False)),
    ("rnn_forward", "shifted_output",  # states collected before the update, starting at h0
     "shifted by one step: it returns h_0, ..., h_{T-1} instead of h_1, ..., h_T",
     _always, dict(shifted=True)),
    ("rnn_forward", "no_recurrence",  # h = act(x_t @ U.T + b): an MLP applied per step
     "without the recurrence term `W h_{t-1}`: each h_t = act(U x_t + b) ignores the state",
     lambda i: _nonzero("W")(i) and (_steps(i) or _nonzero("h0")(i)), dict(recurrence=False)),
    ("rnn_forward", "time_batch_swapped",  # `B, T, D = x.shape`; with B = 1 it runs at all
     "with the time and batch axes of `x` swapped: the batch is walked as if it were time",
     lambda i: i["x"].shape[0] > 1 and i["x"].shape[1] in (1, i["x"].shape[0]),
     dict(swap_time_batch=True)),
    ("rnn_forward", "no_activation",  # h_t = z_t: the activation is never applied
     "without the activation: h_t = z_t = W h_{t-1} + U x_t + b, never squashed", _always,
     dict(act="identity")),
    ("rnn_forward", "bias_twice",  # b_ih and b_hh of torch.nn.RNN both set to b
     "with the bias `b` added twice: z_t = W h_{t-1} + b + U x_t + b", _nonzero("b"),
     dict(bias_times=2)),
    # ---- activation_jacobian --------------------------------------------------------
    ("activation_jacobian", "activation_ignored",
     "with the tanh derivative in place of the sigmoid's: the `activation` argument is ignored",
     _act_is("sigmoid"), dict(act="tanh")),
    ("activation_jacobian", "sigmoid_for_tanh",
     "with the sigmoid derivative in place of the tanh's", _act_is("tanh"),
     dict(act="sigmoid")),
    ("activation_jacobian", "value_not_derivative",
     "with the activation's value act(z) on the diagonal instead of its derivative act'(z)",
     _always, dict(form="value")),
    ("activation_jacobian", "tanh_square_missing",
     "with 1 - tanh(z) on the diagonal: the square of 1 - tanh(z)^2 is missing",
     _act_is("tanh"), dict(form="tanh_no_square")),
    ("activation_jacobian", "output_formula_on_z",  # 1 - h^2 is right, but with h := z
     "with the derivative's formula in terms of the output applied to z itself: "
     "1 - z^2 for tanh, z (1 - z) for sigmoid",
     _always, dict(form="output_formula_on_z")),
    ("activation_jacobian", "sigmoid_times_1_minus_z",
     "with sigmoid(z) (1 - z) on the diagonal: the second factor must be 1 - sigmoid(z)",
     _act_is("sigmoid"), dict(form="sigmoid_times_1_minus_z")),
    # ---- hidden_grad_norms ----------------------------------------------------------
    ("hidden_grad_norms", "activation_ignored",  # `activation` not passed on to rnn_forward
     "with tanh in place of sigmoid: `activation` is not passed on to the forward pass",
     _act_is("sigmoid"), dict(act="tanh")),
    ("hidden_grad_norms", "order_reversed",  # norms collected while walking back in time
     "in reverse order: g[0] holds ||dL/dh_T|| instead of ||dL/dh_1||", _steps,
     dict(reverse=True)),
    ("hidden_grad_norms", "preactivation_grads",
     "with gradients with respect to the pre-activations z_t instead of the states h_t",
     _always, dict(wrt="z")),
    ("hidden_grad_norms", "squared_norms",
     "with squared norms ||dL/dh_t||^2 instead of the norms", _always, dict(squared=True)),
    ("hidden_grad_norms", "loss_on_every_state",  # loss_fn summed over all h_t
     "with the loss applied to every state: L = sum_t loss_fn(h_t) instead of loss_fn(h_T)",
     _steps, dict(loss_on_all=True)),
    ("hidden_grad_norms", "shifted_includes_h0",  # hs = [h0, ...] indexed with hs[t-1]
     "shifted by one step: g[t-1] = ||dL/dh_{t-1}||, starting at h_0 and leaving out h_T",
     _always, dict(wrt="h_prev")),
    ("hidden_grad_norms", "local_loss",  # loss_fn(h_t) differentiated at each t, locally
     "with the loss differentiated locally at each step: g[t-1] = ||d loss_fn(h_t) / dh_t|| "
     "instead of the gradient of L = loss_fn(h_T) carried back through time", _steps,
     dict(local=True)),
    ("hidden_grad_norms", "no_activation_derivative",  # dL/dh_t = W^T dL/dh_{t+1}
     "with the gradient carried back through `W` alone: the activation's derivative "
     "act'(z_{t+1}) is missing from each step back", _steps, dict(no_derivative=True)),
    ("hidden_grad_norms", "loss_at_first_state",  # the wrong end of the sequence
     "with the loss taken at the wrong end of the sequence: L = loss_fn(h_1) instead of "
     "loss_fn(h_T)", _steps, dict(loss_at=0)),
    # ---- gradient_bound --------------------------------------------------------------
    ("gradient_bound", "activation_ignored",
     "with tanh in place of sigmoid: `activation` is not passed on to the forward pass",
     _act_is("sigmoid"), dict(act="tanh")),
    ("gradient_bound", "exponent_plus_one",  # T - t with a 0-based t
     "with ||W||^(T-t+1) instead of ||W||^(T-t): the exponent is one too large",
     _W_norm_not_1, dict(exp_shift=1)),
    ("gradient_bound", "exponent_minus_one",
     "with ||W||^(T-t-1) instead of ||W||^(T-t): the exponent is one too small",
     _W_norm_not_1, dict(exp_shift=-1)),
    ("gradient_bound", "W_frobenius",  # torch.norm(W) is the Frobenius norm
     "with the Frobenius norm of `W` instead of its spectral norm", _always,
     dict(w_ord="fro")),
    ("gradient_bound", "all_frobenius",  # torch.norm on both matrices
     "with Frobenius norms of both `W` and J_{k+1} instead of their spectral norms",
     lambda i: _steps(i) and i["W"].shape[0] > 1, dict(w_ord="fro", j_ord="fro")),
    ("gradient_bound", "J_frobenius",
     "with the Frobenius norm of J_{k+1} instead of its spectral norm (the largest |act'|)",
     lambda i: _steps(i) and i["W"].shape[0] > 1, dict(j_ord="fro")),
    ("gradient_bound", "J_index_shifted",
     "with J_k in place of J_{k+1}: the product runs over J_t, ..., J_{T-1}", _steps,
     dict(j_first=0, j_last=-1)),
    ("gradient_bound", "J_extra_factor",
     "with one Jacobian too many: the product runs over J_t, ..., J_T", _always,
     dict(j_first=0)),
    ("gradient_bound", "no_jacobian",
     "without the Jacobian product: only ||dL/dh_T|| ||W||^(T-t)", _steps,
     dict(combine="none")),
    ("gradient_bound", "J_summed",
     "with the sum of the Jacobian norms where their product is needed", _always,
     dict(combine="sum")),
    ("gradient_bound", "J_of_value",
     "with act(z_{k+1}) in place of act'(z_{k+1}) in J_{k+1}: the activation, "
     "not its derivative", _steps, dict(j_of="value")),
    ("gradient_bound", "J_of_h",  # act'(h_{k+1}) where act'(z_{k+1}) belongs
     "with J_{k+1} built from the state h_{k+1} instead of the pre-activation z_{k+1}: "
     "act'(h_{k+1}) on its diagonal", _steps, dict(j_from_h=True)),
    ("gradient_bound", "W_spectral_radius",  # max |eigenvalue| is not the spectral norm
     "with the spectral radius of `W` (its largest |eigenvalue|) instead of its spectral "
     "norm (its largest singular value)", _always, dict(w_ord="radius")),
    ("gradient_bound", "full_step_jacobian",  # a tighter quantity, not the bound of (1)
     "with ||J_{k+1} W|| (the norm of the whole step Jacobian) in place of "
     "||W|| ||J_{k+1}|| for each step", _steps, dict(full_step=True)),
    # ---- lstm_cell -------------------------------------------------------------------
    ("lstm_cell", "gates_ifog",  # d2l and many from-scratch tutorials
     "with the gates read in the order i, f, o, g instead of torch's i, f, g, o", _always,
     dict(order="ifog")),
    ("lstm_cell", "gates_igfo",  # TensorFlow 1's LSTMCell: i, j, f, o
     "with the gates read in TensorFlow's order i, g, f, o instead of torch's i, f, g, o",
     _always, dict(order="igfo")),
    ("lstm_cell", "gates_iofg",  # ONNX
     "with the gates read in ONNX's order i, o, f, g instead of torch's i, f, g, o",
     _always, dict(order="iofg")),
    ("lstm_cell", "no_forget_gate", "without the forget gate: c_new = i * g drops f * c",
     _nonzero("c"), dict(forget=False)),
    ("lstm_cell", "h_without_tanh",
     "with h_new = o * c_new: the tanh on the cell state is missing", _always,
     dict(tanh_c=False)),
    ("lstm_cell", "h_from_old_c",
     "with h_new = o * tanh(c) from the old cell state instead of c_new", _always,
     dict(old_c=True)),
    ("lstm_cell", "sigmoid_on_g",  # all four gates squashed the same way
     "with the sigmoid in place of tanh on the candidate g", _always,
     dict(g_act=torch.sigmoid)),
    ("lstm_cell", "tanh_on_output_gate",  # o squashed like the candidate g
     "with tanh in place of the sigmoid on the output gate o", _always,
     dict(o_act=torch.tanh)),
    ("lstm_cell", "b_hh_dropped", "with `b_ih` as the only bias: `b_hh` is left out",
     _nonzero("b_hh"), dict(use_b_hh=False)),
    ("lstm_cell", "b_ih_dropped", "with `b_hh` as the only bias: `b_ih` is left out",
     _nonzero("b_ih"), dict(use_b_ih=False)),
    ("lstm_cell", "sigmoid_negated",  # a hand-written 1 / (1 + exp(z))
     "with sigmoid(-z) in place of sigmoid(z) for the gates i, f and o: a hand-written "
     "sigmoid 1 / (1 + exp(z)) has lost the minus sign", _always, dict(sig=_sig_neg)),
    # ---- tree_encode -----------------------------------------------------------------
    ("tree_encode", "children_swapped",
     "with the children concatenated the wrong way round: [v_right ; v_left]",
     lambda i: _mirror(i["tree"]) != i["tree"],
     dict(swap=True)),
    ("tree_encode", "no_tanh", "without the tanh: each parent is W [v_left ; v_right] + b",
     _is_pair, dict(squash=False)),
    ("tree_encode", "tanh_on_leaves",
     "with tanh applied to the leaves too: a leaf's vector is embed[word] itself", _always,
     dict(squash_leaves=True)),
    ("tree_encode", "bias_missing", "without the bias `b`",
     lambda i: _is_pair(i) and _nonzero("b")(i), dict(use_bias=False)),
    ("tree_encode", "bias_outside_tanh",
     "with the bias added after the tanh: tanh(W [v_left ; v_right]) + b",
     lambda i: _is_pair(i) and _nonzero("b")(i), dict(bias_outside=True)),
    ("tree_encode", "read_as_sequence",  # an RNN over the words, not a recursive net
     "with the words combined left to right as a sequence: the tree's shape is ignored",
     lambda i: not _is_left_chain(i["tree"]), dict(as_sequence=True)),
    # ---- tbptt_grads -----------------------------------------------------------------
    ("tbptt_grads", "window_one_longer",
     "with a window of k + 1 steps: h_{T-k-1} is held constant instead of h_{T-k}", _k_lt_T,
     dict(window=lambda k: k + 1)),
    ("tbptt_grads", "window_one_shorter",  # for k = 1 that is h_T detached: zero W, U, b grads
     "with a window of k - 1 steps: h_{T-k+1} is held constant instead of h_{T-k}",
     lambda i: i["k"] <= i["x"].shape[0], dict(window=lambda k: k - 1)),
    ("tbptt_grads", "no_truncation",
     "without truncation: the gradients flow back through all T steps", _k_lt_T,
     dict(window=lambda k: 10**9)),
    ("tbptt_grads", "detach_every_step",
     "with the state detached at every step: only the last step counts, as if k = 1",
     lambda i: i["k"] > 1 and _steps(i), dict(window=lambda k: 1)),
    ("tbptt_grads", "chunked_windows",  # the word-language-model recipe, cut from the start
     "with the sequence cut into chunks of k steps from the start: the last chunk, which "
     "the loss sees, is shorter than k",
     lambda i: _k_lt_T(i) and i["x"].shape[0] % i["k"] != 0, dict(chunked=True)),
    ("tbptt_grads", "restart_from_zero",
     "with only the last k inputs run, from h = 0: the state built by the earlier steps "
     "is dropped", _k_lt_T, dict(restart=True)),
    ("tbptt_grads", "loss_summed",
     "with the loss summed over the batch instead of averaged",
     lambda i: i["x"].shape[1] > 1, dict(reduction="sum")),
    ("tbptt_grads", "softmax_twice",
     "with a softmax before `cross_entropy`, which applies log-softmax itself", _always,
     dict(softmax_first=True)),
    ("tbptt_grads", "loss_every_step",  # many-to-many training on a many-to-one task
     "with the label `y` used as the target of every step: the loss is summed over "
     "h_1, ..., h_T instead of taken on h_T alone", _steps, dict(loss_every_step=True)),
    ("tbptt_grads", "W_transposed",
     "with `W` transposed in the recurrence: `h @ W` instead of `h @ W.T`",
     lambda i: _steps(i) and _asym(i["params"]["W"]), dict(transpose_W=True)),
    ("tbptt_grads", "V_transposed",  # only runs when C == Hd
     "with `V` transposed in the output layer: `h_T @ V` instead of `h_T @ V.T`",
     lambda i: _asym(i["params"]["V"]), dict(transpose_V=True)),
]

MISTAKES: tuple[Mistake, ...] = tuple(
    Mistake(fn, key, desc, partial(CORRECT[fn], **switches), applies)
    for fn, key, desc, applies, switches in _ROWS)


#: Every other order of the four stacked gate blocks, generated (a swap of two gates, or any
#: other permutation, reads the blocks in some order): the three orders of other libraries above
#: keep their own words.
MISTAKES += tuple(
    Mistake("lstm_cell", f"gates_{order}",
            f"with the gates read in the order {', '.join(order)} instead of torch's i, f, g, o",
            partial(lstm, order=order), _always)
    for order in ("".join(p) for p in permutations("ifgo"))
    if order != "ifgo" and f"gates_{order}" not in {m.key for m in MISTAKES})


_Pair: TypeAlias = tuple[torch.Tensor, torch.Tensor]


def _lstm_state_swapped(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, W_ih: torch.Tensor,
                        W_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor) -> _Pair:
    """The state pair unpacked the wrong way round (``c, h = state`` for torch's ``(h, c)``)."""
    return lstm(x, c, h, W_ih, W_hh, b_ih, b_hh)


def _lstm_without_old_c(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, W_ih: torch.Tensor,
                        W_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor) -> _Pair:
    """c_new = f + i * g: the correct cell with c = 1 is exactly that (c enters nowhere else)."""
    return lstm(x, h, torch.ones_like(c), W_ih, W_hh, b_ih, b_hh)


def _state_norms(x: torch.Tensor, h0: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
                 loss_fn: Any, activation: str = "tanh") -> torch.Tensor:
    """||h_t|| for t = 1..T: the states' norms where their gradients' norms belong."""
    states: torch.Tensor = rnn(x, h0, W, U, b, activation)
    norms: torch.Tensor = torch.linalg.vector_norm(states.reshape(x.shape[0], -1), dim=1)
    return norms


def _preactivation_states(x: torch.Tensor, h0: torch.Tensor, W: torch.Tensor, U: torch.Tensor,
                          b: torch.Tensor, loss_fn: Any, activation: str = "tanh") -> torch.Tensor:
    """||dL/dz_t|| with L = loss_fn(z_T): the pre-activations kept where the states belong (the
    recurrence itself right, h_t = act(z_t))."""
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    with torch.enable_grad():
        h, zs = h0.detach().clone().requires_grad_(True), []
        for t in range(x.shape[0]):
            zs.append(h @ W.T + x[t] @ U.T + b)
            h = act(zs[-1])
        grads = torch.autograd.grad(loss_fn(zs[-1]).sum(), zs, allow_unused=True)
    return torch.stack([torch.zeros(()) if g is None else torch.linalg.vector_norm(g) for g in grads])


def _bound_z_h_swapped(x: torch.Tensor, h0: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
                       loss_fn: Any, activation: str = "tanh") -> torch.Tensor:
    """The bound with the lists of pre-activations and states taken for each other: dL/dh_T taken
    at z_T, and J_{k+1} = diag(act'(h_{k+1})) (the recurrence itself right, h_t = act(z_t))."""
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h, hs, zs = h0, [], []
    for t in range(x.shape[0]):
        zs.append(h @ W.T + x[t] @ U.T + b)
        h = act(zs[-1])
        hs.append(h)
    with torch.enable_grad():
        zT = zs[-1].detach().clone().requires_grad_(True)
        (gT,) = torch.autograd.grad(loss_fn(zT).sum(), zT)
    nJ = [dact(v.reshape(-1), activation).abs().max() for v in hs]
    wn = torch.linalg.matrix_norm(W, ord=2)
    T = len(zs)
    factors = [torch.linalg.vector_norm(gT) * wn ** (T - 1 - i) * torch.stack(nJ[i + 1:] + [wn.new_ones(())]).prod()
               for i in range(T)]
    return torch.stack(factors)


def _loss_one_step_early(x: torch.Tensor, h0: torch.Tensor, W: torch.Tensor, U: torch.Tensor,
                         b: torch.Tensor, loss_fn: Any, activation: str = "tanh") -> torch.Tensor:
    """L = loss_fn(h_{T-1}) (``hs[T - 1]`` where ``hs`` also holds h_0): at T = 1 that is h_0,
    which no state h_t depends on, so g = [0]."""
    if x.shape[0] < 2:
        return torch.zeros(x.shape[0])
    norms: torch.Tensor = CORRECT["hidden_grad_norms"](x, h0, W, U, b, loss_fn, activation, loss_at=-2)
    return norms


def _differ(a: str, b: str) -> Applies:
    return lambda i: not torch.equal(torch.as_tensor(i[a]), torch.as_tensor(i[b]))


MISTAKES += (
    Mistake("hidden_grad_norms", "loss_one_step_early",
            "with the loss taken one step early: L = loss_fn(h_{T-1}) instead of loss_fn(h_T)",
            _loss_one_step_early, _always),
    Mistake("hidden_grad_norms", "state_norms",
            "with the norms of the states ||h_t|| instead of the norms of their gradients ||dL/dh_t||",
            _state_norms, _always),
    Mistake("gradient_bound", "z_and_h_swapped",
            "with the pre-activations and the states taken for each other: dL/dh_T taken at z_T, "
            "and J_{k+1} = diag(act'(h_{k+1})) built from the state instead of z_{k+1}",
            _bound_z_h_swapped, _always),
    Mistake("hidden_grad_norms", "preactivations_as_states",
            "with the pre-activations z_t taken for the states: L = loss_fn(z_T), and the gradients "
            "taken with respect to z_1, ..., z_T instead of h_1, ..., h_T", _preactivation_states, _always),
)

#: The cell update and the state pair, each with one part left out or read as the other: a factor
#: of f * c or i * g missing, and h and c taken for each other.
MISTAKES += (
    Mistake("lstm_cell", "state_swapped",
            "with `h` and `c` taken for each other: the old cell state c enters the gates' "
            "pre-activations and the old hidden state h is multiplied by f", _lstm_state_swapped,
            _differ("h", "c")),
    Mistake("lstm_cell", "old_c_missing",
            "with c_new = f + i * g: the old cell state c is missing from f * c", _lstm_without_old_c,
            lambda i: bool((torch.as_tensor(i["c"]) != 1).any())),
    Mistake("lstm_cell", "candidate_missing",
            "with c_new = f * c + i: the candidate g is missing from i * g",
            partial(lstm, g_act=torch.ones_like), _always),
)


def mistakes_for(function: str) -> tuple[Mistake, ...]:
    """The mistakes of one contract function, in a fixed order (empty for an unknown name)."""
    return tuple(m for m in MISTAKES if m.function == function)
