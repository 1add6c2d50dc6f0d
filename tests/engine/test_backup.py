"""Backups: consistent copies under load, incremental chains, verify, restore, schedule, retention."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import Engine, ManualClock, SessionState, backup_restore
from engine.backup_codec import KEY_ENV, KEY_FILE
from engine.backup_records import MANIFEST, BackupRecord, BackupStatus, BackupType, RestoreMode, RestoreRecord
from engine.backup_schedule import BackupSchedule
from engine.config import ALLOWED_DIRS_ENV
from engine.errors import Conflict, InvalidInput, InvalidRequest, LockTimeout, NotFound, SessionTerminated
from engine.storage import CommitGate, CommitPass
from enginetest import ENDLESS_SQL, wait_for_state, wait_until

FULL, INCREMENTAL, DIFFERENTIAL = BackupType.FULL, BackupType.INCREMENTAL, BackupType.DIFFERENTIAL
MARKER = "plaintext-marker-7c1d"


# -- helpers -----------------------------------------------------------------------------------

def finished(engine: Engine, backup_id: str) -> BackupRecord:
    return wait_until(lambda: (r := engine.backup.backup(backup_id)).finished and r, 15.0,
                      f"backup {backup_id} to finish")


def backup(engine: Engine, kind: BackupType = FULL, **options) -> BackupRecord:
    """Take a backup and wait for it; it must complete."""
    record = finished(engine, engine.backup.start_backup(kind, "tester", **options).backup_id)
    assert record.status is BackupStatus.COMPLETED, record.error_message
    return record


def restored(engine: Engine, backup_id: str, **options) -> RestoreRecord:
    restore = engine.backup.restore(backup_id, "tester", **options)
    done = wait_until(lambda: (r := engine.backup.restore_status(restore.restore_id)).completed_at and r, 15.0,
                      f"restore {restore.restore_id} to finish")
    return done


def restore_into(engine: Engine, backup_id: str, target: Path, **options) -> RestoreRecord:
    done = restored(engine, backup_id, target_database=str(target), **options)
    assert done.status is BackupStatus.COMPLETED, done.error_message
    return done


def table_rows(engine: Engine) -> dict[str, list[tuple]]:
    """Every table of every schema with its rows, as a new session sees them now."""
    s = engine.connect("check")
    try:
        out = {}
        for schema in engine.storage.files():
            for (table,) in s.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' "
                                      "AND name NOT LIKE 'sqlite_%' ORDER BY name").rows:
                out[f"{schema}.{table}"] = s.execute(f"SELECT * FROM {schema}.{table} ORDER BY 1").rows
        return out
    finally:
        s.close()


def rows_of(make_engine: Callable[..., Engine], data_dir: Path) -> dict[str, list[tuple]]:
    """A restored data directory's tables, read through an Engine opened on it."""
    restored_engine = make_engine(data_dir=data_dir, tables=False)
    try:
        return table_rows(restored_engine)
    finally:
        restored_engine.close()


def insert_orders(engine: Engine, *customers: str) -> None:
    s = engine.connect("writer")
    try:
        for c in customers:
            s.execute("INSERT INTO sales.orders(customer, amount) VALUES (?, 1)", (c,))
    finally:
        s.close()


def customers(rows: dict[str, list[tuple]]) -> list[str]:
    return [r[1] for r in rows["sales.orders"]]


def fill(engine: Engine, rows: int) -> None:
    """Enough pages that an incremental backup's few changed pages stand out."""
    s = engine.connect("filler")
    try:
        s.execute("CREATE TABLE sales.filler(id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        s.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                  "INSERT INTO sales.filler(body) SELECT printf('%0200d', i) FROM n", (rows,))
    finally:
        s.close()


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = base64.b64encode(bytes(range(32))).decode()
    monkeypatch.setenv(KEY_ENV, value)
    return value


@pytest.fixture(autouse=True)
def _no_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture(autouse=True)
def _the_tests_directory_is_allowed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Restores and destinations go to the test's own directory, as an operator would allow one."""
    monkeypatch.setenv(ALLOWED_DIRS_ENV, str(tmp_path))


# -- full backups under load -------------------------------------------------------------------

class Writer:
    """Inserts (name, seq) into sales.orders and inventory.items in one transaction, seq 1, 2, ...;
    `committed` is how many of its transactions have committed."""

    def __init__(self, engine: Engine, name: str, stop: threading.Event) -> None:
        self.engine, self.name, self.stop, self.committed = engine, name, stop, 0

    def run(self) -> None:
        s = self.engine.connect(self.name, "backup-test-writer")
        try:
            while not self.stop.is_set():
                seq = self.committed + 1
                try:
                    s.execute("BEGIN")
                    s.execute("INSERT INTO sales.orders(customer, amount) VALUES (?, ?)", (self.name, seq))
                    s.execute("INSERT INTO inventory.items(sku, qty) VALUES (?, ?)", (f"{self.name}-{seq}", seq))
                    s.execute("COMMIT")
                    self.committed = seq
                except LockTimeout:
                    if s.txn is not None:
                        s.execute("ROLLBACK")
        finally:
            s.close()


def test_a_full_backup_while_writers_run_restores_exactly_what_was_committed_at_its_snapshot(
        engine: Engine, make_engine, background, monkeypatch, tmp_path: Path) -> None:
    fill(engine, 2000)
    stop = threading.Event()
    writers = [Writer(engine, f"w{i}", stop) for i in range(3)]
    threads = [background(w.run) for w in writers]
    wait_until(lambda: all(w.committed >= 5 for w in writers), 10.0, "writers to commit")
    at_snapshot: dict[str, int] = {}
    progress = engine.backup._progress

    def hold_after_snapshot(record, done, total):  # type: ignore[no-untyped-def]
        if not at_snapshot:
            # the snapshot is fixed: the writers must go on committing while the backup copies
            at_snapshot.update((w.name, w.committed) for w in writers)
            wait_until(lambda: all(w.committed >= at_snapshot[w.name] + 5 for w in writers), 10.0,
                       "writers to commit while the backup copies")
        progress(record, done, total)

    monkeypatch.setattr(engine.backup, "_progress", hold_after_snapshot)
    before = {w.name: w.committed for w in writers}
    record = finished(engine, engine.backup.start_backup(FULL, "tester").backup_id)
    stop.set()
    for t in threads:
        t.result()
    assert record.status is BackupStatus.COMPLETED, record.error_message
    source = table_rows(engine)
    target = tmp_path / "restored"
    restore_into(engine, record.backup_id, target)
    copy = rows_of(make_engine, target)

    assert set(copy) == set(source) == {"sales.orders", "sales.filler", "inventory.items"}
    assert copy["sales.filler"] == source["sales.filler"]
    for w in writers:
        orders = [r for r in copy["sales.orders"] if r[1] == w.name]
        kept = len(orders)
        # each writer's transactions up to the snapshot, in order, none after it, none half (+1: a
        # commit the snapshot saw may not have been counted yet when the hook read the counters)
        assert before[w.name] <= kept <= at_snapshot[w.name] + 1 < w.committed
        assert [r[2] for r in orders] == list(range(1, kept + 1))
        assert orders == [r for r in source["sales.orders"] if r[1] == w.name][:kept]
        items = [r for r in copy["inventory.items"] if r[1].startswith(f"{w.name}-")]
        assert items == [r for r in source["inventory.items"] if r[1].startswith(f"{w.name}-")][:kept]
    seeded = [r for r in source["sales.orders"] if r[1] not in {w.name for w in writers}]
    assert [r for r in copy["sales.orders"] if r[1] not in {w.name for w in writers}] == seeded


ACCOUNTS, OPENING_BALANCE = 8, 1000


class Transfers:
    """Moves amounts between sales.account and inventory.account, both rows in one transaction,
    so the two schemas' balances always add up to the same total; `committed` counts transfers."""

    def __init__(self, engine: Engine, seed: int, stop: threading.Event) -> None:
        self.engine, self.seed, self.stop, self.committed = engine, seed, stop, 0
        self.random = random.Random(seed)

    def run(self) -> None:
        s = self.engine.connect(f"transfers-{self.seed}", "backup-test-transfers")
        try:
            while not self.stop.is_set():
                a, b = self.random.randrange(ACCOUNTS), self.random.randrange(ACCOUNTS)
                amount = self.random.randrange(-50, 50)  # either way, always locking sales first: no deadlocks
                try:
                    s.execute("BEGIN")
                    s.execute("UPDATE sales.account SET balance = balance - ? WHERE id = ?", (amount, a))
                    s.execute("UPDATE inventory.account SET balance = balance + ? WHERE id = ?", (amount, b))
                    s.execute("COMMIT")
                    self.committed += 1
                except LockTimeout:
                    if s.txn is not None:
                        s.execute("ROLLBACK")
        finally:
            s.close()


def ledger_total(rows: dict[str, list[tuple]]) -> int:
    return sum(balance for schema in ("sales", "inventory") for _, balance in rows[f"{schema}.account"])


def open_accounts(engine: Engine) -> None:
    engine.create_schema("archive")
    s = engine.connect("setup")
    try:
        for schema in ("sales", "inventory"):
            s.execute(f"CREATE TABLE {schema}.account(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
            s.execute(f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                      f"INSERT INTO {schema}.account(id, balance) SELECT i, ? FROM n", (ACCOUNTS - 1, OPENING_BALANCE))
        s.execute("CREATE TABLE archive.notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        s.execute("INSERT INTO archive.notes(body) VALUES ('committed')")
    finally:
        s.close()


def test_a_full_backup_under_cross_schema_transfers_and_a_long_writer_restores_a_balanced_ledger(
        make_engine, background, monkeypatch, tmp_path: Path) -> None:
    engine = make_engine(lock_timeout_ms=200)
    open_accounts(engine)
    long_writer = engine.connect("long-writer")  # holds schema archive's write lock through the whole backup
    long_writer.execute("BEGIN")
    long_writer.execute("UPDATE archive.notes SET body = 'not committed'")
    stop = threading.Event()
    transfers = [Transfers(engine, seed, stop) for seed in (1, 2, 3)]
    threads = [background(t.run) for t in transfers]
    wait_until(lambda: all(t.committed >= 5 for t in transfers), 10.0, "transfers to commit")
    progress, during = engine.backup._progress, {}

    def transfers_go_on_while_the_backup_copies(record, done, total):  # type: ignore[no-untyped-def]
        if not during:
            during.update((id(t), t.committed) for t in transfers)
            wait_until(lambda: all(t.committed >= during[id(t)] + 5 for t in transfers), 10.0,
                       "transfers to commit while the backup copies")
        progress(record, done, total)

    monkeypatch.setattr(engine.backup, "_progress", transfers_go_on_while_the_backup_copies)
    gate, open_connection, opened = engine.storage.commits, engine.storage.open_connection, {}

    def between_the_two_ledger_schemas(cursor, sql: str, bindings) -> bool:  # type: ignore[no-untyped-def]
        # inventory's snapshot is fixed, sales' not yet: a transfer that committed now would be half
        # in the copy. So wait here until one has come to commit (and was held back) or committed.
        if '"sales".sqlite_master' in sql and not opened:
            opened["committed"] = sum(t.committed for t in transfers)
            wait_until(lambda: gate.held_back or sum(t.committed for t in transfers) > opened["committed"] + 2,
                       10.0, "a transfer to come to commit")
        return True

    def open_with_a_pause(cache_pages: int):  # type: ignore[no-untyped-def]
        conn = open_connection(cache_pages)
        conn.exec_trace = between_the_two_ledger_schemas  # a session replaces it with its own
        return conn

    monkeypatch.setattr(engine.storage, "open_connection", open_with_a_pause)
    record = finished(engine, engine.backup.start_backup(FULL, "tester").backup_id)
    stop.set()
    for t in threads:
        t.result()
    long_writer.execute("COMMIT")
    long_writer.close()
    assert record.status is BackupStatus.COMPLETED, record.error_message
    restore_into(engine, record.backup_id, tmp_path / "restored")
    copy = rows_of(make_engine, tmp_path / "restored")
    live = table_rows(engine)
    assert ledger_total(copy) == ledger_total(live) == 2 * ACCOUNTS * OPENING_BALANCE
    assert copy["sales.account"] != live["sales.account"]  # transfers went on after the snapshot
    assert copy["archive.notes"] == [(1, "committed")] and live["archive.notes"] == [(1, "not committed")]


def test_a_backup_waits_for_no_lock_and_holds_none(engine: Engine, make_engine, tmp_path: Path) -> None:
    holder = engine.connect("holder")
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = 99 WHERE customer = 'alice'")
    record = finished(engine, engine.backup.start_backup(FULL, "tester").backup_id)
    assert record.status is BackupStatus.COMPLETED, record.error_message
    holder.execute("COMMIT")
    holder.close()
    assert not [lk for lk in engine.locks.locks() if lk.session_id != holder.id]
    restore_into(engine, record.backup_id, tmp_path / "r")
    assert rows_of(make_engine, tmp_path / "r")["sales.orders"][0] == (1, "alice", 10.0)  # what was committed


def test_the_commit_gate_holds_commits_back_only_while_shut_and_waits_for_one_under_way(background) -> None:
    gate = CommitGate()
    under_way, next_one = CommitPass(gate), CommitPass(gate)
    assert under_way() is False  # SQLite's commit hook: the commit goes ahead
    with gate.shut(0.01) as quiet:
        assert not quiet  # it did not leave in time: the moment is not to be used
    under_way.leave()
    with gate.shut(10.0) as quiet:
        assert quiet
        committing = background(next_one)
        wait_until(lambda: gate.held_back == 1, message="the next commit to wait at the gate")
        assert not committing.done
    assert committing.result() is False and gate.held_back == 0 and gate.held_back_total == 1
    next_one.leave()
    with gate.shut(10.0) as quiet:
        assert quiet


def test_a_full_backup_records_real_sizes_checksums_and_times(engine: Engine) -> None:
    fill(engine, 500)
    record = backup(engine, description="nightly", compression=False)
    assert record.backup_type is FULL and record.base_backup_id == record.backup_id
    assert record.description == "nightly" and record.requested_by == "tester"
    assert {f.schema for f in record.files} == {"main", "sales", "inventory"}
    for f in record.files:
        stored = record.directory / f.file
        assert f.stored_bytes == stored.stat().st_size == f.database_bytes == f.page_size * f.page_count
        assert f.pages_stored == f.page_count
    assert record.bytes_done == record.bytes_total == sum(f.database_bytes for f in record.files)
    assert record.started_at <= record.snapshot_at <= record.completed_at and record.duration_ms > 0
    manifest = json.loads((record.directory / MANIFEST).read_text())
    assert manifest["status"] == "completed" and manifest["files"][0]["sha256"] == record.files[0].sha256
    assert manifest["engine_version"] == record.engine_version and manifest["description"] == "nightly"


# -- incremental chains ------------------------------------------------------------------------

def test_an_incremental_backup_holds_only_the_changed_pages(engine: Engine) -> None:
    fill(engine, 3000)
    full = backup(engine)
    s = engine.connect()
    s.execute("UPDATE sales.filler SET body = 'changed' WHERE id = 1500")
    s.close()
    inc = backup(engine, INCREMENTAL)
    assert (inc.parent_backup_id, inc.base_backup_id) == (full.backup_id, full.backup_id)
    pages = {f.schema: f for f in inc.files}
    sales_full = next(f for f in full.files if f.schema == "sales")
    assert 1 <= pages["sales"].pages_stored <= 3 < sales_full.page_count
    assert pages["inventory"].pages_stored == 0 and pages["main"].pages_stored == 0
    assert inc.content_bytes < sales_full.database_bytes / 10


def test_an_incremental_chain_restored_to_a_point_in_time_holds_exactly_the_rows_committed_before_it(
        make_engine, clock: ManualClock, tmp_path: Path) -> None:
    engine = make_engine(clock=clock, start=False, query_timeout_secs=0.0)
    full = backup(engine)
    insert_orders(engine, "after-full")
    clock.advance(60)
    inc1 = backup(engine, INCREMENTAL)
    clock.advance(60)
    insert_orders(engine, "after-inc1")
    clock.advance(60)
    inc2 = backup(engine, INCREMENTAL)
    insert_orders(engine, "after-inc2")
    assert (inc1.parent_backup_id, inc2.parent_backup_id) == (full.backup_id, inc1.backup_id)
    assert full.snapshot_at < inc1.snapshot_at < inc2.snapshot_at

    between = restore_into(engine, full.backup_id, tmp_path / "t1", point_in_time=inc1.snapshot_at + 30)
    assert between.backups_applied == [full.backup_id, inc1.backup_id]
    assert between.restored_to == inc1.snapshot_at
    assert customers(rows_of(make_engine, tmp_path / "t1")) == ["alice", "bob", "carol", "after-full"]

    latest = restore_into(engine, inc2.backup_id, tmp_path / "t2")
    assert latest.backups_applied == [full.backup_id, inc1.backup_id, inc2.backup_id]
    assert customers(rows_of(make_engine, tmp_path / "t2")) == ["alice", "bob", "carol", "after-full", "after-inc1"]

    with pytest.raises(Conflict, match="before the first backup"):
        engine.backup.restore(inc2.backup_id, "tester", target_database=str(tmp_path / "t3"),
                              point_in_time=full.snapshot_at - 1)


def test_point_in_time_names_whole_seconds_so_a_backups_own_snapshot_time_restores_it(
        make_engine, clock: ManualClock, tmp_path: Path) -> None:
    engine = make_engine(clock=clock, start=False, query_timeout_secs=0.0)
    clock.advance(0.75)  # the API shows snapshot_time floored to whole seconds
    full = backup(engine)
    shown = int(full.snapshot_at)
    assert shown < full.snapshot_at
    at = restore_into(engine, full.backup_id, tmp_path / "at", point_in_time=shown)
    assert at.backups_applied == [full.backup_id]
    with pytest.raises(Conflict, match=f"point_in_time {shown - 1} is before the first backup"):
        engine.backup.restore(full.backup_id, "tester", verify_only=True, point_in_time=shown - 1)


def test_a_differential_backup_builds_on_the_full_one_and_covers_everything_since(
        engine: Engine, make_engine, tmp_path: Path) -> None:
    full = backup(engine)
    insert_orders(engine, "one")
    inc = backup(engine, INCREMENTAL)
    insert_orders(engine, "two")
    diff = backup(engine, DIFFERENTIAL)
    assert diff.parent_backup_id == full.backup_id != inc.backup_id
    assert restore_into(engine, diff.backup_id, tmp_path / "d").backups_applied == [full.backup_id, diff.backup_id]
    assert customers(rows_of(make_engine, tmp_path / "d"))[-2:] == ["one", "two"]


def test_a_schema_created_after_the_full_backup_comes_back_from_the_incremental(
        engine: Engine, make_engine, tmp_path: Path) -> None:
    backup(engine)
    engine.create_schema("audit")
    s = engine.connect()
    s.execute("CREATE TABLE audit.events(id INTEGER PRIMARY KEY, what TEXT)")
    s.execute("INSERT INTO audit.events(what) VALUES ('created later')")
    s.close()
    inc = backup(engine, INCREMENTAL)
    restore_into(engine, inc.backup_id, tmp_path / "r")
    assert rows_of(make_engine, tmp_path / "r")["audit.events"] == [(1, "created later")]


def test_an_incremental_backup_needs_a_full_one(engine: Engine) -> None:
    with pytest.raises(Conflict, match="needs a full backup"):
        engine.backup.start_backup(INCREMENTAL, "tester")


# -- verify ------------------------------------------------------------------------------------

def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    data[offset + 1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_verify_passes_a_sound_backup_and_fails_a_corrupted_file_with_the_reason(
        engine: Engine, tmp_path: Path) -> None:
    fill(engine, 500)
    record = backup(engine, compression=False)
    good = engine.backup.verify(record.backup_id, "tester")
    assert (good.status, good.errors) == ("passed", [])
    assert good.integrity == {"main": "ok", "sales": "ok", "inventory": "ok"}
    assert all(f.checksum_ok for f in good.files) and len(good.files) == 6

    sales = next(f for f in record.files if f.schema == "sales")
    flip(record.directory / sales.file, sales.database_bytes // 2)
    bad = engine.backup.verify(record.backup_id, "tester")
    assert bad.status == "failed"
    assert [f.file for f in bad.files if not f.checksum_ok] == [sales.file]
    assert len(bad.errors) == 1 and sales.file in bad.errors[0] and "checksum mismatch" in bad.errors[0]
    assert engine.backup.backup(record.backup_id).verification["status"] == "failed"

    # a restore of the damaged backup fails too, and says why
    failed = restored(engine, record.backup_id, target_database=str(tmp_path / "r"))
    assert failed.status is BackupStatus.FAILED and "sales" in failed.error_message


def test_verify_reports_a_missing_file_of_the_chain(engine: Engine) -> None:
    full = backup(engine)
    insert_orders(engine, "x")
    inc = backup(engine, INCREMENTAL)
    inventory = next(f for f in full.files if f.schema == "inventory")
    (full.directory / inventory.file).unlink()
    result = engine.backup.verify(inc.backup_id, "tester")
    assert result.status == "failed" and result.backups_checked == [full.backup_id, inc.backup_id]
    assert result.errors == [f"{full.backup_id}/{inventory.file}: missing"]


def test_verify_only_restores_to_a_scratch_directory_and_checks(engine: Engine) -> None:
    record = backup(engine)
    done = restored(engine, record.backup_id, verify_only=True)
    assert done.status is BackupStatus.COMPLETED and done.mode is RestoreMode.VERIFY_ONLY
    assert done.integrity == {"main": "ok", "sales": "ok", "inventory": "ok"}
    assert not list(record.directory.parent.glob(".restore-*"))


# -- compression and encryption ----------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["gzip", "zstd"])
def test_compressed_and_encrypted_backups_round_trip_and_hide_the_rows(
        engine: Engine, make_engine, key: str, tmp_path: Path, algorithm: str) -> None:
    insert_orders(engine, MARKER)
    fill(engine, 300)
    plain = backup(engine, compression=False, encryption=False)
    assert any(MARKER.encode() in (plain.directory / f.file).read_bytes() for f in plain.files)
    sealed = backup(engine, compression=True, compression_algorithm=algorithm, encryption=True)
    assert sealed.encrypted and sealed.key_id and sealed.compression == algorithm
    for f in sealed.files:
        data = (sealed.directory / f.file).read_bytes()
        assert MARKER.encode() not in data and b"SQLite format 3" not in data
        assert f.file.endswith(".enc") and f.stored_bytes == len(data)
    assert sealed.stored_bytes < sealed.content_bytes  # compressed before it was encrypted
    restore_into(engine, sealed.backup_id, tmp_path / "r")
    assert rows_of(make_engine, tmp_path / "r") == table_rows(engine)
    assert engine.backup.verify(sealed.backup_id, "tester").status == "passed"


def test_an_encrypted_backup_cannot_be_read_with_another_key(engine: Engine, key: str, monkeypatch) -> None:
    record = backup(engine, encryption=True)
    monkeypatch.setenv(KEY_ENV, base64.b64encode(b"\x01" * 32).decode())
    result = engine.backup.verify(record.backup_id, "tester")
    assert result.status == "failed" and "was encrypted with key" in result.errors[0]
    assert record.key_id in result.errors[0]


def test_encryption_without_a_key_is_refused_not_ignored(engine: Engine) -> None:
    with pytest.raises(Conflict, match="encryption needs a backup key") as caught:
        engine.backup.start_backup(FULL, "tester", encryption=True)
    assert caught.value.details == {"field": "encryption"}
    assert engine.backup.backups() == []


def test_the_key_may_come_from_a_file_in_the_data_directory(engine: Engine) -> None:
    (engine.storage.data_dir / KEY_FILE).write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    assert backup(engine, encryption=True).encrypted
    (engine.storage.data_dir / KEY_FILE).write_text("not base64 of 32 bytes")
    with pytest.raises(InvalidInput, match="must be base64 of exactly 32 bytes"):
        engine.backup.start_backup(FULL, "tester", encryption=True)


# -- restore in place --------------------------------------------------------------------------

def test_restore_in_place_terminates_every_session_and_brings_the_data_back(engine: Engine, background) -> None:
    record = backup(engine)
    before = table_rows(engine)
    idle, in_txn, running = engine.connect("idle"), engine.connect("in-txn"), engine.connect("running")
    insert_orders(engine, "after the backup")
    in_txn.execute("BEGIN")
    in_txn.execute("UPDATE inventory.items SET qty = 0")
    run = background(running.execute, ENDLESS_SQL)
    wait_for_state(running, SessionState.ACTIVE)

    done = restored(engine, record.backup_id, overwrite_existing=True)
    assert done.status is BackupStatus.COMPLETED, done.error_message
    assert done.mode is RestoreMode.IN_PLACE and done.terminated_sessions == 3
    assert isinstance(run.exception(), SessionTerminated)
    for s in (idle, in_txn):
        with pytest.raises(SessionTerminated, match="terminated by tester"):
            s.execute("SELECT 1")
    assert table_rows(engine) == before
    assert engine.backup.verify(record.backup_id, "tester").status == "passed"


def test_restore_needs_a_place_and_a_completed_backup(engine: Engine, tmp_path: Path) -> None:
    record = backup(engine)
    with pytest.raises(InvalidInput, match="say where to restore"):
        engine.backup.restore(record.backup_id, "tester")
    with pytest.raises(InvalidInput, match="absolute path"):
        engine.backup.restore(record.backup_id, "tester", target_database="relative/dir")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(InvalidInput, match="empty directory"):
        engine.backup.restore(record.backup_id, "tester", target_database=str(tmp_path / "busy"))
    with pytest.raises(Conflict, match="live data directory"):
        engine.backup.restore(record.backup_id, "tester", target_database=str(engine.storage.data_dir))
    with pytest.raises(NotFound, match="Backup 'backup_nope' not found"):
        engine.backup.restore("backup_nope", "tester", verify_only=True)


def live_rows(engine: Engine) -> int:
    return len(table_rows(engine)["sales.orders"])


def test_a_restore_never_writes_over_the_live_data_directory_by_another_name(
        engine: Engine, tmp_path: Path) -> None:
    record = backup(engine)
    insert_orders(engine, "after the backup")
    before = table_rows(engine)
    live = engine.storage.data_dir
    alias = tmp_path / "alias"
    alias.symlink_to(live, target_is_directory=True)
    inside = tmp_path / "inside"  # a new directory whose schemas folder is the live one
    inside.mkdir()
    (inside / "schemas").symlink_to(live / "schemas", target_is_directory=True)
    linked = tmp_path / "linked"  # an existing directory holding a hard link to a live schema file
    linked.mkdir()
    (linked / "schemas").mkdir()
    os.link(engine.storage.files()["sales"], linked / "schemas" / "sales.db")
    for target, overwrite in ((alias, False), (inside, False), (inside, True), (linked, True),
                              (live / "schemas", True), (live / "backups" / "..", False)):
        with pytest.raises(Conflict, match="live data directory") as refused:
            engine.backup.restore(record.backup_id, "tester", target_database=str(target),
                                  overwrite_existing=overwrite)
        assert refused.value.details == {"field": "target_database"}, target
    assert table_rows(engine) == before
    assert engine.backup.restores() == []


def test_the_live_data_directory_by_another_name_is_checked_again_when_the_restore_runs(
        engine: Engine, tmp_path: Path, monkeypatch) -> None:
    record = backup(engine)
    insert_orders(engine, "after the backup")
    before = table_rows(engine)
    target = tmp_path / "swapped"
    materialize = backup_restore.materialize

    def swap_then_materialize(*args, **kwargs):  # type: ignore[no-untyped-def]
        target.symlink_to(engine.storage.data_dir, target_is_directory=True)  # after the request was accepted
        return materialize(*args, **kwargs)

    monkeypatch.setattr("engine.backup.materialize", swap_then_materialize)
    done = restored(engine, record.backup_id, target_database=str(target))
    assert done.status is BackupStatus.FAILED and "live data directory" in (done.error_message or "")
    assert table_rows(engine) == before


def test_a_restore_through_a_symlinked_data_directory_is_in_place_only_when_asked(
        make_engine, tmp_path: Path) -> None:
    real = tmp_path / "real"
    link = tmp_path / "data"
    real.mkdir()
    link.symlink_to(real, target_is_directory=True)
    engine = make_engine(data_dir=link)
    record = backup(engine)
    insert_orders(engine, "after the backup")
    for target in (link, real):
        with pytest.raises(Conflict, match="live data directory"):
            engine.backup.restore(record.backup_id, "tester", target_database=str(target))
    assert live_rows(engine) == 4
    done = restored(engine, record.backup_id, target_database=str(real), overwrite_existing=True)
    assert done.status is BackupStatus.COMPLETED and done.mode is RestoreMode.IN_PLACE, done.error_message
    assert live_rows(engine) == 3


@pytest.mark.parametrize("bad", ["nul\0byte", "newline\nin-name", "lone-\udc80-surrogate"])
def test_a_target_with_bytes_no_file_name_may_hold_is_refused_at_once(engine: Engine, tmp_path: Path,
                                                                       bad: str) -> None:
    record = backup(engine)
    with pytest.raises(InvalidInput, match="target_database must be"):
        engine.backup.restore(record.backup_id, "tester", target_database=f"{tmp_path}/{bad}")
    assert engine.backup.restores() == [] and list(tmp_path.iterdir()) == []


def test_a_failed_restore_leaves_no_half_made_files(engine: Engine, tmp_path: Path) -> None:
    record = backup(engine)
    stored = record.directory / next(f.file for f in record.files if f.schema == "sales")
    flip(stored, stored.stat().st_size // 2)
    empty = tmp_path / "empty"
    empty.mkdir()
    for target in (tmp_path / "new", empty):
        done = restored(engine, record.backup_id, target_database=str(target))
        assert done.status is BackupStatus.FAILED, done
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert list(empty.iterdir()) == []


# -- failures, events and metrics ----------------------------------------------------------------

def test_a_failed_backup_is_recorded_published_and_counted(engine: Engine) -> None:
    events: list[tuple[str, BackupRecord]] = []
    for topic in ("backup_completed", "backup_failed"):
        engine.events.subscribe(topic, lambda r, topic=topic: events.append((topic, r)))
    assert engine.backup.metrics() == {"backup_age_hours": None, "backup_failed": 0.0}
    full = backup(engine)
    wait_until(lambda: events, message="the backup_completed event")
    assert events == [("backup_completed", full)]
    assert engine.backup.metrics()["backup_age_hours"] < 0.01 and engine.backup.backup_failed() == 0.0

    for f in full.files:
        (full.directory / f.digests_file).unlink()
    failed = finished(engine, engine.backup.start_backup(INCREMENTAL, "tester").backup_id)
    assert failed.status is BackupStatus.FAILED
    assert f"page digests of backup {full.backup_id}" in failed.error_message
    assert failed.files == [] and [p.name for p in failed.directory.iterdir()] == [MANIFEST]
    wait_until(lambda: len(events) == 2, message="the backup_failed event")
    assert events[-1] == ("backup_failed", failed)
    assert engine.backup.backup_failed() == 1.0
    assert {m.name: m.available for m in engine.alerts.metrics()}.keys() >= {"backup_age_hours", "backup_failed"}
    assert all(m.available for m in engine.alerts.metrics() if m.name.startswith("backup_"))
    with pytest.raises(Conflict, match="Cannot restore from incomplete backup"):
        engine.backup.restore(failed.backup_id, "tester", verify_only=True)


def test_closing_the_engine_stops_a_running_backup(make_engine, tmp_path: Path, monkeypatch) -> None:
    engine = make_engine(data_dir=tmp_path / "data")
    progress = engine.backup._progress
    closing = threading.Event()

    def wait_for_close(record, done, total):  # type: ignore[no-untyped-def]
        closing.set()
        wait_until(lambda: engine.backup._signal.event.is_set(), 10.0, "close to stop the backup")
        progress(record, done, total)

    monkeypatch.setattr(engine.backup, "_progress", wait_for_close)
    started = engine.backup.start_backup(FULL, "tester")
    closing.wait(10.0)
    engine.close()
    again = make_engine(data_dir=tmp_path / "data", tables=False)
    record = again.backup.backup(started.backup_id)
    assert record.status is BackupStatus.FAILED and record.error_message == "the engine is shutting down"


# -- persistence -------------------------------------------------------------------------------

def test_backups_and_the_schedule_persist_across_a_restart(make_engine, tmp_path: Path) -> None:
    engine = make_engine(data_dir=tmp_path / "data")
    full = backup(engine)
    insert_orders(engine, "dave")
    inc = backup(engine, INCREMENTAL)
    schedule = BackupSchedule(enabled=True, full_backup_cron="0 3 * * *", incremental_backup_cron="0 * * * *",
                              retention_days=7, compression=False, destination=str(tmp_path / "data" / "backups"))
    engine.backup.set_schedule(schedule, "tester")
    interrupted = backup(engine, INCREMENTAL)
    manifest = interrupted.directory / MANIFEST
    manifest.write_text(manifest.read_text().replace('"completed"', '"in_progress"'))
    engine.close()

    again = make_engine(data_dir=tmp_path / "data", tables=False)
    assert again.backup.schedule() == schedule
    assert again.backup.backup(full.backup_id).files == full.files
    assert again.backup.backup(inc.backup_id).status is BackupStatus.COMPLETED
    lost = again.backup.backup(interrupted.backup_id)
    assert lost.status is BackupStatus.FAILED and "interrupted" in lost.error_message
    restore_into(again, inc.backup_id, tmp_path / "restored")
    assert customers(rows_of(make_engine, tmp_path / "restored"))[-1] == "dave"


# -- deleting, retention -----------------------------------------------------------------------

def test_delete_refuses_a_backup_others_build_on(engine: Engine) -> None:
    full = backup(engine)
    inc = backup(engine, INCREMENTAL)
    with pytest.raises(Conflict, match=f"is the base of {inc.backup_id}"):
        engine.backup.delete(full.backup_id, "tester")
    engine.backup.delete(inc.backup_id, "tester")
    engine.backup.delete(full.backup_id, "tester")
    assert engine.backup.backups() == [] and not full.directory.exists()
    with pytest.raises(NotFound):
        engine.backup.delete(full.backup_id, "tester")


def test_retention_deletes_old_backups_but_never_what_a_kept_one_needs_nor_the_newest_full(
        make_engine, clock: ManualClock) -> None:
    engine = make_engine(clock=clock, start=False, query_timeout_secs=0.0)
    old_full = backup(engine, retention_days=1)
    clock.advance(60)
    old_inc = backup(engine, INCREMENTAL, retention_days=1)
    clock.advance(3600)
    full = backup(engine, retention_days=1)
    clock.advance(60)
    kept_inc = backup(engine, INCREMENTAL, retention_days=30)
    clock.advance(2 * 86400)
    assert engine.backup.apply_retention() == [old_full.backup_id, old_inc.backup_id]
    assert [r.backup_id for r in engine.backup.backups()] == [kept_inc.backup_id, full.backup_id]
    assert not old_full.directory.exists() and full.directory.exists()
    engine.backup.delete(kept_inc.backup_id, "tester")
    assert engine.backup.apply_retention() == []  # expired, but the only full backup left
    assert [r.backup_id for r in engine.backup.backups()] == [full.backup_id]


# -- the schedule ------------------------------------------------------------------------------

def test_the_schedule_runs_each_cron_when_its_time_has_passed(make_engine, clock: ManualClock) -> None:
    engine = make_engine(clock=clock, start=False, query_timeout_secs=0.0)  # 2023-11-14 22:13:20 UTC
    engine.backup.set_schedule(BackupSchedule(enabled=True, full_backup_cron="0 * * * *",
                                              incremental_backup_cron="*/10 * * * *", retention_days=3,
                                              compression=True, destination=str(engine.backup.default_destination)),
                               "tester")
    assert engine.backup.check_schedule() is None
    clock.advance(400)  # 22:20: an incremental is due, and there is no full backup to build on yet
    first = engine.backup.check_schedule()
    assert first.backup_type is FULL and first.requested_by == "scheduler"
    assert finished(engine, first.backup_id).status is BackupStatus.COMPLETED
    assert engine.backup.check_schedule() is None
    clock.advance(600)  # 22:30
    second = engine.backup.check_schedule()
    assert second.backup_type is INCREMENTAL and second.retention_days == 3
    finished(engine, second.backup_id)
    clock.advance(1800)  # 23:00: both are due; the full one wins
    third = engine.backup.check_schedule()
    assert third.backup_type is FULL
    finished(engine, third.backup_id)
    engine.backup.set_schedule(dataclasses.replace(engine.backup.schedule(), enabled=False), "tester")
    clock.advance(3600)
    assert engine.backup.check_schedule() is None


def test_a_scheduled_backup_that_cannot_start_is_a_failed_backup(make_engine, clock: ManualClock, key,
                                                                 monkeypatch) -> None:
    engine = make_engine(clock=clock, start=False, query_timeout_secs=0.0)
    engine.backup.set_schedule(BackupSchedule(enabled=True, full_backup_cron="0 * * * *", encryption=True,
                                              destination=str(engine.backup.default_destination)), "tester")
    monkeypatch.delenv(KEY_ENV)  # the key went away after the schedule was set
    clock.advance(3600)
    record = engine.backup.check_schedule()
    assert record.status is BackupStatus.FAILED and "encryption needs a backup key" in record.error_message
    assert engine.backup.backup_failed() == 1.0


def test_a_bad_schedule_is_refused_naming_the_field(engine: Engine, tmp_path: Path) -> None:
    good = dict(enabled=True, destination=str(tmp_path))
    for changes, field in (({"full_backup_cron": "61 * * * *"}, "full_backup_cron"),
                           ({"incremental_backup_cron": "* * * * * *"}, "incremental_backup_cron"),
                           ({"retention_days": 0}, "retention_days"),
                           ({"destination": "relative"}, "destination"),
                           ({"destination": str(tmp_path / "missing")}, "destination"),
                           ({"encryption": True}, "encryption")):
        with pytest.raises((InvalidInput, NotFound, Conflict)) as caught:  # shape, file system, setup
            engine.backup.set_schedule(BackupSchedule(**{**good, **changes}), "tester")
        assert caught.value.details == {"field": field}
    with pytest.raises(InvalidInput, match="^retention_days must be greater than 0$"):
        engine.backup.set_schedule(BackupSchedule(**{**good, "retention_days": 0}), "tester")
    assert engine.backup.schedule().enabled is False


def test_backups_go_only_to_destinations_an_admin_allowed(engine: Engine, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(Conflict, match="destination must be the schedule's destination"):
        engine.backup.start_backup(FULL, "tester", destination=str(elsewhere))
    engine.backup.set_schedule(BackupSchedule(destination=str(elsewhere)), "tester")
    record = backup(engine)
    assert record.directory.parent == elsewhere
    # the old default stays allowed: it may hold backups
    assert backup(engine, destination=str(engine.backup.default_destination)).directory.parent == \
        engine.backup.default_destination


def test_the_backup_dir_setting_moves_the_default_destination(engine: Engine, tmp_path: Path) -> None:
    first = backup(engine)
    engine.reconfigure(backup_dir=str(tmp_path / "vault"))
    assert engine.backup.schedule().destination == str(tmp_path / "vault")
    moved = backup(engine)
    assert moved.directory.parent == tmp_path / "vault" and first.directory.exists()
    # the earlier destination still holds a backup, so it stays allowed
    assert backup(engine, destination=str(first.directory.parent)).directory.parent == first.directory.parent


ESCAPE = ("backup_dir must be a path inside the data directory (relative, without '..') or inside a directory "
          f"named in {ALLOWED_DIRS_ENV}")


def test_paths_given_through_the_api_stay_where_the_operator_allows(engine: Engine, tmp_path: Path,
                                                                    monkeypatch) -> None:
    escape = tmp_path / "escape"
    escape.symlink_to("/etc", target_is_directory=True)
    for value in ("../../etc", "backups/../../etc", "/etc", str(escape), str(tmp_path / ".." / "elsewhere")):
        with pytest.raises(InvalidRequest) as refused:
            engine.reconfigure(backup_dir=value)
        assert (refused.value.message, refused.value.details) == (ESCAPE, {"field": "backup_dir"}), value
    assert engine.config.backup_dir == ""
    for destination in ("/etc", str(escape)):
        with pytest.raises(Conflict, match=f"^destination must be inside the data directory or a directory "
                                               f"named in {ALLOWED_DIRS_ENV}$"):
            engine.backup.set_schedule(BackupSchedule(destination=destination), "tester")
    record = backup(engine)
    with pytest.raises(Conflict, match="^target_database must be inside the data directory or a directory"):
        engine.backup.restore(record.backup_id, "tester", target_database=str(escape / "restored"))

    engine.reconfigure(backup_dir="vault/nightly")  # inside the data directory: always allowed
    assert backup(engine).directory.parent == engine.storage.data_dir / "vault" / "nightly"
    engine.reconfigure(backup_dir=str(tmp_path / "vault"))  # inside a directory the operator named
    monkeypatch.delenv(ALLOWED_DIRS_ENV)
    with pytest.raises(InvalidRequest, match="backup_dir must be a path inside the data directory"):
        engine.reconfigure(backup_dir=str(tmp_path / "vault"))
    with pytest.raises(Conflict, match="^target_database must be inside"):
        engine.backup.restore(record.backup_id, "tester", target_database=str(tmp_path / "restored"))
    assert not (tmp_path / "restored").exists()
