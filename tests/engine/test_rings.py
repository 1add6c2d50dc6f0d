"""Readers of the engine's shared rings work on a copy: a writer appending meanwhile cannot break a dump.

The writer is simulated deterministically: an entry whose field, when the reader copies it
(dataclasses.asdict deep-copies fields it does not know), appends to the ring the way the engine's
own writer does, under the ring owner's mutex: exactly the moment the deadlock detector or a
session's thread appends while a dump is halfway through the ring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine import Engine, dumps
from engine.locks import Deadlock
from engine.stats import SlowStatement


class AppendsWhenCopied:
    """A field value whose deep copy calls `append` once: the ring grows mid-read."""

    def __init__(self, append: Callable[[], None]) -> None:
        self.append = append
        self.copies = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> str:
        self.copies += 1
        if self.copies == 1:
            self.append()
        return "copied"


def test_a_lock_dump_survives_the_detector_appending_a_deadlock(engine: Engine) -> None:
    locks = engine.locks

    def detector_appends() -> None:
        with locks._mutex:
            locks._deadlocks.append(Deadlock(2, 2.0, 1, 1, ()))

    hook = AppendsWhenCopied(detector_appends)
    with locks._mutex:
        locks._deadlocks.append(Deadlock(1, 1.0, hook, 1, ()))  # type: ignore[arg-type]

    part = dumps.lock_part(engine)

    assert hook.copies == 1
    assert [d["deadlock_id"] for d in part["recent_deadlocks"]] == [1]  # the history as it was when read
    assert [d.deadlock_id for d in locks.deadlocks] == [1, 2]


def test_an_execution_stats_dump_survives_a_session_logging_a_slow_statement(engine: Engine) -> None:
    stats = engine.stats

    def session_appends() -> None:
        with stats._mutex:
            stats._slow_log.append(SlowStatement("q2", 1, "s2", "SELECT 2", 2.0, 9e9, 0, None))

    hook = AppendsWhenCopied(session_appends)
    with stats._mutex:
        stats._slow_log.append(SlowStatement("q1", 1, "s1", hook, 1.0, 9e9, 0, None))  # type: ignore[arg-type]

    part = dumps.execution_stats_part(engine)

    assert [s["query_id"] for s in part["slow_statements"]] == ["q1"]
    assert [s.query_id for s in stats.slow_log] == ["q1", "q2"]
    assert hook.copies == 1
