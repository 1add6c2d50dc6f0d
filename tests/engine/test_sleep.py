"""SQL sleep(seconds), as PostgreSQL's pg_sleep: holds a statement open without CPU, shows a
Timeout wait, and ends at once on cancel, terminate or the statement timeout."""

from __future__ import annotations

import time

import pytest

from engine import Engine, ManualClock, SessionState
from engine.errors import QueryCanceled, QueryTimeout, SessionTerminated, SqlError
from enginetest import wait_until

LONG = "SELECT sleep(600)"


def _sleeping(session) -> bool:  # type: ignore[no-untyped-def]
    return session.wait_event == "Sleep"


def test_sleep_returns_null_after_the_time(engine: Engine) -> None:
    s = engine.connect()
    assert s.execute("SELECT sleep(0.01), 7").rows == [(None, 7)]
    assert s.info().state is SessionState.IDLE and s.info().wait_class is None


@pytest.mark.parametrize("arg", ["NULL", "0", "-5"])
def test_sleep_of_nothing_returns_at_once(engine: Engine, arg: str) -> None:
    s = engine.connect()
    assert s.execute(f"SELECT sleep({arg})").rows == [(None,)]


@pytest.mark.parametrize("arg", ["'soon'", "x'00'"])
def test_sleep_of_a_non_number_is_an_sql_error(engine: Engine, arg: str) -> None:
    s = engine.connect()
    with pytest.raises(SqlError, match="number of seconds"):
        s.execute(f"SELECT sleep({arg})")
    assert s.execute("SELECT 1").rows == [(1,)]


def test_a_sleeping_session_shows_a_timeout_wait_and_uses_no_cpu(engine: Engine, background) -> None:
    s = engine.connect()

    def timed() -> float:
        start = time.thread_time()
        try:
            s.execute(LONG)
        except QueryCanceled:
            pass
        return time.thread_time() - start

    run = background(timed)
    wait_until(lambda: _sleeping(s))
    info = s.info()
    assert info.state is SessionState.ACTIVE
    assert (info.wait_class, info.wait_event) == ("Timeout", "Sleep")
    assert info.current_sql == LONG
    # what the sleeping thread itself burnt while the test looked: a CPU-bound statement would burn it all
    wait_until(lambda: time.monotonic() - run.started > 0.3, message="the sleep to go on for a while")
    engine.cancel(s.id, by="ops")
    assert run.result() < 0.2
    assert s.info().wait_class is None and s.info().state is SessionState.IDLE


def test_cancel_ends_a_sleep(engine: Engine, background) -> None:
    s = engine.connect()
    run = background(s.execute, LONG)
    wait_until(lambda: _sleeping(s))
    engine.cancel(s.id, by="ops")
    error = run.exception()
    assert isinstance(error, QueryCanceled) and error.details["canceled_by"] == "ops"
    assert run.ended - run.started < 60  # not the ten minutes asked for
    assert s.execute("SELECT 1").rows == [(1,)]


def test_terminate_ends_a_sleep_and_closes_the_session(engine: Engine, background) -> None:
    s = engine.connect()
    s.execute("BEGIN")
    s.execute("INSERT INTO sales.orders(customer) VALUES ('gone')")
    run = background(s.execute, LONG)
    wait_until(lambda: _sleeping(s))
    engine.terminate(s.id, by="ops")
    assert isinstance(run.exception(), SessionTerminated)
    wait_until(lambda: s.closed)
    other = engine.connect()
    assert other.execute("SELECT count(*) FROM sales.orders WHERE customer = 'gone'").rows == [(0,)]


def test_the_statement_timeout_ends_a_sleep(make_engine, background) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(query_timeout_secs=0.2)
    s = engine.connect()
    with pytest.raises(QueryTimeout):
        s.execute(LONG)
    with pytest.raises(QueryTimeout):  # a shorter per-call timeout too
        make_engine(query_timeout_secs=30.0).connect().execute(LONG, timeout_secs=0.1)
    assert s.info().state is SessionState.IDLE


def test_ash_samples_a_sleep_as_a_timeout_wait(manual_engine: Engine, clock: ManualClock, background) -> None:
    s = manual_engine.connect()
    run = background(s.execute, LONG)
    wait_until(lambda: _sleeping(s))
    clock.advance(1)
    manual_engine.sample_ash()
    [sample] = [x for x in manual_engine.ash.window() if x.session_id == s.id]
    assert (sample.wait_class, sample.wait_event) == ("Timeout", "Sleep")
    manual_engine.cancel(s.id)
    assert isinstance(run.exception(), QueryCanceled)
