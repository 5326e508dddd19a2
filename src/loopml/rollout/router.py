"""The router, pure: which arm answers a request with a given key.

A key's place is ``bucket(rollout_id, key)``, a hash uniform in [0, 1); the challenger
answers keys whose place is below its share. The same key lands in the same place for the
whole rollout — in every replica, in every process (blake2b, not Python's salted
``hash``) — so a key keeps its arm for a whole step and, because shares only grow, keeps
the challenger once it has it. A new rollout id reshuffles the places.
"""

from __future__ import annotations

import hashlib

from loopml.rollout.plan import Arm, TrafficPlan

__all__ = ["bucket", "place", "route"]

_BITS = 53
"""A double holds 53 bits exactly: the place takes the digest's top 53 bits, so it is
always below 1.0 (all 64 bits over 2**64 rounds the highest digests up to 1.0)."""


def bucket(rollout_id: str, key: str) -> float:
    """The key's place in [0, 1) for this rollout.

    >>> 0.0 <= bucket("r1", "user-7") < 1.0, bucket("r1", "user-7") == bucket("r1", "user-7")
    (True, True)
    """
    digest = hashlib.blake2b(
        key.encode("utf-8", "surrogatepass"), digest_size=8, key=rollout_id.encode()[:64]
    ).digest()
    return place(digest)


def place(digest: bytes) -> float:
    """An 8-byte digest's place in [0, 1).

    >>> place(bytes(8)), place(b"\\xff" * 8) < 1.0
    (0.0, True)
    """
    return (int.from_bytes(digest, "big") >> (64 - _BITS)) / float(2**_BITS)


def route(plan: TrafficPlan, key: str) -> Arm:
    """``challenger`` for a key inside the challenger's share, else ``champion``.

    >>> from loopml.rollout.plan import TrafficPlan
    >>> route(TrafficPlan("1"), "k"), route(TrafficPlan("1", "2", share=1.0, rollout_id="r"), "k")
    ('champion', 'challenger')
    """
    if not plan.routes_challenger:
        return "champion"
    if plan.share >= 1.0:
        return "challenger"
    return "challenger" if bucket(plan.rollout_id, key) < plan.share else "champion"
