"""Typed engine settings: defaults, units, ranges, and when a change applies.

A setting applies `live` (at once), for `new_sessions` (sessions opened after the change; open
ones keep what they were opened with), or at `restart`. Values given through the API or read from
the settings file are checked by `check_setting`, whose messages are RustyDB's where RustyDB has
one ("Unknown configuration key: K", "max_connections must be between 1 and 10000", ...).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import InvalidRequest

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
MAX_PATH_CHARS = 4096
ALLOWED_DIRS_ENV = "RDBTOP_ALLOWED_DIRS"


class Applies(StrEnum):
    LIVE = "live"
    NEW_SESSIONS = "new_sessions"
    RESTART = "restart"


def _wal_only(value: bool) -> str | None:
    if value:
        return None
    return ("wal_enabled cannot be false: the engine's lock manager relies on WAL, where readers run "
            "beside a writer; a rollback journal would make every reader wait for writers inside SQLite")


def path_problem(name: str, value: str) -> str | None:
    """Why `value` cannot name a file: RustyDB's "<name> must be ..." message, or None.

    NUL cannot be in a file name; a lone surrogate (JSON's "\\udc80") is not text, and would name a
    file no UTF-8 response can show; control characters, though Linux allows them, only ever arrive
    by mistake or to forge log lines."""
    if len(value) > MAX_PATH_CHARS or not _is_text(value) or any(c < " " or c == "\x7f" for c in value):
        return f"{name} must be a path of at most {MAX_PATH_CHARS} characters without NUL or control characters"
    return None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def allowed_roots(data_dir: Path | None = None) -> list[Path]:
    """Where a path given through the API or the settings may lead: inside the data directory, or
    inside a directory named in RDBTOP_ALLOWED_DIRS (absolute paths, os.pathsep between them), which
    only whoever starts the engine can set. Real paths: symlinks and '..' are resolved."""
    named = [d for d in os.environ.get(ALLOWED_DIRS_ENV, "").split(os.pathsep) if os.path.isabs(d)]
    return [Path(os.path.realpath(d)) for d in ([data_dir] if data_dir is not None else []) + named]


def outside_allowed(name: str, path: str | Path, data_dir: Path | None) -> str | None:
    """RustyDB's "<name> must be ..." message when `path` leads outside `allowed_roots`, else None."""
    real = Path(os.path.realpath(path))
    if any(real == root or root in real.parents for root in allowed_roots(data_dir)):
        return None
    return f"{name} must be inside the data directory or a directory named in {ALLOWED_DIRS_ENV}"


def _backup_dir(value: str) -> str | None:
    problem = path_problem("backup_dir", value)
    if problem or not value:
        return problem
    # relative paths are the data directory's, which this check cannot see: they may not climb out
    if ".." in Path(value).parts or (os.path.isabs(value) and outside_allowed("backup_dir", value, None)):
        return ("backup_dir must be a path inside the data directory (relative, without '..') or inside a "
                f"directory named in {ALLOWED_DIRS_ENV}")
    return None


def _networks(value: str) -> str | None:
    try:
        proxy_networks(value)
    except ValueError as exc:
        return f"trusted_proxies must be a comma-separated list of IP addresses or networks: {exc}"
    return None


_V4 = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}(/(3[0-2]|[12]?[0-9]))?"
_H = "[0-9A-Fa-f]{1,4}"
_V6 = (f"(({_H}:){{7}}{_H}|({_H}:){{1,7}}:|({_H}:){{1,6}}:{_H}|({_H}:){{1,5}}(:{_H}){{1,2}}|({_H}:){{1,4}}(:{_H}){{1,3}}"
       f"|({_H}:){{1,3}}(:{_H}){{1,4}}|({_H}:){{1,2}}(:{_H}){{1,5}}|{_H}:(:{_H}){{1,6}}|:((:{_H}){{1,7}}|:))"
       "(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?")
# what proxy_networks accepts, as a regular expression for the API's schema (the IPv6 forms without
# an embedded IPv4 address or a zone)
PROXY_LIST_PATTERN = f"^ *(({_V4}|{_V6})( *, *({_V4}|{_V6}))*)? *$"


@functools.lru_cache(maxsize=8)
def proxy_networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of a trusted_proxies value ("10.0.0.1, 192.168.0.0/16"); ValueError names a bad one."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())


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
    backup_dir: str = _setting("", doc="where backups are written: relative to the data directory (empty: backups), "
                                           f"or absolute inside a directory named in {ALLOWED_DIRS_ENV}", check=_backup_dir)
    # Authentication.
    trusted_proxies: str = _setting("", check=_networks,
                                    doc="comma-separated addresses or networks of reverse proxies whose "
                                        "X-Forwarded-For is believed; empty: the peer address is the client")
    token_ttl_secs: int = _setting(3600, "s", 60, 86400, doc="lifetime of an access token from login or refresh")
    refresh_max_age_secs: int = _setting(7 * 86400, "s", 300, 365 * 86400,
                                         doc="absolute lifetime of a login: refreshing cannot extend it past this")
    login_failures_allowed: int = _setting(5, "failures", 1, 1000,
                                           doc="failed logins per user and per address before each further "
                                               "attempt must wait (1 s, doubling per failure)")
    login_delay_max_secs: int = _setting(60, "s", 1, 3600, doc="the longest wait between two login attempts")

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
