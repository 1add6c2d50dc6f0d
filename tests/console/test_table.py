"""KeyedTable: unchanged rows cost nothing, a changed value refreshes its cell only, what is
painted always follows the data, and the keys and the selection work as DataTable's did."""

from __future__ import annotations

from textual.app import App, ComposeResult

from rdbtop.widgets.table import Column, KeyedTable, Row

COLUMNS = [Column("id", "ID", 4, right=True), Column("state", "State", 8), Column("sql", "SQL")]


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, id="t")


def rows(states: dict[int, str]) -> list[Row]:
    return [Row(str(i), {"id": i, "state": state, "sql": f"SELECT {i}"}) for i, state in states.items()]


def painted(t: KeyedTable) -> str:
    return "\n".join(t.render_line(y).text for y in range(t.size.height))


async def test_only_changed_cells_are_updated_and_painted() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        t = app.query_one(KeyedTable)
        t.sync(rows({1: "idle", 2: "active", 3: "idle"}))
        await pilot.pause()
        assert "active" in painted(t)
        t.sync(rows({1: "idle", 2: "active", 3: "idle"}))
        assert t.changed_cells == 0  # same data: nothing touched
        t.sync(rows({1: "idle", 2: "waiting", 3: "idle"}))
        assert t.changed_cells == 1 and str(t.get_cell("2", "state")) == "waiting"
        await pilot.pause()
        screen = painted(t)
        assert "waiting" in screen and "active" not in screen  # the cached cell did not outlive its value
        t.sync(rows({3: "idle", 2: "waiting"}))  # a row leaves, the order changes
        await pilot.pause()
        screen = painted(t)
        assert "SELECT 1" not in screen and screen.index("SELECT 3") < screen.index("SELECT 2")
        t.sync(rows({3: "idle", 2: "waiting", 1: "active"}))  # back under the same key, with other values
        await pilot.pause()
        assert "active" in painted(t)


async def test_a_changed_value_refreshes_that_cell_only() -> None:
    """What the compositor renders and the terminal is sent: the changed cells' regions, not the table."""
    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        t = app.query_one(KeyedTable)
        t.sync(rows({1: "idle", 2: "active", 3: "idle"}))
        await pilot.pause()
        regions = []
        refresh = t.refresh
        t.refresh = lambda *r, **kw: (regions.extend(r), refresh(*r, **kw))[1]  # type: ignore[method-assign]
        t.sync(rows({1: "idle", 2: "waiting", 3: "idle"}))
        assert t.changed_cells == 1
        [region] = regions
        assert (region.x, region.y, region.width, region.height) == (6, 2, 10, 1)  # "State" of the 2nd row
        regions.clear()
        t.sync(rows({2: "waiting", 1: "idle", 3: "idle"}))  # two rows swap places: those two lines
        assert {r.y for r in regions if r.width >= 60} == {1, 2}
        await pilot.pause()
        lines = painted(t).splitlines()
        assert lines[1].startswith("    2  waiting") and lines[2].startswith("    1  idle")


async def test_cells_are_cut_and_justified_to_their_columns() -> None:
    app = TableApp()
    async with app.run_test(size=(40, 6)) as pilot:
        t = app.query_one(KeyedTable)
        t.sync([Row("1", {"id": 12345678, "state": "表格数据表格数据", "sql": "x" * 100})])
        await pilot.pause()
        header, line = (t.render_line(y) for y in range(2))
        assert header.cell_length == line.cell_length == 40
        assert header.text.startswith("   ID  State     SQL")
        assert line.text.startswith(" 123…  表格数 …  xxx")  # each cut to its width (a wide character whole)
        assert line.text.rstrip().endswith("…")


async def test_keys_move_the_cursor_and_enter_selects_the_row() -> None:
    selected: list[str] = []

    class Selecting(TableApp):
        def on_data_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
            selected.append(event.row_key.value)

    app = Selecting()
    async with app.run_test(size=(60, 10)) as pilot:
        t = app.query_one(KeyedTable)
        t.sync(rows({i: "idle" for i in range(1, 31)}))
        t.focus()
        await pilot.press("down", "down", "enter")
        assert t.selected_key == "3" and selected == ["3"]
        await pilot.press("pagedown")
        assert t.cursor_row == 2 + 9 and t.scroll_y > 0  # a screenful down, and scrolled to it
        await pilot.press("end")
        assert t.selected_key == "30" and "SELECT 30" in painted(t)
        await pilot.press("home")
        assert t.selected_key == "1" and t.scroll_y == 0
        await pilot.click(KeyedTable, offset=(3, 3))  # the third row
        assert t.selected_key == "3"
        await pilot.click(KeyedTable, offset=(3, 3))  # a click on the selected row selects it
        assert selected == ["3", "3"]


async def test_a_gone_row_leaves_nothing_selected_until_the_cursor_moves() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        t = app.query_one(KeyedTable)
        t.sync(rows({1: "idle", 2: "active", 3: "idle"}))
        assert t.select_key("2")
        t.sync(rows({1: "idle", 3: "idle"}))
        assert t.gone == "2" and t.selected_key is None and t.cursor_row == 1 and not t.show_cursor
        t.sync(rows({1: "idle", 3: "idle", 2: "active"}))  # it came back: followed again
        assert t.gone is None and t.selected_key == "2" and t.cursor_row == 2
        t.sync(rows({1: "idle", 3: "idle"}))
        await pilot.pause()
        t.action_cursor_down()  # the first move shows the cursor where it stayed
        assert t.show_cursor and t.selected_key == "3"


async def test_rows_off_screen_are_brought_up_to_date_when_scrolled_to() -> None:
    app = TableApp()
    async with app.run_test(size=(60, 10)) as pilot:
        t = app.query_one(KeyedTable)
        t.sync(rows({i: "idle" for i in range(1, 101)}))
        await pilot.pause()
        t.sync(rows({i: "idle" if i < 100 else "waiting" for i in range(1, 101)}))
        assert t.changed_cells == 0  # row 100 is far below the screen: not rendered yet
        t.sync(rows({i: "active" if i == 2 else "idle" if i < 100 else "waiting" for i in range(1, 101)}))
        assert t.changed_cells == 1  # row 2 is on screen
        assert t.select_key("100")  # the cursor moves there, and the table scrolls
        await pilot.pause()
        assert str(t.get_cell("100", "state")) == "waiting" and "waiting" in painted(t)
