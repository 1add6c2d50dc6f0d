"""Snapshots of the dialogs behind the peers' items at 80x24 and 160x48: terminate with the count it
frees, the silence dialog, the maintenance dialog with targets and recent jobs. Their content is
checked by the Pilot tests in test_peers.py."""

from __future__ import annotations

import pytest

from .conftest import loaded, make_app, until
from .fakeserver import FakeServer

# dialog: (pane key, its number, the row to select, the table, the key that opens it, the screen)
DIALOGS = {
    "terminate": ("locks", "4", "/3", "#locks-tree", "K", "ConfirmScreen"),
    "silence": ("alerts", "6", "a1", "#alerts-table", "z", "SilenceScreen"),
    "maintenance": ("backups", "7", None, None, "m", "MaintenanceScreen"),
}
SIZES = [(80, 24), (160, 48)]


def opening(dialog: str):  # type: ignore[no-untyped-def]
    pane, number, row, table, key, screen = DIALOGS[dialog]

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        app = pilot.app
        await loaded(pilot)
        await pilot.press(number)
        await until(pilot, lambda: app.tabs.active == pane and app.read_for(pane))
        await pilot.pause()
        if row is not None:
            assert app.query_one(table).select_key(row)
        await pilot.press(key)
        await until(pilot, lambda: app.screen.__class__.__name__ == screen)
        await until(pilot, lambda: not getattr(app.screen, "reading", False))  # the maintenance dialog's reads
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
    return run_before


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("dialog", list(DIALOGS))
def test_dialog(dialog: str, size: tuple[int, int], snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(FakeServer()), terminal_size=size, run_before=opening(dialog))
