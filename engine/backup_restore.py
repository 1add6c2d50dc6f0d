"""Rebuilding a backup chain into database files, checking them, and putting them in place.

A chain is a full backup followed by the incremental (or differential) backups on the way to the
backup restored, each relative to the one before. The rebuilt files must hash to the SHA-256 the
last backup recorded for its snapshot; anything else is a damaged chain. In-place restore writes
the rebuilt files over the live schemas through SQLite's backup API, so that the WAL and every
other open connection see a consistent change, while exclusive locks on every schema keep the
engine's writers out.
"""

from __future__ import annotations

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
