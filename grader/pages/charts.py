"""Small inline SVG charts drawn from a Jinja template: a report stays self-contained, renders
in a millisecond, and gives the same bytes for the same data.

The module only computes geometry; the markup lives in ``templates/chart.svg.j2``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

WIDTH, HEIGHT = 520, 260
LEFT, RIGHT, TOP, BOTTOM = 62, 12, 28, 40


@dataclass(frozen=True)
class Line:
    label: str
    values: Sequence[float]
    colour: str
    dashed: bool = False
    faint: bool = False


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    colour: str = "#3572b0"


@dataclass
class _Chart:
    title: str
    x_label: str
    y_label: str
    width: int = WIDTH
    height: int = HEIGHT
    paths: list[dict[str, Any]] = field(default_factory=list)
    rects: list[dict[str, Any]] = field(default_factory=list)
    x_ticks: list[dict[str, Any]] = field(default_factory=list)
    y_ticks: list[dict[str, Any]] = field(default_factory=list)
    hline: dict[str, Any] | None = None
    legend: list[dict[str, Any]] = field(default_factory=list)

    @property
    def plot(self) -> dict[str, int]:
        return {"x0": LEFT, "x1": self.width - RIGHT, "y0": TOP, "y1": self.height - BOTTOM}


# The most points one line draws; longer series are thinned evenly (first and last kept), so a
# report's size does not grow with what a student's function returned.
MAX_POINTS = 400
# Linear axes clamp values to this magnitude, so lo - hi never overflows to inf.
_HUGE = 1e300


def _number(v: object) -> float:
    """A float, or nan for anything that is not a real number (never raises)."""
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _scale(lo: float, hi: float) -> Callable[[float], float]:
    """Map [lo, hi] (already in axis units: exponents on a log axis) onto the plot's height."""
    y0, y1 = TOP, HEIGHT - BOTTOM
    span = (hi - lo) or 1.0

    def y(value: float) -> float:
        return round(y1 - (value - lo) / span * (y1 - y0), 2)
    return y


def _thin(n: int) -> list[int]:
    """At most MAX_POINTS indices of 0..n-1, evenly spread, the first and the last included."""
    if n <= MAX_POINTS:
        return list(range(n))
    step = (n - 1) / (MAX_POINTS - 1)
    return sorted({round(k * step) for k in range(MAX_POINTS)})


def line_chart(env: Environment, lines: Sequence[Line], title: str, x_label: str, y_label: str,
               log: bool = True) -> Markup | None:
    """Lines over t = 1..T; on a log scale only the positive finite values are drawn.

    Any numbers are drawn or left out, never an error: zeros, subnormals (5e-324), negative
    values (left out on a log axis), inf and nan (left out), and values near the float range.
    A log axis works on exponents (log10 of each value), so no power of ten is ever computed
    that could underflow to 0 or overflow.
    """
    n = max((len(line.values) for line in lines), default=0)
    keep = _thin(n)

    def axis(v: float) -> float | None:
        """The value in axis units, or None when it cannot be drawn on this axis."""
        if not math.isfinite(v) or (log and v <= 0):
            return None
        return math.log10(v) if log else max(-_HUGE, min(_HUGE, v))

    series = []
    for line in lines:
        values = line.values
        pts = []
        for i in keep:
            if i < len(values):
                a = axis(_number(values[i]))
                if a is not None:
                    pts.append((i, a))
        series.append(pts)
    drawn = [a for pts in series for _, a in pts]
    if not drawn or n == 0:
        return None
    lo, hi = min(drawn), max(drawn)
    if log:
        lo, hi = float(math.floor(lo)), float(math.ceil(hi))
        if lo == hi:
            hi = lo + 1
    elif lo == hi:
        lo, hi = lo - 1, hi + 1
    y = _scale(lo, hi)
    x0, x1 = LEFT, WIDTH - RIGHT

    def x(i: int) -> float:
        return round(x0 + (i / max(n - 1, 1)) * (x1 - x0), 2)

    chart = _Chart(title, x_label, y_label)
    for line, pts in zip(lines, series):
        points = [(x(i), y(a)) for i, a in pts]
        chart.paths.append({"d": " ".join(f"{'M' if k == 0 else 'L'}{px},{py}" for k, (px, py) in enumerate(points)),
                            "points": points, "colour": line.colour, "dashed": line.dashed, "faint": line.faint})
        chart.legend.append({"label": line.label, "colour": line.colour, "dashed": line.dashed, "faint": line.faint})
    step = max(1, n // 10)
    chart.x_ticks = [{"x": x(i), "label": str(i + 1)} for i in range(0, n, step)][:11]
    if log:
        e_lo, e_hi = int(lo), int(hi)
        chart.y_ticks = [{"y": y(float(e)), "label": f"1e{e}"}
                         for e in range(e_lo, e_hi + 1, max(1, (e_hi - e_lo) // 6))]
    else:
        chart.y_ticks = [{"y": y(lo + k * (hi - lo) / 4), "label": f"{lo + k * (hi - lo) / 4:.3g}"} for k in range(5)]
    return Markup(env.get_template("chart.svg.j2").render(c=chart))


def bar_chart(env: Environment, bars: Sequence[Bar], title: str, x_label: str, y_label: str,
              y_max: float, hline: tuple[float, str] | None = None) -> Markup | None:
    if not bars:
        return None
    y_max = _number(y_max)
    if not math.isfinite(y_max) or y_max <= 0:
        y_max = 1.0
    y = _scale(0.0, y_max)
    x0, x1 = LEFT, WIDTH - RIGHT
    slot = (x1 - x0) / len(bars)
    chart = _Chart(title, x_label, y_label)
    for i, bar in enumerate(bars):
        value = _number(bar.value)
        # A bar shows 0..y_max; nan, inf and negative values are clamped (the title says the value).
        top = y(min(max(value, 0.0), y_max) if math.isfinite(value) else 0.0)
        chart.rects.append({"x": round(x0 + i * slot + slot * 0.1, 2), "y": top, "w": round(slot * 0.8, 2),
                            "h": round(y(0.0) - top, 2), "colour": bar.colour, "value": bar.value})
        chart.x_ticks.append({"x": round(x0 + (i + 0.5) * slot, 2), "label": bar.label})
    chart.y_ticks = [{"y": y(k * y_max / 4), "label": f"{k * y_max / 4:.3g}"} for k in range(5)]
    if hline is not None and math.isfinite(_number(hline[0])):
        chart.hline = {"y": y(min(max(_number(hline[0]), 0.0), y_max)), "label": hline[1]}
    return Markup(env.get_template("chart.svg.j2").render(c=chart))
