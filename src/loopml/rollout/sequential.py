"""The always-valid comparison of two arms on labels (being written; see the issue)."""

from __future__ import annotations

import numpy as np

from loopml.rollout.evidence import SequentialResult

__all__ = ["compare_losses"]


def compare_losses(
    champion: np.ndarray,
    challenger: np.ndarray,
    *,
    metric: str,
    alpha: float,
    limit: float,
    paired: bool = False,
) -> SequentialResult:
    """Compare per-row losses (lower is better) of the two arms, valid at every look."""
    raise NotImplementedError
