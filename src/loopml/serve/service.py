"""The prediction service: validate, route, predict, record. No HTTP here (routes are
adapters).

The service holds a :class:`~loopml.serve.deployments.DeploymentSet` (the champion, the
challenger of an active rollout, the traffic plan) and replaces it whole with a single
reference assignment, so a request sees either the old set or the new one, never a mix.

Each request is routed by its key (:mod:`loopml.serve.sticky`) with
:func:`loopml.rollout.router.route`:

- arm ``champion`` or ``challenger`` answers it and its ledger rows carry that arm and the
  version that answered;
- when the **challenger fails** on a request (an exception inside its model, not bad
  input: the rows are validated first), the error is counted for the challenger arm and
  the champion answers: a bad canary never costs a user a request;
- in a **shadow** stage the champion answers; after the answer is sent the route offers
  the request to the shadow queue (:meth:`PredictionService.shadow`), whose thread scores
  the same validated rows with the challenger and records them with arm ``shadow``. A full
  queue drops the request (counted); a failure counts as the shadow arm's error.

Every prediction becomes one ledger row per input row, stamped by ``clock``; the caller
decides whether to wait for the commit (``durable`` mode) or not (``async``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson

from loopml.errors import InputError
from loopml.ledger import FeedbackResult, Ledger, PredictionRow
from loopml.registry.runtime import Outputs
from loopml.rollout.router import route
from loopml.serve.deployments import ArmCounters, Deployment, DeploymentSet, StageKey
from loopml.serve.labels import (
    MAX_ROW,
    class_spellings,
    normalize_label,
    parse_feedback,
)
from loopml.serve.refusals import too_many_rows
from loopml.serve.request_ids import MAX_REQUEST_ID, check_request_id
from loopml.serve.schema import InputSchema
from loopml.serve.shadow import ShadowQueue
from loopml.serve.sticky import request_key, sticky_value
from loopml.serve.table import Table
from loopml.serve.validation import ModelInput, validate

__all__ = [
    "MAX_REQUEST_ID", "MAX_ROW", "Deployment", "DeploymentSet", "Prediction",
    "PredictionService", "check_request_id", "class_spellings", "ledger_rows",
    "normalize_label", "output_records", "parse_feedback",
]  # fmt: skip

log = logging.getLogger("loopml.serve")
ArmEvent = Callable[[str, str, str], None]
"""``(kind, arm, version)``: ``error`` (a model failed) or ``dropped`` (shadow queue full)."""


@dataclass(frozen=True)
class ShadowWork:
    """What the challenger scores off the response path for one shadowed request."""

    challenger: Deployment
    table: Table
    checked: ModelInput
    champion_schema: InputSchema
    stage: StageKey
    ts: float


@dataclass(frozen=True)
class Prediction:
    request_id: str
    deployment: Deployment
    outputs: Outputs
    n_rows: int
    unseen: Mapping[str, int]
    committed: Awaitable[None] | None
    """Resolves when the ledger has committed every row (None: ledger off or not awaited)."""
    nulls: Mapping[str, int] = field(default_factory=dict)
    """feature -> rows with a null where training had none (served, imputed)."""
    ignored: tuple[str, ...] = ()
    """Fields of the request the contract does not know (served, ignored)."""
    rows: Sequence[PredictionRow] = field(default=(), repr=False)
    """The ledger rows of a scored request, until :meth:`PredictionService.record`."""
    arm: str = "champion"
    """The arm that answered: ``champion`` or ``challenger``."""
    shadow: ShadowWork | None = field(default=None, repr=False)
    """In a shadow stage: the challenger's work, for :meth:`PredictionService.shadow`."""


class PredictionService:
    """Validate → route → predict → record, over whichever set is deployed right now."""

    def __init__(
        self,
        deployment: Deployment | DeploymentSet,
        ledger: Ledger | None,
        *,
        max_rows: int = 10_000,
        max_chars: int | None = None,
        arm: str = "champion",
        sticky_key: str | None = None,
        shadow_queue: int = 1000,
        clock: Callable[[], float] = time.time,
        on_arm_event: ArmEvent | None = None,
    ) -> None:
        self._set = (
            deployment if isinstance(deployment, DeploymentSet) else DeploymentSet(deployment)
        )
        self.ledger = ledger
        self.max_rows = max_rows
        self.max_chars = max_chars
        self.arm = arm
        """The champion's arm label."""
        self.sticky_key = sticky_key
        self.clock = clock
        self.on_arm_event = on_arm_event
        self.counters = ArmCounters()
        self.shadow_jobs = ShadowQueue(shadow_queue)
        self.draining = False

    @property
    def deployments(self) -> DeploymentSet:
        return self._set

    @property
    def deployment(self) -> Deployment:
        """The champion."""
        return self._set.champion

    def swap(self, new: Deployment) -> Deployment:
        """Serve ``new`` alone (champion only) from the next request on; returns the
        champion it replaced."""
        return self.swap_set(DeploymentSet(new)).champion

    def swap_set(self, new: DeploymentSet) -> DeploymentSet:
        """Route by ``new`` from the next request on; returns the set it replaced."""
        old, self._set = self._set, new
        return old

    @property
    def ready(self) -> bool:
        return not self.draining

    def predict(
        self, table: Table, request_id: str | None = None, *, durable: bool = False
    ) -> Prediction:
        """Score one request and record it: :meth:`score`, then :meth:`record`."""
        return self.record(self.score(table, request_id), durable=durable)

    def score(
        self, table: Table, request_id: str | None = None, *, pinned: bool = False
    ) -> Prediction:
        """Validate, route and predict, and build the ledger rows; records nothing. Raises
        :class:`InputError` for bad input. Safe in a worker thread (a large request is
        scored off the event loop). ``pinned``: the champion answers (a client asked for
        its version by name)."""
        started = time.perf_counter()
        current = self._set
        champion, plan = current.champion, current.traffic
        rid = check_request_id(request_id) if request_id is not None else uuid.uuid4().hex
        sticky = sticky_value(table, self.sticky_key)
        checked = validate(table, champion.schema, max_rows=self.max_rows, max_chars=self.max_chars)
        stage: StageKey = (plan.rollout_id, plan.stage)
        deployment, arm, outputs = champion, self.arm, None
        challenger = current.challenger
        if not pinned and challenger is not None and plan.routes_challenger:
            key = request_key(sticky, checked.entity_keys, rid)
            if route(plan, key) == "challenger":
                answered = self._challenger(challenger, table, checked, champion.schema, stage)
                if answered is not None:
                    checked, outputs = answered
                    deployment, arm = challenger, "challenger"
        if outputs is None:
            outputs = champion.runtime.predict(checked.features)
        self.counters.count(stage, arm, deployment.version, requests=1)
        latency_ms = (time.perf_counter() - started) * 1000.0
        now = self.clock()
        rows: Sequence[PredictionRow] = ()
        if self.ledger is not None:
            rows = ledger_rows(rid, deployment, arm, checked, outputs, latency_ms, now)
        shadowing = None if pinned else current.shadowing
        work = None
        if shadowing is not None:
            work = ShadowWork(shadowing, table, checked, champion.schema, stage, now)
        ignored = tuple(n for n in checked.ignored if n != self.sticky_key)
        return Prediction(
            rid, deployment, outputs, checked.n_rows, checked.unseen, None, checked.nulls,
            ignored, rows, arm, work,
        )  # fmt: skip

    def _challenger(
        self, challenger: Deployment, table: Table, checked: ModelInput, schema: InputSchema,
        stage: StageKey,
    ) -> tuple[ModelInput, Outputs] | None:  # fmt: skip
        """The challenger's answer; None (its error counted) when it fails."""
        try:
            own = self._checked_for(challenger, table, checked, schema)
            return own, challenger.runtime.predict(own.features)
        except Exception as exc:  # a bad canary never costs a user a request
            self._model_error(stage, "challenger", challenger.version, exc)
            return None

    def _checked_for(
        self, deployment: Deployment, table: Table, checked: ModelInput, schema: InputSchema
    ) -> ModelInput:
        """The rows as ``deployment`` reads them (validated again only if its contract
        differs from the champion's)."""
        if _same(deployment.schema, schema):
            return checked
        return validate(table, deployment.schema, max_rows=self.max_rows, max_chars=self.max_chars)

    def _model_error(self, stage: StageKey, arm: str, version: str, exc: Exception) -> None:
        log.warning("the %s (version %s) failed on a request: %s", arm, version,
                    str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)  # fmt: skip
        self.counters.count(stage, arm, version, requests=1, errors=1)
        if self.on_arm_event is not None:
            self.on_arm_event("error", arm, version)

    def shadow(self, prediction: Prediction) -> bool:
        """Offer a shadowed request to the shadow queue (call after the answer is sent);
        False when there was nothing to shadow or the queue was full (then counted)."""
        work = prediction.shadow
        if work is None:
            return False
        if self.shadow_jobs.offer(lambda: self._score_shadow(prediction.request_id, work)):
            return True
        version = work.challenger.version
        self.counters.count(work.stage, "shadow", version, dropped=1)
        if self.on_arm_event is not None:
            self.on_arm_event("dropped", "shadow", version)
        return False

    def _score_shadow(self, rid: str, work: ShadowWork) -> None:
        """Score one shadowed request with the challenger; record it with arm ``shadow``."""
        started = time.perf_counter()
        challenger = work.challenger
        try:
            checked = self._checked_for(challenger, work.table, work.checked, work.champion_schema)
            outputs = challenger.runtime.predict(checked.features)
        except Exception as exc:
            self._model_error(work.stage, "shadow", challenger.version, exc)
            return
        self.counters.count(work.stage, "shadow", challenger.version, requests=1)
        if self.ledger is None:
            return
        latency_ms = (time.perf_counter() - started) * 1000.0
        rows = ledger_rows(rid, challenger, "shadow", checked, outputs, latency_ms, work.ts)
        try:
            self.ledger.submit(rows)
        except Exception as exc:  # ledger full or closed: the shadow rows are lost, counted
            log.warning("shadow rows of request %s not recorded: %s", rid, exc)
            self.counters.count(work.stage, "shadow", challenger.version, dropped=1)

    def record(self, prediction: Prediction, *, durable: bool = False) -> Prediction:
        """Hand a scored request's rows to the ledger. Raises the ledger's ``LedgerFull``
        when it cannot take them (the caller answers 503).

        ``durable``: the result's ``committed`` resolves once the rows are committed (call
        from the event loop's thread); otherwise the rows are queued and not waited for.
        """
        if self.ledger is None or not prediction.rows:
            return prediction
        if durable:
            committed = self.ledger.submit_async(prediction.rows)
            return replace(prediction, committed=committed, rows=())
        self.ledger.submit(prediction.rows)
        return replace(prediction, rows=())

    def feedback(
        self, items: Sequence[Mapping[str, Any]], scope: str = "unknown", client: str | None = None
    ) -> Awaitable[FeedbackResult]:
        """Record labels for earlier predictions (joined by request id and row), each a new
        version of its label kept with ``scope`` (the token it came with) and ``client``."""
        if self.ledger is None:
            raise InputError(
                "this server runs without a ledger, so labels cannot be recorded",
                error="no_ledger",
                status=409,
            )
        if len(items) > self.max_rows:  # it could never fit: a retry would not help
            raise too_many_rows(len(items), self.max_rows)
        deployment = self._set.champion
        parsed = [
            replace(parse_feedback(item, i, deployment), scope=scope, client=client)
            for i, item in enumerate(items)
        ]
        return self.ledger.submit_feedback_async(parsed)


def _same(a: InputSchema, b: InputSchema) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except ValueError:  # a rule holding an array: compare by contract instead
        return False


def output_records(outputs: Outputs, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Per-row outputs as the ledger stores them: label + ``proba_<class>``, or value."""
    if outputs.probabilities is None:
        values = outputs.values if outputs.values is not None else np.asarray(outputs.labels)
        return [{"value": float(v)} for v in values.tolist()]
    keys = [f"proba_{c}" for c in classes]
    return [
        {"label": label, **dict(zip(keys, probs, strict=True))}
        for label, probs in zip(outputs.labels, outputs.probabilities.tolist(), strict=True)
    ]


def ledger_rows(
    request_id: str,
    deployment: Deployment,
    arm: str,
    checked: ModelInput,
    outputs: Outputs,
    latency_ms: float,
    ts: float | None = None,
) -> list[PredictionRow]:
    names = list(checked.features)
    columns = [checked.features[name].tolist() for name in names]
    keys = checked.entity_keys or [None] * checked.n_rows
    now = time.time() if ts is None else ts
    return [
        PredictionRow(
            request_id=request_id,
            row=i,
            ts=now,
            model=deployment.model,
            version=deployment.version,
            arm=arm,
            entity_key=keys[i],
            # orjson writes NaN as null: a null numeric feature round-trips as null.
            features=orjson.dumps(dict(zip(names, (c[i] for c in columns), strict=True))).decode(),
            outputs=orjson.dumps(out).decode(),
            latency_ms=latency_ms,
        )
        for i, out in enumerate(output_records(outputs, deployment.classes))
    ]
