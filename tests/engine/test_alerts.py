"""The alert service on a ManualClock: each engine metric read from real activity, unknown metrics,
and the bounded history. Tests step the clock and call evaluate() themselves."""

from __future__ import annotations

import socket
import time

import pytest
from enginetest import ENDLESS_SQL, wait_for_state, wait_until

import engine.alerts as alerts_module
from engine import Engine, ManualClock, SessionState
from engine.alerts import Alert, AlertState
from engine.errors import QueryCanceled, SqlError


def of_rule(engine: Engine, rule_id: str) -> list[Alert]:
    return engine.alerts.alerts(rule_id=rule_id)


def state_of(engine: Engine, rule_id: str) -> AlertState:
    [alert] = of_rule(engine, rule_id)
    return alert.state


def test_a_long_running_statement(manual_engine: Engine, clock: ManualClock, background) -> None:
    s = manual_engine.connect("bob", "batch")
    run = background(s.execute, ENDLESS_SQL)
    wait_for_state(s, SessionState.ACTIVE)
    query_id, sql_id = s.info().current_query_id, s.info().sql_id
    clock.advance(299)
    manual_engine.alerts.evaluate()
    assert of_rule(manual_engine, "long_running_statement") == []
    clock.advance(101)
    manual_engine.alerts.evaluate()
    [alert] = of_rule(manual_engine, "long_running_statement")
    assert alert.state is AlertState.FIRING and alert.value == pytest.approx(400, abs=0.01)
    assert alert.description.startswith(f"session {s.id} (bob@batch) has been running query {query_id} for 400 s: "
                                        "WITH RECURSIVE c(x)")
    assert alert.description.endswith("(threshold: statement_seconds > 300 s)")
    assert {k: alert.labels[k] for k in ("session_id", "sql_id", "query_id")} == {
        "session_id": str(s.id), "sql_id": sql_id, "query_id": query_id}
    manual_engine.cancel(s.id, by="ops")
    assert isinstance(run.exception(), QueryCanceled)
    manual_engine.alerts.evaluate()
    assert state_of(manual_engine, "long_running_statement") is AlertState.RESOLVED


def test_a_blocked_session(manual_engine: Engine, clock: ManualClock, background) -> None:
    holder, waiter = manual_engine.connect("alice", "A"), manual_engine.connect("bob", "B")
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = 0 WHERE id = 1")
    run = background(waiter.execute, "UPDATE sales.orders SET amount = 1 WHERE id = 2")
    wait_for_state(waiter, SessionState.WAITING)
    clock.advance(31)
    manual_engine.alerts.evaluate()
    [alert] = of_rule(manual_engine, "blocked_session")
    info = waiter.info()
    assert alert.state is AlertState.FIRING
    assert alert.description == (f"session {waiter.id} (bob@B) has waited 31 s for {info.wait_event} (blocked by "
                                 f"session {holder.id}) running: UPDATE sales.orders SET amount = 1 WHERE id = 2 "
                                 "(threshold: lock_wait_seconds > 30 s)")
    assert (alert.labels["session_id"], alert.labels["blocking_session"]) == (str(waiter.id), str(holder.id))
    holder.execute("COMMIT")
    assert run.result().affected_rows == 1
    manual_engine.alerts.evaluate()
    assert state_of(manual_engine, "blocked_session") is AlertState.RESOLVED


def test_the_error_rate_over_the_last_minute(manual_engine: Engine, clock: ManualClock) -> None:
    manual_engine.alerts.update_rule("error_rate", "tests", threshold=2, for_seconds=0)
    manual_engine.alerts.evaluate()  # the first sample: no rate yet
    s = manual_engine.connect()
    for _ in range(3):
        with pytest.raises(SqlError):
            s.execute("SELECT * FROM no_such_table")
    clock.advance(30)
    manual_engine.alerts.evaluate()
    [alert] = of_rule(manual_engine, "error_rate")
    assert (alert.state, alert.value) == (AlertState.FIRING, 6.0)
    assert alert.description == ("3 statements failed in the last 30 s (6.0 per minute) "
                                 "(threshold: errors_per_minute > 2 per minute)")
    clock.advance(61)  # the failures fall out of the window
    manual_engine.alerts.evaluate()
    assert state_of(manual_engine, "error_rate") is AlertState.RESOLVED


def test_the_cache_hit_ratio_and_an_unknown_reading(manual_engine: Engine, clock: ManualClock) -> None:
    manual_engine.alerts.update_rule("cache_hit_ratio", "tests", threshold=1.01, for_seconds=0)
    stats = manual_engine.stats
    manual_engine.alerts.evaluate()
    hits0, misses0 = stats.cache_hits_total, stats.cache_misses_total
    s = manual_engine.connect()
    for _ in range(20):
        s.execute("SELECT sum(amount) FROM sales.orders")
    clock.advance(10)
    manual_engine.alerts.evaluate()
    hits, misses = stats.cache_hits_total - hits0, stats.cache_misses_total - misses0
    assert hits + misses > 0
    [alert] = of_rule(manual_engine, "cache_hit_ratio")
    assert (alert.state, alert.value) == (AlertState.FIRING, pytest.approx(hits / (hits + misses)))
    assert alert.description.startswith(f"page-cache hit ratio over the last 10 s is {hits / (hits + misses):.3f} "
                                        f"({hits} hits, {misses} misses)")
    # a minute without a page read: the ratio is unknown, and an unknown never resolves (nor fires) anything
    clock.advance(70)
    manual_engine.alerts.evaluate()
    clock.advance(1)
    manual_engine.alerts.evaluate()
    assert state_of(manual_engine, "cache_hit_ratio") is AlertState.FIRING


def test_disk_free_comes_from_the_host(manual_engine: Engine) -> None:
    manual_engine.alerts.update_rule("disk_free", "tests", operator=">=", threshold=0)
    manual_engine.alerts.evaluate()
    [alert] = of_rule(manual_engine, "disk_free")
    host = manual_engine.host.latest
    assert alert.value == host.disk_free_percent
    assert alert.description.startswith(f"the data directory's file system has {host.disk_free_percent:.1f} % free")


def test_a_rule_over_an_unknown_metric_never_fires_nor_resolves(manual_engine: Engine,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    service = manual_engine.alerts
    service.declare_metric("replica_lag_seconds", "s", "provided by a replication service")
    service.create_rule("tests", rule_id="lag", name="Replica lag", metric="replica_lag_seconds", operator=">",
                        threshold=10, category="Replication")
    assert not service.metric_available("replica_lag_seconds")
    service.evaluate()
    assert of_rule(manual_engine, "lag") == []  # declared, not registered: unknown
    lag: list[object] = [30.0]

    def replica_lag() -> float | None:
        if isinstance(lag[0], Exception):
            raise lag[0]
        return lag[0]  # type: ignore[return-value]

    service.register_metric("replica_lag_seconds", replica_lag)
    assert service.metric_available("replica_lag_seconds")
    service.evaluate()
    [alert] = of_rule(manual_engine, "lag")
    assert alert.state is AlertState.FIRING and alert.category.value == "Replication"
    assert alert.description == "replica_lag_seconds is 30 (threshold: replica_lag_seconds > 10 s)"
    for unknown in (None, float("nan"), RuntimeError("replica unreachable"), RuntimeError("replica unreachable")):
        lag[0] = unknown
        service.evaluate()
        assert state_of(manual_engine, "lag") is AlertState.FIRING
    assert sum("replica unreachable" in r.getMessage() for r in caplog.records) == 1  # logged once, not per pass
    lag[0] = 2.0
    service.evaluate()
    assert state_of(manual_engine, "lag") is AlertState.RESOLVED


def test_events_carry_copies(manual_engine: Engine) -> None:
    seen: list[Alert] = []
    manual_engine.events.subscribe("alert_fired", seen.append)
    manual_engine.alerts.create_rule("tests", rule_id="always", name="Always", metric="connections_percent",
                                     operator=">=", threshold=0)
    manual_engine.alerts.evaluate()
    [fired] = seen
    assert (fired.rule_id, fired.state, fired.occurrence_count) == ("always", AlertState.FIRING, 1)
    manual_engine.alerts.acknowledge(fired.alert_id, "ops")
    assert fired.state is AlertState.FIRING and not fired.acknowledged
    assert manual_engine.alerts.alert(fired.alert_id).state is AlertState.ACKNOWLEDGED


def test_the_history_is_bounded(manual_engine: Engine, clock: ManualClock) -> None:
    manual_engine.reconfigure(alert_history_size=10)
    manual_engine.alerts.update_rule("idle_in_transaction", "tests", threshold=1)
    sessions = [manual_engine.connect(f"user{i}") for i in range(12)]
    for s in sessions:
        s.execute("BEGIN")
        s.execute("SELECT 1 FROM sales.orders")
    clock.advance(2)
    manual_engine.alerts.evaluate()
    assert len(of_rule(manual_engine, "idle_in_transaction")) == 12  # open alerts are never dropped
    for s in sessions:
        s.execute("COMMIT")
    manual_engine.alerts.evaluate()
    kept = of_rule(manual_engine, "idle_in_transaction")
    assert len(kept) == 10 and {a.state for a in kept} == {AlertState.RESOLVED}
    assert {a.labels["username"] for a in kept} == {f"user{i}" for i in range(2, 12)}


def test_closing_the_engine_with_a_webhook_in_flight_is_prompt(manual_engine: Engine, clock: ManualClock) -> None:
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        notifier = manual_engine.alerts.notifier = alerts_module.WebhookNotifier(timeout=1.0, backoff=(30.0,))
        manual_engine.alerts.create_rule("tests", rule_id="always", name="Always", metric="connections_percent",
                                         operator=">=", threshold=0,
                                         webhook_url=f"http://127.0.0.1:{hole.getsockname()[1]}/")
        manual_engine.alerts.evaluate()
        wait_until(lambda: notifier.queued == 0, message="the worker to take the notification")
        started = time.monotonic()
        manual_engine.close()
        # at most the one attempt in flight; the 30 s backoff is not waited out
        assert time.monotonic() - started < 3.0
        assert notifier.sent_total == 0
