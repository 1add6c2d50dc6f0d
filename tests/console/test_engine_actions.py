"""The action keys against a real engine in process: a constructed blocking chain, then g, k, K, b, m."""

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
from rdbtop.screens.detail import DetailScreen
from rdbtop.screens.maintenance import MaintenanceScreen

from .conftest import EngineSource, notes, on_pane, table, until


@pytest.fixture
def chain(engine: Engine) -> Iterator[tuple[Engine, dict[str, object]]]:
    """Session `holder` keeps inventory locked in an open transaction; `waiter` waits behind it."""
    holder = engine.connect("batch", "batch-forgotten")
    holder.execute("begin")
    holder.execute("UPDATE inventory.stock SET qty = qty + 1 WHERE id = 1")
    waiter = engine.connect("shop", "oltp")
    outcome: dict[str, object] = {"holder": holder.id, "waiter": waiter.id}

    def wait() -> None:
        try:
            waiter.execute("UPDATE inventory.stock SET qty = qty - 1 WHERE id = 2")
            outcome["result"] = "ran"
        except EngineError as exc:
            outcome["result"] = exc.code

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    yield engine, outcome
    with contextlib.suppress(EngineError):
        engine.terminate(holder.id)  # lets the waiter go if the test did not
    thread.join(5)


async def test_g_k_and_K_on_a_real_blocking_chain(chain) -> None:  # type: ignore[no-untyped-def]
    engine, outcome = chain
    holder, waiter = str(outcome["holder"]), str(outcome["waiter"])
    app = RdbTop(Settings(url="http://engine", interval=0.5), EngineSource(engine))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.shown is not None and app.shown.blocking_tree, timeout=10)
        await on_pane(pilot, "sessions", "2")
        assert table(app, "sessions").select_key(waiter)
        await pilot.press("g")
        await until(pilot, lambda: table(app, "sessions").selected_key == holder)
        table(app, "sessions").select_key(waiter)
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: "result" in outcome, timeout=10)
        assert outcome["result"] == "QUERY_CANCELED"
        await until(pilot, lambda: not app.shown.blocking_tree, timeout=10)
        table(app, "sessions").select_key(holder)
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: holder not in {str(s.session_id) for s in app.shown.sessions}, timeout=10)
        assert "terminated" in notes(app)


async def test_b_and_m_against_the_engine(engine: Engine) -> None:
    app = RdbTop(Settings(url="http://engine", interval=0.5), EngineSource(engine))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.shown is not None, timeout=10)
        if "backups" in app.shown.missing:
            pytest.skip("this engine does not serve backups yet")
        await on_pane(pilot, "backups", "7")
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: app.shown.backups, timeout=20)
        await until(pilot, lambda: any(b.good for b in app.shown.backups), timeout=30)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen))
        await pilot.press("down", "enter", *"inventory", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: "analyze on inventory started" in notes(app) or "Could not" in notes(app),
                    timeout=10)
        assert "analyze on inventory started" in notes(app), notes(app)


SPIN = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) SELECT count(*) FROM c"


async def test_a_cpu_heavy_session_tops_the_cpu_order_and_its_plan_is_shown(engine: Engine) -> None:
    spinner, idle = engine.connect("analyst", "report"), engine.connect("shop", "oltp")
    spinner.execute(SPIN, (10,))  # its first run is profiled: the fingerprint's plan is recorded
    outcome: list[str] = []

    def spin() -> None:
        try:
            spinner.execute(SPIN, (10**15,))
        except EngineError as exc:
            outcome.append(exc.code)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    app = RdbTop(Settings(url="http://engine", interval=0.5), EngineSource(engine))
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: app.shown is not None, timeout=10)
            await on_pane(pilot, "sessions", "2")
            t = table(app, "sessions")
            t.post_message(t.HeaderSelected(t, "cpu"))

            def on_top_using_cpu() -> bool:
                rows = t.row_keys
                return bool(rows) and rows[0] == str(spinner.id) and any(
                    s.session_id == spinner.id and (s.cpu_time_ms or 0) > 20 for s in app.shown.sessions)

            await until(pilot, on_top_using_cpu, timeout=15)
            assert str(idle.id) in t.row_keys[1:]
            await on_pane(pilot, "queries", "3")
            query = spinner.statement.query_id if spinner.statement else None
            await until(pilot, lambda: table(app, "queries").select_key(query), timeout=10)
            table(app, "queries").focus()
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), timeout=10)
            text = " ".join(str(w.render()) for w in app.screen.query("Static"))
            assert "RECURSIVE STEP" in text and "SCAN c" in text
    finally:
        engine.cancel(spinner.id, by="test")
        thread.join(10)
    assert outcome == ["QUERY_CANCELED"]
