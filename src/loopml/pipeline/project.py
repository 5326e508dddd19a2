"""``loopml init`` and ``loopml contract update``: the files a project starts from.

``init`` inspects a real table and writes the project file, its data contract and the
admin token. It guesses what it can (task, entity key, time column) and says what it
guessed, so the user can correct the project file rather than discover the guess later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from loopml.config import STATE_DIR, AlertRule, ProjectConfig, default_alerts, parse_project
from loopml.data.cells import category_keys
from loopml.data.contract import Contract
from loopml.data.infer import (
    check_trainable,
    guess_entity_key,
    guess_identifiers,
    guess_task,
    guess_time_column,
    infer_contract,
)
from loopml.data.sources import read_source, read_table
from loopml.errors import ConfigError, ContractError
from loopml.files import write_text_atomic
from loopml.tokens import ensure_token

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


@dataclass(frozen=True)
class InitOptions:
    """What the user said on ``loopml init``; None means "guess it"."""

    task: str | None = None
    entity_key: str | None = None
    time_column: str | None = None
    name: str | None = None
    drop: tuple[str, ...] = ()
    positive_class: str | None = None
    force: bool = False


def init_project(
    data: Path, target: str, *, project_file: Path, options: InitOptions | None = None
) -> InitResult:
    """Infer a contract from ``data`` and write ``project_file`` and the contract beside it."""
    opts = options or InitOptions()
    project_file = project_file.resolve()
    if project_file.exists() and not opts.force:
        raise ConfigError(
            f"{project_file} already exists",
            fix="pass --force to overwrite it (and its contract), or edit it by hand",
        )
    frame = read_table(data)
    _check_columns(frame, data, target, opts)
    settings, guesses = _settings(frame, target, opts)
    folder = project_file.resolve().parent
    project = parse_project(
        _project_dict(data, folder, target, settings, opts.name),
        root=folder,
        source="the options of 'loopml init'",
    )
    contract = infer_contract(frame, target=target, **settings)
    check_trainable(frame, contract)
    contract_file = project.resolve(project.data.contract)
    contract.save(contract_file)
    write_text_atomic(project_file, HEADER + with_default_alerts(project.to_yaml()))
    (folder / STATE_DIR).mkdir(exist_ok=True)
    # The admin token guards the server's mutating routes, the feedback token the labels
    # (files of mode 0600; the admin token is accepted for /feedback too).
    ensure_token(project.resolve(project.serve.token_file))
    ensure_token(project.resolve(project.serve.feedback_token_file), "feedback")
    return InitResult(project_file, contract_file, project, contract, guesses)


def with_default_alerts(text: str) -> str:
    """A project file's text with the default alert rules written, commented, under
    ``monitor:``: a user sees the rules that judge the model, and uncommenting the block
    gives exactly :func:`~loopml.config.default_alerts` (it is generated from them).

    >>> print(with_default_alerts("monitor:\\n  window: '5000'\\n"), end="")
    ... # doctest: +ELLIPSIS
    monitor:
      # The default alert rules; uncomment 'alerts:' and the rules below it to change them.
      ...
      # alerts:
      # - {name: dataset-drift, metric: dataset_drift, above: 0.5, severity: critical}
    ...
      window: '5000'
    """
    marker, padded = "\nmonitor:\n", "\n" + text
    if marker not in padded:
        raise ValueError("the project file has no 'monitor:' section to write the alerts in")
    rules = [rule.model_dump(mode="json", exclude_defaults=True) for rule in default_alerts()]
    listed = yaml.safe_dump({"alerts": rules}, sort_keys=False, default_flow_style=None, width=1000)
    lines = [*_alert_notes(), *listed.splitlines()]
    block = "".join(f"  # {line}\n" for line in lines)
    return padded.replace(marker, marker + block, 1)[1:]


def _alert_notes() -> list[str]:
    fields = AlertRule.model_fields
    sinks = ", ".join(fields["sinks"].default)
    return [
        "The default alert rules; uncomment 'alerts:' and the rules below it to change them.",
        "A rule also takes 'below' instead of 'above', min_rows (default: monitor.min_rows,",
        "the smallest window evaluated at all; a rule can only ask for more, counted in",
        "labelled rows for realized* and performance_cusum), raise_after "
        f"({fields['raise_after'].default}), clear_after ({fields['clear_after'].default}),",
        f"severity ({fields['severity'].default}) and sinks ({sinks}).",
    ]


def _check_columns(frame: pd.DataFrame, data: Path, target: str, opts: InitOptions) -> None:
    named = [("--target", target), ("--key", opts.entity_key), ("--time", opts.time_column)]
    named += [("--drop", column) for column in opts.drop]
    for flag, column in named:
        if column is not None and column not in frame.columns:
            raise ContractError(
                f"{flag} column {column!r} is not in {data}",
                detail=f"columns: {', '.join(map(str, frame.columns))}",
                fix=f"pass {flag} with one of the columns above",
            )
    key = opts.entity_key
    if key is not None and (frame[key].isna().any() or frame[key].duplicated().any()):
        dupes = int(frame[key].duplicated().sum())
        raise ContractError(
            f"--key column {key!r} is not a key: {dupes:,} duplicate and "
            f"{int(frame[key].isna().sum()):,} null value(s)",
            fix="pass a column whose values are unique and never null, or leave --key out",
        )


def _settings(
    frame: pd.DataFrame, target: str, opts: InitOptions
) -> tuple[dict[str, Any], list[str]]:
    """task, entity_key, time_column and drop: as given, or guessed (and said so)."""
    guesses: list[str] = []
    task = opts.task
    if task is None:
        task, why = guess_task(frame[target])
        guesses.append(f"task: {task} ({why}); override with --task")
    key = opts.entity_key
    if key is None:
        key = guess_entity_key(frame, exclude=[target, *opts.drop])
        if key:
            guesses.append(f"entity key: {key} (unique, id-like); override with --key")
    time_column = opts.time_column
    if time_column is None:
        time_column = guess_time_column(frame, exclude=[target, key or "", *opts.drop])
        if time_column:
            guesses.append(f"time column: {time_column}; override with --time")
    drop = list(opts.drop)
    if not drop:
        drop = guess_identifiers(frame, exclude=[target, key or "", time_column or ""])
        if drop:
            guesses.append(
                f"not features: {', '.join(drop)} (identifiers a model would only memorise); "
                "use --drop to choose, or edit data.drop and run 'loopml contract update'"
            )
    settings = {"task": task, "entity_key": key, "time_column": time_column, "drop": drop}
    if task == "binary":
        settings["positive_class"] = opts.positive_class
        if opts.positive_class is None:
            classes = sorted(category_keys(frame[target]).unique())
            guesses.append(
                f"positive class: {classes[-1]} (the last of {', '.join(classes)}); "
                "override with --positive"
            )
    return settings, guesses


def _project_dict(
    data: Path, folder: Path, target: str, settings: dict[str, Any], name: str | None
) -> dict[str, Any]:
    source = os.path.relpath(data.resolve(), folder)
    time_column = settings["time_column"]
    return {
        "name": name or _name_from(data),
        "data": {"source": {"path": source}, "target": target, **settings},
        # With a time column the holdout is the latest rows: what production will look like.
        "split": {"strategy": "time" if time_column else "random"},
    }


def _name_from(data: Path) -> str:
    stem = data.name.split(".")[0]
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in stem).strip("-.")
    return cleaned or "model"


def update_contract(project: ProjectConfig) -> tuple[Contract | None, Contract]:
    """Re-infer the contract from the project's table (after editing ``data.drop``, or when
    a change in the data is intended); returns the old contract (if any) and the new one."""
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
        positive_class=project.data.positive_class,
    )
    check_trainable(frame, new)
    new.save(path)
    return old, new
