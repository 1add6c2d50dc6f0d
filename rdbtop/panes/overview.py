"""Overview: health, version, uptime; trends of the last minutes; firing alerts; root blockers."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal
from textual.widgets import Static

from ..format import duration, number, percent, plural, tree_summary, victim_note
from ..model import SEVERITY_RANK, Snapshot
from ..safe import safe_text
from ..widgets.charts import LinePlot, Series
from .base import Pane, View

LIST_LINES = 5


class OverviewPane(Pane):
    area, title, key = "overview", "Overview", "overview"
    DEFAULT_CSS = """
    OverviewPane .headline { height: 2; }
    OverviewPane Grid { grid-size: 2; grid-gutter: 0 2; height: 2fr; min-height: 8; }
    OverviewPane.wide Grid { grid-size: 4; }
    OverviewPane .lists { height: 1fr; min-height: 4; }
    OverviewPane .lists > Static { width: 1fr; border-top: solid $panel; }
    OverviewPane.kiosk .headline { text-style: bold; }
    """

    def compose_body(self) -> ComposeResult:
        yield Static(classes="headline")
        with Grid():
            yield LinePlot("Statements/s", id="plot-statements")
            yield LinePlot("Sessions", id="plot-sessions")
            yield LinePlot("Cache hit %", id="plot-cache")
            yield LinePlot("Host CPU %", id="plot-cpu")
        with Horizontal(classes="lists"):
            yield Static(id="overview-alerts")
            yield Static(id="overview-blockers")

    def on_resize(self) -> None:
        self.set_class(self.size.width >= 140, "wide")

    def draw(self, snap: Snapshot, view: View) -> None:
        o, p, h = snap.overview, view.palette, view.history
        health_style = p.ok if o.health == "healthy" else p.critical if o.health else p.muted
        states = "  ".join(f"{k} {v}" for k, v in sorted(o.sessions_by_state.items()))
        deadlocks = "–" if o.deadlocks is None else o.deadlocks
        head = Text.assemble(safe_text(f"{o.server_name or 'server'} {o.server_version or ''}", 40, style="bold"),
                             "  health ", safe_text(o.health, 12, style=health_style),
                             f"  uptime {duration(o.uptime_seconds)}  deadlocks {deadlocks}")
        second = safe_text(f"sessions: {states or '–'}", self.size.width or 200, style=p.muted)
        if o.health_notes:
            second = safe_text("; ".join(o.health_notes), self.size.width or 200, style=p.critical)
        self.query_one(".headline", Static).update(Text.assemble(head, "\n", second))
        by_state = o.sessions_by_state
        cpu = "–" if o.cpu_percent is None else f"{o.cpu_percent:.0f}%"
        now, stamp = (h.times[-1] if h.times else snap.taken_at), h.points
        self.query_one("#plot-statements", LinePlot).plot(
            [Series("statements/s", h.statements, p.ok)], h.times, now, stamp, number(o.statements_per_second))
        self.query_one("#plot-sessions", LinePlot).plot(
            [Series(f"active {by_state.get('active', 0)}", h.active, p.ok),
             Series(f"waiting {by_state.get('waiting', 0)}", h.waiting, p.waiting)], h.times, now, stamp)
        self.query_one("#plot-cache", LinePlot).plot([Series("cache hit", h.cache_hit, p.ok)], h.times, now, stamp,
                                                     percent(o.cache_hit_ratio), ceiling=100)
        self.query_one("#plot-cpu", LinePlot).plot([Series("cpu", h.cpu, p.ok)], h.times, now, stamp, cpu,
                                                   ceiling=100)
        self._alerts(snap, view)
        self._blockers(snap, view)

    def _list(self, widget: str, title: str, lines: list[Text], empty: str, view: View) -> None:
        text = Text(no_wrap=True, end="")
        text.append(title, style="bold")
        for line in lines[:LIST_LINES] or [safe_text(empty, 60, style=view.palette.muted)]:
            text.append("\n")
            text.append_text(line)
        self.query_one(widget, Static).update(text)

    def _alerts(self, snap: Snapshot, view: View) -> None:
        width = max(20, (self.size.width or 80) // 2 - 2)
        if "alerts" in snap.missing:
            self._list("#overview-alerts", "Firing alerts", [], snap.missing["alerts"], view)
            return
        firing = sorted((a for a in snap.alerts if a.status == "firing"),
                        key=lambda a: (SEVERITY_RANK.get((a.severity or "").lower(), 9), -(a.triggered_at or 0)))
        lines = [safe_text(f"{(a.severity or '–').upper():8} {a.title or a.alert_id}", width,
                           style=view.palette.critical if (a.severity or "").lower() == "critical" else
                           view.palette.waiting) for a in firing]
        self._list("#overview-alerts", f"Firing alerts ({len(firing)})", lines, "none firing", view)

    def _blockers(self, snap: Snapshot, view: View) -> None:
        width = max(20, (self.size.width or 80) // 2 - 2)
        groups = sorted(snap.blocking_groups(), key=lambda g: (not g.cycle, -g.waiting))
        lines = []
        for g in groups:
            if g.cycle:
                text = f"deadlock cycle {g.cycle_text()}: {victim_note(snap)}"
            else:
                r = g.root
                text = (f"session {r.session_id} ({r.username or '–'}) blocks {plural(g.waiting, 'session')}: "
                        f"{r.sql or 'no statement running'}")
            lines.append(safe_text(text, width, style=view.palette.critical))
        self._list("#overview-blockers", f"Blockers: {tree_summary(groups)}" if groups else "Root blockers (0)",
                   lines, "nobody is blocked", view)
