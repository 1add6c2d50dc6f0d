"""A deadlock cycle not yet broken is one cycle, and every waiting session is counted once.

The engine shows the members of a cycle as roots each holding the others while no other root
exists, and leaves the cycle out of its tree while one does; both are caused here for real and
read through the console's own client, and the fake server serves the second shape for snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import time
from collections.abc import Iterator

import pytest
from rich.console import Console

from engine import Engine
from engine.errors import EngineError
from rdbtop.app import RdbTop
from rdbtop.config import Settings
from rdbtop.once import render
from rdbtop.poller import Poller

from .conftest import EngineSource, running, start_engine, until


def tree_labels(app) -> list[str]:  # type: ignore[no-untyped-def]
    t = app.query_one("#locks-tree")
    return [t.get_row(key)[0].plain for key in t.row_keys]


def caption(app) -> str:  # type: ignore[no-untyped-def]
    return str(app.pane.query_one(".caption").render())


@pytest.fixture
def deadlocked() -> Iterator[tuple[Engine, list[int]]]:
    """Sessions a and b wait for each other (no deadlock check for a minute); c waits behind a."""
    engine = start_engine(deadlock_check_interval_ms=60_000)
    setup = engine.connect("setup", "tests")
    setup.execute("CREATE TABLE sales.orders(id INTEGER PRIMARY KEY, n INTEGER)")
    setup.close()
    a, b, c = engine.connect("shop", "oltp"), engine.connect("billing", "invoices"), engine.connect("report", "r")
    a.execute("begin")
    a.execute("INSERT INTO sales.orders(n) VALUES (1)")
    b.execute("begin")
    b.execute("UPDATE inventory.stock SET qty = qty + 1")
    threads = []

    def wait(session, sql: str) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(EngineError):
            session.execute(sql)

    for session, sql in ((a, "UPDATE inventory.stock SET qty = qty - 1"), (b, "UPDATE sales.orders SET n = 2"),
                         (c, "UPDATE sales.orders SET n = 3")):
        threads.append(threading.Thread(target=wait, args=(session, sql), daemon=True))
        threads[-1].start()
        deadline = time.monotonic() + 10
        while session.id not in engine.locks.first_blockers() and time.monotonic() < deadline:
            time.sleep(0.01)
    try:
        yield engine, [a.id, b.id, c.id]
    finally:
        for session in (a, b):
            with contextlib.suppress(EngineError):
                engine.terminate(session.id)
        for thread in threads:
            thread.join(5)
        engine.close()


async def test_a_real_deadlock_is_one_cycle_on_the_locks_pane_the_overview_and_once(deadlocked) -> None:  # type: ignore[no-untyped-def]
    engine, (a, b, c) = deadlocked
    source = EngineSource(engine)
    app = RdbTop(Settings(url="http://engine", interval=0.5), source)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.shown is not None and app.shown.blocking_tree, timeout=10)
        overview = str(app.pane.query_one("#overview-blockers").render())
        assert f"deadlock cycle {min(a, b)} ⇄ {max(a, b)}: victim chosen within 60 s" in overview
        assert "1 deadlock cycle, 3 waiting" in overview and "root blocker" not in overview
        await pilot.press("4")
        await until(pilot, lambda: app.tabs.active == "locks" and app.read_for("locks"))
        await pilot.pause()
        assert caption(app).startswith("1 deadlock cycle, 3 waiting")
        labels = tree_labels(app)
        assert labels[0] == f"⟳ {min(a, b)} ⇄ {max(a, b)} (3)"
        sessions = [int(label.split()[-1]) for label in labels[1:]]
        assert sorted(sessions) == sorted([a, b, c])  # each once
        out = io.StringIO()
        render(await Poller(source.client).snapshot(), Console(file=out, width=160))
        assert "Blocking tree: 1 deadlock cycle, 3 waiting" in out.getvalue()
        assert f"deadlock cycle {min(a, b)} ⇄ {max(a, b)}" in out.getvalue()


async def test_a_cycle_beside_a_root_blocker_is_shown_and_counted_once(server) -> None:  # type: ignore[no-untyped-def]
    server.deadlock()
    async with running(server) as (app, pilot):
        await pilot.press("4")
        await until(pilot, lambda: app.tabs.active == "locks" and app.read_for("locks"))
        await pilot.pause()
        assert tree_labels(app) == ["■ 3 (2)", "└ 2", "  └ 9", "⟳ 4 ⇄ 5 (3)", "⟳ 4", "└ 10", "⟳ 5"]
        assert caption(app).startswith("1 root blocker, 1 deadlock cycle, 5 waiting · ")
        t = app.query_one("#locks-tree")
        t.select_key("cycle 4 ⇄ 5")
        assert app.pane.target(app.shown) is None  # the cycle's own row is no session to act on
        t.select_key("/4/10")
        await pilot.press("g")
        await until(pilot, lambda: "deadlock cycle 4 ⇄ 5, which has no root blocker" in
                    "\n".join(str(n.message) for n in app._notifications))
        await pilot.press("1")
        await until(pilot, lambda: app.tabs.active == "overview" and app.read_for("overview"))
        await pilot.pause()
        blockers = str(app.pane.query_one("#overview-blockers").render())
        assert "Blockers: 1 root blocker, 1 deadlock cycle, 5 waiting" in blockers
        assert "deadlock cycle 4 ⇄ 5: victim chosen within 1 s" in blockers
        assert "session 3 (batch) blocks 2 sessions" in blockers
