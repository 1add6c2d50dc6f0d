"""`?`: every key, what it does, and the key scheme (why `k` is not a movement key here)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_SCHEME = (
    "Movement is arrows, PgUp/PgDn, Home/End (and the mouse, which is never needed); there are no vim "
    "movement keys, so j and k never move. k cancels the selected statement and K (shift+k) terminates "
    "the selected session; both always ask first, naming the session, its user and its SQL, and do nothing "
    "if the statement changed in the meantime. There are no ctrl-key actions to clash with tmux or readline."
)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 84; max-width: 100%; height: 90%; border: round $primary;
                                  background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "close")]

    def __init__(self, keys: list[tuple[str, str]], mode_note: str) -> None:
        super().__init__()
        self.keys = keys
        self.mode_note = mode_note

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, what in self.keys:
            table.add_row(key, what)
        with VerticalScroll():
            yield Static(Text("rdbtop keys", style="bold"))
            yield Static(table)
            yield Static(Text("\n" + KEY_SCHEME))
            yield Static(Text("\n" + self.mode_note, style="bold"))
            yield Static(Text("\nEsc, q or ? closes this screen.", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
