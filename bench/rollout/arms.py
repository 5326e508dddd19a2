"""The in-process bad challengers: the healthy version's runtime, wrapped.

- :class:`FlakyRuntime` raises on a seeded 5 % of its ``predict`` calls (a model that
  fails inside, as a broken native library or an out-of-memory would);
- :class:`SlowRuntime` spins for twice its own measured ``predict`` time after each call,
  so a call takes 3x as long (a spin, not ``time.sleep``: sleeps under a millisecond
  overshoot by tens of microseconds, which would make it more than 3x).

Both delegate every other attribute to the wrapped runtime, so a ``Deployment`` over them
is built, validated and recorded exactly as over the real one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np


class InjectedFailure(RuntimeError):
    """The bench's injected model error (5 % of the flaky challenger's calls)."""


class _Wrapped:
    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FlakyRuntime(_Wrapped):
    """Raises :class:`InjectedFailure` on a seeded ``rate`` of predict calls."""

    def __init__(self, inner: Any, rate: float, seed: int) -> None:
        super().__init__(inner)
        self.rate = rate
        self.failures = 0
        self._rng = np.random.default_rng(seed)

    def predict(self, features: Mapping[str, Any]) -> Any:
        self.calls += 1
        if self._rng.random() < self.rate:
            self.failures += 1
            raise InjectedFailure("bench_rollout: injected model failure (5% of calls)")
        return self._inner.predict(features)


class SlowRuntime(_Wrapped):
    """Each predict call takes ``factor`` x its own time (spins for the rest)."""

    def __init__(self, inner: Any, factor: float = 3.0) -> None:
        super().__init__(inner)
        self.extra = factor - 1.0
        self.inner_s = 0.0
        self.total_s = 0.0

    def predict(self, features: Mapping[str, Any]) -> Any:
        self.calls += 1
        started = time.perf_counter()
        out = self._inner.predict(features)
        took = time.perf_counter() - started
        until = started + took * (1.0 + self.extra)
        while time.perf_counter() < until:
            pass
        self.inner_s += took
        self.total_s += time.perf_counter() - started
        return out
