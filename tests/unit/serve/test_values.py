"""The per-value reader: its one-record shortcut reads a record as the general loop does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from loopml.serve.schema import InputSchema
from loopml.serve.table import Table
from tests.unit.serve.test_validation import _CONTRACT, _outcome, records

pytestmark = pytest.mark.unit


@settings(max_examples=300, deadline=None)
@given(table=records())
def test_the_one_record_shortcut_reads_as_the_general_loop(table: Table) -> None:
    schema = InputSchema.from_contract(_CONTRACT)
    # the shortcut takes list columns only: the same record in tuples takes the general loop
    tuples = Table({name: tuple(values) for name, values in table.columns.items()}, 1)
    assert _outcome(table, schema, "loop", False) == _outcome(tuples, schema, "loop", False)
