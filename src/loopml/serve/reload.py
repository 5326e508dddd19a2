"""Hot reload: follow the champion alias and the rollout state, and swap sets without
failing a request.

A background thread reads, every ``poll_seconds`` or at once when
:meth:`Reloader.reload_now` is called, which version the alias points at and the model's
active rollout (if the server reads one), and derives the traffic plan from them
(:func:`loopml.rollout.plan.plan_of`). When the versions it needs changed, they are loaded,
warmed and parity-checked *off the request path*; only then is the new
:class:`~loopml.serve.deployments.DeploymentSet` swapped in with one reference assignment.
A plan that changed alone (a share that grew, a rollout that ended) is swapped at once.

Versions already loaded are reused: the champion, the challenger, and the champion before
the last change (a standby), so a way back — an aborted blue-green, a rollback — loads
nothing. If anything fails, the old set keeps serving, the failure is logged and counted,
and that target is not retried until it changes or a reload is forced. If the rollout
state cannot be read, the plan is kept as it was.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.rollout.plan import RolloutState, TrafficPlan, plan_of
from loopml.serve.deployments import Deployment, DeploymentSet

if TYPE_CHECKING:
    from loopml.serve.service import PredictionService

log = logging.getLogger("loopml.serve")

Loader = Callable[[str], Deployment]
"""Loads, warms and checks one version; raises on any failure."""
AliasReader = Callable[[], str | None]
StateReader = Callable[[], RolloutState | None]
Listener = Callable[[str, "ReloadOutcome"], None]
Target = tuple[str, str | None]


@dataclass(frozen=True)
class ReloadOutcome:
    """What one check did: ``unchanged``, ``swapped`` (versions loaded or changed),
    ``rerouted`` (the plan alone changed) or ``failed``."""

    outcome: str
    serving: str
    target: str | None
    error: str | None = None
    challenger: str | None = None
    plan: dict[str, Any] | None = None
    loaded: tuple[str, ...] = ()
    """The versions this check loaded; empty when it reused loaded ones (a way back)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome, "serving": self.serving, "target": self.target,
            "error": self.error, "champion": self.serving, "challenger": self.challenger,
            "plan": self.plan, "loaded": list(self.loaded),
        }  # fmt: skip


class Reloader:
    """The thread that keeps ``service`` on the set the alias and the rollout ask for."""

    def __init__(
        self,
        service: PredictionService,
        load: Loader,
        read_alias: AliasReader,
        *,
        poll_seconds: float,
        on_outcome: Listener | None = None,
        read_state: StateReader | None = None,
        on_poll: Callable[[], None] | None = None,
    ) -> None:
        self.service = service
        self._load = load
        self._read_alias = read_alias
        self._read_state = read_state
        self._on_poll = on_poll
        self.poll_seconds = poll_seconds
        self._on_outcome = on_outcome
        self._failed: Target | None = None
        current = service.deployments
        self._loaded: dict[str, Deployment] = {current.champion.version: current.champion}
        if current.challenger is not None:
            self._loaded[current.challenger.version] = current.challenger
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._forced: list[Future[ReloadOutcome]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="loopml-reload", daemon=True)

    @property
    def loaded(self) -> tuple[str, ...]:
        """The versions kept loaded (serving, or standing by)."""
        return tuple(self._loaded)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._poll_done()

    def reload_now(self) -> Future[ReloadOutcome]:
        """Check the alias and the rollout at once; load even what failed before."""
        future: Future[ReloadOutcome] = Future()
        with self._lock:
            self._forced.append(future)
        self._wake.set()
        return future

    def check(self, *, force: bool = False) -> ReloadOutcome:
        """One poll: read the alias and the rollout, and load + swap if the set they ask
        for differs from the one serving (or ``force`` a failed one again)."""
        current = self.service.deployments
        serving = current.champion.version
        try:
            target = self._read_alias()
        except Exception as exc:  # the registry is down: keep serving, say so
            return self._report(self._outcome("failed", current, None, _describe(exc)))
        champion = target if target is not None else serving
        plan = self._plan(champion, current)
        wanted: Target = (champion, plan.challenger)
        if wanted == current.versions and plan == current.traffic:
            self._failed = None
            return self._outcome("unchanged", current, target)
        if wanted == self._failed and not force:
            return self._outcome("unchanged", current, target, "this version failed to load")
        before = set(self._loaded)
        try:
            new = self._build(wanted, plan)
        except Exception as exc:  # a broken version must never take the server down
            self._failed = wanted
            failed = self._outcome("failed", current, target, _describe(exc))
            return self._report(failed, wanted)
        self.service.swap_set(new)
        self._keep(new, current)
        self._failed = None
        kind = "swapped" if wanted != current.versions else "rerouted"
        loaded = tuple(v for v in wanted if v is not None and v not in before)
        return self._report(self._outcome(kind, new, target, loaded=loaded))

    def _plan(self, champion: str, current: DeploymentSet) -> TrafficPlan:
        if self._read_state is None:
            return TrafficPlan(champion)
        try:
            state = self._read_state()
        except Exception as exc:  # the state database is down: route as before
            log.warning("cannot read the rollout state, routing as before: %s", _describe(exc))
            kept = current.traffic
            return kept if kept.champion == champion else TrafficPlan(champion)
        return plan_of(state, champion)

    def _build(self, wanted: Target, plan: TrafficPlan) -> DeploymentSet:
        champion = self._deployment(wanted[0])
        challenger = None if wanted[1] is None else self._deployment(wanted[1])
        return DeploymentSet(champion, challenger, plan)

    def _deployment(self, version: str) -> Deployment:
        found = self._loaded.get(version)
        return found if found is not None else self._load(version)

    def _keep(self, new: DeploymentSet, old: DeploymentSet) -> None:
        """Keep the new set's versions and the champion it replaced (the standby)."""
        keep = [new.champion, old.champion, new.challenger]
        self._loaded = {d.version: d for d in keep if d is not None}

    def _outcome(
        self, kind: str, s: DeploymentSet, target: str | None, error: str | None = None,
        loaded: tuple[str, ...] = (),
    ) -> ReloadOutcome:  # fmt: skip
        shown = s.to_dict()
        return ReloadOutcome(kind, s.champion.version, target, error, shown["challenger"],
                             shown["plan"], loaded)  # fmt: skip

    def _run(self) -> None:
        next_poll = time.monotonic() + self.poll_seconds
        while not self._stop.is_set():
            self._wake.wait(max(0.0, next_poll - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                break
            with self._lock:
                forced, self._forced = self._forced, []
            outcome = self.check(force=bool(forced))
            for future in forced:
                future.set_result(outcome)
            self._poll_done()
            next_poll = time.monotonic() + self.poll_seconds
        with self._lock:
            for future in self._forced:
                future.cancel()

    def _poll_done(self) -> None:
        if self._on_poll is None:
            return
        try:
            self._on_poll()
        except Exception as exc:  # e.g. the state database is down: next poll retries
            log.warning("cannot write this replica's rollout counters: %s", _describe(exc))

    def _report(self, outcome: ReloadOutcome, wanted: Target | None = None) -> ReloadOutcome:
        if outcome.outcome == "failed":
            shown = outcome.target if wanted is None else "/".join(v for v in wanted if v)
            log.error("reload of version %s failed; still serving %s: %s",
                      shown, outcome.serving, outcome.error)  # fmt: skip
        else:
            log.info("now serving version %s (challenger %s, share %s%s)", outcome.serving,
                     outcome.challenger, (outcome.plan or {}).get("share"),
                     ", shadow" if (outcome.plan or {}).get("shadow") else "")  # fmt: skip
        if self._on_outcome is not None:
            self._on_outcome(outcome.outcome, outcome)
        return outcome


def _describe(exc: Exception) -> str:
    headline = getattr(exc, "headline", None)
    return str(headline or exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
