"""Statements: what one runs, what it touches (from SQLite's authorizer), and how it ended."""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import apsw

from .errors import EngineError, QueryCanceled, QueryTimeout, SerializationFailure, SessionTerminated, SqlError
from .fingerprint import sql_id
from .locks import Resource

_statement_ids = itertools.count(1)

_WRITES = {apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE}
_SCHEMA_CHANGES = {
    apsw.SQLITE_CREATE_TABLE, apsw.SQLITE_CREATE_INDEX, apsw.SQLITE_CREATE_TRIGGER, apsw.SQLITE_CREATE_VIEW,
    apsw.SQLITE_DROP_TABLE, apsw.SQLITE_DROP_INDEX, apsw.SQLITE_DROP_TRIGGER, apsw.SQLITE_DROP_VIEW,
    apsw.SQLITE_ALTER_TABLE, apsw.SQLITE_REINDEX, apsw.SQLITE_ANALYZE,
}
_DENIED = {apsw.SQLITE_ATTACH, apsw.SQLITE_DETACH}
# VACUUM compiles without consulting the authorizer, then ATTACHes a private scratch database ('')
# while it steps. So its text names the schema it rewrites, a schema change that takes the
# schema's exclusive lock, and that one ATTACH is let through.
_VACUUM = re.compile(r'\s*vacuum(?:\s+(?:"([^"]+)"|([A-Za-z_]\w*)))?\s*;?\s*\Z', re.IGNORECASE)
# PRAGMAs a session may give a value to: those whose argument names what to read or check, and one
# that lasts only to the end of the transaction. A value to any other would move a connection or a
# file off what the engine set up, or write a file header outside the lock manager.
_PRAGMA_ARGUMENTS = frozenset({
    "table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list", "foreign_key_list",
    "foreign_key_check", "integrity_check", "quick_check", "wal_checkpoint", "defer_foreign_keys",
})
_CONNECTION_SETUP = ("the engine sets every connection up itself; what may be tuned is a setting "
                     "(PUT /api/v1/admin/config)")
_OUTSIDE_LOCKS = ("it writes pages outside the engine's lock manager; use maintenance "
                  "(POST /api/v1/admin/maintenance: vacuum, analyze)")
_PRAGMA_REFUSALS = {
    "journal_mode": "the engine keeps every schema in WAL mode, which its lock manager relies on (see wal_enabled)",
    "locking_mode": "an exclusive file lock would shut every other session out inside SQLite",
    "writable_schema": "it lets sqlite_master be edited behind SQLite's back, which can corrupt the database",
    "schema_version": "it edits the schema cookie behind SQLite's back, which can corrupt the database",
    "incremental_vacuum": _OUTSIDE_LOCKS,
    "optimize": _OUTSIDE_LOCKS,
}
_PRAGMA_WRITES_WITHOUT_VALUE = frozenset({"incremental_vacuum", "optimize"})


def pragma_refusal(name: str, value: str | None) -> str | None:
    """Why a session may not run PRAGMA `name` (with `value`, None when it has none), or None."""
    name = name.lower()
    if name in _PRAGMA_WRITES_WITHOUT_VALUE or (value is not None and name not in _PRAGMA_ARGUMENTS):
        return f"PRAGMA {name} is not allowed: {_PRAGMA_REFUSALS.get(name, _CONNECTION_SETUP)}"
    return None


# Leading keyword of transaction control; ROLLBACK TO (a savepoint) is not an end.
_TXN_CONTROL = re.compile(r"\s*(?:(begin)(?:\s+(deferred|immediate|exclusive))?(?:\s+transaction)?"
                          r"|(commit|end)(?:\s+transaction)?|(rollback)(?:\s+transaction)?)\s*;?\s*\Z",
                          re.IGNORECASE)


def transaction_control(sql: str) -> tuple[str, str | None] | None:
    """('begin', mode) / ('commit', None) / ('rollback', None) when sql is only that, else None."""
    m = _TXN_CONTROL.match(sql)
    if not m:
        return None
    if m.group(1):
        return "begin", (m.group(2) or "").lower() or None
    return ("commit", None) if m.group(3) else ("rollback", None)


class SqlText:
    """What is known of an SQL text before it runs: parsed once, reused on every execution."""

    __slots__ = ("control", "sql_id", "profiled", "lock_free", "single", "columns", "declared_types",
                 "cpu_timed", "cpu_sum_ms", "cpu_mean_ms", "cpu_heavy")

    def __init__(self, sql: str) -> None:
        self.control = transaction_control(sql)
        self.sql_id = sql_id(sql)
        self.profiled = 0  # executions of this text whose SQLite profile was taken
        # Learnt from a first successful run: only reads, so outside a transaction it takes no lock
        # and needs no exec trace; and, for a single statement, the columns it returns.
        self.lock_free: bool | None = None
        self.single = ";" not in sql.strip().rstrip(";")
        self.columns: list[str] | None = None
        self.declared_types: list[str | None] | None = None
        # Thread CPU time of the executions that were timed (see Session._run: a light text is
        # timed on its profiled executions only, and its others are counted at this mean)
        self.cpu_timed = 0
        self.cpu_sum_ms = self.cpu_mean_ms = 0.0
        self.cpu_heavy = False

    def add_cpu(self, ms: float, heavy_ms: float) -> None:
        self.cpu_timed += 1
        self.cpu_sum_ms += ms
        self.cpu_mean_ms = self.cpu_sum_ms / self.cpu_timed
        self.cpu_heavy = self.cpu_mean_ms >= heavy_ms


class SqlTexts:
    """An engine's SQL texts, bounded: a workload with unbounded distinct texts only re-parses.
    Cleared whenever the schema changes, since what a text reads and returns may change with it."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._texts: dict[str, SqlText] = {}
        self.generation = 0  # schema changes seen: a plan recorded under an older one may be stale

    def get(self, sql: str) -> SqlText:
        text = self._texts.get(sql)
        if text is None:
            if len(self._texts) >= self._limit:
                self._texts.clear()
            text = self._texts[sql] = SqlText(sql)
        return text

    def clear(self) -> None:
        self._texts = {}
        self.generation += 1


class WritePlan(NamedTuple):
    schemas: tuple[str, ...]
    # locks to take in order: each schema's file, then each table written. Schema first: a writer
    # queues for the file before it holds any table of it, which keeps two writers of one schema
    # from deadlocking over its tables.
    locks: tuple[Resource, ...]
    tables: frozenset[str]  # "schema.table", as a transaction lists what it modified
    ddl: bool  # changes a schema (sqlite_master)


@dataclass
class Access:
    """Tables a statement reads and writes, as (schema, table); schema changes count as writes."""

    reads: set[tuple[str, str]] = field(default_factory=set)
    writes: set[tuple[str, str]] = field(default_factory=set)
    transaction_control: bool = False
    savepoint: bool = False
    vacuum: bool = False
    _write_plan: WritePlan | None = None
    _read_plan: tuple[Resource, ...] | None = None

    def empty(self) -> bool:
        return not (self.reads or self.writes or self.transaction_control or self.savepoint)

    def write_plan(self) -> WritePlan:
        """What a write needs, worked out once per SQL text: see WritePlan."""
        if self._write_plan is None:
            schemas = tuple(sorted({schema for schema, _ in self.writes}))
            self._write_plan = WritePlan(
                schemas, tuple(Resource(s) for s in schemas) + tuple(Resource(s, t) for s, t in sorted(self.writes)),
                frozenset(f"{s}.{t}" for s, t in self.writes), any(t == "sqlite_master" for _, t in self.writes))
        return self._write_plan

    def read_plan(self) -> tuple[Resource, ...]:
        """Shared table locks an explicit transaction takes for what it only reads."""
        if self._read_plan is None:
            self._read_plan = tuple(Resource(s, t) for s, t in sorted(self.reads - self.writes))
        return self._read_plan


class AccessRecorder:
    """SQLite's authorizer callback. It runs while a statement is prepared, never when a cached
    statement is reused, so what it saw is cached per SQL text."""

    def __init__(self) -> None:
        self.pending = Access()
        self.bypass = False  # the engine's own statements (ATTACH, ROLLBACK) pass unrecorded
        self.vacuuming = False  # the statement about to step is a VACUUM, not yet past its ATTACH
        self._cache: dict[str, Access] = {}

    def __call__(self, op: int, p1: str | None, p2: str | None, db: str | None, trigger: str | None) -> int:
        if self.bypass:
            return apsw.SQLITE_OK
        if op in _DENIED:
            if op == apsw.SQLITE_ATTACH and p1 == "" and self.vacuuming:
                self.vacuuming = False
                return apsw.SQLITE_OK
            return apsw.SQLITE_DENY
        if op == apsw.SQLITE_READ and p1 and db and db != "temp":
            self.pending.reads.add((db, p1))
        elif op in _WRITES and p1 and db and db != "temp":
            self.pending.writes.add((db, p1))
        elif op in _SCHEMA_CHANGES and db != "temp":
            self.pending.writes.add((db or "main", "sqlite_master"))
        elif op == apsw.SQLITE_PRAGMA and p1:
            refusal = pragma_refusal(p1, p2)
            if refusal:
                raise SqlError(refusal)  # apsw hands it on from prepare: the statement never runs
        elif op == apsw.SQLITE_TRANSACTION:
            self.pending.transaction_control = True
        elif op == apsw.SQLITE_SAVEPOINT:
            self.pending.savepoint = True
        return apsw.SQLITE_OK

    def take(self, sql: str) -> Access:
        access = self.pending
        if access.empty():
            access = self._cache.get(sql) or _vacuum_access(sql) or access
            self.vacuuming = access.vacuum
            if access.vacuum:
                self._cache[sql] = access
            return access
        self.vacuuming = False
        self.pending = Access()
        if len(self._cache) > 2000:
            self._cache.clear()
        self._cache[sql] = access
        return access


def _vacuum_access(sql: str) -> Access | None:
    m = _VACUUM.match(sql)
    schema = m and (m.group(1) or m.group(2) or "main")
    if not schema or schema.lower() == "temp":
        return None
    return Access(writes={(schema, "sqlite_master")}, vacuum=True)


class Statement:
    """One execution of an SQL text. Built on every call, so a slotted class that sets only what
    every execution has; what only some have (an outcome other than success, a stop, a profile)
    reads as the class default until set, and then lives in the instance's __dict__."""

    __slots__ = ("id", "query_id", "session_id", "sql", "sql_id", "username", "started_at", "started_mono",
                 "deadline", "finished", "duration_ms", "rows", "rows_written", "cpu_ms", "__dict__")

    stop_reason: str | None = None  # "canceled" / "timeout" / "terminated"
    stopped_by: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    fullscan_steps: int | None = None
    sorts: int | None = None
    vm_steps: int | None = None
    autoindexes: int | None = None
    cache_hits: int | None = None
    cache_misses: int | None = None
    pages_written: int | None = None
    # the connection's page counters when the counts above began: at the start of a profiled run
    # (exact), else at its first progress call (a run too short to reach one has none)
    cache_base: tuple[int, int, int] | None = None
    # thread CPU time: while it is timed, cpu_start is the running thread's CPU clock (cpu_clock, set
    # with it) when timing began; cpu_ms once it ended; cpu_base_ms is the estimate for a run timed
    # only from its first progress call on
    cpu_start: float | None = None
    cpu_clock: int = 0
    cpu_base_ms: float = 0.0
    # EXPLAIN QUERY PLAN, taken on some profiled executions (plan_generation: SqlTexts.generation then)
    plan: str | None = None
    plan_generation: int | None = None

    def __init__(self, session_id: int, sql: str, started_at: float, started_mono: float, deadline: float | None,
                 sql_id_: str | None = None, username: str | None = None) -> None:
        self.id = next(_statement_ids)
        self.query_id = f"q{self.id}"
        self.session_id = session_id
        self.sql = sql
        self.sql_id = sql_id_ or sql_id(sql)
        self.username = username  # kept for the slow log after the session is gone
        self.started_at = started_at
        self.started_mono = started_mono
        self.deadline = deadline
        self.finished = False
        self.duration_ms: float | None = None
        self.rows = 0
        self.rows_written = 0
        self.cpu_ms: float | None = None

    @property
    def profiled(self) -> bool:
        return self.vm_steps is not None

    def cpu_so_far_ms(self) -> float | None:
        """Thread CPU time used so far (read from another thread while it runs); None when unknown."""
        if self.cpu_ms is not None:
            return self.cpu_ms
        start = self.cpu_start
        if start is None:
            return None
        try:
            return self.cpu_base_ms + max(0.0, time.clock_gettime(self.cpu_clock) - start) * 1000
        except OSError:  # the thread is gone: the statement is ending, its figure comes with it
            return None

    def add_profile(self, status: dict[str, int]) -> None:
        """Add one SQLITE_TRACE_PROFILE event's counters (a text of several statements sends several)."""
        self.fullscan_steps = (self.fullscan_steps or 0) + status.get("SQLITE_STMTSTATUS_FULLSCAN_STEP", 0)
        self.sorts = (self.sorts or 0) + status.get("SQLITE_STMTSTATUS_SORT", 0)
        self.vm_steps = (self.vm_steps or 0) + status.get("SQLITE_STMTSTATUS_VM_STEP", 0)
        self.autoindexes = (self.autoindexes or 0) + status.get("SQLITE_STMTSTATUS_AUTOINDEX", 0)


@dataclass(slots=True)
class Result:
    query_id: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    affected_rows: int
    execution_time_ms: float
    has_more: bool = False
    declared_types: list[str | None] = field(default_factory=list)  # the columns' declared SQL types


def plan_text(rows: list[tuple[int, int, int, str]]) -> str:
    """EXPLAIN QUERY PLAN's rows (id, parent, notused, detail) as a tree: one step a line, indented
    under its parent."""
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return "\n".join(lines)


def map_sqlite_error(exc: apsw.Error, stmt: Statement) -> EngineError:
    """Turn an apsw error into the engine's error, naming why an interrupted statement stopped."""
    if isinstance(exc, apsw.InterruptError):
        if stmt.stop_reason == "timeout":
            return QueryTimeout("statement exceeded the query timeout and was interrupted",
                                query_id=stmt.query_id)
        if stmt.stop_reason == "terminated":
            return SessionTerminated(f"session {stmt.session_id} was terminated by {stmt.stopped_by}",
                                     terminated_by=stmt.stopped_by)
        return QueryCanceled(f"statement {stmt.query_id} was canceled by {stmt.stopped_by or 'an operator'}",
                             query_id=stmt.query_id, canceled_by=stmt.stopped_by)
    if isinstance(exc, apsw.BusyError):
        return SerializationFailure(f"could not serialize access: {exc}; retry the transaction")
    # apsw (>= 3.54, as pyproject requires) gives SQLite's message bare, e.g. "no such table: x"
    return SqlError(str(exc), sqlite_error=type(exc).__name__)
