"""Hot reload: follow a registry alias and swap versions without failing a request.

A background thread asks the registry which version the alias points at, every
``poll_seconds`` or at once when :meth:`Reloader.reload_now` is called. When it moved, the
new version is loaded, warmed and parity-checked *off the request path*; only then is it
swapped in with one reference assignment. If anything fails, the old version keeps serving,
the failure is logged and counted, and that version is not retried until the alias moves
again or a reload is forced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopml.serve.service import Deployment, PredictionService

log = logging.getLogger("loopml.serve")

Loader = Callable[[str], "Deployment"]
"""Loads, warms and checks one version; raises on any failure."""
AliasReader = Callable[[], str | None]
Listener = Callable[[str, "ReloadOutcome"], None]


@dataclass(frozen=True)
class ReloadOutcome:
    """What one check did: ``unchanged``, ``swapped`` or ``failed``."""

    outcome: str
    serving: str
    target: str | None
    error: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "outcome": self.outcome,
            "serving": self.serving,
            "target": self.target,
            "error": self.error,
        }


class Reloader:
    """The thread that keeps ``service`` on the version behind an alias."""

    def __init__(
        self,
        service: PredictionService,
        load: Loader,
        read_alias: AliasReader,
        *,
        poll_seconds: float,
        on_outcome: Listener | None = None,
    ) -> None:
        self.service = service
        self._load = load
        self._read_alias = read_alias
        self.poll_seconds = poll_seconds
        self._on_outcome = on_outcome
        self._failed: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._forced: list[Future[ReloadOutcome]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="loopml-reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def reload_now(self) -> Future[ReloadOutcome]:
        """Check the alias at once and load its version even if it failed before."""
        future: Future[ReloadOutcome] = Future()
        with self._lock:
            self._forced.append(future)
        self._wake.set()
        return future

    def check(self, *, force: bool = False) -> ReloadOutcome:
        """One poll: read the alias, and load + swap if it moved (or ``force``)."""
        serving = self.service.deployment.version
        try:
            target = self._read_alias()
        except Exception as exc:  # the registry is down: keep serving, say so
            return self._report(ReloadOutcome("failed", serving, None, _describe(exc)))
        if target is None or target == serving:
            self._failed = None if target == serving else self._failed
            return ReloadOutcome("unchanged", serving, target)
        if target == self._failed and not force:
            return ReloadOutcome("unchanged", serving, target, "this version failed to load")
        try:
            deployment = self._load(target)
        except Exception as exc:  # a broken version must never take the server down
            self._failed = target
            return self._report(ReloadOutcome("failed", serving, target, _describe(exc)))
        self.service.swap(deployment)
        self._failed = None
        return self._report(ReloadOutcome("swapped", target, target))

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
            next_poll = time.monotonic() + self.poll_seconds
        with self._lock:
            for future in self._forced:
                future.cancel()

    def _report(self, outcome: ReloadOutcome) -> ReloadOutcome:
        if outcome.outcome == "failed":
            log.error(
                "reload of version %s failed; still serving %s: %s",
                outcome.target,
                outcome.serving,
                outcome.error,
            )
        else:
            log.info("now serving version %s", outcome.serving)
        if self._on_outcome is not None:
            self._on_outcome(outcome.outcome, outcome)
        return outcome


def _describe(exc: Exception) -> str:
    headline = getattr(exc, "headline", None)
    return str(headline or exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
