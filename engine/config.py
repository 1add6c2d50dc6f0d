"""Typed engine settings: defaults, units, ranges and whether a change applies live."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInput

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")


def _setting(default: Any, unit: str = "", lo: float | None = None, hi: float | None = None,
             live: bool = True, choices: tuple[str, ...] = (), doc: str = "") -> Any:
    return field(default=default, metadata={"unit": unit, "min": lo, "max": hi, "live": live,
                                            "choices": choices, "doc": doc})


@dataclass
class EngineConfig:
    # RustyDB's keys (same names and defaults).
    max_connections: int = _setting(1000, "connections", 1, 10000, doc="sessions allowed at once")
    buffer_pool_size: int = _setting(1024, "pages", 16, 1_048_576,
                                     doc="SQLite page cache per session (cache_size)")
    wal_enabled: bool = _setting(True, live=False, doc="journal_mode=WAL")
    checkpoint_interval_secs: int = _setting(300, "s", 1, 86400, doc="automatic WAL checkpoint period")
    log_level: str = _setting("info", choices=LOG_LEVELS)
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

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        return [{"name": f.name, "default": f.default, **f.metadata} for f in dataclasses.fields(cls)]

    def validated(self) -> EngineConfig:
        """Check every field's type and range; raise InvalidInput naming the first bad key."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = type(f.default)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, f.name, value)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise InvalidInput(f"{f.name} must be of type {kind.__name__}", field=f.name)
            meta = f.metadata
            if meta["min"] is not None and value < meta["min"]:
                raise InvalidInput(f"{f.name} must be at least {meta['min']}", field=f.name)
            if meta["max"] is not None and value > meta["max"]:
                raise InvalidInput(f"{f.name} must be at most {meta['max']}", field=f.name)
            if meta["choices"] and value not in meta["choices"]:
                raise InvalidInput(f"{f.name} must be one of {', '.join(meta['choices'])}", field=f.name)
        return self

    def replace(self, **changes: Any) -> EngineConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InvalidInput(f"unknown setting {sorted(unknown)[0]}", field=sorted(unknown)[0])
        return dataclasses.replace(self, **changes).validated()
