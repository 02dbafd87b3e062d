"""A mutation audit of the rubric and of the diagnoses (`grade audit`, issue 22 item 3).

Mutants are made by **operator rules** applied with :mod:`ast` to the reference's own source
(reference/*.py), never from a hand-written list of bugs. Each function of 11.4 (``train_recall``
aside) is audited on its *unit*: the function and the private helpers of its module it relies on
(:data:`UNITS`); one mutant changes one node of one of them. The operators (:data:`OPERATORS`):

- ``transpose``: an operand of a matmul transposed, or its transposition dropped;
- ``swap``: the operands of a non-commutative operator, or two items of a tuple or list (two
  gates of an unpacking, two children, a returned pair) swapped;
- ``off_by_one``: a ``range`` bound, a slice bound, an integer index or an integer term +-1;
- ``drop_term`` / ``double_term``: one term of a sum (or factor of a product) dropped, or doubled;
- ``activation``: tanh for sigmoid (or back) at one place, or one branch of an activation test
  taken for the other;
- ``detach``: a ``detach``/``clone``/``requires_grad_`` dropped, ``no_grad`` for ``enable_grad``
  (or back), or a state detached inside a loop;
- ``reduction``: sum for mean (or back), a product for a sum, cross-entropy summed over the
  batch, a norm squared, the Frobenius norm for the spectral one;
- ``return_slice``: the last (or first) entry of the result returned alone;
- ``in_place``: a sum or product with an argument computed in place on it (the input changed);
- ``compare``: ``<`` for ``<=``, ``>`` for ``>=``, ``==`` for ``!=`` (and back).

Each mutant is a **real function**: a standalone program (the function, the helpers it needs and
its imports, unparsed from the mutated tree) that is executed in a fresh namespace, or put into a
notebook cell. It is graded with the grader's own code in the grader's process (the mutants are
the project's own code, not student code): the real :class:`~grader.checks.bridge.Bridge` over an
in-process session (:class:`InProcessSession`, which runs the kernel-side call code in the
mutant's namespace, files and all), ``grader.grade._run_check`` on the hidden cases (and the
public ones), and :func:`grader.checks.probes.review`. :func:`pipeline_sample` grades a few mutants
through the whole pipeline instead (a notebook from the template with the mutant in place,
:func:`grader.grade.grade_submission` in a kernel) and says whether both agree.

Per mutant: **killed** (the hidden cases cost it points), **named/located** (what the report says
about it, in the report's own words: a named mistake, a mistake named for one setting, a layout
finding, a located term, a broken contract rule; see :func:`finding_kind`), or **survived** (it
keeps full points). A mutant is **equivalent** when it agrees with the reference (values within
1e-5, inputs untouched, the same result twice) on :data:`EQUIVALENCE_DRAWS` random inputs over the
rubric's settings with random sizes; it is listed with that reason (and, when the changed line is
never reached on those inputs, with that). A non-equivalent mutant that keeps full points makes
the audit refuse the rubric, naming the mutant and an input on which it differs from the
reference (:attr:`Verdict.witness`), which a new case could use.
"""
from __future__ import annotations

import ast
import builtins
import copy
import importlib
import inspect
import itertools
import re
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

import numpy as np
import torch

import reference
from grader.checks import cases as case_inputs
from grader.checks import probes
from grader.checks.bridge import Bridge
from grader.checks.compare import to_numpy
from grader.kernel.execute import CodeResult
from grader.result import CaseResult
from grader.rubric import Check, Rubric

__all__ = ["EQUIVALENCE_DRAWS", "OPERATORS", "UNITS", "AuditReport", "InProcessSession", "Mutant",
           "Verdict", "audit", "finding_kind", "generate", "grade_mutant", "pipeline_sample",
           "sample"]

#: function -> (its module in reference/, the functions of that module a mutant may change)
UNITS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rnn_forward": ("rnn", ("rnn_forward", "activation")),
    "activation_jacobian": ("rnn", ("activation_jacobian", "_derivative")),
    "hidden_grad_norms": ("gradients", ("hidden_grad_norms", "_prepare", "_states", "_grad_wrt")),
    "gradient_bound": ("gradients", ("gradient_bound", "_prepare", "_states", "_grad_wrt")),
    "lstm_cell": ("lstm", ("lstm_cell",)),
    "tree_encode": ("recursive", ("tree_encode",)),
    "tbptt_grads": ("tbptt", ("tbptt_grads",)),
}
FUNCTIONS = tuple(UNITS)

#: Random inputs a mutant must agree with the reference on to count as equivalent.
EQUIVALENCE_DRAWS = 40
#: Equivalence tolerance: far tighter than any check's, looser than float32 reordering.
EQUIVALENCE_RTOL, EQUIVALENCE_ATOL = 1e-5, 1e-6
#: Seconds one in-process call of a mutant may take (a mutant that loops is stopped).
CALL_SECONDS = 20.0


# ------------------------------------------------------------------------------------------------
# The standalone program of a function: imports, the helpers it needs, the function.


def _module_tree(name: str) -> ast.Module:
    module = importlib.import_module(f"reference.{name}")
    return ast.parse(inspect.getsource(module))


def _defined_names(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, ast.Assign):
        return {n.id for t in stmt.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return {stmt.target.id}
    return set()


def _program_tree(function: str) -> ast.Module:
    """``function`` with the module-level names it needs (from its module and reference/rnn.py)
    and the plain imports, as one module without ``reference`` imports: it runs anywhere."""
    module, _ = UNITS[function]
    trees = [_module_tree("rnn")] + ([_module_tree(module)] if module != "rnn" else [])
    imports: list[ast.stmt] = []
    seen: set[str] = set()
    defs: list[ast.stmt] = []
    for tree in trees:
        for stmt in tree.body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                if isinstance(stmt, ast.ImportFrom) and stmt.module in ("__future__", None) or \
                        isinstance(stmt, ast.ImportFrom) and (stmt.module or "").startswith("reference"):
                    continue
                text = ast.unparse(stmt)
                if text not in seen:
                    seen.add(text)
                    imports.append(stmt)
            elif isinstance(stmt, (ast.FunctionDef, ast.Assign, ast.AnnAssign)) and \
                    "__all__" not in _defined_names(stmt):
                defs = [d for d in defs if not (_defined_names(d) & _defined_names(stmt))] + [stmt]
    by_name = {n: d for d in defs for n in _defined_names(d)}
    needed: set[str] = set()
    todo = [function]
    while todo:
        name = todo.pop()
        if name in needed or name not in by_name:
            continue
        needed.add(name)
        todo += [n.id for n in ast.walk(by_name[name]) if isinstance(n, ast.Name)]
    body = imports + [d for d in defs if _defined_names(d) & needed]
    return ast.parse(ast.unparse(ast.Module(body=body, type_ignores=[])))


# ------------------------------------------------------------------------------------------------
# Operators: each maps a node (and where it is) to its replacements (description, new node).


@dataclass(frozen=True)
class Site:
    """Where a node is: the function it is in, its parameters, the names that alias them."""

    function: str
    aliases: frozenset[str]
    in_loop: bool
    assigned_in_loop: bool  # the node is the value of an assignment inside a loop


Replacement = tuple[str, ast.expr]
Operator = Callable[[ast.AST, Site], list[Replacement]]


def _copy(node: Any) -> Any:
    return copy.deepcopy(node)


def _e(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


def _u(node: ast.AST) -> str:
    return ast.unparse(node)


def _plus(node: ast.expr, k: int) -> ast.expr:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return ast.Constant(node.value + k)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return ast.Constant(-int(node.operand.value) + k)  # type: ignore[arg-type]
    return ast.BinOp(copy.deepcopy(node), ast.Add() if k > 0 else ast.Sub(), ast.Constant(abs(k)))


def _is_int_like(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and type(node.value) is int) or \
        (isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant) and type(node.operand.value) is int)


def op_transpose(node: ast.AST, site: Site) -> list[Replacement]:
    out: list[Replacement] = []
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
        for side in ("left", "right"):
            operand = getattr(node, side)
            new = _copy(node)
            if isinstance(operand, ast.Attribute) and operand.attr == "T":
                setattr(new, side, copy.deepcopy(operand.value))
            elif isinstance(operand, (ast.Name, ast.Subscript)):
                setattr(new, side, ast.Attribute(copy.deepcopy(operand), "T", ast.Load()))
            else:
                continue
            out.append((f"`{_u(operand)}` -> `{_u(getattr(new, side))}` in `{_u(node)}`", new))
    return out


def _pair_swaps(items: list[ast.expr]) -> Iterator[tuple[int, int]]:
    n = len(items)
    pairs = itertools.combinations(range(n), 2) if n <= 4 else ((i, i + 1) for i in range(n - 1))
    for i, j in pairs:
        if _u(items[i]) != _u(items[j]):
            yield i, j


def op_swap(node: ast.AST, site: Site) -> list[Replacement]:
    out: list[Replacement] = []
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Sub, ast.Div, ast.MatMult, ast.Pow)):
        new = ast.BinOp(copy.deepcopy(node.right), node.op, copy.deepcopy(node.left))
        out.append((f"`{_u(node)}` -> `{_u(new)}`", new))
    if isinstance(node, (ast.Tuple, ast.List)) and 2 <= len(node.elts) <= 6 and \
            not any(isinstance(e, ast.Starred) for e in node.elts):
        for i, j in _pair_swaps(node.elts):
            new = _copy(node)
            new.elts[i], new.elts[j] = new.elts[j], new.elts[i]
            out.append((f"`{_u(node)}` -> `{_u(new)}`", new))
    return out


def op_off_by_one(node: ast.AST, site: Site) -> list[Replacement]:
    out: list[Replacement] = []
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        for i, arg in enumerate(node.args):
            for k in (1, -1):
                new = _copy(node)
                new.args[i] = _plus(arg, k)
                out.append((f"`{_u(node)}` -> `{_u(new)}`", new))
    elif isinstance(node, ast.Subscript):
        sl = node.slice
        if isinstance(sl, ast.Slice):
            for part in ("lower", "upper"):
                bound = getattr(sl, part)
                if bound is None:
                    continue
                for k in (1, -1):
                    new = _copy(node)
                    setattr(new.slice, part, _plus(bound, k))
                    out.append((f"`{_u(node)}` -> `{_u(new)}`", new))
        elif _is_int_like(sl) or isinstance(sl, ast.BinOp) and _is_int_like(sl.right):
            for k in (1, -1):
                new = _copy(node)
                new.slice = _plus(sl, k)
                out.append((f"`{_u(node)}` -> `{_u(new)}`", new))
    elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)) and _is_int_like(node.right):
        for k in (1, -1):
            new = _copy(node)
            new.right = _plus(node.right, k)
            out.append((f"`{_u(node)}` -> `{_u(new)}`", new))
    return out


def op_drop_term(node: ast.AST, site: Site) -> list[Replacement]:
    out: list[Replacement] = []
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
        word = "factor" if isinstance(node.op, ast.Mult) else "term"
        out.append((f"`{_u(node)}` -> `{_u(node.left)}` (the {word} `{_u(node.right)}` dropped)",
                    copy.deepcopy(node.left)))
        right = copy.deepcopy(node.right)
        if isinstance(node.op, ast.Sub):
            right = ast.UnaryOp(ast.USub(), right)
        out.append((f"`{_u(node)}` -> `{_u(right)}` (the {word} `{_u(node.left)}` dropped)", right))
    return out


def op_double_term(node: ast.AST, site: Site) -> list[Replacement]:
    out: list[Replacement] = []
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        for side in ("left", "right"):
            new = _copy(node)
            setattr(new, side, ast.BinOp(ast.Constant(2), ast.Mult(), copy.deepcopy(getattr(node, side))))
            out.append((f"`{_u(node)}` -> `{_u(new)}` (a term doubled)", new))
    return out


_OTHER_ACT = {"tanh": "sigmoid", "sigmoid": "tanh"}


def op_activation(node: ast.AST, site: Site) -> list[Replacement]:
    if isinstance(node, ast.Attribute) and node.attr in _OTHER_ACT and isinstance(node.value, ast.Name) \
            and node.value.id == "torch":
        new = ast.Attribute(copy.deepcopy(node.value), _OTHER_ACT[node.attr], ast.Load())
        return [(f"`{_u(node)}` -> `{_u(new)}`", new)]
    if isinstance(node, ast.Compare) and len(node.comparators) == 1 and isinstance(node.comparators[0], ast.Constant) \
            and node.comparators[0].value in _OTHER_ACT:
        new = _copy(node)
        new.comparators[0] = ast.Constant(_OTHER_ACT[node.comparators[0].value])
        return [(f"`{_u(node)}` -> `{_u(new)}` (one activation's branch taken for the other)", new)]
    return []


def op_detach(node: ast.AST, site: Site) -> list[Replacement]:
    out: list[Replacement] = []
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        attr = node.func.attr
        if attr in ("detach", "clone", "requires_grad_"):
            new = copy.deepcopy(node.func.value)
            out.append((f"`{_u(node)}` -> `{_u(new)}` (no `{attr}`)", new))
        if attr in ("no_grad", "enable_grad") and isinstance(node.func.value, ast.Name):
            new = _e("torch.enable_grad()" if attr == "no_grad" else "torch.no_grad()")
            out.append((f"`{_u(node)}` -> `{_u(new)}`", new))
    if site.assigned_in_loop and isinstance(node, (ast.Call, ast.BinOp)):
        new = ast.Call(ast.Attribute(copy.deepcopy(node), "detach", ast.Load()), [], [])
        out.append((f"`{_u(node)}` -> `{_u(new)}` (detached at every step)", new))
    return out


def op_reduction(node: ast.AST, site: Site) -> list[Replacement]:
    out: list[Replacement] = []
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return out
    attr, target = node.func.attr, _u(node.func)
    swap = {"sum": "mean", "mean": "sum", "prod": "sum"}
    if attr in swap and not node.args:
        new = _copy(node)
        assert isinstance(new.func, ast.Attribute)
        new.func.attr = swap[attr]
        out.append((f"`{_u(node)}` -> `{_u(new)}`", new))
    if target == "F.cross_entropy" and not node.keywords:
        new = _copy(node)
        new.keywords.append(ast.keyword("reduction", ast.Constant("sum")))
        out.append((f"`{_u(node)}` -> `{_u(new)}` (summed over the batch)", new))
    if target == "torch.linalg.vector_norm":
        new2 = ast.BinOp(copy.deepcopy(node), ast.Pow(), ast.Constant(2))
        out.append((f"`{_u(node)}` -> `{_u(new2)}` (the norm squared)", new2))
    if target == "torch.linalg.matrix_norm":
        new = _copy(node)
        new.keywords = [k for k in new.keywords if k.arg != "ord"] + [ast.keyword("ord", ast.Constant("fro"))]
        out.append((f"`{_u(node)}` -> `{_u(new)}` (the Frobenius norm)", new))
    return out


def op_return_slice(node: ast.AST, site: Site) -> list[Replacement]:
    # applied to the value of a `return` (see _sites)
    if isinstance(node, (ast.Tuple, ast.Dict, ast.DictComp)) or not isinstance(node, ast.expr):
        return []
    return [(f"`return {_u(node)}` -> `return {_u(node)}[{i}]` (one entry alone)",
             ast.Subscript(_copy(node), _e(str(i)), ast.Load())) for i in (-1, 0)]


_IN_PLACE = {ast.Add: "add_", ast.Sub: "sub_", ast.Mult: "mul_"}


def op_in_place(node: ast.AST, site: Site) -> list[Replacement]:
    out: list[Replacement] = []
    if not isinstance(node, ast.BinOp) or type(node.op) not in _IN_PLACE:
        return out
    method = _IN_PLACE[type(node.op)]
    sides = [("left", "right")] + ([("right", "left")] if not isinstance(node.op, ast.Sub) else [])
    for mine, other in sides:
        operand = getattr(node, mine)
        if isinstance(operand, ast.Name) and operand.id in site.aliases:
            new = ast.Call(ast.Attribute(ast.Name(operand.id, ast.Load()), method, ast.Load()),
                           [copy.deepcopy(getattr(node, other))], [])
            out.append((f"`{_u(node)}` -> `{_u(new)}` (computed in place on an input)", new))
    return out


_FLIP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}


def op_compare(node: ast.AST, site: Site) -> list[Replacement]:
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _FLIP:
        new = _copy(node)
        new.ops = [_FLIP[type(node.ops[0])]()]
        return [(f"`{_u(node)}` -> `{_u(new)}`", new)]
    return []


OPERATORS: dict[str, Operator] = {
    "transpose": op_transpose, "swap": op_swap, "off_by_one": op_off_by_one,
    "drop_term": op_drop_term, "double_term": op_double_term, "activation": op_activation,
    "detach": op_detach, "reduction": op_reduction, "return_slice": op_return_slice,
    "in_place": op_in_place, "compare": op_compare,
}


# ------------------------------------------------------------------------------------------------
# Mutants.


@dataclass(frozen=True)
class Mutant:
    """One operator applied at one node of one function's unit: a standalone program."""

    ident: str          # e.g. "lstm_cell/swap/3"
    function: str       # the contract function it replaces
    operator: str
    where: str          # the unit function changed and the line, e.g. "_states, line 12"
    change: str         # what changed, in code
    program: str = field(repr=False)  # the mutant's source: imports, helpers, the function
    line: int = 0       # the changed line in the program

    def compile(self) -> Callable[..., Any]:
        """The mutant as a real function, from its program run in a fresh namespace."""
        return run_program(self.program, self.ident)[self.function]


def run_program(text: str, name: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"sheet11_audit_{re.sub(r'[^A-Za-z0-9_]', '_', name)}",
                                 "__builtins__": builtins}
    exec(compile(text, f"<{name}>", "exec"), namespace)  # noqa: S102 - the project's own reference, mutated
    return namespace


def _is_raise_or_message(node: ast.AST) -> bool:
    return isinstance(node, (ast.Raise, ast.JoinedStr))


def _sites(tree: ast.Module, unit: Sequence[str]) -> Iterator[tuple[ast.AST, Site, bool]]:
    """(node, site, is_return_value) for every node of the unit's functions that a mutant may
    change: not docstrings, annotations, `raise` statements or messages."""
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef) or fn.name not in unit:
            continue
        params = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
        aliases = set(params)
        for stmt in ast.walk(fn):  # names bound to an argument without a copy
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
                call = stmt.value
                callee = call.func.id if isinstance(call.func, ast.Name) else \
                    call.func.attr if isinstance(call.func, ast.Attribute) else ""
                if callee in ("as_tensor", "_prepare", "to", "detach"):
                    aliases |= _defined_names(stmt)
        body = fn.body[1:] if fn.body and isinstance(fn.body[0], ast.Expr) and \
            isinstance(fn.body[0].value, ast.Constant) else fn.body

        def walk(node: ast.AST, in_loop: bool, loop_value: bool, fn: ast.FunctionDef = fn,
                 aliases: frozenset[str] = frozenset(aliases)) -> Iterator[tuple[ast.AST, Site, bool]]:
            if _is_raise_or_message(node):
                return
            site = Site(fn.name, aliases, in_loop, loop_value)
            yield node, site, False
            if isinstance(node, ast.Return) and node.value is not None:
                yield node.value, site, True
            for name, child in ast.iter_fields(node):
                if name in ("annotation", "returns", "decorator_list", "type_comment"):
                    continue
                children = child if isinstance(child, list) else [child]
                for c in children:
                    if isinstance(c, ast.AST):
                        deeper = in_loop or isinstance(node, (ast.For, ast.While))
                        value = deeper and isinstance(node, ast.Assign) and name == "value"
                        yield from walk(c, deeper, value)

        for stmt in body:
            yield from walk(stmt, False, False)


def _replace(tree: ast.AST, target: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is target:
                setattr(parent, name, new)
                return
            if isinstance(value, list):
                for i, v in enumerate(value):
                    if v is target:
                        value[i] = new
                        return
    raise LookupError("node not found")


def generate(function: str) -> list[Mutant]:
    """Every mutant of ``function``'s unit, in a fixed order, without duplicates (two rules
    that give the same program make one mutant) and without the reference itself."""
    _, unit = UNITS[function]
    tree = _program_tree(function)
    original = ast.unparse(tree)
    nodes = list(ast.walk(tree))
    seen = {original}
    out: list[Mutant] = []
    for node, site, is_return in list(_sites(tree, unit)):
        index = nodes.index(node)
        for op_name, op in OPERATORS.items():
            if (op_name == "return_slice") != is_return:
                continue
            for change, new in op(node, site):
                mutated = copy.deepcopy(tree)
                target = list(ast.walk(mutated))[index]
                _replace(mutated, target, new)
                ast.fix_missing_locations(mutated)
                try:
                    text = ast.unparse(mutated)
                    compile(text, "<mutant>", "exec")
                except (SyntaxError, ValueError):
                    continue
                if text in seen:
                    continue
                seen.add(text)
                line = getattr(node, "lineno", 0)
                out.append(Mutant(f"{function}/{op_name}/{len(out) + 1}", function, op_name,
                                  f"{site.function}, line {line}", change, text, line))
    return out


def sample(mutants: Sequence[Mutant], per_function: int, seed: int = 0) -> list[Mutant]:
    """A fixed sample: ``per_function`` mutants of each function, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    out: list[Mutant] = []
    for function in FUNCTIONS:
        mine = [m for m in mutants if m.function == function]
        if mine:
            picks = rng.choice(len(mine), size=min(per_function, len(mine)), replace=False)
            out += [mine[int(i)] for i in sorted(picks)]
    return out


# ------------------------------------------------------------------------------------------------
# Equivalence: the mutant against the reference on many random inputs.

_SIZES = {"T": (1, 7), "B": (1, 4), "D": (1, 6), "H": (1, 6), "d": (1, 5), "leaves": (1, 9), "C": (2, 5)}


def random_params(check: Check, rng: np.random.Generator) -> dict[str, Any]:
    """A rubric case's parameters (hidden or public) with some sizes drawn anew."""
    pool = list(check.cases) + list(check.public)
    params = dict(pool[int(rng.integers(len(pool)))].params)
    for key, (lo, hi) in _SIZES.items():
        if key in params and rng.random() < 0.6:
            params[key] = int(rng.integers(lo, hi + 1))
    if "k" in params:
        params["k"] = int(rng.integers(1, params["T"] + 2))
    for key, options in (("activation", ("tanh", "sigmoid")), ("loss", ("linear", "squared")),
                         ("shape", ("balanced", "random", "left_chain"))):
        if key in params and rng.random() < 0.5:
            params[key] = options[int(rng.integers(len(options)))]
    return params


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


def _same_inputs(before: Any, after: Any) -> bool:
    if isinstance(before, torch.Tensor):
        return (isinstance(after, torch.Tensor) and before.dtype == after.dtype and before.shape == after.shape
                and bool(torch.equal(before, after.detach())) and not after.requires_grad and after.grad is None)
    if isinstance(before, dict):
        return isinstance(after, dict) and list(before) == list(after) and all(
            _same_inputs(before[k], after[k]) for k in before)
    if isinstance(before, case_inputs.LossSpec):
        return bool(torch.equal(before.vector, after.vector))
    return True


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.shape == b.shape and bool(np.all(np.isfinite(b)))
                and bool(np.allclose(b, a, rtol=EQUIVALENCE_RTOL, atol=EQUIVALENCE_ATOL)))
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(_close(a[k], b[k]) for k in a)
    return False


@dataclass(frozen=True)
class Difference:
    """An input on which a mutant differs from the reference: what a new case would use."""

    seed: int
    params: Mapping[str, Any]
    why: str

    def describe(self, function: str) -> str:
        inner = ", ".join(f"{k} = {v!r}".replace("'", '"') for k, v in self.params.items())
        return (f"{{ seed = {self.seed}, {inner} }} ({self.why}; the inputs are "
                f"grader.checks.cases.make_inputs({function!r}, {self.seed}, params))")


def find_difference(function: str, fn: Callable[..., Any], check: Check, draws: int = EQUIVALENCE_DRAWS,
                    seed: int = 0) -> tuple[Difference | None, float]:
    """The first random input on which ``fn`` differs from the reference (None: none found),
    and the largest relative difference seen (0 where none)."""
    rng = np.random.default_rng([seed, FUNCTIONS.index(function)])
    worst = 0.0
    ref = getattr(reference, function)
    for _ in range(draws):
        params = random_params(check, rng)
        case_seed = int(rng.integers(10**6, 10**7))
        inputs = case_inputs.make_inputs(function, case_seed, params)
        expected = to_numpy(ref(**_clone(inputs)))
        given = _clone(inputs)
        try:
            with _time_limit(CALL_SECONDS), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = to_numpy(fn(**given))
                again = to_numpy(fn(**_clone(inputs)))
        except Exception as exc:  # noqa: BLE001 - a mutant that raises differs here
            return Difference(case_seed, params, f"it raises {type(exc).__name__}"), worst
        if not _close(expected, got):
            return Difference(case_seed, params, "its result differs"), worst
        if not all(_same_inputs(inputs[k], given[k]) for k in inputs):
            return Difference(case_seed, params, "it changes an input in place"), worst
        if not _close(got, again):
            return Difference(case_seed, params, "a second call returns another result"), worst
        worst = max(worst, _max_rel(expected, got))
    return None, worst


def _max_rel(a: Any, b: Any) -> float:
    if isinstance(a, np.ndarray):
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), EQUIVALENCE_ATOL))) if a.size else 0.0
    if isinstance(a, tuple):
        return max((_max_rel(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, dict):
        return max((_max_rel(a[k], b[k]) for k in a), default=0.0)
    return 0.0


def reached_lines(function: str, program: str, check: Check, draws: int = EQUIVALENCE_DRAWS,
                  seed: int = 0) -> set[int]:
    """The lines of the reference's own program that run on the equivalence inputs."""
    name = f"reached-{function}"
    fn = run_program(program, name)[function]
    lines: set[int] = set()
    filename = f"<{name}>"

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != filename:
            return None
        if event == "line":
            lines.add(frame.f_lineno)
        return tracer

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        find_difference(function, fn, check, draws, seed)
    finally:
        sys.settrace(old)
    return lines


# ------------------------------------------------------------------------------------------------
# Grading a mutant in the grader's process, with the grader's own code.


class _Stop(BaseException):
    pass


class _time_limit:  # noqa: N801 - used as a context manager
    """SIGALRM after ``seconds`` (main thread only; elsewhere no limit)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self.armed = False

    def _fire(self, signum: int, frame: FrameType | None) -> None:
        self.fired = True
        raise _Stop()

    def __enter__(self) -> _time_limit:
        import threading
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            self.armed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)


class InProcessSession:
    """What :class:`~grader.checks.bridge.Bridge` needs of a kernel session, in this process: the
    kernel-side call code runs in the mutant's namespace (the same files, the same encoding,
    the same double call and input report as in a kernel). For the project's own code only."""

    def __init__(self, namespace: dict[str, Any], folder: Path) -> None:
        self.namespace = namespace
        self.calls = folder
        self.sandbox = SimpleNamespace(confined=False, note="")
        self.uid = -1

    def run_code(self, code: str, timeout: float) -> CodeResult:
        start = time.perf_counter()
        limit = _time_limit(timeout)
        try:
            with limit, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a mutant's deprecation warnings are not the audit's
                exec(compile(code, "<sheet11-call>", "exec"), self.namespace)  # noqa: S102 - see class doc
        except _Stop:
            pass
        seconds = time.perf_counter() - start
        if limit.fired:
            return CodeResult("timeout", seconds)
        return CodeResult("ok", seconds)


@dataclass(frozen=True)
class Verdict:
    mutant: Mutant
    equivalent: bool
    difference: Difference | None  # an input on which it differs from the reference
    points: float                  # on the hidden cases
    max_points: float
    public_failed: int             # public examples it fails (what `grade check` shows)
    kind: str                      # see finding_kind
    text: str                      # the report's words for it (first failed case)
    reason: str = ""               # why it is equivalent
    seconds: float = 0.0

    @property
    def killed(self) -> bool:
        return self.points < self.max_points - 1e-9

    @property
    def survived(self) -> bool:
        return not self.equivalent and not self.killed

    @property
    def named_or_located(self) -> bool:
        return self.kind in NAMED_KINDS


#: The kinds of finding that name or locate a wrong function (see finding_kind).
NAMED_KINDS = ("named", "setting", "layout", "located", "hedged", "contract")

_LOCATED = re.compile(r"(?:it does not|differs from the reference): (.*?)(?:\.(?: |$))")


def finding_kind(results: Sequence[CaseResult]) -> tuple[str, str]:
    """What the report says about a failed function, as a kind and its words.

    named: a catalogued mistake for the whole function ("your output matches ...", or "consistent
    with A or B"); setting: one named for one setting; layout: a slice, transposition, reordering
    or multiple of the expected result; located: a term the probes pinned ("... is wrong");
    contract: a broken rule of contract §3 (an input changed, a second call differs); error: the
    function raised (the report shows the exception); shape: a wrong structure, shape or dtype
    without a finding; nan: NaN or infinite values; hedged: "one of these is wrong"; unlocated:
    the values differ and the report says the wrong part could not be located; none: no case failed.
    """
    failed = [r for r in results if not r.passed]
    if not failed:
        return "none", ""
    first = failed[0]
    text = f"{first.message} | {first.diagnosis}".strip(" |")
    if any(r.message.startswith("in the ") and "your output matches" in r.message for r in failed):
        return "setting", text
    if any(r.mistakes or r.consistent_with for r in failed):
        return "named", text
    if any(r.structure for r in failed):
        return "layout", text
    m = _LOCATED.search(first.diagnosis)
    if m and "one of these is wrong" in m.group(1):
        return "hedged", text
    if m and "could not" not in m.group(1) and "how the terms combine" not in m.group(1) and \
            m.group(1).endswith("is wrong"):
        return "located", text
    if m and m.group(1).startswith("more than one term is wrong"):
        return "located", text
    if any("breaks the rule" in r.message for r in failed):
        return "contract", text
    if first.call_status == "raised":
        return "error", text
    if first.call_status in ("timeout", "died"):
        return "error", text
    if "NaN or infinite" in first.message:
        return "nan", text
    if first.message.startswith(("returned", "the returned dict", "h_new: returned", "c_new: returned")) or \
            re.match(r"^\w+: returned", first.message):
        return "shape", text
    return "unlocated", text


def grade_in_process(fn_namespace: dict[str, Any], check: Check, rubric: Rubric, secret: bytes | None,
                     public: bool) -> list[CaseResult]:
    """One check of the rubric on a function defined in ``fn_namespace``, graded as
    grader/grade.py grades it (cases, contract rules, probes) over an in-process Bridge."""
    from grader.grade import _run_check  # the grader's own step, not a copy of it
    with tempfile.TemporaryDirectory(prefix="sheet11-audit-") as folder:
        bridge = Bridge(InProcessSession(fn_namespace, Path(folder)))  # type: ignore[arg-type]
        checked = _run_check(bridge, check, True, rubric, public, "", None if public else secret)
        return probes.review(check, checked, bridge, rubric.limits.call_timeout, public,
                             None if public else secret)


def grade_mutant(mutant: Mutant, rubric: Rubric, secret: bytes, reached: set[int] | None = None,
                 draws: int = EQUIVALENCE_DRAWS) -> Verdict:
    """Grade one mutant on the hidden and public cases, and decide whether it is equivalent."""
    start = time.perf_counter()
    check = _check(rubric, mutant.function)
    namespace = run_program(mutant.program, mutant.ident)
    difference, worst = find_difference(mutant.function, namespace[mutant.function], check, draws)
    hidden = grade_in_process(namespace, check, rubric, secret, public=False)
    public = grade_in_process(namespace, check, rubric, secret, public=True)
    kind, text = finding_kind(hidden)
    reason = ""
    if difference is None:
        reason = (f"agrees with the reference on {draws} random inputs over the rubric's settings "
                  f"(largest relative difference {worst:.1e}), leaves its inputs as it found them "
                  "and returns the same result twice")
        if reached is not None and mutant.line and mutant.line not in reached:
            reason += "; the changed line is never reached on these inputs"
    return Verdict(mutant, difference is None, difference, round(sum(r.points for r in hidden), 6),
                   check.points, sum(not r.passed for r in public), kind, text, reason,
                   time.perf_counter() - start)


def _check(rubric: Rubric, function: str) -> Check:
    for check in rubric.checks():
        if check.function == function:
            return check
    raise KeyError(f"the rubric has no check of {function}")


# ------------------------------------------------------------------------------------------------
# The audit.


@dataclass(frozen=True)
class AuditReport:
    verdicts: tuple[Verdict, ...]
    seconds: float

    @property
    def equivalent(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.equivalent)

    @property
    def relevant(self) -> tuple[Verdict, ...]:
        """The non-equivalent mutants: each should be killed."""
        return tuple(v for v in self.verdicts if not v.equivalent)

    @property
    def survivors(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.survived)

    @property
    def killed_rate(self) -> float:
        rel = self.relevant
        return sum(v.killed for v in rel) / len(rel) if rel else 1.0

    @property
    def named_rate(self) -> float:
        killed = [v for v in self.relevant if v.killed]
        return sum(v.named_or_located for v in killed) / len(killed) if killed else 1.0

    @property
    def refused(self) -> bool:
        return bool(self.survivors)

    def counts(self) -> dict[str, dict[str, int]]:
        """function -> {mutants, equivalent, killed, survived, named_or_located, <kind>...}."""
        out: dict[str, dict[str, int]] = {}
        for v in self.verdicts:
            row = out.setdefault(v.mutant.function, {"mutants": 0, "equivalent": 0, "killed": 0,
                                                     "survived": 0, "named_or_located": 0})
            row["mutants"] += 1
            row["equivalent"] += v.equivalent
            row["killed"] += v.killed and not v.equivalent
            row["survived"] += v.survived
            row["named_or_located"] += v.killed and not v.equivalent and v.named_or_located
            if v.killed and not v.equivalent:
                row[v.kind] = row.get(v.kind, 0) + 1
        return out

    def refusals(self) -> list[str]:
        """One line per surviving mutant: what it is and a case that would catch it."""
        return [f"{v.mutant.ident} ({v.mutant.where}: {v.mutant.change}) keeps full points; a case that "
                f"catches it: {v.difference.describe(v.mutant.function) if v.difference else '(none found)'}"
                for v in self.survivors]


def audit(rubric: Rubric, secret: bytes, mutants: Sequence[Mutant],
          progress: Callable[[Verdict], None] | None = None, draws: int = EQUIVALENCE_DRAWS) -> AuditReport:
    """Grade every mutant (in the grader's process) and collect the verdicts."""
    start = time.perf_counter()
    reached: dict[str, set[int]] = {}
    verdicts = []
    for m in mutants:
        if m.function not in reached:
            reached[m.function] = reached_lines(m.function, ast.unparse(_program_tree(m.function)),
                                                _check(rubric, m.function), draws)
        v = grade_mutant(m, rubric, secret, reached[m.function], draws)
        verdicts.append(v)
        if progress:
            progress(v)
    return AuditReport(tuple(verdicts), time.perf_counter() - start)


def all_mutants(functions: Sequence[str] = FUNCTIONS) -> list[Mutant]:
    return [m for f in functions for m in generate(f)]


# ------------------------------------------------------------------------------------------------
# The real pipeline, for a sample: a notebook from the template with the mutant in place.


@dataclass(frozen=True)
class PipelineAgreement:
    mutant: Mutant
    in_process: tuple[float, str]   # (points, kind) in process
    pipeline: tuple[float, str]     # (points, kind) through grade_submission in a kernel

    @property
    def agrees(self) -> bool:
        return abs(self.in_process[0] - self.pipeline[0]) < 1e-9 and self.in_process[1] == self.pipeline[1]


def mutant_notebook(mutant: Mutant, template: Path) -> Any:
    """The template with the mutant's program in its function's cell, a group filled in, and
    the try-it and self-check cells left out (they would only call the other stubs)."""
    import nbformat
    nb = nbformat.read(str(template), as_version=4)
    keep = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if any(t.startswith(("try-", "check-")) for t in tags):
            continue
        if "group" in tags:
            cell.source = ('GROUP = [{"name": "Ada Lovelace", "student_id": "2571234", "email": "ada@uni.example"}, '
                           '{"name": "Alan Turing", "student_id": "2579876", "email": "alan@uni.example"}]')
        if f"function-{mutant.function}" in tags:
            cell.source = mutant.program
        keep.append(cell)
    nb.cells = keep
    return nb


def pipeline_sample(mutants: Sequence[Mutant], verdicts: Mapping[str, Verdict], ctx: Any,
                    folder: Path) -> list[PipelineAgreement]:
    """Grade each mutant through :func:`grader.grade.grade_submission` (a kernel, the hidden
    cases) and compare with its in-process verdict."""
    import nbformat

    from grader.grade import grade_submission
    from grader.resources import template_notebook
    out = []
    for m in mutants:
        path = folder / f"Lovelace_2571234_Turing_2579876_{m.ident.replace('/', '_')}.ipynb"
        nbformat.write(mutant_notebook(m, template_notebook()), str(path))
        result = grade_submission(path, ctx, name="Lovelace_2571234_Turing_2579876.ipynb")
        qid = ctx.rubric.question_of(m.function)
        checks = [c for c in result.questions[qid].cases if c.function == m.function]
        kind, _ = finding_kind(checks)
        v = verdicts[m.ident]
        out.append(PipelineAgreement(m, (v.points, v.kind), (round(sum(c.points for c in checks), 6), kind)))
    return out


# ------------------------------------------------------------------------------------------------
# `grade audit`: the table, the figures, the refusal.


def summary_lines(report: AuditReport) -> list[str]:
    """The per-function table and the figures, as plain text lines."""
    counts = report.counts()
    kinds = ("named", "setting", "layout", "located", "contract", "hedged", "error", "shape", "nan", "unlocated")
    head = f"{'function':20} {'mutants':>7} {'equiv':>5} {'killed':>6} {'surv':>4} {'named/loc':>9}  " + \
        " ".join(f"{k[:8]:>8}" for k in kinds)
    lines = [head]
    total: dict[str, int] = {}
    for function in FUNCTIONS:
        row = counts.get(function)
        if not row:
            continue
        for k, v in row.items():
            total[k] = total.get(k, 0) + v
        lines.append(_row(function, row, kinds))
    lines.append(_row("all", total, kinds))
    relevant = len(report.relevant)
    killed = sum(v.killed for v in report.relevant)
    named = sum(v.killed and v.named_or_located for v in report.relevant)
    valued = [v for v in report.relevant if v.killed and v.kind not in ("error",)]
    lines += ["",
              f"{len(report.verdicts)} mutants, {len(report.equivalent)} equivalent, {relevant} to be killed: "
              f"killed {killed} ({100 * report.killed_rate:.1f} %), survived {len(report.survivors)}",
              f"named or located: {named} of {killed} killed ({100 * report.named_rate:.1f} %); "
              f"of the {len(valued)} killed mutants that return a value (no exception): "
              f"{sum(v.named_or_located for v in valued)} "
              f"({100 * sum(v.named_or_located for v in valued) / max(1, len(valued)):.1f} %)",
              f"audit time {report.seconds:.0f} s"]
    return lines


def _row(name: str, row: Mapping[str, int], kinds: Sequence[str]) -> str:
    return (f"{name:20} {row.get('mutants', 0):>7} {row.get('equivalent', 0):>5} {row.get('killed', 0):>6} "
            f"{row.get('survived', 0):>4} {row.get('named_or_located', 0):>9}  "
            + " ".join(f"{row.get(k, 0):>8}" for k in kinds))


def run_audit(functions: Sequence[str], per_function: int | None, pipeline: int, verbose: bool,
              rubric_path: str | None, echo: Callable[[str], None]) -> int:
    """`grade audit`: 0 when every non-equivalent mutant loses points (and the pipeline sample
    agrees), 1 otherwise (the survivors are named with a case that catches each)."""
    from grader.checks.secret import load_secret
    from grader.errors import UsageError
    from grader.rubric import load_rubric
    unknown = [f for f in functions if f not in UNITS]
    if unknown:
        raise UsageError(f"--function: {', '.join(unknown)} is not one of {', '.join(FUNCTIONS)}")
    rubric = load_rubric(rubric_path)
    secret = load_secret()
    mutants = all_mutants(functions or FUNCTIONS)
    if per_function:
        mutants = sample(mutants, per_function)
    echo(f"Grading {len(mutants)} mutants of the reference in this process ...")

    def progress(v: Verdict) -> None:
        if verbose:
            state = "equivalent" if v.equivalent else "SURVIVED" if v.survived else f"killed, {v.kind}"
            echo(f"  {v.mutant.ident:32} {state:18} {v.mutant.where}: {v.mutant.change}")

    report = audit(rubric, secret, mutants, progress)
    for line in summary_lines(report):
        echo(line)
    if report.equivalent:
        echo("")
        echo(f"Equivalent mutants ({len(report.equivalent)}):")
        for v in report.equivalent:
            echo(f"  {v.mutant.ident} ({v.mutant.where}: {v.mutant.change}): {v.reason}")
    code = 0
    if pipeline:
        import tempfile as _tempfile

        from grader.grade import Context
        from grader.kernel.sandbox import choose_sandbox
        picked = sample([v.mutant for v in report.relevant], max(1, -(-pipeline // len(FUNCTIONS))))[:pipeline]
        ctx = Context.create(rubric, choose_sandbox("auto"), secret=secret)
        with _tempfile.TemporaryDirectory(prefix="sheet11-audit-nb-") as folder:
            agreements = pipeline_sample(picked, {v.mutant.ident: v for v in report.verdicts}, ctx, Path(folder))
        echo("")
        echo(f"Through the whole pipeline (a notebook in a kernel), {len(agreements)} mutants:")
        for a in agreements:
            echo(f"  {a.mutant.ident:32} in process {a.in_process[0]:g} points, {a.in_process[1]}; "
                 f"pipeline {a.pipeline[0]:g} points, {a.pipeline[1]}: {'agrees' if a.agrees else 'DIFFERS'}")
        if not all(a.agrees for a in agreements):
            echo("The in-process audit and the pipeline disagree: the audit's figures do not stand.")
            code = 1
    if report.refused:
        echo("")
        echo("Refused: a wrong function keeps full points under this rubric. Add a case that catches each:")
        for line in report.refusals():
            echo(f"  {line}")
        code = 1
    return code
