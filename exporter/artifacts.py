"""Atomic, content-addressed writes into the artifact folder.

An export writes into artifacts/.staging/<random>/, then commits:
  1. hash every file (sha256) -> revision = hash of the sorted (path, sha256) list
  2. rename the staging folder to artifacts/.rev/<id>/<revision>/        (atomic rename)
  3. replace artifacts/manifest.json (temp file, fsync, os.replace)      <- the commit point
  4. point the symlink artifacts/<id> at the new revision               (atomic replace)
  5. delete revisions the manifest no longer names
A kill before 3 leaves the old manifest naming old, untouched files; a kill after 3 leaves a
valid new manifest (the server resolves files through it, not through the symlink). Leftovers
of a killed export (staging folders, unreferenced revisions, a stale symlink) are repaired by
the next commit or by `repair()`.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from contract.manifest import (
    CONFIG_FILES,
    MANIFEST_NAME,
    REVISIONS_DIR,
    FileEntry,
    Manifest,
    ModelEntry,
    Variant,
    load_manifest,
    revision_dir,
)
from exporter.errors import ArtifactStoreError, DiskFullError, OutputNotWritableError

STAGING_DIR = ".staging"
LIVE_SUFFIX = ".live"  # .staging/<name>.live: flock-held by the export writing .staging/<name>/
LOCK_NAME = ".lock"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        with file.open("rb") as f:
            os.fsync(f.fileno())
    for folder in sorted({p.parent for p in path.rglob("*")} | {path}):
        _fsync_dir(folder)


def write_text_atomic(path: Path, text: str) -> None:
    """Temp file in the same folder, fsync, os.replace: readers see the old or the new file, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; artifacts are meant to be served and shared
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _disk_errors() -> Iterator[None]:
    try:
        yield
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise DiskFullError(
                f"no space left while writing artifacts ({err.filename or 'unknown file'}); nothing was committed",
                fix="free disk space or pass --out on a larger disk, then run the export again",
            ) from err
        raise


LOW_SPACE_BYTES = 1 << 20


def disk_full_cause(err: BaseException, folders: list[Path]) -> DiskFullError | None:
    """A DiskFullError when `err` comes from a full disk: ENOSPC anywhere in its chain (libraries
    wrap it: torch, protobuf, onnxruntime), or, for an error that only says the file it just wrote
    is unreadable, a folder with almost no space left (a truncated ONNX is not a corrupt model)."""
    seen: BaseException | None = err
    while seen is not None:
        if (isinstance(seen, OSError) and seen.errno == errno.ENOSPC) or "No space left on device" in str(seen):
            where = getattr(seen, "filename", None) or ", ".join(map(str, folders))
            break
        seen = seen.__cause__ or seen.__context__
    else:
        full = [f for f in folders if (free := _free_bytes(f)) is not None and free < LOW_SPACE_BYTES]
        if not full:
            return None
        where = ", ".join(map(str, full))
    return DiskFullError(
        f"no space left while writing artifacts ({where}); nothing was committed",
        fix="free disk space or pass --out (and TMPDIR, for work files) on a larger disk, then run the export again",
    )


def _free_bytes(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return None


class Staging:
    """A private folder for one export; files are written at their rest path (e.g. onnx/x.onnx)."""

    def __init__(self, store: ArtifactStore, model_id: str, folder: Path) -> None:
        self.store = store
        self.model_id = model_id
        self.dir = folder
        self.committed: ModelEntry | None = None

    def path(self, rest: str) -> Path:
        target = self.dir / rest
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def logical(self, rest: str) -> str:
        return f"{self.model_id}/{rest}"

    def commit(self, *, variants: dict[str, dict[str, Any]], report: str | None = None, **fields: Any) -> ModelEntry:
        """Hash, move into .rev/, and publish in the manifest. `variants` name files by rest path.

        `fields` are the remaining ModelEntry fields (task, family, source, trained, defaults, ...).
        """
        with _disk_errors():
            files = [
                FileEntry(
                    path=self.logical(p.relative_to(self.dir).as_posix()), bytes=p.stat().st_size, sha256=sha256_file(p)
                )
                for p in sorted(self.dir.rglob("*"))
                if p.is_file()
            ]
            listing = "".join(f"{f.path}\0{f.sha256}\n" for f in files)
            revision = hashlib.sha256(listing.encode()).hexdigest()[:16]
            entry = ModelEntry(
                id=self.model_id,
                revision=revision,
                files=files,
                variants={
                    name: Variant(**{**v, "files": {role: self.logical(rest) for role, rest in v["files"].items()}})
                    for name, v in variants.items()
                },
                report=self.logical(report) if report else None,
                configs={
                    role: self.logical(name) for role, name in CONFIG_FILES.items() if (self.dir / name).is_file()
                },
                **fields,
            )
            _fsync_tree(self.dir)
            self.committed = self.store._publish(entry, self.dir)
        return self.committed


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_NAME).open("a") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as err:
                raise ArtifactStoreError(
                    f"another export is writing to {self.root}",
                    fix="wait for it to finish, or export into a different --out folder",
                ) from err
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def preflight(self) -> None:
        """Before any work: the folder can be written and its manifest (if any) read. A read-only
        --out or a corrupt manifest.json fails in a second, not after minutes of export."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-probe-"):
                pass
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise DiskFullError(
                    f"no space left in {self.root}", fix="free disk space or pass --out on a larger disk"
                ) from err
            raise OutputNotWritableError(
                f"cannot write to {self.root} ({err.strerror or err})",
                fix="pass --out with a folder you can write to (not on a read-only file system), or fix its permissions",
            ) from err
        self.manifest()

    def manifest(self) -> Manifest:
        try:
            return load_manifest(self.root)
        except ValueError as err:
            raise ArtifactStoreError(
                f"{self.root / MANIFEST_NAME} is not a valid manifest: {str(err)[:300]}",
                fix="restore it from a backup, or delete it and re-export the models",
            ) from err

    @contextmanager
    def stage(self, model_id: str) -> Iterator[Staging]:
        """Yields a staging folder; on any exception (or a missing commit) it is deleted."""
        with _disk_errors():
            (self.root / STAGING_DIR).mkdir(parents=True, exist_ok=True)
            live, live_path = _claim_live_lock(self.root / STAGING_DIR, prefix=model_id.replace("/", "--") + ".")
            folder = live_path.with_name(live_path.name[: -len(LIVE_SUFFIX)])
            folder.mkdir()
        staging = Staging(self, model_id, folder)
        try:
            yield staging
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            live_path.unlink(missing_ok=True)
            live.close()  # releases the flock

    def _publish(self, entry: ModelEntry, staged: Path) -> ModelEntry:
        with self._locked():
            manifest = self.manifest().with_model(entry)
            target = revision_dir(self.root, entry)
            if target.exists():  # identical content exported before: keep the existing copy
                shutil.rmtree(staged)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(staged, target)
                _fsync_dir(target.parent)
            write_text_atomic(self.root / MANIFEST_NAME, manifest.model_dump_json(indent=2) + "\n")
            self._repair_locked(manifest)
        return entry

    def repair(self) -> RepairReport:
        """Symlinks to match the manifest; drops staging leftovers and unreferenced revisions."""
        with self._locked():
            return self._repair_locked(self.manifest())

    def _repair_locked(self, manifest: Manifest) -> RepairReport:
        fixed = [entry.id for entry in manifest.models if self._point_symlink(entry)]
        staging = self.root / STAGING_DIR
        before = _count_dirs(staging)
        _drop_dead_staging(staging)
        live = {revision_dir(self.root, m) for m in manifest.models}
        revisions = self.root / REVISIONS_DIR
        removed = []
        for rev in [*revisions.glob("*/*"), *revisions.glob("*/*/*")]:
            if rev.is_dir() and _is_revision(rev) and rev not in live:
                shutil.rmtree(rev, ignore_errors=True)
                removed.append(str(rev.relative_to(self.root)))
        return RepairReport(fixed, removed, before - _count_dirs(staging))

    def _point_symlink(self, entry: ModelEntry) -> bool:
        """Points the model's symlink at its revision; True when it had to change."""
        link = self.root / entry.id
        target = os.path.relpath(revision_dir(self.root, entry), link.parent)
        if link.is_symlink() and os.readlink(link) == target:
            return False
        if link.exists() and not link.is_symlink():
            raise ArtifactStoreError(
                f"{link} is a real folder, not the symlink this store manages",
                fix=f"move it out of {self.root} (the manifest's copy lives under {REVISIONS_DIR}/)",
            )
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".{link.name}.link-tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)
        return True


def _claim_live_lock(staging_root: Path, prefix: str) -> tuple[IO[str], Path]:
    """A new, flock-held `<name>.live` file; its staging folder is `<name>`.

    Created and locked before the folder exists, so cleanup never sees a live folder unlocked.
    A cleanup may flock and unlink a just-created lock file before we lock it: then the inode
    at the path differs from ours (or is gone) and we take a fresh name.
    """
    while True:
        fd, name = tempfile.mkstemp(dir=staging_root, prefix=prefix, suffix=LIVE_SUFFIX)
        handle = os.fdopen(fd, "w")
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            if os.stat(name).st_ino == os.fstat(fd).st_ino:
                return handle, Path(name)
        except FileNotFoundError:
            pass
        handle.close()


@dataclass
class RepairReport:
    """What `repair` changed: symlinks re-pointed, unreferenced revisions and dead staging folders removed."""

    symlinks_fixed: list[str]
    revisions_removed: list[str]
    staging_removed: int

    def summary(self) -> str:
        if not (self.symlinks_fixed or self.revisions_removed or self.staging_removed):
            return "nothing to repair: every symlink matches the manifest and there are no leftovers"
        parts = [
            f"re-pointed {len(self.symlinks_fixed)} symlink(s) ({', '.join(self.symlinks_fixed)})"
            if self.symlinks_fixed
            else "",
            f"removed {len(self.revisions_removed)} unreferenced revision(s)" if self.revisions_removed else "",
            f"removed {self.staging_removed} leftover staging folder(s) of interrupted exports"
            if self.staging_removed
            else "",
        ]
        return "repaired: " + "; ".join(p for p in parts if p)


def _count_dirs(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else 0


def _drop_dead_staging(staging_root: Path) -> None:
    """Deletes staging folders of exports that died (SIGKILL, power loss); live ones hold their flock."""
    if not staging_root.is_dir():
        return
    for folder in staging_root.iterdir():
        if folder.is_dir() and not folder.with_name(folder.name + LIVE_SUFFIX).exists():
            shutil.rmtree(folder, ignore_errors=True)  # a folder is made only after its lock file
    for lock_path in staging_root.glob("*" + LIVE_SUFFIX):
        try:
            fd = os.open(lock_path, os.O_RDWR)  # no O_CREAT: never resurrect a lock file just removed
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # its export is still running
        shutil.rmtree(lock_path.with_name(lock_path.name[: -len(LIVE_SUFFIX)]), ignore_errors=True)
        lock_path.unlink(missing_ok=True)
        os.close(fd)


def _is_revision(path: Path) -> bool:
    return len(path.name) == 16 and all(c in "0123456789abcdef" for c in path.name)
