#!/usr/bin/env python3
"""Backup benchmark: what a full backup costs, against `cp`, and what it costs the workload.

    python bench/backup.py [--filler-mb N] [--rounds R] [--seconds S] [--sessions N] [--seed N]

One run, in a temporary data directory that is removed at the end:

1. Throughput, on an idle engine holding the demo's data plus N MB of incompressible rows in a
   schema `bulk` (WAL checkpointed, so the files hold everything): R rounds, interleaved, of
   - `cp` of every schema's database file (a subprocess), and `cp` followed by an fsync of each
     copy (the backup's files are fsynced, plain `cp` leaves that to the kernel);
   - a full backup (SQLite's online backup API, a consistent cut across schemas, page digests and
     SHA-256 of every file), uncompressed, zstd-compressed, and zstd-compressed and encrypted.
   Reported: the median time and MB/s (database bytes over wall time), and the ratio to `cp`.
2. Workload: the demo workload (engine/demo.py) runs with --sessions sessions (steadily: its
   episodes only with --episodes); windows of --seconds alternate between no backup and
   back-to-back full backups (the default settings: zstd), R of each. Reported: the demo's
   statements per second (from its sessions' own counters) in each kind of window, the median,
   and the ratio.
3. Writers: W threads move amounts between schemas `ledger_a` and `ledger_b` (both rows in one
   transaction) while one long writer keeps a write transaction open on schema `bulk` for the
   whole part, longer than lock_timeout_ms; windows of --seconds alternate between no backup and
   back-to-back full backups, R of each. Reported: the writers' commits per second and p99
   transaction time in each kind of window, backups completed and failed, and whether the last
   backup's ledger, restored, still balances.

Exits 2 if a part of the benchmark failed, else 0.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import apsw  # noqa: E402

from engine import Engine, EngineConfig  # noqa: E402
from engine.backup_codec import KEY_ENV  # noqa: E402
from engine.backup_records import BackupRecord, BackupStatus, BackupType  # noqa: E402
from engine.config import ALLOWED_DIRS_ENV  # noqa: E402
from engine.demo import DemoSchedule, DemoWorkload  # noqa: E402
from engine.wal import CheckpointMode  # noqa: E402

MB = 1024 * 1024
BLOB_BYTES = 4000
# The demo's episodes (a transaction left open for seconds, deadlock pairs, imports) swing its rate
# by more than a backup does; without --episodes they never start, and the rest runs steadily.
NEVER = 1e9
STEADY = DemoSchedule(deadlock_first=NEVER, import_first=NEVER, forgotten_first=NEVER)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def take_backup(engine: Engine, **options: object) -> BackupRecord:
    started = engine.backup.start_backup(BackupType.FULL, "bench", **options)
    while not (record := engine.backup.backup(started.backup_id)).finished:
        time.sleep(0.005)
    if record.status is not BackupStatus.COMPLETED:
        raise RuntimeError(f"backup failed: {record.error_message}")
    return record


def load(engine: Engine, filler_mb: int, sessions: int, seed: int, episodes: bool) -> DemoWorkload:
    workload = DemoWorkload(engine, sessions, seed, None if episodes else STEADY)
    workload.setup()
    engine.create_schema("bulk")
    s = engine.connect("bench", "backup-bench")
    try:
        s.execute("CREATE TABLE bulk.blobs(id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        s.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                  "INSERT INTO bulk.blobs(body) SELECT randomblob(?) FROM n", (filler_mb * MB // BLOB_BYTES, BLOB_BYTES))
    finally:
        s.close()
    engine.wal.checkpoint(CheckpointMode.TRUNCATE, by="bench")
    return workload


# -- part 1: throughput ------------------------------------------------------------------------

def bench_throughput(engine: Engine, work: Path, rounds: int, out: list[str]) -> None:
    files = list(engine.storage.files().values())
    file_bytes = sum(p.stat().st_size for p in files)

    def cp(fsync: bool) -> Callable[[], tuple[float, int]]:
        def run() -> tuple[float, int]:
            dest = Path(tempfile.mkdtemp(dir=work, prefix="cp-"))
            started = time.perf_counter()
            subprocess.run(["cp", *map(str, files), str(dest)], check=True)
            if fsync:
                for copy in dest.iterdir():
                    fd = os.open(copy, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            seconds = time.perf_counter() - started
            subprocess.run(["rm", "-rf", str(dest)], check=True)
            return seconds, file_bytes
        return run

    def backup(**options: object) -> Callable[[], tuple[float, int]]:
        def run() -> tuple[float, int]:
            started = time.perf_counter()
            record = take_backup(engine, **options)
            seconds = time.perf_counter() - started
            engine.backup.delete(record.backup_id, "bench")
            return seconds, sum(f.database_bytes for f in record.files)
        return run

    variants = {
        "cp": cp(False),
        "cp + fsync": cp(True),
        "backup, uncompressed": backup(compression=False, encryption=False),
        "backup, zstd": backup(compression=True, compression_algorithm="zstd", encryption=False),
        "backup, zstd + AES-GCM": backup(compression=True, compression_algorithm="zstd", encryption=True),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    sizes: dict[str, int] = {}
    for r in range(rounds):
        names = list(variants)
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate the order every round
            seconds, size = variants[name]()
            os.sync()  # the next variant's fsyncs must not pay for this one's dirty pages
            times[name].append(seconds)
            sizes[name] = size
    cp_rate = sizes["cp"] / MB / statistics.median(times["cp"])
    rows = []
    for name in variants:
        median = statistics.median(times[name])
        rate = sizes[name] / MB / median
        rows.append([name, f"{sizes[name] / MB:,.1f}", f"{median * 1000:,.0f}", f"{rate:,.0f}",
                     f"{rate / cp_rate:.2f}x"])
    out.append(f"Full-backup throughput, idle engine, {len(files)} schema files, {file_bytes / MB:,.1f} MB "
               f"(median of {rounds} rounds)")
    out.append(table(["copy", "MB", "ms", "MB/s", "vs cp"], rows))


# -- part 2: workload during a backup ------------------------------------------------------------

def bench_workload(engine: Engine, workload: DemoWorkload, rounds: int, seconds: float, out: list[str]) -> None:
    rates: dict[str, list[float]] = {"no backup": [], "back-to-back full backups": []}
    backups_taken: list[float] = []
    failures: list[str] = []
    workload.start()
    try:
        time.sleep(1.0)  # past the workers' start-up
        for _ in range(rounds):
            for kind in rates:
                stop = threading.Event()
                runner = None
                if kind != "no backup":
                    def loop() -> None:
                        while not stop.is_set():
                            started = time.perf_counter()
                            try:
                                record = take_backup(engine)
                                engine.backup.delete(record.backup_id, "bench")
                                backups_taken.append(time.perf_counter() - started)
                            except Exception as exc:  # counted and shown; the window goes on
                                failures.append(str(exc))
                    runner = threading.Thread(target=loop, name="bench-backups")
                    runner.start()
                before, t0 = workload.summary().statements, time.perf_counter()
                time.sleep(seconds)
                after, t1 = workload.summary().statements, time.perf_counter()
                rates[kind].append((after - before) / (t1 - t0))
                stop.set()
                if runner is not None:
                    runner.join()
    finally:
        workload.stop()
    base = statistics.median(rates["no backup"])
    rows = [[kind, ", ".join(f"{r:,.0f}" for r in values), f"{statistics.median(values):,.0f}",
             f"{statistics.median(values) / base:.2f}x"] for kind, values in rates.items()]
    episodes = "with" if workload.schedule.forgotten_first < NEVER else "without"
    out.append(f"Demo workload ({workload.sessions} sessions, seed {workload.seed}, {episodes} its episodes), "
               f"statements per second, windows of {seconds:g} s")
    out.append(table(["window", "per window", "median", "vs none"], rows))
    if backups_taken:
        out.append(f"{len(backups_taken)} full backups during the workload, median {statistics.median(backups_taken):.2f} s"
                   f" each (max {max(backups_taken):.2f} s)")
    if failures:
        out.append(f"{len(failures)} backups failed during the workload; first: {failures[0]}")


# -- part 3: cross-schema writers and a long writer during backups ------------------------------

LEDGER_ACCOUNTS, OPENING_BALANCE = 100, 1000


class Transfers:
    """Moves amounts between ledger_a and ledger_b in one transaction; times each transaction."""

    def __init__(self, engine: Engine, index: int, stop: threading.Event) -> None:
        self.engine, self.index, self.stop = engine, index, stop
        self.committed = 0
        self.seconds: list[float] = []  # every committed transaction's duration, in order

    def run(self) -> None:
        s = self.engine.connect(f"transfers-{self.index}", "backup-bench-transfers")
        step = 0
        try:
            while not self.stop.is_set():
                step += 1
                a, b = (self.index * 7919 + step) % LEDGER_ACCOUNTS, (self.index * 104729 + 3 * step) % LEDGER_ACCOUNTS
                amount = 1 if step % 2 else -1  # both ways, always locking ledger_a first: no deadlocks
                started = time.perf_counter()
                try:
                    s.execute("BEGIN")
                    s.execute("UPDATE ledger_a.account SET balance = balance - ? WHERE id = ?", (amount, a))
                    s.execute("UPDATE ledger_b.account SET balance = balance + ? WHERE id = ?", (amount, b))
                    s.execute("COMMIT")
                except Exception:  # a lock timeout or deadlock among the writers: roll back, go on
                    if s.txn is not None:
                        s.execute("ROLLBACK")
                    continue
                self.seconds.append(time.perf_counter() - started)
                self.committed += 1
        finally:
            s.close()


def open_ledger(engine: Engine) -> None:
    s = engine.connect("bench", "backup-bench")
    try:
        for schema in ("ledger_a", "ledger_b"):
            engine.create_schema(schema)
            s.execute(f"CREATE TABLE {schema}.account(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
            s.execute(f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                      f"INSERT INTO {schema}.account(id, balance) SELECT i, ? FROM n",
                      (LEDGER_ACCOUNTS - 1, OPENING_BALANCE))
    finally:
        s.close()


def ledger_total(data_dir: Path) -> int:
    restored = Engine(data_dir=data_dir, config=EngineConfig())
    try:
        s = restored.connect("bench", "backup-bench")
        try:
            return sum(s.execute(f"SELECT total(balance) FROM {schema}.account").rows[0][0]
                       for schema in ("ledger_a", "ledger_b"))
        finally:
            s.close()
    finally:
        restored.close()


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else (values[0] if values else 0.0)


def bench_writers(engine: Engine, work: Path, writers: int, rounds: int, seconds: float, out: list[str]) -> None:
    open_ledger(engine)
    long_writer = engine.connect("bench-long-writer", "backup-bench")
    long_writer.execute("BEGIN")
    long_writer.execute("UPDATE bulk.blobs SET id = id WHERE id = 1")  # schema bulk's write lock, held
    held_from = time.perf_counter()
    stop = threading.Event()
    transfers = [Transfers(engine, i, stop) for i in range(writers)]
    threads = [threading.Thread(target=t.run, name=f"bench-transfers-{i}") for i, t in enumerate(transfers)]
    kinds = ("no backup", "back-to-back full backups")
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    latencies: dict[str, list[float]] = {k: [] for k in kinds}
    completed: list[BackupRecord] = []  # the newest backup, kept for the ledger check
    taken: list[float] = []
    failures: list[str] = []
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        for _ in range(rounds):
            for kind in kinds:
                window_stop = threading.Event()
                runner = None
                if kind != "no backup":
                    def loop() -> None:
                        while not window_stop.is_set():
                            started = time.perf_counter()
                            try:
                                record = take_backup(engine)
                            except Exception as exc:  # counted and shown; the window goes on
                                failures.append(str(exc))
                                continue
                            taken.append(time.perf_counter() - started)
                            if completed:
                                engine.backup.delete(completed.pop().backup_id, "bench")
                            completed.append(record)
                    runner = threading.Thread(target=loop, name="bench-backups")
                    runner.start()
                marks = [len(t.seconds) for t in transfers]
                t0 = time.perf_counter()
                time.sleep(seconds)
                t1 = time.perf_counter()
                window = [x for t, m in zip(transfers, marks) for x in t.seconds[m:]]
                rates[kind].append(len(window) / (t1 - t0))
                latencies[kind].extend(window)
                window_stop.set()
                if runner is not None:
                    runner.join()
    finally:
        stop.set()
        for t in threads:
            t.join()
        held = time.perf_counter() - held_from
        long_writer.execute("COMMIT")
        long_writer.close()
    base = statistics.median(rates["no backup"])
    rows = [[kind, ", ".join(f"{r:,.0f}" for r in rates[kind]), f"{statistics.median(rates[kind]):,.0f}",
             f"{statistics.median(rates[kind]) / base:.2f}x", f"{p99(latencies[kind]) * 1000:,.1f}"] for kind in kinds]
    out.append(f"{writers} writers moving amounts between two schemas, commits per second, windows of {seconds:g} s; "
               f"a long writer held schema bulk's write lock for {held:.1f} s "
               f"(lock_timeout_ms {engine.config.lock_timeout_ms})")
    out.append(table(["window", "per window", "median", "vs none", "p99 txn ms"], rows))
    balanced = "no backup completed"
    if completed:
        target = work / "ledger-check"
        restore = engine.backup.restore(completed[-1].backup_id, "bench", target_database=str(target))
        while not (done := engine.backup.restore_status(restore.restore_id)).completed_at:
            time.sleep(0.01)
        if done.error_message:
            raise RuntimeError(f"restore failed: {done.error_message}")
        total = ledger_total(target)
        balanced = f"{'yes' if total == 2 * LEDGER_ACCOUNTS * OPENING_BALANCE else 'NO'} ({total:,.0f})"
    gate = engine.storage.commits
    out.append(f"commits held back while a backup fixed its moment: {gate.held_back_total}, "
               f"the longest for {gate.longest_hold_seconds * 1000:.2f} ms")
    out.append(f"{len(taken)} full backups during the writers"
               + (f", median {statistics.median(taken):.2f} s each (max {max(taken):.2f} s)" if taken else "")
               + f"; {len(failures)} failed" + (f" (first: {failures[0]})" if failures else "")
               + f"; the last one's ledger, restored, balances: {balanced}")
    if failures:
        raise RuntimeError(f"{len(failures)} backups failed")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--filler-mb", type=int, default=64, help="incompressible data added to the demo's (MB)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0, help="length of each workload window")
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--writers", type=int, default=4, help="threads moving amounts between two schemas (part 3)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--episodes", action="store_true",
                   help="keep the demo's episodes (forgotten open transactions, deadlock pairs, imports)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"rdbtop backup benchmark: Python {platform.python_version()}, apsw {apsw.apsw_version()}, "
          f"SQLite {apsw.sqlite_lib_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    os.environ.setdefault(KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    failures = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rdbtop-bench-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        os.environ[ALLOWED_DIRS_ENV] = str(work)  # part 3 restores its last backup there
        engine = Engine(data_dir=work / "data", config=EngineConfig()).start()
        try:
            workload = load(engine, args.filler_mb, args.sessions, args.seed, args.episodes)
            for part in (lambda out: bench_throughput(engine, work, args.rounds, out),
                         lambda out: bench_workload(engine, workload, args.rounds, args.seconds, out),
                         lambda out: bench_writers(engine, work, args.writers, args.rounds, args.seconds, out)):
                out: list[str] = []
                try:
                    part(out)
                except Exception:
                    failures += 1
                    out.append(f"FAILED:\n{traceback.format_exc()}")
                print()
                print("\n".join(out))
                sys.stdout.flush()
        finally:
            engine.close()
    print()
    print(f"total time {time.monotonic() - started:.1f} s" + (f"; {failures} part(s) FAILED" if failures else ""))
    return 2 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
