"""Cancel (stop the statement, keep the session) and terminate (roll back, close the session)."""

from __future__ import annotations

import threading

import pytest

from engine import Engine, SessionState
from engine.errors import Conflict, NotFound, QueryCanceled, SessionTerminated
from enginetest import ENDLESS_SQL, bounded_sql, count, wait_for_state, wait_until


# -- cancel ------------------------------------------------------------------------------------

def test_cancel_interrupts_a_running_statement(engine: Engine, background) -> None:
    s = engine.connect()
    run = background(s.execute, ENDLESS_SQL)
    wait_for_state(s, SessionState.ACTIVE)
    running_id = s.info().current_query_id
    stmt = engine.cancel(s.id, by="ops")
    assert stmt.query_id == running_id
    error = run.exception()
    assert isinstance(error, QueryCanceled)
    assert error.details["query_id"] == running_id and error.details["canceled_by"] == "ops"
    assert "ops" in error.message
    finished = engine.statement(running_id)
    assert finished.error_code == "QUERY_CANCELED" and finished.stopped_by == "ops"
    # the session is usable
    assert s.info().state is SessionState.IDLE
    assert s.execute("SELECT 7").rows == [(7,)]
    assert s.info().counters.errors == 1


def test_cancel_by_query_id(engine: Engine, background) -> None:
    s = engine.connect()
    run = background(s.execute, ENDLESS_SQL)
    wait_for_state(s, SessionState.ACTIVE)
    engine.cancel_query(s.info().current_query_id)
    assert isinstance(run.exception(), QueryCanceled)


def test_cancel_a_statement_waiting_for_a_lock(engine: Engine, background) -> None:
    holder, waiter = engine.connect(), engine.connect()
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = 0")
    run = background(waiter.execute, "UPDATE sales.orders SET amount = 1")
    wait_for_state(waiter, SessionState.WAITING)
    engine.cancel(waiter.id)
    error = run.exception()
    assert isinstance(error, QueryCanceled)
    assert run.ended - run.started < 4.0  # not the 5 s lock timeout
    # the wait left the queue; the holder is untouched; the waiter is usable
    assert all(lock.session_id == holder.id and lock.granted for lock in engine.locks.locks())
    assert waiter.info().state is SessionState.IDLE
    assert count(waiter, "SELECT count(*) FROM sales.orders") == 3
    holder.execute("COMMIT")
    assert count(waiter, "SELECT sum(amount) FROM sales.orders") == 0


def test_cancel_in_a_transaction_keeps_the_transaction(engine: Engine, background) -> None:
    s = engine.connect()
    s.execute("BEGIN")
    s.execute("INSERT INTO sales.orders(customer) VALUES ('kept')")
    run = background(s.execute, ENDLESS_SQL)
    wait_for_state(s, SessionState.ACTIVE)
    engine.cancel(s.id)
    assert isinstance(run.exception(), QueryCanceled)
    assert s.info().state is SessionState.IDLE_IN_TRANSACTION
    s.execute("COMMIT")
    assert count(s, "SELECT count(*) FROM sales.orders WHERE customer = 'kept'") == 1


def test_cancel_an_idle_session_is_a_conflict_and_does_not_cancel_the_next_statement(engine: Engine) -> None:
    s = engine.connect()
    with pytest.raises(Conflict) as caught:
        engine.cancel(s.id)
    assert "no running statement" in caught.value.message
    assert caught.value.details["session_id"] == s.id
    # a later statement -- long enough to pass through the progress handler many times -- completes
    result = s.execute(bounded_sql(300_000))
    assert result.rows == [(300_000,)]
    assert s.info().counters.errors == 0
    assert engine.statement(result.query_id).stop_reason is None


def test_cancel_an_idle_in_transaction_session_is_a_conflict(engine: Engine) -> None:
    s = engine.connect()
    s.execute("BEGIN")
    with pytest.raises(Conflict):
        engine.cancel(s.id)
    assert s.info().state is SessionState.IDLE_IN_TRANSACTION
    s.execute("COMMIT")


def test_cancel_with_a_stale_query_id_is_refused(engine: Engine, background) -> None:
    s = engine.connect()
    old = s.execute("SELECT 1").query_id
    run = background(s.execute, ENDLESS_SQL)
    wait_for_state(s, SessionState.ACTIVE)
    running = s.info().current_query_id
    assert running != old
    with pytest.raises(Conflict) as caught:
        engine.cancel(s.id, query_id=old)
    assert caught.value.details["running_query_id"] == running
    # the refusal stopped nothing: the statement is still running
    assert not run.done and s.state is SessionState.ACTIVE
    assert engine.statement(running).stop_reason is None
    # the finished statement can no longer be canceled by its id either
    with pytest.raises(Conflict):
        engine.cancel_query(old)
    engine.cancel(s.id, query_id=running)
    assert isinstance(run.exception(), QueryCanceled)


def test_cancel_unknown_session_or_query(engine: Engine) -> None:
    with pytest.raises(NotFound):
        engine.cancel(424242)
    with pytest.raises(NotFound):
        engine.cancel_query("q999999999")


# -- terminate ---------------------------------------------------------------------------------

def test_terminate_rolls_back_and_closes(engine: Engine) -> None:
    victim, other = engine.connect(), engine.connect()
    victim.execute("BEGIN")
    victim.execute("INSERT INTO sales.orders(customer) VALUES ('uncommitted')")
    assert count(victim, "SELECT count(*) FROM sales.orders WHERE customer = 'uncommitted'") == 1
    rollbacks = engine.transactions.rollbacks_total

    engine.terminate(victim.id, by="dba")

    assert victim.closed
    assert victim.id not in [i.session_id for i in engine.sessions()]
    with pytest.raises(NotFound):
        engine.session(victim.id)
    assert engine.transactions.rollbacks_total == rollbacks + 1
    assert engine.locks.locks() == []
    # the row is gone and its lock with it: another session writes at once and never sees it
    other.execute("INSERT INTO sales.orders(customer) VALUES ('after')")
    assert count(other, "SELECT count(*) FROM sales.orders WHERE customer = 'uncommitted'") == 0
    # the owner learns on its next call
    with pytest.raises(SessionTerminated) as caught:
        victim.execute("SELECT 1")
    assert caught.value.details["terminated_by"] == "dba" and "dba" in caught.value.message


def test_terminate_is_permanent_in_the_data_files(make_engine, tmp_path) -> None:
    """After terminate the uncommitted row is gone from disk too, not only from the live sessions."""
    engine = make_engine(data_dir=tmp_path / "data")
    victim = engine.connect()
    victim.execute("BEGIN")
    victim.execute("INSERT INTO sales.orders(customer) VALUES ('uncommitted')")
    engine.terminate(victim.id)
    engine.close()
    reopened = make_engine(data_dir=tmp_path / "data", tables=False)
    assert count(reopened.connect(), "SELECT count(*) FROM sales.orders WHERE customer = 'uncommitted'") == 0


def test_terminate_a_running_statement(engine: Engine, background) -> None:
    s = engine.connect()
    s.execute("BEGIN")
    s.execute("INSERT INTO sales.orders(customer) VALUES ('uncommitted')")
    run = background(s.execute, ENDLESS_SQL)
    wait_for_state(s, SessionState.ACTIVE)
    engine.terminate(s.id)
    assert isinstance(run.exception(), SessionTerminated)
    assert s.closed and engine.session_counts().total == 0
    assert engine.locks.locks() == []
    assert count(engine.connect(), "SELECT count(*) FROM sales.orders WHERE customer = 'uncommitted'") == 0


def test_terminate_a_session_blocked_on_a_lock(engine: Engine, background) -> None:
    holder, waiter = engine.connect(), engine.connect()
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = 0")
    waiter.execute("BEGIN")
    waiter.execute("INSERT INTO inventory.items(sku, qty) VALUES ('uncommitted', 1)")
    run = background(waiter.execute, "UPDATE sales.orders SET amount = 1")
    wait_for_state(waiter, SessionState.WAITING)
    engine.terminate(waiter.id)
    error = run.exception()
    assert isinstance(error, SessionTerminated)
    assert run.ended - run.started < 4.0
    wait_until(lambda: waiter.closed, message="the terminated session to close")
    assert [i.session_id for i in engine.sessions()] == [holder.id]
    # the waiter's queued request and its granted inventory locks are gone; the holder keeps its own
    assert {l.session_id for l in engine.locks.locks()} == {holder.id}
    assert count(holder, "SELECT count(*) FROM inventory.items WHERE sku = 'uncommitted'") == 0
    holder.execute("COMMIT")
    with pytest.raises(SessionTerminated):
        waiter.execute("SELECT 1")


def test_terminate_twice_and_terminate_unknown(engine: Engine) -> None:
    s = engine.connect()
    engine.terminate(s.id)
    with pytest.raises(NotFound):
        engine.terminate(s.id)
    s.terminate("again")  # directly on the closed session: nothing happens
    assert s.closed


def test_terminate_while_a_statement_is_starting(make_engine, background, monkeypatch) -> None:
    """terminate() that lands after execute() checked the session but before its statement is
    registered must still stop that statement (else an endless one would run on, and close() wait)."""
    import engine.sessions as sessions_module

    engine = make_engine(tables=False, query_timeout_secs=3.0)
    s = engine.connect()
    entered, go = threading.Event(), threading.Event()
    real_statement = sessions_module.Statement

    def slow_statement(*args, **kwargs):
        if args[1] == ENDLESS_SQL:
            entered.set()
            assert go.wait(10)
        return real_statement(*args, **kwargs)

    monkeypatch.setattr(sessions_module, "Statement", slow_statement)
    run = background(s.execute, ENDLESS_SQL)
    assert entered.wait(10)          # execute() has passed its checks; no statement is registered yet
    engine.terminate(s.id, by="dba")
    go.set()
    error = run.exception()
    assert isinstance(error, SessionTerminated), error   # not QueryTimeout after running 3 s
    assert run.ended - run.started < 2.0
    assert s.closed and engine.sessions() == []
