"""Backups: full, incremental and differential; verified, restored, scheduled, and retained.

- A full backup is a consistent copy of every schema taken with SQLite's online backup API while
  the workload runs (backup_snapshot); an incremental one stores only the pages changed since the
  previous backup of its chain, a differential one those changed since the chain's full backup
  (backup_pages). Each may be compressed (gzip, zstd) and encrypted (AES-256-GCM, with the key
  from RDBTOP_BACKUP_KEY or `backup.key` in the data directory; see backup_codec).
- Backups, restores and their checks are jobs run one at a time by one worker thread: a backup
  goes pending -> in_progress -> completed or failed, with real sizes and durations, and leaves a
  manifest (backup_records) that a restarted engine reads back.
- Verify checks every stored file of the chain against its SHA-256, rebuilds the chain in a
  scratch directory, checks the rebuilt files against the snapshot's SHA-256 and runs
  `PRAGMA integrity_check`. Restore goes to a new data directory, to a scratch one (verify_only),
  or in place after terminating every session; `point_in_time` picks the latest backup of the
  chain taken at or before it (backup_restore).
- The schedule's cron expressions are checked every SCHEDULE_CHECK_SECONDS (`tick`); retention
  deletes backups past their `retention_until`, except those a kept backup needs and the newest
  full backup.

Events: "backup_completed" and "backup_failed", with a copy of the BackupRecord. Alert metrics:
"backup_age_hours" and "backup_failed" (see `metrics`). Every backup, restore, verify, delete and
schedule change is audited.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import queue
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import apsw

from .audit import audit
from .backup_codec import NO_KEY, BackupKey, Codec, CorruptFile, load_key, pack, sha256_of, unpack
from .backup_pages import scan
from .backup_records import (MANIFEST, BackupFile, BackupRecord, BackupStatus, BackupType, RestoreMode,
                             RestoreRecord)
from .backup_restore import install, integrity, is_live_directory, live_clash, materialize, replace_live
from .backup_schedule import BackupSchedule, load_state, next_run, save_state
from .backup_snapshot import StopSignal, Stopped, take
from .config import outside_allowed, path_problem
from .errors import Conflict, EngineError, InvalidInput, NotFound

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("engine.backup")

SCHEDULE_CHECK_SECONDS = 5.0
RESTORE_HISTORY = 100
SCHEDULER = "scheduler"
_EXPECTED = (EngineError, CorruptFile, Stopped, OSError, apsw.Error)  # failures with a message of their own


@dataclass(frozen=True)
class FileCheck:
    backup_id: str
    schema: str
    file: str
    checksum_ok: bool
    error: str | None


@dataclass
class Verification:
    backup_id: str
    status: str  # "passed" or "failed"
    verified_at: float
    duration_ms: float
    backups_checked: list[str]
    files: list[FileCheck] = field(default_factory=list)
    integrity: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class BackupService:
    def __init__(self, engine: Engine) -> None:
        from .engine import VERSION  # engine.py imports this module: read the version once both exist

        self._engine = engine
        self._clock = engine.clock
        self._version = VERSION
        self._data_dir = engine.storage.data_dir
        # the schedule as GET shows it must be valid to PUT back, so the default destination exists
        self.default_destination.mkdir(parents=True, exist_ok=True)
        self._mutex = threading.RLock()
        self._records: dict[str, BackupRecord] = {}
        self._restores: OrderedDict[str, RestoreRecord] = OrderedDict()
        self._schedule, self._destinations = load_state(self._data_dir)
        self._last_check = self._clock.time()
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._signal = StopSignal(engine)
        self._closed = False
        for root in dict.fromkeys([self.default_destination, self._root(self._schedule), *self._destinations]):
            self._load(root)

    @property
    def default_destination(self) -> Path:
        """The `backup_dir` setting (relative to the data directory), else `<data_dir>/backups`."""
        return self._data_dir / (self._engine.config.backup_dir or "backups")

    def _root(self, schedule: BackupSchedule) -> Path:
        """Where the schedule's backups go: "" follows the default destination."""
        return Path(schedule.destination) if schedule.destination else self.default_destination

    # -- life cycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker; a job still running fails with "the engine is shutting down"."""
        with self._mutex:
            self._closed = True
            worker = self._worker
        self._signal.stop()
        if worker is not None:
            self._jobs.put(None)
            worker.join()

    def _submit(self, job: Callable[[], None]) -> None:
        with self._mutex:
            if self._closed:
                raise Conflict("the engine is shutting down")
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="engine-backup", daemon=True)
                self._worker.start()
            self._jobs.put(job)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:  # jobs record their own failures; this is a bug, and the next job still runs
                log.exception("backup job failed")

    def _load(self, root: Path) -> None:
        if not root.is_dir():
            return
        for directory in sorted(root.iterdir()):
            if not (directory / MANIFEST).is_file():
                continue
            try:
                record = BackupRecord.load(directory)
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("ignoring backup directory %s: unreadable manifest: %s", directory, exc)
                continue
            if not record.finished:
                self._fail(record, "interrupted: the engine stopped before the backup finished")
                record.save()
            self._records[record.backup_id] = record

    # -- reading -----------------------------------------------------------------------------

    def backups(self) -> list[BackupRecord]:
        """Every backup, newest first."""
        with self._mutex:
            return sorted((copy.deepcopy(r) for r in self._records.values()),
                          key=lambda r: (r.start_time, r.requested_at), reverse=True)

    def backup(self, backup_id: str) -> BackupRecord:
        with self._mutex:
            return copy.deepcopy(self._get(backup_id))

    def _get(self, backup_id: str) -> BackupRecord:
        record = self._records.get(backup_id)
        if record is None:
            raise NotFound(f"Backup '{backup_id}' not found", backup_id=backup_id)
        return record

    def restores(self) -> list[RestoreRecord]:
        with self._mutex:
            return [copy.deepcopy(r) for r in reversed(self._restores.values())]

    def restore_status(self, restore_id: str) -> RestoreRecord:
        with self._mutex:
            restore = self._restores.get(restore_id)
            if restore is None:
                raise NotFound(f"Restore '{restore_id}' not found", restore_id=restore_id)
            return copy.deepcopy(restore)

    def metrics(self) -> dict[str, float | None]:
        """The alert metrics: hours since the last completed backup (None if there never was one),
        and 1.0 when the most recent finished backup failed."""
        return {"backup_age_hours": self.backup_age_hours(), "backup_failed": self.backup_failed()}

    def backup_age_hours(self) -> float | None:
        with self._mutex:
            done = [r.completed_at for r in self._records.values()
                    if r.status is BackupStatus.COMPLETED and r.completed_at is not None]
        return None if not done else max(0.0, self._clock.time() - max(done)) / 3600

    def backup_failed(self) -> float:
        with self._mutex:
            finished = [r for r in self._records.values() if r.finished and r.completed_at is not None]
        if not finished:
            return 0.0
        return 1.0 if max(finished, key=lambda r: r.completed_at or 0.0).status is BackupStatus.FAILED else 0.0

    # -- backing up --------------------------------------------------------------------------

    def start_backup(self, backup_type: BackupType, by: str, *, compression: bool | None = None,
                     compression_algorithm: str | None = None, encryption: bool | None = None,
                     destination: str | None = None, retention_days: int | None = None,
                     description: str | None = None) -> BackupRecord:
        """Queue a backup; `None` options take the schedule's settings. Returns it as `pending`."""
        try:
            record = self._new_record(backup_type, by, compression, compression_algorithm, encryption,
                                      destination, retention_days, description)
            with self._mutex:
                self._records[record.backup_id] = record
            self._submit(lambda: self._run_backup(record))
        except EngineError as exc:
            audit(by, "backup", backup_type.value, f"refused: {exc.message}")
            raise
        return self.backup(record.backup_id)

    def _new_record(self, backup_type: BackupType, by: str, compression: bool | None,
                    compression_algorithm: str | None, encryption: bool | None, destination: str | None,
                    retention_days: int | None, description: str | None) -> BackupRecord:
        with self._mutex:
            schedule = self._schedule
            if self._closed:
                raise Conflict("the engine is shutting down")
            if backup_type is not BackupType.FULL and not any(
                    r.backup_type is BackupType.FULL and r.status is not BackupStatus.FAILED
                    for r in self._records.values()):
                raise Conflict(f"an {backup_type} backup needs a full backup to build on, and there is none: "
                                   "take a full backup first", field="backup_type")
        # naming an algorithm asks for compression, whatever the schedule's default
        compress = (compression_algorithm is not None or schedule.compression) if compression is None else compression
        if compression_algorithm is not None and not compress:
            raise InvalidInput("compression_algorithm needs compression", field="compression_algorithm")
        encrypt = schedule.encryption if encryption is None else encryption
        key = self._key() if encrypt else None
        if encrypt and key is None:
            raise Conflict(NO_KEY, field="encryption")  # the server's setup, not the request, lacks the key
        days = schedule.retention_days if retention_days is None else retention_days
        if days <= 0:
            raise InvalidInput("retention_days must be greater than 0", field="retention_days")
        root = self._destination(destination, schedule)
        backup_id = f"backup_{uuid.uuid4()}"
        record = BackupRecord(
            backup_id, backup_type, BackupStatus.PENDING, by, self._clock.time(), str(root / backup_id),
            (compression_algorithm or schedule.compression_algorithm) if compress else None, encrypt, days,
            description, self._version, key_id=key.key_id if key else None,
            base_backup_id=backup_id if backup_type is BackupType.FULL else None)
        record.directory.mkdir()
        record.save()
        return record

    def _destination(self, destination: str | None, schedule: BackupSchedule) -> Path:
        """The directory a backup goes to: operators may pick only among those an admin allowed."""
        allowed = [self.default_destination, self._root(schedule), *self._destinations]
        if destination is None:
            root = self._root(schedule)
        else:
            normal = os.path.normpath(destination)
            root = next((p for p in allowed if os.path.normpath(p) == normal), None)  # type: ignore[assignment]
            if root is None or not os.path.isabs(destination):
                raise Conflict("destination must be the schedule's destination or a directory that already "
                                   "holds backups; an admin sets a new one with PUT /api/v1/backup/schedule",
                                   field="destination")
        root.mkdir(parents=True, exist_ok=True)
        if root not in self._destinations:
            with self._mutex:
                self._destinations.append(root)
                save_state(self._data_dir, self._schedule, self._destinations)
        return root

    def _key(self) -> BackupKey | None:
        return load_key(self._data_dir)

    def _codec(self, record: BackupRecord) -> Codec:
        return Codec(record.compression, record.encrypted, self._key() if record.encrypted else None)

    def _run_backup(self, record: BackupRecord) -> None:
        with self._mutex:
            if self._records.get(record.backup_id) is not record:
                return  # deleted while it waited
            record.status, record.started_at = BackupStatus.IN_PROGRESS, self._clock.time()
        record.save()
        started = self._clock.monotonic()
        scratch = record.directory / ".work"
        error: str | None = None
        try:
            self._signal.check()
            scratch.mkdir()
            codec = self._codec(record)
            record.key_id = codec.key.key_id if codec.key else None  # the key in use now, if it changed
            previous = self._previous_digests(record, scratch)
            snapshot = take(self._engine, scratch, self._signal, lambda done, total: self._progress(record, done, total))
            files = [self._store(record, codec, schema, path, previous.get(schema), scratch)
                     for schema, path in snapshot.files.items()]
        except Exception as exc:  # a failed backup is recorded with its reason, never lost with the thread
            if not isinstance(exc, _EXPECTED):
                log.exception("backup %s failed", record.backup_id)
            error = _reason(exc)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        with self._mutex:  # all at once, manifest included: whoever sees the outcome can rely on it
            if error is None:
                record.files, record.snapshot_at, record.bytes_done = files, snapshot.taken_at, record.bytes_total
                record.status, record.completed_at = BackupStatus.COMPLETED, self._clock.time()
            else:
                self._fail(record, error)
            record.duration_ms = round((self._clock.monotonic() - started) * 1000, 3)
            record.save()
        self._finished(record)

    def _fail(self, record: BackupRecord, reason: str) -> None:
        record.status, record.error_message = BackupStatus.FAILED, reason
        record.completed_at = self._clock.time()
        record.files = []
        for path in record.directory.iterdir() if record.directory.is_dir() else ():
            if path.name != MANIFEST:
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def _finished(self, record: BackupRecord) -> None:
        with self._mutex:
            done = copy.deepcopy(record)
        ok = record.status is BackupStatus.COMPLETED
        log.log(logging.INFO if ok else logging.ERROR, "%s backup %s %s%s", record.backup_type, record.backup_id,
                record.status, "" if ok else f": {record.error_message}")
        audit(record.requested_by, "backup", record.backup_id, "ok" if ok else f"failed: {record.error_message}",
              backup_type=record.backup_type.value, stored_bytes=done.stored_bytes, duration_ms=record.duration_ms)
        self._engine.events.publish("backup_completed" if ok else "backup_failed", done)

    def _progress(self, record: BackupRecord, done: int, total: int) -> None:
        record.bytes_done, record.bytes_total = done, total

    def _previous_digests(self, record: BackupRecord, scratch: Path) -> dict[str, tuple[int, bytes]]:
        """The page digests an incremental or differential backup compares against, by schema."""
        if record.backup_type is BackupType.FULL:
            return {}
        with self._mutex:
            completed = [r for r in self._records.values() if r.status is BackupStatus.COMPLETED]
            fulls = [r for r in completed if r.backup_type is BackupType.FULL]
            if not fulls:
                raise InvalidInput(f"no completed full backup to base the {record.backup_type} backup on")
            full = max(fulls, key=_snapshot_at)
            parent = full if record.backup_type is BackupType.DIFFERENTIAL else max(
                (r for r in completed if r.base_backup_id == full.backup_id), key=_snapshot_at)
            record.base_backup_id, record.parent_backup_id = full.backup_id, parent.backup_id
        codec = self._codec(parent)
        out = {}
        for f in parent.files:
            plain = scratch / f"{f.schema}.previous-digests"
            try:
                unpack(parent.directory / f.digests_file, plain, codec)
            except (OSError, CorruptFile) as exc:
                raise CorruptFile(f"cannot read the page digests of backup {parent.backup_id}: {exc}") from exc
            out[f.schema] = (f.page_size, plain.read_bytes())
            plain.unlink()
        return out

    def _store(self, record: BackupRecord, codec: Codec, schema: str, snapshot: Path,
               previous: tuple[int, bytes] | None, scratch: Path) -> BackupFile:
        """Keep one schema's copy (full) or its changed pages, and its page digests."""
        if record.backup_type is BackupType.FULL:
            content, kind = snapshot, "db"
            result = scan(snapshot)
        else:
            content, kind = scratch / f"{schema}.pages", "pages"
            page_size, digests = previous or (0, None)
            result = scan(snapshot, digests, page_size, diff_to=content)
        stored = f"{schema}.{kind}{codec.suffix}"
        content_bytes = content.stat().st_size
        if codec == (None, False, None) and content is snapshot:
            os.replace(snapshot, record.directory / stored)  # stored as copied: no second pass over the data
            stored_bytes, stored_sha = content_bytes, result.sha256
        else:
            stored_bytes, stored_sha = pack(content, record.directory / stored, codec)
        digests = scratch / f"{schema}.digests"
        digests.write_bytes(result.digests)
        digests_file = f"{schema}.digests{codec.suffix}"
        _, digests_sha = pack(digests, record.directory / digests_file, codec)
        for path in (snapshot, content, digests):
            path.unlink(missing_ok=True)
        return BackupFile(schema=schema, file=stored, digests_file=digests_file, database_bytes=result.size,
                          page_size=result.page_size, page_count=result.page_count,
                          pages_stored=result.pages_written, content_bytes=content_bytes, stored_bytes=stored_bytes,
                          sha256=result.sha256, stored_sha256=stored_sha, digests_sha256=digests_sha)

    # -- verifying and restoring -------------------------------------------------------------

    def chain(self, backup_id: str, point_in_time: float | None = None,
              refusal: str = "Cannot restore from incomplete backup") -> list[BackupRecord]:
        """The backups a restore applies, full first: up to `backup_id`, or with `point_in_time`
        up to the latest backup of its chain taken at or before that time. Times are whole seconds,
        as the API shows them: a backup's own snapshot_time names it."""
        with self._mutex:
            record = self._get(backup_id)
            if record.status is not BackupStatus.COMPLETED:  # the backup's state, not the request, is wrong
                raise Conflict(refusal, field="backup_id", status=record.status.value)
            if point_in_time is not None:
                members = [r for r in self._records.values() if r.status is BackupStatus.COMPLETED
                           and r.base_backup_id == record.base_backup_id
                           and math.floor(_snapshot_at(r)) <= point_in_time]
                if not members:
                    raise Conflict(f"point_in_time {int(point_in_time)} is before the first backup of the chain "
                                       f"of {backup_id}", field="point_in_time")
                record = max(members, key=_snapshot_at)
            out = [record]
            while out[-1].parent_backup_id is not None:
                parent = self._records.get(out[-1].parent_backup_id)
                if parent is None or parent.status is not BackupStatus.COMPLETED:
                    raise InvalidInput(f"backup {out[-1].parent_backup_id}, which {out[-1].backup_id} builds on, "
                                       "is missing", field="backup_id")
                out.append(parent)
            return [copy.deepcopy(r) for r in reversed(out)]

    def verify(self, backup_id: str, by: str) -> Verification:
        """Check a backup's chain now: stored checksums, the rebuilt files' checksums, integrity."""
        try:
            chain = self.chain(backup_id, refusal="Cannot verify an incomplete backup")
        except EngineError as exc:
            audit(by, "verify_backup", backup_id, f"refused: {exc.message}")
            raise
        started, now = self._clock.monotonic(), self._clock.time()
        result = Verification(backup_id, "passed", now, 0.0, [r.backup_id for r in chain])
        for record in chain:
            for f in record.files:
                for name, expected in ((f.file, f.stored_sha256), (f.digests_file, f.digests_sha256)):
                    error = _checksum_error(record.directory / name, expected)
                    result.files.append(FileCheck(record.backup_id, f.schema, name, error is None, error))
                    if error:
                        result.errors.append(f"{record.backup_id}/{name}: {error}")
        if not result.errors:
            scratch = Path(tempfile.mkdtemp(prefix=".verify-", dir=chain[-1].directory.parent))
            try:
                result.integrity = integrity(materialize(chain, self._codec, scratch / "data", scratch))
                result.errors += [f"{schema}: integrity check: {verdict}"
                                  for schema, verdict in result.integrity.items() if verdict != "ok"]
            except _EXPECTED as exc:
                result.errors.append(_reason(exc))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        result.status = "failed" if result.errors else "passed"
        result.duration_ms = round((self._clock.monotonic() - started) * 1000, 3)
        with self._mutex:
            record = self._records.get(backup_id)
            if record is not None:
                record.verification = {"verified_at": result.verified_at, "status": result.status,
                                       "errors": list(result.errors), "verified_by": by}
                record.save()
        audit(by, "verify_backup", backup_id, result.status if not result.errors else f"failed: {result.errors[0]}",
              backups_checked=result.backups_checked)
        return result

    def restore(self, backup_id: str, by: str, *, target_database: str | None = None,
                point_in_time: float | None = None, verify_only: bool = False,
                overwrite_existing: bool = False) -> RestoreRecord:
        """Queue a restore of `backup_id`'s chain (see `chain`); returns it as `in_progress`."""
        try:
            chain = self.chain(backup_id, point_in_time)
            mode, target = self._restore_target(target_database, verify_only, overwrite_existing)
            message = (f"Backup verification started for backup {backup_id}" if verify_only
                       else f"Restore started from backup {backup_id}")
            restore = RestoreRecord(f"restore_{uuid.uuid4()}", backup_id, mode, BackupStatus.IN_PROGRESS, by,
                                    self._clock.time(), message, str(target) if target else None, point_in_time,
                                    [r.backup_id for r in chain], _snapshot_at(chain[-1]))
            with self._mutex:
                self._restores[restore.restore_id] = restore
                while len(self._restores) > RESTORE_HISTORY:
                    self._restores.popitem(last=False)
            self._submit(lambda: self._run_restore(restore, chain))
        except EngineError as exc:
            audit(by, "restore", backup_id, f"refused: {exc.message}")
            raise
        return self.restore_status(restore.restore_id)

    def _restore_target(self, target_database: str | None, verify_only: bool,
                        overwrite_existing: bool) -> tuple[RestoreMode, Path | None]:
        if verify_only:
            if target_database is not None or overwrite_existing:
                raise InvalidInput("verify_only restores into a scratch directory: leave out target_database and "
                                   "overwrite_existing", field="verify_only")
            return RestoreMode.VERIFY_ONLY, None
        if target_database is None:
            if overwrite_existing:
                return RestoreMode.IN_PLACE, None
            raise InvalidInput("say where to restore: target_database (a new data directory), overwrite_existing "
                               "(in place, terminating every session) or verify_only", field="target_database")
        problem = path_problem("target_database", target_database)
        if problem:
            raise InvalidInput(problem, field="target_database")
        target = Path(target_database)
        if not target.is_absolute():
            raise InvalidInput("target_database must be the absolute path of a new data directory",
                               field="target_database")
        if overwrite_existing and is_live_directory(target, self._data_dir):
            return RestoreMode.IN_PLACE, None
        self._refuse_live(target)
        problem = outside_allowed("target_database", target, self._data_dir)
        if problem:  # the server's configuration (where it may write) refuses it, not the request's form
            raise Conflict(problem, field="target_database")
        if not target.parent.is_dir():
            raise InvalidInput("target_database's parent directory must exist", field="target_database")
        if target.exists() and not overwrite_existing and (not target.is_dir() or any(target.iterdir())):
            raise InvalidInput("target_database must not exist yet or be an empty directory (or set "
                               "overwrite_existing to replace the database files there)", field="target_database")
        return RestoreMode.NEW_DIRECTORY, target

    def _refuse_live(self, target: Path) -> None:
        clash = live_clash(target, self._engine.storage.files(), self._data_dir)
        if clash:
            raise Conflict(clash, field="target_database")

    def _run_restore(self, restore: RestoreRecord, chain: list[BackupRecord]) -> None:
        started = self._clock.monotonic()
        staging: list[Path] = []  # removed at the end, whatever happens
        status, error = BackupStatus.COMPLETED, None
        try:
            self._signal.check()
            scratch = Path(tempfile.mkdtemp(prefix=".restore-", dir=chain[-1].directory.parent))
            staging.append(scratch)
            target = Path(restore.target or "")
            data_dir = scratch / "data"
            if restore.mode is RestoreMode.NEW_DIRECTORY:
                # beside the target, so that moving the checked files there is a rename on one file system
                staging.append(Path(tempfile.mkdtemp(prefix=".restore-", dir=target.parent)))
                data_dir = staging[-1] / "data"
            files = materialize(chain, self._codec, data_dir, scratch)
            checked = integrity(files)
            with self._mutex:
                restore.integrity, restore.schemas = checked, sorted(files)
            damaged = [f"{schema}: {verdict}" for schema, verdict in checked.items() if verdict != "ok"]
            if damaged:
                raise CorruptFile("integrity check failed: " + "; ".join(damaged))
            if restore.mode is RestoreMode.NEW_DIRECTORY:
                self._refuse_live(target)  # the target may have been swapped for a symlink meanwhile
                install(files, data_dir, target)
            if restore.mode is RestoreMode.IN_PLACE:
                terminated, left = replace_live(self._engine, files, self._signal, restore.requested_by)
                with self._mutex:
                    restore.terminated_sessions, restore.schemas_not_in_backup = terminated, left
            message = {RestoreMode.VERIFY_ONLY: f"Backup {restore.backup_id} verified: it restores and passes "
                                                "the integrity check",
                       RestoreMode.NEW_DIRECTORY: f"Restored backup {restore.backup_id} into {restore.target}",
                       RestoreMode.IN_PLACE: f"Restored backup {restore.backup_id} in place"}[restore.mode]
        except Exception as exc:  # recorded with its reason; the worker goes on with the next job
            if not isinstance(exc, _EXPECTED):
                log.exception("restore %s failed", restore.restore_id)
            status, error = BackupStatus.FAILED, _reason(exc)
            message = f"Restore from backup {restore.backup_id} failed"
        finally:
            for path in staging:
                shutil.rmtree(path, ignore_errors=True)
        with self._mutex:  # all at once: a reader that sees the outcome sees its times too
            restore.status, restore.error_message, restore.message = status, error, message
            restore.completed_at = self._clock.time()
            restore.duration_ms = round((self._clock.monotonic() - started) * 1000, 3)
        audit(restore.requested_by, "restore", restore.backup_id, "ok" if error is None else f"failed: {error}",
              restore_id=restore.restore_id, mode=restore.mode.value, target_database=restore.target,
              backups_applied=restore.backups_applied, terminated_sessions=restore.terminated_sessions)

    # -- deleting ----------------------------------------------------------------------------

    def delete(self, backup_id: str, by: str) -> None:
        try:
            with self._mutex:
                record = self._get(backup_id)
                if record.status is BackupStatus.IN_PROGRESS:
                    raise Conflict(f"Backup '{backup_id}' is in progress; delete it once it has finished",
                                   backup_id=backup_id)
                dependants = sorted(r.backup_id for r in self._records.values()
                                    if r.parent_backup_id == backup_id and r.status is not BackupStatus.FAILED)
                if dependants:
                    raise Conflict(f"Backup '{backup_id}' is the base of {', '.join(dependants)}; delete those first",
                                   backup_id=backup_id, dependants=dependants)
                del self._records[backup_id]
        except EngineError as exc:
            audit(by, "delete_backup", backup_id, f"refused: {exc.message}")
            raise
        shutil.rmtree(record.directory, ignore_errors=True)
        audit(by, "delete_backup", backup_id, backup_type=record.backup_type.value, status=record.status.value)

    def apply_retention(self) -> list[str]:
        """Delete backups past their retention, except what a kept backup builds on and the newest full."""
        now = self._clock.time()
        with self._mutex:
            records = self._records
            needed: set[str] = set()
            for r in records.values():
                if r.status is BackupStatus.COMPLETED and r.retention_until > now:
                    needed |= self._lineage(r)
            fulls = [r for r in records.values()
                     if r.status is BackupStatus.COMPLETED and r.backup_type is BackupType.FULL]
            if fulls:
                needed |= {max(fulls, key=_snapshot_at).backup_id}
            doomed = [r for r in records.values()
                      if r.finished and r.retention_until <= now and r.backup_id not in needed]
            for r in doomed:
                del records[r.backup_id]
        for r in doomed:
            shutil.rmtree(r.directory, ignore_errors=True)
            audit(SCHEDULER, "delete_backup", r.backup_id, reason="retention", backup_type=r.backup_type.value,
                  retention_until=int(r.retention_until))
        return [r.backup_id for r in doomed]

    def _lineage(self, record: BackupRecord) -> set[str]:
        out, current = set(), record
        while current is not None and current.backup_id not in out:
            out.add(current.backup_id)
            current = self._records.get(current.parent_backup_id or "")
        return out

    # -- the schedule ------------------------------------------------------------------------

    def schedule(self) -> BackupSchedule:
        with self._mutex:
            return replace(self._schedule, destination=str(self._root(self._schedule)))

    def set_schedule(self, schedule: BackupSchedule, by: str) -> BackupSchedule:
        try:
            schedule.validated(key_configured=not schedule.encryption or self._key() is not None)
            problem = outside_allowed("destination", schedule.destination, self._data_dir)
            if problem:
                raise Conflict(problem, field="destination")
        except EngineError as exc:
            audit(by, "backup_schedule", "schedule", f"refused: {exc.message}")
            raise
        if os.path.normpath(schedule.destination) == os.path.normpath(self.default_destination):
            schedule = replace(schedule, destination="")  # keeps following the backup_dir setting
        with self._mutex:
            old, self._schedule = self.schedule(), schedule
            self._last_check = self._clock.time()  # a changed schedule runs from now on, nothing missed
            root = self._root(schedule)
            if root not in self._destinations:
                self._destinations.append(root)
            save_state(self._data_dir, schedule, self._destinations)
            new = self.schedule()
        changes = {k: v for k, v in asdict(new).items() if asdict(old)[k] != v}
        audit(by, "backup_schedule", "schedule", **changes)
        return new

    def check_schedule(self) -> BackupRecord | None:
        """Start the backup whose cron time passed since the previous check (a full one when both did,
        or when there is no full backup to build on); return it, or None."""
        now = self._clock.time()
        with self._mutex:
            schedule, last, self._last_check = self._schedule, self._last_check, now
            busy = any(not r.finished for r in self._records.values())
            has_full = any(r.backup_type is BackupType.FULL and r.status is BackupStatus.COMPLETED
                           for r in self._records.values())
        if not schedule.enabled:
            return None
        full_due = next_run(schedule.full_backup_cron, last) <= now
        if not full_due and next_run(schedule.incremental_backup_cron, last) > now:
            return None
        kind = BackupType.FULL if full_due or not has_full else BackupType.INCREMENTAL
        if busy:
            log.warning("scheduled %s backup skipped: the previous backup has not finished", kind)
            return None
        try:
            return self.start_backup(kind, SCHEDULER, description=f"scheduled {kind} backup")
        except EngineError as exc:
            return self._record_refusal(kind, exc.message)

    def _record_refusal(self, kind: BackupType, reason: str) -> BackupRecord:
        """A scheduled backup that could not even start is a failed backup, for alerts and incidents."""
        root = self.default_destination
        root.mkdir(parents=True, exist_ok=True)
        backup_id = f"backup_{uuid.uuid4()}"
        now = self._clock.time()
        record = BackupRecord(backup_id, kind, BackupStatus.FAILED, SCHEDULER, now, str(root / backup_id), None, False,
                              self._schedule.retention_days, f"scheduled {kind} backup", self._version,
                              completed_at=now, duration_ms=0.0, error_message=reason)
        record.directory.mkdir()
        record.save()
        with self._mutex:
            self._records[backup_id] = record
        self._finished(record)
        return self.backup(backup_id)

    def tick(self) -> None:
        """The periodic service's pass: run a due cron, then apply retention."""
        self.check_schedule()
        self.apply_retention()


def _snapshot_at(record: BackupRecord) -> float:
    return record.snapshot_at if record.snapshot_at is not None else record.requested_at


def _checksum_error(path: Path, expected: str) -> str | None:
    if not path.is_file():
        return "missing"
    actual = sha256_of(path)
    return None if actual == expected else f"checksum mismatch: SHA-256 is {actual}, the manifest says {expected}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, EngineError):
        return exc.message
    return str(exc) if isinstance(exc, _EXPECTED) and str(exc) else repr(exc)
