"""Kernel side of the output cap: what one execution prints or displays is cut in the kernel already.

This module runs **in the student's kernel**, right after it starts: grader/kernel/execute.py sends
its source in two requests of their own, each executing it in a fresh namespace (stdlib and
IPython's own kernel only, imported inside the functions). :func:`cap_output` makes a print loop
unable to send the grader messages over its size limit (which the grader would drop, losing the
rest of that kernel's output); :func:`settle`, run as the next request, removes what IPython left
in the way. A student who undoes this only slows the grading of their own notebook down; the
grader's memory stays bounded either way (grader/kernel/execute.py caps what it keeps).
"""
from __future__ import annotations

from typing import Any

#: Executions remembered at once; beyond it the counts start afresh (a kernel runs one at a time).
MAX_TRACKED = 64


def cap_output(limit: int, shown_limit: int) -> None:
    """At most ``limit`` characters of text per stream and execution; displays (rich outputs,
    images, metadata and all) at most ``shown_limit`` characters per execution."""
    import ipykernel.iostream as _io
    cls: Any = _io.OutStream
    if getattr(cls, "_sheet11_capped", False):
        return
    original = cls.write
    used: dict[tuple[int, str], int] = {}

    def write(self: Any, string: Any) -> Any:
        if not isinstance(string, str):
            return original(self, string)
        try:
            key = (id(self), str(self.parent_header.get("msg_id")))
        except Exception:
            key = (id(self), "")
        if key not in used and len(used) > MAX_TRACKED:
            used.clear()
        room = limit - used.get(key, 0)
        if room > 0:
            used[key] = used.get(key, 0) + len(string)
            original(self, string[:room])
        return len(string)
    cls.write = write
    cls._sheet11_capped = True
    # The grader's cap for a cell's pictures plus ten times the text's: enough for every display
    # the grader could keep, so that 600 displays of 2 MB metadata each are not serialised, sent
    # and dropped one by one.
    try:
        _cap_displays(shown_limit)
    except Exception:
        pass
    # IPython 9 also keeps everything a cell prints in its history, in memory and uncapped (its
    # `_tee` wraps the stream per cell): a print flood grows the kernel to its memory limit,
    # which can leave the kernel's output channel dead. The grader never reads that history.
    try:
        import contextlib

        from IPython import get_ipython
        get_ipython()._tee = lambda channel: contextlib.nullcontext()
    except Exception:
        pass


def _cap_displays(shown_limit: int) -> None:
    import json as _json

    import ipykernel.zmqshell as _zs
    pub: Any = _zs.ZMQDisplayPublisher
    shown = pub.publish
    spent: dict[str, int] = {}

    def publish(self: Any, data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
        try:
            key = str(self.parent_header.get("msg_id"))
        except Exception:
            key = ""
        try:
            size = len(_json.dumps(data, default=str)) + len(_json.dumps(metadata, default=str))
        except Exception:
            size = shown_limit + 1
        if key not in spent and len(spent) > MAX_TRACKED:
            spent.clear()
        if spent.get(key, 0) + size > shown_limit:
            spent[key] = shown_limit + 1
            return None
        spent[key] = spent.get(key, 0) + size
        return shown(self, data, metadata, *args, **kwargs)
    pub.publish = publish


def settle() -> None:
    """Drop the uncapped ``write`` IPython's ``_tee`` stored on each stream object.

    Run as a request of its own after :func:`cap_output`: while ``_tee`` ran that request, it put
    the stream's *uncapped* bound ``write`` on the stream object itself, which would shadow the
    capped class method for good. From this request on no ``_tee`` runs, so removing it sticks.
    """
    import sys
    for stream in (sys.stdout, sys.stderr):
        vars(stream).pop("write", None)
