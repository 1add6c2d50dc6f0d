"""The lines that say why the data on screen is not live: the server is unreachable (since when,
how often it is retried), or it refused our credentials (not retried). Line one says what and
since when, line two the reason, each cut to the width; the status line says how old the data is."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widgets import Static

from ..format import duration
from ..safe import safe_text
from .line import Part, fit


class Banner(Static):
    DEFAULT_CSS = """
    Banner { display: none; height: auto; max-height: 2; background: $rdb-banner-bg; color: $text;
             text-style: bold; padding: 0 1; }
    Banner.shown { display: block; }
    """

    def _width(self) -> int:
        return self.content_size.width or max(20, self.app.size.width - 2)

    def _show(self, first: list[Part], reason: str) -> None:
        width = self._width()
        self.update(Text.assemble(fit(first, width), "\n", safe_text(reason, width)))
        self.add_class("shown")

    def show_down(self, since: float, reason: str, retry_in: float, data_from: float | None, now: float) -> None:
        at = time.strftime("%H:%M:%S", time.localtime(since))
        self._show([Part(Text(f"Server unreachable since {at} ({duration(now - since)})"),
                         Text(f"Unreachable since {at}")),
                    Part(Text(f"retrying every {duration(retry_in)}"), Text(f"retry {duration(retry_in)}"), drop=1),
                    Part(Text("no data yet" if data_from is None else
                              f"showing data from {time.strftime('%H:%M:%S', time.localtime(data_from))}"),
                         drop=2)], reason)

    def show_refused(self, reason: str, data_from: float | None) -> None:
        self._show([Part(Text("Credentials refused: not retrying"), Text("Credentials refused")),
                    Part(Text("r: try again, q: quit"), drop=1),
                    Part(Text("no data yet" if data_from is None else
                              f"showing data from {time.strftime('%H:%M:%S', time.localtime(data_from))}"),
                         drop=2)], f"credentials refused: {reason}")

    def hide(self) -> None:
        self.remove_class("shown")
