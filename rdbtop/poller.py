"""The one polling loop: every tick, what the visible pane needs, fetched concurrently into one Snapshot.

Each pane names the calls it is drawn from (PANE_CALLS); a tick makes those calls only, plus the
performance figures that feed the overview's history on every pane. What the other panes showed is
carried over from the previous snapshot, and `Snapshot.pane` says which pane a poll read for, so a
pane is drawn only from data read for it. Profiling the console at 1,000 sessions showed
every tick reading eleven endpoints, most for panes nobody was looking at. Sessions are asked for
as the Sessions pane shows them: the top ROW_CAP rows in its order, idle ones left out when it
hides them (`sort_by`, `limit`, `state` on /stats/sessions); all of them while a text filter is
on (`limit` at its largest: our server pages the listing by default), as the filter runs here. A
server that ignores those parameters (RustyDB) sends every session, which the panes sort and cut
just the same. `--once` (pane None) makes every call.

An endpoint the server does not serve (404 for the route) hides its area with a note; any other
API error is kept per area so the rest still shows. Only when the server cannot be reached at all
does a poll fail, and the loop then backs off until it answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from .client import ApiFailure, ClientError, CredentialsRefused, NotServed, RdbClient, Unreachable
from .model import (
    ActiveQuery,
    Alert,
    AshBucket,
    AshSample,
    Backup,
    BackupSchedule,
    BlockerNode,
    Deadlock,
    Lock,
    ROW_CAP,
    Overview,
    Session,
    Silence,
    Snapshot,
    field_of,
    float_,
    int_,
    parse_all,
    records,
    str_,
    wait_edges,
)

MIN_INTERVAL = 0.5
MAX_INTERVAL = 60.0
MAX_BACKOFF = 30.0
POLL_TIMEOUT = 15.0
ASH_WINDOWS = (300, 900, 3600)
ASH_TOP_GROUPS = ("sql_id", "session", "wait_event")
ASH_MAX_SAMPLES = 20_000
INTERVAL_STEPS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

NOT_SERVED_NOTE = "this server does not serve {path}"
# the calls each area of the screen is drawn from: an area is hidden when none of them is served
AREA_SOURCES = {
    "overview": ("performance", "health"), "sessions": ("sessions",), "queries": ("queries",),
    "locks": ("graph", "locks", "deadlocks"), "ash": ("ash",), "alerts": ("alerts",), "backups": ("backups",),
}
# The calls each pane needs. Performance is in every set: the overview's trend lines get a point
# per poll whatever pane is shown. The blocking graph also serves `g` on the queries pane (on the
# Sessions pane, `g` follows the sessions' own blocking_session). The queries and locks panes read
# the busy sessions (not idle: only those run statements or hold locks) for their actions (who,
# connected when) and the `app:` filter.
PANE_CALLS: dict[str, frozenset[str]] = {pane: frozenset(("performance",) + calls) for pane, calls in {
    "overview": ("health", "alerts", "graph"), "sessions": ("sessions",),
    "queries": ("queries", "busy sessions", "graph"), "locks": ("graph", "locks", "deadlocks", "busy sessions"),
    "ash": ("ash", "top"), "alerts": ("alerts", "silences"), "backups": ("backups", "schedule"),
}.items()}
# --once: every area, every session; not the ASH pane's top lists, which it does not print
ALL_CALLS = frozenset().union(*PANE_CALLS.values()) - {"busy sessions", "top", "silences"}
# the Sessions pane's orders that /stats/sessions can sort by, as it names them (sort_by, first sort_order);
# the others are read in triage order and sorted here, over the rows read
SERVER_SORT = {"triage": ("triage", "asc"), "time in state": ("state_seconds", "desc"), "id": ("session_id", "asc"),
               "user": ("username", "asc"), "app": ("application_name", "asc"),
               "txn age": ("transaction_seconds", "desc"), "cpu": ("cpu_time_ms", "desc"),
               "reads": ("cache_misses", "desc"), "writes": ("pages_written", "desc"),
               "rows": ("rows_returned", "desc")}
REVERSED = {"asc": "desc", "desc": "asc"}
BUSY_STATES = "waiting,idle in transaction,active"  # the sessions that can hold locks or run statements
# the most sessions /stats/sessions lists in one answer (`limit`): every session, where the server pages them
EVERY_SESSION = 100_000
# Calls whose answers change slowly (the server's health checks, the backup schedule): while their
# pane stays on screen they are asked again after this many seconds, not every tick, and what they
# said last is shown meanwhile. A pane newly shown, or a poll asked for (poll_now), asks for everything.
SLOW_CALLS = {"health": 5.0, "schedule": 30.0}


@dataclass(frozen=True)
class SessionsWanted:
    """How the Sessions pane shows sessions, so that only the rows it can show are read."""

    sort: str = "triage"
    reverse: bool = False
    hide_idle: bool = False
    every: bool = False  # a text filter is on: it runs here, over every session


class Poller:
    def __init__(self, client: RdbClient, interval: float = 2.0, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.clock = clock
        self.interval = min(MAX_INTERVAL, max(MIN_INTERVAL, interval))
        self.ash_window = ASH_WINDOWS[1]
        self.pane: str | None = None  # the visible pane; None (--once) makes every call
        self.sessions_wanted = SessionsWanted()
        self.failures = 0
        self._last: Snapshot | None = None  # what panes not polled this tick carry over
        self._raw: dict[str, Any] = {}  # the last answers the overview is built from
        self._perf_has_states: bool | None = None  # does /stats/performance count sessions by state?
        self._info: Any = None
        self._deadlock_check: float | None = None  # seconds between the server's deadlock checks
        self._backup_age_limit: float | None = None
        self._rules_read = False  # the alert rules, read once per connection
        self._ash: dict[int, list[AshSample]] = {}  # by sample second, bounded to the longest window
        self._ash_from: int | None = None  # earliest second fetched so far
        self._asked: dict[str, float] = {}  # when each of SLOW_CALLS was last asked
        self._fresh = False  # the next poll asks for everything (poll_now)
        self._wake = asyncio.Event()

    # -- settings the UI changes -----------------------------------------------------------

    def step_interval(self, direction: int) -> float:
        steps = INTERVAL_STEPS
        if direction > 0:
            self.interval = next((s for s in steps if s > self.interval), steps[-1])
        else:
            self.interval = next((s for s in reversed(steps) if s < self.interval), steps[0])
        return self.interval

    def poll_now(self) -> None:
        self._fresh = True
        self._wake.set()

    # -- one poll ------------------------------------------------------------------------------

    def calls(self) -> frozenset[str]:
        """The calls the next tick makes."""
        if self.pane is None:
            return ALL_CALLS
        calls = PANE_CALLS.get(self.pane, ALL_CALLS)
        if self.pane == "overview" and not self._perf_has_states:
            calls = calls | {"sessions"}  # a server (RustyDB) whose performance does not count them by state
        return calls

    def _sessions_params(self) -> dict[str, Any]:
        if self.pane is None:
            return {"limit": EVERY_SESSION}  # --once: every session
        if self.pane != "sessions":  # the overview, when performance does not count them by state
            return {"sort_by": "triage", "limit": ROW_CAP}
        want = self.sessions_wanted
        sort_by, order = SERVER_SORT.get(want.sort, SERVER_SORT["triage"])
        if want.reverse and want.sort in SERVER_SORT:
            order = REVERSED[order]
        return {"sort_by": sort_by, "sort_order": order, "limit": EVERY_SESSION if want.every else ROW_CAP,
                "state": BUSY_STATES if want.hide_idle else None}

    async def snapshot(self) -> Snapshot:
        now = self.clock()
        pane, wanted = self.pane, self.calls()
        every: dict[str, Callable[[], Awaitable[Any]]] = {
            "performance": lambda: self.client.get("/api/v1/stats/performance"),
            "health": self._health,
            "sessions": lambda: self.client.get("/api/v1/stats/sessions", **self._sessions_params()),
            "busy sessions": lambda: self.client.get("/api/v1/stats/sessions", sort_by="triage", limit=ROW_CAP,
                                                     state=BUSY_STATES),
            "queries": lambda: self.client.get("/api/v1/query/active"),
            "graph": lambda: self.client.get("/api/v1/transactions/locks/graph"),
            "locks": lambda: self.client.get("/api/v1/transactions/locks"),
            "deadlocks": lambda: self.client.get("/api/v1/transactions/deadlocks"),
            "alerts": lambda: self.client.get("/api/v1/alerts"),
            "silences": lambda: self.client.get("/api/v1/alerts/silences"),
            "backups": lambda: self.client.get("/api/v1/backup/list"),
            "schedule": lambda: self.client.get("/api/v1/backup/schedule"),
            "ash": lambda: self._ash_samples(int(now)),
        }
        fresh, self._fresh = self._fresh, False
        calls = {name: call() for name, call in every.items()
                 if name in wanted and (fresh or self._due(name, pane, now))}
        self._asked.update({name: now for name in calls if name in SLOW_CALLS})
        if self._info is None:  # once per connection: these hardly change
            calls["info"] = self.client.get("/api/v1/server/info")
            calls["config"] = self.client.get("/api/v1/config")
        if not self._rules_read and "backups" in wanted:  # only the Backups pane judges by them
            calls["rules"] = self.client.get("/api/v1/alerts/rules")
        if "top" in wanted:
            for group in ASH_TOP_GROUPS:
                calls[f"top:{group}"] = self.client.get("/api/v1/monitoring/ash", group_by=group, limit=0,
                                                        top_limit=10, start_time=int(now) - self.ash_window)
        results = dict(zip(calls, await asyncio.gather(*calls.values(), return_exceptions=True), strict=True))
        for value in results.values():
            if isinstance(value, (Unreachable, CredentialsRefused)):  # the whole poll, not one area
                raise value
            if isinstance(value, BaseException) and not isinstance(value, ClientError):
                raise value
        unserved: dict[str, str] = {}
        failed: dict[str, str] = {}
        data = {name: _value(name, value, unserved, failed) for name, value in results.items()}
        if data.get("info") is not None:
            self._info = data["info"]
        if "config" in results:
            interval = float_(field_of(data["config"], "settings"), "deadlock_check_interval_ms")
            self._deadlock_check = None if interval is None else interval / 1000
        if "rules" in data:
            self._backup_age_limit = backup_age_limit(data["rules"])
            self._rules_read = True
        prev = self._last or Snapshot(taken_at=now)
        snap = replace(prev, taken_at=now, pane=pane, missing=dict(prev.missing), errors=dict(prev.errors))
        self._fill(snap, data)
        for area, sources in AREA_SOURCES.items():
            if not any(s in data for s in sources):
                continue  # not asked this tick: what the last poll said about it stands
            snap.missing.pop(area, None)
            snap.errors.pop(area, None)
            if all(s in unserved for s in sources):
                snap.missing[area] = unserved[sources[0]]
            problems = [failed[s] for s in sources if s in failed]
            if problems:
                snap.errors[area] = "; ".join(problems)
        self._last = snap
        return snap

    def _due(self, name: str, pane: str | None, now: float) -> bool:
        period = SLOW_CALLS.get(name)
        if period is None or self._last is None or self._last.pane != pane or name not in self._asked:
            return True
        return now >= self._asked[name] + period

    async def _health(self) -> Any:
        try:
            return await self.client.get("/api/v1/admin/health")
        except ApiFailure as exc:
            if exc.status == 503:  # unhealthy: the probe still answered
                return {"status": "unhealthy", "checks": {"server": {"status": "unhealthy", "message": exc.message}}}
            raise

    async def _ash_samples(self, now: int) -> list[AshSample]:
        """New ASH samples since the last poll; the first poll backfills the chosen window."""
        start = now - self.ash_window
        newest = max(self._ash, default=None)
        # the whole window when it grew, or when what is kept ends before it (the pane was hidden
        # for longer than the window); else from the newest second kept, which may have grown
        backfill = self._ash_from is None or start < self._ash_from or newest is None or newest < start
        since = start if backfill else newest
        body = await self.client.get("/api/v1/monitoring/ash", start_time=since, limit=ASH_MAX_SAMPLES)
        fresh = parse_all(field_of(body, "samples"), AshSample.parse)
        for second in [s for s in self._ash if s >= since]:
            del self._ash[second]
        for sample in fresh:
            self._ash.setdefault(sample.sample_time, []).append(sample)
        if backfill:
            self._ash_from = start
        # only the chosen window is kept (each active session adds a sample a second: an hour of a
        # thousand busy sessions is millions of them); a wider window, chosen later, is backfilled
        for second in [s for s in self._ash if s < start]:
            del self._ash[second]
        self._ash_from = max(self._ash_from or start, start)
        return [s for second in sorted(self._ash) for s in self._ash[second]]

    def _fill(self, snap: Snapshot, data: dict[str, Any]) -> None:
        """Parse this tick's answers into `snap`; what was not asked keeps the previous value."""
        for name in ("sessions", "busy sessions"):
            if name not in data:
                continue
            sessions = data[name]
            snap.sessions = parse_all(field_of(sessions, "sessions") if isinstance(sessions, dict) else sessions,
                                      Session.parse)
            snap.sessions_total = int_(sessions, "total_connections")
        if "performance" in data:
            self._perf_has_states = isinstance(field_of(data["performance"], "sessions"), dict)
        self._raw.update({k: v for k, v in data.items() if k in ("performance", "health")})
        snap.overview = Overview.parse(self._raw.get("performance"), self._raw.get("health"), self._info)
        complete = snap.sessions_total is None or len(snap.sessions) >= snap.sessions_total
        if not snap.overview.sessions_by_state and snap.sessions and complete:
            by_state: dict[str, int] = {}
            for s in snap.sessions:
                by_state[s.state or "unknown"] = by_state.get(s.state or "unknown", 0) + 1
            snap.overview = replace(snap.overview, sessions_by_state=by_state)
        if "queries" in data:
            snap.queries = sorted(parse_all(data["queries"], ActiveQuery.parse), key=lambda q: -(q.elapsed_ms or 0.0))
        # never carried over: `g` would follow a stale tree; without one it follows blocking_session
        snap.blocking_tree = parse_all(field_of(data.get("graph"), "blocking_tree"), BlockerNode.parse)
        snap.wait_edges = wait_edges(data.get("graph"))
        snap.deadlock_check_seconds = self._deadlock_check
        if "locks" in data:
            snap.locks = parse_all(field_of(data["locks"], "locks"), Lock.parse)
        if "deadlocks" in data:
            snap.deadlocks = parse_all(data["deadlocks"], Deadlock.parse)
        if "alerts" in data:
            snap.alerts = parse_all(field_of(data["alerts"], "alerts"), Alert.parse)
        if "silences" in data:
            snap.silences = None if data["silences"] is None else parse_all(data["silences"], Silence.parse)
        if "backups" in data:
            snap.backups = parse_all(field_of(data["backups"], "backups"), Backup.parse)
        if "schedule" in data:
            snap.schedule = BackupSchedule.parse(data["schedule"])
        snap.backup_age_limit_hours = self._backup_age_limit
        if "ash" in data:
            snap.ash_samples = data["ash"] or []
        tops = {name.removeprefix("top:"): parse_all(field_of(value, "top"), AshBucket.parse)
                for name, value in data.items() if name.startswith("top:") and value is not None}
        if any(name.startswith("top:") for name in data):
            snap.ash_top = tops

    # -- the loop --------------------------------------------------------------------------

    async def run(self, deliver: Callable[[Snapshot], None],
                  failed: Callable[[ClientError, float | None], None]) -> None:
        """Poll until cancelled, or until the server refuses our credentials (failed(exc, None)):
        polling again with them would only be refused again."""
        while True:
            self._wake.clear()  # before the poll: a poll_now() while it runs (a pane switch) asks for another
            try:
                snap = await asyncio.wait_for(self.snapshot(), POLL_TIMEOUT)
            except CredentialsRefused as exc:
                failed(exc, None)
                return
            except (ClientError, TimeoutError) as exc:
                self.failures += 1
                self._info = None  # a restarted server has a new uptime and maybe a new version
                self._rules_read = False
                self._perf_has_states = None  # and maybe is another server
                self._asked.clear()
                delay = min(MAX_BACKOFF, self.interval * 2 ** min(self.failures - 1, 6))
                failed(exc if isinstance(exc, ClientError) else Unreachable("the server did not answer in time"),
                       delay)
            else:
                self.failures = 0
                delay = self.interval
                deliver(snap)
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass


def _value(name: str, value: Any, unserved: dict[str, str], failed: dict[str, str]) -> Any:
    """A call's answer, or None with the reason noted: not served, or failed."""
    if isinstance(value, NotServed):
        unserved[name] = NOT_SERVED_NOTE.format(path=value.message.removeprefix("no route for "))
        return None
    if isinstance(value, ClientError):
        failed[name] = str(value)
        return None
    return value


def backup_age_limit(rules: Any) -> float | None:
    """The threshold of the server's enabled alert rule on backup age, in hours, if it has one."""
    for rule in records(rules):
        if str_(rule, "metric") == "backup_age_hours" and rule.get("enabled") is not False:
            return float_(rule, "threshold")
    return None
