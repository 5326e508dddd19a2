"""What every section of the project file shares: no unknown keys, no mutation, and the
state folder every default path lives in."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

STATE_DIR = ".loopml"


class Section(BaseModel):
    """A section of ``loopml.yaml``: a typo is an error, and settings never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
