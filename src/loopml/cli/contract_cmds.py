"""``loopml contract ...``: look at and refresh the data contract."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from loopml.cli.output import console, fmt
from loopml.cli.state import State
from loopml.data.contract import Contract
from loopml.errors import ConfigError

contract_app = typer.Typer(help="Show or refresh the data contract.", no_args_is_help=True)


@contract_app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the contract: per column its type, role, null rate, range or categories."""
    state: State = ctx.obj
    project = state.project()
    contract = Contract.load(project.resolve(project.data.contract))
    table = Table(title=f"contract: {contract.rows:,} rows, target {contract.target} "
                  f"({contract.task})", title_justify="left")  # fmt: skip
    for column in ("column", "type", "role", "nulls", "range / categories", "unique"):
        table.add_column(column, overflow="fold")
    for c in contract.columns:
        if c.categories:
            top = sorted(c.categories.items(), key=lambda kv: -kv[1])[:4]
            shape = ", ".join(f"{k} {v:.0%}" for k, v in top) + (" ..." if c.n_unique > 4 else "")
        elif c.min is not None:
            shape = f"{fmt(c.min, 3)} .. {fmt(c.max, 3)}"
        else:
            shape = "-"
        table.add_row(
            c.name, c.type, c.role, f"{c.null_rate:.1%}", shape, "yes" if c.unique else "no"
        )
    console.print(table)


@contract_app.command("update")
def update(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before replacing.")] = False,
) -> None:
    """Re-infer the contract from the project's table (e.g. after editing data.drop)."""
    from loopml.data.contract import contract_changes
    from loopml.pipeline.project import update_contract

    state: State = ctx.obj
    project = state.project()
    if not yes and not sys.stdin.isatty():
        raise ConfigError(
            "'loopml contract update' replaces the contract and needs a yes, but there is "
            "no terminal to ask on (stdin is not a TTY)",
            fix="pass --yes to replace the contract without asking",
        )
    if not yes and not typer.confirm(
        "Re-infer the contract from the training table? Later validations use the new one."
    ):
        raise typer.Exit(1)
    old, new = update_contract(project)
    for line in contract_changes(old, new) or ["no column changed type or role"]:
        console.print(f"  {line}")
    console.print(f"[green]wrote[/] {project.resolve(project.data.contract)}")
