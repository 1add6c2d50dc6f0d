"""Active Session History over the API: a real lock wait, sampled, filtered and grouped."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from engine import Engine
from engine.fingerprint import sql_id
from engine.sessions import Session, SessionState

from .conftest import wait_until

BLOCKED = "UPDATE sales.orders SET amount = 0 WHERE id = 2"


def _ash(client: TestClient, headers: dict, **params: object) -> dict:
    r = client.get("/api/v1/monitoring/ash", params=params, headers=headers["monitor"])
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def blocked(engine: Engine) -> Iterator[tuple[Session, Session]]:
    """A holder idle in a transaction with a write lock, and a waiter blocked behind it in a thread."""
    holder = engine.connect("holder", "ash-holder")
    waiter = engine.connect("waiter", "ash-waiter")
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = amount + 1 WHERE id = 1")
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(waiter.execute(BLOCKED)))
    thread.start()
    try:
        wait_until(lambda: waiter.state is SessionState.WAITING)
        yield holder, waiter
    finally:
        holder.execute("ROLLBACK")
        thread.join(10)
        assert not thread.is_alive() and outcome, "the waiter did not finish once the lock was released"
        holder.close()
        waiter.close()


def test_a_blocked_session_is_sampled_waiting_on_its_blocker(engine: Engine, client: TestClient, headers: dict,
                                                             blocked: tuple[Session, Session]) -> None:
    holder, waiter = blocked
    assert engine.sample_ash() >= 2
    body = _ash(client, headers, session_id=waiter.id, state="waiting")
    assert body["total_count"] >= 1 and len(body["samples"]) == body["total_count"]
    for s in body["samples"]:
        assert s["session_id"] == waiter.id and s["state"] == "waiting"
        assert s["wait_class"] == "Lock" and s["wait_event"].startswith(("schema:sales", "table:sales.orders"))
        assert s["blocking_session"] == holder.id
        assert s["sql_text"] == BLOCKED and s["sql_id"] == sql_id(BLOCKED) and s["query_id"]
        assert s["user_name"] == "waiter" and s["program"] == "ash-waiter"
        assert s["wait_time_ms"] >= 0 and isinstance(s["cpu_time_ms"], int) and s["cpu_time_ms"] >= 0
        assert s["module"] is None and s["action"] is None
    assert body["sample_interval_seconds"] == engine.ash.interval_seconds

    # the background sampler may also have caught the holder while its statements ran
    holding = _ash(client, headers, session_id=holder.id, state="idle in transaction")["samples"]
    assert holding and all(s["blocking_session"] is None and s["sql_text"] is None for s in holding)
    assert {(s["wait_class"], s["wait_event"]) for s in holding} == {("Idle in transaction", "ClientRead")}

    lock_waits = _ash(client, headers, wait_class="Lock")["samples"]
    assert lock_waits and {s["session_id"] for s in lock_waits} == {waiter.id}


def test_group_by_returns_the_top_buckets(engine: Engine, client: TestClient, headers: dict,
                                          blocked: tuple[Session, Session]) -> None:
    holder, waiter = blocked
    engine.sample_ash()
    by_session = _ash(client, headers, group_by="session", wait_class="Lock", limit=0)
    assert by_session["samples"] == [] and by_session["group_by"] == "session"
    [bucket] = by_session["top"]
    assert bucket["key"] == str(waiter.id) and bucket["example"] == "waiter@ash-waiter"
    assert bucket["samples"] == by_session["total_count"] and bucket["percent"] == 100.0
    assert bucket["average_active_sessions"] > 0

    by_class = _ash(client, headers, group_by="wait_class")
    shares = {b["key"]: b for b in by_class["top"]}
    assert {"Lock", "Idle in transaction"} <= set(shares)
    assert sum(b["samples"] for b in by_class["top"]) == by_class["total_count"]
    assert sum(b["percent"] for b in by_class["top"]) == pytest.approx(100, abs=0.01)
    counts = [b["samples"] for b in by_class["top"]]
    assert counts == sorted(counts, reverse=True)

    [by_sql] = _ash(client, headers, group_by="sql_id", session_id=waiter.id, state="waiting")["top"]
    assert by_sql["key"] == sql_id(BLOCKED) and by_sql["example"] == BLOCKED
    by_event = _ash(client, headers, group_by="wait_event", session_id=holder.id, state="idle in transaction")["top"]
    assert [b["key"] for b in by_event] == ["ClientRead"]
    assert _ash(client, headers)["top"] is None


def test_filters_limit_and_time_range(engine: Engine, client: TestClient, headers: dict) -> None:
    s = engine.connect("carol", "ash-filter")
    s.execute("BEGIN")
    s.execute("SELECT * FROM sales.orders")
    for _ in range(5):
        engine.sample_ash()
    now = int(engine.clock.time())

    everything = _ash(client, headers, session_id=s.id)
    assert everything["total_count"] >= 5 and not everything["truncated"]
    ids = [x["sample_id"] for x in everything["samples"]]
    assert ids == sorted(ids)

    newest = _ash(client, headers, session_id=s.id, limit=2)
    assert [x["sample_id"] for x in newest["samples"]] == ids[-2:]
    assert newest["total_count"] == everything["total_count"] and newest["truncated"]
    assert _ash(client, headers, session_id=s.id, limit=0)["samples"] == []

    idle = _ash(client, headers, session_id=s.id, state="idle in transaction")
    assert idle["total_count"] >= 5 and all(x["state"] == "idle in transaction" for x in idle["samples"])
    assert _ash(client, headers, session_id=s.id, wait_event="ClientRead")["samples"] == idle["samples"]
    assert _ash(client, headers, session_id=s.id, state="waiting")["total_count"] == 0
    assert _ash(client, headers, session_id=s.id, sql_id="0000000000000000")["total_count"] == 0

    later = _ash(client, headers, session_id=s.id, start_time=now + 100)
    assert later["total_count"] == 0 and later["time_range"]["start"] == now + 100
    window = _ash(client, headers, session_id=s.id, start_time=now - 60, end_time=now + 60)
    assert window["total_count"] == len(ids) and window["time_range"] == {"start": now - 60, "end": now + 60}
    assert _ash(client, headers, session_id=s.id, end_time=now - 60)["total_count"] == 0

    engine.reconfigure(ash_interval_ms=250)
    assert _ash(client, headers)["sample_interval_seconds"] == 0.25
    s.execute("ROLLBACK")
    s.close()


def test_a_window_that_ends_before_it_starts_holds_nothing(client: TestClient, headers: dict) -> None:
    r = client.get("/api/v1/monitoring/ash", params={"start_time": 200, "end_time": 100, "group_by": "session"},
                   headers=headers["monitor"])
    assert r.status_code == 200
    body = r.json()
    assert (body["samples"], body["total_count"], body["top"], body["time_range"]) == (
        [], 0, [], {"start": 200, "end": 100})


@pytest.mark.parametrize(("params", "field"), [
    ({"group_by": "program"}, "group_by"), ({"wait_class": "Disk"}, "wait_class"), ({"state": "asleep"}, "state"),
    ({"limit": 100_001}, "limit"), ({"session_id": 0}, "session_id"), ({"start_time": -1}, "start_time"),
    ({"top_limit": 0}, "top_limit"),
])
def test_bad_ash_parameters_are_400(client: TestClient, headers: dict, params: dict, field: str) -> None:
    r = client.get("/api/v1/monitoring/ash", params=params, headers=headers["monitor"])
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR")
    assert r.json()["message"].startswith(field)
    if field == "group_by":
        assert all(g in r.json()["message"] for g in ("wait_class", "wait_event", "sql_id", "session"))
