"""Is what the report says about a mutant true? The audit's check of every claim (issue 22, 2e).

A report that names a mistake or locates a term makes a claim a student will act on; the audit
knows the answer (the mutant knows what it changed) and checks each claim:

- a **located term** ("the input term `U x_t` is wrong") is right only when the mutant changed
  code of that term: :data:`TERM_CODE` lists, per function and term, the code of the reference
  that computes it (unit function, code); the claim is right when the mutant's changed code
  (:attr:`~grader.tutors.audit_mutants.Mutant.region`, on its line) is part of that code or holds
  it. "More than one term is wrong: A; B" needs each of A and B changed; "one of these is wrong:
  A; B" needs one of them changed;
- a **named mistake** (for the whole function, or for one setting) is right only when the
  catalogued mistake's computation agrees with the mutant on fresh random inputs (those the
  mistake applies to; for one setting: on every input either the mistake agrees or the mutant is
  right), within the check's tolerance;
- a **raise located** ("at line N of your cell") is right when N is the changed line, and a
  **raise traced back** ("Where it comes from: ... line N", grader/checks/causes.py) when one of
  the lines it names is;
- a **layout finding** or a broken **contract rule** is a statement about the output that the
  grader verified on the case itself; it is counted as right.

A wrong claim is counted and listed by ``grade audit`` (the goal is none).
"""
from __future__ import annotations

import ast
import functools
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from grader.checks import cases as case_inputs
from grader.checks.compare import describe, same, to_numpy
from grader.checks.mistakes import mistakes_for
from grader.checks.probes import TERMS
from grader.checks.raised import at_line
from grader.result import CaseResult
from grader.rubric import Check
from grader.tutors.audit_equivalence import CALL_SECONDS, _clone, _time_limit, random_params
from grader.tutors.audit_mutants import FUNCTIONS, Mutant, _program_tree

__all__ = ["CLAIM_DRAWS", "TERM_CODE", "check_claim", "claimed_terms", "touched_terms"]

#: Random inputs a named mistake must agree with the mutant on.
CLAIM_DRAWS = 12

_A = ("activation", "torch.tanh"), ("activation", "torch.sigmoid"), ("activation", "name == 'tanh'"), \
    ("activation", "name == 'sigmoid'")
_ST_ACT = ("_states", "act = _lookup(activation)"), ("_states", "act(z)")
_FWD = ("_states", "x[t] @ U.T"), ("_states", "+ b")

#: function -> term (grader/checks/probes.py TERMS) -> (unit function, code of the reference).
TERM_CODE: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "rnn_forward": {
        "act": _A + (("rnn_forward", "act = _lookup(activation)"), ("rnn_forward", "act")),
        # "W, U, b": which argument is taken as which (a swap of two changes the terms of both)
        "input": (("rnn_forward", "W, U, b"), ("rnn_forward", "x @ U.T"), ("rnn_forward", "xu[t]"),
                  ("rnn_forward", "as_tensor(U, dtype)")),
        "bias": (("rnn_forward", "W, U, b"), ("rnn_forward", "+ b"), ("rnn_forward", "xu[t]"),
                 ("rnn_forward", "as_tensor(b, dtype)")),
        "recur": (("rnn_forward", "W, U, b"), ("rnn_forward", "h @ W.T"), ("rnn_forward", "as_tensor(W, dtype)")),
        "h0": (("rnn_forward", "as_tensor(h0, dtype)"),),
        "out": (("rnn_forward", "hs.append(h)"), ("rnn_forward", "torch.stack(hs)"),
                ("rnn_forward", "range(x.shape[0])")),
    },
    "activation_jacobian": {
        "d": (("_derivative", "1.0 - torch.tanh(z) ** 2"), ("_derivative", "torch.sigmoid(z)"),
              ("_derivative", "s * (1.0 - s)"), ("_derivative", "name == 'tanh'"),
              ("_derivative", "name == 'sigmoid'"), ("activation_jacobian", "_derivative(activation, z.reshape(-1))")),
        "diag": (("activation_jacobian", "torch.diag"),),
    },
    "hidden_grad_norms": {
        "loss": (("_grad_wrt", "loss_fn(hs[-1])"), ("_grad_wrt", "loss.reshape(())")),
        "act": _ST_ACT,
        "chain": (("_states", "h @ W.T"),),
        "forward": _FWD,
        "only_last": (("_grad_wrt", "hs[-1]"),),
        "states": (("_prepare", "(x, h0, W, U, b)"), ("hidden_grad_norms", "_prepare(x, h0, W, U, b)"),
                   ("_states", "(zs, hs)"), ("_states", "h0.clone().requires_grad_(track)"),
                   ("_states", "zs.append(z)"), ("_states", "hs.append(h)"),
                   ("hidden_grad_norms", "_, hs = _states(x, h0, W, U, b, activation, track=True)")),
        "out": (("_grad_wrt", "torch.zeros_like(h) if g is None else g for h, g in zip(hs, grads)"),
                ("hidden_grad_norms", "torch.linalg.vector_norm(g)")),
    },
    "gradient_bound": {
        "gT": (("_grad_wrt", "loss_fn(hs[-1])"), ("gradient_bound", "hs[-1]"),
               ("gradient_bound", "torch.linalg.vector_norm(dL_dhT)"),
               ("gradient_bound", "_grad_wrt(loss_fn, [h_T])")),
        "act": _ST_ACT + (("gradient_bound", "activation_jacobian(z.reshape(-1), activation)"),),
        "wnorm": (("gradient_bound", "torch.linalg.matrix_norm(W, ord=2)"), ("gradient_bound", "w_norm")),
        "exponent": (("gradient_bound", "factor * w_norm"), ("gradient_bound", "range(T - 2, -1, -1)")),
        "jprod": (("gradient_bound", "j_norms[idx + 1]"), ("gradient_bound", "range(T - 2, -1, -1)"),
                  ("gradient_bound", "for z in zs")),
        "jnorm": (("gradient_bound", "torch.linalg.matrix_norm(activation_jacobian(z.reshape(-1), "
                                     "activation), ord=2)"),),
        "forward": _FWD,
        "recur": (("_states", "h @ W.T"),),
        "accumulate": (("gradient_bound", "r[T - 1]"), ("gradient_bound", "r[idx]"),
                       ("gradient_bound", "factor * w_norm"), ("gradient_bound", "range(T - 2, -1, -1)")),
    },
    "lstm_cell": {
        "i": (("lstm_cell", "torch.sigmoid(i)"), ("lstm_cell", "i, f, g, o")),
        "f": (("lstm_cell", "torch.sigmoid(f)"), ("lstm_cell", "i, f, g, o")),
        "g": (("lstm_cell", "torch.tanh(g)"), ("lstm_cell", "i, f, g, o")),
        "o": (("lstm_cell", "torch.sigmoid(o)"), ("lstm_cell", "i, f, g, o")),
        "cell": (("lstm_cell", "torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)"),
                 ("lstm_cell", "as_tensor(c, dtype)")),
        "out": (("lstm_cell", "torch.sigmoid(o) * torch.tanh(c_new)"), ("lstm_cell", "(h_new, c_new)")),
        "bias": (("lstm_cell", "b_ih"), ("lstm_cell", "b_hh")),
        "weights": (("lstm_cell", "x @ W_ih.T"), ("lstm_cell", "h @ W_hh.T"), ("lstm_cell", "as_tensor(W_ih, dtype)"),
                    ("lstm_cell", "as_tensor(W_hh, dtype)"), ("lstm_cell", "as_tensor(h, dtype)")),
    },
    "tree_encode": {
        "leaf": (("tree_encode", "embed[word]"), ("tree_encode", "as_tensor(vec, dtype).reshape(-1)")),
        "combine": (("tree_encode", "torch.tanh(W @ torch.cat([left, right]) + b)"),),
        "bias": (("tree_encode", "+ b"), ("tree_encode", "as_tensor(b, dtype)")),
        "order": (("tree_encode", "[left, right]"), ("tree_encode", "right = values.pop()"),
                  ("tree_encode", "left = values.pop()"), ("tree_encode", "_children(node)"),
                  ("tree_encode", "left_node, right_node")),
        "nesting": (("tree_encode", "stack.append((right_node, False))"),
                    ("tree_encode", "stack.append((left_node, False))"), ("tree_encode", "stack.append((node, True))")),
    },
    "tbptt_grads": {
        "loss": (("tbptt_grads", "h_T @ p['V'].T + p['c']"), ("tbptt_grads", "F.cross_entropy(logits, y)")),
        "forward": (("tbptt_grads", "rnn_forward(x[split:], h, p['W'], p['U'], p['b'])"),),
        "backprop": (("tbptt_grads", "torch.autograd.grad(loss, [p[name] for name in PARAM_NAMES], "
                                     "allow_unused=True)"),),
        "trunc": (("tbptt_grads", "x.shape[0]"), ("tbptt_grads", "torch.no_grad()"),
                  ("tbptt_grads", "max(T - k, 0)"), ("tbptt_grads", "x[:split]"), ("tbptt_grads", "x[split:]"),
                  ("tbptt_grads", "split < T")),
    },
}
_SAME_CODE = {"act_other": "act", "d_other": "d"}
_CLAIM = re.compile(r"(?:it does not|differs from the reference): (.*?)(?:\.(?: |$))")


def _contains(big: str, small: str) -> bool:
    """``small`` occurs in ``big`` as whole tokens (``T`` is not in ``W.T``, ``b`` not in ``b_ih``)."""
    small = small.strip()
    return bool(small) and re.search(r"(?<![\w.'])" + re.escape(small) + r"(?![\w'])", big) is not None


def _lines_of(program: str, unit: str) -> dict[int, str]:
    """Line number -> text of the unit function ``unit`` in ``program``."""
    lines = program.splitlines()
    start = next((i for i, t in enumerate(lines) if re.match(rf"def {re.escape(unit)}\(", t)), None)
    if start is None:
        return {}
    out = {start + 1: lines[start]}
    for i in range(start + 1, len(lines)):
        if lines[i] and not lines[i].startswith((" ", "\t")):
            break
        out[i + 1] = lines[i]
    return out


@functools.cache
def _original(function: str) -> str:
    return ast.unparse(_program_tree(function))


def touched_terms(mutant: Mutant) -> set[str]:
    """The terms whose code the mutant changed (see :data:`TERM_CODE`)."""
    lines = _lines_of(_original(mutant.function), mutant.unit)
    here = lines.get(mutant.line, "")
    out = set()
    # a tuple is shown in parentheses where the code may write it without ("for h, g in ...")
    regions = {mutant.region, mutant.region.removeprefix("(").removesuffix(")")}
    for term, places in TERM_CODE.get(mutant.function, {}).items():
        for unit, code in places:
            code = code.lstrip("+ ")
            if unit != mutant.unit or not _contains(here, code):
                continue
            if any(_contains(code, region) or _contains(region, code) for region in regions):
                out.add(term)
    return out


def claimed_terms(function: str, text: str) -> tuple[str, ...]:
    """The terms a located or hedged claim names, as keys of TERMS[function]: read from the
    claim itself (after "it does not:"), not from the probes' settings before it."""
    m = _CLAIM.search(text)
    text = m.group(1) if m else ""
    found = []
    for key, words in TERMS.get(function, {}).items():
        options = {words.format(act=a, other=o) for a, o in (("tanh", "sigmoid"), ("sigmoid", "tanh"))}
        if any(w in text for w in options):
            found.append(_SAME_CODE.get(key, key))
    return tuple(dict.fromkeys(found))


def _mistake_right(mutant_fn: Callable[..., Any], function: str, description: str, check: Check,
                   one_setting: bool) -> bool:
    mistake = next((m for m in mistakes_for(function) if describe(function, m.key) == description), None)
    if mistake is None:
        return False
    rng = np.random.default_rng([7, FUNCTIONS.index(function)])
    import reference
    ref = getattr(reference, function)
    agreed = 0
    for _ in range(CLAIM_DRAWS * 3):
        params = random_params(check, rng)
        inputs = case_inputs.make_inputs(function, int(rng.integers(10**6, 10**7)), params)
        if not mistake.applies(inputs) and not one_setting:
            continue
        try:
            with _time_limit(CALL_SECONDS), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = to_numpy(mutant_fn(**_clone(inputs)))
        except Exception:  # noqa: BLE001 - a mutant that raises here says nothing of the mistake
            continue
        predicted = to_numpy(mistake.compute(**_clone(inputs))) if mistake.applies(inputs) else None
        if predicted is not None and same(predicted, got, check.rtol, check.atol):
            agreed += 1
        elif not (one_setting and same(to_numpy(ref(**_clone(inputs))), got, check.rtol, check.atol)):
            return False
        if agreed >= CLAIM_DRAWS:
            break
    return agreed > 0


def _terms_claim(failed: Sequence[CaseResult], mutant: Mutant) -> tuple[str, bool | None]:
    """The probes' located or hedged terms in the report, checked; None when it locates none."""
    text = next((r.diagnosis for r in failed if r.diagnosis), "")
    terms = claimed_terms(mutant.function, text)
    if not terms:
        return "", None
    touched = touched_terms(mutant)
    hedged = "one of these is wrong" in text
    return "terms: " + ", ".join(terms), bool(set(terms) & touched) if hedged else set(terms) <= touched


def check_claim(kind: str, results: Sequence[CaseResult], mutant: Mutant, mutant_fn: Callable[..., Any],
                check: Check) -> tuple[str, bool | None]:
    """(the claim in short, whether it is right) for a mutant's finding of ``kind``; None: no claim.

    A report that names a mistake (or a layout, or a broken rule) and also locates a term makes
    both claims: it is right only when both are."""
    failed = [r for r in results if not r.passed]
    terms, terms_right = _terms_claim(failed, mutant)
    if kind in ("named", "setting"):
        named = next((r.mistakes or r.consistent_with for r in failed if r.mistakes or r.consistent_with), ())
        right = any(_mistake_right(mutant_fn, mutant.function, d, check, kind == "setting") for d in named)
        if terms_right is False:
            return f"mistake: {' | '.join(named)}; {terms}", False
        return "mistake: " + " | ".join(named), right
    if kind in ("located", "hedged"):
        return terms, bool(terms_right)
    if kind == "raised_line":
        place = at_line(failed[0].message) if failed else None
        return f"raised at line {place.line if place else '?'}", bool(place and place.line == mutant.line)
    if kind == "raised_cause":  # the lines the report traces the raise back to: right when changed there
        lines = failed[0].cause_lines if failed else ()
        return f"raise traced to line {', '.join(map(str, lines))}", mutant.line in lines
    if kind in ("layout", "contract"):
        return (f"{kind}; {terms}", False) if terms_right is False else (kind, True)
    return "", None
