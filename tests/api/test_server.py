"""Server info and the effective configuration: every value read from the running engine."""

from __future__ import annotations

import dataclasses
import os
import platform
import socket
from pathlib import Path

import apsw
from fastapi.testclient import TestClient

from engine import VERSION, Engine, EngineConfig
from engine.api import create_app


def test_server_info_needs_a_caller_and_reports_this_process(client: TestClient, headers: dict,
                                                             engine: Engine) -> None:
    assert client.get("/api/v1/server/info").status_code == 401
    before = int(engine.uptime_seconds)
    r = client.get("/api/v1/server/info", headers=headers["monitor"])
    after = int(engine.uptime_seconds)
    assert r.status_code == 200
    info = r.json()
    assert info["server_name"] == "rdbtop-engine" and info["version"] == VERSION and info["license"] == "MIT"
    assert info["pid"] == os.getpid()
    assert before <= info["uptime_seconds"] <= after
    assert info["started_at"] == int(engine.started_at)
    assert info["system_info"] == {"os": platform.system().lower(), "arch": platform.machine(),
                                   "cpu_cores": os.cpu_count(), "hostname": socket.gethostname()}
    assert info["build_target"] == f"{platform.machine()}-{platform.system().lower()}"
    assert (info["rust_version"], info["build_date"], info["git_commit"]) == (None, None, None)
    assert info["sqlite_version"] == apsw.sqlite_lib_version() and info["apsw_version"] == apsw.apsw_version()
    assert info["data_directory"] == str(engine.storage.data_dir)
    assert info["features"] == ["wal", "locks", "deadlock_detection", "query_cancel", "session_terminate",
                                "api_auth", "ash", "statement_stats", "slow_query_log"]


def test_features_follow_what_the_engine_does_now(client: TestClient, headers: dict, engine: Engine) -> None:
    engine.reconfigure(monitoring_enabled=False)
    features = client.get("/api/v1/server/info", headers=headers["monitor"]).json()["features"]
    assert "ash" not in features and "statement_stats" not in features and "wal" in features
    assert client.get("/api/v1/config", headers=headers["monitor"]).json()["features"] == features


def test_config_shows_the_effective_settings_with_their_limits(client: TestClient, headers: dict,
                                                               engine: Engine) -> None:
    assert client.get("/api/v1/config").status_code == 401
    engine.reconfigure(max_connections=7, lock_timeout_ms=1234, log_level="debug")
    r = client.get("/api/v1/config", headers=headers["monitor"])
    assert r.status_code == 200
    body = r.json()
    settings, meta = body["settings"], body["settings_meta"]
    config = dataclasses.asdict(engine.config)
    assert {k: settings[k] for k in config} == config
    assert (settings["max_connections"], settings["lock_timeout_ms"], settings["log_level"]) == (7, 1234, "debug")
    assert set(settings) == set(config) | {"page_size", "journal_mode", "busy_timeout_ms"}
    assert set(meta) == set(settings)
    assert meta["max_connections"] == {"source": "config", "unit": "connections", "min": 1, "max": 10000,
                                       "live": True, "choices": [], "default": 1000,
                                       "doc": "sessions allowed at once"}
    assert meta["wal_enabled"]["live"] is False
    assert meta["log_level"]["choices"] == ["trace", "debug", "info", "warn", "error"]
    assert meta["page_size"]["source"] == "sqlite" and meta["busy_timeout_ms"]["source"] == "fixed"
    s = engine.connect("t", "server")
    try:
        assert settings["page_size"] == s.execute("PRAGMA page_size").rows[0][0]
        assert settings["journal_mode"] == s.execute("PRAGMA journal_mode").rows[0][0] == "wal"
    finally:
        s.close()
    assert (body["version"], body["build_date"], body["rust_version"]) == (VERSION, None, None)


def test_page_size_is_read_from_the_database_not_assumed(tmp_path: Path) -> None:
    conn = apsw.Connection(str(tmp_path / "main.db"))
    conn.execute("PRAGMA page_size=8192; CREATE TABLE t(x)")
    conn.close()
    eng = Engine(tmp_path, EngineConfig()).start()
    try:
        key = eng.auth.create_api_key("monitor")
        with TestClient(create_app(eng)) as c:
            assert c.get("/api/v1/config", headers={"X-API-Key": key}).json()["settings"]["page_size"] == 8192
    finally:
        eng.close()
