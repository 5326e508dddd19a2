"""The rollout-quality tables, and writing a section of docs/benchmarks.md."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rollout.replay import BAD, CASES, DESCRIPTION

SHARE_LIMIT = 0.05


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _pct(value: float) -> str:
    return f"{value:.1%}" if value >= 0.001 or value == 0 else f"{value:.2%}"


def _value(v: Any) -> str:
    if v is None:
        return "—"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def case_rows(runs: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for case in CASES:
        mine = [r for r in runs if r["case"] == case]
        if not mine:
            continue
        outcomes = Counter(r["outcome"] for r in mine)
        decided = [r["requests"] for r in mine if r["outcome"] in ("promote", "rollback")]
        preds = (
            f"{_n(statistics.median(decided))} ({_n(min(decided))}–{_n(max(decided))})"
            if decided
            else "—"
        )
        minutes = [r["sim_seconds"] / 60 for r in mine if r["outcome"] in ("promote", "rollback")]
        sim = f"{statistics.median(minutes):.0f}" if minutes else "—"
        shares = [r["challenger_share"] for r in mine]
        share = f"{_pct(statistics.median(shares))} ({_pct(max(shares))})"
        stages = Counter(r["stages"][-1].split("@")[0] if r["stages"] else "?" for r in mine)
        rows.append(
            [
                f"{case}: {DESCRIPTION[case]}",
                str(len(mine)),
                str(outcomes["promote"]),
                str(outcomes["rollback"]),
                str(outcomes["undecided"] + outcomes["error"]),
                preds,
                sim,
                ", ".join(f"{k} ×{v}" for k, v in stages.most_common()) or "—",
                share,
                deciding(mine),
            ]
        )
    return rows


def deciding(runs: Sequence[dict[str, Any]]) -> str:
    """The guards that decided, with their values' range against the limit."""
    values: dict[str, list[float]] = defaultdict(list)
    limits: dict[str, Any] = {}
    counts: Counter[str] = Counter()
    for r in runs:
        if r["outcome"] == "rollback":
            for reason in r["reasons"]:
                counts[reason["guard"]] += 1
                limits[reason["guard"]] = reason["limit"]
                if reason["value"] is not None:
                    values[reason["guard"]].append(float(reason["value"]))
    parts = []
    for guard, n in counts.most_common():
        got = values.get(guard, [])
        span = f"{min(got):.4g}–{max(got):.4g}" if got else "—"
        parts.append(f"{guard} ×{n}: {span} vs {_value(limits[guard])}")
    promoted = sum(r["outcome"] == "promote" for r in runs)
    if promoted:
        parts.append(f"promoted ×{promoted}: every guard passed at 100%")
    errors = [r for r in runs if r["outcome"] == "error"]
    if errors:
        parts.append(f"errors ×{len(errors)}: {errors[0]['detail'][:160]}")
    waiting = [r for r in runs if r["outcome"] == "undecided"]
    if waiting:
        guards = Counter(x["guard"] for r in waiting for x in r["reasons"])
        parts.append(
            "undecided ×{}: holding on {}".format(
                len(waiting), ", ".join(g for g, _ in guards.most_common(3)) or "?"
            )
        )
    return "; ".join(parts) or "—"


def target_rows(runs: Sequence[dict[str, Any]]) -> list[list[str]]:
    healthy = [r for r in runs if r["case"] == "healthy"]
    bad = [r for r in runs if r["case"] in BAD]
    rolled = sum(r["outcome"] == "rollback" for r in healthy)
    promoted = sum(r["outcome"] == "promote" for r in bad)
    over = [r for r in bad if r["challenger_share"] > SHARE_LIMIT]
    worst = max((r["challenger_share"] for r in bad), default=0.0)
    not_decided = [r for r in runs if r["outcome"] in ("undecided", "error")]

    def verdict(ok: bool) -> str:
        return "**pass**" if ok else "**miss**"

    return [
        [
            "0 healthy challengers rolled back",
            f"{rolled} of {len(healthy)}",
            verdict(rolled == 0 and bool(healthy)),
        ],
        [
            "0 bad challengers promoted",
            f"{promoted} of {len(bad)}",
            verdict(promoted == 0 and bool(bad)),
        ],
        [
            "every bad one rolled back before serving > 5% of its full-share traffic",
            f"{len(over)} of {len(bad)} over 5%; highest {_pct(worst)}; "
            f"{sum(r['outcome'] != 'rollback' for r in bad)} not rolled back",
            verdict(not over and all(r["outcome"] == "rollback" for r in bad)),
        ],
        [
            "every run decided (promote or rollback) within the cap",
            f"{len(not_decided)} undecided",
            verdict(not not_decided),
        ],
    ]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


CASE_HEADER = (
    "challenger",
    "runs",
    "promoted",
    "rolled back",
    "undecided",
    "predictions until the decision, median (min–max)",
    "simulated minutes (median)",
    "stage of the decision",
    "challenger's share served, median (max)",
    "deciding guard: value range vs limit",
)


def write_section(docs: Path, title: str, section: str) -> None:
    """Replace the section titled ``title`` in ``docs``, or append it."""
    text = docs.read_text() if docs.is_file() else "# Benchmarks\n"
    body = section.rstrip() + "\n\n"
    pattern = re.compile(rf"^{re.escape(title)}\s*$.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: body, text, count=1)
    else:
        text = text.rstrip() + "\n\n" + body
    docs.write_text(text.rstrip() + "\n")


def margin_rows(runs: Sequence[dict[str, Any]], case: str = "healthy") -> list[list[str]]:
    """Per stage and guard, the values a case's passing stages had (min–max over runs):
    how close a passing challenger came to each limit."""
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    order: list[str] = []
    for r in runs:
        if r["case"] != case:
            continue
        labels = [s.split("@")[0] for s in r["stages"]]
        for label, passed in zip(labels, r.get("passed", []), strict=False):
            if label not in order:
                order.append(label)
            for guard, value in passed.items():
                values[(label, guard)].append(float(value))
    rows = []
    for label in order:
        for (stage, guard), got in sorted(values.items()):
            if stage == label:
                rows.append(
                    [
                        label,
                        guard,
                        str(len(got)),
                        f"{min(got):.4g}–{max(got):.4g}",
                        f"{statistics.median(got):.4g}",
                    ]
                )
    return rows


MARGIN_HEADER = ("stage passed", "guard", "runs", "value min–max", "median")
