"""Incidents (opened by the engine itself) and diagnostic dumps (written in the background)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ...diagnostics import SEVERITY_RANK, UNSET, Incident, IncidentKind, IncidentSeverity, IncidentStatus
from ...dumps import Dump, DumpStatus, DumpType
from ..deps import EngineDep, Monitor, Operator
from ..errors import ApiError
from ..models import ts
from ..pagination import pages_sorted_by, paginate

router = APIRouter(prefix="/api/v1/diagnostics", tags=["diagnostics"])

IncidentId = Annotated[int, Path(ge=1, le=2**63 - 1)]
DumpId = Annotated[uuid.UUID, Path(description="the dump_id POST /dump returned")]
_GONE = {410: {"model": ApiError, "description": "the dump expired and its file was deleted"}}
_CHUNK = 64 * 1024


# -- incidents -------------------------------------------------------------------------------

class IncidentSummary(BaseModel):
    id: str
    severity: IncidentSeverity
    status: IncidentStatus
    title: str
    description: str
    created_at: int
    updated_at: int
    resolved_at: int | None
    affected_components: list[str]
    assignee: str | None
    # additions
    kind: IncidentKind = Field(description="what opened it")
    occurrence_count: int = Field(description="how often the trouble happened while this incident was open")

    @classmethod
    def fields_of(cls, i: Incident) -> dict[str, Any]:
        return {"id": str(i.id), "severity": i.severity, "status": i.status, "title": i.title,
                "description": i.description, "created_at": int(i.created_at), "updated_at": int(i.updated_at),
                "resolved_at": ts(i.resolved_at), "affected_components": list(i.affected_components),
                "assignee": i.assignee, "kind": i.kind, "occurrence_count": i.occurrence_count}


class IncidentChange(BaseModel):
    at: int
    by: str
    field: str = Field(description="status, assignee or note")
    old: str | None
    new: str | None
    note: str | None


class IncidentDetails(IncidentSummary):
    evidence: dict[str, Any] = Field(description="what the engine saw when it opened the incident: the sessions "
                                                 "doing something, the lock table, the statements involved, and "
                                                 "the occurrences counted since")
    history: list[IncidentChange]

    @classmethod
    def of(cls, i: Incident) -> IncidentDetails:
        return cls(**cls.fields_of(i), evidence=i.evidence,
                   history=[IncidentChange(at=int(c.at), by=c.by, field=c.field, old=c.old, new=c.new, note=c.note)
                            for c in i.history])


class IncidentListResponse(BaseModel):
    incidents: list[IncidentSummary]
    total_count: int
    page: int
    page_size: int
    # additions
    total_pages: int
    has_next: bool
    has_prev: bool


class IncidentUpdate(BaseModel):
    """At least one of: a status, an assignee (null unassigns), a note. Asking for what holds already
    changes nothing and answers the incident as it is."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["status"], "properties": {"status": {"type": "string"}}}, {"required": ["assignee"]},
        {"required": ["note"], "properties": {"note": {"type": "string"}}}]})
    status: IncidentStatus | None = Field(None, description="open -> investigating -> resolved -> closed; resolved "
                                                            "may go back to investigating; closed is final")
    assignee: str | None = Field(None, min_length=1, max_length=128, description="null unassigns")
    note: str | None = Field(None, min_length=1, max_length=2000, description="kept in the incident's history")


_SORT = {"id": lambda i: i.id, "created_at": lambda i: i.created_at, "updated_at": lambda i: i.updated_at,
         "severity": lambda i: SEVERITY_RANK[i.severity], "status": lambda i: list(IncidentStatus).index(i.status)}


@router.get("/incidents", response_model=IncidentListResponse)
def list_incidents(engine: EngineDep, _: Monitor, pages: pages_sorted_by(_SORT),
                   severity: Annotated[IncidentSeverity | None, Query()] = None,
                   status: Annotated[IncidentStatus | None, Query()] = None) -> IncidentListResponse:
    """Newest first unless `sort_by` (id, created_at, updated_at, severity, status) says otherwise."""
    p = paginate(engine.incidents.incidents(severity, status), pages, _SORT)
    return IncidentListResponse(incidents=[IncidentSummary(**IncidentSummary.fields_of(i)) for i in p["data"]],
                                total_count=p["total_count"], page=p["page"], page_size=p["page_size"],
                                total_pages=p["total_pages"], has_next=p["has_next"], has_prev=p["has_prev"])


@router.get("/incidents/{incident_id}", response_model=IncidentDetails)
def get_incident(engine: EngineDep, _: Monitor, incident_id: IncidentId) -> IncidentDetails:
    return IncidentDetails.of(engine.incidents.get(incident_id))


@router.patch("/incidents/{incident_id}", response_model=IncidentDetails)
def update_incident(engine: EngineDep, who: Operator, incident_id: IncidentId,
                    body: Annotated[IncidentUpdate, Body()]) -> IncidentDetails:
    assignee = body.assignee if "assignee" in body.model_fields_set else UNSET
    return IncidentDetails.of(engine.incidents.update(incident_id, who.name, status=body.status, assignee=assignee,
                                                      note=body.note))


# -- dumps -----------------------------------------------------------------------------------

class DumpRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    dump_type: DumpType = Field(description="thread (every thread's stack), memory (process memory and the engine's "
                                            "largest structures), query_plan (EXPLAIN QUERY PLAN of every running "
                                            "statement), execution_stats (per-fingerprint statistics), lock (lock "
                                            "table, wait-for graph, blocking tree), full (a zip of all of them plus "
                                            "sessions, the last 15 minutes of ASH and the redacted settings)")


class DumpResponse(BaseModel):
    dump_id: str
    dump_type: DumpType
    status: DumpStatus
    created_at: int
    completed_at: int | None
    size_bytes: int | None = Field(description="the file's size once completed")
    download_url: str | None
    expires_at: int | None
    # additions
    error: str | None = Field(description="why a failed dump failed")
    requested_by: str
    started_at: int | None
    content_type: str = Field(description="application/json, or application/zip for full")

    @classmethod
    def of(cls, d: Dump) -> DumpResponse:
        return cls(dump_id=d.dump_id, dump_type=d.dump_type, status=d.status, created_at=int(d.created_at),
                   completed_at=ts(d.completed_at), size_bytes=d.size_bytes,
                   download_url=f"{router.prefix}/dump/{d.dump_id}/download", expires_at=int(d.expires_at),
                   error=d.error, requested_by=d.requested_by, started_at=ts(d.started_at),
                   content_type=d.media_type)


@router.post("/dump", status_code=202, response_model=DumpResponse)
def create_dump(engine: EngineDep, who: Operator, body: DumpRequest) -> DumpResponse:
    """Queue a dump; poll GET /dump/{dump_id} until it is completed, then download it."""
    return DumpResponse.of(engine.dumps.create(body.dump_type, who.name))


@router.get("/dump/{dump_id}", response_model=DumpResponse, responses=_GONE)
def get_dump(engine: EngineDep, _: Monitor, dump_id: DumpId) -> DumpResponse:
    return DumpResponse.of(engine.dumps.get(str(dump_id)))


@router.get("/dump/{dump_id}/download", response_class=StreamingResponse,
            responses={**_GONE, 200: {"description": "the dump file", "content": {"application/json": {},
                                                                                   "application/zip": {}}}})
def download_dump(engine: EngineDep, _: Monitor, dump_id: DumpId) -> StreamingResponse:
    """The file of a completed dump (409 while it is pending, in progress or failed)."""
    dump, file = engine.dumps.open(str(dump_id))
    return StreamingResponse(_chunks(file), media_type=dump.media_type,
                             headers={"Content-Disposition": f'attachment; filename="{dump.filename}"',
                                      "Content-Length": str(dump.size_bytes)})


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    with file:
        while chunk := file.read(_CHUNK):
            yield chunk
