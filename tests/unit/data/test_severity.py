"""The severity table: one entry per finding, documented as it is coded, and the only
source of the severities ``loopml validate`` reports."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from loopml.data import severity
from loopml.data.infer import infer_contract
from loopml.data.severity import RULES, Rule, severity_of
from loopml.data.validate import validate_table

pytestmark = pytest.mark.unit


def _documented() -> list[tuple[str, str, str]]:
    """(kind, severity, served as) of each row of the module docstring's table."""
    doc = severity.__doc__ or ""
    rows = re.findall(r"^([a-z_]+) +(error|warning) +(\S.*?\S)  +", doc, flags=re.MULTILINE)
    return [(kind, level, served) for kind, level, served in rows]


def test_the_documented_table_is_the_coded_one() -> None:
    coded = [(rule.kind, rule.severity, rule.served) for rule in RULES.values()]
    assert _documented() == coded


def test_role_exceptions() -> None:
    assert severity_of("missing_column") == "error"
    assert severity_of("missing_column", "target") == "warning"
    assert severity_of("missing_column", "dropped") == "warning"
    assert severity_of("missing_column", "key") == "error"
    assert severity_of("unexpected_null") == "warning"
    assert severity_of("unexpected_null", "key") == "error"
    assert severity_of("null_rate", "target") == "warning"
    assert severity_of("unknown_class", "target") == "error"


def test_a_refused_error_has_a_code_and_nothing_else_does() -> None:
    for rule in RULES.values():
        assert (rule.code is not None) == rule.served.startswith("422"), rule.kind
    with pytest.raises(ValueError, match="4xx code"):
        Rule("odd", "warning", "served", "odd_code")
    with pytest.raises(ValueError, match="4xx code"):
        Rule("odd", "error", "422 odd")


def test_a_kind_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        severity._register([Rule("x", "warning", "served"), Rule("x", "error", "(tables only)")])
    with pytest.raises(TypeError):
        RULES["x"] = Rule("x", "warning", "served")  # type: ignore[index]


def test_validate_reports_each_finding_with_the_severity_of_the_table() -> None:
    train = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "x": [1.0, 2.0, 3.0, 4.0],
            "n": [1, 2, 3, 4],
            "s": ["p", "q", "p", "q"],
            "y": ["no", "yes", "no", "yes"],
        }
    )
    contract = infer_contract(train, target="y", task="binary", entity_key="id", time_column=None)
    bad = pd.DataFrame(
        {
            "id": ["a", "a", None, "d", "e", "f"],
            "x": [1.0, np.inf, 9.0, None, 2.0, 2.0],
            "n": ["1", "2.5", "3", "4", "1", "1"],
            "s": ["p", "z", "q", "p", "q", "q"],
            "y": ["no", "maybe", "no", "yes", "no", "no"],
            "extra": 1,
        }
    )
    report = validate_table(bad, contract, source="t.csv", null_rate_tolerance=0.5)
    roles = {spec.name: spec.role for spec in contract.columns}
    kinds = set()
    for v in report.violations:
        assert v.kind in RULES
        assert v.severity == severity_of(v.kind, roles.get(v.column or "", "feature")), v
        kinds.add(v.kind)
    assert kinds == {
        "extra_column", "non_finite", "out_of_range", "unexpected_null", "type_mismatch",
        "unseen_category", "unknown_class", "duplicate_key", "duplicate_rows",
    }  # fmt: skip
