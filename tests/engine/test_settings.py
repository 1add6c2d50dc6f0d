"""The settings file, the engine's log handlers, service intervals, and maintenance at the engine level."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import Engine, EngineConfig, SessionState
from engine.config_store import ConfigFileError
from engine.engine import PeriodicService
from engine.errors import SqlError
from engine.maintenance import JobStatus
from enginetest import TEST_CONFIG, Background, wait_for_state, wait_until


@pytest.mark.parametrize(("text", "named"), [
    ("max_connections = 0\n", "bad setting max_connections in {path}: max_connections must be between 1 and 10000"),
    ('log_level = "loud"\n', "bad setting log_level in {path}: log_level must be one of"),
    ("buffer_pool_size = \"big\"\n", "bad setting buffer_pool_size in {path}: buffer_pool_size must be a positive"),
    ("max_conections = 10\n", "bad setting max_conections in {path}: Unknown configuration key: max_conections"),
    ("wal_enabled = false\n", "bad setting wal_enabled in {path}: wal_enabled cannot be false"),
    ("log_level = \n", "bad settings file {path}: "),
])
def test_a_bad_settings_file_stops_the_start(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "engine.toml"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as caught:
        Engine(tmp_path, config=EngineConfig(**TEST_CONFIG))
    assert caught.value.message.startswith(named.format(path=path)), caught.value.message
    assert caught.value.details["file"] == str(path)
    assert not logging.getLogger("engine").handlers or all(
        not str(getattr(h, "baseFilename", "")).startswith(str(tmp_path)) for h in logging.getLogger("engine").handlers)


def test_the_file_is_laid_over_the_engines_configuration(tmp_path: Path) -> None:
    (tmp_path / "engine.toml").write_text("query_timeout_secs = 7\nlog_level = \"debug\"\n")
    engine = Engine(tmp_path, config=EngineConfig(**{**TEST_CONFIG, "query_timeout_secs": 1.0}))
    try:
        assert engine.config.query_timeout_secs == 7.0 and engine.config.log_level == "debug"
        assert engine.config.lock_timeout_ms == TEST_CONFIG["lock_timeout_ms"]
        assert engine.settings.saved == {"query_timeout_secs": 7.0, "log_level": "debug"}
    finally:
        engine.close()


def _engine_handlers() -> list[logging.Handler]:
    return list(logging.getLogger("engine").handlers)


def test_log_handlers_come_and_go_with_the_engine() -> None:
    before, root = _engine_handlers(), logging.getLogger("engine")
    level_before = root.level
    first = Engine(config=EngineConfig(**TEST_CONFIG))
    second = Engine(config=EngineConfig(**TEST_CONFIG, log_level="debug"))
    try:
        assert len(_engine_handlers()) == len(before) + 4  # a ring and a file each
        assert root.level == logging.DEBUG  # the most verbose open engine decides what is passed on
        logging.getLogger("engine.tests").debug("only for the verbose one")
        assert any(e.message == "only for the verbose one" for e in second.logs.query())
        assert not any(e.message == "only for the verbose one" for e in first.logs.query())
        second.close()
        assert root.level == logging.INFO
    finally:
        first.close()
        second.close()
    assert _engine_handlers() == before and root.level == level_before
    logging.getLogger("engine.tests").warning("after the close")
    assert not any(e.message == "after the close" for e in first.logs.query())


def test_a_woken_service_ticks_and_goes_on_with_its_new_interval() -> None:
    interval = [60.0]
    ticked = threading.Event()
    service = PeriodicService("test", lambda: interval[0], ticked.set)
    service.start()
    try:
        interval[0] = 0.01
        assert not ticked.wait(0.2)  # still in its minute-long wait
        service.wake()
        wait_until(lambda: service.ticks >= 5)  # a tick at once, then every 10 ms
    finally:
        service.stop()
    assert not service.alive


def test_vacuum_takes_its_schemas_exclusive_lock(engine: Engine, background: Callable[..., Background]) -> None:
    writer = engine.connect("writer")
    writer.execute("BEGIN")
    writer.execute("INSERT INTO sales.orders(customer, amount) VALUES ('dave', 40)")
    vacuum_session = engine.connect("vacuum")
    vacuum = background(vacuum_session.execute, 'VACUUM "sales"')
    wait_for_state(vacuum_session, SessionState.WAITING)
    assert vacuum_session.wait_event == "schema:sales" and vacuum_session.blocking_sessions == (writer.id,)
    writer.execute("COMMIT")
    vacuum.join(5.0)
    assert vacuum.error is None
    # VACUUM's own scratch ATTACH is let through; a user's is not
    with pytest.raises(SqlError, match="not authorized"):
        vacuum_session.execute("ATTACH '' AS scratch")


def test_closing_the_engine_cancels_a_waiting_job(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine()
    writer = engine.connect("writer")
    writer.execute("BEGIN")
    writer.execute("INSERT INTO inventory.items(sku, qty) VALUES ('plum', 1)")
    job = engine.maintenance.submit("reindex", "inventory.items", by="tester")
    wait_until(lambda: job.status is JobStatus.WAITING)
    engine.close()
    assert job.status is JobStatus.CANCELED and job.canceled_by == "engine shutdown"
    assert job.thread is not None and not job.thread.is_alive()
