"""Characters that change how text reads (grader/cleantext.py)."""
from __future__ import annotations

import re

from grader.cleantext import BIDI, reveal_controls, strip_controls
from grader.outputs import cell_outputs
from grader.pages.highlight import highlight_python
from grader.pages.markdown import render_inline, render_markdown


def test_terminal_escapes_controls_and_bidi_go_and_real_text_stays() -> None:
    text = "a\x1b[31mred\x1b[0m \x1b]0;title\x07\u202eevil\u202c\x00 tab\there\nnew\rline caf\u00e9 \u200d\U0001f44d"
    assert strip_controls(text) == "ared evil tab\there\nnew\rline caf\u00e9 \u200d\U0001f44d"
    assert not any(ch in BIDI for ch in strip_controls("".join(sorted(BIDI))))


def test_a_long_run_of_escapes_is_handled_in_one_pass() -> None:
    # Bounded quantifiers: an unterminated sequence repeated many times is not re-scanned.
    assert strip_controls("\x1b[" + "1;" * 100_000).count("\x1b") == 0


def test_code_shows_hidden_characters_instead_of_hiding_them() -> None:
    # "Trojan Source": a U+202E in a comment makes the line read other than it runs.
    assert reveal_controls("ok = True  # \u202e } \u2066") == "ok = True  # [U+202E] } [U+2066]"
    html, _ = highlight_python("access = 'user'\u202e # ignore \u2066\nif access != 'user':\n    pass")
    text = re.sub(r"<[^>]+>", "", html)  # the highlighter wraps each token in a span
    assert "[U+202E]" in text and "[U+2066]" in text and "\u202e" not in html


def test_answers_comments_and_outputs_reach_the_report_without_them() -> None:
    answer = "The RNN **said** \u202epositive\u202c because \x1b[31mof\x1b[0m the last words."
    assert "\u202e" not in render_markdown(answer) and "\x1b" not in render_markdown(answer)
    assert "positive" in render_markdown(answer)
    assert "\u202e" not in render_inline("`f` raised \u202eValueError")
    shown = cell_outputs([{"output_type": "stream", "name": "stdout", "text": "loss \u202e0.1\x1b[1m\n"}])
    assert "\u202e" not in repr(shown) and "\\x1b" not in repr(shown) and "loss 0.1" in repr(shown)
