"""The local cache of serving artifacts: ``<cache root>/<model>/<version>/``.

A version's artifact is downloaded into a temporary sibling of its cache folder,
checked (no symbolic links, nothing outside the cache root, every sha256 matching the
manifest whose own sha256 the registry recorded), and only then renamed into place, so
a server never loads a half-downloaded or tampered copy. A good cached copy is reused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from loopml.errors import RegistryError
from loopml.registry.manifest import MANIFEST_FILE, ArtifactManifest, read_verified


def fetch_into_cache(
    cache_root: Path,
    model: str,
    version: str,
    manifest_sha256: str,
    download: Callable[[Path], Path],
) -> Path:
    """The verified folder of ``model`` ``version`` under ``cache_root``.

    ``download(tmp)`` fetches the artifact into the empty folder ``tmp`` and returns the
    folder it wrote (inside ``tmp``). Raises :class:`RegistryError` on a path escaping
    the cache, a symbolic link, or a checksum mismatch.
    """
    root = cache_root.resolve()
    target = contained(root, root / model / version)
    if target.exists() or target.is_symlink():
        if _cached_copy_ok(target, root, manifest_sha256):
            return target
        _remove(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".tmp", dir=target.parent))
    try:
        local = download(tmp)
        check_tree(local, root)
        manifest = read_verified(local, manifest_sha256).manifest
        _drop_unlisted(local, manifest)
        _publish(local, target, root, manifest_sha256)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def contained(root: Path, path: Path) -> Path:
    """``path`` resolved, refused unless it stays inside ``root`` (already resolved)."""
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise RegistryError(
            f"refusing a serving artifact path outside the cache: {path}",
            detail=f"it resolves to {resolved}, outside {root}",
            fix="remove the symbolic link or odd name from the serving cache folder",
        )
    return resolved


def check_tree(folder: Path, root: Path) -> None:
    """Refuse a folder that is or holds a symbolic link, or resolves outside ``root``."""
    if folder.is_symlink() or not folder.is_dir():
        raise RegistryError(
            f"the serving artifact at {folder} is not a plain folder",
            fix="rebuild it with 'loopml models build-artifact VERSION --force'",
        )
    contained(root, folder)
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            if path.is_symlink():
                raise RegistryError(
                    f"the serving artifact at {folder} contains a symbolic link: {name}",
                    fix="serving artifacts hold plain files only; rebuild it with "
                    "'loopml models build-artifact VERSION --force'",
                )
            contained(root, path)


def _cached_copy_ok(target: Path, root: Path, sha: str) -> bool:
    try:
        check_tree(target, root)
        read_verified(target, sha)
    except RegistryError:
        return False
    return True


def _drop_unlisted(folder: Path, manifest: ArtifactManifest) -> None:
    """Remove files an older build left in the artifact store that the manifest omits."""
    keep = {MANIFEST_FILE, *manifest.files}
    for path in folder.iterdir():
        if path.name not in keep:
            _remove(path)


def _publish(local: Path, target: Path, root: Path, sha: str) -> None:
    try:
        local.rename(target)
    except OSError:
        # Another process published the same version first: keep its copy if it is good.
        if not _cached_copy_ok(target, root, sha):
            raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
