"""A one-line Static (the status line, pane captions) that is repainted only when its text changes.

Static.update asks for a layout of the whole screen each time, and the console updated its status
line and the visible pane's caption every tick (the status twice a second) even when nothing in
them had changed; measured at 1,000 sessions that was four full layouts a second where one would
do. A Line's height is fixed in CSS, so new text never needs a layout, only a repaint.
"""

from __future__ import annotations

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
