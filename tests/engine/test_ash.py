"""Active Session History, sampled by hand on a ManualClock (no services run in these tests)."""

from __future__ import annotations

import pytest

from engine import Engine, ManualClock, SessionState
from engine.fingerprint import sql_id
from enginetest import ENDLESS_SQL, wait_for_state, wait_until

BLOCKED_SQL = "UPDATE sales.orders SET amount = 1 WHERE id = 1"


@pytest.fixture
def busy(manual_engine: Engine, background):
    """One session of each kind: idle in transaction (and holding a lock), waiting for that lock,
    active on a CPU-bound statement, and idle. Stopped again at the end of the test."""
    holder = manual_engine.connect(user="hold", application_name="app-h")
    waiter = manual_engine.connect(user="wait", application_name="app-w")
    runner = manual_engine.connect(user="run", application_name="app-r")
    idle = manual_engine.connect(user="idle", application_name="app-i")
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = 0")
    blocked = background(waiter.execute, BLOCKED_SQL)
    wait_for_state(waiter, SessionState.WAITING)
    running = background(runner.execute, ENDLESS_SQL)
    wait_for_state(runner, SessionState.ACTIVE)
    yield dict(holder=holder, waiter=waiter, runner=runner, idle=idle)
    manual_engine.cancel(runner.id)
    running.exception()
    holder.execute("COMMIT")
    blocked.result()


def test_samples_name_wait_class_blocker_and_sql(manual_engine: Engine, clock: ManualClock, busy) -> None:
    holder, waiter, runner, idle = busy["holder"], busy["waiter"], busy["runner"], busy["idle"]
    clock.advance(3)
    assert manual_engine.sample_ash() == 3
    samples = {s.session_id: s for s in manual_engine.ash.window()}
    assert set(samples) == {holder.id, waiter.id, runner.id}  # the idle session is not sampled
    assert idle.id not in samples

    lock = samples[waiter.id]
    assert lock.wait_class == "Lock" and lock.state == "waiting"
    assert lock.blocking_session == holder.id
    assert lock.wait_event == waiter.info().wait_event and "sales" in lock.wait_event
    assert lock.sql_id == sql_id(BLOCKED_SQL) and lock.sql_text == BLOCKED_SQL
    assert lock.query_id == waiter.info().current_query_id
    assert (lock.username, lock.program) == ("wait", "app-w")
    assert lock.time_in_state == 3.0 and lock.sample_time == clock.time()

    iit = samples[holder.id]
    assert iit.wait_class == "Idle in transaction" and iit.state == "idle in transaction"
    assert iit.blocking_session is None and iit.sql_id is None

    cpu = samples[runner.id]
    assert cpu.wait_class in ("CPU", "IO") and cpu.state == "active"
    assert cpu.sql_id == sql_id(ENDLESS_SQL) and cpu.blocking_session is None
    assert manual_engine.ash.samples_total == 3 and manual_engine.ash.last_sample_at == clock.time()


def test_idle_sessions_are_not_sampled(manual_engine: Engine) -> None:
    for _ in range(3):
        manual_engine.connect().execute("SELECT 1")
    assert manual_engine.sample_ash() == 0
    assert manual_engine.ash.window() == []


def test_top_groups_by_wait_class_sql_id_and_session(manual_engine: Engine, clock: ManualClock, busy) -> None:
    holder, waiter, runner = busy["holder"], busy["waiter"], busy["runner"]
    for _ in range(4):
        manual_engine.sample_ash()
        clock.advance(1)
    ash = manual_engine.ash

    by_class = {b.key: b for b in ash.top("wait_class")}
    assert set(by_class) in ({"Lock", "Idle in transaction", "CPU"}, {"Lock", "Idle in transaction", "CPU", "IO"})
    assert by_class["Lock"].samples == by_class["Idle in transaction"].samples == 4
    assert sum(b.samples for b in by_class.values()) == 12
    assert by_class["Lock"].percent == pytest.approx(100 / 3)
    # one session continuously in a class for the whole window is one average active session
    assert by_class["Lock"].average_active_sessions == pytest.approx(1.0)

    by_sql = {b.key: b for b in ash.top("sql_id")}
    assert by_sql[sql_id(BLOCKED_SQL)].samples == 4
    assert by_sql[sql_id(BLOCKED_SQL)].example == BLOCKED_SQL
    assert by_sql[sql_id(ENDLESS_SQL)].samples == 4
    assert by_sql["(none)"].samples == 4  # the idle-in-transaction session runs nothing

    by_session = {b.key: b for b in ash.top("session")}
    assert set(by_session) == {str(holder.id), str(waiter.id), str(runner.id)}
    assert by_session[str(waiter.id)].example == "wait@app-w"
    assert all(b.samples == 4 for b in by_session.values())

    assert len(ash.top("session", limit=1)) == 1
    assert {b.key for b in ash.top("wait_class", wait_class="Lock")} == {"Lock"}
    assert {b.key for b in ash.top("session", session_id=waiter.id)} == {str(waiter.id)}
    with pytest.raises(ValueError):
        ash.top("colour")


def test_average_active_sessions_over_an_explicit_window(manual_engine: Engine, clock: ManualClock, busy) -> None:
    start = clock.time()
    for _ in range(5):            # samples at start .. start+4: 5 of the 10 seconds of the window
        manual_engine.sample_ash()
        clock.advance(1)
    (lock,) = manual_engine.ash.top("wait_class", start=start, end=start + 10, wait_class="Lock")
    assert lock.samples == 5
    assert lock.average_active_sessions == pytest.approx(0.5)


def test_window_filters_by_time(manual_engine: Engine, clock: ManualClock, busy) -> None:
    t0 = clock.time()
    for _ in range(5):
        manual_engine.sample_ash()
        clock.advance(10)
    ash = manual_engine.ash
    assert {s.sample_time for s in ash.window(t0 + 10, t0 + 30)} == {t0 + 10, t0 + 20, t0 + 30}
    assert len(ash.window(t0 + 10, t0 + 30, session_id=busy["waiter"].id)) == 3
    assert ash.window(t0 + 41) == []


def test_retention_drops_old_samples(make_engine, clock: ManualClock) -> None:
    engine = make_engine(clock=clock, start=False, query_timeout_secs=0.0, ash_retention_secs=10)
    s = engine.connect()
    s.execute("BEGIN")  # idle in transaction: sampled every time
    t0 = clock.time()
    engine.sample_ash()
    clock.advance(5)
    engine.sample_ash()
    assert [x.sample_time for x in engine.ash.window()] == [t0, t0 + 5]
    clock.advance(6)              # t0 is now 11 s old: past the 10 s retention
    engine.sample_ash()
    assert [x.sample_time for x in engine.ash.window()] == [t0 + 5, t0 + 11]
    clock.advance(30)
    engine.sample_ash()
    assert [x.sample_time for x in engine.ash.window()] == [t0 + 41]
    assert engine.ash.samples_total == 4
    s.execute("COMMIT")


def test_ring_is_bounded(make_engine, clock: ManualClock) -> None:
    engine = make_engine(clock=clock, start=False, tables=False, query_timeout_secs=0.0, ash_max_samples=1000)
    s = engine.connect()
    s.execute("BEGIN")
    for _ in range(1005):
        engine.sample_ash()
        clock.advance(0.001)
    samples = engine.ash.window()
    assert len(samples) == 1000
    assert samples[0].sample_id == 6 and samples[-1].sample_id == 1005
    s.execute("COMMIT")


def test_sampler_service_runs_on_its_own(make_engine, background) -> None:
    """With services started, the ASH thread samples a blocked session without help."""
    engine = make_engine(ash_interval_ms=20)
    holder, waiter = engine.connect(), engine.connect()
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = 0")
    run = background(waiter.execute, BLOCKED_SQL)
    wait_for_state(waiter, SessionState.WAITING)
    wait_until(lambda: engine.ash.window(session_id=waiter.id, wait_class="Lock"), message="a Lock sample")
    holder.execute("COMMIT")
    run.result()
