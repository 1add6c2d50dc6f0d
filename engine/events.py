"""A small in-process event bus, so services react to each other without importing each other.

Topics in use (payloads are the publisher's own typed objects):
- "deadlock":          locks.Deadlock, after the victim was chosen
- "statement_failed":  statements.Statement, when a statement ends with an error
- "alert_fired", "alert_resolved": from the alerts service
- "backup_completed", "backup_failed": backup_records.BackupRecord (a copy), when a backup job ends
Handlers run in the publisher's thread and must be quick; a failing handler is logged, never raised.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

log = logging.getLogger("engine.events")

Handler = Callable[[Any], None]


class EventBus:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, topic: str, handler: Handler) -> None:
        with self._mutex:
            self._handlers[topic].append(handler)

    def has_subscribers(self, topic: str) -> bool:
        return bool(self._handlers.get(topic))

    def publish(self, topic: str, payload: Any) -> None:
        with self._mutex:
            handlers = list(self._handlers.get(topic, ()))
        for handler in handlers:
            try:
                handler(payload)
            except Exception:  # one broken subscriber must not break the publisher
                log.exception("handler %r for %s failed", handler, topic)
