"""Alerts over REST: rules over the engine's real figures, the alert life cycle, silences, webhooks.

The engine here runs on a ManualClock without its background services: a test steps the clock and
calls `engine.alerts.evaluate()` itself, so durations are exact and nothing sleeps. One test runs
the real services to show the evaluator runs on its own.
"""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine import Engine, EngineConfig, ManualClock, Session, SessionState
from engine.alerts import WebhookNotifier
from engine.api import create_app
from engine.errors import DeadlockDetected

from .conftest import ADMIN_PASSWORD, wait_until

ALERTS = "/api/v1/alerts"
IDLE = "idle_in_transaction"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def open_engine(data_dir: Path, clock: ManualClock) -> Engine:
    # no statement timeout: stepping the clock must not time statements out
    return Engine(data_dir, EngineConfig(query_timeout_secs=0.0, lock_timeout_ms=5000), clock)


@pytest.fixture
def engine(tmp_path: Path, clock: ManualClock) -> Iterator[Engine]:
    """Overrides conftest's: the same schemas, on a ManualClock, services not started."""
    eng = open_engine(tmp_path / "data", clock)
    eng.auth.ensure_admin(ADMIN_PASSWORD)
    eng.create_schema("sales")
    eng.create_schema("inventory")
    setup = eng.connect("setup", "tests")
    setup.execute("CREATE TABLE sales.orders(id INTEGER PRIMARY KEY, amount REAL NOT NULL)")
    setup.execute("CREATE TABLE inventory.items(id INTEGER PRIMARY KEY, qty INTEGER NOT NULL)")
    setup.execute("INSERT INTO sales.orders(amount) VALUES (10), (20), (30)")
    setup.execute("INSERT INTO inventory.items(qty) VALUES (5), (6), (7)")
    setup.close()
    yield eng
    eng.close()


@pytest.fixture
def admin(client: TestClient, headers: dict) -> TestClient:
    client.headers.update(headers["admin"])
    return client


@pytest.fixture
def events(engine: Engine) -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []
    for topic in ("alert_fired", "alert_resolved"):
        engine.events.subscribe(topic, lambda alert, topic=topic: seen.append((topic, alert)))
    return seen


def tune(client: TestClient, rule_id: str, **fields: object) -> dict:
    r = client.put(f"{ALERTS}/rules/{rule_id}", json=fields)
    assert r.status_code == 200, r.text
    return r.json()


def listing(client: TestClient, **params: str) -> dict:
    r = client.get(ALERTS, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def of_rule(client: TestClient, rule_id: str) -> list[dict]:
    return listing(client, rule=rule_id)["alerts"]


def error(r, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    return r.json()


def idle_in_transaction(engine: Engine, user: str = "alice", app: str = "report") -> Session:
    s = engine.connect(user, app)
    s.execute("BEGIN")
    s.execute("SELECT count(*) FROM sales.orders")  # shared locks: several such sessions can coexist
    return s


def firing_idle_alert(admin: TestClient, engine: Engine, clock: ManualClock, **rule: object) -> tuple[Session, dict]:
    """A session idle in transaction past a 5 s threshold, and its alert, firing."""
    tune(admin, IDLE, threshold=5, for_seconds=0, cooldown_seconds=0, **rule)
    s = idle_in_transaction(engine)
    clock.advance(6)
    engine.alerts.evaluate()
    [alert] = of_rule(admin, IDLE)
    assert alert["state"] == "firing"
    return s, alert


# -- the life cycle --------------------------------------------------------------------------

def test_an_idle_transaction_goes_pending_then_firing_then_resolves_on_commit(
        admin: TestClient, engine: Engine, clock: ManualClock, events: list) -> None:
    rule = tune(admin, IDLE, threshold=5, for_seconds=10)
    assert (rule["threshold"], rule["for_seconds"], rule["builtin"], rule["metric_available"]) == (5, 10, True, True)
    s = idle_in_transaction(engine)
    txn = s.info().transaction_id
    engine.alerts.evaluate()
    assert of_rule(admin, IDLE) == []  # idle for 0 s

    clock.advance(6)
    engine.alerts.evaluate()
    [alert] = listing(admin, state="pending")["alerts"]
    assert (alert["rule"], alert["state"], alert["occurrence_count"], alert["acknowledged"]) == (
        IDLE, "pending", 0, False)
    assert alert["description"] == (f"session {s.id} (alice@report) has been idle in transaction {txn} for 6.0 s "
                                    "(threshold: idle_in_transaction_seconds > 5 s)")
    assert alert["labels"] == {"session_id": str(s.id), "username": "alice", "application_name": "report",
                               "client_address": "local", "transaction_id": str(txn)}
    assert (alert["value"], alert["threshold"], alert["operator"], alert["severity"], alert["category"]) == (
        6.0, 5.0, ">", "WARNING", "Performance")
    assert alert["pending_since"] == alert["triggered_at"] == int(clock.time())
    assert listing(admin)["active_count"] == 0 and events == []

    clock.advance(10)  # the condition has now held for the rule's 10 s
    engine.alerts.evaluate()
    body = listing(admin)
    [alert] = [a for a in body["alerts"] if a["rule"] == IDLE]
    assert (alert["state"], alert["occurrence_count"], alert["last_fired_at"], alert["value"]) == (
        "firing", 1, int(clock.time()), 16.0)
    assert "for 16 s" in alert["description"] and alert["pending_since"] is None
    assert body["active_count"] >= 1 and listing(admin, state="firing")["active_count"] == body["active_count"]
    assert admin.get(f"{ALERTS}/{alert['alert_id']}").json() == alert
    assert [(topic, a.alert_id, a.state.value) for topic, a in events] == [
        ("alert_fired", alert["alert_id"], "firing")]

    s.execute("COMMIT")
    clock.advance(1)
    engine.alerts.evaluate()
    [alert] = of_rule(admin, IDLE)
    assert (alert["state"], alert["resolved_at"], alert["occurrence_count"]) == ("resolved", int(clock.time()), 1)
    assert listing(admin, state="firing")["alerts"] == []
    assert [topic for topic, _ in events] == ["alert_fired", "alert_resolved"]


def test_a_condition_that_clears_while_pending_leaves_no_alert(admin: TestClient, engine: Engine,
                                                              clock: ManualClock) -> None:
    tune(admin, IDLE, threshold=1, for_seconds=60)
    s = idle_in_transaction(engine)
    clock.advance(5)
    engine.alerts.evaluate()
    assert [a["state"] for a in of_rule(admin, IDLE)] == ["pending"]
    s.execute("ROLLBACK")
    engine.alerts.evaluate()
    assert of_rule(admin, IDLE) == []


def test_filters_by_severity_case_insensitively_and_by_state(admin: TestClient, engine: Engine,
                                                            clock: ManualClock) -> None:
    firing_idle_alert(admin, engine, clock, severity="critical")
    assert [a["rule"] for a in listing(admin, severity="CRITICAL")["alerts"]] == [IDLE]
    assert [a["rule"] for a in listing(admin, severity="Critical", state="firing")["alerts"]] == [IDLE]
    assert listing(admin, severity="info")["alerts"] == []
    assert listing(admin, state="resolved")["alerts"] == []
    error(admin.get(ALERTS, params={"severity": "fatal"}), 400, "VALIDATION_ERROR")
    assert "state" in error(admin.get(ALERTS, params={"state": "open"}), 400, "VALIDATION_ERROR")["message"]


# -- acknowledge -----------------------------------------------------------------------------

def test_acknowledge_records_who_when_and_the_note(client: TestClient, headers: dict, engine: Engine,
                                                   clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    admin = TestClient(client.app, headers=headers["admin"])
    s, alert = firing_idle_alert(admin, engine, clock)
    active = listing(admin)["active_count"]
    caplog.set_level(logging.INFO, logger="engine.audit")
    url = f"{ALERTS}/{alert['alert_id']}/acknowledge"
    error(client.post(url, headers=headers["monitor"]), 403, "FORBIDDEN")

    clock.advance(3)
    r = client.post(url, json={"note": "talking to the report team"}, headers=headers["operator"])
    assert r.status_code == 200, r.text
    acked = r.json()
    operator = engine.auth.authenticate(None, headers["operator"]["X-API-Key"]).name
    assert (acked["state"], acked["acknowledged"], acked["acknowledged_by"], acked["acknowledged_at"],
            acked["acknowledge_note"]) == ("acknowledged", True, operator, int(clock.time()),
                                           "talking to the report team")
    # still listed, no longer active
    body = listing(admin)
    assert body["active_count"] == active - 1
    assert [a["alert_id"] for a in listing(admin, state="acknowledged")["alerts"]] == [alert["alert_id"]]
    # an acknowledged alert keeps being evaluated: its value moves on
    clock.advance(10)
    engine.alerts.evaluate()
    [again] = of_rule(admin, IDLE)
    assert (again["state"], again["value"], again["acknowledged_by"]) == ("acknowledged", 19.0, operator)

    assert "already acknowledged" in error(client.post(url, headers=headers["operator"]), 409, "CONFLICT")["message"]
    error(client.post(f"{ALERTS}/0123456789abcdef/acknowledge", headers=headers["operator"]), 404, "NOT_FOUND")
    error(client.post(f"{ALERTS}/bad%20id/acknowledge", headers=headers["operator"]), 400, "VALIDATION_ERROR")
    error(client.post(url, json={"note": 5}, headers=headers["operator"]), 400, "VALIDATION_ERROR")

    s.execute("COMMIT")
    engine.alerts.evaluate()
    resolved = error(client.post(url, headers=headers["operator"]), 409, "CONFLICT")
    assert resolved["message"] == f"Alert {alert['alert_id']} is already resolved"
    audits = [r.audit for r in caplog.records if hasattr(r, "audit") and r.audit["action"] == "acknowledge"]
    assert [(a["who"], a["result"], a["note"]) for a in audits] == [
        (operator, "ok", "talking to the report team"),
        (operator, f"refused: Alert {alert['alert_id']} was already acknowledged by {operator}", None),
        (operator, "refused: Alert 0123456789abcdef not found", None),
        (operator, f"refused: Alert {alert['alert_id']} is already resolved", None)]


def test_a_repeat_firing_reopens_the_alert_and_counts_it(admin: TestClient, headers: dict, engine: Engine,
                                                       clock: ManualClock, events: list) -> None:
    s, first = firing_idle_alert(admin, engine, clock)
    admin.post(f"{ALERTS}/{first['alert_id']}/acknowledge", headers=headers["operator"])
    s.execute("SELECT 1")  # the session works again: it is no longer idle
    engine.alerts.evaluate()
    assert of_rule(admin, IDLE)[0]["state"] == "resolved"

    clock.advance(6)
    engine.alerts.evaluate()
    [again] = of_rule(admin, IDLE)
    assert (again["alert_id"], again["state"], again["occurrence_count"]) == (first["alert_id"], "firing", 2)
    assert (again["triggered_at"], again["last_fired_at"]) == (first["triggered_at"], int(clock.time()))
    assert (again["acknowledged"], again["acknowledged_by"], again["resolved_at"]) == (False, None, None)
    assert [topic for topic, _ in events] == ["alert_fired", "alert_resolved", "alert_fired"]

    # with a cooldown, the next repeat waits for it, pending
    tune(admin, IDLE, cooldown_seconds=60)
    s.execute("SELECT 1")
    engine.alerts.evaluate()
    clock.advance(6)
    engine.alerts.evaluate()
    assert [(a["state"], a["occurrence_count"]) for a in of_rule(admin, IDLE)] == [("pending", 2)]
    clock.advance(54)  # 60 s after the last firing
    engine.alerts.evaluate()
    assert [(a["state"], a["occurrence_count"]) for a in of_rule(admin, IDLE)] == [("firing", 3)]


def test_an_acknowledgement_holds_across_a_flapping_repeat_and_its_history_shows(
        admin: TestClient, headers: dict, engine: Engine, clock: ManualClock) -> None:
    s, first = firing_idle_alert(admin, engine, clock)
    tune(admin, IDLE, cooldown_seconds=60)
    url = f"{ALERTS}/{first['alert_id']}/acknowledge"
    assert admin.post(url, headers=headers["operator"], json={"note": "on it"}).status_code == 200
    acked_at = int(clock.time())
    s.execute("SELECT 1")  # resolves, and is idle in transaction again at once
    engine.alerts.evaluate()
    clock.advance(30)  # back within the cooldown: pending, then firing once the cooldown has passed
    engine.alerts.evaluate()
    clock.advance(30)
    engine.alerts.evaluate()
    [again] = of_rule(admin, IDLE)
    operator = again["acknowledged_by"]
    assert (again["state"], again["occurrence_count"], again["acknowledged_at"]) == ("acknowledged", 2, acked_at)
    assert again["acknowledgements"] == [
        {"occurrence": 1, "acknowledged_by": operator, "acknowledged_at": acked_at, "note": "on it"}]

    # resolved for longer than the cooldown: a new episode, unacknowledged, the earlier ack still listed
    s.execute("COMMIT")
    engine.alerts.evaluate()
    clock.advance(120)
    s.execute("BEGIN")
    s.execute("SELECT count(*) FROM sales.orders")
    clock.advance(6)
    engine.alerts.evaluate()
    [third] = of_rule(admin, IDLE)
    assert (third["state"], third["occurrence_count"], third["acknowledged_by"]) == ("firing", 3, None)
    assert [a["occurrence"] for a in third["acknowledgements"]] == [1]
    assert admin.post(url, headers=headers["operator"]).status_code == 200
    assert [(a["occurrence"], a["note"]) for a in of_rule(admin, IDLE)[0]["acknowledgements"]] == [
        (1, "on it"), (3, None)]


def test_each_session_has_its_own_alert(admin: TestClient, engine: Engine, clock: ManualClock) -> None:
    tune(admin, IDLE, threshold=5)
    a = idle_in_transaction(engine, "alice", "report")
    clock.advance(3)
    b = engine.connect("bob", "etl")
    b.execute("BEGIN")
    b.execute("SELECT count(*) FROM inventory.items")
    clock.advance(3)
    engine.alerts.evaluate()
    assert [a_["labels"]["session_id"] for a_ in of_rule(admin, IDLE)] == [str(a.id)]
    clock.advance(3)
    engine.alerts.evaluate()
    alerts = {x["labels"]["username"]: x for x in of_rule(admin, IDLE)}
    assert set(alerts) == {"alice", "bob"} and {x["state"] for x in alerts.values()} == {"firing"}
    assert alerts["bob"]["description"].startswith(f"session {b.id} (bob@etl) has been idle in transaction")
    a.execute("COMMIT")
    engine.alerts.evaluate()
    assert {x["labels"]["username"]: x["state"] for x in of_rule(admin, IDLE)} == {
        "alice": "resolved", "bob": "firing"}


# -- silences --------------------------------------------------------------------------------

def test_a_silence_holds_an_alert_back_until_it_expires(client: TestClient, headers: dict, engine: Engine,
                                                       clock: ManualClock, events: list) -> None:
    admin = TestClient(client.app, headers=headers["admin"])
    s, alert = firing_idle_alert(admin, engine, clock)
    active = listing(admin)["active_count"]
    error(client.post(f"{ALERTS}/silences", json={"rule_id": IDLE, "duration_seconds": 30},
                      headers=headers["monitor"]), 403, "FORBIDDEN")
    r = client.post(f"{ALERTS}/silences", headers=headers["operator"],
                    json={"rule_id": IDLE, "labels": {"username": "alice"}, "duration_seconds": 30,
                          "comment": "batch window"})
    assert r.status_code == 201, r.text
    silence = r.json()
    assert (silence["rule_id"], silence["labels"], silence["expires_at"], silence["active"], silence["comment"]) == (
        IDLE, {"username": "alice"}, int(clock.time()) + 30, True, "batch window")
    # at once, without an evaluation
    [held] = of_rule(admin, IDLE)
    assert (held["state"], held["silenced_by"]) == ("silenced", silence["silence_id"])
    assert listing(admin)["active_count"] == active - 1
    assert [a["alert_id"] for a in listing(admin, state="silenced")["alerts"]] == [alert["alert_id"]]

    # a new occurrence under the silence is counted, but announced to nobody
    s.execute("SELECT 1")
    engine.alerts.evaluate()
    clock.advance(6)
    engine.alerts.evaluate()
    assert [(a["state"], a["occurrence_count"]) for a in of_rule(admin, IDLE)] == [("silenced", 2)]
    assert [topic for topic, _ in events] == ["alert_fired", "alert_resolved"]

    # a silence for other labels does not match
    bob = client.post(f"{ALERTS}/silences", headers=headers["operator"],
                      json={"labels": {"username": "bob"}, "expires_at": int(clock.time()) + 3600}).json()
    assert of_rule(admin, IDLE)[0]["silenced_by"] == silence["silence_id"]

    clock.advance(30)  # the silence expires
    engine.alerts.evaluate()
    [alert] = of_rule(admin, IDLE)
    assert (alert["state"], alert["silenced_by"], alert["occurrence_count"]) == ("firing", None, 2)
    assert [topic for topic, _ in events] == ["alert_fired", "alert_resolved", "alert_fired"]
    listed = {x["silence_id"]: x["active"] for x in admin.get(f"{ALERTS}/silences").json()}
    assert listed == {silence["silence_id"]: False, bob["silence_id"]: True}

    # deleting a silence ends it at once
    client.post(f"{ALERTS}/silences", headers=headers["operator"], json={"rule_id": IDLE, "duration_seconds": 600})
    assert of_rule(admin, IDLE)[0]["state"] == "silenced"
    [current] = [x for x in admin.get(f"{ALERTS}/silences").json() if x["active"] and x["rule_id"] == IDLE]
    assert client.delete(f"{ALERTS}/silences/{current['silence_id']}", headers=headers["operator"]).status_code == 204
    assert of_rule(admin, IDLE)[0]["state"] == "firing"
    error(client.delete(f"{ALERTS}/silences/{current['silence_id']}", headers=headers["operator"]), 404, "NOT_FOUND")


@pytest.mark.parametrize(("body", "status", "code", "field"), [
    # well-formed, but what the server holds refuses it: the rule does not exist, the time has passed
    ({"rule_id": "no_such_rule", "duration_seconds": 60}, 404, "NOT_FOUND", "rule_id"),
    ({"rule_id": IDLE, "expires_at": 1_000}, 409, "CONFLICT", "expires_at"),
])
def test_silences_the_servers_state_refuses(client: TestClient, headers: dict, body: dict, status: int, code: str,
                                            field: str) -> None:
    r = client.post(f"{ALERTS}/silences", json=body, headers=headers["operator"])
    assert field in error(r, status, code)["message"]
    assert client.get(f"{ALERTS}/silences", headers=headers["monitor"]).json() == []


@pytest.mark.parametrize(("body", "field"), [
    ({"duration_seconds": 60}, "rule_id"),  # matches nothing in particular
    ({"rule_id": IDLE}, "expires_at"),
    ({"rule_id": IDLE, "expires_at": 1_800_000_000, "duration_seconds": 60}, "duration_seconds"),
    ({"rule_id": IDLE, "duration_seconds": -5}, "duration_seconds"),
    ({"rule_id": IDLE, "duration_seconds": "60"}, "duration_seconds"),
    ({"labels": {"session_id": 5}, "duration_seconds": 60}, "labels"),
    ({"rule_id": IDLE, "duration_seconds": 60, "until": 5}, "until"),
])
def test_bad_silences_are_refused_naming_the_field(client: TestClient, headers: dict, body: dict,
                                                   field: str) -> None:
    r = client.post(f"{ALERTS}/silences", json=body, headers=headers["operator"])
    assert field in error(r, 400, "VALIDATION_ERROR")["message"]
    assert client.get(f"{ALERTS}/silences", headers=headers["monitor"]).json() == []


# -- rules -----------------------------------------------------------------------------------

def test_builtin_rules_are_listed_and_a_backup_age_with_no_backup_is_unknown(admin: TestClient,
                                                                            engine: Engine) -> None:
    rules = {r["rule_id"]: r for r in admin.get(f"{ALERTS}/rules").json()}
    assert set(rules) == {"long_running_statement", "blocked_session", IDLE, "deadlock", "cache_hit_ratio",
                          "connections", "disk_free", "backup_age", "backup_failed", "error_rate"}
    assert all(r["builtin"] and r["enabled"] for r in rules.values())
    metrics = {m["name"]: m for m in admin.get(f"{ALERTS}/metrics").json()}
    assert all(r["metric_available"] == metrics[r["metric"]]["available"] for r in rules.values())
    assert metrics["idle_in_transaction_seconds"]["unit"] == "s"
    assert {"backup_age_hours", "backup_failed"} <= set(metrics)
    engine.alerts.evaluate()
    assert of_rule(admin, "backup_age") == of_rule(admin, "backup_failed") == []  # no backup yet: nothing to judge


def test_rules_crud(client: TestClient, headers: dict, engine: Engine, clock: ManualClock,
                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="engine.audit")
    admin = TestClient(client.app, headers=headers["admin"])
    body = {"rule_id": "crowded", "name": "Crowded", "metric": "connections_percent", "operator": ">=",
            "threshold": 0.1, "severity": "critical", "category": "capacity", "cooldown_seconds": 0}
    error(client.post(f"{ALERTS}/rules", json=body, headers=headers["operator"]), 403, "FORBIDDEN")
    r = admin.post(f"{ALERTS}/rules", json=body)
    assert r.status_code == 201, r.text
    rule = r.json()
    assert (rule["severity"], rule["category"], rule["for_seconds"], rule["enabled"], rule["builtin"],
            rule["metric_available"]) == ("CRITICAL", "Capacity", 0.0, True, False, True)
    assert admin.get(f"{ALERTS}/rules/crowded").json() == rule
    error(admin.post(f"{ALERTS}/rules", json=body), 409, "CONFLICT")

    sessions = [engine.connect("u", "app") for _ in range(2)]
    engine.alerts.evaluate()
    [alert] = of_rule(admin, "crowded")
    percent = 100 * len(engine.sessions()) / engine.config.max_connections
    assert (alert["state"], alert["severity"], alert["value"], alert["title"]) == (
        "firing", "CRITICAL", pytest.approx(percent), "Crowded")
    assert alert["description"] == (f"{len(engine.sessions())} sessions are open, {percent:.1f} % of "
                                    f"max_connections ({engine.config.max_connections}) "
                                    "(threshold: connections_percent >= 0.1 %)")

    updated = tune(admin, "crowded", threshold=50, name="Very crowded")
    assert (updated["threshold"], updated["name"], updated["severity"], updated["created_at"]) == (
        50, "Very crowded", "CRITICAL", rule["created_at"])
    engine.alerts.evaluate()
    assert of_rule(admin, "crowded")[0]["state"] == "resolved"

    tune(admin, "crowded", threshold=0.1)
    engine.alerts.evaluate()
    assert of_rule(admin, "crowded")[0]["state"] == "firing"
    tune(admin, "crowded", enabled=False)  # disabling ends what the rule raised, at once
    assert of_rule(admin, "crowded")[0]["state"] == "resolved"
    engine.alerts.evaluate()
    assert of_rule(admin, "crowded")[0]["state"] == "resolved"

    assert admin.delete(f"{ALERTS}/rules/crowded").status_code == 204
    error(admin.get(f"{ALERTS}/rules/crowded"), 404, "NOT_FOUND")
    error(admin.put(f"{ALERTS}/rules/crowded", json={"threshold": 1}), 404, "NOT_FOUND")
    error(admin.delete(f"{ALERTS}/rules/crowded"), 404, "NOT_FOUND")
    assert "disable it" in error(admin.delete(f"{ALERTS}/rules/{IDLE}"), 409, "CONFLICT")["message"]
    assert admin.post(f"{ALERTS}/rules", json={k: v for k, v in body.items() if k != "rule_id"}).json()["rule_id"]
    for s in sessions:
        s.close()
    actions = [(r.audit["action"], r.audit["target"], r.audit["result"]) for r in caplog.records
               if hasattr(r, "audit") and "rule" in r.audit["action"]]
    assert actions[:3] == [("create alert rule", "alert rule crowded", "ok"),
                           ("create alert rule", "alert rule crowded", "refused: Alert rule crowded already exists"),
                           ("update alert rule", "alert rule crowded", "ok")]
    assert ("delete alert rule", "alert rule crowded", "ok") in actions


GOOD_RULE = {"name": "n", "metric": "errors_per_minute", "operator": ">", "threshold": 1}


@pytest.mark.parametrize(("change", "field"), [
    ({"operator": "=>"}, "operator"),
    ({"severity": "fatal"}, "severity"),
    ({"category": "Mood"}, "category"),
    ({"for_seconds": -1}, "for_seconds"),
    ({"cooldown_seconds": -0.5}, "cooldown_seconds"),
    ({"metric": "no_such_metric"}, "metric"),
    ({"threshold": "5"}, "threshold"),
    ({"name": "   "}, "name"),
    ({"webhook_url": "ftp://example.com/x"}, "webhook_url"),
    ({"webhook_url": "http://[x"}, "webhook_url"), ({"webhook_url": "http://[:::]/hook"}, "webhook_url"),  # was a 500
    ({"enabled": "yes"}, "enabled"),
    ({"rule_id": "has space"}, "rule_id"),
    ({"threshhold": 5}, "threshhold"),
])
def test_bad_rules_are_refused_naming_the_field(admin: TestClient, change: dict, field: str) -> None:
    body = error(admin.post(f"{ALERTS}/rules", json={**GOOD_RULE, **change}), 400, "VALIDATION_ERROR")
    assert body["message"].startswith(field), body
    if "rule_id" not in change:
        r = admin.put(f"{ALERTS}/rules/{IDLE}", json=change)
        assert error(r, 400, "VALIDATION_ERROR")["message"].startswith(field)
    assert admin.get(f"{ALERTS}/rules/{IDLE}").json()["threshold"] == 300


def test_rules_and_silences_survive_a_restart(tmp_path: Path, client: TestClient, headers: dict, engine: Engine,
                                              clock: ManualClock) -> None:
    admin = TestClient(client.app, headers=headers["admin"])
    tune(admin, IDLE, threshold=42, severity="error", webhook_url="http://127.0.0.1:9/hook")
    created = admin.post(f"{ALERTS}/rules", json={**GOOD_RULE, "rule_id": "mine", "for_seconds": 7}).json()
    silence = client.post(f"{ALERTS}/silences", headers=headers["operator"],
                          json={"rule_id": "mine", "labels": {"session_id": "3"}, "duration_seconds": 600}).json()
    rules, silences = admin.get(f"{ALERTS}/rules").json(), admin.get(f"{ALERTS}/silences").json()
    engine.close()

    again = open_engine(tmp_path / "data", clock)
    try:
        again.auth.ensure_admin(ADMIN_PASSWORD)
        token = again.auth.login("admin", ADMIN_PASSWORD, "tests").token
        with TestClient(create_app(again), headers={"Authorization": f"Bearer {token}"}) as c:
            assert c.get(f"{ALERTS}/rules").json() == rules
            assert c.get(f"{ALERTS}/silences").json() == silences == [silence]
            idle = c.get(f"{ALERTS}/rules/{IDLE}").json()
            assert (idle["threshold"], idle["severity"], idle["webhook_url"]) == (
                42, "ERROR", "http://127.0.0.1:9/hook")
            assert c.get(f"{ALERTS}/rules/mine").json() == created
    finally:
        again.close()


# -- deadlocks -------------------------------------------------------------------------------

def test_a_deadlock_fires_the_deadlock_alert(admin: TestClient, engine: Engine, clock: ManualClock) -> None:
    a, b = engine.connect("alice", "A"), engine.connect("bob", "B")
    a.execute("BEGIN")
    b.execute("BEGIN")
    a.execute("UPDATE sales.orders SET amount = 1 WHERE id = 1")
    b.execute("UPDATE inventory.items SET qty = 1 WHERE id = 1")
    with ThreadPoolExecutor(2) as pool:
        runs = {a.id: pool.submit(a.execute, "UPDATE inventory.items SET qty = 2 WHERE id = 2")}
        wait_until(lambda: a.state is SessionState.WAITING)
        runs[b.id] = pool.submit(b.execute, "UPDATE sales.orders SET amount = 2 WHERE id = 2")
        wait_until(lambda: b.state is SessionState.WAITING)
        [deadlock] = engine.detect_deadlocks()
        assert isinstance(runs[deadlock.victim_session].exception(10), DeadlockDetected)
        [survivor] = [runs[s] for s in runs if s != deadlock.victim_session]
        survivor.result(10)
    engine.alerts.evaluate()
    [alert] = of_rule(admin, "deadlock")
    assert (alert["state"], alert["severity"], alert["value"], alert["occurrence_count"]) == ("firing", "ERROR", 1, 1)
    sessions = [str(p.session_id) for p in deadlock.participants]
    assert alert["labels"] == {"deadlock_id": str(deadlock.deadlock_id), "victim_session": str(deadlock.victim_session),
                               "sessions": ",".join(sessions)}
    assert alert["description"] == (
        f"deadlock {deadlock.deadlock_id} between sessions {', '.join(sessions)} (waiting for inventory, sales): "
        f"session {deadlock.victim_session} (transaction {deadlock.victim_transaction}) was rolled back "
        "(threshold: deadlocks >= 1)")
    engine.alerts.evaluate()  # no deadlock since
    assert of_rule(admin, "deadlock")[0]["state"] == "resolved"
    for s in (a, b):
        s.close()


# -- webhooks --------------------------------------------------------------------------------

class Receiver:
    """A local HTTP server that answers the first `failures` POSTs with 500, then 200."""

    def __init__(self, failures: int) -> None:
        self.requests: list[tuple[int, dict]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 500 if len(receiver.requests) < failures else 200
                receiver.requests.append((status, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_the_webhook_posts_fired_and_resolved_and_retries_a_failure(admin: TestClient, engine: Engine,
                                                                    clock: ManualClock) -> None:
    engine.alerts.notifier.backoff = (0.01, 0.02, 0.04)
    with Receiver(failures=1) as receiver:
        s, alert = firing_idle_alert(admin, engine, clock, webhook_url=receiver.url)
        wait_until(lambda: len(receiver.requests) == 2)
        (first, body), (second, again) = receiver.requests
        assert (first, second) == (500, 200) and body == again
        assert (body["event"], body["sent_at"]) == ("alert_fired", int(clock.time()))
        assert body["alert"] == {**alert, "description": body["alert"]["description"]}
        assert body["alert"]["labels"]["session_id"] == str(s.id)
        s.execute("COMMIT")
        engine.alerts.evaluate()
        wait_until(lambda: len(receiver.requests) == 3)
        status, resolved = receiver.requests[2]
        assert (status, resolved["event"], resolved["alert"]["state"]) == (200, "alert_resolved", "resolved")
    stats = admin.get(f"{ALERTS}/notifications").json()
    assert {k: stats[k] for k in ("sent_total", "retries_total", "failed_total", "dropped_total", "queued")} == {
        "sent_total": 2, "retries_total": 1, "failed_total": 0, "dropped_total": 0, "queued": 0}


def test_a_dead_webhook_never_blocks_evaluation(admin: TestClient, engine: Engine, clock: ManualClock,
                                                caplog: pytest.LogCaptureFixture) -> None:
    # a listener that never accepts: every POST hangs until the client's timeout
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        engine.alerts.notifier = WebhookNotifier(capacity=1, timeout=0.5, backoff=(0.01,))
        tune(admin, IDLE, threshold=5, webhook_url=f"http://127.0.0.1:{hole.getsockname()[1]}/hook")
        sessions = [idle_in_transaction(engine, f"user{i}") for i in range(4)]
        clock.advance(6)
        started = time.monotonic()
        engine.alerts.evaluate()
        assert time.monotonic() - started < 0.5
        assert {a["state"] for a in of_rule(admin, IDLE)} == {"firing"} and len(of_rule(admin, IDLE)) == 4
        stats = admin.get(f"{ALERTS}/notifications").json()
        # one in the worker, at most one queued; the rest dropped, counted and logged
        assert stats["dropped_total"] >= 2 and stats["capacity"] == 1
        assert any("webhook queue full" in r.getMessage() for r in caplog.records)
        wait_until(lambda: admin.get(f"{ALERTS}/notifications").json()["failed_total"] >= 1, timeout=10)
        last_error = admin.get(f"{ALERTS}/notifications").json()["last_error"]
        # the error first: schemathesis took a text beginning "http://host: [Errno ...]" for a link and crashed
        assert "Timeout" in last_error and not last_error.startswith("http")
        for s in sessions:
            s.close()


# -- the evaluator as a service ------------------------------------------------------------

def test_the_engine_evaluates_alerts_by_itself(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "live", EngineConfig(lock_timeout_ms=5000)).start()
    try:
        assert "alerts" in {s.name for s in engine.services}
        engine.auth.ensure_admin(ADMIN_PASSWORD)
        token = engine.auth.login("admin", ADMIN_PASSWORD, "tests").token
        engine.create_schema("sales")
        s = engine.connect("carol", "live")
        s.execute("CREATE TABLE sales.t(x)")
        with TestClient(create_app(engine), headers={"Authorization": f"Bearer {token}"}) as c:
            tune(c, IDLE, threshold=0.2)
            s.execute("BEGIN")
            s.execute("INSERT INTO sales.t VALUES (1)")
            alert = wait_until(lambda: next((a for a in of_rule(c, IDLE) if a["state"] == "firing"), None))
            assert alert["labels"]["session_id"] == str(s.id)
            s.execute("COMMIT")
            wait_until(lambda: of_rule(c, IDLE)[0]["state"] == "resolved")
    finally:
        engine.close()
