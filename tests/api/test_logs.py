"""GET /api/v1/logs: the engine's log ring, filtered by level, since and search, paginated newest first."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fastapi.testclient import TestClient

from engine import Engine

LOGS = "/api/v1/logs"
log = logging.getLogger("engine.tests")  # a logger of the engine's hierarchy, as every service has


def _get(client: TestClient, headers: dict, **params: object) -> dict:
    r = client.get(LOGS, params=params, headers=headers["monitor"])
    assert r.status_code == 200, r.text
    return r.json()


def test_level_search_and_since_filter(client: TestClient, headers: dict) -> None:
    log.info("routine Needle-1")
    log.warning("worrying NEEDLE-2")
    log.error("broken needle-3")
    log.info("unrelated")

    found = _get(client, headers, search="needle", logger="engine.tests")
    assert [e["message"] for e in found["entries"]] == ["broken needle-3", "worrying NEEDLE-2", "routine Needle-1"]
    assert found["total_count"] == 3 and found["has_more"] is False
    warn_up = _get(client, headers, search="needle", level="warn")
    assert [e["level"] for e in warn_up["entries"]] == ["error", "warn"]
    entry = found["entries"][0]
    assert entry["logger"] == "engine.tests" and entry["context"]["logger"] == "engine.tests"
    assert abs(entry["timestamp"] - time.time()) < 60 and entry["timestamp_ms"] // 1000 == entry["timestamp"]
    assert _get(client, headers, search="needle", since=int(time.time()) + 3600)["total_count"] == 0
    assert _get(client, headers, search="needle", since=int(time.time()) - 3600)["total_count"] == 3


def test_pagination_newest_first(client: TestClient, headers: dict) -> None:
    for i in range(5):
        log.info("paged entry %d", i)
    first = _get(client, headers, search="paged entry", page_size=2)
    assert [e["message"] for e in first["entries"]] == ["paged entry 4", "paged entry 3"]
    assert (first["total_count"], first["total_pages"], first["has_more"]) == (5, 3, True)
    last = _get(client, headers, search="paged entry", page_size=2, page=3)
    assert [e["message"] for e in last["entries"]] == ["paged entry 0"] and last["has_more"] is False
    oldest_first = _get(client, headers, search="paged entry", sort_by="id", sort_order="asc")
    assert [e["message"] for e in oldest_first["entries"]] == [f"paged entry {i}" for i in range(5)]


def test_bad_filters_are_refused(client: TestClient, headers: dict) -> None:
    for params, field in (({"level": "loud"}, "level"), ({"since": -1}, "since"), ({"search": ""}, "search"),
                          ({"page_size": 0}, "page_size"), ({"sort_by": "colour"}, "sort_by")):
        r = client.get(LOGS, params=params, headers=headers["monitor"])
        assert r.status_code == 400, (params, r.text)
        assert field in r.json()["message"]
    assert client.get(LOGS).status_code == 401


def test_audit_records_carry_their_fields_in_context(client: TestClient, headers: dict, engine: Engine) -> None:
    victim = engine.connect("victim", "tests")
    assert client.delete(f"/api/v1/sessions/{victim.id}", headers=headers["operator"]).status_code == 204
    entries = _get(client, headers, logger="engine.audit")["entries"]
    context = next(e["context"] for e in entries if e["context"].get("action") == "terminate")
    assert context["target"] == f"session {victim.id}" and context["result"] == "ok"
    assert context["who"].startswith("apikey-") and context["user"] == "victim"


def test_audit_records_are_kept_at_any_log_level(client: TestClient, headers: dict) -> None:
    client.put("/api/v1/admin/config", json={"log_level": "error"}, headers=headers["admin"])
    log.warning("below the level")
    client.put("/api/v1/admin/config", json={"slow_query_threshold_ms": 321}, headers=headers["admin"])
    assert _get(client, headers, search="below the level")["total_count"] == 0
    audited = _get(client, headers, logger="engine.audit", search="slow_query_threshold_ms")["entries"]
    assert audited and audited[0]["context"]["changed"] == {"slow_query_threshold_ms": [1000.0, 321.0]}


def test_errors_carry_their_exception(client: TestClient, headers: dict) -> None:
    try:
        raise ValueError("the cause")
    except ValueError:
        log.exception("it failed")
    entry = _get(client, headers, search="it failed")["entries"][0]
    assert entry["level"] == "error" and "ValueError: the cause" in entry["context"]["exception"]


def test_ring_size_bounds_the_log(client: TestClient, headers: dict) -> None:
    client.put("/api/v1/admin/config", json={"log_ring_size": 100}, headers=headers["admin"])
    for i in range(150):
        log.info("flood %d", i)
    body = _get(client, headers, page_size=1000)
    assert body["ring_size"] == 100 and body["total_count"] == 100
    messages = [e["message"] for e in body["entries"]]
    assert messages[0] == "flood 149" and "flood 49" not in messages  # the oldest made room


def test_the_log_file_rotates_in_the_data_directory(tmp_path: Path) -> None:
    engine = Engine(tmp_path).start()
    try:
        engine.reconfigure(log_file_max_bytes=64 * 1024, log_file_backups=2)
        for i in range(2000):
            log.info("line %d of a log that must rotate %s", i, "x" * 40)
    finally:
        engine.close()
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["engine.log", "engine.log.1", "engine.log.2"]
    assert all(p.stat().st_size <= 64 * 1024 for p in logs.iterdir())
    assert "line 1999 of a log" in (logs / "engine.log").read_text()
