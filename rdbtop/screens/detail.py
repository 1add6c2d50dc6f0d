"""Enter on a query: its full SQL, its plan when the server has one, what it used so far, and its
fingerprint's statistics with SQLite's profile."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..format import count, cpu_time, duration, number, percent
from ..model import MISSING_TEXT, ActiveQuery, FingerprintProfile
from ..safe import safe_text

Pairs = list[tuple[str, str | int | None]]


def _line(pairs: Pairs) -> Text:
    return safe_text("  ".join(f"{k} {MISSING_TEXT if v is None else v}" for k, v in pairs), 400)


def _per_call(total: float | None, calls: int | None) -> float | None:
    return None if total is None or not calls else total / calls


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
        self.profile = FingerprintProfile.parse(profile) if profile is not None else None
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
            p = self.profile
            plan = (p.execution_plan if p else None) or q.execution_plan
            yield Static(safe_text(plan, multiline=True) if plan else Text("the server gives no plan", style="dim"))
            yield Static("This statement so far", classes="heading")
            yield Static(_line([("CPU", cpu_time(q.cpu_time_ms)), ("rows", count(q.rows_returned)),
                                ("cache hits", count(q.cache_hits)), ("reads", count(q.cache_misses)),
                                ("pages written", count(q.pages_written))]))
            yield Static(f"Fingerprint {q.sql_id or MISSING_TEXT}", classes="heading")
            if p is None:
                yield Static(safe_text(self.profile_note, 200, style="dim"))
            else:
                yield Static(_line([("calls", p.calls), ("total ms", number(p.total_ms, 0)),
                                    ("avg ms", number(p.avg_ms, 2)), ("p95 ms", number(p.p95_ms, 2)),
                                    ("p99 ms", number(p.p99_ms, 2)), ("max ms", number(p.max_ms, 0)),
                                    ("rows", p.rows_returned), ("errors", p.errors)]))
                yield Static(_line([("CPU", cpu_time(p.cpu_time_ms)),
                                    ("CPU a call", cpu_time(_per_call(p.cpu_time_ms, p.calls)))]))
                profiled = MISSING_TEXT if p.profiled_calls is None else p.profiled_calls
                yield Static(f"SQLite's profile, over {profiled} profiled calls", classes="heading")
                yield Static(_line([("full-scan steps", count(p.fullscan_steps)), ("sorts", count(p.sorts)),
                                    ("VM steps", count(p.vm_steps)), ("cache hits", count(p.cache_hits)),
                                    ("reads", count(p.cache_misses)), ("hit ratio", percent(p.cache_hit_ratio)),
                                    ("pages written", count(p.pages_written))]))
            yield Static(Text("Esc closes", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
