"""Tables of bench/bench_serve.py, the issue's targets, and the Serving section of the docs."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from serve.harness import Measure
from serve.peers import Peer

SECTION_TITLE = "## Serving"
NOT_MEASURED = "not measured"


@dataclass
class PeerResult:
    """Everything measured for one peer configuration (or why it was skipped)."""

    peer: Peer
    skipped: str | None = None
    cold_start_s: float = math.nan
    peak_rss_mb: float = math.nan
    latency: Measure | None = None  # 1 row, c=1
    throughput: Measure | None = None  # 1 row, c=64
    bulk: Measure | None = None  # 1,000 rows per request
    notes: list[str] = field(default_factory=list)


@dataclass
class ScoreResult:
    """A batch scorer timed on the same N-row file, several runs (wall seconds each)."""

    label: str
    rows: int
    seconds: list[float] = field(default_factory=list)
    peak_rss_mb: float = math.nan
    skipped: str | None = None
    note: str | None = None

    @property
    def rows_per_s(self) -> float:
        return self.rows / statistics.median(self.seconds) if self.seconds else math.nan


def _n(value: float, digits: int = 0) -> str:
    return "–" if math.isnan(value) else f"{value:,.{digits}f}"


def _rps(m: Measure | None) -> str:
    if m is None:
        return "–"
    low, high = m.rps_range
    return f"{_n(m.rps)} ({_n(low)}–{_n(high)})"


def _ms(value: float) -> str:
    return "–" if math.isnan(value) else (f"{value:.2f}" if value < 10 else f"{value:,.0f}")


def baselines(results: list[PeerResult]) -> dict[str, float]:
    """c=64 req/s of `mlflow models serve` and of MLServer's best configuration."""
    best: dict[str, float] = {}
    for r in results:
        if r.throughput is not None and r.peer.group in ("mlflow", "mlserver"):
            best[r.peer.group] = max(best.get(r.peer.group, 0.0), r.throughput.rps)
    return best


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.1f}×" if base else "–"


def serving_table(results: list[PeerResult]) -> list[str]:
    """One line per peer: throughput, latency, failures, memory, cold start, ratios."""
    base = baselines(results)
    lines = [
        "| server (1 core) | req/s c=1 | p50 / p99 ms c=1 | req/s c=64 (min–max) "
        "| p50 / p99 ms c=64 | rows/s, 1,000-row requests | non-2xx + errors | peak RSS MB "
        "| cold start s | × mlflow c=64 | × MLServer c=64 | server CPU ms / request c=64 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.skipped:
            lines.append(f"| {r.peer.label} | skipped (see notes) |" + " |" * 11)
            continue
        lat, thr, bulk = r.latency, r.throughput, r.bulk
        failures = sum(m.failures for m in (lat, thr, bulk) if m is not None)
        thr_rps = thr.rps if thr else math.nan
        lines.append(
            f"| {r.peer.label} | {_n(lat.rps) if lat else '–'} "
            f"| {_ms(lat.p50_ms) if lat else '–'} / {_ms(lat.p99_ms) if lat else '–'} "
            f"| {_rps(thr)} | {_ms(thr.p50_ms) if thr else '–'} / "
            f"{_ms(thr.p99_ms) if thr else '–'} | {_n(bulk.rows_per_s) if bulk else '–'} "
            f"| {failures} | {_n(r.peak_rss_mb)} | {_n(r.cold_start_s, 1)} "
            f"| {_ratio(thr_rps, base.get('mlflow'))} | {_ratio(thr_rps, base.get('mlserver'))} "
            f"| {_ms(thr.cpu_ms) if thr else '–'} |"
        )
    return lines


def score_table(scores: list[ScoreResult]) -> list[str]:
    lines = [
        "| batch scorer (1 core) | rows | rows/s (median) | wall s (min–max) | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for s in scores:
        if s.skipped:
            lines.append(f"| {s.label} | {s.rows:,} | skipped (see notes) | | |")
            continue
        lines.append(
            f"| {s.label} | {s.rows:,} | {_n(s.rows_per_s)} "
            f"| {statistics.median(s.seconds):.2f} ({min(s.seconds):.2f}–{max(s.seconds):.2f}) "
            f"| {_n(s.peak_rss_mb)} |"
        )
    return lines


def _find(results: list[PeerResult], key: str) -> PeerResult | None:
    return next((r for r in results if r.peer.key == key and not r.skipped), None)


def _verdict(ok: bool | None) -> str:
    return NOT_MEASURED if ok is None else ("**pass**" if ok else "**miss**")


def targets_table(results: list[PeerResult], scores: list[ScoreResult]) -> list[str]:
    """The issue's targets for loopml (ledger durable), each with pass / miss."""
    base = baselines(results)
    ours = _find(results, "loopml")
    thr = ours.throughput.rps if ours and ours.throughput else None
    p50 = ours.latency.p50_ms if ours and ours.latency else None
    rows: list[tuple[str, str, bool | None]] = []
    for group, need, name in (
        ("mlflow", 10.0, "`mlflow models serve`"),
        ("mlserver", 2.0, "MLServer"),
    ):
        ratio = thr / base[group] if thr and base.get(group) else None
        rows.append((
            f"req/s at c=64 ≥ {need:g}× {name}",
            f"{ratio:.1f}×" if ratio else NOT_MEASURED,
            None if ratio is None else ratio >= need,
        ))  # fmt: skip
    rows.append((
        "p50 at c=1 ≤ 0.5 ms", f"{p50:.2f} ms" if p50 else NOT_MEASURED,
        None if p50 is None else p50 <= 0.5,
    ))  # fmt: skip
    overhead, against = ledger_overhead(results)
    rows.append((
        "ledger overhead ≤ 10 % of req/s at c=64",
        f"{overhead:.1%} (durable vs {against})" if overhead is not None else NOT_MEASURED,
        None if overhead is None else overhead <= 0.10,
    ))  # fmt: skip
    score = next((s for s in scores if s.label.startswith("`loopml score`") and s.seconds), None)
    rows.append((
        "`loopml score` ≥ 500k rows/s",
        f"{score.rows_per_s:,.0f} rows/s" if score else NOT_MEASURED,
        None if score is None else score.rows_per_s >= 500_000,
    ))  # fmt: skip
    lines = ["| target (loopml, ledger durable) | measured | |", "|---|---|---|"]
    lines += [f"| {what} | {measured} | {_verdict(ok)} |" for what, measured, ok in rows]
    return lines


def ledger_overhead(results: list[PeerResult]) -> tuple[float | None, str]:
    """1 − req/s durable / req/s with the ledger off (async when off is not available)."""
    durable = _find(results, "loopml")
    for key, name in (("loopml-off", "ledger off"), ("loopml-async", "ledger async")):
        other = _find(results, key)
        if durable and durable.throughput and other and other.throughput:
            return 1 - durable.throughput.rps / other.throughput.rps, name
    return None, ""


def write_section(docs: Path, section: str) -> None:
    """Replace the Serving section of ``docs`` (or insert it before the first other one)."""
    text = docs.read_text() if docs.is_file() else "# Benchmarks\n"
    body = section.rstrip() + "\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION_TITLE)}\b.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: body, text, count=1)
    elif (first := re.search(r"^## ", text, re.M)) is not None:
        text = text[: first.start()] + body + text[first.start() :]
    else:
        text = text.rstrip() + "\n\n" + body
    docs.write_text(text.rstrip() + "\n")


def notes(results: list[PeerResult], scores: list[ScoreResult]) -> list[str]:
    """Why a peer or scorer was skipped, and anything odd seen while measuring it."""
    lines = [f"- {r.peer.label}: skipped: {r.skipped}" for r in results if r.skipped]
    lines += [f"- {r.peer.label}: {note}" for r in results for note in r.notes]
    lines += [f"- {s.label}: skipped: {s.skipped}" for s in scores if s.skipped]
    lines += [f"- {s.label}: {s.note}" for s in scores if s.note]
    return lines
