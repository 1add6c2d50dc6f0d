"""Statements: the running ones, one's status, cancel; and SQL execution, in a transaction or not."""

from __future__ import annotations

import base64
import math
from collections import Counter
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr,
                      field_validator)

from ...activity import StatementStatus, StatementView, cancel, statement_view
from ...statements import Result
from ...stats import StatementStats
from ..deps import Admin, EngineDep, Monitor, Operator
from ..models import CPU_TIME_NOTE, JsonInt, ts_ms

router = APIRouter(prefix="/api/v1/query", tags=["queries"])

QueryId = Annotated[str, Path(pattern=r"^q[1-9][0-9]{0,18}$", description="a statement id, e.g. q42")]
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
MAX_OFFSET = 1_000_000
MAX_SQL_CHARS = 100_000
MAX_PARAMS = 32_766  # SQLite's own limit on host parameters

Int64 = Annotated[int, Field(strict=True, ge=-2**63, le=2**63 - 1)]


def _not_an_integer(value: object) -> object:
    # an integer beyond SQLite's 64 bits would otherwise pass as a float and lose its digits
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError("integers must be between -2^63 and 2^63-1")
    return value


Float64 = Annotated[float, Field(strict=True, allow_inf_nan=False), BeforeValidator(_not_an_integer)]
Param = Int64 | Float64 | StrictStr | StrictBool | None
Value = int | float | str | None


class QueryStatusResponse(BaseModel):
    query_id: str
    status: StatementStatus
    progress_percent: float | None = Field(description="always null: SQLite cannot tell how far a statement has got")
    rows_scanned: int | None = Field(description="rows stepped through by full-table scans (SQLite's FULLSCAN_STEP; "
                                                 "index lookups not counted); null until the statement finishes")
    rows_returned: int | None = Field(description="null until the statement finishes")
    elapsed_ms: int
    estimated_remaining_ms: int | None = Field(description="always null: there is no progress to extrapolate")
    current_operation: str = Field(description="e.g. executing, waiting for lock on sales, completed")
    # additions
    session_id: int
    username: str | None
    sql_text: str
    sql_id: str
    started_at: int
    state: str | None = Field(description="the session's state while it runs this statement; null after")
    wait_event: str | None
    wait_class: str | None
    blocking_session: int | None
    blocking_sessions: list[int]
    rows_written: int | None = Field(description="rows inserted, updated or deleted; null until finished")
    vm_steps: int | None
    sorts: int | None
    error_code: str | None
    error_message: str | None
    stopped_by: str | None = Field(description="who canceled it or terminated its session")
    started_at_ms: int = Field(description="started_at in Unix milliseconds")
    cpu_time_ms: float | None = Field(description=CPU_TIME_NOTE + "; so far while it runs; null when it is not "
                                                  "timed yet (a light statement in its first 1,000 VM steps)")
    cache_hits: int | None = Field(description="pages found in the page cache so far: exact for a profiled "
                                               "execution (see /profiling/queries); for another counted from its "
                                               "first progress check (every 1,000 VM steps) to its latest, and null "
                                               "for one too short to reach one")
    cache_misses: int | None = Field(description="pages read from the database files; as cache_hits")
    pages_written: int | None = Field(description="pages written to the database files; as cache_hits")
    execution_plan: str | None = Field(description="the plan recorded for its fingerprint (EXPLAIN QUERY PLAN, one "
                                                   "step a line, indented under its parent); null before one was")
    plan_captured_at: int | None = Field(description="when that plan was recorded: first taken, or last seen to "
                                                     "change (Unix seconds)")

    @classmethod
    def of(cls, v: StatementView, stats: StatementStats) -> QueryStatusResponse:
        stmt, session, done = v.statement, v.session, v.statement.finished
        cpu = stmt.cpu_so_far_ms()
        plan, plan_at = stats.recorded_plan(stmt.sql_id)
        return cls(query_id=stmt.query_id, status=v.status, progress_percent=None,
                   rows_scanned=stmt.fullscan_steps if done else None, rows_returned=stmt.rows if done else None,
                   elapsed_ms=round(v.elapsed_ms), estimated_remaining_ms=None, current_operation=v.current_operation,
                   session_id=stmt.session_id, username=session.username if session else stmt.username,
                   sql_text=stmt.sql, sql_id=stmt.sql_id, started_at=int(stmt.started_at),
                   state=session.state.value if session else None,
                   wait_event=session.wait_event if session else None,
                   wait_class=session.wait_class if session else None,
                   blocking_session=session.blocking_session if session else None,
                   blocking_sessions=list(session.blocking_sessions) if session else [],
                   rows_written=stmt.rows_written if done else None, vm_steps=stmt.vm_steps if done else None,
                   sorts=stmt.sorts if done else None, error_code=stmt.error_code, error_message=stmt.error_message,
                   stopped_by=stmt.stopped_by, started_at_ms=ts_ms(stmt.started_at),
                   cpu_time_ms=None if cpu is None else round(cpu, 3),
                   cache_hits=stmt.cache_hits, cache_misses=stmt.cache_misses, pages_written=stmt.pages_written,
                   execution_plan=plan,
                   plan_captured_at=None if plan_at is None else int(plan_at))


# Request fields are strict: JSON's types are the contract, so "yes" is no boolean and "5" no number.
class CancelQueryRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reason: str | None = Field(None, max_length=1000, description="logged with the cancel")
    force: StrictBool | None = Field(None, description="accepted for RustyDB clients; changes nothing, as every cancel "
                                                 "already interrupts at once (a lock wait ends, SQLite stops at its "
                                                 "next progress check)")


class CancelQueryResponse(BaseModel):
    query_id: str
    status: str = Field(description="cancelled once the statement stopped by this cancel; cancelling if it has "
                                    "not stopped yet; completed or failed if it ended otherwise first")
    rows_processed: int | None = Field(description="rows it returned before it stopped; null while it runs")
    elapsed_ms: int
    message: str
    # additions
    session_id: int
    canceled_by: str
    reason: str | None


class RowFormat(StrEnum):
    OBJECT = "object"  # RustyDB's: one JSON object per row, keyed by column name
    ARRAY = "array"    # one JSON array per row, in column order; keeps columns that share a name


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS, description="one or more SQL statements")
    params: list[Param] | None = Field(None, max_length=MAX_PARAMS, description="positional parameters (?)")
    limit: JsonInt | None = Field(None, ge=1, le=MAX_LIMIT, description=f"rows returned at most; default {DEFAULT_LIMIT}")
    offset: JsonInt | None = Field(None, ge=0, le=MAX_OFFSET, description="rows skipped first (still read)")
    timeout: JsonInt | None = Field(None, ge=1, le=86_400, description="seconds; can shorten the server's "
                                                                  "query_timeout_secs for this request, not extend it")
    explain: StrictBool | None = Field(None, description="plan the (single) statement with EXPLAIN QUERY PLAN "
                                                        "and do not run it; rows are the plan's rows, plan its tree")
    transaction_id: JsonInt | None = Field(None, ge=1, le=2**63 - 1, description="run in this open transaction")
    # addition
    row_format: RowFormat = RowFormat.OBJECT

    @field_validator("sql")
    @classmethod
    def _not_blank(cls, sql: str) -> str:
        if not sql.strip():
            raise ValueError("must not be blank")
        return sql


class ColumnMetadata(BaseModel):
    name: str
    data_type: str | None = Field(description="the declared type (e.g. INTEGER); null for an expression")
    nullable: bool | None = Field(description="always null: a result set does not say")
    precision: int | None
    scale: int | None


class QueryResponse(BaseModel):
    query_id: str
    rows: list[dict[str, Value]] | list[list[Value]] = Field(
        description="objects (row_format object) or arrays (row_format array); a BLOB is a base64 string, "
                    "an infinite REAL the string Infinity or -Infinity")
    columns: list[ColumnMetadata]
    row_count: int
    affected_rows: int | None = Field(description="rows inserted, updated or deleted, triggers included")
    execution_time_ms: int
    plan: str | None
    warnings: list[str]
    has_more: bool
    # additions
    row_format: RowFormat
    transaction_id: int | None


@router.get("/active", response_model=list[QueryStatusResponse])
def active_queries(engine: EngineDep, _: Monitor) -> list[QueryStatusResponse]:
    """Statements running now in every session, longest-running first."""
    return [QueryStatusResponse.of(statement_view(engine, a.statement, a.session), engine.stats)
            for a in engine.active_statements()]


@router.get("/{query_id}/status", response_model=QueryStatusResponse)
def query_status(engine: EngineDep, _: Monitor, query_id: QueryId) -> QueryStatusResponse:
    """A running statement, or one of the recently finished ones."""
    return QueryStatusResponse.of(statement_view(engine, engine.statement(query_id)), engine.stats)


@router.post("/{query_id}/cancel", response_model=CancelQueryResponse)
def cancel_query(engine: EngineDep, who: Operator, query_id: QueryId,
                 body: Annotated[CancelQueryRequest | None, Body()] = None) -> CancelQueryResponse:
    reason = body.reason if body else None
    stmt = cancel(engine, query_id, by=who.name, reason=reason)
    v = statement_view(engine, stmt)
    if v.status is StatementStatus.CANCELED:
        status, message = "cancelled", f"Query {query_id} canceled by {who.name}"
    elif stmt.finished:
        status = v.status.value
        message = f"Query {query_id} ended ({v.current_operation}) before the cancel took effect"
    else:
        status, message = "cancelling", f"Query {query_id} has been interrupted but has not stopped yet"
    return CancelQueryResponse(query_id=query_id, status=status, rows_processed=stmt.rows if stmt.finished else None,
                               elapsed_ms=round(v.elapsed_ms), message=message, session_id=stmt.session_id,
                               canceled_by=who.name, reason=reason)


@router.post("", response_model=QueryResponse)
def execute_query(engine: EngineDep, who: Admin, request: Request, body: QueryRequest) -> QueryResponse:
    """Run SQL; a statement that waits for a lock keeps the request open until it gets the lock, times
    out (409 LOCK_TIMEOUT), is canceled (409 QUERY_CANCELED) or is a deadlock victim (409 DEADLOCK_DETECTED)."""
    client = request.client.host if request.client else "unknown"
    limit, offset = body.limit or DEFAULT_LIMIT, body.offset or 0
    plan = None
    warnings: list[str] = []
    if body.explain:
        result, plan = engine.remote.explain(who, body.sql, body.params, client_address=client,
                                             transaction_id=body.transaction_id)
        warnings.append("explain: the statement was planned, not run; rows are its EXPLAIN QUERY PLAN")
    else:
        result = engine.remote.execute(who, body.sql, body.params, client_address=client,
                                       transaction_id=body.transaction_id, max_rows=offset + limit,
                                       timeout_secs=body.timeout)
    rows = result.rows[offset:offset + limit]
    has_more = result.has_more or len(result.rows) > offset + limit
    if has_more:
        warnings.append(f"only {limit} rows after offset {offset} are returned (has_more)")
    return QueryResponse(query_id=result.query_id, rows=_rows(result, rows, body.row_format, warnings),
                         columns=_columns(result), row_count=len(rows), affected_rows=result.affected_rows,
                         execution_time_ms=round(result.execution_time_ms), plan=plan, warnings=warnings,
                         has_more=has_more, row_format=body.row_format, transaction_id=body.transaction_id)


def _columns(result: Result) -> list[ColumnMetadata]:
    types = result.declared_types or [None] * len(result.columns)
    return [ColumnMetadata(name=name, data_type=declared, nullable=None, precision=None, scale=None)
            for name, declared in zip(result.columns, types, strict=True)]


def _rows(result: Result, rows: list[tuple[Any, ...]], row_format: RowFormat,
          warnings: list[str]) -> list[dict[str, Value]] | list[list[Value]]:
    if row_format is RowFormat.ARRAY:
        return [[_json(v) for v in row] for row in rows]
    shared = sorted(name for name, n in Counter(result.columns).items() if n > 1)
    if shared:
        warnings.append(f"columns share a name ({', '.join(shared)}): each row object keeps the last; "
                        "use row_format array to keep all")
    return [{name: _json(v) for name, v in zip(result.columns, row, strict=True)} for row in rows]


def _json(value: Any) -> Value:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no infinity; SQLite turns NaN into NULL, so only the two infinities arrive here
        return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value
