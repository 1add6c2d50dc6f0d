"""Typed engine settings: defaults, units, ranges, and when a change applies.

A setting applies `live` (at once), for `new_sessions` (sessions opened after the change; open
ones keep what they were opened with), or at `restart`. Values given through the API or read from
the settings file are checked by `check_setting`, whose messages are RustyDB's where RustyDB has
one ("Unknown configuration key: K", "max_connections must be between 1 and 10000", ...).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import InvalidRequest

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
MAX_PATH_CHARS = 4096


class Applies(StrEnum):
    LIVE = "live"
    NEW_SESSIONS = "new_sessions"
    RESTART = "restart"


def _wal_only(value: bool) -> str | None:
    if value:
        return None
    return ("wal_enabled cannot be false: the engine's lock manager relies on WAL, where readers run "
            "beside a writer; a rollback journal would make every reader wait for writers inside SQLite")


def _path(value: str) -> str | None:
    if "\0" in value or len(value) > MAX_PATH_CHARS:
        return f"backup_dir must be a path of at most {MAX_PATH_CHARS} characters without NUL"
    return None


def _setting(default: Any, unit: str = "", lo: float | None = None, hi: float | None = None,
             applies: Applies = Applies.LIVE, choices: tuple[str, ...] = (), doc: str = "",
             check: Callable[[Any], str | None] | None = None) -> Any:
    return field(default=default, metadata={"unit": unit, "min": lo, "max": hi, "live": applies is not Applies.RESTART,
                                            "applies": applies, "choices": choices, "doc": doc, "check": check})


@dataclass
class EngineConfig:
    # RustyDB's keys (same names and defaults).
    max_connections: int = _setting(1000, "connections", 1, 10000, doc="sessions allowed at once")
    buffer_pool_size: int = _setting(1024, "pages", 16, 1_048_576, Applies.NEW_SESSIONS,
                                     doc="SQLite page cache per session (cache_size)")
    wal_enabled: bool = _setting(True, applies=Applies.RESTART, check=_wal_only,
                                 doc="journal_mode=WAL; the engine needs it, so false is refused")
    checkpoint_interval_secs: int = _setting(300, "s", 1, 86400, doc="automatic (passive) WAL checkpoint period")
    log_level: str = _setting("info", choices=LOG_LEVELS,
                              doc="least severe engine log record kept; audit records are kept at any level")
    query_timeout_secs: float = _setting(30.0, "s", 0, 86400, doc="0 disables the statement timeout")
    # Ours.
    lock_timeout_ms: int = _setting(10_000, "ms", 0, 3_600_000, doc="0 waits as long as the statement may")
    deadlock_check_interval_ms: int = _setting(1000, "ms", 10, 60_000)
    slow_query_threshold_ms: float = _setting(1000.0, "ms", 0, 3_600_000)
    slow_query_log_size: int = _setting(500, "entries", 1, 100_000)
    ash_interval_ms: int = _setting(1000, "ms", 10, 60_000)
    ash_retention_secs: int = _setting(3600, "s", 10, 7 * 86400)
    ash_max_samples: int = _setting(500_000, "samples", 1000, 10_000_000)
    stats_max_fingerprints: int = _setting(5000, "fingerprints", 10, 1_000_000)
    monitoring_enabled: bool = _setting(True, doc="statement profiling, statistics and ASH")
    log_ring_size: int = _setting(10_000, "entries", 100, 1_000_000, doc="log records kept in memory for /logs")
    log_file_max_bytes: int = _setting(10 * 1024 * 1024, "bytes", 64 * 1024, 1024 ** 3,
                                       doc="logs/engine.log rotates at this size")
    log_file_backups: int = _setting(5, "files", 0, 100, doc="rotated log files kept")
    alert_eval_interval_ms: int = _setting(1000, "ms", 100, 60_000, doc="how often alert rules are evaluated")
    alert_default_cooldown_secs: float = _setting(300.0, "s", 0, 86400,
                                                  doc="cooldown of a new alert rule that names none")
    alert_history_size: int = _setting(1000, "alerts", 10, 100_000, doc="alerts kept, resolved ones dropped first")
    backup_dir: str = _setting("", doc="where backups are written; empty means <data_dir>/backups", check=_path)

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        return [{"name": f.name, "default": f.default, **{k: v for k, v in f.metadata.items() if k != "check"}}
                for f in dataclasses.fields(cls)]

    def validated(self) -> EngineConfig:
        """Check every field's type and range; raise InvalidInput naming the first bad key."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, check_setting(f.name, getattr(self, f.name)))
        return self

    def replace(self, **changes: Any) -> EngineConfig:
        checked = {name: check_setting(name, value) for name, value in changes.items()}
        return dataclasses.replace(self, **checked)


SETTINGS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(EngineConfig)}


def applies(name: str) -> Applies:
    return SETTINGS[name].metadata["applies"]


def check_setting(name: str, value: Any) -> Any:
    """The value as the setting holds it (an integral float for a float setting becomes a float),
    or InvalidRequest with RustyDB's message naming the key."""
    f = SETTINGS.get(name)
    if f is None:
        raise InvalidRequest(f"Unknown configuration key: {name}", field=name)
    meta = f.metadata
    kind = type(f.default)
    lo, hi = meta["min"], meta["max"]
    if kind is bool:
        if not isinstance(value, bool):
            raise InvalidRequest(f"{name} must be a boolean (true or false)", field=name)
    elif kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON does not tell 5 from 5.0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidRequest(f"{name} must be a {'positive' if lo else 'non-negative'} integer", field=name)
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidRequest(f"{name} must be a number", field=name)
        value = float(value)
    elif not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string", field=name)
    if lo is not None and hi is not None and not lo <= value <= hi:
        raise InvalidRequest(f"{name} must be between {_number(lo)} and {_number(hi)}", field=name)
    if meta["choices"] and value not in meta["choices"]:
        raise InvalidRequest(f"{name} must be one of: {', '.join(meta['choices'])}", field=name)
    refusal = meta["check"] and meta["check"](value)
    if refusal:
        raise InvalidRequest(refusal, field=name)
    return value


def _number(x: float) -> str:
    return str(int(x)) if x == int(x) else str(x)
