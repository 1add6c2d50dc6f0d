"""Snapshots of the panes with the fake server's fixed data and a frozen clock (every pane at 80x24 and 160x48).

Each snapshot test is paired with the Pilot tests in test_keys.py, which check the same screens
by content: a crash at start would otherwise be saved as a blank snapshot that keeps passing.
"""

from __future__ import annotations

import pytest

from rdbtop.client import Unreachable
from rdbtop.panes.base import History

from .conftest import loaded, make_app, until
from .fakeserver import NOW, FakeServer

PANES = ["overview", "sessions", "queries", "locks", "ash", "alerts", "backups"]


def steady_history() -> History:
    """Five minutes of made-up but regular series, so the overview's plots are the same every run:
    a cache-hit dip from 99 % to 95 %, polls missed for half a minute, a poll without a CPU figure."""
    h = History()
    for i in range(150):
        if 100 <= i < 115:
            continue  # the server did not answer: a gap in every plot
        h.times.append(NOW - 2 * (149 - i))
        h.statements.append(200 + 50 * ((i // 10) % 3))
        h.active.append(float(i % 4))
        h.waiting.append(2.0 if 60 <= i < 120 else 0.0)
        h.cache_hit.append(95.0 + 0.1 * abs(i - 70) if 40 <= i < 100 else 99.0)
        h.cpu.append(None if i == 30 else 30.0 + (i % 20))
        h.points += 1
    return h


def showing(pane: str):  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        app = pilot.app
        await loaded(pilot)
        app.history = steady_history()
        await pilot.press(str(PANES.index(pane) + 1))
        await until(pilot, lambda: app.tabs.active == pane and app.read_for(pane))
        app.draw()
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
    return run_before


@pytest.mark.parametrize("pane", PANES)
def test_pane_at_80x24(pane: str, snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(FakeServer()), terminal_size=(80, 24), run_before=showing(pane))


@pytest.mark.parametrize("pane", PANES)
def test_pane_at_160x48(pane: str, snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(FakeServer()), terminal_size=(160, 48), run_before=showing(pane))


def test_kill_confirmation_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await showing("sessions")(pilot)
        pilot.app.query_one("#sessions-table").select_key("2")
        await pilot.press("k")
        await until(pilot, lambda: pilot.app.screen.__class__.__name__ == "ConfirmScreen")
        await pilot.pause()

    assert snap_compare(make_app(FakeServer()), terminal_size=(80, 24), run_before=run_before)


def test_disconnected_banner_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    server = FakeServer()

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await showing("sessions")(pilot)
        server.now += 75
        pilot.app.failed(Unreachable("cannot reach http://fake: [Errno 111] Connection refused"), 4.0)
        await pilot.pause()

    assert snap_compare(make_app(server), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_deadlock_cycle_beside_a_root_blocker(size: tuple[int, int], snap_compare) -> None:  # type: ignore[no-untyped-def]
    server = FakeServer()
    server.deadlock()
    assert snap_compare(make_app(server), terminal_size=size, run_before=showing("locks"))


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_selected_row_gone_after_a_terminate(size: tuple[int, int], snap_compare) -> None:  # type: ignore[no-untyped-def]
    server = FakeServer()

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await showing("sessions")(pilot)
        table = pilot.app.query_one("#sessions-table")
        table.select_key("3")
        server.sessions.remove(server.session(3))
        await pilot.press("r")
        await until(pilot, lambda: table.gone == "3")
        await pilot.press("k")  # says the row is gone
        await pilot.pause()

    assert snap_compare(make_app(server), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_notices_of_one_kind_replace_each_other(size: tuple[int, int], snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await showing("sessions")(pilot)
        await pilot.press(*"stststi+-")
        await pilot.pause()

    assert snap_compare(make_app(FakeServer()), terminal_size=size, run_before=run_before)


def test_help_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await loaded(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: pilot.app.screen.__class__.__name__ == "HelpScreen")
        await pilot.pause()

    assert snap_compare(make_app(FakeServer()), terminal_size=(80, 24), run_before=run_before)


def test_cancel_dialog_wraps_long_sql_at_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    server = FakeServer()
    server.session(2).update(current_query="UPDATE inventory.stock SET quantity = quantity - 1, updated_at = "
                                           "current_timestamp, updated_by = 'shop' WHERE id = ? AND quantity > 0")

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await showing("sessions")(pilot)
        pilot.app.query_one("#sessions-table").select_key("2")
        await pilot.press("k")
        await until(pilot, lambda: pilot.app.screen.__class__.__name__ == "ConfirmScreen")
        await pilot.pause()

    assert snap_compare(make_app(server), terminal_size=(80, 24), run_before=run_before)


SIZES = [(80, 24), (160, 48)]


@pytest.mark.parametrize("size", SIZES)
def test_acknowledge_note_has_the_focus_and_the_text(size: tuple[int, int], snap_compare) -> None:  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await showing("alerts")(pilot)
        pilot.app.query_one("#alerts-table").select_key("a1")
        await pilot.press("a")
        await until(pilot, lambda: pilot.app.screen.query("#note") and pilot.app.screen.query_one("#note").has_focus)
        await pilot.press(*"on it, killing batch job")
        await pilot.pause()

    assert snap_compare(make_app(FakeServer()), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_paused_status_line_keeps_the_datas_age(size: tuple[int, int], snap_compare) -> None:  # type: ignore[no-untyped-def]
    server = FakeServer()

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await showing("sessions")(pilot)
        await pilot.press("space")
        server.now += 75
        await pilot.press("r")
        await until(pilot, lambda: pilot.app.latest.taken_at == server.now)
        pilot.app._update_status()
        await pilot.pause()

    assert snap_compare(make_app(server), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_credentials_refused(size: tuple[int, int], snap_compare) -> None:  # type: ignore[no-untyped-def]
    server = FakeServer()
    server.refuse = True

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await until(pilot, lambda: pilot.app.refused is not None)
        await pilot.pause()

    assert snap_compare(make_app(server), terminal_size=size, run_before=run_before)
