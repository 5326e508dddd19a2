"""Fixtures shared by every test folder."""

from __future__ import annotations

from tests.pg import postgres_schema_url, postgres_url

__all__ = ["postgres_schema_url", "postgres_url"]
