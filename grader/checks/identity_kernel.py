"""Kernel side of the code-identity check: where each graded function's code came from.

Runs **in the student's kernel**: grader/checks/identity.py sends this file's source with the call and
executes it in a fresh namespace (stdlib only, imported inside the function). For each name it
reports, as the bridge's plain data (numbers, and text as arrays of UTF-8 bytes, since the
bridge sends no strings), the function object's code: its ``co_name``, ``co_filename``,
``co_firstlineno``, the source lines ``linecache`` holds for it (IPython keeps each cell's text
there under the cell's file name; text given to ``exec`` has none) and its bytecode, plus the
kernel's Python version. Nothing here is a verdict: grader/checks/identity.py compares it with the
notebook's cells in the grader's process.
"""
from __future__ import annotations

from typing import Any

MAX_TEXT = 20_000


def identify(namespace: dict[str, Any], names: str) -> dict[str, Any]:
    """For every comma-separated name bound in ``namespace``: where its code came from."""
    import sys

    import torch

    def text(value: str) -> Any:
        return torch.tensor(list(value.encode("utf-8", "replace")[:MAX_TEXT]), dtype=torch.uint8).double()

    out: dict[str, Any] = {"version": float(sys.version_info[0] * 100 + sys.version_info[1])}
    for name in names.split(",")[:16]:
        obj = namespace.get(name)
        code = getattr(obj, "__code__", None)
        if code is None or not hasattr(code, "co_filename"):
            out[name] = {"code": 0.0}
            continue
        import linecache
        lines = linecache.getlines(code.co_filename)
        out[name] = {"code": 1.0, "name": text(str(code.co_name)), "file": text(str(code.co_filename)),
                     "line": float(code.co_firstlineno), "cell": text("".join(lines)),
                     "bytecode": text(code.co_code.hex())}
    return out
