"""A one-line Static (the status line, pane captions) that is repainted only when its text changes,
and `fit`, which keeps the parts of such a line that matter most when the terminal is narrow.

Static.update asks for a layout of the whole screen each time, and the console updated its status
line and the visible pane's caption every tick (the status twice a second) even when nothing in
them had changed; measured at 1,000 sessions that was four full layouts a second where one would
do. A Line's height is fixed in CSS, so new text never needs a layout, only a repaint.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static


class Line(Static):
    DEFAULT_CSS = "Line { height: 1; }"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._text: Text | None = None

    def show(self, text: Text) -> None:
        if text == self._text:
            return
        self._text = text
        self.update(text, layout=False)


@dataclass(frozen=True)
class Part:
    """One part of a line of parts (the status line): a shorter form, and how early it may go."""

    text: Text
    short: Text | None = None  # used before anything is dropped for room
    drop: int = 0  # 0: always kept; the highest numbers are shortened and dropped first


def fit(parts: list[Part], width: int, sep: str = " · ") -> Text:
    """The parts joined within `width` cells: from the least important up, each level is first
    shortened, then dropped, until the line fits; a line of kept parts still too wide is cut."""
    chosen = [p.text for p in parts]
    kept = list(range(len(parts)))

    def wide() -> bool:
        return sum(chosen[i].cell_len for i in kept) + len(sep) * (len(kept) - 1) > width

    for level in sorted({p.drop for p in parts}, reverse=True):
        for i in kept:
            if parts[i].drop == level and parts[i].short is not None and wide():
                chosen[i] = parts[i].short
        if level:
            for i in [i for i in kept if parts[i].drop == level]:
                if wide():
                    kept.remove(i)
    line = Text(sep).join(chosen[i] for i in kept)
    line.truncate(max(1, width), overflow="ellipsis")
    return line
