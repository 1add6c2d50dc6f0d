"""Enter on a query: its full SQL, its plan when the server has one, and its fingerprint's statistics."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..format import duration, number
from ..model import ActiveQuery, float_, int_, str_
from ..safe import safe_text


class DetailScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    DetailScreen { align: center middle; }
    DetailScreen > VerticalScroll { width: 90%; height: 90%; border: round $primary; background: $surface;
                                    padding: 0 1; }
    DetailScreen .heading { text-style: bold; color: $primary; margin-top: 1; }
    """
    BINDINGS = [Binding("escape,q,enter", "close", "close")]

    def __init__(self, query: ActiveQuery, profile: dict | None, profile_note: str) -> None:
        super().__init__()
        self.q = query
        self.profile = profile
        self.profile_note = profile_note

    def compose(self) -> ComposeResult:
        q = self.q
        with VerticalScroll():
            yield Static(safe_text(f"Query {q.query_id} · session {q.session_id} · {q.username or '–'} · "
                                   f"{duration(None if q.elapsed_ms is None else q.elapsed_ms / 1000)} · "
                                   f"{q.wait_event or q.operation or q.status or '–'}", 200), classes="title")
            yield Static("SQL", classes="heading")
            yield Static(safe_text(q.sql, multiline=True))
            yield Static("Plan", classes="heading")
            plan = str_(self.profile, "execution_plan") if self.profile else None
            yield Static(safe_text(plan, multiline=True) if plan else Text("the server gives no plan", style="dim"))
            yield Static(f"Fingerprint {q.sql_id or '–'}", classes="heading")
            yield Static(self._stats())
            yield Static(Text("Esc closes", style="dim"))

    def _stats(self) -> Text:
        p = self.profile
        if p is None:
            return safe_text(self.profile_note, 200, style="dim")
        pairs = [("calls", int_(p, "execution_count")), ("total ms", number(float_(p, "total_time_ms"), 0)),
                 ("avg ms", number(float_(p, "avg_time_ms"), 2)), ("p95 ms", number(float_(p, "p95_ms"), 2)),
                 ("p99 ms", number(float_(p, "p99_ms"), 2)), ("max ms", number(float_(p, "max_time_ms"), 0)),
                 ("rows", int_(p, "total_rows_returned")), ("errors", int_(p, "errors"))]
        return safe_text("  ".join(f"{k} {'–' if v is None else v}" for k, v in pairs), 200)

    def action_close(self) -> None:
        self.dismiss(None)
