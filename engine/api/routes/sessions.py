"""Sessions and connections: list, get, terminate; session statistics."""

from __future__ import annotations

import math
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...engine import Engine
from ...sessions import Session, SessionState
from ...sessions import SessionInfo as EngineSessionInfo
from ..cache import engine_tick
from ..deps import EngineDep, Monitor, Operator
from ..models import DATABASE_NAME, SessionInfo
from ..pagination import (DEFAULT_PAGE_SIZE, PageNumber, PageParams, PageSize, Paginated, SortOrder, pages_sorted_by,
                          paginate, sort_items, sort_key_enum)

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
    page: int
    page_size: int
    total_pages: int
    total_count: int = Field(description="sessions in the listed states (all of them without `state`)")
    has_next: bool
    has_prev: bool


def _sessions(engine: EngineDep, state: SessionState | None = None, username: str | None = None) -> list[Session]:
    return [s for s in engine.session_objects()
            if (state is None or s.state is state) and (username is None or s.user == username)]


@router.get("/sessions", response_model=Paginated[SessionInfo])
def list_sessions(engine: EngineDep, _: Monitor, pages: pages_sorted_by(_SORT),
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


_CONNECTION_SORT = {"connection_id": _SORT["session_id"], "username": _SORT["username"], "state": _SORT["state"],
                    "created_at": _SORT["created_at"]}


@router.get("/connections", response_model=Paginated[ConnectionInfo])
def list_connections(engine: EngineDep, _: Monitor, pages: pages_sorted_by(_CONNECTION_SORT)) -> dict:
    page = paginate(_sessions(engine), pages, _CONNECTION_SORT)
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


_STATE_NAME = "|".join(s.value for s in SessionState)
STATE_LIST = f"^(?:{_STATE_NAME})(?:,(?:{_STATE_NAME}))*$"
StatsSortKey = sort_key_enum(_STATS_SORT)


def _listing(engine: Engine, wanted: frozenset[SessionState] | None, sort_by: str | None, sort_order: SortOrder,
             page: int, page_size: int) -> bytes:
    objects = engine.session_objects()
    counts = Counter(s.state for s in objects)  # by member: reading .value per session cost more
    by_state = {state.value: counts[state] for state in SessionState}
    # filter, order and cut on the live sessions, so only the listed ones are copied and serialised
    listed = [s for s in objects if wanted is None or s.state in wanted]
    listed = sort_items(listed, PageParams(sort_by=sort_by, sort_order=sort_order), _STATS_SORT)
    start = (page - 1) * page_size
    infos = [s.info() for s in listed[start:start + page_size]]
    now = engine.clock.time()
    pages = math.ceil(len(listed) / page_size) if listed and page_size else 0
    # built from typed engine fields in the model's shape, as list_sessions is: FastAPI checking every
    # row again cost more than building it
    return JSONResponse({
        "active_sessions": by_state["active"] + by_state["waiting"], "idle_sessions": by_state["idle"],
        "sessions": [SessionInfo.of(i, now) for i in infos if wanted is None or i.state in wanted],
        "total_connections": len(objects), "peak_connections": engine.peak_sessions,
        "waiting_sessions": by_state["waiting"], "idle_in_transaction_sessions": by_state["idle in transaction"],
        "max_connections": engine.config.max_connections, "page": page, "page_size": page_size,
        "total_pages": pages, "total_count": len(listed), "has_next": page < pages, "has_prev": page > 1}).body


@router.get("/stats/sessions", response_model=SessionStats,
            description="Session counts by state and the sessions themselves, a page at a time (RustyDB's "
                        f"`page` and `page_size`, {DEFAULT_PAGE_SIZE} by default). The counts always cover every "
                        "session; `state`, `sort_by` and `sort_order` choose which sessions are listed, and in "
                        "what order. `limit` asks for the first sessions of that order in one page larger than "
                        f"`page_size` allows (up to {MAX_STATS_LIMIT}): the 500 that need attention first are "
                        "`sort_by=triage&limit=500`; with `limit`, `page_size` is ignored. The answer is built "
                        "once per sampling tick (`ash_interval_ms`) and whenever sessions come or go, and is "
                        "shared by every client asking the same within it.")
def session_stats(
        engine: EngineDep, _: Monitor, request: Request,
        state: Annotated[str | None, Query(max_length=200, pattern=STATE_LIST,
                                           description="list only sessions in these states, comma-separated "
                                                       "without spaces: idle, active, idle in transaction, "
                                                       "waiting")] = None,
        sort_by: Annotated[StatsSortKey | None, Query(description="triage (waiting, idle in transaction, active, "
                                                                  "idle; longest in its state first), or a "
                                                                  "field")] = None,
        sort_order: SortOrder = SortOrder.ASC,
        page: PageNumber = 1,
        page_size: PageSize = DEFAULT_PAGE_SIZE,
        limit: Annotated[int | None, Query(ge=0, le=MAX_STATS_LIMIT,
                                           description="list at most this many sessions, in one page "
                                                       "(instead of page_size)")] = None) -> Response:
    wanted = None if state is None else frozenset(SessionState(name) for name in state.split(","))
    size = page_size if limit is None else limit
    objects = engine.session_objects()
    # a new tick, or a session come or gone (a terminate shows at once), makes a new answer
    version = (engine_tick(engine), len(objects), objects[-1].id if objects else 0)
    body = request.app.state.ticks.get(
        ("stats/sessions", wanted, sort_by, sort_order, page, size), version,
        lambda: _listing(engine, wanted, sort_by, sort_order, page, size))
    return Response(body, media_type="application/json")
