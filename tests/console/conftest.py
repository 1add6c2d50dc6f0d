"""Console test helpers: an app over the fake server with a frozen clock, and waiting on conditions."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from rdbtop.app import RdbTop
from rdbtop.config import Settings

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
async def running(server: FakeServer, size: tuple[int, int] = (120, 40),
                  **settings: object) -> AsyncIterator[tuple[RdbTop, object]]:
    """The app over `server`, started and showing its first snapshot."""
    app = make_app(server, **settings)
    async with app.run_test(size=size) as pilot:
        await loaded(pilot)
        yield app, pilot
