"""Statement statistics, the slow log, performance figures and per-fingerprint profiles."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from engine import Engine
from engine.api import create_app
from engine.errors import SqlError
from engine.fingerprint import sql_id

from .conftest import monitor_get

# About 30 ms on this machine, so far above the 5 ms threshold the tests set.
HEAVY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) SELECT count(*) FROM c"
POINT = "SELECT amount FROM sales.orders WHERE id = ?"
SCAN = "SELECT count(*) FROM sales.orders WHERE amount > ?"


def test_statements_appear_in_query_stats_and_the_slow_log(engine: Engine, client: TestClient,
                                                           headers: dict) -> None:
    threshold = 5.0
    engine.reconfigure(slow_query_threshold_ms=threshold)
    before = monitor_get(client, headers, "/api/v1/stats/queries")
    alice = engine.connect("alice", "stats-test")
    results = [alice.execute(POINT, (i % 3 + 1,)) for i in range(40)]
    heavy = alice.execute(HEAVY)
    results.append(heavy)
    alice.close()

    stats = monitor_get(client, headers, "/api/v1/stats/queries", top_limit=1000, slow_limit=100_000)
    assert stats["total_queries"] - before["total_queries"] == 41
    assert stats["avg_execution_time_ms"] > 0
    assert stats["slow_query_threshold_ms"] == threshold

    slow = {s["query_id"]: s for s in stats["slow_queries"]}
    assert all(s["duration_ms"] >= threshold for s in slow.values())
    for result in results:  # in the slow log exactly when it took at least the threshold
        assert (result.query_id in slow) == (result.execution_time_ms >= threshold), result
    entry = slow[heavy.query_id]
    assert entry["query"] == HEAVY and entry["user"] == "alice" and entry["rows"] == 1
    assert entry["sql_id"] == sql_id(HEAVY) and entry["error_code"] is None
    assert entry["execution_time_ms"] == round(heavy.execution_time_ms)
    assert entry["timestamp"] <= int(engine.clock.time())
    times = [s["timestamp"] for s in stats["slow_queries"]]
    assert times == sorted(times, reverse=True)

    top = {t["sql_id"]: t for t in stats["top_queries"]}
    point = top[sql_id(POINT)]
    assert point["query_pattern"] == "select amount from sales.orders where id = ?"
    assert point["execution_count"] == 40 and point["rows"] == 40 and point["errors"] == 0
    assert point["min_ms"] <= point["p50_ms"] <= point["p95_ms"] <= point["p99_ms"] <= point["max_ms"]
    assert point["avg_time_ms"] == pytest.approx(sum(r.execution_time_ms for r in results[:40]) / 40, abs=0.001)
    totals = [t["total_time_ms"] for t in stats["top_queries"]]
    assert totals == sorted(totals, reverse=True)
    assert len(monitor_get(client, headers, "/api/v1/stats/queries", top_limit=1)["top_queries"]) == 1


def test_performance_figures_follow_the_engine(engine: Engine, client: TestClient, headers: dict) -> None:
    before = monitor_get(client, headers, "/api/v1/stats/performance")
    holder = engine.connect("holder", "perf-test")
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = amount + 1 WHERE id = 1")
    during = monitor_get(client, headers, "/api/v1/stats/performance")
    holder.execute("ROLLBACK")
    after = monitor_get(client, headers, "/api/v1/stats/performance")
    holder.close()

    # the update holds exclusive locks on the table and on its schema's file until the rollback
    assert during["locks_held"] - before["locks_held"] == 2 and after["locks_held"] == before["locks_held"]
    assert during["active_transactions"] == before["active_transactions"] + 1
    assert during["sessions"]["idle in transaction"] == 1 and during["total_sessions"] == before["total_sessions"] + 1
    assert after["rollbacks"] - before["rollbacks"] == 1
    assert after["statements"] - before["statements"] == 3
    assert 0 <= after["cache_hit_ratio"] <= 1
    assert 0 <= after["cpu_usage_percent"] <= 100 and 0 < after["memory_usage_percent"] <= 100
    assert after["memory_usage_bytes"] > 0 and after["process_rss_bytes"] > 0
    assert 0 < after["disk_free_bytes"] <= after["disk_total_bytes"]
    assert after["peak_sessions"] >= 1 and after["max_connections"] == engine.config.max_connections
    assert after["deadlocks"] == 0 and after["uptime_seconds"] > 0
    if after["disk_io_read_bytes"] is not None:
        assert after["disk_io_read_bytes"] >= before["disk_io_read_bytes"]


def test_cache_hit_ratio_is_null_before_any_page_is_read() -> None:
    with Engine() as fresh, TestClient(create_app(fresh)) as client:
        headers = {"monitor": {"X-API-Key": fresh.auth.create_api_key("monitor")}}
        body = monitor_get(client, headers, "/api/v1/stats/performance")
        assert body["cache_hit_ratio"] is None and body["statements"] == 0
        assert monitor_get(client, headers, "/api/v1/stats/queries")["avg_execution_time_ms"] is None


def _profiles(client: TestClient, headers: dict, **params: object) -> list[dict]:
    return monitor_get(client, headers, "/api/v1/profiling/queries", page_size=1000, **params)["profiles"]


def test_profiles_are_sorted_filtered_and_paged(engine: Engine, client: TestClient, headers: dict) -> None:
    s = engine.connect("bob", "profile-test")
    for i in range(5):
        s.execute(POINT, (i % 3 + 1,))
    for amount in (5, 15, 25):
        s.execute(SCAN, (amount,))
    s.execute(HEAVY)
    with pytest.raises(SqlError):
        s.execute("INSERT INTO inventory.items(qty) VALUES (-1)")
    s.close()

    everything = _profiles(client, headers)
    by_id = {p["query_id"]: p for p in everything}
    point, scan, heavy = by_id[sql_id(POINT)], by_id[sql_id(SCAN)], by_id[sql_id(HEAVY)]
    assert (point["execution_count"], scan["execution_count"], heavy["execution_count"]) == (5, 3, 1)
    assert point["total_rows_returned"] == 5 and point["avg_rows_returned"] == 1.0
    assert 0 <= point["cache_hit_ratio"] <= 1 and point["execution_plan"].startswith("SEARCH ")
    assert scan["fullscan_steps"] > 0 and heavy["vm_steps"] > 0
    assert point["min_time_ms"] <= point["max_time_ms"] and point["p50_ms"] <= point["p99_ms"]
    assert by_id[sql_id("INSERT INTO inventory.items(qty) VALUES (-1)")]["errors"] == 1
    assert [p["total_time_ms"] for p in everything] == sorted((p["total_time_ms"] for p in everything), reverse=True)

    counts = _profiles(client, headers, sort_by="execution_count", sort_order="desc")
    assert [p["execution_count"] for p in counts] == sorted((p["execution_count"] for p in counts), reverse=True)
    avg = _profiles(client, headers, sort_by="avg_time", sort_order="asc")
    assert [p["avg_time_ms"] for p in avg] == sorted(p["avg_time_ms"] for p in avg)

    floor = point["avg_time_ms"] + 0.001
    slowest = _profiles(client, headers, min_time_ms=floor)
    assert slowest and all(p["avg_time_ms"] >= floor for p in slowest)
    assert sql_id(HEAVY) in {p["query_id"] for p in slowest} and sql_id(POINT) not in {p["query_id"] for p in slowest}

    pages, page = [], 1
    while True:
        body = monitor_get(client, headers, "/api/v1/profiling/queries", page=page, page_size=2, sort_by="execution_count")
        assert body["total_count"] == len(everything) and body["page"] == page and body["page_size"] == 2
        assert body["has_prev"] == (page > 1) and len(body["profiles"]) <= 2
        pages += body["profiles"]
        if not body["has_next"]:
            break
        page += 1
    assert page == body["total_pages"] == (len(everything) + 1) // 2
    assert [p["query_id"] for p in pages] == [p["query_id"] for p in counts]
    assert monitor_get(client, headers, "/api/v1/profiling/queries", page=page + 1, page_size=2)["profiles"] == []


@pytest.mark.parametrize(("params", "field"), [
    ({"sort_by": "cost"}, "sort_by"), ({"sort_order": "up"}, "sort_order"), ({"min_time_ms": -1}, "min_time_ms"),
    ({"page": 0}, "page"), ({"page_size": 1001}, "page_size"),
])
def test_bad_profiling_parameters_are_400(client: TestClient, headers: dict, params: dict, field: str) -> None:
    r = client.get("/api/v1/profiling/queries", params=params, headers=headers["monitor"])
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR")
    assert r.json()["message"].startswith(field)


def test_bad_query_stats_limits_are_400(client: TestClient, headers: dict) -> None:
    for params in ({"top_limit": 0}, {"slow_limit": -1}):
        r = client.get("/api/v1/stats/queries", params=params, headers=headers["monitor"])
        assert r.status_code == 400 and next(iter(params)) in r.json()["message"]
