"""The demo workload: deterministic data, every trouble shape within seconds, and a clean stop."""

from __future__ import annotations

import _thread
import hashlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine import Engine, EngineConfig, SessionState
from engine.demo import (
    TABLES,
    DemoSchedule,
    DemoSummary,
    DemoWorkload,
    assign_roles,
    run_demo,
)

# Every shape within about two seconds; the forgotten transaction holds its lock well below the
# lock timeout, so the sessions behind it wait instead of giving up.
FAST = DemoSchedule(deadlock_first=0.3, deadlock_every=1.5, import_first=0.2, import_every=0.8,
                    forgotten_first=0.5, forgotten_every=3.0, forgotten_hold=2.0)
QUIET = DemoSchedule(deadlock_first=1e6, import_first=1e6, forgotten_first=0.1, forgotten_hold=1e6)
CONFIG = EngineConfig(deadlock_check_interval_ms=100, lock_timeout_ms=5000)
# how long a condition may take before the test calls it a hang: generous, as a loaded machine is slow
HANG_GUARD_SECONDS = 60.0
UNTIL_INTERRUPTED = 3600.0
CHECKOUT = Path(__file__).resolve().parent.parent


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def demo_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("demo-")]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """One engine with the demo data, shared by the tests that run the workload on it."""
    e = Engine(config=CONFIG).start()
    DemoWorkload(e).setup()
    yield e
    e.close()


def content_digest(engine: Engine) -> str:
    session = engine.connect("test")
    try:
        digest = hashlib.sha256()
        for table in TABLES:
            digest.update(repr(session.execute(f"SELECT * FROM {table} ORDER BY 1, 2").rows).encode())
        return digest.hexdigest()
    finally:
        session.close()


def test_roles_fill_the_sessions_most_telling_shapes_first() -> None:
    assert assign_roles(8) == ["oltp", "forgotten", "pair", "pair", "report", "import", "oltp", "oltp"]
    assert assign_roles(3) == ["oltp", "forgotten", "oltp"]  # half a deadlock pair would be useless
    with pytest.raises(ValueError):
        assign_roles(0)


def test_setup_loads_about_100k_rows_the_same_way_for_the_same_seed() -> None:
    digests, counts = [], []
    for seed in (42, 42, 43):
        with Engine() as e:
            workload = DemoWorkload(e, seed=seed)
            started = time.monotonic()
            counts.append(workload.setup())
            assert time.monotonic() - started < 5
            assert workload.setup() == counts[-1]  # idempotent: nothing loaded twice
            digests.append(content_digest(e))
    assert 95_000 <= sum(counts[0].values()) <= 105_000
    assert all(counts[0].values())
    assert counts[0] == counts[1] and digests[0] == digests[1]
    assert digests[0] != digests[2]


def test_every_shape_shows_up_and_stop_leaves_no_thread(engine: Engine) -> None:
    before = set(threading.enumerate())
    deadlocks_before = len(engine.locks.deadlocks)
    workload = DemoWorkload(engine, sessions=8, seed=7, schedule=FAST)
    workload.start()
    pair_sessions = {s.session_id for s in engine.sessions() if s.application_name == "deadlock-pair"}
    seen_blocking = False

    def forgotten_blocks_someone() -> bool:
        sessions = engine.sessions()
        idle = {s.session_id for s in sessions if s.state is SessionState.IDLE_IN_TRANSACTION
                and s.application_name == "batch-forgotten"}
        return any(s.state is SessionState.WAITING and idle & set(s.blocking_sessions) for s in sessions)

    def every_shape() -> bool:
        nonlocal seen_blocking
        seen_blocking = seen_blocking or forgotten_blocks_someone()
        c = workload.summary().counts
        pair_deadlock = any(pair_sessions & {p.session_id for p in d.participants}
                            for d in list(engine.locks.deadlocks)[deadlocks_before:])
        return (seen_blocking and c.most_blocked_behind_forgotten > 0 and pair_deadlock
                and c.oltp_transactions > 0 and c.reports > 0
                and c.slowest_report_ms > 50 and c.constraint_errors > 0 and c.import_batches > 0)

    try:
        assert wait_for(every_shape, timeout=30), workload.summary().table()
    finally:
        started = time.monotonic()
        workload.stop()
        stop_seconds = time.monotonic() - started
    assert stop_seconds < 2.5
    assert set(threading.enumerate()) == before
    assert not any(s.application_name in ("oltp", "report", "import") for s in engine.sessions())

    summary = workload.summary()
    assert summary.commits > 0 and summary.statements > summary.commits
    assert summary.deadlocks >= 1 and summary.lock_waits >= 1 and summary.errors >= 1
    assert summary.counts.forgotten_transactions >= 1
    assert summary.counts.other_errors == 0  # every error the engine raised was one the application expects
    table = summary.table()
    for label in ("statements", "commits", "rollbacks", "lock waits", "deadlocks", "lock timeouts", "errors"):
        assert f"\n{label} " in table
    assert workload.summary() == summary  # frozen once stopped


def test_stop_is_prompt_while_sessions_wait_and_workers_survive_lock_timeouts(engine: Engine) -> None:
    engine.reconfigure(lock_timeout_ms=300)
    workload = DemoWorkload(engine, sessions=6, seed=3, schedule=QUIET)
    try:
        workload.start()
        # the forgotten transaction never ends, so writers keep timing out behind it
        assert wait_for(lambda: workload.summary().counts.lock_timeouts >= 3, timeout=15)
        assert wait_for(lambda: any(s.state is SessionState.WAITING for s in engine.sessions()), timeout=5)
        assert len(demo_threads()) == 6
    finally:
        started = time.monotonic()
        workload.stop()
        stop_seconds = time.monotonic() - started
        engine.reconfigure(lock_timeout_ms=CONFIG.lock_timeout_ms)
    assert stop_seconds < 2.5
    assert demo_threads() == []
    summary = workload.summary()
    assert summary.lock_timeouts >= 3 and summary.counts.other_errors == 0


def test_workers_reconnect_when_an_operator_terminates_their_sessions(engine: Engine) -> None:
    workload = DemoWorkload(engine, sessions=6, seed=5, schedule=FAST)
    workload.start()
    try:
        first = {s.session_id for s in engine.sessions()}
        for session_id in first:
            engine.terminate(session_id, by="operator")
        done_before = workload.summary().counts.oltp_transactions

        def all_back() -> bool:
            ids = {s.session_id for s in engine.sessions()}
            return len(ids) == 6 and not ids & first
        assert wait_for(all_back, timeout=10)
        assert wait_for(lambda: workload.summary().counts.oltp_transactions > done_before, timeout=10)
        assert len(demo_threads()) == 6
    finally:
        workload.stop()
    assert workload.summary().counts.other_errors == 0


def test_run_demo_stops_cleanly_on_ctrl_c() -> None:
    pressed = threading.Event()

    def press_ctrl_c() -> None:
        if wait_for(lambda: len(demo_threads()) == 4, timeout=HANG_GUARD_SECONDS):
            pressed.set()
            _thread.interrupt_main()

    helper = threading.Thread(target=press_ctrl_c)
    helper.start()
    # only Ctrl-C can end a run this long: when it returns, the interrupt stopped it
    summary = run_demo(sessions=4, seed=1, seconds=UNTIL_INTERRUPTED, config=CONFIG, schedule=FAST)
    helper.join()
    assert pressed.is_set() and isinstance(summary, DemoSummary)
    assert summary.seconds < UNTIL_INTERRUPTED
    assert demo_threads() == []


def test_cli_demo_runs_and_prints_the_summary(tmp_path: Path) -> None:
    # this checkout's engine (the working directory comes first on sys.path), not whichever
    # rdbtop-engine is first on PATH
    done = subprocess.run([sys.executable, "-m", "engine.cli", "demo", "--seconds", "3", "--sessions", "4",
                           "--data", str(tmp_path)], cwd=CHECKOUT, check=False, capture_output=True, text=True,
                          timeout=HANG_GUARD_SECONDS)
    assert done.returncode == 0, done.stderr
    assert "demo workload: 4 sessions, seed 42" in done.stdout
    for label in ("statements", "commits", "rollbacks", "lock waits", "deadlocks", "lock timeouts", "errors"):
        assert f"\n{label} " in done.stdout
    assert (tmp_path / "schemas" / "sales.db").exists()
