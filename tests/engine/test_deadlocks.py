"""Deadlocks: a real cycle in the wait-for graph, found by the detector service and broken."""

from __future__ import annotations

import time

import pytest

from engine import SessionState
from engine.errors import DeadlockDetected
from enginetest import count, wait_for_state, wait_until

PERIOD_MS = 400
# Scheduling slack on top of one detector period: thread wake-ups, GIL hand-offs.
SLACK_S = 0.35

A_WANTS_Y = "UPDATE inventory.items SET qty = qty - 1 WHERE sku = 'apple'"
B_WANTS_X = "UPDATE sales.orders SET amount = amount * 2 WHERE customer = 'alice'"


@pytest.mark.parametrize("closed_by", ["younger", "older"])
def test_cycle_is_detected_within_one_period_and_youngest_is_victim(make_engine, background, closed_by) -> None:
    """A holds X (sales.orders) and wants Y (inventory.items); B holds Y and wants X.

    B began its transaction after A, so B is the victim whichever of the two closes the cycle.
    """
    engine = make_engine(deadlock_check_interval_ms=PERIOD_MS, lock_timeout_ms=30_000)
    a, b, observer = engine.connect(application_name="A"), engine.connect(application_name="B"), engine.connect()
    a.execute("BEGIN")
    b.execute("BEGIN")
    a.execute("UPDATE sales.orders SET amount = amount + 1 WHERE customer = 'bob'")      # A holds X
    b.execute("INSERT INTO inventory.items(sku, qty) VALUES ('victim-row', 1)")         # B holds Y
    a_txn, b_txn = a.info().transaction_id, b.info().transaction_id
    assert a_txn < b_txn and a.info().transaction_started_at <= b.info().transaction_started_at

    first, second = ((a, A_WANTS_Y), (b, B_WANTS_X)) if closed_by == "younger" else ((b, B_WANTS_X), (a, A_WANTS_Y))
    run_first = background(first[0].execute, first[1])
    wait_for_state(first[0], SessionState.WAITING)
    cycle_formed = time.time()  # just before: the cycle closes when the second statement waits
    run_second = background(second[0].execute, second[1])
    runs = {first[0].id: run_first, second[0].id: run_second}

    error = runs[b.id].exception(timeout=10)
    assert isinstance(error, DeadlockDetected)
    a_result = runs[a.id].result()   # A proceeds
    assert a_result.affected_rows == 1

    deadlock = engine.locks.deadlocks[-1]
    assert len(engine.locks.deadlocks) == 1
    # detected within one detector period of the cycle forming
    assert cycle_formed <= deadlock.detected_at <= cycle_formed + PERIOD_MS / 1000 + SLACK_S
    # the victim is the youngest transaction, B
    assert (deadlock.victim_session, deadlock.victim_transaction) == (b.id, b_txn)
    assert error.details["deadlock_id"] == deadlock.deadlock_id
    assert f"session {b.id}" in error.message and "rolled back" in error.message
    # the record names both sessions, both resources, the SQL each was waiting in, and the time
    by_session = {p.session_id: p for p in deadlock.participants}
    assert set(by_session) == {a.id, b.id}
    assert set(deadlock.resources) == {"sales", "inventory"}
    assert by_session[a.id].transaction_id == a_txn and by_session[b.id].transaction_id == b_txn
    assert by_session[a.id].sql == A_WANTS_Y and by_session[b.id].sql == B_WANTS_X
    assert by_session[a.id].waiting_for == "inventory" and "sales.orders" in by_session[a.id].holding
    assert by_session[b.id].waiting_for == "sales" and "inventory.items" in by_session[b.id].holding
    assert {c["session_id"] for c in error.details["cycle"]} == {a.id, b.id}

    # B was rolled back: its earlier write is gone, it holds no lock, it is out of its transaction
    info = b.info()
    assert info.transaction_id is None and info.state is SessionState.IDLE
    assert info.counters.rollbacks == 1 and info.counters.errors == 1
    assert all(lock.session_id != b.id for lock in engine.locks.locks())
    assert engine.locks.held_by(b_txn) == []
    assert count(observer, "SELECT count(*) FROM inventory.items WHERE sku = 'victim-row'") == 0
    assert count(b, "SELECT count(*) FROM inventory.items WHERE sku = 'victim-row'") == 0

    # A's transaction is intact and commits
    a.execute("COMMIT")
    assert count(observer, "SELECT qty FROM inventory.items WHERE sku = 'apple'") == 4
    assert count(observer, "SELECT amount FROM sales.orders WHERE customer = 'bob'") == 21
    # B can retry its work now
    b.execute(B_WANTS_X)
    assert count(observer, "SELECT amount FROM sales.orders WHERE customer = 'alice'") == 20


def test_no_deadlock_recorded_for_a_plain_wait(make_engine, background) -> None:
    engine = make_engine(deadlock_check_interval_ms=50, lock_timeout_ms=30_000)
    a, b = engine.connect(), engine.connect()
    a.execute("BEGIN")
    a.execute("UPDATE sales.orders SET amount = 0")
    run = background(b.execute, "UPDATE sales.orders SET amount = 1")
    wait_for_state(b, SessionState.WAITING)
    detector = next(s for s in engine.services if s.name == "deadlock")
    ticks = detector.ticks
    wait_until(lambda: detector.ticks >= ticks + 2, message="two detector passes")  # it looked, twice
    assert list(engine.locks.deadlocks) == [] and not run.done
    a.execute("COMMIT")
    run.result()


def test_three_way_cycle(make_engine, background) -> None:
    """A -> B -> C -> A across three schemas; one victim (the youngest, C), the others finish."""
    engine = make_engine(deadlock_check_interval_ms=50, lock_timeout_ms=30_000)
    engine.create_schema("hr")
    a, b, c = (engine.connect() for _ in range(3))
    a.execute("CREATE TABLE hr.staff(id INTEGER PRIMARY KEY, name TEXT)")
    for s in (a, b, c):
        s.execute("BEGIN")
    a.execute("UPDATE sales.orders SET amount = 1 WHERE id = 1")
    b.execute("UPDATE inventory.items SET qty = 1 WHERE id = 1")
    c.execute("INSERT INTO hr.staff(name) VALUES ('c')")
    run_a = background(a.execute, "UPDATE inventory.items SET qty = 2 WHERE id = 2")
    wait_for_state(a, SessionState.WAITING)
    run_b = background(b.execute, "INSERT INTO hr.staff(name) VALUES ('b')")
    wait_for_state(b, SessionState.WAITING)
    run_c = background(c.execute, "UPDATE sales.orders SET amount = 3 WHERE id = 3")
    assert isinstance(run_c.exception(), DeadlockDetected)
    deadlock = engine.locks.deadlocks[-1]
    assert deadlock.victim_session == c.id
    assert {p.session_id for p in deadlock.participants} == {a.id, b.id, c.id}
    assert set(deadlock.resources) == {"sales", "inventory", "hr"}
    run_b.result()   # C's hr lock went with its rollback
    b.execute("COMMIT")
    run_a.result()
    a.execute("COMMIT")
    assert len(engine.locks.deadlocks) == 1
