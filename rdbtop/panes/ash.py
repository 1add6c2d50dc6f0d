"""ASH: active sessions by wait class over a window (w: 5, 15, 60 min); top SQL, sessions, events."""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from ..model import AshSample, Snapshot
from ..widgets.charts import OTHER_FILL, WAIT_CLASS_FILL, WAIT_CLASS_ORDER, ash_bars, time_axis
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
    AshPane .chart { height: 1fr; min-height: 6; }
    AshPane .tops { height: 1fr; min-height: 5; }
    AshPane .tops KeyedTable { width: 1fr; }
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._chart_key: object = None

    @staticmethod
    def chart(samples: list[AshSample], start: float, view: View, columns: int, height: int,
              styles: dict[str, str]) -> Text:
        """Bars, a time axis, and a legend naming each class by its fill and the scale's top."""
        p = view.palette
        classes = list(WAIT_CLASS_ORDER) + sorted({s.wait_class or "Other" for s in samples} - set(WAIT_CLASS_ORDER))
        buckets = bucketed(samples, start, view.ash_window, columns)
        bars = ash_bars(buckets, classes, styles, height, p.muted)
        top = max((sum(b.values()) for b in buckets), default=0.0)
        legend = Text(end="", no_wrap=True)
        for cls in classes:
            legend.append(f"{WAIT_CLASS_FILL.get(cls, OTHER_FILL)} ", style=styles.get(cls, ""))
            legend.append(f"{cls}  ")
        legend.append(f"top {top:.1f} active sessions" if top else "no active sessions", style=p.muted)
        return Text.assemble(bars, "\n", time_axis(columns, view.ash_window, p.muted), "\n", legend)

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
        height = max(3, (chart.content_size.height or 7) - 2)
        start = snap.taken_at - view.ash_window
        samples = [s for s in snap.ash_samples if s.sample_time >= start]
        styles = {"CPU": p.ok, "IO": "blue", "Lock": p.critical, "Idle in transaction": p.idle_tx}
        # the chart is built again only when the samples, the window, the size or the look changed
        key = (snap.taken_at, len(samples), samples[-1].sample_time if samples else None, view.ash_window,
               columns, height, tuple(styles.values()))
        if key != self._chart_key:
            self._chart_key = key
            chart.update(self.chart(samples, start, view, columns, height, styles))
        self.set_caption(f"Active sessions by wait class, last {view.ash_window // 60} min "
                         f"({len(samples)} samples) · w: window 5/15/60 min")
        for group in TOP:
            rows = [Row(b.key, {"key": b.key, "example": f"{b.key} {b.example}" if group == "session" and b.example
                                else b.example or b.key,
                                "pct": "–" if b.percent is None else f"{b.percent:.0f}"})
                    for b in snap.ash_top.get(group, [])]
            self.query_one(f"#top-{group}", KeyedTable).sync(rows)
