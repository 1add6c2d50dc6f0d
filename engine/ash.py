"""Active Session History: one sample of every non-idle session per interval, in a bounded ring."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from .clock import Clock
from .config import EngineConfig
from .sessions import Session, SessionState

SQL_TEXT_CHARS = 200
GROUPS = ("wait_class", "wait_event", "sql_id", "session")


class AshSample(NamedTuple):
    """A tuple: cheap to build (a sample per active session per second) and, holding only atoms,
    left alone by the garbage collector however large the ring grows."""

    sample_id: int
    sample_time: float
    session_id: int
    username: str
    program: str
    state: str
    sql_id: str | None
    sql_text: str | None
    query_id: str | None
    wait_class: str | None
    wait_event: str | None
    blocking_session: int | None
    time_in_state: float
    cpu_time_ms: float  # the session's, as Session.cpu_time_ms() says at the sample


@dataclass(frozen=True)
class AshBucket:
    key: str
    samples: int
    percent: float
    average_active_sessions: float
    example: str | None  # SQL text for sql_id, user@program for session


class ActiveSessionHistory:
    def __init__(self, clock: Clock, config: EngineConfig) -> None:
        self._clock = clock
        self.config = config
        self._mutex = threading.Lock()
        self._ring: deque[AshSample] = deque(maxlen=config.ash_max_samples)
        self._next_id = 1
        self.samples_total = 0
        self.last_sample_at: float | None = None
        self.last_sample_seconds = 0.0

    def configure(self, config: EngineConfig) -> None:
        self.config = config
        with self._mutex:
            if self._ring.maxlen != config.ash_max_samples:
                self._ring = deque(self._ring, maxlen=config.ash_max_samples)

    @property
    def interval_seconds(self) -> float:
        return self.config.ash_interval_ms / 1000

    def sample(self, sessions: Iterable[Session], blockers: dict[int, int] | None = None) -> int:
        """Record every non-idle session now; return how many samples were taken.

        `blockers` maps a waiting session to the session it waits for (LockManager.first_blockers);
        without it each waiting session asks the lock manager itself."""
        started = self._clock.monotonic()
        now = self._clock.time()
        idle, waiting = SessionState.IDLE, SessionState.WAITING
        batch: list[AshSample] = []
        # locals: this loop runs for every session each second. tuple.__new__ skips the NamedTuple's
        # Python-level __new__, which costs more than the rest of a sample together.
        append, new, sample = batch.append, tuple.__new__, AshSample
        sample_id = self._next_id
        for s in sessions:
            state = s.state
            if state is idle or s.closed:
                continue
            stmt = s.statement
            blocker = None
            if state is waiting:
                if blockers is None:
                    first = s.blocking_sessions
                    blocker = first[0] if first else None
                else:
                    blocker = blockers.get(s.id)
            if stmt is not None:
                sql, sql_id, query_id = stmt.sql, stmt.sql_id, stmt.query_id
                if len(sql) > SQL_TEXT_CHARS:
                    sql = sql[: SQL_TEXT_CHARS - 1] + "…"
            else:
                sql = sql_id = query_id = None
            append(new(sample, (sample_id, now, s.id, s.user, s.application_name, state, sql_id, sql,
                                query_id, s.wait_class, s.wait_event, blocker, now - s.state_since,
                                s.cpu_time_ms())))
            sample_id += 1
        horizon = now - self.config.ash_retention_secs
        with self._mutex:
            ring = self._ring
            ring.extend(batch)
            while ring and ring[0].sample_time < horizon:
                ring.popleft()
            self._next_id = sample_id
        self.samples_total += len(batch)
        self.last_sample_at = now
        self.last_sample_seconds = self._clock.monotonic() - started
        return len(batch)

    def window(self, start: float | None = None, end: float | None = None, *, session_id: int | None = None,
               wait_class: str | None = None, wait_event: str | None = None, sql_id: str | None = None,
               state: str | None = None) -> list[AshSample]:
        """Samples with start <= sample_time <= end (newest last) matching every given filter."""
        out = []
        with self._mutex:
            # newest first, stopping at the window's start: cost follows the window, not the ring
            for s in reversed(self._ring):
                if start is not None and s.sample_time < start:
                    break
                if ((end is None or s.sample_time <= end)
                        and (session_id is None or s.session_id == session_id)
                        and (wait_class is None or s.wait_class == wait_class)
                        and (wait_event is None or s.wait_event == wait_event)
                        and (sql_id is None or s.sql_id == sql_id)
                        and (state is None or s.state == state)):
                    out.append(s)
        out.reverse()
        return out

    def top(self, group_by: str, start: float | None = None, end: float | None = None, limit: int = 10,
            **filters: object) -> list[AshBucket]:
        """The largest groups of samples in the window, with average active sessions for each."""
        if group_by not in GROUPS:
            raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
        samples = self.window(start, end, **filters)  # type: ignore[arg-type]
        if not samples:
            return []
        keyed = {
            "wait_class": lambda s: s.wait_class or "CPU",
            "wait_event": lambda s: s.wait_event or s.wait_class or "CPU",
            "sql_id": lambda s: s.sql_id or "(none)",
            "session": lambda s: str(s.session_id),
        }[group_by]
        counts = Counter(keyed(s) for s in samples)
        examples: dict[str, str | None] = {}
        for s in samples:
            key = keyed(s)
            if key not in examples or examples[key] is None:
                examples[key] = (s.sql_text if group_by == "sql_id"
                                 else f"{s.username}@{s.program}" if group_by == "session" else None)
        first = start if start is not None else samples[0].sample_time
        # each sample stands for one interval, so n samples in a row cover n intervals, not n - 1
        last = end if end is not None else samples[-1].sample_time + self.interval_seconds
        seconds = max(last - first, self.interval_seconds)
        total = len(samples)
        return [AshBucket(key, n, 100 * n / total, n * self.interval_seconds / seconds, examples[key])
                for key, n in counts.most_common(limit)]
