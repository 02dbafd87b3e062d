from __future__ import annotations

import re

from grader.compare import CaseResult
from grader.report import gradient_plot, render_markdown, render_report, render_summary
from grader.result import Flag, QuestionResult, Recall, SubmissionResult, WrittenAnswer
from grader.rubric import load_rubric

HOSTILE = """Nice answer <script>alert(1)</script>
<img src=x onerror=alert(2)> [click](javascript:alert(3)) <a href="data:text/html,<b>x</b>">d</a>
<iframe src="https://evil.example"></iframe> <style>body{display:none}</style>
"""


def test_markdown_is_rendered_and_sanitised() -> None:
    html = str(render_markdown("**bold** and `code`\n\n" + HOSTILE))
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    lowered = html.lower()
    for bad in ("<script", "onerror", 'href="javascript:', "<iframe", "<style", "data:text/html"):
        assert bad not in lowered
    assert "[click](javascript:alert(3))" in html  # shown as text, not as a link


def test_only_inline_raster_images_survive() -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    html = str(render_markdown("![drawing](attachment:tree.png) ![remote](https://x.example/a.png)",
                               {"tree.png": {"image/png": png}}))
    assert f"data:image/png;base64,{png}" in html
    assert "x.example" not in html


def _result(**kw) -> SubmissionResult:
    rubric = load_rubric()
    questions = {q.id: QuestionResult(q.id, q.title, 0.0, q.points, "auto" if q.automatic else "pending")
                 for q in rubric.questions.values()}
    case = CaseResult("hidden_grad_norms", 1, "T=3", "x (3, 1, 2)", False, 0.0, 0.125,
                      message="your output matches `hidden_grad_norms` in reverse order <b>",
                      mistakes=("in reverse order",),
                      series={"got": (1.0, 2.0, 3.0), "expected": (3.0, 2.0, 1.0)})
    questions["11.4.b"] = QuestionResult("11.4.b", "grads", 0.0, 1.0, "auto", (case,))
    answer = WrittenAnswer(markdown=HOSTILE, words=130, sentences=2, found_by="tag", over_limit_at=5,
                           visible="Nice answer and more words", concepts_found=("gates",),
                           concepts_missing=("saturation",))
    questions["11.2.1"] = QuestionResult("11.2.1", "CNN vs RNN", 0.0, 0.75, "pending", answer=answer)
    base = dict(submission="A_1_B_2.zip", sha256="0" * 64, status="graded",
                group=({"name": "<b>Eve</b>", "student_id": "1", "email": "e@x.example"},),
                questions=questions, flags=(Flag("words.over_limit", "11.2.1", "130 words (limit 100)"),),
                max_points=10.0, recall=Recall(0.95, 0.3, 4.0, 3.0, 0.9))
    base.update(kw)
    return SubmissionResult(**base)


def test_report_is_self_contained_and_escapes_student_text() -> None:
    html = render_report(_result().to_json())
    assert "<script" not in html.lower()
    assert "&lt;b&gt;Eve&lt;/b&gt;" in html
    assert "onerror" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from elsewhere
    assert "<svg" in html  # the plots are inline
    assert '<mark class="over">' in html and "answer and more words" in html
    assert "reverse order &lt;b&gt;" in html
    assert "Content-Security-Policy" in html


def test_report_of_an_error_says_why_without_traceback() -> None:
    html = render_report(_result(status="error", message="the zip file is damaged",
                                 tutor_detail="Traceback (most recent call last): secret").to_json())
    assert "the zip file is damaged" in html
    assert "Traceback" not in html and "secret" not in html


def test_unsandboxed_note_is_in_the_report() -> None:
    assert "NOT SANDBOXED: because" in render_report(_result(sandbox_note="NOT SANDBOXED: because").to_json())


def test_gradient_plot_needs_series() -> None:
    assert gradient_plot([]) is None


def test_summary_counts_pass_rates_and_mistakes() -> None:
    data = _result().to_json()
    data["folder"] = "A_1_B_2"
    other = dict(data, submission="C_3_D_4.zip", status="error", points=0.0, folder="C_3_D_4")
    html = render_summary([data, other], "Sheet 11", 10.0, "")
    assert "hidden_grad_norms, case 1" in html and "0 / 1" in html
    assert "in reverse order" in html
    assert 'href="A_1_B_2/report.html"' in html
    assert "1 graded" in " ".join(html.split())


def test_charts_are_inline_svg_and_deterministic() -> None:
    from grader.report import histogram, recall_plot
    checks = [{"function": "hidden_grad_norms", "case": 1,
               "series": {"got": [1e-4, 1e-2, 1.0], "expected": [1e-4, 1e-2, 1.0]}}]
    a, b = gradient_plot(checks), gradient_plot(checks)
    assert a == b and str(a).startswith("<svg") and "yours: norms" in str(a)
    assert "needed: 90%" in str(recall_plot(0.95, None, 0.9))
    assert str(histogram([0.0, 4.0, 4.0], 10.0)).count("<rect") > 10


def test_chart_survives_zeros_and_nans() -> None:
    checks = [{"function": "gradient_bound", "case": 1,
               "series": {"got": [0.0, float("nan"), 2.0], "expected": [1.0, 1.5, 2.0]}}]
    assert "<path" in str(gradient_plot(checks))
