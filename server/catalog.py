"""The artifact folder as the server sees it: the validated manifest, re-read when it changes.

Files are found only through the manifest (logical path -> .rev/<id>/<revision>/<rest>), so a
path the manifest does not list cannot be served, whatever it contains.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from contract.errors import LumenError
from contract.manifest import MANIFEST_NAME, FileEntry, Manifest, ModelEntry, load_manifest, revision_dir
from server.static import is_inside

log = logging.getLogger("lumen.server")


class ArtifactFolderError(LumenError):
    """The artifact folder cannot be served (missing, or its manifest is invalid); carries the fix."""


REVISION_RACE_RETRIES = 4


@dataclass(frozen=True)
class ServedFile:
    path: Path
    stat: os.stat_result
    entry: FileEntry
    handle: BinaryIO  # opened at resolve time: a re-export may delete `path` while it is served


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when the exporter replaces the manifest (os.replace gives a new inode)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class Catalog:
    """Holds the current manifest; every lookup first checks whether manifest.json changed."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ArtifactFolderError(
                f"artifact folder {root} does not exist",
                fix="export a model first (python -m exporter clip --model tiny-random-clip --out "
                f"{root}) or pass --artifacts with the folder the exporter wrote",
            )
        self.root = root.resolve()
        self._manifest_path = self.root / MANIFEST_NAME
        self._stamp = _stamp(self._manifest_path)
        try:
            self._set(load_manifest(self.root))
        except (ValueError, OSError) as err:
            raise ArtifactFolderError(
                f"{self._manifest_path} is not a valid manifest: {err}",
                fix=f"re-export the models into {root}, or run `python -m exporter repair --out {root}`",
            ) from err

    def _set(self, manifest: Manifest) -> None:
        self._manifest = manifest
        self._files: dict[str, tuple[ModelEntry, FileEntry]] = {
            f.path: (model, f) for model in manifest.models for f in model.files
        }

    def _refresh(self) -> None:
        stamp = _stamp(self._manifest_path)
        if stamp == self._stamp:
            return
        try:
            manifest = load_manifest(self.root)
        except (ValueError, OSError) as err:
            # Keep serving the last good manifest; an export in progress never writes a half file,
            # so this is a hand edit or a broken tool, and the log says which.
            log.error("ignoring invalid %s (still serving the previous one): %s", self._manifest_path, err)
        else:
            self._set(manifest)
            log.info("manifest reloaded: %d model(s)", len(manifest.models))
        self._stamp = stamp

    @property
    def manifest(self) -> Manifest:
        self._refresh()
        return self._manifest

    def resolve(self, logical: str) -> ServedFile | None:
        """The open regular file behind a manifest path, or None (unlisted, missing, outside root,
        changed). The caller owns the handle. Opening here, not when the body is sent, is what keeps
        a superseded revision readable: an export's cleanup may unlink it in between. A revision
        deleted between reading the manifest and opening the file means a newer manifest is
        already in place: read it and try again (a few times: exports may follow each other)."""
        for _ in range(REVISION_RACE_RETRIES):
            stamp = self._stamp
            served = self._resolve_once(logical)
            if served is not None or _stamp(self._manifest_path) == stamp:
                return served
        return None

    def _resolve_once(self, logical: str) -> ServedFile | None:
        self._refresh()
        found = self._files.get(logical)
        if found is None:
            return None
        model, entry = found
        path = revision_dir(self.root, model) / logical[len(model.id) + 1 :]
        if not is_inside(self.root, path):
            log.warning("refusing %s: it resolves outside %s", logical, self.root)
            return None
        try:
            # O_NONBLOCK: a FIFO at a listed path must not hang the event loop in open().
            handle = os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb")
        except OSError:
            log.warning("manifest lists %s but %s cannot be read", logical, path)
            return None
        st = os.fstat(handle.fileno())
        # A size that disagrees with the manifest means the file is not the one its sha256 names.
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry.bytes:
            handle.close()
            log.warning("refusing %s: %s is not the %d-byte file the manifest lists", logical, path, entry.bytes)
            return None
        return ServedFile(path=path, stat=st, entry=entry, handle=handle)
