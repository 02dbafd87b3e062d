"""Where a student's function raised: the line of the student's own cell, read from the traceback.

When a function raises, the kernel sends back the traceback's frames as text (the kernel-side call
code of grader/checks/bridge.py, ``traceback.format_tb``). This module reads that text in the
grader's process, and nothing else the kernel returned: the deepest frame that lies in one of the
notebook's cells (IPython compiles each cell under a file name of its own, ``.../ipykernel_<pid>/
<n>.py``; line numbers count from the cell's first line) is the student's line that raised. A
frame in a library (torch, numpy) below it is not the student's line; a raise in code that has
no cell (text run by ``exec``) has none, and then nothing is said.

The text is the student's kernel's: it is parsed, never trusted. Only a line number, an
identifier (the frame's function) and, on a public example, the source line as IPython quotes it
(bounded, plain text) are taken. A hidden case shows the line number and the function only (the
quoted source comes from the kernel and could carry what the function saw).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CELL_FILE", "RaisingLine", "at_line", "neutralised", "raising_line"]

#: The file name IPython gives a cell (and the audit's in-process session copies).
CELL_FILE = re.compile(r"(?:[/\\]ipykernel_\d+[/\\]\d+\.py|<ipython-input-\d+-[0-9a-f]+>)")
_FRAME = re.compile(r'^  File "(?P<file>[^"\n]{1,400})", line (?P<line>\d{1,7}), in (?P<fn>[^\n]{1,200})\n'
                    r'(?:    (?P<code>[^\n]*)\n)?', re.M)
_NAME = re.compile(r"[A-Za-z_]\w{0,59}|<module>|<lambda>|<listcomp>|<genexpr>")
_MAX_TRACE = 6000
_MAX_CODE = 160
#: The words a report uses for the place; a student's own error text may not contain them.
PHRASE = "of your cell"


@dataclass(frozen=True)
class RaisingLine:
    """The student's line that raised: its number in its cell, its function, its source text."""

    line: int
    function: str
    code: str

    def words(self, with_code: bool) -> str:
        where = f"line {self.line} {PHRASE} (in `{self.function}`)"
        return f"{where}: `{self.code}`" if with_code and self.code else where


def raising_line(trace: str) -> RaisingLine | None:
    """The deepest frame of ``trace`` (``traceback.format_tb`` text) that lies in a notebook cell."""
    found: RaisingLine | None = None
    for m in _FRAME.finditer((trace or "")[-_MAX_TRACE:] + "\n"):
        if not CELL_FILE.search(m.group("file")):
            continue
        fn = m.group("fn").strip()
        code = " ".join((m.group("code") or "").split())
        if code.strip("^~ ") == "":  # Python's carets under the previous line, not source
            code = ""
        found = RaisingLine(int(m.group("line")), fn if _NAME.fullmatch(fn) else "a function",
                            code[:_MAX_CODE].replace("`", "'"))
    return found


def neutralised(error: str) -> str:
    """A student's error text with the report's place words made harmless, so that it cannot
    pass for the grader's "line N of your cell"."""
    return error.replace(PHRASE, "of your  cell")


_AT = re.compile(r", at line (\d{1,7}) " + PHRASE + r" \(in `([^`\n]{1,60})`\)")


def at_line(message: str) -> RaisingLine | None:
    """The place a raised case's message states (see grader/checks/compare.py), without its code."""
    matches = list(_AT.finditer(message))
    if not matches:
        return None
    m = matches[-1]
    return RaisingLine(int(m.group(1)), m.group(2) if _NAME.fullmatch(m.group(2)) else "a function", "")
