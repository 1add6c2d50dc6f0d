"""The console reads what the real engine serves, and the fake server serves what the engine does.

A real engine runs a small workload (a blocking chain, a deadlock it breaks, a backup, profiled
statements, ASH samples); every endpoint the console reads is fetched through the console's own
client and recorded. The console's parsers then run over the recorded answers with every object
wrapped so that each field read is noted: every field the engine serves must be read, or be in
IGNORED with the reason the console does not need it. Then the fake server the Pilot tests run
against must answer each endpoint with the same fields, so that it cannot drift from the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from engine import Engine
from engine.errors import EngineError
from textual.app import App

from rdbtop.actions import Actions
from rdbtop.client import RdbClient
from rdbtop.model import str_
from rdbtop.panes.base import SessionTarget
from rdbtop.poller import Poller
from rdbtop.screens.detail import DetailScreen

from .conftest import EngineSource, start_engine
from .fakeserver import FakeServer



def why(reason: str, *names: str) -> dict[str, str]:
    return dict.fromkeys(names, reason)


SESSION_COUNTERS = ("commits", "rollbacks", "statements", "errors", "rows_read", "rows_written")
# Fields the console does not read, per endpoint, and why. A name covers what is under it too
# ("[]" is any item of a list).
IGNORED: dict[str, dict[str, str]] = {
    "/admin/health": {
        **why("the overview names a check only when it is not healthy, by its status and message", ".checks"),
        **why("taken from /stats/performance and /server/info", ".uptime_seconds", ".version"),
    },
    "/stats/sessions": {
        **why("the counts are the overview's, from /stats/performance", ".active_sessions", ".idle_sessions",
              ".idle_in_transaction_sessions", ".waiting_sessions", ".max_connections", ".peak_connections"),
        **why("not a column of the Sessions pane", ".sessions[].database", ".sessions[].last_activity",
              ".sessions[].query_started_at", ".sessions[].query_started_at_ms", *(f".sessions[].{c}" for c in SESSION_COUNTERS)),
        **why("the first blocker (blocking_session) is what g follows", ".sessions[].blocking_sessions"),
        **why("the Reads column counts pages read from disk (cache misses), not hits", ".sessions[].cache_hits"),
        **why("the console asks for the one page of rows it shows (limit); its counts come from /stats/performance",
              ".has_next", ".has_prev", ".page", ".page_size", ".total_count", ".total_pages"),
    },
    "/sessions/{id}": why("an action checks only that the session is the one shown and runs the same statement",
                          ".application_name", ".blocking_session", ".blocking_sessions", ".client_address",
                          ".database", ".last_activity", ".query_started_at", ".session_id", ".sql_id", ".state",
                          ".state_seconds", ".state_since", ".transaction_id", ".transaction_started_at",
                          ".wait_class", ".wait_event", ".state_since_ms", ".transaction_started_at_ms",
                          ".query_started_at_ms", ".cpu_time_ms", ".cache_hits", ".cache_misses", ".pages_written",
                          ".rows_returned", *(f".{c}" for c in SESSION_COUNTERS)),
    "/stats/performance": why("not shown: the overview plots statements/s, sessions, cache hits and host CPU",
                              ".active_transactions", ".commits", ".rollbacks", ".statements", ".disk_free_bytes",
                              ".disk_free_percent", ".disk_io_read_bytes", ".disk_io_write_bytes",
                              ".disk_total_bytes", ".host_cpu_count", ".load_average_1m", ".lock_timeouts",
                              ".lock_waits", ".locks_held", ".max_connections", ".memory_usage_bytes",
                              ".peak_sessions", ".process_cpu_percent", ".process_rss_bytes", ".timestamp",
                              ".total_sessions"),
    "/query/active": why("not a column of the Queries pane", *(f"[].{f}" for f in (
        "blocking_sessions", "error_code", "error_message", "estimated_remaining_ms", "progress_percent",
        "rows_returned", "rows_scanned", "rows_written", "sorts", "started_at", "started_at_ms", "state", "stopped_by",
        "vm_steps", "plan_captured_at"))),
    "/query/{id}/status": why("the detail screen shows the statement as the Queries pane parses it", *(f".{f}" for f in (
        "blocking_sessions", "error_code", "error_message", "estimated_remaining_ms", "progress_percent",
        "rows_returned", "rows_scanned", "rows_written", "sorts", "started_at", "started_at_ms", "state", "stopped_by",
        "vm_steps", "plan_captured_at"))),
    "/transactions/deadlocks": why("a deadlock line names its sessions, resources and victim session",
                                   "[].participants[].holding", "[].participants[].sql",
                                   "[].participants[].transaction_id", "[].participants[].waiting_for",
                                   "[].resolution", "[].victim_transaction"),
    "/transactions/locks": why("the Locks pane counts the list itself", ".granted_locks", ".total_locks",
                               ".waiting_locks"),
    "/transactions/locks/graph": {
        **why("the tree is drawn by session; transactions are in the lock list",
              ".blocking_tree[].transaction_id", ".blocking_tree[].blocked[].transaction_id",
              ".waiters[].transaction_id", ".waiters[].waiting_for_transaction"),
        **why("wait_seconds says the same, relative to the server's clock", ".blocking_tree[].wait_started_at",
              ".blocking_tree[].blocked[].wait_started_at"),
        **why("cycles are found from the waiters, by session", ".potential_deadlocks"),
        **why("the lock list shows modes and types", ".waiters[].lock_type", ".waiters[].resource_type"),
    },
    "/monitoring/ash": {
        **why("the ASH chart counts samples by time and wait class", *(f".samples[].{f}" for f in (
            "action", "blocking_session", "cpu_time_ms", "module", "program", "query_id", "sample_id", "sql_id",
            "sql_text", "user_name", "wait_event", "wait_time_ms"))),
        **why("the console asks for its own window and keeps what it fetched", ".group_by", ".sample_interval_seconds",
              ".time_range", ".top", ".total_count", ".truncated"),
    },
    "/monitoring/ash?group_by": why("a top list reads its buckets only", ".group_by", ".sample_interval_seconds",
                                    ".samples", ".time_range", ".total_count", ".truncated"),
    "/alerts": {
        **why("the Alerts pane counts the list itself", ".active_count", ".total_count"),
        **why("not shown", ".alerts[].acknowledge_note", ".alerts[].acknowledged_at", ".alerts[].labels",
              ".alerts[].last_fired_at", ".alerts[].metric", ".alerts[].operator", ".alerts[].pending_since",
              ".alerts[].rule", ".alerts[].silenced_by", ".alerts[].unit"),
    },
    "/alerts/rules": why("the console reads only the backup-age rule's threshold", *(f"[].{f}" for f in (
        "builtin", "category", "cooldown_seconds", "created_at", "description", "for_seconds", "metric_available",
        "name", "operator", "rule_id", "severity", "updated_at", "webhook_url"))),
    "/backup/list": {
        **why("the Backups pane counts the list itself", ".total_count"),
        **why("not a column of the Backups pane", ".backups[].base_backup_id", ".backups[].compressed_size_bytes",
              ".backups[].description", ".backups[].parent_backup_id", ".backups[].snapshot_time",
              ".backups[].stored_bytes"),
    },
    "/backup/schedule": why("the schedule line says when and how long backups are kept", ".compression",
                            ".compression_algorithm", ".encryption"),
    "/server/info": why("the overview names the server and its version", ".apsw_version", ".build_date",
                        ".build_target", ".data_directory", ".features", ".git_commit", ".license", ".pid",
                        ".python_version", ".rust_version", ".sqlite_version", ".started_at", ".system_info",
                        ".uptime_seconds"),
    "/config": why("the console reads deadlock_check_interval_ms only (when a deadlock is broken)", ".settings",
                   ".settings_meta", ".build_date", ".features", ".rust_version", ".version"),
    "/auth/validate": why("the role decides the actions; the user is the one who logged in", ".username"),
    "/profiling/queries": {
        **why("the console looks up one fingerprint in the list", ".has_next", ".has_prev", ".page", ".page_size",
              ".total_count", ".total_pages"),
        **why("not shown in the query detail screen", *(f".profiles[].{f}" for f in (
            "avg_rows_returned", "cache_hit_ratio", "first_executed", "fullscan_steps", "last_executed",
            "min_time_ms", "p50_ms", "profiled_calls", "query_text", "rows_returned"))),
    },
}


def ignored(name: str, field: str) -> bool:
    return any(field == f or field.startswith((f"{f}.", f"{f}[]")) for f in IGNORED.get(name, {}))


class Tracked(dict):  # type: ignore[type-arg]
    """A JSON object that notes each field read (by `get`, `[]`, or all of them by iteration)."""

    def __init__(self, data: dict[str, Any], path: str, read: set[str]) -> None:
        super().__init__({k: track(v, f"{path}.{k}", read) for k, v in data.items()})
        self._path, self._read = path, read

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self._read.add(f"{self._path}.{key}")
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self._read.add(f"{self._path}.{key}")
        return super().__getitem__(key)

    def items(self):  # type: ignore[no-untyped-def]
        self._read.update(f"{self._path}.{k}" for k in self)
        return super().items()


def track(value: Any, path: str, read: set[str]) -> Any:
    if isinstance(value, dict):
        return Tracked(value, path, read)
    if isinstance(value, list):
        return [track(v, f"{path}[]", read) for v in value]
    return value


def fields(value: Any, path: str = "", maps: frozenset[str] = frozenset()) -> set[str]:
    """Every field of a JSON answer, as paths (list items merged; the keys of a map in `maps`, which
    are data, as "{}")."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            inner = f"{path}{{}}" if path in maps else f"{path}.{k}"
            out.add(inner)
            out |= fields(v, inner, maps)
    elif isinstance(value, list):
        for v in value:
            out |= fields(v, f"{path}[]", maps)
    return out


# fields whose keys are data (health checks, settings by name, sessions by state, alert labels)
MAPS = {"/admin/health": {".checks"}, "/config": {".settings", ".settings_meta"}, "/stats/performance": {".sessions"},
        "/alerts": {".alerts[].labels"}}


def shape(name: str, answer: Any) -> set[str]:
    """An answer's fields, a tree's nesting of `blocked` as one level (trees differ in depth)."""
    return {re.sub(r"(\.blocked\[\])+", ".blocked[]", f) for f in fields(answer, "", frozenset(MAPS.get(name, ())))}


def endpoint(path: str, params: dict[str, Any]) -> str:
    """A recorded call's name: ids replaced, ASH top lists apart from its samples."""
    parts = ["{id}" if p.isdigit() or (p[:1] == "q" and p[1:].isdigit()) else p for p in path.split("/")]
    name = "/".join(parts).removeprefix("/api/v1")
    return f"{name}?group_by" if "group_by" in params else name


class Recorder:
    """The console's client, answering from what the engine answered, each object tracked."""

    def __init__(self, client: RdbClient) -> None:
        self.client = client
        self.answers: dict[str, Any] = {}
        self.read: dict[str, set[str]] = {}
        self.replaying = False

    async def get(self, path: str, **params: Any) -> Any:
        name = endpoint(path, params)
        if not self.replaying:
            self.answers[name] = await self.client.get(path, **params)
        return track(self.answers[name], "", self.read.setdefault(name, set()))


class FakeApp:
    """What Actions needs of the app to read a role, a statement and a fingerprint."""

    def __init__(self, client: Recorder) -> None:
        self.client = client


async def read_everything(client: Recorder) -> None:
    """Every read the console makes: a poll of every area, the ASH pane's, and the actions' reads."""
    poller = Poller(client)  # type: ignore[arg-type]
    snap = await poller.snapshot()
    poller.pane = "ash"
    await poller.snapshot()
    actions = Actions(FakeApp(client))  # type: ignore[arg-type]
    await actions.role()
    query = next(q for q in snap.queries if q.username == "shop")  # the waiter
    await actions.statement(query.query_id, None)
    profile, note = await actions.fingerprint(query.sql_id)
    current = await actions._current(SessionTarget(query.session_id, query.username, query.query_id, query.sql, None),
                                     "read")
    str_(current, "current_query_id"), str_(current, "current_query")  # what cancel compares before it acts
    async with App().run_test() as pilot:  # the detail screen reads the fingerprint's statistics
        await pilot.app.push_screen(DetailScreen(query, profile, note))


@pytest.fixture
def busy() -> Iterator[Engine]:
    """A blocking chain (a waiter behind an open transaction), a deadlock broken, a backup."""
    engine = start_engine(deadlock_check_interval_ms=50, alert_eval_interval_ms=100, ash_interval_ms=50)
    engine.create_schema("crm")
    # an alert that fires at once and stays, so that one can be acknowledged
    engine.alerts.create_rule("tests", rule_id="always", name="Always", metric="connections_percent",
                              operator=">=", threshold=0)
    setup = engine.connect("setup", "tests")
    setup.execute("CREATE TABLE sales.orders(id INTEGER PRIMARY KEY, n INTEGER)")
    setup.execute("CREATE TABLE crm.notes(id INTEGER PRIMARY KEY, n INTEGER)")
    setup.execute("UPDATE inventory.stock SET qty = qty - 1 WHERE id = 1")  # the waiter's statement has statistics
    setup.close()
    source = EngineSource(engine)
    asyncio.run(backed_up(source.client))  # first: a backup waits for the writers below
    holder, waiter = engine.connect("batch", "batch-forgotten"), engine.connect("shop", "oltp")
    holder.execute("begin")
    holder.execute("UPDATE inventory.stock SET qty = qty + 1 WHERE id = 1")
    a, b = engine.connect("billing", "invoices"), engine.connect("crm", "notes")
    a.execute("begin")
    a.execute("INSERT INTO sales.orders(n) VALUES (1)")
    b.execute("begin")
    b.execute("INSERT INTO crm.notes(n) VALUES (1)")
    threads = []

    def run(session, sql: str) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(EngineError):
            session.execute(sql)

    for session, sql in ((waiter, "UPDATE inventory.stock SET qty = qty - 1 WHERE id = 2"),
                         (a, "INSERT INTO crm.notes(n) VALUES (2)"), (b, "INSERT INTO sales.orders(n) VALUES (2)")):
        threads.append(threading.Thread(target=run, args=(session, sql), daemon=True))
        threads[-1].start()
    try:
        yield engine
    finally:
        for session in (holder, a, b):
            with contextlib.suppress(EngineError):
                engine.terminate(session.id)
        for thread in threads:
            thread.join(5)
        engine.close()


async def backed_up(client: RdbClient) -> None:
    await client.post("/api/v1/backup/full", {"backup_type": "full"})

    async def done() -> bool:
        backups = (await client.get("/api/v1/backup/list"))["backups"]
        return bool(backups and backups[0]["status"] == "completed")

    await wait_for(done)
    await client.aclose()


async def wait_for(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "the workload did not get there in time"
        await asyncio.sleep(0.05)


async def test_the_console_reads_every_field_the_engine_serves_and_the_fake_serves_them_too(busy) -> None:  # type: ignore[no-untyped-def]
    source = EngineSource(busy)
    client = source.client

    async def ready() -> bool:
        alerts = (await client.get("/api/v1/alerts"))["alerts"]
        graph = await client.get("/api/v1/transactions/locks/graph")
        ash = await client.get("/api/v1/monitoring/ash", start_time=int(time.time()) - 60)
        return bool(alerts and graph["blocking_tree"] and await client.get("/api/v1/transactions/deadlocks")
                    and ash["samples"])

    await wait_for(ready)
    firing = next(a for a in (await client.get("/api/v1/alerts"))["alerts"] if a["rule"] == "always")
    await client.post(f"/api/v1/alerts/{firing['alert_id']}/acknowledge", {"note": "on it"})
    recorder = Recorder(client)
    await read_everything(recorder)
    recorder.read.clear()
    recorder.replaying = True
    await read_everything(recorder)  # the parsers over the recorded answers, every field read noted
    unread = {name: sorted(f for f in fields(answer) - recorder.read.get(name, set()) if not ignored(name, f))
              for name, answer in recorder.answers.items()}
    assert {name: u for name, u in unread.items() if u} == {}

    fake = FakeServer()
    fake_recorder = Recorder(fake.client())
    await read_everything(fake_recorder)
    differ = {name: (sorted(shape(name, answer) - shape(name, fake_recorder.answers.get(name))),
                     sorted(shape(name, fake_recorder.answers.get(name)) - shape(name, answer)))
              for name, answer in recorder.answers.items()}
    assert {name: d for name, d in differ.items() if d != ([], [])} == {}
    await source.close()
