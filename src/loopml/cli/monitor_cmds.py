"""``loopml monitor ...`` and ``loopml alerts``: drift, performance and alerts."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from loopml.cli.output import console, fmt, print_json, progress_display
from loopml.cli.state import TRUST_PICKLE_HELP, State

if TYPE_CHECKING:  # the commands import their stage when they run (fast start-up)
    from collections.abc import Sequence

    from loopml.monitor.alert_status import AlertStatus
    from loopml.monitor.alerts import AlertState, Severity
    from loopml.monitor.results import WindowReport
    from loopml.monitor.run import MonitorRun

monitor_app = typer.Typer(
    help="Watch the served model: drift, realized and estimated performance, alerts.\n\n"
    "Windows under monitor.min_rows rows are 'not enough data' and judged by no alert; an "
    "alert rule counts windows of at least its own min_rows (default: monitor.min_rows, "
    "labelled rows for realized* and performance_cusum). 'loopml init' writes the default "
    "rules into loopml.yaml, commented; a rule no window could ever meet is refused.\n\n"
    "Performance drops are measured against the version's holdout metric: a fraction of it "
    "for error metrics (RMSE 5% worse is 0.05), an absolute amount for scores (AUC 0.05 "
    "lower); a drop breaches only when it is also beyond what chance gives a window of "
    "that many labelled rows (realized_noise). concept-drift adds each window's drop, in "
    "standard deviations of chance beyond the version's usual level, across windows "
    "(performance_cusum, a CUSUM) and raises above 3: never on one window alone.",
    no_args_is_help=True,
)


@monitor_app.command("run")
def run(
    ctx: typer.Context,
    window: Annotated[
        str | None,
        typer.Option(
            help="A row count (5000) or a duration (30m, 1h, 1d); default monitor.window. "
            "A row count must hold monitor.min_rows and every alert rule's min_rows."
        ),
    ] = None,
    version: Annotated[str | None, typer.Option(help="Only this model version.")] = None,
    arm: Annotated[
        str | None, typer.Option(help="Only this arm (champion, challenger...).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Compare new ledger windows with the reference, raise or clear alerts, write reports.

    Each run continues where the last one stopped. Exit code 1 while any alert is raised.

    A window under monitor.min_rows rows is 'not enough data'; an alert rule
    is raised or cleared only by windows of at least its min_rows rows
    (default: monitor.min_rows; labelled rows for realized* and
    performance_cusum). 'loopml init' writes the rules, commented, in loopml.yaml.
    """
    from loopml.monitor.run import run_monitor

    state: State = ctx.obj
    project = state.project()
    # This command shows every alert event itself; without a logging setup of the user's,
    # Python's last-resort handler would print the 'log' sink's copy of each one too.
    logging.getLogger("loopml.alerts").addHandler(logging.NullHandler())
    started = time.perf_counter()
    with progress_display(enabled=not as_json) as progress:
        result = run_monitor(project, window=window, version=version, arm=arm, progress=progress)
    seconds = time.perf_counter() - started
    if as_json:
        print_json({**result.to_dict(), "seconds": round(seconds, 3)})
    else:
        severities = {r.name: r.severity for r in project.monitor.rules}
        _show_run(result, seconds, severities, project.gate.metric)
    if result.active:
        raise typer.Exit(1)


def _show_run(
    result: MonitorRun,
    seconds: float,
    severities: dict[str, Severity],
    metric: str | None = None,
) -> None:
    """What a run did; realized, estimated and holdout are the same ``metric`` (default:
    the task's, as the gate judges it)."""
    from loopml.monitor.alert_status import AlertStatus

    for error in result.errors:
        console.print(f"[yellow]warning[/] {error}")
    done = result.complete_windows
    filling = [w for w in result.windows if not w.complete]
    console.print(
        f"{len(done)} new complete window(s) of {result.window}"
        + (f", {len(filling)} still filling" if filling else "")
        + f", in {seconds:.1f} s"
    )
    if result.windows:
        table = Table(title_justify="left")
        shown = result.windows[-12:]
        name = metric or _task_metric(shown)
        columns = ("version", "arm", "window", "rows", "drift share", "drifted", "prediction",
                   f"realized {name}", f"estimated {name}", "holdout")  # fmt: skip
        for column in columns:
            table.add_column(column, justify="right" if column == "rows" else "left")
        for w in shown:
            table.add_row(*_window_row(w, name))
        console.print(table)
    for event in result.events:
        colour = "red" if event.state == "raised" else "green"
        console.print(f"[{colour}]{event.message}[/]")
    for delivery in result.deliveries:
        if delivery.failed:
            console.print(f"[yellow]alert not delivered[/] to {delivery.sink}: {delivery.error}")
    _show_status(AlertStatus.of_states(result.active, severities), result.active)
    if result.report_html:
        console.print(f"report: {result.report_html}")


def _show_status(status: AlertStatus, active: Sequence[AlertState]) -> None:
    """The line the HTML report's badge also says: ``alerting: 3 active alerts (1 critical)``."""
    colour = {"critical": "red", "warning": "yellow", "ok": "green"}[status.level]
    names = ", ".join(f"{a.rule} ({a.metric})" for a in active)
    console.print(f"[{colour}]{status.word}[/]: {status.text}" + (f": {names}" if names else ""))


def _task_metric(windows: Sequence[WindowReport]) -> str:
    """The task's default metric (what the gate judges by), read off the holdout metrics."""
    from loopml.train.metrics import default_metric

    held = {name for w in windows for name in w.performance.reference}
    defaults = [default_metric(task) for task in ("binary", "multiclass", "regression")]
    return next((name for name in defaults if name in held), defaults[0])


def _window_row(w: WindowReport, metric: str) -> list[str]:
    perf = w.performance
    realized = perf.realized.get(metric)
    noise = perf.realized_noise.get(metric)
    shown = "—" if realized is None else fmt(realized)
    if realized is not None and noise is not None:
        shown += f" (chance drop {fmt(noise)})"
    estimated = perf.estimated.get(metric)
    holdout = perf.reference.get(metric)
    prediction = "—"
    if w.prediction is not None and w.prediction.drift.status == "ok":
        prediction = "drift" if w.prediction.drift.drifted else "ok"
    index = f"#{w.index}" + ("" if w.complete else " (filling)")
    if w.status != "ok":
        index += f" {w.reason}"
    return [
        w.version,
        w.arm,
        index,
        f"{w.rows:,}",
        _share(w),
        ", ".join(w.drifted_features[:4]) + ("…" if len(w.drifted_features) > 4 else ""),
        prediction,
        shown,
        "—" if estimated is None else fmt(estimated),
        "—" if holdout is None else fmt(holdout),
    ]


def _share(w: WindowReport) -> str:
    """``29% (2 of 7)``: the drift share with its denominator."""
    if w.drift_share is None:
        return "—"
    if not w.monitored_features:
        return f"{w.drift_share:.0%}"
    return f"{w.drift_share:.0%} ({len(w.drifted_features)} of {w.monitored_features})"


@monitor_app.command("profile")
def profile(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="The model version to (re)build it for.")],
    trust_pickle: Annotated[bool, typer.Option(help=TRUST_PICKLE_HELP)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Build a version's reference profile from the project's training table.

    Versions trained by this loopml have one already; older ones need this once.
    """
    from loopml.pipeline.backfill import rebuild_profile

    state: State = ctx.obj
    project = state.project(trust_pickle=trust_pickle)
    with progress_display(enabled=not as_json) as progress:
        result = rebuild_profile(project, version, progress=progress)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(
        f"[green]stored[/] the reference profile of version {result.version}: "
        f"{result.features} features from {result.train_rows:,} training rows"
    )


def alerts(
    ctx: typer.Context,
    show_all: Annotated[
        bool, typer.Option("--all", help="Every alert event, not only the raised alerts.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Most events listed with --all.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
) -> None:
    """The alerts raised now (or, with --all, every raise and clear) with their evidence."""
    from loopml.monitor.alert_status import AlertStatus, severity_of
    from loopml.monitor.store import MonitorStore

    state: State = ctx.obj
    project = state.project()
    store = MonitorStore.open(project.monitor.store, project.root)
    try:
        raised = store.active_alerts(project.name)
        events = store.events(project.name, limit=limit) if show_all else []
    finally:
        store.close()
    if as_json:
        print_json(
            {
                "active": [a.to_dict() for a in raised],
                "events": [e.to_dict() for e in events],
            }
        )
        return
    severities = {r.name: r.severity for r in project.monitor.rules}
    _show_status(AlertStatus.of_states(raised, severities), [])
    if raised:
        table = Table(title="raised alerts", title_justify="left")
        for name in ("severity", "rule", "metric", "arm", "version", "raised at", "raised by",
                     "latest"):  # fmt: skip
            table.add_column(name)
        for a in raised:
            table.add_row(
                severity_of(a, severities), a.rule, a.metric, a.arm, a.version or "—",
                _when(a.raised_at), _at(a.raised_value, a.raised_window),
                _at(a.last_value, a.last_window),
            )  # fmt: skip
        console.print(table)
    if show_all:
        table = Table(title="alert events, newest first", title_justify="left")
        for name in ("when", "state", "message"):
            table.add_column(name)
        for e in events:
            event = e.event
            table.add_row(_when(event.ts), event.state, event.message)
        console.print(table)


def _at(value: float | None, window: int | None) -> str:
    if value is None:
        return "—"
    return fmt(value) + ("" if window is None else f" (window #{window})")


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")
