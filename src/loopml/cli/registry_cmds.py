"""``loopml models | promote | rollback | audit``: the registry and its history."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from loopml.cli.output import console, fmt, print_json
from loopml.config import ProjectConfig
from loopml.registry.audit import AuditLog
from loopml.registry.store import TAG_PREFIX, open_registry
from loopml.train.metrics import default_metric, metrics_for


def models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the versions as JSON.")] = False,
) -> None:
    """List registered versions with their metrics, aliases and lineage."""
    project: ProjectConfig = ctx.obj.project()
    versions = open_registry(project).versions()
    if as_json:
        print_json([v.__dict__ for v in versions])
        return
    if not versions:
        console.print(f"no versions of {project.name!r} yet; run 'loopml train'")
        return
    first = default_metric(project.data.task)
    names = [first, *[m.name for m in metrics_for(project.data.task) if m.name != first][:2]]
    table = Table(title=f"{project.name}: {len(versions)} version(s)", title_justify="left")
    table.add_column("version", no_wrap=True)
    table.add_column("aliases", no_wrap=True)
    for column in ("model", *names, "created", "run", "data", "git"):
        table.add_column(column)
    for v in reversed(versions):
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(v.created_ms / 1000))
        table.add_row(
            v.version,
            ", ".join(v.aliases) or "-",
            v.candidate,
            *[fmt(v.metric(n)) for n in names],
            created,
            v.run_id[:8],
            v.tags.get(f"{TAG_PREFIX}data_fingerprint", "")[:8],
            v.tags.get(f"{TAG_PREFIX}git_commit", "")[:8],
        )
    console.print(table)


def promote(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="The version to make champion.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why; goes into the audit log.")],
    force: Annotated[
        bool, typer.Option(help="Skip the comparison gate (recorded as forced).")
    ] = False,
) -> None:
    """Make VERSION the champion if it beats the current one on the same holdout."""
    from loopml.registry.promotion import promote as do_promote

    project: ProjectConfig = ctx.obj.project()
    registry = open_registry(project)
    with console.status(f"comparing version {version} with the champion on its holdout"):
        result = do_promote(project, registry, version, reason=reason, force=force)
    if result.comparison is not None:
        c = result.comparison
        console.print(
            f"{c.metric}: version {result.version} {fmt(c.new)} vs "
            f"champion {result.previous} {fmt(c.old)} ({c.delta:+.4f})"
        )
    forced = " [yellow](forced)[/]" if result.decision.forced else ""
    console.print(
        f"[green]champion[/] is now version {result.version} "
        f"(was {result.previous or 'none'}){forced}"
    )


def rollback(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why; goes into the audit log.")],
) -> None:
    """Restore the previous champion (from the audit log)."""
    from loopml.registry.promotion import rollback as do_rollback

    project: ProjectConfig = ctx.obj.project()
    entry = do_rollback(open_registry(project), reason=reason)
    console.print(
        f"[green]champion[/] rolled back from version {entry.from_version} to {entry.to_version}"
    )


def audit(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """Show every alias move: when, who, from, to, why, forced or not."""
    project: ProjectConfig = ctx.obj.project()
    entries = AuditLog(project.resolve(project.registry.audit_log)).entries(project.name)
    if as_json:
        print_json([e.__dict__ for e in entries])
        return
    if not entries:
        console.print("no alias moves yet")
        return
    table = Table(title=f"{project.name}: alias moves", title_justify="left")
    for column in ("time", "who", "alias", "action", "from", "to", "forced", "reason"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(
            e.time, e.actor, e.alias, e.action, e.from_version or "-", e.to_version or "-",
            "[yellow]yes[/]" if e.forced else "no", e.reason,
        )  # fmt: skip
    console.print(table)
