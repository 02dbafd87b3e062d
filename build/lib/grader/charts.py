"""Small inline SVG charts drawn from a Jinja template: a report stays self-contained, renders
in a millisecond, and gives the same bytes for the same data.

The module only computes geometry; the markup lives in ``templates/chart.svg.j2``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

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
    paths: list[dict] = field(default_factory=list)
    rects: list[dict] = field(default_factory=list)
    x_ticks: list[dict] = field(default_factory=list)
    y_ticks: list[dict] = field(default_factory=list)
    hline: dict | None = None
    legend: list[dict] = field(default_factory=list)

    @property
    def plot(self) -> dict:
        return {"x0": LEFT, "x1": self.width - RIGHT, "y0": TOP, "y1": self.height - BOTTOM}


def _y_mapper(lo: float, hi: float, log: bool):
    y0, y1 = TOP, HEIGHT - BOTTOM
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    span = (hi - lo) or 1.0

    def y(v: float) -> float:
        value = math.log10(v) if log else v
        return round(y1 - (value - lo) / span * (y1 - y0), 2)
    return y


def line_chart(env: Environment, lines: Sequence[Line], title: str, x_label: str, y_label: str,
               log: bool = True) -> Markup | None:
    """Lines over t = 1..T; on a log scale only the positive finite values are drawn."""
    values = [v for line in lines for v in line.values if math.isfinite(v) and (v > 0 or not log)]
    n = max((len(line.values) for line in lines), default=0)
    if not values or n == 0:
        return None
    lo, hi = min(values), max(values)
    if log:
        lo, hi = 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))
        if lo == hi:
            hi = lo * 10
    elif lo == hi:
        lo, hi = lo - 1, hi + 1
    y = _y_mapper(lo, hi, log)
    x0, x1 = LEFT, WIDTH - RIGHT

    def x(i: int) -> float:
        return round(x0 + (i / max(n - 1, 1)) * (x1 - x0), 2)

    chart = _Chart(title, x_label, y_label)
    for line in lines:
        points = [(x(i), y(v)) for i, v in enumerate(line.values) if math.isfinite(v) and (v > 0 or not log)]
        chart.paths.append({"d": " ".join(f"{'M' if k == 0 else 'L'}{px},{py}" for k, (px, py) in enumerate(points)),
                            "points": points, "colour": line.colour, "dashed": line.dashed, "faint": line.faint})
        chart.legend.append({"label": line.label, "colour": line.colour, "dashed": line.dashed, "faint": line.faint})
    step = max(1, n // 10)
    chart.x_ticks = [{"x": x(i), "label": str(i + 1)} for i in range(0, n, step)]
    if log:
        chart.y_ticks = [{"y": y(10.0 ** e), "label": f"1e{e}"}
                         for e in range(int(math.log10(lo)), int(math.log10(hi)) + 1,
                                        max(1, (int(math.log10(hi)) - int(math.log10(lo))) // 6))]
    else:
        chart.y_ticks = [{"y": y(lo + k * (hi - lo) / 4), "label": f"{lo + k * (hi - lo) / 4:.3g}"} for k in range(5)]
    return Markup(env.get_template("chart.svg.j2").render(c=chart))


def bar_chart(env: Environment, bars: Sequence[Bar], title: str, x_label: str, y_label: str,
              y_max: float, hline: tuple[float, str] | None = None) -> Markup | None:
    if not bars:
        return None
    y_max = y_max or 1.0
    y = _y_mapper(0.0, y_max, log=False)
    x0, x1 = LEFT, WIDTH - RIGHT
    slot = (x1 - x0) / len(bars)
    chart = _Chart(title, x_label, y_label)
    for i, bar in enumerate(bars):
        top = y(min(bar.value, y_max))
        chart.rects.append({"x": round(x0 + i * slot + slot * 0.1, 2), "y": top, "w": round(slot * 0.8, 2),
                            "h": round(y(0.0) - top, 2), "colour": bar.colour, "value": bar.value})
        chart.x_ticks.append({"x": round(x0 + (i + 0.5) * slot, 2), "label": bar.label})
    chart.y_ticks = [{"y": y(k * y_max / 4), "label": f"{k * y_max / 4:.3g}"} for k in range(5)]
    if hline is not None:
        chart.hline = {"y": y(hline[0]), "label": hline[1]}
    return Markup(env.get_template("chart.svg.j2").render(c=chart))
