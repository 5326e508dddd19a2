"""``loopml ledger ...``: export and inspect the prediction ledger (``serve.ledger.url``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from loopml.cli.output import console, print_json, progress_display
from loopml.cli.state import State

if TYPE_CHECKING:
    from loopml.ledger import ExportResult

ledger_app = typer.Typer(
    help="The prediction ledger: every prediction served, with its label.", no_args_is_help=True
)

_TIME_HELP = "ISO date/datetime (UTC unless a zone is given) or a duration back: 30m, 24h, 7d."


@ledger_app.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="The Parquet file to write.")],
    since: Annotated[str | None, typer.Option(help=f"From this time on. {_TIME_HELP}")] = None,
    until: Annotated[str | None, typer.Option(help=f"Before this time. {_TIME_HELP}")] = None,
    version: Annotated[str | None, typer.Option(help="Only this model version.")] = None,
    arm: Annotated[
        str | None,
        typer.Option(
            help="Only this arm: champion or challenger (answered), or shadow (scored off "
            "the response path; not exported without it)."
        ),
    ] = None,
    label_history: Annotated[
        bool,
        typer.Option(
            "--label-history",
            help="Write every version of the labels (time, token scope, client, source) "
            "instead of the predictions with their current label.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Export predictions with their labels to Parquet (one column per feature and output).

    The label of a prediction is its current one: the latest version sent to /feedback.
    With --label-history the file holds every version instead (a correction never
    overwrites the label it corrects).
    """
    from loopml.ledger import export_ledger, open_backend, parse_time

    state: State = ctx.obj
    project = state.project()
    now = datetime.now(UTC)
    start = parse_time(since, now) if since else None
    end = parse_time(until, now) if until else None
    started = time.perf_counter()
    backend = open_backend(project.serve.ledger.url, project.root)
    try:
        with progress_display(enabled=not as_json) as progress:
            result = export_ledger(
                backend, out, since=start, until=end, version=version, progress=progress,
                label_history=label_history, arm=arm,
            )  # fmt: skip
    finally:
        backend.close()
    seconds = time.perf_counter() - started
    if as_json:
        print_json(_export_json(result, start, end, version, label_history, seconds))
        return
    what = (
        f"{result.rows:,} label versions, {result.labelled:,} of them current"
        if label_history
        else f"{result.rows:,} predictions, {result.labelled:,} labelled"
    )
    console.print(
        f"[green]wrote[/] {result.path}: {what}, {len(result.columns)} columns, in {seconds:.1f} s"
    )


@ledger_app.command("stats")
def stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """How many predictions are recorded and labelled, over what time, per version and arm."""
    from loopml.ledger import open_backend

    state: State = ctx.obj
    project = state.project()
    backend = open_backend(project.serve.ledger.url, project.root)
    try:
        with backend.reader() as reader:
            summary = reader.summary()
    finally:
        backend.close()
    first, last = _when(summary.first_ts), _when(summary.last_ts)
    if as_json:
        print_json(
            {
                "url": summary.url,
                "rows": summary.rows,
                "labelled": summary.labelled,
                "label_versions": summary.label_versions,
                "shadow_rows": summary.shadow_rows,
                "first": first,
                "last": last,
                "by_version_arm": [
                    {"version": v, "arm": a, "rows": n} for v, a, n in summary.by_version_arm
                ],
            }
        )
        return
    share = f" ({summary.labelled / summary.rows:.1%})" if summary.rows else ""
    console.print(f"ledger {summary.url}")
    console.print(
        f"  {summary.rows:,} predictions, {summary.labelled:,} labelled{share}"
        + (
            f" ({summary.label_versions - summary.labelled:,} corrections kept in the history)"
            if summary.label_versions > summary.labelled
            else ""
        )
        + (f", {summary.shadow_rows:,} scored in shadow" if summary.shadow_rows else "")
        + (f", from {first} to {last}" if first else "")
    )
    if summary.by_version_arm:
        table = Table(title_justify="left")
        table.add_column("version")
        table.add_column("arm")
        table.add_column("rows", justify="right")
        for version, arm, rows in summary.by_version_arm:
            table.add_row(version, arm, f"{rows:,}")
        console.print(table)


def _export_json(
    result: ExportResult,
    start: datetime | None,
    end: datetime | None,
    version: str | None,
    label_history: bool,
    seconds: float,
) -> dict[str, object]:
    return {
        "path": str(result.path),
        "label_history": label_history,
        "rows": result.rows,
        "labelled": result.labelled,
        "columns": list(result.columns),
        "since": start.isoformat() if start else None,
        "until": end.isoformat() if end else None,
        "version": version,
        "seconds": round(seconds, 3),
    }


def _when(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
