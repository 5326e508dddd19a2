"""The window still filling, shown apart from the trends.

The newest window of a run is often partial ("53 of 5,000 rows so far"): its drift and
metrics come from a handful of rows, so it is never a point on a trend chart or a row of
the performance table. The report gives it its own small block instead, saying how full
it is and its numbers so far.
"""

from __future__ import annotations

from loopml.errors import ConfigError
from loopml.monitor.report_format import View, metric_title, status_text
from loopml.monitor.results import WindowReport
from loopml.monitor.windows import WindowSpec
from loopml.render.format import DASH, finite, fmt_int, fmt_num, fmt_pct, fmt_range, text

__all__ = ["filling_view"]

MAX_METRICS = 3
MAX_DRIFTED = 10


def filling_view(newest: WindowReport, latest: WindowReport) -> View | None:
    """The block for ``newest`` when it is still filling (``latest``: what the tables show)."""
    if newest.complete:
        return None
    index = fmt_int(newest.index)
    if newest is latest:
        where = (
            "No window is complete yet, so the tables below show this one; "
            "the trends start with the first complete window."
        )
    else:
        where = (
            f"It is not in the trends or tables below, which show complete windows "
            f"(the newest: window #{fmt_int(latest.index)})."
        )
    return {
        "headline": f"Window #{index} is filling: {_fullness(newest)}",
        "note": where,
        "facts": _numbers(newest),
    }


def _fullness(window: WindowReport) -> str:
    """``53 of 5,000 rows so far`` (a count window) or ``53 rows so far`` (a time one)."""
    try:
        size = WindowSpec.parse(window.window).rows
    except ConfigError:
        size = None
    rows = fmt_int(window.rows)
    return f"{rows} rows so far" if size is None else f"{rows} of {size:,} rows so far"


def _numbers(window: WindowReport) -> list[tuple[str, str]]:
    perf = window.performance
    share = finite(window.drift_share)
    drifted = [text(name) for name in window.drifted_features]
    facts = [
        ("Time so far", fmt_range(window.start_ts, window.end_ts)),
        ("Rows", fmt_int(window.rows)),
        ("Labelled rows", fmt_int(perf.labelled_rows)),
        (
            "Drift share",
            status_text(window.status, window.reason) if share is None else fmt_pct(share),
        ),
        ("Drifted so far", ", ".join(drifted[:MAX_DRIFTED]) or DASH),
    ]
    names = [*dict.fromkeys([*perf.realized, *perf.estimated])][:MAX_METRICS]
    for name in names:
        realized, estimated = perf.realized.get(name), perf.estimated.get(name)
        values = f"realized {fmt_num(realized)} · estimated {fmt_num(estimated)}"
        facts.append((metric_title(name), values))
    return facts
