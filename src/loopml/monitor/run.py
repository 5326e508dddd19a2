"""``loopml monitor run``: new ledger windows -> reports, alerts, stored state.

One run reads, per model version and arm, the predictions recorded since the last stored
window, cuts them into windows, compares each with the version's reference profile, and
feeds the complete windows (oldest first) through the alert rules. Windows, alert states
and alert events are then stored in one transaction, the events are delivered to their
sinks, and a JSON and an HTML report are written. A failure before the store commits
leaves nothing behind; running again picks up from the same place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loopml.config import STATE_DIR, ProjectConfig
from loopml.errors import LoopmlError
from loopml.ledger.backend import LedgerReader
from loopml.ledger.connect import open_backend
from loopml.ledger.records import LedgerQuery, LedgerRecord
from loopml.monitor.alert_messages import window_evidence
from loopml.monitor.alerts import AlertEvent, AlertState, WindowView, active, evaluate
from loopml.monitor.cusum import Cusum
from loopml.monitor.evaluate import evaluate_window
from loopml.monitor.noise import ChanceTable
from loopml.monitor.profile import ReferenceProfile
from loopml.monitor.profile_store import load_profile
from loopml.monitor.report import MonitorReport
from loopml.monitor.report_html import write_report
from loopml.monitor.results import WindowReport
from loopml.monitor.sinks import Delivery, deliver
from loopml.monitor.store import MonitorStore, StoredWindow
from loopml.monitor.windows import Cursor, WindowSpec, cut_windows, decode_window
from loopml.progress import Progress
from loopml.registry.store import open_registry
from loopml.train.metrics import default_metric

__all__ = ["MonitorRun", "ProfileLoader", "chance_table", "registry_profiles", "run_monitor"]

CHUNK_ROWS = 5_000
WAIT_SECONDS = 600.0  # how long a run waits for another one to finish
REPORT_WINDOWS = 50  # windows per version and arm shown in the report's charts
_CHANCE_VERSIONS = 16  # chance tables kept per process
_CHANCE: dict[tuple[str, str, str], ChanceTable] = {}


@dataclass(frozen=True)
class MonitorRun:
    """What one run did: the windows it evaluated, the alerts it raised or cleared."""

    model: str
    window: str
    windows: list[WindowReport]
    events: list[AlertEvent]
    deliveries: list[Delivery]
    active: list[AlertState]
    errors: list[str] = field(default_factory=list)
    report_json: Path | None = None
    report_html: Path | None = None

    @property
    def complete_windows(self) -> list[WindowReport]:
        return [w for w in self.windows if w.complete]

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON, the one serialisation of it (``loopml monitor run --json``)."""
        return {
            "model": self.model,
            "window": self.window,
            "windows": [w.to_dict() for w in self.windows],
            "events": [e.to_dict() for e in self.events],
            "active": [a.to_dict() for a in self.active],
            "deliveries": [d.to_dict() for d in self.deliveries],
            "errors": list(self.errors),
            "report_json": None if self.report_json is None else str(self.report_json),
            "report_html": None if self.report_html is None else str(self.report_html),
        }

    def summary(self) -> dict[str, Any]:
        """:meth:`to_dict` in short, what ``POST /admin/monitor`` answers: the number of
        new complete windows instead of the windows, and no deliveries or report paths."""
        full = self.to_dict()
        return {
            "windows": len(self.complete_windows),
            **{key: full[key] for key in ("events", "active", "errors")},
        }


ProfileLoader = Callable[[str], ReferenceProfile]


def run_monitor(
    project: ProjectConfig,
    *,
    window: str | None = None,
    version: str | None = None,
    arm: str | None = None,
    now: float | None = None,
    profiles: ProfileLoader | None = None,
    progress: Progress | None = None,
    write_reports: bool = True,
    wait: float = WAIT_SECONDS,
) -> MonitorRun:
    """Monitor every version and arm in the ledger (or only ``version`` / ``arm``).

    One run at a time per model, whichever process or host runs it (the server's job, its
    workers and replicas, the CLI): a lease in the monitor store. The next run waits up to
    ``wait`` seconds (then :class:`~loopml.monitor.lease.LeaseBusy`), and goes on from the
    windows this one stored.

    ``window`` overrides ``monitor.window`` (as ``loopml monitor run --window`` does) and
    is checked as loading checks the file's: a row count that some alert rule's
    ``min_rows`` (or ``monitor.min_rows``) exceeds is a :class:`~loopml.errors.ConfigError`.
    """
    if window is not None:
        project.monitor.check_window(window)
    spec = WindowSpec.parse(window or project.monitor.window)
    clock = time.time() if now is None else now
    load = profiles or registry_profiles(project)
    store = MonitorStore.open(project.monitor.store, project.root)
    try:
        with store.lease(f"monitor-run:{project.name}", wait=wait):
            return _run_leased(
                project, store, spec, clock, load, version, arm, progress, write_reports
            )
    finally:
        store.close()


def _run_leased(
    project: ProjectConfig,
    store: MonitorStore,
    spec: WindowSpec,
    clock: float,
    load: ProfileLoader,
    version: str | None,
    arm: str | None,
    progress: Progress | None,
    write_reports: bool,
) -> MonitorRun:
    backend = open_backend(project.serve.ledger.url, project.root)
    try:
        with backend.reader() as reader:
            groups = [
                (v, a)
                for v, a, _ in reader.summary().by_version_arm
                if (version is None or v == version) and (arm is None or a == arm)
            ]
            evaluated, errors = _evaluate_groups(
                project, reader, store, groups, spec, clock, load, progress
            )
        reports = [report for report, _ in evaluated]
        states = store.load_states(project.name)
        states, events = _alerts(project, reports, states)
        stored = [_stored(r, end, spec) for r, end in evaluated if r.complete]
        event_ids = store.commit(project.name, states, events, stored)
        deliveries = _deliver(project, events, event_ids, store)
        run = MonitorRun(
            model=project.name,
            window=spec.text,
            windows=reports,
            events=events,
            deliveries=deliveries,
            active=active(states),
            errors=errors,
        )
        if write_reports:
            run = _write(project, store, run)
        return run
    finally:
        backend.close()


def registry_profiles(project: ProjectConfig) -> ProfileLoader:
    """Each version's reference profile from the registry, through the local cache, once."""
    cache = project.resolve(f"{STATE_DIR}/profiles")
    registry = open_registry(project)
    loaded: dict[str, ReferenceProfile] = {}

    def load(version: str) -> ReferenceProfile:
        if version not in loaded:
            loaded[version] = load_profile(registry, version, cache)
        return loaded[version]

    return load


def _evaluate_groups(
    project: ProjectConfig,
    reader: LedgerReader,
    store: MonitorStore,
    groups: list[tuple[str, str]],
    spec: WindowSpec,
    now: float,
    load: ProfileLoader,
    progress: Progress | None,
) -> tuple[list[tuple[WindowReport, Cursor]], list[str]]:
    reports: list[tuple[WindowReport, Cursor]] = []
    errors: list[str] = []
    for version, arm in groups:
        try:
            profile = load(version)
        except LoopmlError as exc:
            errors.append(f"version {version} ({arm}) is not monitored: {exc.headline}. {exc.fix}")
            continue
        last = store.last_window(project.name, version, arm, spec.text)
        after = None if last is None else Cursor(last.end_ts, last.end_request_id, last.end_row)
        query = LedgerQuery(
            since=None if after is None else after.ts, version=version, arm=arm,
            model=project.name,
        )  # fmt: skip
        if progress is not None:
            progress.stage(f"monitoring version {version} ({arm})", total=reader.count(query))
        records = _records_after(reader, query, after, progress)
        first = 0 if last is None else last.index + 1
        windows = cut_windows(records, spec, version=version, arm=arm, first_index=first, now=now)
        slices = _slice_columns(project, profile)
        primary = project.gate.metric or default_metric(profile.task)  # type: ignore[arg-type]
        chance = chance_table(project.name, version, profile)
        cusum = _last_cusum(store, project.name, version, arm, spec) if last else Cusum()
        for data in windows:
            decoded = decode_window(data.records, profile, slices)
            report = evaluate_window(
                profile, data, decoded, project.monitor, spec.text, primary=primary,
                chance=chance, cusum=cusum,
            )  # fmt: skip
            if report.complete:
                cusum = Cusum.of(report.metrics)
            reports.append((report, data.end))
    return reports, errors


def chance_table(model: str, version: str, profile: ReferenceProfile) -> ChanceTable:
    """One table per version for the life of the process: the scheduled runs of a server
    resample the holdout once per window size, not once per run."""
    key = (model, version, profile.created_at)
    if key not in _CHANCE:
        if len(_CHANCE) >= _CHANCE_VERSIONS:
            _CHANCE.pop(next(iter(_CHANCE)))
        _CHANCE[key] = ChanceTable(profile)
    return _CHANCE[key]


def _last_cusum(store: MonitorStore, model: str, version: str, arm: str, spec: WindowSpec) -> Cusum:
    """The sum of evidence of a sustained drop after the series' last stored window."""
    last = store.windows(model, version=version, arm=arm, spec=spec.text, limit=1)
    return Cusum.of(last[-1].metrics) if last else Cusum()


def _records_after(
    reader: LedgerReader, query: LedgerQuery, after: Cursor | None, progress: Progress | None
) -> Iterator[LedgerRecord]:
    for chunk in reader.chunks(query, CHUNK_ROWS):
        if progress is not None:
            progress.advance(len(chunk))
        for record in chunk:
            if after is None or Cursor.of(record) > after:
                yield record


def _slice_columns(project: ProjectConfig, profile: ReferenceProfile) -> list[str]:
    if project.monitor.slices is not None:
        return list(project.monitor.slices)
    return [c.name for c in profile.features if c.kind == "categorical"]


def _stored(report: WindowReport, end: Cursor, spec: WindowSpec) -> StoredWindow:
    return StoredWindow(
        model=report.model,
        version=report.version,
        arm=report.arm,
        spec=spec.text,
        index=report.index,
        start_ts=report.start_ts,
        end_ts=end.ts,
        end_request_id=end.request_id,
        end_row=end.row,
        rows=report.rows,
        complete=report.complete,
        report=report,
    )


def _alerts(
    project: ProjectConfig, reports: list[WindowReport], states: dict[Any, AlertState]
) -> tuple[dict[Any, AlertState], list[AlertEvent]]:
    events: list[AlertEvent] = []
    for report in sorted((r for r in reports if r.complete), key=lambda r: r.end_ts):
        view = WindowView.from_report(report)
        states, new = evaluate(
            project.monitor.rules, view, states, evidence=_evidence(project, report)
        )
        events.extend(new)
    return states, events


def _evidence(project: ProjectConfig, report: WindowReport) -> Callable[[str], dict[str, Any]]:
    """What an alert on a metric carries so the person on call sees why without opening a
    report: the window's drift and performance, and the facts behind that metric."""

    def evidence(metric: str) -> dict[str, Any]:
        return window_evidence(
            report,
            metric,
            drift_share_threshold=project.monitor.drift_share,
            primary=project.gate.metric,
        )

    return evidence


def _deliver(
    project: ProjectConfig,
    events: list[AlertEvent],
    event_ids: list[int],
    store: MonitorStore,
) -> list[Delivery]:
    if not events:
        return []
    deliveries = deliver(events, project.monitor, project.root)
    for event_id, event in zip(event_ids, events, strict=True):
        mine = [d for d in deliveries if d.event is event]
        store.record_deliveries(event_id, mine)
    return deliveries


def _write(project: ProjectConfig, store: MonitorStore, run: MonitorRun) -> MonitorRun:
    history = store.windows(project.name, spec=run.window, limit=REPORT_WINDOWS * 8)
    fresh = [w for w in run.windows if not w.complete]
    report = MonitorReport(
        project=project.name,
        model=project.name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        window=run.window,
        min_rows=project.monitor.min_rows,
        drift_share_threshold=project.monitor.drift_share,
        windows=history + fresh,
        alerts=store.events(project.name, limit=50),
        active_alerts=run.active,
        errors=run.errors,
    )
    folder = project.resolve(project.monitor.reports_dir)
    json_path, html_path = write_report(report, folder)
    return replace(run, report_json=json_path, report_html=html_path)
