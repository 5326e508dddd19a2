"""The router's properties: shares within tolerance, sticky keys across steps, and the
same routing in every process (no salted ``hash``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.rollout.plan import TrafficPlan
from loopml.rollout.router import bucket, place, route

pytestmark = pytest.mark.unit

KEYS = st.text(min_size=0, max_size=40)
IDS = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
SHARES = st.floats(0.0, 1.0, allow_nan=False)


def plan(share: float, rollout_id: str = "r1") -> TrafficPlan:
    return TrafficPlan("1", "2", share=share, rollout_id=rollout_id, strategy="canary")


@settings(max_examples=10, deadline=None)
@given(share=st.floats(0.01, 0.99), rollout_id=IDS, prefix=st.text(max_size=5))
def test_the_challenger_gets_its_share_within_four_sd(
    share: float, rollout_id: str, prefix: str
) -> None:
    n = 20_000
    routed = sum(route(plan(share, rollout_id), f"{prefix}{i}") == "challenger" for i in range(n))
    sd = math.sqrt(share * (1 - share) / n)
    assert abs(routed / n - share) <= 4 * sd


@settings(max_examples=300, deadline=None)
@given(key=KEYS, rollout_id=IDS, shares=st.tuples(SHARES, SHARES))
def test_a_key_keeps_the_challenger_when_the_share_grows(
    key: str, rollout_id: str, shares: tuple[float, float]
) -> None:
    small, large = sorted(shares)
    if route(plan(small, rollout_id), key) == "challenger":
        assert route(plan(large, rollout_id), key) == "challenger"
    if route(plan(large, rollout_id), key) == "champion":
        assert route(plan(small, rollout_id), key) == "champion"


@settings(max_examples=300, deadline=None)
@given(key=KEYS, rollout_id=IDS, share=SHARES)
def test_same_key_and_plan_same_arm_and_the_place_is_in_the_unit_interval(
    key: str, rollout_id: str, share: float
) -> None:
    first = route(plan(share, rollout_id), key)
    assert all(route(plan(share, rollout_id), key) == first for _ in range(3))
    assert 0.0 <= bucket(rollout_id, key) < 1.0
    assert first == ("challenger" if bucket(rollout_id, key) < share or share >= 1 else "champion")


def test_the_place_never_rounds_up_to_one() -> None:
    assert place(b"\xff" * 8) < 1.0
    assert place(bytes(8)) == 0.0


def test_plans_without_a_challenger_share_route_to_the_champion() -> None:
    keys = [f"k{i}" for i in range(500)]
    assert {route(TrafficPlan("1"), k) for k in keys} == {"champion"}
    assert {route(plan(0.0), k) for k in keys} == {"champion"}
    shadow = TrafficPlan("1", "2", share=0.0, shadow=True, rollout_id="r1")
    assert {route(shadow, k) for k in keys} == {"champion"}
    assert {route(plan(1.0), k) for k in keys} == {"challenger"}


def test_a_new_rollout_reshuffles_the_keys() -> None:
    keys = [f"user-{i}" for i in range(2000)]
    first = {k for k in keys if route(plan(0.5, "r1"), k) == "challenger"}
    second = {k for k in keys if route(plan(0.5, "r2"), k) == "challenger"}
    overlap = len(first & second) / len(first)
    assert 0.4 < overlap < 0.6  # independent halves overlap by about half


def test_routing_is_identical_in_another_process() -> None:
    keys = [f"user-{i}" for i in range(300)] + ["", "é", "\u4e2d\u6587", "\ud800x", "a" * 500]
    ids = ["r1", "rollout-2026-12-06T20:00:00Z", "x" * 80]
    script = (
        "import json, sys\n"
        "from loopml.rollout.router import bucket\n"
        "keys, ids = json.load(sys.stdin)\n"
        "print(json.dumps([[bucket(r, k).hex() for k in keys] for r in ids]))\n"
    )
    payload = json.dumps([keys, ids])
    out = subprocess.run(
        [sys.executable, "-c", script], input=payload, capture_output=True, text=True,
        check=True, env={"PYTHONHASHSEED": "12345", "PYTHONPATH": ":".join(sys.path)},
    )  # fmt: skip
    theirs = json.loads(out.stdout)
    ours = [[bucket(r, k).hex() for k in keys] for r in ids]
    assert theirs == ours
