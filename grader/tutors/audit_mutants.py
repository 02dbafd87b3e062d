"""Mutants of the reference made by operator rules (`grade audit`; see grader/tutors/audit.py).

A function's *unit* (:data:`UNITS`) is the function and the private helpers of its module it relies
on; :func:`generate` applies every operator of :data:`OPERATORS` at every node of the unit a mutant
may change, and gives each result as a :class:`Mutant`: a standalone program (imports, the helpers
it needs, the function) with the changed node's place, its code before and after, and the part of
it that changed (:attr:`Mutant.region`), which the audit checks a report's claims against.
"""
from __future__ import annotations

import ast
import builtins
import copy
import importlib
import inspect
import itertools
import linecache
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["FUNCTIONS", "OPERATORS", "UNITS", "Mutant", "generate", "run_program", "sample"]

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
    unit: str = ""      # the unit function changed, e.g. "_states"
    #: the code the change touches, as it was: the dropped or doubled term, the transposed
    #: operand, else the whole changed node (what grader/tutors/audit_claims.py checks claims against)
    region: str = ""

    def compile(self) -> Callable[..., Any]:
        """The mutant as a real function, from its program run in a fresh namespace."""
        fn: Callable[..., Any] = run_program(self.program, self.ident)[self.function]
        return fn


def program_file(name: str) -> str:
    """The file name a program runs under: a cell's, as IPython names it (grader/checks/raised.py),
    so that a traceback locates a raise in it as it would in a notebook."""
    return f"/sheet11-audit/ipykernel_0/{zlib.crc32(name.encode())}.py"


def run_program(text: str, name: str) -> dict[str, Any]:
    """The program run in a fresh namespace, its source registered as IPython registers a cell's
    (tracebacks quote its lines)."""
    namespace: dict[str, Any] = {"__name__": f"sheet11_audit_{re.sub(r'[^A-Za-z0-9_]', '_', name)}",
                                 "__builtins__": builtins}
    filename = program_file(name)
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    exec(compile(text, filename, "exec"), namespace)
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


def _region(op_name: str, node: ast.AST, new: ast.AST) -> str:
    """The part of ``node`` that the replacement ``new`` changes (see :attr:`Mutant.region`)."""
    if op_name == "drop_term" and isinstance(node, ast.BinOp):
        kept = ast.dump(new.operand if isinstance(new, ast.UnaryOp) else new)
        return _u(node.right) if kept == ast.dump(node.left) else _u(node.left)
    if op_name in ("double_term", "transpose") and isinstance(node, ast.BinOp) and isinstance(new, ast.BinOp):
        return _u(node.left) if ast.dump(new.left) != ast.dump(node.left) else _u(node.right)
    return _u(node)


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
                                  f"{site.function}, line {line}", change, text, line, site.function,
                                  _region(op_name, node, new)))
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

