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

import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CELL_FILE", "Frame", "RaisingLine", "at_line", "cell_frames", "frames_from", "neutralised",
           "raising_line"]

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


#: Frames read from a failure, and names with a shape per frame (the kernel sends as many).
MAX_FRAMES = 12
MAX_SHAPED = 40


@dataclass(frozen=True)
class Frame:
    """One frame of a raise as the kernel reported it (grader/checks/bridge_kernel.py): the file, the
    line, the function, the shapes of its tensor and array locals and its whole-number locals.
    Parsed, never trusted: it steers feedback only (grader/checks/causes.py), never a score."""

    file: str
    line: int
    function: str
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    ints: Mapping[str, int] = field(default_factory=dict)  # whole-number locals (sizes, counts)

    @property
    def in_cell(self) -> bool:
        return bool(CELL_FILE.search(self.file))


def _shape(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list) or len(value) > 8:
        return None
    if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2 ** 40 for n in value):
        return None
    return tuple(value)


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2 ** 31 else None


def _named(table: Any, parse: Callable[[Any], Any]) -> dict[str, Any]:
    """At most :data:`MAX_SHAPED` entries of a frame's ``{name: value}`` table whose name is an
    identifier and whose value ``parse`` accepts (not None), as parsed."""
    out: dict[str, Any] = {}
    for name, value in itertools.islice(table.items() if isinstance(table, dict) else (), 4 * MAX_SHAPED):
        parsed = parse(value)
        if isinstance(name, str) and name.isidentifier() and len(name) <= 60 and parsed is not None \
                and len(out) < MAX_SHAPED:
            out[name] = parsed
    return out


def frames_from(value: Any) -> tuple[Frame, ...]:
    """The kernel's ``frames`` list as :class:`Frame` s (deepest last); what does not parse is left out."""
    if not isinstance(value, list):
        return ()
    out = []
    for item in value[-MAX_FRAMES:]:
        if not isinstance(item, dict):
            continue
        file, line, fn = item.get("file"), item.get("line"), item.get("fn")
        if not (isinstance(file, str) and isinstance(line, int) and not isinstance(line, bool)
                and 0 < line < 10 ** 7 and isinstance(fn, str) and _NAME.fullmatch(fn)):
            continue
        out.append(Frame(file[-400:], line, fn, _named(item.get("shapes"), _shape), _named(item.get("ints"), _whole)))
    return tuple(out)


def cell_frames(frames: tuple[Frame, ...]) -> tuple[Frame, ...]:
    """The frames that lie in the notebook's cells (the student's own code), deepest last."""
    return tuple(f for f in frames if f.in_cell)
