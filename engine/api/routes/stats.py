"""Statement statistics, performance figures and per-fingerprint profiles."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ...metrics import EngineMetrics
from ...sessions import PROFILE_EVERY_MASK
from ...stats import FingerprintStats, SlowStatement
from ..deps import EngineDep, Monitor
from ..models import CPU_TIME_NOTE
from ..pagination import MAX_PAGE_SIZE, PageParams, SortOrder, paginate

router = APIRouter(prefix="/api/v1", tags=["statistics"])


class SlowQueryInfo(BaseModel):
    query: str
    execution_time_ms: int = Field(description="whole milliseconds, as RustyDB; duration_ms is exact")
    timestamp: int = Field(description="when the statement started (Unix seconds)")
    user: str | None
    # additions
    duration_ms: float
    session_id: int
    sql_id: str
    query_id: str
    rows: int
    error_code: str | None = Field(description="how the statement ended, null when it succeeded")

    @classmethod
    def of(cls, s: SlowStatement) -> SlowQueryInfo:
        return cls(query=s.sql, execution_time_ms=round(s.duration_ms), timestamp=int(s.started_at),
                   user=s.username, duration_ms=round(s.duration_ms, 3), session_id=s.session_id,
                   sql_id=s.sql_id, query_id=s.query_id, rows=s.rows, error_code=s.error_code)


PROFILED_NOTE = ("summed over the profiled calls only (profiled_calls in /profiling/queries): the first ones of "
                 f"each SQL text, then one statement in {PROFILE_EVERY_MASK + 1} of each session")
PLAN_NOTE = ("SQLite's EXPLAIN QUERY PLAN for the fingerprint, one step a line, indented under its parent; taken "
             "when the fingerprint is first profiled, after each schema change and on later samples; null before "
             "one was taken, and for texts of several statements")


class Resources(BaseModel):
    """A fingerprint's resource figures, shared by its two views."""

    cpu_time_ms: float = Field(description="total over every call; " + CPU_TIME_NOTE)
    cache_hits: int = Field(description="pages found in the page cache, " + PROFILED_NOTE)
    cache_misses: int = Field(description="pages read from the database files, " + PROFILED_NOTE)
    pages_written: int = Field(description="pages written to the database files, " + PROFILED_NOTE)
    rows_returned: int = Field(description="rows returned to clients, over every call")
    execution_plan: str | None = Field(description=PLAN_NOTE)
    plan_captured_at: int | None = Field(description="when the plan was recorded: first taken, or last seen to "
                                                     "change (Unix seconds)")

    @staticmethod
    def fields(fp: FingerprintStats) -> dict:
        return {"cpu_time_ms": round(fp.cpu_ms, 3), "cache_hits": fp.cache_hits, "cache_misses": fp.cache_misses,
                "pages_written": fp.pages_written, "rows_returned": fp.rows_returned, "execution_plan": fp.plan,
                "plan_captured_at": None if fp.plan_captured_at is None else int(fp.plan_captured_at)}


class TopQueryInfo(Resources):
    query_pattern: str = Field(description="the statement with literals normalised to ?")
    execution_count: int
    total_time_ms: int
    avg_time_ms: float
    # additions
    sql_id: str
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    min_ms: float
    max_ms: float
    rows: int = Field(description="rows returned plus rows written")
    errors: int

    @classmethod
    def of(cls, fp: FingerprintStats) -> TopQueryInfo:
        return cls(query_pattern=fp.query, execution_count=fp.calls, total_time_ms=round(fp.total_ms),
                   avg_time_ms=round(fp.mean_ms, 3), sql_id=fp.sql_id, p50_ms=_ms(fp.percentile(50)),
                   p95_ms=_ms(fp.percentile(95)), p99_ms=_ms(fp.percentile(99)), min_ms=round(fp.min_ms, 3),
                   max_ms=round(fp.max_ms, 3), rows=fp.rows, errors=fp.errors, **Resources.fields(fp))


class QueryStatsResponse(BaseModel):
    total_queries: int
    queries_per_second: float = Field(description="over the last ten seconds")
    avg_execution_time_ms: float | None = Field(description="null before the first statement")
    slow_queries: list[SlowQueryInfo] = Field(description="newest first")
    top_queries: list[TopQueryInfo] = Field(description="by total time, largest first")
    # additions
    total_errors: int
    slow_query_threshold_ms: float
    slow_queries_kept: int = Field(description="entries in the bounded slow log")
    fingerprints: int


class PerformanceDataResponse(BaseModel):
    cpu_usage_percent: float = Field(description="host CPU over the last second")
    memory_usage_bytes: int = Field(description="host memory in use")
    memory_usage_percent: float
    disk_io_read_bytes: int | None = Field(description="read from storage by the engine process; null where "
                                                       "the platform does not count it")
    disk_io_write_bytes: int | None
    cache_hit_ratio: float | None = Field(description="page-cache hits over page reads; null before any read")
    transactions_per_second: float
    locks_held: int
    deadlocks: int = Field(description="deadlocks detected since start")
    # additions
    timestamp: int
    statements_per_second: float
    statements: int
    commits: int
    rollbacks: int
    active_transactions: int
    lock_waits: int
    lock_timeouts: int
    lock_waiters: int
    sessions: dict[str, int] = Field(description="sessions by state")
    total_sessions: int
    peak_sessions: int
    max_connections: int
    process_cpu_percent: float
    process_rss_bytes: int
    host_cpu_count: int
    load_average_1m: float | None
    disk_free_bytes: int
    disk_total_bytes: int
    disk_free_percent: float
    uptime_seconds: float


class QueryProfile(Resources):
    query_id: str = Field(description="the fingerprint's sql_id")
    query_text: str
    execution_count: int
    total_time_ms: int
    avg_time_ms: float
    min_time_ms: int
    max_time_ms: int
    total_rows_returned: int
    avg_rows_returned: float
    cache_hit_ratio: float | None = Field(description="over the profiled calls; null when they read no page")
    last_executed: int
    # additions
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    errors: int
    profiled_calls: int = Field(description="calls whose SQLite profile was taken: the first ones of each SQL text, "
                                            f"then one statement in {PROFILE_EVERY_MASK + 1} of each session; the "
                                            "next three fields sum over them")
    fullscan_steps: int
    sorts: int
    vm_steps: int
    first_executed: int

    @classmethod
    def of(cls, fp: FingerprintStats) -> QueryProfile:
        ratio = fp.cache_hit_ratio
        return cls(query_id=fp.sql_id, query_text=fp.query, execution_count=fp.calls,
                   total_time_ms=round(fp.total_ms), avg_time_ms=round(fp.mean_ms, 3), min_time_ms=round(fp.min_ms),
                   max_time_ms=round(fp.max_ms), total_rows_returned=fp.rows_returned,
                   avg_rows_returned=round(fp.rows_returned / fp.calls, 3),
                   cache_hit_ratio=None if ratio is None else round(ratio, 6), last_executed=int(fp.last_seen),
                   p50_ms=_ms(fp.percentile(50)), p95_ms=_ms(fp.percentile(95)),
                   p99_ms=_ms(fp.percentile(99)), errors=fp.errors, profiled_calls=fp.profiled_calls,
                   fullscan_steps=fp.fullscan_steps,
                   sorts=fp.sorts, vm_steps=fp.vm_steps, first_executed=int(fp.first_seen), **Resources.fields(fp))


class QueryProfilingResponse(BaseModel):
    profiles: list[QueryProfile]
    total_count: int
    page: int
    page_size: int
    # additions
    total_pages: int
    has_next: bool
    has_prev: bool


class ProfileSort(StrEnum):
    TOTAL_TIME = "total_time"
    AVG_TIME = "avg_time"
    EXECUTION_COUNT = "execution_count"
    MAX_TIME = "max_time"
    P99 = "p99"
    ERRORS = "errors"
    ROWS = "rows"
    LAST_EXECUTED = "last_executed"


# Sorting and filtering work on the engine's records; only the page shown becomes response models.
_PROFILE_KEYS = {
    ProfileSort.TOTAL_TIME: lambda fp: fp.total_ms, ProfileSort.AVG_TIME: lambda fp: fp.mean_ms,
    ProfileSort.EXECUTION_COUNT: lambda fp: fp.calls, ProfileSort.MAX_TIME: lambda fp: fp.max_ms,
    ProfileSort.P99: lambda fp: fp.percentile(99), ProfileSort.ERRORS: lambda fp: fp.errors,
    ProfileSort.ROWS: lambda fp: fp.rows_returned, ProfileSort.LAST_EXECUTED: lambda fp: fp.last_seen,
}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@router.get("/stats/queries", response_model=QueryStatsResponse)
def query_stats(engine: EngineDep, _: Monitor,
                top_limit: Annotated[int, Query(ge=1, le=1000, description="statements in top_queries")] = 10,
                slow_limit: Annotated[int, Query(ge=0, le=100_000, description="newest slow-log entries")] = 50,
                ) -> QueryStatsResponse:
    stats = engine.stats
    latency = stats.latency
    fingerprints = stats.fingerprints()
    top = sorted(fingerprints, key=lambda fp: fp.total_ms, reverse=True)[:top_limit]
    slow = stats.slow_log
    newest = slow[::-1][:slow_limit]
    return QueryStatsResponse(
        total_queries=latency.total, queries_per_second=round(stats.rates().statements_per_second, 3),
        avg_execution_time_ms=round(latency.sum_ms / latency.total, 3) if latency.total else None,
        slow_queries=[SlowQueryInfo.of(s) for s in newest], top_queries=[TopQueryInfo.of(fp) for fp in top],
        total_errors=stats.errors_total, slow_query_threshold_ms=engine.config.slow_query_threshold_ms,
        slow_queries_kept=len(slow), fingerprints=len(fingerprints))


@router.get("/stats/performance", response_model=PerformanceDataResponse)
def performance(engine: EngineDep, _: Monitor) -> PerformanceDataResponse:
    f = EngineMetrics(engine).figures()
    h = f.host
    return PerformanceDataResponse(
        cpu_usage_percent=h.host_cpu_percent, memory_usage_bytes=h.host_memory_used_bytes,
        memory_usage_percent=h.host_memory_percent,
        disk_io_read_bytes=f.disk_io.read_bytes if f.disk_io else None,
        disk_io_write_bytes=f.disk_io.write_bytes if f.disk_io else None,
        cache_hit_ratio=None if f.cache_hit_ratio is None else round(f.cache_hit_ratio, 6),
        transactions_per_second=round(f.transactions_per_second, 3), locks_held=f.locks_held,
        deadlocks=f.deadlocks_total, timestamp=int(f.taken_at),
        statements_per_second=round(f.statements_per_second, 3), statements=f.statements_total,
        commits=f.commits_total, rollbacks=f.rollbacks_total, active_transactions=f.active_transactions,
        lock_waits=f.lock_waits_total, lock_timeouts=f.lock_timeouts_total, lock_waiters=f.lock_waiters,
        sessions=f.sessions.by_state, total_sessions=f.sessions.total, peak_sessions=f.sessions.peak,
        max_connections=f.sessions.max_connections, process_cpu_percent=h.process_cpu_percent,
        process_rss_bytes=h.process_rss_bytes, host_cpu_count=h.cpu_count, load_average_1m=h.load_average_1m,
        disk_free_bytes=h.disk_free_bytes, disk_total_bytes=h.disk_total_bytes,
        disk_free_percent=round(h.disk_free_percent, 3), uptime_seconds=round(f.uptime_seconds, 3))


@router.get("/profiling/queries", response_model=QueryProfilingResponse)
def query_profiles(engine: EngineDep, _: Monitor,
                   page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
                   page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
                   sort_by: ProfileSort = ProfileSort.TOTAL_TIME,
                   sort_order: SortOrder = SortOrder.DESC,
                   min_time_ms: Annotated[float, Query(ge=0, le=86_400_000,
                                                       description="only statements whose average time "
                                                                   "is at least this")] = 0.0,
                   ) -> QueryProfilingResponse:
    kept = [fp for fp in engine.stats.fingerprints() if fp.mean_ms >= min_time_ms]
    params = PageParams(page=page, page_size=page_size, sort_by=sort_by.value, sort_order=sort_order)
    paged = paginate(kept, params, {key.value: fn for key, fn in _PROFILE_KEYS.items()})
    return QueryProfilingResponse(profiles=[QueryProfile.of(fp) for fp in paged["data"]],
                                  total_count=paged["total_count"], page=page, page_size=page_size,
                                  total_pages=paged["total_pages"], has_next=paged["has_next"],
                                  has_prev=paged["has_prev"])
