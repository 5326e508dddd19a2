"""Bearer tokens: files only their owner can read, compared in constant time.

Three scopes (DESIGN.md decisions 10 and 14): the *admin* token guards the admin routes,
the *feedback* token lets a client send labels, the *predict* token (only when
``serve.predict_auth: token``) lets a client ask for predictions. The admin token is
accepted wherever another scope is asked for. ``loopml init`` creates the admin and
feedback tokens (``loopml serve`` creates whatever is missing); each is sent as
``Authorization: Bearer <token>``.

>>> import pathlib, tempfile
>>> token, created = ensure_token(pathlib.Path(tempfile.mkdtemp()) / "admin.token")
>>> created, bearer_matches(f"Bearer {token}", token), bearer_matches("Bearer x", token)
(True, True, False)
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from loopml.errors import ConfigError

__all__ = ["bearer_matches", "ensure_token", "matching_scope", "read_token"]


def ensure_token(path: Path, scope: str = "admin") -> tuple[str, bool]:
    """The ``scope`` token at ``path``, creating it (mode 0600) if absent; (token, created)."""
    if path.is_file():
        return read_token(path, scope), False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # Written whole under a private name, then linked into place: of several processes
    # starting at once (``--workers N``) one creates it and the others read it, never
    # a half-written file.
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        os.link(temp, path)
    except FileExistsError:
        return read_token(path, scope), False
    finally:
        temp.unlink(missing_ok=True)
    return token, True


def read_token(path: Path, scope: str = "admin") -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"the {scope} token {path} is readable by other users (mode {mode:o})",
            fix=f"run 'chmod 600 {path}'",
        )
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16:
        raise ConfigError(
            f"the {scope} token in {path} is too short to be safe",
            fix="delete the file; 'loopml serve' creates a new one",
        )
    return token


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token``, compared in constant time."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def matching_scope(header: str | None, tokens: Mapping[str, str]) -> str | None:
    """The scope (a key of ``tokens``) whose token the header carries, or None. Every token
    is compared, so the time taken does not tell which one came close.

    >>> matching_scope("Bearer f", {"admin": "a", "feedback": "f"})
    'feedback'
    """
    found = None
    for scope, token in tokens.items():
        if bearer_matches(header, token) and found is None:
            found = scope
    return found
