"""What statements and lock waits are doing, as a monitoring caller sees them.

- a statement's status: running, waiting for a lock, or how it ended;
- a cancel that waits (briefly) for the statement to stop, so the caller learns how it ended;
- the cycles in the wait-for graph (normally none for long: the deadlock detector breaks them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from .errors import Conflict, NotFound, QueryCanceled
from .locks import WaitEdge
from .sessions import SessionInfo, SessionState, WaitClass
from .statements import Statement

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("engine")

# How long a cancel waits for the statement to stop: a lock wait ends at once, a running statement
# at SQLite's next progress check, so this is only reached by a statement stuck outside the VM.
CANCEL_WAIT_SECONDS = 2.0
_CANCEL_POLL_SECONDS = 0.005


class StatementStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"  # for a lock
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True)
class StatementView:
    statement: Statement
    session: SessionInfo | None  # the session while it runs this statement; None after
    status: StatementStatus
    elapsed_ms: float
    current_operation: str


def statement_view(engine: Engine, stmt: Statement, session: SessionInfo | None = None) -> StatementView:
    """`session` saves a lookup when the caller has it; it is ignored once it runs something else."""
    if session is None and not stmt.finished:
        try:
            session = engine.session(stmt.session_id).info()
        except NotFound:
            session = None
    if session is not None and session.current_query_id != stmt.query_id:
        session = None
    if stmt.finished:
        status = _outcome(stmt)
        elapsed = stmt.duration_ms or 0.0
        operation = {StatementStatus.COMPLETED: "completed",
                     StatementStatus.CANCELED: f"canceled by {stmt.stopped_by or 'an operator'}"}.get(
            status, f"failed: {stmt.error_code}")
        return StatementView(stmt, None, status, elapsed, operation)
    elapsed = max(0.0, (engine.clock.monotonic() - stmt.started_mono) * 1000)
    waiting = session is not None and session.state is SessionState.WAITING
    return StatementView(stmt, session, StatementStatus.WAITING if waiting else StatementStatus.RUNNING, elapsed,
                         _operation(session))


def _outcome(stmt: Statement) -> StatementStatus:
    if stmt.error_code is None:
        return StatementStatus.COMPLETED
    return StatementStatus.CANCELED if stmt.error_code == QueryCanceled.code else StatementStatus.FAILED


def _operation(session: SessionInfo | None) -> str:
    if session is None or session.wait_event is None:
        return "executing"
    if session.wait_class == WaitClass.LOCK:
        # a lock wait event is "<table|schema>:<resource>" (locks.Resource.wait_event)
        return f"waiting for lock on {session.wait_event.partition(':')[2]}"
    if session.wait_event == "WALWrite":
        return "writing the WAL (commit)"
    if session.wait_event == "DataFileRead":
        return "reading data pages"
    return f"waiting for {session.wait_event}"


def cancel(engine: Engine, query_id: str, by: str, reason: str | None = None) -> Statement:
    """Interrupt a running statement and wait until it stops (at most CANCEL_WAIT_SECONDS).

    NotFound for an unknown id; Conflict when it has already finished.
    """
    stmt = engine.statement(query_id)
    if stmt.finished:
        raise _already_finished(stmt)
    try:
        engine.cancel_query(query_id, by=by)
    except (NotFound, Conflict):
        if stmt.finished:  # it finished as the cancel got there (its session may be closed by now)
            raise _already_finished(stmt) from None
        raise
    if reason:
        log.warning("query %s cancel reason given by %s: %s", query_id, by, reason)
    # real time, not the engine clock: the statement stops in real time even under a test clock
    deadline = time.monotonic() + CANCEL_WAIT_SECONDS
    while not stmt.finished and time.monotonic() < deadline:
        time.sleep(_CANCEL_POLL_SECONDS)
    return stmt


def _already_finished(stmt: Statement) -> Conflict:
    outcome = _outcome(stmt).value
    return Conflict(f"Query {stmt.query_id} already finished ({outcome})", query_id=stmt.query_id, status=outcome)


def wait_cycles(edges: Iterable[WaitEdge]) -> list[list[int]]:
    """Transactions that wait for each other in a cycle: the strongly connected components (of two or
    more) of the wait-for graph, each as sorted transaction ids.

    Iterative (Kosaraju): a FIFO queue of n writers makes each wait for every one ahead, so a
    recursive search would go n deep.
    """
    graph: dict[int, set[int]] = {}
    reverse: dict[int, set[int]] = {}
    for e in edges:
        graph.setdefault(e.waiter_txn, set()).add(e.holder_txn)
        reverse.setdefault(e.holder_txn, set()).add(e.waiter_txn)
    finished: list[int] = []
    seen: set[int] = set()
    for root in sorted(graph):
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(sorted(graph[root])))]
        while stack:
            node, successors = stack[-1]
            for nxt in successors:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
            else:
                stack.pop()
                finished.append(node)
    cycles: list[list[int]] = []
    assigned: set[int] = set()
    for root in reversed(finished):
        if root in assigned:
            continue
        assigned.add(root)
        component, todo = [], [root]
        while todo:
            node = todo.pop()
            component.append(node)
            for prev in reverse.get(node, ()):
                if prev not in assigned:
                    assigned.add(prev)
                    todo.append(prev)
        if len(component) > 1:
            cycles.append(sorted(component))
    return sorted(cycles)
