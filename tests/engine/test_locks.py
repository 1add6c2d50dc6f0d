"""The lock manager seen from sessions: who waits, for what, behind whom, and when they go on."""

from __future__ import annotations

import time

import pytest

from engine import Engine, SessionState
from engine.errors import SerializationFailure
from engine.locks import LockMode
from enginetest import count, wait_for_state


def _waiting_lock(engine: Engine, session_id: int):
    waiting = [lock for lock in engine.locks.locks() if lock.session_id == session_id and not lock.granted]
    assert len(waiting) == 1, waiting
    return waiting[0]


def test_second_writer_waits_and_names_resource_and_holder(engine: Engine, background) -> None:
    holder, waiter = engine.connect(), engine.connect()
    holder.execute("BEGIN")
    holder.execute("INSERT INTO sales.orders(customer) VALUES ('first')")
    run = background(waiter.execute, "INSERT INTO sales.orders(customer) VALUES ('second')")
    wait_for_state(waiter, SessionState.WAITING)

    info = waiter.info()
    lock = _waiting_lock(engine, waiter.id)
    assert info.wait_class == "Lock"
    assert lock.resource in ("sales", "sales.orders")
    assert info.wait_event == f"{lock.resource_type}:{lock.resource}"
    assert info.blocking_session == holder.id
    assert lock.blocked_by == (holder.id,)
    assert info.current_sql == "INSERT INTO sales.orders(customer) VALUES ('second')"

    # the holder keeps working while the waiter waits; the waiter stays blocked
    holder.execute("INSERT INTO sales.orders(customer) VALUES ('first again')")
    assert not run.done and waiter.state is SessionState.WAITING
    assert engine.locks.lock_waits_total >= 1


def test_waiter_proceeds_the_moment_the_holder_commits(engine: Engine, background) -> None:
    holder, waiter, reader = engine.connect(), engine.connect(), engine.connect()
    holder.execute("BEGIN")
    holder.execute("INSERT INTO sales.orders(customer) VALUES ('first')")
    run = background(waiter.execute, "INSERT INTO sales.orders(customer) VALUES ('second')")
    wait_for_state(waiter, SessionState.WAITING)
    committed = time.monotonic()
    holder.execute("COMMIT")
    result = run.result()
    assert run.ended - committed < 1.0  # well below the 5 s lock timeout: the commit released it
    assert result.affected_rows == 1
    assert waiter.info().state is SessionState.IDLE
    assert count(reader, "SELECT count(*) FROM sales.orders WHERE customer IN ('first', 'second')") == 2
    assert engine.locks.locks() == []


def test_waiter_proceeds_when_the_holder_rolls_back(engine: Engine, background) -> None:
    holder, waiter, reader = engine.connect(), engine.connect(), engine.connect()
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = 999 WHERE id = 1")
    run = background(waiter.execute, "UPDATE sales.orders SET amount = amount + 1 WHERE id = 1")
    wait_for_state(waiter, SessionState.WAITING)
    rolled_back = time.monotonic()
    holder.execute("ROLLBACK")
    assert run.result().affected_rows == 1
    assert run.ended - rolled_back < 1.0
    # the waiter updated the original value, not the rolled-back 999
    assert count(reader, "SELECT amount FROM sales.orders WHERE id = 1") == 11
    assert holder.info().counters.rollbacks == 1


def test_lock_listing_shows_granted_and_waiting_locks(engine: Engine, background) -> None:
    before = time.time()
    holder, waiter = engine.connect(), engine.connect()
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = 1 WHERE id = 1")
    holder.execute("SELECT * FROM inventory.items")  # a read in a transaction holds a shared lock
    waiter.execute("BEGIN")
    run = background(waiter.execute, "DELETE FROM sales.orders WHERE id = 2")
    wait_for_state(waiter, SessionState.WAITING)
    after = time.time()
    holder_txn = holder.info().transaction_id
    waiter_txn = waiter.info().transaction_id
    assert holder_txn is not None and waiter_txn is not None and holder_txn != waiter_txn

    locks = engine.locks.locks()
    table = {(l.resource, l.session_id, l.granted): l for l in locks}
    assert set(table) == {
        ("sales", holder.id, True),
        ("sales.orders", holder.id, True),
        ("inventory.items", holder.id, True),
        ("sales", waiter.id, False),
    }
    for lock in locks:
        assert lock.transaction_id == (holder_txn if lock.session_id == holder.id else waiter_txn)
        assert before <= lock.since <= after
    assert table[("sales", holder.id, True)].mode is LockMode.EXCLUSIVE
    assert table[("sales", holder.id, True)].resource_type == "schema"
    assert table[("sales.orders", holder.id, True)].mode is LockMode.EXCLUSIVE
    assert table[("sales.orders", holder.id, True)].resource_type == "table"
    assert table[("inventory.items", holder.id, True)].mode is LockMode.SHARED
    waiting = table[("sales", waiter.id, False)]
    assert waiting.mode is LockMode.EXCLUSIVE and waiting.blocked_by == (holder.id,)
    assert all(l.blocked_by == () for l in locks if l.granted)
    assert len({l.lock_id for l in locks}) == len(locks)

    holder.execute("COMMIT")
    run.result()
    # now the waiter holds what it waited for, to the end of its transaction
    assert {(l.resource, l.session_id, l.granted) for l in engine.locks.locks()} == {
        ("sales", waiter.id, True), ("sales.orders", waiter.id, True)}
    waiter.execute("COMMIT")
    assert engine.locks.locks() == []


def test_blocking_tree_shows_a_chain(engine: Engine, background) -> None:
    """A <- B <- C: B waits for A on sales, C waits for B on inventory."""
    a, b, c = engine.connect(), engine.connect(), engine.connect()
    a.execute("BEGIN")
    a.execute("UPDATE sales.orders SET amount = 1 WHERE id = 1")
    b.execute("BEGIN")
    b.execute("UPDATE inventory.items SET qty = 1 WHERE id = 1")
    run_b = background(b.execute, "UPDATE sales.orders SET amount = 2 WHERE id = 2")
    wait_for_state(b, SessionState.WAITING)
    run_c = background(c.execute, "UPDATE inventory.items SET qty = 2 WHERE id = 2")
    wait_for_state(c, SessionState.WAITING)

    tree = engine.locks.blocking_tree()
    assert len(tree) == 1
    root = tree[0]
    assert root.session_id == a.id and root.resource is None and root.wait_started_at is None
    assert root.transaction_id == a.info().transaction_id
    assert [n.session_id for n in root.blocked] == [b.id]
    node_b = root.blocked[0]
    assert node_b.resource == "sales" and node_b.transaction_id == b.info().transaction_id
    assert node_b.wait_started_at is not None
    assert [n.session_id for n in node_b.blocked] == [c.id]
    node_c = node_b.blocked[0]
    assert node_c.resource == "inventory" and node_c.blocked == []
    assert c.info().blocking_session == b.id and b.info().blocking_session == a.id

    a.execute("COMMIT")
    run_b.result()
    b.execute("COMMIT")
    run_c.result()
    assert engine.locks.blocking_tree() == []


def test_shared_locks_are_compatible(engine: Engine) -> None:
    r1, r2 = engine.connect(), engine.connect()
    for r in (r1, r2):
        r.execute("BEGIN")
        assert count(r, "SELECT count(*) FROM sales.orders") == 3
    granted = [l for l in engine.locks.locks() if l.resource == "sales.orders"]
    assert {(l.session_id, l.mode, l.granted) for l in granted} == {
        (r1.id, LockMode.SHARED, True), (r2.id, LockMode.SHARED, True)}
    r1.execute("COMMIT")
    r2.execute("COMMIT")


def test_reader_in_a_transaction_blocks_a_writer_until_it_ends(engine: Engine, background) -> None:
    reader, writer = engine.connect(), engine.connect()
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM sales.orders")
    run = background(writer.execute, "UPDATE sales.orders SET amount = 0")
    wait_for_state(writer, SessionState.WAITING)
    assert writer.info().wait_event == "table:sales.orders"
    assert writer.info().blocking_session == reader.id
    # the reader's snapshot is stable while it holds the lock
    assert count(reader, "SELECT sum(amount) FROM sales.orders") == 60
    reader.execute("COMMIT")
    assert run.result().affected_rows == 3


def test_autocommit_read_does_not_wait_for_a_writer(engine: Engine) -> None:
    writer, reader = engine.connect(), engine.connect()
    writer.execute("BEGIN")
    writer.execute("INSERT INTO sales.orders(customer) VALUES ('uncommitted')")
    started = time.monotonic()
    assert count(reader, "SELECT count(*) FROM sales.orders") == 3  # WAL snapshot: no dirty read
    assert time.monotonic() - started < 1.0
    assert reader.info().counters.errors == 0
    writer.execute("COMMIT")
    assert count(reader, "SELECT count(*) FROM sales.orders") == 4


def test_writers_on_different_schemas_do_not_block(engine: Engine) -> None:
    a, b = engine.connect(), engine.connect()
    a.execute("BEGIN")
    b.execute("BEGIN")
    a.execute("UPDATE sales.orders SET amount = 1")
    b.execute("UPDATE inventory.items SET qty = 1")  # returns at once: another schema's file
    assert b.state is SessionState.IDLE_IN_TRANSACTION
    a.execute("COMMIT")
    b.execute("COMMIT")


def test_stale_snapshot_write_is_a_serialization_failure(engine: Engine) -> None:
    """A transaction that read a schema another transaction then changed cannot write it."""
    a, b = engine.connect(), engine.connect()
    a.execute("BEGIN")
    a.execute("SELECT * FROM inventory.items")      # a's snapshot of inventory
    # b changes the inventory schema file (a new table: a's shared lock on items does not stop it)
    b.execute("CREATE TABLE inventory.bins(id INTEGER PRIMARY KEY)")
    with pytest.raises(SerializationFailure) as caught:
        a.execute("UPDATE inventory.items SET qty = 0")
    assert caught.value.details["schema"] == "inventory"
    info = a.info()
    assert info.transaction_id is None and info.state is SessionState.IDLE  # rolled back
    assert engine.locks.locks() == []
    assert count(a, "SELECT sum(qty) FROM inventory.items") == 12
