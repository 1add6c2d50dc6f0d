"""The engine's log (RustyDB's /logs): the in-memory ring, filtered and paginated, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ...logs import LogEntry as EngineLogEntry
from ...logs import LogLevel
from ..deps import EngineDep, Monitor
from ..pagination import pages_sorted_by, paginate

router = APIRouter(prefix="/api/v1", tags=["logs"])


class LogEntry(BaseModel):
    timestamp: int
    level: LogLevel
    message: str
    context: dict[str, Any] = Field(description="logger and thread; an audit record's fields (who, action, "
                                                "target, result, ...); the exception text of an error")
    # additions
    id: int = Field(description="the record's sequence number in this engine's log, rising")
    logger: str
    timestamp_ms: int

    @classmethod
    def of(cls, e: EngineLogEntry) -> LogEntry:
        return cls(timestamp=int(e.created), level=e.level, message=e.message, context=e.context, id=e.entry_id,
                   logger=e.logger, timestamp_ms=int(e.created * 1000))


class LogResponse(BaseModel):
    entries: list[LogEntry]
    total_count: int = Field(description="entries matching the filters, on every page")
    has_more: bool = Field(description="pages follow this one")
    # additions
    page: int
    page_size: int
    total_pages: int
    ring_size: int = Field(description="entries the in-memory log keeps (log_ring_size); older ones are gone")
    log_file: str


_SORT = {"timestamp": lambda e: e.created, "level": lambda e: e.levelno, "logger": lambda e: e.logger,
         "id": lambda e: e.entry_id}


@router.get("/logs", response_model=LogResponse)
def logs(engine: EngineDep, _: Monitor, pages: pages_sorted_by(_SORT),
         level: Annotated[LogLevel | None, Query(description="least severe level shown")] = None,
         since: Annotated[int | None, Query(ge=0, le=2**40, description="Unix seconds: entries from then on")] = None,
         search: Annotated[str | None, Query(min_length=1, max_length=256,
                                             description="in the message or logger name, any case")] = None,
         logger: Annotated[str | None, Query(min_length=1, max_length=256,
                                             description="this logger and those below it, e.g. engine.audit")] = None,
         ) -> LogResponse:
    found = engine.logs.query(level.value if level else None, since, search, logger)
    page = paginate(found, pages, _SORT)
    return LogResponse(entries=[LogEntry.of(e) for e in page["data"]], total_count=page["total_count"],
                       has_more=page["has_next"], page=page["page"], page_size=page["page_size"],
                       total_pages=page["total_pages"], ring_size=engine.logs.ring.capacity,
                       log_file=str(engine.logs.path))
