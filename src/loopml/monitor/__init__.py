"""Monitoring: drift, realized and estimated performance, and alerts (DESIGN.md decision 7).

A model version's :class:`~loopml.monitor.profile.ReferenceProfile` is stored with it at
training time; windows of the prediction ledger are compared with it.
"""
