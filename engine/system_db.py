"""`system.db`, the engine's own catalogue: users, roles, API keys, alert rules and silences, incidents.

Several services keep their own connection to it, so writers meet. Every write transaction goes
through `write`, which takes SQLite's write lock first (BEGIN IMMEDIATE): a transaction that reads
and later writes would otherwise fail at once with "database is locked" when another connection
committed in between (WAL cannot move a reader's snapshot forward), whatever the busy timeout.
With the lock taken first, writers queue on the busy timeout instead. Work that takes long and
needs no lock (hashing a password) is done before the transaction starts.

A write the disk cannot take becomes `StorageFull` (or `StorageFailure` for another I/O error),
which the API answers with 507 (503) naming the cause.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import apsw

from .errors import StorageFailure, StorageFull

FILE_NAME = "system.db"
# Writers hold the lock for a few statements, never across slow work: waiting this long means a stuck writer.
BUSY_TIMEOUT_MS = 10_000


def open_system_db(data_dir: Path) -> apsw.Connection:
    """A connection to `<data_dir>/system.db`, which is created readable by its owner only: it holds
    password hashes and webhook URLs. SQLite gives the -wal and -shm files the mode of the database."""
    path = data_dir / FILE_NAME
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    conn = apsw.Connection(str(path))
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    return conn


@contextmanager
def write(conn: apsw.Connection) -> Iterator[apsw.Connection]:
    """One write transaction that holds the write lock from its start; rolled back on any error."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
            raise
    except apsw.FullError as exc:
        raise StorageFull(f"the disk holding {FILE_NAME} is full: {exc}", file=FILE_NAME) from exc
    except apsw.IOError as exc:
        raise StorageFailure(f"cannot write {FILE_NAME}: {exc}", file=FILE_NAME) from exc
