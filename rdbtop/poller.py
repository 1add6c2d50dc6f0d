"""The one polling loop: every tick, all areas fetched concurrently into one Snapshot.

An endpoint the server does not serve (404 for the route) hides its area with a note; any other
API error is kept per area so the rest still shows. Only when the server cannot be reached at all
does a poll fail, and the loop then backs off until it answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from .client import ApiFailure, ClientError, NotServed, RdbClient, Unreachable
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
    Overview,
    Session,
    Snapshot,
    field_of,
    float_,
    parse_all,
    records,
    str_,
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


class Poller:
    def __init__(self, client: RdbClient, interval: float = 2.0, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.clock = clock
        self.interval = min(MAX_INTERVAL, max(MIN_INTERVAL, interval))
        self.ash_window = ASH_WINDOWS[1]
        self.want_ash_top = False
        self.failures = 0
        self._info: Any = None
        self._backup_age_limit: float | None = None
        self._ash: dict[int, list[AshSample]] = {}  # by sample second, bounded to the longest window
        self._ash_from: int | None = None  # earliest second fetched so far
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
        self._wake.set()

    # -- one poll ------------------------------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        now = self.clock()
        snap = Snapshot(taken_at=now)
        calls: dict[str, Awaitable[Any]] = {
            "performance": self.client.get("/api/v1/stats/performance"),
            "health": self._health(),
            "sessions": self.client.get("/api/v1/stats/sessions"),
            "queries": self.client.get("/api/v1/query/active"),
            "graph": self.client.get("/api/v1/transactions/locks/graph"),
            "locks": self.client.get("/api/v1/transactions/locks"),
            "deadlocks": self.client.get("/api/v1/transactions/deadlocks"),
            "alerts": self.client.get("/api/v1/alerts"),
            "backups": self.client.get("/api/v1/backup/list"),
            "schedule": self.client.get("/api/v1/backup/schedule"),
            "ash": self._ash_samples(int(now)),
        }
        if self._info is None:  # once per connection: these hardly change
            calls["info"] = self.client.get("/api/v1/server/info")
            calls["rules"] = self.client.get("/api/v1/alerts/rules")
        if self.want_ash_top:
            for group in ASH_TOP_GROUPS:
                calls[f"top:{group}"] = self.client.get("/api/v1/monitoring/ash", group_by=group, limit=0,
                                                        top_limit=10, start_time=int(now) - self.ash_window)
        results = dict(zip(calls, await asyncio.gather(*calls.values(), return_exceptions=True), strict=True))
        for value in results.values():
            if isinstance(value, Unreachable):
                raise value
            if isinstance(value, BaseException) and not isinstance(value, ClientError):
                raise value
        unserved: dict[str, str] = {}
        failed: dict[str, str] = {}
        data = {name: _value(name, value, unserved, failed) for name, value in results.items()}
        if data.get("info") is not None:
            self._info = data["info"]
        if "rules" in data:
            self._backup_age_limit = backup_age_limit(data["rules"])
        self._fill(snap, data)
        for area, sources in AREA_SOURCES.items():
            if all(s in unserved for s in sources):
                snap.missing[area] = unserved[sources[0]]
            problems = [failed[s] for s in sources if s in failed]
            if problems:
                snap.errors[area] = "; ".join(problems)
        return snap

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
        if self._ash_from is None or start < self._ash_from:
            since = start
        else:
            since = max(self._ash, default=start)  # re-read the newest second: it may have grown
        body = await self.client.get("/api/v1/monitoring/ash", start_time=since, limit=ASH_MAX_SAMPLES)
        fresh = parse_all(field_of(body, "samples"), AshSample.parse)
        for second in [s for s in self._ash if s >= since]:
            del self._ash[second]
        for sample in fresh:
            self._ash.setdefault(sample.sample_time, []).append(sample)
        oldest = now - max(ASH_WINDOWS)
        for second in [s for s in self._ash if s < oldest]:
            del self._ash[second]
        self._ash_from = since if self._ash_from is None else min(self._ash_from, since)
        return [s for second in sorted(self._ash) if second >= start for s in self._ash[second]]

    def _fill(self, snap: Snapshot, data: dict[str, Any]) -> None:
        sessions = data.get("sessions")
        snap.sessions = parse_all(field_of(sessions, "sessions") if isinstance(sessions, dict) else sessions,
                                  Session.parse)
        snap.overview = Overview.parse(data.get("performance"), data.get("health"), self._info)
        if not snap.overview.sessions_by_state and snap.sessions:
            by_state: dict[str, int] = {}
            for s in snap.sessions:
                by_state[s.state or "unknown"] = by_state.get(s.state or "unknown", 0) + 1
            snap.overview = replace(snap.overview, sessions_by_state=by_state)
        snap.queries = sorted(parse_all(data.get("queries"), ActiveQuery.parse),
                              key=lambda q: -(q.elapsed_ms or 0.0))
        snap.blocking_tree = parse_all(field_of(data.get("graph"), "blocking_tree"), BlockerNode.parse)
        snap.locks = parse_all(field_of(data.get("locks"), "locks"), Lock.parse)
        snap.deadlocks = parse_all(data.get("deadlocks"), Deadlock.parse)
        snap.alerts = parse_all(field_of(data.get("alerts"), "alerts"), Alert.parse)
        snap.backups = parse_all(field_of(data.get("backups"), "backups"), Backup.parse)
        snap.schedule = BackupSchedule.parse(data.get("schedule"))
        snap.backup_age_limit_hours = self._backup_age_limit
        snap.ash_samples = data.get("ash") or []
        snap.ash_top = {name.removeprefix("top:"): parse_all(field_of(value, "top"), AshBucket.parse)
                        for name, value in data.items() if name.startswith("top:") and value is not None}

    # -- the loop --------------------------------------------------------------------------

    async def run(self, deliver: Callable[[Snapshot], None],
                  failed: Callable[[ClientError, float], None]) -> None:
        while True:
            try:
                snap = await asyncio.wait_for(self.snapshot(), POLL_TIMEOUT)
            except (ClientError, TimeoutError) as exc:
                self.failures += 1
                self._info = None  # a restarted server has a new uptime and maybe a new version
                delay = min(MAX_BACKOFF, self.interval * 2 ** min(self.failures - 1, 6))
                failed(exc if isinstance(exc, ClientError) else Unreachable("the server did not answer in time"),
                       delay)
            else:
                self.failures = 0
                delay = self.interval
                deliver(snap)
            self._wake.clear()
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
