"""Where the data lives: a data directory with `main.db` and one file per further schema.

Every session opens its own apsw connection on `main.db` and ATTACHes each schema file, so
SQLite's one-writer-per-file rule is per schema, and WAL lets readers run beside a writer.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import apsw

from .errors import Conflict, InvalidInput

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_RESERVED = {"main", "temp"}
# Short on purpose: the lock manager decides who waits, so a wait inside SQLite is a bug to see.
BUSY_TIMEOUT_MS = 200


class CommitGate:
    """The one thing a consistent copy of several schemas needs from the writers: a moment when no
    commit is under way in any file.

    In WAL mode SQLite commits a transaction that wrote several schema files one file after the
    other, and a reader fixes each file's snapshot when it first reads it; an uncommitted write is
    invisible either way. So a backup does not wait for write transactions, only for commits: a
    session's connection enters the gate from SQLite's commit hook (just before the first file
    commits) and leaves when its statement returns (every file committed, or the commit failed).
    `shut` waits until no commit is under way, keeps new ones at the hook while its body opens the
    read transaction on every file, and lets them go; a commit waits at most that long.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._under_way = 0
        self._shut = 0
        self.held_back = 0  # commits waiting at the shut gate now
        self.held_back_total = 0  # commits that ever waited there
        self.longest_hold_seconds = 0.0  # the longest such wait

    def watch(self, conn: apsw.Connection) -> CommitPass:
        """Make `conn`'s commits pass the gate; the caller calls `leave()` after each statement."""
        entry = CommitPass(self)
        conn.set_commit_hook(entry)
        return entry

    def _enter(self) -> None:
        with self._cond:
            if self._shut:
                self.held_back += 1
                self.held_back_total += 1
                since = time.monotonic()
                while self._shut:
                    self._cond.wait()
                self.held_back -= 1
                self.longest_hold_seconds = max(self.longest_hold_seconds, time.monotonic() - since)
            self._under_way += 1

    def _leave(self) -> None:
        with self._cond:
            self._under_way -= 1
            if not self._under_way:
                self._cond.notify_all()

    @contextmanager
    def shut(self, patience: float) -> Iterator[bool]:
        """Keep commits out for the body; yields whether none was under way within `patience`
        seconds (if not, the body must not rely on the moment: commits are let go again)."""
        deadline = time.monotonic() + patience
        with self._cond:
            self._shut += 1  # a count: two callers shutting at once each keep it shut to their end
        try:
            with self._cond:
                while self._under_way and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                quiet = not self._under_way
            yield quiet
        finally:
            with self._cond:
                self._shut -= 1
                self._cond.notify_all()


class CommitPass:
    """One connection's way through the gate: SQLite's commit hook, and `leave`."""

    __slots__ = ("_gate", "inside")

    def __init__(self, gate: CommitGate) -> None:
        self._gate = gate
        self.inside = False

    def __call__(self) -> bool:
        if not self.inside:  # a text of several autocommit writes commits several times in one call
            self._gate._enter()
            self.inside = True
        return False  # let the commit go ahead

    def leave(self) -> None:
        if self.inside:
            self.inside = False
            self._gate._leave()


class Storage:
    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.temporary = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="rdbtop-engine-") if data_dir is None else data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.schema_dir = self.data_dir / "schemas"
        self.schema_dir.mkdir(exist_ok=True)
        self.main_path = self.data_dir / "main.db"
        self._mutex = threading.Lock()
        self.commits = CommitGate()
        self.schemas: dict[str, Path] = {p.stem: p for p in sorted(self.schema_dir.glob("*.db"))}
        conn = apsw.Connection(str(self.main_path))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.close()

    def open_connection(self, cache_pages: int) -> apsw.Connection:
        conn = apsw.Connection(str(self.main_path))
        conn.set_busy_timeout(BUSY_TIMEOUT_MS)
        conn.execute(f"PRAGMA cache_size={int(cache_pages)}; PRAGMA synchronous=NORMAL;"
                     "PRAGMA foreign_keys=ON").fetchall()
        for name, path in list(self.schemas.items()):
            self.attach(conn, name, path)
        return conn

    @staticmethod
    def attach(conn: apsw.Connection, name: str, path: Path) -> None:
        """ATTACH a schema with main's settings: pragmas are per database, and an attached file
        would otherwise run with synchronous=FULL (an fsync per commit) and the default cache."""
        (cache_pages,) = conn.execute("PRAGMA main.cache_size").fetchone()
        conn.execute("ATTACH DATABASE ? AS " + name, (str(path),))
        conn.execute(f"PRAGMA {name}.cache_size={int(cache_pages)}; PRAGMA {name}.synchronous=NORMAL").fetchall()

    def create_schema(self, name: str) -> Path:
        if not _SCHEMA_NAME.fullmatch(name) or name.lower() in _RESERVED:
            raise InvalidInput(f"invalid schema name {name!r}", field="name")
        with self._mutex:
            if name in self.schemas:
                raise Conflict(f"schema {name} already exists")
            path = self.schema_dir / f"{name}.db"
            conn = apsw.Connection(str(path))
            conn.execute("PRAGMA journal_mode=WAL")
            conn.close()
            self.schemas[name] = path
        return path

    def files(self) -> dict[str, Path]:
        """Every schema's database file, `main` included."""
        return {"main": self.main_path, **self.schemas}

    def not_in_wal(self) -> list[str]:
        """Schemas whose file header says rollback journal (bytes 18-19 of the SQLite header: 1, not
        2): something outside the engine changed journal_mode. A file too short for a header has
        not been written yet, and is not counted."""
        out = []
        for name, path in self.files().items():
            with open(path, "rb") as f:
                header = f.read(20)
            if len(header) == 20 and header[18] != 2:
                out.append(name)
        return out

    def size_bytes(self) -> int:
        total = 0
        for path in self.files().values():
            for suffix in ("", "-wal"):
                f = Path(str(path) + suffix)
                if f.exists():
                    total += f.stat().st_size
        return total

    def remove_if_temporary(self) -> None:
        if self.temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)
