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

    def project(self, *, trust_pickle: bool = False) -> ProjectConfig:
        """The project; ``trust_pickle`` (a command's ``--trust-pickle``) turns on
        ``serve.trust_pickle`` for this command only."""
        if self._project is None:
            self._project = load_project(self.project_file, os.environ)
        if trust_pickle and not self._project.serve.trust_pickle:
            serve = self._project.serve.model_copy(update={"trust_pickle": True})
            return self._project.model_copy(update={"serve": serve})
        return self._project


TRUST_PICKLE_HELP = (
    "Load pickles (a version's pipeline.joblib, a pickle serving artifact) once their "
    "sha256 matches the registry's: unpickling runs code, so your own models only."
)
