"""Word, sentence and citation rules for the written answers (contract §5).

The answer is measured as a reader sees it (:mod:`grader.written.answertext` turns its markdown into the
visible text, words and sentences); this module applies the rubric's limits to that and finds
the citations.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from grader.rubric import Question
from grader.written.answertext import (
    MAX_ANSWER_CHARS,
    Analysis,
    AnswerText,
    Word,
    analyse,
    count_words,
    list_items,
    parse_answer,
    sentences,
)
from grader.written.markup import markdown_parser, sources_head

__all__ = [
    "AnswerCheck",
    "AnswerText",
    "RuleFlag",
    "Word",
    "check_answer",
    "count_words",
    "has_citation",
    "is_blank_answer",
    "limit_position",
    "list_items",
    "parse_answer",
    "sentences",
]


@dataclass(frozen=True)
class RuleFlag:
    """A broken rule: ``code`` is one of the contract's flag codes."""

    code: str
    message: str


@dataclass(frozen=True)
class AnswerCheck:
    """What :func:`check_answer` found for one answer.

    At most one flag per code: several offending list items are joined into one message.
    ``over_limit_at`` is the offset in ``text.visible`` where the first word past the word
    limit starts (None when within it or without a limit).
    """

    question: str
    words: int
    sentences: int
    flags: tuple[RuleFlag, ...]
    notes: tuple[str, ...]
    over_limit_at: int | None
    text: AnswerText


# Every quantifier below is bounded and no two unbounded ones compete for the same characters:
# the patterns run in linear time on any text ("(A" + "a" * 100000 took minutes before).
# A DOI anywhere: "10.1162/neco.1997.9.8.1735", "doi:10.1109/72.279181".
_DOI = re.compile(r"\b10\.\d{4,9}/\S+")
_URL_IN_TEXT = re.compile(r"(?:\b[a-z][a-z0-9+.-]{0,31}://|\bwww\.)[^\s<>()]+", re.IGNORECASE)
# A capitalised name holding a lower-case letter (not "NASA"), at most 40 characters.
_NAME = r"[A-Z](?=[\w'\u2019-]{0,39}[a-z\u00df-\u00ff])[\w'\u2019-]{1,40}"
_YEAR = r"(?:19|20)\d{2}[a-z]?"
_ETAL = r"et\.?\s{1,3}al\.?"
_SP = r"\s{0,3}"
# A parenthesis of at most 300 characters; citations are searched inside it only.
_PAREN = re.compile(r"\(([^()]{1,300})\)")
# "(Hochreiter & Schmidhuber, 1997)", "(Goodfellow et al., 2016)", "(see Elman, 1990; ...)",
# "(Graves et al. 2013)". A bare "(Name 1997)" needs "et al."/"&"/"and" or a comma: that
# keeps "(May 1997)" and "(in 1997)" out.
_PAREN_CITE = re.compile(
    rf"\b{_NAME}"
    rf"(?:{_SP},{_SP}{_YEAR}|\s{{1,3}}{_ETAL},?{_SP}{_YEAR}|(?:{_SP},?\s{{1,3}}(?:&|and)\s{{1,3}}{_NAME}),?{_SP}{_YEAR})"
)
# "Bengio et al. (1994)", "Hochreiter and Schmidhuber (1997)", "Elman (1990)".
_NARRATIVE_CITE = re.compile(
    rf"\b{_NAME}(?:\s{{1,3}}{_ETAL}|\s{{1,3}}(?:&|and)\s{{1,3}}{_NAME})?{_SP}\({_SP}{_YEAR}{_SP}\)"
)


def _paren_citation(text: str) -> bool:
    """An author-year citation inside parentheses (see ``_PAREN_CITE``)."""
    return any(_PAREN_CITE.search(m.group(1)) for m in _PAREN.finditer(text))


def _link_targets(markdown: str) -> list[str]:
    targets: list[str] = []
    for tok in markdown_parser().parse(markdown):
        for child in tok.children or []:
            if child.type == "link_open":
                targets.append(str(child.attrs.get("href", "")))
    return targets


def has_citation(markdown: str) -> bool:
    """True for a non-empty sources block, a URL, a DOI or an author-year reference.

    A numbered reference such as "[1]" only counts through its sources block; a bare year
    ("in 1997") is not a citation.
    """
    a = analyse(markdown[:MAX_ANSWER_CHARS])
    if a.text.sources:
        lines = a.text.sources.splitlines()
        head = sources_head(lines[0])
        rest = (head.rest if head else "") + " ".join(lines[1:])
        if any(ch.isalnum() for ch in rest):
            return True
    hrefs = _link_targets(a.text.body_markdown)
    if any(_URL_IN_TEXT.match(h) or _DOI.search(h) for h in hrefs):
        return True
    visible = a.masked  # formulas and code spans masked: a URL in code is not a citation
    return bool(
        _URL_IN_TEXT.search(visible)
        or _DOI.search(visible)
        or _paren_citation(visible)
        or _NARRATIVE_CITE.search(visible)
    )


def limit_position(markdown: str, limit: int) -> int | None:
    """Offset in the visible text where word ``limit + 1`` starts; None within the limit."""
    words = analyse(markdown).text.words
    return words[limit].start if len(words) > limit else None


_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
# Placeholders students leave when no template is at hand (this template's and nbgrader's).
_GENERIC_PLACEHOLDERS = {"your answer here", "type your answer here", "your answer", "answer here",
                         "todo", "your answer goes here"}


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split()).casefold()


def is_blank_answer(markdown: str, template_markdown: str | None = None) -> bool:
    """Empty, only whitespace/HTML comments, or the template's placeholder left unchanged."""
    stripped = _HTML_COMMENT.sub("", (markdown or "")[:MAX_ANSWER_CHARS])
    if not stripped.strip():
        return True
    if template_markdown is not None and _norm(stripped) == _norm(
        _HTML_COMMENT.sub("", template_markdown)
    ):
        return True
    a = analyse(stripped)
    if a.has_media:
        return False  # a drawing or code alone is an answer
    seen = _norm(a.text.visible)
    if template_markdown is not None and seen == _norm(analyse(template_markdown).text.visible):
        return True
    if not a.text.words and not a.text.sources.strip():
        return True
    return seen.strip(" .!:*_-") in _GENERIC_PLACEHOLDERS


def _item_label(a: Analysis, item: int) -> str:
    """A short name for a list item: its text up to the first colon or dash, else 5 words."""
    blk = next((bl for bl in a.blocks if bl.item == item), None)
    if blk is None:
        return ""
    text = " ".join(a.text.visible[blk.start : blk.end].split())
    cuts = [i for i in (text.find(":"), text.find(" - "), text.find(" \u2013 "),
                        text.find(" \u2014 ")) if 0 < i <= 40]
    if cuts:
        return text[: min(cuts)].strip(" *_")
    words = text.split()
    return " ".join(words[:5]) + ("\u2026" if len(words) > 5 else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _range_text(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"allowed {lo}-{hi}" if lo != hi else f"exactly {lo}"
    if hi is not None:
        return f"at most {hi}"
    return f"at least {lo}"


def check_answer(
    question: Question,
    markdown: str,
    template_markdown: str | None = None,
) -> AnswerCheck:
    """Apply one written question's limits (the rubric's :class:`~grader.rubric.Question`: words,
    sentences, list items, citation); a blank answer gets only ``answer.missing``.

    Only the first :data:`MAX_ANSWER_CHARS` characters are read; a longer answer gets a note.
    """
    markdown = markdown or ""
    cut_note = ""
    if len(markdown) > MAX_ANSWER_CHARS:
        cut_note = (f"the answer is {len(markdown):,} characters long; only the first "
                    f"{MAX_ANSWER_CHARS:,} were read for words, sentences and sources")
        markdown = markdown[:MAX_ANSWER_CHARS]
    a = analyse(markdown)
    n_words = len(a.text.words)
    n_sent = len(a.sentence_spans)
    if is_blank_answer(markdown, template_markdown):
        return AnswerCheck(question.id, 0, 0,
                           (RuleFlag("answer.missing", "no answer was given"),),
                           (cut_note,) if cut_note else (), None, a.text)

    flags: list[RuleFlag] = []
    notes: list[str] = [cut_note] if cut_note else []
    over_at = None
    if question.max_words is not None and n_words > question.max_words:
        over_at = a.text.words[question.max_words].start
        flags.append(RuleFlag("words.over_limit", f"{n_words} words (limit {question.max_words})"))
    sentence_problems = _sentence_problems(question, a, notes)
    if sentence_problems:
        flags.append(RuleFlag("sentences.out_of_range", "; ".join(sentence_problems)))
    if question.require_citation and not has_citation(markdown):
        flags.append(RuleFlag(
            "citation.missing",
            "no source cited: add a Sources: line, a URL, a DOI or an author-year reference"))
    return AnswerCheck(question.id, n_words, n_sent, tuple(flags), tuple(notes), over_at, a.text)


def _sentence_problems(question: Question, a: Analysis, notes: list[str]) -> list[str]:
    """What breaks the question's sentence limits: per list item (or, when the list is not
    found, the fallback for the whole answer, with a note) and for the whole answer."""
    n_sent = len(a.sentence_spans)
    problems: list[str] = []
    if question.max_sentences_per_item is not None or question.expected_items is not None:
        if question.expected_items is not None and a.item_count == question.expected_items:
            problems += _item_problems(a, question.max_sentences_per_item)
        else:
            found = "no list" if a.item_count == 0 else f"{_plural(a.item_count, 'top-level item')}"
            expected = question.expected_items
            held = question.fallback_max_sentences
            note = f"the list of {question.id} was broken ({found}, expected {expected})"
            if held is not None:
                note += f"; the whole answer was held to {held} sentences"
                if n_sent > held:
                    problems.append(
                        f"{_plural(n_sent, 'sentence')} (at most {held}; the list of "
                        f"{expected} items was not found)")
            notes.append(note)
    if question.min_sentences is not None or question.max_sentences is not None:
        lo, hi = question.min_sentences, question.max_sentences
        if (lo is not None and n_sent < lo) or (hi is not None and n_sent > hi):
            problems.append(f"{_plural(n_sent, 'sentence')} ({_range_text(lo, hi)})")
    return problems


def _item_problems(a: Analysis, cap: int | None) -> list[str]:
    """The list items with more than ``cap`` sentences, each named by its label."""
    per_item = [0] * a.item_count
    for bi, _, _ in a.sentence_spans:
        it = a.blocks[bi].item
        if it is not None:
            per_item[it] += 1
    problems = []
    for i, n in enumerate(per_item):
        if cap is not None and n > cap:
            label = _item_label(a, i)
            named = f"item {i + 1} ('{label}')" if label else f"item {i + 1}"
            problems.append(f"{named} has {_plural(n, 'sentence')} (at most {cap})")
    return problems
