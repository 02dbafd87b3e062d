"""The notebook's own source, read for feedback (grader/checks/causes.py): a raise's frames found
in the cells, the statements that bind a name, a function's ``return`` lines.

The source is the code that ran, as the grader read it from the notebook, never text the kernel
sent. At most :data:`MAX_CELL_CHARS` of a cell are parsed (IPython's transformation first where a
cell has magics, which keeps its lines) and indexed by function name, each distinct cell once per
process (an LRU cache); a frame is then found by name, and every walk here is linear in one
function's syntax tree.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from grader.checks.raised import Frame

__all__ = ["INNER", "MAX_CELL_CHARS", "FuncDef", "Place", "assignments", "call_name", "locate", "loaded_names",
           "own_function", "parameters", "returns"]

MAX_CELL_CHARS = 200_000
FuncDef = ast.FunctionDef | ast.AsyncFunctionDef
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)  # a new scope: not walked into


def _parse(source: str) -> ast.Module | None:
    text = source[:MAX_CELL_CHARS]
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        pass
    try:  # magics and shell escapes: IPython's own transformation keeps the cell's lines
        from IPython.core.inputtransformer2 import TransformerManager
        return ast.parse(TransformerManager().transform_cell(text))  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - a cell that does not parse has no cause to give
        return None


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    out: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            out[child] = node
    return out


@dataclass(frozen=True)
class Place:
    """A frame located in the source: its function's definition and the statement at its line."""

    frame: Frame
    func: FuncDef
    stmt: ast.stmt
    parents: dict[ast.AST, ast.AST]

    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        while node in self.parents and node is not self.func:
            node = self.parents[node]
            yield node

    def on_line(self) -> list[ast.AST]:
        """The expression nodes of the statement that lie on the frame's line."""
        line = self.frame.line
        return [n for n in ast.walk(self.stmt) if isinstance(n, ast.expr)
                and n.lineno <= line <= (n.end_lineno or n.lineno)]


#: The frames Python makes for a comprehension or a lambda: located in the function around them.
INNER = ("<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>", "<lambda>")


@dataclass(frozen=True)
class _Index:
    """A cell's function definitions by name: all of them (nested ones too), and the top-level ones."""

    every: dict[str, list[FuncDef]]
    top: dict[str, FuncDef]


@lru_cache(maxsize=64)
def _index(source: str) -> _Index | None:
    """The cell's :class:`_Index`, made once per cell."""
    tree = _parse(source)
    if tree is None:
        return None
    every: dict[str, list[FuncDef]] = {}
    for node in ast.walk(tree):
        if isinstance(node, FuncDef):
            every.setdefault(node.name, []).append(node)
    return _Index(every, {n.name: n for n in tree.body if isinstance(n, FuncDef)})


def locate(frame: Frame, cells: Sequence[str]) -> Place | None:
    """The frame's function in the last cell that defines it around the frame's line."""
    for source in reversed(cells):
        index = _index(source)
        if index is None:
            continue
        candidates = [d for ds in index.every.values() for d in ds] if frame.function in INNER \
            else index.every.get(frame.function, [])
        defs = [n for n in candidates if n.lineno <= frame.line <= (n.end_lineno or n.lineno)]
        if not defs:
            continue
        func = max(defs, key=lambda n: n.lineno)  # the innermost definition around the line
        stmts = [n for n in ast.walk(func) if isinstance(n, ast.stmt) and n is not func
                 and n.lineno <= frame.line <= (n.end_lineno or n.lineno)]
        if not stmts:
            return None
        stmt = max(stmts, key=lambda n: (n.lineno, -(n.end_lineno or n.lineno)))
        return Place(frame, func, stmt, _parents(func))
    return None


def loaded_names(nodes: Sequence[ast.AST]) -> list[str]:
    seen: dict[str, None] = {}
    for node in nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            seen.setdefault(node.id)
    return list(seen)


def call_name(node: ast.AST) -> str:
    func = node.func if isinstance(node, ast.Call) else node
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def own_function(name: str, cells: Sequence[str]) -> FuncDef | None:
    """The notebook's last top-level definition of ``name``."""
    for source in reversed(cells):
        index = _index(source)
        if index is not None and name in index.top:
            return index.top[name]
    return None


def _own_statements(func: FuncDef) -> Iterator[ast.AST]:
    """The nodes of ``func``'s body, not those of functions, lambdas or classes inside it."""
    stack: list[ast.AST] = [func]
    while stack:
        for child in ast.iter_child_nodes(stack.pop()):
            if not isinstance(child, SCOPES):
                yield child
                stack.append(child)


def returns(func: FuncDef) -> list[int]:
    """The lines of ``func``'s own ``return`` statements (not those of functions inside it)."""
    return sorted(n.lineno for n in _own_statements(func) if isinstance(n, ast.Return))


def _targets(stmt: ast.AST) -> list[ast.AST]:
    """What a statement binds names in."""
    if isinstance(stmt, ast.Assign):
        return list(stmt.targets)
    if isinstance(stmt, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
        return [stmt.target]
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        return [i.optional_vars for i in stmt.items if i.optional_vars is not None]
    return []


def assignments(func: FuncDef, name: str, before: int) -> list[ast.stmt]:
    """The statements of ``func`` (not of functions inside it) that bind ``name``, before line ``before``."""
    return [n for n in _own_statements(func) if isinstance(n, ast.stmt) and n.lineno < before
            and any(isinstance(t, ast.Name) and t.id == name and isinstance(t.ctx, ast.Store)
                    for target in _targets(n) for t in ast.walk(target))]


def parameters(func: FuncDef) -> list[str]:
    a = func.args
    return [p.arg for p in (*a.posonlyargs, *a.args)]
