"""What every command shares: the project file's path, loaded on first use."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from loopml.config import ProjectConfig, load_project


@dataclass
class State:
    project_file: Path
    _project: ProjectConfig | None = field(default=None, repr=False)

    def project(self) -> ProjectConfig:
        if self._project is None:
            self._project = load_project(self.project_file, os.environ)
        return self._project
