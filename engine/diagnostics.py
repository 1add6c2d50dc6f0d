"""Incidents: opened by the engine itself when something goes wrong, with the evidence of the moment.

Sources (engine.events): every deadlock; a burst of failures of one statement fingerprint; a
critical alert; a failed backup. An incident moves open -> investigating -> resolved -> closed (a
resolved one may be reopened) and gets an assignee through `update`; while one is open, a repeat of
the same trouble (the same fingerprint failing, the same alert firing, backups failing) counts on
it instead of opening another.

Incidents live in memory, bounded, and are written behind to `system.db` by one writer thread:
event handlers run in the publisher's thread (a session, the deadlock detector), so they only touch
memory and queue the write.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import apsw

from .audit import audit
from .errors import Conflict, EngineError, InvalidInput, NotFound
from .locks import Deadlock, LockInfo
from .sessions import SessionInfo, SessionState
from .statements import Statement
from .system_db import open_system_db, write

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("engine.diagnostics")

MAX_INCIDENTS = 1000
FAILURE_THRESHOLD = 5
FAILURE_WINDOW_SECONDS = 60.0
# Fingerprints whose recent failures are remembered; the least recently failing are forgotten first.
FAILURE_FINGERPRINTS = 4096
# Evidence is a snapshot of the busiest part of the engine, never all of it: 10,000 idle sessions
# would make every incident megabytes.
EVIDENCE_SESSIONS = 100
EVIDENCE_LOCKS = 500
EVIDENCE_OCCURRENCES = 20
HISTORY_ENTRIES = 100
# A cancel or a terminate is somebody's decision, not the statement failing.
_DELIBERATE = {"QUERY_CANCELED", "SESSION_TERMINATED"}


class IncidentSeverity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


SEVERITY_RANK = {IncidentSeverity.LOW: 0, IncidentSeverity.MEDIUM: 1, IncidentSeverity.HIGH: 2,
                 IncidentSeverity.CRITICAL: 3}


class IncidentStatus(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"
    CLOSED = "closed"


NEXT_STATUSES: dict[IncidentStatus, tuple[IncidentStatus, ...]] = {
    IncidentStatus.OPEN: (IncidentStatus.INVESTIGATING, IncidentStatus.RESOLVED),
    IncidentStatus.INVESTIGATING: (IncidentStatus.RESOLVED,),
    IncidentStatus.RESOLVED: (IncidentStatus.INVESTIGATING, IncidentStatus.CLOSED),
    IncidentStatus.CLOSED: (),
}


class IncidentKind(StrEnum):
    DEADLOCK = "deadlock"
    STATEMENT_FAILURES = "statement_failures"
    CRITICAL_ALERT = "critical_alert"
    BACKUP_FAILED = "backup_failed"


@dataclass(frozen=True)
class IncidentChange:
    at: float
    by: str
    field: str  # "status", "assignee" or "note"
    old: str | None
    new: str | None
    note: str | None = None


@dataclass
class Incident:
    """Containers are replaced, never changed in place, so a copy handed out stays consistent."""

    id: int
    kind: IncidentKind
    severity: IncidentSeverity
    status: IncidentStatus
    title: str
    description: str
    created_at: float
    updated_at: float
    affected_components: tuple[str, ...]
    evidence: dict[str, Any]
    key: str | None = None  # repeats of the same trouble while this one is open count here
    resolved_at: float | None = None
    assignee: str | None = None
    occurrence_count: int = 1
    history: tuple[IncidentChange, ...] = ()

    @property
    def active(self) -> bool:
        return self.status in (IncidentStatus.OPEN, IncidentStatus.INVESTIGATING)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> Incident:
        data = json.loads(text)
        return cls(**{**data, "kind": IncidentKind(data["kind"]), "severity": IncidentSeverity(data["severity"]),
                      "status": IncidentStatus(data["status"]),
                      "affected_components": tuple(data["affected_components"]),
                      "history": tuple(IncidentChange(**c) for c in data["history"])})


UNSET: Any = object()


class Worker:
    """One named thread running queued calls in order, from its creation until `close`.

    Started at once rather than at the first call, so an engine's threads are all there from its start."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., object], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._dropping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable[..., object], *args: Any) -> None:
        self._queue.put((call, args))

    def close(self, drop_queued: bool = False) -> None:
        """Finish the running call and, unless `drop_queued`, the queued ones; then stop."""
        self._dropping = drop_queued
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            call, args = item
            if self._dropping:
                continue
            try:
                call(*args)
            except Exception:  # one failed call must not stop the ones after it
                log.exception("%s: %r failed", self._thread.name, call)


class IncidentService:
    def __init__(self, engine: Engine, *, max_incidents: int = MAX_INCIDENTS,
                 failure_threshold: int = FAILURE_THRESHOLD,
                 failure_window_seconds: float = FAILURE_WINDOW_SECONDS) -> None:
        self._engine = engine
        self._clock = engine.clock
        self.max_incidents = max_incidents
        self.failure_threshold = failure_threshold
        self.failure_window_seconds = failure_window_seconds
        self._mutex = threading.Lock()
        self._incidents: dict[int, Incident] = {}
        self._active_by_key: dict[str, int] = {}
        self._failures: OrderedDict[str, deque[tuple[float, dict[str, Any]]]] = OrderedDict()  # sql_id -> (when, what)
        self._unwritten: set[int] = set()
        self.closed = False
        self._db = open_system_db(engine.storage.data_dir)
        self._db.execute("CREATE TABLE IF NOT EXISTS incidents(id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        for (body,) in reversed(self._db.execute("SELECT body FROM incidents ORDER BY id DESC LIMIT ?",
                                                 (max_incidents,)).fetchall()):
            self._remember(Incident.from_json(body))
        (last,) = self._db.execute("SELECT coalesce(max(id), 0) FROM incidents").fetchone()
        self._next_id = last + 1
        self._writer = Worker("engine-incidents")
        engine.events.subscribe("deadlock", self._on_deadlock)
        engine.events.subscribe("statement_failed", self._on_statement_failed)
        engine.events.subscribe("alert_fired", self._on_alert)
        engine.events.subscribe("backup_failed", self._on_backup_failed)

    def close(self) -> None:
        """Stop taking events, finish the queued writes."""
        with self._mutex:
            self.closed = True
        self._writer.close()
        self._db.close()

    # -- reading -----------------------------------------------------------------------------

    def incidents(self, severity: IncidentSeverity | None = None,
                  status: IncidentStatus | None = None) -> list[Incident]:
        """Newest first."""
        with self._mutex:
            return [dataclasses.replace(i) for i in reversed(self._incidents.values())
                    if (severity is None or i.severity is severity) and (status is None or i.status is status)]

    def get(self, incident_id: int) -> Incident:
        with self._mutex:
            return dataclasses.replace(self._get(incident_id))

    def _get(self, incident_id: int) -> Incident:
        incident = self._incidents.get(incident_id)
        if incident is None:
            raise NotFound(f"Incident {incident_id} not found", incident_id=incident_id)
        return incident

    # -- changing ----------------------------------------------------------------------------

    def update(self, incident_id: int, by: str, *, status: IncidentStatus | None = None, assignee: Any = UNSET,
               note: str | None = None) -> Incident:
        """Move the status along NEXT_STATUSES, set or clear (None) the assignee, add a note."""
        target = f"incident {incident_id}"
        details = {"status": status.value if status else None, "assignee": None if assignee is UNSET else assignee,
                   "note": note}
        try:
            if status is None and assignee is UNSET and not note:
                raise InvalidInput("nothing to change: give a new status, an assignee or a note", field="status")
            with self._mutex:
                incident = self._get(incident_id)
                now = self._clock.time()
                changes = []
                if status is not None and status is not incident.status:
                    allowed = NEXT_STATUSES[incident.status]
                    if status not in allowed:
                        raise Conflict(
                            f"Incident {incident_id} cannot go from {incident.status} to {status}; allowed next "
                            f"states: {', '.join(allowed) if allowed else 'none (closed is final)'}",
                            status=incident.status.value, allowed_next=[s.value for s in allowed])
                    changes.append(IncidentChange(now, by, "status", incident.status.value, status.value, note))
                if assignee is not UNSET and assignee != incident.assignee:
                    if incident.status is IncidentStatus.CLOSED:
                        raise Conflict(f"Incident {incident_id} is closed; its assignee cannot change",
                                       status=incident.status.value, allowed_next=[])
                    changes.append(IncidentChange(now, by, "assignee", incident.assignee, assignee, note))
                if not changes and note:
                    changes.append(IncidentChange(now, by, "note", None, None, note))
                for change in changes:
                    if change.field == "status":
                        incident.status = IncidentStatus(change.new)
                        if incident.status is IncidentStatus.RESOLVED:
                            incident.resolved_at = now
                        elif incident.status is IncidentStatus.INVESTIGATING:
                            incident.resolved_at = None  # reopened
                    elif change.field == "assignee":
                        incident.assignee = change.new
                if changes:  # none when what was asked for holds already: an idempotent PATCH
                    incident.history = (*incident.history, *changes)[-HISTORY_ENTRIES:]
                    incident.updated_at = now
                    self._track_key(incident)
                    self._write_behind(incident.id)
                out = dataclasses.replace(incident)
        except EngineError as exc:
            audit(by, "update_incident", target, f"refused: {exc.message}", **details)
            raise
        audit(by, "update_incident", target, **details)
        return out

    def open(self, kind: IncidentKind, severity: IncidentSeverity, title: str, description: str,
             components: Iterable[str], evidence: dict[str, Any], key: str | None = None,
             occurrences: list[dict[str, Any]] | None = None) -> Incident | None:
        """Open an incident, or count `occurrences` on the open one with the same `key`.

        None once the service is closed (an event during shutdown)."""
        with self._mutex:
            if self.closed:
                return None
            current = self._recur(key, occurrences or [])
            if current is not None:
                return dataclasses.replace(current)
            now = self._clock.time()
            if occurrences:
                evidence = {**evidence, "occurrences": occurrences[-EVIDENCE_OCCURRENCES:]}
            incident = Incident(self._next_id, kind, severity, IncidentStatus.OPEN, title, description, now, now,
                                tuple(components), evidence, key, occurrence_count=max(1, len(occurrences or ())))
            self._next_id += 1
            self._remember(incident)
            self._write_behind(incident.id)
            while len(self._incidents) > self.max_incidents:
                self._write_behind(self._evict())
        log.warning("incident %s opened (%s, %s): %s", incident.id, kind, severity, title)
        return dataclasses.replace(incident)

    def _recur(self, key: str | None, occurrences: list[dict[str, Any]]) -> Incident | None:
        """Count a repeat on the active incident with this key, if there is one; called holding the mutex."""
        current = self._incidents.get(self._active_by_key.get(key or "", 0))
        if current is None:
            return None
        current.occurrence_count += max(1, len(occurrences))
        current.updated_at = self._clock.time()
        if occurrences:
            kept = [*current.evidence.get("occurrences", ()), *occurrences][-EVIDENCE_OCCURRENCES:]
            current.evidence = {**current.evidence, "occurrences": kept}
        self._write_behind(current.id)
        return current

    def _remember(self, incident: Incident) -> None:
        self._incidents[incident.id] = incident
        self._track_key(incident)

    def _track_key(self, incident: Incident) -> None:
        """Repeats count on the active incident of a key; a finished one lets the next repeat open anew."""
        if incident.key is None:
            return
        if incident.active:
            self._active_by_key.setdefault(incident.key, incident.id)
        elif self._active_by_key.get(incident.key) == incident.id:
            del self._active_by_key[incident.key]

    def _evict(self) -> int:
        """Forget the oldest finished incident, or the oldest of all when none is finished."""
        incidents = self._incidents.values()
        victim = next((i for i in incidents if not i.active), None) or next(iter(incidents))
        del self._incidents[victim.id]
        if victim.key is not None and self._active_by_key.get(victim.key) == victim.id:
            del self._active_by_key[victim.key]
        return victim.id

    # -- writing behind ----------------------------------------------------------------------

    def _write_behind(self, incident_id: int) -> None:
        """Queue a write of the incident's state (or its deletion once forgotten); called holding the mutex.

        A burst of changes to one incident queues one write, which stores the latest state."""
        if incident_id not in self._unwritten:
            self._unwritten.add(incident_id)
            self._writer.submit(self._write, incident_id)

    def _write(self, incident_id: int) -> None:
        with self._mutex:
            self._unwritten.discard(incident_id)
            incident = self._incidents.get(incident_id)
            body = None if incident is None else incident.to_json()
        try:
            with write(self._db):
                if body is None:
                    self._db.execute("DELETE FROM incidents WHERE id=?", (incident_id,))
                else:
                    self._db.execute("INSERT OR REPLACE INTO incidents(id, body) VALUES(?, ?)", (incident_id, body))
        except (apsw.Error, EngineError):
            log.exception("could not store incident %s", incident_id)

    # -- evidence ----------------------------------------------------------------------------

    def _snapshot(self, focus: Iterable[int] = ()) -> dict[str, Any]:
        """Sessions that are doing something (the `focus` sessions first) and the lock table, now."""
        engine = self._engine
        focus = set(focus)
        now = self._clock.time()
        sessions = engine.sessions()
        locks = engine.locks.locks()
        busy = sorted((s for s in sessions if s.session_id in focus or s.state is not SessionState.IDLE),
                      key=lambda s: (s.session_id not in focus, s.state_since))
        locks.sort(key=lambda lock: lock.session_id not in focus)  # stable: the table's order otherwise
        return {"taken_at": int(now), "sessions_total": len(sessions), "idle_sessions_left_out":
                len(sessions) - len(busy), "sessions": [session_record(s, now) for s in busy[:EVIDENCE_SESSIONS]],
                "locks_total": len(locks), "locks": [lock_record(lock) for lock in locks[:EVIDENCE_LOCKS]]}

    def _on_deadlock(self, deadlock: Deadlock) -> None:
        if self.closed:
            return
        sessions = [p.session_id for p in deadlock.participants]
        resources = sorted({p.waiting_for for p in deadlock.participants}
                           | {r for p in deadlock.participants for r in p.holding})
        who = ", ".join(f"session {p.session_id} (transaction {p.transaction_id}) waited for {p.waiting_for}"
                        for p in deadlock.participants)
        self.open(IncidentKind.DEADLOCK, IncidentSeverity.HIGH,
                  f"Deadlock {deadlock.deadlock_id}: session {deadlock.victim_session} rolled back",
                  f"{who}, each holding what the next one wanted; transaction {deadlock.victim_transaction} of "
                  f"session {deadlock.victim_session} was chosen as the victim and rolled back.",
                  resources,
                  {"deadlock": {"deadlock_id": deadlock.deadlock_id, "detected_at": int(deadlock.detected_at),
                                "victim_session": deadlock.victim_session,
                                "victim_transaction": deadlock.victim_transaction,
                                "participants": [dataclasses.asdict(p) for p in deadlock.participants]},
                   **self._snapshot(sessions)})

    def _on_statement_failed(self, stmt: Statement) -> None:
        """Count the failure; open an incident when its fingerprint failed often enough lately."""
        if stmt.error_code in _DELIBERATE or self.closed:
            return
        now = self._clock.monotonic()
        failure = {"at": int(stmt.started_at), "session_id": stmt.session_id, "username": stmt.username,
                   "query_id": stmt.query_id, "error_code": stmt.error_code, "error_message": stmt.error_message,
                   "sql": stmt.sql}
        key = f"{IncidentKind.STATEMENT_FAILURES}:{stmt.sql_id}"
        with self._mutex:
            if self._recur(key, [failure]) is not None:
                return
            recent = self._failures.get(stmt.sql_id)
            if recent is None:
                recent = self._failures[stmt.sql_id] = deque(maxlen=self.failure_threshold)
                if len(self._failures) > FAILURE_FINGERPRINTS:
                    self._failures.popitem(last=False)
            self._failures.move_to_end(stmt.sql_id)
            recent.append((now, failure))
            if len(recent) < self.failure_threshold or now - recent[0][0] > self.failure_window_seconds:
                return
            del self._failures[stmt.sql_id]
        seconds = now - recent[0][0]
        failures = [f for _, f in recent]
        self.open(IncidentKind.STATEMENT_FAILURES, IncidentSeverity.MEDIUM,
                  f"Statement {stmt.sql_id} failed {len(failures)} times in {seconds:.0f} s",
                  f"The statement with fingerprint {stmt.sql_id} failed {len(failures)} times within "
                  f"{self.failure_window_seconds:g} s; the last error was {stmt.error_code}: {stmt.error_message}. "
                  f"SQL: {_clip(stmt.sql, 500)}",
                  [f"sql_id:{stmt.sql_id}"],
                  {"sql_id": stmt.sql_id, "sql": stmt.sql, **self._snapshot(f["session_id"] for f in failures)},
                  key, failures)

    def _on_alert(self, alert: Any) -> None:
        severity = _field(alert, "severity")
        if self.closed or str(getattr(severity, "value", severity)).upper() != "CRITICAL":
            return
        alert_id = _field(alert, "id", "alert_id")
        name = _field(alert, "name", "rule", "title") or f"alert {alert_id}"
        message = _field(alert, "message", "description")
        category = _field(alert, "category")
        record = _plain(alert)
        self.open(IncidentKind.CRITICAL_ALERT, IncidentSeverity.CRITICAL, f"Critical alert: {name}",
                  f"Alert {alert_id} ({name}) fired at severity CRITICAL" + (f": {message}" if message else "."),
                  [str(category)] if category else [], {"alert": record, **self._snapshot()},
                  f"{IncidentKind.CRITICAL_ALERT}:{alert_id if alert_id is not None else name}",
                  [{"at": int(self._clock.time()), "alert": record}])

    def _on_backup_failed(self, backup: Any) -> None:
        if self.closed:
            return
        backup_id = _field(backup, "backup_id", "id")
        error = _field(backup, "error_message", "error") or "no reason given"
        record = _plain(backup)
        self.open(IncidentKind.BACKUP_FAILED, IncidentSeverity.HIGH, f"Backup {backup_id} failed",
                  f"Backup {backup_id} failed: {error}", ["backup"], {"backup": record, **self._snapshot()},
                  IncidentKind.BACKUP_FAILED.value, [{"at": int(self._clock.time()), "backup": record}])


# -- records shared with the dumps -------------------------------------------------------------

def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


def session_record(s: SessionInfo, now: float) -> dict[str, Any]:
    return {"session_id": s.session_id, "username": s.username, "application_name": s.application_name,
            "client_address": s.client_address, "state": s.state.value,
            "state_seconds": round(max(0.0, now - s.state_since), 3), "wait_class": s.wait_class,
            "wait_event": s.wait_event, "blocking_session": s.blocking_session,
            "blocking_sessions": list(s.blocking_sessions), "transaction_id": s.transaction_id,
            "transaction_started_at": _ts(s.transaction_started_at), "query_id": s.current_query_id,
            "sql_id": s.sql_id, "sql": s.current_sql, "query_started_at": _ts(s.query_started_at),
            "connected_at": int(s.connected_at), "last_activity": int(s.last_activity),
            "counters": dataclasses.asdict(s.counters)}


def lock_record(lock: LockInfo) -> dict[str, Any]:
    return {"lock_id": lock.lock_id, "resource": lock.resource, "resource_type": lock.resource_type,
            "mode": lock.mode.value, "session_id": lock.session_id, "transaction_id": lock.transaction_id,
            "granted": lock.granted, "since": int(lock.since), "blocked_by": list(lock.blocked_by)}


def _field(obj: Any, *names: str) -> Any:
    """The first of `names` the publisher's payload has (an object or a dict): other services own its shape."""
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _plain(obj: Any) -> Any:
    """A JSON-safe copy of a publisher's payload."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    elif not isinstance(obj, dict) and hasattr(obj, "__dict__"):
        obj = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return json.loads(json.dumps(obj, default=str))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
