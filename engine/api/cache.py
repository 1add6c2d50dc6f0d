"""Response bodies built once per engine tick and shared by every client that asks within it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine import Engine

CAPACITY = 64  # distinct requests kept; the parameters are bounded, but their combinations are many


def engine_tick(engine: Engine) -> int:
    """The engine's sampling tick (ash_interval_ms) at this moment of its clock."""
    return int(engine.clock.time() * 1000 // max(1, engine.config.ash_interval_ms))


@dataclass
class _Entry:
    version: Hashable
    body: bytes | None = None
    building: threading.Lock = field(default_factory=threading.Lock)


class TickCache:
    """Serialized bodies by request key, valid while the version they were built for holds.

    The version names what the body shows (the engine's tick, the set of sessions): many consoles
    watching one server ask the same thing every tick, and serializing a thousand sessions costs far
    more than handing over the same bytes again. When several ask at once for a body not built yet,
    one builds it and the others wait for that one instead of building it too."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._mutex = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self.builds = 0

    def get(self, key: Hashable, version: Hashable, build: Callable[[], bytes]) -> bytes:
        with self._mutex:
            entry = self._entries.get(key)
            if entry is None or entry.version != version:
                entry = self._entries[key] = _Entry(version)
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
            self._entries.move_to_end(key)
            if entry.body is not None:
                return entry.body
        with entry.building:
            if entry.body is None:
                entry.body = build()
                with self._mutex:
                    self.builds += 1
            return entry.body
