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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from grader.cleantext import reveal_controls

__all__ = ["CodeCell", "defining_cells", "highlight_python", "HIGHLIGHT_CSS"]

# Bounds on the grader's work per report: a notebook of this sheet has a few dozen cells of a few
# dozen lines; these only stop a pasted megabyte from costing seconds or filling the page.
MAX_CELLS = 300  # cells searched
MAX_PARSE_CHARS = 100_000  # a longer cell is searched line by line, not parsed
MAX_TOTAL_PARSE_CHARS = 1_000_000  # per notebook: past it, cells are searched line by line
MAX_SHOWN_LINES = 400  # lines of one cell shown in a report
MAX_SHOWN_CHARS = 40_000

_CSS_CLASS = "hl"
_FORMATTER_OPTIONS = {"cssclass": _CSS_CLASS, "linenos": "inline", "wrapcode": True}


def _style_defs() -> str:
    # Only the rules scoped to our class: Pygments also emits global `pre {...}` rules.
    rules = HtmlFormatter(**_FORMATTER_OPTIONS).get_style_defs(f".{_CSS_CLASS}").splitlines()
    # Pygments' comments name token types ("Generic.Traceback"): dropped, the page stays plain.
    scoped = [re.sub(r"\s*/\*.*?\*/", "", r) for r in rules if r.startswith(f".{_CSS_CLASS}")]
    return "\n".join(scoped + [f".{_CSS_CLASS} .linenos {{ color: #8c959f; padding-right: .8em; user-select: none; }}"])


HIGHLIGHT_CSS = Markup(_style_defs())


@dataclass(frozen=True)
class CodeCell:
    """A definition of one of a question's functions, as the student's cell holds it."""

    name: str
    first: int  # 1-based lines of the definition in its cell (decorators included)
    last: int
    html: Markup
    cut: bool  # longer than a report shows
    whole_cell: bool  # the cell did not parse: all of it is shown, the `def` line marked


def _definitions(source: str, wanted: frozenset[str], parse: bool = True) -> tuple[list[tuple[str, int, int]], bool]:
    """``(name, first_line, last_line)`` of every definition of a wanted name at the cell's top
    level (also inside ``if``/``try``/``with`` blocks, not inside other functions or classes),
    and whether the cell parsed (else only ``def`` lines were found: first == last)."""
    if parse and len(source) <= MAX_PARSE_CHARS:
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
                        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                        found.append((node.name, first, node.end_lineno or node.lineno))
                    continue
                if isinstance(node, ast.ClassDef):
                    continue
                # The blocks of if/for/while/with/try/match: a definition there still runs.
                blocks = [getattr(node, attr, None) or [] for attr in ("body", "orelse", "finalbody")]
                blocks += [h.body for h in getattr(node, "handlers", None) or []]
                blocks += [c.body for c in getattr(node, "cases", None) or []]
                stack.extend(c for block in blocks for c in block if isinstance(c, ast.stmt))
            found.sort(key=lambda d: d[1])
            return found, True
    # Does not parse (or too long to parse): a `def name(` at the start of a line still counts.
    found = []
    for number, line in enumerate(source.splitlines()[:MAX_SHOWN_LINES * 10], start=1):
        match = re.match(r"\s*(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(", line)
        if match and match.group(1) in wanted:
            found.append((match.group(1), number, number))
    return found, False


def highlight_python(source: str, lines: Iterable[int] = (), start: int = 1) -> tuple[Markup, bool]:
    """``source`` as highlighted HTML, numbered from ``start``, with ``lines`` (numbers as shown)
    marked; True when it had to be cut."""
    shown = reveal_controls(source).splitlines()
    cut = len(shown) > MAX_SHOWN_LINES or len(source) > MAX_SHOWN_CHARS
    text = "\n".join(shown[:MAX_SHOWN_LINES])[:MAX_SHOWN_CHARS]
    keep = sorted({n - start + 1 for n in lines if 1 <= n - start + 1 <= MAX_SHOWN_LINES})
    formatter = HtmlFormatter(**_FORMATTER_OPTIONS, hl_lines=keep, linenostart=start)
    # Pygments escapes every character of the source (&, <, >, quotes): the result is markup.
    return Markup(highlight(text + "\n", PythonLexer(), formatter)), cut


def defining_cells(code_cells: Sequence[str], functions: Iterable[str]) -> list[CodeCell]:
    """Every definition of one of ``functions`` in the notebook's code cells, in notebook order,
    highlighted. A function defined twice appears twice: the last definition is the one that ran."""
    wanted = frozenset(functions)
    out: list[CodeCell] = []
    shown_chars = parsed_chars = 0
    for source in code_cells[:MAX_CELLS]:
        if not isinstance(source, str) or "def" not in source:
            continue
        parsed_chars += len(source)
        found, parsed = _definitions(source, wanted, parse=parsed_chars <= MAX_TOTAL_PARSE_CHARS)
        for name, first, last in found:
            if shown_chars > MAX_SHOWN_CHARS * 4:  # a notebook defining the same function hundreds of times
                return out
            if parsed:
                segment = "\n".join(source.splitlines()[first - 1:last])
                html, cut = highlight_python(segment, (), start=first)
            else:
                html, cut = highlight_python(source, (first,))
            shown_chars += min(len(segment if parsed else source), MAX_SHOWN_CHARS)
            out.append(CodeCell(name, first, last, html, cut, not parsed))
    return out

