"""The JSON reader at the door: depth, duplicate keys, and what it lets through."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.errors import InputError
from loopml.serve.json_body import MAX_DEPTH, first_duplicate, load_json

pytestmark = pytest.mark.unit


def refused(body: bytes) -> InputError:
    with pytest.raises(InputError) as caught:
        load_json(body)
    return caught.value


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"a": 1, "a": 2}', "a"),
        (b'{"records": [{"x": 1, "y": 2, "x": 3}]}', "x"),
        (b'{"records": [{"x": 1}], "records": []}', "records"),
        (b'[{"ts": "10:00:00", "ts": "11:00"}]', "ts"),  # colons in strings do not hide it
        (b'{"a" : 1, "a" : 2}', "a"),  # whitespace before the colon
        (b'{"a": NaN, "a": 1}', "a"),  # the non-finite path
        (b'{"\\u0061": 1, "a": 2}', "a"),  # an escaped spelling of the same key
    ],
)
def test_a_duplicate_key_is_refused_and_named(body: bytes, key: str) -> None:
    error = refused(body)
    assert (error.error, error.status, error.field) == ("duplicate_key", 400, key)
    assert f"'{key}' appears twice" in error.reason


@pytest.mark.parametrize(
    "body",
    [
        b'{"ts": "2024-01-01T10:00:00", "a": {"b": "x:y"}}',
        b'{"a\\"": "\\":", "b": 1}',  # an escaped quote before a colon, inside strings
        b'{"a": "\\u003a", "b": "\\u003A"}',  # escaped colons: counts differ, no duplicate
        b'{"a" :1,\n "b"\t: 2}',
        b"[1, 2, 3]",
    ],
)
def test_documents_without_duplicates_are_read_as_orjson_reads_them(body: bytes) -> None:
    assert load_json(body) == json.loads(body)


def test_nesting_deeper_than_the_limit_is_too_deep_and_never_a_recursion_error() -> None:
    ok = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert load_json(ok) is not None
    for depth in (MAX_DEPTH + 1, 1_000):
        error = refused(b"[" * depth + b"]" * depth)
        assert (error.error, error.status) == ("too_deep", 400)
    error = refused(b'{"a": NaN, "b": ' + b"[" * 300 + b"]" * 300 + b"}")
    assert error.error == "too_deep"
    error = refused(b'{"a": NaN, "b": ' + b"[" * 1_000 + b"]" * 1_000 + b"}")
    assert (error.error, error.status) == ("malformed_json", 400)  # Python's json gave up
    error = refused(b"[" * 5_000 + b"]" * 5_000)  # past orjson's own limit
    assert (error.error, error.status) == ("malformed_json", 400)
    assert "levels of nesting" in error.reason


keys = st.text(alphabet='ab:"\\ ', min_size=0, max_size=3)
leaves = st.one_of(st.integers(), st.text(alphabet='a:"\\{}[]', max_size=5), st.none())
documents = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.lists(st.tuples(keys, inner), max_size=3),
    max_leaves=12,
)


def _text(document: object) -> str:
    """JSON text in which a list of pairs is an object that may repeat a key."""
    if isinstance(document, list) and document and all(isinstance(p, tuple) for p in document):
        pairs = (f"{json.dumps(k)}: {_text(v)}" for k, v in document)
        return "{" + ", ".join(pairs) + "}"
    if isinstance(document, list):
        return "[" + ", ".join(_text(v) for v in document) + "]"
    return json.dumps(document)


@given(documents)
@settings(max_examples=300, deadline=None)
def test_duplicates_are_found_exactly_when_an_object_repeats_a_key(document: object) -> None:
    body = _text(document).encode()
    expected = first_duplicate(body)
    if expected is None:
        assert load_json(body) == orjson.loads(body)
    else:
        assert refused(body).field == expected
