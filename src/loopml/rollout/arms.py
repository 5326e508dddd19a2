"""One arm of a stage as columns: its ledger rows, decoded the way the monitor decodes them.

Only what the evidence needs is read — keys, outputs, latency and the label, never the
features — in chunks, each turned into columns at once
(:func:`loopml.monitor.windows.decode_window` against the version's own profile, so
scores are in that version's class order), so a stage of 100k rows is held as a few
arrays, not as 100k records.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from loopml.ledger.backend import LedgerReader
from loopml.ledger.records import LedgerQuery
from loopml.monitor.calibration import class_proba
from loopml.monitor.profile import ReferenceProfile
from loopml.monitor.windows import decode_window
from loopml.train.metrics import predicted_labels

__all__ = ["CHUNK_ROWS", "ArmRows", "read_arm", "shared_rows"]

CHUNK_ROWS = 10_000
Array = np.ndarray[Any, Any]


@dataclass(frozen=True, eq=False)
class ArmRows:
    """One arm's rows of one stage, row-aligned columns in ledger order.

    ``scores`` are class probabilities ``(n, k)`` in the profile's class order, or the
    values (regression); ``prediction`` what prediction drift watches (the positive-class
    probability, the predicted class, the value); ``labels`` the JSON-decoded labels
    (None until feedback arrived).
    """

    arm: str
    version: str
    profile: ReferenceProfile = field(repr=False)
    request_ids: list[str] = field(repr=False)
    rows: list[int] = field(repr=False)
    latency_ms: Array = field(repr=False)
    ts: Array = field(repr=False)
    """When each row was scored (unix seconds), oldest first."""
    scores: Array = field(repr=False)
    prediction: Array = field(repr=False)
    labels: list[Any] = field(repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def task(self) -> str:
        return self.profile.task

    def keys(self) -> list[tuple[str, int]]:
        return list(zip(self.request_ids, self.rows, strict=True))

    def predicted_classes(self) -> Array:
        """The class each row was answered with, by name (classification; None where a
        score is not finite), decided at the version's own threshold."""
        names: Array = np.asarray(list(self.profile.classes), dtype=object)
        p = class_proba(self.task, self.scores)  # type: ignore[arg-type]
        finite = np.isfinite(p).all(axis=1)
        out: Array = np.full(len(p), None, dtype=object)
        if finite.any():
            out[finite] = names[predicted_labels(p[finite], self.profile.threshold)]
        return out


def read_arm(
    reader: LedgerReader,
    query: LedgerQuery,
    profile: ReferenceProfile,
    chunk_rows: int = CHUNK_ROWS,
) -> ArmRows:
    """The rows ``query`` matches (one version and arm), decoded against ``profile``."""
    # No features: decode_window then parses nothing but the outputs and the labels.
    bare = replace(profile, features=(), prediction_by=None)
    ids: list[str] = []
    rows: list[int] = []
    latency: list[Array] = []
    times: list[Array] = []
    scores: list[Array] = []
    prediction: list[Array] = []
    labels: list[Any] = []
    for chunk in reader.chunks(query, chunk_rows, features=False):
        decoded = decode_window(chunk, bare, ())
        ids.extend(r.request_id for r in chunk)
        rows.extend(int(r.row) for r in chunk)
        latency.append(np.fromiter((r.latency_ms for r in chunk), np.float64, len(chunk)))
        times.append(np.fromiter((r.ts for r in chunk), np.float64, len(chunk)))
        scores.append(decoded.scores)
        prediction.append(decoded.prediction)
        labels.extend(decoded.labels)
    if not scores:
        empty = decode_window([], bare, ())
        latency, times = [np.empty(0)], [np.empty(0)]
        scores, prediction = [empty.scores], [empty.prediction]
    return ArmRows(
        arm=str(query.arm), version=str(query.version), profile=profile, request_ids=ids,
        rows=rows, latency_ms=np.concatenate(latency), ts=np.concatenate(times),
        scores=np.concatenate(scores),
        prediction=np.concatenate(prediction), labels=labels,
    )  # fmt: skip


def shared_rows(first: ArmRows, second: ArmRows) -> tuple[Array, Array]:
    """The rows both arms scored (same ``(request_id, row)``, as in a shadow stage):
    index arrays ``(i, j)`` with ``first`` row ``i[k]`` and ``second`` row ``j[k]`` one
    request row, in ``second``'s order."""
    where = {key: i for i, key in enumerate(zip(first.request_ids, first.rows, strict=True))}
    i: list[int] = []
    j: list[int] = []
    for index, key in enumerate(zip(second.request_ids, second.rows, strict=True)):
        found = where.get(key)
        if found is not None:
            i.append(found)
            j.append(index)
    return np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
