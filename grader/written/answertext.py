"""The answer as a reader sees it: markdown to visible text, words and sentences (contract §5).

The rules that are applied to it (limits, citations) are in :mod:`grader.written.rules`; the
markdown parser, the sources line, HTML text and drawn LaTeX are read in :mod:`grader.written.markup`.

Everything is measured on the answer *as a reader sees it*: the markdown is parsed with
markdown-it-py and the token stream is walked to build the visible text. No regular expression
ever runs over raw markdown to count words; small regexes only recognise single tokens (a URL,
a DOI, an author-year citation) or a single line (the start of the sources block).

The visible text (:attr:`AnswerText.visible`):

* blocks (paragraphs, headings, list-item paragraphs, table rows, HTML blocks) are separated by
  a blank line (``"\\n\\n"``); a soft line break is a space, a hard break a newline;
* formulas are kept **verbatim with their delimiters** normalised to ``$..$`` (inline) and
  ``$$..$$`` (display, ``\\[..\\]``), so a report can show them; code spans keep their content
  without backticks. Each formula or code span is exactly one :class:`Word`, even with spaces;
* images, code blocks, HTML tags and comments, link targets and the sources block are left out;
* so is everything no reader sees: the content of ``mphantom`` and the other elements of
  :data:`grader.cleantext.UNDRAWN_TAGS` (the renderer, grader/pages/markdown.py, removes the same), and
  ``\\phantom{..}`` (also ``\\hphantom``, ``\\vphantom``) inside a formula. Boxes that could hide
  text by size or offset (``mpadded``, ``voffset``, negative or huge lengths) are neutralised by
  the renderer, so their text is drawn and counts.
"""
from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from dataclasses import dataclass

import pysbd
from markdown_it.token import Token

from grader.cleantext import UNDRAWN_TAGS
from grader.written.markup import drawn_latex, html_text, markdown_parser, split_sources

__all__ = ["AnswerText", "Word", "count_words", "list_items", "parse_answer", "sentences"]

# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Word:
    """One counted word; ``start``/``end`` are offsets into :attr:`AnswerText.visible`."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class AnswerText:
    """An answer split into what is counted (``visible``/``words``) and its sources.

    ``visible`` is the reader's text of ``body_markdown`` (formulas kept verbatim, see the
    module docstring); ``sources`` is the raw markdown from the sources line to the end of the
    cell ('' if there is none).
    """

    visible: str
    words: tuple[Word, ...]
    sources: str
    body_markdown: str


# --------------------------------------------------------------------------- analysis


@functools.lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    return pysbd.Segmenter(language="en", clean=False)


@dataclass(frozen=True)
class _Block:
    start: int
    end: int
    kind: str  # "para", "heading", "row"
    item: int | None  # index of the top-level list item holding it


@dataclass(frozen=True)
class Analysis:
    text: AnswerText
    blocks: tuple[_Block, ...]
    atoms: tuple[tuple[int, int], ...]
    masked: str  # visible with every formula/code span replaced by "x" * len
    sentence_spans: tuple[tuple[int, int, int], ...]  # (block index, start, end)
    item_count: int  # top-level list items
    items_markdown: tuple[str, ...]
    has_media: bool  # images, code blocks: something seen that is not text


class _Builder:
    """Accumulates the visible text block by block.

    Closed blocks are kept as strings in ``buf`` and never joined again: the work per block is
    proportional to that block only (joining everything on every close was quadratic).
    """

    def __init__(self) -> None:
        self.buf: list[str] = []       # closed blocks and the separators between them
        self.closed = 0                # total length of ``buf``
        self.cur_text: list[str] = []  # the open block's pieces
        self.pos = 0                   # closed + the open block's length
        self.atoms: list[tuple[int, int]] = []
        self.atom_mark = 0             # the open block's first atom
        self.blocks: list[_Block] = []
        self.cur: tuple[int, str, int | None, bool] | None = None  # (start, kind, item, separated)
        self.last_was_math = False  # last closed block ended with a display formula

    def _append(self, s: str) -> None:
        if self.cur is None:  # text outside any block (not produced by the walk; kept anyway)
            self.buf.append(s)
            self.closed += len(s)
        else:
            self.cur_text.append(s)
        self.pos += len(s)

    def open(self, kind: str, item: int | None, *, join: bool = False) -> None:
        """Start a block; ``join`` continues the previous block instead (display math)."""
        if (join and self.blocks and self.blocks[-1].kind == "para" and self.blocks[-1].item == item
                and self.cur is None and self.buf and self.closed - len(self.buf[-1]) == self.blocks[-1].start):
            prev = self.blocks.pop()
            text = self.buf.pop()  # the previous block's text is the last thing closed
            self.closed -= len(text)
            self.cur = (prev.start, "para", item, False)
            self.cur_text = [text]
            self.atom_mark = bisect.bisect_left(self.atoms, (prev.start, -1))
            self.pos = self.closed + len(text)
            self._append(" ")
            return
        separated = bool(self.pos)
        if separated:
            self._append("\n\n")
        self.cur = (self.pos, kind, item, separated)
        self.cur_text = []
        self.atom_mark = len(self.atoms)

    def text(self, s: str) -> None:
        self._append(s)

    def atom(self, s: str) -> None:
        self.atoms.append((self.pos, self.pos + len(s)))
        self._append(s)

    def close(self) -> None:
        if self.cur is None:
            return
        start, kind, item, separated = self.cur
        self.cur = None
        block = "".join(self.cur_text)
        self.cur_text = []
        stripped = block.strip()
        if not stripped:
            # Nothing visible: drop the block and the separator written before it.
            if separated:
                self.buf.pop()
                self.closed -= 2
            self.pos = self.closed
            return
        # Leading/trailing blanks (an image or a tag was left out) are not the reader's text.
        lead = len(block) - len(block.lstrip())
        if lead:
            for k in range(self.atom_mark, len(self.atoms)):
                s, e = self.atoms[k]
                self.atoms[k] = (s - lead, e - lead)
        self.buf.append(stripped)
        self.closed += len(stripped)
        self.pos = self.closed
        self.blocks.append(_Block(start, self.pos, kind, item))

    def visible(self) -> str:
        return "".join(self.buf) + "".join(self.cur_text)


_TAG_NAME = re.compile(r"</?([A-Za-z][A-Za-z0-9-]*)")  # the name of one inline HTML tag


def _walk_inline(children: list[Token], b: _Builder) -> bool:
    """Append an inline token stream; returns whether an image was skipped. Text inside an
    element that is not drawn (:data:`UNDRAWN_TAGS`, e.g. ``<mphantom>``) is left out: the block
    ends such an element, as the browser's parser ends it at the paragraph's end."""
    media = False
    hidden = 0
    for tok in children:
        if tok.type == "html_inline":
            name = _tag_name(tok.content)
            if name in UNDRAWN_TAGS and not tok.content.rstrip().endswith("/>"):
                hidden = max(0, hidden - 1) if tok.content.startswith("</") else hidden + 1
                continue
        if not hidden:
            media |= _inline_token(tok, b)
    return media


def _tag_name(html: str) -> str:
    tag = _TAG_NAME.match(html)
    return tag.group(1).lower() if tag else ""


_INLINE_TEXT = {"softbreak": " ", "hardbreak": "\n"}
_MATH_DELIMITERS = {"math_inline": "$", "math_inline_double": "$$"}


def _inline_token(tok: Token, b: _Builder) -> bool:
    """Append one drawn inline token; returns whether it is an image (seen, not read)."""
    t = tok.type
    if t == "text":
        b.text(tok.content)
    elif t in _INLINE_TEXT:
        b.text(_INLINE_TEXT[t])
    elif t == "code_inline":
        if tok.content.strip():
            b.atom(tok.content.strip())
    elif t in _MATH_DELIMITERS:
        drawn = drawn_latex(tok.content).strip()
        if drawn:
            b.atom(f"{_MATH_DELIMITERS[t]}{drawn}{_MATH_DELIMITERS[t]}")
    elif t == "image":
        return True  # neither the image nor its alt text is read
    elif t == "html_inline":
        # A tag by itself; the text between tags comes as separate text tokens.
        name = _tag_name(tok.content)
        if name == "br":
            b.text(" ")
        return name in ("img", "svg", "video")
    # link/emphasis/strike open/close tokens carry no reader-visible text.
    return False


def _item_markdown(lines: list[str], start: int, end: int) -> str:
    """The content of a list item: marker removed, continuation lines dedented."""
    chunk = lines[start:end]
    if not chunk:
        return ""
    first = chunk[0]
    m = re.match(r"^(\s*(?:[-+*]|\d{1,9}[.)])(?:[ \t]{1,4}|$))", first)
    indent = len(m.group(1)) if m else 0
    out = [first[indent:]]
    for line in chunk[1:]:
        lead = len(line) - len(line.lstrip(" "))
        out.append(line[min(lead, indent):])
    return "".join(out).strip("\n").rstrip()


# pysbd is quadratic in the length of its input (2,000 characters of "a. a. a." take 0.17 s, 80 KB
# took 36 s): it only ever sees chunks of at most this many characters (the grader's own safety
# limit, not course policy: a constant, not a rubric entry, so no rubric can loosen it).
_CHUNK = 1000
# A sentence end that is a safe place to cut: ".", "!" or "?" and a blank.
_SENTENCE_END = re.compile(r"[.!?][\s]")


def _chunks(text: str) -> list[str]:
    """Cut a long block into pieces of at most ``_CHUNK`` characters for pysbd (linear time).

    Answers are a few hundred characters and stay whole. A longer block is cut after the last
    sentence end (". " followed by a capital letter, else any ". ") in the second half of each
    window, else at its last blank, else (one endless word) hard at ``_CHUNK``.
    """
    out: list[str] = []
    start, n = 0, len(text)
    while n - start > _CHUNK:
        lo, hi = start + _CHUNK // 2, start + _CHUNK
        window = text[lo:hi]
        cut = -1
        fallback = -1
        for m in _SENTENCE_END.finditer(window):
            at = lo + m.end()
            fallback = at
            if at < n and text[at].isupper():
                cut = at
        if cut < 0:
            cut = fallback
        if cut < 0:
            blank = max(window.rfind(" "), window.rfind("\t"))
            cut = lo + blank + 1 if blank >= 0 else hi
        out.append(text[start:cut])
        start = cut
    out.append(text[start:])
    return out


def _sentence_spans(
    masked: str, blocks: tuple[_Block, ...], atoms: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int, int], ...]:
    """Sentences of every text block (headings are titles, not sentences).

    A piece holding no letter or digit outside formulas and code spans (a display formula on
    its own) is not a sentence: the formula is a word of the sentence around it.
    """
    in_atom = bytearray(len(masked))
    for s, e in atoms:
        in_atom[s:e] = b"\x01" * (e - s)
    seg = _segmenter()
    spans: list[tuple[int, int, int]] = []
    for bi, blk in enumerate(blocks):
        if blk.kind == "heading":
            continue
        # Newlines would be taken as sentence ends by pysbd; same length keeps offsets.
        text = masked[blk.start : blk.end].replace("\n", " ")
        cursor = 0
        pieces = [p for chunk in _chunks(text) for p in seg.segment(chunk)]
        for piece in pieces:
            piece_s = piece.strip()
            if not piece_s:
                continue
            at = text.find(piece_s, cursor)
            if at < 0:  # pysbd never rewrites with clean=False; be safe anyway
                continue
            cursor = at + len(piece_s)
            lo, hi = blk.start + at, blk.start + cursor
            if any(masked[i].isalnum() and not in_atom[i] for i in range(lo, hi)):
                spans.append((bi, lo, hi))
    return tuple(spans)


_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]{0,31}://|www\.)\S+$", re.IGNORECASE)
_TOKEN = re.compile(r"[^\s\u2014\u2015]+")  # whitespace and em dashes separate words
_EDGE_PUNCT = "()[]{}<>\"'`.,;:!?\u201c\u201d\u2018\u2019"


def _words(visible: str, masked: str) -> tuple[Word, ...]:
    words: list[Word] = []
    for m in _TOKEN.finditer(masked):
        token = m.group(0)
        if not any(ch.isalnum() for ch in token):
            continue  # a dash, a bullet, a lone bracket
        original = visible[m.start() : m.end()]
        if token == original and _URL.match(original.strip(_EDGE_PUNCT)):
            continue  # a bare URL is not a word (a masked formula never is a URL)
        words.append(Word(original, m.start(), m.end()))
    return tuple(words)


# The longest answer that is read: a 100-word answer is under 1,000 characters, the longest model
# answer under 3,000. Beyond this, the rest is not looked at (and the tutor is told), so the
# markdown parser, pysbd and the citation search each see bounded input. This is the grader's own
# safety limit, not course policy: a constant, not a rubric entry, so no rubric can loosen it; the
# rubric's word and sentence rules are the course's.
MAX_ANSWER_CHARS = 20_000


class _BlockWalk:
    """Walks the block tokens of an answer's body into a :class:`_Builder`: paragraphs,
    headings, table rows, display formulas and HTML blocks, and the top-level list items."""

    def __init__(self, body: str) -> None:
        self.b = _Builder()
        self.body_lines = body.splitlines(keepends=True)
        self.media = False
        self.item: int | None = None
        self.items_md: list[str] = []
        self.in_row = self.first_cell = False
        self.prev_type = ""
        self.after_math = False  # the previous block was a display formula joined to a paragraph

    def walk(self, tokens: list[Token]) -> None:
        for tok in tokens:
            self.token(tok)
            self.prev_type = tok.type

    def token(self, tok: Token) -> None:
        t = tok.type
        if t in ("list_item_open", "list_item_close") and tok.level == 1:
            self.list_item(tok)
        elif t in ("tr_open", "tr_close"):
            self.row(tok)
        elif t == "inline":
            self.inline(tok)
        elif t in ("math_block", "math_block_eqno", "amsmath"):
            self.math_block(tok)
        elif t == "html_block":
            text, has_img = html_text(tok.content)
            self.media |= has_img
            self.b.open("para", self.item)
            self.b.text(text)
            self.b.close()
            self.after_math = False
        elif t in ("fence", "code_block"):
            self.media = True  # code or text art: seen, but not counted
            self.after_math = False
        elif t not in ("paragraph_open", "paragraph_close"):
            self.after_math = False  # a list, quote or rule between formula and text: a new block

    def list_item(self, tok: Token) -> None:
        if tok.type == "list_item_close":
            self.item = None
            return
        self.item = len(self.items_md)
        self.items_md.append(_item_markdown(self.body_lines, tok.map[0], tok.map[1]) if tok.map else "")
        self.after_math = False

    def row(self, tok: Token) -> None:
        if tok.type == "tr_close":
            self.b.close()
            self.in_row = False
            return
        self.b.open("row", self.item)
        self.in_row, self.first_cell = True, True
        self.after_math = False

    def inline(self, tok: Token) -> None:
        if self.in_row:
            if not self.first_cell:
                self.b.text(" | ")
            self.first_cell = False
            self.media |= _walk_inline(tok.children or [], self.b)
            return
        kind = "heading" if self.prev_type == "heading_open" else "para"
        # "where x is ..." after a display formula continues the sentence it ended.
        first = tok.content.lstrip()[:1]
        join = self.after_math and kind == "para" and bool(first) and (first.islower() or first in ",;.)")
        self.b.open(kind, self.item, join=join)
        self.media |= _walk_inline(tok.children or [], self.b)
        self.b.close()
        self.after_math = False

    def math_block(self, tok: Token) -> None:
        content = drawn_latex(tok.content).strip()
        if not content:
            return
        self.b.open("para", self.item, join=True)
        self.b.atom(content if tok.type == "amsmath" else f"$${content}$$")
        self.b.close()
        self.after_math = True


@functools.lru_cache(maxsize=256)
def analyse(markdown: str) -> Analysis:
    markdown = unicodedata.normalize("NFC", (markdown or "")[:MAX_ANSWER_CHARS])
    body, sources = split_sources(markdown)
    walk = _BlockWalk(body)
    walk.walk(markdown_parser().parse(body))
    b = walk.b
    visible = b.visible()
    atoms = tuple(b.atoms)
    chars = list(visible)
    for s, e in atoms:
        chars[s:e] = "x" * (e - s)
    masked = "".join(chars)
    blocks = tuple(b.blocks)
    answer_text = AnswerText(visible=visible, words=_words(visible, masked), sources=sources,
                             body_markdown=body)
    return Analysis(
        text=answer_text,
        blocks=blocks,
        atoms=atoms,
        masked=masked,
        sentence_spans=_sentence_spans(masked, blocks, atoms),
        item_count=len(walk.items_md),
        items_markdown=tuple(walk.items_md),
        has_media=walk.media,
    )


# --------------------------------------------------------------------------- public API


def parse_answer(markdown: str) -> AnswerText:
    """The answer as a reader sees it, its words and its sources block."""
    return analyse(markdown).text


def count_words(markdown: str) -> int:
    """Words of the answer under the rules of contract §5 (sources not counted)."""
    return len(analyse(markdown).text.words)


def sentences(markdown: str) -> list[str]:
    """The sentences of the visible text, block by block (headings and sources excluded)."""
    a = analyse(markdown)
    return [a.text.visible[s:e] for _, s, e in a.sentence_spans]


def list_items(markdown: str) -> list[str] | None:
    """The markdown of every top-level list item (marker removed), None without a list.

    Items of several top-level lists are concatenated: switching from ``-`` to ``*`` starts a
    new list in CommonMark, which a student does not see as breaking the list.
    """
    a = analyse(markdown)
    return list(a.items_markdown) if a.item_count else None
