"""Sessions and connections: list, get, terminate; session statistics."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ...errors import InvalidInput
from ...sessions import Session, SessionState
from ...sessions import SessionInfo as EngineSessionInfo
from ..deps import EngineDep, Monitor, Operator
from ..models import DATABASE_NAME, SessionInfo
from ..pagination import PageParams, Pages, Paginated, SortOrder, paginate, sort_items

router = APIRouter(prefix="/api/v1", tags=["sessions"])

SessionId = Annotated[int, Path(ge=1, le=2**63 - 1)]
# Filtering, sorting and paging work on the live Session objects' fields, so that only the
# requested page is copied (Session.info) and turned into JSON.
_SORT = {
    "session_id": lambda s: s.id, "username": lambda s: s.user, "state": lambda s: s.state.value,
    "created_at": lambda s: s.connected_at, "last_activity": lambda s: s.last_activity,
    "state_seconds": lambda s: -s.state_since, "application_name": lambda s: s.application_name,
    "transaction_seconds": lambda s: -s.txn.started_at if s.txn is not None else -math.inf,
    "cpu_time_ms": lambda s: s.cpu_time_ms(), "statements": lambda s: s.counters.statements,
    "rows_returned": lambda s: s.counters.rows_read, "cache_misses": lambda s: s.counters.cache_misses,
    "pages_written": lambda s: s.counters.pages_written,
}
# What hurts first: waiting, then idle in transaction (holding locks), active, idle; the longest in
# its state first within each. A console's default order, so that its top rows can be asked for.
TRIAGE_RANK = {SessionState.WAITING: 0, SessionState.IDLE_IN_TRANSACTION: 1, SessionState.ACTIVE: 2,
               SessionState.IDLE: 3}
_STATS_SORT = {**_SORT, "triage": lambda s: (TRIAGE_RANK[s.state], s.state_since)}
MAX_STATS_LIMIT = 100_000


class ConnectionInfo(BaseModel):
    connection_id: int
    pool_id: str
    session_id: int
    username: str
    database: str
    client_address: str
    created_at: int
    last_activity: int
    queries_executed: int
    state: str
    idle_time_secs: int


class SessionStats(BaseModel):
    active_sessions: int
    idle_sessions: int
    sessions: list[SessionInfo]
    total_connections: int
    peak_connections: int
    # additions
    waiting_sessions: int
    idle_in_transaction_sessions: int
    max_connections: int


def _sessions(engine: EngineDep, state: SessionState | None = None, username: str | None = None) -> list[Session]:
    return [s for s in engine.session_objects()
            if (state is None or s.state is state) and (username is None or s.user == username)]


@router.get("/sessions", response_model=Paginated[SessionInfo])
def list_sessions(engine: EngineDep, _: Monitor, pages: Pages,
                  state: Annotated[SessionState | None, Query(description="only sessions in this state")] = None,
                  username: Annotated[str | None, Query(max_length=256)] = None) -> JSONResponse:
    page = paginate(_sessions(engine, state, username), pages, _SORT)
    now = engine.clock.time()
    page["data"] = [SessionInfo.of(s.info(), now) for s in page["data"]]
    # built from typed engine fields to the model's shape already: checking a thousand rows again
    # would cost more than building them
    return JSONResponse(page)


@router.get("/sessions/{session_id}", response_model=SessionInfo)
def get_session(engine: EngineDep, _: Monitor, session_id: SessionId) -> dict:
    return SessionInfo.of(engine.session(session_id).info(), engine.clock.time())


@router.delete("/sessions/{session_id}", status_code=204, response_class=Response)
def terminate_session(engine: EngineDep, who: Operator, session_id: SessionId) -> Response:
    engine.terminate(session_id, by=who.name)
    return Response(status_code=204)


def _connection(s: EngineSessionInfo, now: float) -> dict:
    return {"connection_id": s.session_id, "pool_id": "default", "session_id": s.session_id,
            "username": s.username, "database": DATABASE_NAME, "client_address": s.client_address or "unknown",
            "created_at": int(s.connected_at), "last_activity": int(s.last_activity),
            "queries_executed": s.counters.statements, "state": s.state.value,
            "idle_time_secs": int(now - s.last_activity) if s.state is SessionState.IDLE else 0}


@router.get("/connections", response_model=Paginated[ConnectionInfo])
def list_connections(engine: EngineDep, _: Monitor, pages: Pages) -> dict:
    page = paginate(_sessions(engine), pages, {"connection_id": _SORT["session_id"], "username": _SORT["username"],
                                               "state": _SORT["state"], "created_at": _SORT["created_at"]})
    now = engine.clock.time()
    page["data"] = [_connection(s.info(), now) for s in page["data"]]
    return page


@router.get("/connections/{connection_id}", response_model=ConnectionInfo)
def get_connection(engine: EngineDep, _: Monitor, connection_id: SessionId) -> dict:
    return _connection(engine.session(connection_id).info(), engine.clock.time())


@router.delete("/connections/{connection_id}", status_code=204, response_class=Response)
def kill_connection(engine: EngineDep, who: Operator, connection_id: SessionId) -> Response:
    engine.terminate(connection_id, by=who.name)
    return Response(status_code=204)


def _states(text: str | None) -> set[SessionState] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        return {SessionState(name) for name in names}
    except ValueError:
        raise InvalidInput(f"state must be a comma-separated list of {', '.join(s.value for s in SessionState)}",
                           field="state") from None


@router.get("/stats/sessions", response_model=SessionStats,
            description="Session counts by state and the sessions themselves. The counts always cover every "
                        "session; `state`, `sort_by`, `sort_order` and `limit` choose which sessions are listed "
                        "(for example the 500 that need attention first: `sort_by=triage&limit=500`), so that a "
                        "console watching thousands of sessions need not read them all every second.")
def session_stats(
        engine: EngineDep, _: Monitor,
        state: Annotated[str | None, Query(max_length=200, description="list only sessions in these states, "
                                           "comma-separated: idle, active, idle in transaction, waiting")] = None,
        sort_by: Annotated[str | None, Query(max_length=64, description="triage (waiting, idle in transaction, "
                                             "active, idle; longest in its state first), or one of "
                                             f"{', '.join(sorted(_SORT))}")] = None,
        sort_order: SortOrder = SortOrder.ASC,
        limit: Annotated[int | None, Query(ge=0, le=MAX_STATS_LIMIT,
                                           description="list at most this many sessions")] = None) -> JSONResponse:
    wanted = _states(state)
    objects = engine.session_objects()
    by_state = {s.value: 0 for s in SessionState}
    for s in objects:
        by_state[s.state.value] += 1
    # filter, order and cut on the live sessions, so only the listed ones are copied and serialised
    listed = [s for s in objects if wanted is None or s.state in wanted]
    listed = sort_items(listed, PageParams(sort_by=sort_by, sort_order=sort_order), _STATS_SORT)
    infos = [s.info() for s in (listed if limit is None else listed[:limit])]
    now = engine.clock.time()
    # built from typed engine fields in the model's shape, as list_sessions is: FastAPI checking every
    # row again cost more than building it (a console reads this every second)
    return JSONResponse({
        "active_sessions": by_state["active"] + by_state["waiting"], "idle_sessions": by_state["idle"],
        "sessions": [SessionInfo.of(i, now) for i in infos if wanted is None or i.state in wanted],
        "total_connections": len(objects), "peak_connections": engine.peak_sessions,
        "waiting_sessions": by_state["waiting"], "idle_in_transaction_sessions": by_state["idle in transaction"],
        "max_connections": engine.config.max_connections})
