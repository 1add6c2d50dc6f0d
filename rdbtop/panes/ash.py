"""ASH: active sessions by wait class over a window (w: 5, 15, 60 min); top SQL, sessions, events."""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from ..model import AshSample, Snapshot
from ..widgets.charts import WAIT_CLASS_ORDER, ash_bars
from ..widgets.line import Line
from ..widgets.table import Column, KeyedTable, Row
from .base import Pane, View

PCT = Column("pct", "%", 5, right=True)
# each top list's columns: the SQL text before its sql_id, which goes first when the pane is narrow
# (a hash alone says nothing); a session as "id user@program"
TOP = {"sql_id": [Column("example", "Top SQL"), Column("key", "sql_id", 8, drop=1), PCT],
       "session": [Column("example", "Top sessions"), PCT],
       "wait_event": [Column("key", "Top wait events"), PCT]}


def bucketed(samples: list[AshSample], start: float, seconds: int, columns: int) -> list[dict[str, float]]:
    """Average active sessions per wait class in `columns` equal slices of the window."""
    width = seconds / columns
    counts = [Counter() for _ in range(columns)]
    for s in samples:
        i = int((s.sample_time - start) // width)
        if 0 <= i < columns:
            counts[i][s.wait_class or "Other"] += 1
    return [{k: v / width for k, v in c.items()} for c in counts]


class AshPane(Pane):
    area, title, key = "ash", "ASH", "ash"
    DEFAULT_CSS = """
    AshPane .chart { height: 1fr; min-height: 5; }
    AshPane .tops { height: 1fr; min-height: 5; }
    AshPane .tops KeyedTable { width: 1fr; }
    """

    def compose_body(self) -> ComposeResult:
        yield Line(classes="caption")
        yield Static(classes="chart")
        with Horizontal(classes="tops"):
            for group, columns in TOP.items():
                yield KeyedTable(columns, id=f"top-{group}")

    def draw(self, snap: Snapshot, view: View) -> None:
        p = view.palette
        chart = self.query_one(".chart", Static)
        columns = max(10, (chart.content_size.width or 70) - 1)
        height = max(3, (chart.content_size.height or 6) - 1)
        start = snap.taken_at - view.ash_window
        samples = [s for s in snap.ash_samples if s.sample_time >= start]
        classes = [c for c in WAIT_CLASS_ORDER] + sorted({s.wait_class or "Other" for s in samples}
                                                          - set(WAIT_CLASS_ORDER))
        styles = {"CPU": p.ok, "IO": "blue", "Lock": p.critical, "Idle in transaction": p.idle_tx}
        bars = ash_bars(bucketed(samples, start, view.ash_window, columns), classes, styles, height, p.muted)
        legend = Text(end="")
        for cls in classes:
            legend.append("█ ", style=styles.get(cls, ""))
            legend.append(f"{cls}  ")
        chart.update(Text.assemble(bars, "\n", legend))
        self.set_caption(f"Active sessions by wait class, last {view.ash_window // 60} min "
                         f"({len(samples)} samples) · w: window 5/15/60 min")
        for group in TOP:
            rows = [Row(b.key, {"key": b.key, "example": f"{b.key} {b.example}" if group == "session" and b.example
                                else b.example or b.key,
                                "pct": "–" if b.percent is None else f"{b.percent:.0f}"})
                    for b in snap.ash_top.get(group, [])]
            self.query_one(f"#top-{group}", KeyedTable).sync(rows)
