"""Statement statistics: per fingerprint with latency percentiles, global counters, slow log, cache."""

from __future__ import annotations

import math

import pytest

from engine import Engine, ManualClock, SessionState
from engine.config import EngineConfig
from engine.errors import SqlError
from engine.fingerprint import sql_id
from engine.statements import Statement
from engine.stats import LatencyHistogram, StatementStats
from enginetest import bounded_sql, wait_for_state


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * p / 100)) - 1]


# -- per fingerprint ---------------------------------------------------------------------------

def test_calls_with_different_literals_share_one_fingerprint(engine: Engine) -> None:
    s = engine.connect()
    for customer in ("alice", "bob", "nobody"):
        s.execute(f"SELECT * FROM sales.orders WHERE customer = '{customer}'")
    fp = engine.stats.fingerprint(sql_id("SELECT * FROM sales.orders WHERE customer = 'x'"))
    assert fp is not None
    assert fp.calls == 3 and fp.rows == 2 and fp.errors == 0
    assert fp.query == "select * from sales.orders where customer = ?"
    assert fp.min_ms <= fp.mean_ms <= fp.max_ms
    assert fp.total_ms == pytest.approx(fp.mean_ms * 3)
    assert fp.first_seen <= fp.last_seen


def test_rows_and_errors_per_fingerprint(engine: Engine) -> None:
    s = engine.connect()
    s.execute("INSERT INTO inventory.items(qty, sku) VALUES (1, 'kiwi'), (2, 'plum')")
    with pytest.raises(SqlError):
        s.execute("INSERT INTO inventory.items(qty, sku) VALUES (1, 'kiwi'), (2, 'fig')")  # duplicate sku
    fp = engine.stats.fingerprint(sql_id("INSERT INTO inventory.items(qty, sku) VALUES (0, 'a'), (0, 'b')"))
    assert fp.calls == 2 and fp.errors == 1 and fp.rows == 2


def test_percentiles_match_the_real_latencies(make_engine) -> None:
    """90 fast and 10 slow calls of one fingerprint: p50 is a fast call, p95 and p99 slow ones,
    each within the histogram's ~2.2 % of the true nearest-rank value."""
    engine = make_engine(tables=False)
    s = engine.connect()
    durations = []
    for i in range(100):
        result = s.execute(bounded_sql(200_000 if i % 10 == 9 else 10 + i))
        durations.append(result.execution_time_ms)
    fp = engine.stats.fingerprint(sql_id(bounded_sql(1)))
    assert fp.calls == 100
    assert fp.min_ms == min(durations) and fp.max_ms == max(durations)
    for p in (50, 95, 99):
        assert fp.percentile(p) == pytest.approx(nearest_rank(durations, p), rel=0.03), p
    assert fp.percentile(50) < min(d for i, d in enumerate(durations) if i % 10 == 9)
    assert fp.percentile(50) <= fp.percentile(95) <= fp.percentile(99) <= fp.max_ms


def test_latency_histogram_percentiles_are_accurate() -> None:
    h = LatencyHistogram()
    values = [0.05 * (1.07 ** i) for i in range(1, 301)]  # 0.05 ms .. ~30 s
    for v in values:
        h.record(v)
    for p in (1, 10, 50, 90, 95, 99, 100):
        assert h.percentile(p) == pytest.approx(nearest_rank(values, p), rel=0.023), p
    assert LatencyHistogram().percentile(50) is None


def _statement(sql: str, duration_ms: float) -> Statement:
    stmt = Statement(1, sql, 0.0, 0.0, None)
    stmt.duration_ms, stmt.finished = duration_ms, True
    return stmt


def test_percentile_is_clamped_to_the_observed_range() -> None:
    stats = StatementStats(ManualClock(), EngineConfig())
    stmt = _statement("SELECT 1", duration_ms=3.0)
    stats.record(stmt)
    fp = stats.fingerprint(stmt.sql_id)
    assert fp.percentile(50) == fp.percentile(99) == 3.0


def test_fingerprint_table_is_bounded(make_engine) -> None:
    engine = make_engine(tables=False, stats_max_fingerprints=10)
    s = engine.connect()
    for i in range(25):
        s.execute(f"SELECT {i} AS c{i}")  # a different column name each time: 25 fingerprints
    assert len(engine.stats.fingerprints()) <= 10
    # the session hands its 10 over when it holds 10; the engine's table drops the least called
    assert engine.stats.evicted_fingerprints >= 10


# -- profile data from trace_v2 ---------------------------------------------------------------

def test_full_scan_steps_on_an_unindexed_scan(engine: Engine) -> None:
    s = engine.connect()
    s.execute("CREATE TABLE sales.big(id INTEGER PRIMARY KEY, v INTEGER)")
    s.execute("INSERT INTO sales.big(v) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 500) "
              "SELECT x FROM c")
    scan = engine.statement(s.execute("SELECT * FROM sales.big WHERE v = 250").query_id)
    assert scan.fullscan_steps >= 499
    s.execute("CREATE INDEX sales.big_v ON big(v)")
    seek = engine.statement(s.execute("SELECT * FROM sales.big WHERE v = 251").query_id)
    assert seek.fullscan_steps == 0
    # both calls share the fingerprint, so its total is the scan's
    fp = engine.stats.fingerprint(scan.sql_id)
    assert fp.calls == 2 and fp.fullscan_steps == scan.fullscan_steps
    assert fp.vm_steps == scan.vm_steps + seek.vm_steps > 0


def test_sorts_on_order_by_without_index(engine: Engine) -> None:
    s = engine.connect()
    unindexed = engine.statement(s.execute("SELECT * FROM sales.orders ORDER BY amount DESC").query_id)
    assert unindexed.sorts >= 1
    by_key = engine.statement(s.execute("SELECT * FROM sales.orders ORDER BY id").query_id)
    assert by_key.sorts == 0
    assert engine.stats.fingerprint(unindexed.sql_id).sorts == unindexed.sorts


def test_vm_steps_grow_with_work(engine: Engine) -> None:
    s = engine.connect()
    small = engine.statement(s.execute(bounded_sql(100)).query_id)
    large = engine.statement(s.execute(bounded_sql(10_000)).query_id)
    assert 0 < small.vm_steps < large.vm_steps
    assert large.vm_steps > 10_000


def test_monitoring_disabled_records_nothing(make_engine) -> None:
    engine = make_engine(monitoring_enabled=False)
    before = engine.stats.statements_total
    engine.connect().execute("SELECT * FROM sales.orders ORDER BY amount")
    assert engine.stats.statements_total == before
    assert engine.sample_ash() == 0


# -- global counters ---------------------------------------------------------------------------

def test_global_counters(engine: Engine) -> None:
    stats = engine.stats
    before = (stats.statements_total, stats.errors_total, stats.rows_read_total, stats.rows_written_total)
    s = engine.connect()
    s.execute("SELECT * FROM sales.orders")                                          # 3 read
    s.execute("INSERT INTO sales.orders(customer) VALUES ('x'), ('y')")               # 2 written
    s.execute("UPDATE inventory.items SET qty = qty + 1")                             # 2 written
    with pytest.raises(SqlError):
        s.execute("SELECT * FROM sales.missing")
    after = (stats.statements_total, stats.errors_total, stats.rows_read_total, stats.rows_written_total)
    assert tuple(a - b for a, b in zip(after, before)) == (4, 1, 3, 4)
    assert stats.latency.total == stats.statements_total


def test_rates_from_ticks(manual_engine: Engine, clock: ManualClock) -> None:
    s = manual_engine.connect()
    manual_engine._stats_tick()
    for _ in range(20):
        s.execute("SELECT 1")
    s.execute("BEGIN")
    s.execute("COMMIT")
    clock.advance(2)
    manual_engine._stats_tick()
    rates = manual_engine.stats.rates()
    assert rates.statements_per_second == pytest.approx(22 / 2)
    # each autocommit statement is a transaction of its own, as in PostgreSQL's xact_commit
    assert rates.transactions_per_second == pytest.approx(21 / 2)


# -- slow log ----------------------------------------------------------------------------------

def test_slow_log_keeps_statements_over_the_threshold(manual_engine: Engine, clock: ManualClock,
                                                      background) -> None:
    """Durations are made exact by stepping the ManualClock while a statement waits for a lock."""
    manual_engine.reconfigure(slow_query_threshold_ms=1000)
    holder, slow = manual_engine.connect(), manual_engine.connect(user="slowpoke")
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = 0")
    fast = holder.execute("SELECT count(*) FROM sales.orders")
    run = background(slow.execute, "UPDATE sales.orders SET amount = 5 WHERE id = 1")
    wait_for_state(slow, SessionState.WAITING)
    clock.advance(2.5)
    holder.execute("COMMIT")
    result = run.result()
    assert result.execution_time_ms == 2500.0
    entries = list(manual_engine.stats.slow_log)
    assert [e.query_id for e in entries] == [result.query_id]
    entry = entries[0]
    assert entry.duration_ms == 2500.0 and entry.session_id == slow.id
    assert entry.sql == "UPDATE sales.orders SET amount = 5 WHERE id = 1"
    assert entry.sql_id == sql_id(entry.sql) and entry.error_code is None and entry.username == "slowpoke"
    assert fast.query_id not in [e.query_id for e in entries]
    fp = manual_engine.stats.fingerprint(entry.sql_id)
    assert fp.max_ms == fp.percentile(99) == 2500.0


def test_slow_log_is_bounded(make_engine) -> None:
    engine = make_engine(tables=False, slow_query_threshold_ms=0, slow_query_log_size=5)
    s = engine.connect()
    ids = [s.execute(f"SELECT {i}").query_id for i in range(12)]
    assert [e.query_id for e in engine.stats.slow_log] == ids[-5:]
    engine.reconfigure(slow_query_log_size=3)
    assert [e.query_id for e in engine.stats.slow_log] == ids[-3:]


# -- cache hit ratio ---------------------------------------------------------------------------

def test_cache_hits_and_misses_are_real(engine: Engine) -> None:
    s = engine.connect()
    s.execute("CREATE TABLE sales.pages(id INTEGER PRIMARY KEY, body TEXT)")
    s.execute("INSERT INTO sales.pages(body) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
              "WHERE x < 400) SELECT hex(randomblob(500)) FROM c")
    fresh = engine.connect()  # its page cache is empty
    first = engine.statement(fresh.execute("SELECT sum(length(body)) FROM sales.pages").query_id)
    second = engine.statement(fresh.execute("SELECT sum(length(body)) FROM sales.pages").query_id)
    assert first.cache_misses > 50             # 400 rows of 1000 bytes: about a hundred pages to read
    assert second.cache_misses == 0            # ... now all cached
    assert second.cache_hits > 50              # the same pages, found in the cache
    counters = fresh.info().counters
    assert counters.cache_hits == first.cache_hits + second.cache_hits
    assert counters.cache_misses == first.cache_misses + second.cache_misses
    stats = engine.stats
    assert stats.cache_hit_ratio == pytest.approx(
        stats.cache_hits_total / (stats.cache_hits_total + stats.cache_misses_total))
    assert 0 < stats.cache_hit_ratio < 1


def test_cache_hit_ratio_is_none_before_any_page_is_read(make_engine) -> None:
    engine = make_engine(tables=False)
    assert engine.stats.cache_hit_ratio is None
