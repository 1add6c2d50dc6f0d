"""Statement statistics: per fingerprint (like pg_stat_statements) and global, plus the slow log."""

from __future__ import annotations

import math
import operator
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .clock import Clock
from .config import EngineConfig
from .fingerprint import normalize
from .statements import Statement

# Log-spaced latency buckets: 16 per doubling from 1 µs, so an estimate is within ~2.2 % of the
# true value, in a fixed 640-slot array whatever the number of calls.
_PER_DOUBLING = 16
_MIN_MS = 0.001
_BUCKETS = 40 * _PER_DOUBLING


def bucket_of(ms: np.ndarray) -> np.ndarray:
    """LatencyHistogram._bucket for a whole array at once."""
    with np.errstate(divide="ignore"):
        raw = np.floor(np.log2(np.maximum(ms, _MIN_MS) / _MIN_MS) * _PER_DOUBLING)
    return np.clip(np.where(ms <= _MIN_MS, 0, raw), 0, _BUCKETS - 1).astype(np.intp)


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

    def add(self, counts: np.ndarray, sum_ms: float) -> None:
        """Merge a batch's bucket counts (from bucket_of) into this histogram."""
        total = int(counts.sum())
        if total:
            for i in np.flatnonzero(counts).tolist():
                self.counts[i] += int(counts[i])
            self.total += total
            self.sum_ms += sum_ms

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
    # SQLite's profile, summed over the profiled calls only (see Session: a sample, not every call)
    profiled_calls: int = 0
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

    def per_profiled_call(self, total: int) -> float | None:
        return total / self.profiled_calls if self.profiled_calls else None

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


_FIELDS = operator.attrgetter("sql_id", "sql", "duration_ms", "rows", "rows_written", "error_code", "started_at")


class StatementStats:
    """Per-fingerprint and global statement statistics.

    Recording is one tuple appended to a deque in the session's thread; `drain` aggregates the
    backlog with numpy in a few vectorised passes. Every reader drains first (the stats service
    does each second), so figures are exact whenever they are read, while the statement path pays
    well under a microsecond for them.
    """

    def __init__(self, clock: Clock, config: EngineConfig) -> None:
        self._clock = clock
        self._config = config
        self._mutex = threading.Lock()
        self._pending: deque[Statement] = deque()
        self._profiled: deque[Statement] = deque()
        self._by_id: dict[str, FingerprintStats] = {}
        self._statements_total = 0
        self._errors_total = 0
        self._rows_read_total = 0
        self._rows_written_total = 0
        self._cache_hits_total = 0
        self._cache_misses_total = 0
        self._latency = LatencyHistogram()
        self.evicted_fingerprints = 0
        self._slow_log: deque[SlowStatement] = deque(maxlen=config.slow_query_log_size)
        self._ticks: deque[tuple[float, int, int]] = deque(maxlen=11)

    def configure(self, config: EngineConfig) -> None:
        self.drain()
        self._config = config
        with self._mutex:
            if self._slow_log.maxlen != config.slow_query_log_size:
                self._slow_log = deque(self._slow_log, maxlen=config.slow_query_log_size)

    def record(self, stmt: Statement) -> None:
        ms = stmt.duration_ms or 0.0
        pending = self._pending
        pending.append(stmt)
        if ms >= self._config.slow_query_threshold_ms:
            self._slow_log.append(SlowStatement(stmt.query_id, stmt.session_id, stmt.sql_id, stmt.sql,
                                                stmt.started_at, ms, stmt.rows, stmt.error_code, stmt.username))
        if stmt.vm_steps is not None:
            self._profiled.append(stmt)
        if len(pending) > 256:  # nobody read for a while: keep the backlog bounded
            self.drain()

    def add_cache_reads(self, hits: int, misses: int) -> None:
        """Page-cache hits and misses since a session's previous report."""
        with self._mutex:
            self._cache_hits_total += hits
            self._cache_misses_total += misses

    def drain(self) -> None:
        if not self._pending and not self._profiled:
            return
        with self._mutex:
            pending, popleft = self._pending, self._pending.popleft
            batch = [popleft() for _ in range(len(pending))]
            if batch:
                self._aggregate(batch)
            profiled, popleft = self._profiled, self._profiled.popleft
            for stmt in [popleft() for _ in range(len(profiled))]:
                fp = self._by_id.get(stmt.sql_id)
                if fp is not None:
                    fp.profiled_calls += 1
                    fp.fullscan_steps += stmt.fullscan_steps or 0
                    fp.sorts += stmt.sorts or 0
                    fp.vm_steps += stmt.vm_steps or 0
                    fp.cache_hits += stmt.cache_hits or 0
                    fp.cache_misses += stmt.cache_misses or 0

    def _aggregate(self, batch: list[Statement]) -> None:
        ids, texts, ms_t, rows_t, written_t, err_t, started_t = zip(*map(_FIELDS, batch))
        err_t = tuple(e is not None for e in err_t)
        ms = np.array(ms_t, dtype=np.float64)
        rows = np.array(rows_t, dtype=np.int64)
        written = np.array(written_t, dtype=np.int64)
        errors = np.array(err_t, dtype=np.int64)
        ends = np.array(started_t, dtype=np.float64) + ms / 1000
        buckets = bucket_of(ms)
        self._statements_total += len(batch)
        self._rows_read_total += int(rows.sum())
        self._rows_written_total += int(written.sum())
        self._errors_total += int(errors.sum())
        self._latency.add(np.bincount(buckets, minlength=_BUCKETS), float(ms.sum()))
        # one group per fingerprint in this batch: a handful, however many statements
        order: dict[str, list[int]] = {}
        for i, key in enumerate(ids):
            order.setdefault(key, []).append(i)
        by_id, limit = self._by_id, self._config.stats_max_fingerprints
        for key, positions in order.items():
            fp = by_id.get(key)
            if fp is None:
                if len(by_id) >= limit:
                    self._evict()
                first = positions[0]
                fp = by_id[key] = FingerprintStats(key, normalize(texts[first]), first_seen=started_t[first])
            idx = np.array(positions, dtype=np.intp)
            fms = ms[idx]
            fp.calls += len(positions)
            frows, fwritten = int(rows[idx].sum()), int(written[idx].sum())
            fp.rows += frows + fwritten
            fp.rows_returned += frows
            fp.errors += int(errors[idx].sum())
            fp.total_ms += float(fms.sum())
            fp.min_ms = min(fp.min_ms, float(fms.min()))
            fp.max_ms = max(fp.max_ms, float(fms.max()))
            fp.last_seen = max(fp.last_seen, float(ends[idx].max()))
            fp.histogram.add(np.bincount(buckets[idx], minlength=_BUCKETS), float(fms.sum()))

    def _total(name: str) -> property:  # type: ignore[misc]  # noqa: N805 - a property factory
        def get(self: StatementStats) -> int:
            self.drain()
            return getattr(self, name)

        return property(get)

    statements_total = _total("_statements_total")
    errors_total = _total("_errors_total")
    rows_read_total = _total("_rows_read_total")
    rows_written_total = _total("_rows_written_total")
    cache_hits_total = _total("_cache_hits_total")
    cache_misses_total = _total("_cache_misses_total")
    del _total

    @property
    def latency(self) -> LatencyHistogram:
        self.drain()
        return self._latency

    @property
    def slow_log(self) -> deque[SlowStatement]:
        return self._slow_log

    def _evict(self) -> None:
        """Drop the least-called tenth, as pg_stat_statements does when it is full."""
        victims = sorted(self._by_id.values(), key=lambda f: (f.calls, f.last_seen))
        for fp in victims[: max(1, len(victims) // 10)]:
            del self._by_id[fp.sql_id]
            self.evicted_fingerprints += 1

    def fingerprints(self) -> list[FingerprintStats]:
        self.drain()
        with self._mutex:
            return list(self._by_id.values())

    def fingerprint(self, sql_id: str) -> FingerprintStats | None:
        self.drain()
        return self._by_id.get(sql_id)

    def latency_snapshot(self) -> LatencyHistogram:
        """A consistent copy of the all-statement histogram (its count equals statements_total)."""
        self.drain()
        with self._mutex:
            return self._latency.copy()

    @property
    def cache_hit_ratio(self) -> float | None:
        with self._mutex:
            total = self._cache_hits_total + self._cache_misses_total
            return self._cache_hits_total / total if total else None

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
