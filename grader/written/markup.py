"""Reading an answer's markup (contract §5): the markdown parser the written rules and the
visible text share, the line that opens the sources block, the text of an HTML block, and the part
of a formula that is drawn (without ``\\phantom{..}``). :mod:`grader.written.answertext` builds the
reader's text from these.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline
from mdit_py_plugins.amsmath import amsmath_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.texmath import texmath_plugin

from grader.cleantext import UNDRAWN_TAGS

# --------------------------------------------------------------------------- parser


def _bracket_display_inline(state: StateInline, silent: bool) -> bool:
    """``\\[..\\]`` inside a paragraph: texmath only knows it at the start of a block."""
    src, pos = state.src, state.pos
    if not src.startswith("\\[", pos):
        return False
    end = src.find("\\]", pos + 2)
    if end < 0:
        return False
    if not silent:
        token = state.push("math_inline_double", "math", 0)
        token.content = src[pos + 2 : end]
        token.markup = "\\["
    state.pos = end + 2
    return True


@functools.lru_cache(maxsize=1)
def markdown_parser() -> MarkdownIt:
    md = (
        MarkdownIt("commonmark")
        .enable(["table", "strikethrough"])
        # allow_digits=False: "costs $5 and $10" is money, not a formula.
        .use(dollarmath_plugin, double_inline=True, allow_digits=False)
        .use(texmath_plugin, delimiters="brackets")  # \(..\) inline, \[..\] as a block
        .use(amsmath_plugin)  # \begin{equation}..\end{equation}
    )
    # Before "escape", which would otherwise turn "\[" into a literal "[".
    md.inline.ruler.before("escape", "math_bracket_display", _bracket_display_inline)
    return md


# --------------------------------------------------------------------------- sources

# One line that opens the sources block: "Sources: ...", "**References:**", "*Source*: ...",
# "## References", or the keyword alone on its line. Leading blockquote marks allowed. Read by
# hand, left to right, once: a regex with several optional blanks in a row backtracks
# quadratically over a line of spaces.
_SOURCE_WORDS = ("references", "reference", "sources", "source")


@dataclass(frozen=True)
class SourcesHead:
    heading: bool
    colon: bool
    rest: str


def sources_head(line: str) -> SourcesHead | None:
    """The parts of a sources line (keyword, colon, heading, the rest), or None."""
    s = line.lstrip()
    while s.startswith(">"):
        s = s[1:].lstrip()
    hashes = len(s) - len(s.lstrip("#"))
    heading = False
    if hashes:
        if hashes > 6 or not s[hashes : hashes + 1].isspace():
            return None
        heading, s = True, s[hashes:].lstrip()
    stars = len(s) - len(s.lstrip("*_"))
    if stars > 3:
        return None
    s = s[stars:].lstrip()
    head = s[:10].casefold()
    word = next((w for w in _SOURCE_WORDS if head.startswith(w)), None)
    if word is None:
        return None
    s = s[len(word):].lstrip()
    colon = s.startswith(":")
    if colon:
        s = s[1:].lstrip()
    closing = len(s) - len(s.lstrip("*_"))
    s = s[min(closing, 3):].lstrip()
    if s.startswith(":"):
        colon, s = True, s[1:]
    return SourcesHead(heading, colon, s.rstrip("\r\n"))


def _code_lines(markdown: str) -> set[int]:
    """Line numbers inside fenced or indented code blocks (a 'Sources:' there is code)."""
    lines: set[int] = set()
    for tok in markdown_parser().parse(markdown):
        if tok.type in ("fence", "code_block") and tok.map:
            lines.update(range(tok.map[0], tok.map[1]))
    return lines


def is_sources_line(line: str) -> bool:
    head = sources_head(line)
    if head is None:
        return False
    rest = head.rest.strip().strip("#").strip()
    # "References to earlier work show ..." is prose: need a colon, a heading or nothing else.
    return head.colon or head.heading or not rest


def split_sources(markdown: str) -> tuple[str, str]:
    lines = markdown.splitlines(keepends=True)
    code = _code_lines(markdown)
    for i, line in enumerate(lines):
        if i not in code and is_sources_line(line):
            return "".join(lines[:i]), "".join(lines[i:])
    return markdown, ""


# --------------------------------------------------------------------------- HTML


class _HTMLText(HTMLParser):
    """Collects the text between tags; nothing is executed or fetched."""

    _SKIP = UNDRAWN_TAGS
    _BREAKS = {"br", "p", "div", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6",
               "ul", "ol", "table", "blockquote", "section", "center", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.has_media = False

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self._SKIP:  # <mphantom/> hides nothing
            self.handle_starttag(tag, attrs)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip += 1
        elif tag in ("img", "svg", "video", "canvas"):
            self.has_media = True
        if tag in self._BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self.skip:
            self.skip -= 1
        if tag in self._BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def html_text(html: str) -> tuple[str, bool]:
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.parts).split()), parser.has_media


# --------------------------------------------------------------------------- LaTeX


_PHANTOM = re.compile(r"\\[hv]?phantom\s*\{")


def drawn_latex(latex: str) -> str:
    """``latex`` without its ``\\phantom{..}`` groups (braces balanced; linear)."""
    out: list[str] = []
    pos = 0
    while True:
        m = _PHANTOM.search(latex, pos)
        if m is None:
            out.append(latex[pos:])
            return "".join(out)
        out.append(latex[pos:m.start()])
        depth, i = 1, m.end()
        while i < len(latex) and depth:
            depth += {"{": 1, "}": -1}.get(latex[i], 0)
            i += 1
        pos = i
