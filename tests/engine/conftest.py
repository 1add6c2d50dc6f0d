"""Shared fixtures for the engine tests.

Every engine a test makes is closed when the test ends, and every background thread is joined
after that, so a failing test cannot leave a blocked statement or a service thread behind.
Nothing here sleeps a fixed time to wait for a state: `enginetest.wait_until` polls a predicate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, EngineConfig, ManualClock
from enginetest import TEST_CONFIG, Background


@pytest.fixture
def background() -> Iterator[Callable[..., Background]]:
    """Start a callable in a thread; every thread started is joined when the test ends."""
    started: list[Background] = []

    def start(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Background:
        b = Background(fn, *args, **kwargs)
        started.append(b)
        return b

    yield start
    stuck = []
    for b in started:
        try:
            b.join(10.0)
        except AssertionError as exc:
            stuck.append(str(exc))
    assert not stuck, stuck


def create_tables(engine: Engine) -> None:
    """Schemas `sales` and `inventory`, each with a small seeded table."""
    engine.create_schema("sales")
    engine.create_schema("inventory")
    s = engine.connect(user="setup")
    try:
        s.execute("CREATE TABLE sales.orders(id INTEGER PRIMARY KEY, customer TEXT NOT NULL, amount REAL)")
        s.execute("CREATE TABLE inventory.items(id INTEGER PRIMARY KEY, sku TEXT UNIQUE NOT NULL, qty INTEGER)")
        s.execute("INSERT INTO sales.orders(customer, amount) VALUES ('alice', 10), ('bob', 20), ('carol', 30)")
        s.execute("INSERT INTO inventory.items(sku, qty) VALUES ('apple', 5), ('pear', 7)")
    finally:
        s.close()


@pytest.fixture
def make_engine(background: Callable[..., Background]) -> Iterator[Callable[..., Engine]]:
    """Build engines: make_engine(clock=..., start=..., tables=..., data_dir=..., **settings).

    Depends on `background` so that engines are closed (stopping any statement a thread still
    runs) before the threads are joined.
    """
    engines: list[Engine] = []

    def make(*, clock: ManualClock | None = None, start: bool = True, tables: bool = True,
             data_dir: Path | None = None, **settings: Any) -> Engine:
        engine = Engine(data_dir=data_dir, config=EngineConfig(**{**TEST_CONFIG, **settings}), clock=clock)
        engines.append(engine)
        if start:
            engine.start()
        if tables:
            create_tables(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def engine(make_engine: Callable[..., Engine]) -> Engine:
    """A started engine on a temporary data directory, with schemas `sales` and `inventory`."""
    return make_engine()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def manual_engine(make_engine: Callable[..., Engine], clock: ManualClock) -> Engine:
    """An engine on a ManualClock whose services are NOT started: tests call sample_ash() themselves.

    The statement timeout is off, because stepping the clock would otherwise time out statements.
    """
    return make_engine(clock=clock, start=False, query_timeout_secs=0.0)
