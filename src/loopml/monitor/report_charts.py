"""Chart geometry for the monitoring report: SVG coordinates, markup in the template.

Histogram charts (reference vs current shares per bin or category) and line charts over
windows (gaps where a value is missing, plus horizontal reference lines), as plain
numbers and already formatted tooltips for ``templates/monitor_report.html.j2``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from loopml.monitor.report_format import View
from loopml.monitor.results import Histogram, WindowReport
from loopml.render.format import (
    DASH,
    finite,
    fmt_int,
    fmt_num,
    fmt_pct,
    fmt_range,
    shorten,
    text,
    utc,
)

__all__ = ["Series", "drift_chart", "histogram_chart", "line_chart", "window_axis"]

MAX_BARS = 12  # categories per chart; the rest fold into one "(N more)" bar


# --- charts: coordinates here, markup in the template -----------------------------------


@dataclass(frozen=True)
class Series:
    """One line of a line chart: its legend name, CSS class and a value per window."""

    name: str
    css: str
    values: list[float | None]

    @property
    def present(self) -> bool:
        return any(v is not None for v in self.values)


def histogram_chart(histogram: Histogram | None, name: str) -> View | None:
    """Reference vs current shares: columns per bin (numeric) or bars per category."""
    if histogram is None:
        return None
    labels = [text(label) for label in histogram.labels]
    reference = [finite(v) or 0.0 for v in histogram.reference]
    current = [finite(v) or 0.0 for v in histogram.current]
    count = min(len(labels), len(reference), len(current))
    if count == 0:
        return None
    bins = list(zip(labels[:count], reference[:count], current[:count], strict=True))
    caption = f"{text(name)}: share of rows, reference vs current, per "
    if histogram.edges is not None:
        return _column_chart(bins, histogram.edges, caption + "bin")
    return _bar_chart(bins, caption + "category")


def _tip(label: str, reference: float, current: float) -> str:
    return f"{label}: reference {fmt_pct(reference)}, current {fmt_pct(current)}"


def _column_chart(bins: list[tuple[str, float, float]], edges: list[float], caption: str) -> View:
    width, base, height = 292.0, 76.0, 72.0
    scale = max(max(r, c) for _, r, c in bins) or 1.0
    step = width / len(bins)
    columns = []
    for n, (label, ref, cur) in enumerate(bins):
        left = 4 + n * step
        columns.append(
            {
                "tip": _tip(label, ref, cur),
                "x_ref": round(left + step * 0.1, 2),
                "x_cur": round(left + step * 0.5, 2),
                "w": round(step * 0.4, 2),
                "y_ref": round(base - ref / scale * height, 2),
                "h_ref": round(ref / scale * height, 2),
                "y_cur": round(base - cur / scale * height, 2),
                "h_cur": round(cur / scale * height, 2),
            }
        )
    ends = [fmt_num(e) for e in (edges[0], edges[-1])] if edges else [DASH, DASH]
    if DASH in ends:
        ends = [shorten(bins[0][0], 14), shorten(bins[-1][0], 14)]
    return {
        "kind": "columns",
        "caption": caption,
        "columns": columns,
        "first": ends[0],
        "last": ends[1],
    }


def _bar_chart(bins: list[tuple[str, float, float]], caption: str) -> View:
    if len(bins) > MAX_BARS:
        rest = bins[MAX_BARS - 1 :]
        folded = (f"({len(rest)} more)", sum(r for _, r, _ in rest), sum(c for _, _, c in rest))
        bins = [*bins[: MAX_BARS - 1], folded]
    scale = max(max(r, c) for _, r, c in bins) or 1.0
    bars = [
        {
            "tip": _tip(label, ref, cur),
            "label": shorten(label),
            "y_text": 16 * n + 12,
            "y_ref": 16 * n + 3,
            "y_cur": 16 * n + 9,
            "w_ref": round(ref / scale * 176, 2),
            "w_cur": round(cur / scale * 176, 2),
        }
        for n, (label, ref, cur) in enumerate(bins)
    ]
    return {"kind": "bars", "caption": caption, "bars": bars, "height": 16 * len(bins) + 4}


def _padded(low: float, high: float) -> tuple[float, float]:
    pad = (high - low) * 0.08 if high - low > 1e-12 else (abs(high) * 0.05 or 0.05)
    return low - pad, high + pad


def line_chart(
    ticks: Sequence[tuple[str, str]],
    tips: Sequence[str],
    series: Sequence[Series],
    *,
    lines: Sequence[tuple[str, str, float]] = (),
    bounds: tuple[float, float] | None = None,
    percent: bool = False,
) -> View | None:
    """Lines over windows (gaps where a value is missing) plus horizontal reference lines."""
    values = [v for s in series for v in s.values if v is not None]
    if not values:  # a threshold or reference line alone is no chart
        return None
    values += [v for *_, v in lines]
    low, high = bounds or _padded(min(values), max(values))
    left, right, top, bottom = 56.0, 628.0, 12.0, 168.0

    def y_of(value: float) -> float:
        return round(bottom - (value - low) / (high - low) * (bottom - top), 2)

    def x_of(n: int) -> float:
        return round(left + (right - left) * (n / (len(ticks) - 1) if len(ticks) > 1 else 0.5), 2)

    fmt = fmt_pct if percent else fmt_num
    drawn = []
    for s in series:
        points = [(n, v) for n, v in enumerate(s.values) if v is not None]
        path = " ".join(
            f"{'L' if n and s.values[n - 1] is not None else 'M'}{x_of(n)},{y_of(v)}"
            for n, v in points
        )
        dots = [
            {"x": x_of(n), "y": y_of(v), "tip": f"{tips[n]} · {s.name} {fmt(v)}"} for n, v in points
        ]
        drawn.append({"css": s.css, "d": path, "points": dots})
    every = math.ceil(len(ticks) / 8)
    return {
        "left": left,
        "right": right,
        "bottom": bottom,
        "series": drawn,
        "lines": [{"css": css, "y": y_of(v), "tip": f"{name} {fmt(v)}"} for name, css, v in lines],
        "yticks": [
            {"y": y_of(low + (high - low) * k / 4), "label": fmt(low + (high - low) * k / 4)}
            for k in range(5)
        ],
        "xticks": [
            {"x": x_of(n), "label": label, "time": time}
            for n, (label, time) in enumerate(ticks)
            if n % every == 0 or n == len(ticks) - 1
        ],
        "legend": [{"name": s.name, "css": s.css} for s in series if s.present]
        + [{"name": name, "css": css} for name, css, _ in lines],
    }


def window_axis(windows: Sequence[WindowReport]) -> tuple[list[tuple[str, str]], list[str]]:
    """Tick labels (index, start time) and tooltips (index, time range) per window."""
    names = [f"#{fmt_int(w.index)}" for w in windows]
    starts = [utc(w.start_ts) for w in windows]
    ticks = [
        (name, DASH if t is None else f"{t:%m-%d %H:%M}")
        for name, t in zip(names, starts, strict=True)
    ]
    tips = [
        f"window {n} ({fmt_range(w.start_ts, w.end_ts)})"
        for n, w in zip(names, windows, strict=True)
    ]
    return ticks, tips


def drift_chart(windows: Sequence[WindowReport], threshold: float | None) -> View | None:
    """The dataset drift share per window, on 0-100%, with the threshold line."""
    ticks, tips = window_axis(windows)
    shares = [finite(w.drift_share) for w in windows]
    lines = [] if threshold is None else [("dataset drift threshold", "threshold", threshold)]
    return line_chart(
        ticks,
        tips,
        [Series("drift share", "share", shares)],
        lines=lines,
        bounds=(0.0, 1.0),
        percent=True,
    )
