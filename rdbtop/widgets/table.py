"""A table kept in step with snapshots by row key, on Textual's public line API.

A ScrollView whose render_line draws one row from the rows it was given: only the lines on
screen are ever rendered, each row's line is kept (a strip cache) until its values change, and a
sync refreshes only the screen cells whose values changed, so the compositor renders and the
terminal is sent those cells and nothing else. (DataTable re-renders every visible cell through
Rich whenever any cell changes, and its whole region is sent to the terminal again.)

Columns have fixed widths (a stable layout) except one flexible column, and each has a priority:
when the table is narrow the least important columns go first. Every cell goes through
safe_text. The look follows DataTable's, by the same component classes (`datatable--header`,
`datatable--cursor`), and Enter (or a click on the selected row) posts a RowSelected that a
DataTable handler (`on_data_table_row_selected`) receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..model import ROW_CAP
from ..safe import safe_text

FLEX_MIN = 12
PAD = 1  # blank cells either side of each cell, as DataTable's cell_padding
HEADER = 1  # the header line above the rows; it does not scroll


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


class KeyedTable(ScrollView, can_focus=True):
    COMPONENT_CLASSES: ClassVar[set[str]] = {"datatable--header", "datatable--cursor"}
    DEFAULT_CSS = """
    KeyedTable {
        height: 1fr;
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .datatable--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .datatable--header { background-tint: $foreground 5%; }
        }
        & > .datatable--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .datatable--header { background: ansi_bright_blue; color: ansi_default; }
        & > .datatable--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "cursor_top", "Top", show=False),
        Binding("end,ctrl+end", "cursor_bottom", "Bottom", show=False),
    ]

    class RowSelected(Message, namespace="data_table"):
        """Enter on a row, or a click on the selected one (handled as DataTable's RowSelected)."""

        def __init__(self, table: KeyedTable, cursor_row: int, row_key: str) -> None:
            super().__init__()
            self.table = table
            self.cursor_row = cursor_row
            self.row_key = RowKey(row_key)

        @property
        def control(self) -> KeyedTable:
            return self.table

    class RowHighlighted(Message, namespace="data_table"):
        """The selection moved to another row (the user moved the cursor, or `select_key`); not
        posted when a sync keeps the selection on its row."""

        def __init__(self, table: KeyedTable, row_key: str) -> None:
            super().__init__()
            self.table = table
            self.row_key = RowKey(row_key)

        @property
        def control(self) -> KeyedTable:
            return self.table

    class HeaderSelected(Message, namespace="data_table"):
        """A click on a column's header (handled as DataTable's HeaderSelected)."""

        def __init__(self, table: KeyedTable, column_key: str) -> None:
            super().__init__()
            self.table = table
            self.column_key = RowKey(column_key)

        @property
        def control(self) -> KeyedTable:
            return self.table

    def __init__(self, columns: list[Column], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs = columns
        self._shown: list[tuple[Column, int]] = []
        self._rows: list[Row] = []
        self._index: dict[str, int] = {}
        # per row key: the Row its cells were rendered from, and those cells' segments
        self._cells: dict[str, tuple[Row, tuple[list[Segment], ...]]] = {}
        self._strips: dict[str, Strip] = {}  # each row's line, without the cursor, until its cells change
        self.cursor_row = 0
        self.show_cursor = True
        # The selection follows its row's key through re-sorts; when that row goes away the cursor
        # stays where it was, undrawn, and nothing is selected until the user moves it: an action
        # or Enter would otherwise take the row that slid under it (the next session, after a
        # terminate). `gone` is the key of that row, followed again should it come back.
        self.gone: str | None = None
        self.changed_cells = 0  # by the last sync: screen cells whose values changed

    # -- layout ----------------------------------------------------------------------------

    def _fit(self, width: int) -> list[tuple[Column, int]]:
        kept = list(self.specs)
        flexible = [c for c in kept if c.width is None]

        def need(cols: list[Column]) -> int:
            return sum((c.width or FLEX_MIN) + 2 * PAD for c in cols) + 1  # 1 for the scrollbar gutter

        for col in sorted((c for c in self.specs if c.drop), key=lambda c: -c.drop):
            if need(kept) <= width:
                break
            kept.remove(col)
        spare = max(0, width - need(kept))
        return [(c, (c.width if c.width is not None else FLEX_MIN + spare // max(1, len(flexible)))) for c in kept]

    @property
    def _table_width(self) -> int:
        return sum(width + 2 * PAD for _, width in self._shown)

    def on_resize(self) -> None:
        self.relayout()

    def relayout(self) -> None:
        shown = self._fit(self.size.width or 80)
        if shown != self._shown:
            self._shown = shown
            self._forget()
        self._strips.clear()  # their width is the widget's
        self._resize()
        self.refresh()

    def _resize(self) -> None:
        self.virtual_size = Size(self._table_width, len(self._rows) + HEADER)

    def _forget(self) -> None:
        """The rendered cells no longer fit (new columns, new styles): render every row again."""
        self._cells.clear()
        self._strips.clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    # -- rows ------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def row_keys(self) -> list[str]:
        return [r.key for r in self._rows]

    @property
    def column_keys(self) -> list[str]:
        """The keys of the columns shown, left to right."""
        return [col.key for col, _ in self._shown]

    @property
    def labels(self) -> list[str]:
        """The headers of the columns shown (the narrowest tables drop some)."""
        return [col.label for col, _ in self._shown]

    def get_row(self, key: str) -> list[Text]:
        """The texts a row's shown cells draw."""
        row = self._rows[self._index[key]]
        styles = dict(row.styles)
        return [safe_text(row.values.get(col.key), width, style=styles.get(col.key, row.style))
                for col, width in self._shown]

    def get_cell(self, key: str, column: str) -> Text:
        return self.get_row(key)[[col.key for col, _ in self._shown].index(column)]

    def sync(self, rows: list[Row], force: bool = False) -> None:
        """Show `rows` in this order; refresh only the screen cells whose values changed."""
        selected = self.selected_key or self.gone
        before = self._rows
        self._rows = rows[:ROW_CAP]
        self._index = {r.key: i for i, r in enumerate(self._rows)}
        for key in [k for k in self._cells if k not in self._index]:
            del self._cells[key]
            self._strips.pop(key, None)
        if force:
            self._forget()
        if len(before) != len(self._rows):
            self._resize()
        self.changed_cells = 0
        if self._shown:
            self._refresh_changed(before, force)
        if not self.select_key(selected):
            if selected is not None:
                self._lose(selected)
            self._move(min(self.cursor_row, max(0, len(self._rows) - 1)))

    def _refresh_changed(self, before: list[Row], force: bool) -> None:
        """Each screen line showed before[i] and will show rows[i]: refresh what differs, down to the cell."""
        top, height = int(self.scroll_y), max(0, self.size.height - HEADER)
        offsets, x = [], 0
        for _col, width in self._shown:
            offsets.append((x, width + 2 * PAD))
            x += width + 2 * PAD
        scroll_x = int(self.scroll_x)
        changed = 0
        for index in range(top, min(top + height, max(len(before), len(self._rows)))):
            old = before[index] if index < len(before) else None
            new = self._rows[index] if index < len(self._rows) else None
            if old == new and not force:
                continue
            y = index - top + HEADER
            if old is None or new is None or force or old.key != new.key or old.style != new.style \
                    or old.styles != new.styles:
                self.refresh(Region(0, y, max(self.size.width, self._table_width), 1))
                changed += len(self._shown)
                continue
            for (col, _width), (cx, cw) in zip(self._shown, offsets, strict=True):
                if old.values.get(col.key) != new.values.get(col.key):
                    self.refresh(Region(cx - scroll_x, y, cw, 1))
                    changed += 1
        self.changed_cells = changed

    def repaint(self) -> None:
        """Render every cell again: the styles changed (a new theme), not the data."""
        self._forget()
        self.refresh()

    # -- rendering ---------------------------------------------------------------------------

    def _row_cells(self, row: Row) -> tuple[list[Segment], ...]:
        """The row's cells as segments, padded to their widths; with the Row they were last rendered
        from, only the values that changed are rendered again (most ticks change a duration)."""
        drawn = self._cells.get(row.key)
        if drawn is not None and drawn[0] is row:
            return drawn[1]
        old_row, old_cells = drawn if drawn is not None else (None, ())
        same_style = old_row is not None and old_row.style == row.style and old_row.styles == row.styles
        styles = dict(row.styles)
        console = self.app.console
        out = []
        for i, (col, width) in enumerate(self._shown):
            value = row.values.get(col.key)
            if same_style and old_row.values.get(col.key) == value:  # type: ignore[union-attr]
                out.append(old_cells[i])
                continue
            out.append(_cell(safe_text(value, width, style=styles.get(col.key, row.style)), width, col.right, console))
        cells = tuple(out)
        self._cells[row.key] = (row, cells)
        if drawn is None or drawn[1] != cells:
            self._strips.pop(row.key, None)
        return cells

    def _line(self, segments: list[Segment], style: Style, post: Style | None) -> Strip:
        width = max(self.size.width, self._table_width)
        rest = width - self._table_width
        line = list(Segment.apply_style(segments, style=style, post_style=post))
        if rest > 0:
            line.append(Segment(" " * rest, style))
        return Strip(line, width).simplify()

    def _header(self) -> Strip:
        console = self.app.console
        cells = [seg for col, width in self._shown
                 for seg in _cell(Text(col.label, style=""), width, col.right, console)]
        return self._line(cells, self.get_component_rich_style("datatable--header"), None)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y < HEADER:
            strip = self._header()
        else:
            index = scroll_y + y - HEADER
            if index >= len(self._rows):
                return Strip.blank(width, base)
            row = self._rows[index]
            cells = self._row_cells(row)
            flat = [seg for cell in cells for seg in cell]
            if index == self.cursor_row and self.show_cursor:
                cursor = self.get_component_rich_style("datatable--cursor")
                # the cursor's foreground over the cells' own colours, its background under them (DataTable's)
                strip = self._line(flat, base + cursor, Style.from_color(color=cursor.color))
            else:
                strip = self._strips.get(row.key)
                if strip is None:
                    strip = self._strips[row.key] = self._line(flat, base, None)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    # -- selection -------------------------------------------------------------------------

    @property
    def selected_key(self) -> str | None:
        if self.gone is not None or not self._rows or not 0 <= self.cursor_row < len(self._rows):
            return None
        return self._rows[self.cursor_row].key

    def select_key(self, key: str | None) -> bool:
        if key is None or key not in self._index:
            return False
        before = self.selected_key
        self._move(self._index[key])
        self._found()
        self._highlighted(before)
        return True

    def move_cursor(self, row: int) -> None:
        """The user moves the cursor: the row under it is the selection now."""
        before = self.selected_key
        self._found()
        self._move(max(0, min(row, len(self._rows) - 1)))
        self._highlighted(before)

    def _highlighted(self, before: str | None) -> None:
        key = self.selected_key
        if key is not None and key != before:
            self.post_message(self.RowHighlighted(self, key))

    def _lose(self, key: str) -> None:
        self.gone = key
        self.show_cursor = False
        self.refresh_line(self.cursor_row + HEADER)

    def _found(self) -> None:
        if self.gone is not None:
            self.gone = None
            self.show_cursor = True
            self.refresh_line(self.cursor_row + HEADER)

    def _move(self, row: int) -> None:
        if row == self.cursor_row:
            return
        old, self.cursor_row = self.cursor_row, row
        top = int(self.scroll_y)
        for index in (old, row):
            self.refresh_line(index + HEADER)
        height = max(1, self.size.height - HEADER)
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False)

    def action_cursor_up(self) -> None:
        if self.gone is not None:  # the first move shows the cursor where it stayed
            self._found()
            return
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        if self.gone is not None:
            self._found()
            return
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - max(1, self.size.height - HEADER))

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + max(1, self.size.height - HEADER))

    def action_cursor_top(self) -> None:
        self.move_cursor(0)

    def action_cursor_bottom(self) -> None:
        self.move_cursor(len(self._rows) - 1)

    def action_select_cursor(self) -> None:
        key = self.selected_key
        if key is not None:
            self.post_message(self.RowSelected(self, self.cursor_row, key))

    def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y < HEADER:
            self._header_clicked(int(self.scroll_x) + offset.x)
            return
        index = int(self.scroll_y) + offset.y - HEADER
        if not 0 <= index < len(self._rows):
            return
        event.stop()
        if index == self.cursor_row:
            self.action_select_cursor()
        else:
            self.move_cursor(index)


    def _header_clicked(self, x: int) -> None:
        left = 0
        for col, width in self._shown:
            left += width + 2 * PAD
            if x < left:
                self.post_message(self.HeaderSelected(self, col.key))
                return


@dataclass(frozen=True)
class RowKey:
    """A key as the table's messages carry it (`.value`, as DataTable's RowKey and ColumnKey)."""

    value: str


def _cell(text: Text, width: int, right: bool, console: Any) -> list[Segment]:
    """One cell's segments: the text cut or padded to `width`, with PAD blanks either side. The
    blanks take the text's colour (and nothing else of its style, so they look as DataTable's):
    a row in one colour is then one run of one style, which the terminal is sent with one
    escape sequence instead of one per cell and gap."""
    style = console.get_style(text.style) if text.style else None
    # Text.render leaves out the text's own style when it has no spans (Rich applies it on the way
    # through Console.render, which is what this skips)
    line = [seg for seg in (text.render(console) if text.spans else [Segment(text.plain, style)]) if seg.text]
    blank = Style.from_color(style.color) if style is not None and style.color is not None else None
    length = text.cell_len
    if length > width:
        line = Segment.adjust_line_length(line, width)
        length = width
    pad = Segment(" " * PAD, blank)
    if length == width:
        return [pad, *line, pad]
    fill = Segment(" " * (width - length), blank)
    return [pad, fill, *line, pad] if right else [pad, *line, fill, pad]
