"""``loopml init``: inspect a real table and write the project file and its data contract.

It guesses what it can (task, entity key, time column) and says what it guessed, so the
user can correct the project file rather than discover the guess later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.config import PROJECT_FILE, STATE_DIR, ProjectConfig, parse_project
from loopml.data.contract import Contract
from loopml.data.infer import (
    check_trainable,
    guess_entity_key,
    guess_identifiers,
    guess_task,
    guess_time_column,
)
from loopml.data.sources import read_table
from loopml.errors import ConfigError, ContractError

HEADER = """\
# loopml project file. Every command reads it; see 'loopml --help'.
# Override any key from the environment: LOOPML_SECTION__KEY=value,
# e.g. LOOPML_TRAIN__TUNING__TRIALS=5 or LOOPML_TRACKING__URI=http://mlflow:5000
"""


@dataclass(frozen=True)
class InitResult:
    project_file: Path
    contract_file: Path
    project: ProjectConfig
    contract: Contract
    guesses: list[str] = field(default_factory=list)


def init_project(
    data: Path,
    target: str,
    *,
    folder: Path,
    task: str | None = None,
    entity_key: str | None = None,
    time_column: str | None = None,
    name: str | None = None,
    force: bool = False,
) -> InitResult:
    """Infer a contract from ``data`` and write ``loopml.yaml`` + the contract in ``folder``."""
    from loopml.data.infer import infer_contract

    project_file = folder / PROJECT_FILE
    if project_file.exists() and not force:
        raise ConfigError(
            f"{project_file} already exists",
            fix="pass --force to overwrite it (and its contract), or edit it by hand",
        )
    frame = read_table(data)
    if target not in frame.columns:
        raise ContractError(
            f"target column {target!r} is not in {data}",
            detail=f"columns: {', '.join(map(str, frame.columns))}",
            fix="pass --target with one of the columns above",
        )
    guesses: list[str] = []
    if task is None:
        task, why = guess_task(frame[target])
        guesses.append(f"task: {task} ({why}); override with --task")
    if entity_key is None:
        entity_key = guess_entity_key(frame, exclude=[target])
        if entity_key:
            guesses.append(f"entity key: {entity_key} (unique, id-like); override with --key")
    if time_column is None:
        time_column = guess_time_column(frame, exclude=[target, entity_key or ""])
        if time_column:
            guesses.append(f"time column: {time_column}; override with --time")
    drop = guess_identifiers(frame, exclude=[target, entity_key or "", time_column or ""])
    if drop:
        guesses.append(
            f"not features: {', '.join(drop)} (identifiers a model would only memorise); "
            "edit data.drop in loopml.yaml to use them"
        )
    project = parse_project(
        _project_dict(data, folder, target, task, entity_key, time_column, name, drop),
        root=folder.resolve(),
        source="the arguments of 'loopml init'",
    )
    contract = infer_contract(
        frame,
        target=target,
        task=task,
        entity_key=entity_key,
        time_column=time_column,
        drop=drop,
    )
    check_trainable(frame, contract)
    contract_file = project.resolve(project.data.contract)
    contract.save(contract_file)
    _write_atomic(project_file, HEADER + project.to_yaml())
    (folder / STATE_DIR).mkdir(exist_ok=True)
    return InitResult(project_file, contract_file, project, contract, guesses)


def _project_dict(
    data: Path,
    folder: Path,
    target: str,
    task: str,
    entity_key: str | None,
    time_column: str | None,
    name: str | None,
    drop: list[str],
) -> dict[str, Any]:
    source = os.path.relpath(data.resolve(), folder.resolve())
    return {
        "name": name or _name_from(data),
        "data": {
            "source": {"path": source},
            "target": target,
            "task": task,
            "entity_key": entity_key,
            "time_column": time_column,
            "drop": drop,
        },
        # With a time column the holdout is the latest rows: what production will look like.
        "split": {"strategy": "time" if time_column else "random"},
    }


def _name_from(data: Path) -> str:
    stem = data.name.split(".")[0]
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in stem).strip("-.")
    return cleaned or "model"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def update_contract(project: ProjectConfig) -> tuple[Contract | None, Contract]:
    """Re-infer the contract from the project's table (after editing ``data.drop``, or when
    a change in the data is intended); returns the old contract (if any) and the new one."""
    from loopml.data.infer import infer_contract
    from loopml.data.sources import read_source

    path = project.resolve(project.data.contract)
    old = Contract.load(path) if path.is_file() else None
    frame = read_source(project.data.source, project.root)
    new = infer_contract(
        frame,
        target=project.data.target,
        task=project.data.task,
        entity_key=project.data.entity_key,
        time_column=project.data.time_column,
        drop=project.data.drop,
    )
    check_trainable(frame, new)
    new.save(path)
    return old, new


def contract_changes(old: Contract | None, new: Contract) -> list[str]:
    """Human lines describing what changed between two contracts' columns."""
    if old is None:
        return [f"new contract with {len(new.columns)} columns"]
    before = {c.name: c for c in old.columns}
    after = {c.name: c for c in new.columns}
    lines = [f"added column {n}" for n in after if n not in before]
    lines += [f"removed column {n}" for n in before if n not in after]
    for name in after.keys() & before.keys():
        a, b = before[name], after[name]
        if (a.type, a.role) != (b.type, b.role):
            lines.append(f"{name}: {a.type}/{a.role} -> {b.type}/{b.role}")
    return lines
