"""Snapshots of the query detail screen (plan, resources, SQLite profile) at 80x24 and 160x48."""

from __future__ import annotations

import pytest

from rdbtop.screens.detail import DetailScreen
from rdbtop.widgets.table import KeyedTable

from .conftest import loaded, make_app, until
from .fakeserver import FakeServer


async def _detail_of_q601(pilot) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    await loaded(pilot)
    await pilot.press("3")
    await until(pilot, lambda: app.tabs.active == "queries" and app.read_for("queries"))
    table = app.query_one("#queries-table", KeyedTable)
    await until(pilot, lambda: table.row_count > 0)
    table.select_key("q601")
    table.focus()
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DetailScreen))
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_query_detail(size: tuple[int, int], snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(FakeServer()), terminal_size=size, run_before=_detail_of_q601)
