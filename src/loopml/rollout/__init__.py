"""Rollout: a challenger earns its traffic step by step, judged on model quality.

Pure modules: :mod:`~loopml.rollout.plan` (stages, the traffic plan, the persisted state),
:mod:`~loopml.rollout.router` (``route(plan, key) -> arm``), :mod:`~loopml.rollout.guards`
and :mod:`~loopml.rollout.decide` (``decide(stats, policy, state) -> Decision``),
:mod:`~loopml.rollout.sequential` (the always-valid test on labels). Adapters:
:mod:`~loopml.rollout.state` (the loop-state database every replica reads),
:mod:`~loopml.rollout.stats` (the evidence, from the ledger and the servers' counters) and
:mod:`~loopml.rollout.controller` (the only code that moves an alias).
"""
