"""Why a function raised: the line of the student's own code that made the failing value.

When a call raises, the case shows the exception and the student's line that raised
(grader/checks/raised.py). Often that line is only where a wrong value met its use: parameters
unpacked in the wrong order raise at a matrix product three lines later, a loop that runs one
step too far raises where it indexes, a ``torch.no_grad()`` block raises where the gradient is
asked for. This module traces such a raise back to the line to look at, in the grader's process,
over two things only:

- the notebook's own source (the code that ran, as the grader read it from the file), parsed
  with :mod:`ast` (IPython's transformation first where a cell has magics, which keeps lines);
- the frames the kernel reported with the failure (grader/checks/bridge_kernel.py): file, line,
  function, and the shapes of the frame's tensors and arrays, never their values. They are the
  student's kernel's word: parsed, bounded, and used for feedback only, never for a score.

The rules (:data:`RULES`), tried in order; the first that applies speaks:

``own_raise``
    The raising line is the student's own ``raise`` (not ``NotImplementedError``), and every case
    is a valid input of the sheet: the test that sent the input there is the place to look (the
    ``if`` around the raise, or the one or two early-exit tests before it that let it through).
``no_grad``
    Autograd says a tensor "does not require grad", and a raising frame's line lies in a
    ``with torch.no_grad()`` (or ``inference_mode``, ``set_grad_enabled(False)``) block or a
    function so decorated: that line.
``unpack``
    "too many / not enough values to unpack" on a line that unpacks what one of the notebook's own
    functions returns: that function's ``return``.
``wrong_value``
    A name on the raising line that is also an argument of the call holds a value shaped like
    *another* argument (and unlike its own): where that name was last set (followed up through a
    helper's parameters to the caller's variable), and the ``return`` of the notebook's own
    function it was set from, if any.
``wrong_size``
    A whole-number local named with one of the contract's size letters (``T, B, D, H``, ``Hd``,
    ``d``; :data:`DIMENSIONS`) holds another of the case's sizes (``B, T = x.shape[:2]``): where
    it got that value.
``loop_index``
    An index out of range on a line that indexes, with a loop variable of ``for ... in
    range(...)``, an argument as passed or a tensor with one entry per step of the sequence
    ``x`` (as long as ``x`` along its first axis): the loop's line and the indexing line, since
    the indexed value's length is right (the range or the index computed from it is wrong). A
    list may be the short one (with or without ``h0`` first is the student's convention):
    nothing is said.
``own_result``
    A library call on the raising line whose only argument is the result of one of the notebook's
    own functions (``torch.diag(_derivative(z))``) refused it (a type, value or shape error about
    a value): that function's ``return``.

A cause names at most two lines (:data:`MAX_LINES`); where a rule finds more candidates, or none
applies, nothing is said beyond the raise itself: a cause is a claim, and `grade audit` checks it
against each mutant's change (grader/tutors/audit.py).

Bounded: the source is read as grader/checks/cell_source.py says (a capped, cached parse per
cell, a frame found by name); a rule walks the one function it is in, linearly.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from grader.checks.cell_source import (
    INNER,
    Place,
    assignments,
    call_name,
    loaded_names,
    locate,
    own_function,
    parameters,
    returns,
)
from grader.checks.raised import Frame, cell_frames

__all__ = ["DIMENSIONS", "MAX_LINES", "RULES", "Cause", "cause_sentence", "raise_cause"]

MAX_LINES = 2
@dataclass(frozen=True)
class Cause:
    """Where a raise came from: the rule that found it, the lines of the student's cell to look at
    (1-based, as the frames count them) and the words for the report."""

    rule: str
    lines: tuple[int, ...]
    words: str


def _lines(*lines: int) -> tuple[int, ...] | None:
    unique = tuple(dict.fromkeys(lines))
    return unique if 0 < len(unique) <= MAX_LINES else None


def _join(lines: Sequence[int]) -> str:
    return " and ".join(str(n) for n in lines)


# ------------------------------------------------------------------------------------------------
# The rules. Each takes what one raise offers and returns a cause or None.


@dataclass(frozen=True)
class _Raise:
    function: str                     # the graded function that was called
    places: tuple[Place, ...]        # the located cell frames, outermost first
    cells: Sequence[str]
    inputs: Mapping[str, Any]
    error_type: str
    error: str

    @property
    def deepest(self) -> Place:
        return self.places[-1]

    @cached_property
    def args(self) -> dict[str, tuple[int, ...]]:
        """The shapes of the arguments that have one (tensors, arrays)."""
        out = {}
        for key, value in self.inputs.items():
            shape = getattr(value, "shape", None)
            if isinstance(shape, tuple):  # torch.Size is one
                out[key] = tuple(int(n) for n in shape)
        return out

    @cached_property
    def sizes(self) -> dict[str, int] | None:
        """The contract's sizes on this case (:data:`DIMENSIONS`), read off the arguments' shapes;
        None where they disagree."""
        sizes: dict[str, int] = {}
        for arg, axes in DIMENSIONS.get(self.function, {}).items():
            shape = self.args.get(arg)
            if shape is None or len(shape) != len(axes):
                continue
            for letter, n in zip(axes, shape):
                if letter.isalpha() and sizes.setdefault(letter, n) != n:
                    return None
        return sizes


#: What a rule finds: the lines of the student's cell to look at, and the words for the report.
_Found = tuple[tuple[int, ...], str]


def _own_raise(r: _Raise) -> _Found | None:
    place = r.deepest
    stmt = place.stmt
    if not isinstance(stmt, ast.Raise) or stmt.exc is None or r.error_type == "NotImplementedError" \
            or "NotImplementedError" in ast.unparse(stmt.exc):
        return None
    parent = place.parents.get(stmt)
    lines: tuple[int, ...]
    if isinstance(parent, ast.If):
        if stmt in parent.body:
            lines, how = (parent.test.lineno,), "the test on line {lines} sent it there"
        else:  # an else branch: the failed tests of the chain (an elif is an If in an orelse)
            chain = [parent.test.lineno]
            up = place.parents.get(parent)
            while isinstance(up, ast.If) and up.orelse == [parent]:
                chain.append(up.test.lineno)
                parent, up = up, place.parents.get(up)
            found = _lines(*sorted(chain))
            if found is None:
                return None
            lines, how = found, "none of the tests on line {lines} accepted it"
    else:
        body = getattr(parent, "body", None)
        if not isinstance(body, list) or stmt not in body:
            return None
        before = []
        for prior in reversed(body[:body.index(stmt)]):
            if not (isinstance(prior, ast.If) and prior.body and isinstance(prior.body[-1], (ast.Return, ast.Raise))):
                break
            before.append(prior.test.lineno)
        found = _lines(*sorted(before))
        if found is None:
            return None
        lines, how = found, "none of the tests on line {lines} let it through"
    return (lines,
                 f"this is your own `raise` on line {stmt.lineno}, but every case here is a valid input of the "
                 f"sheet: {how.format(lines=_join(lines))}; look at that test")


_NO_GRAD = ("no_grad", "inference_mode")


def _no_grad_line(node: ast.AST) -> bool:
    """``torch.no_grad()``, ``inference_mode`` (called or, as a decorator, not) or ``set_grad_enabled(False)``."""
    name = call_name(node)
    if name in _NO_GRAD:
        return True
    return name == "set_grad_enabled" and isinstance(node, ast.Call) and bool(node.args) \
        and isinstance(node.args[0], ast.Constant) and node.args[0].value is False


def _no_grad(r: _Raise) -> _Found | None:
    if "does not require grad" not in r.error and "does not have a grad_fn" not in r.error:
        return None
    for place in reversed(r.places):
        for node in place.ancestors(place.stmt):
            if isinstance(node, (ast.With, ast.AsyncWith)) and any(_no_grad_line(i.context_expr) for i in node.items):
                return ((node.lineno,),
                             f"line {node.lineno} computes under `torch.no_grad()` (or alike), so autograd "
                             "records nothing there and the gradient asked for cannot be taken; compute the "
                             "path from the inputs to the loss outside that block")
        for deco in place.func.decorator_list:
            if _no_grad_line(deco):
                return ((deco.lineno,),
                             f"`{place.func.name}` is decorated with `{ast.unparse(deco)}` on line {deco.lineno}, "
                             "so autograd records nothing in it and the gradient asked for cannot be taken")
    return None


def _unpack(r: _Raise) -> _Found | None:
    if "values to unpack" not in r.error:
        return None
    stmt = r.deepest.stmt
    if not isinstance(stmt, ast.Assign) or not isinstance(stmt.value, ast.Call) \
            or not any(isinstance(t, (ast.Tuple, ast.List)) for t in stmt.targets):
        return None
    name = call_name(stmt.value) if isinstance(stmt.value.func, ast.Name) else ""
    func = own_function(name, r.cells) if name else None
    found = _lines(*returns(func)) if func is not None else None
    if func is None or found is None:
        return None
    return (found,
                 f"line {stmt.lineno} unpacks what your `{name}` returns, and it returned another number of "
                 f"values than there are names: look at its `return` on line {_join(found)}")


#: Words of an error about a value's type or shape (what a library call says of an argument it refuses).
_VALUE_WORDS = re.compile(r"tensor|dimension|shape|size|dtype|must be|expected|not subscriptable|NoneType|float|int",
                          re.IGNORECASE)


def _own_result(r: _Raise) -> _Found | None:
    if r.error_type not in ("TypeError", "RuntimeError", "ValueError", "IndexError") \
            or not _VALUE_WORDS.search(r.error):
        return None
    place = r.deepest
    for call in place.on_line():
        if not isinstance(call, ast.Call) or len(call.args) != 1 or call.keywords \
                or own_function(call_name(call), r.cells) is not None:
            continue
        inner = call.args[0]
        if not (isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name)):
            continue
        own = own_function(inner.func.id, r.cells)
        found = _lines(*returns(own)) if own is not None else None
        if own is None or found is None:
            continue
        return (found,
                     f"`{ast.unparse(call.func)}` on line {place.frame.line} refused what your `{own.name}` returned, "
                     f"its only argument: look at the `return` of `{own.name}` on line {_join(found)}")
    return None


def _got_it(origin: tuple[int, ...]) -> str:
    """Where a value came from (see :func:`_origin`), in words."""
    tail = f", from what your own function returns on line {origin[1]}" if len(origin) > 1 else ""
    return f"it got that value on line {origin[0]}{tail}"


def _shape_words(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _mentions(node: ast.AST | None, name: str | None) -> bool:
    """Whether ``node`` reads ``name`` (always true without a name to look for)."""
    return name is None or (node is not None and name in loaded_names(list(ast.walk(node))))


def _origin(r: _Raise, depth: int, name: str, mentions: str | None = None) -> tuple[int, ...] | None:
    """The lines where ``name`` of the ``depth``-th located frame got its value; with ``mentions``,
    only where the statement that gave it reads that name (the value came from there: ``W, U, b
    = b, U, W`` or ``step(h, U, W)`` for ``W`` holding ``U``, not ``h0 = h0.squeeze(0)``)."""
    place = r.places[depth]
    binding = assignments(place.func, name, place.frame.line)
    if binding:
        stmt = max(binding, key=lambda s: s.lineno)
        value = getattr(stmt, "value", getattr(stmt, "iter", None))
        if not _mentions(value, mentions):
            return None
        own = own_function(call_name(value), r.cells) if isinstance(value, ast.Call) \
            and isinstance(value.func, ast.Name) else None
        rets = returns(own) if own is not None else []
        return _lines(stmt.lineno, *rets) if len(rets) == 1 else _lines(stmt.lineno)
    params = parameters(place.func)
    if name not in params or depth == 0:
        return None  # the graded function's own argument: the grader passed it as the sheet says
    caller = r.places[depth - 1]
    calls = [n for n in caller.on_line() if isinstance(n, ast.Call) and call_name(n) == place.func.name]
    if len(calls) != 1:
        return None
    call, index = calls[0], params.index(name)
    arg = next((k.value for k in call.keywords if k.arg == name), None)
    if arg is None and index < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[:index + 1]):
        arg = call.args[index]
    if isinstance(arg, ast.Name):
        deeper = _origin(r, depth - 1, arg.id, mentions)
        if deeper is not None:
            return deeper
    # the call chose the value (a swap there): where it passes what it names
    return _lines(caller.frame.line) if arg is not None and _mentions(arg, mentions) else None


def _wrong_value(r: _Raise) -> _Found | None:
    place = r.deepest
    args = r.args
    lines: list[int] = []
    said: list[str] = []
    for name in loaded_names(place.on_line()):
        got = place.frame.shapes.get(name)
        if got is None or name not in args or got == args[name]:
            continue
        like = [other for other, shape in args.items() if other != name and shape == got]
        if len(like) != 1:
            continue
        origin = _origin(r, len(r.places) - 1, name, mentions=like[0])
        if origin is None:
            return None
        lines += origin
        said.append(f"`{name}` here holds a value shaped like the argument `{like[0]}` {_shape_words(got)}, "
                    f"not like `{name}` {_shape_words(args[name])}; {_got_it(origin)}")
    found = _lines(*lines)
    if not said or found is None:
        return None
    return (found, "; ".join(said[:2]))


#: The contract's sizes by the letters docs/contract.md names them with: per function, each
#: argument's axes (``H``: the hidden size, written ``Hd`` there; ``d``: tree_encode's vector size).
DIMENSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    **{f: {"x": ("T", "B", "D"), "h0": ("B", "H"), "W": ("H", "H"), "U": ("H", "D"), "b": ("H",)}
       for f in ("rnn_forward", "hidden_grad_norms", "gradient_bound")},
    "activation_jacobian": {"z": ("H",)},
    "lstm_cell": {"x": ("B", "D"), "h": ("B", "H"), "c": ("B", "H")},
    "tree_encode": {"W": ("d", "2d"), "b": ("d",)},
    "tbptt_grads": {"x": ("T", "B", "D"), "y": ("B",)},
}
#: A local's name, as students write the contract's letters, and the size it stands for.
_SIZE_NAMES = {"T": "T", "B": "B", "D": "D", "H": "H", "Hd": "H", "d": "d"}
_SIZE_WORDS = {"T": "the number of steps T", "B": "the batch size B", "D": "the input size D",
               "H": "the hidden size Hd", "d": "the vector size d"}


def _wrong_size(r: _Raise) -> _Found | None:
    sizes = r.sizes
    if not sizes:
        return None
    for depth in range(len(r.places) - 1, -1, -1):
        frame = r.places[depth].frame
        for name, letter in _SIZE_NAMES.items():
            got, want = frame.ints.get(name), sizes.get(letter)
            if got is None or want is None or got == want:
                continue
            like = sorted({other for other, n in sizes.items() if n == got and other != letter})
            if len(like) != 1:
                continue
            origin = _origin(r, depth, name)
            if origin is None:
                continue
            return (origin,
                         f"`{name}` holds {got}, {_SIZE_WORDS[like[0]]} on this case, not {_SIZE_WORDS[letter]} "
                         f"({want}); {_got_it(origin)}")
    return None


def _loop_index(r: _Raise) -> _Found | None:
    if r.error_type != "IndexError" and "out of bounds" not in r.error and "out of range" not in r.error:
        return None
    place = r.deepest
    args = r.args
    loops: dict[str, ast.For] = {}
    for node in place.ancestors(place.stmt):
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Call) \
                and call_name(node.iter) == "range":
            loops.setdefault(node.target.id, node)
    found: list[ast.For] = []
    for sub in place.on_line():
        if not isinstance(sub, ast.Subscript):
            continue
        by_loop = [loops[n] for n in loaded_names(list(ast.walk(sub.slice))) if n in loops]
        if not by_loop:
            continue
        if not isinstance(sub.value, ast.Name):
            return None  # a loop variable also indexes something else here: which one raised is unknown
        base = sub.value.id
        shape = place.frame.shapes.get(base)
        # the indexed value has the sheet's length: an argument as passed, or a tensor with one
        # entry per step of the sequence (e.g. x @ U.T)
        if base in args:
            right_length = shape == args[base] or not assignments(place.func, base, place.frame.line)
        else:  # a tensor the function built, with one entry per step (a list's right length is unknown:
            # with or without h0 first, the student's convention, so a list is never vouched for)
            steps = (r.sizes or {}).get("T")
            right_length = shape is not None and steps is not None and shape[:1] == (steps,)
        if not right_length:
            return None  # this one may be the short one: which index raised is unknown
        found += by_loop
    loop_lines = tuple(dict.fromkeys(loop.lineno for loop in found))
    lines = _lines(*loop_lines, place.frame.line)  # the range, or the index computed from it
    if not found or lines is None:
        return None
    var = found[0].target.id if isinstance(found[0].target, ast.Name) else "the loop variable"
    return (lines,
                 f"`{var}` runs past the end of what line {place.frame.line} indexes (one entry per step of "
                 f"the sequence, as it should be): look at the range of the loop on line {_join(loop_lines)} "
                 f"and the index computed from `{var}` on line {place.frame.line}")


#: The rules, in the order they are tried (see the module docstring).
RULES: tuple[tuple[str, Callable[[_Raise], _Found | None]], ...] = (
    ("own_raise", _own_raise),
    ("no_grad", _no_grad),
    ("unpack", _unpack),
    ("wrong_value", _wrong_value),
    ("wrong_size", _wrong_size),
    ("loop_index", _loop_index),
    ("own_result", _own_result),
)


def raise_cause(function: str, frames: Sequence[Frame], cells: Sequence[str], inputs: Mapping[str, Any],
                error_type: str, error: str) -> Cause | None:
    """The cause of a raise of ``function`` (called with ``inputs``), or None where no rule applies.

    ``frames`` as the kernel reported them (grader/checks/raised.py), ``cells`` the notebook's code
    cells as the grader read them. Never raises: a cause is feedback, and where the grader's own
    analysis fails, the raise is shown without one.
    """
    try:
        located: list[Place] = []
        for frame in cell_frames(tuple(frames)):
            place = locate(frame, cells)
            if place is None:
                return None
            if located and frame.function in INNER and place.func is located[-1].func:
                # a comprehension's frame: one place with the function around it, its names' values merged
                outer = located.pop()
                place = replace(place, frame=replace(frame, shapes={**outer.frame.shapes, **frame.shapes},
                                                     ints={**outer.frame.ints, **frame.ints}))
            located.append(place)
        places = tuple(located)
        if not places:
            return None
        r = _Raise(function, places, tuple(cells), inputs, error_type, re.sub(r"\s+", " ", error)[:800])
        for name, rule in RULES:
            found = rule(r)
            if found is not None:
                return Cause(name, *found)
    except (RecursionError, ValueError, TypeError, AttributeError, IndexError, KeyError):
        return None
    return None


def cause_sentence(words: str) -> str:
    """A cause's words as a case's message ends with them ("" without any), public or hidden."""
    return f". Where it comes from: {words}" if words else ""
