from __future__ import annotations

import math

import pyarrow as pa
import pytest

from loopml.ledger.columns import JsonColumns, ValueColumn

pytestmark = pytest.mark.unit


def learned(*chunks: list[str]) -> JsonColumns:
    columns = JsonColumns()
    for chunk in chunks:
        columns.learn(chunk)
    return columns


def test_kinds_widen_across_chunks_and_keep_first_seen_order() -> None:
    columns = learned(['{"b": 1, "a": true}'], ['{"b": 2.5, "c": null}', '{"a": false}'])
    assert columns.kinds == {"b": "float", "a": "bool", "c": "null"}
    assert columns.types() == [pa.float64(), pa.bool_(), pa.string()]
    b, a, c = columns.arrays(['{"b": 1}', '{"a": true, "c": null}'])
    assert (b.to_pylist(), a.to_pylist(), c.to_pylist()) == ([1.0, None], [None, True], [None] * 2)


@pytest.mark.parametrize(
    "chunks",
    [
        [['{"v": 1}', '{"v": "s"}', '{"v": [1, 2]}', '{"v": null}']],  # mixed in one chunk
        [['{"v": 1}'], ['{"v": "s"}'], ['{"v": [1, 2]}', '{"v": null}']],  # across chunks
    ],
)
def test_disagreeing_values_become_their_json_text(chunks: list[list[str]]) -> None:
    columns = learned(*chunks)
    assert columns.kinds == {"v": "text"}
    texts = [t for chunk in chunks for t in chunk]
    assert columns.arrays(texts)[0].to_pylist() == ["1", "s", "[1, 2]", None]


def test_python_json_extras_and_odd_texts_are_read_the_same_way() -> None:
    columns = learned(['{"x": NaN, "y": 1}', '{\n"x": 2.0, "y": 9223372036854775808}'])
    assert columns.kinds == {"x": "float", "y": "float"}  # the huge int does not fit int64
    x, y = columns.arrays(['{"x": NaN}', '{\n"x": Infinity}'])
    assert math.isnan(x[0].as_py())
    assert x[1].as_py() == math.inf
    assert y.to_pylist() == [None, None]


def test_no_keys_no_columns_and_non_objects_are_ignored() -> None:
    columns = learned(["[]", "3", "{}"])
    assert columns.kinds == {}
    assert columns.arrays(["{}"]) == []


def test_label_values_get_one_kind() -> None:
    labels = ValueColumn()
    labels.learn([None, "1", "0", None])
    assert labels.arrow_type() == pa.int64()
    assert labels.array(["1", None]).to_pylist() == [1, None]
    labels.learn(['"yes"'])
    assert labels.array(["1", '"yes"']).to_pylist() == ["1", "yes"]
