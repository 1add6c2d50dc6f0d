"""Per-session and per-statement resources (thread CPU time, page-cache counters, rows) and the
plans recorded per fingerprint: each figure is caused here and then observed."""

from __future__ import annotations

import time

import pytest

from engine import Engine, SessionState
from engine.errors import QueryCanceled
from engine.fingerprint import sql_id
from engine.sessions import HEAVY_CPU_MS, PROFILE_FIRST
from enginetest import ENDLESS_SQL, bounded_sql, wait_for_state, wait_until

POINT = "SELECT amount FROM sales.orders WHERE id = ?"
BY_CUSTOMER = "SELECT id, amount FROM sales.orders WHERE customer = ?"


def test_a_cpu_heavy_statement_adds_its_cpu_time_to_the_session_and_fingerprint(engine: Engine) -> None:
    s = engine.connect("cpu")
    s.execute(POINT, (1,))
    light = s.counters.cpu_time_ms
    heavy_sql = bounded_sql(300_000)
    s.execute(heavy_sql)
    heavy = s.counters.cpu_time_ms - light
    # a recursive count of 300,000 rows is all CPU: tens of ms, against a point lookup's few µs
    assert heavy > 10 * light and heavy > 1.0
    fp = engine.stats.fingerprint(sql_id(heavy_sql))
    assert fp is not None and fp.cpu_ms == pytest.approx(heavy)
    # thread CPU time, not wall time: never more than the statement took
    assert fp.cpu_ms <= fp.total_ms * 1.05 + 0.05


def test_a_running_statement_shows_its_cpu_time_growing(engine: Engine, background) -> None:
    s = engine.connect("spinner")
    run = background(s.execute, ENDLESS_SQL)
    wait_until(lambda: s.cpu_time_ms() > 5.0, message="the running statement to have used 5 ms of CPU")
    first = s.cpu_time_ms()
    wait_until(lambda: s.cpu_time_ms() > first + 5.0, message="its CPU time to grow")
    assert engine.sample_ash() >= 1
    sampled = [x for x in engine.ash.window() if x.session_id == s.id]
    assert sampled and sampled[-1].cpu_time_ms > first
    engine.cancel(s.id, by="test")
    assert isinstance(run.exception(), QueryCanceled)
    assert s.counters.cpu_time_ms > first + 5.0  # what it used is kept once it stopped


def test_a_lock_wait_costs_no_cpu_time(engine: Engine, background) -> None:
    holder, waiter = engine.connect("holder"), engine.connect("waiter")
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = amount + 1 WHERE id = 1")
    run = background(waiter.execute, "UPDATE sales.orders SET amount = 0 WHERE id = 1")
    wait_for_state(waiter, SessionState.WAITING)
    stmt = waiter.statement
    assert stmt is not None
    wait_until(lambda: time.monotonic() - stmt.started_mono > 0.2, message="the waiter to wait 0.2 s")
    holder.execute("ROLLBACK")
    run.result()
    assert stmt.duration_ms > 200 and stmt.cpu_ms is not None and stmt.cpu_ms < stmt.duration_ms / 2


def test_light_statements_are_timed_on_their_samples_and_counted_at_their_mean(engine: Engine) -> None:
    s = engine.connect("oltp")
    for i in range(PROFILE_FIRST + 40):
        s.execute(POINT, (i % 3 + 1,))
    text = engine.sql_texts.get(POINT)
    assert not text.cpu_heavy and text.cpu_timed == PROFILE_FIRST  # only the profiled ones were timed
    assert 0 < text.cpu_mean_ms < HEAVY_CPU_MS
    fp = engine.stats.fingerprint(sql_id(POINT))
    assert fp is not None and fp.cpu_ms == pytest.approx(text.cpu_mean_ms * 40 + text.cpu_sum_ms)


def test_session_page_counters_follow_its_reads_and_writes(engine: Engine) -> None:
    writer = engine.connect("writer")
    writer.execute("CREATE TABLE sales.blobs(id INTEGER PRIMARY KEY, body BLOB)")
    writer.execute("INSERT INTO sales.blobs(body) SELECT randomblob(3000) FROM "
                   "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300) SELECT x FROM c)")
    assert writer.counters.pages_written > 300  # a 3 kB blob a row fills most of a 4 kB page
    reader = engine.connect("reader")  # a new connection: its page cache is empty
    assert reader.counters.cache_misses == 0
    reader.execute("SELECT sum(length(body)) FROM sales.blobs")
    assert reader.counters.cache_misses > 100 and reader.counters.pages_written == 0
    hits = reader.counters.cache_hits
    reader.execute("SELECT sum(length(body)) FROM sales.blobs WHERE id > 0")
    assert reader.counters.cache_hits > hits + 100  # the second scan finds the pages cached
    fp = engine.stats.fingerprint(sql_id("SELECT sum(length(body)) FROM sales.blobs"))
    assert fp is not None and fp.cache_misses > 100 and fp.profiled_calls == 1


def test_a_full_scan_and_an_index_lookup_record_different_plans(engine: Engine) -> None:
    s = engine.connect("planner")
    s.execute(POINT, (1,))
    s.execute(BY_CUSTOMER, ("bob",))
    point, scan = engine.stats.fingerprint(sql_id(POINT)), engine.stats.fingerprint(sql_id(BY_CUSTOMER))
    assert point is not None and point.plan == "SEARCH sales.orders USING INTEGER PRIMARY KEY (rowid=?)"
    assert scan is not None and scan.plan == "SCAN sales.orders"
    assert point.plan_captured_at is not None


def test_an_index_created_changes_the_recorded_plan(engine: Engine) -> None:
    s = engine.connect("planner")
    s.execute(BY_CUSTOMER, ("bob",))
    before = engine.stats.fingerprint(sql_id(BY_CUSTOMER))
    assert before is not None and before.plan == "SCAN sales.orders"
    s.execute("CREATE INDEX sales.orders_customer ON orders(customer)")
    s.execute(BY_CUSTOMER, ("carol",))
    after = engine.stats.fingerprint(sql_id(BY_CUSTOMER))
    assert after is not None and after.plan == "SEARCH sales.orders USING INDEX orders_customer (customer=?)"
    assert after.plan_captured_at >= before.plan_captured_at


def test_a_plan_shows_the_tree_of_a_join(engine: Engine) -> None:
    s = engine.connect("planner")
    sql = ("SELECT o.id FROM sales.orders o WHERE o.amount > (SELECT avg(amount) FROM sales.orders) "
           "ORDER BY o.customer")
    s.execute(sql)
    fp = engine.stats.fingerprint(sql_id(sql))
    assert fp is not None and fp.plan is not None
    lines = fp.plan.splitlines()
    assert lines[:3] == ["SCAN o", "SCALAR SUBQUERY 1", "  SCAN sales.orders"]  # the subquery's scan under it
    assert any("TEMP B-TREE FOR ORDER BY" in line for line in lines)


def test_planning_runs_nothing_of_the_statement(engine: Engine) -> None:
    s = engine.connect("writer")
    s.execute("INSERT INTO sales.orders(customer, amount) VALUES (?, ?)", ("dave", 1.0))
    assert s.execute("SELECT count(*) FROM sales.orders WHERE customer = 'dave'").rows == [(1,)]
    fp = engine.stats.fingerprint(sql_id("INSERT INTO sales.orders(customer, amount) VALUES (?, ?)"))
    assert fp is not None and fp.plan is None  # an INSERT ... VALUES has no plan steps
    # a text of two statements is not planned (its fingerprint would have two plans)
    s.execute("UPDATE sales.orders SET amount = 2 WHERE customer = 'dave'; SELECT 1")
    assert engine.stats.fingerprint(
        sql_id("UPDATE sales.orders SET amount = 2 WHERE customer = 'dave'; SELECT 1")).plan is None


def test_a_session_driven_from_threads_that_come_and_go_is_timed_in_each(engine: Engine, background) -> None:
    s = engine.connect("pool")
    heavy = bounded_sql(100_000)
    for _ in range(4):  # a thread pool's workers end and new ones start (their ids may be reused)
        background(s.execute, heavy).result()
    text = engine.sql_texts.get(heavy)
    assert text.cpu_timed == 4 and s.counters.cpu_time_ms == pytest.approx(text.cpu_sum_ms)


def test_a_running_statement_shows_its_page_reads_so_far(engine: Engine, background) -> None:
    s = engine.connect("scanner")
    s.execute("CREATE TABLE sales.pages(id INTEGER PRIMARY KEY, body BLOB)")
    s.execute("INSERT INTO sales.pages(body) SELECT randomblob(3000) FROM "
              "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50) SELECT x FROM c)")
    # reads the table's pages over and over, as long as its bound says
    scan = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
            "SELECT count(*) FROM c, sales.pages")
    for _ in range(PROFILE_FIRST):  # the text's profiled runs; the next is not profiled
        s.execute(scan, (3,))
    run = background(s.execute, scan, (10**15,))
    stmt = wait_until(lambda: s.statement)
    # not profiled: its counts run from its first progress call on
    wait_until(lambda: stmt.cache_base is not None, message="the first progress call")
    assert engine.sql_texts.get(scan).profiled == PROFILE_FIRST
    wait_until(lambda: (stmt.cache_hits or 0) > 500, message="the running scan's cache hits to pass 500")
    first = stmt.cache_hits
    wait_until(lambda: stmt.cache_hits > first, message="them to grow")
    engine.cancel(s.id, by="test")
    assert isinstance(run.exception(), QueryCanceled)
