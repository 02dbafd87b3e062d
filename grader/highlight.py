"""The student's own code beside the verdict: which cells define a question's functions, highlighted.

Pure functions over the notebook's code cells (``code_cells`` of a result: a list of sources).
The cells are read with :func:`ast.parse` in the grader's process, never run; a cell that does not
parse is searched line by line for ``def name(`` instead, so a syntax error elsewhere in the cell
does not hide the function. Highlighting is Pygments' HTML (it escapes the source), styled by
:data:`HIGHLIGHT_CSS` in the page: no script is needed.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

__all__ = ["CodeCell", "defining_cells", "highlight_python", "HIGHLIGHT_CSS"]

# Bounds on the grader's work per report: a notebook of this sheet has a few dozen cells of a few
# dozen lines; these only stop a pasted megabyte from costing seconds or filling the page.
MAX_CELLS = 300  # cells searched
MAX_PARSE_CHARS = 100_000  # a longer cell is searched line by line, not parsed
MAX_SHOWN_LINES = 400  # lines of one cell shown in a report
MAX_SHOWN_CHARS = 40_000

_CSS_CLASS = "hl"
_FORMATTER_OPTIONS = {"cssclass": _CSS_CLASS, "linenos": "inline", "wrapcode": True}


def _style_defs() -> str:
    # Only the rules scoped to our class: Pygments also emits global `pre {...}` rules.
    rules = HtmlFormatter(**_FORMATTER_OPTIONS).get_style_defs(f".{_CSS_CLASS}").splitlines()
    scoped = [r for r in rules if r.startswith(f".{_CSS_CLASS}")]
    return "\n".join(scoped + [f".{_CSS_CLASS} .linenos {{ color: #8c959f; padding-right: .8em; user-select: none; }}"])


HIGHLIGHT_CSS = Markup(_style_defs())


@dataclass(frozen=True)
class CodeCell:
    """One code cell that defines some of a question's functions."""

    number: int  # 1-based position among the notebook's code cells
    names: tuple[str, ...]  # the functions it defines, in order
    lines: tuple[int, ...]  # 1-based lines of those definitions (to highlight)
    html: Markup
    cut: bool  # the cell was longer than the report shows


def _definitions(source: str, wanted: frozenset[str]) -> list[tuple[str, int, int]]:
    """``(name, first_line, last_line)`` of every definition of a wanted name at the cell's top
    level (also inside ``if``/``try``/``with`` blocks, not inside other functions or classes)."""
    if len(source) <= MAX_PARSE_CHARS:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            tree = None
        if tree is not None:
            found: list[tuple[str, int, int]] = []
            stack: list[ast.stmt] = list(reversed(tree.body))
            while stack:  # iterative: a deeply nested cell cannot exhaust the grader's stack
                node = stack.pop()
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if node.name in wanted:
                        found.append((node.name, node.lineno, node.end_lineno or node.lineno))
                    continue
                if isinstance(node, ast.ClassDef):
                    continue
                children: list[ast.stmt] = []
                for attr in ("body", "orelse", "finalbody", "handlers"):
                    children += [c for c in getattr(node, attr, []) or [] if isinstance(c, (ast.stmt, ast.excepthandler))]
                for handler in (c for c in children if isinstance(c, ast.excepthandler)):
                    children += handler.body
                stack.extend(reversed([c for c in children if isinstance(c, ast.stmt)]))
            found.sort(key=lambda d: d[1])
            return found
    # Does not parse (or too long to parse): a `def name(` at the start of a line still counts.
    found = []
    for number, line in enumerate(source.splitlines()[:MAX_SHOWN_LINES * 10], start=1):
        match = re.match(r"\s*(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(", line)
        if match and match.group(1) in wanted:
            found.append((match.group(1), number, number))
    return found


def highlight_python(source: str, lines: Iterable[int] = ()) -> tuple[Markup, bool]:
    """``source`` as highlighted HTML with ``lines`` marked; True when it had to be cut."""
    shown = source.splitlines()
    cut = len(shown) > MAX_SHOWN_LINES or len(source) > MAX_SHOWN_CHARS
    text = "\n".join(shown[:MAX_SHOWN_LINES])[:MAX_SHOWN_CHARS]
    keep = sorted({n for n in lines if 1 <= n <= MAX_SHOWN_LINES})
    formatter = HtmlFormatter(**_FORMATTER_OPTIONS, hl_lines=keep)
    # Pygments escapes every character of the source (&, <, >, quotes): the result is markup.
    return Markup(highlight(text + "\n", PythonLexer(), formatter)), cut


def defining_cells(code_cells: Sequence[str], functions: Iterable[str]) -> list[CodeCell]:
    """The cells (in notebook order) that define any of ``functions``, highlighted, the lines of
    the definitions marked. A function defined in several cells appears in each: the last one
    is what ran."""
    wanted = frozenset(functions)
    out = []
    for number, source in enumerate(code_cells[:MAX_CELLS], start=1):
        if not isinstance(source, str) or "def" not in source:
            continue
        found = _definitions(source, wanted)
        if not found:
            continue
        marked = tuple(n for _, first, last in found for n in range(first, last + 1))
        html, cut = highlight_python(source, marked)
        out.append(CodeCell(number, tuple(dict.fromkeys(name for name, _, _ in found)),
                            tuple(first for _, first, _ in found), html, cut))
    return out
