"""Limits: max_connections, the statement timeout and the lock timeout."""

from __future__ import annotations

import time

import pytest

from engine import SessionState
from engine.errors import LockTimeout, QueryTimeout, TooManyConnections
from enginetest import ENDLESS_SQL, bounded_sql, count, wait_for_state


# -- max_connections ---------------------------------------------------------------------------

def test_connection_beyond_max_connections_is_refused(make_engine) -> None:
    engine = make_engine(max_connections=3)
    sessions = [engine.connect() for _ in range(3)]
    with pytest.raises(TooManyConnections) as caught:
        engine.connect()
    assert caught.value.details["max_connections"] == 3
    assert "3" in caught.value.message
    assert engine.session_counts().total == 3
    # closing one frees its slot, and only one
    sessions[0].close()
    extra = engine.connect()
    with pytest.raises(TooManyConnections):
        engine.connect()
    # terminating one frees a slot too
    engine.terminate(extra.id)
    engine.connect()
    assert engine.session_counts().total == 3


def test_max_connections_applies_live(make_engine) -> None:
    engine = make_engine(max_connections=10)
    sessions = [engine.connect() for _ in range(2)]
    engine.reconfigure(max_connections=2)
    with pytest.raises(TooManyConnections):
        engine.connect()
    assert all(s.execute("SELECT 1").rows == [(1,)] for s in sessions)  # existing sessions are kept
    engine.reconfigure(max_connections=3)
    engine.connect()


# -- statement timeout -------------------------------------------------------------------------

def test_statement_running_past_query_timeout_is_interrupted(make_engine) -> None:
    engine = make_engine(query_timeout_secs=0.3)
    s = engine.connect()
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as caught:
        s.execute(ENDLESS_SQL)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 3.0
    stmt = engine.statement(caught.value.details["query_id"])
    assert stmt.error_code == "QUERY_TIMEOUT" and stmt.stop_reason == "timeout"
    assert stmt.duration_ms >= 300
    # the session stays usable
    assert s.info().state is SessionState.IDLE
    assert s.execute("SELECT 42").rows == [(42,)]
    assert count(s, "SELECT count(*) FROM sales.orders") == 3
    assert s.info().counters.errors == 1


def test_query_timeout_applies_live_and_zero_disables(make_engine) -> None:
    engine = make_engine(query_timeout_secs=30.0)
    s = engine.connect()
    engine.reconfigure(query_timeout_secs=0.2)
    with pytest.raises(QueryTimeout):
        s.execute(ENDLESS_SQL)
    engine.reconfigure(query_timeout_secs=0.0)
    # with no deadline, a statement runs past the old 0.2 s limit and finishes
    result = s.execute(bounded_sql(4_000_000))
    assert result.rows == [(4_000_000,)] and result.execution_time_ms > 200


def test_timeout_on_a_write_in_a_transaction_rolls_it_back(make_engine) -> None:
    """SQLite undoes a transaction whose write was interrupted; the engine must follow, not pretend."""
    engine = make_engine(query_timeout_secs=0.2)
    s, other = engine.connect(), engine.connect()
    s.execute("BEGIN")
    s.execute("INSERT INTO sales.orders(customer) VALUES ('before the timeout')")
    endless_insert = ("INSERT INTO sales.orders(customer) "
                      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT 'n' || x FROM c")
    with pytest.raises(QueryTimeout, match="rolled back"):
        s.execute(endless_insert)
    info = s.info()
    assert info.transaction_id is None and info.state is SessionState.IDLE
    assert engine.locks.locks() == []
    assert count(other, "SELECT count(*) FROM sales.orders") == 3
    # the lock is free: another session writes at once
    other.execute("INSERT INTO sales.orders(customer) VALUES ('other')")


def test_timeout_on_a_read_in_a_transaction_keeps_the_transaction(make_engine) -> None:
    engine = make_engine(query_timeout_secs=0.2)
    s, other = engine.connect(), engine.connect()
    s.execute("BEGIN")
    s.execute("INSERT INTO sales.orders(customer) VALUES ('kept')")
    with pytest.raises(QueryTimeout):
        s.execute(ENDLESS_SQL)
    assert s.info().state is SessionState.IDLE_IN_TRANSACTION
    s.execute("COMMIT")
    assert count(other, "SELECT count(*) FROM sales.orders WHERE customer = 'kept'") == 1


def test_query_timeout_while_waiting_for_a_lock(make_engine) -> None:
    """The statement's deadline is shorter than the lock timeout, so the deadline wins."""
    engine = make_engine(query_timeout_secs=0.3, lock_timeout_ms=20_000)
    holder, waiter = engine.connect(), engine.connect()
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = 0")
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as caught:
        waiter.execute("UPDATE sales.orders SET amount = 1")
    assert 0.3 <= time.monotonic() - started < 3.0
    assert "sales" in caught.value.message
    assert all(lock.granted for lock in engine.locks.locks())  # its wait left the queue
    holder.execute("COMMIT")
    waiter.execute("UPDATE sales.orders SET amount = 1")


# -- lock timeout ------------------------------------------------------------------------------

def test_lock_wait_past_lock_timeout_fails_naming_resource_and_holder(make_engine, background) -> None:
    engine = make_engine(lock_timeout_ms=300)
    holder, waiter = engine.connect(), engine.connect()
    holder.execute("BEGIN")
    holder.execute("INSERT INTO sales.orders(customer) VALUES ('held')")
    run = background(waiter.execute, "INSERT INTO sales.orders(customer) VALUES ('waits')")
    wait_for_state(waiter, SessionState.WAITING)
    error = run.exception()
    assert isinstance(error, LockTimeout)
    assert run.ended - run.started >= 0.3
    assert "sales" in error.message and f"session {holder.id}" in error.message
    assert error.details["resource"] in ("sales", "sales.orders")
    assert error.details["blocking_session"] == holder.id
    assert engine.locks.lock_timeouts_total == 1
    # the waiter left the queue, is usable, and the holder is unaffected
    assert all(lock.session_id == holder.id for lock in engine.locks.locks())
    assert waiter.info().state is SessionState.IDLE
    assert waiter.execute("SELECT 1").rows == [(1,)]
    holder.execute("COMMIT")
    waiter.execute("INSERT INTO sales.orders(customer) VALUES ('waits')")
    assert count(waiter, "SELECT count(*) FROM sales.orders WHERE customer IN ('held', 'waits')") == 2


def test_lock_timeout_in_a_transaction_keeps_the_transaction(make_engine) -> None:
    engine = make_engine(lock_timeout_ms=200)
    holder, waiter = engine.connect(), engine.connect()
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = 0")
    waiter.execute("BEGIN")
    waiter.execute("UPDATE inventory.items SET qty = 100")
    with pytest.raises(LockTimeout):
        waiter.execute("UPDATE sales.orders SET amount = 1")
    # only the statement failed: the waiter still has its transaction and its inventory lock
    assert waiter.info().state is SessionState.IDLE_IN_TRANSACTION
    assert any(l.session_id == waiter.id and l.resource == "inventory.items" for l in engine.locks.locks())
    waiter.execute("COMMIT")
    holder.execute("ROLLBACK")
    assert count(holder, "SELECT sum(qty) FROM inventory.items") == 200


def test_a_session_may_be_given_its_own_statement_timeout(make_engine) -> None:
    engine = make_engine(query_timeout_secs=0.2)
    unlimited = engine.connect(statement_timeout_secs=0)
    shorter = engine.connect(statement_timeout_secs=0.05)
    # longer than the configured 0.2 s, yet not stopped
    started = time.monotonic()
    assert unlimited.execute(bounded_sql(5_000_000)).rows == [(5_000_000,)]
    assert time.monotonic() - started > 0.2
    with pytest.raises(QueryTimeout):
        shorter.execute(ENDLESS_SQL)
