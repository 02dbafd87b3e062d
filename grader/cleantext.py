"""Characters that change how text reads without being text: one place that removes them.

A student's answer, a printed output or an exception's message can carry terminal escapes
(``ESC [ 31 m``, which recolour a tutor's terminal or hide text in it), other control characters,
and bidi controls (U+202E turns the rest of a line around, so "0 points" can read "stniop 0" and
a line can show words in another order than the one they are stored in). Reports and messages
show what the student wrote without them. Zero-width joiners, soft hyphens and the like stay:
they belong to real text (emoji, Persian, long German words) and reorder nothing.

A tutor's terminal is stricter (:func:`terminal_text`): what the CLI prints from a submission (a
file name, a member's name, a message) is one line in which every control character, CR and
newline included, is written out as ``[U+XXXX]``, escapes removed: it cannot move the cursor,
erase a line, set the window title or write the clipboard (OSC 52).

For comparing rather than showing, :func:`fold` and :func:`skeleton` drop what draws nothing and
fold what looks alike (below); :func:`identity_problems` says why a name, id or e-mail address
may pretend to be another.
"""
from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["ANSI", "BIDI", "UNDRAWN_TAGS", "draws_nothing", "fold", "fold_char", "identity_problems", "reveal_controls",
           "skeleton", "strip_controls", "terminal_text"]

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


# Every C0/C1 control (tab, newline and CR too), DEL and the bidi controls: on one terminal line.
_TERMINAL = re.compile("[\x00-\x1f\x7f-\x9f" + "".join(sorted(BIDI)) + "\u2028\u2029]")
#: The longest text from a submission that one printed line shows (a name is far shorter); the
#: grader's own safety limit, not course policy: a constant, not a rubric entry, so no rubric can
#: loosen it.
MAX_TERMINAL_CHARS = 500


def terminal_text(text: object, limit: int = MAX_TERMINAL_CHARS) -> str:
    """``text`` (from a submission) safe to print on a tutor's terminal, as one line: terminal
    escapes removed, every other control character (CR, newline, tab, BEL, ESC) and bidi control
    written out as ``[U+XXXX]``, cut at ``limit`` characters. Every CLI printer passes what came
    from a submission through this (grader/cli/common.py's :func:`shown` adds Rich's escaping)."""
    s = ANSI.sub("", str(text))
    s = _TERMINAL.sub(lambda m: f"[U+{ord(m.group()):04X}]", s)
    return s if len(s) <= limit else s[:limit] + "…"


def reveal_controls(text: str) -> str:
    """``text`` with each control character (tab, newline, CR aside) and bidi control written out
    as ``[U+XXXX]``: for code, where a hidden U+202E can make a line read other than it runs
    ("Trojan Source"), the reader must see that it is there."""
    return _CONTROLS.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


# -- what is drawn -----------------------------------------------------------------------------------
#: Elements whose content no reader sees: the renderer (grader/pages/markdown.py) removes them with their
#: content, and the rules (grader/written/answertext.py) read none of their text, so a word, a citation or
#: a concept hidden in one counts nowhere. ``mphantom`` draws nothing but its size; the rest are
#: never drawn in a page.
UNDRAWN_TAGS = frozenset({"mphantom", "script", "style", "template", "title", "head", "noscript",
                          "annotation", "annotation-xml", "xmp", "noembed", "noframes"})


# -- comparing text as it reads -------------------------------------------------------------------
# What a reader cannot see or tell apart must not tell two texts (or two identities) apart: the
# copied-work check and the identity checks compare the *folded* text. Folding is per character
# (so a caller can keep each folded character's place in the original):
#
# * characters that draw nothing are dropped: every format character (category Cf: zero-width
#   space and joiners, soft hyphen, word joiner, BOM, bidi controls, tag characters), variation
#   selectors, combining grapheme joiner, the Hangul fillers and the blank Braille pattern;
# * compatibility forms become their plain letters (NFKD: the Kelvin sign K is K, fullwidth "ａ"
#   is "a", the ligature "ﬁ" is "fi"); accents (combining marks) are dropped, case is folded;
# * letters of other scripts that look like Latin ones (Cyrillic "а", Greek "ο", ...) become the
#   Latin letter (a short table after Unicode's confusables list, for the scripts a course meets).
_DRAWS_NOTHING = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e\u180f\u2800\u3164\uffa0"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))
)
_CONFUSABLE = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
    "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ɡ": "g",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ϲ": "c", "ϳ": "j",
    # Latin look-alikes and digits read as letters in identities are left alone (0/O, 1/l):
    # they are different characters on every keyboard.
    "ı": "i", "ȷ": "j", "ℓ": "l",
}


def draws_nothing(ch: str) -> bool:
    """Whether ``ch`` is a character no reader sees (format characters and the blanks above)."""
    return ch in _DRAWS_NOTHING or unicodedata.category(ch) == "Cf" or 0xE0100 <= ord(ch) <= 0xE01EF


@functools.lru_cache(maxsize=4096)
def fold_char(ch: str) -> str:
    """What ``ch`` folds to for comparing (see above): '' for a character that draws nothing."""
    if draws_nothing(ch) or unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me"):
        return ""
    out = []
    for part in unicodedata.normalize("NFKD", ch):
        if unicodedata.combining(part) or draws_nothing(part):
            continue
        for low in part.casefold():
            out.append(_CONFUSABLE.get(low, low))
    return "".join(out)


def fold(text: str) -> str:
    """``text`` as it is compared: invisible characters dropped, compatibility forms, case,
    accents and confusable letters folded (see above). Linear in ``len(text)``."""
    return "".join(fold_char(ch) for ch in text)


def skeleton(text: str) -> str:
    """An identity (a name, a student id, an e-mail address) as it is compared: folded, with
    whitespace runs as one space and no blanks at the ends. Two identities with the same skeleton
    cannot be told apart by a reader."""
    return " ".join(fold(unicodedata.normalize("NFKC", text)).split())


def _script(ch: str) -> str:
    """The script of a letter, from its Unicode name ("LATIN", "CYRILLIC", "GREEK", ...)."""
    try:
        return unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return "UNKNOWN"


def identity_problems(text: str, ascii_only: bool = False) -> list[str]:
    """Why an identity may pretend to be another: its invisible characters, its compatibility
    characters (the Kelvin sign for K), words that mix letters of several scripts, and with
    ``ascii_only`` (student ids, e-mail addresses) any character outside ASCII. Plain words."""
    problems: list[str] = []
    hidden = sorted({f"U+{ord(ch):04X}" for ch in text if draws_nothing(ch) or ch in BIDI
                     or unicodedata.category(ch) in ("Cc", "Co", "Cs")})
    if hidden:
        problems.append("invisible characters " + ", ".join(hidden))
    compat = sorted({f"U+{ord(ch):04X}" for ch in text
                     if unicodedata.normalize("NFKC", ch) != ch and not ch.isspace()})
    if compat:
        problems.append("look-alike compatibility characters " + ", ".join(compat))
    for word in text.split():
        scripts = {_script(unicodedata.normalize("NFKC", ch)[:1] or ch) for ch in word if ch.isalpha()}
        if len(scripts) > 1:
            problems.append(f"letters of several scripts ({', '.join(sorted(scripts)).lower()}) in one word")
            break
    if ascii_only:
        other = sorted({f"U+{ord(ch):04X}" for ch in text if ord(ch) > 0x7E})
        if other:
            problems.append("characters outside ASCII " + ", ".join(other))
    return problems
