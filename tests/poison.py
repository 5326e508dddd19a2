"""A pickle that runs a command when it is loaded, as an attacker would plant one: the
command creates a marker file, so a test can tell whether anything unpickled it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import joblib


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch '{self.marker}'",)


def poisoned_pickle(marker: Path) -> bytes:
    """joblib bytes that run ``touch MARKER`` when ``joblib.load`` reads them."""
    buffer = io.BytesIO()
    joblib.dump(_Payload(marker), buffer)
    return buffer.getvalue()
