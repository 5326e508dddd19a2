"""The ``loopml`` command: one Typer app, one group per lifecycle stage.

Commands parse arguments and call one library function each. Every
:class:`~loopml.errors.LoopmlError` is caught once, in :func:`run`, and printed as a
headline, the detail and a fix, with the error's exit code — never a traceback.
"""

from __future__ import annotations

import os
import sys
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from typer.exceptions import TyperException

from loopml.cli import (
    contract_cmds,
    data_cmds,
    ledger_cmds,
    monitor_cmds,
    registry_cmds,
    rollout_cmds,
    serve_cmds,
    train_cmds,
)
from loopml.cli.output import console, print_error, print_json
from loopml.cli.state import State
from loopml.config import PROJECT_FILE
from loopml.errors import EXIT_UNUSABLE, LoopmlError

EXIT_INTERRUPTED = 130
EXIT_BUG = 70  # EX_SOFTWARE: apart from 2 (unusable input), so a script can tell the two


class TaskChoice(StrEnum):
    binary = "binary"
    multiclass = "multiclass"
    regression = "regression"


app = typer.Typer(
    name="loopml",
    help="The closed loop of production ML on tabular data: contract, train, gate, register.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def main(
    ctx: typer.Context,
    project: Annotated[
        Path, typer.Option("--project", "-p", help="The project file.", envvar="LOOPML_PROJECT")
    ] = Path(PROJECT_FILE),
) -> None:
    """loopml: a table in; a validated, tracked, gated, registered model out."""
    ctx.obj = State(project_file=project)


@app.command()
def init(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option("--data", "-d", help="A CSV or Parquet training table.")],
    target: Annotated[str, typer.Option("--target", "-t", help="The column to predict.")],
    task: Annotated[TaskChoice | None, typer.Option(help="The task (guessed if omitted).")] = None,
    key: Annotated[str | None, typer.Option(help="Entity key column (guessed).")] = None,
    time: Annotated[str | None, typer.Option(help="Time column (guessed).")] = None,
    drop: Annotated[
        list[str] | None,
        typer.Option(help="A column that is not a feature (repeatable; id-like ones guessed)."),
    ] = None,
    positive: Annotated[
        str | None, typer.Option(help="Binary only: the positive class (default: the last).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing project file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Inspect a table and write loopml.yaml and its inferred data contract."""
    from loopml.pipeline.project import InitOptions, init_project

    state: State = ctx.obj
    options = InitOptions(
        task=task.value if task else None,
        entity_key=key,
        time_column=time,
        name=name,
        drop=tuple(drop or ()),
        positive_class=positive,
        force=force,
    )
    result = init_project(data, target, project_file=state.project_file, options=options)
    if as_json:
        print_json(
            {
                "project_file": str(result.project_file),
                "contract_file": str(result.contract_file),
                "guesses": result.guesses,
                "columns": len(result.contract.columns),
            }
        )
        return
    contract = result.contract
    console.print(f"[green]wrote[/] {result.project_file} and {result.contract_file}")
    console.print(
        f"  {contract.rows:,} rows, {len(contract.features)} features "
        f"({len(contract.numeric_features)} numeric, {len(contract.categorical_features)} "
        f"categorical), target [bold]{contract.target}[/] ({contract.task})"
    )
    for guess in result.guesses:
        console.print(f"  [cyan]guessed[/] {guess}")
    console.print("next: [bold]loopml validate[/] TABLE, then [bold]loopml train[/]")


app.add_typer(data_cmds.data_app, name="data")
app.add_typer(contract_cmds.contract_app, name="contract")
app.add_typer(ledger_cmds.ledger_app, name="ledger")
app.command(name="validate")(data_cmds.validate)
app.command(name="train")(train_cmds.train)
app.add_typer(registry_cmds.models_app, name="models")
app.command(name="promote")(registry_cmds.promote)
app.command(name="rollback")(registry_cmds.rollback)
app.command(name="audit")(registry_cmds.audit)
app.add_typer(rollout_cmds.rollout_app, name="rollout")
app.command(name="serve")(serve_cmds.serve)
app.command(name="score")(serve_cmds.score)
app.add_typer(monitor_cmds.monitor_app, name="monitor")
app.command(name="alerts")(monitor_cmds.alerts)


def run() -> None:
    """Console entry point: run the app, mapping loopml errors to messages and exit codes."""
    # MLflow's advice about type hints and input examples is for authors of pyfunc
    # models, not for someone running 'loopml train'; it would tear the progress display.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
    try:
        # Outside standalone mode click returns a command's exit code instead of exiting.
        code = app(standalone_mode=False)
    except LoopmlError as error:
        if "--json" in sys.argv[1:]:
            print_json(error.to_dict())  # a script asked for JSON; failures are JSON too
        print_error(error)
        sys.exit(error.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _interrupted()
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except TyperException as exc:  # usage errors (bad option values) format themselves
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        sys.exit(int(getattr(exc, "exit_code", EXIT_UNUSABLE)))
    except Exception as exc:  # a bug, not bad input: say so, and how to see the traceback
        if os.environ.get("LOOPML_DEBUG"):
            raise
        print_error(
            LoopmlError(
                f"unexpected error: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                detail="this is a bug in loopml or a library it uses, not a problem with "
                "your input",
                fix="run again with LOOPML_DEBUG=1 to see the traceback, and report it",
            )
        )
        sys.exit(EXIT_BUG)
    if code == EXIT_INTERRUPTED:  # click returns Ctrl-C as exit code 130 in this mode
        _interrupted()
    sys.exit(code if isinstance(code, int) else 0)


def _interrupted() -> NoReturn:
    # A training run deletes its half-made MLflow run on the way out; nothing is registered.
    print_error(
        LoopmlError(
            "interrupted",
            detail="an interrupted training deletes its half-made run; nothing is registered",
            fix="run the command again",
        )
    )
    sys.exit(EXIT_INTERRUPTED)
