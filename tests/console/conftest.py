"""Console test helpers: an app over the fake server with a frozen clock, and waiting on conditions."""

from __future__ import annotations

import io
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from textual.widgets import TabbedContent

from engine import Engine, EngineConfig
from engine.api import create_app
from rdbtop.app import RdbTop
from rdbtop.client import Credentials, RdbClient
from rdbtop.config import Settings
from rdbtop.widgets.table import KeyedTable

from .fakeserver import FakeServer, FakeSource

# how long a condition may take before the test calls it a hang: generous, as a loaded machine is slow
HANG_GUARD_SECONDS = 60.0

os.environ["TZ"] = "UTC"  # the status line and the backup pane print local times
time.tzset()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RDBTOP_CONFIG", str(tmp_path / "config.toml"))
    for var in ("NO_COLOR", "RDBTOP_URL", "RDBTOP_TOKEN", "RDBTOP_API_KEY", "TEXTUAL_THEME"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


def make_app(server: FakeServer, **settings: object) -> RdbTop:
    values: dict[str, object] = {"url": "http://fake", "interval": 60.0}  # one poll unless a test asks for more
    values.update(settings)
    return RdbTop(Settings(**values), FakeSource(server), clock=lambda: server.now)  # type: ignore[arg-type]


def table(app, pane: str, table_id: str | None = None) -> KeyedTable:  # type: ignore[no-untyped-def]
    return app.query_one(f"#{table_id or pane + '-table'}", KeyedTable)


def keys(t: KeyedTable) -> list[str]:
    return t.row_keys


def notes(app) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(str(n.message) for n in app._notifications)


async def on_pane(pilot, key: str, number: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press(number)
    # a pane is drawn once a poll has read for it
    await until(pilot, lambda: pilot.app.query_one(TabbedContent).active == key and pilot.app.read_for(key))
    await pilot.pause()


def plain(widget: object, width: int = 200) -> str:
    """What a widget renders, as plain text (a Rich table too)."""
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(widget.content)  # type: ignore[attr-defined]
    return console.export_text()


async def until(pilot, condition: Callable[[], object], timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Let the app run until `condition()` holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


async def loaded(pilot) -> None:  # type: ignore[no-untyped-def]
    await until(pilot, lambda: pilot.app.shown is not None)
    await pilot.pause()


@asynccontextmanager
async def running(server: FakeServer, size: tuple[int, int] = (120, 40), toasts: bool = False,
                  **settings: object) -> AsyncIterator[tuple[RdbTop, object]]:
    """The app over `server`, started and showing its first snapshot (and its toasts, if asked)."""
    app = make_app(server, **settings)
    async with app.run_test(size=size, notifications=toasts) as pilot:
        await loaded(pilot)
        yield app, pilot


class EngineSource:
    label = "test engine"

    def __init__(self, engine: Engine) -> None:
        key = engine.auth.create_api_key("operator")
        self.client = RdbClient("http://engine", Credentials(api_key=key),
                                transport=httpx.ASGITransport(app=create_app(engine)))

    async def open(self) -> RdbClient:
        return self.client

    async def close(self) -> None:
        await self.client.aclose()

    async def settled(self) -> None:
        pass

    def data_shown(self) -> None:
        pass

    def shutdown(self) -> None:
        pass  # the fixture owns the engine


def start_engine(**config: object) -> Engine:
    """An engine in this process with inventory.stock (two rows) and an empty sales schema."""
    engine = Engine(config=EngineConfig(**{"lock_timeout_ms": 60_000, **config})).start()  # type: ignore[arg-type]
    for schema in ("sales", "inventory"):
        engine.create_schema(schema)
    setup = engine.connect("setup", "tests")
    setup.execute("CREATE TABLE inventory.stock(id INTEGER PRIMARY KEY, qty INTEGER NOT NULL)")
    setup.execute("INSERT INTO inventory.stock(qty) VALUES (5), (6)")
    setup.close()
    return engine


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = start_engine()
    try:
        yield engine
    finally:
        engine.close()
