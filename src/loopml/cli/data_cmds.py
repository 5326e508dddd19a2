"""``loopml validate`` and ``loopml data ...``: tables in, contract checks and feed data out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from loopml.cli.output import console, print_json
from loopml.cli.state import State

data_app = typer.Typer(help="Generate and inspect data.", no_args_is_help=True)


def validate(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(help="A CSV or Parquet table (default: the project's own source)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a table against the project's data contract (exit 0 ok, 1 violations, 2 unreadable)."""
    from loopml.data.check import check_table

    state: State = ctx.obj
    _, _, report = check_table(state.project(), path)
    path_label = report.source
    if as_json:
        print_json(report.to_dict())
        raise typer.Exit(report.exit_code)
    if not report.violations:
        console.print(f"[green]ok[/] {path_label}: {report.rows:,} rows match the contract")
        raise typer.Exit(0)
    table = Table(title=f"{path_label}: {report.rows:,} rows", title_justify="left")
    for column in ("severity", "kind", "column", "count", "rows", "what to do"):
        table.add_column(column, overflow="fold")
    for v in report.violations:
        style = "red" if v.severity == "error" else "yellow"
        rows = ", ".join(str(r) for r in v.rows)
        table.add_row(
            f"[{style}]{v.severity}[/]", v.kind, v.column or "-", f"{v.count:,}", rows, v.message
        )
    console.print(table)
    verdict = "[red]violations[/]" if not report.ok else "[yellow]warnings only[/]"
    console.print(f"{verdict}: {len(report.violations)} finding(s)")
    raise typer.Exit(report.exit_code)


@data_app.command("feed")
def feed(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .parquet or .csv file.")],
    rows: Annotated[int, typer.Option(help="Number of impressions.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same table.")] = 0,
    scenario: Annotated[
        str,
        typer.Option(
            help="stationary, covariate_shift, concept_drift, label_shift, broken_feature."
        ),
    ] = "stationary",
    onset: Annotated[
        float, typer.Option(help="Where the scenario starts, as a fraction of the time range.")
    ] = 0.5,
) -> None:
    """Generate the social-feed engagement table (seeded, with optional drift)."""
    from loopml.data.feed import FEED_TARGET, generate_feed
    from loopml.data.sources import write_table

    started = time.perf_counter()
    with console.status(f"generating {rows:,} impressions ({scenario})"):
        frame = generate_feed(rows, seed, scenario=scenario, onset=onset)
        write_table(frame, out)
    seconds = time.perf_counter() - started
    console.print(
        f"[green]wrote[/] {out}: {len(frame):,} rows x {frame.shape[1]} columns, "
        f"{FEED_TARGET} rate {frame[FEED_TARGET].mean():.3f}, in {seconds:.1f} s"
    )
