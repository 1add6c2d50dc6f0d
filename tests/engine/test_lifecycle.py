"""Engine life cycle: open, start, close; data directories; service threads; the injectable clock."""

from __future__ import annotations

import threading

import pytest

from engine import Engine, EngineConfig, ManualClock, SessionState
from engine.errors import Conflict, InvalidInput, SessionTerminated, TooManyConnections
from enginetest import ENDLESS_SQL, TEST_CONFIG, wait_for_state, wait_until


def engine_threads() -> list[threading.Thread]:
    # threads, not names: an engine another test left open has threads of the same names
    return sorted((t for t in threading.enumerate() if t.name.startswith("engine-")), key=lambda t: t.ident or 0)


def test_start_runs_the_services_and_close_stops_them_all() -> None:
    before = engine_threads()
    engine = Engine(config=EngineConfig(**TEST_CONFIG)).start()
    try:
        assert engine.running
        names = {s.name for s in engine.services}
        assert {"ash", "deadlock", "stats"} <= names  # later issues add services of their own
        assert all(s.alive for s in engine.services)
        assert {t.name for t in set(engine_threads()) - set(before)} >= {f"engine-{n}" for n in names}
        started = len(engine_threads())
        assert engine.start() is engine and len(engine_threads()) == started  # start twice: no-op
    finally:
        engine.close()
    assert not engine.running and engine.closed
    assert not any(s.alive for s in engine.services)
    assert engine_threads() == before


def test_services_tick() -> None:
    engine = Engine(config=EngineConfig(**{**TEST_CONFIG, "ash_interval_ms": 20,
                                           "deadlock_check_interval_ms": 20})).start()
    try:
        ash, deadlock = (next(s for s in engine.services if s.name == n) for n in ("ash", "deadlock"))
        wait_until(lambda: ash.ticks >= 3 and deadlock.ticks >= 3, message="services to tick")
        assert ash.last_error is None and deadlock.last_error is None
    finally:
        engine.close()


def test_temporary_data_dir_is_removed_on_close() -> None:
    engine = Engine(config=EngineConfig(**TEST_CONFIG)).start()
    data_dir = engine.storage.data_dir
    engine.create_schema("sales")
    engine.connect().execute("CREATE TABLE sales.t(a)")
    assert (data_dir / "main.db").exists() and (data_dir / "schemas" / "sales.db").exists()
    engine.close()
    assert not data_dir.exists()
    engine.close()  # twice: nothing more happens


def test_given_data_dir_is_kept_and_reused(tmp_path) -> None:
    data_dir = tmp_path / "data"
    first = Engine(data_dir, EngineConfig(**TEST_CONFIG)).start()
    first.create_schema("sales")
    first.create_schema("inventory")
    s = first.connect()
    s.execute("CREATE TABLE sales.orders(id INTEGER PRIMARY KEY, customer TEXT)")
    s.execute("INSERT INTO sales.orders(customer) VALUES ('kept')")
    s.execute("BEGIN")
    s.execute("INSERT INTO sales.orders(customer) VALUES ('never committed')")
    first.close()
    assert (data_dir / "main.db").exists()

    second = Engine(data_dir, EngineConfig(**TEST_CONFIG)).start()
    try:
        assert set(second.storage.schemas) == {"sales", "inventory"}
        s = second.connect()
        assert s.execute("SELECT customer FROM sales.orders").rows == [("kept",)]
        with pytest.raises(Conflict):
            second.create_schema("sales")  # already there
    finally:
        second.close()
    assert data_dir.exists()


def test_close_stops_running_statements_and_closes_sessions(background) -> None:
    """A statement waiting for a lock is stopped by shutdown; it does not get the lock and commit
    when shutdown rolls back the idle session that held it."""
    engine = Engine(config=EngineConfig(**TEST_CONFIG)).start()
    engine.create_schema("sales")
    setup = engine.connect()
    setup.execute("CREATE TABLE sales.orders(id INTEGER PRIMARY KEY, v)")
    busy, holder, waiter = engine.connect(), engine.connect(), engine.connect()
    running = background(busy.execute, ENDLESS_SQL)
    wait_for_state(busy, SessionState.ACTIVE)
    holder.execute("BEGIN")
    holder.execute("INSERT INTO sales.orders(v) VALUES (1)")
    blocked = background(waiter.execute, "INSERT INTO sales.orders(v) VALUES (2)")
    wait_for_state(waiter, SessionState.WAITING)

    engine.close()

    assert isinstance(running.exception(), SessionTerminated)
    assert isinstance(blocked.exception(), SessionTerminated)
    assert all(s.closed for s in (setup, busy, holder, waiter))
    assert engine.sessions() == []
    assert not any(s.alive for s in engine.services)
    with pytest.raises(SessionTerminated):
        holder.execute("COMMIT")
    with pytest.raises(TooManyConnections, match="shut down"):
        engine.connect()


def test_engine_as_context_manager() -> None:
    with Engine(config=EngineConfig(**TEST_CONFIG)) as engine:
        assert engine.running
        assert engine.connect().execute("SELECT 1").rows == [(1,)]
    assert engine.closed and not any(s.alive for s in engine.services)


def test_bad_config_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        Engine(config=EngineConfig(max_connections=0))
    assert caught.value.details["field"] == "max_connections"
    engine = Engine(config=EngineConfig(**TEST_CONFIG))
    try:
        with pytest.raises(InvalidInput):
            engine.reconfigure(lock_timeout_ms=-1)
        with pytest.raises(InvalidInput):
            engine.reconfigure(no_such_setting=1)
        assert engine.config.lock_timeout_ms == TEST_CONFIG["lock_timeout_ms"]  # nothing changed
    finally:
        engine.close()


def test_manual_clock_drives_the_engine(make_engine, clock: ManualClock, background) -> None:
    engine = make_engine(clock=clock, start=False, query_timeout_secs=0.0)
    assert not engine.running and engine.services == []
    t0 = clock.time()
    assert engine.started_at == t0 and engine.uptime_seconds == 0
    s = engine.connect()
    assert s.info().connected_at == t0

    clock.advance(42)
    assert engine.uptime_seconds == 42
    result = s.execute("SELECT count(*) FROM sales.orders")
    stmt = engine.statement(result.query_id)
    assert stmt.started_at == t0 + 42
    assert result.execution_time_ms == 0.0  # the clock did not move while it ran

    # a duration is exactly what the clock moved while the statement ran
    holder, waiter = engine.connect(), engine.connect()
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = 0")
    run = background(waiter.execute, "UPDATE sales.orders SET amount = 1")
    wait_for_state(waiter, SessionState.WAITING)
    clock.advance(1.25)
    holder.execute("COMMIT")
    assert run.result().execution_time_ms == 1250.0

    # and ASH ages samples by it
    s.execute("BEGIN")
    clock.advance(9)
    engine.sample_ash()
    (sample,) = engine.ash.window(session_id=s.id)
    assert sample.sample_time == t0 + 52.25 and sample.time_in_state == 9.0
    s.execute("ROLLBACK")


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(start=100.0)
    assert (clock.time(), clock.monotonic()) == (100.0, 0.0)
    clock.advance(2.5)
    assert (clock.time(), clock.monotonic()) == (102.5, 2.5)
