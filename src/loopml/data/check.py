"""A table checked against the project's contract: read, validate, refuse what breaks it.

``loopml validate`` reports; ``loopml train`` and every retraining refuse a table with
violations before any work starts.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from loopml.config import ProjectConfig
from loopml.data.contract import Contract
from loopml.data.infer import check_trainable
from loopml.data.sources import mask_url, read_source, read_table
from loopml.data.validate import ValidationReport, validate_table
from loopml.errors import ContractError

__all__ = ["check_table", "load_checked_table", "source_label"]


def source_label(project: ProjectConfig) -> str:
    """How to name the project's training table in messages."""
    source = project.data.source
    return source.path or f"the query on {mask_url(source.url or '')}"


def check_table(
    project: ProjectConfig, path: Path | None = None
) -> tuple[pd.DataFrame, Contract, ValidationReport]:
    """Read ``path`` (default: the project's own source, file or SQL) and validate it
    against the project's contract."""
    contract = Contract.load(project.resolve(project.data.contract))
    if path is None:
        frame, label = read_source(project.data.source, project.root), source_label(project)
    else:
        frame, label = read_table(path), str(path)
    return frame, contract, validate_table(frame, contract, source=label)


def load_checked_table(project: ProjectConfig) -> tuple[pd.DataFrame, Contract, ValidationReport]:
    """Read the training table and check it against its contract; raise on violations."""
    frame, contract, report = check_table(project)
    if not report.ok:
        errors = [v for v in report.violations if v.severity == "error"]
        raise ContractError(
            f"{report.source} breaks its data contract ({len(errors)} violation(s))",
            detail="\n".join(v.message for v in errors[:10]),
            fix="run 'loopml validate' for the full report; fix the data, or re-infer the "
            "contract with 'loopml contract update' if the change is intended",
        )
    check_trainable(frame, contract)
    return frame, contract, report
