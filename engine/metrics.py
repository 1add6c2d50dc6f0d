"""The engine's own figures (not HTTP counters) as typed values, and as Prometheus metrics.

`EngineMetrics` reads the engine's counters, rates, sessions, locks, ASH sampler and host figures
into `EngineFigures`, turns those into named `Metric`s with units and labels, and serves them to
Prometheus through a Collector on its own CollectorRegistry, so nothing else in the process (the
global default registry, a library's metrics) leaks into the exposition.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import psutil
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric as Family
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.utils import floatToGoString

from .alerts import AlertState, Severity
from .host import HostFigures
from .sessions import SessionState
from .stats import LatencyHistogram

if TYPE_CHECKING:
    from .engine import Engine, SessionCounts

PREFIX = "rustydb_"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# Statement latency bounds in seconds: SQLite statements are mostly sub-millisecond, so the scale
# starts at 50 µs; the top bounds catch scans that run into the default 30 s statement timeout.
LATENCY_BOUNDS_SECONDS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                          0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class DiskIo:
    read_bytes: int
    write_bytes: int


@dataclass(frozen=True)
class EngineFigures:
    """One reading of everything the engine counts, taken at `taken_at`."""

    taken_at: float
    started_at: float
    uptime_seconds: float
    sessions: SessionCounts
    statements_total: int
    statement_errors_total: int
    statements_per_second: float
    transactions_per_second: float
    rows_read_total: int
    rows_written_total: int
    commits_total: int
    rollbacks_total: int
    active_transactions: int
    locks_held: int
    lock_waiters: int
    lock_waits_total: int
    lock_timeouts_total: int
    deadlocks_total: int
    cache_hits_total: int
    cache_misses_total: int
    cache_hit_ratio: float | None
    fingerprints: int
    ash_samples_total: int
    ash_last_sample_seconds: float
    latency: LatencyHistogram
    host: HostFigures
    process_cpu_seconds: float
    disk_io: DiskIo | None  # None where the platform does not count a process's IO
    alerts_firing: dict[str, int]  # by severity: firing, not acknowledged, not silenced
    backup_age_seconds: float | None  # since the last completed backup; None: there never was one
    backup_failed: bool  # the most recent finished backup failed


@dataclass(frozen=True)
class HistogramValue:
    buckets: tuple[tuple[float, int], ...]  # (upper bound in seconds, cumulative count); the last is +Inf
    sum: float
    count: int


@dataclass(frozen=True)
class Metric:
    """A metric family: `name` has no prefix; a counter's ends in `_total`."""

    name: str
    kind: Kind
    unit: str
    help: str
    values: tuple[tuple[dict[str, str], float], ...] = ()  # (labels, value) for counters and gauges
    histogram: HistogramValue | None = None


@dataclass(frozen=True)
class Series:
    """One value of a metric, keyed as Prometheus names the sample (`sessions{state="idle"}`)."""

    key: str
    metric: str
    kind: Kind
    unit: str
    help: str
    labels: dict[str, str]
    value: float


def _key(sample: str, labels: dict[str, str]) -> str:
    if not labels:
        return sample
    return sample + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _process_io(process: psutil.Process) -> DiskIo | None:
    try:
        io = process.io_counters()
    except (AttributeError, NotImplementedError, psutil.Error):
        return None
    return DiskIo(io.read_bytes, io.write_bytes)


class EngineMetrics:
    """A Collector over one engine; cheap to create, so callers may make one per request."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def figures(self) -> EngineFigures:
        e = self._engine
        stats, txns = e.stats, e.transactions
        rates = stats.rates()
        totals = stats.totals()
        locks = e.locks.locks()
        process = psutil.Process(os.getpid())
        cpu = process.cpu_times()
        held = sum(1 for lock in locks if lock.granted)
        return EngineFigures(
            taken_at=e.clock.time(), started_at=e.started_at, uptime_seconds=e.uptime_seconds,
            sessions=e.session_counts(), statements_total=totals.statements,
            statement_errors_total=totals.errors, statements_per_second=rates.statements_per_second,
            transactions_per_second=rates.transactions_per_second, rows_read_total=totals.rows_read,
            rows_written_total=totals.rows_written, commits_total=txns.commits_total,
            rollbacks_total=txns.rollbacks_total, active_transactions=len(txns.active), locks_held=held,
            lock_waiters=len(locks) - held, lock_waits_total=e.locks.lock_waits_total,
            lock_timeouts_total=e.locks.lock_timeouts_total,
            deadlocks_total=e.locks.deadlocks_total,
            cache_hits_total=stats.cache_hits_total, cache_misses_total=stats.cache_misses_total,
            cache_hit_ratio=stats.cache_hit_ratio, fingerprints=totals.fingerprints,
            ash_samples_total=e.ash.samples_total, ash_last_sample_seconds=e.ash.last_sample_seconds,
            latency=stats.latency, host=e.host.latest, process_cpu_seconds=cpu.user + cpu.system,
            disk_io=_process_io(process), alerts_firing=_alerts_firing(e),
            backup_age_seconds=None if (age := e.backup.backup_age_hours()) is None else age * 3600,
            backup_failed=e.backup.backup_failed() > 0)

    def metrics(self) -> list[Metric]:
        f = self.figures()
        h = f.host
        C, G = Kind.COUNTER, Kind.GAUGE

        def one(name: str, kind: Kind, unit: str, help: str, value: float) -> Metric:
            return Metric(name, kind, unit, help, (({}, float(value)),))

        out = [
            Metric("sessions", G, "sessions", "Sessions by state",
                   tuple(({"state": state.value}, float(f.sessions.by_state[state.value])) for state in SessionState)),
            one("sessions_peak", G, "sessions", "Most sessions open at once since start", f.sessions.peak),
            one("max_connections", G, "sessions", "Sessions allowed at once (max_connections)",
                f.sessions.max_connections),
            one("statements_total", C, "statements", "Statements executed", f.statements_total),
            one("statement_errors_total", C, "statements", "Statements that ended in an error",
                f.statement_errors_total),
            one("statements_per_second", G, "per_second", "Statements per second over the last ten seconds",
                f.statements_per_second),
            Metric("statement_duration_seconds", Kind.HISTOGRAM, "seconds", "Statement execution time",
                   histogram=_histogram(f.latency)),
            one("rows_read_total", C, "rows", "Rows returned by statements", f.rows_read_total),
            one("rows_written_total", C, "rows", "Rows changed by statements", f.rows_written_total),
            one("transactions_per_second", G, "per_second",
                "Transactions ended per second over the last ten seconds", f.transactions_per_second),
            one("commits_total", C, "transactions", "Transactions committed (autocommit statements included)",
                f.commits_total),
            one("rollbacks_total", C, "transactions", "Transactions rolled back", f.rollbacks_total),
            one("transactions_active", G, "transactions", "Explicit transactions open now", f.active_transactions),
            one("locks_held", G, "locks", "Locks granted now", f.locks_held),
            one("lock_waiters", G, "locks", "Lock requests waiting now", f.lock_waiters),
            one("lock_waits_total", C, "waits", "Lock requests that had to wait", f.lock_waits_total),
            one("lock_timeouts_total", C, "waits", "Lock waits that ended in a lock timeout", f.lock_timeouts_total),
            one("deadlocks_total", C, "deadlocks", "Deadlocks detected and broken", f.deadlocks_total),
            one("backup_last_failed", G, "bool", "1 when the most recent finished backup failed",
                f.backup_failed),
            Metric("alerts_firing", G, "alerts", "Alerts firing now that nobody acknowledged or silenced",
                   tuple(({"severity": sev}, float(n)) for sev, n in f.alerts_firing.items())),
            one("cache_hits_total", C, "pages", "Page-cache hits", f.cache_hits_total),
            one("cache_misses_total", C, "pages", "Page-cache misses", f.cache_misses_total),
        ]
        if f.backup_age_seconds is not None:  # never backed up: no age to report, rather than a made-up one
            out.append(one("backup_age_seconds", G, "seconds", "Time since the last completed backup",
                           f.backup_age_seconds))
        if f.cache_hit_ratio is not None:  # no page was read yet: a ratio would be invented
            out.append(one("cache_hit_ratio", G, "ratio", "Page-cache hits over all page reads", f.cache_hit_ratio))
        out += [
            one("statement_fingerprints", G, "fingerprints", "Statement fingerprints with statistics kept",
                f.fingerprints),
            one("ash_samples_total", C, "samples", "Active Session History samples taken", f.ash_samples_total),
            one("ash_last_sample_duration_seconds", G, "seconds", "Time the last ASH sample took",
                f.ash_last_sample_seconds),
            one("process_cpu_seconds_total", C, "seconds", "CPU time of the engine process (user and system)",
                f.process_cpu_seconds),
            one("process_cpu_percent", G, "percent", "CPU use of the engine process over the last second",
                h.process_cpu_percent),
            one("process_resident_memory_bytes", G, "bytes", "Resident memory of the engine process",
                h.process_rss_bytes),
            one("process_threads", G, "threads", "Threads of the engine process", h.process_threads),
        ]
        if h.process_open_files is not None:
            out.append(one("process_open_fds", G, "files", "Open file descriptors of the engine process",
                           h.process_open_files))
        if f.disk_io is not None:
            out += [one("disk_io_read_bytes_total", C, "bytes", "Bytes the engine process read from storage",
                        f.disk_io.read_bytes),
                    one("disk_io_write_bytes_total", C, "bytes", "Bytes the engine process wrote to storage",
                        f.disk_io.write_bytes)]
        out += [
            one("cpu_usage_percent", G, "percent", "CPU use of the host over the last second", h.host_cpu_percent),
            one("memory_usage_bytes", G, "bytes", "Memory in use on the host", h.host_memory_used_bytes),
            one("memory_total_bytes", G, "bytes", "Memory of the host", h.host_memory_total_bytes),
            one("memory_usage_percent", G, "percent", "Memory in use on the host", h.host_memory_percent),
            one("disk_free_bytes", G, "bytes", "Free space on the data directory's file system", h.disk_free_bytes),
            one("disk_total_bytes", G, "bytes", "Size of the data directory's file system", h.disk_total_bytes),
            one("start_time_seconds", G, "seconds", "When the engine started (Unix time)", f.started_at),
            one("uptime_seconds", G, "seconds", "Time since the engine started", f.uptime_seconds),
        ]
        return out

    def series(self) -> list[Series]:
        """Every value of every metric, named as in the Prometheus exposition without the prefix."""
        out = []
        for m in self.metrics():
            if m.histogram is None:
                out += [Series(_key(m.name, labels), m.name, m.kind, m.unit, m.help, labels, value)
                        for labels, value in m.values]
                continue
            for le, count in m.histogram.buckets:
                labels = {"le": floatToGoString(le)}
                out.append(Series(_key(f"{m.name}_bucket", labels), m.name, m.kind, "count", m.help, labels, count))
            out += [Series(f"{m.name}_sum", m.name, m.kind, m.unit, m.help, {}, m.histogram.sum),
                    Series(f"{m.name}_count", m.name, m.kind, "count", m.help, {}, m.histogram.count)]
        return out

    # -- prometheus_client Collector ---------------------------------------------------------

    def collect(self) -> Iterator[Family]:
        for m in self.metrics():
            name = PREFIX + m.name
            if m.histogram is not None:
                yield HistogramMetricFamily(
                    name, m.help, sum_value=m.histogram.sum,
                    buckets=[(floatToGoString(le), count) for le, count in m.histogram.buckets])
                continue
            label_names = list(m.values[0][0]) if m.values else []
            family = (CounterMetricFamily if m.kind is Kind.COUNTER else GaugeMetricFamily)(
                name, m.help, labels=label_names)
            for labels, value in m.values:
                family.add_metric([labels[n] for n in label_names], value)
            yield family

    def exposition(self) -> bytes:
        """The Prometheus text format, version 0.0.4."""
        return generate_latest(self.registry)


def _histogram(latency: LatencyHistogram) -> HistogramValue:
    counts = latency.cumulative([b * 1000 for b in LATENCY_BOUNDS_SECONDS])
    return HistogramValue(tuple(zip(LATENCY_BOUNDS_SECONDS, counts)) + ((float("inf"), latency.total),),
                          latency.sum_ms / 1000, latency.total)


def _alerts_firing(engine: Engine) -> dict[str, int]:
    counts = {severity.value: 0 for severity in Severity}
    for alert in engine.alerts.alerts(state=AlertState.FIRING):
        counts[alert.severity.value] += 1
    return counts
