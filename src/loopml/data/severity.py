"""One table of findings: what a table or a request can break, how bad it is, the words.

``loopml validate`` (:mod:`loopml.data.validate`) reports these findings over a whole
table and ``loopml train`` refuses a table with an error among them; the server and
``loopml score`` (:mod:`loopml.serve.validation`) check each row by the same rules. What
``validate`` calls a **warning** is served; what it calls an **error** is refused
everywhere, and a violation's message and a refusal's ``reason`` say it with the same
words (the functions below). Findings about a whole table (a null rate, shared keys,
copies) have no meaning for one request: only ``validate`` and ``train`` judge them.

=============== ======== ===================== ==================================================
kind            severity served as             when
=============== ======== ===================== ==================================================
empty           error    422 empty             the table or the request has no rows
missing_column  error    422 missing_field     a model input is absent (the key and the time
                                               column too, in tables); a *warning* for the
                                               target (scoring tables have no label) and
                                               dropped columns
extra_column    warning  ignored, counted      a column or field the contract does not know
type_mismatch   error    422 wrong_type        a value that cannot be read as the contract's
                                               type: text in a number, a fraction in an
                                               integer, an unreadable boolean, a non-date
non_finite      error    422 non_finite        ``inf`` / ``-inf`` in a numeric column
unexpected_null warning  imputed, counted      a null in a feature that had none in training;
                                               an *error* for the entity key in a table (a
                                               request may leave its key out)
unseen_category warning  as unknown, counted   a feature's category absent from training
unknown_class   error    (labels only)         a target class the contract does not know
out_of_range    warning  served                a number outside the training ``[min, max]``
null_rate       error    (tables only)         the null rate exceeds training's + tolerance;
                                               a *warning* for the target
duplicate_key   error    (tables only)         entity-key values shared by several rows
duplicate_rows  warning  (tables only)         rows that repeat an earlier row in every
                                               feature and the target
=============== ======== ===================== ==================================================

"Counted": the server adds the values to ``loopml_ignored_fields_total``,
``loopml_unexpected_nulls_total`` and ``loopml_unseen_categories_total`` (per field).

>>> severity_of("unexpected_null"), severity_of("unexpected_null", role="key")
('warning', 'error')
>>> RULES["type_mismatch"].code, wrong_type("integer")
('wrong_type', 'expected a whole number (the contract says integer)')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

__all__ = [
    "EXTRA_COLUMN",
    "NON_FINITE",
    "RULES",
    "UNEXPECTED_NULL",
    "UNKNOWN_CLASS_FIX",
    "UNSEEN_CATEGORY",
    "UPDATE",
    "Rule",
    "Severity",
    "missing_input",
    "severity_of",
    "unknown_classes",
    "wrong_type",
]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Rule:
    """One kind of finding: its severity (and the roles where it differs), how serving
    treats it, and the ``error`` code of the 4xx answer when serving refuses it."""

    kind: str
    severity: Severity
    served: str
    code: str | None = None
    roles: Mapping[str, Severity] = field(default_factory=dict)

    def __post_init__(self) -> None:
        refused = self.severity == "error" and self.served.startswith("422")
        if refused != (self.code is not None):
            raise ValueError(f"rule {self.kind!r}: a 4xx code goes with a refused error")


def _register(rules: Iterable[Rule]) -> Mapping[str, Rule]:
    table: dict[str, Rule] = {}
    for rule in rules:
        if rule.kind in table:
            raise ValueError(f"the finding {rule.kind!r} is registered twice")
        table[rule.kind] = rule
    return MappingProxyType(table)


RULES: Mapping[str, Rule] = _register(
    (
        Rule("empty", "error", "422 empty", "empty"),
        Rule(
            "missing_column",
            "error",
            "422 missing_field",
            "missing_field",
            {"target": "warning", "dropped": "warning"},
        ),
        Rule("extra_column", "warning", "ignored, counted"),
        Rule("type_mismatch", "error", "422 wrong_type", "wrong_type"),
        Rule("non_finite", "error", "422 non_finite", "non_finite"),
        Rule("unexpected_null", "warning", "imputed, counted", roles={"key": "error"}),
        Rule("unseen_category", "warning", "as unknown, counted"),
        Rule("unknown_class", "error", "(labels only)"),
        Rule("out_of_range", "warning", "served"),
        Rule("null_rate", "error", "(tables only)", roles={"target": "warning"}),
        Rule("duplicate_key", "error", "(tables only)"),
        Rule("duplicate_rows", "warning", "(tables only)"),
    )
)
"""kind -> :class:`Rule`, in the order of the module's table."""


def severity_of(kind: str, role: str = "feature") -> Severity:
    """How bad a finding is for a column of this role (``feature``, ``key``, ``target`` ...)."""
    rule = RULES[kind]
    return rule.roles.get(role, rule.severity)


# -- the words ---------------------------------------------------------------------------

UPDATE = "run 'loopml contract update' if the change is intended"
"""The fix of a finding that a new contract would accept."""
UNKNOWN_CLASS_FIX = "run 'loopml contract update' if these classes are new and legitimate"
NON_FINITE = "expected a finite number"
"""What a table and a request are told about ``inf``, before ``, got ...``."""

_EXPECTED = {
    "integer": "a whole number",
    "float": "a number",
    "boolean": "true / false, or the text 'true', 'false', '1' or '0'",
    "string": "a string",
    "datetime": "a date or a time",
}


def wrong_type(column_type: str) -> str:
    """What a value of this contract type must be, before ``, got ...`` (``type_mismatch``).

    >>> wrong_type("boolean")
    "expected true / false, or the text 'true', 'false', '1' or '0' (the contract says boolean)"
    """
    if column_type == "key":
        return "expected a string or an integer (an entity key)"
    return f"expected {_EXPECTED[column_type]} (the contract says {column_type})"


def missing_input(column_type: str) -> str:
    """Why an absent feature is refused (``missing_column``)."""
    return f"the model needs this {column_type} input"


EXTRA_COLUMN = "is not in the contract, so it is ignored"
UNEXPECTED_NULL = "it had none in training; the model fills them in as it does missing values"
UNSEEN_CATEGORY = "the model treats them as unknown"


def unknown_classes(target: str, count: int) -> str:
    """The headline of ``unknown_class``, in ``validate`` and in training alike.

    >>> unknown_classes("churn", 2)
    "target 'churn' holds 2 label(s) the contract does not know"
    """
    return f"target {target!r} holds {count:,} label(s) the contract does not know"
