"""Time sources. Services take a clock so that tests can step time instead of sleeping."""

from __future__ import annotations

import threading
import time as _time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock time in Unix seconds (what timestamps show)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (what durations use)."""


class SystemClock:
    # the C functions themselves, not wrappers: the statement path reads the clock three times
    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)


class ManualClock:
    """A clock that moves only when told to; both readings move together."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._offset = start
        self._lock = threading.Lock()

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
