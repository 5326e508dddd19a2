"""``loopml train``: baselines, tuned candidates, evaluation, gate, registration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli.output import console, fmt, print_json, progress_display
from loopml.cli.state import State
from loopml.errors import EXIT_VIOLATIONS

if TYPE_CHECKING:
    from loopml.pipeline.train import TrainResult


def train(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train on the project's table; register the best model if it beats the baselines."""
    from loopml.pipeline.train import train_project

    state: State = ctx.obj
    project = state.project()
    with progress_display(enabled=not as_json) as progress:
        result = train_project(project, progress)
    if as_json:
        print_json(
            {
                "run_id": result.run_id,
                "chosen": result.chosen,
                "metric": result.metric,
                "gate": {"passed": result.gate.passed, "reason": result.gate.reason},
                "version": result.version,
                "alias": result.alias,
                "report": str(result.report) if result.report else None,
                "leaderboard": [
                    {
                        "name": r.name,
                        "kind": r.kind,
                        "metrics": r.metrics,
                        "fit_seconds": r.fit_seconds,
                        "trials": r.trials,
                    }
                    for r in result.leaderboard
                ],
                "serving_format": result.serving_format,
                "serving_fallback": result.serving_fallback,
                "decision": result.decision,
                "findings": list(result.findings),
            }
        )
    else:
        _print_leaderboard(result)
    if not result.gate.passed:
        raise typer.Exit(EXIT_VIOLATIONS)


def _print_leaderboard(result: TrainResult) -> None:
    from loopml.train.metrics import metrics_for

    names = [m.name for m in metrics_for(result.leaderboard[0].evaluation.task)][:5]
    table = Table(title=f"holdout metrics ({result.metric} decides)", title_justify="left")
    table.add_column("model")
    table.add_column("kind")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("fit s", justify="right")
    for row in result.leaderboard:
        style = "bold green" if row.name == result.chosen else ""
        cells = [fmt(row.metrics.get(n)) for n in names]
        table.add_row(row.name, row.kind, *cells, f"{row.fit_seconds:.1f}", style=style)
    console.print(table)
    verdict = "[green]gate passed[/]" if result.gate.passed else "[red]gate failed[/]"
    console.print(f"{verdict}: {escape(result.gate.reason)}")
    if result.decision:
        console.print(f"decision: {escape(result.decision)}")
    for finding in result.findings:
        console.print(f"[yellow]look at this[/]: {escape(finding)}")
    if result.version:
        aliased = (
            f"with alias [bold]{result.alias}[/]"
            if result.alias
            else "without an alias (a rollout is running: its challenger keeps the alias; "
            f"roll this one out when it ends: 'loopml rollout start --version {result.version}')"
        )
        console.print(
            f"registered version [bold]{result.version}[/] {aliased}"
            f"; serving artifact: {result.serving_format or 'none'}"
        )
        if result.serving_fallback:
            console.print(
                f"[yellow]not served through ONNX[/] (the slow path): "
                f"{escape(result.serving_fallback)}"
            )
    else:
        console.print("nothing registered; the run is kept in MLflow for inspection")
    if result.report:
        console.print(f"report: {result.report}")
    console.print(f"MLflow run: {result.run_id}")
