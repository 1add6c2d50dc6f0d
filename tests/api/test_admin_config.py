"""GET/PUT /api/v1/admin/config: validated with RustyDB's messages, applied at once, saved, reflected."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine import Engine, EngineConfig
from engine.api import create_app
from engine.wal import CheckpointMode

from .conftest import ADMIN_PASSWORD, wait_until

CONFIG = "/api/v1/admin/config"
RUSTYDB_KEYS = {"max_connections", "buffer_pool_size", "wal_enabled", "checkpoint_interval_secs", "log_level",
                "query_timeout_secs"}


def test_get_lists_every_setting_with_how_it_applies(client: TestClient, headers: dict) -> None:
    body = client.get(CONFIG, headers=headers["monitor"]).json()
    assert RUSTYDB_KEYS | {"lock_timeout_ms", "deadlock_check_interval_ms", "slow_query_threshold_ms",
                           "ash_interval_ms", "ash_retention_secs", "backup_dir"} <= set(body["settings"])
    assert body["settings"]["max_connections"] == 1000 and body["settings"]["wal_enabled"] is True
    meta = body["settings_meta"]
    assert meta["max_connections"] | {"value": 1000} == meta["max_connections"]
    assert (meta["max_connections"]["min"], meta["max_connections"]["max"]) == (1, 10000)
    assert meta["log_level"]["applies"] == "live" and meta["log_level"]["choices"] == [
        "trace", "debug", "info", "warn", "error"]
    assert meta["buffer_pool_size"]["applies"] == "new_sessions" and meta["buffer_pool_size"]["unit"] == "pages"
    assert meta["wal_enabled"]["applies"] == "restart" and meta["wal_enabled"]["live"] is False
    assert body["restart_pending"] is False and body["pending_restart"] == {}
    assert not any(m["saved"] for m in meta.values())
    assert body["config_file"].endswith("engine.toml")


def test_put_applies_at_once_and_get_reflects_it(client: TestClient, headers: dict, engine: Engine) -> None:
    before = engine.connect("before", "tests")
    r = client.put(CONFIG, json={"max_connections": 50, "query_timeout_secs": 12, "buffer_pool_size": 2048},
                   headers=headers["admin"])
    assert r.status_code == 200, r.text
    assert sorted(r.json()["changed"]) == ["buffer_pool_size", "max_connections", "query_timeout_secs"]
    assert sorted(r.json()["applied"]) == sorted(r.json()["changed"])
    settings = client.get(CONFIG, headers=headers["monitor"]).json()["settings"]
    assert (settings["max_connections"], settings["query_timeout_secs"], settings["buffer_pool_size"]) == (50, 12.0, 2048)
    assert engine.config.max_connections == 50 and engine.config.query_timeout_secs == 12.0
    # the page cache applies to sessions opened after the change; an open one keeps its own
    after = engine.connect("after", "tests")
    assert after.execute("PRAGMA cache_size").rows == [(2048,)]
    assert before.execute("PRAGMA cache_size").rows == [(1024,)]
    before.close()
    after.close()
    # setting the same values again changes nothing
    again = client.put(CONFIG, json={"max_connections": 50}, headers=headers["admin"]).json()
    assert again["changed"] == [] and again["settings"]["max_connections"] == 50


def test_settings_persist_across_a_restart(tmp_path: Path) -> None:
    def serve() -> tuple[Engine, TestClient, dict[str, str]]:
        eng = Engine(tmp_path, config=EngineConfig(lock_timeout_ms=5000)).start()
        eng.auth.ensure_admin(ADMIN_PASSWORD)
        token = eng.auth.login("admin", ADMIN_PASSWORD, "tests").token
        return eng, TestClient(create_app(eng), raise_server_exceptions=False), {"Authorization": f"Bearer {token}"}

    eng, client, admin = serve()
    try:
        r = client.put(CONFIG, json={"max_connections": 77, "log_level": "warn", "slow_query_threshold_ms": 250},
                       headers=admin)
        assert r.status_code == 200, r.text
    finally:
        eng.close()
    saved = tomllib.loads((tmp_path / "engine.toml").read_text())
    assert saved == {"log_level": "warn", "max_connections": 77, "slow_query_threshold_ms": 250.0}
    eng, client, admin = serve()
    try:
        body = client.get(CONFIG, headers=admin).json()
        assert (body["settings"]["max_connections"], body["settings"]["log_level"]) == (77, "warn")
        assert body["settings"]["slow_query_threshold_ms"] == 250.0
        assert body["settings_meta"]["max_connections"]["saved"] is True
        assert body["settings_meta"]["query_timeout_secs"]["saved"] is False
        assert body["settings"]["lock_timeout_ms"] == 5000  # not saved: the engine's own configuration
        assert eng.config.max_connections == 77
    finally:
        eng.close()


@pytest.mark.parametrize(("body", "message"), [
    ({"max_connections": 0}, "max_connections must be between 1 and 10000"),
    ({"max_connections": 10001}, "max_connections must be between 1 and 10000"),
    ({"max_connections": -5}, "max_connections must be a positive integer"),
    ({"max_connections": 2.5}, "max_connections must be a positive integer"),
    ({"max_connections": "100"}, "max_connections must be a positive integer"),
    ({"no_such_key": 1}, "Unknown configuration key: no_such_key"),
    ({"log_level": "verbose"}, "log_level must be one of: trace, debug, info, warn, error"),
    ({"log_level": 3}, "log_level must be a string"),
    ({"wal_enabled": "yes"}, "wal_enabled must be a boolean (true or false)"),
    ({"lock_timeout_ms": -1}, "lock_timeout_ms must be a non-negative integer"),
    ({"query_timeout_secs": True}, "query_timeout_secs must be a number"),
    ({"ash_interval_ms": 5}, "ash_interval_ms must be between 10 and 60000"),
])
def test_bad_values_are_refused_with_rustydb_messages(client: TestClient, headers: dict, engine: Engine,
                                                      body: dict, message: str) -> None:
    r = client.put(CONFIG, json=body, headers=headers["admin"])
    assert r.status_code == 400
    assert (r.json()["code"], r.json()["message"]) == ("INVALID_INPUT", message)
    assert r.json()["details"]["field"] == next(iter(body))
    assert not engine.settings.path.exists()


def test_one_bad_key_changes_nothing(client: TestClient, headers: dict, engine: Engine) -> None:
    r = client.put(CONFIG, json={"max_connections": 20, "log_level": "loud"}, headers=headers["admin"])
    assert r.status_code == 400
    assert engine.config.max_connections == 1000
    assert client.get(CONFIG, headers=headers["monitor"]).json()["settings"]["max_connections"] == 1000


def test_wal_cannot_be_switched_off(client: TestClient, headers: dict) -> None:
    r = client.put(CONFIG, json={"wal_enabled": False}, headers=headers["admin"])
    assert r.status_code == 400 and r.json()["code"] == "INVALID_INPUT"
    assert r.json()["message"].startswith("wal_enabled cannot be false: the engine's lock manager relies on WAL")
    ok = client.put(CONFIG, json={"wal_enabled": True}, headers=headers["admin"]).json()
    assert ok["changed"] == [] and ok["restart_pending"] is False


def test_body_must_be_an_object_and_the_caller_an_admin(client: TestClient, headers: dict) -> None:
    r = client.put(CONFIG, json=[1, 2], headers=headers["admin"])
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR"
    r = client.put(CONFIG, json={"log_level": "debug"}, headers=headers["operator"])
    assert r.status_code == 403


def test_lowered_log_level_takes_effect_at_once(client: TestClient, headers: dict) -> None:
    def debug_lines(job_id: str) -> list[dict]:
        r = client.get("/api/v1/logs", params={"search": job_id, "level": "debug", "page_size": 100},
                       headers=headers["monitor"])
        return [e for e in r.json()["entries"] if e["level"] == "debug"]

    def analyze() -> str:
        job = client.post("/api/v1/admin/maintenance", json={"operation": "analyze", "target": "sales"},
                          headers=headers["operator"]).json()
        wait_until(lambda: client.get(f"/api/v1/admin/maintenance/{job['job_id']}",
                                      headers=headers["monitor"]).json()["status"] == "completed")
        return job["job_id"]

    quiet = analyze()
    assert debug_lines(quiet) == []
    assert client.put(CONFIG, json={"log_level": "debug"}, headers=headers["admin"]).status_code == 200
    chatty = analyze()
    lines = debug_lines(chatty)
    assert any('ANALYZE "sales"' in e["message"] for e in lines), lines


def test_changed_ash_interval_changes_the_sampler_at_once(client: TestClient, headers: dict, engine: Engine) -> None:
    ash = next(s for s in engine.services if s.name == "ash")
    client.put(CONFIG, json={"ash_interval_ms": 60_000}, headers=headers["admin"])
    idle = engine.connect("sampled", "tests")  # idle in transaction: sampled on every tick
    idle.execute("BEGIN")
    idle.execute("SELECT count(*) FROM sales.orders")
    # from a one-minute wait straight to 20 ms: without cutting the old wait short, no sample for a minute
    client.put(CONFIG, json={"ash_interval_ms": 20}, headers=headers["admin"])
    assert ash.interval_seconds == 0.02

    def samples() -> int:
        return client.get("/api/v1/monitoring/ash", params={"session_id": idle.id, "limit": 0},
                          headers=headers["monitor"]).json()["total_count"]

    first = wait_until(samples, timeout=5.0)
    assert wait_until(lambda: samples() >= first + 10, timeout=5.0)
    body = client.get("/api/v1/monitoring/ash", params={"limit": 0}, headers=headers["monitor"]).json()
    assert body["sample_interval_seconds"] == 0.02
    idle.close()


def test_checkpoint_interval_drives_automatic_checkpoints(client: TestClient, headers: dict, engine: Engine) -> None:
    writer = engine.connect("writer", "tests")
    writer.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) "
                   "INSERT INTO sales.orders(amount) SELECT i FROM n")
    assert engine.wal.last_checkpoint is None
    client.put(CONFIG, json={"checkpoint_interval_secs": 1}, headers=headers["admin"])

    def checkpointed() -> bool:
        wal = client.get("/api/v1/transactions/wal/status", headers=headers["monitor"]).json()
        sales = next(f for f in wal["files"] if f["schema_name"] == "sales")
        return wal["last_checkpoint"] is not None and sales["frames"] > 0 and \
            sales["checkpointed_frames"] == sales["frames"]

    wait_until(checkpointed, timeout=5.0)
    assert engine.wal.last_checkpoint is not None and engine.wal.last_checkpoint.mode is CheckpointMode.PASSIVE
    writer.close()


def test_config_changes_are_audited(client: TestClient, headers: dict) -> None:
    client.put(CONFIG, json={"slow_query_threshold_ms": 123}, headers=headers["admin"])
    client.put(CONFIG, json={"max_connections": 0}, headers=headers["admin"])
    entries = client.get("/api/v1/logs", params={"logger": "engine.audit"}, headers=headers["monitor"]).json()["entries"]
    config = [e["context"] for e in entries if e["context"].get("action") == "config"]
    refused, accepted = config[0], config[1]  # newest first
    assert accepted["who"] == "admin" and accepted["result"] == "ok"
    assert accepted["changed"] == {"slow_query_threshold_ms": [1000.0, 123.0]}
    assert refused["target"] == "max_connections"
    assert refused["result"] == "refused: max_connections must be between 1 and 10000"
