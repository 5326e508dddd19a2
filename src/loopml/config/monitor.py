"""The ``monitor`` section of ``loopml.yaml``: windows, drift tests, alert rules, sinks.

Two settings decide which windows count, and they have one meaning between them:
``monitor.min_rows`` is the smallest window evaluated at all (smaller ones are "not
enough data" and judged by no alert rule), and a rule's ``min_rows`` can only ask for
more (it defaults to the monitor's). When ``monitor.window`` is a row count, a setting
that no window could ever meet is refused when the file is loaded, naming the setting and
the fix: a rule that can never fire must not look like a healthy model.
"""

from __future__ import annotations

import re
from typing import Any, Literal, NamedTuple

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from loopml.config.base import STATE_DIR, Section
from loopml.errors import ConfigError

__all__ = [
    "CUSUM_LIMIT",
    "LABELLED_METRICS",
    "MIN_ROWS_HELP",
    "AlertRule",
    "DriftTestConfig",
    "MonitorConfig",
    "WindowProblem",
    "default_alerts",
    "window_rows",
]

CUSUM_LIMIT = 3.0
"""The decision interval of the ``performance_cusum`` statistic (the concept-drift rule)."""

LABELLED_METRICS = ("realized", "performance_cusum")
"""Metrics (by prefix) whose sample is the labelled rows of a window, not all its rows."""

_ROW_COUNT = re.compile(r"^\s*(\d+)\s*(?:rows?)?\s*$", re.IGNORECASE)


def window_rows(window: str) -> int | None:
    """The rows of a count window, or None for a duration (or text that is neither).

    >>> window_rows("5000"), window_rows("400 rows"), window_rows("1h")
    (5000, 400, None)
    """
    match = _ROW_COUNT.match(window)
    return int(match.group(1)) if match else None


class DriftTestConfig(Section):
    """Override the drift test chosen for one column (see ``loopml.monitor.stattests``)."""

    test: str | None = Field(
        None,
        description="ks, chi_square, z, wasserstein, jensen_shannon or psi (default: "
        "chosen by column type and reference size, as Evidently does)",
    )
    threshold: float | None = Field(None, gt=0, description="default: the test's own")
    enabled: bool = Field(True, description="false: never test this column for drift")


class AlertRule(Section):
    """One alert: a window metric against a threshold, with evidence and hysteresis.

    ``metric`` names a value of each window (``drift_share``, ``dataset_drift``,
    ``prediction_drift``, ``drift.<feature>``, ``missing_increase.<feature>``,
    ``unseen_rate.<feature>``, ``realized.<metric>``, ``estimated.<metric>``,
    ``realized_drop.<metric>``, ``estimated_drop.<metric>``, ``performance_cusum``,
    ``rows`` ...). A ``*`` in it matches every feature and makes one alert per feature.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    metric: str
    above: float | None = Field(None, description="breached when the metric is above this")
    below: float | None = Field(None, description="breached when the metric is below this")
    min_rows: int | None = Field(
        None,
        ge=1,
        description="windows with fewer rows (labelled rows for realized* and "
        "performance_cusum) neither raise nor clear the alert; default: monitor.min_rows, "
        "and never less (smaller windows are not evaluated at all)",
    )
    raise_after: int = Field(2, ge=1, description="consecutive breaching windows to raise")
    clear_after: int = Field(2, ge=1, description="consecutive healthy windows to clear")
    severity: Literal["warning", "critical"] = "warning"
    sinks: tuple[Literal["log", "file", "webhook"], ...] = ("log", "file", "webhook")

    @model_validator(mode="after")
    def _one_bound(self) -> AlertRule:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"alert {self.name!r}: set exactly one of 'above' or 'below'")
        return self

    @property
    def counts_labelled(self) -> bool:
        """Whether ``min_rows`` counts the labelled rows of a window (not all its rows)."""
        return self.metric.startswith(LABELLED_METRICS)


def default_alerts() -> tuple[AlertRule, ...]:
    """The alerts a project gets when its file declares none (``loopml init`` writes them
    into ``loopml.yaml``, commented). Each counts windows of ``monitor.min_rows`` rows."""
    return (
        AlertRule(name="dataset-drift", metric="dataset_drift", above=0.5, severity="critical"),
        AlertRule(name="prediction-drift", metric="prediction_drift", above=0.5),
        AlertRule(name="feature-drift", metric="drift.*", above=0.5),
        AlertRule(name="missing-values", metric="missing_increase.*", above=0.1),
        AlertRule(name="unseen-categories", metric="unseen_rate.*", above=0.1),
        AlertRule(
            name="performance-drop", metric="realized_drop", above=0.05, severity="critical"
        ),
        AlertRule(name="estimated-performance-drop", metric="estimated_drop", above=0.05),
        AlertRule(
            name="concept-drift", metric="performance_cusum", above=CUSUM_LIMIT,
            raise_after=1, clear_after=2, severity="critical",
        ),
    )  # fmt: skip


class WindowProblem(NamedTuple):
    """A setting no window could ever meet: what is wrong, and how to fix it."""

    subject: str
    headline: str
    fix: str


MIN_ROWS_HELP = (
    "monitor.min_rows is the smallest window evaluated at all (smaller ones are 'not enough "
    "data');\nan alert rule's min_rows defaults to it, can only be larger, and counts "
    "labelled rows for realized* and performance_cusum"
)


class MonitorConfig(Section):
    """``loopml monitor``: windows over the ledger, drift tests, performance and alerts."""

    window: str = Field(
        "5000", description="a window: a row count ('5000') or a duration ('30m', '1h', '1d')"
    )
    min_rows: int = Field(
        100,
        ge=1,
        description="the smallest window evaluated at all: smaller ones are reported as "
        "'not enough data' and judged by no alert; also every rule's min_rows unless it "
        "asks for more",
    )
    drift_share: float = Field(
        0.5, gt=0, le=1, description="dataset drift when this share of features drift"
    )
    features: dict[str, DriftTestConfig] = Field(
        default_factory=dict, description="per-feature test / threshold overrides"
    )
    prediction: DriftTestConfig = DriftTestConfig()
    slices: tuple[str, ...] | None = Field(
        None, description="columns to slice realized performance by (default: categoricals)"
    )
    alerts: tuple[AlertRule, ...] | None = Field(
        None,
        description="replaces the defaults (written, commented, by 'loopml init'): dataset, "
        "prediction and per-feature drift, missing values, unseen categories, realized and "
        "estimated performance drops, concept drift (performance CUSUM)",
    )
    alert_log: str = Field(f"{STATE_DIR}/alerts.jsonl", description="the 'file' sink")
    webhook_url: str | None = Field(None, description="the 'webhook' sink: POST JSON here")
    webhook_timeout_seconds: float = Field(5.0, gt=0)
    store: str = Field(
        f"sqlite:///{STATE_DIR}/monitor.db",
        description="where windows and alerts are kept (sqlite:///path or postgresql://...)",
    )
    reports_dir: str = Field(f"{STATE_DIR}/monitor", description="JSON and HTML reports")
    interval_seconds: float = Field(
        60.0, ge=0, description="loopml serve: monitor this often in the background (0: never)"
    )

    @field_validator("window", mode="before")
    @classmethod
    def _count_as_text(cls, value: Any) -> Any:
        """``window: 5000`` in YAML is a number; it means 5000 rows."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def rules(self) -> tuple[AlertRule, ...]:
        """The alert rules (the defaults unless ``alerts`` is set), each with its
        ``min_rows`` resolved: a rule that sets none gets ``monitor.min_rows``."""
        declared = default_alerts() if self.alerts is None else self.alerts
        return tuple(
            rule
            if rule.min_rows is not None
            else rule.model_copy(update={"min_rows": self.min_rows})
            for rule in declared
        )

    def window_problems(self, window: str | None = None) -> list[WindowProblem]:
        """The settings no window of ``window`` (default: ``monitor.window``, else it is
        ``--window``) could meet; none for a duration window, which cannot be known ahead.

        >>> MonitorConfig(min_rows=50).window_problems("30")[0].fix
        'lower monitor.min_rows to 30 or less, or pass a larger --window'
        """
        source, larger = ("monitor.window", "raise monitor.window")
        if window is not None:
            source, larger = ("--window", "pass a larger --window")
        rows = window_rows(self.window if window is None else window)
        if rows is None:
            return []
        if self.min_rows > rows:
            return [
                WindowProblem(
                    "monitor.min_rows",
                    f"monitor.min_rows ({self.min_rows}) is more than {source} ({rows} rows): "
                    "every window would be 'not enough data' and no alert could ever fire",
                    f"lower monitor.min_rows to {rows} or less, or {larger}",
                )
            ]
        return [
            _unreachable(index, rule, rule.min_rows, rows, source, larger)
            for index, rule in enumerate(self.alerts or ())
            if rule.min_rows is not None and rule.min_rows > rows
        ]

    def check_window(self, window: str) -> None:
        """Refuse a window that overrides ``monitor.window`` (``loopml monitor run
        --window``) when a setting could never be met in it, as loading refuses the file's."""
        problems = self.window_problems(window)
        if problems:
            raise ConfigError(_headline(problems), detail=MIN_ROWS_HELP, fix=problems[0].fix)

    @model_validator(mode="after")
    def _unique_alert_names(self) -> MonitorConfig:
        names = [rule.name for rule in self.rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"alert names must be unique; repeated: {', '.join(twice)}")
        return self

    @model_validator(mode="after")
    def _rules_can_fire(self) -> MonitorConfig:
        for index, rule in enumerate(self.alerts or ()):
            if rule.min_rows is not None and rule.min_rows < self.min_rows:
                raise _setting_error(
                    f"alert rule {rule.name!r} has min_rows {rule.min_rows}, less than "
                    f"monitor.min_rows ({self.min_rows}): smaller windows are not evaluated "
                    "at all, so a rule can only ask for more rows",
                    f"remove monitor.alerts[{index}].min_rows (it then uses monitor.min_rows), "
                    f"set it to {self.min_rows} or more, or lower monitor.min_rows",
                )
        problems = self.window_problems()
        if problems:
            raise _setting_error(_headline(problems), problems[0].fix)
        return self


def _unreachable(
    index: int, rule: AlertRule, needed: int, rows: int, source: str, larger: str
) -> WindowProblem:
    needs = (
        f"at least {needed} labelled rows per window"
        if rule.counts_labelled
        else f"windows of at least {needed} rows"
    )
    return WindowProblem(
        f"alert rule {rule.name!r}",
        f"alert rule {rule.name!r} can never fire: it needs {needs} (min_rows) but {source} "
        f"is {rows} rows",
        f"lower monitor.alerts[{index}].min_rows to {rows} or less, or {larger}",
    )


def _headline(problems: list[WindowProblem]) -> str:
    others = [p.subject for p in problems[1:]]
    return problems[0].headline + (f" (and likewise {', '.join(others)})" if others else "")


def _setting_error(headline: str, fix: str) -> PydanticCustomError:
    """A settings error whose loading error (``loopml.config``) shows this headline and fix."""
    return PydanticCustomError(
        "loopml_setting", "{headline}", {"headline": headline, "fix": fix, "detail": MIN_ROWS_HELP}
    )
