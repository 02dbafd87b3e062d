"""Reports: per submission ``report.html`` (the student's) and ``tutor.html`` (the tutor's view
of the same result), per batch ``summary.html``, and the tutors' review pages.

Every function here is pure: a result's JSON (or a list of them) in, an HTML string out, so the
batch, the score import and the tutors' web app draw the same pages. All HTML comes from Jinja
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
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from grader.outputs import safe_image
from grader.pages.charts import Bar, Line, bar_chart, line_chart
from grader.pages.highlight import HIGHLIGHT_CSS, CodeCell, defining_cells
from grader.pages.markdown import render_comment, render_inline, render_markdown
from grader.written.concepts import suggestion_for

__all__ = ["environment", "render_report", "render_tutor_report", "render_pages", "render_summary",
           "render_review_page", "render_review_index", "render_markdown", "render_inline",
           "gradient_plot", "recall_plot", "histogram", "PAGES"]

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


def gradient_plot(checks: Iterable[Mapping[str, Any]]) -> Markup | None:
    """The student's gradient norms and bound against the reference's, on a log scale."""
    series = {c["function"]: c["series"] for c in checks if c.get("series") and c.get("case") == 1}
    styles = {"hidden_grad_norms": ("norms ||dL/dh_t||", "#1f6feb"), "gradient_bound": ("bound (1)", "#cf222e")}
    lines = []
    for function, data in series.items():
        if function not in styles:
            continue
        label, colour = styles[function]
        lines.append(Line(f"reference {label}", data["expected"], colour, faint=True))
        if len(data["got"]) == len(data["expected"]):
            lines.append(Line(f"yours: {label}", data["got"], colour, dashed=True))
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


def _first_failure(checks: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The first failed check that has values to show (not a missing function)."""
    for c in checks:
        if not c.get("passed") and (c.get("expected") or c.get("got")):
            return c
    return None


def _cell_items(cell: Mapping[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for o in cell.get("outputs") or []:
        if not isinstance(o, Mapping):
            continue
        if o.get("kind") == "image":
            src = str(o.get("src", ""))
            mime, _, data = src.partition(";base64,")
            uri = safe_image(mime.removeprefix("data:"), data)
            items.append({"kind": "image", "src": uri} if uri else
                         {"kind": "note", "text": "an image that could not be shown was left out"})
        elif o.get("kind") in ("text", "error", "note"):
            items.append({"kind": o["kind"], "text": str(o.get("text", ""))})
    return items


def cell_outputs_for(data: Mapping[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """``cell index -> outputs`` of a result's notebook, images checked again (for grade serve)."""
    return {int(c.get("index", 0)): _cell_items(c) for c in data.get("cells") or [] if isinstance(c, Mapping)}


def _outputs(cells: list[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], int]:
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
            shown.append({"index": cell.get("index", 0), "items": items})
    return shown, left_out


def _grouped(checks: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a check table: checks with the same outcome and the same message are one row
    with a count (18 hidden cases that all raised NotImplementedError say so once), in the order
    of each group's first check."""
    rows: dict[tuple[bool, str], dict[str, Any]] = {}
    for c in checks:
        key = (bool(c.get("passed")), str(c.get("message") or ""))
        row = rows.get(key)
        if row is None:
            rows[key] = {"name": c.get("name", ""), "names": [c.get("name", "")], "passed": key[0],
                         "message": key[1], "points": float(c.get("points", 0.0)),
                         "max_points": float(c.get("max_points", 0.0)), "count": 1}
        else:
            row["names"].append(c.get("name", ""))
            row["points"] += float(c.get("points", 0.0))
            row["max_points"] += float(c.get("max_points", 0.0))
            row["count"] += 1
    return list(rows.values())


def _unconfirmed(data: Mapping[str, Any], confirmed: Iterable[str]) -> list[Mapping[str, Any]]:
    """Group members whom the file name does not name and no tutor confirmed (see grader/folder/grades.py)."""
    from grader.submission.naming import parse_filename
    named = {i for _, i in parse_filename(str(data.get("submission", ""))).pairs} | set(confirmed)
    return [m for m in data.get("group") or [] if isinstance(m, Mapping) and str(m.get("student_id", "")) not in named]


def _by_function(found: list[CodeCell], functions: list[str], origins: Mapping[str, Any] | None = None,
                 code_cells: list[str] | None = None) -> list[dict[str, Any]]:
    """Per function (in the rubric's order): the definition that ran (the notebook's last) and the
    earlier ones, which the report folds away. Where the kernel showed that the code that ran is
    another cell's (``code_origins``: a lambda or function bound by assignment, text given to
    exec; grader/checks/identity.py), that whole cell is shown, its line marked, and every ``def``
    of the name is folded away as not the one that ran."""
    from grader.pages.highlight import CodeCell, highlight_python
    out = []
    for name in functions:
        mine = [d for d in found if d.name == name]
        origin = (origins or {}).get(name)
        cells = code_cells or []
        if isinstance(origin, list) and len(origin) == 2 and 0 <= int(origin[0]) < len(cells):
            source = cells[int(origin[0])]
            html, cut = highlight_python(source, (int(origin[1]),))
            ran = CodeCell(name, 1, len(source.splitlines()), html, cut, True)
            out.append({"name": name, "last": ran, "earlier": mine, "bound": int(origin[0]) + 1})
        elif mine:
            out.append({"name": name, "last": mine[-1], "earlier": mine[:-1]})
    return out


def _context(data: Mapping[str, Any], tutor: bool, confirmed: Iterable[str] = ()) -> dict[str, Any]:
    graded = data.get("status") == "graded"
    said = str(data.get("message") or "")
    checks = [c for q in data["questions"].values() for c in q.get("checks", [])]
    code_cells = [c for c in data.get("code_cells") or [] if isinstance(c, str)]
    # Every automatic question's functions, found in one pass over the cells (each parsed once).
    all_functions = list(dict.fromkeys(c["function"] for c in checks if isinstance(c.get("function"), str)))
    defined = defining_cells(code_cells, all_functions) if graded else []
    origins = data.get("code_origins") or {}
    flags: dict[str | None, list[Any]] = {}
    for flag in data.get("flags", []):
        if not graded and _said_already(flag.get("message", ""), said):
            continue
        flags.setdefault(flag.get("question"), []).append(flag)
    questions = []
    for qid, q in data["questions"].items():
        auto = q.get("status") == "auto" or bool(q.get("checks"))
        entry: dict[str, Any] = {"id": qid, "q": q, "auto": auto, "flags": flags.get(qid, [])}
        if auto:
            q_checks = list(q.get("checks", []))
            functions = list(dict.fromkeys(c["function"] for c in q_checks if c.get("function")))
            found = [d for d in defined if d.name in functions]
            entry.update(first=_first_failure(q_checks), functions=functions,
                         code=_by_function(found, functions, origins, code_cells),
                         rows=_grouped(q_checks), failing=any(not c.get("passed") for c in q_checks),
                         undefined=[f for f in functions if graded and f not in {d.name for d in found}])
        else:
            answer = q.get("answer") or {}
            within, beyond = _marked(answer.get("visible", ""), answer.get("over_limit_at"))
            entry.update(html=render_markdown(answer.get("markdown", ""), answer.get("attachments"))
                         if str(answer.get("markdown", "")).strip() else None,
                         within=within, beyond=beyond,
                         suggested=suggestion_for(q, flags.get(qid, [])) if tutor else None)
        questions.append(entry)
    recall = data.get("recall")
    outputs, self_checks = _outputs(list(data.get("cells") or []))
    return dict(
        unconfirmed=_unconfirmed(data, confirmed), contact=str(data.get("contact") or ""),
        failing=[e["id"] for e in questions if e.get("failing")], self_checks=self_checks,
        r=data, tutor=tutor, graded=graded, questions=questions, general_flags=flags.get(None, []),
        pending=sum(1 for q in data["questions"].values() if q.get("status") == "pending"),
        gradient_plot=gradient_plot(checks) if graded else None,
        recall_plot=recall_plot(recall["lstm_accuracy"], recall["rnn_accuracy"], recall["threshold"],
                                recall.get("rnn_run", True))
        if recall and graded else None,
        outputs=outputs,
        regrades=[{**r, "title": str((data["questions"].get(str(r.get("question"))) or {}).get("title", ""))}
                  for r in data.get("regrades") or [] if isinstance(r, Mapping)],
        broken=[c for c in data.get("cells") or [] if c.get("error")])


def render_report(data: Mapping[str, Any], confirmed: Iterable[str] = ()) -> str:
    """The student's report, one self-contained HTML page, from a result's JSON (``confirmed``:
    the ids of group members a tutor confirmed, from the gradebook)."""
    return _env.get_template("report.html.j2").render(**_context(data, tutor=False, confirmed=confirmed))


def render_tutor_report(data: Mapping[str, Any], confirmed: Iterable[str] = ()) -> str:
    """The tutor's view of the same result: the student's report plus the concept hints, the
    suggested scores and the technical detail."""
    return _env.get_template("report.html.j2").render(**_context(data, tutor=True, confirmed=confirmed))


def render_pages(data: Mapping[str, Any], confirmed: Iterable[str] = ()) -> dict[str, str]:
    """``{file name: HTML}`` of the pages a result's folder holds (see :data:`PAGES`)."""
    confirmed = list(confirmed)
    return {PAGES["student"]: render_report(data, confirmed), PAGES["tutor"]: render_tutor_report(data, confirmed)}


def render_summary(results: Sequence[Mapping[str, Any]], rubric_title: str, max_points: float,
                   sandbox_note: str, similarity: Mapping[str, Any] | None = None,
                   notices: Iterable[str] = (), learned: Sequence[Mapping[str, Any]] = ()) -> str:
    """The batch's page from the results' JSON: every submission, a histogram of totals, each
    hidden case's pass rate, the mistakes recognised and the groups of alike failing submissions
    (``learned``: grader/folder/outdir.py's learned_groups), so tutors see what the course got wrong."""
    graded = [r for r in results if r["status"] == "graded"]
    rates: dict[str, list[int]] = {}
    mistakes: dict[str, int] = {}
    for r in graded:
        for q in r["questions"].values():
            for c in q.get("checks", []):
                key = c["name"].split(" (")[0]
                rates.setdefault(key, [0, 0])
                rates[key][0] += int(bool(c["passed"]))
                rates[key][1] += 1
                for m in c.get("mistakes", []):
                    label = f"{key.split(',')[0]} {m}"
                    mistakes[label] = mistakes.get(label, 0) + 1
    flags: dict[str, int] = {}
    for r in results:
        for code in {f["code"] for f in r.get("flags", [])}:
            flags[code] = flags.get(code, 0) + 1
    return _env.get_template("summary.html.j2").render(
        results=sorted(results, key=lambda r: r["submission"]), title=rubric_title, max_points=max_points,
        histogram=histogram([r["points"] for r in graded], max_points),
        rates=sorted(rates.items()), mistakes=sorted(mistakes.items(), key=lambda kv: -kv[1]),
        flags=sorted(flags.items()), sandbox_note=sandbox_note,
        question_ids=list(results[0]["questions"]) if results else [],
        similarity=similarity or {}, pages=PAGES, notices=list(notices), learned=list(learned))


def render_review_page(context: Mapping[str, Any]) -> str:
    """One written question's review page (see :func:`grader.tutors.review.write_review` for the keys)."""
    return _env.get_template("review.html.j2").render(**context, pages=PAGES)


def render_review_index(context: Mapping[str, Any]) -> str:
    """The review pages' index: per written question, how many answers are scored and to score."""
    return _env.get_template("review_index.html.j2").render(**context, pages=PAGES)
