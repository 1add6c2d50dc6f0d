"""`/`: the filter prompt. Words match anywhere; user:NAME, state:NAME, app:NAME match that field."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from .confirm import type_into


class FilterScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    FilterScreen { align: center top; }
    FilterScreen > Vertical { width: 70; max-width: 100%; height: auto; margin-top: 3; border: round $primary;
                              background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "cancel", show=False)]
    takes_text = True  # keys typed just before it showed are handed to it

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Filter sessions and queries (Enter applies, empty clears, Esc keeps the old one)")
            yield Input(value=self.current, placeholder="text  user:alice  state:waiting  app:oltp", id="filter")
            yield Static("[dim]e.g. [b]state:idle in[/b], [b]user:batch inventory[/b][/dim]")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def on_key(self, event: events.Key) -> None:
        type_into(self.query_one("#filter", Input), event)

    def action_cancel(self) -> None:
        self.dismiss(None)
