"""Transactions: ids, start times, what they read and wrote, and per-schema commit versions."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .clock import Clock

if TYPE_CHECKING:
    from .sessions import Session

# What every explicit transaction gets: a per-schema SQLite snapshot taken at its first read of that
# schema, plus table locks held to the end (shared for reads, exclusive for writes) and a refused
# write after another transaction committed to a schema it read. So re-reading a table gives the
# same rows, and there are no lost updates or phantoms in read tables; but two schemas' snapshots
# may come from different moments, so a read-only transaction can see a skew across schemas, which
# SERIALIZABLE forbids.
ISOLATION_LEVEL = "REPEATABLE_READ"


@dataclass(eq=False, slots=True)
class Transaction:
    id: int
    session: Session
    explicit: bool
    started_at: float
    started_mono: float
    # schema -> commit version seen when this transaction first read it (its SQLite snapshot)
    read_versions: dict[str, int] = field(default_factory=dict)
    written_schemas: set[str] = field(default_factory=set)
    modified_tables: set[str] = field(default_factory=set)
    queries_executed: int = 0
    rows_affected: int = 0
    read_only: bool = False  # a write is refused before it takes any lock

    @property
    def session_id(self) -> int:
        return self.session.id

    def current_sql(self) -> str | None:
        return self.session.current_sql

    def on_wait(self, wait_event: str) -> None:
        self.session.lock_wait_began(wait_event)

    def on_wait_end(self) -> None:
        self.session.lock_wait_ended()


class TransactionRegistry:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._ids = itertools.count(1)
        self._mutex = threading.Lock()
        self._versions: dict[str, int] = {}
        self.active: dict[int, Transaction] = {}
        self.commits_total = 0
        self.rollbacks_total = 0

    def begin(self, session: Session, explicit: bool) -> Transaction:
        txn = Transaction(next(self._ids), session, explicit, self._clock.time(), self._clock.monotonic())
        if explicit:
            self.active[txn.id] = txn
        return txn

    def version(self, schema: str) -> int:
        return self._versions.get(schema, 0)

    def end_autocommit_read(self) -> None:
        """An autocommit read ran without a Transaction object (it takes no locks); count it alike."""
        self.commits_total += 1

    def end(self, txn: Transaction, committed: bool) -> None:
        self.active.pop(txn.id, None)
        if committed and txn.written_schemas:
            with self._mutex:
                for schema in txn.written_schemas:
                    self._versions[schema] = self._versions.get(schema, 0) + 1
        if committed:
            self.commits_total += 1
        else:
            self.rollbacks_total += 1
