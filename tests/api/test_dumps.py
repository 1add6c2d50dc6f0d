"""Diagnostic dumps: each type written in the background with real content and size; downloaded; expired."""

from __future__ import annotations

import io
import json
import logging
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from engine import Engine, EngineConfig, ManualClock, SessionState, dumps
from engine.api import create_app
from engine.dumps import DumpType

from .conftest import wait_until

URL = "/api/v1/diagnostics/dump"
LONG_QUERY = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
              "SELECT count(*) FROM c JOIN sales.orders o ON o.id = c.x % ?")


def request_dump(client: TestClient, headers: dict, dump_type: str) -> dict:
    r = client.post(URL, json={"dump_type": dump_type}, headers=headers["operator"])
    assert r.status_code == 202, r.text
    return r.json()


def finished(client: TestClient, headers: dict, dump_id: str) -> dict:
    def state() -> dict | None:
        body = client.get(f"{URL}/{dump_id}", headers=headers["monitor"]).json()
        return body if body["status"] in ("completed", "failed") else None

    return wait_until(state, timeout=20)


def take(client: TestClient, headers: dict, dump_type: str) -> tuple[dict, bytes]:
    """Ask for a dump, wait for it, download it: (its final state, the file)."""
    dump = finished(client, headers, request_dump(client, headers, dump_type)["dump_id"])
    assert dump["status"] == "completed", dump
    r = client.get(dump["download_url"], headers=headers["monitor"])
    assert r.status_code == 200
    assert r.headers["content-type"] == dump["content_type"]
    assert dump["size_bytes"] == len(r.content) > 0
    return dump, r.content


def data_of(content: bytes, dump: dict) -> dict:
    body = json.loads(content)
    assert (body["dump_id"], body["dump_type"]) == (dump["dump_id"], dump["dump_type"])
    return body["data"]


def test_a_dump_is_queued_then_written(client: TestClient, headers: dict, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="engine.audit"):
        created = request_dump(client, headers, "thread")
    assert created["status"] == "pending" and created["dump_type"] == "thread"
    assert (created["completed_at"], created["size_bytes"]) == (None, None)
    assert created["expires_at"] == created["created_at"] + 3600
    assert created["download_url"] == f"{URL}/{created['dump_id']}/download"
    assert created["requested_by"].startswith("apikey-") and created["content_type"] == "application/json"
    audits = [r.audit for r in caplog.records if getattr(r, "audit", None)]
    assert [(a["who"], a["action"], a["dump_id"]) for a in audits] == [
        (created["requested_by"], "dump", created["dump_id"])]
    done = finished(client, headers, created["dump_id"])
    assert done["status"] == "completed" and done["completed_at"] >= done["started_at"] >= done["created_at"]


def test_thread_dump_has_every_threads_stack(client: TestClient, headers: dict) -> None:
    dump, content = take(client, headers, "thread")
    listed = data_of(content, dump)["threads"]
    threads = {t["name"]: t for t in listed}   # other engines of the test run have threads of these names too
    assert {"MainThread", "engine-ash", "engine-deadlock"} <= set(threads)
    sampler = threads["engine-ash"]["stack"]
    assert any(f["function"] == "_loop" and f["file"].endswith("engine.py") for f in sampler)
    assert all({"file", "line", "function", "code"} <= set(f) for f in sampler)
    writers = [t for t in listed if t["name"] == "engine-dump-writer"]
    assert any("thread_part" in [frame["function"] for frame in t["stack"]] for t in writers)


def test_memory_dump_has_process_memory_and_engine_structures(engine: Engine, client: TestClient,
                                                              headers: dict) -> None:
    session = engine.connect()
    for i in range(3):
        session.execute(f"SELECT * FROM sales.orders WHERE id = {i}")
    dump, content = take(client, headers, "memory")
    data = data_of(content, dump)
    assert data["process"]["rss"] > 1_000_000
    structures = data["engine_structures"]
    assert structures["sessions"] == len(engine.session_objects())
    assert structures["stats_fingerprints"] == len(engine.stats.fingerprints()) >= 1
    assert structures["ash_max_samples"] == engine.config.ash_max_samples
    assert data["tracemalloc"]["tracing"] is False       # never switched on behind the operator's back
    session.close()


def test_execution_stats_dump_has_each_fingerprint(engine: Engine, client: TestClient, headers: dict) -> None:
    session = engine.connect()
    for i in range(4):
        session.execute(f"SELECT amount FROM sales.orders WHERE id = {i}")
    dump, content = take(client, headers, "execution_stats")
    data = data_of(content, dump)
    fingerprint = next(f for f in data["fingerprints"] if f["query"] == "select amount from sales.orders where id = ?")
    assert fingerprint["calls"] == 4 and fingerprint["errors"] == 0
    assert fingerprint["p99_ms"] <= fingerprint["max_ms"]
    assert data["statements_total"] == engine.stats.statements_total
    session.close()


def test_lock_dump_shows_the_blocking_chain(engine: Engine, client: TestClient, headers: dict) -> None:
    holder, waiter = engine.connect("holder"), engine.connect("waiter")
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = 0 WHERE id = 1")
    with ThreadPoolExecutor(1) as pool:
        blocked = pool.submit(waiter.execute, "UPDATE sales.orders SET amount = 1 WHERE id = 2")
        wait_until(lambda: waiter.state is SessionState.WAITING)
        dump, content = take(client, headers, "lock")
        holder.execute("COMMIT")
        blocked.result(timeout=10)
    data = data_of(content, dump)
    [root] = data["blocking_tree"]
    assert (root["session_id"], root["username"], root["waiting_for"]) == (holder.id, "holder", None)
    [child] = root["blocked"]
    assert (child["session_id"], child["username"], child["waiting_for"]) == (waiter.id, "waiter", "sales")
    assert child["sql"] == "UPDATE sales.orders SET amount = 1 WHERE id = 2" and child["wait_seconds"] >= 0
    assert {(e["waiter_session"], e["holder_session"], e["resource"]) for e in data["wait_for"]} == {
        (waiter.id, holder.id, "sales")}
    waiting = [lock for lock in data["locks"] if not lock["granted"]]
    assert [(lock["session_id"], lock["resource"], lock["blocked_by"]) for lock in waiting] == [
        (waiter.id, "sales", [holder.id])]
    assert data["waiting_locks"] == 1 and data["cycles"] == []
    holder.close()
    waiter.close()


def test_query_plan_dump_explains_a_running_query(engine: Engine, client: TestClient, headers: dict) -> None:
    session = engine.connect("reporter")
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(session.execute, LONG_QUERY, (3,))
        query_id = wait_until(lambda: session.info().current_query_id)
        dump, content = take(client, headers, "query_plan")
        assert session.info().current_query_id == query_id   # the query ran on while it was explained
        engine.cancel_query(query_id, by="tests")
        assert run.exception(timeout=10).code == "QUERY_CANCELED"
    [entry] = [s for s in data_of(content, dump)["statements"] if s["query_id"] == query_id]
    assert (entry["session_id"], entry["username"], entry["sql"]) == (session.id, "reporter", LONG_QUERY)
    details = [step["detail"] for step in entry["plan"]]
    assert "SCAN c" in details and "SEARCH o USING INTEGER PRIMARY KEY (rowid=?)" in details
    assert entry["plan_text"].splitlines()[:3] == ["CO-ROUTINE c", "  SETUP", "    SCAN CONSTANT ROW"]
    assert entry["parameters"] == 1 and "NULL bindings" in entry["note"]
    session.close()


def test_full_dump_is_a_zip_of_every_part(engine: Engine, client: TestClient, headers: dict) -> None:
    engine.sample_ash()
    dump, content = take(client, headers, "full")
    assert dump["content_type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        assert zf.testzip() is None
        parts = {name: json.loads(zf.read(name)) for name in zf.namelist()}
    expected = {f"{t}.json" for t in DumpType if t is not DumpType.FULL} | {
        "sessions.json", "ash.json", "config.json", "manifest.json"}
    assert set(parts) == expected
    assert parts["manifest.json"]["dump_id"] == dump["dump_id"]
    assert sorted(parts["manifest.json"]["parts"]) == sorted(expected - {"manifest.json"})
    assert parts["config.json"]["settings"]["max_connections"] == engine.config.max_connections
    assert parts["ash.json"]["end"] - parts["ash.json"]["start"] == 900
    assert parts["thread.json"]["thread_count"] >= 3
    assert "blocking_tree" in parts["lock.json"] and "fingerprints" in parts["execution_stats.json"]


def test_secrets_in_settings_are_redacted() -> None:
    settings = {"max_connections": 10, "backup_encryption_key": "k3y", "webhook": {"token": "t0k", "url": "u"},
                "admin_password": None}
    assert dumps.redact(settings) == {"max_connections": 10, "backup_encryption_key": dumps.REDACTED,
                                      "webhook": {"token": dumps.REDACTED, "url": "u"}, "admin_password": None}


def test_states_pending_in_progress_completed_and_failed(client: TestClient, headers: dict,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def slow_part(engine: Engine) -> dict:
        release.wait(10)
        return {"slow": True}

    monkeypatch.setitem(dumps.PARTS, DumpType.THREAD, slow_part)
    monkeypatch.setitem(dumps.PARTS, DumpType.MEMORY, lambda engine: 1 / 0)
    first = request_dump(client, headers, "thread")
    second = request_dump(client, headers, "memory")
    wait_until(lambda: client.get(f"{URL}/{first['dump_id']}", headers=headers["monitor"]).json()["status"]
               == "in_progress")
    assert client.get(f"{URL}/{second['dump_id']}", headers=headers["monitor"]).json()["status"] == "pending"
    r = client.get(f"{URL}/{first['dump_id']}/download", headers=headers["monitor"])
    assert r.status_code == 409 and "in_progress" in r.json()["message"]
    release.set()
    assert finished(client, headers, first["dump_id"])["status"] == "completed"
    failed = finished(client, headers, second["dump_id"])
    assert failed["status"] == "failed" and "ZeroDivisionError" in failed["error"] and failed["size_bytes"] is None
    r = client.get(failed["download_url"], headers=headers["monitor"])
    assert r.status_code == 409 and "failed" in r.json()["message"]


def test_bad_type_unknown_and_malformed_ids(client: TestClient, headers: dict) -> None:
    r = client.post(URL, json={"dump_type": "heap"}, headers=headers["operator"])
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR")
    assert "dump_type" in r.json()["message"]
    assert all(t in r.json()["message"] for t in ("thread", "memory", "query_plan", "execution_stats", "lock", "full"))
    assert client.post(URL, json={}, headers=headers["operator"]).status_code == 400
    assert client.post(URL, json={"dump_type": "thread"}, headers=headers["monitor"]).status_code == 403
    unknown = "0b6f3f58-0000-4000-8000-000000000000"
    for path in (f"{URL}/{unknown}", f"{URL}/{unknown}/download"):
        r = client.get(path, headers=headers["monitor"])
        assert (r.status_code, r.json()["message"]) == (404, f"Dump {unknown} not found")
    r = client.get(f"{URL}/not-a-uuid", headers=headers["monitor"])
    assert r.status_code == 400 and "dump_id" in r.json()["message"]


@pytest.fixture
def stepped() -> Iterator[tuple[Engine, ManualClock, TestClient, dict]]:
    """An engine on a clock the test moves, with API keys (a login token would expire with the dump)."""
    clock = ManualClock()
    eng = Engine(config=EngineConfig(query_timeout_secs=0.0), clock=clock).start()
    keys = {role: {"X-API-Key": eng.auth.create_api_key(role)} for role in ("monitor", "operator")}
    try:
        with TestClient(create_app(eng), raise_server_exceptions=False) as c:
            yield eng, clock, c, keys
    finally:
        eng.close()


def test_an_expired_dump_is_deleted_and_answers_410(stepped) -> None:  # type: ignore[no-untyped-def]
    engine, clock, client, headers = stepped
    dump = finished(client, headers, request_dump(client, headers, "lock")["dump_id"])
    path = engine.dumps.directory / f"rdbtop-lock-{dump['dump_id']}.json"
    assert path.stat().st_size == dump["size_bytes"]
    clock.advance(3599)
    assert client.get(dump["download_url"], headers=headers["monitor"]).status_code == 200
    clock.advance(1)
    for url in (f"{URL}/{dump['dump_id']}", dump["download_url"]):
        r = client.get(url, headers=headers["monitor"])
        assert (r.status_code, r.json()["code"]) == (410, "GONE")
        assert r.json()["details"]["expires_at"] == dump["expires_at"]
    assert not path.exists()

    # the periodic sweep deletes an expired file nobody asked for
    other = finished(client, headers, request_dump(client, headers, "full")["dump_id"])
    other_path = engine.dumps.directory / f"rdbtop-full-{other['dump_id']}.zip"
    assert other_path.exists()
    assert engine.dumps.sweep() == 0
    clock.advance(3600)
    assert engine.dumps.sweep() == 1 and not other_path.exists()
    assert client.get(f"{URL}/{other['dump_id']}", headers=headers["monitor"]).status_code == 410
