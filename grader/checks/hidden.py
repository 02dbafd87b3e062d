"""What a student may see of a case whose inputs are hidden: the grader's own words, never
anything the student's code made of the inputs.

:func:`redacted_hidden` restates a case result for a hidden case. An exception's message, a value
the code returned, its type name, keys, length or shape, its largest error and its curve can each
carry the hidden inputs out, so none is shown; what stays is the grader's wording (a named
mistake, "the values differ ... first at index ..."), the exception's class name, the line that
raised (its number and function, not its source) and the reference's values. A structure message
keeps only the kind of what came back, a dtype of a few names and the contract's missing keys
(:data:`~grader.checks.outputs.GRAD_KEYS`). The public examples reproduce a failure with
everything shown (:data:`CHECK_PUBLIC`).
"""
from __future__ import annotations

import re
from dataclasses import replace

from grader.checks.causes import cause_sentence
from grader.checks.outputs import GRAD_KEYS
from grader.checks.raised import at_line
from grader.result import CaseResult

__all__ = ["CHECK_PUBLIC", "HIDDEN_GOT", "hidden_structure", "redacted_hidden"]

HIDDEN_GOT = "(not shown: the case's inputs are hidden)"
CHECK_PUBLIC = "`grade check` runs the public examples and shows it in full"


_LABEL = r"(?:(?:h_new|c_new|[WUbVc]): )?"
# Only the grader's own words for a kind: a class name the code made up could spell an input.
_KIND = re.compile(r"^(None|the number|an? (?:list|tuple|dict|tensor|numpy array|ndarray|str|int|float|bool|"
                   r"function|generator|set))\b")
_DTYPE = re.compile(r"^(?:torch\.)?[a-z]{3,8}\d{0,3}$")


def _kind(text: str) -> str:
    """The kind of a value from its description, without its shape, length, keys or values."""
    m = _KIND.match(text.strip())
    return "a number" if m and m.group(1) == "the number" else (m.group(1) if m else "a value")


def hidden_structure(message: str) -> str:
    """A structure message of a hidden case in words that carry no input out: the kind of what
    came back (list, tuple, dict, None, tensor), a dtype (one of a few names), the contract's
    missing keys; never a returned shape, length, key of its own or value. Anything else: the
    plain sentence that the structure differs."""
    label = re.match(_LABEL, message)
    where = label.group(0) if label else ""
    rest = message[len(where):]
    m = re.fullmatch(r"returned dtype (\S+); expected a floating-point tensor \(torch\.float32\)", rest)
    if m and _DTYPE.match(m.group(1)):
        return f"{where}returned dtype {m.group(1)}; expected a floating-point tensor (torch.float32)"
    m = re.fullmatch(r"returned shape \([\d, ]*\); expected (\([\d, ]*\))(?:: (.*))?", rest, re.S)
    if m:
        # the grader's finding (axes swapped, an extra axis, ...) stays; the returned shape in it goes
        finding = re.sub(r"\s*\([^()]*\)", "", re.sub(r"\([\d, ]*\)", "", m.group(2) or ""))
        # a number left in it could come from the output (a factor): only an axis's length 1 may stay
        finding = "" if re.search(r"\d", re.sub(r"\b(?:length|axis) 1\b", "", finding)) else finding.strip()
        return (f"{where}returned a tensor of another shape; expected shape {m.group(1)}"
                + (f": {finding}" if finding else ""))
    m = re.fullmatch(r"the returned dict has no ((?:'[A-Za-z]', )*'[A-Za-z]'); expected the keys (.*)", rest)
    if m and all(k.strip("' ") in GRAD_KEYS for k in m.group(1).split(",")):
        return f"the returned dict has no {m.group(1)}; expected the keys {', '.join(GRAD_KEYS)}"
    m = re.fullmatch(r"returned (.+?); expected (.+)", rest)
    if m:
        got, want = _kind(m.group(1)), _kind(m.group(2))
        if got != want:
            return f"{where}returned {got}; expected {want}"
        return f"{where}returned {got} of another structure, shape or dtype than expected"
    return "returned a value of another structure, type, shape or dtype than expected"


def redacted_hidden(case: CaseResult) -> CaseResult:
    """``case`` as a student may see it when its inputs are hidden: nothing the student's code
    made of them is shown (an exception's message, a value it returned, its type, keys or shape,
    its largest error, its curve), since any of it can carry the hidden inputs out. What stays is
    the grader's own wording (a named mistake, "the values differ ... first at index ..."), the
    exception's class name and the reference's values; the public examples reproduce a failure
    with everything shown."""
    # the chart keeps the reference's curve; the student's is a channel out (one value per step)
    series = {"expected": tuple(case.series["expected"]), "got": ()} if "expected" in case.series else {}
    if case.passed:
        return replace(case, series=series)
    if case.call_status == "raised":
        place = at_line(case.message)  # the line number and function only, not the quoted source
        at = f", at {place.words(with_code=False)}" if place else ""
        message = (f"`{case.function}` raised {case.error_type or 'an exception'} on this hidden case{at} "
                   f"(its message is not shown, as it may quote the hidden inputs; {CHECK_PUBLIC})")
        # the grader's words from the student's source and the inputs' shapes (shown anyway)
        message += cause_sentence(case.cause)
    elif case.call_status == "ok" and not case.wrong_values and "NaN or infinite" not in case.message:
        message = f"{hidden_structure(case.message)} on this hidden case ({CHECK_PUBLIC})"
    elif case.call_status not in ("ok", "timeout", "died", "missing", "not_called"):
        message = f"`{case.function}`'s answer on this hidden case could not be read ({CHECK_PUBLIC})"
    else:
        message = case.message  # the grader's own words only (a mistake, where the values differ)
    return replace(case, message=message, got=HIDDEN_GOT if case.got else "", max_abs=None,
                   max_rel=None, series=series)
