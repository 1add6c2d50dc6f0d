"""Statement statistics: per fingerprint (like pg_stat_statements) and global, plus the slow log."""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .clock import Clock
from .config import EngineConfig
from .fingerprint import normalize
from .statements import Statement

# Log-spaced latency buckets: 16 per doubling from 1 µs, so an estimate is within ~2.2 % of the
# true value, in a fixed 640-slot array whatever the number of calls.
_PER_DOUBLING = 16
_MIN_MS = 0.001
_BUCKETS = 40 * _PER_DOUBLING
_PER_MS = 1 / _MIN_MS
_log2 = math.log2


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
        return min(_BUCKETS - 1, int(_log2(ms * _PER_MS) * _PER_DOUBLING))  # as engine/_accounting.c does

    def record(self, ms: float) -> None:
        self.counts[self._bucket(ms)] += 1
        self.total += 1
        self.sum_ms += ms

    def add_sparse(self, counts: dict[int, int], sum_ms: float) -> None:
        """Merge {bucket: count} (an accumulator's histogram) into this one."""
        for bucket, n in counts.items():
            self.counts[bucket] += n
            self.total += n
        self.sum_ms += sum_ms

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
    cpu_ms: float = 0.0  # see Session: measured, or a light text's measured mean
    total_ms: float = 0.0
    min_ms: float = math.inf
    max_ms: float = 0.0
    # SQLite's profile, summed over the profiled calls only (see Session: a sample, not every call)
    profiled_calls: int = 0
    fullscan_steps: int = 0
    sorts: int = 0
    vm_steps: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    pages_written: int = 0
    plan: str | None = None  # EXPLAIN QUERY PLAN, as plan_text() lays it out
    plan_captured_at: float | None = None  # when the plan last changed (or was first taken)
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


class PyAccumulator:
    """One fingerprint's running figures in one session: updated by that session's thread alone,
    so recording a statement takes no lock and allocates nothing; readers add them up.
    The reference for engine/_accounting.c's Accumulator, which is used instead when it is built."""

    __slots__ = ("sql", "calls", "total_ms", "min_ms", "max_ms", "cpu_ms", "rows", "written", "errors", "hist",
                 "first_seen", "last_end")  # last_end: when the latest call started (what last_seen shows)

    def __init__(self, sql: str, first_seen: float) -> None:
        self.sql = sql
        self.calls = self.rows = self.written = self.errors = 0
        self.total_ms = self.max_ms = self.cpu_ms = 0.0
        self.min_ms = math.inf
        self.hist: defaultdict[int, int] = defaultdict(int)  # sparse LatencyHistogram buckets
        self.first_seen = self.last_end = first_seen

    def merge(self, other: PyAccumulator) -> None:
        self.calls += other.calls
        self.rows += other.rows
        self.written += other.written
        self.errors += other.errors
        self.total_ms += other.total_ms
        self.cpu_ms += other.cpu_ms
        self.min_ms = min(self.min_ms, other.min_ms)
        self.max_ms = max(self.max_ms, other.max_ms)
        for bucket, n in list(other.hist.items()):
            self.hist[bucket] = self.hist.get(bucket, 0) + n
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_end = max(self.last_end, other.last_end)


def py_record_call(accs: dict[str, PyAccumulator], key: str, ms: float, cpu_ms: float, rows: int, written: int,
                   failed: bool, started_at: float) -> bool:
    """Count one call into accs[key]; False (and nothing counted) when there is no such accumulator.
    The one piece of statistics work that runs for every statement: plain arithmetic, no lock."""
    acc = accs.get(key)
    if acc is None:
        return False
    acc.calls += 1
    acc.total_ms += ms
    acc.cpu_ms += cpu_ms
    if ms < acc.min_ms:
        acc.min_ms = ms
    if ms > acc.max_ms:
        acc.max_ms = ms
    acc.rows += rows
    acc.written += written
    if failed:
        acc.errors += 1
    acc.hist[LatencyHistogram._bucket(ms)] += 1
    acc.last_end = started_at
    return True


try:  # the same in C: built at install time when the machine has a C compiler (pyproject.toml)
    from ._accounting import Accumulator, record_call
except ImportError:
    Accumulator, record_call = PyAccumulator, py_record_call  # type: ignore[misc,assignment]
NATIVE_ACCOUNTING = Accumulator is not PyAccumulator

Accumulators = dict[str, Accumulator]


class Totals(NamedTuple):
    statements: int
    errors: int
    rows_read: int
    rows_written: int
    fingerprints: int  # as many as fingerprints() would list


@dataclass
class _Profile:
    calls: int = 0
    fullscan_steps: int = 0
    sorts: int = 0
    vm_steps: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    pages_written: int = 0
    plan: str | None = None
    plan_captured_at: float | None = None
    plan_generation: int = -1  # SqlTexts.generation the plan was taken under


class StatementStats:
    """Per-fingerprint and global statement statistics.

    Each session records into its own Accumulators (no lock, no allocation per statement); a
    closing session hands them over to `_retired`. Readers add everything up, so figures are
    exact whenever they are read, while the statement path pays a fraction of a microsecond.
    """

    def __init__(self, clock: Clock, config: EngineConfig) -> None:
        self._clock = clock
        self._config = config
        self.slow_ms = config.slow_query_threshold_ms
        self._mutex = threading.Lock()
        self._live: dict[int, Accumulators] = {}  # by id(): dicts are not hashable
        self._retired: Accumulators = {}
        self._profiles: dict[str, _Profile] = {}
        self._cache_hits_total = 0
        self._cache_misses_total = 0
        self.evicted_fingerprints = 0
        self._slow_log: deque[SlowStatement] = deque(maxlen=config.slow_query_log_size)
        self._ticks: deque[tuple[float, int, int]] = deque(maxlen=11)
        self._direct = self.accumulators()  # for statements recorded without a session

    def configure(self, config: EngineConfig) -> None:
        self._config = config
        self.slow_ms = config.slow_query_threshold_ms
        with self._mutex:
            if self._slow_log.maxlen != config.slow_query_log_size:
                self._slow_log = deque(self._slow_log, maxlen=config.slow_query_log_size)

    # -- recording (a session's own thread) ----------------------------------------------------

    def accumulators(self) -> Accumulators:
        accs: Accumulators = {}
        with self._mutex:
            self._live[id(accs)] = accs
        return accs

    def retire(self, accs: Accumulators) -> None:
        """A session ends: fold its figures into the engine's own."""
        with self._mutex:
            self._live.pop(id(accs), None)
            self._fold(accs)

    def _fold(self, accs: Accumulators) -> None:
        retired = self._retired
        for key, acc in list(accs.items()):
            mine = retired.get(key)
            if mine is None:
                retired[key] = acc
            else:
                mine.merge(acc)
        accs.clear()
        while len(retired) > self._config.stats_max_fingerprints:
            self._evict()

    def record(self, stmt: Statement, accs: Accumulators | None = None) -> None:
        """Count a finished statement into the session's accumulators (or the engine's own), and
        into the slow log and the profiles when it belongs there. A session's thread calls
        `record_call` itself for the commonest case and this only for the rest (see Session)."""
        if accs is None:
            accs = self._direct
        ms = stmt.duration_ms or 0.0
        if stmt.sql_id not in accs:
            if len(accs) >= self._config.stats_max_fingerprints:
                with self._mutex:  # a session running endless distinct texts: hand them over
                    self._fold(accs)
            accs[stmt.sql_id] = Accumulator(stmt.sql, stmt.started_at)
        record_call(accs, stmt.sql_id, ms, stmt.cpu_ms or 0.0, stmt.rows, stmt.rows_written,
                    stmt.error_code is not None, stmt.started_at)
        if ms >= self.slow_ms:
            slow = SlowStatement(stmt.query_id, stmt.session_id, stmt.sql_id, stmt.sql, stmt.started_at, ms,
                                 stmt.rows, stmt.error_code, stmt.username)
            with self._mutex:
                self._slow_log.append(slow)
        if stmt.vm_steps is not None:
            self._add_profile(stmt)

    def _add_profile(self, stmt: Statement) -> None:
        with self._mutex:
            p = self._profiles.get(stmt.sql_id)
            if p is None:
                p = self._profiles[stmt.sql_id] = _Profile()
            p.calls += 1
            p.fullscan_steps += stmt.fullscan_steps or 0
            p.sorts += stmt.sorts or 0
            p.vm_steps += stmt.vm_steps or 0
            p.cache_hits += stmt.cache_hits or 0
            p.cache_misses += stmt.cache_misses or 0
            p.pages_written += stmt.pages_written or 0
            if stmt.plan_generation is not None:
                p.plan_generation = stmt.plan_generation
                if stmt.plan != p.plan or p.plan_captured_at is None:
                    p.plan, p.plan_captured_at = stmt.plan, stmt.started_at

    def recorded_plan(self, sql_id: str) -> tuple[str | None, float | None]:
        """A fingerprint's plan and when it was captured; (None, None) before one was."""
        p = self._profiles.get(sql_id)
        return (None, None) if p is None else (p.plan, p.plan_captured_at)

    def plan_due(self, sql_id: str, generation: int) -> bool:
        """Whether a fingerprint's plan is missing or was taken before the latest schema change."""
        p = self._profiles.get(sql_id)  # one dict read, under the GIL: no lock on the statement path
        return p is None or p.plan_generation != generation

    def add_cache_reads(self, hits: int, misses: int) -> None:
        """Page-cache hits and misses since a session's previous report."""
        with self._mutex:
            self._cache_hits_total += hits
            self._cache_misses_total += misses

    # -- reading --------------------------------------------------------------------------------

    def _sources(self) -> list[Accumulators]:
        with self._mutex:
            return [self._retired, *self._live.values()]

    def _merged(self) -> dict[str, Accumulator]:
        merged: dict[str, Accumulator] = {}
        for accs in self._sources():
            for key, acc in list(accs.items()):  # a dict copy is atomic; its owner may go on adding
                into = merged.get(key)
                if into is None:
                    into = merged[key] = Accumulator(acc.sql, acc.first_seen)
                into.merge(acc)
        return merged

    def totals(self) -> Totals:
        """Every count at once, in one pass over the accumulators (the properties below each take one)."""
        calls = errors = rows = written = 0
        keys: set[str] = set()
        for accs in self._sources():
            for key, acc in list(accs.items()):
                keys.add(key)
                calls += acc.calls
                errors += acc.errors
                rows += acc.rows
                written += acc.written
        return Totals(calls, errors, rows, written, min(len(keys), self._config.stats_max_fingerprints))

    @property
    def statements_total(self) -> int:
        return self.totals().statements

    @property
    def errors_total(self) -> int:
        return self.totals().errors

    @property
    def rows_read_total(self) -> int:
        return self.totals().rows_read

    @property
    def rows_written_total(self) -> int:
        return self.totals().rows_written

    @property
    def cache_hits_total(self) -> int:
        return self._cache_hits_total

    @property
    def cache_misses_total(self) -> int:
        return self._cache_misses_total

    @property
    def latency(self) -> LatencyHistogram:
        out = LatencyHistogram()
        for acc in self._merged().values():
            out.add_sparse(acc.hist, acc.total_ms)
        return out

    @property
    def slow_log(self) -> tuple[SlowStatement, ...]:
        """The bounded slow log, oldest first: a copy, as sessions' threads append while it is read."""
        with self._mutex:
            return tuple(self._slow_log)

    def _fingerprint(self, key: str, acc: Accumulator) -> FingerprintStats:
        hist = LatencyHistogram()
        hist.add_sparse(acc.hist, acc.total_ms)
        fp = FingerprintStats(key, normalize(acc.sql), calls=acc.calls, errors=acc.errors,
                              rows=acc.rows + acc.written, rows_returned=acc.rows, cpu_ms=acc.cpu_ms,
                              total_ms=acc.total_ms,
                              min_ms=acc.min_ms, max_ms=acc.max_ms, first_seen=acc.first_seen,
                              last_seen=acc.last_end, histogram=hist)
        p = self._profiles.get(key)
        if p is not None:
            fp.profiled_calls, fp.fullscan_steps, fp.sorts, fp.vm_steps = p.calls, p.fullscan_steps, p.sorts, p.vm_steps
            fp.cache_hits, fp.cache_misses, fp.pages_written = p.cache_hits, p.cache_misses, p.pages_written
            fp.plan, fp.plan_captured_at = p.plan, p.plan_captured_at
        return fp

    def _evict(self) -> None:
        """Drop the least-called tenth, as pg_stat_statements does when it is full."""
        victims = sorted(self._retired.items(), key=lambda kv: (kv[1].calls, kv[1].last_end))
        for key, _ in victims[: max(1, len(victims) // 10)]:
            del self._retired[key]
            self._profiles.pop(key, None)
            self.evicted_fingerprints += 1

    def fingerprints(self) -> list[FingerprintStats]:
        """At most stats_max_fingerprints, the most called first kept: sessions still hold
        theirs until they fold them in, so the sum of all may briefly run over."""
        merged = sorted(self._merged().items(), key=lambda kv: -kv[1].calls)[: self._config.stats_max_fingerprints]
        return [self._fingerprint(key, acc) for key, acc in merged]

    def fingerprint(self, sql_id: str) -> FingerprintStats | None:
        merged: Accumulator | None = None
        for accs in self._sources():
            acc = accs.get(sql_id)
            if acc is not None:
                if merged is None:
                    merged = Accumulator(acc.sql, acc.first_seen)
                merged.merge(acc)
        return None if merged is None else self._fingerprint(sql_id, merged)

    @property
    def cache_hit_ratio(self) -> float | None:
        with self._mutex:
            total = self._cache_hits_total + self._cache_misses_total
            return self._cache_hits_total / total if total else None

    def tick(self, transactions_total: int) -> None:
        """Called about once a second; rates are taken over the last ten seconds."""
        self._ticks.append((self._clock.monotonic(), self.statements_total, transactions_total))

    def rates(self) -> Rates:
        ticks = tuple(self._ticks)  # one copy: the sampler appends (and drops the oldest) meanwhile
        if len(ticks) < 2:
            return Rates(0.0, 0.0)
        (t0, s0, x0), (t1, s1, x1) = ticks[0], ticks[-1]
        span = t1 - t0
        if span <= 0:
            return Rates(0.0, 0.0)
        return Rates((s1 - s0) / span, (x1 - x0) / span)
