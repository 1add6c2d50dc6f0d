"""POST /api/v1/admin/maintenance: real VACUUM, ANALYZE, REINDEX and checkpoints as background jobs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from engine import Engine

from .conftest import wait_until

MAINTENANCE = "/api/v1/admin/maintenance"
FILL = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
        "INSERT INTO sales.orders(amount) SELECT i FROM n")


def _start(client: TestClient, headers: dict, operation: str, target: str | None = None) -> dict:
    r = client.post(MAINTENANCE, json={"operation": operation, "target": target}, headers=headers["operator"])
    assert r.status_code == 202, r.text
    return r.json()


def _job(client: TestClient, headers: dict, job_id: str) -> dict:
    r = client.get(f"{MAINTENANCE}/{job_id}", headers=headers["monitor"])
    assert r.status_code == 200, r.text
    return r.json()


def _finished(client: TestClient, headers: dict, job_id: str) -> dict:
    return wait_until(lambda: (j := _job(client, headers, job_id))["status"] in ("completed", "failed", "canceled")
                      and j)


def _sizes(engine: Engine, schema: str) -> int:
    path = engine.storage.files()[schema]
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def test_vacuum_reclaims_the_space_of_deleted_rows(client: TestClient, headers: dict, engine: Engine) -> None:
    s = engine.connect("filler", "tests")
    s.execute("ALTER TABLE sales.orders ADD COLUMN note BLOB")
    s.execute(FILL)
    s.execute("UPDATE sales.orders SET note = randomblob(1000)")
    s.execute("DELETE FROM sales.orders WHERE id > 3")
    s.close()
    before = _sizes(engine, "sales")
    started = _start(client, headers, "vacuum", "sales")
    assert {k: started[k] for k in ("operation", "target")} == {"operation": "vacuum", "target": "sales"}
    assert started["status"] in ("pending", "running", "completed") and started["requested_by"].startswith("apikey-")
    job = _finished(client, headers, started["job_id"])
    assert job["status"] == "completed", job
    after = _sizes(engine, "sales")
    assert after < before / 10  # the deleted rows' pages left the file (WAL included)
    (step,) = job["steps"]
    assert (step["schema_name"], step["sql"]) == ("sales", 'VACUUM "sales"')
    assert step["bytes_before"] == before and step["bytes_after"] == after
    assert job["bytes_reclaimed"] == before - after and step["free_pages_before"] > 0
    assert step["checkpoint_busy"] is False and job["duration_ms"] > 0
    check = engine.connect("checker", "tests")
    assert check.execute("SELECT count(*) FROM sales.orders").rows == [(3,)]  # the rows that stayed
    check.close()


def test_analyze_fills_sqlite_stat1(client: TestClient, headers: dict, engine: Engine) -> None:
    s = engine.connect("indexer", "tests")
    s.execute("CREATE INDEX sales.orders_amount ON orders(amount)")
    s.execute(FILL)
    job = _finished(client, headers, _start(client, headers, "analyze", "sales.orders")["job_id"])
    assert job["status"] == "completed" and job["target"] == "sales.orders"
    (step,) = job["steps"]
    assert step["sql"] == 'ANALYZE "sales"."orders"'
    rows = s.execute("SELECT tbl, idx, stat FROM sales.sqlite_stat1").rows
    assert step["stat_rows"] == len(rows) >= 1
    assert ("orders", "orders_amount") in {(t, i) for t, i, _ in rows}
    s.close()


def test_analyze_without_a_target_goes_through_every_schema(client: TestClient, headers: dict) -> None:
    job = _finished(client, headers, _start(client, headers, "analyze")["job_id"])
    assert job["status"] == "completed" and job["target"] is None
    assert sorted(st["schema_name"] for st in job["steps"]) == ["inventory", "main", "sales"]


def test_reindex_rebuilds_a_tables_indexes(client: TestClient, headers: dict, engine: Engine) -> None:
    s = engine.connect("indexer", "tests")
    s.execute("CREATE INDEX inventory.items_qty ON items(qty)")
    s.close()
    job = _finished(client, headers, _start(client, headers, "reindex", "items")["job_id"])
    assert job["status"] == "completed" and job["target"] == "inventory.items"
    (step,) = job["steps"]
    assert (step["sql"], step["indexes"]) == ('REINDEX "inventory"."items"', 1)
    nothing = _finished(client, headers, _start(client, headers, "reindex", "sales")["job_id"])
    assert nothing["status"] == "completed" and nothing["steps"][0]["indexes"] == 0  # orders has no index


def test_checkpoint_truncates_the_wal(client: TestClient, headers: dict, engine: Engine) -> None:
    s = engine.connect("writer", "tests")  # kept open: the last connection to close would checkpoint itself
    s.execute(FILL)
    wal = engine.storage.files()["sales"].with_name("sales.db-wal")
    assert wal.stat().st_size > 0
    job = _finished(client, headers, _start(client, headers, "checkpoint", "sales")["job_id"])
    assert job["status"] == "completed", job
    (step,) = job["steps"]
    assert step["schema_name"] == "sales" and step["checkpoint_busy"] is False and step["frames_written"] > 0
    assert wal.stat().st_size == 0 == step["bytes_after"] and step["bytes_before"] > 0
    status = client.get("/api/v1/transactions/wal/status", headers=headers["monitor"]).json()
    assert status["last_checkpoint_result"]["mode"] == "truncate"
    s.close()


def _open_writer(engine: Engine):  # type: ignore[no-untyped-def]
    writer = engine.connect("writer", "tests")
    writer.execute("BEGIN")
    writer.execute("INSERT INTO sales.orders(amount) VALUES (99)")
    return writer


def test_vacuum_waits_for_an_open_writer_in_the_lock_list(client: TestClient, headers: dict, engine: Engine) -> None:
    writer = _open_writer(engine)
    job_id = _start(client, headers, "vacuum", "sales")["job_id"]
    job = wait_until(lambda: (j := _job(client, headers, job_id))["status"] == "waiting" and j)
    assert job["wait_event"] == "schema:sales" and job["blocking_sessions"] == [writer.id]
    locks = client.get("/api/v1/transactions/locks", headers=headers["monitor"]).json()["locks"]
    waiting = [lock for lock in locks if lock["session_id"] == job["session_id"]]
    assert [(w["resource_id"], w["lock_type"], w["granted"], w["blocked_by"]) for w in waiting] == [
        ("sales", "exclusive", False, [writer.id])]
    session = client.get(f"/api/v1/sessions/{job['session_id']}", headers=headers["monitor"]).json()
    assert (session["application_name"], session["state"]) == ("maintenance", "waiting")
    writer.execute("COMMIT")
    done = _finished(client, headers, job_id)
    assert done["status"] == "completed", done
    writer.close()
    assert engine.connect("checker", "tests").execute("SELECT count(*) FROM sales.orders").rows == [(4,)]


def test_cancel_ends_a_waiting_job(client: TestClient, headers: dict, engine: Engine) -> None:
    writer = _open_writer(engine)
    job_id = _start(client, headers, "vacuum", "sales")["job_id"]
    session_id = wait_until(lambda: (j := _job(client, headers, job_id))["status"] == "waiting" and j)["session_id"]
    r = client.post(f"{MAINTENANCE}/{job_id}/cancel", headers=headers["operator"])
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "canceled" and job["canceled_by"].startswith("apikey-")
    assert job["error_code"] == "SESSION_TERMINATED" and job["steps"] == []
    locks = client.get("/api/v1/transactions/locks", headers=headers["monitor"]).json()["locks"]
    assert all(lock["session_id"] != session_id for lock in locks)
    assert client.get(f"/api/v1/sessions/{session_id}", headers=headers["monitor"]).status_code == 404
    writer.execute("COMMIT")  # the writer never noticed
    writer.close()
    again = client.post(f"{MAINTENANCE}/{job_id}/cancel", headers=headers["operator"])
    assert again.status_code == 409 and "already canceled" in again.json()["message"]
    audited = client.get("/api/v1/logs", params={"logger": "engine.audit", "search": job_id},
                         headers=headers["monitor"]).json()["entries"]
    assert [(e["context"]["action"], e["context"]["result"]) for e in audited] == [
        ("maintenance_cancel", "refused: already canceled"), ("maintenance_cancel", "ok"), ("maintenance", "accepted")]


# a malformed request is 400; a target the database does not hold 404, one its tables make wrong 409
@pytest.mark.parametrize(("body", "status", "code", "message"), [
    ({"operation": "VACUUM"}, 400, "INVALID_INPUT", "Invalid maintenance operation"),
    ({"operation": "optimize"}, 400, "INVALID_INPUT", "Invalid maintenance operation"),
    ({"operation": "vacuum", "target": "nowhere"}, 404, "NOT_FOUND", "target nowhere is neither a schema nor a table"),
    ({"operation": "analyze", "target": "sales.nothing"}, 404, "NOT_FOUND",
     "target sales.nothing: schema sales has no table nothing"),
    ({"operation": "analyze", "target": "nowhere.orders"}, 404, "NOT_FOUND",
     "target nowhere.orders: there is no schema nowhere"),
    ({"operation": "vacuum", "target": "sales.orders"}, 409, "CONFLICT",
     "vacuum works on a whole schema file: target the schema sales, not the table sales.orders"),
    ({"operation": "checkpoint", "target": "orders"}, 409, "CONFLICT",
     "checkpoint works on a whole schema file: target the schema sales, not the table sales.orders"),
])
def test_bad_requests_are_refused(client: TestClient, headers: dict, body: dict, status: int, code: str,
                                  message: str) -> None:
    r = client.post(MAINTENANCE, json=body, headers=headers["operator"])
    assert (r.status_code, r.json()["code"], r.json()["message"]) == (status, code, message)


def test_ambiguous_table_names_and_unknown_options_are_refused(client: TestClient, headers: dict,
                                                                engine: Engine) -> None:
    s = engine.connect("setup", "tests")
    s.execute("CREATE TABLE inventory.orders(id INTEGER PRIMARY KEY)")
    s.close()
    r = client.post(MAINTENANCE, json={"operation": "analyze", "target": "orders"}, headers=headers["operator"])
    assert r.status_code == 409 and "schemas inventory, sales" in r.json()["message"]
    r = client.post(MAINTENANCE, json={"operation": "analyze", "options": {"full": True}}, headers=headers["operator"])
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR" and "options.full" in r.json()["message"]
    assert client.post(MAINTENANCE, json={"target": "sales"}, headers=headers["operator"]).status_code == 400
    assert client.post(MAINTENANCE, json={"operation": "analyze"}, headers=headers["monitor"]).status_code == 403
    assert client.get(f"{MAINTENANCE}/no-such-job", headers=headers["monitor"]).status_code == 404
    assert client.post(f"{MAINTENANCE}/no-such-job/cancel", headers=headers["operator"]).status_code == 404


def test_jobs_are_listed_newest_first_and_audited(client: TestClient, headers: dict) -> None:
    first = _start(client, headers, "checkpoint")["job_id"]
    second = _start(client, headers, "analyze", "inventory")["job_id"]
    for job_id in (first, second):
        _finished(client, headers, job_id)
    listed = client.get(MAINTENANCE, headers=headers["monitor"]).json()
    assert [j["job_id"] for j in listed["data"]] == [second, first] and listed["total_count"] == 2
    completed = client.get(MAINTENANCE, params={"status": "completed"}, headers=headers["monitor"]).json()
    assert completed["total_count"] == 2
    logs = client.get("/api/v1/logs", params={"search": second}, headers=headers["monitor"]).json()["entries"]
    audit = next(e["context"] for e in logs if e["logger"] == "engine.audit")
    assert (audit["action"], audit["target"], audit["result"]) == ("maintenance", "analyze inventory", "accepted")
    outcome = next(e["context"] for e in logs if e["logger"] == "engine.maintenance" and "status" in e["context"])
    assert (outcome["status"], outcome["operation"], outcome["target"]) == ("completed", "analyze", "inventory")
    refused = client.post(MAINTENANCE, json={"operation": "defrag"}, headers=headers["operator"])
    assert refused.status_code == 400
    audit_log = client.get("/api/v1/logs", params={"logger": "engine.audit", "search": "defrag"},
                           headers=headers["monitor"]).json()["entries"]
    assert audit_log[0]["context"]["result"] == "refused: Invalid maintenance operation"


def test_the_targets_are_the_schemas_and_tables_that_exist(client: TestClient, headers: dict,
                                                           engine: Engine) -> None:
    r = client.get(f"{MAINTENANCE}/targets", headers=headers["monitor"])
    assert r.status_code == 200, r.text
    schemas = {s["schema_name"]: s["tables"] for s in r.json()["schemas"]}
    assert schemas["sales"] == ["orders"] and schemas["inventory"] == ["items"]
    engine.create_schema("archive")
    s = engine.connect("setup", "tests")
    s.execute("CREATE TABLE archive.Old_Orders(id INTEGER PRIMARY KEY)")
    s.close()
    schemas = {s["schema_name"]: s["tables"] for s in client.get(f"{MAINTENANCE}/targets",
                                                                 headers=headers["monitor"]).json()["schemas"]}
    assert schemas["archive"] == ["Old_Orders"]
    # each one is accepted as a target as it is listed
    assert _finished(client, headers, _start(client, headers, "analyze", "archive.Old_Orders")["job_id"])[
        "status"] == "completed"
