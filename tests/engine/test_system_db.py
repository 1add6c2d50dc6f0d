"""system.db, the engine's own catalogue: several services write it through their own connections."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable

from engine import Engine
from engine.diagnostics import IncidentKind, IncidentSeverity


def test_concurrent_user_creates_succeed_while_alerts_and_incidents_are_written(
        make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(tables=False)
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn(write: Callable[[int], None]) -> None:
        n = 0
        while not stop.is_set():
            try:
                write(n)
            except BaseException as exc:  # handed to the test thread
                errors.append(exc)
                return
            n += 1

    def silence(n: int) -> None:
        s = engine.alerts.create_silence("test", labels={"n": str(n)}, duration_seconds=60)
        engine.alerts.delete_silence(s.silence_id, "test")

    def incident(n: int) -> None:
        engine.incidents.open(IncidentKind.DEADLOCK, IncidentSeverity.LOW, f"t{n}", "d", ["locks"], {})

    writers = [threading.Thread(target=churn, args=(w,)) for w in (silence, incident)]
    for t in writers:
        t.start()
    created: list[str] = []

    def create(i: int) -> None:
        try:
            created.append(engine.auth.create_user(f"user{i:02d}", "pw", ["monitor"], None, by="test").username)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    try:
        creators = [threading.Thread(target=create, args=(i,)) for i in range(16)]
        for t in creators:
            t.start()
        for t in creators:
            t.join(60)
    finally:
        stop.set()
        for t in writers:
            t.join(30)
    assert not errors, errors
    assert sorted(created) == [f"user{i:02d}" for i in range(16)]


def test_system_db_and_the_log_are_created_owner_only(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(tables=False)
    engine.auth.create_user("someone", "pw", ["monitor"], None, by="test")
    for name in ("system.db", "system.db-wal", "logs/engine.log"):
        path = engine.storage.data_dir / name
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, name
