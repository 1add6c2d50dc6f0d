"""Dialogs own the keyboard: typed text lands in their text field, never in the console's keys.

Keys are posted in one burst, as a fast typist or a terminal's paste without bracketing sends
them: the first ones arrive before the dialog has even been drawn.
"""

from __future__ import annotations

import pytest
from textual import events
from textual.keys import _character_to_key
from textual.widgets import Input

from rdbtop.screens.confirm import ConfirmScreen
from rdbtop.screens.filter import FilterScreen
from rdbtop.screens.maintenance import MaintenanceScreen
from rdbtop.screens.silence import SilenceScreen

from .conftest import running, until

PRINTABLE = "".join(chr(c) for c in range(32, 127))


def burst(app, text: str) -> None:  # type: ignore[no-untyped-def]
    for ch in text:
        app.post_message(events.Key(_character_to_key(ch), ch))


def console_state(app, server) -> tuple:  # type: ignore[no-untyped-def]
    return (app.theme, app.hide_idle, app.paused, app.interval, dict(app.sorts), app.tabs.active, app.ash_window,
            app.filter, list(server.actions()))


# (pane number, row to select or None, the key that opens the dialog, the dialog, its text field, whether
# keys typed before the dialog is drawn reach its field: the silence dialog drops them, which is safe)
DIALOGS = {
    "acknowledge note": ("6", ("alerts-table", "a1"), "a", ConfirmScreen, "#note", True),
    "filter": ("2", None, "/", FilterScreen, "#filter", True),
    "maintenance target": ("1", None, "m", MaintenanceScreen, "#target", True),
    "silence duration": ("6", ("alerts-table", "a1"), "z", SilenceScreen, "#duration", False),
}


@pytest.mark.parametrize("dialog", DIALOGS)
async def test_every_printable_character_typed_into_a_dialog_changes_nothing_but_it(server, dialog) -> None:  # type: ignore[no-untyped-def]
    number, row, key, kind, field, early = DIALOGS[dialog]
    async with running(server) as (app, pilot):
        await pilot.press(number)
        await until(pilot, lambda: app.read_for(app.tabs.active) and app.tabs.active == app.pane.key)
        await pilot.pause()
        if row:
            assert app.query_one(f"#{row[0]}").select_key(row[1])
        before = console_state(app, server)
        burst(app, key + PRINTABLE)  # typed at once, before the dialog is even drawn
        await until(pilot, lambda: isinstance(app.screen, kind) and app.screen.query(field))
        text = app.screen.query_one(field, Input)

        def holds(times: int) -> bool:  # all of it, or (a short field: the silence's duration) as much as it holds
            return text.value == times * PRINTABLE or 0 < text.max_length == len(text.value)

        if early:
            await until(pilot, lambda: holds(1))
        else:
            await pilot.pause(0.2)
        burst(app, PRINTABLE)  # and once it shows
        await until(pilot, lambda: holds(2 if early else 1) or (not early and text.value.endswith(PRINTABLE)))
        assert isinstance(app.screen, kind) and len(app.screen_stack) == 2
        assert console_state(app, server) == before
        await pilot.press("escape")
        await until(pilot, lambda: len(app.screen_stack) == 1)
        assert console_state(app, server) == before


async def test_a_note_dialog_is_answered_by_its_buttons_never_by_a_letter(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await pilot.press("6")
        await until(pilot, lambda: app.read_for("alerts"))
        await pilot.pause()
        app.query_one("#alerts-table").select_key("a1")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.query("#note"))
        await until(pilot, lambda: app.screen.query_one("#note").has_focus)  # the note has the focus at once
        await pilot.press(*"yes n", "enter")  # Enter in the note moves to Yes...
        assert app.screen.query_one("#yes").has_focus
        await pilot.press("y", "n", "space")  # ...where letters and spaces are still note text
        assert isinstance(app.screen, ConfirmScreen) and server.actions() == []
        assert app.screen.query_one("#note", Input).value == "yes nyn "
        await pilot.press("enter", "enter")
        await until(pilot, lambda: server.actions())
        assert server.actions() == [("POST", "/api/v1/alerts/a1/acknowledge", {"note": "yes nyn "})]
