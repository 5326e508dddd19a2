from __future__ import annotations

import pytest

import loopml

pytestmark = pytest.mark.unit


def test_every_exported_name_resolves() -> None:
    for name in loopml.__all__:
        assert getattr(loopml, name) is not None, name


def test_public_api_is_explicit() -> None:
    assert sorted(loopml.__all__) == sorted(loopml._EXPORTS)
    assert "train_project" in loopml.__all__
    assert "load_project" in loopml.__all__
    with pytest.raises(AttributeError, match="no attribute"):
        _ = loopml.not_a_thing  # type: ignore[attr-defined]
