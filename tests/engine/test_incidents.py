"""The incident service: the failure window, persistence in system.db across a restart, and its bound."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pytest

from engine import Engine, ManualClock
from engine.diagnostics import IncidentKind, IncidentStatus
from engine.errors import SqlError


def fail(engine: Engine, n: int, table: str = "sales.nosuch") -> None:
    session = engine.connect()
    try:
        for i in range(n):
            with pytest.raises(SqlError):
                session.execute(f"SELECT * FROM {table} WHERE id = {i}")
    finally:
        session.close()


def test_failures_count_only_within_the_window(manual_engine: Engine, clock: ManualClock) -> None:
    fail(manual_engine, 4)
    clock.advance(61)
    fail(manual_engine, 1)              # five failures, but not within 60 s
    assert manual_engine.incidents.incidents() == []
    fail(manual_engine, 3)
    assert manual_engine.incidents.incidents() == []   # four of the last five are within 60 s
    fail(manual_engine, 1)
    [incident] = manual_engine.incidents.incidents()
    assert incident.kind is IncidentKind.STATEMENT_FAILURES and incident.occurrence_count == 5
    assert incident.title.endswith("failed 5 times in 0 s")


def test_incidents_survive_a_restart(make_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    engine = make_engine(data_dir=data)
    fail(engine, 5)
    [opened] = engine.incidents.incidents()
    engine.incidents.update(opened.id, "ops", status=IncidentStatus.INVESTIGATING, assignee="ivy", note="on it")
    engine.close()

    again = make_engine(data_dir=data, tables=False)
    [restored] = again.incidents.incidents()
    assert (restored.id, restored.status, restored.assignee, restored.title) == (
        opened.id, IncidentStatus.INVESTIGATING, "ivy", opened.title)
    assert restored.evidence == again.incidents.get(opened.id).evidence and len(restored.evidence["occurrences"]) == 5
    assert [(c.by, c.field, c.new, c.note) for c in restored.history] == [
        ("ops", "status", "investigating", "on it"), ("ops", "assignee", "ivy", "on it")]
    fail(again, 2)                                      # still the same trouble: counted, not a new incident
    assert [(i.id, i.occurrence_count) for i in again.incidents.incidents()] == [(opened.id, 7)]
    fail(again, 5, table="inventory.nosuch")
    assert [i.id for i in again.incidents.incidents()] == [opened.id + 1, opened.id]


def test_memory_and_store_are_bounded(make_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    engine = make_engine(data_dir=data)
    engine.incidents.max_incidents = 3
    fail(engine, 5, "sales.t1")
    engine.incidents.update(1, "ops", status=IncidentStatus.RESOLVED)
    for n in (2, 3, 4, 5):
        fail(engine, 5, f"sales.t{n}")
    # the finished incident went first, then the oldest of the open ones
    assert [i.id for i in engine.incidents.incidents()] == [5, 4, 3]
    engine.close()
    again = make_engine(data_dir=data, tables=False)
    assert [i.id for i in again.incidents.incidents()] == [5, 4, 3]


def test_a_critical_alert_object_opens_one_incident_per_alert(engine: Engine) -> None:
    """The alert service publishes its own typed Alert; the fields are read by name, as that object has them."""

    class Severity(StrEnum):
        WARNING = "WARNING"
        CRITICAL = "CRITICAL"

    @dataclass
    class Alert:
        alert_id: str
        title: str
        severity: Severity
        category: str
        description: str

    engine.events.publish("alert_fired", Alert("a1", "Disk almost full", Severity.WARNING, "Capacity", "2 % free"))
    assert engine.incidents.incidents() == []
    engine.events.publish("alert_fired", Alert("a2", "Disk almost full", Severity.CRITICAL, "Capacity", "1 % free"))
    engine.events.publish("alert_fired", Alert("a2", "Disk almost full", Severity.CRITICAL, "Capacity", "0 % free"))
    [incident] = engine.incidents.incidents()
    assert (incident.kind, incident.title, incident.occurrence_count) == (
        IncidentKind.CRITICAL_ALERT, "Critical alert: Disk almost full", 2)
    assert incident.affected_components == ("Capacity",)
    assert [o["alert"]["description"] for o in incident.evidence["occurrences"]] == ["1 % free", "0 % free"]
