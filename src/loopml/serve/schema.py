"""What a request must hold: the served model's input rules, computed once per version.

:class:`InputSchema` is the part of a data contract that validation
(:mod:`loopml.serve.validation`) reads on every request: one :class:`FeatureRule` per model
input, in contract order, plus the names that are accepted and ignored. Its readers
(:mod:`loopml.serve.values`, :mod:`loopml.serve.columns`) hand back a :class:`Read`, with
each failed cell marked by a :class:`CellCode`: a failure is a finding of
:mod:`loopml.data.severity` that ``loopml validate`` calls an error, and its ``error`` is
that finding's 4xx code.

>>> from loopml.data.contract import ColumnSpec, Contract
>>> c = Contract(rows=2, target="y", task="regression", entity_key="id", columns=(
...     ColumnSpec(name="id", type="string", role="key", nullable=False, null_rate=0.0,
...                n_unique=2),
...     ColumnSpec(name="a", type="integer", nullable=True, null_rate=0.5, n_unique=1),
...     ColumnSpec(name="y", type="float", role="target", nullable=False,
...                null_rate=0.0, n_unique=2)))
>>> schema = InputSchema.from_contract(c)
>>> [(rule.name, rule.kind, rule.type) for rule in schema.features], sorted(schema.known)
([('a', 'numeric', 'integer')], ['a', 'id', 'y'])
>>> CellCode.WRONG_TYPE.kind, CellCode.WRONG_TYPE.error, int(CellCode.NON_FINITE)
('type_mismatch', 'wrong_type', 2)
>>> schema.features[0].null_code, CellCode.null(nullable=False)
(<CellCode.NULL_OK: -1>, <CellCode.NULL_UNEXPECTED: -2>)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

import numpy as np
import pandas as pd

from loopml.data.contract import ColumnSpec, Contract
from loopml.data.severity import RULES

Kind = Literal["numeric", "string", "boolean", "key"]
Array = np.ndarray[Any, Any]


class CellCode(IntEnum):
    """What a reader found in one cell; the codes above ``OK`` are failures (errors of
    :mod:`loopml.data.severity`), those below are served. An ``IntEnum``, so NumPy code
    arrays hold them."""

    NULL_UNEXPECTED = -2
    """A null in a feature that had none in training: served (imputed) and counted."""
    NULL_OK = -1
    """A null where null is allowed: fine, but not a category (not unseen)."""
    OK = 0
    WRONG_TYPE = 1
    NON_FINITE = 2
    MISSING_FIELD = 3

    @property
    def kind(self) -> str:
        """The finding of :mod:`loopml.data.severity` (``type_mismatch`` ...)."""
        return _KINDS[self]

    @property
    def error(self) -> str:
        """The ``error`` of the InputError of a failure (``wrong_type`` ...)."""
        code = RULES[self.kind].code
        assert code is not None, f"{self.name} is served, not refused"
        return code

    @classmethod
    def null(cls, *, nullable: bool) -> CellCode:
        """The code of a null in a field that is (or is not) nullable."""
        return cls.NULL_OK if nullable else cls.NULL_UNEXPECTED


_KINDS = {
    CellCode.NULL_UNEXPECTED: "unexpected_null",
    CellCode.WRONG_TYPE: "type_mismatch",
    CellCode.NON_FINITE: "non_finite",
    CellCode.MISSING_FIELD: "missing_column",
}


@dataclass(frozen=True, slots=True)
class FeatureRule:
    """What one input field must hold. ``categories`` is the complete category set when
    the contract kept every category (unseen values are then counted), else None."""

    name: str
    kind: Kind
    type: str
    nullable: bool
    categories: frozenset[str] | None = None
    numeric: bool = field(init=False)
    integer: bool = field(init=False)
    null_code: CellCode = field(init=False)
    """The code of a null in this field."""
    longest: int = field(init=False)
    """The length of the longest category the contract knows (0: none known)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "longest", max(map(len, self.categories or ()), default=0))
        object.__setattr__(self, "numeric", self.kind == "numeric")
        object.__setattr__(self, "integer", self.type == "integer")
        object.__setattr__(self, "null_code", CellCode.null(nullable=self.nullable))


@dataclass(frozen=True)
class InputSchema:
    """Everything :func:`~loopml.serve.validation.validate` needs from a contract.
    ``known``: the fields that are not unknown (the features, the key, the target and the
    other contract columns); the others are ignored and listed."""

    features: tuple[FeatureRule, ...]
    target: str
    entity_key: str | None
    ignored: frozenset[str]
    names: frozenset[str] = frozenset()
    known: frozenset[str] = frozenset()
    slots: tuple[int, ...] = ()
    """Each feature's row in its block (numeric or text) on the per-value path."""
    numeric: tuple[tuple[int, FeatureRule], ...] = ()
    """The numeric features with their position in contract order."""
    texts: tuple[tuple[int, FeatureRule], ...] = ()
    """The string and boolean features with their position in contract order."""
    stored_texts: tuple[FeatureRule, ...] = ()
    """The fields whose text is served and stored as sent: the string features and the
    entity key (their length is limited)."""

    @classmethod
    def from_contract(cls, contract: Contract) -> InputSchema:
        """The rules of a contract's features, in contract order."""
        rules = tuple(_rule(spec) for spec in contract.features)
        names = frozenset(rule.name for rule in rules)
        key = contract.entity_key
        ignored = frozenset(
            s.name
            for s in contract.columns
            if s.name not in names and s.role != "target" and s.name != key
        )
        numeric = [rule.kind == "numeric" for rule in rules]
        slots = tuple(
            sum(1 for other in numeric[:i] if other == kind) for i, kind in enumerate(numeric)
        )
        known = names | ignored | {contract.target} | ({key} if key else frozenset())
        return cls(
            rules,
            contract.target,
            key,
            ignored,
            names,
            frozenset(known),
            slots,
            tuple((i, rule) for i, rule in enumerate(rules) if rule.numeric),
            tuple((i, rule) for i, rule in enumerate(rules) if not rule.numeric),
            tuple(rule for rule in rules if rule.kind == "string")
            + ((FeatureRule(key, "key", "key", True),) if key else ()),
        )

    @property
    def key_rule(self) -> FeatureRule:
        return FeatureRule(self.entity_key or "", "key", "key", True)


def _rule(spec: ColumnSpec) -> FeatureRule:
    kind: Kind = "numeric" if spec.is_numeric else "string"
    if spec.type == "boolean":
        kind = "boolean"
    complete = bool(spec.categories) and len(spec.categories or {}) >= spec.n_unique
    categories = frozenset(spec.categories or {}) if complete else None
    return FeatureRule(spec.name, kind, spec.type, spec.nullable, categories)


@dataclass
class Bad:
    """Failed cells: positions, contract columns (entity key last) and error codes."""

    rows: Array
    columns: Array
    codes: Array


@dataclass
class Read:
    """What a reader found: model-ready arrays of every row, the keys, the failed cells
    and, per feature, the rows holding a category the contract never saw and the rows
    holding a null where training had none."""

    features: dict[str, Array]
    keys: list[str | None] | pd.Series | None
    bad: list[Bad]
    unseen: dict[str, Sequence[int] | Array]
    nulls: dict[str, Sequence[int] | Array] = field(default_factory=dict)
