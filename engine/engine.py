"""The Engine: opens a data directory, runs the background services, connects sessions."""

from __future__ import annotations

import itertools
from collections import Counter
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .ash import ActiveSessionHistory
from .alerts import AlertService
from .audit import audit
from .auth import AuthService
from .backup import SCHEDULE_CHECK_SECONDS as BACKUP_CHECK_SECONDS, BackupService
from .clock import Clock, SystemClock
from .config import EngineConfig
from .config_store import ConfigStore
from .diagnostics import IncidentService
from .dumps import DumpService
from .errors import (
    DeadlockDetected,
    EngineError,
    InvalidInput,
    NotFound,
    TooManyConnections,
)
from .events import EventBus
from .health import HealthService
from .host import HostFigures, HostMonitor
from .locks import Deadlock, LockManager
from .logs import EngineLogs
from .maintenance import MaintenanceService
from .remote import RemoteSessions
from .sessions import Session, SessionInfo, SessionState
from .statements import SqlTexts, Statement
from .stats import StatementStats
from .storage import Storage
from .transactions import TransactionRegistry
from .wal import CheckpointMode, WalMonitor

log = logging.getLogger("engine")

VERSION = "0.1.0"
RECENT_STATEMENTS = 2048  # a power of two: a statement's slot is its id masked


class PeriodicService:
    """A named thread that calls `tick` every `interval()` seconds until stopped."""

    def __init__(self, name: str, interval: Callable[[], float], tick: Callable[[], object]) -> None:
        self.name = name
        self._interval = interval
        self._tick = tick
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"engine-{name}", daemon=True)
        self.ticks = 0
        self.last_error: str | None = None
        self.consecutive_failures = 0
        # real monotonic time, as the thread waits in real time: health judges staleness by these
        self.started_mono: float | None = None
        self.last_tick_mono: float | None = None

    def start(self) -> None:
        self.started_mono = time.monotonic()
        self._thread.start()

    @property
    def interval_seconds(self) -> float:
        return self._interval()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._interval())
            if self._stop.is_set():
                return
            self._wake.clear()  # woken early, as the interval changed: tick now, then wait the new one
            try:
                self._tick()
                self.ticks += 1
                self.consecutive_failures = 0
            except Exception as exc:  # a failing tick must not kill the service; it is logged and shown
                self.last_error = repr(exc)
                self.consecutive_failures += 1
                log.exception("%s service tick failed", self.name)
            self.last_tick_mono = time.monotonic()

    def wake(self) -> None:
        """Cut the current wait short: tick now, then wait with the current interval."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()


@dataclass(frozen=True)
class ActiveStatement:
    query_id: str
    session: SessionInfo
    statement: Statement


@dataclass(frozen=True)
class SessionCounts:
    total: int
    by_state: dict[str, int]
    peak: int
    max_connections: int


class Engine:
    def __init__(self, data_dir: str | Path | None = None, config: EngineConfig | None = None,
                 clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.events = EventBus()
        self.config = (config or EngineConfig()).validated()
        self.storage = Storage(data_dir)
        self.settings = ConfigStore(self.storage.data_dir)
        self.config = self.settings.load(self.config)  # what PUT /admin/config saved wins
        self.logs = EngineLogs(self.storage.data_dir, self.config)
        self.locks = LockManager(self.clock)
        self.sql_texts = SqlTexts()
        self.transactions = TransactionRegistry(self.clock)
        self.stats = StatementStats(self.clock, self.config)
        self.ash = ActiveSessionHistory(self.clock, self.config)
        self.host = HostMonitor(self.storage.data_dir)
        self.auth = AuthService(self.storage.data_dir, self.clock, lambda: self.config)
        self.remote = RemoteSessions(self)
        self.wal = WalMonitor(self.storage, self.clock)
        self.health = HealthService(self)
        self.alerts = AlertService(self)
        self.backup = BackupService(self)
        self.alerts.register_metric("backup_age_hours", self.backup.backup_age_hours, "h",
                                    "hours since the last completed backup")
        self.alerts.register_metric("backup_failed", self.backup.backup_failed, "",
                                    "1 when the most recent backup failed, else 0")
        self.incidents = IncidentService(self)
        self.dumps = DumpService(self)
        self.maintenance = MaintenanceService(self)
        self.started_at = self.clock.time()
        self._started_mono = self.clock.monotonic()
        self._sessions: dict[int, Session] = {}
        self._session_ids = itertools.count(1)
        self._mutex = threading.Lock()
        self.peak_sessions = 0
        # finished statements by id, newest overwriting oldest: O(1) per statement, no lock needed
        self._recent: list[Statement | None] = [None] * RECENT_STATEMENTS
        self.services: list[PeriodicService] = []
        self.running = False
        self.closed = False

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> Engine:
        if self.running:
            return self
        cfg = lambda: self.config  # noqa: E731 - read live so a changed interval applies at once
        self.services = [
            PeriodicService("ash", lambda: cfg().ash_interval_ms / 1000, self.sample_ash),
            PeriodicService("deadlock", lambda: cfg().deadlock_check_interval_ms / 1000, self.detect_deadlocks),
            PeriodicService("stats", lambda: 1.0, self._stats_tick),
            PeriodicService("checkpoint", lambda: cfg().checkpoint_interval_secs,
                            lambda: self.wal.checkpoint(CheckpointMode.PASSIVE, by="checkpointer")),
            PeriodicService("alerts", lambda: cfg().alert_eval_interval_ms / 1000, self.alerts.evaluate),
            PeriodicService("backup", lambda: BACKUP_CHECK_SECONDS, self.backup.tick),
            PeriodicService("dump_expiry", lambda: 60.0, self.dumps.sweep),
        ]
        for service in self.services:
            service.start()
        self.running = True
        log.info("engine started in %s", self.storage.data_dir)
        return self

    def close(self) -> None:
        """Stop the services, interrupt running statements, roll back and close every session."""
        if self.closed:
            return
        for service in self.services:
            service.stop()
        self.running = False
        self.maintenance.close()
        self.backup.close()  # before the sessions: a running backup holds one
        self.alerts.close()
        self.dumps.close()
        self.incidents.close()
        # sessions running or waiting first: rolling back an idle lock holder must not let a waiter
        # through to commit while the engine shuts down
        for session in sorted(self.session_objects(), key=lambda s: s.statement is None):
            session.terminate("engine shutdown")
        for session in self.session_objects():
            session.close()
        self.closed = True
        self.auth.close()
        log.info("engine stopped")
        self.logs.close()
        self.storage.remove_if_temporary()

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def uptime_seconds(self) -> float:
        return self.clock.monotonic() - self._started_mono

    def reconfigure(self, **changes: object) -> EngineConfig:
        """Apply new settings at once (validated; nothing changes when one is bad)."""
        intervals = [s.interval_seconds for s in self.services]
        self.config = self.config.replace(**changes)
        self.stats.configure(self.config)
        self.ash.configure(self.config)
        self.logs.configure(self.config)
        for service, interval in zip(self.services, intervals):
            if service.interval_seconds != interval:
                service.wake()  # a long old interval must not hold back the new one
        return self.config

    # -- sessions ----------------------------------------------------------------------------

    def connect(self, user: str = "admin", application_name: str = "", client_address: str = "local",
                statement_timeout_secs: float | None = None) -> Session:
        """A new session. `statement_timeout_secs` replaces query_timeout_secs for it (0: none), for
        the engine's own long jobs such as maintenance; users get the configured one."""
        if self.closed:
            raise TooManyConnections("the engine is shut down")
        for name, value in (("user", user), ("application_name", application_name),
                            ("client_address", client_address)):
            if not isinstance(value, str) or len(value) > 256:
                raise InvalidInput(f"{name} must be a string of at most 256 characters", field=name)
        with self._mutex:
            limit = self.config.max_connections
            if len(self._sessions) >= limit:
                raise TooManyConnections(f"too many connections: max_connections is {limit}",
                                         max_connections=limit)
            session_id = next(self._session_ids)
            # reserve the slot before the (slower) connection open, so the limit holds under a race
            self._sessions[session_id] = None  # type: ignore[assignment]
        try:
            session = Session(self, session_id, user, application_name, client_address, statement_timeout_secs)
        except BaseException:
            with self._mutex:
                del self._sessions[session_id]
            raise
        with self._mutex:
            self._sessions[session_id] = session
            self.peak_sessions = max(self.peak_sessions, len(self._sessions))
        return session

    def session_closed(self, session: Session) -> None:
        with self._mutex:
            self._sessions.pop(session.id, None)

    def session_objects(self) -> list[Session]:
        with self._mutex:
            return [s for s in self._sessions.values() if s is not None]

    def sessions(self) -> list[SessionInfo]:
        return [s.info() for s in self.session_objects()]

    def session(self, session_id: int) -> Session:
        with self._mutex:
            session = self._sessions.get(session_id)
        if session is None:
            raise NotFound(f"Session {session_id} not found", session_id=session_id)
        return session

    def session_counts(self) -> SessionCounts:
        sessions = self.session_objects()
        # counted by member, named once per state: reading .value a thousand times cost more than the rest
        counts = Counter(s.state for s in sessions)
        by_state = {state.value: counts[state] for state in SessionState}
        return SessionCounts(len(sessions), by_state, self.peak_sessions, self.config.max_connections)

    def terminate(self, session_id: int, by: str = "admin") -> None:
        try:
            session = self.session(session_id)
        except NotFound:
            audit(by, "terminate", f"session {session_id}", "not found")
            raise
        session.terminate(by)
        audit(by, "terminate", f"session {session_id}", user=session.user,
              sql=session.current_sql)

    # -- statements --------------------------------------------------------------------------

    def active_statements(self) -> list[ActiveStatement]:
        out = []
        for s in self.session_objects():
            stmt = s.statement
            if stmt is not None and not stmt.finished:
                out.append(ActiveStatement(stmt.query_id, s.info(), stmt))
        return sorted(out, key=lambda a: a.statement.started_mono)

    def statement(self, query_id: str) -> Statement:
        """A running statement, or one of the recently finished ones."""
        for s in self.session_objects():
            stmt = s.statement
            if stmt is not None and stmt.query_id == query_id:
                return stmt
        number = query_id[1:]
        valid = query_id.startswith("q") and number.isascii() and number.isdigit()
        stmt = self._recent[int(number) & (RECENT_STATEMENTS - 1)] if valid else None
        if stmt is None or stmt.query_id != query_id:
            raise NotFound(f"Query {query_id} not found", query_id=query_id)
        return stmt

    def cancel(self, session_id: int, by: str = "admin", query_id: str | None = None) -> Statement:
        target = f"session {session_id}" + (f" query {query_id}" if query_id else "")
        try:
            stmt = self.session(session_id).cancel(by, query_id)
        except EngineError as exc:
            audit(by, "cancel", target, f"refused: {exc.message}")
            raise
        audit(by, "cancel", target, query_id=stmt.query_id, sql=stmt.sql)
        return stmt

    def cancel_query(self, query_id: str, by: str = "admin") -> Statement:
        return self.cancel(self.statement(query_id).session_id, by, query_id)

    def statement_finished(self, stmt: Statement, failed: bool) -> None:
        if failed and self.events.has_subscribers("statement_failed"):
            self.events.publish("statement_failed", stmt)
        self._recent[stmt.id & (RECENT_STATEMENTS - 1)] = stmt

    # -- schemas -----------------------------------------------------------------------------

    def create_schema(self, name: str) -> Path:
        """Create a schema file; sessions ATTACH it before their next statement outside a transaction."""
        return self.storage.create_schema(name)

    # -- services ----------------------------------------------------------------------------

    def sample_ash(self) -> int:
        if not self.config.monitoring_enabled:
            return 0
        return self.ash.sample(self.session_objects(), self.locks.first_blockers())

    def detect_deadlocks(self) -> list[Deadlock]:
        found = self.locks.detect_deadlocks(_deadlock_error)
        for d in found:
            self.events.publish("deadlock", d)
            log.warning("deadlock %s: victim session %s (transaction %s); cycle %s", d.deadlock_id,
                        d.victim_session, d.victim_transaction,
                        " -> ".join(f"session {p.session_id} waits for {p.waiting_for}" for p in d.participants))
        return found

    def _stats_tick(self) -> HostFigures:
        reg = self.transactions
        self.stats.tick(reg.commits_total + reg.rollbacks_total)
        return self.host.read()


def _deadlock_error(d: Deadlock) -> DeadlockDetected:
    cycle = [{"session_id": p.session_id, "transaction_id": p.transaction_id, "waiting_for": p.waiting_for,
              "holding": list(p.holding), "sql": p.sql} for p in d.participants]
    return DeadlockDetected(
        f"deadlock detected: transaction {d.victim_transaction} (session {d.victim_session}) was chosen as "
        "the victim and rolled back", deadlock_id=d.deadlock_id, cycle=cycle)

