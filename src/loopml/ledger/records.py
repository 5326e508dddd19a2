"""What the prediction ledger stores and how it fails: row types and errors.

A :class:`PredictionRow` is one row of one request (a 1,000-row request is 1,000 rows with
the same ``request_id``); ``(request_id, row)`` is its key. A :class:`Feedback` is a label
that arrives later for such a key. Features, outputs and labels travel as JSON text so the
hot path never re-encodes them and both backends store them byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from loopml.errors import InputError, LoopmlError

Arm = Literal["champion", "challenger", "shadow"]
ARMS: frozenset[str] = frozenset({"champion", "challenger", "shadow"})
SCHEMA_VERSION = 3
"""1: labels upserted in place. 2: every label submission is also a row of the
append-only ``label_history``; ``labels`` holds the current (latest) version of each.
3: rows of arm ``shadow`` (a challenger scoring the champion's requests off the response
path) have their own table, ``shadow_predictions``, with the same columns and key: the
champion's row of the same ``(request_id, row)`` stays in ``predictions``."""
SHADOW_ARM = "shadow"


@dataclass(frozen=True, slots=True)
class PredictionRow:
    """One recorded prediction.

    >>> PredictionRow("r1", 0, 1.7e9, "feed", "3", "champion", None, '{"age": 31}',
    ...               '{"label": 1, "proba_0": 0.2, "proba_1": 0.8}', 0.4).key
    ('r1', 0)
    """

    request_id: str
    row: int
    ts: float  # unix seconds
    model: str
    version: str
    arm: str  # 'champion' | 'challenger' | 'shadow'
    entity_key: str | None
    features: str  # JSON object text: feature name -> value
    outputs: str  # JSON object text: {"label": .., "proba_<class>": ..} or {"value": ..}
    latency_ms: float

    def __post_init__(self) -> None:
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {sorted(ARMS)}, got {self.arm!r}")

    @property
    def key(self) -> tuple[str, int]:
        return (self.request_id, self.row)


@dataclass(frozen=True, slots=True)
class Feedback:
    """A label for an earlier prediction; ``label`` is the JSON text of the value.

    Each one is a new version of the label of its key, kept in the label history with
    where it came from: the token ``scope`` it was sent with (``feedback``, ``admin``,
    ``anonymous``), the ``client`` address and the ``source`` the client named, if any.
    """

    request_id: str
    row: int
    label: str
    ts: float  # unix seconds, when the label arrived
    scope: str = "unknown"
    client: str | None = None
    source: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.request_id, self.row)


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    """How many labels were stored, and which keys name no recorded prediction."""

    recorded: int
    unknown: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LedgerStats:
    """The writer's state, for ``/metrics`` and readiness.

    ``oldest_wait_seconds`` is the write lag: how long the oldest row not yet committed has
    waited (0 when nothing waits). ``last_commit_seconds`` is how long the last commit took.
    ``queue_rows`` counts prediction rows and labels waiting or being written; the
    ``*_rows`` counters count predictions only (recorded, in failed groups, duplicates).
    """

    queue_rows: int
    queue_capacity: int
    oldest_wait_seconds: float
    last_commit_seconds: float
    committed_rows: int
    failed_rows: int
    duplicate_rows: int
    commits: int


class LedgerRecord(NamedTuple):
    """A prediction as read back, with its label (``None`` until feedback arrives)."""

    request_id: str
    row: int
    ts: float
    model: str
    version: str
    arm: str
    entity_key: str | None
    features: str
    outputs: str
    latency_ms: float
    label: str | None
    labelled_at: float | None


class LabelVersion(NamedTuple):
    """One version of one prediction's label, as read back from the label history:
    ``version`` counts from 1 per ``(request_id, row)``; ``current`` marks the latest."""

    request_id: str
    row: int
    version: int
    current: bool
    label: str
    ts: float
    scope: str
    client: str | None
    source: str | None


@dataclass(frozen=True, slots=True)
class LedgerQuery:
    """Which predictions to read: ``since <= ts < until`` (unix seconds), a model, a
    version and an arm.

    ``arm="shadow"`` reads the shadow table (the challenger's scores of requests the
    champion answered, joined with the champion's labels by key); any other arm, or
    none, reads what was answered (``predictions``) only."""

    since: float | None = None
    until: float | None = None
    version: str | None = None
    arm: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    """What ``loopml ledger stats`` shows."""

    url: str
    rows: int
    labelled: int
    first_ts: float | None
    last_ts: float | None
    by_version_arm: list[tuple[str, str, int]]  # (version, arm, rows), most rows first
    label_versions: int = 0  # rows of the label history (labelled + corrections)
    shadow_rows: int = 0  # of ``rows``, scored in shadow (answered by the champion)


class LedgerError(LoopmlError):
    """The ledger's database failed (unreachable, locked, full, broken schema).

    A failed commit fails every submission of its group; the writer keeps running and
    later commits succeed once the database is back. A server answers 503 and logs it.
    """

    status = 503
    error = "ledger_unavailable"
    client_reason = "the prediction could not be recorded, so it is not served; retry later"
    retryable = True
    logged = True


class LedgerFull(LoopmlError):
    """The write queue is full: answer 503 with ``Retry-After: retry_after``.

    Raised by ``submit`` at once; a submission is never blocked and never silently dropped.
    """

    status = 503
    error = "ledger_full"
    client_reason = "the prediction ledger is full; retry after the Retry-After delay"
    retryable = True

    def __init__(self, queued: int, capacity: int, retry_after: int) -> None:
        super().__init__(
            f"the prediction ledger is full ({queued:,} of {capacity:,} rows waiting)",
            detail="the database is not keeping up with the request rate",
            fix=f"retry after {retry_after} s; if this persists raise serve.ledger.queue_size "
            "or use a faster ledger database",
        )
        self.retry_after = retry_after


class LedgerClosed(LoopmlError):
    """The ledger is closing or closed and accepts nothing more."""

    status = 503
    error = "shutting_down"
    client_reason = "the server is shutting down; retry on another replica"
    retryable = True

    def __init__(self) -> None:
        super().__init__(
            "the prediction ledger is closed",
            detail="the server is shutting down",
            fix="send the request to another replica or retry once the server is back",
        )


class DuplicateRequest(InputError):
    """A ``(request_id, row)`` already in the ledger: fails that submission only (409)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"request id {request_id!r} is already recorded in the ledger; "
            "send a new request id, or none to let the server make one",
            error="duplicate_request_id",
            field="request_id",
            status=409,
        )
        self.request_id = request_id
