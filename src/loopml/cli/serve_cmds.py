"""``loopml serve`` and ``loopml score``: the champion behind HTTP, or over a whole file."""

from __future__ import annotations

import logging
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from loopml.cli.output import console, err_console, print_json
from loopml.cli.state import TRUST_PICKLE_HELP, State
from loopml.config import load_project


class LedgerMode(StrEnum):
    durable = "durable"
    async_ = "async"


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Bind address (default 127.0.0.1: this machine only).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default serve.port, 8080).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes, each with its own model copy.")
    ] = None,
    ledger_mode: Annotated[
        LedgerMode | None,
        typer.Option("--ledger-mode", help="durable: answer after the row is committed."),
    ] = None,
    no_ledger: Annotated[
        bool, typer.Option("--no-ledger", help="Do not record predictions (benchmarks only).")
    ] = False,
    trust_pickle: Annotated[
        bool,
        typer.Option(help="Load pickle-only artifacts (they run code: your own models only)."),
    ] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the champion: /predict, Open Inference Protocol v2, /invocations, /feedback.

    Every prediction is written to the ledger (serve.ledger in the project file). The
    server follows the champion alias and swaps versions without dropping a request;
    SIGTERM drains in-flight requests and exits 0. Admin routes need the bearer token in
    .loopml/admin.token; /feedback the one in .loopml/feedback.token (or the admin token)
    unless serve.feedback_auth is none; predictions need .loopml/predict.token only with
    serve.predict_auth: token.
    """
    from loopml.pipeline.serving import serve_project

    state: State = ctx.obj
    overrides = {
        "LOOPML_SERVE__HOST": host,
        "LOOPML_SERVE__PORT": None if port is None else str(port),
        "LOOPML_SERVE__WORKERS": None if workers is None else str(workers),
        "LOOPML_SERVE__LEDGER__MODE": None if ledger_mode is None else ledger_mode.value,
        "LOOPML_SERVE__LEDGER__ENABLED": "false" if no_ledger else None,
        "LOOPML_SERVE__TRUST_PICKLE": "true" if trust_pickle else None,
    }
    # Flags become environment overrides so that worker processes see them too.
    os.environ.update({k: v for k, v in overrides.items() if v is not None})
    project = load_project(state.project_file, os.environ)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    settings = project.serve
    ledger = "off" if not settings.ledger.enabled else f"{settings.ledger.mode}"

    def announce() -> None:
        err_console.print(
            f"serving [bold]{project.name}@{settings.alias}[/] on "
            f"http://{settings.host}:{settings.port} (ledger: {ledger}; docs at /docs)"
        )

    serve_project(
        project, project_file=state.project_file, access_log=access_log, on_ready=announce
    )


def score(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="A CSV or Parquet table to score.")],
    out: Annotated[Path, typer.Argument(help="Where to write it (.csv or .parquet).")],
    version: Annotated[
        str | None, typer.Option(help="Score with this version (default: the served alias).")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows per chunk.")] = 200_000,
    trust_pickle: Annotated[bool, typer.Option(help=TRUST_PICKLE_HELP)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Score a table with the champion's serving artifact, in chunks.

    Rows with a value 'loopml validate' calls an error are not scored: they go to
    OUT.rejected.csv with their row number, field and reason, and the job goes on; what it
    only warns about (a null where training had none, an unknown column) is scored. Exit
    code 1 if any row was rejected.
    """
    from loopml.serve.batch import count_rows, score_file, scoring_runtime, table_format

    project = ctx.obj.project(trust_pickle=trust_pickle)
    table_format(source)
    table_format(out)
    chosen, runtime = scoring_runtime(project, version)
    with Progress(
        TextColumn("scoring {task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json,
    ) as bar:
        task = bar.add_task(source.name, total=count_rows(source))
        result = score_file(
            runtime,
            chosen,
            source,
            out,
            chunk_rows=chunk_rows,
            progress=lambda n: bar.advance(task, n),
        )
    if as_json:
        print_json({**result.__dict__, "rows_per_second": result.rows_per_second})
    else:
        console.print(
            f"[green]scored[/] {result.scored:,} of {result.rows:,} rows with version "
            f"{result.version} in {result.seconds:.1f} s ({result.rows_per_second:,.0f} rows/s)"
            f" -> {result.out}"
        )
        if result.rejected_file is not None:
            console.print(
                f"[yellow]rejected[/] {result.rejected:,} rows (reasons in {result.rejected_file})"
            )
    if result.rejected:
        raise typer.Exit(1)
