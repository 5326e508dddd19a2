"""``loopml rollout start | status | step | pause | resume | abort``: a challenger earns its
traffic step by step, every change through the controller and in ``loopml audit``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from loopml.cli.output import console, fmt, print_json
from loopml.cli.state import State

if TYPE_CHECKING:  # the commands import their stage when they run (fast start-up)
    from loopml.config import RolloutConfig
    from loopml.rollout.controller import Controller
    from loopml.rollout.decision import Decision
    from loopml.rollout.evidence import RolloutStats
    from loopml.rollout.plan import RolloutState
    from loopml.rollout.results import ActionResult, RolloutPreview

rollout_app = typer.Typer(
    help="Roll a challenger out step by step (shadow, canary, A/B, blue-green), judged on its "
    "errors, latency and model quality against the champion; promoted or rolled back by the "
    "guards in the rollout section of loopml.yaml.\n\n"
    "'loopml serve' judges the running rollout every rollout.interval_seconds; "
    "'loopml rollout step' does one pass by hand. Every change is in 'loopml audit'.",
    no_args_is_help=True,
)
REASON = Annotated[str, typer.Option("--reason", "-r", help="Why; goes into the audit log.")]
JSON = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
VERDICT_COLOURS = {"pass": "green", "breach": "red", "wait": "yellow", "skip": "dim"}
KIND_COLOURS = {"advance": "cyan", "hold": "yellow", "promote": "green", "rollback": "red"}


def _controller(ctx: typer.Context) -> Controller:
    from loopml.rollout.controller import open_controller

    state: State = ctx.obj
    return open_controller(state.project())


def _done(result: ActionResult, as_json: bool) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    colour = "green" if result.changed else "yellow"
    console.print(f"[{colour}]{result.action}[/]: {result.message}")
    if result.state is not None and result.state.active:
        console.print(f"  {_where(result.state)}")


@rollout_app.command("start")
def start(
    ctx: typer.Context,
    version: Annotated[
        str | None, typer.Option(help="The version to roll out (default: the challenger).")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="shadow | canary | ab | blue_green (default: rollout.strategy)."),
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why; goes into the audit log.")
    ] = "",
    as_json: JSON = False,
) -> None:
    """Start rolling out a version against the champion, at its first stage."""
    result = _controller(ctx).start(version=version, strategy=strategy, reason=reason)
    _done(result, as_json)


@rollout_app.command("step")
def step(ctx: typer.Context, as_json: JSON = False) -> None:
    """One decide-and-apply pass: advance, hold, promote or roll back, by the guards."""
    _done(_controller(ctx).step(), as_json)


@rollout_app.command("pause")
def pause(ctx: typer.Context, reason: REASON, as_json: JSON = False) -> None:
    """Stop deciding (traffic keeps its shares) until 'loopml rollout resume'."""
    _done(_controller(ctx).act("pause", reason=reason), as_json)


@rollout_app.command("resume")
def resume(ctx: typer.Context, reason: REASON, as_json: JSON = False) -> None:
    """Decide again on a paused rollout."""
    _done(_controller(ctx).act("resume", reason=reason), as_json)


@rollout_app.command("abort")
def abort(ctx: typer.Context, reason: REASON, as_json: JSON = False) -> None:
    """End the rollout: all traffic back to the champion (the challenger is not rejected)."""
    _done(_controller(ctx).act("abort", reason=reason), as_json)


@rollout_app.command("status")
def status(ctx: typer.Context, as_json: JSON = False) -> None:
    """Where the rollout is, and what a step would decide now.

    Its stage and shares, time in stage against the bake, each arm's evidence, every
    guard's value against its limit with its sample size, the decision a step would make
    now (not applied), and the last decisions and actions."""
    controller = _controller(ctx)
    preview = controller.preview()
    if as_json:
        print_json(preview.to_dict())
        return
    show_preview(preview, controller.project.rollout, controller.model)


def show_preview(preview: RolloutPreview, policy: RolloutConfig, model: str) -> None:
    """``loopml rollout status`` as tables."""
    state = preview.state
    if state is None:
        console.print(f"no rollout of {model!r} yet; start one with 'loopml rollout start'")
        return
    console.print(
        f"rollout [bold]{state.rollout_id[:12]}[/] of {model}: version "
        f"[bold]{state.challenger}[/] against champion [bold]{state.champion}[/], "
        f"{state.strategy}, [bold]{state.status.replace('_', ' ')}[/]"
        + (f" ({state.paused_reason})" if state.paused_reason else "")
    )
    console.print(f"  {_where(state)}")
    if not state.active:
        console.print(f"  ended: {state.reason or '-'}")
    elif preview.in_stage is not None:
        console.print(
            f"  in stage for {_duration(preview.in_stage)} of a {_duration(policy.bake_seconds)}"
            f" bake; {policy.min_predictions:,} predictions per arm needed"
        )
    if preview.error:
        console.print(f"[yellow]evidence unavailable[/]: {preview.error}")
    if preview.stats is not None:
        console.print(_arms_table(preview.stats))
    if preview.decision is not None:
        console.print(_guards_table(preview.decision))
        kind = preview.decision.kind
        console.print(
            f"a step now would [{KIND_COLOURS.get(kind, 'white')}]{kind.upper()}[/]: "
            f"{preview.decision.summary or '-'} (run 'loopml rollout step' to apply it)"
        )
    if preview.records:
        console.print(_records_table(preview))


def _where(state: RolloutState) -> str:
    stages = " → ".join(
        f"[bold]\\[{s.label}][/]" if i == state.stage else s.label
        for i, s in enumerate(state.stages)
    )
    current = state.current
    share = (
        "the challenger scores the champion's traffic, answers nobody"
        if current.kind == "shadow"
        else f"the challenger answers {current.share:.0%} of keys"
    )
    return f"stage {state.stage + 1} of {len(state.stages)}: {stages} ({share})"


def _arms_table(stats: RolloutStats) -> Table:
    table = Table(title="evidence of this stage", title_justify="left")
    for column in ("arm", "version", "predictions", "requests", "errors", "p99 ms", "labelled"):
        table.add_column(column, justify="left" if column in ("arm", "version") else "right")
    for arm in (stats.champion, stats.challenger):
        rate = arm.error_rate
        table.add_row(
            arm.arm, arm.version, f"{arm.predictions:,}", f"{arm.requests:,}",
            f"{arm.errors:,}" + ("" if rate is None else f" ({rate:.2%})"),
            fmt(arm.latency_p99_ms, 1), f"{arm.labelled:,}",
        )  # fmt: skip
    return table


def _guards_table(decision: Decision) -> Table:
    table = Table(title="guards (value against limit)", title_justify="left")
    for column in ("guard", "verdict", "value", "limit", "sample", "why"):
        table.add_column(column, overflow="fold")
    for r in decision.reasons:
        colour = VERDICT_COLOURS.get(r.verdict, "white")
        table.add_row(
            r.guard, f"[{colour}]{r.verdict}[/]", fmt(r.value), fmt(r.limit),
            f"{r.sample:,}", r.message,
        )  # fmt: skip
    return table


def _records_table(preview: RolloutPreview) -> Table:
    table = Table(title="last decisions and actions, newest first", title_justify="left")
    for column in ("when", "stage", "kind", "who", "summary"):
        table.add_column(column, overflow="fold")
    for r in preview.records:
        colour = KIND_COLOURS.get(r.kind, "white")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.ts))
        table.add_row(when, str(r.stage + 1), f"[{colour}]{r.kind}[/]", r.actor, r.summary)
    return table


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"
