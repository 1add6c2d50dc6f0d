"""SQLite's write-ahead logs: what each schema's WAL holds, and checkpoints on demand.

SQLite has no log sequence number. Its WAL index (the `-shm` file, laid out in
https://sqlite.org/walformat.html) says how many frames the log holds (mxFrame) and how many of
them a checkpoint has already copied into the database file (nBackfill). Reading it has no side
effect, unlike `PRAGMA wal_checkpoint`, which is what a checkpoint runs.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import apsw

from .clock import Clock
from .storage import BUSY_TIMEOUT_MS, Storage

log = logging.getLogger("engine")

_INDEX_VERSION = 3007000
# WalIndexHdr in native byte order: iVersion, unused, iChange, isInit, bigEndCksum, szPage, mxFrame, nPage
_INDEX_HEADER = struct.Struct("=IIIBBHII")
_INDEX_COPY_BYTES = 48  # the header is stored twice; equal copies mean no writer was mid-update
_BACKFILL = struct.Struct("=I")  # WalCkptInfo.nBackfill, right after the two copies
_INDEX_READ_ATTEMPTS = 3


class CheckpointMode(StrEnum):
    PASSIVE = "passive"    # copy what it can without waiting for readers or writers
    FULL = "full"          # wait (briefly) for writers and readers, then copy everything
    RESTART = "restart"    # FULL, then make the next writer start the log from its beginning
    TRUNCATE = "truncate"  # RESTART, and cut the -wal file to zero bytes


@dataclass(frozen=True)
class WalFile:
    schema: str
    path: Path
    exists: bool
    size_bytes: int
    page_size: int | None
    frames: int | None  # valid frames in the log; None when the WAL index cannot be read
    checkpointed_frames: int | None


@dataclass(frozen=True)
class SchemaCheckpoint:
    schema: str
    busy: bool  # a reader or writer kept it from finishing
    log_frames: int
    checkpointed_frames: int
    frames_written: int
    bytes_written: int


@dataclass(frozen=True)
class Checkpoint:
    mode: CheckpointMode
    started_at: float
    completed_at: float
    duration_ms: float
    schemas: tuple[SchemaCheckpoint, ...]
    checkpointed_frames: int  # left in the logs as copied, after the checkpoint

    @property
    def frames_written(self) -> int:
        return sum(s.frames_written for s in self.schemas)

    @property
    def bytes_written(self) -> int:
        return sum(s.bytes_written for s in self.schemas)

    @property
    def busy(self) -> bool:
        return any(s.busy for s in self.schemas)


@dataclass(frozen=True)
class WalState:
    files: list[WalFile]
    last_checkpoint: Checkpoint | None
    checkpoint_in_progress: bool

    @property
    def frames(self) -> int | None:
        return _total(f.frames for f in self.files)

    @property
    def checkpointed_frames(self) -> int | None:
        return _total(f.checkpointed_frames for f in self.files)


class WalMonitor:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        self._one_at_a_time = threading.Lock()
        self._in_progress = False
        self.last_checkpoint: Checkpoint | None = None

    def status(self) -> WalState:
        return WalState([self._file(schema, path) for schema, path in self._storage.files().items()],
                        self.last_checkpoint, self._in_progress)

    def checkpoint(self, mode: CheckpointMode = CheckpointMode.PASSIVE, by: str = "engine",
                   schemas: Collection[str] | None = None) -> Checkpoint:
        """Checkpoint every schema's WAL (or only those of `schemas`); a second caller waits for the
        first to finish."""
        with self._one_at_a_time:
            self._in_progress = True
            try:
                started_at, start = self._clock.time(), self._clock.monotonic()
                done = tuple(self._checkpoint(schema, path, mode) for schema, path in self._storage.files().items()
                             if schemas is None or schema in schemas)
                after = self.status().checkpointed_frames or 0
                result = Checkpoint(mode, started_at, self._clock.time(), (self._clock.monotonic() - start) * 1000,
                                    done, after)
                self.last_checkpoint = result
                log.info("WAL checkpoint (%s) by %s: %d frames copied in %.1f ms%s", mode.value, by,
                         result.frames_written, result.duration_ms, "; busy" if result.busy else "")
                return result
            finally:
                self._in_progress = False

    def _checkpoint(self, schema: str, path: Path, mode: CheckpointMode) -> SchemaCheckpoint:
        before = self._file(schema, path)
        conn = apsw.Connection(str(path))
        try:
            conn.set_busy_timeout(BUSY_TIMEOUT_MS)
            busy, log, copied = conn.execute(f"PRAGMA wal_checkpoint({mode.value.upper()})").fetchall()[0]
        except (apsw.BusyError, apsw.LockedError):
            busy, log, copied = 1, before.frames or 0, before.checkpointed_frames or 0
        finally:
            conn.close()
        already = before.checkpointed_frames or 0
        if not busy and log == 0 and copied == 0:
            # RESTART and TRUNCATE reset the log once all of it was copied, so all of it was copied now
            written = max(0, (before.frames or 0) - already)
        else:
            written = max(0, copied - already)
        return SchemaCheckpoint(schema, bool(busy), log, copied, written, written * (before.page_size or 0))

    def _file(self, schema: str, path: Path) -> WalFile:
        wal = Path(f"{path}-wal")
        page_size = _page_size(path)
        try:
            size = wal.stat().st_size
        except FileNotFoundError:
            return WalFile(schema, wal, False, 0, page_size, 0, 0)
        index = _read_index(Path(f"{path}-shm"))
        frames, copied = index if index is not None else (None, None)
        return WalFile(schema, wal, True, size, page_size, frames, copied)


def _read_index(shm: Path) -> tuple[int, int] | None:
    """(mxFrame, nBackfill) from the WAL index, or None when it is missing or not initialised."""
    for _ in range(_INDEX_READ_ATTEMPTS):
        try:
            with shm.open("rb") as f:
                raw = f.read(2 * _INDEX_COPY_BYTES + _BACKFILL.size)
        except FileNotFoundError:
            return None
        if len(raw) < 2 * _INDEX_COPY_BYTES + _BACKFILL.size:
            return None
        if raw[:_INDEX_COPY_BYTES] != raw[_INDEX_COPY_BYTES:2 * _INDEX_COPY_BYTES]:
            continue  # a writer is between the two copies; read again
        version, _, _, initialised, _, _, max_frame, _ = _INDEX_HEADER.unpack_from(raw)
        if version != _INDEX_VERSION or not initialised:
            return None
        (backfill,) = _BACKFILL.unpack_from(raw, 2 * _INDEX_COPY_BYTES)
        return max_frame, backfill
    return None


def _page_size(db: Path) -> int | None:
    """From the database header: a big-endian u16 at offset 16, where 1 means 65536."""
    try:
        with db.open("rb") as f:
            f.seek(16)
            raw = f.read(2)
    except FileNotFoundError:
        return None
    if len(raw) < 2:
        return None
    value = int.from_bytes(raw, "big")
    return 65536 if value == 1 else value or None


def _total(values: Iterable[int | None]) -> int | None:
    items = list(values)
    return None if any(v is None for v in items) else sum(v for v in items if v is not None)
