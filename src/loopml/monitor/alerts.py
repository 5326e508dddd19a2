"""Alert rules over monitoring windows: a pure state machine that does not cry wolf.

An alert is one rule on one concrete metric of one model's arm: its identity is
:class:`AlertKey` ``(model, arm, rule, metric)``. A rule whose metric holds a wildcard
(``missing_increase.*``) makes one alert per matching metric of each window, i.e. one per
feature. The model version is *not* part of the identity: the alert is about whatever
serves in that arm, and each event records the version it saw.

Per alert, :func:`evaluate` applies, window after window:

- **beyond chance**: a drop (``realized_drop*``, ``estimated_drop*``) above its
  threshold breaches only when it is also above the drop chance alone gives a window of
  that size (the window's ``realized_noise*`` / ``estimated_noise*``, when it has one);
- **minimum rows**: a window with fewer than ``rule.min_rows`` rows (labelled rows for
  ``realized*`` and ``performance_cusum``), or where the metric is absent or not finite,
  changes nothing (:attr:`loopml.config.MonitorConfig.rules` sets ``min_rows`` of the
  rules that leave it to the monitor);
- **hysteresis**: ``raise_after`` consecutive breaching windows raise the alert (it is
  ``pending`` meanwhile), ``clear_after`` consecutive healthy windows clear it; a healthy
  window resets the breach streak and a breaching window resets the healthy streak;
- **de-duplication**: one ``raised`` event per alert until a ``cleared`` event; windows
  that only continue a state make no event; a window already counted is ignored;
- **no silent clear**: a raised alert whose metric stops appearing stays raised;
- **new version, new streaks**: when another version starts serving in the arm, the
  streaks restart (windows of different versions are not "consecutive"), but a raised
  alert stays raised until the new version's windows are healthy ``clear_after`` times.

Feed the windows of an arm in time order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from fnmatch import fnmatchcase
from typing import Any, Literal, NamedTuple

from loopml.config import LABELLED_METRICS, AlertRule
from loopml.monitor.alert_messages import describe
from loopml.monitor.results import WindowReport

__all__ = [
    "AlertEvent",
    "AlertKey",
    "AlertState",
    "WindowView",
    "active",
    "concrete_metrics",
    "evaluate",
    "noise_metric",
]

Status = Literal["ok", "pending", "raised"]
Severity = Literal["warning", "critical"]
EventKind = Literal["raised", "cleared"]
Direction = Literal["above", "below"]
_STATUSES = ("ok", "pending", "raised")
_WILDCARDS = frozenset("*?[")
Evidence = Mapping[str, Any] | Callable[[str], Mapping[str, Any]]


class AlertKey(NamedTuple):
    """The identity of one alert (equal to the plain tuple of its fields)."""

    model: str
    arm: str
    rule: str
    metric: str


@dataclass(frozen=True)
class WindowView:
    """What the alert rules read of one window (see :meth:`from_report`)."""

    model: str
    version: str
    arm: str
    index: int
    start_ts: float
    end_ts: float
    rows: int
    labelled_rows: int
    metrics: Mapping[str, float]

    @classmethod
    def from_report(cls, report: WindowReport) -> WindowView:
        """The view of a computed window."""
        return cls(
            model=report.model,
            version=report.version,
            arm=report.arm,
            index=report.index,
            start_ts=report.start_ts,
            end_ts=report.end_ts,
            rows=report.rows,
            labelled_rows=report.performance.labelled_rows,
            metrics=dict(report.metrics),
        )


@dataclass(frozen=True)
class AlertState:
    """Where one alert stands; ``to_dict`` / ``from_dict`` round-trip it through JSON.

    ``last_value``, ``last_window`` and ``version`` describe the last window that counted
    (enough rows, metric present). ``raised_value`` and ``raised_window`` are the value
    and the window that raised the alert (``None`` while it is not raised, and in states
    stored before they were recorded); ``severity`` is the rule's. ``streak_start`` /
    ``streak_start_ts`` are the first window of the current (breach or healthy) streak,
    ``streak_rows`` the rows it covers (labelled rows for ``realized*`` and ``performance_cusum``).
    """

    model: str
    arm: str
    rule: str
    metric: str
    status: Status = "ok"
    breach_streak: int = 0
    healthy_streak: int = 0
    raised_at: float | None = None
    last_value: float | None = None
    last_window: int | None = None
    version: str | None = None
    streak_start: int | None = None
    streak_start_ts: float | None = None
    streak_rows: int = 0
    raised_value: float | None = None
    raised_window: int | None = None
    severity: Severity | None = None

    @property
    def key(self) -> AlertKey:
        return AlertKey(self.model, self.arm, self.rule, self.metric)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertState:
        """Rebuild a state from :meth:`to_dict` (unknown keys are ignored)."""
        if data.get("status", "ok") not in _STATUSES:
            raise ValueError(f"unknown alert status {data.get('status')!r}")
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class AlertEvent:
    """An alert was raised or cleared at the end of window ``window``.

    ``windows`` consecutive windows (``first_window`` .. ``window``, from
    ``first_window_start`` to ``window_end``) breached or were healthy, covering
    ``streak_rows`` rows (labelled rows for ``realized*`` and ``performance_cusum``).
    ``rows`` and ``labelled_rows`` are the last window's. ``evidence`` is what the caller
    attached.
    """

    model: str
    arm: str
    version: str
    rule: str
    metric: str
    severity: Severity
    state: EventKind
    value: float
    threshold: float
    direction: Direction
    ts: float
    window: int
    window_start: float
    window_end: float
    first_window: int
    first_window_start: float
    windows: int
    rows: int
    labelled_rows: int
    streak_rows: int
    evidence: dict[str, Any]
    message: str

    @property
    def key(self) -> AlertKey:
        return AlertKey(self.model, self.arm, self.rule, self.metric)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: non-finite floats (e.g. in the evidence) become ``None``."""
        out: dict[str, Any] = _json_safe(asdict(self))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertEvent:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def concrete_metrics(pattern: str, metrics: Mapping[str, float]) -> list[str]:
    """The metrics an alert rule's ``metric`` names in one window, sorted.

    A name without wildcards is itself (present or not). Otherwise the part before the
    first ``.`` and the part after it are matched separately (fnmatch, case-sensitive),
    so ``*`` never crosses from the metric family into the feature name.

    >>> concrete_metrics("missing_increase.*", {"missing_increase.b": 0.1,
    ...     "missing_increase.a": 0.0, "missing_rate.a": 0.2, "rows": 10.0})
    ['missing_increase.a', 'missing_increase.b']
    """
    if not _WILDCARDS & set(pattern):
        return [pattern]
    head, dot, tail = pattern.partition(".")
    found = []
    for name in metrics:
        name_head, name_dot, name_tail = name.partition(".")
        if name_dot == dot and fnmatchcase(name_head, head) and fnmatchcase(name_tail, tail):
            found.append(name)
    return sorted(found)


def evaluate(
    rules: Sequence[AlertRule],
    window: WindowView,
    states: Mapping[AlertKey, AlertState],
    evidence: Evidence | None = None,
) -> tuple[dict[AlertKey, AlertState], list[AlertEvent]]:
    """Step every alert of ``rules`` over one window (see the module doc for the rules).

    Returns all states (those not touched by this window carried over unchanged) and the
    events of this window, in rule order then metric order. ``evidence`` is attached to
    each event: a mapping as is, a function called with the event's metric (what
    :func:`~loopml.monitor.alert_messages.window_evidence` gives). The message reads it
    (:func:`~loopml.monitor.alert_messages.describe`).

    >>> rule = AlertRule(name="drift", metric="drift_share", above=0.5, raise_after=1,
    ...                  min_rows=1)
    >>> window = WindowView("feed", "3", "champion", 0, 0.0, 60.0, 500, 0,
    ...                     {"drift_share": 0.75})
    >>> states, events = evaluate([rule], window, {})
    >>> events[0].message
    'drift raised on feed champion v3: drift share 0.75 > 0.5 in window 0 (500 rows)'
    >>> [s.status for s in states.values()]
    ['raised']
    """
    updated = dict(states)
    events: list[AlertEvent] = []
    for rule in rules:
        for metric in concrete_metrics(rule.metric, window.metrics):
            key = AlertKey(window.model, window.arm, rule.name, metric)
            stepped = _step(rule, updated.get(key) or AlertState(*key), window)
            if stepped is None:
                continue
            updated[key], kind = stepped
            if kind is not None:
                attached = evidence(metric) if callable(evidence) else evidence
                events.append(_event(rule, updated[key], window, kind, attached or {}))
    return updated, events


def active(states: Mapping[AlertKey, AlertState]) -> list[AlertState]:
    """The raised alerts, ordered by key."""
    return sorted((s for s in states.values() if s.status == "raised"), key=lambda s: s.key)


def _counted_rows(metric: str, window: WindowView) -> int:
    # Realized quality (and its CUSUM) only exists where labels arrived: those rows are
    # the sample size.
    return window.labelled_rows if metric.startswith(LABELLED_METRICS) else window.rows


def _min_rows(rule: AlertRule) -> int:
    if rule.min_rows is None:
        raise ValueError(
            f"alert {rule.name!r} has no min_rows: evaluate MonitorConfig.rules, which "
            "gives each rule the monitor's min_rows when it sets none"
        )
    return rule.min_rows


def _bound(rule: AlertRule) -> tuple[Direction, float]:
    if rule.above is not None:
        return "above", float(rule.above)
    if rule.below is not None:
        return "below", float(rule.below)
    raise ValueError(f"alert {rule.name!r} has neither 'above' nor 'below'")


def _breached(rule: AlertRule, value: float, metric: str, window: WindowView) -> bool:
    direction, threshold = _bound(rule)
    if direction == "below":
        return value < threshold
    chance = window.metrics.get(noise_metric(metric) or "")
    return value > threshold and (chance is None or value > chance)


def noise_metric(metric: str) -> str | None:
    """The window metric holding the chance level of a drop metric, if it is one.

    >>> noise_metric("realized_drop"), noise_metric("estimated_drop.rmse"), noise_metric("rows")
    ('realized_noise', 'estimated_noise.rmse', None)
    """
    head, dot, tail = metric.partition(".")
    if head not in ("realized_drop", "estimated_drop"):
        return None
    return head.replace("_drop", "_noise") + dot + tail


def _step(
    rule: AlertRule, state: AlertState, window: WindowView
) -> tuple[AlertState, EventKind | None] | None:
    """The state after one window and the event it makes, or None when it does not count."""
    raw = window.metrics.get(state.metric)
    rows = _counted_rows(state.metric, window)
    if raw is None or not math.isfinite(raw) or rows < _min_rows(rule):
        return None
    if (
        state.version == window.version
        and state.last_window is not None
        and window.index <= state.last_window
    ):
        return None  # already counted (e.g. the same window fed twice)
    if state.version is not None and state.version != window.version:
        state = replace(
            state,
            status="raised" if state.status == "raised" else "ok",
            breach_streak=0,
            healthy_streak=0,
        )
    value = float(raw)
    breached = _breached(rule, value, state.metric, window)
    new = replace(_advance(state, window, value, rows, breached=breached), severity=rule.severity)
    if breached and state.status != "raised" and new.breach_streak >= rule.raise_after:
        raised = replace(
            new, status="raised", raised_at=window.end_ts, raised_value=value,
            raised_window=window.index,
        )  # fmt: skip
        return raised, "raised"
    if not breached and state.status == "raised" and new.healthy_streak >= rule.clear_after:
        cleared = replace(new, status="ok", raised_at=None, raised_value=None, raised_window=None)
        return cleared, "cleared"
    if state.status == "raised":
        return new, None
    return replace(new, status="pending" if breached else "ok"), None


def _advance(
    state: AlertState, window: WindowView, value: float, rows: int, *, breached: bool
) -> AlertState:
    """Extend the breach or healthy streak by this window (the status is left as it is)."""
    first = (state.breach_streak if breached else state.healthy_streak) == 0
    return replace(
        state,
        breach_streak=state.breach_streak + 1 if breached else 0,
        healthy_streak=0 if breached else state.healthy_streak + 1,
        streak_start=window.index if first else state.streak_start,
        streak_start_ts=window.start_ts if first else state.streak_start_ts,
        streak_rows=(0 if first else state.streak_rows) + rows,
        last_value=value,
        last_window=window.index,
        version=window.version,
    )


def _event(
    rule: AlertRule,
    state: AlertState,
    window: WindowView,
    kind: EventKind,
    evidence: Mapping[str, Any],
) -> AlertEvent:
    direction, threshold = _bound(rule)
    windows = state.breach_streak if kind == "raised" else state.healthy_streak
    first = window.index if state.streak_start is None else state.streak_start
    event = AlertEvent(
        model=window.model,
        arm=window.arm,
        version=window.version,
        rule=rule.name,
        metric=state.metric,
        severity=rule.severity,
        state=kind,
        value=float(state.last_value if state.last_value is not None else math.nan),
        threshold=threshold,
        direction=direction,
        ts=window.end_ts,
        window=window.index,
        window_start=window.start_ts,
        window_end=window.end_ts,
        first_window=first,
        first_window_start=(
            window.start_ts if state.streak_start_ts is None else state.streak_start_ts
        ),
        windows=windows,
        rows=window.rows,
        labelled_rows=window.labelled_rows,
        streak_rows=state.streak_rows,
        evidence=dict(evidence),
        message="",
    )
    return replace(event, message=_message(event))


def _message(event: AlertEvent) -> str:
    """One line, e.g. ``x raised on m champion v3: age drifted (ks p-value ...) in ...``."""
    what = describe(
        event.metric,
        event.value,
        event.threshold,
        event.direction,
        event.evidence,
        raised=event.state == "raised",
    )
    version = f"v{event.version}" if event.version.isdigit() else event.version
    unit = "labelled rows" if event.metric.startswith("realized") else "rows"
    rows = f"{event.streak_rows:,} {unit}"
    if event.windows == 1:
        span = f"in window {event.window} ({rows})"
    else:
        span = (
            f"for {event.windows} consecutive windows "
            f"(windows {event.first_window}-{event.window}, {rows})"
        )
    return f"{event.rule} {event.state} on {event.model} {event.arm} {version}: {what} {span}"


def _json_safe(data: Any) -> Any:
    """Plain JSON values all the way down: non-finite floats become None, numpy scalars
    become Python numbers, tuples become lists, other objects their ``str``."""
    if isinstance(data, bool | int | str) or data is None:
        return data
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, Mapping):
        return {str(k): _json_safe(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_json_safe(v) for v in data]
    item = getattr(data, "item", None)
    if callable(item):  # numpy scalar
        return _json_safe(item())
    return str(data)
