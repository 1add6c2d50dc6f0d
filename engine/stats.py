"""Statement statistics: per fingerprint (like pg_stat_statements) and global, plus the slow log."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from .clock import Clock
from .config import EngineConfig
from .fingerprint import normalize
from .statements import Statement

# Log-spaced latency buckets: 16 per doubling from 1 µs, so an estimate is within ~2.2 % of the
# true value, in a fixed 640-slot array whatever the number of calls.
_PER_DOUBLING = 16
_MIN_MS = 0.001
_BUCKETS = 40 * _PER_DOUBLING


class LatencyHistogram:
    __slots__ = ("counts", "total", "sum_ms")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.total = 0
        self.sum_ms = 0.0

    @staticmethod
    def _bucket(ms: float) -> int:
        if ms <= _MIN_MS:
            return 0
        return min(_BUCKETS - 1, int(math.log2(ms / _MIN_MS) * _PER_DOUBLING))

    def record(self, ms: float) -> None:
        self.counts[self._bucket(ms)] += 1
        self.total += 1
        self.sum_ms += ms

    def copy(self) -> LatencyHistogram:
        out = LatencyHistogram()
        out.counts, out.total, out.sum_ms = list(self.counts), self.total, self.sum_ms
        return out

    def cumulative(self, bounds_ms: Sequence[float]) -> list[int]:
        """Observations at or below each bound (ascending), as Prometheus buckets count them.

        Only log buckets lying wholly below a bound are counted, so a bound that falls inside a
        bucket leaves that bucket's observations (all within ~4.4 % above it) to the next bound:
        the figure errs towards slower, never faster.
        """
        out, seen, done = [], 0, 0
        for bound in bounds_ms:
            end = self._bucket(bound)
            seen += sum(self.counts[done:end])
            done = max(done, end)
            out.append(seen)
        return out

    def percentile(self, p: float) -> float | None:
        if not self.total:
            return None
        rank = max(1, math.ceil(self.total * p / 100))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                # geometric middle of the bucket
                return _MIN_MS * 2 ** ((i + 0.5) / _PER_DOUBLING)
        return None


@dataclass
class FingerprintStats:
    sql_id: str
    query: str  # normalised text
    calls: int = 0
    errors: int = 0
    rows: int = 0  # returned plus written
    rows_returned: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    total_ms: float = 0.0
    min_ms: float = math.inf
    max_ms: float = 0.0
    fullscan_steps: int = 0
    sorts: int = 0
    vm_steps: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0

    @property
    def cache_hit_ratio(self) -> float | None:
        total = self.cache_hits + self.cache_misses
        return self.cache_hits / total if total else None

    def percentile(self, p: float) -> float | None:
        value = self.histogram.percentile(p)
        # a bucket's middle may stray past the real extremes; clamp so p99 <= max
        return None if value is None else min(max(value, self.min_ms), self.max_ms)


@dataclass(frozen=True)
class SlowStatement:
    query_id: str
    session_id: int
    sql_id: str
    sql: str
    started_at: float
    duration_ms: float
    rows: int
    error_code: str | None
    username: str | None = None


@dataclass(frozen=True)
class Rates:
    statements_per_second: float
    transactions_per_second: float


class StatementStats:
    def __init__(self, clock: Clock, config: EngineConfig) -> None:
        self._clock = clock
        self._config = config
        self._mutex = threading.Lock()
        self._by_id: dict[str, FingerprintStats] = {}
        self.statements_total = 0
        self.errors_total = 0
        self.rows_read_total = 0
        self.rows_written_total = 0
        self.cache_hits_total = 0
        self.cache_misses_total = 0
        self.latency = LatencyHistogram()
        self.evicted_fingerprints = 0
        self.slow_log: deque[SlowStatement] = deque(maxlen=config.slow_query_log_size)
        self._ticks: deque[tuple[float, int, int]] = deque(maxlen=11)

    def configure(self, config: EngineConfig) -> None:
        self._config = config
        if self.slow_log.maxlen != config.slow_query_log_size:
            self.slow_log = deque(self.slow_log, maxlen=config.slow_query_log_size)

    def record(self, stmt: Statement) -> None:
        ms = stmt.duration_ms or 0.0
        now = self._clock.time()
        with self._mutex:
            self.statements_total += 1
            self.rows_read_total += stmt.rows
            self.rows_written_total += stmt.rows_written
            self.cache_hits_total += stmt.cache_hits
            self.cache_misses_total += stmt.cache_misses
            self.latency.record(ms)
            fp = self._by_id.get(stmt.sql_id)
            if fp is None:
                if len(self._by_id) >= self._config.stats_max_fingerprints:
                    self._evict()
                fp = self._by_id[stmt.sql_id] = FingerprintStats(stmt.sql_id, normalize(stmt.sql), first_seen=now)
            fp.calls += 1
            fp.rows += stmt.rows + stmt.rows_written
            fp.rows_returned += stmt.rows
            fp.cache_hits += stmt.cache_hits
            fp.cache_misses += stmt.cache_misses
            fp.total_ms += ms
            fp.min_ms = min(fp.min_ms, ms)
            fp.max_ms = max(fp.max_ms, ms)
            fp.fullscan_steps += stmt.fullscan_steps
            fp.sorts += stmt.sorts
            fp.vm_steps += stmt.vm_steps
            fp.last_seen = now
            fp.histogram.record(ms)
            if stmt.error_code is not None:
                fp.errors += 1
                self.errors_total += 1
        if ms >= self._config.slow_query_threshold_ms:
            self.slow_log.append(SlowStatement(stmt.query_id, stmt.session_id, stmt.sql_id, stmt.sql,
                                               stmt.started_at, ms, stmt.rows, stmt.error_code, stmt.username))

    def _evict(self) -> None:
        """Drop the least-called tenth, as pg_stat_statements does when it is full."""
        victims = sorted(self._by_id.values(), key=lambda f: (f.calls, f.last_seen))
        for fp in victims[: max(1, len(victims) // 10)]:
            del self._by_id[fp.sql_id]
            self.evicted_fingerprints += 1

    def fingerprints(self) -> list[FingerprintStats]:
        with self._mutex:
            return list(self._by_id.values())

    def fingerprint(self, sql_id: str) -> FingerprintStats | None:
        return self._by_id.get(sql_id)

    def latency_snapshot(self) -> LatencyHistogram:
        """A consistent copy of the all-statement histogram (its count equals statements_total)."""
        with self._mutex:
            return self.latency.copy()

    @property
    def cache_hit_ratio(self) -> float | None:
        total = self.cache_hits_total + self.cache_misses_total
        return self.cache_hits_total / total if total else None

    def tick(self, transactions_total: int) -> None:
        """Called about once a second; rates are taken over the last ten seconds."""
        self._ticks.append((self._clock.monotonic(), self.statements_total, transactions_total))

    def rates(self) -> Rates:
        if len(self._ticks) < 2:
            return Rates(0.0, 0.0)
        (t0, s0, x0), (t1, s1, x1) = self._ticks[0], self._ticks[-1]
        span = t1 - t0
        if span <= 0:
            return Rates(0.0, 0.0)
        return Rates((s1 - s0) / span, (x1 - x0) / span)
