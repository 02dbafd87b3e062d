"""Reports: per submission ``report.html`` (the student's) and ``tutor.html`` (the tutor's view
of the same result), per batch ``summary.html``, and the tutors' review pages.

Every function here is pure: a typed result (:class:`grader.result.SubmissionResult`, or a list of
them) in, an HTML string out, so the batch, the score import and the tutors' web app draw the same
pages; JSON is read only where a ``result.json`` is (grader/folder/outdir.py), never here. Numbers
are shown as ``result.json`` rounds them, so a page drawn from a live result and one drawn from its
file are the same bytes. All HTML comes from Jinja
templates with autoescape; markdown and math go through :mod:`grader.pages.markdown` (sanitised by nh3),
code through :mod:`grader.pages.highlight` (Pygments), notebook outputs through
:func:`grader.outputs.safe_image`. Plots are inline SVG (grader/pages/charts.py), so a report can be
mailed, and every page forbids scripts with its Content-Security-Policy.

The student's report reads on a phone (390 px) as on a desk: it opens with a per-question points
overview and the next step (how to reproduce a failing check; whom to contact, the rubric's
``contact``); tables become cards on narrow screens; checks with the same outcome and message are
one row with a count; the self-check cells' outputs are left out (the grading kernel has no
self-check module, and the hidden checks above are what counts); a group member the file name does
not name is told they get no points until a tutor confirms them. The group's regrade requests
(``regrades`` of the result) are listed with the question, the day asked, the outcome, the day
decided and the tutor's reason (upheld: the points before and after); never the request's words.

Two audiences: the student's report never carries what is meant for tutors (the concept hints,
suggested scores, ``tutor_detail``, the grader's technical detail); ``tutor.html`` adds them.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from grader.outputs import safe_image
from grader.pages.charts import Bar, Line, bar_chart, line_chart
from grader.pages.highlight import HIGHLIGHT_CSS, CodeCell, defining_cells, highlight_python
from grader.pages.markdown import render_comment, render_inline, render_markdown
from grader.result import CaseResult, Flag, QuestionResult, SubmissionResult
from grader.written.concepts import suggested_score

__all__ = ["environment", "render_report", "render_tutor_report", "render_pages", "render_summary",
           "render_review_page", "render_review_index", "render_markdown", "render_inline",
           "gradient_plot", "recall_plot", "histogram", "cell_outputs_for", "PAGES"]

# The files a result's folder holds, by audience: the batch and the score import write both.
PAGES = {"student": "report.html", "tutor": "tutor.html"}

_env = Environment(loader=PackageLoader("grader", "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True),
                   keep_trailing_newline=True)
_env.filters["md"] = render_markdown
_env.filters["inline"] = render_inline
_env.filters["comment"] = render_comment
_env.globals["highlight_css"] = HIGHLIGHT_CSS


def environment() -> Environment:
    """The Jinja environment of these pages (autoescape; filters ``md``, ``comment``, ``inline``;
    ``_style.css.j2`` and ``highlight_css`` to include), for other pages that should look alike."""
    return _env


@dataclass(frozen=True)
class OutputItem:
    """One output of a cell as a page shows it: ``kind`` image (``src`` a checked data URI),
    text, error or note (``text``)."""

    kind: str
    text: str = ""
    src: str = ""


@dataclass(frozen=True)
class ShownCell:
    """A cell whose outputs a report shows (``index``: 0-based among the notebook's cells)."""

    index: int
    outputs: list[OutputItem]


@dataclass
class CheckRow:
    """A row of a check table: the checks with one outcome and one message, counted."""

    name: str
    names: list[str]
    passed: bool
    message: str
    points: float
    max_points: float
    count: int = 1


@dataclass(frozen=True)
class FunctionCode:
    """One function's code in a report: the definition that ran (``last``) and the earlier
    ones; ``bound`` (1-based code cell) where the code that ran is bound to the name there."""

    name: str
    last: CodeCell
    earlier: list[CodeCell]
    bound: int | None = None


@dataclass
class QuestionView:
    """One question as a report draws it: the result, its flags and what the page derives."""

    id: str
    q: QuestionResult
    auto: bool
    flags: list[Flag]
    # automatic questions
    first: CaseResult | None = None
    functions: list[str] = field(default_factory=list)
    code: list[FunctionCode] = field(default_factory=list)
    rows: list[CheckRow] = field(default_factory=list)
    failing: bool = False
    undefined: list[str] = field(default_factory=list)
    # written questions
    html: Markup | None = None
    within: str = ""
    beyond: str = ""
    suggested: float | None = None


def _points(value: float) -> float:
    """Points as ``result.json`` holds them (rounded to 4 places), so a page drawn from a live
    result and one drawn from its file are the same bytes."""
    return round(value, 4)


def gradient_plot(checks: Iterable[CaseResult]) -> Markup | None:
    """The student's gradient norms and bound against the reference's, on a log scale."""
    series = {c.function: c.series for c in checks if c.series and c.index == 1}
    styles = {"hidden_grad_norms": ("norms ||dL/dh_t||", "#1f6feb"), "gradient_bound": ("bound (1)", "#cf222e")}
    lines = []
    for function, data in series.items():
        if function not in styles:
            continue
        label, colour = styles[function]
        expected, got = data.get("expected", ()), data.get("got", ())
        lines.append(Line(f"reference {label}", expected, colour, faint=True))
        if len(got) == len(expected):
            lines.append(Line(f"yours: {label}", got, colour, dashed=True))
    if not lines:
        return None
    return line_chart(_env, lines, "Hidden case 1: gradient norms and the bound", "time step t",
                      "norm (log scale)")


def recall_plot(lstm: float | None, rnn: float | None, threshold: float, rnn_run: bool = True) -> Markup | None:
    if lstm is None and rnn is None:
        return None
    # Without the comparison run (rubric: compare_rnn = false) there is no RNN bar, not a 0 %.
    bars = ([Bar("vanilla RNN", rnn or 0.0, "#8c959f")] if rnn_run else []) + [Bar("LSTM", lstm or 0.0, "#1a7f37")]
    return bar_chart(_env, bars,
                     "Held-out accuracy of your models", "", "accuracy", 1.0,
                     (threshold, f"needed: {threshold:.0%}"))


def histogram(points: list[float], max_points: float) -> Markup | None:
    if not points:
        return None
    edges = [x * 0.5 for x in range(int(max_points * 2) + 1)]
    counts = [sum(1 for p in points if lo <= p < lo + 0.5 or (lo == edges[-1] and p >= lo)) for lo in edges]
    bars = [Bar(f"{lo:g}", n) for lo, n in zip(edges, counts)]
    return bar_chart(_env, bars, "Points of graded submissions", "points (from)", "submissions",
                     float(max(counts) or 1))


def _marked(visible: str, at: int | None) -> tuple[str, str]:
    if at is None:
        return visible, ""
    return visible[:at], visible[at:]


def _said_already(message: str, said: str) -> bool:
    """A flag that repeats the submission's message (an ungradable one) is not shown twice."""
    return bool(said) and bool(message) and message.strip() in said


def _first_failure(checks: Sequence[CaseResult]) -> CaseResult | None:
    """The first failed check that has values to show (not a missing function)."""
    for c in checks:
        if not c.passed and (c.expected or c.got):
            return c
    return None


def _cell_items(cell: Mapping[str, Any]) -> list[OutputItem]:
    items: list[OutputItem] = []
    for o in cell.get("outputs") or []:
        if not isinstance(o, Mapping):
            continue
        kind = o.get("kind")
        if kind == "image":
            src = str(o.get("src", ""))
            mime, _, data = src.partition(";base64,")
            uri = safe_image(mime.removeprefix("data:"), data)
            items.append(OutputItem("image", src=uri) if uri else
                         OutputItem("note", text="an image that could not be shown was left out"))
        elif kind in ("text", "error", "note"):
            items.append(OutputItem(str(kind), text=str(o.get("text", ""))))
    return items


def cell_outputs_for(cells: Iterable[Mapping[str, Any]]) -> dict[int, list[OutputItem]]:
    """``cell index -> outputs`` of a result's notebook (its ``cells``), images checked again
    (for grade serve)."""
    return {int(c.get("index", 0)): _cell_items(c) for c in cells if isinstance(c, Mapping)}


def _outputs(cells: Iterable[Mapping[str, Any]]) -> tuple[list[ShownCell], int]:
    """The notebook's outputs per cell, images checked again (result.json is a file on disk), and
    how many self-check cells' outputs were left out (see :func:`grader.grade.is_self_check`)."""
    shown = []
    left_out = 0
    for cell in cells:
        items = _cell_items(cell)
        if items and cell.get("self_check"):
            left_out += 1
            continue
        if items:
            shown.append(ShownCell(int(cell.get("index", 0)), items))
    return shown, left_out


def _grouped(checks: Iterable[CaseResult]) -> list[CheckRow]:
    """The rows of a check table: checks with the same outcome and the same message are one row
    with a count (18 hidden cases that all raised NotImplementedError say so once), in the order
    of each group's first check."""
    rows: dict[tuple[bool, str], CheckRow] = {}
    for c in checks:
        key = (c.passed, c.message)
        row = rows.get(key)
        if row is None:
            rows[key] = CheckRow(c.name, [c.name], c.passed, c.message, _points(c.points), _points(c.max_points))
        else:
            row.names.append(c.name)
            row.points += _points(c.points)
            row.max_points += _points(c.max_points)
            row.count += 1
    return list(rows.values())


def _unconfirmed(result: SubmissionResult, confirmed: Iterable[str]) -> list[Mapping[str, str]]:
    """Group members whom the file name does not name and no tutor confirmed (see grader/folder/grades.py)."""
    from grader.submission.naming import parse_filename
    named = {i for _, i in parse_filename(result.submission).pairs} | set(confirmed)
    return [m for m in result.group if str(m.get("student_id", "")) not in named]


def _by_function(found: list[CodeCell], functions: list[str], origins: Mapping[str, tuple[int, int]],
                 code_cells: Sequence[str]) -> list[FunctionCode]:
    """Per function (in the rubric's order): the definition that ran (the notebook's last) and the
    earlier ones, which the report folds away. Where the kernel showed that the code that ran is
    another cell's (``code_origins``: a lambda or function bound by assignment, text given to
    exec; grader/checks/identity.py), that whole cell is shown, its line marked, and every ``def``
    of the name is folded away as not the one that ran."""
    out = []
    for name in functions:
        mine = [d for d in found if d.name == name]
        origin = origins.get(name)
        if origin is not None and 0 <= origin[0] < len(code_cells):
            source = code_cells[origin[0]]
            html, cut = highlight_python(source, (origin[1],))
            ran = CodeCell(name, 1, len(source.splitlines()), html, cut, True)
            out.append(FunctionCode(name, ran, mine, bound=origin[0] + 1))
        elif mine:
            out.append(FunctionCode(name, mine[-1], mine[:-1]))
    return out


def _suggested(q: QuestionResult, flags: Iterable[Flag]) -> float | None:
    """The suggested score of a written answer: 0 for a missing one, else
    :func:`grader.written.concepts.suggested_score` over the concepts it names."""
    if any(f.code == "answer.missing" for f in flags):
        return 0.0
    found = q.answer.concepts_found if q.answer else ()
    missing = q.answer.concepts_missing if q.answer else ()
    return suggested_score(q.max_points, len(found), len(found) + len(missing))


def _auto_view(view: QuestionView, graded: bool, defined: list[CodeCell], result: SubmissionResult) -> None:
    cases = view.q.cases
    view.functions = list(dict.fromkeys(c.function for c in cases if c.function))
    found = [d for d in defined if d.name in view.functions]
    view.first = _first_failure(cases)
    view.code = _by_function(found, view.functions, result.code_origins, result.code_cells)
    view.rows = _grouped(cases)
    view.failing = any(not c.passed for c in cases)
    view.undefined = [f for f in view.functions if graded and f not in {d.name for d in found}]


def _written_view(view: QuestionView, tutor: bool) -> None:
    answer = view.q.answer
    if answer is not None:
        view.within, view.beyond = _marked(answer.visible, answer.over_limit_at)
        view.html = render_markdown(answer.markdown, answer.attachments) if answer.markdown.strip() else None
    view.suggested = _suggested(view.q, view.flags) if tutor else None


def _question_views(result: SubmissionResult, tutor: bool,
                    flags: Mapping[str | None, list[Flag]]) -> list[QuestionView]:
    graded = result.status == "graded"
    checks = [c for q in result.questions.values() for c in q.cases]
    # Every automatic question's functions, found in one pass over the cells (each parsed once).
    all_functions = list(dict.fromkeys(c.function for c in checks))
    defined = defining_cells(result.code_cells, all_functions) if graded else []
    views = []
    for qid, q in result.questions.items():
        view = QuestionView(qid, q, q.status == "auto" or bool(q.cases), list(flags.get(qid, [])))
        if view.auto:
            _auto_view(view, graded, defined, result)
        else:
            _written_view(view, tutor)
        views.append(view)
    return views


def _context(result: SubmissionResult, tutor: bool, confirmed: Iterable[str] = ()) -> dict[str, Any]:
    graded = result.status == "graded"
    flags: dict[str | None, list[Flag]] = {}
    for flag in result.flags:
        if not graded and _said_already(flag.message, result.message):
            continue
        flags.setdefault(flag.question, []).append(flag)
    questions = _question_views(result, tutor, flags)
    recall = result.recall
    outputs, self_checks = _outputs(result.cells)
    return dict(
        unconfirmed=_unconfirmed(result, confirmed), contact=result.contact,
        failing=[e.id for e in questions if e.failing], self_checks=self_checks,
        r=result, tutor=tutor, graded=graded, questions=questions, general_flags=flags.get(None, []),
        pending=sum(1 for q in result.questions.values() if q.status == "pending"),
        gradient_plot=gradient_plot(c for q in result.questions.values() for c in q.cases) if graded else None,
        recall_plot=recall_plot(recall.lstm_accuracy, recall.rnn_accuracy, recall.threshold, recall.rnn_run)
        if recall and graded else None,
        outputs=outputs,
        regrades=[{**g, "title": _title(result, g.get("question"))} for g in result.regrades],
        broken=[c for c in result.cells if c.get("error")])


def _title(result: SubmissionResult, qid: object) -> str:
    question = result.questions.get(str(qid))
    return question.title if question is not None else ""


def render_report(result: SubmissionResult, confirmed: Iterable[str] = ()) -> str:
    """The student's report, one self-contained HTML page, from a result (``confirmed``: the ids
    of group members a tutor confirmed, from the gradebook)."""
    return _env.get_template("report.html.j2").render(**_context(result, tutor=False, confirmed=confirmed))


def render_tutor_report(result: SubmissionResult, confirmed: Iterable[str] = ()) -> str:
    """The tutor's view of the same result: the student's report plus the concept hints, the
    suggested scores and the technical detail."""
    return _env.get_template("report.html.j2").render(**_context(result, tutor=True, confirmed=confirmed))


def render_pages(result: SubmissionResult, confirmed: Iterable[str] = ()) -> dict[str, str]:
    """``{file name: HTML}`` of the pages a result's folder holds (see :data:`PAGES`)."""
    confirmed = list(confirmed)
    return {PAGES["student"]: render_report(result, confirmed),
            PAGES["tutor"]: render_tutor_report(result, confirmed)}


def render_summary(results: Sequence[SubmissionResult], rubric_title: str, max_points: float,
                   sandbox_note: str, similarity: Mapping[str, Any] | None = None,
                   notices: Iterable[str] = (), learned: Sequence[Mapping[str, Any]] = ()) -> str:
    """The batch's page from the results: every submission, a histogram of totals, each hidden
    case's pass rate, the mistakes recognised and the groups of alike failing submissions
    (``learned``: grader/folder/outdir.py's learned_groups), so tutors see what the course got wrong."""
    graded = [r for r in results if r.status == "graded"]
    rates: dict[str, list[int]] = {}
    mistakes: dict[str, int] = {}
    for r in graded:
        for q in r.questions.values():
            for c in q.cases:
                key = c.name.split(" (")[0]
                rates.setdefault(key, [0, 0])
                rates[key][0] += int(c.passed)
                rates[key][1] += 1
                for m in c.mistakes:
                    label = f"{key.split(',')[0]} {m}"
                    mistakes[label] = mistakes.get(label, 0) + 1
    flags: dict[str, int] = {}
    for r in results:
        for code in {f.code for f in r.flags}:
            flags[code] = flags.get(code, 0) + 1
    return _env.get_template("summary.html.j2").render(
        results=sorted(results, key=lambda r: r.submission), title=rubric_title, max_points=max_points,
        histogram=histogram([r.points for r in graded], max_points),
        rates=sorted(rates.items()), mistakes=sorted(mistakes.items(), key=lambda kv: -kv[1]),
        flags=sorted(flags.items()), sandbox_note=sandbox_note,
        question_ids=list(results[0].questions) if results else [],
        similarity=similarity or {}, pages=PAGES, notices=list(notices), learned=list(learned))


def render_review_page(context: Mapping[str, Any]) -> str:
    """One written question's review page (see :func:`grader.tutors.review.write_review` for the keys)."""
    return _env.get_template("review.html.j2").render(**context, pages=PAGES)


def render_review_index(context: Mapping[str, Any]) -> str:
    """The review pages' index: per written question, how many answers are scored and to score."""
    return _env.get_template("review_index.html.j2").render(**context, pages=PAGES)
