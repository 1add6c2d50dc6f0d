"""Incidents: opened by the engine on a real deadlock, a burst of statement failures, a critical alert or
a failed backup; moved along their states over PATCH; listed with filters and pagination."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from engine import Engine, SessionState
from engine.errors import DeadlockDetected

from .conftest import wait_until

URL = "/api/v1/diagnostics/incidents"
A_WANTS_INVENTORY = "UPDATE inventory.items SET qty = qty - 1 WHERE id = 2"
B_WANTS_SALES = "UPDATE sales.orders SET amount = amount * 2 WHERE id = 2"


def fail_times(client: TestClient, headers: dict, n: int, table: str = "sales.nosuch") -> None:
    """Run one failing statement fingerprint n times over the API (the literal changes, the fingerprint not)."""
    for i in range(n):
        r = client.post("/api/v1/query", json={"sql": f"SELECT * FROM {table} WHERE id = {i}"},
                        headers=headers["admin"])
        assert (r.status_code, r.json()["code"]) == (400, "SQL_ERROR")


def listed(client: TestClient, headers: dict, query: str = "") -> dict:
    r = client.get(f"{URL}{query}", headers=headers["monitor"])
    assert r.status_code == 200, r.text
    return r.json()


def test_a_real_deadlock_opens_an_incident_with_the_participants_sql_and_locks(
        engine: Engine, client: TestClient, headers: dict) -> None:
    a, b = engine.connect("alice", "A"), engine.connect("bob", "B")
    a.execute("BEGIN")
    a.execute("UPDATE sales.orders SET amount = amount + 1 WHERE id = 1")   # A holds sales
    b.execute("BEGIN")
    b.execute("UPDATE inventory.items SET qty = qty + 1 WHERE id = 1")      # B holds inventory
    with ThreadPoolExecutor(2) as pool:
        run_a = pool.submit(a.execute, A_WANTS_INVENTORY)
        wait_until(lambda: a.state is SessionState.WAITING)
        run_b = pool.submit(b.execute, B_WANTS_SALES)
        assert isinstance(run_b.exception(timeout=10), DeadlockDetected)  # B, the younger, is the victim
        run_a.result(timeout=10)
    a.execute("COMMIT")

    page = wait_until(lambda: listed(client, headers)["incidents"])
    assert len(page) == 1
    summary = page[0]
    assert (summary["severity"], summary["status"], summary["kind"]) == ("high", "open", "deadlock")
    assert summary["resolved_at"] is None and summary["assignee"] is None
    assert f"session {b.id} rolled back" in summary["title"]
    assert {"sales", "inventory", "sales.orders", "inventory.items"} <= set(summary["affected_components"])

    r = client.get(f"{URL}/{summary['id']}", headers=headers["monitor"])
    assert r.status_code == 200
    evidence = r.json()["evidence"]
    deadlock = evidence["deadlock"]
    assert (deadlock["deadlock_id"], deadlock["victim_session"]) == (engine.locks.deadlocks[-1].deadlock_id, b.id)
    by_session = {p["session_id"]: p for p in deadlock["participants"]}
    assert by_session[a.id]["sql"] == A_WANTS_INVENTORY and by_session[b.id]["sql"] == B_WANTS_SALES
    assert by_session[a.id]["waiting_for"] == "inventory" and "sales.orders" in by_session[a.id]["holding"]
    assert by_session[b.id]["waiting_for"] == "sales" and "inventory.items" in by_session[b.id]["holding"]
    # the lock table and the sessions as they were when the deadlock was found
    held_by_a = {(lock["resource"], lock["mode"]) for lock in evidence["locks"] if lock["session_id"] == a.id}
    assert {("sales", "exclusive"), ("sales.orders", "exclusive")} <= held_by_a
    sessions = {s["session_id"]: s for s in evidence["sessions"]}
    assert sessions[a.id]["username"] == "alice" and sessions[a.id]["sql"] == A_WANTS_INVENTORY
    assert sessions[b.id]["username"] == "bob"
    a.close()
    b.close()


def test_repeated_failures_of_one_fingerprint_open_one_incident(client: TestClient, headers: dict) -> None:
    fail_times(client, headers, 4)
    fail_times(client, headers, 4, table="inventory.nosuch")   # another fingerprint, under the threshold
    assert listed(client, headers)["total_count"] == 0
    fail_times(client, headers, 1)                              # the fifth failure within the window
    incidents = listed(client, headers)["incidents"]
    assert len(incidents) == 1
    incident = incidents[0]
    assert (incident["kind"], incident["severity"], incident["occurrence_count"]) == ("statement_failures", "medium", 5)
    assert "no such table: sales.nosuch" in incident["description"]

    fail_times(client, headers, 3)                              # counted on the open incident, not a new one
    assert listed(client, headers)["total_count"] == 1
    details = client.get(f"{URL}/{incident['id']}", headers=headers["monitor"]).json()
    assert details["occurrence_count"] == 8
    occurrences = details["evidence"]["occurrences"]
    assert len(occurrences) == 8 and {o["error_code"] for o in occurrences} == {"SQL_ERROR"}
    assert occurrences[-1]["sql"] == "SELECT * FROM sales.nosuch WHERE id = 2"
    assert details["affected_components"] == [f"sql_id:{details['evidence']['sql_id']}"]

    # once resolved, a new burst opens a new incident
    patch(client, headers, incident["id"], status="resolved")
    fail_times(client, headers, 5)
    assert listed(client, headers, "?status=open")["total_count"] == 1
    assert listed(client, headers)["total_count"] == 2


def test_canceled_statements_are_not_failures(engine: Engine, client: TestClient, headers: dict) -> None:
    session = engine.connect()
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"
    for _ in range(5):
        with ThreadPoolExecutor(1) as pool:
            run = pool.submit(session.execute, endless)
            query_id = wait_until(lambda: session.info().current_query_id)
            engine.cancel_query(query_id, by="tests")
            assert run.exception(timeout=10).code == "QUERY_CANCELED"
    assert listed(client, headers)["total_count"] == 0
    session.close()


def patch(client: TestClient, headers: dict, incident_id: str, role: str = "operator", **body: object):  # type: ignore[no-untyped-def]
    return client.patch(f"{URL}/{incident_id}", json=body, headers=headers[role])


def test_patch_moves_the_status_sets_the_assignee_and_refuses_invalid_moves(
        client: TestClient, headers: dict, caplog: pytest.LogCaptureFixture) -> None:
    fail_times(client, headers, 5)
    incident_id = listed(client, headers)["incidents"][0]["id"]

    with caplog.at_level(logging.INFO, logger="engine.audit"):
        r = patch(client, headers, incident_id, status="investigating", assignee="carol", note="looking at it")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["assignee"]) == ("investigating", "carol")
    assert body["updated_at"] >= body["created_at"] and body["resolved_at"] is None
    assert [(h["field"], h["old"], h["new"], h["note"]) for h in body["history"]] == [
        ("status", "open", "investigating", "looking at it"), ("assignee", None, "carol", "looking at it")]
    operator = body["history"][0]["by"]
    assert operator.startswith("apikey-")
    audits = [r.audit for r in caplog.records if getattr(r, "audit", None)]
    assert [(a["who"], a["action"], a["target"], a["result"]) for a in audits] == [
        (operator, "update_incident", f"incident {incident_id}", "ok")]

    r = patch(client, headers, incident_id, status="open")
    assert (r.status_code, r.json()["code"]) == (409, "CONFLICT")
    assert "allowed next states: resolved" in r.json()["message"]
    assert r.json()["details"] == {"status": "investigating", "allowed_next": ["resolved"]}

    r = patch(client, headers, incident_id, status="resolved")
    assert r.json()["status"] == "resolved" and r.json()["resolved_at"] is not None
    r = patch(client, headers, incident_id, status="investigating")       # reopened
    assert r.json()["status"] == "investigating" and r.json()["resolved_at"] is None
    patch(client, headers, incident_id, status="resolved")
    r = patch(client, headers, incident_id, status="closed", assignee=None)  # unassigned as it closes
    assert (r.json()["status"], r.json()["assignee"]) == ("closed", None)
    assert r.json()["resolved_at"] is not None

    r = patch(client, headers, incident_id, status="open")
    assert r.status_code == 409 and "none (closed is final)" in r.json()["message"]
    r = patch(client, headers, incident_id, assignee="dave")
    assert r.status_code == 409 and "closed" in r.json()["message"]
    assert client.get(f"{URL}/{incident_id}", headers=headers["monitor"]).json()["status"] == "closed"


def test_patch_input_is_validated(client: TestClient, headers: dict) -> None:
    fail_times(client, headers, 5)
    incident_id = listed(client, headers)["incidents"][0]["id"]
    r = patch(client, headers, "987654", status="investigating")
    assert (r.status_code, r.json()["message"]) == (404, "Incident 987654 not found")
    assert client.get(f"{URL}/987654", headers=headers["monitor"]).status_code == 404
    for body, field in (({"status": "done"}, "status"), ({"assignee": ""}, "assignee"),
                        ({"asignee": "x"}, "asignee"), ({"status": 3}, "status")):
        r = patch(client, headers, incident_id, **body)
        assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR"), body
        assert field in r.json()["message"]
    r = patch(client, headers, incident_id)
    assert r.status_code == 400 and "nothing to change" in r.json()["message"]
    # asking for what holds already is an idempotent PATCH: the incident as it is, no history entry
    assigned = patch(client, headers, incident_id, assignee="carol").json()
    again = patch(client, headers, incident_id, assignee="carol", status=assigned["status"])
    assert again.status_code == 200 and again.json() == assigned
    r = client.get(f"{URL}/abc", headers=headers["monitor"])
    assert r.status_code == 400 and "incident_id" in r.json()["message"]
    assert patch(client, headers, incident_id, role="monitor", status="investigating").status_code == 403


def test_list_filters_and_pages(engine: Engine, client: TestClient, headers: dict) -> None:
    for table in ("sales.a", "sales.b", "sales.c"):
        fail_times(client, headers, 5, table)
    engine.events.publish("alert_fired", {"id": 7, "name": "disk free", "severity": "WARNING"})   # not critical
    engine.events.publish("alert_fired", {"id": 8, "name": "disk free", "severity": "CRITICAL",
                                          "message": "disk free 1 %", "category": "Capacity"})
    engine.events.publish("alert_fired", {"id": 8, "name": "disk free", "severity": "CRITICAL"})  # fires again
    engine.events.publish("backup_failed", {"backup_id": "backup_1", "error_message": "disk full"})
    every = listed(client, headers)
    assert every["total_count"] == 5
    ids = [int(i["id"]) for i in every["incidents"]]
    assert ids == sorted(ids, reverse=True)                    # newest first
    alert = every["incidents"][1]
    assert (alert["kind"], alert["severity"], alert["occurrence_count"]) == ("critical_alert", "critical", 2)
    assert alert["affected_components"] == ["Capacity"] and "disk free 1 %" in alert["description"]
    backup = every["incidents"][0]
    assert (backup["kind"], backup["severity"], backup["title"]) == ("backup_failed", "high", "Backup backup_1 failed")

    patch(client, headers, str(ids[-1]), status="investigating")
    assert [i["id"] for i in listed(client, headers, "?status=investigating")["incidents"]] == [str(ids[-1])]
    assert listed(client, headers, "?status=open")["total_count"] == 4
    assert listed(client, headers, "?severity=medium")["total_count"] == 3
    assert listed(client, headers, "?severity=critical&status=open")["total_count"] == 1
    assert listed(client, headers, "?severity=low")["incidents"] == []

    first = listed(client, headers, "?page=1&page_size=2")
    assert (len(first["incidents"]), first["total_count"], first["page"], first["page_size"]) == (2, 5, 1, 2)
    assert (first["total_pages"], first["has_next"], first["has_prev"]) == (3, True, False)
    last = listed(client, headers, "?page=3&page_size=2")
    assert [i["id"] for i in last["incidents"]] == [str(ids[-1])] and not last["has_next"]
    by_severity = listed(client, headers, "?sort_by=severity&sort_order=desc")["incidents"]
    assert [i["severity"] for i in by_severity][:2] == ["critical", "high"]
    for query, field in (("?severity=urgent", "severity"), ("?status=new", "status"), ("?page=0", "page"),
                         ("?sort_by=title", "sort_by")):
        r = client.get(f"{URL}{query}", headers=headers["monitor"])
        assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR") and field in r.json()["message"]
