"""Charts: plotext line plots for the overview, and a stacked bar chart of ASH by wait class.

plotext is imported when the first plot is drawn; one private figure per widget avoids plotext's
global state (../shared/textual-notes.md §2).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from ..safe import safe_text

WAIT_CLASS_ORDER = ("CPU", "IO", "Lock", "Idle in transaction")


class LinePlot(Static):
    """A titled braille line plot of one or two series that redraws to its own size."""

    DEFAULT_CSS = "LinePlot { height: 1fr; min-height: 4; }"

    def __init__(self, title: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.title = title
        self.series: list[Sequence[float]] = []
        self.style = ""
        self.tail = ""
        self.ceiling: float | None = None  # a fixed top (100 for percentages); else the data's maximum

    def plot(self, series: list[Sequence[float]], style: str, tail: str = "",
             ceiling: float | None = None) -> None:
        self.series, self.style, self.tail, self.ceiling = series, style, tail, ceiling
        self.redraw()

    def on_resize(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        width, height = self.content_size.width, self.content_size.height
        if width < 10 or height < 3:
            return
        title = safe_text(f"{self.title} {self.tail}".strip(), width, style="bold")
        points = [list(ys) for ys in self.series if len(ys) > 1]
        if not points:
            self.update(Text.assemble(title, "\n", Text("waiting for data…", style="dim")))
            return
        from plotext._figure import _figure_class

        fig = _figure_class()
        fig._limit_size(False, False)
        fig.plotsize(width, height - 1)
        fig.theme("clear")
        for ys in points:
            fig.plot(ys, marker="braille")
        fig.xticks([])
        top = self.ceiling or max(max(ys) for ys in points) * 1.1
        fig.ylim(0, top if top > 0 else 1)
        body = Text.from_ansi(fig.build(), style=self.style, no_wrap=True)
        body.rstrip()
        self.update(Text.assemble(title, "\n", body))


def ash_bars(buckets: list[dict[str, float]], classes: list[str], styles: dict[str, str], height: int,
             muted: str) -> Text:
    """One column per time bucket, stacked by wait class, scaled to the highest column."""
    top = max((sum(b.values()) for b in buckets), default=0.0)
    scale = (height / top) if top > 0 else 0.0
    lines = [Text(no_wrap=True, end="") for _ in range(height)]
    for bucket in buckets:
        cells: list[str] = []
        for cls in classes:
            cells += [cls] * round(bucket.get(cls, 0.0) * scale)
        cells = cells[:height]
        for row in range(height):
            level = height - 1 - row
            if level < len(cells):
                lines[row].append("█", style=styles.get(cells[level], ""))
            else:
                lines[row].append("·" if row == height - 1 else " ", style=muted)
    text = Text("\n", no_wrap=True).join(lines)
    return text
