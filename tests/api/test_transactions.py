"""Transactions over REST, locks, deadlocks and the WAL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from engine import Engine
from engine.api import create_app
from engine.auth import ApiRole, Forbidden, Principal

from .conftest import LiveServer, wait_until
from .test_queries import active, error, rest_clients, run_sql

TXN = "/api/v1/transactions"


@pytest.fixture
def admin(engine: Engine, headers: dict) -> Iterator[TestClient]:
    with TestClient(create_app(engine), raise_server_exceptions=False, headers=headers["admin"]) as c:
        yield c


def begin(client: httpx.Client | TestClient, **fields: object) -> dict:
    r = client.post(TXN, json=fields)
    assert r.status_code == 200, r.text
    return r.json()


def amounts(engine: Engine) -> list[float]:
    """sales.orders as another session sees it now."""
    reader = engine.connect("check", "tests")
    try:
        return [a for (a,) in reader.execute("SELECT amount FROM sales.orders ORDER BY id").rows]
    finally:
        reader.close()


# -- begin, use, commit, rollback ----------------------------------------------------------------

def test_a_transaction_runs_in_its_own_session_and_commit_publishes_it(admin: TestClient, engine: Engine) -> None:
    txn = begin(admin)
    tid, sid = txn["transaction_id"], txn["session_id"]
    assert (txn["status"], txn["isolation_level"], txn["read_only"]) == ("active", "REPEATABLE_READ", False)
    r = run_sql(admin, "UPDATE sales.orders SET amount = amount * 2", transaction_id=tid)
    assert (r.status_code, r.json()["affected_rows"], r.json()["transaction_id"]) == (200, 3, tid)
    assert run_sql(admin, "SELECT sum(amount) AS s FROM sales.orders", transaction_id=tid).json()["rows"] == [
        {"s": 120.0}]
    assert amounts(engine) == [10.0, 20.0, 30.0]
    [info] = [t for t in admin.get(f"{TXN}/active").json() if t["transaction_id"] == tid]
    assert (info["session_id"], info["owner"], info["application_name"], info["session_state"]) == (
        sid, "admin", "rest", "idle in transaction")
    assert (info["queries_executed"], info["rows_affected"], info["locks_held"]) == (2, 3, 2)
    details = admin.get(f"{TXN}/{tid}").json()
    assert {(lk["resource_id"], lk["lock_type"]) for lk in details["locks_held"]} == {
        ("sales", "exclusive"), ("sales.orders", "exclusive")}
    assert (details["modified_tables"], details["wal_bytes_written"], details["waiting_for"]) == (
        ["sales.orders"], None, None)
    r = admin.post(f"{TXN}/{tid}/commit")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["rows_affected"], r.json()["modified_tables"]) == (
        "committed", 3, ["sales.orders"])
    assert amounts(engine) == [20.0, 40.0, 60.0]
    assert sid not in {s.session_id for s in engine.sessions()}
    assert tid not in {t["transaction_id"] for t in admin.get(f"{TXN}/active").json()}
    message = error(admin.post(f"{TXN}/{tid}/commit"), 404, "NOT_FOUND")["message"]
    assert message == f"Transaction {tid} not found or already completed"
    error(run_sql(admin, "SELECT 1", transaction_id=tid), 404, "NOT_FOUND")
    error(admin.get(f"{TXN}/{tid}"), 404, "NOT_FOUND")


def test_rollback_discards_the_changes_and_closes_the_session(admin: TestClient, engine: Engine) -> None:
    txn = begin(admin)
    run_sql(admin, "DELETE FROM sales.orders", transaction_id=txn["transaction_id"])
    r = admin.post(f"{TXN}/{txn['transaction_id']}/rollback")
    assert (r.status_code, r.json()["status"]) == (200, "rolled_back")
    assert amounts(engine) == [10.0, 20.0, 30.0]
    assert txn["session_id"] not in {s.session_id for s in engine.sessions()}
    error(admin.post(f"{TXN}/{txn['transaction_id']}/rollback"), 404, "NOT_FOUND")


def test_isolation_levels_run_as_repeatable_read_and_unsupported_ones_are_refused(admin: TestClient) -> None:
    for level in ("READ_UNCOMMITTED", "READ_COMMITTED", "REPEATABLE_READ"):
        txn = begin(admin, isolation_level=level)
        assert (txn["isolation_level"], txn["requested_isolation_level"]) == ("REPEATABLE_READ", level)
        admin.post(f"{TXN}/{txn['transaction_id']}/rollback")
    for level in ("SERIALIZABLE", "snapshot", "read_committed", 5):
        body = error(admin.post(TXN, json={"isolation_level": level}), 400, "VALIDATION_ERROR")
        assert "isolation_level" in body["message"] and "REPEATABLE_READ" in body["message"]


def test_a_read_only_transaction_reads_and_refuses_writes_before_locking(admin: TestClient, engine: Engine) -> None:
    txn = begin(admin, read_only=True, deferrable=True)
    tid = txn["transaction_id"]
    assert txn["read_only"] is True
    body = error(run_sql(admin, "UPDATE sales.orders SET amount = 0", transaction_id=tid), 400, "SQL_ERROR")
    assert body["message"] == f"cannot write sales.orders in read-only transaction {tid}"
    assert admin.get(f"{TXN}/locks").json()["total_locks"] == 0
    assert run_sql(admin, "SELECT count(*) AS n FROM sales.orders", transaction_id=tid).json()["rows"] == [{"n": 3}]
    [lock] = admin.get(f"{TXN}/locks").json()["locks"]
    assert (lock["resource_id"], lock["lock_type"], lock["transaction_id"]) == ("sales.orders", "shared", tid)
    assert [t["read_only"] for t in admin.get(f"{TXN}/active").json() if t["transaction_id"] == tid] == [True]
    assert admin.post(f"{TXN}/{tid}/commit").status_code == 200
    assert amounts(engine) == [10.0, 20.0, 30.0]


def test_every_sessions_explicit_transactions_are_listed(admin: TestClient, engine: Engine) -> None:
    other = engine.connect("alice", "psql", "10.0.0.7")
    try:
        other.execute("BEGIN")
        other.execute("UPDATE inventory.items SET qty = qty + 1 WHERE id = 1")
        [info] = admin.get(f"{TXN}/active").json()
        assert (info["transaction_id"], info["session_id"], info["username"], info["owner"]) == (
            other.txn.id, other.id, "alice", None)
        assert (info["application_name"], info["rows_affected"], info["locks_held"]) == ("psql", 1, 2)
        details = admin.get(f"{TXN}/{other.txn.id}").json()
        assert details["modified_tables"] == ["inventory.items"]
        # not a REST transaction: it cannot be committed over REST
        error(admin.post(f"{TXN}/{other.txn.id}/commit"), 404, "NOT_FOUND")
    finally:
        other.close()


def test_a_terminated_session_ends_its_transaction(admin: TestClient, client: TestClient, engine: Engine,
                                                   headers: dict) -> None:
    txn = begin(admin)
    tid = txn["transaction_id"]
    run_sql(admin, "DELETE FROM sales.orders", transaction_id=tid)
    r = client.delete(f"/api/v1/sessions/{txn['session_id']}", headers=headers["operator"])
    assert r.status_code == 204, r.text
    body = error(run_sql(admin, "SELECT 1", transaction_id=tid), 409, "SESSION_TERMINATED")
    assert body["details"]["terminated_by"].startswith("apikey-")
    assert amounts(engine) == [10.0, 20.0, 30.0]
    error(admin.post(f"{TXN}/{tid}/commit"), 404, "NOT_FOUND")


def test_only_the_owner_or_an_admin_may_use_a_transaction(engine: Engine) -> None:
    alice = Principal("alice", ApiRole.OPERATOR, "token")
    remote = engine.remote.begin(alice, "127.0.0.1")
    tid = remote.transaction_id
    with pytest.raises(Forbidden, match="belongs to alice"):
        engine.remote.execute(Principal("bob", ApiRole.OPERATOR, "token"), "SELECT 1", client_address="x",
                              transaction_id=tid)
    assert engine.remote.execute(alice, "SELECT 1 AS one", client_address="x", transaction_id=tid).rows == [(1,)]
    engine.remote.commit(Principal("root", ApiRole.ADMIN, "token"), tid)
    assert engine.remote.owned(tid) is None


def test_bad_transaction_input_is_400_and_unknown_ids_404(admin: TestClient) -> None:
    for path in (f"{TXN}/abc", f"{TXN}/0", f"{TXN}/-3", f"{TXN}/99999999999999999999"):
        assert "transaction_id" in error(admin.get(path), 400, "VALIDATION_ERROR")["message"]
    error(admin.post(f"{TXN}/abc/commit"), 400, "VALIDATION_ERROR")
    for method, path in (("GET", f"{TXN}/424242"), ("POST", f"{TXN}/424242/commit"),
                         ("POST", f"{TXN}/424242/rollback")):
        error(admin.request(method, path), 404, "NOT_FOUND")
    for payload, field in (({"read_only": "yes"}, "read_only"), ({"deferrable": []}, "deferrable"),
                           ({"isolation_level": None, "read_only": 2}, "read_only")):
        assert field in error(admin.post(TXN, json=payload), 400, "VALIDATION_ERROR")["message"]
    for path in (TXN, f"{TXN}/wal/checkpoint"):
        r = admin.post(path, content=b"{nope", headers={"Content-Type": "application/json"})
        assert "malformed JSON" in error(r, 400, "VALIDATION_ERROR")["message"]
    assert "mode" in error(admin.post(f"{TXN}/wal/checkpoint", json={"mode": "hard"}), 400,
                           "VALIDATION_ERROR")["message"]
    assert admin.get(f"{TXN}/active").json() == []


def test_roles(client: TestClient, headers: dict) -> None:
    for role in ("monitor", "operator"):
        for path in (TXN, f"{TXN}/1/commit", f"{TXN}/1/rollback"):
            error(client.post(path, json={}, headers=headers[role]), 403, "FORBIDDEN")
    for path in (f"{TXN}/deadlocks/detect", f"{TXN}/wal/checkpoint"):
        error(client.post(path, headers=headers["monitor"]), 403, "FORBIDDEN")
        assert client.post(path, headers=headers["operator"]).status_code == 200
    for path in ("active", "locks", "locks/waiters", "locks/graph", "deadlocks", "wal/status"):
        error(client.get(f"{TXN}/{path}"), 401, "UNAUTHORIZED")
        assert client.get(f"{TXN}/{path}", headers=headers["monitor"]).status_code == 200


# -- concurrency over real HTTP ----------------------------------------------------------------

def test_a_second_request_on_a_busy_transaction_is_409_session_busy(live: LiveServer, headers: dict) -> None:
    update = "UPDATE sales.orders SET amount = 1"
    with rest_clients(live, headers, "admin", "admin", "monitor") as (one, two, watch), \
            ThreadPoolExecutor(max_workers=1) as pool:
        holder = begin(one)["transaction_id"]
        run_sql(one, "UPDATE sales.orders SET amount = 2", transaction_id=holder)
        tid = begin(two)["transaction_id"]
        waiting = pool.submit(run_sql, two, update, transaction_id=tid)
        wait_until(lambda: active(watch, update, "waiting"))
        # busy whoever asks: here the admin who holds the other transaction
        error(run_sql(one, "SELECT 1", transaction_id=tid), 409, "SESSION_BUSY")
        error(one.post(f"{TXN}/{tid}/commit"), 409, "SESSION_BUSY")
        assert one.post(f"{TXN}/{holder}/rollback").status_code == 200
        assert waiting.result().json()["affected_rows"] == 3
        assert one.post(f"{TXN}/{tid}/commit").json()["status"] == "committed"
        assert run_sql(one, "SELECT DISTINCT amount AS a FROM sales.orders").json()["rows"] == [{"a": 1.0}]


def _deadlock(one: httpx.Client, two: httpx.Client, pool: ThreadPoolExecutor, watch: httpx.Client):  # type: ignore[no-untyped-def]
    """Transaction a holds sales and then wants inventory; b holds inventory and then wants sales."""
    a, b = begin(one)["transaction_id"], begin(two)["transaction_id"]
    assert run_sql(one, "UPDATE sales.orders SET amount = amount + 1", transaction_id=a).status_code == 200
    assert run_sql(two, "UPDATE inventory.items SET qty = qty + 1", transaction_id=b).status_code == 200
    a_wait = pool.submit(run_sql, one, "UPDATE inventory.items SET qty = qty + 10", transaction_id=a)
    wait_until(lambda: active(watch, "UPDATE inventory.items SET qty = qty + 10", "waiting"))
    b_wait = pool.submit(run_sql, two, "UPDATE sales.orders SET amount = amount + 10", transaction_id=b)
    return a, b, a_wait, b_wait


def test_a_deadlock_between_two_rest_transactions_aborts_exactly_the_younger(
        engine: Engine, client: TestClient, live: LiveServer, headers: dict) -> None:
    with rest_clients(live, headers, "admin", "admin", "monitor") as (one, two, watch), \
            ThreadPoolExecutor(max_workers=2) as pool:
        a, b, a_wait, b_wait = _deadlock(one, two, pool, watch)
        body = error(b_wait.result(), 409, "DEADLOCK_DETECTED")
        assert a_wait.result().status_code == 200
        cycle = {(p["transaction_id"], p["waiting_for"]) for p in body["details"]["cycle"]}
        assert cycle == {(a, "inventory"), (b, "sales")}
        error(two.post(f"{TXN}/{b}/commit"), 404, "NOT_FOUND")
        assert one.post(f"{TXN}/{a}/commit").status_code == 200
        [dl] = watch.get(f"{TXN}/deadlocks").json()
    assert (sorted(dl["transactions"]), dl["victim_transaction"], dl["resolution"]) == (
        sorted([a, b]), b, "abort_youngest")
    assert dl["deadlock_id"] == str(body["details"]["deadlock_id"]) and dl["resources"] == ["inventory", "sales"]
    holding = {p["transaction_id"]: p["holding"] for p in dl["participants"]}
    assert holding == {a: ["sales", "sales.orders"], b: ["inventory", "inventory.items"]}
    assert amounts(engine) == [11.0, 21.0, 31.0]  # a's +1; b's changes were rolled back
    assert run_sql(client, "SELECT qty FROM inventory.items ORDER BY id", headers["admin"],
                   row_format="array").json()["rows"] == [[15], [16], [17]]  # a's +10 only


def test_detect_now_breaks_a_cycle_the_periodic_detector_has_not_reached(
        engine: Engine, live: LiveServer, headers: dict) -> None:
    detector = next(s for s in engine.services if s.name == "deadlock")
    engine.reconfigure(deadlock_check_interval_ms=60_000)
    ticks = detector.ticks
    wait_until(lambda: detector.ticks > ticks)  # its current short wait is over; the next is the long one
    with rest_clients(live, headers, "admin", "admin", "monitor", "operator") as (one, two, watch, operator), \
            ThreadPoolExecutor(max_workers=2) as pool:
        a, b, a_wait, b_wait = _deadlock(one, two, pool, watch)
        graph = wait_until(lambda: (g := watch.get(f"{TXN}/locks/graph").json())["potential_deadlocks"] and g)
        assert graph["potential_deadlocks"] == [sorted([a, b])]
        assert {(w["transaction_id"], w["waiting_for_transaction"]) for w in graph["waiters"]} == {(a, b), (b, a)}
        assert len(graph["blocking_tree"]) == 2  # nobody is a root blocker in a cycle: both members are shown
        states = {t["transaction_id"]: t["session_state"] for t in watch.get(f"{TXN}/active").json()}
        assert states == {a: "waiting", b: "waiting"}
        r = operator.post(f"{TXN}/deadlocks/detect")
        assert r.status_code == 200, r.text
        assert (r.json()["deadlocks_detected"], r.json()["transactions_analyzed"]) == (1, 2)
        assert r.json()["deadlocks"][0]["victim_transaction"] == b
        error(b_wait.result(), 409, "DEADLOCK_DETECTED")
        assert a_wait.result().status_code == 200
        assert watch.get(f"{TXN}/locks/waiters").json() == {"waiters": [], "potential_deadlocks": []}
        assert operator.post(f"{TXN}/deadlocks/detect").json()["deadlocks_detected"] == 0
        one.post(f"{TXN}/{a}/rollback")


# -- the WAL -----------------------------------------------------------------------------------

def test_wal_status_counts_frames_and_a_checkpoint_copies_them(engine: Engine, client: TestClient,
                                                              headers: dict) -> None:
    keep = engine.connect("keeper", "tests")  # the last connection to close would checkpoint and delete the WAL
    try:
        r = run_sql(client, "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 2000) "
                            "INSERT INTO sales.orders(amount) SELECT x FROM n", headers["admin"])
        assert (r.status_code, r.json()["affected_rows"]) == (200, 2000)
        status = client.get(f"{TXN}/wal/status", headers=headers["monitor"]).json()
        [sales] = [f for f in status["files"] if f["schema_name"] == "sales"]
        assert sales["exists"] and sales["frames"] > 0 and sales["page_size"] == 4096
        assert sales["size_bytes"] >= 32 + sales["frames"] * (4096 + 24)
        assert status["current_lsn"] == str(sum(f["frames"] for f in status["files"]))
        assert status["wal_size_bytes"] == sum(f["size_bytes"] for f in status["files"]) and status["wal_files"] >= 1
        assert (status["last_checkpoint"], status["checkpoint_in_progress"], status["write_rate_mbps"]) == (
            None, False, None)
        pending = int(status["current_lsn"]) - int(status["checkpoint_lsn"])
        r = client.post(f"{TXN}/wal/checkpoint", headers=headers["operator"])
        assert r.status_code == 200, r.text
        done = r.json()
        assert (done["mode"], done["busy"], done["pages_written"]) == ("passive", False, pending)
        assert done["bytes_written"] == pending * 4096 and done["duration_ms"] >= 0
        after = client.get(f"{TXN}/wal/status", headers=headers["monitor"]).json()
        assert after["checkpoint_lsn"] == after["current_lsn"] == done["checkpoint_lsn"]
        assert after["last_checkpoint"] == done["completed_at"] and after["last_checkpoint_result"] == done
        r = client.post(f"{TXN}/wal/checkpoint", json={"mode": "truncate"}, headers=headers["operator"])
        assert (r.json()["busy"], r.json()["pages_written"]) == (False, 0)
        after = client.get(f"{TXN}/wal/status", headers=headers["monitor"]).json()
        assert (after["current_lsn"], after["wal_size_bytes"]) == ("0", 0)
    finally:
        keep.close()


def test_a_reader_on_an_old_snapshot_keeps_a_restart_checkpoint_busy(engine: Engine, client: TestClient,
                                                                     headers: dict) -> None:
    reader = engine.connect("reader", "tests")
    try:
        run_sql(client, "CREATE TABLE sales.notes(t TEXT)", headers["admin"])
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sales.orders")  # pins its snapshot of the sales file
        run_sql(client, "INSERT INTO sales.notes VALUES ('after the snapshot')", headers["admin"])
        r = client.post(f"{TXN}/wal/checkpoint", json={"mode": "restart"}, headers=headers["operator"])
        [sales] = [s for s in r.json()["schemas"] if s["schema_name"] == "sales"]
        assert r.json()["busy"] and sales["busy"] and sales["checkpointed_frames"] < sales["log_frames"]
        reader.execute("COMMIT")
        r = client.post(f"{TXN}/wal/checkpoint", json={"mode": "restart"}, headers=headers["operator"])
        assert r.json()["busy"] is False
    finally:
        reader.close()
