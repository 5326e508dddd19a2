"""Issue 12, problem 3: nothing runs code from a file it did not verify.

An attacker who can write the MLflow artifact store (not the registry's database)
replaces a registered version's ``pipeline.joblib``, or its serving ``model.onnx``, with
a pickle that runs ``touch MARKER`` when it is loaded. Every command that reads a version
— ``promote``, ``models build-artifact``, ``monitor profile``, ``serve`` and ``score`` —
is run against a real project (real MLflow store, real CLI subprocesses, a real server on
a free port), with and without ``--trust-pickle``: each refuses with an error naming the
file, the recorded and the found sha256, or never reads the planted file at all; the
marker is never created; the untouched versions still work.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pytest

from tests.integration.serving import MODEL, TRAIN_ENV, Project, Server, loopml
from tests.mlflow_uris import mlflow_uris_restored
from tests.poison import poisoned_pickle

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PACKAGE_TAG = "loopml.package_sha256"


@dataclass(frozen=True)
class Run:
    code: int
    output: str  # stdout and stderr, whitespace collapsed (Rich wraps long lines)


@dataclass
class Attack:
    """The project under attack, and how to tell whether a planted pickle ever ran."""

    project: Project
    marker: Path
    calls: int = 0

    @property
    def folder(self) -> Path:
        return self.project.folder

    def run(self, *args: str, env: dict[str, str] | None = None) -> Run:
        """``loopml ARGS`` with a fresh serving cache, so the artifact store is read."""
        self.calls += 1
        full = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
        full |= TRAIN_ENV | {
            "COLUMNS": "400",
            "LOOPML_SERVE__CACHE_DIR": f".loopml/cache-attack-{self.calls}",
        } | (env or {})  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-c", "from loopml.cli.main import run; run()", *args],
            cwd=self.folder, env=full, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        output = " ".join(f"{proc.stdout}\n{proc.stderr}".split())
        assert "Traceback" not in output, output
        return Run(proc.returncode, output)

    def refused(self, *args: str, needles: tuple[str, ...]) -> None:
        result = self.run(*args)
        assert result.code == 2, f"loopml {' '.join(args)} exited {result.code}: {result.output}"
        for needle in needles:
            assert needle in result.output, f"{needle!r} not in: {result.output}"
        assert not self.marker.exists(), f"loopml {' '.join(args)} ran the planted pickle"

    def works(self, *args: str) -> str:
        result = self.run(*args)
        assert result.code == 0, f"loopml {' '.join(args)} exited {result.code}: {result.output}"
        assert not self.marker.exists()
        return result.output


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory) -> Attack:
    """A feed project with two versions (1 champion, 2 challenger), as users have them."""
    folder = tmp_path_factory.mktemp("attack")
    loopml(folder, "data", "feed", "--rows", "3000", "--seed", "3", "--out", "feed.parquet")
    loopml(folder, "init", "--data", "feed.parquet", "--target", "engaged", "--name", MODEL)
    for seed in ("1", "2"):
        loopml(folder, "train", env={"LOOPML_TRAIN__SEED": seed})
    return Attack(Project(folder, folder / "feed.parquet"), folder / "PWNED")


def _client(folder: Path) -> Any:
    from loopml.config import load_project
    from loopml.registry.store import open_registry

    with mlflow_uris_restored():
        return open_registry(load_project(folder / "loopml.yaml", environ={})).client


def _stored(folder: Path, version: str, name: str) -> Path:
    """Where the artifact store keeps ``name`` of ``version`` (the package's files live
    with the logged model, the serving artifact with the training run)."""
    found = _client(folder).get_model_version(MODEL, version)
    owner = found.source.removeprefix("models:/") if name == "pipeline.joblib" else found.run_id
    (path,) = [p for p in (folder / ".loopml" / "mlruns").rglob(name) if owner in p.parts]
    return path


@contextlib.contextmanager
def planted(path: Path, data: bytes) -> Iterator[None]:
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        yield
    finally:
        path.write_bytes(original)


def _recorded(folder: Path, version: str, name: str) -> str:
    tags = _client(folder).get_model_version(MODEL, version).tags
    return str(json.loads(tags[PACKAGE_TAG])[name])


def test_the_planted_pickle_runs_when_anything_unpickles_it(tmp_path: Path) -> None:
    """The control: the payload is live, so a test below that stays clean means something."""
    marker = tmp_path / "ran"
    joblib.load(io.BytesIO(poisoned_pickle(marker)))
    assert marker.exists()


def test_a_planted_pipeline_joblib_is_never_unpickled(attack: Attack) -> None:
    poison = poisoned_pickle(attack.marker)
    found = hashlib.sha256(poison).hexdigest()
    expected = _recorded(attack.folder, "2", "pipeline.joblib")
    needles = (
        "pipeline.joblib of version 2 of 'feed' does not match the sha256 recorded at "
        "registration; nothing was loaded",
        f"expected sha256 {expected}, found {found}",
        "restore the original file",
    )
    with planted(_stored(attack.folder, "2", "pipeline.joblib"), poison):
        for trust in ((), ("--trust-pickle",)):
            attack.refused("promote", "2", "--reason", "attack", *trust, needles=needles)
            attack.refused("promote", "2", "--reason", "a", "--force", *trust, needles=needles)
            attack.refused("models", "build-artifact", "2", "--force", *trust, needles=needles)
            attack.refused("monitor", "profile", "2", *trust, needles=needles)
        # Serving and batch scoring never read the package: they score through the
        # version's verified ONNX artifact, so the planted file is simply never opened.
        attack.works("score", "feed.parquet", "scored.csv", "--version", "2", "--trust-pickle")
        _serve_and_predict(attack, LOOPML_SERVE__ALIAS="challenger")
    assert not attack.marker.exists()
    # The same commands on the untouched package work (no pickle loaded without the flag).
    attack.works("monitor", "profile", "2")
    attack.works("models", "build-artifact", "2", "--force", "--trust-pickle")
    untrusted = attack.run("models", "build-artifact", "2", "--force")
    assert untrusted.code == 2 and "unpickling its pipeline.joblib" in untrusted.output


def test_a_planted_model_onnx_is_refused_everywhere(attack: Attack) -> None:
    poison = poisoned_pickle(attack.marker)
    found = hashlib.sha256(poison).hexdigest()
    onnx = _stored(attack.folder, "1", "model.onnx")
    expected = hashlib.sha256(onnx.read_bytes()).hexdigest()
    needles = (
        "is corrupt; nothing was loaded",
        f"sha256 mismatch for model.onnx (expected sha256 {expected}, found {found})",
    )
    with planted(onnx, poison):
        for trust in ((), ("--trust-pickle",)):
            attack.refused("score", "feed.parquet", "out.csv", "--version", "1", *trust,
                           needles=needles)  # fmt: skip
            attack.refused("promote", "2", "--reason", "attack", *trust, needles=needles)
            attack.refused("monitor", "profile", "1", *trust, needles=needles)
        for trust in ("false", "true"):
            _serve_refused(attack, needles, LOOPML_SERVE__TRUST_PICKLE=trust)
    assert not attack.marker.exists()
    _serve_and_predict(attack)  # the restored artifact serves again


def test_a_forged_manifest_cannot_turn_the_artifact_into_a_pickle(attack: Attack) -> None:
    """The attacker rewrites the folder consistently: model.joblib (the payload), and a
    manifest that says "pickle" and lists the payload's sha256. The manifest's own sha256
    is on the version in the registry's database, which the attacker cannot write."""
    onnx = _stored(attack.folder, "1", "model.onnx")
    folder = onnx.parent
    manifest = json.loads((folder / "manifest.json").read_text())
    poison = poisoned_pickle(attack.marker)
    forged = manifest | {"format": "pickle", "model_file": "model.joblib"}
    forged["files"] = {
        **{k: v for k, v in manifest["files"].items() if k != "model.onnx"},
        "model.joblib": hashlib.sha256(poison).hexdigest(),
    }
    needles = ("manifest.json does not match the sha256 recorded on the version",)
    (folder / "model.joblib").write_bytes(poison)
    try:
        with planted(folder / "manifest.json", json.dumps(forged).encode()):
            attack.refused("score", "feed.parquet", "out.csv", "--version", "1", "--trust-pickle",
                           needles=needles)  # fmt: skip
            attack.refused("promote", "2", "--reason", "x", "--trust-pickle", needles=needles)
            _serve_refused(attack, needles, LOOPML_SERVE__TRUST_PICKLE="true")
    finally:
        (folder / "model.joblib").unlink()
    assert not attack.marker.exists()


def test_a_version_registered_before_digests_is_not_silently_exposed(attack: Attack) -> None:
    client = _client(attack.folder)
    saved = client.get_model_version(MODEL, "2").tags[PACKAGE_TAG]
    client.delete_model_version_tag(MODEL, "2", PACKAGE_TAG)
    try:
        attack.refused(
            "models", "build-artifact", "2", "--force",
            needles=("records no sha256 of its package files", "retrain", "--trust-pickle"),
        )  # fmt: skip
        trusted = attack.works("models", "build-artifact", "2", "--force", "--trust-pickle")
        assert "loaded unverified" in trusted
        profiled = attack.works("monitor", "profile", "2")  # through the verified ONNX
        assert "not checked, and not loaded" in profiled
    finally:
        client.set_model_version_tag(MODEL, "2", PACKAGE_TAG, saved)


def _serve_and_predict(attack: Attack, **env: str) -> None:
    attack.calls += 1
    server = Server(attack.project, f"attack-{attack.calls}", env=dict(env)).start()
    try:
        records = attack.project.records(20)
        statuses = [server.post_json("/predict", {"records": [r]})[0] for r in records]
        assert statuses == [200] * len(records)
        assert server.stop() == 0
    finally:
        server.kill()
    assert not attack.marker.exists()


def _serve_refused(attack: Attack, needles: tuple[str, ...], **env: str) -> None:
    attack.calls += 1
    server = Server(attack.project, f"attack-{attack.calls}", env=dict(env))
    try:
        with pytest.raises(AssertionError, match="server exited") as info:
            server.start()
    finally:
        server.kill()
    output = " ".join(str(info.value).split())
    for needle in needles:
        assert needle in output, f"{needle!r} not in: {output}"
    assert "Traceback" not in output
    assert not attack.marker.exists()
