"""Fixtures for API tests: an engine with the demo schemas, the app in-process, and callers per role."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi.testclient import TestClient

from engine import Engine, EngineConfig
from engine.api import create_app

ADMIN_PASSWORD = "correct horse battery staple"
ROLES = ("monitor", "operator", "admin")


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = Engine(config=EngineConfig(deadlock_check_interval_ms=100, lock_timeout_ms=5000)).start()
    eng.auth.ensure_admin(ADMIN_PASSWORD)
    eng.create_schema("sales")
    eng.create_schema("inventory")
    setup = eng.connect("setup", "tests")
    setup.execute("CREATE TABLE sales.orders(id INTEGER PRIMARY KEY, amount REAL NOT NULL)")
    setup.execute("CREATE TABLE inventory.items(id INTEGER PRIMARY KEY, qty INTEGER NOT NULL CHECK (qty >= 0))")
    setup.execute("INSERT INTO sales.orders(amount) VALUES (10), (20), (30)")
    setup.execute("INSERT INTO inventory.items(qty) VALUES (5), (6), (7)")
    setup.close()
    yield eng
    eng.close()


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def headers(engine: Engine) -> dict[str, dict[str, str]]:
    """Credentials per role: API keys for monitor and operator, a login token for admin."""
    out = {role: {"X-API-Key": engine.auth.create_api_key(role)} for role in ("monitor", "operator")}
    issued = engine.auth.login("admin", ADMIN_PASSWORD, "tests")
    out["admin"] = {"Authorization": f"Bearer {issued.token}"}
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """The app on a real loopback port, in a thread, so that requests can block concurrently."""

    def __init__(self, engine: Engine) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(engine), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live(engine: Engine) -> Iterator[LiveServer]:
    with LiveServer(engine) as server:
        yield server


def monitor_get(client: TestClient, headers: dict, path: str, **params: object) -> dict:
    """A GET as the monitor role that must answer 200: its JSON body."""
    r = client.get(path, params=params, headers=headers["monitor"])
    assert r.status_code == 200, r.text
    return r.json()


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01):  # type: ignore[no-untyped-def]
    """Poll until predicate() is truthy; return its value or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
