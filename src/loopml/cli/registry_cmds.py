"""``loopml models [build-artifact] | promote | rollback | audit``: the registry and its
history."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from loopml.cli.output import console, fmt, print_json
from loopml.cli.state import TRUST_PICKLE_HELP
from loopml.config import ProjectConfig
from loopml.errors import RegistryError

models_app = typer.Typer(
    help="List registered versions, or build their serving artifacts.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@models_app.callback()
def models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the versions as JSON.")] = False,
) -> None:
    """List registered versions with their metrics, aliases, lineage and serving format."""
    from loopml.registry.store import TAG_PREFIX, open_registry
    from loopml.train.metrics import default_metric, metrics_for

    if ctx.invoked_subcommand is not None:
        return
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
    for column in ("model", *names, "serving", "created", "run", "data", "git"):
        table.add_column(column)
    for v in reversed(versions):
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(v.created_ms / 1000))
        table.add_row(
            v.version,
            ", ".join(v.aliases) or "-",
            v.candidate,
            *[fmt(v.metric(n)) for n in names],
            v.serving_format or "[yellow]none[/]",
            created,
            v.run_id[:8],
            v.tags.get(f"{TAG_PREFIX}data_fingerprint", "")[:8],
            v.tags.get(f"{TAG_PREFIX}git_commit", "")[:8],
        )
    console.print(table)


@models_app.command("build-artifact")
def build_artifact(
    ctx: typer.Context,
    version: Annotated[
        str | None, typer.Argument(help="The version (default: every version lacking one).")
    ] = None,
    all_versions: Annotated[
        bool,
        typer.Option(
            "--all", help="Every version (those lacking an artifact, or all with --force)."
        ),
    ] = False,
    force: Annotated[bool, typer.Option(help="Rebuild even if the version has one.")] = False,
    trust_pickle: Annotated[bool, typer.Option(help=TRUST_PICKLE_HELP)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Build the serving artifact (ONNX, parity-checked on the holdout) of versions.

    Building reads the version's pipeline.joblib, a pickle: it is checked against the
    sha256 recorded at registration and loaded only with --trust-pickle
    (or serve.trust_pickle).
    """
    from loopml.registry.artifact import ServingStatus, ensure_serving_artifact
    from loopml.registry.store import open_registry

    if version is not None and all_versions:
        raise RegistryError("give a VERSION or --all, not both", fix="drop one of them")
    project: ProjectConfig = ctx.obj.project(trust_pickle=trust_pickle)
    registry = open_registry(project)
    chosen = [version] if version is not None else [
        v.version for v in registry.versions() if force or not v.serving_format
    ]  # fmt: skip
    results: list[ServingStatus] = []
    for v in chosen:
        with console.status(f"building the serving artifact of version {v}", spinner="dots"):
            results.append(
                ensure_serving_artifact(
                    registry, v, trust_pickle=project.serve.trust_pickle, force=force
                )
            )
    if as_json:
        print_json([r.__dict__ for r in results])
        return
    if not results:
        console.print("every version already has a serving artifact (--force rebuilds them)")
        return
    table = Table(title="serving artifacts", title_justify="left")
    for column in ("version", "format", "parity max diff", "rows checked", "status"):
        table.add_column(column)
    for r in results:
        diff = "n/a" if r.parity_max_diff is None else f"{r.parity_max_diff:.2g}"
        rows = "n/a" if r.rows_checked is None else f"{r.rows_checked:,}"
        table.add_row(r.version, r.format, diff, rows, "built" if r.built else "kept")
    console.print(table)
    for r in results:
        if r.built and r.fallback_reason:
            console.print(f"[yellow]version {r.version}[/]: not ONNX because {r.fallback_reason}")


def promote(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="The version to make champion.")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why; goes into the audit log.")],
    force: Annotated[
        bool, typer.Option(help="Skip the comparison gate (recorded as forced).")
    ] = False,
    trust_pickle: Annotated[bool, typer.Option(help=TRUST_PICKLE_HELP)] = False,
) -> None:
    """Make VERSION the champion if it beats the current one on the same holdout.

    A running rollout of VERSION ends as promoted; one of another version refuses (abort
    it first)."""
    from loopml.rollout.controller import open_controller

    project: ProjectConfig = ctx.obj.project(trust_pickle=trust_pickle)
    controller = open_controller(project)
    with console.status(f"comparing version {version} with the champion on its holdout"):
        result = controller.promote(version=version, reason=reason, force=force)
    gate = result.gate
    if gate is not None and gate.comparison is not None:
        c = gate.comparison
        console.print(
            f"{c.metric}: version {gate.version} {fmt(c.new)} vs "
            f"champion {gate.current} {fmt(c.old)} ({c.delta:+.4f})"
        )
    forced = " [yellow](forced)[/]" if gate is not None and gate.decision.forced else ""
    console.print(
        f"[green]champion[/] is now version {result.champion} "
        f"(was {result.previous or 'none'}){forced}"
    )
    if result.state is not None:  # it was being rolled out
        console.print(f"  rollout {result.state.rollout_id[:12]} ended as promoted")


def rollback(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why; goes into the audit log.")],
) -> None:
    """Restore the previous champion (from the audit log); during a rollout, roll the
    rollout back instead (its challenger is rejected, the champion stays)."""
    from loopml.rollout.controller import open_controller

    project: ProjectConfig = ctx.obj.project()
    result = open_controller(project).rollback(reason=reason)
    if result.previous is not None:
        console.print(
            f"[green]champion[/] rolled back from version {result.previous} to {result.champion}"
        )
    else:
        console.print(f"[green]rollback[/]: {result.message}")


def audit(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """Show every alias move and rollout change: when, who, from, to, why, forced or not.

    A rollout's changes (started, advanced, paused, resumed, promoted, rolled back,
    aborted) show as 'rollout EVENT' with the champion and challenger as from and to; --json
    adds the evidence each was decided on."""
    from loopml.registry.audit import AuditLog

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
        if e.is_rollout:  # a rollout's change: which rollout, the event, where it went
            to = (e.evidence or {}).get("to") or {}
            where = f" (now {to.get('status', '?')}, stage {int(to.get('stage', 0)) + 1})"
            table.add_row(
                e.time, e.actor, f"rollout {(e.rollout_id or '')[:8]}", f"rollout {e.event}",
                e.from_version or "-", e.to_version or "-", "no", e.reason + where,
            )  # fmt: skip
            continue
        table.add_row(
            e.time, e.actor, e.alias, e.action, e.from_version or "-", e.to_version or "-",
            "[yellow]yes[/]" if e.forced else "no", e.reason,
        )  # fmt: skip
    console.print(table)
