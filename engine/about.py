"""What this engine is and how it is set: version, build, host, features, effective settings.

Nothing here is a constant pretending to be a reading: what we cannot know (build date, git
commit) is None, and SQLite's own settings are read from SQLite.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import apsw

from .config import EngineConfig
from .engine import VERSION
from .storage import BUSY_TIMEOUT_MS

if TYPE_CHECKING:
    from .engine import Engine

SERVER_NAME = "rdbtop-engine"
LICENSE = "MIT"
# Not recorded by any build step: stay unknown rather than guessed.
BUILD_DATE: str | None = None
GIT_COMMIT: str | None = None


@dataclass(frozen=True)
class SystemInfo:
    os: str
    arch: str
    cpu_cores: int
    hostname: str


@dataclass(frozen=True)
class ServerInfo:
    server_name: str
    version: str
    build_date: str | None
    build_target: str
    git_commit: str | None
    uptime_seconds: float
    started_at: float
    pid: int
    system_info: SystemInfo
    features: list[str]
    license: str
    sqlite_version: str
    apsw_version: str
    python_version: str
    data_directory: str


@dataclass(frozen=True)
class SqliteSettings:
    page_size: int
    journal_mode: str


@dataclass(frozen=True)
class Setting:
    name: str
    value: Any
    source: str  # "config" (EngineConfig), "sqlite" (read from the database) or "fixed" (set in code)
    unit: str
    min: float | None
    max: float | None
    live: bool
    choices: tuple[str, ...]
    default: Any
    doc: str


def sqlite_settings(engine: Engine) -> SqliteSettings:
    """Read from main.db itself (read-only, so this never takes a write lock)."""
    conn = apsw.Connection(str(engine.storage.main_path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        (page_size,), = conn.execute("PRAGMA page_size").fetchall()
        (journal_mode,), = conn.execute("PRAGMA journal_mode").fetchall()
    finally:
        conn.close()
    return SqliteSettings(page_size, journal_mode)


def features(engine: Engine, sqlite: SqliteSettings) -> list[str]:
    """What this engine does now: monitoring features drop out when monitoring is switched off."""
    out = ["locks", "deadlock_detection", "query_cancel", "session_terminate", "api_auth"]
    if sqlite.journal_mode == "wal":
        out.insert(0, "wal")
    if engine.config.monitoring_enabled:
        out += ["ash", "statement_stats", "slow_query_log"]
    return out


def server_info(engine: Engine) -> ServerInfo:
    arch = platform.machine() or "unknown"
    system = platform.system().lower() or sys.platform
    return ServerInfo(
        server_name=SERVER_NAME, version=VERSION, build_date=BUILD_DATE, build_target=f"{arch}-{system}",
        git_commit=GIT_COMMIT, uptime_seconds=engine.uptime_seconds, started_at=engine.started_at, pid=os.getpid(),
        system_info=SystemInfo(system, arch, os.cpu_count() or 1, socket.gethostname()),
        features=features(engine, sqlite_settings(engine)), license=LICENSE,
        sqlite_version=apsw.sqlite_lib_version(), apsw_version=apsw.apsw_version(),
        python_version=platform.python_version(), data_directory=str(engine.storage.data_dir))


@dataclass(frozen=True)
class ConfigView:
    settings: list[Setting]
    features: list[str]


def config_view(engine: Engine) -> ConfigView:
    """Every effective setting: the engine's configuration, then SQLite's, then fixed ones."""
    values = dataclasses.asdict(engine.config)
    out = [Setting(d["name"], values[d["name"]], "config", d["unit"], d["min"], d["max"], d["live"],
                   d["choices"], d["default"], d["doc"]) for d in EngineConfig.describe()]
    sqlite = sqlite_settings(engine)
    out += [
        Setting("page_size", sqlite.page_size, "sqlite", "bytes", None, None, False, (), None,
                "PRAGMA page_size of main.db"),
        Setting("journal_mode", sqlite.journal_mode, "sqlite", "", None, None, False, (), None,
                "PRAGMA journal_mode of main.db"),
        Setting("busy_timeout_ms", BUSY_TIMEOUT_MS, "fixed", "ms", None, None, False, (), None,
                "SQLite's own wait for a file lock; short, as the engine's lock manager decides who waits"),
    ]
    return ConfigView(out, features(engine, sqlite))
