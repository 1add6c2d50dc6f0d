"""Health probes: each unhealthy state is caused for real and seen with the right status and code."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest
from fastapi.testclient import TestClient

from engine import VERSION, Engine, ManualClock
from engine.api import create_app
from engine.health import HealthLimits

from .conftest import wait_until

PROBES = ("/api/v1/health/liveness", "/api/v1/health/readiness", "/api/v1/health/startup",
          "/api/v1/health/full", "/api/v1/admin/health")


def _service(engine: Engine, name: str):  # type: ignore[no-untyped-def]
    return next(s for s in engine.services if s.name == name)


def _components(body: dict) -> dict[str, dict]:
    return {c["component"]: c for c in body["components"]}


def _stats_collector(client: TestClient) -> dict:
    return _components(client.get("/api/v1/health/full").json())["stats_collector"]


@contextmanager
def _app(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def host_ignored(engine: Engine) -> Engine:
    # Host memory and disk belong to the machine running the tests, not to the engine; they have
    # their own test below, so the other tests judge only what the engine itself controls.
    engine.health.limits = HealthLimits(memory_degraded_percent=101, memory_unhealthy_percent=101,
                                        disk_free_degraded_percent=-1, disk_free_unhealthy_percent=-1)
    return engine


def test_healthy_engine_answers_200_everywhere_with_real_values() -> None:
    clock = ManualClock()
    eng = Engine(clock=clock).start()
    eng.health.limits = HealthLimits(memory_degraded_percent=101, memory_unhealthy_percent=101,
                                     disk_free_degraded_percent=-1, disk_free_unhealthy_percent=-1)
    try:
        clock.advance(3600)
        with _app(eng) as c:
            for path in PROBES:  # public: no credentials
                r = c.get(path)
                assert r.status_code == 200, (path, r.text)
                assert r.json()["status"] == "healthy"
            live = c.get("/api/v1/health/liveness").json()
            assert live["uptime_seconds"] == 3600 and live["timestamp"] == int(clock.time())
            # every background service is judged; further services (alerts, dump expiry ...) come and go
            assert live["services"] == dict.fromkeys(live["services"], "healthy")
            assert {"ash_sampler", "deadlock_detector", "stats_collector"} <= set(live["services"])
            ready = c.get("/api/v1/health/readiness").json()
            assert ready["ready"] is True
            assert ready["dependencies"] == dict.fromkeys(("storage", "connections", "memory", "disk"), "healthy")
            start = c.get("/api/v1/health/startup").json()
            assert start["initialized"] is True and all(start["checks"].values())
            full = c.get("/api/v1/health/full").json()
            comps = _components(full)
            assert set(comps) == {"storage", "connections", "memory", "disk", *live["services"]}
            assert comps["storage"]["duration_us"] > 0  # a real file write was timed
            assert all(c["duration_ms"] == round(c["duration_us"] / 1000) for c in comps.values())
            assert comps["connections"]["details"] == {"connections": 0, "max_connections": 1000, "usage_percent": 0.0}
            assert comps["storage"]["details"]["data_directory"] == str(eng.storage.data_dir)
            assert comps["ash_sampler"]["details"]["interval_seconds"] == 1.0
            assert full["liveness"]["uptime_seconds"] == 3600 and full["readiness"]["ready"] is True
            admin = c.get("/api/v1/admin/health").json()
            assert admin["version"] == VERSION and admin["uptime_seconds"] == 3600
            assert admin["checks"]["storage"] == {"status": "healthy", "message": comps["storage"]["message"],
                                                  "last_check": int(clock.time())}
        assert not list(eng.storage.data_dir.glob(".health-probe-*")), "the storage probe cleans up after itself"
    finally:
        eng.close()


def test_connections_near_the_limit_degrade_and_at_the_limit_fail_readiness(client: TestClient,
                                                                             host_ignored: Engine) -> None:
    engine = host_ignored
    engine.reconfigure(max_connections=5)
    sessions = [engine.connect("t", "health") for _ in range(4)]
    try:
        r = client.get("/api/v1/health/readiness")
        assert r.status_code == 200
        body = r.json()
        assert (body["status"], body["ready"], body["dependencies"]["connections"]) == ("degraded", True, "degraded")
        full = client.get("/api/v1/health/full")
        assert full.status_code == 200 and full.json()["status"] == "degraded"
        assert _components(full.json())["connections"]["message"] == "4 of 5 connections in use (80 %)"
        assert client.get("/api/v1/admin/health").json()["checks"]["connections"]["status"] == "degraded"

        sessions.append(engine.connect("t", "health"))
        r = client.get("/api/v1/health/readiness")
        assert r.status_code == 503
        body = r.json()
        assert (body["status"], body["ready"], body["dependencies"]["connections"]) == ("unhealthy", False, "unhealthy")
        assert client.get("/api/v1/health/full").status_code == 503
        assert client.get("/api/v1/admin/health").status_code == 503
        assert client.get("/api/v1/health/liveness").status_code == 200, "a full server is still alive"

        sessions.pop().close()
        assert client.get("/api/v1/health/readiness").status_code == 200
    finally:
        for s in sessions:
            s.close()


def test_a_stopped_sampler_fails_liveness_full_and_admin_health(client: TestClient, host_ignored: Engine) -> None:
    _service(host_ignored, "ash").stop()
    r = client.get("/api/v1/health/liveness")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unhealthy" and body["services"]["ash_sampler"] == "unhealthy"
    assert body["message"] == "ash_sampler: thread is not running"
    assert body["uptime_seconds"] is not None
    full = client.get("/api/v1/health/full")
    assert full.status_code == 503
    assert _components(full.json())["ash_sampler"]["status"] == "unhealthy"
    assert full.json()["liveness"]["status"] == "unhealthy"
    assert client.get("/api/v1/admin/health").json()["checks"]["ash_sampler"]["status"] == "unhealthy"
    assert client.get("/api/v1/health/readiness").status_code == 200, "serving queries needs no sampler"


def test_a_stalled_sampler_is_unhealthy_until_it_ticks_again(client: TestClient, host_ignored: Engine) -> None:
    engine = host_ignored
    engine.reconfigure(ash_interval_ms=100)
    wait_until(lambda: client.get("/api/v1/health/liveness").json()["message"]
               == f"{len(engine.services)} background services running")
    # the sampler records under this lock: holding it stalls the thread inside its tick, still alive
    with engine.ash._mutex:
        stalled = wait_until(lambda: (r := client.get("/api/v1/health/liveness")).status_code == 503 and r.json())
        assert stalled["services"]["ash_sampler"] == "unhealthy"
        assert stalled["message"].startswith("ash_sampler: stalled: no tick for ")
        assert _service(engine, "ash").alive
    wait_until(lambda: client.get("/api/v1/health/liveness").status_code == 200)


def test_a_removed_data_directory_makes_storage_unhealthy(client: TestClient, host_ignored: Engine) -> None:
    engine = host_ignored
    data_dir = engine.storage.data_dir
    moved = data_dir.with_name(data_dir.name + ".moved")
    data_dir.rename(moved)  # removed as far as the engine can tell, and restorable for a clean close
    try:
        r = client.get("/api/v1/health/readiness")
        assert r.status_code == 503
        body = r.json()
        assert body["dependencies"]["storage"] == "unhealthy" and body["ready"] is False
        assert body["dependencies"]["disk"] == "unknown", "free space of a directory that is not there is unknown"
        comps = _components(client.get("/api/v1/health/full").json())
        assert comps["storage"]["message"] == "data directory is not writable: No such file or directory"
        assert comps["disk"]["message"].startswith("check failed: ")
        # the stats collector reads the disk too: its ticks now fail, and it says so
        degraded = wait_until(lambda: (c := _stats_collector(client))["status"] == "degraded" and c)
        assert degraded["details"]["consecutive_failures"] >= 1
        assert "FileNotFoundError" in degraded["details"]["last_error"]
    finally:
        moved.rename(data_dir)
    assert client.get("/api/v1/health/readiness").status_code == 200
    wait_until(lambda: _stats_collector(client)["status"] == "healthy")


def test_host_memory_and_disk_are_judged_on_real_readings(client: TestClient, engine: Engine) -> None:
    used = psutil.virtual_memory().percent
    engine.health.limits = HealthLimits(memory_degraded_percent=used / 2, memory_unhealthy_percent=100)
    mem = _components(client.get("/api/v1/health/full").json())["memory"]
    assert mem["status"] == "degraded"
    assert abs(mem["details"]["host_memory_percent"] - used) < 5
    assert mem["details"]["process_rss_bytes"] == pytest.approx(psutil.Process(os.getpid()).memory_info().rss, rel=0.2)

    engine.health.limits = HealthLimits(memory_unhealthy_percent=used / 2, memory_degraded_percent=used / 4)
    r = client.get("/api/v1/health/readiness")
    assert r.status_code == 503 and r.json()["dependencies"]["memory"] == "unhealthy"

    disk = psutil.disk_usage(str(engine.storage.data_dir))
    free = 100 * disk.free / disk.total
    engine.health.limits = HealthLimits(memory_degraded_percent=101, memory_unhealthy_percent=101,
                                        disk_free_degraded_percent=free + 1, disk_free_unhealthy_percent=0)
    d = _components(client.get("/api/v1/health/full").json())["disk"]
    assert d["status"] == "degraded" and abs(d["details"]["free_percent"] - free) < 1
    assert d["details"]["total_bytes"] == disk.total


def test_an_engine_not_started_or_shut_down_fails_every_probe_with_the_same_body() -> None:
    eng = Engine()
    with _app(eng) as c:
        shapes = {}
        for path in PROBES:
            r = c.get(path)
            assert r.status_code == 503, path
            shapes[path] = set(r.json())
        start = c.get("/api/v1/health/startup").json()
        assert start["initialized"] is False
        assert start["checks"] == {"storage_opened": True, "services_started": False}
        assert start["message"] == "1/2 initialization checks completed"
        assert c.get("/api/v1/health/liveness").json()["message"] == "engine is not running"

        eng.start()
        eng.health.limits = HealthLimits(memory_degraded_percent=101, memory_unhealthy_percent=101,
                                         disk_free_degraded_percent=-1, disk_free_unhealthy_percent=-1)
        for path in PROBES:
            r = c.get(path)
            assert r.status_code == 200, path
            assert set(r.json()) == shapes[path], "503 and 200 bodies have the same shape"

        eng.close()
        start = c.get("/api/v1/health/startup")
        assert start.status_code == 503
        assert start.json()["checks"] == {"storage_opened": False, "services_started": False}
        live = c.get("/api/v1/health/liveness")
        assert live.status_code == 503 and live.json()["message"] == "engine is not running"
        assert c.get("/api/v1/health/full").json()["status"] == "unhealthy"
