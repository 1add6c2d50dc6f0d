"""`m`: pick a maintenance operation and its target; the app then asks for confirmation."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from .confirm import type_into

OPERATIONS = {
    "vacuum": "rebuild the database files, returning free pages",
    "analyze": "refresh the query planner's statistics",
    "reindex": "rebuild indexes",
    "checkpoint": "copy the write-ahead log into the database files",
}


class MaintenanceScreen(ModalScreen[tuple[str, str | None] | None]):
    DEFAULT_CSS = """
    MaintenanceScreen { align: center middle; }
    MaintenanceScreen > Vertical { width: 72; max-width: 100%; height: auto; border: round $primary;
                                   background: $surface; padding: 0 1; }
    MaintenanceScreen OptionList { height: auto; max-height: 6; }
    """
    BINDINGS = [Binding("escape", "cancel", "cancel", show=False)]
    takes_text = True  # keys typed just before it showed are handed to it

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("[b]Maintenance[/b]: choose an operation (Enter), then a target")
            yield OptionList(*(Option(f"{name:<11} {what}", id=name) for name, what in OPERATIONS.items()),
                             id="operation")
            yield Input(placeholder="target: a schema or table, empty for all", id="target", max_length=200)
            yield Static("[dim]Esc cancels; nothing runs before you confirm[/dim]")

    def on_option_list_option_selected(self) -> None:
        self.query_one("#target", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        options = self.query_one(OptionList)
        index = options.highlighted if options.highlighted is not None else 0
        operation = options.get_option_at_index(index).id or "vacuum"
        self.dismiss((operation, event.value.strip() or None))

    def on_key(self, event: events.Key) -> None:
        fields = self.query(Input)
        if fields:
            type_into(fields.first(), event)

    def action_cancel(self) -> None:
        self.dismiss(None)
