from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from grader.outputs import MAX_IMAGE_CHARS, MAX_TEXT_CHARS, cell_outputs, notebook_outputs
from grader.pages.highlight import defining_cells
from grader.pages.markdown import MAX_FORMULA_CHARS, latex_to_mathml, render_inline
from grader.pages.report import (
    PAGES,
    gradient_plot,
    render_markdown,
    render_pages,
    render_report,
    render_summary,
    render_tutor_report,
)
from grader.result import CaseResult, Flag, QuestionResult, Recall, SubmissionResult, WrittenAnswer
from grader.rubric import load_rubric
from grader.written.concepts import model_answers

FILES = Path(__file__).resolve().parent / "files"
FIXTURES = FILES / "reports"
GOLDEN = FILES / "golden"
KINDS = ("good", "failing", "raised", "error", "hostile")

HOSTILE = """Nice answer <script>alert(1)</script>
<img src=x onerror=alert(2)> [click](javascript:alert(3)) <a href="data:text/html,<b>x</b>">d</a>
<iframe src="https://evil.example"></iframe> <style>body{display:none}</style>
"""
# The formulas of Sheet 11 that students write (11.3.3, 11.3.4a, 11.3.4b).
SHEET_FORMULAS = [r"h_t = f(h_{t-1}, x_t)",
                  r"\frac{\partial h_t}{\partial h_{t-1}} = W^\top \operatorname{diag}(f'(z_t))",
                  r"\|W\|_2", r"J_{k+1} = \ldots",
                  r"\left\|\frac{\partial L}{\partial h_t}\right\|_2 \le \|W\|_2^{T-t} \prod_{k=t}^{T-1} \|J_{k+1}\|_2",
                  r"p = \tanh\left(W \begin{bmatrix} c_1 \\ c_2 \end{bmatrix} + b\right)",
                  r"\sigma'(z) = \sigma(z)\,(1 - \sigma(z))", r"W \in \mathbb{R}^{d \times 2d}"]


def fixture(kind: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"{kind}.json").read_text(encoding="utf-8"))
    data["folder"] = kind
    return data


def typed(data: dict[str, Any]) -> SubmissionResult:
    """A result's JSON (a fixture file, edited by a test) as the pages take it."""
    return SubmissionResult.from_json(data)


# -- markdown and math -------------------------------------------------------------------------
def test_markdown_is_rendered_and_sanitised() -> None:
    html = str(render_markdown("**bold** and `code`\n\n" + HOSTILE))
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    lowered = html.lower()
    for bad in ("<script", "onerror", 'href="javascript:', "<iframe", "<style", "data:text/html"):
        assert bad not in lowered
    assert "[click](javascript:alert(3))" in html  # shown as text, not as a link


def test_only_inline_raster_images_survive() -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    html = str(render_markdown("![drawing](attachment:tree.png) ![remote](https://x.example/a.png) "
                               "![vector](attachment:t.svg) ![huge](attachment:big.png)",
                               {"tree.png": {"image/png": png}, "t.svg": {"image/svg+xml": "<svg onload=x>"},
                                "big.png": {"image/png": "A" * 3_000_000}}))
    assert f"data:image/png;base64,{png}" in html
    assert "x.example" not in html and "svg" not in html.replace('alt="vector"', "")
    assert "AAAAAAAAAAAAAAAAAAAAAAAA" not in html  # over the size cap: no picture


@pytest.mark.parametrize("latex", SHEET_FORMULAS)
def test_sheet_formulas_render_to_mathml(latex: str) -> None:
    html = str(render_markdown(f"Inline ${latex}$ and display:\n\n$${latex}$$\n"))
    assert html.count("<math") == 2 and 'display="block"' in html and "math-source" not in html
    assert "<em>" not in html and "\\" not in html  # nothing left for markdown, no raw LaTeX


def test_markdown_inside_math_is_never_interpreted() -> None:
    html = str(render_markdown(r"$a_1 * b_2 * c$ and $x_{t-1}$, then $h_t$ and $h_{t}$ `code $x$`"))
    assert "<em>" not in html and "<strong>" not in html
    assert "<code>code $x$</code>" in html  # a code span is not math either
    assert html.count("<math") == 4


def test_latex_that_does_not_convert_is_shown_as_code_unmangled() -> None:
    for latex in (r"\foo{x}_{t}", r"x^{", r"\begin{aligned} a &= b \end{aligned}", r"\text{a < b}"):
        html = str(render_markdown(f"see ${latex}$ here"))
        assert "<math" not in html, latex
        assert f'<code class="math-source">${latex}$</code>'.replace("<", "&lt;").replace("&lt;code", "<code") \
            .replace("&lt;/code", "</code") in html.replace("&amp;", "&").replace("&gt;", ">"), html
    long = "x+" * MAX_FORMULA_CHARS + "x"
    assert "<math" not in str(render_markdown(f"${long}$"))


def test_prices_are_not_math() -> None:
    html = str(render_markdown("It costs $5 and $10, not more."))
    assert "<math" not in html and "$5 and $10" in html


def test_mathml_passes_the_sanitiser_without_links_styles_or_handlers() -> None:
    attacks = (r"$\href{javascript:alert(1)}{x}$ $\style{background:url(https://evil.example/a)}{y}$ "
               r"$\text{<script>alert(1)</script>}$ "
               '<math><mrow href="javascript:alert(1)" style="background:url(x)" onclick="alert(1)">'
               '<mi xlink:href="javascript:alert(1)" class="pass" mathvariant="normal">x</mi>'
               '<maction actiontype="statusline"><mi>y</mi></maction>'
               '<mi mathvariant="url(https://evil.example)">z</mi></mrow>'
               '<annotation-xml encoding="text/html"><script>alert(2)</script></annotation-xml></math>')
    html = str(render_markdown(attacks)).lower()
    for bad in ("href", "style=", "onclick", "xlink", "<script", "maction", "annotation", "url(", "javascript:"):
        assert bad not in html.replace("math-source", "").replace("\\href", "").replace("\\style", "") \
            .replace("javascript:alert(1)}{x}", "").replace("background:url(https://evil.example/a)}", ""), bad
    assert '<mi mathvariant="normal">x</mi>' in html  # what is harmless stays


def test_latex_to_mathml_is_plain_presentation_mathml() -> None:
    out = latex_to_mathml(r"\hat{y}_t = \mathbf{W} h_t")
    assert out is not None and out.startswith('<math display="inline">') and "xmlns" not in out
    assert latex_to_mathml(r"\unknowncommand") is None and latex_to_mathml("") is None


def test_messages_render_backticks_and_never_html() -> None:
    html = str(render_inline("your output matches `rnn_forward` with `W` transposed <b>bold</b> $W^\\top$"))
    assert "<code>rnn_forward</code>" in html and "&lt;b&gt;bold&lt;/b&gt;" in html and "<math" in html


# -- reports from SubmissionResult -----------------------------------------------------------
def _result(**kw: Any) -> SubmissionResult:
    rubric = load_rubric()
    questions = {q.id: QuestionResult(q.id, q.title, 0.0, q.points, "auto" if q.automatic else "pending")
                 for q in rubric.questions.values()}
    case = CaseResult("hidden_grad_norms", 1, "T=3", "x (3, 1, 2)", False, 0.0, 0.125,
                      message="your output matches `hidden_grad_norms` in reverse order <b>",
                      mistakes=("in reverse order",),
                      series={"got": (1.0, 2.0, 3.0), "expected": (3.0, 2.0, 1.0)})
    questions["11.4.b"] = QuestionResult("11.4.b", "grads", 0.0, 1.0, "auto", (case,))
    answer = WrittenAnswer(markdown=HOSTILE, words=130, sentences=2, found_by="tag", over_limit_at=5,
                           visible="Nice answer and more words", concepts_found=("CONCEPT-FOUND-MARKER",),
                           concepts_missing=("CONCEPT-MISSING-MARKER",))
    questions["11.2.1"] = QuestionResult("11.2.1", "CNN vs RNN", 0.0, 0.75, "pending", answer=answer)
    base = dict(submission="A_1_B_2.zip", sha256="0" * 64, status="graded",
                group=({"name": "<b>Eve</b>", "student_id": "1", "email": "e@x.example"},),
                questions=questions, flags=(Flag("words.over_limit", "11.2.1", "130 words (limit 100)"),),
                max_points=10.0, recall=Recall(0.95, 0.3, 4.0, 3.0, 0.9), rubric_sha256="f" * 64,
                tutor_detail="TUTOR-DETAIL-MARKER")
    base.update(kw)
    return SubmissionResult(**base)


def test_report_is_self_contained_and_escapes_student_text() -> None:
    html = render_report(_result())
    assert "<script" not in html.lower()
    assert "&lt;b&gt;Eve&lt;/b&gt;" in html
    assert "onerror" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from elsewhere
    assert "<svg" in html  # the plots are inline
    assert '<mark class="over">' in html and "answer and more words" in html
    assert "reverse order &lt;b&gt;" in html and "<code>hidden_grad_norms</code>" in html
    assert "Content-Security-Policy" in html


def test_report_of_an_error_says_why_without_traceback() -> None:
    html = render_report(_result(status="error", message="the zip file is damaged",
                                 tutor_detail="Traceback (most recent call last): secret"))
    assert "the zip file is damaged" in html
    assert "Traceback" not in html and "secret" not in html


def test_unsandboxed_note_is_in_the_report() -> None:
    assert "NOT SANDBOXED: because" in render_report(_result(sandbox_note="NOT SANDBOXED: because"))


def test_student_report_holds_nothing_for_tutors_and_the_tutor_view_does() -> None:
    data = _result()
    student, tutor = render_report(data), render_tutor_report(data)
    for marker in ("CONCEPT-FOUND-MARKER", "CONCEPT-MISSING-MARKER", "TUTOR-DETAIL-MARKER", "f" * 12,
                   "Hints for the tutor", "Mentioned", "Suggested score", "Technical detail", "tutors only"):
        assert marker not in student, marker
        assert marker in tutor, marker
    assert render_pages(data) == {PAGES["student"]: student, PAGES["tutor"]: tutor}


def _concept_and_hint_strings() -> set[str]:
    strings = {c.name for m in model_answers().values() for c in m.concepts}
    return strings | {"Hints for the tutor", "Mentioned:", "Not mentioned", "Suggested score", "suggested",
                      "Technical detail", "tutor view", "Tutor view"}


def _student_text(data: dict[str, Any]) -> str:
    """What the student (or the rubric's titles) wrote, which may name a concept by itself."""
    parts = [q.get("title", "") for q in data["questions"].values()]
    for q in data["questions"].values():
        answer = q.get("answer") or {}
        parts += [answer.get("markdown", ""), answer.get("visible", ""), q.get("comment", "")]
    parts += [c for c in data.get("code_cells") or []]  # e.g. a docstring saying "elementwise activation"
    parts += [o.get("text", "") for c in data.get("cells") or [] for o in c.get("outputs") or []]
    return "\n".join(parts)


@pytest.mark.parametrize("kind", KINDS)
def test_student_report_names_no_concept_and_no_hint(kind: str) -> None:
    data = fixture(kind)
    html, own = render_report(typed(data)), _student_text(data)
    for text in _concept_and_hint_strings():
        # A concept may be in the report only as often as the student's own words hold it.
        assert html.count(text) <= own.count(text), f"{text!r} in the student report of {kind}"
    assert data["rubric_sha256"][:12] not in html
    tutor = render_tutor_report(typed(data))
    if data["status"] == "graded":
        assert "Hints for the tutor" in tutor and "Suggested score" in tutor


def test_each_automatic_question_shows_the_students_definitions() -> None:
    html = render_report(typed(fixture("failing")))
    section = html[html.index('id="q-11-4-a"'):html.index('id="q-11-4-b"')]
    assert 'class="hl"' in section
    assert re.search(r"Your (last |earlier )?definition of <code>rnn_forward</code>", section)
    assert '<span class="nf">rnn_forward</span>' in section  # highlighted by Pygments
    assert "lstm_cell" not in section  # only this question's functions


def test_definitions_are_found_with_ast_and_bounded() -> None:
    cells = ["import torch\n\n@torch.no_grad()\ndef rnn_forward(x):\n    return x\n\nclass A:\n"
             "    def lstm_cell(self):\n        pass\n",
             "try:\n    def lstm_cell(x):\n        return x\nexcept ImportError:\n    pass\n",
             "def rnn_forward(:\n    broken\n", "(" * 5000, "-" * 200_000 + "1", 42]
    found = defining_cells(cells, ["rnn_forward", "lstm_cell"])  # type: ignore[list-item]
    assert [(c.name, c.first, c.last, c.whole_cell) for c in found] == [
        ("rnn_forward", 3, 5, False), ("lstm_cell", 2, 3, False), ("rnn_forward", 1, 1, True)]
    assert "@torch" in str(found[0].html) and "class A" not in str(found[0].html)


def assert_inert(html: str) -> None:
    """No element a browser would run or fetch from: only escaped text may carry the attacks."""
    lowered = html.lower()
    assert "<script" not in lowered and "<iframe" not in lowered and "<object" not in lowered
    assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", lowered)  # no event handler in any tag
    assert not re.search(r"<[a-z][^>]*(href|src|action|xlink:href)\s*=\s*[\"']?\s*(javascript|https?:|//)", lowered)
    assert not re.search(r"<[a-z][^>]*url\(", re.sub(r"<style>.*?</style>", "", lowered, flags=re.S))
    assert not re.search(r"<(link|base|meta http-equiv=.refresh|form|svg [^>]*onload)", lowered)


@pytest.mark.parametrize("kind", KINDS)
def test_every_page_is_inert(kind: str) -> None:
    for html in render_pages(typed(fixture(kind))).values():
        assert_inert(html)


def test_hostile_code_and_values_are_escaped() -> None:
    html = render_report(typed(fixture("hostile")))
    assert "&lt;/code&gt;&lt;/pre&gt;&lt;script&gt;" in html  # the student's code, as text
    assert "&lt;/code&gt;&lt;script&gt;" in html  # a value that came back, as text
    assert "Eve &lt;script&gt;" in html


def test_a_function_that_raised_says_what_happened_instead_of_an_empty_box() -> None:
    data = fixture("raised")
    checks = data["questions"]["11.4.c"]["checks"]
    checks[0]["expected"] = "[1.0, 2.0]"  # a case whose reference value was drawn, but nothing came back
    html = render_report(typed(data))
    section = html[html.index('id="q-11-4-c"'):html.index('id="q-11-4-d"')]
    assert "no value came back" in section and "<code>lstm_cell</code> raised RuntimeError" in section
    assert "Your last definition of <code>lstm_cell</code>, the one that ran" in section
    assert '<details class="earlier">' in section  # the reference-like first version, folded away
    assert '<code class="values"></code>' not in html


def test_an_ungradable_submission_says_so_once_and_grades_nothing() -> None:
    data = fixture("error")
    html = render_report(typed(data))
    assert html.count(data["message"][:40]) == 1
    assert "pending" not in html and "to be marked" not in html
    assert html.count("not graded (") == len(data["questions"])


def test_outputs_are_collapsed_sanitised_and_capped() -> None:
    html = render_report(typed(fixture("hostile")))
    start = html.index('<details class="outputs">')
    details = html[start:html.index("</details>", start)]
    assert "open" not in details.split(">")[0]
    assert "data:image/png;base64," in details
    for bad in ("svg", "javascript:", "evil.example", "<script"):
        assert bad not in details.lower(), bad
    assert "&lt;script&gt;" in details
    kept = cell_outputs([{"output_type": "stream", "text": "x" * (MAX_TEXT_CHARS * 3)},
                         {"output_type": "display_data", "data": {"image/svg+xml": "<svg/>", "text/html": "<b>"}},
                         {"output_type": "display_data", "data": {"image/png": "A" * (MAX_IMAGE_CHARS + 4)}},
                         {"output_type": "display_data", "data": {"image/png": "not base64!"}},
                         {"output_type": "error", "ename": "ValueError", "evalue": "\x1b[31mred\x1b[0m",
                          "traceback": ["secret"]},
                         "junk", {"output_type": "stream", "text": ["a", 3, "b"]}])
    assert [o["kind"] for o in kept] == ["text", "note", "note", "note", "error", "text"]
    assert len(kept[0]["text"]) < MAX_TEXT_CHARS + 100 and kept[4]["text"] == "ValueError: red"
    assert kept[5]["text"] == "ab"
    flood = {"cell_type": "code", "outputs": [{"output_type": "stream", "text": "y" * 2999}] * 20}
    many = notebook_outputs([flood] * 40)
    assert sum(len(o.get("text", "")) for v in many.values() for o in v) <= 1_000_000


def test_gradient_plot_needs_series() -> None:
    assert gradient_plot([]) is None


def test_summary_counts_pass_rates_and_mistakes() -> None:
    data = replace(_result(), folder="A_1_B_2")
    other = replace(data, submission="C_3_D_4.zip", status="error", folder="C_3_D_4",
                    message="the notebook is not `valid` JSON")
    html = render_summary([data, other], "Sheet 11", 10.0, "")
    assert "hidden_grad_norms, case 1" in html and "0 / 1" in html
    assert "in reverse order" in html
    assert 'href="A_1_B_2/report.html"' in html and 'href="A_1_B_2/tutor.html"' in html
    assert "1 graded" in " ".join(html.split())
    assert "<code>valid</code>" in html  # markdown in messages
    assert "Legend:" in html and "…" in html and "–" in html  # every symbol explained


def test_charts_are_inline_svg_and_deterministic() -> None:
    from grader.pages.report import histogram, recall_plot
    checks = [CaseResult("hidden_grad_norms", 1, "T=3", "", False, 0.0, 1.0,
                         series={"got": (1e-4, 1e-2, 1.0), "expected": (1e-4, 1e-2, 1.0)})]
    a, b = gradient_plot(checks), gradient_plot(checks)
    assert a == b and str(a).startswith("<svg") and "yours: norms" in str(a)
    assert "needed: 90%" in str(recall_plot(0.95, None, 0.9))
    assert str(histogram([0.0, 4.0, 4.0], 10.0)).count("<rect") > 10


def test_chart_survives_zeros_and_nans() -> None:
    checks = [CaseResult("gradient_bound", 1, "T=3", "", False, 0.0, 1.0,
                         series={"got": (0.0, float("nan"), 2.0), "expected": (1.0, 1.5, 2.0)})]
    assert "<path" in str(gradient_plot(checks))


def test_a_report_survives_a_result_with_missing_optional_parts() -> None:
    data = fixture("good")
    for key in ("code_cells", "cells", "recall", "late", "other_files", "notebook"):
        data.pop(key, None)
    for q in data["questions"].values():
        q.pop("answer", None)
    html = render_report(typed(data))
    assert "report.html" not in html and "No cell of your notebook defines" in html


# -- golden files ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _golden_pages() -> dict[str, str]:
    pages = {}
    for kind in KINDS:
        data = fixture(kind)
        for name, html in render_pages(typed(data)).items():
            pages[f"{kind}.{name}"] = html
    results = [typed(fixture(k)) for k in KINDS]
    pages["summary.html"] = render_summary(results, "Sheet 11", 10.0, "")
    return pages


# Every student report, the tutor view of two, and the summary of all.
GOLDEN_NAMES = sorted([f"{k}.report.html" for k in KINDS] + ["good.tutor.html", "error.tutor.html", "summary.html"])


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_pages_match_their_golden_files(name: str, update_goldens: bool) -> None:
    """The pages are byte-stable; after an intended change: pytest tests/test_report.py --update-goldens"""
    html = _golden_pages()[name]
    path = GOLDEN / name
    if update_goldens:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run pytest tests/test_report.py --update-goldens"
    assert html == path.read_text(encoding="utf-8"), \
        f"{name} differs from {path}; if the change is intended: pytest tests/test_report.py --update-goldens"


def test_rendering_does_not_change_the_result() -> None:
    data = fixture("hostile")
    before = copy.deepcopy(data)
    render_pages(typed(data))
    assert data == before


def test_math_work_is_bounded_per_text() -> None:
    from grader.pages.markdown import MAX_MATH_CHARS
    formula = r"\frac{\partial h_{t}}{\partial h_{t-1}} = W^\top \operatorname{diag}(f'(z_t)) + \sum_{k=1}^{T} a_k^2"
    text = " ".join(f"${formula}$" for _ in range(1500))  # ~150k characters of formulas
    html = str(render_markdown(text))
    # Only the first MAX_MATH_CHARS of LaTeX are converted; the rest is shown as its source.
    assert html.count("<math") == MAX_MATH_CHARS // len(formula)
    assert html.count("math-source") == 1500 - MAX_MATH_CHARS // len(formula)


def test_tutor_comments_render_markdown_and_math_but_show_html_as_text() -> None:
    from grader.pages.markdown import render_comment
    html = str(render_comment("**Good**: $h_t = f(h_{t-1}, x_t)$, but <b>bias</b> [x](javascript:alert(1))"))
    assert "<strong>Good</strong>" in html and "<math" in html and "&lt;b&gt;bias&lt;/b&gt;" in html
    assert "href" not in html


def test_definitions_in_blocks_and_past_the_parse_budget() -> None:
    from grader.pages.highlight import MAX_TOTAL_PARSE_CHARS
    block = "match mode:\n    case 'a':\n        def rnn_forward(x):\n            return x\n"
    assert [(c.first, c.last, c.whole_cell) for c in defining_cells([block], ["rnn_forward"])] == [(3, 4, False)]
    filler = "x = 1\n# def\n" * (MAX_TOTAL_PARSE_CHARS // 12 // 10)
    cells = [filler] * 11 + ["def rnn_forward(x):\n    return x\n"]
    found = defining_cells(cells, ["rnn_forward"])
    assert [(c.first, c.whole_cell) for c in found] == [(1, True)]  # found line by line, still shown


@pytest.mark.parametrize("payload", [
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<math><mi><style><img src=x onerror=alert(1)></style></mi></math>",
    "<svg></p><style><a id=\"</style><img src=1 onerror=alert(1)>\">",
    "<math><mtext><h1><a href=\"javascript:alert(1)\">x</a></h1></mtext></math>",
    "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
])
def test_namespace_confusion_payloads_stay_inert(payload: str) -> None:
    html = f"<!DOCTYPE html><html><body>{render_markdown(payload)}</body></html>"
    assert_inert(html)
    assert "onerror" not in html  # not even as text: nh3 drops the attribute, the tags re-serialise


def test_probe_findings_render_beside_the_code_as_inline_markdown() -> None:
    data = fixture("failing")
    check = data["questions"]["11.4.a"]["checks"][0]
    check.update(diagnosis="with `W = 0` your output matches; the recurrence term `W h_{t-1}` is wrong <b>",
                 probes=[{"probe": "no_recurrence", "setting": "`W = 0`", "exercises": "the input path",
                          "outcome": "matches"},
                         {"probe": "x", "setting": "`U = 0`", "exercises": "the recurrence",
                          "outcome": "grader_error"}])
    html = render_report(typed(data))
    section = html[html.index('id="q-11-4-a"'):html.index('id="q-11-4-b"')]
    assert section.count('<div class="diagnosis">') == 1  # once per function, not per case
    assert "<code>W = 0</code>" in section and "&lt;b&gt;" in section and "matches the reference" in section
    assert "not tried" in section and section.index('class="diagnosis"') < section.index('class="code"')
    assert_inert(html)


def test_the_code_that_ran_is_shown_where_a_name_was_bound_by_assignment() -> None:
    """code_origins (grader/checks/identity.py): the report shows the cell that bound the name,
    marked as the code that ran, and folds the def of the same name away as not the one that ran."""
    data = fixture("good")
    cells = ["def rnn_forward(x, h0, W, U, b, activation='tanh'):\n    raise NotImplementedError\n",
             "rnn_forward = lambda x, h0, W, U, b, activation='tanh': x  # bound here\n"]
    data = {**data, "code_cells": cells, "code_origins": {"rnn_forward": [1, 1]}}
    html = render_report(typed(data))
    assert "The code that ran as <code>rnn_forward</code>: code cell 2" in html
    assert "not the code that ran" in html


def test_a_live_result_and_its_file_draw_the_same_pages() -> None:
    """The batch draws pages from the live result, the score import from result.json: the numbers
    a page shows are the file's (points to 4 places, seconds to 2), so both are the same bytes."""
    live = replace(_result(), seconds=1.04999, folder="A_1_B_2")
    third = replace(live.questions["11.4.b"], points=0.0049996, auto_points=0.0049996, comment="set")
    live = live.with_question(third)
    from_file = SubmissionResult.from_json(json.loads(json.dumps(live.to_json())))
    assert render_pages(live) == render_pages(from_file)
    assert render_summary([live], "Sheet 11", 10.0, "") == render_summary([from_file], "Sheet 11", 10.0, "")
    assert "0.01 / 1.00" in render_report(live)  # 0.0049996 is 0.005 in result.json
