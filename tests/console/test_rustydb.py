"""A RustyDB 0.6 server: fewer fields, other shapes, stub values, routes it lacks. Nothing may crash."""

from __future__ import annotations

from typing import Any

from rdbtop.model import ActiveQuery, Alert, AshSample, Backup, Overview, Session
from rdbtop.poller import Poller

from .conftest import keys, on_pane, running, table, until
from .fakeserver import NOW, FakeServer

SESSION = {"session_id": 12, "username": "app", "database": "rustydb", "client_address": None, "created_at": NOW,
           "last_activity": NOW, "state": "active", "current_query": "SELECT 1", "transaction_id": None}
RUSTY = {
    "/stats/sessions": {"active_sessions": 1, "idle_sessions": 0, "sessions": [SESSION], "total_connections": 1,
                        "peak_connections": 1},
    "/query/active": [{"query_id": "qry_1", "status": "running", "progress_percent": 25.0, "rows_scanned": 10,
                       "rows_returned": 0, "elapsed_ms": 1500, "estimated_remaining_ms": None,
                       "current_operation": "Sequential Scan"}],
    "/transactions/locks/graph": {"waiters": [], "potential_deadlocks": []},
    "/transactions/locks": {"total_locks": 1, "granted_locks": 1, "waiting_locks": 0, "locks": [
        {"lock_id": "l1", "lock_type": "exclusive", "resource_type": "table", "resource_id": "t", "transaction_id": 1,
         "granted": True, "acquired_at": NOW}]},
    "/transactions/deadlocks": [{"deadlock_id": "d1", "detected_at": NOW, "transactions": [1, 2],
                                 "victim_transaction": 2, "resolution": "abort_youngest"}],
    "/alerts": {"alerts": [{"alert_id": "x1", "severity": "warning", "title": "Disk", "description": "d",
                            "triggered_at": NOW - 60, "acknowledged": False}], "active_count": 1},
    "/backup/list": {"backups": [{"backup_id": "backup_1", "backup_type": "full", "status": "completed",
                                  "start_time": NOW - 7200, "size_bytes": None, "location": "/var/b"}],
                     "total_count": 1},
    "/stats/performance": {"cpu_usage_percent": 12.0, "memory_usage_bytes": 1, "memory_usage_percent": 3.0,
                           "disk_io_read_bytes": 0, "disk_io_write_bytes": 0, "cache_hit_ratio": 0.95,
                           "transactions_per_second": 1.0, "locks_held": 1, "deadlocks": 0},
    "/admin/health": {"status": "healthy", "version": "1.0.0", "uptime_seconds": 3600,
                      "checks": {"database": {"status": "healthy", "message": "Database is operational",
                                              "last_check": NOW}}},
    "/monitoring/ash": {"samples": [{"sample_time": NOW - 5, "session_id": 12, "sql_id": None, "sql_text": None,
                                     "wait_event": "io", "wait_time_ms": None, "blocking_session": None,
                                     "cpu_time_ms": 0, "user_name": "app", "program": None, "module": None,
                                     "action": None}], "total_count": 1, "sample_interval_seconds": 10,
                        "time_range": {"start": NOW - 3600, "end": NOW}},
}


class RustyServer(FakeServer):
    def _route(self, method: str, path: str, params: dict[str, str], body: Any) -> tuple[int, Any] | None:
        p = path.removeprefix("/api/v1")
        if method == "GET" and p in RUSTY:
            return 200, RUSTY[p]
        if p in ("/backup/schedule", "/server/info") or p.startswith("/profiling"):
            return None  # route miss: 404
        return super()._route(method, path, params, body)


def test_models_take_rustydb_shapes_and_junk() -> None:
    s = Session.parse(SESSION)
    assert s is not None and s.application is None and s.query_id is None and not s.waiting
    assert Session.parse({"session_id": "7", "user": "aliased", "connected_at": 5}).username == "aliased"
    assert Session.parse({"session_id": True}) is None and Session.parse({"session_id": [1]}) is None
    q = ActiveQuery.parse(RUSTY["/query/active"][0])
    assert q is not None and q.session_id is None and q.operation == "Sequential Scan"
    a = Alert.parse(RUSTY["/alerts"]["alerts"][0])
    assert a is not None and a.status == "firing" and a.value is None
    assert Alert.parse({"alert_id": "y", "acknowledged": True}).status == "acknowledged"
    assert Alert.parse({"alert_id": "z", "state": "ACTIVE"}).status == "firing"
    b = Backup.parse(RUSTY["/backup/list"]["backups"][0])
    assert b is not None and b.good and b.duration_seconds is None
    assert AshSample.parse(RUSTY["/monitoring/ash"]["samples"][0]).wait_class == "Other"
    o = Overview.parse({"cpu_usage_percent": "high", "sessions": [1]}, {"checks": {"db": "bad"}}, None)
    assert o.cpu_percent is None and o.sessions_by_state == {}


async def test_a_rustydb_server_shows_what_it_has_and_hides_the_rest() -> None:
    server = RustyServer()
    snap = await Poller(server.client()).snapshot()
    assert [s.session_id for s in snap.sessions] == [12] and snap.overview.sessions_by_state == {"active": 1}
    assert snap.blocking_tree == [] and len(snap.locks) == 1 and snap.schedule is None and not snap.missing
    async with running(server, size=(80, 24)) as (app, pilot):
        for number, pane in enumerate(["overview", "sessions", "queries", "locks", "ash", "alerts", "backups"], 1):
            await on_pane(pilot, pane, str(number))
            assert not app.pane.has_class("unserved")
        assert keys(table(app, "backups")) == ["backup_1"]
        await on_pane(pilot, "queries", "3")
        table(app, "queries").select_key("qry_1")
        await pilot.press("k")  # no session for this statement: nothing to ask about
        await until(pilot, lambda: "Select a session" in "\n".join(str(n.message) for n in app._notifications))
        assert server.actions() == []
