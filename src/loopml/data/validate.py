"""Validating a table against its data contract: a typed report of every violation.

Each check is vectorised over whole columns; what a value is (null, a number, a whole
number, a boolean, a category key) follows the cell rules of :mod:`loopml.data.cells`,
the same rules the server validates requests by. The kinds of finding, how severe each
is and what serving does with it are the table of :mod:`loopml.data.severity`; the
messages use its words, so a violation here and a refusal by the server read alike.

Null checks on the target only ever warn (training drops unlabelled rows). Dropped
columns are only checked for presence. ``rows`` are 0-based data-row positions (the CSV
header is not counted) and hold the first five; ``count`` is the number of rows affected
(every row, for a missing or extra column). ``duplicate_rows`` compares the model's
features and the target (not the key, the time or dropped columns) and lists its first
pairs in ``pairs``: ``(7, 2)`` means row 7 repeats row 2.

>>> import pandas as pd
>>> from loopml.data.infer import infer_contract
>>> train = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
>>> contract = infer_contract(train, target="y", task="binary", entity_key=None, time_column=None)
>>> report = validate_table(pd.DataFrame({"x": [1.0, 9.0]}), contract, source="new.csv")
>>> [(v.kind, v.severity, v.rows) for v in report.violations]
[('missing_column', 'warning', ()), ('out_of_range', 'warning', (1,))]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopml.data import severity as words
from loopml.data.cells import boolean_keys, category_keys, fractional, read_numbers
from loopml.data.contract import ColumnSpec, Contract
from loopml.data.duplicates import duplicate_rows
from loopml.data.infer import parse_datetime
from loopml.data.severity import UPDATE, Severity, severity_of
from loopml.errors import EXIT_VIOLATIONS, ContractError

__all__ = ["MAX_ROWS_SHOWN", "Severity", "ValidationReport", "Violation", "validate_table"]

MAX_ROWS_SHOWN = 5


@dataclass(frozen=True)
class Violation:
    """One broken rule: what, where, how bad, how many rows, and a sentence with the fix;
    ``pairs`` (``duplicate_rows`` only): the first rows with the earlier row each repeats."""

    kind: str
    column: str | None
    severity: Severity
    count: int
    rows: tuple[int, ...]
    message: str
    pairs: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "rows": list(self.rows),
            "pairs": [list(pair) for pair in self.pairs],
        }


@dataclass(frozen=True)
class ValidationReport:
    """Every violation found in one table; ``ok`` when none of them is an error."""

    source: str
    rows: int
    violations: tuple[Violation, ...]

    @property
    def errors(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.severity == "error")

    @property
    def warnings(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def exit_code(self) -> int:
        """0 when ok, 1 (violations) otherwise, as ``loopml validate`` exits."""
        return 0 if self.ok else EXIT_VIOLATIONS

    @property
    def summary(self) -> str:
        """One line, e.g. ``new.csv: 2 errors, 1 warning in 1,000 rows``."""
        errors, warnings = len(self.errors), len(self.warnings)
        return (
            f"{self.source}: {errors} error{'s' * (errors != 1)}, "
            f"{warnings} warning{'s' * (warnings != 1)} in {self.rows:,} rows"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (``json.dumps`` works on it as is)."""
        return {
            "source": self.source,
            "rows": self.rows,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "row_numbering": "0-based data rows, header not counted",
            "violations": [v.to_dict() for v in self.violations],
        }

    def raise_for_errors(self) -> None:
        """Raise :class:`ContractError` listing the errors, when there are any."""
        if self.ok:
            return
        raise ContractError(
            f"{self.summary}; first: {self.errors[0].message}",
            detail="\n".join(v.message for v in self.errors),
            fix=f"fix the data, or {UPDATE}",
        )


def validate_table(
    df: pd.DataFrame,
    contract: Contract,
    *,
    source: str,
    null_rate_tolerance: float = 0.1,
) -> ValidationReport:
    """Check a table against a contract and report every violation (see module docs)."""
    if len(df) == 0:
        message = f"{source} has no rows; export the table again with its data rows"
        empty = Violation("empty", None, severity_of("empty"), 0, (), message)
        return ValidationReport(source, 0, (empty,))
    # Positions, not labels: row numbers in the report are 0-based positions.
    frame = df.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    found = _presence(frame, contract, source)
    for spec in contract.columns:
        if spec.name in frame.columns and spec.role != "dropped":
            found += _check_column(frame[spec.name], spec, source, null_rate_tolerance)
    found += _duplicate_keys(frame, contract, source)
    found += _duplicate_rows(frame, contract, source)
    return ValidationReport(source, len(frame), tuple(found))


def _show(value: object) -> str:
    """A value as a user wrote it: ``'abc'``, ``2.5``; not ``np.float64(2.5)``."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _rows_text(positions: np.ndarray, count: int) -> str:
    shown = ", ".join(str(int(p)) for p in positions[:MAX_ROWS_SHOWN])
    return f"row{'s' * (count != 1)} {shown}" + (", ..." if count > MAX_ROWS_SHOWN else "")


def _violation(kind: str, spec: ColumnSpec, mask: np.ndarray, message: str) -> Violation:
    positions = np.flatnonzero(mask)
    count = int(positions.size)
    text = f"{message} ({_rows_text(positions, count)})"
    rows = tuple(int(p) for p in positions[:MAX_ROWS_SHOWN])
    return Violation(kind, spec.name, severity_of(kind, spec.role), count, rows, text)


def _whole_column(kind: str, name: str, role: str, rows: int, message: str) -> Violation:
    return Violation(kind, name, severity_of(kind, role), rows, (), message)


def _presence(frame: pd.DataFrame, contract: Contract, source: str) -> list[Violation]:
    found: list[Violation] = []
    rows = len(frame)
    inputs = {spec.name for spec in contract.features}
    for spec in contract.columns:
        if spec.name in frame.columns:
            continue
        if spec.role == "target":
            message = (
                f"label column '{spec.name}' is missing from {source}; fine for scoring, "
                "but evaluation needs it"
            )
        else:
            why = f": {words.missing_input(spec.type)}" if spec.name in inputs else ""
            message = (
                f"column '{spec.name}' ({spec.type} {spec.role}) is missing from "
                f"{source}{why}; add it, or {UPDATE}"
            )
        found.append(_whole_column("missing_column", spec.name, spec.role, rows, message))
    known = set(contract.names)
    for name in frame.columns:
        if name not in known:
            message = f"column '{name}' in {source} {words.EXTRA_COLUMN}; remove it, or {UPDATE}"
            found.append(_whole_column("extra_column", name, "feature", rows, message))
    return found


def _check_column(
    series: pd.Series, spec: ColumnSpec, source: str, tolerance: float
) -> list[Violation]:
    found = _nulls(series, spec, source, tolerance)
    numbers, keys, bad = _read(series, spec)
    if bad.any():
        sample = _sample(series[bad])
        found.append(
            _violation(
                "type_mismatch",
                spec,
                bad,
                f"column '{spec.name}': {words.wrong_type(spec.type)}, got {sample} in "
                f"{int(bad.sum()):,} value(s) of {source}; fix the data, or {UPDATE}",
            )
        )
    if numbers is not None:
        # a numeric classification target has classes: unseen ones are reported below
        found += _numbers(numbers, spec, source, check_range=spec.categories is None)
    complete = spec.categories is not None and len(spec.categories) >= spec.n_unique
    if complete and spec.role != "key":
        found += _unseen(keys, len(series), spec, source)
    return found


def _sample(values: pd.Series) -> str:
    """The first of some values as a user wrote it, with ``e.g.`` when there are more."""
    first = _show(values.iloc[0])
    return first if len(values) == 1 else f"e.g. {first}"


def _read(series: pd.Series, spec: ColumnSpec) -> tuple[np.ndarray | None, pd.Series, np.ndarray]:
    """(numbers for numeric types, category keys of readable values, unreadable mask)."""
    present = series.notna().to_numpy()
    if spec.type == "boolean":
        keys, bad = _as_booleans(series)
        return None, keys, bad
    numbers = None
    if spec.is_numeric:
        numbers, bad = _as_numbers(series, spec)
    elif spec.type == "datetime":
        bad = present & parse_datetime(series).isna().to_numpy()
    else:
        bad = np.zeros(len(series), dtype=bool)  # anything can be read as text
    keys = category_keys(series[present & ~bad]) if spec.categories is not None else series[:0]
    return numbers, keys, bad


def _nulls(series: pd.Series, spec: ColumnSpec, source: str, tolerance: float) -> list[Violation]:
    mask = series.isna().to_numpy()
    count = int(mask.sum())
    if count == 0:
        return []
    rate = count / len(series)
    if rate > spec.null_rate + tolerance:
        return [
            _violation(
                "null_rate",
                spec,
                mask,
                f"column '{spec.name}' is null in {rate:.1%} of {source} ({count:,} rows) against "
                f"{spec.null_rate:.1%} in training (tolerance {tolerance:.0%}); check the export, "
                f"or {UPDATE}",
            )
        ]
    if spec.nullable:
        return []
    if spec.role == "target":
        return []  # unlabelled rows are dropped by training; only a jump is worth a warning
    why = "rows cannot be identified" if spec.role == "key" else words.UNEXPECTED_NULL
    return [
        _violation(
            "unexpected_null",
            spec,
            mask,
            f"column '{spec.name}' has {count:,} null(s) in {source}, but {why}; fill them or "
            f"check the export",
        )
    ]


def _as_numbers(series: pd.Series, spec: ColumnSpec) -> tuple[np.ndarray, np.ndarray]:
    """(values as floats, NaN where null or unreadable; mask of unreadable values)."""
    numbers, bad = read_numbers(series)
    if spec.type == "integer":
        fraction = fractional(numbers)
        bad = bad | fraction
        numbers = np.where(fraction, np.nan, numbers)
    return numbers, bad


def _as_booleans(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """(canonical "True"/"False" keys of the readable values; mask of unreadable values)."""
    present = series.notna()
    keys = boolean_keys(series)
    bad = np.zeros(len(series), dtype=bool)
    bad[np.flatnonzero(present.to_numpy())] = keys.isna().to_numpy()
    return keys.dropna().astype(str), bad


def _numbers(
    numbers: np.ndarray, spec: ColumnSpec, source: str, *, check_range: bool
) -> list[Violation]:
    found: list[Violation] = []
    infinite = np.isinf(numbers)
    if infinite.any():
        sample = _sample(pd.Series(numbers[infinite]))
        found.append(
            _violation(
                "non_finite",
                spec,
                infinite,
                f"column '{spec.name}': {words.NON_FINITE}, got {sample} in "
                f"{int(infinite.sum()):,} value(s) of {source}; leave a value empty when it is "
                "unknown",
            )
        )
    if spec.min is None or spec.max is None or not check_range:
        return found
    finite = np.isfinite(numbers)
    outside = np.zeros(len(numbers), dtype=bool)
    outside[finite] = (numbers[finite] < spec.min) | (numbers[finite] > spec.max)
    if outside.any():
        seen = numbers[outside]
        found.append(
            _violation(
                "out_of_range",
                spec,
                outside,
                f"column '{spec.name}' has {int(outside.sum()):,} value(s) in {source} outside the "
                f"training range [{spec.min:g}, {spec.max:g}] (seen {seen.min():g} to "
                f"{seen.max():g}); models extrapolate poorly there — check the data, or {UPDATE}",
            )
        )
    return found


def _unseen(keys: pd.Series, rows: int, spec: ColumnSpec, source: str) -> list[Violation]:
    known = list(spec.categories or {})
    unseen = keys[~keys.isin(known)]
    if unseen.empty:
        return []
    mask = np.zeros(rows, dtype=bool)
    mask[unseen.index.to_numpy()] = True
    counts = unseen.value_counts()
    top = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))[:5]
    shown = ", ".join(f"{value!r} ({int(n):,})" for value, n in top)
    more = f" and {len(counts) - 5:,} more" if len(counts) > 5 else ""
    if spec.role == "target":
        # training refuses these labels (loopml.train.split.encode_target): the same words
        message = (
            f"{words.unknown_classes(spec.name, len(counts))}: {shown}{more} in {source}; "
            f"known: {', '.join(sorted(known))}; {words.UNKNOWN_CLASS_FIX}"
        )
        return [_violation("unknown_class", spec, mask, message)]
    message = (
        f"column '{spec.name}' has {len(counts):,} value(s) in {source} not seen in training: "
        f"{shown}{more}; {words.UNSEEN_CATEGORY} — check the data, or {UPDATE}"
    )
    return [_violation("unseen_category", spec, mask, message)]


def _duplicate_keys(frame: pd.DataFrame, contract: Contract, source: str) -> list[Violation]:
    key = contract.entity_key
    if key is None or key not in frame.columns:
        return []
    series = frame[key]
    mask = (series.duplicated(keep=False) & series.notna()).to_numpy()
    if not mask.any():
        return []
    values = series[mask]
    sample = ", ".join(_show(v) for v in values.drop_duplicates().head(3))
    return [
        _violation(
            "duplicate_key",
            contract.column(key),
            mask,
            f"entity key '{key}' has {values.nunique():,} value(s) shared by {int(mask.sum()):,} "
            f"rows in {source}, e.g. {sample}; each row needs its own key — deduplicate the export",
        )
    ]


def _duplicate_rows(frame: pd.DataFrame, contract: Contract, source: str) -> list[Violation]:
    """Rows repeating an earlier row in every model feature and the target."""
    names = [spec.name for spec in contract.features] + [contract.target]
    columns = [name for name in names if name in frame.columns]
    if not columns:
        return []
    found = duplicate_rows(frame[columns], examples=MAX_ROWS_SHOWN)
    if found.count == 0:
        return []
    shown = ", ".join(f"row {row} repeats row {first}" for row, first in found.pairs)
    more = ", ..." if found.count > len(found.pairs) else ""
    what = " and the target" if contract.target in columns else ""
    message = (
        f"{found.count:,} of {found.rows:,} rows in {source} ({found.share:.1%}) repeat an "
        f"earlier row in every feature{what} ({shown}{more}); copies weigh more in "
        "training and can sit on both sides of a holdout — deduplicate the export unless "
        "they are real repeats"
    )
    rows = tuple(row for row, _ in found.pairs)
    severity = severity_of("duplicate_rows")
    return [Violation("duplicate_rows", None, severity, found.count, rows, message, found.pairs)]
