"""Which code defined each graded function in the kernel, and whether that code is in the notebook.

The report shows the student's definitions from the notebook's cells (grader/pages/highlight.py). A
notebook can bind a graded name to other code: ``exec`` of a (decoded) string, an assignment
(``train_recall = _other``), ``globals()[...] = ...``, ``types.FunctionType``. Then the cell a
tutor reads is not the code that ran. After the notebook ran, grader/checks/identity_kernel.py reports
each function's code object from the kernel (name, file, first line, the text ``linecache`` holds
for it, bytecode); here, in the grader's process, it is matched with the notebook's code cells:

- the text IPython kept for the function's file must be one of the notebook's code cells, and the
  function's name in its code must be the graded name;
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


def _text(value: Any, limit: int = 20_000) -> str:
    from grader.checks.bridge import ArrayInfo
    if not isinstance(value, ArrayInfo) or value.array.ndim != 1 or value.array.size > limit:
        return ""
    data = bytes(int(b) & 0xFF for b in value.array)
    return data.decode("utf-8", "replace")


def match_origin(function: str, info: Any, code_cells: Sequence[str]) -> Origin:
    """Match one function's kernel report with the notebook's code cells (pure; tests call it)."""
    if not isinstance(info, dict) or info.get("code") != 1.0:
        return Origin(function, None, 0, "")  # not a plain function: the checks say what it is
    name, file, cell_text = _text(info.get("name"), 200), _text(info.get("file"), 2000), _text(info.get("cell"))
    line = int(info["line"]) if isinstance(info.get("line"), float) else 0
    where = Path(file).name if file.startswith("/") else file
    found = next((i for i, src in enumerate(code_cells)
                  if cell_text.strip() and src.strip() == cell_text.strip()), None)
    shown = strip_controls(f"`{name}` compiled from {where or 'an unnamed source'}")[:300]
    if found is None:
        return Origin(function, None, line,
                      f"`{function}` that ran was not defined by any cell of the notebook ({shown}, line {line}): "
                      "it came from exec of a string, generated code or an assignment; the code shown "
                      "for it in the report is not the code that was graded")
    if name != function:
        return Origin(function, found, line,
                      f"`{function}` that ran is `{strip_controls(name)[:100]}` of code cell {found + 1} "
                      "(bound to the graded name by an assignment); the report's code for "
                      f"`{function}` is not the code that was graded")
    return Origin(function, found, line)


def find_origins(bridge: Bridge, names: Sequence[str], code_cells: Sequence[str], timeout: float) -> list[Origin]:
    """Every graded function's origin (the kernel is asked once); ``[]`` when it did not answer."""
    from grader.resources import kernel_module
    source = kernel_module("grader.checks", "identity_kernel.py")
    got = bridge.call(_EXPR, {"src": source, "names": ",".join(names)}, timeout)
    if got.status != "ok" or not isinstance(got.value, dict):
        return []
    return [match_origin(n, got.value.get(n), code_cells) for n in names]
