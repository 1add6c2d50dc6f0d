"""A consistent copy of every schema, taken with SQLite's online backup API while the workload runs.

The copy is consistent across schemas without taking a lock: the backup opens one read transaction
on a connection with every schema attached and reads each schema once (which fixes each file's WAL
snapshot) while the storage's CommitGate is shut, that is while no commit is under way in any file.
An uncommitted write is invisible to the snapshot, so a long write transaction does not hold the
backup up; a commit that comes meanwhile waits at the commit hook for those few microseconds. The
backup API then copies each schema from that read transaction a limited number of pages per step;
in WAL mode an open reader never blocks writers, and because the source connection keeps its
snapshot, writes that land meanwhile neither show up in the copy nor make the backup API start
over. A commit still under way when the gate shuts (a text of several autocommit writes runs on
after its first commit) is waited for at most SHUT_PATIENCE_SECONDS; then the commits are let go
and the backup tries again after a pause that doubles each time.

`schema_locks` is for what must keep the engine's writers out for a while, such as an in-place
restore: it takes the lock manager's locks on every schema file, without queueing while it holds any.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import apsw

from .errors import EngineError, LockTimeout
from .locks import LockMode, Resource, WaitEdge

if TYPE_CHECKING:
    from .engine import Engine
    from .transactions import Transaction

SHUT_PATIENCE_SECONDS = 0.05
MAX_RETRY_PAUSE_SECONDS = 1.0
LOCK_TRY_SECONDS = 1.0
TRY_PAUSE_SECONDS = 0.005
PAGES_PER_STEP = 256
MAX_QUEUED_WAITS = 1000  # bounds the loop; each round waits its turn in a FIFO queue, so it moves


class Stopped(Exception):
    """The engine is shutting down: the job ends here."""


class StopSignal:
    """Asks a running job to stop, and ends a lock wait it may be in."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.event = threading.Event()
        self.waiting_txn: int | None = None

    def stop(self) -> None:
        self.event.set()
        txn = self.waiting_txn
        if txn is not None:
            self._engine.locks.abort_wait(txn, Stopped("the engine is shutting down"))

    def check(self) -> None:
        if self.event.is_set():
            raise Stopped("the engine is shutting down")


@contextmanager
def schema_locks(engine: Engine, schemas: list[str], mode: LockMode, signal: StopSignal,
                 application_name: str) -> Iterator[int]:
    """Hold `mode` locks on every schema's file for the body; yields the locking session's id."""
    session = engine.connect("backup", application_name, "local")
    try:
        txn = engine.transactions.begin(session, explicit=False)
        try:
            _acquire(engine, txn, tuple(Resource(s) for s in sorted(schemas)), mode, signal)
            yield session.id
        finally:
            engine.locks.release_all(txn)
    finally:
        session.close()


def _acquire(engine: Engine, txn: Transaction, resources: tuple[Resource, ...], mode: LockMode,
             signal: StopSignal) -> None:
    """Take every lock at once. Never wait while holding one: a wait that holds nothing cannot be
    part of a deadlock, so the backup never makes the detector roll back a writer."""
    locks = engine.locks
    timeout = engine.config.lock_timeout_ms / 1000 or None
    try_until = time.monotonic() + LOCK_TRY_SECONDS
    busy: Resource | None = None
    for _ in range(MAX_QUEUED_WAITS):
        signal.check()
        if busy is not None and time.monotonic() >= try_until:
            # queue like any transaction for the lock that was busy, then try the rest at once again
            signal.waiting_txn = txn.id
            try:
                locks.acquire(txn, busy, mode, timeout, _timeout_error(engine, busy, mode))
            finally:
                signal.waiting_txn = None
        granted = locks.try_acquire(txn, resources, mode)
        if granted == len(resources):
            return
        busy = resources[granted]
        locks.release_all(txn)
        if time.monotonic() < try_until:
            signal.event.wait(TRY_PAUSE_SECONDS)
    raise EngineError(f"could not lock every schema at once: writers kept schema {busy} busy "
                      f"through {MAX_QUEUED_WAITS} tries")


def _timeout_error(engine: Engine, resource: Resource, mode: LockMode) -> Callable[[WaitEdge | None], Exception]:
    def error(edge: WaitEdge | None) -> Exception:
        holder = f" held by session {edge.holder_session}" if edge else ""
        return LockTimeout(f"lock timeout: waited {engine.config.lock_timeout_ms} ms for a {mode} lock on "
                           f"schema {resource}{holder}", resource=str(resource))
    return error


def _fix_moment(engine: Engine, src: apsw.Connection, schemas: list[str], signal: StopSignal) -> float:
    """Open `src`'s read transaction on every schema file at one moment between commits; return its time."""
    pause = SHUT_PATIENCE_SECONDS
    while True:
        signal.check()
        with engine.storage.commits.shut(SHUT_PATIENCE_SECONDS) as quiet:
            if quiet:
                src.execute("BEGIN")
                for name in schemas:
                    src.execute(f'SELECT count(*) FROM "{name}".sqlite_master').fetchall()
                return engine.clock.time()
        # the commits go on meanwhile, for longer each time: a backup costs writers a bounded share
        signal.event.wait(pause)
        pause = min(pause * 2, MAX_RETRY_PAUSE_SECONDS)


@dataclass(frozen=True)
class Snapshot:
    taken_at: float
    files: dict[str, Path]  # schema -> its copy


def take(engine: Engine, out_dir: Path, signal: StopSignal, progress: Callable[[int, int], None]) -> Snapshot:
    """Copy every schema into `out_dir` as `<schema>.snapshot`; `progress(bytes_done, bytes_total)`."""
    src = engine.storage.open_connection(engine.config.buffer_pool_size)
    try:
        schemas = sorted(name for _, name, _ in src.execute("PRAGMA database_list") if name != "temp")
        taken_at = _fix_moment(engine, src, schemas, signal)
        sizes = {name: (src.execute(f'PRAGMA "{name}".page_size').fetchall()[0][0],
                        src.execute(f'PRAGMA "{name}".page_count').fetchall()[0][0]) for name in schemas}
        total = sum(size * count for size, count in sizes.values())
        done = 0
        progress(done, total)
        files: dict[str, Path] = {}
        for name in schemas:
            page_size = sizes[name][0]
            files[name] = out = out_dir / f"{name}.snapshot"
            dest = apsw.Connection(str(out))
            try:
                with dest.backup("main", src, name) as step:
                    while not step.done:
                        signal.check()
                        step.step(PAGES_PER_STEP)
                        progress(done + (step.page_count - step.remaining) * page_size, total)
                    done += step.page_count * page_size
            finally:
                dest.close()
        return Snapshot(taken_at, files)
    finally:
        if src.in_transaction:
            src.execute("ROLLBACK")
        src.close()
