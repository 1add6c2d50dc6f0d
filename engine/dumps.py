"""Diagnostic dumps: the engine's state written to a file in the background, kept for a while, then deleted.

A dump is `pending` in the queue, `in_progress` while one worker thread writes it, then `completed`
(with the file's real size) or `failed` (with the reason). `full` is a zip of every part plus the
sessions, the last 15 minutes of ASH and the settings (secrets redacted); every other type is one
JSON file. A dump expires `ttl_seconds` after it was asked for: its file is deleted then (by the
periodic sweep, or by the first request that finds it expired) and the id answers Gone.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import re
import shutil
import sys
import threading
import traceback
import tracemalloc
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import apsw
import psutil

from .activity import wait_cycles
from .audit import audit
from .diagnostics import Worker, lock_record, session_record
from .errors import Conflict, Gone, NotFound
from .locks import BlockingNode
from .statements import plan_text

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("engine.dumps")

TTL_SECONDS = 3600.0  # RustyDB: a dump expires an hour after it was created
MAX_DUMPS = 100
ASH_WINDOW_SECONDS = 15 * 60
TRACEMALLOC_TOP = 25
REDACTED = "***redacted***"
_SECRET = re.compile(r"password|secret|token|key|credential", re.IGNORECASE)


class DumpType(StrEnum):
    THREAD = "thread"
    MEMORY = "memory"
    QUERY_PLAN = "query_plan"
    EXECUTION_STATS = "execution_stats"
    LOCK = "lock"
    FULL = "full"


class DumpStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass
class Dump:
    dump_id: str
    dump_type: DumpType
    requested_by: str
    created_at: float
    expires_at: float
    status: DumpStatus = DumpStatus.PENDING
    started_at: float | None = None
    completed_at: float | None = None
    size_bytes: int | None = None
    path: Path | None = None
    error: str | None = None
    expired: bool = False

    @property
    def media_type(self) -> str:
        return "application/zip" if self.dump_type is DumpType.FULL else "application/json"

    @property
    def filename(self) -> str:
        return f"rdbtop-{self.dump_type}-{self.dump_id}.{'zip' if self.dump_type is DumpType.FULL else 'json'}"


class DumpService:
    def __init__(self, engine: Engine, *, ttl_seconds: float = TTL_SECONDS, max_dumps: int = MAX_DUMPS) -> None:
        self._engine = engine
        self._clock = engine.clock
        self.ttl_seconds = ttl_seconds
        self.max_dumps = max_dumps
        self._mutex = threading.RLock()
        self._dumps: dict[str, Dump] = {}
        self.directory = engine.storage.data_dir / "dumps"
        # dumps are not remembered across a restart, so files left by an earlier run can never be asked for
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir()
        self._worker = Worker("engine-dump-writer")

    def close(self) -> None:
        """Drop the queued dumps, finish the one being written."""
        self._worker.close(drop_queued=True)

    # -- asking ------------------------------------------------------------------------------

    def create(self, dump_type: DumpType, by: str) -> Dump:
        now = self._clock.time()
        dump = Dump(str(uuid.uuid4()), DumpType(dump_type), by, now, now + self.ttl_seconds)
        with self._mutex:
            if len(self._dumps) >= self.max_dumps:
                finished = [d for d in self._dumps.values() if d.status in (DumpStatus.COMPLETED, DumpStatus.FAILED)]
                if not finished:
                    audit(by, "dump", f"{dump_type} dump", "refused: too many dumps queued")
                    raise Conflict(f"{len(self._dumps)} dumps are queued or being written; wait for one to finish",
                                   max_dumps=self.max_dumps)
                self._forget(finished[0])
            self._dumps[dump.dump_id] = dump
            asked = dataclasses.replace(dump)
        self._worker.submit(self._produce, dump)
        audit(by, "dump", f"{dump_type} dump", dump_id=dump.dump_id)
        return asked

    def get(self, dump_id: str) -> Dump:
        """The dump's state; NotFound for an unknown id, Gone once it expired."""
        with self._mutex:
            dump = self._dumps.get(dump_id)
            if dump is None:
                raise NotFound(f"Dump {dump_id} not found", dump_id=dump_id)
            if not dump.expired and self._clock.time() >= dump.expires_at:
                self._expire(dump)
            if dump.expired:
                raise Gone(f"Dump {dump_id} expired at {int(dump.expires_at)} and was deleted", dump_id=dump_id,
                           expires_at=int(dump.expires_at))
            return dataclasses.replace(dump)

    def open(self, dump_id: str) -> tuple[Dump, BinaryIO]:
        """A completed dump and its file, opened: the expiry sweep may delete the name, not an open file."""
        with self._mutex:
            dump = self.get(dump_id)
            if dump.status is not DumpStatus.COMPLETED or dump.path is None:
                reason = f"failed: {dump.error}" if dump.status is DumpStatus.FAILED else f"is {dump.status}"
                raise Conflict(f"Dump {dump_id} {reason}; only a completed dump can be downloaded", dump_id=dump_id,
                               status=dump.status.value)
            return dump, dump.path.open("rb")

    def sweep(self) -> int:
        """Delete the files of expired dumps; return how many expired now."""
        now = self._clock.time()
        with self._mutex:
            due = [d for d in self._dumps.values() if not d.expired and now >= d.expires_at]
            for dump in due:
                self._expire(dump)
        return len(due)

    def _expire(self, dump: Dump) -> None:
        dump.expired = True
        if dump.path is not None:
            dump.path.unlink(missing_ok=True)
        log.info("dump %s (%s) expired; its file was deleted", dump.dump_id, dump.dump_type)

    def _forget(self, dump: Dump) -> None:
        del self._dumps[dump.dump_id]
        if dump.path is not None:
            dump.path.unlink(missing_ok=True)

    # -- writing -----------------------------------------------------------------------------

    def _produce(self, dump: Dump) -> None:
        with self._mutex:
            if dump.expired or dump.dump_id not in self._dumps:
                return
            dump.status, dump.started_at = DumpStatus.IN_PROGRESS, self._clock.time()
        path = self.directory / dump.filename
        partial = path.with_name(path.name + ".partial")
        try:
            header = {"dump_id": dump.dump_id, "dump_type": dump.dump_type.value, "taken_at": int(dump.started_at),
                      "requested_by": dump.requested_by, "engine_version": _version()}
            if dump.dump_type is DumpType.FULL:
                with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
                    names = []
                    for name, part in FULL_PARTS.items():
                        zf.writestr(f"{name}.json", _json(part(self._engine)))
                        names.append(f"{name}.json")
                    zf.writestr("manifest.json", _json({**header, "parts": names}))
            else:
                partial.write_text(_json({**header, "data": PARTS[dump.dump_type](self._engine)}))
            partial.replace(path)
        except Exception as exc:  # a dump that cannot be written is reported on the dump, not raised
            partial.unlink(missing_ok=True)
            log.exception("dump %s (%s) failed", dump.dump_id, dump.dump_type)
            with self._mutex:
                dump.status, dump.error, dump.completed_at = DumpStatus.FAILED, repr(exc), self._clock.time()
            return
        with self._mutex:
            if dump.expired or dump.dump_id not in self._dumps:
                path.unlink(missing_ok=True)  # expired or forgotten while it was written
                return
            dump.path, dump.size_bytes = path, path.stat().st_size
            dump.status, dump.completed_at = DumpStatus.COMPLETED, self._clock.time()


def _version() -> str:
    from .engine import VERSION  # engine.py imports this module, so only at call time

    return VERSION


def _json(data: Any) -> str:
    # numpy scalars (the statistics are aggregated with numpy) know their Python value
    return json.dumps(data, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))


# -- the parts ---------------------------------------------------------------------------------

def thread_part(engine: Engine) -> dict[str, Any]:
    """Every thread's stack, as the interpreter has it now."""
    threads = {t.ident: t for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        t = threads.get(ident)
        out.append({"ident": ident, "name": t.name if t else None, "native_id": t.native_id if t else None,
                    "daemon": t.daemon if t else None,
                    "stack": [{"file": f.filename, "line": f.lineno, "function": f.name, "code": f.line}
                              for f in traceback.extract_stack(frame)]})
    out.sort(key=lambda t: t["name"] or "")
    return {"thread_count": len(out), "threads": out}


def memory_part(engine: Engine) -> dict[str, Any]:
    """The process's memory and the size of the engine's largest structures."""
    process = psutil.Process()
    try:
        memory = process.memory_full_info()._asdict()
    except psutil.Error:  # uss/pss/swap need /proc/<pid>/smaps
        memory = process.memory_info()._asdict()
    locks = engine.locks.locks()
    stats = engine.stats
    from .engine import RECENT_STATEMENTS  # engine.py imports this module, so only at call time

    structures = {
        "sessions": len(engine.session_objects()),
        "ash_samples": len(engine.ash.window()),
        "ash_max_samples": engine.config.ash_max_samples,
        "stats_fingerprints": len(stats.fingerprints()),
        "stats_max_fingerprints": engine.config.stats_max_fingerprints,
        "stats_evicted_fingerprints": stats.evicted_fingerprints,
        "slow_log_entries": len(stats.slow_log),
        "recent_statements_capacity": RECENT_STATEMENTS,
        "lock_table_entries": len(locks),
        "lock_waiters": sum(1 for lock in locks if not lock.granted),
        "locked_resources": len({lock.resource for lock in locks}),
        "deadlock_history": len(engine.locks.deadlocks),
        "active_transactions": len(engine.transactions.active),
    }
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        top = tracemalloc.take_snapshot().statistics("lineno")[:TRACEMALLOC_TOP]
        traced: dict[str, Any] = {
            "tracing": True, "traced_bytes": current, "traced_peak_bytes": peak,
            "top_allocations": [{"where": f"{s.traceback[0].filename}:{s.traceback[0].lineno}",
                                 "size_bytes": s.size, "count": s.count} for s in top]}
    else:
        # tracing costs memory and time on every allocation: it stays the operator's choice
        traced = {"tracing": False, "note": "start the engine with PYTHONTRACEMALLOC=1 (or -X tracemalloc) to "
                                            "include the top allocations"}
    return {"process": memory, "host": psutil.virtual_memory()._asdict(),
            "python": {"gc_counts": gc.get_count(), "gc_tracked_objects": len(gc.get_objects())},
            "engine_structures": structures, "tracemalloc": traced}


def query_plan_part(engine: Engine) -> dict[str, Any]:
    """EXPLAIN QUERY PLAN of every running statement, on a connection of its own.

    Never the busy session's connection (it is stepping), and not through a session's execute: apsw's
    `explain=2` prepares every statement of a text in EXPLAIN QUERY PLAN mode, so nothing in it can run,
    where a prefixed text would run its second statement for real."""
    active = engine.active_statements()
    now = engine.clock.monotonic()
    out = []
    conn = engine.storage.open_connection(engine.config.buffer_pool_size) if active else None
    try:
        for a in active:
            stmt = a.statement
            entry: dict[str, Any] = {
                "query_id": stmt.query_id, "session_id": stmt.session_id, "username": a.session.username,
                "state": a.session.state.value, "sql_id": stmt.sql_id, "sql": stmt.sql,
                "started_at": int(stmt.started_at), "elapsed_ms": round((now - stmt.started_mono) * 1000, 3)}
            try:
                rows, parameters = _explain(conn, stmt.sql)  # type: ignore[arg-type]
                entry["plan"] = [{"id": i, "parent": parent, "detail": detail} for i, parent, _, detail in rows]
                entry["plan_text"] = plan_text(rows)
                entry["parameters"] = parameters
                entry["note"] = (f"the statement has {parameters} parameter(s) whose values the engine does not "
                                 "keep; planned with NULL bindings" if parameters else None)
            except apsw.Error as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
            out.append(entry)
    finally:
        if conn is not None:
            conn.close()
    return {"running_statements": len(out), "statements": out}


def _explain(conn: apsw.Connection, sql: str) -> tuple[list[tuple[int, int, int, str]], int]:
    cursor = conn.cursor()
    try:
        return list(cursor.execute(sql, explain=2)), 0
    except apsw.BindingsError:
        parameters = cursor.bindings_count
        return list(conn.cursor().execute(sql, [None] * parameters, explain=2)), parameters


def execution_stats_part(engine: Engine) -> dict[str, Any]:
    """Per-fingerprint statistics (by total time), the engine's totals and the slow log."""
    stats = engine.stats
    rates, totals = stats.rates(), stats.totals()
    fingerprints = sorted(stats.fingerprints(), key=lambda f: f.total_ms, reverse=True)
    return {
        "statements_total": totals.statements, "errors_total": totals.errors,
        "rows_read_total": totals.rows_read, "rows_written_total": totals.rows_written,
        "statements_per_second": rates.statements_per_second,
        "transactions_per_second": rates.transactions_per_second, "cache_hit_ratio": stats.cache_hit_ratio,
        "evicted_fingerprints": stats.evicted_fingerprints,
        "fingerprints": [{
            "sql_id": f.sql_id, "query": f.query, "calls": f.calls, "errors": f.errors, "rows": f.rows,
            "rows_returned": f.rows_returned, "total_ms": f.total_ms, "mean_ms": f.mean_ms, "min_ms": f.min_ms,
            "max_ms": f.max_ms, "p50_ms": f.percentile(50), "p95_ms": f.percentile(95), "p99_ms": f.percentile(99),
            "cache_hit_ratio": f.cache_hit_ratio, "profiled_calls": f.profiled_calls,
            "fullscan_steps": f.fullscan_steps, "sorts": f.sorts, "vm_steps": f.vm_steps,
            "first_seen": int(f.first_seen), "last_seen": int(f.last_seen)} for f in fingerprints if f.calls],
        "slow_statements": [{**dataclasses.asdict(s), "started_at": int(s.started_at)} for s in stats.slow_log],
    }


def lock_part(engine: Engine) -> dict[str, Any]:
    """The lock table, the wait-for graph with its cycles, the blocking tree and the recent deadlocks."""
    locks = engine.locks.locks()
    edges = engine.locks.edges()
    sessions = {s.session_id: s for s in engine.sessions()}
    now = engine.clock.time()

    def node(n: BlockingNode) -> dict[str, Any]:
        s = sessions.get(n.session_id)
        return {"session_id": n.session_id, "transaction_id": n.transaction_id,
                "username": s.username if s else None, "state": s.state.value if s else None,
                "sql": s.current_sql if s else None, "waiting_for": n.resource,
                "wait_started_at": None if n.wait_started_at is None else int(n.wait_started_at),
                "wait_seconds": None if n.wait_started_at is None else round(max(0.0, now - n.wait_started_at), 3),
                "blocked": [node(child) for child in n.blocked]}

    return {
        "total_locks": len(locks), "waiting_locks": sum(1 for lock in locks if not lock.granted),
        "locks": [lock_record(lock) for lock in locks],
        "wait_for": [{"waiter_session": e.waiter_session, "waiter_transaction": e.waiter_txn,
                      "holder_session": e.holder_session, "holder_transaction": e.holder_txn,
                      "resource": e.resource, "mode": e.mode.value,
                      "wait_seconds": round(max(0.0, now - e.wait_started_at), 3)} for e in edges],
        "cycles": wait_cycles(edges),
        "blocking_tree": [node(root) for root in engine.locks.blocking_tree()],
        "recent_deadlocks": [{**dataclasses.asdict(d), "detected_at": int(d.detected_at)}
                             for d in engine.locks.deadlocks],
        "lock_waits_total": engine.locks.lock_waits_total, "lock_timeouts_total": engine.locks.lock_timeouts_total,
        "deadlocks_total": engine.locks.deadlocks_total,
    }


def sessions_part(engine: Engine) -> dict[str, Any]:
    now = engine.clock.time()
    return {"sessions": [session_record(s, now) for s in engine.sessions()]}


def ash_part(engine: Engine) -> dict[str, Any]:
    end = engine.clock.time()
    start = end - ASH_WINDOW_SECONDS
    return {"start": int(start), "end": int(end), "sample_interval_seconds": engine.ash.interval_seconds,
            "samples": [s._asdict() for s in engine.ash.window(start, end)]}


def config_part(engine: Engine) -> dict[str, Any]:
    return {"data_dir": str(engine.storage.data_dir), "settings": redact(dataclasses.asdict(engine.config))}


def redact(value: Any) -> Any:
    """The value with every setting whose name says it is a secret replaced (keys, passwords, tokens)."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET.search(str(k)) and v not in (None, "") else redact(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


PARTS: dict[DumpType, Callable[[Engine], dict[str, Any]]] = {
    DumpType.THREAD: thread_part, DumpType.MEMORY: memory_part, DumpType.QUERY_PLAN: query_plan_part,
    DumpType.EXECUTION_STATS: execution_stats_part, DumpType.LOCK: lock_part,
}
FULL_PARTS: dict[str, Callable[[Engine], dict[str, Any]]] = {
    **{t.value: part for t, part in PARTS.items()}, "sessions": sessions_part, "ash": ash_part, "config": config_part,
}
