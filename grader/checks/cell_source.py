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


@lru_cache(maxsize=64)
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


@lru_cache(maxsize=64)
def _definitions(source: str) -> dict[str, list[FuncDef]] | None:
    """A cell's function definitions by name (nested ones too), made once per cell."""
    tree = _parse(source)
    if tree is None:
        return None
    by_name: dict[str, list[FuncDef]] = {}
    for node in ast.walk(tree):
        if isinstance(node, FuncDef):
            by_name.setdefault(node.name, []).append(node)
    return by_name


def locate(frame: Frame, cells: Sequence[str]) -> Place | None:
    """The frame's function in the last cell that defines it around the frame's line."""
    for source in reversed(cells):
        by_name = _definitions(source)
        if by_name is None:
            continue
        candidates = [d for ds in by_name.values() for d in ds] if frame.function in INNER \
            else by_name.get(frame.function, [])
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


def _defs(tree: ast.Module) -> dict[str, FuncDef]:
    return {n.name: n for n in tree.body if isinstance(n, FuncDef)}


def own_function(name: str, cells: Sequence[str]) -> FuncDef | None:
    """The notebook's last top-level definition of ``name``."""
    for source in reversed(cells):
        tree = _parse(source)
        if tree is not None and name in _defs(tree):
            return _defs(tree)[name]
    return None


def returns(func: FuncDef) -> list[int]:
    """The lines of ``func``'s own ``return`` statements (not those of functions inside it)."""
    out: list[int] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, SCOPES):
                continue
            if isinstance(child, ast.Return):
                out.append(child.lineno)
            visit(child)
    visit(func)
    return out


def assignments(func: FuncDef, name: str, before: int) -> list[ast.stmt]:
    """The statements of ``func`` (not of functions inside it) that bind ``name``, before line ``before``."""
    out: list[ast.stmt] = []

    def binds(target: ast.AST) -> bool:
        return any(isinstance(n, ast.Name) and n.id == name and isinstance(n.ctx, ast.Store) for n in ast.walk(target))

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, SCOPES):
                continue
            if isinstance(child, ast.stmt) and child.lineno < before:
                targets: list[ast.AST] = []
                if isinstance(child, ast.Assign):
                    targets = list(child.targets)
                elif isinstance(child, (ast.AugAssign, ast.AnnAssign)):
                    targets = [child.target]
                elif isinstance(child, (ast.For, ast.AsyncFor)):
                    targets = [child.target]
                elif isinstance(child, (ast.With, ast.AsyncWith)):
                    targets = [i.optional_vars for i in child.items if i.optional_vars is not None]
                if any(binds(t) for t in targets):
                    out.append(child)
            visit(child)
    visit(func)
    return out


def parameters(func: FuncDef) -> list[str]:
    a = func.args
    return [p.arg for p in (*a.posonlyargs, *a.args)]
