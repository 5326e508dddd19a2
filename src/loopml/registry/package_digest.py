"""The sha256 of every file of a model package, recorded in the registry and checked.

At registration :func:`package_digests` hashes the files of the package folder
(``pipeline.joblib``, ``contract.yaml``, ``model.json``) and the digests go into the
model version's tag ``loopml.package_sha256`` — in the registry's database, not in the
artifact store — so someone who can write the artifact store cannot swap a file and fix
its digest too. :func:`read_checked` reads the files once and checks the bytes that were
read, before anything parses them; a mismatch names the file, both digests and the fix.

A version registered before loopml recorded these digests has no tag: its pickle is
refused, unless pickles are trusted, when it is loaded with a warning
(:func:`loadable_files`); reading it through its serving artifact (whose own sha256 chain
predates these digests) is unaffected, with a warning that the package is unchecked.

>>> digests = {name: "ab" * 32 for name in PACKAGE_FILES}
>>> recorded_digests({PACKAGE_SHA_TAG: digest_tag(digests)}, "v1") == digests
True
>>> recorded_digests({}, "v1") is None  # registered before digests
True
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from loopml.errors import RegistryError
from loopml.registry.manifest import sha256_bytes, sha256_file
from loopml.registry.package import CONTRACT_FILE, META_FILE, PIPELINE_FILE

__all__ = [
    "PACKAGE_FILES",
    "PACKAGE_SHA_TAG",
    "digest_tag",
    "loadable_files",
    "package_digests",
    "read_checked",
    "recorded_digests",
    "unchecked_warning",
]

PACKAGE_SHA_TAG = "loopml.package_sha256"
PACKAGE_FILES: tuple[str, ...] = (PIPELINE_FILE, CONTRACT_FILE, META_FILE)
_SHA256 = re.compile(r"[0-9a-f]{64}")
log = logging.getLogger("loopml.registry")


def package_digests(folder: Path) -> dict[str, str]:
    """The sha256 of each file of the package written in ``folder``."""
    return {name: sha256_file(folder / name) for name in PACKAGE_FILES}


def digest_tag(digests: dict[str, str]) -> str:
    """The tag value: a compact JSON object, file name -> sha256 (about 250 characters)."""
    return json.dumps(dict(sorted(digests.items())), separators=(",", ":"))


def recorded_digests(tags: dict[str, str], where: str) -> dict[str, str] | None:
    """The digests a version's tags record; None for a version registered before them.

    A tag that is present but malformed is an error, never "no digests": that would turn
    a damaged tag into an unchecked load.
    """
    raw = tags.get(PACKAGE_SHA_TAG)
    if raw is None:
        return None
    try:
        parsed = json.loads(raw)
        digests = {str(k): str(v) for k, v in parsed.items()}
    except (ValueError, AttributeError) as exc:
        raise _bad_tag(where, f"{type(exc).__name__}: {exc}") from exc
    missing = sorted(set(PACKAGE_FILES) - set(digests))
    odd = sorted(k for k, v in digests.items() if not _SHA256.fullmatch(v))
    if missing or odd:
        raise _bad_tag(where, f"missing: {missing or 'none'}; not a sha256: {odd or 'none'}")
    return digests


def read_checked(folder: Path, expected: dict[str, str], where: str) -> dict[str, bytes]:
    """Read every file ``expected`` names from ``folder``, refusing any whose bytes do not
    hash to the recorded sha256 (nothing is parsed before all of them matched)."""
    contents: dict[str, bytes] = {}
    for name, want in sorted(expected.items()):
        data = _read(folder, name, where)
        got = sha256_bytes(data)
        if got != want:
            raise RegistryError(
                f"{name} of {where} does not match the sha256 recorded at registration; "
                "nothing was loaded",
                detail=f"expected sha256 {want}, found {got} (file {folder / name}); the "
                "artifact store was changed after the version was registered",
                fix="restore the original file in the artifact store from a backup, or "
                "retrain with 'loopml train' to register a new version (and delete this one)",
            )
        contents[name] = data
    return contents


def loadable_files(
    folder: Path, tags: dict[str, str], where: str, *, trust_pickle: bool
) -> dict[str, bytes]:
    """The files of the package in ``folder``, to be loaded pipeline and all.

    Checked against the digests in ``tags`` first (a mismatch is refused even when
    pickles are trusted); then, ``pipeline.joblib`` being a pickle, refused unless
    ``trust_pickle``. A version without digests is refused unless ``trust_pickle``, and
    then read unverified with a warning: an upgrade neither locks its user out nor
    exposes them silently.
    """
    expected = recorded_digests(tags, where)
    if expected is None:
        if not trust_pickle:
            raise _unrecorded(where)
        log.warning("%s", _unverified_warning(where))
        return {name: _read(folder, name, where) for name in PACKAGE_FILES}
    contents = read_checked(folder, expected, where)
    if not trust_pickle:
        raise RegistryError(
            f"loading {where} means unpickling its pipeline.joblib, which loopml does "
            "not do by default; nothing was loaded",
            detail="its sha256 matches the one recorded at registration, but unpickling "
            "runs code: only load pickles of your own models",
            fix="pass --trust-pickle (or set serve.trust_pickle: true in loopml.yaml)",
        )
    return contents


def unchecked_warning(where: str) -> str:
    return (
        f"{where} records no package digests (registered before loopml recorded them); "
        "its pipeline.joblib is not checked, and not loaded"
    )


def _unverified_warning(where: str) -> str:
    return (
        f"{where} was registered before loopml recorded package digests: its files are "
        "loaded unverified because the pickle is trusted (--trust-pickle / "
        "serve.trust_pickle); retrain with 'loopml train' to register a verified version"
    )


def _unrecorded(where: str) -> RegistryError:
    return RegistryError(
        f"{where} records no sha256 of its package files (registered before loopml "
        "recorded them), so its pipeline.joblib cannot be verified; nothing was loaded",
        detail="loading pipeline.joblib unpickles it, which runs any code the file holds",
        fix="retrain with 'loopml train' to register a verified version, or, if you are "
        "sure nobody else could write the artifact store, pass --trust-pickle (or set "
        "serve.trust_pickle: true) to load it unverified, with a warning",
    )


def _read(folder: Path, name: str, where: str) -> bytes:
    path = folder / name
    if path.is_symlink():
        raise RegistryError(
            f"{name} of {where} is a symbolic link; nothing was loaded",
            fix="restore the original file in the artifact store, or retrain",
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RegistryError(
            f"{name} of {where} is missing from the artifact store",
            detail=f"{path}: {exc.strerror or exc}",
            fix="restore the file in the artifact store from a backup, or retrain with "
            "'loopml train' to register a new version",
        ) from exc


def _bad_tag(where: str, detail: str) -> RegistryError:
    return RegistryError(
        f"the tag {PACKAGE_SHA_TAG} of {where} is not valid; nothing was loaded",
        detail=detail,
        fix="the registry's record was damaged: retrain with 'loopml train' to register a "
        "new version",
    )
