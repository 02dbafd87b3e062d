"""The rules of contract §3 that every call must keep, judged in the grader's process.

Contract §3: "Every function leaves its arguments as it found them (values, shape, dtype,
`requires_grad`, `.grad`) and, `train_recall` aside, returns the same result when called twice
with the same arguments." The kernel calls each function twice on fresh copies of the inputs and
reports (grader/checks/bridge.py, ``verify=True``) the first call's inputs as they were after it and the
second call's result. This module turns that evidence into plain-words violations.

Why a hostile kernel gains nothing here:

- The grader compares the reported inputs with **its own copy** of what it sent, not with a
  snapshot the kernel took: the kernel cannot choose the reference it is compared against.
- The grader compares the two returned values itself; the kernel only ships them.
- Every finding can only lower a score. A kernel that forges the evidence (reports untouched
  inputs, a second result equal to the first) looks at best like a function that keeps the
  rules, and is then scored on its first result exactly as without these rules.
- Evidence that is missing or unreadable (which no honest harness run produces) is itself a
  violation ("could not be verified"), so deleting the evidence is no way out either.
- Inputs are loaded afresh from the grader's files for each call, so the first call cannot pass
  state to the second through its arguments; it can through globals, which is what the second
  call is there to catch.
- The inputs are looked at more than once: the first call's after the second call returned (a
  function that wipes the previous call's arguments at its next call), and every call's again
  after the function's last call and a settle of the rubric's ``[contract_rules] settle_seconds``
  (a thread that changes them later): :func:`recheck_violations`.
- A call that leaves threads or processes running breaks a rule of its own
  (:data:`RULE_CLEAN`): the kernel's tasks are counted from outside the kernel before and after
  the calls (grader/kernel/tree.py), so a thread started to act later is refused even where what
  it would do is not seen.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from grader.checks.bridge import ArrayInfo, InputState, Returned, TypeInfo
from grader.checks.cases import LossSpec

RULE_INPUTS = "a function leaves its arguments as it found them"
RULE_REPEAT = "the same arguments give the same result"
RULE_CLEAN = "a call leaves no threads or processes running"
#: At most this many changed inputs are named in one message; the rest are counted.
MAX_NAMED = 3


def _expected_inputs(inputs: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(path, original) for every mutable input, with the paths the kernel's harness uses."""
    for name, value in inputs.items():
        yield from _walk(name, value)


def _walk(path: str, value: Any) -> Iterator[tuple[str, Any]]:
    # Strings, numbers and tuples (tree_encode's `tree`, nested to any depth) cannot be changed
    # in place, so only tensors and dicts (params, embed) need checking.
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, LossSpec):
        yield f"{path} (the loss's target)", value.vector
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _walk(f"{path}[{key!r}]", sub)
        yield path, value


def _tensor_changes(path: str, original: torch.Tensor, state: InputState) -> list[str]:
    got = state.value
    if not isinstance(got, ArrayInfo):
        kind = got.kind if isinstance(got, TypeInfo) else "something else"
        return [f"`{path}` was turned into a {kind}"]
    if got.kind != "tensor":
        return [f"`{path}` was turned into a numpy array"]
    out = []
    want_dtype = str(original.dtype)
    want_shape = tuple(original.shape)
    if got.dtype != want_dtype:
        out.append(f"`{path}` was changed in place (dtype {want_dtype} -> {got.dtype})")
    if tuple(got.array.shape) != want_shape:
        out.append(f"`{path}` was changed in place (shape {want_shape} -> {tuple(got.array.shape)})")
    elif not np.array_equal(got.array, original.detach().cpu().double().numpy()):
        # Exact: float32/int64 inputs are exactly representable in the float64 that comes back,
        # and an untouched tensor comes back bit for bit.
        out.append(f"`{path}` was changed in place (values)")
    if state.requires_grad and not original.requires_grad:
        out.append(f"`requires_grad` of `{path}` was switched on")
    if state.grad is not None:
        out.append(f"`.grad` of `{path}` was set")
    return out


def input_changes(inputs: Mapping[str, Any], after: tuple[InputState, ...] | None) -> list[str]:
    """What the call changed in the inputs it was given, in plain words (empty: nothing)."""
    if after is None:
        return ["the state of the inputs after the call could not be verified"]
    reported = {s.path: s for s in after}
    out: list[str] = []
    for path, original in _expected_inputs(inputs):
        state = reported.get(path)
        if state is None:
            return ["the state of the inputs after the call could not be verified"]
        if not state.present:
            out.append(f"`{path}` was removed")
            continue
        if not state.same:
            out.append(f"`{path}` was replaced by another object")
        if isinstance(original, dict):
            keys = tuple(str(k) for k in original)
            if state.keys is None:
                out.append(f"`{path}` was replaced by something that is not a dict")
            elif state.keys != keys:
                added = [k for k in state.keys if k not in keys]
                lost = [k for k in keys if k not in state.keys]
                what = "; ".join(part for part in (
                    f"keys {', '.join(map(repr, added))} added" if added else "",
                    f"keys {', '.join(map(repr, lost))} removed" if lost else "") if part)
                out.append(f"`{path}` was changed ({what or 'its keys were reordered'})")
        else:
            out += _tensor_changes(path, original, state)
    return out


def _same(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if isinstance(a, ArrayInfo) and isinstance(b, ArrayInfo):
        return (a.array.shape == b.array.shape and a.dtype == b.dtype and a.kind == b.kind
                and bool(np.allclose(a.array, b.array, rtol=rtol, atol=atol, equal_nan=True)))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y, rtol, atol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], rtol, atol) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True))
    if isinstance(a, TypeInfo) and isinstance(b, TypeInfo):
        return a.kind == b.kind
    return False


#: The dict keys of the contract's own inputs (``params`` of tbptt_grads): safe to name. Any
#: other key (``embed``'s words) comes from a hidden case's inputs or from the student's code.
CONTRACT_KEYS = frozenset({"W", "U", "b", "V", "c"})
_KEY = re.compile(r"\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\]")


def redact_hidden(message: str) -> str:
    """A rule's message as a hidden case may show it: the inputs named by the contract's argument
    names and keys only; another key (a word of a hidden tree, a key the code added) becomes
    ``[…]``, and the keys added or removed are not listed. The rule and the kind of change stay."""
    def key(m: re.Match[str]) -> str:
        return m.group(0) if m.group(1)[1:-1] in CONTRACT_KEYS else "[…]"
    message = re.sub(r"\(keys [^;]*? (added|removed)(; keys [^;]*? removed)?\)", "(its keys changed)", message)
    return _KEY.sub(key, message)


def repeat_difference(first: Returned, second: Returned | None, rtol: float, atol: float,
                      hidden: bool = False) -> str:
    """Why the second call's result differs from the first's ('' when it does not); ``hidden``:
    an exception's message, which may quote the hidden inputs, is not repeated."""
    if second is None:
        return "the result of a second call could not be verified"
    if second.status == "raised":
        if hidden:
            return "a second call with fresh copies of the same inputs raised an exception (its message is not shown)"
        return f"a second call with fresh copies of the same inputs raised {second.error}"
    if not _same(first.value, second.value, rtol, atol):
        return "a second call with fresh copies of the same inputs returned different values"
    return ""


def violations(inputs: Mapping[str, Any], returned: Returned, rtol: float, atol: float,
               function: str = "the function", hidden: bool = False) -> list[str]:
    """Every contract rule the (successful) call broke, each naming the rule and what happened;
    ``hidden``: said as a hidden case may (:func:`redact_hidden`)."""
    if returned.status != "ok":
        return []
    out = []
    changes = input_changes(inputs, returned.inputs_after)
    if changes:
        named = changes[:MAX_NAMED]
        more = len(changes) - len(named)
        out.append(f'`{function}` breaks the rule "{RULE_INPUTS}": ' + "; ".join(named)
                   + (f"; and {more} more change{'s' if more != 1 else ''}" if more else ""))
    differs = repeat_difference(returned, returned.second, rtol, atol, hidden)
    if differs:
        out.append(f'`{function}` breaks the rule "{RULE_REPEAT}": {differs}')
    left = leftover_tasks(returned.tasks_left)
    if left:
        out.append(f'`{function}` breaks the rule "{RULE_CLEAN}": {left}')
    return [redact_hidden(m) for m in out] if hidden else out


def leftover_tasks(tasks_left: int | None) -> str:
    """What the kernel still ran after the calls beyond what it ran before them ('' when nothing).

    Counted from outside the kernel (grader/kernel/tree.py). ``None`` (the count could not be
    read, e.g. no cgroup and no ``/proc``) is no finding: the grader cannot see it, and an honest
    notebook must not lose points for the grader's platform.
    """
    if tasks_left is None or tasks_left <= 0:
        return ""
    return (f"{tasks_left} more thread{'s' if tasks_left != 1 else ''} or process"
            f"{'es' if tasks_left != 1 else ''} ran in the kernel after the call returned than before it")


def recheck_violations(inputs: Mapping[str, Any], states: tuple[tuple[InputState, ...] | None, ...] | None,
                       function: str, when: str) -> list[str]:
    """The rule on the inputs, looked at again ``when`` (e.g. "after its last call and 0.5 s").

    ``states`` holds the first and the second call's inputs as the kernel holds them now
    (:meth:`grader.checks.bridge.Bridge.recheck`); both calls got the same values. ``None`` or a
    missing entry: the evidence is gone (only a kernel that tampered with it does that), which
    is itself a violation, as for the first look.
    """
    if not states:
        changes = ["the state of the inputs could not be verified again"]
    else:
        changes = []
        for which, after in zip(("first", "second"), states):
            found = input_changes(inputs, after)
            changes += [f"{c} (the {which} call's inputs)" for c in found if c not in changes]
    if not changes:
        return []
    named = changes[:MAX_NAMED]
    more = len(changes) - len(named)
    return [f'`{function}` breaks the rule "{RULE_INPUTS}" {when}: ' + "; ".join(named)
            + (f"; and {more} more change{'s' if more != 1 else ''}" if more else "")]
