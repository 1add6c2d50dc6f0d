"""A DataTable kept in step with snapshots by row key, changing only the cells that changed.

Rebuilding a DataTable each tick costs about 0.3 ms per row and loses the cursor; updating only
changed cells keeps a 1,000-row refresh near 100 ms (../shared/textual-notes.md §3). Columns
have fixed widths (a stable layout) except one flexible column, and each has a priority: when the
table is narrow the least important columns go first. Every cell goes through safe_text.

Two costs remain once only changed cells are updated, both measured with a profiler on the
console at 1,000 sessions: rendering the cells of rows whose values did not change (safe_text per
cell, every tick), and DataTable's own render cache, which is keyed on one update counter for the
whole table, so a single update_cell makes every visible cell go through Rich again. So a row
whose values are unchanged is not rendered at all, a cell is rendered again only when its Text is
a new one, and the changed cells of a tick are written in one batch with one refresh (update_cell
refreshes the widget once per cell).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from ..model import ROW_CAP
from ..safe import safe_text

FLEX_MIN = 12
CELL_CACHE = 4096  # rendered cells kept: a screenful of visible cells, with and without the cursor


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None = None  # None: the flexible column, which takes what is left
    drop: int = 0  # 0 never dropped; higher numbers go first when the table is narrow
    right: bool = False


@dataclass(frozen=True)
class Row:
    key: str
    values: dict[str, Any]
    style: str = ""
    styles: tuple[tuple[str, str], ...] = ()  # per-column styles over the row's


class KeyedTable(DataTable):
    DEFAULT_CSS = "KeyedTable { height: 1fr; }"

    def __init__(self, columns: list[Column], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self.specs = columns
        self._shown: list[tuple[Column, int]] = []
        self._rows: list[Row] = []
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._drawn: dict[str, Row] = {}  # the Row each shown row was last rendered from
        self._pending: dict[str, Row] = {}  # newer Rows of rows off screen, rendered when scrolled to
        self._order: list[str] = []
        # rendered cells by place and look, with the Text they were rendered from: reused while it is
        # still that cell's Text (a changed cell gets a new Text; an unchanged one keeps its object)
        self._cell_cache: LRUCache[tuple[object, ...], tuple[object, list[list[Segment]]]] = LRUCache(CELL_CACHE)
        self.changed_cells = 0  # by the last sync: what a tick cost the table
        # The selection follows its row's key through re-sorts; when that row goes away the cursor
        # stays where it was, undrawn, and nothing is selected until the user moves it: an action
        # or Enter would otherwise take the row that slid under it (the next session, after a
        # terminate). `gone` is the key of that row, followed again should it come back.
        self.gone: str | None = None

    # -- layout ----------------------------------------------------------------------------

    def _fit(self, width: int) -> list[tuple[Column, int]]:
        pad = 2 * self.cell_padding
        kept = list(self.specs)
        flexible = [c for c in kept if c.width is None]

        def need(cols: list[Column]) -> int:
            return sum((c.width or FLEX_MIN) + pad for c in cols) + 1  # 1 for the scrollbar gutter

        for col in sorted((c for c in self.specs if c.drop), key=lambda c: -c.drop):
            if need(kept) <= width:
                break
            kept.remove(col)
        spare = max(0, width - need(kept))
        return [(c, (c.width if c.width is not None else FLEX_MIN + spare // max(1, len(flexible)))) for c in kept]

    def on_resize(self) -> None:
        self.relayout()
        self._catch_up()  # a taller table shows more rows

    def relayout(self) -> None:
        shown = self._fit(self.size.width or 80)
        if shown == self._shown:
            return
        selected = self.selected_key or self.gone
        self._shown = shown
        self.clear(columns=True)
        for col, width in shown:
            label = Text(col.label, justify="right" if col.right else "left")
            self.add_column(label, width=width, key=col.key)
        self._forget()
        self.sync(self._rows)
        self._follow(selected)

    def _forget(self) -> None:
        """The rendered cells no longer fit (new columns, new styles): render every row again."""
        self._cells.clear()
        self._drawn.clear()
        self._pending.clear()
        self._order = []
        self._cell_cache.clear()

    # -- rows ------------------------------------------------------------------------------

    def _render(self, row: Row, old: Row | None = None, cells: tuple[Text, ...] | None = None) -> tuple[Text, ...]:
        """The row's cells; with the previous Row and its cells, only the values that changed are
        rendered again (most ticks change a duration or two of a row, not the whole row)."""
        same_style = old is not None and cells is not None and old.style == row.style and old.styles == row.styles
        styles = dict(row.styles)
        out = []
        for i, (col, width) in enumerate(self._shown):
            value = row.values.get(col.key)
            if same_style and old.values.get(col.key) == value:  # type: ignore[union-attr]
                out.append(cells[i])  # type: ignore[index]
                continue
            cell = safe_text(value, width, style=styles.get(col.key, row.style))
            if col.right:
                cell.justify = "right"
            out.append(cell)
        return tuple(out)

    def sync(self, rows: list[Row], force: bool = False) -> None:
        """Show `rows` in this order, touching only cells whose text or style changed."""
        self._rows = rows[:ROW_CAP]
        if not self._shown:
            return  # not laid out yet: relayout() will show them
        selected = self.selected_key or self.gone
        if force:
            self._forget()
            self.clear()
        wanted = {r.key for r in self._rows}
        for key in [k for k in self._cells if k not in wanted]:
            self.remove_row(key)
            del self._cells[key]
            del self._drawn[key]
        self._pending.clear()
        lo, hi = self._window()
        changed = 0
        for index, row in enumerate(self._rows):
            if self._drawn.get(row.key) == row:
                continue  # nothing of it changed: no rendering, no comparing of cells
            if not lo <= index < hi and row.key in self._cells:
                self._pending[row.key] = row  # off screen: rendered when scrolled to (a time column
                continue                      # changes in every row every tick, most rows are not seen)
            changed += self._update_row(row)
        self.changed_cells = changed
        if changed:
            self._update_count += 1
            self.refresh()
        order = [r.key for r in self._rows]
        if order != self._order:
            self._reorder(order)
        self._follow(selected)

    def _window(self) -> tuple[int, int]:
        """The rows on screen, with a screenful above and below: those are kept up to date."""
        height = max(self.size.height, 1)
        top = int(self.scroll_y)
        return max(0, top - height), top + 2 * height

    def _update_row(self, row: Row) -> int:
        """Render `row` into the table; returns how many of its cells changed."""
        drawn = self._drawn.get(row.key)
        old = self._cells.get(row.key)
        cells = self._render(row, drawn, old)
        self._drawn[row.key] = row
        changed = 0
        if old is None:
            self.add_row(*cells, key=row.key)
        else:
            data = self._data[RowKey(row.key)]
            kept = []
            for col, new, was in zip(self._shown, cells, old, strict=True):
                if new is not was and new != was:
                    data[ColumnKey(col[0].key)] = new  # what update_cell does, without its refresh per cell
                    changed += 1
                    kept.append(new)
                else:  # an equal Text rendered anew is not stored: the old one keeps its cached rendering
                    kept.append(was)
            cells = tuple(kept)
        self._cells[row.key] = cells
        return changed

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._catch_up()

    def _catch_up(self) -> None:
        """Render the rows that came into the window since they changed."""
        if not self._pending:
            return
        lo, hi = self._window()
        due = [row for index, row in enumerate(self._rows) if lo <= index < hi and row.key in self._pending]
        changed = 0
        for row in due:
            del self._pending[row.key]
            changed += self._update_row(row)
        if changed:
            self._update_count += 1
            self.refresh()

    def repaint(self) -> None:
        """Render every cell again: the styles changed (a new theme), not the data."""
        self.sync(self._rows, force=True)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cell_cache.clear()

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> list[list[Segment]]:
        """DataTable's cell rendering, cached by the row's version instead of the table's update count."""
        if row_index < 0 or column_index < 0:  # the header row and row labels: DataTable's own way
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        cell = self._data[row_key][column_key]
        # the row index is part of the rendering (mouse metadata), so a row that moved renders again
        key = (row_key, column_key, row_index, base_style, width, cursor, hover, self._show_hover_cursor,
               self._pseudo_class_state, self.show_cursor, self.cursor_type)
        hit = self._cell_cache.get(key)
        if hit is not None and hit[0] is cell:
            return hit[1]
        lines = self._render_body_cell(row_index, column_index, row_key, cell, base_style, width, cursor, hover)
        self._cell_cache[key] = (cell, lines)
        return lines

    def _render_body_cell(self, row_index: int, column_index: int, row_key: RowKey, cell: object, base_style: Style,
                          width: int, cursor: bool, hover: bool) -> list[list[Segment]]:
        """What DataTable._render_cell renders for a one-line Text cell, without its three nested Rich
        renders (Styled over Padding over the Text, each with its own options and line splitting):
        the Text is rendered at the inner width, then padded and styled as Padding and Styled would.
        Other cells go DataTable's own way. tests/console/test_table.py checks the two agree."""
        row = self.rows.get(row_key)
        if not isinstance(cell, Text) or row is None or row.height != 1 or self.fixed_rows or self.fixed_columns:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        base_style += Style.from_meta({"row": row_index, "column": column_index})
        _label, cells = self._get_row_renderables(row_index)
        component_style, post_style = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        console = self.app.console
        pad = self.cell_padding
        options = self.app.console_options.update_dimensions(width, 1).update(no_wrap=True)
        plain = console.get_style("none")  # Padding's style
        line = console.render_lines(cells[column_index], options.update_width(width - 2 * pad).update_height(1),
                                    style=plain, pad=True)[0]
        if pad:
            line = [Segment(" " * pad, plain), *line, Segment(" " * pad, plain)]
        return [list(Segment.apply_style(line, style=base_style + component_style, post_style=post_style))]

    def _reorder(self, order: list[str]) -> None:
        # DataTable sorts only by cell values; our order comes from the model, so set it directly
        # (what DataTable.sort itself does once it has sorted).
        self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(order)})
        self._update_count += 1
        self._order = order
        self.refresh()

    # -- selection -------------------------------------------------------------------------

    @property
    def selected_key(self) -> str | None:
        if self.gone is not None or not self.row_count or self.cursor_row < 0:
            return None
        try:
            return self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value
        except Exception:  # the cursor can point past the end for a moment after rows went away
            return None

    def select_key(self, key: str | None) -> bool:
        if key is None or key not in self._cells:
            return False
        index = self.get_row_index(key)
        if index != self.cursor_row:
            self.move_cursor(row=index)
        self._found()
        return True

    def _follow(self, key: str | None) -> None:
        if not self.select_key(key) and key is not None:
            self.gone = key
            self.show_cursor = False

    def _found(self) -> None:
        if self.gone is not None:
            self.gone = None
            self.show_cursor = True

    # the user moves the cursor: the row under it is the selection again; the first arrow only
    # shows the cursor where it stayed, on the row that took the place of the one gone

    def action_cursor_down(self) -> None:
        if self.gone is None:
            super().action_cursor_down()
        self._found()

    def action_cursor_up(self) -> None:
        if self.gone is None:
            super().action_cursor_up()
        self._found()

    def action_page_down(self) -> None:
        super().action_page_down()
        self._found()

    def action_page_up(self) -> None:
        super().action_page_up()
        self._found()

    def action_scroll_top(self) -> None:
        super().action_scroll_top()
        self._found()

    def action_scroll_bottom(self) -> None:
        super().action_scroll_bottom()
        self._found()

    def action_scroll_home(self) -> None:
        super().action_scroll_home()
        self._found()

    def action_scroll_end(self) -> None:
        super().action_scroll_end()
        self._found()

    def on_click(self) -> None:
        self._found()
