"""The lock manager: grants or queues table and schema locks, and finds deadlocks.

SQLite allows one writer per database file and fails a stale-snapshot writer at once, so the
engine decides who waits before SQLite sees a statement (see ../shared/architecture.md):

- a write takes `exclusive` on the table and `exclusive` on its schema (the file's one writer slot);
- a read inside an explicit transaction takes `shared` on the table, held to the transaction's end;
- an autocommit read takes nothing: WAL gives it a snapshot and it never waits.

Queues are FIFO, except that a holder upgrading `shared` to `exclusive` goes first.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from .clock import Clock

if TYPE_CHECKING:
    from .transactions import Transaction


class LockMode(StrEnum):
    SHARED = "shared"
    EXCLUSIVE = "exclusive"

    def covers(self, other: LockMode) -> bool:
        return self is LockMode.EXCLUSIVE or other is LockMode.SHARED

    def conflicts(self, other: LockMode) -> bool:
        return self is LockMode.EXCLUSIVE or other is LockMode.EXCLUSIVE


class Resource(NamedTuple):
    """A table, or a schema's file (table None). A tuple, so hashing it is C-speed on the hot path."""

    schema: str
    table: str | None = None

    @property
    def kind(self) -> str:
        return "schema" if self.table is None else "table"

    def __str__(self) -> str:
        return self.schema if self.table is None else f"{self.schema}.{self.table}"

    @property
    def wait_event(self) -> str:
        return f"{self.kind}:{self}"


@dataclass(eq=False)
class _Waiter:
    txn: Transaction
    resource: Resource
    mode: LockMode
    since: float
    upgrade: bool
    event: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


@dataclass(slots=True)
class _Grant:
    txn: Transaction
    mode: LockMode
    since: float


@dataclass(slots=True)
class _Entry:
    granted: dict[int, _Grant] = field(default_factory=dict)
    queue: list[_Waiter] = field(default_factory=list)


@dataclass(frozen=True)
class LockInfo:
    lock_id: str
    resource: str
    resource_type: str
    mode: LockMode
    session_id: int
    transaction_id: int
    granted: bool
    since: float  # when granted, or when the wait began
    blocked_by: tuple[int, ...]  # sessions this waiter waits for; empty when granted


@dataclass(frozen=True)
class WaitEdge:
    waiter_session: int
    waiter_txn: int
    holder_session: int
    holder_txn: int
    resource: str
    mode: LockMode
    wait_started_at: float


@dataclass(frozen=True)
class DeadlockParticipant:
    session_id: int
    transaction_id: int
    sql: str | None
    waiting_for: str
    holding: tuple[str, ...]


@dataclass(frozen=True)
class Deadlock:
    deadlock_id: int
    detected_at: float
    victim_session: int
    victim_transaction: int
    participants: tuple[DeadlockParticipant, ...]

    @property
    def resources(self) -> tuple[str, ...]:
        return tuple(sorted({p.waiting_for for p in self.participants}))


@dataclass
class BlockingNode:
    session_id: int
    transaction_id: int | None
    resource: str | None  # what this session waits for; None for a root blocker
    wait_started_at: float | None
    blocked: list[BlockingNode] = field(default_factory=list)


class LockManager:
    def __init__(self, clock: Clock, history: int = 200) -> None:
        self._clock = clock
        self._mutex = threading.Lock()
        self._entries: dict[Resource, _Entry] = {}
        self._held: dict[int, set[Resource]] = {}
        self._waiting: dict[int, _Waiter] = {}
        self._deadlock_ids = itertools.count(1)
        self._deadlocks: deque[Deadlock] = deque(maxlen=history)
        self.lock_waits_total = 0
        self.lock_timeouts_total = 0
        self.deadlocks_total = 0

    # -- acquiring and releasing ------------------------------------------------------------

    def acquire(self, txn: Transaction, resource: Resource, mode: LockMode,
                timeout: float | None, on_timeout: Callable[[WaitEdge | None], Exception]) -> None:
        """Grant the lock or wait for it; raise on_timeout(...) after `timeout` seconds.

        A wait also ends early with the error that abort_wait() gives (deadlock victim, cancel).
        """
        with self._mutex:
            entry = self._entries.get(resource)
            if entry is None:
                entry = self._entries[resource] = _Entry()
            held = entry.granted.get(txn.id)
            if held is not None and held.mode.covers(mode):
                return
            upgrade = held is not None
            if self._compatible(entry, txn.id, mode) and (upgrade or not entry.queue):
                self._grant(entry, txn, resource, mode)
                return
            waiter = _Waiter(txn, resource, mode, self._clock.time(), upgrade)
            if upgrade:
                ahead = sum(1 for w in entry.queue if w.upgrade)
                entry.queue.insert(ahead, waiter)
            else:
                entry.queue.append(waiter)
            self._waiting[txn.id] = waiter
            self.lock_waits_total += 1
        txn.on_wait(waiter.resource.wait_event)
        try:
            if not waiter.event.wait(timeout):
                with self._mutex:
                    if not waiter.event.is_set():
                        edge = self._first_edge(waiter)
                        self._drop_waiter(waiter)
                        self.lock_timeouts_total += 1
                        raise on_timeout(edge)
        finally:
            txn.on_wait_end()
        if waiter.error is not None:
            raise waiter.error

    def try_acquire(self, txn: Transaction, resources: tuple[Resource, ...], mode: LockMode) -> int:
        """Grant as many of `resources`, in order, as can be granted at once under one mutex hold;
        return how many were. The caller waits for the rest one by one with `acquire`."""
        entries = self._entries
        with self._mutex:
            for done, resource in enumerate(resources):
                entry = entries.get(resource)
                if entry is None:
                    # nobody holds or waits for it (the common case): grant without the checks
                    entries[resource] = _Entry({txn.id: _Grant(txn, mode, self._clock.time())}, [])
                    held_set = self._held.get(txn.id)
                    if held_set is None:
                        self._held[txn.id] = {resource}
                    else:
                        held_set.add(resource)
                    continue
                held = entry.granted.get(txn.id)
                if held is not None and held.mode.covers(mode):
                    continue
                if not (self._compatible(entry, txn.id, mode) and (held is not None or not entry.queue)):
                    return done
                self._grant(entry, txn, resource, mode)
            return len(resources)

    def abort_wait(self, txn_id: int, error: Exception) -> bool:
        """End a transaction's lock wait with `error`; False when it is not waiting."""
        with self._mutex:
            waiter = self._waiting.get(txn_id)
            if waiter is None or waiter.event.is_set():
                return False
            waiter.error = error
            self._drop_waiter(waiter)
            return True

    def release_all(self, txn: Transaction) -> None:
        with self._mutex:
            waiter = self._waiting.get(txn.id)
            if waiter is not None:
                self._drop_waiter(waiter)
            entries = self._entries
            for resource in self._held.pop(txn.id, ()):
                entry = entries[resource]
                entry.granted.pop(txn.id, None)
                if entry.queue:
                    self._promote(resource, entry)
                elif not entry.granted:  # what _promote would end with, without the call
                    del entries[resource]

    def held_by(self, txn_id: int) -> list[tuple[Resource, LockMode]]:
        with self._mutex:
            return [(r, self._entries[r].granted[txn_id].mode) for r in self._held.get(txn_id, ())]

    def _compatible(self, entry: _Entry, txn_id: int, mode: LockMode) -> bool:
        return all(g.txn.id == txn_id or not g.mode.conflicts(mode) for g in entry.granted.values())

    def _grant(self, entry: _Entry, txn: Transaction, resource: Resource, mode: LockMode) -> None:
        previous = entry.granted.get(txn.id)
        since = previous.since if previous else self._clock.time()
        entry.granted[txn.id] = _Grant(txn, mode, since)
        self._held.setdefault(txn.id, set()).add(resource)

    def _promote(self, resource: Resource, entry: _Entry) -> None:
        while entry.queue:
            waiter = entry.queue[0]
            if not self._compatible(entry, waiter.txn.id, waiter.mode):
                break
            entry.queue.pop(0)
            self._waiting.pop(waiter.txn.id, None)
            self._grant(entry, waiter.txn, resource, waiter.mode)
            waiter.event.set()
        if not entry.queue and not entry.granted:
            del self._entries[resource]

    def _drop_waiter(self, waiter: _Waiter) -> None:
        entry = self._entries.get(waiter.resource)
        self._waiting.pop(waiter.txn.id, None)
        waiter.event.set()
        if entry is not None and waiter in entry.queue:
            entry.queue.remove(waiter)
            self._promote(waiter.resource, entry)

    # -- what blocks whom -------------------------------------------------------------------

    def _blockers(self, waiter: _Waiter) -> list[Transaction]:
        """Holders of conflicting grants, then conflicting waiters ahead in the FIFO queue."""
        entry = self._entries.get(waiter.resource)
        if entry is None:
            return []
        out = [g.txn for g in entry.granted.values()
               if g.txn.id != waiter.txn.id and g.mode.conflicts(waiter.mode)]
        for ahead in entry.queue:
            if ahead is waiter:
                break
            if ahead.mode.conflicts(waiter.mode) and ahead.txn.id != waiter.txn.id:
                out.append(ahead.txn)
        return out

    def _first_edge(self, waiter: _Waiter) -> WaitEdge | None:
        blockers = self._blockers(waiter)
        return self._edge(waiter, blockers[0]) if blockers else None

    def _edge(self, waiter: _Waiter, holder: Transaction) -> WaitEdge:
        return WaitEdge(waiter.txn.session_id, waiter.txn.id, holder.session_id, holder.id,
                        str(waiter.resource), waiter.mode, waiter.since)

    def blockers_of(self, txn_id: int) -> tuple[int, ...]:
        with self._mutex:
            waiter = self._waiting.get(txn_id)
            return tuple(t.session_id for t in self._blockers(waiter)) if waiter else ()

    def first_blockers(self) -> dict[int, int]:
        """Waiting session id -> the session it waits for first (what `blockers_of` puts first), in
        one pass over each queue instead of one queue scan per waiter: ASH calls this per sample."""
        out: dict[int, int] = {}
        with self._mutex:
            for resource in {w.resource for w in self._waiting.values()}:
                entry = self._entries.get(resource)
                if entry is None:
                    continue
                grants = [g.txn for g in entry.granted.values()]
                first_x_holder = next((g.txn for g in entry.granted.values() if g.mode is LockMode.EXCLUSIVE), None)
                # an exclusive waiter is blocked by any other holder: the first, or the second if the first is itself
                holder0 = grants[0] if grants else None
                holder1 = grants[1] if len(grants) > 1 else None
                first_waiter = first_x_waiter = None
                for w in entry.queue:
                    me = w.txn.id
                    if w.mode is LockMode.EXCLUSIVE:
                        blocker = (holder0 if holder0 is not None and holder0.id != me else holder1) or first_waiter
                    else:
                        blocker = (first_x_holder if first_x_holder is not None and first_x_holder.id != me
                                   else None) or first_x_waiter
                    if blocker is not None:
                        out[w.txn.session.id] = blocker.session.id
                    first_waiter = first_waiter or w.txn
                    if w.mode is LockMode.EXCLUSIVE:
                        first_x_waiter = first_x_waiter or w.txn
        return out

    @property
    def deadlocks(self) -> tuple[Deadlock, ...]:
        """The bounded deadlock history, oldest first: a copy, as the detector appends while it is read."""
        with self._mutex:
            return tuple(self._deadlocks)

    def edges(self) -> list[WaitEdge]:
        with self._mutex:
            return [self._edge(w, b) for w in self._waiting.values() for b in self._blockers(w)]

    def locks(self) -> list[LockInfo]:
        out: list[LockInfo] = []
        with self._mutex:
            for resource, entry in sorted(self._entries.items(), key=lambda kv: str(kv[0])):
                for g in entry.granted.values():
                    out.append(LockInfo(f"{g.txn.id}:{resource}", str(resource), resource.kind, g.mode,
                                        g.txn.session_id, g.txn.id, True, g.since, ()))
                for w in entry.queue:
                    out.append(LockInfo(f"{w.txn.id}:{resource}:wait", str(resource), resource.kind,
                                        w.mode, w.txn.session_id, w.txn.id, False, w.since,
                                        tuple(t.session_id for t in self._blockers(w))))
        return out

    def blocking_tree(self) -> list[BlockingNode]:
        """Root blockers (blocking others, waiting on nobody) with the chains behind them."""
        edges = self.edges()
        children: dict[int, list[WaitEdge]] = {}
        waiting: set[int] = set()
        for e in edges:
            if e.waiter_session not in waiting:
                # a waiter hangs under its first blocker only, so the tree shows each session once
                children.setdefault(e.holder_session, []).append(e)
            waiting.add(e.waiter_session)
        txn_of = {e.holder_session: e.holder_txn for e in edges}

        def build(session_id: int, edge: WaitEdge | None, path: frozenset[int]) -> BlockingNode:
            node = BlockingNode(session_id, edge.waiter_txn if edge else txn_of.get(session_id),
                                edge.resource if edge else None, edge.wait_started_at if edge else None)
            for child in children.get(session_id, ()):
                if child.waiter_session not in path:
                    node.blocked.append(build(child.waiter_session, child, path | {child.waiter_session}))
            return node

        roots = [s for s in children if s not in waiting]
        if not roots and children:
            # everyone waits on someone: a deadlock not yet broken; show its members as roots
            roots = sorted(children)
        return [build(s, None, frozenset({s})) for s in sorted(roots)]

    # -- deadlocks --------------------------------------------------------------------------

    def detect_deadlocks(self, make_error: Callable[[Deadlock], Exception]) -> list[Deadlock]:
        """Break every cycle in the wait-for graph by aborting its youngest transaction."""
        found: list[Deadlock] = []
        with self._mutex:
            while True:
                cycle = self._find_cycle()
                if not cycle:
                    break
                victim = max(cycle, key=lambda t: (t.started_mono, t.id))
                deadlock = Deadlock(next(self._deadlock_ids), self._clock.time(), victim.session_id,
                                    victim.id, tuple(self._participant(t) for t in cycle))
                waiter = self._waiting[victim.id]
                waiter.error = make_error(deadlock)
                self._drop_waiter(waiter)
                self._deadlocks.append(deadlock)
                self.deadlocks_total += 1
                found.append(deadlock)
        return found

    def _participant(self, txn: Transaction) -> DeadlockParticipant:
        return DeadlockParticipant(txn.session_id, txn.id, txn.current_sql(),
                                   str(self._waiting[txn.id].resource),
                                   tuple(sorted(str(r) for r in self._held.get(txn.id, ()))))

    def _find_cycle(self) -> list[Transaction]:
        graph: dict[int, list[Transaction]] = {
            tid: self._blockers(w) for tid, w in self._waiting.items()}
        txns = {w.txn.id: w.txn for w in self._waiting.values()}
        state: dict[int, int] = {}  # 1 on the current path, 2 finished

        def visit(tid: int, path: list[Transaction]) -> list[Transaction]:
            state[tid] = 1
            path.append(txns[tid])
            for nxt in graph.get(tid, ()):
                if nxt.id not in graph:
                    continue  # not waiting, so no cycle through it
                if state.get(nxt.id) == 1:
                    return path[[t.id for t in path].index(nxt.id):]
                if nxt.id not in state:
                    cycle = visit(nxt.id, path)
                    if cycle:
                        return cycle
            path.pop()
            state[tid] = 2
            return []

        for tid in sorted(graph):
            if tid not in state:
                cycle = visit(tid, [])
                if cycle:
                    return cycle
        return []

