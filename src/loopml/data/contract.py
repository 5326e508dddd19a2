"""The data contract: what a table must look like, inferred once from the training table.

A :class:`Contract` holds, per column, its type, nullability and null rate, its range
(numeric), its categories and their frequencies (string / boolean), and whether it is
unique; plus which column is the target, the entity key and the time column. It is plain
data, saved as YAML next to the project file and logged with every training run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loopml.config import Task
from loopml.errors import ConfigError
from loopml.files import write_text_atomic

ColumnType = Literal["integer", "float", "boolean", "string", "datetime"]
Role = Literal["feature", "target", "key", "time", "dropped"]
NUMERIC_TYPES: frozenset[str] = frozenset({"integer", "float"})
CATEGORICAL_TYPES: frozenset[str] = frozenset({"string", "boolean"})


class ColumnSpec(BaseModel):
    """What one column held in the training table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: ColumnType
    role: Role = "feature"
    nullable: bool
    null_rate: float = Field(ge=0.0, le=1.0)
    min: float | None = None
    max: float | None = None
    categories: dict[str, float] | None = Field(
        None, description="category -> frequency among non-null rows (string / boolean)"
    )
    n_unique: int = Field(ge=0)
    unique: bool = False

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES

    @property
    def is_categorical(self) -> bool:
        return self.type in CATEGORICAL_TYPES


class Contract(BaseModel):
    """The whole table's contract. Column order is the training table's order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    rows: int = Field(ge=0, description="rows in the table the contract was inferred from")
    target: str
    task: Task
    entity_key: str | None = None
    time_column: str | None = None
    positive_class: str | None = Field(
        None, description="binary only: the class metrics treat as positive (default: the last)"
    )
    columns: tuple[ColumnSpec, ...]

    @model_validator(mode="after")
    def _positive_is_a_class(self) -> Contract:
        if self.positive_class is None:
            return self
        known = sorted(self.target_spec.categories or {})
        if self.task != "binary" or self.positive_class not in known:
            raise ValueError(
                f"positive_class {self.positive_class!r} must be one of the binary target's "
                f"classes {known}"
            )
        return self

    def column(self, name: str) -> ColumnSpec:
        for spec in self.columns:
            if spec.name == name:
                return spec
        known = ", ".join(spec.name for spec in self.columns)
        raise KeyError(f"no column {name!r} in the contract (columns: {known})")

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.columns]

    @property
    def features(self) -> list[ColumnSpec]:
        """Columns the model sees. Datetime columns are not model inputs (yet): a raw
        timestamp does not generalise to the future; derive hour / weekday columns instead."""
        return [
            s for s in self.columns if s.role == "feature" and (s.is_numeric or s.is_categorical)
        ]

    @property
    def numeric_features(self) -> list[str]:
        return [spec.name for spec in self.features if spec.is_numeric]

    @property
    def categorical_features(self) -> list[str]:
        return [spec.name for spec in self.features if spec.is_categorical]

    @property
    def target_spec(self) -> ColumnSpec:
        return self.column(self.target)

    @property
    def classes(self) -> list[str]:
        """Target classes for classification: sorted, except that a binary task's positive
        class comes last (index 1 is what every binary metric calls positive)."""
        ordered = sorted(self.target_spec.categories or {})
        if self.positive_class in ordered:
            ordered.remove(self.positive_class)
            ordered.append(self.positive_class)
        return ordered

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def save(self, path: Path) -> None:
        """Write atomically: a crash never leaves half a contract behind."""
        write_text_atomic(path, self.to_yaml())

    @classmethod
    def load(cls, path: Path) -> Contract:
        if not path.is_file():
            raise ConfigError(
                f"no data contract at {path}",
                fix="run 'loopml init' to infer one, or 'loopml contract update' to refresh it",
            )
        try:
            return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(
                f"{path} is not a valid data contract",
                detail=str(exc),
                fix="regenerate it with 'loopml contract update' or fix the key shown",
            ) from exc


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
