"""Charts: plotext line plots for the overview, and a stacked bar chart of ASH by wait class.

Both can be read without colour (NO_COLOR, a monochrome terminal): each series of a line plot has
its own marker, named in the legend of its title line, and each wait class its own fill. The line
plots have a time axis, a value range fitted to the data with a small margin (a cache-hit drop
from 99 % to 95 % fills the plot instead of a sliver at its top), and a gap where a value is
unknown or no poll came in, never a zero.

plotext is imported when the first plot is drawn; one private figure per widget avoids plotext's
global state (../shared/textual-notes.md §2). A plot is built again only when a point arrived or
its size or look changed: plotext's build is the dearest part of drawing the overview.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from rich.color import ColorParseError
from rich.errors import StyleSyntaxError
from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from ..safe import safe_text

WAIT_CLASS_ORDER = ("CPU", "IO", "Lock", "Idle in transaction")
# each wait class's fill, so that the classes differ without colour too
WAIT_CLASS_FILL = {"CPU": "█", "IO": "▓", "Lock": "▒", "Idle in transaction": "░"}
OTHER_FILL = "▚"
MARKERS = ("braille", "•", "x")  # one per series of a plot, in order
LEGEND_GLYPH = {"braille": "⠒"}
GAP_FACTOR = 3.0  # a step this many times the usual one between two points is a gap (polls missed)


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float | None]
    style: str  # a Rich style: its colour draws the series


def fitted_range(values: list[float], floor: float | None, ceiling: float | None) -> tuple[float, float]:
    """The values' range with a margin of a tenth of it on each side, within floor and ceiling."""
    lo, hi = min(values), max(values)
    margin = (hi - lo) * 0.1 or max(abs(hi) * 0.02, 1.0)
    lo, hi = lo - margin, hi + margin
    if floor is not None:
        lo = max(floor, lo)
    if ceiling is not None:
        hi = min(ceiling, hi)
    return (float(lo), float(hi)) if hi > lo else (float(lo), lo + 1.0)


def runs(times: Sequence[float], values: Sequence[float | None]) -> list[tuple[list[float], list[float]]]:
    """The series cut into runs of known values with no missed polls between them."""
    steps = [b - a for a, b in zip(times, times[1:]) if b > a]
    gap = GAP_FACTOR * statistics.median(steps) if steps else float("inf")
    out: list[tuple[list[float], list[float]]] = []
    xs: list[float] = []
    ys: list[float] = []
    last: float | None = None
    for t, v in zip(times, values):
        if v is None or (last is not None and t - last > gap):
            if xs:
                out.append((xs, ys))
            xs, ys = [], []
        if v is not None:
            xs.append(t)
            ys.append(v)
        last = t
    if xs:
        out.append((xs, ys))
    return out


def time_ticks(span: float) -> list[tuple[float, str]]:
    """A few round ticks over the last `span` seconds, as offsets from now (0 is "now")."""
    step = next((s for s in (15, 30, 60, 120, 300, 600, 900, 1800) if span / s <= 4), 3600)
    ticks: list[tuple[float, str]] = [(0.0, "now")]
    t = step
    while t <= span:
        ticks.append((-t, f"-{t // 60}m" if t % 60 == 0 else f"-{t}s"))
        t += step
    return ticks[::-1]


def _rgb(style: str) -> tuple[int, int, int] | str:
    try:
        color = Style.parse(style).color
    except (ColorParseError, StyleSyntaxError):
        color = None
    if color is None:
        return "default"  # no colour (NO_COLOR): the marker tells the series apart
    triplet = color.get_truecolor()
    return (triplet.red, triplet.green, triplet.blue)


def _tick(value: float, span: float) -> str:
    return f"{value:.0f}" if span >= 10 or float(value).is_integer() else f"{value:.1f}"


class LinePlot(Static):
    """A titled braille line plot of a few series over time, redrawn to its own size."""

    DEFAULT_CSS = "LinePlot { height: 1fr; min-height: 4; }"

    def __init__(self, title: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.title = title
        self.series: list[Series] = []
        self.times: Sequence[float] = ()
        self.now = 0.0
        self.tail = ""
        self.floor: float | None = 0.0
        self.ceiling: float | None = None
        self.stamp: object = None  # what the data is: the plot is built again only when it changes
        self._built: object = None
        self.builds = 0  # times the plot was built: what drawing it cost

    def plot(self, series: list[Series], times: Sequence[float], now: float, stamp: object, tail: str = "",
             floor: float | None = 0.0, ceiling: float | None = None) -> None:
        """Show `series` (values aligned with `times`); `stamp` names the data, so the same data
        drawn again (another pane's poll, a filter change) costs nothing."""
        self.series, self.times, self.now, self.tail = series, times, now, tail
        self.floor, self.ceiling = floor, ceiling
        self.stamp = (stamp, tail, tuple((s.label, s.style) for s in series))
        self.redraw()

    def on_resize(self) -> None:
        self.redraw()

    def legend(self, width: int) -> Text:
        text = safe_text(self.title, width, style="bold")
        if len(self.series) > 1:
            for marker, s in zip(MARKERS, self.series):
                text.append("  ")
                text.append(LEGEND_GLYPH.get(marker, marker), style=s.style)
                text.append(f" {s.label}")
        if self.tail:
            text.append(f"  {self.tail}")
        text.truncate(width, overflow="ellipsis")
        return text

    def redraw(self) -> None:
        width, height = self.content_size.width, self.content_size.height
        if width < 10 or height < 3:
            return  # hidden, or too small to say anything
        key = (self.stamp, width, height)
        if key == self._built:
            return
        self._built = key
        self.builds += 1
        title = self.legend(width)
        times = list(self.times)
        pieces = [(i, run) for i, s in enumerate(self.series) for run in runs(times, list(s.values)[-len(times):])]
        if not times or not pieces:
            self.update(Text.assemble(title, "\n", Text("waiting for data…", style="dim")))
            return
        from plotext._figure import _figure_class

        span = max(60.0, self.now - times[0])
        fig = _figure_class()
        fig._limit_size(False, False)
        fig.plotsize(width, height - 1)
        fig.theme("clear")
        fig.xaxes(False, False)
        fig.yaxes(False, False)
        for i, (xs, ys) in pieces:
            fig.plot([x - self.now for x in xs], ys, marker=MARKERS[i % len(MARKERS)],
                     color=_rgb(self.series[i].style))
        ticks = time_ticks(span)
        fig.xticks([t for t, _ in ticks], [label for _, label in ticks])
        fig.xlim(-span, 0)
        values = [y for _, (_, ys) in pieces for y in ys]
        lo, hi = fitted_range(values, self.floor, self.ceiling)
        if all(float(y).is_integer() for y in values):  # counts: whole numbers on the scale
            lo, hi = float(math.floor(lo)), float(math.ceil(hi))
        fig.ylim(lo, hi)
        levels = [lo, (lo + hi) / 2, hi] if height >= 5 else [lo, hi]
        fig.yticks(levels, [_tick(v, hi - lo) for v in levels])
        body = Text.from_ansi(fig.build(), no_wrap=True)
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
                cls = cells[level]
                lines[row].append(WAIT_CLASS_FILL.get(cls, OTHER_FILL), style=styles.get(cls, ""))
            else:
                lines[row].append("·" if row == height - 1 else " ", style=muted)
    return Text("\n", no_wrap=True).join(lines)


def time_axis(columns: int, seconds: int, muted: str) -> Text:
    """A line of time labels under `columns` columns spanning the last `seconds`."""
    cells = [" "] * columns
    for offset, label in time_ticks(seconds):
        at = min(columns - len(label), max(0, round((seconds + offset) / seconds * columns) - len(label) // 2))
        if all(c == " " for c in cells[max(0, at - 1):at + len(label) + 1]):
            cells[at:at + len(label)] = label
    return Text("".join(cells), style=muted, no_wrap=True, end="")
