"""Where the data lives: a data directory with `main.db` and one file per further schema.

Every session opens its own apsw connection on `main.db` and ATTACHes each schema file, so
SQLite's one-writer-per-file rule is per schema, and WAL lets readers run beside a writer.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from pathlib import Path

import apsw

from .errors import Conflict, InvalidInput

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_RESERVED = {"main", "temp"}
# Short on purpose: the lock manager decides who waits, so a wait inside SQLite is a bug to see.
BUSY_TIMEOUT_MS = 200


class Storage:
    def __init__(self, data_dir: str | Path | None = None) -> None:
        self.temporary = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="rdbtop-engine-") if data_dir is None else data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.schema_dir = self.data_dir / "schemas"
        self.schema_dir.mkdir(exist_ok=True)
        self.main_path = self.data_dir / "main.db"
        self._mutex = threading.Lock()
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
