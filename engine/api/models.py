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
                "commits": c.commits, "rollbacks": c.rollbacks}


class Message(BaseModel):
    message: str
