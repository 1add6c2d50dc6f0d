"""Engine metrics as JSON and as Prometheus text: they move with activity, and the text is valid."""

from __future__ import annotations

import shutil
import subprocess
import threading

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine import Engine
from engine.errors import DeadlockDetected, LockTimeout
from engine.metrics import EngineMetrics
from engine.sessions import SessionState

from .conftest import wait_until

STATES = {"idle", "active", "idle in transaction", "waiting"}


def _metrics(client: TestClient, headers: dict, **params: object) -> dict:
    r = client.get("/api/v1/metrics", params=params, headers=headers["monitor"])
    assert r.status_code == 200, r.text
    return r.json()


def _values(client: TestClient, headers: dict) -> dict[str, float]:
    return {k: m["value"] for k, m in _metrics(client, headers)["metrics"].items()}


def _scrape(client: TestClient, headers: dict) -> str:
    r = client.get("/api/v1/metrics/prometheus", headers=headers["monitor"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return r.text


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_json_metrics_move_with_activity(engine: Engine, client: TestClient, headers: dict) -> None:
    before = _values(client, headers)
    s = engine.connect("dave", "metrics-test")
    for i in range(3):
        s.execute("SELECT amount FROM sales.orders WHERE id = ?", (i + 1,))
    s.execute("BEGIN")
    s.execute("INSERT INTO sales.orders(amount) VALUES (99)")
    during = _metrics(client, headers)
    s.execute("ROLLBACK")
    s.execute("SELECT 1")
    after = _values(client, headers)

    assert after["statements_total"] - before["statements_total"] == 7
    assert after["commits_total"] - before["commits_total"] == 4  # the autocommit reads and SELECT 1
    assert after["rollbacks_total"] - before["rollbacks_total"] == 1
    assert after["rows_read_total"] - before["rows_read_total"] == 4
    assert after["statement_duration_seconds_count"] == after["statements_total"]
    assert after["statement_duration_seconds_sum"] > before["statement_duration_seconds_sum"]

    metrics = during["metrics"]
    idle_in_txn = metrics['sessions{state="idle in transaction"}']
    assert idle_in_txn["value"] == 1 and idle_in_txn["labels"] == {"state": "idle in transaction"}
    assert idle_in_txn["name"] == "sessions" and idle_in_txn["type"] == "gauge"
    assert {m["labels"]["state"] for m in metrics.values() if m["name"] == "sessions"} == STATES
    assert metrics["transactions_active"]["value"] == 1 and metrics["locks_held"]["value"] == 2
    assert metrics["statements_total"]["type"] == "counter" and metrics["statements_total"]["unit"] == "statements"
    assert 0 <= metrics["cache_hit_ratio"]["value"] <= 1 and metrics["cache_hit_ratio"]["unit"] == "ratio"
    assert metrics["process_resident_memory_bytes"]["value"] > 0 and metrics["uptime_seconds"]["value"] > 0
    assert metrics["memory_usage_bytes"]["value"] > 0 and metrics["disk_free_bytes"]["value"] > 0
    assert not any("request" in key for key in metrics), "engine metrics, not HTTP counters"
    assert during["prometheus_format"] is None
    assert during["timestamp"] <= int(engine.clock.time())

    s.execute("BEGIN")
    sampled = engine.sample_ash()
    assert sampled >= 1
    assert _values(client, headers)["ash_samples_total"] - after["ash_samples_total"] >= sampled
    s.execute("ROLLBACK")
    s.close()


def test_json_can_carry_the_prometheus_text(client: TestClient, headers: dict) -> None:
    body = _metrics(client, headers, include_prometheus=True)
    families = {f.name for f in text_string_to_metric_families(body["prometheus_format"])}
    assert {"rustydb_statements", "rustydb_sessions", "rustydb_statement_duration_seconds"} <= families
    assert client.get("/api/v1/metrics", params={"include_prometheus": "maybe"},
                      headers=headers["monitor"]).status_code == 400


def test_prometheus_counters_and_histogram_follow_statements(engine: Engine, client: TestClient,
                                                             headers: dict) -> None:
    first = _samples(_scrape(client, headers))
    s = engine.connect("erin", "prom-test")
    for i in range(11):
        s.execute("SELECT amount FROM sales.orders WHERE id = ?", (i % 3 + 1,))
    s.close()
    text = _scrape(client, headers)
    families = list(text_string_to_metric_families(text))
    then = _samples(text)

    assert all(f.name.startswith("rustydb_") for f in families), "only the engine's own registry is exposed"
    for f in families:
        if f.type == "counter":
            assert all(x.name.endswith("_total") for x in f.samples), f.name
    assert then[("rustydb_statements_total", ())] - first[("rustydb_statements_total", ())] == 11
    count = then[("rustydb_statement_duration_seconds_count", ())]
    assert count - first[("rustydb_statement_duration_seconds_count", ())] == 11
    assert count == then[("rustydb_statements_total", ())]
    assert then[("rustydb_statement_duration_seconds_sum", ())] > first[("rustydb_statement_duration_seconds_sum", ())]

    [histogram] = [f for f in families if f.name == "rustydb_statement_duration_seconds"]
    assert histogram.type == "histogram"
    buckets = [(float(x.labels["le"]), x.value) for x in histogram.samples if x.name.endswith("_bucket")]
    assert [le for le, _ in buckets] == sorted(le for le, _ in buckets) and buckets[-1][0] == float("inf")
    assert [n for _, n in buckets] == sorted(n for _, n in buckets) and buckets[-1][1] == count
    assert {dict(k[1])["state"] for k in then if k[0] == "rustydb_sessions"} == STATES
    assert ("rustydb_process_cpu_seconds_total", ()) in then and ("rustydb_uptime_seconds", ()) in then


def test_histogram_buckets_place_a_slow_statement(engine: Engine, client: TestClient, headers: dict) -> None:
    before = _samples(_scrape(client, headers))
    s = engine.connect("frank", "prom-test")
    took = s.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) "
                     "SELECT count(*) FROM c").execution_time_ms / 1000
    s.close()
    after = _samples(_scrape(client, headers))
    moved = {float(dict(k[1])["le"]): after[k] - before[k] for k in after
             if k[0] == "rustydb_statement_duration_seconds_bucket"}
    # counted from the first bound above its log bucket (at most 4.4 % above the value) onwards
    assert all(n == 1 for le, n in moved.items() if le >= took * 1.045)
    assert all(n == 0 for le, n in moved.items() if le < took)


def test_lock_waits_timeouts_and_deadlocks_are_counted(engine: Engine, client: TestClient, headers: dict) -> None:
    before = _values(client, headers)
    a, b = engine.connect("a", "locks-test"), engine.connect("b", "locks-test")
    engine.reconfigure(lock_timeout_ms=50)
    a.execute("BEGIN")
    a.execute("UPDATE sales.orders SET amount = 1 WHERE id = 1")
    with pytest.raises(LockTimeout):
        b.execute("UPDATE sales.orders SET amount = 2 WHERE id = 2")
    engine.reconfigure(lock_timeout_ms=5000)

    # a holds sales and b holds inventory; each then wants the other's: a cycle the detector breaks
    b.execute("BEGIN")
    b.execute("UPDATE inventory.items SET qty = 1 WHERE id = 1")
    errors: list[Exception] = []

    def cross(session, sql: str) -> None:  # type: ignore[no-untyped-def]
        try:
            session.execute(sql)
        except DeadlockDetected as exc:  # the victim's transaction is rolled back for it
            errors.append(exc)

    threads = [threading.Thread(target=cross, args=(a, "UPDATE inventory.items SET qty = 2 WHERE id = 2"))]
    threads[0].start()
    wait_until(lambda: a.state is SessionState.WAITING)
    threads.append(threading.Thread(target=cross, args=(b, "UPDATE sales.orders SET amount = 3 WHERE id = 3")))
    threads[1].start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads) and len(errors) == 1
    for session in (a, b):
        if session.txn is not None:
            session.execute("ROLLBACK")
        session.close()

    after = _values(client, headers)
    assert after["lock_timeouts_total"] - before["lock_timeouts_total"] == 1
    assert after["lock_waits_total"] - before["lock_waits_total"] == 3
    assert after["deadlocks_total"] - before["deadlocks_total"] == 1
    assert after["locks_held"] == 0 and after["lock_waiters"] == 0


def test_metrics_use_a_private_registry(engine: Engine) -> None:
    service = EngineMetrics(engine)
    assert service.registry is not REGISTRY
    assert b"rustydb_" in service.exposition() and b"rustydb_" not in generate_latest(REGISTRY)


def test_promtool_accepts_the_exposition(engine: Engine, client: TestClient, headers: dict) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (Debian: apt-get install -y prometheus)")
    s = engine.connect("gina", "promtool-test")
    s.execute("BEGIN")
    s.execute("SELECT * FROM sales.orders")
    text = _scrape(client, headers)
    s.execute("ROLLBACK")
    s.close()
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), checked.stdout + checked.stderr


def test_firing_alerts_are_counted_by_severity(engine: Engine, client: TestClient, headers: dict) -> None:
    engine.alerts.update_rule("idle_in_transaction", "tests", threshold=0.0, for_seconds=0.0)
    s = engine.connect("erin", "alert-metric")
    s.execute("BEGIN")
    s.execute("SELECT amount FROM sales.orders WHERE id = 1")
    engine.alerts.evaluate()
    firing = [a for a in engine.alerts.alerts() if a.state.value == "firing"]
    assert firing
    text = client.get("/api/v1/metrics/prometheus", headers=headers["monitor"]).text
    samples = _samples(text)
    for severity in ("INFO", "WARNING", "ERROR", "CRITICAL"):
        expected = sum(1 for a in firing if a.severity.value == severity)
        assert samples[("rustydb_alerts_firing", (("severity", severity),))] == expected
    s.execute("COMMIT")


def test_backup_age_appears_once_a_backup_completed(engine: Engine, client: TestClient, headers: dict) -> None:
    def samples() -> dict:
        return _samples(client.get("/api/v1/metrics/prometheus", headers=headers["monitor"]).text)

    assert ("rustydb_backup_age_seconds", ()) not in samples()
    assert samples()[("rustydb_backup_last_failed", ())] == 0
    r = client.post("/api/v1/backup/full", json={}, headers=headers["operator"])
    assert r.status_code == 202, r.text
    backup_id = r.json()["backup_id"]
    wait_until(lambda: client.get(f"/api/v1/backup/{backup_id}", headers=headers["monitor"]).json()["status"]
               in ("completed", "failed"), timeout=30)
    assert 0 <= samples()[("rustydb_backup_age_seconds", ())] < 60
