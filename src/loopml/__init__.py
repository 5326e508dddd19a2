"""loopml: the closed loop of production machine learning on tabular data.

Everything the CLI does is a function here::

    import loopml
    project = loopml.load_project("loopml.yaml")
    result = loopml.train_project(project)
    print(result.chosen, result.gate.reason, result.version)
    run = loopml.run_monitor(project)        # what `loopml monitor run` does
    print(run.events, run.report_html)

Names are imported lazily, so ``import loopml`` stays cheap (the CLI starts fast).
"""

from __future__ import annotations

import importlib
from typing import Any

from loopml.version import __version__ as __version__

_EXPORTS: dict[str, str] = {
    "ProjectConfig": "loopml.config",
    "load_project": "loopml.config",
    "init_project": "loopml.pipeline.project",
    "update_contract": "loopml.pipeline.project",
    "Contract": "loopml.data.contract",
    "read_table": "loopml.data.sources",
    "write_table": "loopml.data.sources",
    "infer_contract": "loopml.data.infer",
    "validate_table": "loopml.data.validate",
    "ValidationReport": "loopml.data.validate",
    "generate_feed": "loopml.data.feed",
    "train_project": "loopml.pipeline.train",
    "TrainResult": "loopml.pipeline.train",
    "promote": "loopml.registry.promotion",
    "rollback": "loopml.registry.promotion",
    "ModelRegistry": "loopml.registry.store",
    "open_registry": "loopml.registry.store",
    "AuditLog": "loopml.registry.audit",
    "run_monitor": "loopml.monitor.run",
    "MonitorRun": "loopml.monitor.run",
    "ReferenceProfile": "loopml.monitor.profile",
    "column_drift": "loopml.monitor.drift",
    "rebuild_profile": "loopml.pipeline.backfill",
    "MonitorStore": "loopml.monitor.store",
    "LoopmlError": "loopml.errors",
    "ConfigError": "loopml.errors",
    "DataError": "loopml.errors",
    "ContractError": "loopml.errors",
    "GateFailed": "loopml.errors",
}

__all__ = [
    "AuditLog",
    "ConfigError",
    "Contract",
    "ContractError",
    "DataError",
    "GateFailed",
    "LoopmlError",
    "ModelRegistry",
    "MonitorRun",
    "MonitorStore",
    "ProjectConfig",
    "ReferenceProfile",
    "TrainResult",
    "ValidationReport",
    "column_drift",
    "generate_feed",
    "infer_contract",
    "init_project",
    "load_project",
    "open_registry",
    "promote",
    "read_table",
    "rebuild_profile",
    "rollback",
    "run_monitor",
    "train_project",
    "update_contract",
    "validate_table",
    "write_table",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'loopml' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
