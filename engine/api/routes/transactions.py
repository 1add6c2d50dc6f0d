"""Transactions, locks, deadlocks and the WAL, from the engine's lock manager and SQLite itself."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Body, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from ...activity import wait_cycles
from ...errors import NotFound
from ...locks import BlockingNode, Deadlock, LockInfo as EngineLockInfo, LockMode, WaitEdge
from ...remote import ACCEPTED_ISOLATION_LEVELS
from ...transactions import ISOLATION_LEVEL, Transaction
from ...wal import Checkpoint, CheckpointMode, WalFile
from ..deps import Admin, EngineDep, Monitor, Operator
from ..models import ts

router = APIRouter(prefix="/api/v1/transactions", tags=["transactions"])

TransactionId = Annotated[int, Path(ge=1, le=2**63 - 1)]
IsolationLevel = StrEnum("IsolationLevel", {level: level for level in ACCEPTED_ISOLATION_LEVELS})  # type: ignore[misc]
_ISOLATION_DOC = (f"the engine runs every transaction at {ISOLATION_LEVEL} (per-schema snapshot plus table locks "
                  "held to the end); weaker levels are accepted and run at it, SERIALIZABLE is not offered")


# -- models ----------------------------------------------------------------------------------

class TransactionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    isolation_level: IsolationLevel | None = Field(None, description=_ISOLATION_DOC)  # type: ignore[valid-type]
    read_only: StrictBool | None = Field(None, description="refuse every write (before it takes a lock)")
    deferrable: StrictBool | None = Field(None, description="accepted; a read-only transaction here never waits for or "
                                                      "fails with a serialization conflict, which is what "
                                                      "DEFERRABLE asks for")


class TransactionResponse(BaseModel):
    transaction_id: int
    isolation_level: str = Field(description=_ISOLATION_DOC)
    started_at: int
    status: str = Field(description="active")
    # additions
    session_id: int
    read_only: bool
    requested_isolation_level: str


class TransactionEndResponse(BaseModel):
    """RustyDB answers commit and rollback with an empty body; this one says what ended."""

    transaction_id: int
    status: str = Field(description="committed or rolled_back")
    session_id: int
    started_at: int
    duration_ms: float
    queries_executed: int
    rows_affected: int
    modified_tables: list[str]


class LockInfo(BaseModel):
    lock_id: str
    lock_type: LockMode
    resource_type: str = Field(description="table, or schema (the schema file's one writer slot)")
    resource_id: str
    transaction_id: int
    granted: bool
    acquired_at: int | None = Field(description="null while the lock is waited for")
    # additions
    session_id: int
    wait_started_at: int | None
    blocked_by: list[int] = Field(description="sessions this waiter waits for; empty when granted")

    @classmethod
    def of(cls, lock: EngineLockInfo) -> LockInfo:
        return cls(lock_id=lock.lock_id, lock_type=lock.mode, resource_type=lock.resource_type,
                   resource_id=lock.resource, transaction_id=lock.transaction_id, granted=lock.granted,
                   acquired_at=ts(lock.since) if lock.granted else None, session_id=lock.session_id,
                   wait_started_at=None if lock.granted else ts(lock.since), blocked_by=list(lock.blocked_by))


class LockStatusResponse(BaseModel):
    total_locks: int
    granted_locks: int
    waiting_locks: int
    locks: list[LockInfo]


class ActiveTransactionInfo(BaseModel):
    transaction_id: int
    session_id: int
    started_at: int
    isolation_level: str
    state: str = Field(description="active: every listed transaction is open; session_state says what it does")
    read_only: bool
    queries_executed: int
    rows_affected: int
    locks_held: int
    # additions
    username: str
    application_name: str
    session_state: str
    wait_event: str | None
    blocking_session: int | None
    current_query: str | None
    duration_ms: float
    owner: str | None = Field(description="who began it over the REST API; null for other sessions' transactions")


class TransactionDetails(ActiveTransactionInfo):
    locks_held: list[LockInfo] = Field(description="granted locks")  # type: ignore[assignment]
    modified_tables: list[str]
    wal_bytes_written: int | None = Field(description="always null: SQLite does not attribute WAL frames to "
                                                      "transactions")
    # addition
    waiting_for: LockInfo | None


class LockWaiter(BaseModel):
    transaction_id: int
    waiting_for_transaction: int
    lock_type: LockMode
    resource_type: str
    resource_id: str
    wait_time_ms: int
    # additions
    session_id: int
    waiting_for_session: int


class LockWaitGraph(BaseModel):
    waiters: list[LockWaiter] = Field(description="one per (waiter, blocker) pair: holders of conflicting "
                                                  "locks and conflicting waiters ahead in the queue")
    potential_deadlocks: list[list[int]] = Field(description="transactions waiting for each other in a cycle now "
                                                             "(the detector breaks such cycles within "
                                                             "deadlock_check_interval_ms)")


class BlockingTreeNode(BaseModel):
    session_id: int
    transaction_id: int | None
    username: str | None
    sql: str | None
    resource: str | None = Field(description="what this session waits for; null for a root blocker")
    wait_started_at: int | None
    wait_seconds: float | None
    blocked: list[BlockingTreeNode]
    # additions: what the session is doing, so a root blocker explains itself
    state: str | None = Field(description="idle, active, idle in transaction or waiting; null once it has ended")
    state_seconds: float | None = Field(description="how long it has been in that state")
    transaction_seconds: float | None = Field(description="age of its open transaction; null without one")
    client_address: str | None
    application_name: str | None
    last_sql: str | None = Field(description="the statement running, else the last one it ran (an idle in "
                                              "transaction session's last statement)")


class LockWaitGraphWithTree(LockWaitGraph):
    blocking_tree: list[BlockingTreeNode] = Field(description="root blockers with the chains waiting behind them")


class DeadlockParticipant(BaseModel):
    session_id: int
    transaction_id: int
    sql: str | None
    waiting_for: str
    holding: list[str]


class DeadlockInfo(BaseModel):
    deadlock_id: str
    detected_at: int
    transactions: list[int]
    victim_transaction: int
    resolution: str = Field(description="abort_youngest: the most recently started transaction in the cycle is "
                                        "rolled back")
    # additions
    victim_session: int
    participants: list[DeadlockParticipant]
    resources: list[str]

    @classmethod
    def of(cls, d: Deadlock) -> DeadlockInfo:
        return cls(deadlock_id=str(d.deadlock_id), detected_at=int(d.detected_at),
                   transactions=[p.transaction_id for p in d.participants], victim_transaction=d.victim_transaction,
                   resolution="abort_youngest", victim_session=d.victim_session,
                   participants=[DeadlockParticipant(session_id=p.session_id, transaction_id=p.transaction_id,
                                                     sql=p.sql, waiting_for=p.waiting_for, holding=list(p.holding))
                                 for p in d.participants],
                   resources=list(d.resources))


class DeadlockDetection(BaseModel):
    deadlocks_detected: int
    transactions_analyzed: int = Field(description="transactions waiting for a lock just before the run")
    timestamp: int
    # addition
    deadlocks: list[DeadlockInfo]


class WalFileStatus(BaseModel):
    schema_name: str
    path: str
    exists: bool
    size_bytes: int
    page_size: int | None
    frames: int | None = Field(description="valid frames in the log (the WAL index's mxFrame)")
    checkpointed_frames: int | None = Field(description="frames already copied into the database file (nBackfill)")

    @classmethod
    def of(cls, f: WalFile) -> WalFileStatus:
        return cls(schema_name=f.schema, path=str(f.path), exists=f.exists, size_bytes=f.size_bytes,
                   page_size=f.page_size, frames=f.frames, checkpointed_frames=f.checkpointed_frames)


class SchemaCheckpointResult(BaseModel):
    schema_name: str
    busy: bool = Field(description="a reader or writer kept the checkpoint from finishing")
    log_frames: int
    checkpointed_frames: int
    frames_written: int
    bytes_written: int


_LSN_DOC = ("SQLite has no LSN: frames in all schemas' WALs as a decimal string; it restarts from 0 when a "
            "checkpoint lets the log start over. Null when a WAL index cannot be read.")


class CheckpointResult(BaseModel):
    checkpoint_lsn: str = Field(description="frames checkpointed in all WALs after the run (see current_lsn)")
    started_at: int
    completed_at: int
    duration_ms: int
    pages_written: int = Field(description="WAL frames copied into the database files by this run")
    bytes_written: int = Field(description="frames copied times the page size")
    # additions
    mode: CheckpointMode
    busy: bool
    schemas: list[SchemaCheckpointResult]

    @classmethod
    def of(cls, c: Checkpoint) -> CheckpointResult:
        return cls(checkpoint_lsn=str(c.checkpointed_frames), started_at=int(c.started_at),
                   completed_at=int(c.completed_at), duration_ms=round(c.duration_ms),
                   pages_written=c.frames_written, bytes_written=c.bytes_written, mode=c.mode, busy=c.busy,
                   schemas=[SchemaCheckpointResult(schema_name=s.schema, busy=s.busy, log_frames=s.log_frames,
                                                   checkpointed_frames=s.checkpointed_frames,
                                                   frames_written=s.frames_written, bytes_written=s.bytes_written)
                            for s in c.schemas])


class WalStatus(BaseModel):
    current_lsn: str | None = Field(description=_LSN_DOC)
    checkpoint_lsn: str | None = Field(description="frames already checkpointed, counted like current_lsn")
    wal_files: int
    wal_size_bytes: int
    write_rate_mbps: float | None = Field(description="always null: SQLite does not count WAL bytes written")
    sync_rate_mbps: float | None = Field(description="always null: SQLite does not count WAL syncs")
    last_checkpoint: int | None = Field(description="when the last checkpoint run through this API finished; "
                                                    "SQLite's automatic checkpoints are not timed")
    checkpoint_in_progress: bool = Field(description="a checkpoint run through this API is running")
    # additions
    files: list[WalFileStatus]
    last_checkpoint_result: CheckpointResult | None


class CheckpointRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    mode: CheckpointMode = Field(CheckpointMode.PASSIVE, description="SQLite's wal_checkpoint mode")


# -- transactions ----------------------------------------------------------------------------

@router.post("", response_model=TransactionResponse)
def begin_transaction(engine: EngineDep, who: Admin, request: Request,
                      body: Annotated[TransactionRequest | None, Body()] = None) -> TransactionResponse:
    """Begin a transaction in a session of its own; pass its id to POST /api/v1/query."""
    body = body or TransactionRequest()
    remote = engine.remote.begin(who, request.client.host if request.client else "unknown",
                                 body.isolation_level.value if body.isolation_level else None, bool(body.read_only))
    return TransactionResponse(transaction_id=remote.transaction_id, isolation_level=ISOLATION_LEVEL,
                               started_at=int(remote.started_at), status="active", session_id=remote.session.id,
                               read_only=bool(body.read_only),
                               requested_isolation_level=remote.requested_isolation_level)


@router.post("/{transaction_id}/commit", response_model=TransactionEndResponse)
def commit_transaction(engine: EngineDep, who: Admin, transaction_id: TransactionId) -> TransactionEndResponse:
    return _ended(engine, engine.remote.commit(who, transaction_id), "committed")


@router.post("/{transaction_id}/rollback", response_model=TransactionEndResponse)
def rollback_transaction(engine: EngineDep, who: Admin, transaction_id: TransactionId) -> TransactionEndResponse:
    return _ended(engine, engine.remote.rollback(who, transaction_id), "rolled_back")


def _ended(engine: EngineDep, txn: Transaction, status: str) -> TransactionEndResponse:
    return TransactionEndResponse(transaction_id=txn.id, status=status, session_id=txn.session_id,
                                  started_at=int(txn.started_at),
                                  duration_ms=round((engine.clock.monotonic() - txn.started_mono) * 1000, 3),
                                  queries_executed=txn.queries_executed, rows_affected=txn.rows_affected,
                                  modified_tables=sorted(txn.modified_tables))


@router.get("/active", response_model=list[ActiveTransactionInfo])
def active_transactions(engine: EngineDep, _: Monitor) -> list[ActiveTransactionInfo]:
    """Every session's explicit transactions, oldest first (autocommit statements are not listed)."""
    txns = sorted(engine.transactions.active.values(), key=lambda t: t.started_mono)
    return [ActiveTransactionInfo(**_transaction_fields(engine, t), locks_held=len(engine.locks.held_by(t.id)))
            for t in txns]


def _transaction_fields(engine: EngineDep, txn: Transaction) -> dict:
    session = txn.session.info()
    remote = engine.remote.owned(txn.id)
    return dict(transaction_id=txn.id, session_id=txn.session_id, started_at=int(txn.started_at),
                isolation_level=ISOLATION_LEVEL, state="active", read_only=txn.read_only,
                queries_executed=txn.queries_executed, rows_affected=txn.rows_affected, username=session.username,
                application_name=session.application_name, session_state=session.state.value,
                wait_event=session.wait_event, blocking_session=session.blocking_session,
                current_query=session.current_sql,
                duration_ms=round((engine.clock.monotonic() - txn.started_mono) * 1000, 3),
                owner=remote.owner if remote else None)


# -- locks -----------------------------------------------------------------------------------

@router.get("/locks", response_model=LockStatusResponse)
def locks(engine: EngineDep, _: Monitor) -> LockStatusResponse:
    out = [LockInfo.of(lock) for lock in engine.locks.locks()]
    granted = sum(1 for lock in out if lock.granted)
    return LockStatusResponse(total_locks=len(out), granted_locks=granted, waiting_locks=len(out) - granted, locks=out)


def _waiters(engine: EngineDep, edges: list[WaitEdge]) -> list[LockWaiter]:
    now = engine.clock.time()
    # schema names cannot hold a dot, so a dotted resource is a table (locks.Resource.__str__)
    return [LockWaiter(transaction_id=e.waiter_txn, waiting_for_transaction=e.holder_txn, lock_type=e.mode,
                       resource_type="table" if "." in e.resource else "schema", resource_id=e.resource,
                       wait_time_ms=max(0, round((now - e.wait_started_at) * 1000)), session_id=e.waiter_session,
                       waiting_for_session=e.holder_session)
            for e in edges]


@router.get("/locks/waiters", response_model=LockWaitGraph)
def lock_waiters(engine: EngineDep, _: Monitor) -> LockWaitGraph:
    edges = engine.locks.edges()
    return LockWaitGraph(waiters=_waiters(engine, edges), potential_deadlocks=wait_cycles(edges))


@router.get("/locks/graph", response_model=LockWaitGraphWithTree)
def lock_graph(engine: EngineDep, _: Monitor) -> LockWaitGraphWithTree:
    edges = engine.locks.edges()
    tree = engine.locks.blocking_tree()
    # only the sessions in the tree are read: copying every session cost more than the rest together
    wanted: set[int] = set()
    stack = list(tree)
    while stack:
        n = stack.pop()
        wanted.add(n.session_id)
        stack.extend(n.blocked)
    sessions = {s.id: s.info() for s in engine.session_objects() if s.id in wanted}
    now = engine.clock.time()

    def node(n: BlockingNode) -> BlockingTreeNode:
        s = sessions.get(n.session_id)
        return BlockingTreeNode(session_id=n.session_id, transaction_id=n.transaction_id,
                                username=s.username if s else None, sql=s.current_sql if s else None,
                                resource=n.resource, wait_started_at=ts(n.wait_started_at),
                                wait_seconds=None if n.wait_started_at is None else
                                round(max(0.0, now - n.wait_started_at), 3),
                                blocked=[node(child) for child in n.blocked],
                                state=s.state.value if s else None,
                                state_seconds=round(max(0.0, now - s.state_since), 3) if s else None,
                                transaction_seconds=None if s is None or s.transaction_started_at is None else
                                round(max(0.0, now - s.transaction_started_at), 3),
                                client_address=s.client_address if s else None,
                                application_name=s.application_name if s else None,
                                last_sql=s.last_sql if s else None)

    return LockWaitGraphWithTree(waiters=_waiters(engine, edges), potential_deadlocks=wait_cycles(edges),
                                 blocking_tree=[node(root) for root in tree])


# -- deadlocks -------------------------------------------------------------------------------

@router.get("/deadlocks", response_model=list[DeadlockInfo])
def deadlocks(engine: EngineDep, _: Monitor) -> list[DeadlockInfo]:
    """Deadlocks the engine broke, newest first (a bounded history)."""
    return [DeadlockInfo.of(d) for d in reversed(engine.locks.deadlocks)]


@router.post("/deadlocks/detect", response_model=DeadlockDetection)
def detect_deadlocks(engine: EngineDep, _: Operator) -> DeadlockDetection:
    """Run the deadlock detector now instead of at its next interval."""
    waiting = sum(1 for lock in engine.locks.locks() if not lock.granted)
    found = engine.detect_deadlocks()
    return DeadlockDetection(deadlocks_detected=len(found), transactions_analyzed=waiting,
                             timestamp=int(engine.clock.time()), deadlocks=[DeadlockInfo.of(d) for d in found])


# -- WAL -------------------------------------------------------------------------------------

@router.get("/wal/status", response_model=WalStatus)
def wal_status(engine: EngineDep, _: Monitor) -> WalStatus:
    state = engine.wal.status()
    last = state.last_checkpoint
    return WalStatus(current_lsn=None if state.frames is None else str(state.frames),
                     checkpoint_lsn=None if state.checkpointed_frames is None else str(state.checkpointed_frames),
                     wal_files=sum(1 for f in state.files if f.exists),
                     wal_size_bytes=sum(f.size_bytes for f in state.files), write_rate_mbps=None, sync_rate_mbps=None,
                     last_checkpoint=ts(last.completed_at) if last else None,
                     checkpoint_in_progress=state.checkpoint_in_progress,
                     files=[WalFileStatus.of(f) for f in state.files],
                     last_checkpoint_result=CheckpointResult.of(last) if last else None)


@router.post("/wal/checkpoint", response_model=CheckpointResult)
def wal_checkpoint(engine: EngineDep, who: Operator,
                   body: Annotated[CheckpointRequest | None, Body()] = None) -> CheckpointResult:
    """Checkpoint every schema's WAL now (SQLite's PRAGMA wal_checkpoint; passive unless asked)."""
    return CheckpointResult.of(engine.wal.checkpoint((body or CheckpointRequest()).mode, by=who.name))


# -- one transaction (after the fixed paths, which its int id would otherwise shadow) ----------

@router.get("/{transaction_id}", response_model=TransactionDetails)
def transaction_details(engine: EngineDep, _: Monitor, transaction_id: TransactionId) -> TransactionDetails:
    txn = engine.transactions.active.get(transaction_id)
    if txn is None:
        raise NotFound(f"Transaction {transaction_id} not found", transaction_id=transaction_id)
    mine = [LockInfo.of(lock) for lock in engine.locks.locks() if lock.transaction_id == transaction_id]
    return TransactionDetails(**_transaction_fields(engine, txn), locks_held=[lock for lock in mine if lock.granted],
                              modified_tables=sorted(txn.modified_tables), wal_bytes_written=None,
                              waiting_for=next((lock for lock in mine if not lock.granted), None))
