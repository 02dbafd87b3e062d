"""Which code defined each graded function in the kernel, and whether that code is in the notebook.

The report shows the student's definitions from the notebook's cells (grader/pages/highlight.py). A
notebook can bind a graded name to other code: ``exec`` of a (decoded) string, an assignment
(``train_recall = _other``), ``globals()[...] = ...``, ``types.FunctionType``. Then the cell a
tutor reads is not the code that ran. After the notebook ran, grader/checks/identity_kernel.py reports
each function's code object from the kernel (name, file, first line, the text ``linecache`` holds
for it, bytecode); here, in the grader's process, it is matched with the notebook's code cells:

- the text IPython kept for the function's file must be one of the notebook's code cells (the
  name it is bound to may be another: a lambda or a factory's function assigned in a cell is the
  notebook's code; the report then shows that cell, marked, as the code that ran), or the
  function was given to ``exec`` as a string literal of a code cell (that literal, compiled in
  the grader, defines a function of the same name and bytecode);
- not checked (yet): that the function's bytecode is the one compiled from that cell. Code
  compiled with ``compile(text, <a cell's file name>, ...)`` under a cell's own file name and line
  passes as that cell. (A bytecode comparison was tried: IPython's compilation of a cell gives other
  bytecode than ``compile`` of its text in the grader, so every honest function was flagged.)

Anything else gives a ``code.not_in_notebook`` flag for the tutor, saying what is known (the file
name and the name the code was compiled under). Evidence, not proof: a kernel that rewrites the
grader's own harness can report anything; this catches the rebinding ordinary code does.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.cleantext import strip_controls

if TYPE_CHECKING:  # pragma: no cover
    from grader.checks.bridge import Bridge

__all__ = ["Origin", "find_origins", "match_origin"]

_EXPR = ("(lambda ns, a: (exec(a['src'], ns), ns['identify'](globals(), a['names']))[1])"
         "({'__name__': 'sheet11_identity'}, __args)")


@dataclass(frozen=True)
class Origin:
    """Where a graded function's code came from: ``cell`` (0-based among the code cells) or None."""

    function: str
    cell: int | None
    line: int = 0
    problem: str = ""  # empty: the code that ran is the notebook's cell ``cell``
    #: The code that ran is not a ``def`` of the graded name in that cell (a lambda or another
    #: function bound by assignment, text given to exec): the report shows that cell instead.
    bound: bool = False


def _text(value: Any, limit: int = 20_000) -> str:
    from grader.checks.bridge import ArrayInfo
    if not isinstance(value, ArrayInfo) or value.array.ndim != 1 or value.array.size > limit:
        return ""
    data = bytes(int(b) & 0xFF for b in value.array)
    return data.decode("utf-8", "replace")


def match_origin(function: str, info: Any, code_cells: Sequence[str]) -> Origin:
    """Match one function's kernel report with the notebook's code cells (pure; tests call it).

    The code is the notebook's when IPython kept its text under a cell's file and that text is a
    code cell of the notebook, whatever name it is bound to (a lambda, a factory's inner function,
    ``functools.partial`` aside, all bound by assignment in a cell), or when it was given to
    ``exec`` as a string literal written in a code cell: compiled here, that literal gives the
    function of the same name with the same bytecode. Anything else (text decoded, downloaded or
    generated at run time) is not in the notebook."""
    if not isinstance(info, dict) or info.get("code") != 1.0:
        return Origin(function, None, 0, "")  # not a plain function: the checks say what it is
    name, file, cell_text = _text(info.get("name"), 200), _text(info.get("file"), 2000), _text(info.get("cell"))
    line = int(info["line"]) if isinstance(info.get("line"), float) else 0
    where = Path(file).name if file.startswith("/") else file
    found = next((i for i, src in enumerate(code_cells)
                  if cell_text.strip() and src.strip() == cell_text.strip()), None)
    literal = False
    if found is None:
        found = _exec_literal(name, _text(info.get("bytecode"), 200_000), code_cells)
        literal = found is not None
    if found is not None:
        return Origin(function, found, line, bound=literal or name != function)
    shown = strip_controls(f"`{name}` compiled from {where or 'an unnamed source'}")[:300]
    return Origin(function, None, line,
                  f"`{function}` that ran was not defined by any cell of the notebook ({shown}, line {line}): "
                  "it came from exec of text that is not written in the notebook, or from generated code; "
                  "the code shown for it in the report is not the code that was graded")


def _exec_literal(name: str, bytecode: str, code_cells: Sequence[str]) -> int | None:
    """The code cell holding a string literal that, compiled, defines ``name`` with ``bytecode``
    (``exec`` of text written in the notebook); None where none does. Bounded: only literals that
    mention ``def name`` or ``lambda`` are compiled, at most 64 of them."""
    import ast
    if not bytecode or not name.isidentifier() and name != "<lambda>":
        return None
    tried = 0
    for index, source in enumerate(code_cells):
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            text = node.value
            if f"def {name}" not in text and "lambda" not in text:
                continue
            tried += 1
            if tried > 64:
                return None
            try:
                module = compile(text, "<string>", "exec", dont_inherit=True)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue
            if _defines(module, name, bytecode):
                return index
    return None


def _defines(code: Any, name: str, bytecode: str, depth: int = 0) -> bool:
    """Whether ``code`` or a code object nested in it (to a few levels) is ``name`` with ``bytecode``."""
    if code.co_name == name and code.co_code.hex() == bytecode:
        return True
    return depth < 4 and any(_defines(c, name, bytecode, depth + 1) for c in code.co_consts if hasattr(c, "co_code"))


def find_origins(bridge: Bridge, names: Sequence[str], code_cells: Sequence[str], timeout: float) -> list[Origin]:
    """Every graded function's origin (the kernel is asked once); ``[]`` when it did not answer."""
    from grader.resources import kernel_module
    source = kernel_module("grader.checks", "identity_kernel.py")
    got = bridge.call(_EXPR, {"src": source, "names": ",".join(names)}, timeout)
    if got.status != "ok" or not isinstance(got.value, dict):
        return []
    return [match_origin(n, got.value.get(n), code_cells) for n in names]
