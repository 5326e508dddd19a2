"""Windows over the prediction ledger: by row count or by time, per version and arm.

A count window holds ``N`` consecutive predictions of one model version and arm, in the
ledger's order ``(ts, request_id, row)``; a time window holds the predictions of one
fixed-length interval aligned to the Unix epoch (``1h`` windows start on the hour, UTC).
A window is *complete* once it holds ``N`` rows, or once its interval has ended; only
complete windows are stored and judged by alerts. Reading resumes after the last stored
window, at its :class:`Cursor`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.errors import ConfigError
from loopml.features.pipeline import MISSING
from loopml.ledger.columns import loads
from loopml.ledger.records import LedgerRecord
from loopml.monitor.profile import ReferenceProfile, category_values, numeric_values
from loopml.monitor.reference import PREDICTION, positive_probability

__all__ = ["Cursor", "WindowData", "WindowSpec", "cut_windows", "decode_window"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SPEC = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|rows?)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class WindowSpec:
    """``"5000"`` or ``"5000 rows"`` (a count), or ``"90s"``, ``"30m"``, ``"1h"``, ``"1d"``.

    >>> WindowSpec.parse("5000").rows, WindowSpec.parse("1h").seconds
    (5000, 3600.0)
    >>> WindowSpec.parse("2 weeks")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    loopml.errors.ConfigError: bad monitoring window '2 weeks'
    """

    text: str
    rows: int | None = None
    seconds: float | None = None

    @classmethod
    def parse(cls, text: str) -> WindowSpec:
        match = _SPEC.match(str(text))
        amount = float(match.group(1)) if match else 0.0
        if not match or amount <= 0:
            raise ConfigError(
                f"bad monitoring window {text!r}",
                detail="a window is a row count ('5000') or a duration ('90s', '30m', '1h', '1d')",
                fix="set monitor.window (or --window) to e.g. 5000 or 1h",
            )
        unit = (match.group(2) or "rows").lower()
        if unit.startswith("row"):
            if amount != int(amount):
                raise ConfigError(f"bad monitoring window {text!r}: rows must be whole")
            return cls(text=f"{int(amount)} rows", rows=int(amount))
        return cls(text=f"{match.group(1)}{unit}", seconds=amount * _UNITS[unit])


@dataclass(frozen=True, order=True)
class Cursor:
    """The last prediction of a window, in ledger order."""

    ts: float
    request_id: str
    row: int

    @classmethod
    def of(cls, record: LedgerRecord) -> Cursor:
        return cls(float(record.ts), str(record.request_id), int(record.row))


@dataclass
class WindowData:
    """The ledger rows of one window, not yet decoded."""

    version: str
    arm: str
    index: int
    start_ts: float
    end_ts: float
    complete: bool
    records: list[LedgerRecord] = field(repr=False)

    @property
    def rows(self) -> int:
        return len(self.records)

    @property
    def end(self) -> Cursor:
        return Cursor.of(self.records[-1])


def cut_windows(
    records: Iterable[LedgerRecord],
    spec: WindowSpec,
    *,
    version: str,
    arm: str,
    first_index: int,
    now: float,
) -> Iterator[WindowData]:
    """Split one version's and arm's records (in ledger order) into windows.

    The last window is yielded with ``complete=False`` when it is still filling.
    """
    index = first_index
    buffer: list[LedgerRecord] = []
    bucket: int | None = None
    for record in records:
        if spec.seconds is not None:
            here = math.floor(record.ts / spec.seconds)
            if buffer and here != bucket:
                yield _time_window(buffer, spec, version, arm, index, bucket, True)
                index, buffer = index + 1, []
            bucket = here
        buffer.append(record)
        if spec.rows is not None and len(buffer) == spec.rows:
            yield _count_window(buffer, version, arm, index, True)
            index, buffer = index + 1, []
    if buffer:
        if spec.seconds is not None:
            done = bucket is not None and (bucket + 1) * spec.seconds <= now
            yield _time_window(buffer, spec, version, arm, index, bucket, done)
        else:
            yield _count_window(buffer, version, arm, index, False)


def _count_window(
    records: list[LedgerRecord], version: str, arm: str, index: int, complete: bool
) -> WindowData:
    return WindowData(version, arm, index, records[0].ts, records[-1].ts, complete, records=records)


def _time_window(
    records: list[LedgerRecord],
    spec: WindowSpec,
    version: str,
    arm: str,
    index: int,
    bucket: int | None,
    complete: bool,
) -> WindowData:
    assert spec.seconds is not None and bucket is not None
    start = bucket * spec.seconds
    return WindowData(version, arm, index, start, start + spec.seconds, complete, records)


@dataclass(frozen=True)
class DecodedWindow:
    """A window as columns: what :mod:`loopml.monitor.evaluate` computes on.

    ``features`` maps each profiled feature to its values (float64 with NaN, or ``str``
    objects with ``None``); a feature no row carried is in ``absent`` instead.
    ``scores`` are class probabilities (n, k) in the profile's class order, or values.
    """

    features: dict[str, np.ndarray[Any, Any]]
    absent: tuple[str, ...]
    prediction: np.ndarray[Any, Any]
    scores: np.ndarray[Any, Any]
    labels: list[Any]
    slices: dict[str, np.ndarray[Any, Any]]


def decode_window(
    records: Sequence[LedgerRecord], profile: ReferenceProfile, slice_columns: Sequence[str]
) -> DecodedWindow:
    """Parse the JSON of a window's rows into the columns the profile knows."""
    documents = [loads(r.features) for r in records]
    outputs = [loads(r.outputs) for r in records]
    features: dict[str, np.ndarray[Any, Any]] = {}
    absent: list[str] = []
    for column in profile.features:
        raw = [d.get(column.name) if isinstance(d, dict) else None for d in documents]
        if records and not any(column.name in d for d in documents if isinstance(d, dict)):
            absent.append(column.name)
            continue
        if column.kind == "numeric":
            features[column.name] = numeric_values(raw)
        else:
            features[column.name] = category_values(raw, missing=[MISSING])
    scores = _scores(profile, outputs)
    prediction = _prediction(profile, outputs, scores)
    slices = {name: features[name] for name in slice_columns if name in features}
    labels = [None if r.label is None else loads(r.label) for r in records]
    return DecodedWindow(features, tuple(absent), prediction, scores, labels, slices)


def _scores(profile: ReferenceProfile, outputs: list[Any]) -> np.ndarray[Any, Any]:
    if profile.task == "regression":
        return numeric_values([o.get("value") if isinstance(o, dict) else None for o in outputs])
    keys = [f"proba_{c}" for c in profile.classes]
    table = [[o.get(k) if isinstance(o, dict) else None for k in keys] for o in outputs]
    scores = np.array(table, dtype=np.float64).reshape(len(outputs), len(keys))
    return scores


def _prediction(
    profile: ReferenceProfile, outputs: list[Any], scores: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    if profile.task == "regression":
        return scores
    if profile.task == "binary":
        return positive_probability(scores) if len(scores) else np.empty(0)
    labels = [o.get("label") if isinstance(o, dict) else None for o in outputs]
    return category_values(labels)


PREDICTION_NAME = PREDICTION
