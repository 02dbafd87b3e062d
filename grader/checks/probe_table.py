"""The probe table: which inputs isolate which terms of each contract function (issue 9, 22).

A :class:`Probe` is one designed input of one function, built from a base input (see
grader/checks/probes.py for how probes run and why they are public-safe and bounded). It names two
sets of terms of :data:`TERMS`:

- ``covers``: every term the output on that input depends on, in value *or in shape*. A term whose
  inputs the probe sets to zero is still covered (a wrong one may broadcast, raise or index
  differently: ``xu = b`` in place of ``x @ U.T + b`` changes the output even when ``U = 0``), and so
  is every part of the computation between the inputs and the compared output (the state the
  loss is taken at, what is returned). A probe that differs implicates only these terms, so a
  term left out of ``covers`` is a term the verdict may wrongly clear of blame.
- ``clears``: the terms a match on that input proves right, because any wrong version of them
  would change the output there. A subset of ``covers``; a zeroed term, a transposition that a
  symmetric or 1x1 input hides, or a step the input has too few steps to reach is covered but not
  cleared.

The tests check the table's form (tests/test_probes.py); `grade audit` checks ``covers`` against
mutants of the reference: a probe on which a mutant differs must cover a term the mutant changed.

Probes stay in the regime the student's code is meant for: no input saturates an activation (a
saturated gate reads the same under a right and a wrong sigmoid, and hides the bug). A gate is
"held" by zeroing its weights and biases: its pre-activation is exactly 0, where sigmoid is 1/2
and tanh is 0, the most linear point of both.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["MAX_PROBES", "PROBES", "TERMS", "Draw", "Inputs", "Probe", "probes_for"]

#: Calls per failing function, at most. Each table below stays within it (a test checks).
MAX_PROBES = 8

Inputs = dict[str, Any]
Draw = Callable[..., Inputs]  # draw(**overrides): fresh inputs on the base shape, params overridden


@dataclass(frozen=True)
class Probe:
    function: str
    name: str  # short id, unique per function
    setting: str  # the input in words, shown to students, e.g. "`W = 0`"; {other}: the other activation
    build: Callable[[Inputs, Draw], Inputs]  # (base inputs, draw) -> the probe's inputs
    #: every term of TERMS[function] the output on this input depends on, in value or in shape
    #: (a term whose inputs the probe sets to zero still shapes the computation): a probe that
    #: differs implicates only these
    covers: frozenset[str]
    part: tuple[str, ...] = ()  # compare only these outputs (h_new/c_new, gradient keys)
    #: the terms a match proves right (a wrong one would show on this input); a subset of
    #: ``covers``. A zeroed term, or one the input makes symmetric, is covered but not cleared.
    clears: frozenset[str] = frozenset()


# ------------------------------------------------------------------------------------------------
# Building probe inputs from a base input. Every builder returns new tensors; the base is shared.


def _zero(inputs: Inputs, *names: str) -> Inputs:
    return {**inputs, **{n: torch.zeros_like(inputs[n]) for n in names}}


def _other_activation(inputs: Inputs) -> Inputs:
    return {**inputs, "activation": "sigmoid" if inputs.get("activation", "tanh") == "tanh" else "tanh"}


def _squared(draw: Draw, **over: Any) -> Inputs:
    # The squared loss depends on h_T's value, so a wrong forward pass shows in dL/dh_T;
    # with the linear loss it would not, and the probe could not cover the activation.
    return draw(loss="squared", **over)


def _rank_one_W(inputs: Inputs) -> Inputs:
    """W replaced by s u u^T (|u| = 1, s its spectral norm): a symmetric rank-1 matrix whose
    spectral norm, Frobenius norm and spectral radius all equal s."""
    W = inputs["W"].double()
    u = W[:, 0] if float(W[:, 0].abs().max()) > 0 else torch.ones_like(W[:, 0])
    u = u / torch.linalg.vector_norm(u)
    s = torch.linalg.matrix_norm(W, ord=2)
    return {**inputs, "W": (s * torch.outer(u, u)).float()}


def _spectral_W(inputs: Inputs, norm: float) -> Inputs:
    W = inputs["W"].double()
    return {**inputs, "W": (norm * W / torch.linalg.matrix_norm(W, ord=2)).float()}


def _unit_spectral_W(inputs: Inputs) -> Inputs:
    return _spectral_W(inputs, 1.0)


def _states_miss_W(inputs: Inputs) -> Inputs:
    """W = s v v^T with v = (e_1 - e_2)/sqrt(2) (s: the spectral norm of the drawn W), and the
    first two entries of `h0`, `b` and every column of `U` equal: then the first two entries of
    every state are equal (an elementwise activation keeps them so), and W h_{t-1} = 0 at every
    step. The recurrence term is computed but adds nothing; the rest of the bound (||W||, its
    powers, the Jacobians along a varying z_t) is exercised as usual. Needs H >= 2."""
    W = inputs["W"].double()
    v = torch.zeros(W.shape[0], dtype=torch.float64)
    v[0], v[1] = 1.0, -1.0
    s = torch.linalg.matrix_norm(W, ord=2)
    out = {**inputs, "W": (s * torch.outer(v, v) / 2).to(inputs["W"].dtype)}
    h0, b, U = inputs["h0"].clone(), inputs["b"].clone(), inputs["U"].clone()
    h0[:, 1], b[1], U[1] = h0[:, 0], b[0], U[0]  # h0 is (1, H), b (H,), U (H, D): unit 2 copies unit 1
    return {**out, "h0": h0, "b": b, "U": U}


def _lstm_held(live: str, c_zero: bool = False, zero_bias: bool = False) -> Callable[[Inputs, Draw], Inputs]:
    """Only the gates in ``live`` (of torch's i, f, g, o blocks) computed from the inputs; each
    other gate held at pre-activation 0 (its weights and biases zero: i, f, o read 1/2, g reads 0).
    ``c_zero``: the old cell state is 0 (then f does not matter); ``zero_bias``: every gate live
    and both biases zero."""
    def build(base: Inputs, draw: Draw) -> Inputs:
        out = {k: v.clone() for k, v in base.items()}
        if c_zero:
            out["c"].zero_()
        if zero_bias:
            out["b_ih"].zero_()
            out["b_hh"].zero_()
            return out
        H = base["h"].shape[1]
        for j, name in enumerate("ifgo"):
            if name in live:
                continue
            rows = slice(j * H, (j + 1) * H)
            for key in ("W_ih", "W_hh", "b_ih", "b_hh"):
                out[key][rows] = 0.0
        return out
    return build


def _lstm_zero_inputs(base: Inputs, draw: Draw) -> Inputs:
    return _zero(base, "x", "h")


def _lstm_recurrent_part(base: Inputs, draw: Draw) -> Inputs:
    """x = 0 and b_ih = 0: the input part x W_ih^T + b_ih of every gate is zero."""
    return _zero(base, "x", "b_ih")


def _lstm_b_hh_alone(base: Inputs, draw: Draw) -> Inputs:
    return _zero(base, "x", "h", "b_ih")


def _tree(shape: Callable[[str, str], Any], zero_b: bool = False) -> Callable[[Inputs, Draw], Inputs]:
    """A tree over the base's first two vocabulary words, e.g. ``lambda a, b: (a, b)``."""
    def build(base: Inputs, draw: Draw) -> Inputs:
        a, b = sorted(base["embed"])[:2]
        out = {**base, "tree": shape(a, b)}
        return _zero(out, "b") if zero_b else out
    return build


def _tbptt(T: int | None = None, k: int | str = "T") -> Callable[[Inputs, Draw], Inputs]:
    """Inputs of at least 3 steps (or exactly ``T``) with window ``k`` (``"T"``: k = T)."""
    def build(base: Inputs, draw: Draw) -> Inputs:
        steps = T if T is not None else max(3, base["x"].shape[0])
        return draw(T=steps, k=steps if k == "T" else k)
    return build


# ------------------------------------------------------------------------------------------------
# The terms of each function, in words that complete "... is wrong". {act} is the activation of
# the base input, {other} the other one.

TERMS: dict[str, dict[str, str]] = {
    "rnn_forward": {
        "act": "the activation ({act})",
        "act_other": "the activation ({other})",
        "input": "the input term `U x_t`",
        "bias": "the bias term `b`",
        "recur": "the recurrence term `W h_{{t-1}}`",
        "h0": "the use of the initial state `h0`",
        "update": "the update of the state from step to step",
        "out": "which states are returned (h_1, ..., h_T, in order)",
    },
    "activation_jacobian": {
        "d": "the derivative of {act} on the diagonal",
        "d_other": "the derivative of {other} on the diagonal",
        "diag": "the matrix layout (act'(z) on the diagonal, zeros elsewhere)",
    },
    "hidden_grad_norms": {
        "loss": "the gradient of the loss at the last state, dL/dh_T",
        "act": "the activation ({act}) in the forward pass",
        "act_other": "the activation ({other}) in the forward pass",
        "chain": "the path from h_t to h_{{t+1}} through `W` (forward, and back with the "
                 "activation's derivative)",
        "only_last": "how the loss reaches h_t (only through h_T)",
        "order": "the order of g (g[t-1] belongs to h_t)",
        "forward": "the input term U x_t + b of the forward pass z_t = W h_{{t-1}} + U x_t + b",
        "states": "the states the loss and the gradients are taken at (h_t = act(z_t), one (1, H) row "
                  "per step, starting from `h0`; not the pre-activations z_t)",
        "out": "what g holds (the norm ||dL/dh_t|| of each state's gradient, not of the state itself)",
    },
    "gradient_bound": {
        "gT": "the factor ||dL/dh_T||",
        "act": "the activation ({act}) in the forward pass",
        "act_other": "the activation ({other}) in the forward pass",
        "wnorm": "the norm of `W` (its spectral norm, the largest singular value)",
        "exponent": "the power ||W||^(T-t)",
        "jprod": "which Jacobians J_{{k+1}} = diag(act'(z_{{k+1}})) enter the product "
                 "(k = t, ..., T-1), and what is on their diagonals",
        "jnorm": "the norm of J_{{k+1}} (its spectral norm, the largest |act'(z)|)",
        "forward": "the input term U x_t + b of the forward pass z_t = W h_{{t-1}} + U x_t + b",
        "recur": "the recurrence term W h_{{t-1}} of the forward pass",
        "accumulate": "how the factors accumulate into r (the running product from r[t] to r[t-1], "
                      "and which entry each value is stored in)",
    },
    "lstm_cell": {
        "i": "the input gate i",
        "f": "the forget gate f",
        "g": "the candidate g",
        "o": "the output gate o",
        "cell": "the cell update c_new = f * c + i * g",
        "out": "the output h_new = o * tanh(c_new)",
        "bias": "the bias sum b_ih + b_hh (each added once)",
        "weights": "the weight terms x W_ih^T + h W_hh^T of the gates' pre-activations",
    },
    "tree_encode": {
        "leaf": "a leaf's vector (embed[word] itself)",
        "combine": "a parent's vector tanh(W [v_left ; v_right] + b)",
        "bias": "the bias `b` of a parent",
        "order": "the order of the children in [v_left ; v_right]",
        "nesting": "the recursion into subtrees",
    },
    "tbptt_grads": {
        "loss": "the loss on the logits h_T V^T + c (cross-entropy averaged over the batch)",
        "forward": "the forward pass over several steps up to h_T, the only state the loss sees",
        "backprop": "the gradients through the steps of the window",
        "trunc": "where the window starts (h_{{T-k}} held constant)",
    },
}

_R = "rnn_forward"
_J = "activation_jacobian"
_G = "hidden_grad_norms"
_B = "gradient_bound"
_L = "lstm_cell"
_T = "tree_encode"
_D = "tbptt_grads"


def _p(function: str, name: str, setting: str, build: Callable[[Inputs, Draw], Inputs],
       clears: str, part: tuple[str, ...] = (), also: str = "") -> Probe:
    """A probe that clears the terms ``clears`` and covers those and the terms ``also``."""
    cleared = frozenset(clears.split())
    return Probe(function, name, setting, build, cleared | frozenset(also.split()), part, cleared)


PROBES: tuple[Probe, ...] = (
    # ---- rnn_forward: each path of z_t = W h_{t-1} + U x_t + b alone ----------------------------
    # (a zeroed path is still computed: covered, not cleared)
    _p(_R, "input_path", "`W = 0`", lambda i, d: _zero(i, "W"), "act input bias out", also="recur"),
    _p(_R, "recurrence", "`U = 0, b = 0`", lambda i, d: _zero(i, "U", "b"), "act recur h0 update out",
       also="input"),
    _p(_R, "bias_only", "`W = 0, U = 0`", lambda i, d: _zero(i, "W", "U"), "act bias out", also="input recur"),
    _p(_R, "first_step", "`U = 0, b = 0` and T = 1", lambda i, d: _zero(d(T=1), "U", "b"),
       "act recur h0 out", also="input"),
    # without h0 and b: tells a missing bias from an input term that is broken in shape
    _p(_R, "zero_start", "`h0 = 0, b = 0`", lambda i, d: _zero(i, "h0", "b"), "act input recur update out",
       also="bias"),
    _p(_R, "other_activation", "`activation='{other}'`", lambda i, d: _other_activation(i),
       "act_other input bias recur h0 update out"),
    # ---- activation_jacobian ------------------------------------------------------------------
    _p(_J, "one_unit", "a single unit (H = 1)", lambda i, d: d(H=1), "d"),
    _p(_J, "as_drawn", "a fresh z", lambda i, d: i, "d diag"),
    _p(_J, "other_activation", "`activation='{other}'`", lambda i, d: _other_activation(i), "d_other diag"),
    # ---- hidden_grad_norms (squared loss: it sees h_T's value) --------------------------------
    # a linear loss at T = 1: g = [||dL/dh_T||] whatever values the forward pass computed, but not
    # whatever it did: the state's shape, and whether g holds gradients, still count
    _p(_G, "linear_one_step", "T = 1 and a linear loss (then g = [||dL/dh_T||])",
       lambda i, d: d(T=1, loss="linear"), "loss out", also="states act chain forward"),
    _p(_G, "one_step", "T = 1", lambda i, d: _squared(d, T=1), "loss act chain forward states out"),
    _p(_G, "no_input", "`U = 0, b = 0`", lambda i, d: _zero(_squared(d), "U", "b"),
       "loss act chain only_last order states out", also="forward"),
    _p(_G, "no_recurrence", "`W = 0` (then dL/dh_t = 0 for t < T)",
       lambda i, d: _zero(_squared(d), "W"), "loss act only_last order forward states out", also="chain"),
    _p(_G, "as_drawn", "a fresh input", lambda i, d: _squared(d),
       "loss act chain only_last order forward states out"),
    _p(_G, "other_activation", "`activation='{other}'`", lambda i, d: _other_activation(_squared(d)),
       "loss act_other chain only_last order forward states out"),
    # ---- gradient_bound -----------------------------------------------------------------------
    # T = 1 reaches no running product (where r[T-1] is stored still counts), only the power
    # ||W||^0 (a product that never multiplies by ||W|| reads the same: the exponent is covered,
    # not cleared), and cannot tell h_T from h_1 (which state dL/dh_T is taken at); a 1x1 or
    # symmetric W hides a transposition of W in the forward pass
    # without the input term: a wrong U x_t + b alone reads right here, so every other probe that
    # differs points at it. ||W|| = 2 keeps the states from dying out (with a contracting W and
    # tanh they decay towards 0, where act'(z) and act'(h) agree); the Jacobians are covered, not
    # cleared all the same (a unit whose z_t stays near 0 dominates their norms)
    _p(_B, "no_input", "`U = 0, b = 0`, and `W` rescaled to ||W||_2 = 2 (the states do not die out)",
       lambda i, d: _spectral_W(_zero(_squared(d), "U", "b"), 2.0),
       "gT act wnorm exponent recur accumulate", also="forward jprod jnorm"),
    _p(_B, "one_step", "T = 1 (then r = [||dL/dh_T||])", lambda i, d: _squared(d, T=1),
       "act forward recur", also="exponent gT accumulate"),
    _p(_B, "one_unit", "H = 1 (every norm of a 1x1 matrix agrees)", lambda i, d: _squared(d, H=1),
       "gT act exponent jprod forward accumulate", also="recur"),
    _p(_B, "unit_norm_W", "`W` rescaled to ||W||_2 = 1 (every power of it is 1)",
       lambda i, d: _unit_spectral_W(_squared(d)), "gT act wnorm jprod jnorm forward recur accumulate",
       also="exponent"),
    _p(_B, "rank_one_W", "a symmetric rank-1 `W` (its spectral norm, Frobenius norm and spectral "
       "radius agree)", lambda i, d: _rank_one_W(_squared(d)), "gT act exponent jprod jnorm forward accumulate",
       also="recur"),
    _p(_B, "other_activation", "`activation='{other}'`", lambda i, d: _other_activation(_squared(d)),
       "gT act_other wnorm exponent jprod jnorm forward recur accumulate"),
    # the recurrence computed but adding nothing: a wrong W h_{t-1} alone reads right here (W is
    # symmetric and its norms agree, so neither its transposition nor its norm is cleared)
    _p(_B, "recurrence_adds_nothing", "`W h_{{t-1}}` = 0 at every step (`W` = s v v^T with "
       "v = (e_1 - e_2)/sqrt(2); units 1 and 2 share `h0`, `b` and their row of `U`)",
       lambda i, d: _states_miss_W(_squared(d, H=max(2, i["W"].shape[0]))),
       "gT act exponent jprod jnorm forward accumulate", also="wnorm recur"),
    # ---- lstm_cell: some gates live, the others held at pre-activation 0 (no saturation) -----
    _p(_L, "i_and_g", "only i and g live, the other gates held at pre-activation 0, and `c = 0`",
       _lstm_held("ig", c_zero=True), "i g cell bias weights", ("c_new",)),
    _p(_L, "only_g", "only the candidate g live, and `c = 0`", _lstm_held("g", c_zero=True),
       "g cell bias weights", ("c_new",), also="i"),  # i held at 1/2 like f and o: a swap among them hides
    _p(_L, "only_f", "only the forget gate f live", _lstm_held("f"), "f cell bias weights", ("c_new",)),
    _p(_L, "h_out", "the forget gate f held and `c = 0` (h_new compared)",
       _lstm_held("igo", c_zero=True), "i g o cell out bias weights", ("h_new",)),
    _p(_L, "no_bias", "`b_ih = 0, b_hh = 0`", _lstm_held("ifgo", zero_bias=True), "i f g o cell out weights"),
    # x = 0 and h = 0: every gate is its bias sum alone (small, so nothing saturates)
    _p(_L, "zero_inputs", "`x = 0, h = 0` (each gate's pre-activation is its bias sum alone)",
       _lstm_zero_inputs, "i f g o cell out bias", also="weights"),
    # the input part x W_ih^T + b_ih zeroed: a wrong input part alone reads right here
    _p(_L, "recurrent_part", "`x = 0, b_ih = 0` (the gates read only the recurrent part h W_hh^T + b_hh)",
       _lstm_recurrent_part, "i f g o cell out", also="bias weights"),
    # every part but b_hh zeroed: a pre-activation whose other parts are all wrong reads right here
    _p(_L, "b_hh_alone", "`x = 0, h = 0, b_ih = 0` (each gate's pre-activation is `b_hh` alone)",
       _lstm_b_hh_alone, "i f g o cell out", also="bias weights"),
    # ---- tree_encode ----------------------------------------------------------------------------
    _p(_T, "leaf", "a single leaf", _tree(lambda a, b: a), "leaf"),
    _p(_T, "same_pair", "a pair of the same word `(a, a)`", _tree(lambda a, b: (a, a)),
       "leaf combine bias", also="order nesting"),
    _p(_T, "pair", "a pair of two words `(a, b)`", _tree(lambda a, b: (a, b)),
       "leaf combine bias order", also="nesting"),
    _p(_T, "pair_no_bias", "a pair `(a, b)` with `b = 0`", _tree(lambda a, b: (a, b), zero_b=True),
       "leaf combine order", also="bias nesting"),
    _p(_T, "two_levels", "two levels `(a, (b, a))`", _tree(lambda a, b: (a, (b, a))),
       "leaf combine bias order nesting"),
    # ---- tbptt_grads ----------------------------------------------------------------------------
    _p(_D, "one_step_output", "T = 1 (only dL/dV and dL/dc compared)", _tbptt(T=1, k=1),
       "loss", ("V", "c"), also="forward trunc"),
    _p(_D, "output_layer", "k = T (only dL/dV and dL/dc compared)", _tbptt(), "loss forward",
       ("V", "c"), also="trunc"),
    _p(_D, "full", "k = T (full back-propagation)", _tbptt(), "loss forward backprop", also="trunc"),
    # k = 1: the window's first state is h_T, so which state of the window the loss sees is
    # covered, not cleared
    _p(_D, "k1", "k = 1", _tbptt(k=1), "loss trunc", also="forward"),
    _p(_D, "k2", "k = 2", _tbptt(k=2), "loss forward trunc backprop"),
)


def probes_for(function: str) -> tuple[Probe, ...]:
    """The probes of one contract function, in a fixed order (empty for an unknown name)."""
    return tuple(p for p in PROBES if p.function == function)


