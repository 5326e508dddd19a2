from __future__ import annotations

import pytest

from loopml.registry.manifest import native_labels

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("classes", "target_type", "expected"),
    [
        (("0", "1"), "integer", [0, 1]),
        (("1.5", "2"), "float", [1.5, 2.0]),
        (("False", "True"), "boolean", [False, True]),
        (("cat", "dog"), "string", ["cat", "dog"]),
    ],
)
def test_labels_come_back_in_the_targets_own_type(
    classes: tuple[str, ...], target_type: str, expected: list[object]
) -> None:
    decoded = native_labels(classes, target_type)
    assert decoded == expected
    assert [type(v) for v in decoded] == [type(v) for v in expected]
