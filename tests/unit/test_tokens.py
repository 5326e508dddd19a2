from __future__ import annotations

from pathlib import Path

import pytest

from loopml.errors import ConfigError
from loopml.tokens import bearer_matches, ensure_token, matching_scope, read_token

pytestmark = pytest.mark.unit


def test_token_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / "admin.token"
    token, created = ensure_token(path)
    assert created and len(token) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert ensure_token(path) == (token, False)


def test_a_token_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    ensure_token(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_token(path)


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret-token-value", True),
        ("bearer s3cret-token-value", True),
        ("Bearer s3cret-token-valuX", False),
        ("Basic s3cret-token-value", False),
        ("s3cret-token-value", False),
        (None, False),
        ("", False),
    ],
)
def test_bearer_matches(header: str | None, ok: bool) -> None:
    assert bearer_matches(header, "s3cret-token-value") is ok


def test_a_scope_names_its_token_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "feedback.token"
    ensure_token(path, "feedback")
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="the feedback token"):
        ensure_token(path, "feedback")


@pytest.mark.parametrize(
    ("header", "scope"),
    [
        ("Bearer feedback-token-value", "feedback"),
        ("Bearer admin-token-value-xx", "admin"),
        ("Bearer predict-token-value", None),
        (None, None),
    ],
)
def test_matching_scope_names_the_scope_whose_token_came(
    header: str | None, scope: str | None
) -> None:
    tokens = {"feedback": "feedback-token-value", "admin": "admin-token-value-xx"}
    assert matching_scope(header, tokens) == scope


def test_processes_starting_at_once_all_get_the_one_token(tmp_path: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor

    path = tmp_path / "predict.token"
    with ProcessPoolExecutor(4) as pool:
        results = list(pool.map(ensure_token, [path] * 16, ["predict"] * 16))
    assert len({token for token, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["predict.token"]  # no temporary left
