"""Alerts: threshold rules over the engine's own figures, alert life cycles, silences and webhooks.

A rule compares a named metric with a threshold (`>`, `>=`, `<`, `<=`, `==`, `!=`). The evaluator
(`AlertService.evaluate`, run by the engine's "alerts" service every alert_eval_interval_ms) reads
each metric once per pass. An alert goes pending when its condition is first met, firing once the
condition has held for the rule's `for_seconds` (and `cooldown_seconds` have passed since its
previous firing), and resolved when the condition clears. A repeat firing of the same alert
reopens it and increments `occurrence_count`. Acknowledging keeps a firing alert visible without
counting it as active; the acknowledgement holds across a repeat that comes back within the
rule's `cooldown_seconds` of resolving (one flapping episode), and a later repeat needs a new one
(the alert keeps the history of who acknowledged which firing); a silence (by rule id and/or label values, until `expires_at`) keeps it
from notifying. Rules and silences persist in `system.db`; the alert history is bounded.

Metrics are looked up by name. A reader returns a float, a `Reading` (a value with the labels and
a sentence that name what was measured), a list of Readings (one alert per `Reading.key`, e.g. per
session), or None when the figure is unknown: a rule over an unknown metric is not evaluated and
never fires. The engine's own metrics are registered here:

- statement_seconds            running time of each running statement (one alert per session and sql_id)
- lock_wait_seconds            how long each session has waited for a lock (one alert per session)
- idle_in_transaction_seconds  how long each session has been idle in transaction (one alert per session)
- deadlocks                    deadlocks detected since the previous evaluation (from the "deadlock" event)
- cache_hit_ratio              page-cache hits over all page reads in the last minute
- connections_percent          open sessions as a percentage of max_connections
- disk_free_percent            free space on the data directory's file system, percent
- errors_per_minute            statements that ended in an error, per minute over the last minute

Registered by name by the backup service (until it does, they are unknown and their rules inactive):

- backup_age_hours             hours since the last successful backup
- backup_failed                1 when the most recent backup failed, else 0

Events published: "alert_fired" and "alert_resolved", with a copy of the `Alert`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import queue
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from .audit import audit
from .errors import Conflict, EngineError, InvalidInput, NotFound
from .locks import Deadlock
from .sessions import SessionInfo, SessionState
from .redaction import redact_text, redact_url
from .system_db import open_system_db, write

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("engine.alerts")

RATE_WINDOW_SECONDS = 60.0
SILENCE_RETENTION_SECONDS = 86400.0  # expired silences stay listed this long
MAX_DURATION_SECONDS = 30 * 86400.0
DEFAULT_COOLDOWN_SECONDS = 300.0
ACK_HISTORY = 10  # acknowledgements kept per alert
WEBHOOK_QUEUE_SIZE = 1000
# http(s), optional user info, a host name or IPv4 address (no IPv6 literal), an optional port, then a
# path, query, fragment or the end; the API documents the same pattern
WEBHOOK_URL_PATTERN = r"^https?://(?:[^/?#\s\[\]@]+@)?[^/?#\s\[\]@:]+(?::[0-9]{1,5})?(?:[/?#]|$)"
_WEBHOOK_URL = re.compile(WEBHOOK_URL_PATTERN)
WEBHOOK_TIMEOUT_SECONDS = 5.0
WEBHOOK_BACKOFF_SECONDS = (0.5, 1.0, 2.0)  # waits before the retries; one try plus one retry per entry
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class _CaseInsensitive(StrEnum):
    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            for member in cls:
                if member.value.lower() == value.lower():
                    return member
        return None


class Severity(_CaseInsensitive):
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class Category(_CaseInsensitive):
    """RustyDB's alert categories."""

    PERFORMANCE = "Performance"
    AVAILABILITY = "Availability"
    CAPACITY = "Capacity"
    SECURITY = "Security"
    DATA_INTEGRITY = "Data Integrity"
    REPLICATION = "Replication"
    BACKUP = "Backup"
    CONFIGURATION = "Configuration"


class Op(StrEnum):
    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    EQ = "=="
    NE = "!="

    def holds(self, value: float, threshold: float) -> bool:
        return _COMPARE[self](value, threshold)


_COMPARE: dict[Op, Callable[[float, float], bool]] = {
    Op.GT: lambda v, t: v > t, Op.GE: lambda v, t: v >= t, Op.LT: lambda v, t: v < t,
    Op.LE: lambda v, t: v <= t, Op.EQ: lambda v, t: v == t, Op.NE: lambda v, t: v != t,
}


class AlertState(_CaseInsensitive):
    PENDING = "pending"
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    SILENCED = "silenced"


@dataclass(frozen=True)
class Reading:
    """One measured value; `key` says which alert of a rule it belongs to ("" for the rule's only one)."""

    value: float
    text: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    key: str = ""


MetricReader = Callable[[], "float | Reading | Iterable[Reading] | None"]


@dataclass(frozen=True)
class MetricInfo:
    name: str
    unit: str
    description: str
    available: bool


@dataclass
class Rule:
    rule_id: str
    name: str
    metric: str
    operator: Op
    threshold: float
    for_seconds: float = 0.0
    severity: Severity = Severity.WARNING
    category: Category = Category.PERFORMANCE
    cooldown_seconds: float = DEFAULT_COOLDOWN_SECONDS
    enabled: bool = True
    webhook_url: str | None = None
    description: str = ""
    builtin: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0


RULE_FIELDS = tuple(f.name for f in fields(Rule))
_FIXED_FIELDS = ("rule_id", "builtin", "created_at", "updated_at")


@dataclass
class Silence:
    silence_id: str
    rule_id: str | None
    labels: dict[str, str]
    comment: str | None
    created_by: str
    created_at: float
    expires_at: float

    def active(self, now: float) -> bool:
        return now < self.expires_at

    def matches(self, alert: Alert, now: float) -> bool:
        return (self.active(now) and (self.rule_id is None or self.rule_id == alert.rule_id)
                and all(alert.labels.get(k) == v for k, v in self.labels.items()))


@dataclass(frozen=True)
class Acknowledgement:
    occurrence: int  # the firing it was given for (occurrence_count then)
    by: str
    at: float
    note: str | None


@dataclass
class Alert:
    alert_id: str
    rule_id: str
    key: str
    title: str
    severity: Severity
    category: Category
    metric: str
    operator: Op
    threshold: float
    unit: str
    value: float
    description: str
    labels: dict[str, str]
    triggered_at: float  # when the condition was first met
    phase: AlertState  # pending, firing or resolved; `state` adds acknowledged and silenced
    pending_since: float | None
    occurrence_count: int = 0
    last_fired_at: float | None = None
    resolved_at: float | None = None
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    acknowledge_note: str | None = None
    silenced_by: str | None = None
    notified: bool = False  # "alert_fired" went out for the current occurrence
    acknowledgements: list[Acknowledgement] = field(default_factory=list)  # newest last, bounded

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    @property
    def state(self) -> AlertState:
        if self.phase is not AlertState.FIRING:
            return self.phase
        if self.acknowledged:
            return AlertState.ACKNOWLEDGED
        return AlertState.SILENCED if self.silenced_by else AlertState.FIRING

    def as_dict(self) -> dict[str, Any]:
        """The alert as the API and webhooks show it (RustyDB's fields first, timestamps in whole seconds)."""
        return {
            "alert_id": self.alert_id, "severity": self.severity.value, "title": self.title,
            "description": self.description, "triggered_at": int(self.triggered_at),
            "acknowledged": self.acknowledged, "state": self.state.value, "category": self.category.value,
            "rule": self.rule_id, "metric": self.metric, "operator": self.operator.value, "value": self.value,
            "threshold": self.threshold, "unit": self.unit, "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": _ts(self.acknowledged_at), "acknowledge_note": self.acknowledge_note,
            "resolved_at": _ts(self.resolved_at), "occurrence_count": self.occurrence_count,
            "last_fired_at": _ts(self.last_fired_at), "pending_since": _ts(self.pending_since),
            "silenced_by": self.silenced_by, "labels": dict(self.labels),
            "acknowledgements": [{"occurrence": a.occurrence, "acknowledged_by": a.by, "acknowledged_at": int(a.at),
                                  "note": a.note} for a in self.acknowledgements],
        }


def _ts(value: float | None) -> int | None:
    return None if value is None else int(value)


# (rule_id, name, metric, operator, threshold, for_seconds, severity, category, description)
BUILTIN_RULES = (
    ("long_running_statement", "Long-running statement", "statement_seconds", Op.GT, 300.0, 0.0, Severity.WARNING,
     Category.PERFORMANCE, "a statement has been running longer than the threshold (seconds)"),
    ("blocked_session", "Blocked session", "lock_wait_seconds", Op.GT, 30.0, 0.0, Severity.WARNING,
     Category.PERFORMANCE, "a session has waited for a lock longer than the threshold (seconds)"),
    ("idle_in_transaction", "Idle in transaction", "idle_in_transaction_seconds", Op.GT, 300.0, 0.0,
     Severity.WARNING, Category.PERFORMANCE,
     "a session has been idle inside an open transaction longer than the threshold (seconds)"),
    ("deadlock", "Deadlock detected", "deadlocks", Op.GE, 1.0, 0.0, Severity.ERROR, Category.PERFORMANCE,
     "the deadlock detector broke a cycle by rolling back a victim"),
    ("cache_hit_ratio", "Low cache hit ratio", "cache_hit_ratio", Op.LT, 0.9, 60.0, Severity.WARNING,
     Category.PERFORMANCE, "page-cache hit ratio over the last minute below the threshold"),
    ("connections", "Connections near the limit", "connections_percent", Op.GT, 80.0, 0.0, Severity.WARNING,
     Category.CAPACITY, "open sessions above the threshold percentage of max_connections"),
    ("disk_free", "Low free disk space", "disk_free_percent", Op.LT, 10.0, 0.0, Severity.ERROR, Category.CAPACITY,
     "free space on the data directory's file system below the threshold percentage"),
    ("backup_age", "Backup too old", "backup_age_hours", Op.GT, 26.0, 0.0, Severity.WARNING, Category.BACKUP,
     "the last successful backup is older than the threshold (hours)"),
    ("backup_failed", "Backup failed", "backup_failed", Op.GE, 1.0, 0.0, Severity.ERROR, Category.BACKUP,
     "the most recent backup failed"),
    ("error_rate", "High error rate", "errors_per_minute", Op.GT, 60.0, 60.0, Severity.WARNING,
     Category.AVAILABILITY, "statements ending in an error, per minute, above the threshold"),
)


class _CounterWindow:
    """Deltas of cumulative counters over the last `seconds`, from samples taken when read."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._samples: deque[tuple[float, tuple[int, ...]]] = deque()

    def delta(self, now: float, *totals: int) -> tuple[float, tuple[int, ...]] | None:
        """(span, deltas) since the last sample taken at or before the window's start (or the oldest
        one, while there is none); None until the samples span any time."""
        samples = self._samples
        samples.append((now, totals))
        while len(samples) > 1 and samples[1][0] <= now - self._seconds:
            samples.popleft()
        t0, first = samples[0]
        if now <= t0:
            return None
        return now - t0, tuple(b - a for a, b in zip(first, totals))


class _Window:
    """Items that arrived during the previous evaluation interval."""

    def __init__(self) -> None:
        self._incoming: deque[Any] = deque(maxlen=256)
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        self._incoming.append(item)

    def roll(self) -> None:
        incoming, popleft = self._incoming, self._incoming.popleft
        self.items = [popleft() for _ in range(len(incoming))]


class WebhookNotifier:
    """Delivers JSON bodies by HTTP POST from one worker thread, so nothing else ever waits on a network.

    The queue is bounded: when it is full a notification is dropped, counted and logged.
    """

    def __init__(self, capacity: int = WEBHOOK_QUEUE_SIZE, timeout: float = WEBHOOK_TIMEOUT_SECONDS,
                 backoff: tuple[float, ...] = WEBHOOK_BACKOFF_SECONDS) -> None:
        self.capacity = capacity
        self.timeout = timeout
        self.backoff = backoff
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(maxsize=capacity)
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None
        self.sent_total = 0
        self.failed_total = 0
        self.retries_total = 0
        self.dropped_total = 0
        self.last_error: str | None = None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def submit(self, url: str, body: dict[str, Any]) -> bool:
        with self._mutex:
            if self._stop.is_set():
                return False
            if self._thread is None:  # started on first use: engines without webhooks run no thread
                self._thread = threading.Thread(target=self._run, name="engine-alert-webhooks", daemon=True)
                self._thread.start()
            try:
                self._queue.put_nowait((url, body))
                return True
            except queue.Full:
                self.dropped_total += 1
                dropped = self.dropped_total
        log.warning("webhook queue full (%d): dropped a notification for %s (%d dropped so far)",
                    self.capacity, redact_url(url), dropped)
        return False

    def close(self) -> None:
        with self._mutex:
            self._stop.set()
            thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put_nowait(None)  # wakes an idle worker; a busy one sees the stop flag next
        except queue.Full:
            pass
        thread.join(self.timeout + 1.0)
        left = self._queue.qsize()
        if left:
            log.warning("%d webhook notifications not sent: the engine stopped", left)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout, headers={"User-Agent": "rdbtop-engine-alerts"}) as client:
            while not self._stop.is_set():
                item = self._queue.get()
                if item is None or self._stop.is_set():
                    return
                self._deliver(client, *item)

    def _deliver(self, client: httpx.Client, url: str, body: dict[str, Any]) -> None:
        error = ""
        for attempt, delay in enumerate((0.0, *self.backoff)):
            if attempt:
                if self._stop.wait(delay):
                    break
                self.retries_total += 1
            try:
                response = client.post(url, json=body)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                self.sent_total += 1
                return
            error = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code != 429:
                break  # the receiver refuses this body: sending it again will not help
        self.failed_total += 1
        # the URL may be the receiver's credential: monitors read last_error, and the log is no place for it;
        # the error first: a text that begins with the URL reads as a URL to clients that look for links
        error = redact_text(error, url)
        self.last_error = f"{error} (POST to {redact_url(url)})"
        log.warning("webhook %s failed after %d attempts: %s", redact_url(url), attempt + 1, error)


class AlertService:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._clock = engine.clock
        self._mutex = threading.RLock()
        self._eval_lock = threading.Lock()
        self._metrics: dict[str, tuple[str, str]] = {}  # name -> (unit, description)
        self._readers: dict[str, MetricReader] = {}
        self._metric_errors: dict[str, str] = {}
        self._alerts: dict[str, Alert] = {}
        self._by_key: dict[tuple[str, str], Alert] = {}
        self._deadlocks = _Window()
        self._errors = _CounterWindow(RATE_WINDOW_SECONDS)
        self._cache = _CounterWindow(RATE_WINDOW_SECONDS)
        self.notifier = WebhookNotifier()
        self.last_evaluated_at: float | None = None
        self._register_engine_metrics()
        self._db = open_system_db(engine.storage.data_dir)
        self._db.execute("""
            CREATE TABLE IF NOT EXISTS alert_rules(rule_id TEXT PRIMARY KEY, name TEXT NOT NULL,
                metric TEXT NOT NULL, operator TEXT NOT NULL, threshold REAL NOT NULL, for_seconds REAL NOT NULL,
                severity TEXT NOT NULL, category TEXT NOT NULL, cooldown_seconds REAL NOT NULL,
                enabled INTEGER NOT NULL, webhook_url TEXT, description TEXT NOT NULL, builtin INTEGER NOT NULL,
                created_at REAL NOT NULL, updated_at REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS alert_silences(silence_id TEXT PRIMARY KEY, rule_id TEXT, labels TEXT NOT NULL,
                comment TEXT, created_by TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL);
        """)
        now = self._clock.time()
        with write(self._db):
            for rule_id, name, metric, op, threshold, for_s, severity, category, description in BUILTIN_RULES:
                self._db.execute(f"INSERT OR IGNORE INTO alert_rules VALUES({','.join('?' * len(RULE_FIELDS))})",
                                 _row(Rule(rule_id, name, metric, op, threshold, for_s, severity, category,
                                           description=description, builtin=True, created_at=now, updated_at=now)))
        self._rules = {r.rule_id: r for r in map(_rule_of_row, self._db.execute(
            f"SELECT {','.join(RULE_FIELDS)} FROM alert_rules ORDER BY rowid"))}
        self._silences = {
            sid: Silence(sid, rule_id, json.loads(labels), comment, by, created, expires)
            for sid, rule_id, labels, comment, by, created, expires in self._db.execute(
                "SELECT silence_id, rule_id, labels, comment, created_by, created_at, expires_at FROM alert_silences "
                "ORDER BY created_at")}
        engine.events.subscribe("deadlock", self._deadlocks.add)

    def close(self) -> None:
        self.notifier.close()
        self._db.close()

    # -- metrics -----------------------------------------------------------------------------

    def declare_metric(self, name: str, unit: str = "", description: str = "") -> None:
        """Make a metric name valid in rules before anything reads it (it stays unknown until registered)."""
        with self._mutex:
            self._metrics[name] = (unit, description)

    def register_metric(self, name: str, reader: MetricReader, unit: str | None = None,
                        description: str | None = None) -> None:
        with self._mutex:
            old_unit, old_description = self._metrics.get(name, ("", ""))
            self._metrics[name] = (old_unit if unit is None else unit,
                                   old_description if description is None else description)
            self._readers[name] = reader

    def metrics(self) -> list[MetricInfo]:
        with self._mutex:
            return [MetricInfo(name, unit, description, name in self._readers)
                    for name, (unit, description) in sorted(self._metrics.items())]

    def metric_available(self, name: str) -> bool:
        return name in self._readers

    def _register_engine_metrics(self) -> None:
        self.register_metric("statement_seconds", self._statement_seconds, "s", "running time of each running "
                             "statement (one alert per session and sql_id)")
        self.register_metric("lock_wait_seconds", self._lock_wait_seconds, "s",
                             "how long each session has waited for a lock (one alert per session)")
        self.register_metric("idle_in_transaction_seconds", self._idle_in_transaction_seconds, "s",
                             "how long each session has been idle in transaction (one alert per session)")
        self.register_metric("deadlocks", self._deadlocks_in_window, "",
                             "deadlocks detected since the previous evaluation")
        self.register_metric("cache_hit_ratio", self._cache_hit_ratio, "ratio",
                             "page-cache hits over all page reads in the last minute")
        self.register_metric("connections_percent", self._connections_percent, "%",
                             "open sessions as a percentage of max_connections")
        self.register_metric("disk_free_percent", self._disk_free_percent, "%",
                             "free space on the data directory's file system")
        self.register_metric("errors_per_minute", self._errors_per_minute, "per minute",
                             "statements that ended in an error, per minute over the last minute")
        self.declare_metric("backup_age_hours", "hours", "hours since the last successful backup "
                            "(registered by the backup service)")
        self.declare_metric("backup_failed", "", "1 when the most recent backup failed, else 0 "
                            "(registered by the backup service)")

    def _statement_seconds(self) -> list[Reading]:
        now = self._clock.monotonic()
        out = []
        for a in self._engine.active_statements():
            s, stmt = a.session, a.statement
            seconds = now - stmt.started_mono
            out.append(Reading(seconds, f"{_who(s)} has been running query {a.query_id} for {_seconds(seconds)}: "
                                        f"{_short(stmt.sql)}",
                               _session_labels(s, sql_id=stmt.sql_id, query_id=a.query_id),
                               f"{s.session_id}/{stmt.sql_id}"))
        return out

    def _sessions_in(self, state: SessionState) -> Iterator[tuple[SessionInfo, float]]:
        now = self._clock.time()
        for session in self._engine.session_objects():
            if session.state is state:
                info = session.info()
                if info.state is state:
                    yield info, max(0.0, now - info.state_since)

    def _lock_wait_seconds(self) -> list[Reading]:
        out = []
        for s, seconds in self._sessions_in(SessionState.WAITING):
            blockers = ", ".join(map(str, s.blocking_sessions)) or "none now"
            out.append(Reading(seconds, f"{_who(s)} has waited {_seconds(seconds)} for {s.wait_event} "
                                        f"(blocked by session {blockers}) running: {_short(s.current_sql)}",
                               _session_labels(s, blocking_session=s.blocking_session), str(s.session_id)))
        return out

    def _idle_in_transaction_seconds(self) -> list[Reading]:
        return [Reading(seconds, f"{_who(s)} has been idle in transaction {s.transaction_id} for {_seconds(seconds)}",
                        _session_labels(s), str(s.session_id))
                for s, seconds in self._sessions_in(SessionState.IDLE_IN_TRANSACTION)]

    def _deadlocks_in_window(self) -> Reading:
        found: list[Deadlock] = self._deadlocks.items
        if not found:
            return Reading(0.0, "no deadlock since the previous check")
        d = found[-1]
        sessions = [p.session_id for p in d.participants]
        text = (f"deadlock {d.deadlock_id} between sessions {', '.join(map(str, sessions))} "
                f"(waiting for {', '.join(d.resources)}): session {d.victim_session} "
                f"(transaction {d.victim_transaction}) was rolled back")
        if len(found) > 1:
            text = f"{len(found)} deadlocks since the previous check; the latest, {text}"
        return Reading(float(len(found)), text, {"deadlock_id": str(d.deadlock_id),
                                                 "victim_session": str(d.victim_session),
                                                 "sessions": ",".join(map(str, sessions))})

    def _cache_hit_ratio(self) -> Reading | None:
        stats = self._engine.stats
        window = self._cache.delta(self._clock.monotonic(), stats.cache_hits_total, stats.cache_misses_total)
        if window is None or not sum(window[1]):
            return None  # no page read in the window: a ratio would be invented
        span, (hits, misses) = window
        ratio = hits / (hits + misses)
        return Reading(ratio, f"page-cache hit ratio over the last {_seconds(span)} is {ratio:.3f} "
                              f"({hits} hits, {misses} misses)")

    def _connections_percent(self) -> Reading:
        sessions, limit = len(self._engine.session_objects()), self._engine.config.max_connections
        percent = 100.0 * sessions / limit
        return Reading(percent, f"{sessions} sessions are open, {percent:.1f} % of max_connections ({limit})")

    def _disk_free_percent(self) -> Reading:
        h = self._engine.host.latest
        return Reading(h.disk_free_percent, f"the data directory's file system has {h.disk_free_percent:.1f} % free "
                                            f"({_gib(h.disk_free_bytes)} of {_gib(h.disk_total_bytes)})")

    def _errors_per_minute(self) -> Reading | None:
        window = self._errors.delta(self._clock.monotonic(), self._engine.stats.errors_total)
        if window is None:
            return None
        span, (errors,) = window
        rate = errors * 60.0 / span
        return Reading(rate, f"{errors} statements failed in the last {_seconds(span)} ({rate:.1f} per minute)")

    def _read(self, name: str) -> list[Reading] | None:
        """A metric's readings now, or None when it is unknown (not registered, no value, or failing)."""
        reader = self._readers.get(name)
        if reader is None:
            return None
        try:
            value = reader()
        except Exception as exc:  # one broken reader must not stop the other rules
            if self._metric_errors.get(name) != repr(exc):
                log.warning("alert metric %s cannot be read: %r", name, exc)
            self._metric_errors[name] = repr(exc)
            return None
        self._metric_errors.pop(name, None)
        if value is None:
            return None
        if isinstance(value, (int, float)):
            value = Reading(float(value))
        if isinstance(value, Reading):
            return [value] if math.isfinite(value.value) else None
        return [r for r in value if math.isfinite(r.value)]

    # -- evaluation --------------------------------------------------------------------------

    def evaluate(self) -> None:
        """One pass over every enabled rule: move alerts along their life cycle and notify."""
        with self._eval_lock:
            self._deadlocks.roll()
            with self._mutex:
                rules = [r for r in self._rules.values() if r.enabled]
            readings = {name: self._read(name) for name in {r.metric for r in rules}}
            out: list[tuple[str, Alert, Rule]] = []
            with self._mutex:
                now = self._clock.time()
                for rule in rules:
                    if self._rules.get(rule.rule_id) is rule:  # not changed or deleted meanwhile
                        self._apply(rule, readings[rule.metric], now, out)
                self._settle(now, out)
                self._trim()
                self.last_evaluated_at = now
            self._send(out)

    def _apply(self, rule: Rule, readings: list[Reading] | None, now: float, out: list) -> None:
        if readings is None:
            return  # unknown: nothing is known to have changed
        unit = self._metrics.get(rule.metric, ("", ""))[0]
        met = {r.key: r for r in readings if rule.operator.holds(r.value, rule.threshold)}
        for r in met.values():
            self._condition_met(rule, r, unit, now)
        for (rule_id, key), alert in list(self._by_key.items()):
            if rule_id == rule.rule_id and key not in met:
                self._condition_cleared(alert, rule, now, out)

    def _condition_met(self, rule: Rule, r: Reading, unit: str, now: float) -> None:
        alert = self._by_key.get((rule.rule_id, r.key))
        if alert is None:
            alert = Alert(secrets.token_hex(8), rule.rule_id, r.key, rule.name, rule.severity, rule.category,
                          rule.metric, rule.operator, rule.threshold, unit, r.value, "", {}, now, AlertState.PENDING,
                          now)
            self._alerts[alert.alert_id] = self._by_key[(rule.rule_id, r.key)] = alert
        elif alert.phase is AlertState.RESOLVED:
            alert.phase, alert.pending_since = AlertState.PENDING, now
            # Back within the rule's cooldown of resolving, it is the same episode flapping: whoever
            # acknowledged it still owns it. Later, it is a new episode that needs a new
            # acknowledgement; the earlier ones stay in `acknowledgements`.
            if alert.resolved_at is None or now - alert.resolved_at > rule.cooldown_seconds:
                alert.acknowledged_by = alert.acknowledged_at = alert.acknowledge_note = None
        alert.title, alert.severity, alert.category = rule.name, rule.severity, rule.category
        alert.metric, alert.operator, alert.threshold, alert.unit = rule.metric, rule.operator, rule.threshold, unit
        alert.value, alert.labels = r.value, dict(r.labels)
        alert.description = (f"{r.text or f'{rule.metric} is {_number(r.value)}'} "
                             f"(threshold: {rule.metric} {rule.operator.value} {_number(rule.threshold)}"
                             f"{' ' + unit if unit else ''})")
        if (alert.phase is AlertState.PENDING and now - (alert.pending_since or now) >= rule.for_seconds
                and (alert.last_fired_at is None or now - alert.last_fired_at >= rule.cooldown_seconds)):
            alert.phase, alert.pending_since = AlertState.FIRING, None
            alert.occurrence_count += 1
            alert.last_fired_at, alert.resolved_at, alert.notified = now, None, False
            level = logging.ERROR if SEVERITY_RANK[rule.severity] >= SEVERITY_RANK[Severity.ERROR] else logging.WARNING
            log.log(level, "alert %s (%s) firing: %s", alert.alert_id, rule.rule_id, alert.description)

    def _condition_cleared(self, alert: Alert, rule: Rule, now: float, out: list) -> None:
        if alert.phase is AlertState.PENDING:
            if alert.occurrence_count == 0:  # never fired: nothing happened worth keeping
                del self._alerts[alert.alert_id], self._by_key[(alert.rule_id, alert.key)]
            else:
                alert.phase, alert.pending_since = AlertState.RESOLVED, None
        elif alert.phase is AlertState.FIRING:
            alert.phase, alert.resolved_at = AlertState.RESOLVED, now
            log.info("alert %s (%s) resolved", alert.alert_id, rule.rule_id)
            if alert.notified:
                alert.notified = False
                out.append(("alert_resolved", copy.copy(alert), rule))

    def _settle(self, now: float, out: list) -> None:
        """Match silences, then announce firing alerts that no silence holds back and nobody was told of."""
        for sid in [s.silence_id for s in self._silences.values() if s.expires_at < now - SILENCE_RETENTION_SECONDS]:
            with write(self._db):
                self._db.execute("DELETE FROM alert_silences WHERE silence_id=?", (sid,))
            del self._silences[sid]
        for alert in self._alerts.values():
            if alert.phase is AlertState.RESOLVED:
                continue
            alert.silenced_by = next((s.silence_id for s in self._silences.values() if s.matches(alert, now)), None)
            rule = self._rules.get(alert.rule_id)
            if alert.phase is AlertState.FIRING and not alert.notified and alert.silenced_by is None and rule:
                alert.notified = True
                out.append(("alert_fired", copy.copy(alert), rule))

    def _trim(self) -> None:
        excess = len(self._alerts) - self._engine.config.alert_history_size
        if excess <= 0:
            return
        resolved = sorted((a for a in self._alerts.values() if a.phase is AlertState.RESOLVED),
                          key=lambda a: a.resolved_at or a.triggered_at)
        for alert in resolved[:excess]:
            del self._alerts[alert.alert_id], self._by_key[(alert.rule_id, alert.key)]

    def _send(self, out: list[tuple[str, Alert, Rule]]) -> None:
        """Publish and queue notifications, outside the service's lock: handlers may read alerts."""
        for topic, alert, rule in out:
            self._engine.events.publish(topic, alert)
            if rule.webhook_url:
                self.notifier.submit(rule.webhook_url, {"event": topic, "alert": alert.as_dict(),
                                                        "sent_at": int(self._clock.time())})

    # -- alerts ------------------------------------------------------------------------------

    def alerts(self, severity: Severity | None = None, state: AlertState | None = None,
               rule_id: str | None = None) -> list[Alert]:
        """Matching alerts, open ones first, then by severity (highest first), then newest first."""
        with self._mutex:
            found = [copy.copy(a) for a in self._alerts.values()
                     if (severity is None or a.severity is severity) and (state is None or a.state is state)
                     and (rule_id is None or a.rule_id == rule_id)]
        return sorted(found, key=lambda a: (a.phase is AlertState.RESOLVED, -SEVERITY_RANK[a.severity],
                                            -a.triggered_at))

    def active_count(self) -> int:
        """Alerts firing that nobody acknowledged and no silence holds."""
        with self._mutex:
            return sum(1 for a in self._alerts.values() if a.state is AlertState.FIRING)

    def alert(self, alert_id: str) -> Alert:
        with self._mutex:
            return copy.copy(self._alert(alert_id))

    def _alert(self, alert_id: str) -> Alert:
        alert = self._alerts.get(alert_id)
        if alert is None:
            raise NotFound(f"Alert {alert_id} not found", alert_id=alert_id)
        return alert

    def acknowledge(self, alert_id: str, by: str, note: str | None = None) -> Alert:
        with _audited(by, "acknowledge", f"alert {alert_id}", note=note), self._mutex:
            alert = self._alert(alert_id)
            if alert.phase is AlertState.RESOLVED:
                raise Conflict(f"Alert {alert_id} is already resolved", alert_id=alert_id,
                               resolved_at=_ts(alert.resolved_at))
            if alert.acknowledged:
                raise Conflict(f"Alert {alert_id} was already acknowledged by {alert.acknowledged_by}",
                               alert_id=alert_id, acknowledged_by=alert.acknowledged_by,
                               acknowledged_at=_ts(alert.acknowledged_at))
            alert.acknowledged_by, alert.acknowledged_at, alert.acknowledge_note = by, self._clock.time(), note
            alert.acknowledgements = [*alert.acknowledgements[-(ACK_HISTORY - 1):],
                                      Acknowledgement(alert.occurrence_count, by, alert.acknowledged_at, note)]
            return copy.copy(alert)

    # -- rules -------------------------------------------------------------------------------

    def rules(self) -> list[Rule]:
        with self._mutex:
            return [copy.copy(r) for r in self._rules.values()]

    def rule(self, rule_id: str) -> Rule:
        with self._mutex:
            return copy.copy(self._rule(rule_id))

    def _rule(self, rule_id: str) -> Rule:
        rule = self._rules.get(rule_id)
        if rule is None:
            raise NotFound(f"Alert rule {rule_id} not found", rule_id=rule_id)
        return rule

    def create_rule(self, by: str, rule_id: str | None = None, **spec: Any) -> Rule:
        rule_id = rule_id or secrets.token_hex(4)
        with _audited(by, "create alert rule", f"alert rule {rule_id}", rule=spec), self._mutex:
            if not isinstance(rule_id, str) or not _ID.fullmatch(rule_id):
                raise InvalidInput("rule_id must be 1 to 64 letters, digits, '_', '.' or '-', starting with a "
                                   "letter or digit", field="rule_id")
            if rule_id in self._rules:
                raise Conflict(f"Alert rule {rule_id} already exists", rule_id=rule_id)
            _check_settable(spec)
            for name in ("name", "metric", "operator", "threshold"):
                if name not in spec:
                    raise InvalidInput(f"{name} is required", field=name)
            now = self._clock.time()
            spec.setdefault("cooldown_seconds", self._engine.config.alert_default_cooldown_secs)
            rule = self._checked(Rule(rule_id=rule_id, created_at=now, updated_at=now, **spec))
            self._store(rule)
            return copy.copy(rule)

    def update_rule(self, rule_id: str, by: str, **changes: Any) -> Rule:
        """Change some of a rule's fields; the others keep their values."""
        with _audited(by, "update alert rule", f"alert rule {rule_id}", changes=changes), self._mutex:
            old = self._rule(rule_id)
            _check_settable(changes)
            rule = self._checked(Rule(**{**asdict(old), **changes, "updated_at": self._clock.time()}))
            self._store(rule)
            out: list[tuple[str, Alert, Rule]] = []
            if not rule.enabled or rule.metric != old.metric:
                self._resolve_rule(rule, out)
        self._send(out)
        return copy.copy(rule)

    def delete_rule(self, rule_id: str, by: str) -> None:
        out: list[tuple[str, Alert, Rule]] = []
        with _audited(by, "delete alert rule", f"alert rule {rule_id}"), self._mutex:
            rule = self._rule(rule_id)
            if rule.builtin:
                raise Conflict(f"Alert rule {rule_id} is built in: disable it (enabled=false) instead",
                               rule_id=rule_id)
            with write(self._db):
                self._db.execute("DELETE FROM alert_rules WHERE rule_id=?", (rule_id,))
            del self._rules[rule_id]
            self._resolve_rule(rule, out)
        self._send(out)

    def _resolve_rule(self, rule: Rule, out: list) -> None:
        """The rule no longer watches what its open alerts were about: they end now."""
        now = self._clock.time()
        for (rule_id, _), alert in list(self._by_key.items()):
            if rule_id == rule.rule_id:
                self._condition_cleared(alert, rule, now, out)

    def _store(self, rule: Rule) -> None:
        with write(self._db):
            # an upsert keeps the row (and so the rule's place in the list, which follows rowid)
            self._db.execute(f"INSERT INTO alert_rules VALUES({','.join('?' * len(RULE_FIELDS))}) "
                             "ON CONFLICT(rule_id) DO UPDATE SET "
                             + ",".join(f"{name}=excluded.{name}" for name in RULE_FIELDS[1:]), _row(rule))
        self._rules[rule.rule_id] = rule

    def _checked(self, rule: Rule) -> Rule:
        """The rule with its fields parsed, or InvalidInput naming the first bad field."""
        if not isinstance(rule.name, str) or not 1 <= len(rule.name.strip()) <= 200:
            raise InvalidInput("name must be a non-empty string of at most 200 characters", field="name")
        if rule.metric not in self._metrics:
            raise InvalidInput(f"metric must be one of {', '.join(sorted(self._metrics))} (got {rule.metric!r})",
                               field="metric", metric=rule.metric)
        rule.operator = _parse(Op, rule.operator, "operator")
        rule.severity = _parse(Severity, rule.severity, "severity")
        rule.category = _parse(Category, rule.category, "category")
        for name in ("threshold", "for_seconds", "cooldown_seconds"):
            value = getattr(rule, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidInput(f"{name} must be a finite number", field=name)
            if name != "threshold" and not 0 <= value <= MAX_DURATION_SECONDS:
                raise InvalidInput(f"{name} must be between 0 and {MAX_DURATION_SECONDS:.0f} seconds", field=name)
            setattr(rule, name, float(value))
        if not isinstance(rule.enabled, bool):
            raise InvalidInput("enabled must be true or false", field="enabled")
        if rule.webhook_url is not None:
            url = rule.webhook_url
            parts = urlsplit(url) if isinstance(url, str) and len(url) <= 2048 and _WEBHOOK_URL.match(url) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidInput("webhook_url must be an http or https URL of at most 2048 characters",
                                   field="webhook_url")
        if not isinstance(rule.description, str) or len(rule.description) > 1000:
            raise InvalidInput("description must be a string of at most 1000 characters", field="description")
        rule.name = rule.name.strip()
        return rule

    # -- silences ----------------------------------------------------------------------------

    def silences(self) -> list[Silence]:
        with self._mutex:
            return [copy.copy(s) for s in self._silences.values()]

    def create_silence(self, by: str, rule_id: str | None = None, labels: Mapping[str, str] | None = None,
                       expires_at: float | None = None, duration_seconds: float | None = None,
                       comment: str | None = None) -> Silence:
        """Hold back matching alerts until `expires_at` (or for `duration_seconds` from now)."""
        labels = dict(labels or {})
        out: list[tuple[str, Alert, Rule]] = []
        target = f"alert rule {rule_id}" if rule_id else "alerts"
        with _audited(by, "create alert silence", target, labels=labels, expires_at=expires_at,
                      duration_seconds=duration_seconds, comment=comment), self._mutex:
            now = self._clock.time()
            if expires_at is not None and duration_seconds is not None:
                raise InvalidInput("give expires_at or duration_seconds, not both", field="duration_seconds")
            if duration_seconds is not None:
                if not 0 < duration_seconds <= MAX_DURATION_SECONDS:
                    raise InvalidInput(f"duration_seconds must be more than 0 and at most "
                                       f"{MAX_DURATION_SECONDS:.0f}", field="duration_seconds")
                expires_at = now + duration_seconds
            if expires_at is None:
                raise InvalidInput("expires_at or duration_seconds is required", field="expires_at")
            if rule_id is None and not labels:
                raise InvalidInput("a silence needs a rule_id, labels, or both", field="rule_id")
            if rule_id is not None and rule_id not in self._rules:
                raise NotFound(f"rule_id {rule_id} is not an alert rule", field="rule_id")
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
                raise InvalidInput("labels must map names to string values", field="labels")
            if not math.isfinite(expires_at):
                raise InvalidInput("expires_at must be a number", field="expires_at")
            if expires_at <= now:  # a well-formed request that the clock, not its shape, refuses
                raise Conflict("expires_at must be in the future", field="expires_at", now=int(now))
            silence = Silence(secrets.token_hex(8), rule_id, labels, comment, by, now, float(expires_at))
            with write(self._db):
                self._db.execute("INSERT INTO alert_silences VALUES(?,?,?,?,?,?,?)", (
                    silence.silence_id, rule_id, json.dumps(labels), comment, by, now, silence.expires_at))
            self._silences[silence.silence_id] = silence
            self._settle(now, out)
        self._send(out)
        return copy.copy(silence)

    def delete_silence(self, silence_id: str, by: str) -> None:
        out: list[tuple[str, Alert, Rule]] = []
        with _audited(by, "delete alert silence", f"alert silence {silence_id}"), self._mutex:
            if silence_id not in self._silences:
                raise NotFound(f"Silence {silence_id} not found", silence_id=silence_id)
            with write(self._db):
                self._db.execute("DELETE FROM alert_silences WHERE silence_id=?", (silence_id,))
            del self._silences[silence_id]
            self._settle(self._clock.time(), out)
        self._send(out)


@contextmanager
def _audited(by: str, action: str, target: str, **details: Any) -> Iterator[None]:
    """Audit the action once, as done or as refused with the engine's reason."""
    try:
        yield
    except EngineError as exc:
        audit(by, action, target, f"refused: {exc.message}", **details)
        raise
    audit(by, action, target, **details)


def _check_settable(spec: Mapping[str, Any]) -> None:
    for name in spec:
        if name not in RULE_FIELDS or name in _FIXED_FIELDS:
            raise InvalidInput(f"{name} is not a rule field that can be set", field=name)


def _parse(kind: type[StrEnum], value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(f"{name} must be one of {', '.join(m.value for m in kind)} (got {value!r})",
                           field=name) from None


def _row(rule: Rule) -> tuple[Any, ...]:
    return tuple(getattr(rule, name) for name in RULE_FIELDS)


def _rule_of_row(row: tuple[Any, ...]) -> Rule:
    rule = Rule(*row)
    rule.operator, rule.severity, rule.category = Op(rule.operator), Severity(rule.severity), Category(rule.category)
    rule.enabled, rule.builtin = bool(rule.enabled), bool(rule.builtin)
    return rule


def _who(s: SessionInfo) -> str:
    who = f"{s.username}@{s.application_name}" if s.application_name else s.username
    return f"session {s.session_id} ({who})"


def _session_labels(s: SessionInfo, **more: object) -> dict[str, str]:
    labels = {"session_id": s.session_id, "username": s.username, "application_name": s.application_name,
              "client_address": s.client_address, "transaction_id": s.transaction_id, **more}
    return {k: str(v) for k, v in labels.items() if v is not None}


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def _number(value: float) -> str:
    return f"{round(value, 3):g}"


def _short(sql: str | None, limit: int = 160) -> str:
    text = " ".join((sql or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
