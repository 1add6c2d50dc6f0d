"""The selection follows its row's key; when that row goes, nothing is selected until the cursor moves."""

from __future__ import annotations

from rdbtop.screens.confirm import ConfirmScreen
from rdbtop.screens.detail import DetailScreen

from .conftest import notes, on_pane, running, table, until


async def test_after_a_terminate_the_cursor_stays_and_selects_nothing(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await on_pane(pilot, "sessions", "2")
        t = table(app, "sessions")
        assert t.select_key("3")
        row = t.cursor_row
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: t.gone == "3")
        assert t.cursor_row == row and t.selected_key is None and not t.show_cursor
        for key in ("k", "K", "enter"):  # none of them takes the session that slid under the cursor
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, (ConfirmScreen, DetailScreen))
        assert "(3) is gone" in notes(app) and server.actions() == [("DELETE", "/api/v1/sessions/3", None)]
        await pilot.press("down")  # the first move shows the cursor where it stayed, on the next session
        assert t.show_cursor and t.cursor_row == row and t.selected_key == "6"


async def test_the_selection_follows_its_key_when_the_rows_re_sort(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await on_pane(pilot, "queries", "3")
        t = table(app, "queries")
        assert t.select_key("q601") and t.cursor_row == 2  # by elapsed: q201, q901, q601, q1101
        server.session(6).update(state_seconds=100.0)  # now the longest
        await pilot.press("r")
        await until(pilot, lambda: t.cursor_row == 0)
        assert t.selected_key == "q601"


async def test_enter_opens_the_row_it_was_pressed_on_even_if_that_one_ended_meanwhile(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await on_pane(pilot, "queries", "3")
        t = table(app, "queries")
        assert t.select_key("q601")
        t.focus()
        server.session(6).update(current_query_id=None, current_query=None, state="idle")  # it finishes
        snap = await app.poller.snapshot()
        t.action_select_cursor()  # Enter on q601: its message is on its way...
        app.deliver(snap)  # ...when a poll that no longer has it re-sorts the table
        await until(pilot, lambda: "(q601) is gone" in notes(app))
        assert not isinstance(app.screen, DetailScreen)  # never the statement that slid under the cursor
