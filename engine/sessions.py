"""Sessions: one apsw connection each, with state, counters and the statement it runs.

A session is driven by one caller thread at a time (`execute`); other threads (the ASH sampler,
the API, an operator cancelling) only read its fields or ask it to stop.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import apsw

from .errors import (Conflict, DeadlockDetected, EngineError, LockTimeout, QueryTimeout, SerializationFailure,
                     SessionBusy, SessionTerminated, SqlError)
from .locks import LockMode, Resource, WaitEdge
from .statements import AccessRecorder, Result, SqlText, Statement, map_sqlite_error, plan_text, transaction_control
from .stats import record_call
from .transactions import Transaction

if TYPE_CHECKING:
    from .engine import Engine

# The progress handler runs every this many VM steps: cheap, yet stops a runaway scan quickly.
PROGRESS_STEPS = 1000
# Page-cache misses within one progress window above which the statement is counted as doing IO.
IO_MISSES_PER_WINDOW = 8
# SQLite's per-statement profile (trace_v2) costs more than the rest of the monitoring together, so
# it is taken on a sample: the first executions of every SQL text, then one statement in 1,024 (a
# profiled statement costs some 13 us more, about 0.01 us a statement spread over 1,024).
PROFILE_FIRST = 8
PROFILE_EVERY_MASK = 1023
# How often a session folds its connection's cumulative page-cache counters into the totals.
CACHE_READ_SECONDS = 0.25
# Reading a thread's CPU clock is a system call (about 1 us on a virtual machine, as much as 5 % of
# a point lookup), so a text is timed on every execution only when its timed executions average
# at least this; a lighter one is timed on its profiled executions and counted at their mean on
# the others, and one that runs past PROGRESS_STEPS is timed from then on.
HEAVY_CPU_MS = 0.1
# Each thread's CPU clock, kept with the thread (the API runs a session's calls on any of its worker
# threads, and a thread id is reused once its thread ended, its clock no longer valid)
_this_thread = threading.local()


class SessionState(StrEnum):
    IDLE = "idle"
    ACTIVE = "active"
    IDLE_IN_TRANSACTION = "idle in transaction"
    WAITING = "waiting"


class WaitClass(StrEnum):
    CPU = "CPU"
    LOCK = "Lock"
    IO = "IO"
    IDLE_IN_TRANSACTION = "Idle in transaction"
    TIMEOUT = "Timeout"  # sleep(): waiting out a time on purpose, as PostgreSQL's pg_sleep shows


@dataclass
class SessionCounters:
    statements: int = 0
    rows_read: int = 0
    rows_written: int = 0
    errors: int = 0
    commits: int = 0
    rollbacks: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    pages_written: int = 0
    cpu_time_ms: float = 0.0  # see HEAVY_CPU_MS: measured, or a light text's measured mean


class SessionInfo(NamedTuple):
    """A consistent-enough copy of a session's fields for readers in other threads; a tuple,
    since the API builds one per session per request."""

    session_id: int
    username: str
    application_name: str
    client_address: str
    state: SessionState
    connected_at: float
    last_activity: float
    state_since: float
    wait_class: str | None
    wait_event: str | None
    blocking_session: int | None
    blocking_sessions: tuple[int, ...]
    current_query_id: str | None
    current_sql: str | None
    sql_id: str | None
    query_started_at: float | None
    transaction_id: int | None
    transaction_started_at: float | None
    counters: SessionCounters
    last_sql: str | None = None  # the statement running, else the last one it ran (what pg_stat_activity shows)


class Session:
    def __init__(self, engine: Engine, session_id: int, user: str, application_name: str,
                 client_address: str, statement_timeout_secs: float | None = None) -> None:
        self.engine = engine
        self.statement_timeout_secs = statement_timeout_secs
        self.id = session_id
        self.user = user
        self.application_name = application_name
        self.client_address = client_address
        now = engine.clock.time()
        self.connected_at = self.last_activity = self.state_since = now
        self.state = SessionState.IDLE
        self.wait_class: str | None = None
        self.wait_event: str | None = None
        self.counters = SessionCounters()
        self.txn: Transaction | None = None
        self.statement: Statement | None = None
        self.last_sql: str | None = None
        self.closed = False
        self.terminated_by: str | None = None
        self._use = threading.Lock()
        self._stop = threading.Lock()  # orders cancel/terminate against a statement's start and end
        self._stmt_txn: Transaction | None = None
        self._in_sqlite = False
        self._window_misses = 0
        self._cache_read_at = 0.0
        self._access = AccessRecorder()
        self._conn = engine.storage.open_connection(engine.config.buffer_pool_size)
        self._commit_pass = engine.storage.commits.watch(self._conn)
        self._cursor = self._conn.cursor()
        self._stats = engine.stats
        self._accs = engine.stats.accumulators()
        self._traced = True  # whether the exec trace (lock taking) is installed on the connection
        self._run_pure = True  # this run's statements only read
        self._run_ddl = False  # this run changed a schema
        self._attached = len(engine.storage.schemas)
        self._conn.authorizer = self._access
        self._conn.exec_trace = self._before_statement
        self._conn.set_progress_handler(self._progress, PROGRESS_STEPS)
        self._conn.create_scalar_function("sleep", self._sleep, 1)
        self._wake = threading.Event()  # set by cancel and terminate: ends a sleep() at once
        # the connection's own set-up (pragmas, ATTACH) read pages too; count from here on
        self._cache_base = self._cache_status()
        self._cache_seen = self._cache_base

    # -- reading -----------------------------------------------------------------------------

    @property
    def blocking_sessions(self) -> tuple[int, ...]:
        """Who this session waits for now (the holders change as the queue moves)."""
        txn = self._stmt_txn
        if self.state is not SessionState.WAITING or txn is None:
            return ()
        return self.engine.locks.blockers_of(txn.id)

    @property
    def current_sql(self) -> str | None:
        stmt = self.statement
        return stmt.sql if stmt else None

    def cpu_time_ms(self) -> float:
        """CPU time of this session's statements, the running one's so far included."""
        total = self.counters.cpu_time_ms
        stmt = self.statement
        running = stmt.cpu_so_far_ms() if stmt is not None and stmt.cpu_ms is None else None
        return total if running is None else total + running

    def info(self) -> SessionInfo:
        stmt, txn, blockers = self.statement, self.txn, self.blocking_sessions
        counters = dataclasses.replace(self.counters)
        if stmt is not None:
            counters.cpu_time_ms = self.cpu_time_ms()
        return SessionInfo(
            self.id, self.user, self.application_name, self.client_address, self.state,
            self.connected_at, self.last_activity, self.state_since, self.wait_class, self.wait_event,
            blockers[0] if blockers else None, blockers,
            stmt.query_id if stmt else None, stmt.sql if stmt else None, stmt.sql_id if stmt else None,
            stmt.started_at if stmt else None, txn.id if txn else None, txn.started_at if txn else None,
            counters, self.last_sql)

    # -- state -------------------------------------------------------------------------------

    def _set_state(self, state: SessionState, wait_class: str | None = None, wait_event: str | None = None) -> None:
        if state is not self.state:
            self.state_since = self.engine.clock.time()
        self.state = state
        self.wait_class = wait_class
        self.wait_event = wait_event

    def lock_wait_began(self, wait_event: str) -> None:
        self._set_state(SessionState.WAITING, WaitClass.LOCK, wait_event)

    def lock_wait_ended(self) -> None:
        self._set_state(SessionState.ACTIVE, WaitClass.CPU)

    # -- executing ---------------------------------------------------------------------------

    def execute(self, sql: str, params: Any = None, *, max_rows: int | None = None,
                timeout_secs: float | None = None) -> Result:
        """Run one SQL text (one or more statements) and return the last statement's rows.

        `timeout_secs` may shorten the configured statement timeout for this call, never extend it.
        """
        if not isinstance(sql, str) or not sql or sql.isspace():
            raise SqlError("empty SQL text")
        if not self._use.acquire(False):
            raise SessionBusy(f"session {self.id} is already running a statement")
        try:
            if self.terminated_by is not None or self.closed:
                self._check_open()
            return self._run(sql, params, max_rows, timeout_secs)
        finally:
            if self.terminated_by is not None and not self.closed:
                self._close_now()
            self._use.release()

    def _check_open(self) -> None:
        if self.terminated_by is not None:
            raise SessionTerminated(f"session {self.id} was terminated by {self.terminated_by}",
                                    terminated_by=self.terminated_by)
        if self.closed:
            raise SessionTerminated(f"session {self.id} is closed")

    def _run(self, sql: str, params: Any, max_rows: int | None, timeout_secs: float | None) -> Result:
        engine = self.engine
        text = engine.sql_texts.get(sql)
        control = text.control
        if control is not None:
            self._check_transaction_control(*control)
        if len(engine.storage.schemas) != self._attached and self.txn is None:
            self._attach_new_schemas()
        pending = self._access.pending
        if pending.reads or pending.writes:
            # a statement SQLite re-prepared mid-step left its tables here; they are not this one's
            self._access.pending = type(pending)()
        timeout = self.statement_timeout_secs
        if timeout is None:
            timeout = engine.config.query_timeout_secs
        if timeout_secs is not None and (timeout <= 0 or timeout_secs < timeout):
            timeout = timeout_secs
        clock = engine.clock
        start = clock.monotonic()
        now = clock.time()
        stmt = Statement(self.id, sql, now, start, start + timeout if timeout > 0 else None, text.sql_id, self.user)
        with self._stop:
            self.statement = stmt
            self.last_sql = sql
            self._in_sqlite = True
            if self.terminated_by is not None:  # terminate() came while this call was starting
                stmt.stop_reason, stmt.stopped_by = "terminated", self.terminated_by
        counters = self.counters
        counters.statements += 1
        if self.state is not SessionState.ACTIVE:
            self.state_since = now
        self.state = SessionState.ACTIVE
        if control is not None and control[0] == "commit":
            self.wait_class, self.wait_event = WaitClass.IO, "WALWrite"
        else:
            self.wait_class, self.wait_event = WaitClass.CPU, None
        self._stmt_txn = self.txn
        conn = self._conn
        # A text known to only read needs no lock outside a transaction: skip the exec trace's
        # Python call. Cancel and timeout still reach it through interrupt() and the progress handler.
        traced = not (text.lock_free and self.txn is None)
        if traced is not self._traced:
            conn.exec_trace = self._before_statement if traced else None
            self._traced = traced
        self._run_pure, self._run_ddl = True, False
        self._window_misses = -1  # the statement's first progress call sets its baseline
        monitoring = engine.config.monitoring_enabled
        profile = monitoring and (text.profiled < PROFILE_FIRST or not counters.statements & PROFILE_EVERY_MASK)
        if profile:
            text.profiled += 1
            stmt.cache_base = self._cache_status()
            conn.trace_v2(apsw.SQLITE_TRACE_PROFILE, self._profile)
        if monitoring and (profile or text.cpu_heavy or not text.cpu_timed):
            self._start_cpu_timing(stmt)
        columns: list[str] | None = None  # None: no result set (a write, DDL, an empty result)
        declared_types: list[str | None] | None = None
        rows: list[tuple[Any, ...]] | None = None
        has_more = False
        error: EngineError | None = None
        # an untraced text only reads: it changes nothing, so the two total_changes() calls are skipped
        changes_before = conn.total_changes() if traced else 0
        cursor = self._cursor
        try:
            cursor.execute(sql, params)
            if text.columns is not None:
                description = True
                columns, declared_types = text.columns, text.declared_types or []
            else:
                try:
                    description = cursor.get_description()
                except apsw.ExecutionCompleteError:  # no row to come: a write, DDL, or an empty result
                    description = None
                if description is not None:
                    columns = [d[0] for d in description]
                    declared_types = [d[1] for d in description]
            if description is not None:
                if max_rows is None:
                    rows = cursor.fetchall()
                else:
                    rows = []
                    for row in cursor:
                        if len(rows) >= max_rows:
                            has_more = True
                            # ends the statement and its read snapshot now, not at the next call
                            cursor.close()
                            self._cursor = conn.cursor()
                            break
                        rows.append(row)
        except EngineError as exc:
            error = exc
        except apsw.Error as exc:
            error = map_sqlite_error(exc, stmt)
        except (TypeError, ValueError, OverflowError) as exc:  # bad parameters
            error = SqlError(f"bad parameters: {exc}")
        finally:
            with self._stop:
                self._in_sqlite = False
            self._commit_pass.leave()  # whatever this text committed is in every file now
        if monitoring:
            if stmt.cpu_start is None:  # untimed: a light text, counted at its measured mean
                stmt.cpu_ms = text.cpu_mean_ms
            else:
                self._count_cpu(stmt, text)
        if profile:
            conn.trace_v2(0, None)
            stmt.vm_steps = stmt.vm_steps or 0  # profiled, even if SQLite sent no event (an error)
            self._cache_so_far(stmt, self._cache_status())
            if error is None and text.single and control is None:
                self._plan(stmt, params, text.profiled > PROFILE_FIRST)
        if error is None and text.lock_free is None and traced:
            text.lock_free = self._run_pure
            if text.single and columns:
                text.columns, text.declared_types = columns, declared_types
        if self._run_ddl:
            engine.sql_texts.clear()
        stmt.rows = len(rows) if rows is not None else 0
        # a delta, not changes(): that repeats the last write's count for every later read in the transaction
        if traced:
            stmt.rows_written = conn.total_changes() - changes_before
            self._end_statement_transaction(stmt, control, error)
        elif error is None:  # an autocommit read, the commonest statement: what that method would do, inline
            engine.transactions.end_autocommit_read()
            counters.commits += 1
        self._finish(stmt, error, monitoring, profile)
        if error is not None:
            raise error
        return Result(stmt.query_id, columns if columns is not None else [], rows if rows is not None else [],
                      stmt.rows_written, stmt.duration_ms or 0.0, has_more,
                      declared_types if declared_types is not None else [])

    def _cache_status(self) -> tuple[int, int, int]:
        """The connection's cumulative page-cache hits, misses and pages written."""
        status = self._conn.status
        return (status(apsw.SQLITE_DBSTATUS_CACHE_HIT)[0], status(apsw.SQLITE_DBSTATUS_CACHE_MISS)[0],
                status(apsw.SQLITE_DBSTATUS_CACHE_WRITE)[0])

    @staticmethod
    def _start_cpu_timing(stmt: Statement) -> None:
        clock = getattr(_this_thread, "cpu_clock", None)
        if clock is None:
            clock = _this_thread.cpu_clock = time.pthread_getcpuclockid(threading.get_ident())
        stmt.cpu_clock = clock
        stmt.cpu_start = time.clock_gettime(clock)

    def _count_cpu(self, stmt: Statement, text: SqlText) -> None:
        assert stmt.cpu_start is not None
        stmt.cpu_ms = ms = stmt.cpu_base_ms + (time.clock_gettime(stmt.cpu_clock) - stmt.cpu_start) * 1000
        text.add_cpu(ms, HEAVY_CPU_MS)

    def _plan(self, stmt: Statement, params: Any, resample: bool) -> None:
        """Record the statement's plan when its fingerprint has none under the current schema, or on
        a later sample (a plan can change without a schema change this engine saw: ANALYZE by a job)."""
        generation = self.engine.sql_texts.generation
        if not (resample or self._stats.plan_due(stmt.sql_id, generation)):
            return
        rows: list[tuple[int, int, int, str]] = []
        # explain=2 prepares the text in EXPLAIN QUERY PLAN mode: nothing of it runs
        try:
            self._internal(lambda: rows.extend(self._conn.cursor().execute(stmt.sql, params, explain=2)))
        except (apsw.Error, TypeError, ValueError, OverflowError):
            return
        stmt.plan, stmt.plan_generation = plan_text(rows) or None, generation

    def _attach_new_schemas(self) -> None:
        storage, conn = self.engine.storage, self._conn

        def attach() -> None:
            attached = {name for (_, name, _) in conn.execute("PRAGMA database_list")}
            for name, path in list(storage.schemas.items()):
                if name not in attached:
                    storage.attach(conn, name, path)

        self._internal(attach)
        self._attached = len(storage.schemas)

    def _check_transaction_control(self, kind: str, mode: str | None) -> None:
        if kind == "begin":
            if mode in ("immediate", "exclusive"):
                raise SqlError(f"BEGIN {mode.upper()} is not supported: the engine's lock manager decides "
                               "who writes; use BEGIN")
            if self.txn is not None:
                raise SqlError(f"transaction {self.txn.id} is already in progress")
        elif self.txn is None:
            raise SqlError("no transaction is in progress")

    def _internal(self, action: Callable[[], object]) -> None:
        """Run the engine's own SQL on this connection, past the authorizer and lock hooks."""
        self._access.bypass = True
        try:
            action()
        finally:
            self._access.bypass = False

    def _before_statement(self, cursor: apsw.Cursor, sql: str, bindings: Any) -> bool:
        """Runs after SQLite prepared a statement and before it steps: take the locks it needs."""
        if self._access.bypass:
            return True
        access = self._access.take(sql)
        stmt = self.statement
        assert stmt is not None
        if stmt.stop_reason is not None:
            raise map_sqlite_error(apsw.InterruptError("interrupted"), stmt)
        if access.transaction_control and transaction_control(stmt.sql) is None:
            raise SqlError("BEGIN, COMMIT and ROLLBACK must be sent on their own, not with other statements")
        if access.savepoint and self.txn is None:
            raise SqlError("SAVEPOINT needs an explicit transaction: send BEGIN first")
        writes = access.writes
        if writes or access.transaction_control or access.savepoint or cursor.is_explain:
            self._run_pure = False
            if writes and access.write_plan().ddl:
                self._run_ddl = True
        txn = self._stmt_txn
        # An autocommit read takes no lock (WAL gives it a snapshot); EXPLAIN prepares a statement,
        # so the authorizer saw its tables, but touches no rows.
        if (not writes and txn is None) or not (access.reads or writes) or cursor.is_explain:
            return True
        if txn is None:
            txn = self._stmt_txn = self.engine.transactions.begin(self, explicit=False)
        if txn.read_only and access.writes:
            tables = ", ".join(f"{s}.{t}" for s, t in sorted(access.writes))
            raise SqlError(f"cannot write {tables} in read-only transaction {txn.id}", transaction_id=txn.id)
        txn.queries_executed += 1
        versions = self.engine.transactions
        if writes:
            plan = access.write_plan()
            self._lock_all(txn, plan.locks, LockMode.EXCLUSIVE, stmt)
            for schema in plan.schemas:
                if txn.explicit and txn.read_versions.get(schema, None) not in (None, versions.version(schema)):
                    raise SerializationFailure(
                        f"could not serialize access: schema {schema} was changed by another transaction after "
                        f"transaction {txn.id} first read it; the transaction was rolled back, retry it",
                        schema=schema)
                txn.written_schemas.add(schema)
            txn.modified_tables.update(plan.tables)
        if txn.explicit:
            self._lock_all(txn, access.read_plan(), LockMode.SHARED, stmt)
            for schema in {s for s, _ in access.reads | writes}:
                txn.read_versions.setdefault(schema, versions.version(schema))
        return True

    def _lock_all(self, txn: Transaction, plan: tuple[Resource, ...], mode: LockMode, stmt: Statement) -> None:
        granted = self.engine.locks.try_acquire(txn, plan, mode)
        for resource in plan[granted:]:
            self._lock(txn, resource, mode, stmt)

    def _lock(self, txn: Transaction, resource: Resource, mode: LockMode, stmt: Statement) -> None:
        config = self.engine.config
        lock_timeout = config.lock_timeout_ms / 1000 if config.lock_timeout_ms > 0 else None
        left = None if stmt.deadline is None else max(0.0, stmt.deadline - self.engine.clock.monotonic())
        statement_limited = left is not None and (lock_timeout is None or left < lock_timeout)
        timeout = left if statement_limited else lock_timeout

        def on_timeout(edge: WaitEdge | None) -> Exception:
            if statement_limited:
                stmt.stop_reason = "timeout"
                return QueryTimeout(f"statement exceeded the query timeout while waiting for a lock on {resource}",
                                    query_id=stmt.query_id, resource=str(resource))
            holder = edge.holder_session if edge else None
            return LockTimeout(f"lock timeout: waited {config.lock_timeout_ms} ms for {mode} lock on {resource}"
                               + (f" held by session {holder}" if holder is not None else ""),
                               resource=str(resource), blocking_session=holder)

        self.engine.locks.acquire(txn, resource, mode, timeout, on_timeout)

    def _progress(self) -> bool:
        """SQLite's progress handler: stop on cancel or timeout, and notice page-cache misses."""
        stmt = self.statement
        if stmt is None or self._access.bypass:
            return False
        if stmt.stop_reason is not None:
            return True
        if stmt.deadline is not None and self.engine.clock.monotonic() > stmt.deadline:
            stmt.stop_reason = "timeout"
            return True
        if self.engine.config.monitoring_enabled:
            if stmt.cpu_start is None:  # a text that was light until now runs long: time the rest
                stmt.cpu_base_ms = self.engine.sql_texts.get(stmt.sql).cpu_mean_ms
                self._start_cpu_timing(stmt)
            now = self._cache_status()
            if stmt.cache_base is None:  # not profiled: its page counts run from here
                stmt.cache_base = now
            else:
                self._cache_so_far(stmt, now)
            misses = now[1]
            doing_io = self._window_misses >= 0 and misses - self._window_misses > IO_MISSES_PER_WINDOW
            self._window_misses = misses
            if self.state is SessionState.ACTIVE:
                self.wait_class, self.wait_event = (WaitClass.IO, "DataFileRead") if doing_io else (WaitClass.CPU, None)
        return False

    def _sleep(self, seconds: Any) -> None:
        """SQL `sleep(seconds)`, as PostgreSQL's pg_sleep: waits on an event, without CPU, until the
        time is up, or cancel or terminate sets the event, or the statement's timeout comes first.
        The session shows a Timeout wait meanwhile, not CPU. NULL or a negative time returns at once."""
        if seconds is None:
            return
        if not isinstance(seconds, (int, float)) or seconds != seconds:
            raise SqlError("sleep() takes a number of seconds")
        stmt = self.statement
        if stmt is None or seconds <= 0:
            return
        clock = self.engine.clock  # the statement's deadline is on the engine's clock; the sleep is real time
        until = time.monotonic() + min(float(seconds), threading.TIMEOUT_MAX / 2)
        self._wake.clear()
        self.wait_class, self.wait_event = WaitClass.TIMEOUT, "Sleep"
        try:
            while stmt.stop_reason is None:
                left = until - time.monotonic()
                if stmt.deadline is not None:
                    to_deadline = stmt.deadline - clock.monotonic()
                    if to_deadline <= 0:
                        stmt.stop_reason = "timeout"
                        break
                    left = min(left, to_deadline)
                if left <= 0:
                    return
                self._wake.wait(min(left, threading.TIMEOUT_MAX))
        finally:
            if self.state is SessionState.ACTIVE:
                self.wait_class, self.wait_event = WaitClass.CPU, None
        raise map_sqlite_error(apsw.InterruptError("interrupted"), stmt)

    @staticmethod
    def _cache_so_far(stmt: Statement, now: tuple[int, int, int]) -> None:
        base = stmt.cache_base
        assert base is not None
        stmt.cache_hits, stmt.cache_misses, stmt.pages_written = now[0] - base[0], now[1] - base[1], now[2] - base[2]

    def _profile(self, event: dict[str, Any]) -> None:
        stmt = self.statement
        if stmt is not None:
            stmt.add_profile(event.get("stmt_status", {}))

    def _end_statement_transaction(self, stmt: Statement, control: tuple[str, str | None] | None,
                                   error: EngineError | None) -> None:
        """Release what an autocommit statement held; open or close an explicit transaction."""
        registry = self.engine.transactions
        txn = self._stmt_txn
        self._stmt_txn = None
        if txn is not None and not txn.explicit:
            # end (which bumps the schema versions) before release: a waiter granted the lock must
            # see the new version, or its next write would fail as if its snapshot were stale
            registry.end(txn, committed=error is None)
            self.engine.locks.release_all(txn)
            self._count_end(error is None)
            return
        if txn is None and self.txn is None and control is None:
            if error is None:  # a failed one may never have compiled; it began no transaction to count
                registry.end_autocommit_read()
                self._count_end(True)
            return
        if control is not None and error is None:
            if control[0] == "begin":
                self.txn = registry.begin(self, explicit=True)
            elif self.txn is not None:
                self._end_explicit(committed=control[0] == "commit")
            return
        if self.txn is None:
            return
        if isinstance(error, (DeadlockDetected, SerializationFailure, SessionTerminated)) or (
                error is not None and not self._conn.in_transaction):
            # SQLite may already have rolled back (an interrupted write does that); finish the job
            if self._conn.in_transaction:
                self._internal(lambda: self._conn.execute("ROLLBACK"))
            if error is not None and not isinstance(error, (DeadlockDetected, SerializationFailure)):
                error.message += "; the transaction was rolled back"
                error.args = (error.message,)
            self._end_explicit(committed=False)
        elif error is None:
            self.txn.rows_affected += stmt.rows_written

    def _end_explicit(self, committed: bool) -> None:
        txn = self.txn
        assert txn is not None
        self.txn = None
        self.engine.transactions.end(txn, committed)  # before release: see _end_statement_transaction
        self.engine.locks.release_all(txn)
        self._count_end(committed)

    def _count_end(self, committed: bool) -> None:
        if committed:
            self.counters.commits += 1
        else:
            self.counters.rollbacks += 1

    def _finish(self, stmt: Statement, error: EngineError | None, monitoring: bool, profiled: bool) -> None:
        end = self.engine.clock.monotonic()
        elapsed = end - stmt.started_mono
        stmt.duration_ms = ms = elapsed * 1000
        counters = self.counters
        if error is not None:
            stmt.error_code, stmt.error_message = error.code, error.message
            counters.errors += 1
        stmt.finished = True  # after the outcome: other threads read it once they see this
        if stmt.cpu_ms is not None:
            counters.cpu_time_ms += stmt.cpu_ms  # next to the line below: readers add the running one
        # unguarded by _stop: cancel() and terminate() take a finished statement as none at all
        self.statement = None
        counters.rows_read += stmt.rows
        counters.rows_written += stmt.rows_written
        if monitoring:
            stats = self._stats
            # the commonest case inline (a known fingerprint, neither slow nor profiled); stats.record does the rest
            if profiled or ms >= stats.slow_ms or not record_call(
                    self._accs, stmt.sql_id, ms, stmt.cpu_ms or 0.0, stmt.rows, stmt.rows_written, error is not None,
                    stmt.started_at):
                stats.record(stmt, self._accs)
            if profiled or end - self._cache_read_at >= CACHE_READ_SECONDS:
                self._cache_read_at = end
                self._fold_cache_counters()
        # the session was active (or waiting) until now, so its state changes here
        self.state_since = self.last_activity = stmt.started_at + elapsed
        if self.txn is None:
            self.state, self.wait_class, self.wait_event = SessionState.IDLE, None, None
        else:
            self.state = SessionState.IDLE_IN_TRANSACTION
            self.wait_class, self.wait_event = WaitClass.IDLE_IN_TRANSACTION, "ClientRead"
        self.engine.statement_finished(stmt, error is not None)

    def _fold_cache_counters(self) -> None:
        """Bring the session's and the engine's page-cache counters up to the connection's."""
        seen = self._cache_seen
        now = self._cache_status()
        if now != seen:
            self._cache_seen = now
            base, counters = self._cache_base, self.counters
            counters.cache_hits, counters.cache_misses, counters.pages_written = (
                now[0] - base[0], now[1] - base[1], now[2] - base[2])
            self.engine.stats.add_cache_reads(now[0] - seen[0], now[1] - seen[1])

    # -- stopping ----------------------------------------------------------------------------

    def cancel(self, by: str, query_id: str | None = None) -> Statement:
        """Stop the running statement; raise if none runs (or another one than query_id does)."""
        with self._stop:
            stmt = self.statement
            if stmt is None or stmt.finished:
                raise Conflict(f"session {self.id} has no running statement", session_id=self.id)
            if query_id is not None and stmt.query_id != query_id:
                raise Conflict(f"session {self.id} now runs {stmt.query_id}, not {query_id}",
                               session_id=self.id, running_query_id=stmt.query_id)
            self._stop_statement(stmt, "canceled", by)
            return stmt

    def terminate(self, by: str) -> None:
        """Roll back and close the session; its owner gets SessionTerminated on its next call."""
        with self._stop:
            if self.closed:
                return
            self.terminated_by = by
            stmt = self.statement
            if stmt is not None and not stmt.finished:
                self._stop_statement(stmt, "terminated", by)
                return
        if self._use.acquire(blocking=False):
            try:
                if not self.closed:
                    self._close_now()
            finally:
                self._use.release()
        # else: a statement is just starting; its own thread sees terminated_by and closes

    def _stop_statement(self, stmt: Statement, reason: str, by: str) -> None:
        stmt.stop_reason, stmt.stopped_by = reason, by
        self._wake.set()
        txn = self._stmt_txn or self.txn
        error = (SessionTerminated(f"session {self.id} was terminated by {by}", terminated_by=by)
                 if reason == "terminated" else
                 map_sqlite_error(apsw.InterruptError("interrupted"), stmt))
        if txn is not None and self.engine.locks.abort_wait(txn.id, error):
            return
        if self._in_sqlite:
            self._conn.interrupt()

    def close(self) -> None:
        with self._use:
            if not self.closed:
                self._close_now()

    def _close_now(self) -> None:
        if self.txn is not None:
            try:
                if self._conn.in_transaction:
                    self._internal(lambda: self._conn.execute("ROLLBACK"))
            except apsw.Error:
                pass  # closing discards the transaction anyway
            self._end_explicit(committed=False)
        if self.engine.config.monitoring_enabled:
            self._fold_cache_counters()
        self._stats.retire(self._accs)
        self.closed = True
        self._conn.close()
        self.engine.session_closed(self)
