"""Characters that change how text reads without being text: one place that removes them.

A student's answer, a printed output or an exception's message can carry terminal escapes
(``ESC [ 31 m``, which recolour a tutor's terminal or hide text in it), other control characters,
and bidi controls (U+202E turns the rest of a line around, so "0 points" can read "stniop 0" and
a line can show words in another order than the one they are stored in). Reports and messages
show what the student wrote without them. Zero-width joiners, soft hyphens and the like stay:
they belong to real text (emoji, Persian, long German words) and reorder nothing.
"""
from __future__ import annotations

import re

__all__ = ["ANSI", "BIDI", "reveal_controls", "strip_controls"]

#: Terminal escapes: CSI (``ESC [ ... m``), OSC (``ESC ] ... BEL``) and two-character ones;
#: every part bounded, so the pattern runs in linear time on any input.
ANSI = re.compile(r"\x1b(?:\[[0-?]{0,32}[ -/]{0,8}[@-~]|\][^\x07\x1b]{0,256}(?:\x07|\x1b\\)?|[@-_]?)")

#: Bidi controls: marks, embeddings, overrides and isolates.
BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# C0 and C1 controls except tab, newline and carriage return (progress bars print "\r").
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f" + "".join(sorted(BIDI)) + "]")


def strip_controls(text: str) -> str:
    """``text`` without terminal escapes, control characters (tab, newline, CR stay) and bidi
    controls."""
    return _CONTROLS.sub("", ANSI.sub("", text))


def reveal_controls(text: str) -> str:
    """``text`` with each control character (tab, newline, CR aside) and bidi control written out
    as ``[U+XXXX]``: for code, where a hidden U+202E can make a line read other than it runs
    ("Trojan Source"), the reader must see that it is there."""
    return _CONTROLS.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)
