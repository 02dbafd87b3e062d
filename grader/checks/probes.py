"""Probes: after a function failed its hidden cases, find which term of it is wrong.

A probe is the failing function called once more, on an input designed so that only some terms
of the computation matter: ``rnn_forward`` with ``W = 0`` exercises the input path alone, with
``U = 0, b = 0`` the recurrence alone. Each probe says which terms it exercises (``covers``: the
terms a wrong implementation of which would change the output on that input). The student's
output either matches the reference's there or not, and the wrong term is then found by set
algebra, as in fault localisation: the terms every differing probe exercises, minus the terms of
the probes that matched. "With `W = 0` your output matches the reference; with `U = 0, b = 0` it
does not: the recurrence term `W h_{t-1}` is wrong."

The probes are data (:data:`PROBES`, like grader/checks/mistakes.py's catalogue): a table of (function,
name, the setting in words, how to build the inputs from a base input, the terms it covers).

Rules, each for a reason:

- Feedback only, never points: a probe is not a case of the rubric, and a student must not lose
  (or win) points on an input the rubric does not list.
- Public-safe: the base input is drawn from the check's first *public* seed on the shape of the
  first failing case (shapes are shown in every report), never from a hidden seed, so a probe's
  inputs may be shown to a student.
- Computed in the grader: the reference runs here on the same tensors; the student's function is
  called through the Bridge (npy/JSON, no pickle) with the rubric's call timeout.
- Bounded: at most :data:`MAX_PROBES` calls per function, each with the rubric's call timeout,
  and no new probe once the function's probes have used that timeout in total (so probing costs
  at most about two call timeouts per failing function, however slow the function is); a probe
  that crashes the kernel or runs out of time ends the probing of that function (a further call
  would restart the kernel and run the whole notebook again), as `_run_check` does for the
  hidden cases.
- Verified: a probe clears its terms only on a match within :data:`CLEAR_RTOL` (a near match is
  "close" and clears nothing); a located term is stated only when pinned (see :func:`verdict`),
  else the report says the wrong part could not be located. No probe saturates an activation.
- Probes are also observations for naming mistakes: every catalogued mistake is evaluated on
  them too (grader/checks/compare.py), so a named mistake is consistent with what the probes found.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Any, Protocol

import torch

import reference
from grader.checks import cases as case_inputs
from grader.checks.bridge import Returned
from grader.checks.compare import (
    SCALED,
    _flatten,
    attribute,
    attribute_by_setting,
    describe,
    mistake_evidence,
    same,
    select,
    setting_message,
    to_numpy,
    with_attribution,
)
from grader.result import CaseResult, Evidence
from grader.rubric import Case, Check

__all__ = ["MAX_PROBES", "PROBES", "TERMS", "Probe", "ProbeRun", "probes_for", "review",
           "run_probes", "verdict"]

#: Calls per failing function, at most. Each table below stays within it (a test checks).
MAX_PROBES = 6

# Probes stay in the regime the student's code is meant for: no input saturates an activation (a
# saturated gate reads the same under a right and a wrong sigmoid, and hides the bug). A gate is
# "held" by zeroing its weights and biases: its pre-activation is exactly 0, where sigmoid is 1/2
# and tanh is 0, the most linear point of both.

#: A probe clears the terms it exercises only when the student's output equals the reference's
#: within this relative tolerance (and the check's atol, which float32 rounding near 0 needs): a
#: match within the check's own, looser rtol may hide a wrong term whose effect is small there.
CLEAR_RTOL = 1e-5

Inputs = dict[str, Any]
Draw = Callable[..., Inputs]  # draw(**overrides): fresh inputs on the base shape, params overridden


class Caller(Protocol):
    def call(self, expr: str, args: dict[str, Any], timeout: float) -> Returned: ...


@dataclass(frozen=True)
class Probe:
    function: str
    name: str  # short id, unique per function
    setting: str  # the input in words, shown to students, e.g. "`W = 0`"; {other}: the other activation
    build: Callable[[Inputs, Draw], Inputs]  # (base inputs, draw) -> the probe's inputs
    covers: frozenset[str]  # the terms of TERMS[function] a mistake in which shows on this input
    part: tuple[str, ...] = ()  # compare only these outputs (h_new/c_new, gradient keys)


@dataclass(frozen=True)
class ProbeRun:
    """One probe as it ran: ``outcome`` is matches | close | differs | raised | stopped | skipped.

    ``close``: within the check's tolerance but not within :data:`CLEAR_RTOL`, so it neither
    clears a term nor counts as a difference."""

    probe: Probe
    outcome: str
    detail: str = ""
    evidence: tuple[Evidence, ...] = ()

    def to_json(self, terms: Mapping[str, str], activation: str | None) -> dict[str, str]:
        words = {"matches": "matches the reference", "differs": "differs from the reference",
                 "close": "is close to the reference but not equal to it (not taken as a match)",
                 "raised": "raised an error", "stopped": "did not finish (probing stopped)",
                 "skipped": "was not tried (the probes' time budget was used up)"}
        setting = _setting(self.probe, activation)
        return {"probe": self.probe.name, "setting": setting,
                "exercises": "; ".join(terms[t] for t in terms if t in self.probe.covers),
                "outcome": self.outcome,
                "text": f"with {setting} your output {words[self.outcome]}"
                        + (f" ({self.detail})" if self.detail else "")}


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


def _unit_spectral_W(inputs: Inputs) -> Inputs:
    W = inputs["W"].double()
    return {**inputs, "W": (W / torch.linalg.matrix_norm(W, ord=2)).float()}


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
       covers: str, part: tuple[str, ...] = ()) -> Probe:
    return Probe(function, name, setting, build, frozenset(covers.split()), part)


PROBES: tuple[Probe, ...] = (
    # ---- rnn_forward: each path of z_t = W h_{t-1} + U x_t + b alone ----------------------------
    _p(_R, "input_path", "`W = 0`", lambda i, d: _zero(i, "W"), "act input bias out"),
    _p(_R, "recurrence", "`U = 0, b = 0`", lambda i, d: _zero(i, "U", "b"), "act recur h0 update out"),
    _p(_R, "bias_only", "`W = 0, U = 0`", lambda i, d: _zero(i, "W", "U"), "act bias out"),
    _p(_R, "first_step", "`U = 0, b = 0` and T = 1", lambda i, d: _zero(d(T=1), "U", "b"),
       "act recur h0 out"),
    _p(_R, "zero_start", "`h0 = 0`", lambda i, d: _zero(i, "h0"), "act input bias recur update out"),
    _p(_R, "other_activation", "`activation='{other}'`", lambda i, d: _other_activation(i),
       "act_other input bias recur h0 update out"),
    # ---- activation_jacobian ------------------------------------------------------------------
    _p(_J, "one_unit", "a single unit (H = 1)", lambda i, d: d(H=1), "d"),
    _p(_J, "as_drawn", "a fresh z", lambda i, d: i, "d diag"),
    _p(_J, "other_activation", "`activation='{other}'`", lambda i, d: _other_activation(i), "d_other diag"),
    # ---- hidden_grad_norms (squared loss: it sees h_T's value) --------------------------------
    # a linear loss at T = 1: g = [||dL/dh_T||], whatever the forward pass computed
    _p(_G, "linear_one_step", "T = 1 and a linear loss (then g = [||dL/dh_T||])",
       lambda i, d: d(T=1, loss="linear"), "loss"),
    _p(_G, "one_step", "T = 1", lambda i, d: _squared(d, T=1), "loss act chain forward"),  # h_1 = act(W h0 + ...)
    _p(_G, "no_recurrence", "`W = 0` (then dL/dh_t = 0 for t < T)",
       lambda i, d: _zero(_squared(d), "W"), "loss act only_last order forward"),
    _p(_G, "as_drawn", "a fresh input", lambda i, d: _squared(d), "loss act chain only_last order forward"),
    _p(_G, "other_activation", "`activation='{other}'`", lambda i, d: _other_activation(_squared(d)),
       "loss act_other chain only_last order forward"),
    # ---- gradient_bound -----------------------------------------------------------------------
    _p(_B, "linear_one_step", "T = 1 and a linear loss (then r = [||dL/dh_T||], whatever the forward "
       "pass computed)", lambda i, d: d(T=1, loss="linear"), "gT exponent"),
    _p(_B, "one_step", "T = 1 (then r = [||dL/dh_T||])", lambda i, d: _squared(d, T=1),
       "gT act exponent forward recur"),
    _p(_B, "one_unit", "H = 1 (every norm of a 1x1 matrix agrees)", lambda i, d: _squared(d, H=1),
       "gT act exponent jprod forward recur accumulate"),
    _p(_B, "unit_norm_W", "`W` rescaled to ||W||_2 = 1 (every power of it is 1)",
       lambda i, d: _unit_spectral_W(_squared(d)), "gT act wnorm jprod jnorm forward recur accumulate"),
    _p(_B, "rank_one_W", "a symmetric rank-1 `W` (its spectral norm, Frobenius norm and spectral "
       "radius agree)", lambda i, d: _rank_one_W(_squared(d)), "gT act exponent jprod jnorm forward recur accumulate"),
    _p(_B, "other_activation", "`activation='{other}'`", lambda i, d: _other_activation(_squared(d)),
       "gT act_other wnorm exponent jprod jnorm forward recur accumulate"),
    # ---- lstm_cell: some gates live, the others held at pre-activation 0 (no saturation) -----
    _p(_L, "i_and_g", "only i and g live, the other gates held at pre-activation 0, and `c = 0`",
       _lstm_held("ig", c_zero=True), "i g cell bias weights", ("c_new",)),
    _p(_L, "only_g", "only the candidate g live, and `c = 0`", _lstm_held("g", c_zero=True),
       "g i cell bias weights", ("c_new",)),
    _p(_L, "only_f", "only the forget gate f live", _lstm_held("f"), "f cell bias weights", ("c_new",)),
    _p(_L, "h_out", "the forget gate f held and `c = 0` (h_new compared)",
       _lstm_held("igo", c_zero=True), "i g o cell out bias weights", ("h_new",)),
    _p(_L, "no_bias", "`b_ih = 0, b_hh = 0`", _lstm_held("ifgo", zero_bias=True), "i f g o cell out weights"),
    # x = 0 and h = 0: every gate is its bias sum alone (small, so nothing saturates)
    _p(_L, "zero_inputs", "`x = 0, h = 0` (each gate's pre-activation is its bias sum alone)",
       _lstm_zero_inputs, "i f g o cell out bias"),
    # ---- tree_encode ----------------------------------------------------------------------------
    _p(_T, "leaf", "a single leaf", _tree(lambda a, b: a), "leaf"),
    _p(_T, "same_pair", "a pair of the same word `(a, a)`", _tree(lambda a, b: (a, a)),
       "leaf combine bias"),
    _p(_T, "pair", "a pair of two words `(a, b)`", _tree(lambda a, b: (a, b)),
       "leaf combine bias order"),
    _p(_T, "pair_no_bias", "a pair `(a, b)` with `b = 0`", _tree(lambda a, b: (a, b), zero_b=True),
       "leaf combine order"),
    _p(_T, "two_levels", "two levels `(a, (b, a))`", _tree(lambda a, b: (a, (b, a))),
       "leaf combine bias order nesting"),
    # ---- tbptt_grads ----------------------------------------------------------------------------
    _p(_D, "one_step_output", "T = 1 (only dL/dV and dL/dc compared)", _tbptt(T=1, k=1),
       "loss", ("V", "c")),
    _p(_D, "output_layer", "k = T (only dL/dV and dL/dc compared)", _tbptt(), "loss forward",
       ("V", "c")),
    _p(_D, "full", "k = T (full back-propagation)", _tbptt(), "loss forward backprop"),
    _p(_D, "k1", "k = 1", _tbptt(k=1), "loss forward trunc"),
    _p(_D, "k2", "k = 2", _tbptt(k=2), "loss forward trunc backprop"),
)


def probes_for(function: str) -> tuple[Probe, ...]:
    """The probes of one contract function, in a fixed order (empty for an unknown name)."""
    return tuple(p for p in PROBES if p.function == function)


# ------------------------------------------------------------------------------------------------
# Running the probes and reading them.


def _activations(activation: str | None) -> dict[str, str]:
    act = activation or "tanh"
    return {"act": act, "other": "sigmoid" if act == "tanh" else "tanh"}


def _terms(function: str, activation: str | None) -> dict[str, str]:
    return {k: v.format(**_activations(activation)) for k, v in TERMS[function].items()}


def _setting(probe: Probe, activation: str | None) -> str:
    return probe.setting.format(**_activations(activation))


def run_probes(function: str, base_params: Mapping[str, Any], seed: int, bridge: Caller,
               timeout: float, rtol: float, atol: float) -> list[ProbeRun]:
    """Call ``function`` in the kernel on each of its probes; at most :data:`MAX_PROBES` calls."""
    def draw(**over: Any) -> Inputs:
        return case_inputs.make_inputs(function, seed, {**base_params, **over})

    base = draw()
    runs: list[ProbeRun] = []
    spent = 0.0  # the function's own time on the probes so far, as the kernel measured it
    for probe in probes_for(function)[:MAX_PROBES]:
        if spent >= timeout:
            runs.append(ProbeRun(probe, "skipped"))
            continue
        inputs = probe.build(base, draw)
        expected = to_numpy(getattr(reference, function)(**inputs))
        returned = bridge.call(f"{function}(**__args)", inputs, timeout)
        spent += returned.seconds
        if returned.status in ("died", "timeout"):
            runs.append(ProbeRun(probe, "stopped"))
            break  # a further call would restart the kernel and run the notebook again
        if returned.status != "ok":
            runs.append(ProbeRun(probe, "raised", returned.error[:200]))
            continue
        _, problem = _flatten(select(expected, probe.part), select(returned.value, probe.part))
        if problem:
            runs.append(ProbeRun(probe, "differs", problem))
            continue
        ref, got = select(expected, probe.part), select(returned.value, probe.part)
        matched = same(ref, got, CLEAR_RTOL, atol)
        outcome = "matches" if matched else "close" if same(ref, got, rtol, atol) else "differs"
        evidence = mistake_evidence(function, inputs, expected, returned.value, rtol, atol, probe.part)
        runs.append(ProbeRun(probe, outcome, evidence=evidence))
    return runs


def _settings(runs: Sequence[ProbeRun], activation: str | None) -> str:
    names = [_setting(r.probe, activation) for r in runs]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def verdict(function: str, runs: Sequence[ProbeRun], activation: str | None = None) -> tuple[str, tuple[str, ...]]:
    """The probes' finding in words, and the keys of the terms it names ("" and () if none).

    Terms exercised by a probe that matched are cleared. The wrong terms are the fewest that
    explain every differing probe (each differing probe exercises one of them): one term when a
    single bug shows, several when one term cannot explain all (two terms wrong). Where several
    equally small explanations exist, all their terms are named as "one of these". A differing
    probe that exercises only cleared terms means the error lies in how the terms combine.
    A claim is verified first: each named term must be pinned (the only uncleared term of some
    differing probe), a single term may also stand when some probe matched, and "one of these"
    needs a differing probe whose uncleared terms are exactly those; otherwise the wrong part
    "could not be located". "close" probes neither clear nor differ.
    """
    terms = _terms(function, activation)
    differ = [r for r in runs if r.outcome in ("differs", "raised")]
    match = [r for r in runs if r.outcome == "matches"]
    if not differ:
        return "", ()
    cleared = frozenset().union(*(r.probe.covers for r in match))
    remaining = [r.probe.covers - cleared for r in differ]
    order = list(TERMS[function])
    candidates = sorted(frozenset().union(*remaining), key=order.index)
    explanations: list[tuple[str, ...]] = []
    if all(remaining):
        for size in range(1, len(candidates) + 1):  # at most 2^len(TERMS[function]) subsets
            explanations = [c for c in combinations(candidates, size) if all(rem & set(c) for rem in remaining)]
            if explanations:
                break
    keys = tuple(t for t in order if any(t in e for e in explanations))
    # Verification (issue 22): a located term is a claim that the reference's computation in
    # its place would give the student's outputs. The probes support it only where a probe on
    # which every other term it exercises was cleared (by an exact match) differs: the term is
    # "pinned". A single term found only as the intersection of probes that all differ, or a set
    # of several terms that are not each pinned, is not stated.
    pinned = {next(iter(rem)) for rem in remaining if len(rem) == 1}
    hedge = bool(explanations) and len(explanations[0]) == 1 and len(keys) > 1
    if hedge:
        verified = any(rem == set(keys) for rem in remaining)
    elif len(keys) == 1:
        verified = keys[0] in pinned or bool(match)
    else:
        verified = all(k in pinned for k in keys)
    if keys and not verified:
        keys = ()
        unverified = True
    else:
        unverified = False
    if match:
        lead = (f"With {_settings(match, activation)} your output matches the reference; with "
                f"{_settings(differ, activation)} it does not")
    else:
        lead = (f"With every probe ({_settings(differ, activation)}) your output differs from "
                "the reference")
    named = "; ".join(terms[k] for k in keys)
    if not keys and unverified:
        return (f"{lead}: the wrong part could not be located (no single term, put right, would "
                "explain every probe); compare your output with the expected values of the "
                "failing case shown."), ()
    if not keys:
        return (f"{lead}: the probes cannot isolate one term, so the error lies in how the "
                "terms combine."), ()
    if len(keys) == 1:
        return f"{lead}: {terms[keys[0]]} is wrong.", keys
    if len(explanations[0]) == 1:
        return f"{lead}: one of these is wrong: {named}.", keys
    if len(explanations) == 1:
        return f"{lead}: more than one term is wrong: {named}.", keys
    return f"{lead}: more than one term is wrong, among: {named}.", keys


def _case_of(check: Check, result: CaseResult, public: bool) -> Case | None:
    """The rubric case ``result`` reports on, or None when it is not one of them (a result added
    by another step of grading, e.g. a rule check, is not an observation of the function)."""
    cases = check.public_cases() if public else check.cases
    if result.function != check.function or not 1 <= result.index <= len(cases):
        return None
    case = cases[result.index - 1]
    return case if case.describe() == result.params else None


def _case_evidence(check: Check, case: Case, secret: bytes | None = None) -> tuple[Evidence, ...]:
    """The catalogued mistakes on a case the student passed (its output equals the reference's).

    ``secret``: the course secret a hidden case was drawn under (None for a public example), so
    these are the very inputs the student was called on (grader/checks/cases.py)."""
    inputs = case_inputs.make_inputs(check.function, case.seed, case.params, secret)
    expected = to_numpy(getattr(reference, check.function)(**inputs))
    return mistake_evidence(check.function, inputs, expected, None, check.rtol, check.atol)


def _keys(check: Check, results: Sequence[CaseResult], failing: Sequence[CaseResult],
          runs: Sequence[ProbeRun], public: bool,
          secret: bytes | None = None) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The catalogued mistakes that explain every case and every probe (see compare.attribute),
    and, where none does, those that explain every case and probe of one setting alone."""
    observations = [(r.evidence, True) for r in failing]
    passed = [_case_of(check, r, public) for r in results if r.passed]
    observations += [(_case_evidence(check, case, None if public else secret), False)
                     for case in passed if case is not None]
    observations += [(r.evidence, r.outcome != "matches") for r in runs if r.evidence]
    keys = attribute(observations)
    return keys, (() if keys else attribute_by_setting(observations))


def review(check: Check, results: Sequence[CaseResult], bridge: Caller, timeout: float,
           public: bool = False, secret: bytes | None = None) -> list[CaseResult]:
    """``results`` of one check restated after probing, when some case failed on its values.

    Returns the results unchanged when every case passed, when no case returned a value of the
    right kind (a probe would only show the same shape or error again), or when a call crashed
    or hung (a further call would restart the kernel). Otherwise every failed case carries the
    probes and the diagnosis, and names a catalogued mistake only as grader/checks/compare.py's
    :func:`~grader.checks.compare.attribute` allows over all cases and probes. Never raises: feedback
    must never cost a submission its grade, so a failure of the grader's own probing leaves the
    results as they were, with the reason in result.json for the tutor (the report shows none).
    """
    results = list(results)
    try:
        return _review(check, results, bridge, timeout, public, secret)
    except Exception as exc:  # noqa: BLE001 - see above: the points stand whatever happens here
        failure = f"probing failed in the grader: {type(exc).__name__}: {exc}"[:300]
        return [r if r.passed else replace(r, probes=({"outcome": "grader_error", "text": failure},))
                for r in results]


def _review(check: Check, results: list[CaseResult], bridge: Caller, timeout: float,
            public: bool, secret: bytes | None = None) -> list[CaseResult]:
    failing = [r for r in results if r.wrong_values and _case_of(check, r, public) is not None]
    if not failing or any(r.call_status in ("died", "timeout") for r in results):
        return results
    if any(r.structure and not r.structure.startswith(SCALED) for r in results if not r.passed):
        # a slice, transposition or reordering of the expected result explains a failure: that
        # finding is the diagnosis; probes would only meet the same layout again
        return results
    base = _case_of(check, failing[0], public)
    assert base is not None  # filtered above
    runs: list[ProbeRun] = []
    if check.public_seeds:  # the base is drawn from a public seed only (public-safe inputs)
        runs = run_probes(check.function, base.params, check.public_seeds[0], bridge, timeout,
                          check.rtol, check.atol)
    keys, in_setting = _keys(check, results, failing, runs, public, secret)
    activation = base.params.get("activation")
    finding, _ = verdict(check.function, runs, activation)
    sentences = [finding] if finding else []
    if len(keys) == 1:
        sentences.append(f"Over all cases{' and probes' if runs else ''} your output matches "
                         f"`{check.function}` {describe(check.function, keys[0])}.")
    elif keys:
        sentences.append(f"Your output is consistent with {len(keys)} known mistakes: `{check.function}` "
                         + "; or ".join(describe(check.function, k) for k in keys) + ".")
    elif len(in_setting) == 1:
        key, setting = in_setting[0]
        sentences.append(f"Over all cases{' and probes' if runs else ''}, "
                         f"{setting_message(check.function, key, setting)}; every other case is right.")
    terms = _terms(check.function, activation)
    probes_json = tuple(r.to_json(terms, activation) for r in runs)
    one = in_setting if len(in_setting) == 1 else ()
    return [r if r.passed else with_attribution(r, keys, " ".join(sentences), probes_json, one)
            for r in results]
