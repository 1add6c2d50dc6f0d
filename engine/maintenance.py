"""Maintenance jobs: VACUUM, ANALYZE, REINDEX and WAL checkpoints, run for real in the background.

A job runs on its own engine session (user: who asked, application_name "maintenance"), so it
shows in /sessions and its SQL goes through the engine's authorizer and lock manager: VACUUM,
ANALYZE and REINDEX change a schema, so each takes that schema's exclusive lock, and waits for it
behind an open writer of the schema where /transactions/locks shows it waiting. A job works one
schema at a time (every schema when no target is named), one statement per schema, so it never
holds two schemas at once.

Cancel terminates the job's session: a waiting statement stops waiting, a running one is
interrupted (SQLite rolls a VACUUM back, leaving the file as it was), and no further step starts.

`checkpoint` is SQLite's wal_checkpoint(TRUNCATE) through the engine's WAL monitor. It takes no
engine lock: SQLite waits briefly for readers and writers itself and reports `busy` when they kept
it from finishing. A vacuum ends with such a checkpoint of its schema, since in WAL mode VACUUM
writes the rebuilt database into the log and only a checkpoint shrinks the database file; the bytes
reclaimed are the files' sizes before and after.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import apsw

from .audit import audit
from .errors import Conflict, EngineError, InvalidRequest, NotFound, QueryCanceled, SessionTerminated
from .sessions import Session, SessionState
from .storage import BUSY_TIMEOUT_MS
from .wal import CheckpointMode

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("engine.maintenance")

MAX_ACTIVE_JOBS = 4
MAX_JOBS = 200  # finished jobs beyond this are forgotten, oldest first
APPLICATION_NAME = "maintenance"
CANCEL_WAIT_SECONDS = 5.0


class Operation(StrEnum):
    VACUUM = "vacuum"
    ANALYZE = "analyze"
    REINDEX = "reindex"
    CHECKPOINT = "checkpoint"


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # running, and its statement waits for a lock
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


FINISHED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED)


@dataclass(frozen=True)
class Target:
    schema: str | None = None  # None: every schema
    table: str | None = None

    def __str__(self) -> str:
        if self.schema is None:
            return "all schemas"
        return self.schema if self.table is None else f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class Step:
    """What one statement (or checkpoint) of a job did to one schema."""

    schema: str
    table: str | None
    sql: str | None
    started_at: float
    duration_ms: float | None  # None: checkpointed in one pass with other schemas (the job's duration covers it)
    bytes_before: int | None = None  # vacuum: database file + WAL; checkpoint: WAL
    bytes_after: int | None = None
    free_pages_before: int | None = None  # vacuum: pages on the free list, which VACUUM returns
    stat_rows: int | None = None  # analyze: sqlite_stat1 rows for the target afterwards
    indexes: int | None = None  # reindex: indexes rebuilt
    checkpoint_busy: bool | None = None  # checkpoint (and a vacuum's): readers or writers kept it from finishing
    frames_written: int | None = None


@dataclass
class Job:
    job_id: str
    operation: Operation
    target: Target
    requested_by: str
    created_at: float
    session: Session
    state: JobStatus = JobStatus.PENDING
    started_at: float | None = None
    completed_at: float | None = None
    duration_ms: float | None = None
    steps: list[Step] = field(default_factory=list)
    error: str | None = None
    error_code: str | None = None
    canceled_by: str | None = None
    thread: threading.Thread | None = None

    @property
    def status(self) -> JobStatus:
        if self.state is JobStatus.RUNNING and self.session.state is SessionState.WAITING:
            return JobStatus.WAITING
        return self.state

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def bytes_reclaimed(self) -> int | None:
        if self.operation is not Operation.VACUUM or not self.steps:
            return None
        return sum((s.bytes_before or 0) - (s.bytes_after or 0) for s in self.steps)


class MaintenanceService:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._mutex = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._closed = False

    # -- asking ------------------------------------------------------------------------------

    def submit(self, operation: str, target: str | None, by: str) -> Job:
        """Start a job; InvalidRequest for an unknown operation or target, Conflict when busy."""
        what = f"{operation} {target or 'all schemas'}"
        try:
            if operation not in Operation.__members__.values():
                raise InvalidRequest("Invalid maintenance operation", field="operation",
                                     allowed=[o.value for o in Operation])
            op = Operation(operation)
            resolved = self.resolve_target(target)
            if resolved.table is not None and op in (Operation.VACUUM, Operation.CHECKPOINT):
                raise Conflict(f"{op} works on a whole schema file: target the schema {resolved.schema}, "
                               f"not the table {resolved}", field="target")
            with self._mutex:
                if self._closed:
                    raise Conflict("the engine is shutting down")
                active = sum(1 for j in self._jobs.values() if not j.finished)
                if active >= MAX_ACTIVE_JOBS:
                    raise Conflict(f"{active} maintenance jobs are running already; wait for one to finish or "
                                   "cancel one", active_jobs=active)
                # no statement timeout: a VACUUM of a large schema may rightly run for long; cancel stops it
                session = self._engine.connect(user=by, application_name=APPLICATION_NAME, statement_timeout_secs=0)
                job = Job(str(uuid.uuid4()), op, resolved, by, self._engine.clock.time(), session)
                self._jobs[job.job_id] = job
                self._forget_old()
                job.thread = threading.Thread(target=self._run, args=(job,), name=f"engine-maintenance-{job.job_id[:8]}",
                                              daemon=True)
                job.thread.start()
        except EngineError as exc:
            audit(by, "maintenance", what, f"refused: {exc.message}")
            raise
        audit(by, "maintenance", f"{op} {resolved}", "accepted", job_id=job.job_id, session_id=session.id)
        return job

    def cancel(self, job_id: str, by: str) -> Job:
        job = self.job(job_id)
        with self._mutex:
            if job.finished:
                audit(by, "maintenance_cancel", f"job {job_id}", f"refused: already {job.state}")
                raise Conflict(f"maintenance job {job_id} is already {job.state}", status=job.state.value)
            job.canceled_by = job.canceled_by or by
        # the job's own session: ending it stops the waiting or running statement and every later step
        job.session.terminate(by)
        audit(by, "maintenance_cancel", f"job {job_id} ({job.operation} {job.target})")
        if job.thread is not None:
            job.thread.join(CANCEL_WAIT_SECONDS)  # a stopped statement returns at once; a checkpoint soon
        return job

    def job(self, job_id: str) -> Job:
        with self._mutex:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"Maintenance job {job_id} not found", job_id=job_id)
        return job

    def jobs(self) -> list[Job]:
        """Newest first."""
        with self._mutex:
            return list(reversed(self._jobs.values()))

    def close(self) -> None:
        """Stop every job (as canceled by the shutdown) and wait for their threads."""
        with self._mutex:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            if not job.finished:
                job.canceled_by = job.canceled_by or "engine shutdown"
                job.session.terminate("engine shutdown")
        for job in jobs:  # the finished too: one may still be logging its outcome
            if job.thread is not None:
                job.thread.join()

    def targets(self) -> dict[str, list[str]]:
        """What a job can target: every schema with its tables, by name."""
        return {schema: sorted(_tables(path).values(), key=str.lower)
                for schema, path in sorted(self._engine.storage.files().items())}

    def resolve_target(self, text: str | None) -> Target:
        """A schema, `schema.table`, or a table name found in exactly one schema; names as SQLite
        compares them (case-insensitively), given back as they are spelt in the database."""
        if text is None:
            return Target()
        files = self._engine.storage.files()
        schemas = {name.lower(): name for name in files}
        name, dot, table = text.partition(".")
        if dot:
            schema = schemas.get(name.lower())
            if schema is None:
                raise NotFound(f"target {text}: there is no schema {name}", field="target")
            found = _tables(files[schema]).get(table.lower())
            if found is None:
                raise NotFound(f"target {text}: schema {schema} has no table {table}", field="target")
            return Target(schema, found)
        if text.lower() in schemas:
            return Target(schemas[text.lower()])
        holders = [(schema, tables[text.lower()]) for schema, path in files.items()
                   if text.lower() in (tables := _tables(path))]
        if len(holders) > 1:
            raise Conflict(f"target {text}: a table of that name is in schemas "
                           f"{', '.join(sorted(s for s, _ in holders))}; name one as schema.table", field="target")
        if not holders:
            raise NotFound(f"target {text} is neither a schema nor a table", field="target")
        return Target(*holders[0])

    def _forget_old(self) -> None:
        while len(self._jobs) > MAX_JOBS:
            oldest = next((k for k, j in self._jobs.items() if j.finished), None)
            if oldest is None:
                return
            del self._jobs[oldest]

    # -- running -----------------------------------------------------------------------------

    def _run(self, job: Job) -> None:
        clock = self._engine.clock
        job.started_at, start = clock.time(), clock.monotonic()
        job.state = JobStatus.RUNNING
        outcome = JobStatus.FAILED
        try:
            if job.operation is Operation.CHECKPOINT:
                self._checkpoint(job)
            else:
                schemas = [job.target.schema] if job.target.schema else list(self._engine.storage.files())
                run = {Operation.VACUUM: self._vacuum, Operation.ANALYZE: self._analyze,
                       Operation.REINDEX: self._reindex}[job.operation]
                for schema in schemas:
                    if job.canceled_by is not None:
                        raise SessionTerminated(f"maintenance job {job.job_id} was canceled by {job.canceled_by}")
                    job.steps.append(run(job, schema))
            outcome = JobStatus.COMPLETED
            job.canceled_by = None  # a cancel that came after the last step stopped nothing
        except (QueryCanceled, SessionTerminated) as exc:
            job.canceled_by = job.canceled_by or exc.details.get("canceled_by") or exc.details.get("terminated_by")
            job.error = f"canceled by {job.canceled_by}" if job.canceled_by else exc.message
            job.error_code = exc.code
            outcome = JobStatus.CANCELED
        except EngineError as exc:
            job.error, job.error_code = exc.message, exc.code
        except Exception as exc:  # a bug: the job fails visibly, the thread ends cleanly
            log.exception("maintenance job %s failed", job.job_id)
            job.error, job.error_code = repr(exc), "INTERNAL_ERROR"
        finally:
            job.session.close()
            job.duration_ms = (clock.monotonic() - start) * 1000
            job.completed_at = clock.time()
            job.state = outcome  # last: a reader that sees the job finished sees all of it
        result = f"{job.bytes_reclaimed} bytes reclaimed" if job.bytes_reclaimed is not None else job.error or ""
        log.log(logging.WARNING if outcome is JobStatus.FAILED else logging.INFO,
                "maintenance job %s (%s on %s by %s) %s in %.1f ms%s", job.job_id, job.operation, job.target,
                job.requested_by, outcome, job.duration_ms, f": {result}" if result else "",
                extra={"context": {"job_id": job.job_id, "operation": job.operation.value, "target": str(job.target),
                                   "status": outcome.value, "requested_by": job.requested_by,
                                   "duration_ms": round(job.duration_ms, 3), "error_code": job.error_code,
                                   "bytes_reclaimed": job.bytes_reclaimed}})

    def _execute(self, job: Job, sql: str, params: tuple | None = None) -> list[tuple]:
        log.debug("maintenance job %s runs: %s", job.job_id, sql)
        return job.session.execute(sql, params).rows

    def _vacuum(self, job: Job, schema: str) -> Step:
        path = self._engine.storage.files()[schema]
        started_at, start = self._engine.clock.time(), self._engine.clock.monotonic()
        before = _file_bytes(path, "") + _file_bytes(path, "-wal")
        (free_pages,), = self._execute(job, f"PRAGMA {_quote(schema)}.freelist_count")
        sql = f"VACUUM {_quote(schema)}"
        self._execute(job, sql)
        checkpoint = self._engine.wal.checkpoint(CheckpointMode.TRUNCATE, by=_by(job), schemas=[schema]).schemas[0]
        return Step(schema, None, sql, started_at, self._ms_since(start), before,
                    _file_bytes(path, "") + _file_bytes(path, "-wal"), free_pages_before=free_pages,
                    checkpoint_busy=checkpoint.busy, frames_written=checkpoint.frames_written)

    def _analyze(self, job: Job, schema: str) -> Step:
        table = job.target.table
        started_at, start = self._engine.clock.time(), self._engine.clock.monotonic()
        sql = f"ANALYZE {_quote(schema)}" + (f".{_quote(table)}" if table else "")
        self._execute(job, sql)
        stat_rows = 0
        if self._execute(job, f"SELECT 1 FROM {_quote(schema)}.sqlite_master WHERE name = 'sqlite_stat1'"):
            count = f"SELECT count(*) FROM {_quote(schema)}.sqlite_stat1"
            (stat_rows,), = (self._execute(job, count + " WHERE tbl = ?", (table,)) if table
                             else self._execute(job, count))
        return Step(schema, table, sql, started_at, self._ms_since(start), stat_rows=stat_rows)

    def _reindex(self, job: Job, schema: str) -> Step:
        table = job.target.table
        started_at, start = self._engine.clock.time(), self._engine.clock.monotonic()
        indexed = [t for (t,) in self._execute(
            job, f"SELECT tbl_name FROM {_quote(schema)}.sqlite_master WHERE type = 'index'")
            if table is None or t.lower() == table.lower()]
        tables = sorted(set(indexed))
        # REINDEX names a table or an index, not a schema: a schema's indexes are rebuilt table by table
        sql = "; ".join(f"REINDEX {_quote(schema)}.{_quote(t)}" for t in tables) or None
        if sql is not None:
            self._execute(job, sql)
        return Step(schema, table, sql, started_at, self._ms_since(start), indexes=len(indexed))

    def _checkpoint(self, job: Job) -> None:
        files = self._engine.storage.files()
        schemas = [job.target.schema] if job.target.schema else list(files)
        before = {s: _file_bytes(files[s], "-wal") for s in schemas}
        started_at = self._engine.clock.time()
        log.debug("maintenance job %s runs: PRAGMA wal_checkpoint(TRUNCATE) on %s", job.job_id, job.target)
        result = self._engine.wal.checkpoint(CheckpointMode.TRUNCATE, by=_by(job), schemas=schemas)
        duration = result.duration_ms if len(result.schemas) == 1 else None
        for s in result.schemas:
            job.steps.append(Step(s.schema, None, f"PRAGMA {_quote(s.schema)}.wal_checkpoint(TRUNCATE)", started_at,
                                  duration, before[s.schema], _file_bytes(files[s.schema], "-wal"),
                                  checkpoint_busy=s.busy, frames_written=s.frames_written))

    def _ms_since(self, start: float) -> float:
        return (self._engine.clock.monotonic() - start) * 1000


def _by(job: Job) -> str:
    return f"{job.requested_by} (maintenance job {job.job_id})"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _file_bytes(db: Path, suffix: str) -> int:
    try:
        return Path(f"{db}{suffix}").stat().st_size
    except FileNotFoundError:
        return 0


def _tables(db: Path) -> dict[str, str]:
    """A schema's tables, by lower-cased name; read on a connection of its own, outside any session."""
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        conn.set_busy_timeout(BUSY_TIMEOUT_MS)
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' "
                            "ESCAPE '!'").fetchall()
    finally:
        conn.close()
    return {name.lower(): name for (name,) in rows}
