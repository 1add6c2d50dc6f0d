"""The blocking graph's root blocker explains itself: state, time in state, transaction age, last
statement and client, from the engine's own sessions (on a ManualClock, so the ages are exact)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine import Engine, EngineConfig, ManualClock
from engine.api import create_app
from engine.errors import EngineError

from .conftest import wait_until

GRAPH = "/api/v1/transactions/locks/graph"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def engine(tmp_path: Path, clock: ManualClock) -> Iterator[Engine]:
    eng = Engine(tmp_path / "data", EngineConfig(query_timeout_secs=0.0, lock_timeout_ms=60_000), clock)
    eng.create_schema("inventory")
    setup = eng.connect("setup", "tests")
    setup.execute("CREATE TABLE inventory.items(id INTEGER PRIMARY KEY, qty INTEGER NOT NULL)")
    setup.execute("INSERT INTO inventory.items(qty) VALUES (5), (6)")
    setup.close()
    yield eng
    eng.close()


def test_an_idle_in_transaction_root_blocker_says_so(engine: Engine, clock: ManualClock) -> None:
    update = "UPDATE inventory.items SET qty = qty + 1 WHERE id = 1"
    holder = engine.connect("batch", "nightly-batch", client_address="10.1.2.3")
    holder.execute("BEGIN")
    clock.advance(30)
    holder.execute(update)
    clock.advance(720)  # twelve minutes idle in transaction, the transaction 30 s older
    waiter = engine.connect("shop", "oltp")
    outcome: list[str] = []

    def wait() -> None:
        try:
            waiter.execute("UPDATE inventory.items SET qty = qty - 1 WHERE id = 2")
        except EngineError as exc:
            outcome.append(exc.code)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    key = engine.auth.create_api_key("monitor")
    with TestClient(create_app(engine)) as client:
        get = lambda: client.get(GRAPH, headers={"X-API-Key": key}).json()["blocking_tree"]  # noqa: E731
        [root] = wait_until(lambda: (tree := get()) and tree[0]["blocked"] and tree)
    assert (root["session_id"], root["state"], root["state_seconds"], root["transaction_seconds"]) == (
        holder.id, "idle in transaction", 720.0, 750.0)
    assert (root["last_sql"], root["sql"], root["client_address"], root["application_name"]) == (
        update, None, "10.1.2.3", "nightly-batch")
    [child] = root["blocked"]
    assert (child["session_id"], child["state"], child["last_sql"]) == (
        waiter.id, "waiting", "UPDATE inventory.items SET qty = qty - 1 WHERE id = 2")
    engine.terminate(holder.id)
    thread.join(10)
