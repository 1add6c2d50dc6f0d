"""The engine's log: the `engine` logger hierarchy into a bounded in-memory ring (read by /logs)
and a rotating file, `<data_dir>/logs/engine.log`.

An Engine installs both handlers when it opens and removes them when it closes. The logger
hierarchy belongs to the process, so with several engines open in one process every engine's log
holds every engine's records, and the `engine` logger passes the most verbose level any of them
asks for (each handler then keeps its own engine's `log_level`). Audit records (`engine.audit`)
are kept whatever the level: the audit trail must not depend on how chatty the log is set.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any, ClassVar, TextIO

from .config import EngineConfig

TRACE = 5
logging.addLevelName(TRACE, "TRACE")


class LogLevel(StrEnum):
    """RustyDB's level names (log_level), plus Python's CRITICAL above error."""

    TRACE = "trace"
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"
    CRITICAL = "critical"


LEVELS = {LogLevel.TRACE: TRACE, LogLevel.DEBUG: logging.DEBUG, LogLevel.INFO: logging.INFO,
          LogLevel.WARN: logging.WARNING, LogLevel.ERROR: logging.ERROR, LogLevel.CRITICAL: logging.CRITICAL}
ROOT = "engine"
AUDIT = "engine.audit"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_control(text: str) -> str:
    """`text` on one line: line breaks and other unprintable characters as escapes, so that text a
    client chose (a username, a path) cannot end a log line and forge the next one."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _ESCAPES.get(c) or c.encode("unicode_escape").decode("ascii")
                   for c in text)


class OneLineFormatter(logging.Formatter):
    """A formatter whose message part is escaped to one line; a traceback still follows on its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return self._style.format(_Escaped(record))


class _Escaped:
    """The record's attributes, with the message escaped (the record itself stays as the handlers got it)."""

    def __init__(self, record: logging.LogRecord) -> None:
        self.__dict__.update(record.__dict__, message=escape_control(record.message))


def level_name(levelno: int) -> LogLevel:
    """The highest level at or below `levelno` (a custom level 25 counts as info)."""
    name = LogLevel.TRACE
    for candidate, number in LEVELS.items():
        if levelno >= number:
            name = candidate
    return name


@dataclass(frozen=True, slots=True)
class LogEntry:
    entry_id: int
    created: float
    levelno: int
    level: LogLevel
    logger: str
    message: str
    context: dict[str, Any]


class _Threshold(logging.Filter):
    """A handler's level that lets audit records through whatever it is."""

    def __init__(self, levelno: int) -> None:
        super().__init__()
        self.levelno = levelno

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.levelno or hasattr(record, "audit")


class LogRing(logging.Handler):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self._entries: deque[LogEntry] = deque(maxlen=capacity)
        self._ids = itertools.count(1)
        self.formatter = logging.Formatter()  # for exception text only

    @property
    def capacity(self) -> int:
        return self._entries.maxlen or 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            context: dict[str, Any] = {"logger": record.name, "thread": record.threadName}
            for extra in (getattr(record, "audit", None), getattr(record, "context", None)):
                if isinstance(extra, dict):
                    context.update((str(k), _plain(v)) for k, v in extra.items())
            if record.exc_info:
                context["exception"] = self.formatter.formatException(record.exc_info)  # type: ignore[union-attr]
            self._entries.append(LogEntry(next(self._ids), record.created, record.levelno, level_name(record.levelno),
                                          record.name, escape_control(record.getMessage()), context))
        except Exception:  # a record that cannot be rendered must not break the code that logged it
            self.handleError(record)

    def resize(self, capacity: int) -> None:
        with self.lock:  # type: ignore[union-attr]
            if capacity != self._entries.maxlen:
                self._entries = deque(self._entries, maxlen=capacity)

    def entries(self) -> list[LogEntry]:
        with self.lock:  # type: ignore[union-attr]
            return list(self._entries)


class _OwnerOnlyFile(RotatingFileHandler):
    """The log file, and each one rotation starts, created readable by its owner only (as PostgreSQL's
    log_file_mode): it names users, client addresses and statements."""

    def _open(self) -> TextIO:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


class EngineLogs:
    _open: ClassVar[list[EngineLogs]] = []
    _registry = threading.Lock()
    _levels_before: ClassVar[tuple[int, int]] = (logging.NOTSET, logging.NOTSET)

    def __init__(self, data_dir: Path, config: EngineConfig) -> None:
        self.path = data_dir / "logs" / "engine.log"
        self.path.parent.mkdir(exist_ok=True)
        self.ring = LogRing(config.log_ring_size)
        self.file = _OwnerOnlyFile(self.path, maxBytes=config.log_file_max_bytes,
                                        backupCount=config.log_file_backups, encoding="utf-8", delay=True)
        self.file.setFormatter(OneLineFormatter(FILE_FORMAT))
        self._threshold = _Threshold(LEVELS[config.log_level])
        self.levelno = self._threshold.levelno
        root = logging.getLogger(ROOT)
        for handler in (self.ring, self.file):
            handler.addFilter(self._threshold)
            root.addHandler(handler)
        with self._registry:
            if not self._open:
                EngineLogs._levels_before = (root.level, logging.getLogger(AUDIT).level)
            self._open.append(self)
            self._set_logger_levels()
        self.closed = False

    def configure(self, config: EngineConfig) -> None:
        """Apply the log settings of a changed configuration at once."""
        self.ring.resize(config.log_ring_size)
        with self.file.lock:  # type: ignore[union-attr]
            self.file.maxBytes, self.file.backupCount = config.log_file_max_bytes, config.log_file_backups
        with self._registry:
            self.levelno = self._threshold.levelno = LEVELS[config.log_level]
            self._set_logger_levels()

    def close(self) -> None:
        if self.closed:
            return
        root = logging.getLogger(ROOT)
        for handler in (self.ring, self.file):
            root.removeHandler(handler)
        self.file.close()
        with self._registry:
            self._open.remove(self)
            self._set_logger_levels()
        self.closed = True

    @classmethod
    def _set_logger_levels(cls) -> None:
        root, audit = logging.getLogger(ROOT), logging.getLogger(AUDIT)
        if not cls._open:
            root.setLevel(cls._levels_before[0])
            audit.setLevel(cls._levels_before[1])
            return
        level = min(logs.levelno for logs in cls._open)
        root.setLevel(level)
        audit.setLevel(min(level, logging.INFO))

    def query(self, min_level: str | None = None, since: float | None = None, search: str | None = None,
              logger: str | None = None) -> list[LogEntry]:
        """Entries that match every given filter, newest first."""
        floor = LEVELS[min_level] if min_level else None
        needle = search.casefold() if search else None
        prefix = f"{logger}."
        out = []
        for e in reversed(self.ring.entries()):
            if floor is not None and e.levelno < floor:
                continue
            if since is not None and e.created < since:
                continue
            if logger and e.logger != logger and not e.logger.startswith(prefix):
                continue
            if needle is not None and needle not in e.message.casefold() and needle not in e.logger.casefold():
                continue
            out.append(e)
        return out


def _plain(value: Any) -> Any:
    """A value JSON can carry as it is, or its repr."""
    if value is None or isinstance(value, (str, int, bool)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return repr(value)

