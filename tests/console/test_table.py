"""KeyedTable: unchanged rows cost nothing, a changed value updates its cell only, and what is
painted always follows the data (its cell cache is keyed by row version, not DataTable's counter)."""

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


async def test_cells_render_as_datatable_renders_them() -> None:
    """KeyedTable renders one-line Text cells its own, shorter way: the same segments as DataTable's."""
    from rich.segment import Segment
    from rich.style import Style
    from textual.widgets import DataTable

    app = TableApp()
    async with app.run_test(size=(80, 10)) as pilot:
        t = app.query_one(KeyedTable)
        values = [("", "idle"), ("[b]x[/b]", "bold red"), ("表格数据 wide", "reverse"), ("  padded  ", ""),
                  ("a" * 40, "italic #ff0000 on #000000")]
        t.sync([Row(str(i), {"id": i, "state": v, "sql": v}, style=style) for i, (v, style) in enumerate(values)])
        await pilot.pause()
        checked = 0
        for row in range(t.row_count):
            for column in range(len(t.columns)):
                for cursor, hover in ((False, False), (True, False), (False, True)):
                    for base in (Style(), Style(bgcolor="#202020", color="white")):
                        width = t.ordered_columns[column].get_render_width(t)
                        ours = t._render_body_cell(row, column, t._row_locations.get_key(row),
                                                   t.get_cell_at((row, column)), base, width, cursor, hover)
                        theirs = DataTable._render_cell(t, row, column, base, width, cursor, hover)
                        assert [list(Segment.simplify(line)) for line in ours] == \
                            [list(Segment.simplify(line)) for line in theirs], (row, column, cursor, hover)
                        checked += 1
        assert checked == len(values) * 3 * 3 * 2


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
