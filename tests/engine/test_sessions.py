"""Sessions: states, counters, timestamps and the registry."""

from __future__ import annotations

import pytest

from engine import Engine, ManualClock, SessionState
from engine.errors import InvalidInput, NotFound, SessionBusy, SqlError
from engine.fingerprint import sql_id
from enginetest import ENDLESS_SQL, count, wait_for_state


def test_new_session_is_idle_and_listed(engine: Engine) -> None:
    s = engine.connect(user="ann", application_name="billing", client_address="10.0.0.7")
    info = s.info()
    assert info.state is SessionState.IDLE
    assert (info.username, info.application_name, info.client_address) == ("ann", "billing", "10.0.0.7")
    assert info.wait_class is info.wait_event is info.blocking_session is None
    assert info.current_sql is info.current_query_id is info.transaction_id is None
    assert [i.session_id for i in engine.sessions()] == [s.id]
    assert engine.session(s.id) is s


def test_states_idle_in_transaction_and_back(engine: Engine) -> None:
    s = engine.connect()
    s.execute("BEGIN")
    info = s.info()
    assert info.state is SessionState.IDLE_IN_TRANSACTION
    assert info.wait_class == "Idle in transaction"
    assert info.transaction_id is not None and info.transaction_started_at is not None
    s.execute("INSERT INTO sales.orders(customer) VALUES ('dave')")
    assert s.info().state is SessionState.IDLE_IN_TRANSACTION
    assert s.info().transaction_id == info.transaction_id  # still the same transaction
    s.execute("COMMIT")
    info = s.info()
    assert info.state is SessionState.IDLE
    assert info.transaction_id is None and info.wait_class is None


def test_state_active_while_a_statement_runs(engine: Engine, background) -> None:
    s = engine.connect()
    run = background(s.execute, ENDLESS_SQL)
    wait_for_state(s, SessionState.ACTIVE)
    info = s.info()
    assert info.current_sql == ENDLESS_SQL
    assert info.sql_id == sql_id(ENDLESS_SQL)
    assert info.current_query_id is not None and info.query_started_at is not None
    assert info.wait_class in ("CPU", "IO")
    assert engine.session_counts().by_state["active"] == 1
    assert [a.query_id for a in engine.active_statements()] == [info.current_query_id]
    engine.cancel(s.id)
    run.exception()
    assert s.info().state is SessionState.IDLE and s.info().current_sql is None


def test_state_waiting_on_a_lock(engine: Engine, background) -> None:
    holder, waiter = engine.connect(), engine.connect()
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = amount + 1 WHERE id = 1")
    run = background(waiter.execute, "UPDATE sales.orders SET amount = 0 WHERE id = 2")
    wait_for_state(waiter, SessionState.WAITING)
    info = waiter.info()
    assert info.wait_class == "Lock"
    assert info.blocking_session == holder.id and info.blocking_sessions == (holder.id,)
    counts = engine.session_counts()
    assert counts.by_state == {"idle": 0, "active": 0, "idle in transaction": 1, "waiting": 1}
    holder.execute("COMMIT")
    run.result()
    assert waiter.info().state is SessionState.IDLE and waiter.info().blocking_session is None


def test_counters(engine: Engine) -> None:
    s = engine.connect()
    s.execute("SELECT * FROM sales.orders")                                         # 3 rows read
    assert s.execute("INSERT INTO sales.orders(customer) VALUES ('x'), ('y')").affected_rows == 2
    s.execute("BEGIN")
    s.execute("UPDATE sales.orders SET amount = 1 WHERE customer IN ('x', 'y')")     # 2 written
    s.execute("SELECT id FROM sales.orders WHERE customer = 'x'")                    # 1 read, 0 written
    s.execute("COMMIT")
    s.execute("BEGIN")
    s.execute("DELETE FROM sales.orders WHERE customer = 'x'")                       # 1 written
    s.execute("ROLLBACK")
    with pytest.raises(SqlError):
        s.execute("SELECT * FROM sales.no_such_table")
    c = s.info().counters
    assert c.statements == 10
    assert c.rows_read == 4
    assert c.rows_written == 5
    assert c.errors == 1
    # transactions: the autocommit read, the autocommit insert, the explicit commit
    assert c.commits == 3
    # the explicit rollback; the failed statement never began a transaction (it did not compile)
    assert c.rollbacks == 1


def test_rows_written_counts_only_statements_that_write(engine: Engine) -> None:
    """A statement that writes nothing reports no rows written, whatever ran before it."""
    s = engine.connect()
    assert s.execute("INSERT INTO sales.orders(customer) VALUES ('x'), ('y'), ('z')").affected_rows == 3
    assert s.execute("CREATE TABLE sales.notes(body TEXT)").affected_rows == 0
    s.execute("BEGIN")
    assert s.execute("INSERT INTO sales.notes VALUES ('a')").affected_rows == 1
    assert s.execute("SELECT * FROM sales.notes").affected_rows == 0
    assert s.execute("UPDATE sales.notes SET body = 'b' WHERE 0").affected_rows == 0
    s.execute("COMMIT")
    assert s.info().counters.rows_written == 4


def test_failed_statement_counts_an_error_and_leaves_session_usable(engine: Engine) -> None:
    s = engine.connect()
    with pytest.raises(SqlError, match="UNIQUE"):
        s.execute("INSERT INTO inventory.items(sku, qty) VALUES ('apple', 1)")
    assert s.info().counters.errors == 1
    assert s.info().state is SessionState.IDLE
    assert count(s, "SELECT count(*) FROM inventory.items") == 2


@pytest.mark.parametrize("sql, text", [
    ("INSERT INTO inventory.items(sku, qty) VALUES ('apple', 1)", "UNIQUE constraint failed: items.sku"),
    ("SELECT * FROM sales.nope", "no such table: sales.nope"),
    ("SELEC 1", 'near "SELEC": syntax error'),
])
def test_sql_error_keeps_sqlites_message(engine: Engine, sql: str, text: str) -> None:
    with pytest.raises(SqlError) as caught:
        engine.connect().execute(sql)
    assert caught.value.message == text


def test_timestamps_follow_the_clock(manual_engine: Engine, clock: ManualClock) -> None:
    t0 = clock.time()
    s = manual_engine.connect()
    info = s.info()
    assert info.connected_at == info.last_activity == info.state_since == t0
    clock.advance(5)
    s.execute("BEGIN")
    info = s.info()
    assert info.last_activity == t0 + 5 and info.state_since == t0 + 5
    assert info.transaction_started_at == t0 + 5
    clock.advance(3)
    s.execute("INSERT INTO sales.orders(customer) VALUES ('t')")
    info = s.info()
    # the session was active for the INSERT, so it is idle in transaction again since t0 + 8
    assert info.state_since == info.last_activity == t0 + 8
    assert info.transaction_started_at == t0 + 5
    clock.advance(2)
    s.execute("COMMIT")
    info = s.info()
    assert info.state_since == info.last_activity == t0 + 10
    assert info.connected_at == t0


def test_query_started_at_is_the_statement_start(manual_engine: Engine, clock: ManualClock, background) -> None:
    s = manual_engine.connect()
    clock.advance(7)
    run = background(s.execute, ENDLESS_SQL)
    wait_for_state(s, SessionState.ACTIVE)
    assert s.info().query_started_at == clock.time()
    manual_engine.cancel(s.id)
    run.exception()


def test_one_statement_at_a_time_per_session(engine: Engine, background) -> None:
    s = engine.connect()
    run = background(s.execute, ENDLESS_SQL)
    wait_for_state(s, SessionState.ACTIVE)
    with pytest.raises(SessionBusy):
        s.execute("SELECT 1")
    engine.cancel(s.id)
    run.exception()
    assert s.execute("SELECT 1").rows == [(1,)]


def test_peak_and_counts(engine: Engine) -> None:
    sessions = [engine.connect() for _ in range(3)]
    sessions[0].close()
    counts = engine.session_counts()
    assert counts.total == 2 and counts.peak >= 3
    assert counts.max_connections == engine.config.max_connections


def test_unknown_session_and_bad_input(engine: Engine) -> None:
    with pytest.raises(NotFound):
        engine.session(999_999)
    with pytest.raises(InvalidInput):
        engine.connect(user="u" * 300)
    with pytest.raises(SqlError):
        engine.connect().execute("   ")


def test_begin_twice_and_commit_without_transaction_are_errors(engine: Engine) -> None:
    s = engine.connect()
    with pytest.raises(SqlError, match="no transaction"):
        s.execute("COMMIT")
    s.execute("BEGIN")
    with pytest.raises(SqlError, match="already in progress"):
        s.execute("BEGIN")
    s.execute("ROLLBACK")
    assert s.info().state is SessionState.IDLE
