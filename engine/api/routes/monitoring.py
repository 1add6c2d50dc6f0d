"""Active Session History: the sampler's ring, filtered, and its top-N groups."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ...ash import GROUPS, AshBucket, AshSample
from ...sessions import SessionState, WaitClass
from ..deps import EngineDep, Monitor

router = APIRouter(prefix="/api/v1", tags=["ash"])

AshGroup = StrEnum("AshGroup", {g.upper(): g for g in GROUPS})  # type: ignore[misc]
UnixSeconds = Annotated[int | None, Query(ge=0, le=253_402_300_799, description="Unix seconds")]


class ASHSample(BaseModel):
    sample_time: int
    session_id: int
    sql_id: str | None
    sql_text: str | None
    wait_event: str | None
    wait_time_ms: int | None = Field(description="time the session had been in its current state")
    blocking_session: int | None
    cpu_time_ms: int | None = Field(description="the session's CPU time up to the sample, in whole ms, as "
                                                "cpu_time_ms in /sessions says it")
    user_name: str
    program: str | None = Field(description="the session's application_name")
    module: str | None
    action: str | None
    # additions
    sample_id: int
    wait_class: str | None
    state: str
    query_id: str | None

    @classmethod
    def of(cls, s: AshSample) -> ASHSample:
        return cls(sample_time=int(s.sample_time), session_id=s.session_id, sql_id=s.sql_id, sql_text=s.sql_text,
                   wait_event=s.wait_event, wait_time_ms=round(max(0.0, s.time_in_state) * 1000),
                   blocking_session=s.blocking_session, cpu_time_ms=round(s.cpu_time_ms), user_name=s.username,
                   program=s.program or None, module=None, action=None, sample_id=s.sample_id,
                   wait_class=s.wait_class, state=s.state, query_id=s.query_id)


class TimeRange(BaseModel):
    start: int
    end: int


class ASHBucket(BaseModel):
    key: str
    samples: int
    percent: float
    average_active_sessions: float
    example: str | None = Field(description="SQL text for sql_id groups, user@program for session groups")

    @classmethod
    def of(cls, b: AshBucket) -> ASHBucket:
        return cls(key=b.key, samples=b.samples, percent=round(b.percent, 3),
                   average_active_sessions=round(b.average_active_sessions, 3), example=b.example)


class ActiveSessionHistoryResponse(BaseModel):
    samples: list[ASHSample] = Field(description="oldest first; the newest `limit` of the matching samples")
    total_count: int = Field(description="samples matching the filters, before `limit`")
    sample_interval_seconds: float
    time_range: TimeRange
    # additions
    truncated: bool
    group_by: str | None
    top: list[ASHBucket] | None = Field(description="largest groups first, when group_by is given")


@router.get("/monitoring/ash", response_model=ActiveSessionHistoryResponse)
def active_session_history(
        engine: EngineDep, _: Monitor, start_time: UnixSeconds = None, end_time: UnixSeconds = None,
        session_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
        wait_event: Annotated[str | None, Query(max_length=256)] = None,
        wait_class: WaitClass | None = None,
        state: SessionState | None = None,
        sql_id: Annotated[str | None, Query(max_length=64)] = None,
        group_by: Annotated[AshGroup | None, Query(description="return the top groups by this key")] = None,
        top_limit: Annotated[int, Query(ge=1, le=1000, description="groups in `top`")] = 10,
        limit: Annotated[int, Query(ge=0, le=100_000, description="samples returned, newest kept; 0 for "
                                                                  "counts and groups only")] = 1000,
) -> ActiveSessionHistoryResponse:
    # a window that ends before it starts holds no samples: no rule a fuzzer could not know of
    empty = start_time is not None and end_time is not None and start_time > end_time
    ash = engine.ash
    filters = {"session_id": session_id, "wait_event": wait_event, "sql_id": sql_id,
               "wait_class": wait_class.value if wait_class else None, "state": state.value if state else None}
    matching = [] if empty else ash.window(start_time, end_time, **filters)  # type: ignore[arg-type]
    kept = matching[-limit:] if limit else []
    now = engine.clock.time()
    searched_from = max(engine.started_at, now - ash.config.ash_retention_secs)
    top = None if group_by is None else [] if empty else ash.top(group_by.value, start_time, end_time, top_limit,
                                                                 **filters)
    return ActiveSessionHistoryResponse(
        samples=[ASHSample.of(s) for s in kept], total_count=len(matching),
        sample_interval_seconds=ash.interval_seconds,
        time_range=TimeRange(start=int(searched_from) if start_time is None else start_time,
                             end=int(now) if end_time is None else end_time),
        truncated=len(kept) < len(matching), group_by=group_by.value if group_by else None,
        top=None if top is None else [ASHBucket.of(b) for b in top])
