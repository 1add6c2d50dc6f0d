"""Response models shared by several areas (RustyDB's names first, our additions after)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, Strict

from ..sessions import SessionInfo as EngineSessionInfo

DATABASE_NAME = "rustydb"


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# An integer as JSON Schema counts them: 17.0 is one (a fraction, a string or a boolean is not)
JsonInt = Annotated[int, BeforeValidator(_integral), Strict()]


def ts(value: float | None) -> int | None:
    """RustyDB's timestamps are whole Unix seconds."""
    return None if value is None else int(value)


def ts_ms(value: float | None) -> int | None:
    """The sub-second twin of a RustyDB timestamp: Unix milliseconds."""
    return None if value is None else int(value * 1000)


CPU_TIME_NOTE = ("thread CPU time of the statements, in ms: measured around each execution of a statement "
                 "whose executions average 0.1 ms of CPU or more; a lighter one is measured on its profiled "
                 "executions and counted at their mean on the others, and timed from its 1,000th VM step on "
                 "when it runs longer; counted while monitoring_enabled is on")
CACHE_NOTE = ("from SQLite's per-connection page-cache counters since the session connected, brought up to date "
              "at least every 0.25 s while it runs statements with monitoring_enabled on")


class SessionInfo(BaseModel):
    session_id: int
    username: str
    database: str
    client_address: str | None
    created_at: int
    last_activity: int
    state: str = Field(description="idle, active, idle in transaction, or waiting (blocked on a lock)")
    current_query: str | None
    transaction_id: int | None
    # additions
    application_name: str
    wait_class: str | None
    wait_event: str | None
    blocking_session: int | None
    blocking_sessions: list[int]
    state_since: int
    state_seconds: float
    current_query_id: str | None
    sql_id: str | None
    query_started_at: int | None
    transaction_started_at: int | None
    statements: int
    rows_read: int
    rows_written: int
    errors: int
    commits: int
    rollbacks: int
    state_since_ms: int = Field(description="state_since in Unix milliseconds")
    transaction_started_at_ms: int | None = Field(description="transaction_started_at in Unix milliseconds")
    query_started_at_ms: int | None = Field(description="query_started_at in Unix milliseconds")
    cpu_time_ms: float = Field(description=CPU_TIME_NOTE + "; the running statement's so far included")
    cache_hits: int = Field(description="pages found in the page cache; " + CACHE_NOTE)
    cache_misses: int = Field(description="pages read from the database files; " + CACHE_NOTE)
    pages_written: int = Field(description="pages written to the database files; " + CACHE_NOTE)
    rows_returned: int = Field(description="rows returned to the client (rows_read counts the same rows)")

    @staticmethod
    def of(s: EngineSessionInfo, now: float) -> dict[str, Any]:
        """The JSON fields (a dict: FastAPI checks it against the model in Rust, far faster than
        building a model per session in Python)."""
        c = s.counters
        return {"session_id": s.session_id, "username": s.username, "database": DATABASE_NAME,
                "client_address": s.client_address, "created_at": int(s.connected_at),
                "last_activity": int(s.last_activity), "state": s.state.value, "current_query": s.current_sql,
                "transaction_id": s.transaction_id, "application_name": s.application_name,
                "wait_class": s.wait_class, "wait_event": s.wait_event, "blocking_session": s.blocking_session,
                "blocking_sessions": list(s.blocking_sessions), "state_since": int(s.state_since),
                "state_seconds": round(max(0.0, now - s.state_since), 3), "current_query_id": s.current_query_id,
                "sql_id": s.sql_id, "query_started_at": ts(s.query_started_at),
                "transaction_started_at": ts(s.transaction_started_at), "statements": c.statements,
                "rows_read": c.rows_read, "rows_written": c.rows_written, "errors": c.errors,
                "commits": c.commits, "rollbacks": c.rollbacks, "state_since_ms": int(s.state_since * 1000),
                "transaction_started_at_ms": ts_ms(s.transaction_started_at),
                "query_started_at_ms": ts_ms(s.query_started_at), "cpu_time_ms": round(c.cpu_time_ms, 3),
                "cache_hits": c.cache_hits, "cache_misses": c.cache_misses, "pages_written": c.pages_written,
                "rows_returned": c.rows_read}


class Message(BaseModel):
    message: str
