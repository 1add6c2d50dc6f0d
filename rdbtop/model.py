"""Typed snapshots the console reads, parsed tolerantly from the REST API's JSON.

A real RustyDB server returns fewer fields than our engine (and sometimes other types): a
missing or ill-typed field becomes None (shown as "–"), unknown fields are ignored, and a record
that is not even an object is skipped. Nothing here raises on server data.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

MISSING_TEXT = "–"
ROW_CAP = 500  # rows a table shows at most (the top of its order), so also the sessions a poll asks for


def field_of(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, dict) else None


# Each parser first checks the type a well-behaved server sends (`type(...) is`, which a bool is not
# for int): a poll parses thousands of fields, and the tolerant checks after it cost three times more.

def int_(d: Any, key: str) -> int | None:
    v = d.get(key) if isinstance(d, dict) else None
    if type(v) is int:
        return v
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    return None


def float_(d: Any, key: str) -> float | None:
    v = d.get(key) if isinstance(d, dict) else None
    if type(v) is float:
        return v
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return None


def str_(d: Any, key: str) -> str | None:
    v = d.get(key) if isinstance(d, dict) else None
    if type(v) is str:
        return v
    if v is None or isinstance(v, (dict, list)):
        return None
    return str(v)


def bool_(d: Any, key: str) -> bool | None:
    v = field_of(d, key)
    return v if isinstance(v, bool) else None


def list_(d: Any, key: str) -> list[Any]:
    v = field_of(d, key) if key else d
    return v if isinstance(v, list) else []


def records(v: Any) -> list[dict[str, Any]]:
    return [r for r in (v if isinstance(v, list) else []) if isinstance(r, dict)]


def ints(d: Any, key: str) -> tuple[int, ...]:
    return tuple(v for v in list_(d, key) if isinstance(v, int) and not isinstance(v, bool))


def parse_all(items: Any, parse: Any) -> list[Any]:
    """Parse each object in a list, dropping what cannot be parsed."""
    return [x for x in (parse(r) for r in records(items)) if x is not None]


@dataclass(frozen=True)
class Session:
    session_id: int
    username: str | None = None
    application: str | None = None
    client: str | None = None
    state: str | None = None
    wait_class: str | None = None
    wait_event: str | None = None
    blocking_session: int | None = None
    sql: str | None = None
    query_id: str | None = None
    state_seconds: float | None = None
    transaction_started_at: int | None = None
    created_at: int | None = None
    transaction_id: int | None = None
    sql_id: str | None = None
    state_since: int | None = None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Session | None:
        sid = int_(d, "session_id")
        if sid is None:
            return None
        # RustyDB's own serde aliases: `user` for username, `connected_at` for created_at
        return cls(sid, str_(d, "username") or str_(d, "user"), str_(d, "application_name"),
                   str_(d, "client_address"), str_(d, "state"), str_(d, "wait_class"), str_(d, "wait_event"),
                   int_(d, "blocking_session"), str_(d, "current_query"), str_(d, "current_query_id"),
                   float_(d, "state_seconds"), int_(d, "transaction_started_at"),
                   int_(d, "created_at") if int_(d, "created_at") is not None else int_(d, "connected_at"),
                   int_(d, "transaction_id"), str_(d, "sql_id"), int_(d, "state_since"))

    @property
    def waiting(self) -> bool:
        return self.state == "waiting" or self.blocking_session is not None

    @property
    def idle(self) -> bool:
        return self.state == "idle"


@dataclass(frozen=True)
class ActiveQuery:
    query_id: str
    session_id: int | None = None
    username: str | None = None
    status: str | None = None
    elapsed_ms: float | None = None
    wait_event: str | None = None
    blocking_session: int | None = None
    sql: str | None = None
    sql_id: str | None = None
    wait_class: str | None = None
    operation: str | None = None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> ActiveQuery | None:
        qid = str_(d, "query_id")
        if qid is None:
            return None
        return cls(qid, int_(d, "session_id"), str_(d, "username"), str_(d, "status"), float_(d, "elapsed_ms"),
                   str_(d, "wait_event"), int_(d, "blocking_session"), str_(d, "sql_text"), str_(d, "sql_id"),
                   str_(d, "wait_class"), str_(d, "current_operation"))


@dataclass(frozen=True)
class Lock:
    lock_id: str
    resource: str | None
    resource_type: str | None
    mode: str | None
    session_id: int | None
    transaction_id: int | None
    granted: bool | None
    since: int | None
    blocked_by: tuple[int, ...]

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Lock | None:
        lid = str_(d, "lock_id")
        if lid is None:
            return None
        return cls(lid, str_(d, "resource_id"), str_(d, "resource_type"), str_(d, "lock_type"), int_(d, "session_id"),
                   int_(d, "transaction_id"), bool_(d, "granted"),
                   int_(d, "wait_started_at") if bool_(d, "granted") is False else int_(d, "acquired_at"),
                   ints(d, "blocked_by"))


@dataclass(frozen=True)
class BlockerNode:
    session_id: int
    username: str | None
    sql: str | None
    resource: str | None
    wait_seconds: float | None
    blocked: tuple[BlockerNode, ...] = ()

    @classmethod
    def parse(cls, d: dict[str, Any], depth: int = 0) -> BlockerNode | None:
        sid = int_(d, "session_id")
        if sid is None or depth > 64:
            return None
        children = tuple(n for n in (cls.parse(c, depth + 1) for c in records(field_of(d, "blocked"))) if n)
        return cls(sid, str_(d, "username"), str_(d, "sql"), str_(d, "resource"), float_(d, "wait_seconds"), children)

    def count(self) -> int:
        return sum(1 + c.count() for c in self.blocked)

    def walk(self, depth: int = 0, path: str = "") -> list[tuple[int, str, BlockerNode]]:
        """(depth, a key unique within the tree, node), depth first."""
        key = f"{path}/{self.session_id}"
        out = [(depth, key, self)]
        for child in self.blocked:
            out.extend(child.walk(depth + 1, key))
        return out


@dataclass(frozen=True)
class Deadlock:
    deadlock_id: str
    detected_at: int | None
    victim_session: int | None
    transactions: tuple[int, ...]
    resources: tuple[str, ...]
    sessions: tuple[int, ...] = ()

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Deadlock | None:
        did = str_(d, "deadlock_id")
        if did is None:
            return None
        participants = records(field_of(d, "participants"))
        resources = tuple(str(r) for r in list_(d, "resources") if r is not None) or \
            tuple(r for r in (str_(p, "waiting_for") for p in participants) if r)
        sessions = tuple(s for s in (int_(p, "session_id") for p in participants) if s is not None)
        return cls(did, int_(d, "detected_at"), int_(d, "victim_session"), ints(d, "transactions"), resources, sessions)


@dataclass(frozen=True)
class Alert:
    alert_id: str
    severity: str | None = None
    title: str | None = None
    description: str | None = None
    triggered_at: int | None = None
    acknowledged: bool | None = None
    state: str | None = None
    category: str | None = None
    value: float | None = None
    threshold: float | None = None
    occurrence_count: int | None = None
    acknowledged_by: str | None = None
    resolved_at: int | None = None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Alert | None:
        aid = str_(d, "alert_id") or str_(d, "id")
        if aid is None:
            return None
        return cls(aid, str_(d, "severity"), str_(d, "title") or str_(d, "name"),
                   str_(d, "description") or str_(d, "message"), int_(d, "triggered_at"), bool_(d, "acknowledged"),
                   str_(d, "state"), str_(d, "category"), float_(d, "value"), float_(d, "threshold"),
                   int_(d, "occurrence_count"), str_(d, "acknowledged_by"), int_(d, "resolved_at"))

    @property
    def status(self) -> str:
        """firing, acknowledged or resolved; RustyDB says only `acknowledged`, so fall back on it."""
        if self.state:
            state = self.state.lower()
            return "firing" if state in ("active", "firing") else state
        if self.resolved_at is not None:
            return "resolved"
        return "acknowledged" if self.acknowledged else "firing"


SEVERITY_RANK = {"critical": 0, "error": 1, "high": 1, "warning": 2, "medium": 2, "info": 3, "low": 3}


@dataclass(frozen=True)
class Backup:
    backup_id: str
    backup_type: str | None = None
    status: str | None = None
    start_time: int | None = None
    completion_time: int | None = None
    size_bytes: int | None = None
    location: str | None = None
    error_message: str | None = None
    duration_ms: float | None = None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Backup | None:
        bid = str_(d, "backup_id")
        if bid is None:
            return None
        return cls(bid, str_(d, "backup_type"), str_(d, "status"), int_(d, "start_time"),
                   int_(d, "completion_time") or int_(d, "completed_at"), int_(d, "size_bytes"), str_(d, "location"),
                   str_(d, "error_message"), float_(d, "duration_ms"))

    @property
    def duration_seconds(self) -> float | None:
        if self.duration_ms is not None:  # ours: exact; RustyDB's whole-second timestamps say 0 for a fast one
            return self.duration_ms / 1000
        if self.start_time is None or self.completion_time is None:
            return None
        return max(0, self.completion_time - self.start_time)

    @property
    def good(self) -> bool:
        return (self.status or "").lower() in ("completed", "verified")


@dataclass(frozen=True)
class BackupSchedule:
    enabled: bool | None = None
    full_cron: str | None = None
    incremental_cron: str | None = None
    retention_days: int | None = None
    destination: str | None = None

    @classmethod
    def parse(cls, d: Any) -> BackupSchedule | None:
        if not isinstance(d, dict):
            return None
        return cls(bool_(d, "enabled"), str_(d, "full_backup_cron"), str_(d, "incremental_backup_cron"),
                   int_(d, "retention_days"), str_(d, "destination"))


@dataclass(frozen=True)
class AshBucket:
    key: str
    samples: int | None
    percent: float | None
    average_active_sessions: float | None
    example: str | None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> AshBucket | None:
        key = str_(d, "key")
        if key is None:
            return None
        return cls(key, int_(d, "samples"), float_(d, "percent"), float_(d, "average_active_sessions"),
                   str_(d, "example"))


@dataclass(frozen=True, slots=True)
class AshSample:
    """One session in one second. The console keeps a window of them (a sample a second for each
    active session), so each is slotted and shares its few distinct strings."""

    sample_time: int
    session_id: int | None
    wait_class: str | None
    state: str | None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> AshSample | None:
        t = int_(d, "sample_time")
        if t is None:
            return None
        # RustyDB's sample has no wait class: a wait event means waiting, none means on CPU
        wait_class = str_(d, "wait_class") or ("Other" if str_(d, "wait_event") else "CPU")
        state = str_(d, "state")
        return cls(t, int_(d, "session_id"), sys.intern(wait_class), sys.intern(state) if state else None)


@dataclass(frozen=True)
class Overview:
    server_version: str | None = None
    server_name: str | None = None
    uptime_seconds: float | None = None
    health: str | None = None
    health_notes: tuple[str, ...] = ()
    statements_per_second: float | None = None
    transactions_per_second: float | None = None
    cache_hit_ratio: float | None = None
    cpu_percent: float | None = None
    memory_percent: float | None = None
    sessions_by_state: dict[str, int] = field(default_factory=dict)
    deadlocks: int | None = None
    lock_waiters: int | None = None

    @classmethod
    def parse(cls, perf: Any, health: Any, info: Any) -> Overview:
        by_state = field_of(perf, "sessions")
        checks = field_of(health, "checks")
        notes = tuple(f"{name}: {str_(c, 'message') or str_(c, 'status') or MISSING_TEXT}"
                      for name, c in (checks.items() if isinstance(checks, dict) else ())
                      if str_(c, "status") not in (None, "healthy"))
        return cls(str_(info, "version") or str_(health, "version"), str_(info, "server_name"),
                   float_(perf, "uptime_seconds") or float_(health, "uptime_seconds") or float_(info, "uptime_seconds"),
                   str_(health, "status"), notes,
                   float_(perf, "statements_per_second"), float_(perf, "transactions_per_second"),
                   float_(perf, "cache_hit_ratio"), float_(perf, "cpu_usage_percent"),
                   float_(perf, "memory_usage_percent"),
                   {str(k): v for k, v in by_state.items() if isinstance(v, int)} if isinstance(by_state, dict) else {},
                   int_(perf, "deadlocks"), int_(perf, "lock_waiters"))


# Areas of a snapshot, each from its own endpoint; one that the server does not serve is hidden.
AREAS = ("overview", "sessions", "queries", "locks", "ash", "alerts", "backups")


@dataclass
class Snapshot:
    """Everything one poll learned. `missing` names areas the server does not serve, with a note.

    A poll reads what one pane needs (`pane`; None for every area, as --once reads). The other
    fields hold what earlier polls brought, for actions and `g`; only `pane` is drawn from it.
    """

    taken_at: float
    overview: Overview = field(default_factory=Overview)
    sessions: list[Session] = field(default_factory=list)
    sessions_total: int | None = None  # every session the server has (the list may be its top rows)
    queries: list[ActiveQuery] = field(default_factory=list)
    locks: list[Lock] = field(default_factory=list)
    blocking_tree: list[BlockerNode] = field(default_factory=list)
    deadlocks: list[Deadlock] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    backups: list[Backup] = field(default_factory=list)
    schedule: BackupSchedule | None = None
    backup_age_limit_hours: float | None = None  # from the server's alert rule, when it has one
    ash_samples: list[AshSample] = field(default_factory=list)
    ash_top: dict[str, list[AshBucket]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    pane: str | None = None  # the pane this poll read for

    def root_blocker_of(self, session_id: int) -> int | None:
        """The root of the chain a waiting session waits in (following blocking_session)."""
        by_id = {s.session_id: s for s in self.sessions}
        for root in self.blocking_tree:
            if any(node.session_id == session_id for _, _, node in root.walk()[1:]):
                return root.session_id
        seen, current = {session_id}, by_id.get(session_id)
        while current is not None and current.blocking_session is not None:
            if current.blocking_session in seen:
                return current.blocking_session  # a cycle (a deadlock about to be broken)
            seen.add(current.blocking_session)
            nxt = by_id.get(current.blocking_session)
            if nxt is None:
                return current.blocking_session
            current = nxt
        return None if current is None or current.session_id == session_id else current.session_id
