"""What the peers show, on the fake server and on a real engine: the root blocker's row and the
count a terminate frees, readable charts, alerts with their words and silences, maintenance jobs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from engine import Engine
from engine.errors import EngineError
from rdbtop.app import RdbTop
from rdbtop.config import Settings
from rdbtop.screens.confirm import ConfirmScreen

from .conftest import EngineSource, on_pane, running, table, until
from .fakeserver import FakeServer


def cells(app: RdbTop, table_id: str, key: str) -> dict[str, str]:
    t = table(app, "", table_id)
    return {spec.key: str(t.get_cell(key, spec.key)) for spec, _ in t._shown}


def facts(screen: ConfirmScreen) -> dict[str, str]:
    return {label: "" if value is None else str(value) for label, value in screen.facts}


# -- the root blocker ----------------------------------------------------------------------------

async def test_the_root_blocker_row_says_what_it_is_doing(server: FakeServer) -> None:
    async with running(server, size=(160, 48)) as (app, pilot):
        await on_pane(pilot, "locks", "4")
        root = cells(app, "locks-tree", "/3")
        assert root["resource"] == "idle in transaction" and root["waiting"] == "1m35s"
        assert (root["txn"], root["client"]) == ("2m00s", "10.0.0.3")
        assert root["sql"] == "last: UPDATE inventory.stock SET quantity = quantity + 10 WHERE id = ?"
        waiter = cells(app, "locks-tree", "/3/2")
        assert (waiter["resource"], waiter["waiting"]) == ("inventory", "42s")


async def test_the_root_blocker_row_at_80_columns_keeps_state_and_time(server: FakeServer) -> None:
    async with running(server, size=(80, 24)) as (app, pilot):
        await on_pane(pilot, "locks", "4")
        root = cells(app, "locks-tree", "/3")
        assert (root["resource"], root["waiting"]) == ("idle in transaction", "1m35s")
        assert "client" not in root  # dropped first at this width


async def test_terminate_says_how_many_sessions_it_frees(server: FakeServer) -> None:
    async with running(server) as (app, pilot):
        await on_pane(pilot, "locks", "4")
        assert table(app, "", "locks-tree").select_key("/3")
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert facts(app.screen)["frees"] == "2 waiting sessions (2, 9)"
        await pilot.press("escape")
        # a waiter that nobody waits for frees nobody, and so it says
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert table(app, "", "locks-tree").select_key("/3/2/9")
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert facts(app.screen)["frees"] == "no waiting session"


@pytest.fixture
def idle_blocker(engine: Engine) -> Iterator[tuple[Engine, int, int]]:
    """Session `batch` ran an UPDATE in a transaction and went idle; `shop` waits behind it."""
    holder = engine.connect("batch", "batch-forgotten", client_address="10.9.8.7")
    holder.execute("begin")
    holder.execute("UPDATE inventory.stock SET qty = qty + 1 WHERE id = 1")
    waiter = engine.connect("shop", "oltp")

    def wait() -> None:
        with contextlib.suppress(EngineError):
            waiter.execute("UPDATE inventory.stock SET qty = qty - 1 WHERE id = 2")

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    yield engine, holder.id, waiter.id
    with contextlib.suppress(EngineError):
        engine.terminate(holder.id)
    thread.join(5)


async def test_an_idle_in_transaction_blocker_on_a_real_engine(idle_blocker) -> None:  # type: ignore[no-untyped-def]
    engine, holder, waiter = idle_blocker
    app = RdbTop(Settings(url="http://engine", interval=0.5), EngineSource(engine))
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.shown is not None, timeout=10)
        await on_pane(pilot, "locks", "4")
        await until(pilot, lambda: app.shown.blocking_tree and app.shown.blocking_tree[0].blocked, timeout=10)
        await pilot.pause()
        root = cells(app, "locks-tree", f"/{holder}")
        assert root["resource"] == "idle in transaction" and root["client"] == "10.9.8.7"
        assert root["sql"] == "last: UPDATE inventory.stock SET qty = qty + 1 WHERE id = 1"
        assert root["txn"] not in ("", "–") and root["waiting"] not in ("", "–")
        assert table(app, "", "locks-tree").select_key(f"/{holder}")
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=10)
        assert facts(app.screen)["frees"] == f"1 waiting session ({waiter})"
        await pilot.press("y")
        await until(pilot, lambda: not app.shown.blocking_tree, timeout=10)
