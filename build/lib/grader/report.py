"""Reports: a self-contained ``report.html`` per submission and ``summary.html`` per batch.

All HTML comes from Jinja templates with autoescape. A student's markdown is rendered with
markdown-it and then sanitised with nh3; only images that are inline data of a raster type
survive as pictures. Plots are inline SVG (grader/charts.py), so a report can be mailed.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import nh3
from jinja2 import Environment, PackageLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from grader.charts import Bar, Line, bar_chart, line_chart


_env = Environment(loader=PackageLoader("grader", "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True))
_md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_RASTER = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]+$")
_TAGS = {"p", "br", "em", "strong", "code", "pre", "ul", "ol", "li", "blockquote", "h1", "h2",
         "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a", "img", "hr",
         "del", "sub", "sup", "span"}


def _keep_attribute(element: str, attribute: str, value: str) -> str | None:
    if element == "img" and attribute == "src":
        return value if _RASTER.match(value) else None
    if element == "a" and attribute == "href":
        return value if value.startswith(("http://", "https://")) else None
    return value


def render_markdown(source: str, attachments: Mapping[str, Any] | None = None) -> Markup:
    """A student's markdown as safe HTML: no script, no event handler, no javascript: link."""
    text = source
    for name, bundle in (attachments or {}).items():
        for mime, data in (bundle or {}).items():
            if isinstance(data, str) and mime in ("image/png", "image/jpeg", "image/gif"):
                text = text.replace(f"attachment:{name}", f"data:{mime};base64,{data}")
    html = _md.render(text)
    clean = nh3.clean(html, tags=_TAGS, attributes={"a": {"href"}, "img": {"src", "alt"}},
                      url_schemes={"http", "https", "data"}, attribute_filter=_keep_attribute,
                      link_rel="noopener noreferrer nofollow")
    return Markup(clean)


def gradient_plot(checks: Iterable[Mapping[str, Any]]) -> Markup | None:
    """The student's gradient norms and bound against the reference's, on a log scale."""
    series = {c["function"]: c["series"] for c in checks if c.get("series") and c.get("case") == 1}
    styles = {"hidden_grad_norms": ("norms ||dL/dh_t||", "#1f6feb"), "gradient_bound": ("bound (1)", "#cf222e")}
    lines = []
    for function, data in series.items():
        label, colour = styles[function]
        lines.append(Line(f"reference {label}", data["expected"], colour, faint=True))
        if len(data["got"]) == len(data["expected"]):
            lines.append(Line(f"yours: {label}", data["got"], colour, dashed=True))
    if not lines:
        return None
    return line_chart(_env, lines, "Hidden case 1: gradient norms and the bound", "time step t",
                      "norm (log scale)")


def recall_plot(lstm: float | None, rnn: float | None, threshold: float) -> Markup | None:
    if lstm is None and rnn is None:
        return None
    return bar_chart(_env, [Bar("vanilla RNN", rnn or 0.0, "#8c959f"), Bar("LSTM", lstm or 0.0, "#1a7f37")],
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


def render_report(data: Mapping[str, Any]) -> str:
    """The student's report, as one self-contained HTML page, from a result's JSON."""
    checks = [c for q in data["questions"].values() for c in q.get("checks", [])]
    answers = {}
    for qid, q in data["questions"].items():
        answer = q.get("answer")
        if answer:
            within, beyond = _marked(answer["visible"], answer["over_limit_at"])
            answers[qid] = {"html": render_markdown(answer["markdown"], answer.get("attachments")),
                            "within": within, "beyond": beyond}
    recall = data.get("recall")
    flags: dict[str | None, list[Any]] = {}
    for flag in data["flags"]:
        flags.setdefault(flag["question"], []).append(flag)
    return _env.get_template("report.html.j2").render(
        r=data, answers=answers, gradient_plot=gradient_plot(checks),
        recall_plot=recall_plot(recall["lstm_accuracy"], recall["rnn_accuracy"], recall["threshold"])
        if recall else None,
        flags_by_question=flags)


def render_summary(results: list[Mapping[str, Any]], rubric_title: str, max_points: float,
                   sandbox_note: str, similarity: Mapping[str, Any] | None = None) -> str:
    """The batch's page from the results' JSON: every submission, a histogram of totals, each
    hidden case's pass rate and the mistakes recognised, so tutors see what the course got wrong."""
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
        similarity=similarity or {})
