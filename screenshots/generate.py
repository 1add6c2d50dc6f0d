"""Regenerate the README's screenshots from the embedded engine and its seeded demo workload.

    python screenshots/generate.py

The demo runs as `rdbtop` runs it (seed 42, eight sessions, a temporary data directory); each
screenshot is taken once the screen shows what it is for (a blocking chain, two minutes of ASH
samples in its five-minute window), at the size its name says. The workload's timing is real, so two runs differ in
figures and clock times, not in what the screens show.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's rdbtop, not an installed one

from rdbtop.app import RdbTop  # noqa: E402
from rdbtop.config import Settings  # noqa: E402
from rdbtop.screens.confirm import ConfirmScreen  # noqa: E402
from rdbtop.sources import EmbeddedSource  # noqa: E402

ASH_HISTORY_SECONDS = 120  # of samples before the ASH screenshot (window 5 minutes), so its chart has a shape
TIMEOUT = 120.0


async def until(pilot, condition: Callable[[], object], timeout: float = TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the demo did not get there in time")
        await pilot.pause(0.1)


async def show(pilot, number: str, pane: str) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    await pilot.press(number)
    await until(pilot, lambda: app.tabs.active == pane and app.read_for(pane) and app.shown.taken_at > time.time() - 2)
    await pilot.pause(0.3)


async def main() -> None:
    os.environ.setdefault("TZ", "UTC")
    time.tzset()
    source = EmbeddedSource(None, demo=True, seed=42, sessions=8, read_only=False)
    app = RdbTop(Settings(interval=1.0, theme="rdb-dark"), source)
    started = time.monotonic()
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        await until(pilot, lambda: app.shown is not None and app.role_asked and app.shown.blocking_tree)
        await until(pilot, lambda: time.monotonic() - started > ASH_HISTORY_SECONDS / 2)
        await show(pilot, "1", "overview")
        app.save_screenshot("overview.svg", str(HERE))
        await show(pilot, "4", "locks")
        await until(pilot, lambda: app.shown.blocking_tree)
        app.save_screenshot("locks.svg", str(HERE))
        await pilot.resize_terminal(80, 24)
        await show(pilot, "2", "sessions")
        app.save_screenshot("sessions-80x24.svg", str(HERE))
        waiting = next(s for s in app.shown.sessions if s.state == "waiting" and s.query_id)
        app.query_one("#sessions-table").select_key(str(waiting.session_id))
        await pilot.press("k")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.3)
        app.save_screenshot("cancel-confirmation.svg", str(HERE))
        await pilot.press("escape")
        await until(pilot, lambda: time.monotonic() - started > ASH_HISTORY_SECONDS)
        await show(pilot, "5", "ash")
        await pilot.press("w", "w")  # 15 -> 60 -> 5 minutes
        await until(pilot, lambda: app.ash_window == 300 and "last 5 min" in str(app.pane.query_one(".caption").render())
                    and app.read_for("ash"))
        app.clear_notifications()
        await pilot.pause(0.3)
        app.save_screenshot("ash-80x24.svg", str(HERE))
    source.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
