"""The line that says the server is unreachable, since when, and how old the data on screen is."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from ..format import duration
from ..safe import safe_text


class Banner(Static):
    DEFAULT_CSS = """
    Banner { display: none; height: auto; max-height: 2; background: $rdb-banner-bg; color: $text;
             text-style: bold; padding: 0 1; }
    Banner.shown { display: block; }
    """

    def show_down(self, since: float, reason: str, retry_in: float, data_from: float | None, now: float) -> None:
        text = Text.assemble(
            "Server unreachable since ", time.strftime("%H:%M:%S", time.localtime(since)),
            f" ({duration(now - since)} ago). ",
            "Retrying every ", duration(retry_in), ". ",
            ("No data yet." if data_from is None else
             f"Showing data from {time.strftime('%H:%M:%S', time.localtime(data_from))}"
             f" ({duration(now - data_from)} old)."),
        )
        text.append("  ")
        text.append_text(safe_text(reason, 80))
        self.update(text)
        self.add_class("shown")

    def hide(self) -> None:
        self.remove_class("shown")
