"""Rebuilding a backup chain into database files, checking them, and putting them in place.

A chain is a full backup followed by the incremental (or differential) backups on the way to the
backup restored, each relative to the one before. The rebuilt files must hash to the SHA-256 the
last backup recorded for its snapshot; anything else is a damaged chain. In-place restore writes
the rebuilt files over the live schemas through SQLite's backup API, so that the WAL and every
other open connection see a consistent change, while exclusive locks on every schema keep the
engine's writers out.

A restore into a new directory is rebuilt and checked in a staging directory beside the target and
only then moved into place, so a failed restore leaves the target as it was. The target must not
be the live data directory under another name (a symlink, a bind mount, `..`), lie inside it, or
hold a live schema file (a symlinked `schemas` folder, a hard link): `live_clash` compares real
paths and (st_dev, st_ino), when the restore is asked for and again just before the files move.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import apsw

from .backup_codec import Codec, CorruptFile, sha256_of, unpack
from .backup_pages import apply
from .backup_records import BackupRecord
from .backup_snapshot import StopSignal, schema_locks
from .errors import NotFound
from .locks import LockMode
from .storage import BUSY_TIMEOUT_MS

if TYPE_CHECKING:
    from .engine import Engine

_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def layout(data_dir: Path, schema: str) -> Path:
    """Where a schema's file lives in a data directory (what Storage expects)."""
    return data_dir / "main.db" if schema == "main" else data_dir / "schemas" / f"{schema}.db"


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def is_live_directory(target: Path, data_dir: Path) -> bool:
    """Whether `target` is the live data directory, by whatever name."""
    live = _identity(data_dir)
    return os.path.realpath(target) == os.path.realpath(data_dir) or (live is not None and _identity(target) == live)


def live_clash(target: Path, live_files: dict[str, Path], data_dir: Path) -> str | None:
    """Why a restore into `target` would write into the live data directory, or None (see the module doc)."""
    real = Path(os.path.realpath(target))
    live = _identity(data_dir)
    if real == Path(os.path.realpath(data_dir)) or (live is not None and any(
            _identity(p) == live for p in (real, *real.parents))):
        return ("target_database is the live data directory: leave it out and set overwrite_existing to restore "
                "in place, which terminates every session first"
                if is_live_directory(target, data_dir)
                else "target_database is inside the live data directory: restore to a directory outside it")
    schema_dir = target / "schemas"
    if _identity(schema_dir) is not None and _identity(schema_dir) == _identity(data_dir / "schemas"):
        return "target_database's schemas folder is the live data directory's: restore to a directory of its own"
    live_ids = {_identity(path): schema for schema, path in live_files.items()}
    live_ids.pop(None, None)
    candidates = [target / "main.db", *(sorted(schema_dir.glob("*.db")) if schema_dir.is_dir() else [])]
    for candidate in candidates:
        schema = live_ids.get(_identity(candidate))
        if schema is not None:
            return (f"target_database holds {candidate.relative_to(target)}, which is schema {schema}'s file in the "
                    "live data directory: restore to a directory of its own")
    return None


def install(staged: dict[str, Path], staging: Path, target: Path) -> None:
    """Move a checked data directory from `staging` to `target` (missing, empty, or overwritten);
    what is left in `staging` is the caller's to remove."""
    if not target.exists():
        os.rename(staging, target)  # one step: the target appears whole or not at all
        return
    clear(target)
    for schema, path in staged.items():
        dest = layout(target, schema)
        dest.parent.mkdir(exist_ok=True)
        os.replace(path, dest)


def clear(data_dir: Path) -> None:
    """Remove a data directory's database files, with their WAL: a stale WAL would be replayed."""
    for db in [data_dir / "main.db", *(data_dir / "schemas").glob("*.db")]:
        for suffix in _SIDE_FILES:
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def materialize(chain: list[BackupRecord], codec_of: Callable[[BackupRecord], Codec], data_dir: Path,
                scratch: Path) -> dict[str, Path]:
    """Rebuild the chain's last snapshot as a data directory; return schema -> database file."""
    files: dict[str, Path] = {}
    for record in chain:
        codec = codec_of(record)
        present: dict[str, Path] = {}
        for f in record.files:
            path = files.get(f.schema) or layout(data_dir, f.schema)
            path.parent.mkdir(parents=True, exist_ok=True)
            if record is chain[0]:
                unpack(record.directory / f.file, path, codec)
            else:
                pages = scratch / f"{record.backup_id}.{f.schema}.pages"
                unpack(record.directory / f.file, pages, codec)
                apply(pages, path)
                pages.unlink()
            present[f.schema] = path
        for schema, path in files.items():
            if schema not in present:  # not in this snapshot any more
                path.unlink()
        files = present
    for f in chain[-1].files:
        actual = sha256_of(files[f.schema])
        if actual != f.sha256:
            raise CorruptFile(f"{f.schema}: the rebuilt database has SHA-256 {actual}, but backup "
                              f"{chain[-1].backup_id} recorded {f.sha256}")
    return files


def integrity(files: dict[str, Path]) -> dict[str, str]:
    """PRAGMA integrity_check of each file: "ok", or SQLite's findings."""
    out = {}
    for schema, path in files.items():
        conn = apsw.Connection(str(path))
        try:
            out[schema] = "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
        except apsw.Error as exc:
            out[schema] = f"cannot be checked: {exc}"
        finally:
            conn.close()
    return out


def replace_live(engine: Engine, files: dict[str, Path], signal: StopSignal, by: str) -> tuple[int, list[str]]:
    """Terminate every session, then write `files` over the live schemas (creating missing ones).

    Returns how many sessions were terminated and the live schemas the backup does not have (left
    as they are)."""
    terminated = 0
    for session in engine.session_objects():
        try:
            engine.terminate(session.id, by=by)
            terminated += 1
        except NotFound:
            pass  # it closed by itself meanwhile
    for schema in files:
        if schema not in engine.storage.files():
            engine.create_schema(schema)
    live = engine.storage.files()
    with schema_locks(engine, list(files), LockMode.EXCLUSIVE, signal, "rdbtop-restore"):
        for schema, path in files.items():
            source = apsw.Connection(str(path))
            dest = apsw.Connection(str(live[schema]))
            try:
                dest.set_busy_timeout(BUSY_TIMEOUT_MS)
                with dest.backup("main", source, "main") as step:
                    step.step(-1)
            finally:
                source.close()
                dest.close()
    return terminated, sorted(set(live) - set(files))
