"""Statements over REST: running SQL, the active list, status, cancel, and waits on locks."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import httpx
import pytest
from fastapi.testclient import TestClient

from engine import Engine
from engine.api import create_app

from .conftest import LiveServer, wait_until

# Runs until stopped: a statement that is busy inside SQLite, not waiting for a lock.
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def run_sql(client: httpx.Client | TestClient, sql: str, headers: dict | None = None,
            **fields: object) -> httpx.Response:
    return client.post("/api/v1/query", json={"sql": sql, **fields}, headers=headers)


@contextmanager
def rest_clients(live: LiveServer, headers: dict, *roles: str) -> Iterator[list[httpx.Client]]:
    """One real HTTP client per role given, each with its own connection."""
    with ExitStack() as stack:
        yield [stack.enter_context(httpx.Client(base_url=live.url, headers=headers[role], timeout=30))
               for role in roles]


def active(watch: httpx.Client | TestClient, sql: str, status: str) -> dict | None:
    """The active statement with this text and status, if there is one now."""
    return next((q for q in watch.get("/api/v1/query/active").json()
                 if q["sql_text"] == sql and q["status"] == status), None)


def error(r: httpx.Response, status: int, code: str) -> dict:
    assert (r.status_code, r.json().get("code")) == (status, code), r.text
    return r.json()


@pytest.fixture
def admin(engine: Engine, headers: dict) -> Iterator[TestClient]:
    """An in-process client that sends the admin's credentials with every request."""
    with TestClient(create_app(engine), raise_server_exceptions=False, headers=headers["admin"]) as c:
        yield c


# -- running SQL -------------------------------------------------------------------------------

def test_select_gives_rustydb_rows_columns_and_honours_limit_and_offset(admin: TestClient) -> None:
    r = run_sql(admin, "SELECT id, amount FROM sales.orders ORDER BY id", limit=2, offset=0)
    assert r.status_code == 200
    body = r.json()
    assert body["rows"] == [{"id": 1, "amount": 10.0}, {"id": 2, "amount": 20.0}]
    assert [(c["name"], c["data_type"]) for c in body["columns"]] == [("id", "INTEGER"), ("amount", "REAL")]
    assert (body["row_count"], body["has_more"], body["affected_rows"]) == (2, True, 0)
    assert body["query_id"].startswith("q") and body["plan"] is None and body["warnings"]
    body = run_sql(admin, "SELECT id FROM sales.orders ORDER BY id", limit=2, offset=2).json()
    assert (body["rows"], body["has_more"], body["warnings"]) == ([{"id": 3}], False, [])


def test_rows_as_arrays_keep_shared_names_and_blobs_and_infinity_are_json(admin: TestClient) -> None:
    sql = "SELECT 1 AS a, 2 AS a, x'00ff10' AS b, 1e999 AS big, -1e999 AS small, NULL AS n"
    body = run_sql(admin, sql, row_format="array").json()
    assert body["rows"] == [[1, 2, base64.b64encode(b"\x00\xff\x10").decode(), "Infinity", "-Infinity", None]]
    assert [c["name"] for c in body["columns"]] == ["a", "a", "b", "big", "small", "n"]
    body = run_sql(admin, sql).json()
    assert body["rows"][0]["a"] == 2 and any("share a name" in w for w in body["warnings"])


def test_writes_report_affected_rows_and_take_positional_params(admin: TestClient, engine: Engine) -> None:
    r = run_sql(admin, "UPDATE sales.orders SET amount = ? WHERE id >= ?", params=[99.5, 2])
    assert (r.status_code, r.json()["affected_rows"]) == (200, 2)
    reader = engine.connect("check", "tests")
    try:
        assert reader.execute("SELECT amount FROM sales.orders ORDER BY id").rows == [(10.0,), (99.5,), (99.5,)]
    finally:
        reader.close()


def test_each_request_runs_in_a_session_named_for_the_caller_and_closed_after(admin: TestClient,
                                                                            engine: Engine) -> None:
    body = run_sql(admin, "SELECT 1").json()
    status = admin.get(f"/api/v1/query/{body['query_id']}/status").json()
    assert (status["status"], status["username"], status["rows_returned"]) == ("completed", "admin", 1)
    assert not [s for s in engine.sessions() if s.application_name == "rest"]


def test_sql_errors_are_400_with_sqlites_message(admin: TestClient) -> None:
    body = error(run_sql(admin, "SELECT * FROM sales.nope"), 400, "SQL_ERROR")
    assert "no such table: sales.nope" in body["message"]
    body = error(run_sql(admin, "INSERT INTO inventory.items(qty) VALUES (-1)"), 400, "SQL_ERROR")
    assert "CHECK constraint failed" in body["message"]
    error(run_sql(admin, "SELECT ?", params=[1, 2]), 400, "SQL_ERROR")
    error(run_sql(admin, "ATTACH DATABASE 'x.db' AS x"), 400, "SQL_ERROR")


def test_explain_plans_one_statement_without_running_it(admin: TestClient) -> None:
    body = run_sql(admin, "DELETE FROM sales.orders WHERE amount > ?", params=[0], explain=True).json()
    assert "SCAN sales.orders" in body["plan"] and body["rows"][0]["detail"] in body["plan"]
    assert any("not run" in w for w in body["warnings"])
    assert run_sql(admin, "SELECT count(*) AS n FROM sales.orders").json()["rows"] == [{"n": 3}]
    error(run_sql(admin, "SELECT 1; DELETE FROM sales.orders", explain=True), 400, "VALIDATION_ERROR")
    assert run_sql(admin, "SELECT ';' -- c;\n;", explain=True).status_code == 200
    assert run_sql(admin, "SELECT count(*) AS n FROM sales.orders").json()["rows"] == [{"n": 3}]


def test_transaction_control_as_sql_is_refused(admin: TestClient) -> None:
    for sql in ("BEGIN", "commit", "ROLLBACK TRANSACTION;"):
        assert "transactions API" in error(run_sql(admin, sql), 400, "VALIDATION_ERROR")["message"]


def test_bad_query_input_is_400_naming_the_field(admin: TestClient) -> None:
    cases = [({"sql": ""}, "sql"), ({"sql": "   "}, "sql"), ({"sql": 5}, "sql"), ({}, "sql"),
             ({"sql": "SELECT 1", "limit": 0}, "limit"), ({"sql": "SELECT 1", "limit": 10_001}, "limit"),
             ({"sql": "SELECT 1", "limit": "ten"}, "limit"), ({"sql": "SELECT 1", "offset": -1}, "offset"),
             ({"sql": "SELECT 1", "timeout": 0}, "timeout"), ({"sql": "SELECT 1", "params": "x"}, "params"),
             ({"sql": "SELECT ?", "params": [[1]]}, "params"), ({"sql": "SELECT ?", "params": [{}]}, "params"),
             ({"sql": "SELECT 1", "transaction_id": 0}, "transaction_id"),
             ({"sql": "SELECT 1", "row_format": "csv"}, "row_format"), ({"sql": "SELECT 1", "explain": "maybe"},
                                                                       "explain")]
    for payload, field in cases:
        body = error(admin.post("/api/v1/query", json=payload), 400, "VALIDATION_ERROR")
        assert field in body["message"], (payload, body)
    body = error(admin.post("/api/v1/query", content=b'{"sql": ', headers={"Content-Type": "application/json"}),
                 400, "VALIDATION_ERROR")
    assert "malformed JSON" in body["message"]
    error(run_sql(admin, "SELECT 1", transaction_id=424242), 404, "NOT_FOUND")


def test_parameters_beyond_64_bits_nan_and_infinity_are_400(admin: TestClient) -> None:
    # Python's JSON reader takes NaN and Infinity, and a float would take an integer of any size
    for value in ("18446744073709551616", "-9223372036854775809", "NaN", "Infinity", "-Infinity", "1e999"):
        r = admin.post("/api/v1/query", content=f'{{"sql": "SELECT ?", "params": [{value}]}}',
                       headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR"), value
        assert "params" in r.json()["message"]
    r = run_sql(admin, "SELECT ? AS a, ? AS b, ? AS c", params=[2**63 - 1, -(2**63), 1.5])
    assert r.status_code == 200 and list(r.json()["rows"][0].values()) == [2**63 - 1, -(2**63), 1.5]


def test_query_ids_are_checked(client: TestClient, headers: dict) -> None:
    for path in ("/api/v1/query/abc/status", "/api/v1/query/q0/status", "/api/v1/query/q1x/cancel"):
        method = client.post if path.endswith("cancel") else client.get
        assert "query_id" in error(method(path, headers=headers["operator"]), 400, "VALIDATION_ERROR")["message"]
    error(client.get("/api/v1/query/q987654321/status", headers=headers["monitor"]), 404, "NOT_FOUND")
    error(client.post("/api/v1/query/q987654321/cancel", headers=headers["operator"]), 404, "NOT_FOUND")
    finished = run_sql(client, "SELECT 1", headers["admin"]).json()["query_id"]
    body = error(client.post(f"/api/v1/query/{finished}/cancel", headers=headers["operator"]), 409, "CONFLICT")
    assert body["details"]["status"] == "completed"
    r = client.post(f"/api/v1/query/{finished}/cancel", json={"reason": 5}, headers=headers["operator"])
    assert "reason" in error(r, 400, "VALIDATION_ERROR")["message"]
    r = client.post(f"/api/v1/query/{finished}/cancel", content=b"{", headers={**headers["operator"],
                                                                              "Content-Type": "application/json"})
    assert "malformed JSON" in error(r, 400, "VALIDATION_ERROR")["message"]


def test_roles(client: TestClient, headers: dict) -> None:
    for role in ("monitor", "operator"):
        error(client.post("/api/v1/query", json={"sql": "SELECT 1"}, headers=headers[role]), 403, "FORBIDDEN")
    error(client.post("/api/v1/query/q1/cancel", headers=headers["monitor"]), 403, "FORBIDDEN")
    error(client.post("/api/v1/query", json={"sql": "SELECT 1"}), 401, "UNAUTHORIZED")
    assert client.get("/api/v1/query/active", headers=headers["monitor"]).status_code == 200


# -- over real HTTP, with statements that wait -------------------------------------------------

def test_a_running_statement_is_listed_then_canceled_for_real(live: LiveServer, headers: dict) -> None:
    with rest_clients(live, headers, "admin", "monitor", "operator") as (admin, watch, operator), \
            ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(run_sql, admin, ENDLESS)
        q = wait_until(lambda: active(watch, ENDLESS, "running"))
        assert (q["current_operation"], q["progress_percent"], q["rows_returned"]) == ("executing", None, None)
        assert q["username"] == "admin" and q["state"] == "active" and q["elapsed_ms"] >= 0
        r = operator.post(f"/api/v1/query/{q['query_id']}/cancel", json={"reason": "runaway", "force": True})
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["rows_processed"], r.json()["reason"]) == ("cancelled", 0, "runaway")
        body = error(running.result(), 409, "QUERY_CANCELED")
        status = watch.get(f"/api/v1/query/{q['query_id']}/status").json()
    who = r.json()["canceled_by"]
    assert body["details"]["canceled_by"] == who and who.startswith("apikey-")
    assert (status["status"], status["stopped_by"], status["error_code"]) == ("canceled", who, "QUERY_CANCELED")
    assert status["current_operation"] == f"canceled by {who}"


def test_the_timeout_field_stops_a_statement_which_then_shows_as_failed(live: LiveServer, headers: dict) -> None:
    with rest_clients(live, headers, "admin", "monitor") as (admin, watch), ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(run_sql, admin, ENDLESS, timeout=1)
        q = wait_until(lambda: active(watch, ENDLESS, "running"))
        assert "timeout" in error(running.result(), 409, "QUERY_TIMEOUT")["message"]
        status = watch.get(f"/api/v1/query/{q['query_id']}/status").json()
    assert (status["status"], status["error_code"], status["current_operation"]) == (
        "failed", "QUERY_TIMEOUT", "failed: QUERY_TIMEOUT")
    assert status["elapsed_ms"] >= 1000 and status["rows_returned"] == 0 and status["rows_scanned"] is not None


def test_a_blocked_update_shows_its_blocker_and_ends_by_cancel_timeout_or_commit(
        engine: Engine, live: LiveServer, headers: dict) -> None:
    update = "UPDATE sales.orders SET amount = 0"
    with rest_clients(live, headers, "admin", "admin", "monitor", "operator") as (one, two, watch, operator), \
            ThreadPoolExecutor(max_workers=1) as pool:
        txn = one.post("/api/v1/transactions").json()
        tid, holder = txn["transaction_id"], txn["session_id"]
        r = run_sql(one, "UPDATE sales.orders SET amount = amount + 1", transaction_id=tid)
        assert (r.status_code, r.json()["affected_rows"]) == (200, 3)

        # 1. the wait is visible everywhere, with the right blocker; then an operator cancels it
        waiting = pool.submit(run_sql, two, update)
        q = wait_until(lambda: active(watch, update, "waiting"))
        waiter = q["session_id"]
        assert watch.get(f"/api/v1/query/{q['query_id']}/status").json()["status"] == "waiting"
        assert (q["blocking_session"], q["current_operation"]) == (holder, "waiting for lock on sales")
        assert (q["wait_class"], q["wait_event"], q["username"]) == ("Lock", "schema:sales", "admin")
        locks = watch.get("/api/v1/transactions/locks").json()
        assert (locks["granted_locks"], locks["waiting_locks"]) == (2, 1)
        held = {(lk["resource_id"], lk["lock_type"], lk["transaction_id"]) for lk in locks["locks"] if lk["granted"]}
        assert held == {("sales", "exclusive", tid), ("sales.orders", "exclusive", tid)}
        [wait] = [lk for lk in locks["locks"] if not lk["granted"]]
        assert (wait["session_id"], wait["resource_id"], wait["resource_type"], wait["blocked_by"]) == (
            waiter, "sales", "schema", [holder])
        assert wait["acquired_at"] is None and wait["wait_started_at"] is not None
        graph = watch.get("/api/v1/transactions/locks/waiters").json()
        [edge] = graph["waiters"]
        assert (edge["session_id"], edge["waiting_for_session"], edge["waiting_for_transaction"]) == (
            waiter, holder, tid)
        assert (edge["resource_id"], edge["resource_type"], edge["lock_type"]) == ("sales", "schema", "exclusive")
        assert graph["potential_deadlocks"] == []
        [root] = watch.get("/api/v1/transactions/locks/graph").json()["blocking_tree"]
        assert (root["session_id"], root["transaction_id"], root["resource"], root["username"]) == (
            holder, tid, None, "admin")
        [child] = root["blocked"]
        assert (child["session_id"], child["resource"], child["sql"], child["blocked"]) == (
            waiter, "sales", update, [])
        assert child["wait_seconds"] >= 0
        sessions = {s["session_id"]: s for s in watch.get("/api/v1/sessions").json()["data"]}
        assert (sessions[waiter]["state"], sessions[waiter]["blocking_session"]) == ("waiting", holder)
        assert (sessions[holder]["state"], sessions[holder]["transaction_id"]) == ("idle in transaction", tid)
        assert {sessions[s]["application_name"] for s in (holder, waiter)} == {"rest"}
        assert {sessions[s]["client_address"] for s in (holder, waiter)} == {"127.0.0.1"}
        r = operator.post(f"/api/v1/query/{q['query_id']}/cancel")
        assert (r.status_code, r.json()["status"]) == (200, "cancelled")
        body = error(waiting.result(), 409, "QUERY_CANCELED")
        assert body["details"]["canceled_by"] == r.json()["canceled_by"]

        # 2. with a short lock timeout the wait ends with LOCK_TIMEOUT naming the resource and blocker
        engine.reconfigure(lock_timeout_ms=300)
        body = error(run_sql(two, update), 409, "LOCK_TIMEOUT")
        assert body["details"] == {"resource": "sales", "blocking_session": holder}
        engine.reconfigure(lock_timeout_ms=5000)

        # 3. the wait ends the moment the holder commits
        waiting = pool.submit(run_sql, two, update)
        wait_until(lambda: active(watch, update, "waiting"))
        assert one.post(f"/api/v1/transactions/{tid}/commit").status_code == 200
        r = waiting.result()
        assert (r.status_code, r.json()["affected_rows"]) == (200, 3)
        assert watch.get("/api/v1/transactions/locks").json()["total_locks"] == 0
        assert run_sql(one, "SELECT DISTINCT amount AS a FROM sales.orders").json()["rows"] == [{"a": 0.0}]
