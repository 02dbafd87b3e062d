"""Word, sentence, citation and blank rules of contract §5 (grader.written.rules)."""
from __future__ import annotations

from typing import Any

import pytest

from grader.rubric import Question
from grader.written.rules import (
    MAX_ANSWER_CHARS,
    check_answer,
    count_words,
    has_citation,
    is_blank_answer,
    limit_position,
    list_items,
    parse_answer,
    sentences,
)

RULE_WORDS: dict[str, Any] = {"max_words": 100, "require_citation": True}
RULE_LIST: dict[str, Any] = {"max_sentences_per_item": 2, "expected_items": 5, "fallback_max_sentences": 10}
RULE_RANGE: dict[str, Any] = {"min_sentences": 3, "max_sentences": 5}


def question(qid: str, limits: dict[str, Any]) -> Question:
    """A written question of the rubric with these limits (title and points do not matter here)."""
    return Question(qid, f"Question {qid}", 1.0, **limits)


def words_of(n: int, start: int = 0) -> str:
    """``n`` distinct plain words."""
    return " ".join(f"w{i}" for i in range(start, start + n))


# --------------------------------------------------------------------------- words


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("", 0),
        ("   \n\n  ", 0),
        ("Plain words only here.", 4),
        ("# A heading\n\nBody text.", 4),
        ("*emphasis* and **strong** and ~~gone~~ words", 6),
        ("**long**-term dependencies", 2),  # emphasis inside a hyphenated word
        ("- first item\n- second item\n\n1. third\n2. fourth", 6),
        ("[link text](https://example.org/page) counts", 3),
        ("see https://example.org/a/b?c=d for details", 3),
        ("see (https://example.org). Done", 2),
        ("<https://example.org/autolink> only", 1),
        ("www.deeplearningbook.org is a book", 3),
        ("the loss $L = \\sum_t \\ell_t$ is summed", 5),
        ("the loss $$L = \\sum_t \\ell_t$$ is summed", 5),
        ("the loss \\(L = \\sum_t \\ell_t\\) is summed", 5),
        ("the loss \\[L = \\sum_t \\ell_t\\] is summed", 5),
        ("The loss is\n\n$$\nL = \\sum_t \\ell_t\n$$\n\nsummed over time.", 7),
        ("The loss is\n\n\\[\nL = a + b\n\\]\n\nsummed.", 5),
        ("\\begin{equation}\na = b + c\n\\end{equation}", 1),
        ("call `torch.nn.RNN(input_size, hidden)` here", 3),
        ("Code:\n\n```python\nx = 1\ny = 2\n```\n\nend", 2),
        ("Code:\n\n    indented code block here\n\nend", 2),
        ("![a drawing of a tree with many words](tree.png) The tree.", 2),
        ("<b>bold</b> and <i>it</i>alic", 3),
        ("<div>\nhello <span>world</span>\n</div>", 2),
        ("<!-- a hidden comment with words --> visible", 1),
        ("<script>var a = 1;</script>\n\nshown", 1),
        ("a line<br>break", 3),
        ("long-term short-term many-to-many", 3),
        ("pi is 3.14, about 1,000 or 10% of 2.5e-3", 9),
        ("a — b", 2),  # an em dash alone is not a word
        ("well—known", 2),
        ("| Input | Output |\n|---|---|\n| a sentence | a label |", 6),
        ("> quoted text here", 3),
        ("money costs $5 and $10 today", 6),  # not a formula
        ("e.g. this, i.e. that", 4),
        ("Über-große Änderungen", 2),
    ],
)
def test_count_words(markdown: str, expected: int) -> None:
    assert count_words(markdown) == expected, [w.text for w in parse_answer(markdown).words]


def test_formula_is_one_word_kept_verbatim() -> None:
    text = parse_answer("We compute $h_t = \\tanh(W h_{t-1} + U x_t)$ each step.")
    assert [w.text for w in text.words][2] == "$h_t = \\tanh(W h_{t-1} + U x_t)$"
    assert "$h_t" in text.visible


def test_word_offsets_point_into_visible() -> None:
    text = parse_answer("**Bold** start, a [link](http://x.org) and `code x` end.")
    for w in text.words:
        assert text.visible[w.start : w.end] == w.text
    assert [w.text for w in text.words] == ["Bold", "start,", "a", "link", "and", "code x", "end."]


def test_image_alt_and_link_target_not_visible() -> None:
    text = parse_answer("![secret alt](pic.png) [shown](https://hidden.example)")
    assert "secret" not in text.visible
    assert "hidden" not in text.visible
    assert text.visible == "shown"


# --------------------------------------------------------------------------- sources


@pytest.mark.parametrize(
    "sources_line",
    [
        "Source: Goodfellow et al., Deep Learning, 2016.",
        "Sources: Goodfellow et al., Deep Learning, 2016.",
        "References: Goodfellow et al., Deep Learning, 2016.",
        "**Sources:** Goodfellow et al., Deep Learning, 2016.",
        "**Sources**: Goodfellow et al., Deep Learning, 2016.",
        "*References:* Goodfellow et al., Deep Learning, 2016.",
        "__Source:__ Goodfellow et al., Deep Learning, 2016.",
        "_Source_: Goodfellow et al., Deep Learning, 2016.",
        "## References\n\n1. Goodfellow et al., Deep Learning, 2016.",
        "### Sources\n- Goodfellow et al., Deep Learning, 2016.",
        "**References**\n\n- Goodfellow et al., Deep Learning, 2016.",
        "sources: Goodfellow et al., Deep Learning, 2016.",
        "Sources:\n- [Deep Learning](https://www.deeplearningbook.org)\n- Another source text",
    ],
)
def test_sources_block_not_counted(sources_line: str) -> None:
    body = "CNNs share weights across space while RNNs share them across time."
    markdown = f"{body}\n\n{sources_line}\n"
    text = parse_answer(markdown)
    assert count_words(markdown) == 11
    assert text.sources.startswith(sources_line.split("\n")[0])
    assert text.body_markdown.strip() == body
    assert has_citation(markdown)


def test_sources_line_inside_paragraph_starts_sources() -> None:
    markdown = "RNNs unroll over time.\nSources: Elman 1990, Finding structure in time."
    assert count_words(markdown) == 4
    assert parse_answer(markdown).sources.startswith("Sources:")


@pytest.mark.parametrize(
    "markdown",
    [
        "References to earlier work are common in papers.",
        "Sources of error include vanishing gradients.",
        "```\nSources: this is code\n```\n",
        "The word source: appears mid-line here.",
    ],
)
def test_not_a_sources_line(markdown: str) -> None:
    assert parse_answer(markdown).sources == ""


def test_no_sources() -> None:
    text = parse_answer("Just an answer.")
    assert text.sources == ""
    assert text.body_markdown == "Just an answer."


# --------------------------------------------------------------------------- limits


def test_exactly_100_words_is_within_limit() -> None:
    markdown = words_of(100) + "\n\nSources: " + words_of(30, 500)
    assert count_words(markdown) == 100
    assert limit_position(markdown, 100) is None
    check = check_answer(question("11.2.1", RULE_WORDS), markdown)
    assert check.words == 100
    assert check.flags == ()
    assert check.over_limit_at is None


def test_101_words_is_over_limit() -> None:
    markdown = "**Answer.** " + words_of(99) + " (Goodfellow et al., 2016)"
    assert count_words(markdown) == 104
    markdown = words_of(101) + " https://example.org"
    check = check_answer(question("11.2.1", RULE_WORDS), markdown)
    assert check.words == 101
    assert [f.code for f in check.flags] == ["words.over_limit"]
    assert check.flags[0].message == "101 words (limit 100)"
    pos = limit_position(markdown, 100)
    assert pos is not None and check.over_limit_at == pos
    assert check.text.visible[pos:].startswith("w100")
    assert count_words(check.text.visible[:pos]) == 100


@pytest.mark.parametrize(
    ("markdown", "limit", "expected_prefix_words"),
    [
        ("one two three four", 2, 2),
        ("**one** two $x+y$ four five", 3, 3),
        ("# Title\n\n- one\n- two three", 3, 3),
    ],
)
def test_limit_position(markdown: str, limit: int, expected_prefix_words: int) -> None:
    text = parse_answer(markdown)
    pos = limit_position(markdown, limit)
    assert pos is not None
    assert len([w for w in text.words if w.end <= pos]) == expected_prefix_words
    assert limit_position(markdown, len(text.words)) is None


def test_112_words_message() -> None:
    check = check_answer(question("11.2.2", RULE_WORDS), words_of(112) + "\n\nSources: Hochreiter 1997")
    assert check.flags == (check.flags[0],)
    assert check.flags[0].message == "112 words (limit 100)"


# --------------------------------------------------------------------------- sentences


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("One. Two! Three?", ["One.", "Two!", "Three?"]),
        ("RNNs are used e.g. in translation. They work.",
         ["RNNs are used e.g. in translation.", "They work."]),
        ("LSTMs were proposed by Hochreiter et al. in 1997. They gate.",
         ["LSTMs were proposed by Hochreiter et al. in 1997.", "They gate."]),
        ("See Fig. 2 for the tree. It has leaves.", ["See Fig. 2 for the tree.", "It has leaves."]),
        ("The value is 3.14 here. Next one.", ["The value is 3.14 here.", "Next one."]),
        ("We use $a.b = c$ here. Then more.", ["We use $a.b = c$ here.", "Then more."]),
        ("- first item without stop\n- second item. With two.",
         ["first item without stop", "second item.", "With two."]),
        ("Para one\n\nPara two", ["Para one", "Para two"]),
        ("# Heading is not a sentence\n\nBody.", ["Body."]),
        ("A line\nthat wraps. End.", ["A line that wraps.", "End."]),
        ("The loss is\n\n$$\nL = a.b\n$$\n\nwhere a is big. Done.",
         ["The loss is $$L = a.b$$ where a is big.", "Done."]),
        ("Defined below.\n\n$$\nL = a\n$$\n\nThen more.", ["Defined below.", "Then more."]),
        ("Text here.\n\n```\nnot. a. sentence.\n```", ["Text here."]),
        ("Body. \n\nSources: One. Two. Three.", ["Body."]),
        ("", []),
    ],
)
def test_sentences(markdown: str, expected: list[str]) -> None:
    assert sentences(markdown) == expected


def test_list_items_are_never_merged() -> None:
    markdown = "- ends without a stop\n- Starts with a capital and ends.\n"
    assert len(sentences(markdown)) == 2


# --------------------------------------------------------------------------- 11.3.1 lists

ARCHS = ["one-to-one", "one-to-many", "many-to-one", "many-to-many (encoder-decoder)",
         "many-to-many (synchronised)"]


def five_items(counts: list[int]) -> str:
    lines = []
    for arch, n in zip(ARCHS, counts):
        body = " ".join(f"Sentence {k} about {arch.split()[0]} e.g. images." for k in range(n))
        lines.append(f"- **{arch}:** {body}")
    return "\n".join(lines) + "\n"


def test_list_items_markdown() -> None:
    markdown = "Intro line.\n\n1. first\n   continued\n2. second\n   - nested\n"
    assert list_items(markdown) == ["first\ncontinued", "second\n- nested"]
    assert list_items("No list at all.") is None
    assert list_items("- a\n- b\n\n* c\n") == ["a", "b", "c"]  # a new bullet char is a new list


def test_five_items_within_limit() -> None:
    markdown = five_items([1, 2, 2, 1, 2])
    assert len(list_items(markdown) or []) == 5
    check = check_answer(question("11.3.1", RULE_LIST), markdown)
    assert check.flags == ()
    assert check.notes == ()
    assert check.sentences == 8


def test_item_over_limit_named() -> None:
    check = check_answer(question("11.3.1", RULE_LIST), five_items([1, 2, 3, 2, 4]))
    assert [f.code for f in check.flags] == ["sentences.out_of_range"]
    msg = check.flags[0].message
    assert "item 3 ('many-to-one') has 3 sentences (at most 2)" in msg
    assert "item 5 ('many-to-many (synchronised)') has 4 sentences (at most 2)" in msg
    assert "item 1" not in msg


def test_broken_list_falls_back_to_ten_sentences() -> None:
    # Four items: the student merged two architectures into one paragraph.
    markdown = five_items([2, 2, 2, 2])
    markdown += "\nThe last one is many-to-many. It tags words. Done here.\n"
    check = check_answer(question("11.3.1", RULE_LIST), markdown)
    assert check.sentences == 11
    assert [f.code for f in check.flags] == ["sentences.out_of_range"]
    assert "11 sentences (at most 10" in check.flags[0].message
    assert check.notes and "held to 10 sentences" in check.notes[0]
    assert "broken" in check.notes[0]


def test_no_list_within_fallback_gets_note_only() -> None:
    markdown = "One-to-one is classification. One-to-many is captioning. Many-to-one is sentiment."
    check = check_answer(question("11.3.1", RULE_LIST), markdown)
    assert check.flags == ()
    assert check.notes == ("the list of 11.3.1 was broken (no list, expected 5); the whole answer "
                           "was held to 10 sentences",)


# --------------------------------------------------------------------------- 11.3.2 range


@pytest.mark.parametrize(
    ("n", "flagged"),
    [(2, True), (3, False), (5, False), (6, True)],
)
def test_sentence_range(n: int, flagged: bool) -> None:
    drawing = "```\n   p\n  / \\\n a   b\n```\n\n![tree](attachment:tree.png)\n\n"
    markdown = drawing + " ".join(f"Sentence number {k} here." for k in range(n))
    check = check_answer(question("11.3.2", RULE_RANGE), markdown)
    assert check.sentences == n
    if flagged:
        assert check.flags[0].code == "sentences.out_of_range"
        assert check.flags[0].message == f"{n} sentences (allowed 3-5)"
    else:
        assert check.flags == ()


# --------------------------------------------------------------------------- citations


@pytest.mark.parametrize(
    "markdown",
    [
        "LSTMs fix this (Hochreiter & Schmidhuber, 1997).",
        "LSTMs fix this (Hochreiter and Schmidhuber, 1997).",
        "As shown (Goodfellow et al., 2016), it works.",
        "As shown (Goodfellow et al. 2016), it works.",
        "Bengio et al. (1994) showed the problem.",
        "Elman (1990) introduced it.",
        "Known (see Elman, 1990; Jordan, 1986).",
        "See https://www.deeplearningbook.org/contents/rnn.html for more.",
        "See [the book](https://www.deeplearningbook.org) for more.",
        "See www.deeplearningbook.org for more.",
        "DOI 10.1162/neco.1997.9.8.1735 has it.",
        "Numbered [1].\n\nReferences:\n[1] Hochreiter, S. LSTM. 1997.",
        "Text.\n\n**Sources:** Goodfellow, Bengio, Courville: Deep Learning.",
    ],
)
def test_citation_found(markdown: str) -> None:
    assert has_citation(markdown)


@pytest.mark.parametrize(
    "markdown",
    [
        "LSTMs were introduced in 1997.",
        "It was published (in 1997) somewhere.",
        "It appeared in (May 1997).",
        "Numbered claim [1] without any list.",
        "No source at all.",
        "Text.\n\nSources:\n",
        "![figure](https://example.org/figure.png) an image link is not a source",
        "`https://in.code.span` is code only",
        "",
    ],
)
def test_citation_not_found(markdown: str) -> None:
    assert not has_citation(markdown)


def test_citation_missing_flag() -> None:
    check = check_answer(question("11.2.2", RULE_WORDS), "Gradients vanish in 1997 networks.")
    assert [f.code for f in check.flags] == ["citation.missing"]
    assert check.flags[0].message == (
        "no source cited: add a Sources: line, a URL, a DOI or an author-year reference")


# --------------------------------------------------------------------------- blank

TEMPLATE = "*Your answer here.*"


@pytest.mark.parametrize(
    ("markdown", "template", "blank"),
    [
        ("", None, True),
        ("  \n\t\n", None, True),
        ("<!-- write below -->\n\n", None, True),
        ("*Your answer here.*", TEMPLATE, True),
        ("  *Your   answer here.*  \n", TEMPLATE, True),
        ("_Your answer here._", TEMPLATE, True),  # other markup, same text
        ("YOUR ANSWER HERE", None, True),
        ("*Your answer here.*", None, True),
        ("A real answer.", TEMPLATE, False),
        ("*Your answer here.* RNNs share weights.", TEMPLATE, False),
        ("![drawing](attachment:tree.png)", TEMPLATE, False),
        ("```\n  p\n / \\\na   b\n```", None, False),
        ("- **one-to-one:** *your answer*\n- **one-to-many:** *your answer*",
         "- **one-to-one:** *your answer*\n- **one-to-many:** *your answer*", True),
        ("- **one-to-one:** classification\n- **one-to-many:** *your answer*",
         "- **one-to-one:** *your answer*\n- **one-to-many:** *your answer*", False),
        ("$x$", None, False),
    ],
)
def test_is_blank_answer(markdown: str, template: str | None, blank: bool) -> None:
    assert is_blank_answer(markdown, template) is blank


def test_blank_gives_only_answer_missing() -> None:
    check = check_answer(question("11.2.1", RULE_WORDS), TEMPLATE, template_markdown=TEMPLATE)
    assert [f.code for f in check.flags] == ["answer.missing"]
    assert check.words == 0 and check.sentences == 0 and check.notes == ()
    check = check_answer(question("11.3.1", RULE_LIST), "")
    assert [f.code for f in check.flags] == ["answer.missing"]


def test_realistic_answer_passes() -> None:
    markdown = (
        "### Answer\n\n"
        "A **CNN** models *local* patterns with shared filters, so its receptive field grows "
        "with depth; an RNN carries a hidden state $h_t$ through time and can, in principle, "
        "use the whole history (Goodfellow et al., 2016). CNNs parallelise over positions, "
        "while RNNs are sequential.\n\n"
        "**Sources:**\n"
        "- Goodfellow, Bengio, Courville. *Deep Learning*, MIT Press, 2016. "
        "https://www.deeplearningbook.org\n"
    )
    check = check_answer(question("11.2.1", RULE_WORDS), markdown)
    assert check.flags == ()
    assert check.words == 45
    assert check.sentences == 2


# --------------------------------------------------------------------------- hostile sizes


def test_chunks_are_bounded_and_lose_nothing() -> None:
    """pysbd is quadratic in its input: every piece it sees is at most _CHUNK characters, so the
    work is at most (n / (_CHUNK / 2)) * _CHUNK**2, linear in n."""
    from grader.written.answertext import _CHUNK, _chunks
    texts = ["a b, " * 40_000, "a" * 200_001, "x. " * 70_000, "One. Two! Three? " * 10_000,
             "word " * 3 + "\t" * 5000, "Short answer. Fine."]
    for text in texts:
        pieces = _chunks(text)
        assert "".join(pieces) == text
        assert all(len(p) <= _CHUNK for p in pieces)
        assert len(pieces) <= 2 * len(text) // _CHUNK + 1


def test_chunks_prefer_sentence_ends() -> None:
    from grader.written.answertext import _chunks
    text = "This is a sentence of some length here. " * 200
    pieces = _chunks(text)
    assert len(pieces) > 1 and all(p.endswith(". ") for p in pieces[:-1])
    assert len(sentences(text)) == 200  # no sentence was split by a cut


@pytest.mark.timeout(120)
@pytest.mark.parametrize("text", [
    "a b, " * 40_000,                      # no ". Capital" break: 80 KB once took 36 s
    "(A" + "a" * 100_000,                  # citation patterns backtracked quadratically
    "(A" + "a-" * 50_000,
    "Sources" + " " * 100_000 + "x",       # the sources line regex over blanks
    " " * 100_000 + "Sources:",
    "Aa and " * 20_000,
    "http" * 50_000,
    "a. " * 70_000,
])
def test_worst_case_answers_finish(text: str) -> None:
    rule = question("11.2.1", {"max_words": 100, "require_citation": True, "min_sentences": 3, "max_sentences": 5})
    result = check_answer(rule, text)
    assert result.words > 0 or result.flags
    if len(text) > MAX_ANSWER_CHARS:
        assert any("only the first" in n for n in result.notes)


def test_bounded_patterns_still_find_citations() -> None:
    for cited in ["(Hochreiter & Schmidhuber, 1997)", "(see Elman, 1990; Jordan, 1986)",
                  "(Goodfellow et al., 2016)", "(Graves et al. 2013)", "Bengio et al. (1994)",
                  "Hochreiter and Schmidhuber (1997)", "https://example.org/x",
                  "doi:10.1162/neco.1997.9.8.1735", "text\n\n**Sources:** the book"]:
        assert has_citation(f"RNNs share weights. {cited}"), cited
    for plain in ["(May 1997)", "(in 1997)", "(NASA, 1997)", "Sources of error are many."]:
        assert not has_citation(f"RNNs share weights. {plain}"), plain


def test_sources_line_parser_matches_the_contract() -> None:
    from grader.written.markup import is_sources_line
    for line in ["Sources:", "**Sources:**", "*Source*: a", "## References", "References",
                 "> Sources: x", "__References__:", "   sources :  x"]:
        assert is_sources_line(line), line
    for line in ["References to earlier work show", "####### Sources", "****Sources:",
                 "The sources: x", "#Sources"]:
        assert not is_sources_line(line), line
