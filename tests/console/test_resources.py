"""Resource columns, sorting by any column and the query detail screen, against the fake server."""

from __future__ import annotations

from rdbtop.model import Session
from rdbtop.screens.detail import DetailScreen
from rdbtop.widgets.table import KeyedTable

from .conftest import running, until
from .fakeserver import FakeServer


def _table(app, pane: str) -> KeyedTable:  # type: ignore[no-untyped-def]
    return app.query_one(f"#{pane}-table", KeyedTable)


def _order(app, pane: str) -> list[str]:  # type: ignore[no-untyped-def]
    t = _table(app, pane)
    return t.row_keys


def _caption(app, pane: str) -> str:  # type: ignore[no-untyped-def]
    return str(app.query_one(f"#pane-{pane} .caption").render())


async def _show(pilot, pane: str, number: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press(number)
    await until(pilot, lambda: pilot.app.tabs.active == pane and pilot.app.read_for(pane))
    await until(pilot, lambda: _table(pilot.app, pane).row_count > 0)


async def _click_header(pilot, pane: str, column: str) -> None:  # type: ignore[no-untyped-def]
    t = _table(pilot.app, pane)
    t.post_message(t.HeaderSelected(t, column))
    await pilot.pause()


def _asked(server: FakeServer) -> dict:
    return next(params for path, params in reversed(server.reads) if path.endswith("/stats/sessions"))


async def test_a_header_click_sorts_by_its_column_and_a_second_reverses(server: FakeServer) -> None:
    async with running(server, size=(160, 48)) as (app, pilot):
        await _show(pilot, "sessions", "2")
        await _click_header(pilot, "sessions", "cpu")
        # cpu_time_ms is 37.5 * id² in the fake: the highest id uses most
        await until(pilot, lambda: _order(app, "sessions") == ["11", "9", "8", "7", "6", "3", "2"])
        assert "sort: cpu ▼" in _caption(app, "sessions")
        await until(pilot, lambda: _asked(server).get("sort_by") == "cpu_time_ms")
        assert _asked(server)["sort_order"] == "desc"
        await _click_header(pilot, "sessions", "cpu")
        await until(pilot, lambda: _order(app, "sessions") == ["2", "3", "6", "7", "8", "9", "11"])
        assert "sort: cpu ▲" in _caption(app, "sessions")
        await until(pilot, lambda: _asked(server)["sort_order"] == "asc")


async def test_S_reverses_and_a_column_the_server_cannot_sort_is_sorted_here(server: FakeServer) -> None:
    async with running(server, size=(160, 48)) as (app, pilot):
        await _show(pilot, "sessions", "2")
        await _click_header(pilot, "sessions", "client")
        # 10.0.0.11 sorts before 10.0.0.2 as text; the server is asked for its triage order
        await until(pilot, lambda: _order(app, "sessions") == ["11", "2", "3", "6", "7", "8", "9"])
        await until(pilot, lambda: _asked(server).get("sort_by") == "triage")
        await pilot.press("S")
        await until(pilot, lambda: _order(app, "sessions") == ["9", "8", "7", "6", "3", "2", "11"])
        assert "sort: client ▼" in _caption(app, "sessions")
        await pilot.press("s")  # the next order, in its first direction again
        await until(pilot, lambda: "sort: wait ▲" in _caption(app, "sessions"))


async def test_the_queries_pane_sorts_by_cpu_from_its_header(server: FakeServer) -> None:
    async with running(server, size=(160, 48)) as (app, pilot):
        await _show(pilot, "queries", "3")
        assert _order(app, "queries") == ["q201", "q901", "q601", "q1101"]  # longest running first
        await _click_header(pilot, "queries", "cpu")
        await until(pilot, lambda: _order(app, "queries") == ["q1101", "q901", "q601", "q201"])
        assert "sort: cpu ▼" in _caption(app, "queries")


async def test_the_resource_columns_drop_first_when_narrow(server: FakeServer) -> None:
    async with running(server, size=(160, 48)) as (app, pilot):
        await _show(pilot, "sessions", "2")
        wide = list(_table(app, "sessions").column_keys)
        assert {"cpu", "reads", "writes", "rows", "client"} <= set(wide)
        await pilot.resize_terminal(120, 40)
        await until(pilot, lambda: "rows" not in _table(app, "sessions").column_keys)
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: "cpu" not in _table(app, "sessions").column_keys)
        narrow = list(_table(app, "sessions").column_keys)
        assert {"id", "user", "state", "in_state", "sql"} <= set(narrow)
        assert not {"cpu", "reads", "writes", "rows"} & set(narrow)


async def test_the_detail_screen_shows_the_plan_the_profile_and_the_resources(server: FakeServer) -> None:
    async with running(server, size=(160, 48)) as (app, pilot):
        await _show(pilot, "queries", "3")
        _table(app, "queries").select_key("q601")
        _table(app, "queries").focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        text = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "SEARCH inventory.stock USING INTEGER PRIMARY KEY (rowid=?)" in text
        assert "CPU 450ms" in text  # the statement's so far (the fake: a third of its session's 1,350 ms)
        assert "CPU 96ms  CPU a call 0.1ms" in text  # the fingerprint's, over its 1,200 calls
        assert "over 9 profiled calls" in text and "VM steps 412" in text and "hit ratio 96.4%" in text


def test_a_transaction_is_never_shown_younger_than_the_state_it_began_before() -> None:
    # entered its state 0.25 s after the transaction began: whole seconds said 42 s and 42 s
    s = Session(3, state="idle in transaction", state_seconds=42.9, state_since=1_000, state_since_ms=1_000_400,
                transaction_started_at=1_000, transaction_started_at_ms=1_000_150)
    txn = s.transaction_seconds(now=5_000.0)  # the console's clock, however far off, is not used
    assert txn == 42.9 + 0.25
    # a server without the millisecond fields: from the console's clock, as before
    old = Session(3, state_seconds=42.9, transaction_started_at=1_000)
    assert old.transaction_seconds(now=1_050.0) == 50.0
