"""Resource figures, sub-second times and plans as the API serves them (additional fields only)."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from engine import Engine
from engine.fingerprint import sql_id
from engine.sessions import SessionState

from .conftest import monitor_get, wait_until

SPIN = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
SCAN = "SELECT count(*) FROM sales.orders WHERE amount > ?"


def test_session_times_have_millisecond_twins_that_agree_with_the_seconds(engine: Engine, client: TestClient,
                                                                          headers: dict) -> None:
    s = engine.connect("alice", "ms-test")
    s.execute("BEGIN")
    s.execute("SELECT 1")  # the transaction began before this state did
    body = monitor_get(client, headers, f"/api/v1/sessions/{s.id}")
    assert body["state"] == "idle in transaction"
    assert body["state_since_ms"] // 1000 == body["state_since"]
    assert body["transaction_started_at_ms"] // 1000 == body["transaction_started_at"]
    assert body["transaction_started_at_ms"] <= body["state_since_ms"]
    assert body["query_started_at_ms"] is None and body["query_started_at"] is None
    listed = next(x for x in monitor_get(client, headers, "/api/v1/stats/sessions")["sessions"] if x["session_id"] == s.id)
    assert listed["state_since_ms"] == body["state_since_ms"]
    younger = engine.connect("bob", "ms-test")
    younger.execute("BEGIN")
    younger.execute("SELECT 1")
    idle = engine.connect("carol", "ms-test")
    oldest_first = monitor_get(client, headers, "/api/v1/stats/sessions", sort_by="transaction_seconds", sort_order="desc")
    assert [x["session_id"] for x in oldest_first["sessions"]] == [s.id, younger.id, idle.id]
    s.execute("ROLLBACK")
    assert monitor_get(client, headers, f"/api/v1/sessions/{s.id}")["transaction_started_at_ms"] is None


def test_a_spinning_statement_is_seen_using_cpu_in_sessions_and_active_queries(engine: Engine, client: TestClient,
                                                                              headers: dict) -> None:
    s = engine.connect("bob", "spinner")
    done = threading.Event()
    thread = threading.Thread(target=lambda: (_swallow(lambda: s.execute(SPIN)), done.set()))
    thread.start()
    try:
        wait_until(lambda: s.state is SessionState.ACTIVE and s.cpu_time_ms() > 5)
        first = monitor_get(client, headers, f"/api/v1/sessions/{s.id}")["cpu_time_ms"]
        assert first > 5

        def grown() -> dict | None:
            active = [q for q in monitor_get(client, headers, "/api/v1/query/active") if q["session_id"] == s.id]
            return active[0] if active and active[0]["cpu_time_ms"] > first else None

        q = wait_until(grown)
        assert q["started_at_ms"] // 1000 == q["started_at"] and isinstance(q["cache_hits"], int)
        idle = engine.connect("dave", "idle")
        ordered = monitor_get(client, headers, "/api/v1/stats/sessions", sort_by="cpu_time_ms", sort_order="desc")
        assert [x["session_id"] for x in ordered["sessions"]] == [s.id, idle.id]  # the running one's CPU counts
    finally:
        engine.cancel(s.id, by="test")
        thread.join(10)
    assert done.is_set()


def _swallow(call) -> None:  # type: ignore[no-untyped-def]
    try:
        call()
    except Exception:  # the cancel that ends it
        pass


def test_plans_and_resources_are_served_per_fingerprint(engine: Engine, client: TestClient, headers: dict) -> None:
    s = engine.connect("carol", "plans")
    for amount in (5, 15, 25):
        s.execute(SCAN, (amount,))
    body = monitor_get(client, headers, "/api/v1/profiling/queries", page_size=1000)
    profiles = {p["query_id"]: p for p in body["profiles"]}
    scan = profiles[sql_id(SCAN)]
    assert scan["execution_plan"] == "SCAN sales.orders" and isinstance(scan["plan_captured_at"], int)
    assert scan["cpu_time_ms"] > 0 and scan["rows_returned"] == 3 and scan["cache_hits"] + scan["cache_misses"] > 0
    top = {t["sql_id"]: t for t in monitor_get(client, headers, "/api/v1/stats/queries", top_limit=1000)["top_queries"]}
    assert top[sql_id(SCAN)]["execution_plan"] == "SCAN sales.orders"
    assert top[sql_id(SCAN)]["cpu_time_ms"] == scan["cpu_time_ms"]
    result = client.post("/api/v1/query", json={"sql": SCAN, "params": [1]}, headers=headers["admin"]).json()
    status = monitor_get(client, headers, f"/api/v1/query/{result['query_id']}/status")
    assert status["execution_plan"] == "SCAN sales.orders" and status["cpu_time_ms"] is not None
