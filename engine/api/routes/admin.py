"""Admin: the engine's settings (RustyDB's /admin/config) and maintenance jobs (/admin/maintenance)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ...config import MAX_PATH_CHARS, PROXY_LIST_PATTERN, SETTINGS, Applies
from ...engine import VERSION
from ...maintenance import Job, JobStatus, Operation, Step
from ..deps import Admin, EngineDep, Monitor, Operator
from ..models import ts
from ..pagination import Paginated, pages_sorted_by, paginate

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

SettingValue = bool | int | float | str
JobId = Annotated[str, Path(min_length=1, max_length=64)]


def _setting_schema(name: str) -> dict[str, Any]:
    """What check_setting accepts for this key, as JSON Schema."""
    f = SETTINGS[name]
    meta, kind = f.metadata, type(f.default)
    if kind is bool:
        return {"const": True} if name == "wal_enabled" else {"type": "boolean"}
    if kind is str:
        if meta["choices"]:
            return {"enum": list(meta["choices"])}
        if name == "trusted_proxies":
            return {"type": "string", "pattern": PROXY_LIST_PATTERN}
        # backup_dir: relative (inside the data directory), not climbing out, no control characters; an
        # absolute path inside RDBTOP_ALLOWED_DIRS is accepted too, which the document cannot know of
        return {"type": "string", "maxLength": MAX_PATH_CHARS,
                "pattern": "^(?!/)(?!(.*/)?\\.\\.(/|$))[^\\x00-\\x1f\\x7f]*$"}
    return {"type": "integer" if kind is int else "number", "minimum": meta["min"], "maximum": meta["max"]}


# the body as check_setting sees it: known keys only, each with its type and range
CONFIG_CHANGES_SCHEMA = {"type": "object", "additionalProperties": False,
                         "properties": {name: _setting_schema(name) for name in SETTINGS}}


class SettingInfo(BaseModel):
    value: SettingValue = Field(description="in force now")
    default: SettingValue
    unit: str
    min: int | float | None
    max: int | float | None
    applies: Applies = Field(description="live: at once; new_sessions: for sessions opened after the change; "
                                         "restart: when the engine next starts")
    live: bool = Field(description="a change applies without a restart")
    choices: list[str]
    doc: str
    saved: bool = Field(description="set in the settings file, so it survives a restart")
    pending_value: SettingValue | None = Field(description="saved and waiting for a restart; null when none waits")


class ConfigResponse(BaseModel):
    settings: dict[str, SettingValue] = Field(description="every setting's value in force now")
    version: str = Field(description="the engine's version")
    updated_at: int = Field(description="when the settings file was last written; the engine's start when never")
    # additions
    settings_meta: dict[str, SettingInfo]
    restart_pending: bool = Field(description="a saved setting applies only after a restart")
    pending_restart: dict[str, SettingValue] = Field(description="saved settings waiting for a restart")
    config_file: str


class ConfigUpdateResponse(ConfigResponse):
    changed: list[str] = Field(description="keys whose value this request changed")
    applied: list[str] = Field(description="changed keys in force now (live, or for new sessions)")


class MaintenanceOptions(BaseModel):
    """No operation takes options yet; any given is refused rather than ignored."""

    model_config = ConfigDict(extra="forbid")


class MaintenanceRequest(BaseModel):
    operation: str = Field(max_length=64, json_schema_extra={"enum": [o.value for o in Operation]},
                           description="vacuum, analyze, reindex or checkpoint (exact, lowercase); anything else "
                                       "is 400 INVALID_INPUT")
    target: str | None = Field(None, min_length=1, max_length=256,
                               description="a schema, schema.table, or a table name in exactly one schema; "
                                           "null for every schema. vacuum and checkpoint take a schema only")
    options: MaintenanceOptions | None = None


class MaintenanceStep(BaseModel):
    schema_name: str = Field(description="the schema this step worked on")
    table: str | None
    sql: str | None = Field(description="what ran; null when there was nothing to do (no index to rebuild)")
    started_at: int
    duration_ms: float | None = Field(description="null when several schemas were checkpointed in one pass")
    bytes_before: int | None = Field(description="vacuum: database file + WAL bytes; checkpoint: WAL bytes")
    bytes_after: int | None
    free_pages_before: int | None = Field(description="vacuum: free-list pages before")
    stat_rows: int | None = Field(description="analyze: sqlite_stat1 rows for the target afterwards")
    indexes: int | None = Field(description="reindex: indexes rebuilt")
    checkpoint_busy: bool | None = Field(description="readers or writers kept the checkpoint from finishing")
    frames_written: int | None = Field(description="WAL frames the checkpoint copied into the database file")

    @classmethod
    def of(cls, s: Step) -> MaintenanceStep:
        return cls(schema_name=s.schema, table=s.table, sql=s.sql, started_at=int(s.started_at),
                   duration_ms=s.duration_ms, bytes_before=s.bytes_before, bytes_after=s.bytes_after,
                   free_pages_before=s.free_pages_before, stat_rows=s.stat_rows, indexes=s.indexes,
                   checkpoint_busy=s.checkpoint_busy, frames_written=s.frames_written)


class MaintenanceJob(BaseModel):
    job_id: str
    operation: Operation
    status: JobStatus = Field(description="waiting: running, and its statement waits for a lock")
    target: str | None = Field(description="as resolved (schema or schema.table); null for every schema")
    requested_by: str
    created_at: int
    started_at: int | None
    completed_at: int | None
    duration_ms: float | None
    session_id: int = Field(description="the job's own session (application_name maintenance)")
    wait_event: str | None
    blocking_sessions: list[int]
    steps: list[MaintenanceStep]
    bytes_reclaimed: int | None = Field(description="vacuum: database file + WAL bytes before minus after")
    error: str | None
    error_code: str | None
    canceled_by: str | None

    @classmethod
    def of(cls, job: Job) -> MaintenanceJob:
        status, session = job.status, job.session
        waiting = status is JobStatus.WAITING
        return cls(job_id=job.job_id, operation=job.operation, status=status,
                   target=None if job.target.schema is None else str(job.target), requested_by=job.requested_by,
                   created_at=int(job.created_at), started_at=ts(job.started_at), completed_at=ts(job.completed_at),
                   duration_ms=job.duration_ms, session_id=session.id,
                   wait_event=session.wait_event if waiting else None,
                   blocking_sessions=list(session.blocking_sessions) if waiting else [],
                   steps=[MaintenanceStep.of(s) for s in list(job.steps)], bytes_reclaimed=job.bytes_reclaimed,
                   error=job.error, error_code=job.error_code, canceled_by=job.canceled_by)


def _config(engine: EngineDep) -> dict[str, Any]:
    states = engine.settings.describe(engine.config)
    pending = {s.name: s.pending_value for s in states if s.pending_value is not None}
    updated = engine.settings.updated_at
    return {
        "settings": {s.name: s.value for s in states}, "version": VERSION,
        "updated_at": int(updated if updated is not None else engine.started_at),
        "settings_meta": {s.name: SettingInfo(value=s.value, default=s.default, unit=s.unit, min=s.min, max=s.max,
                                              applies=s.applies, live=s.applies is not Applies.RESTART,
                                              choices=list(s.choices), doc=s.doc, saved=s.saved,
                                              pending_value=s.pending_value) for s in states},
        "restart_pending": bool(pending), "pending_restart": pending, "config_file": str(engine.settings.path),
    }


@router.get("/config", response_model=ConfigResponse)
def get_config(engine: EngineDep, _: Monitor) -> dict[str, Any]:
    return _config(engine)


@router.put("/config", response_model=ConfigUpdateResponse)
def put_config(engine: EngineDep, who: Admin,
               changes: Annotated[dict[str, Any], Body(description="{key: value}; every key is checked before "
                                                                   "any changes, then all are saved",
                                                       json_schema_extra=CONFIG_CHANGES_SCHEMA)]) -> dict[str, Any]:
    update = engine.settings.update(engine, changes, by=who.name)
    return {**_config(engine), "changed": list(update.changed), "applied": list(update.applied)}


@router.post("/maintenance", status_code=202, response_model=MaintenanceJob)
def start_maintenance(engine: EngineDep, who: Operator, request: MaintenanceRequest) -> MaintenanceJob:
    return MaintenanceJob.of(engine.maintenance.submit(request.operation, request.target, by=who.name))


_JOB_SORT = {"created_at": lambda j: j.created_at, "duration_ms": lambda j: j.duration_ms,
             "operation": lambda j: j.operation.value, "status": lambda j: j.status.value}


@router.get("/maintenance", response_model=Paginated[MaintenanceJob])
def list_maintenance(engine: EngineDep, _: Monitor, pages: pages_sorted_by(_JOB_SORT),
                     status: Annotated[JobStatus | None, Query(description="only jobs in this status")] = None) -> dict:
    jobs = [MaintenanceJob.of(j) for j in engine.maintenance.jobs()]
    return paginate([j for j in jobs if status is None or j.status is status], pages, _JOB_SORT)


class MaintenanceTargetSchema(BaseModel):
    schema_name: str
    tables: list[str] = Field(description="its tables, each a target as schema.table (analyze and reindex)")


class MaintenanceTargets(BaseModel):
    schemas: list[MaintenanceTargetSchema] = Field(description="every schema, each a target of every operation")


# before /maintenance/{job_id}, which would take "targets" for a job id
@router.get("/maintenance/targets", response_model=MaintenanceTargets)
def maintenance_targets(engine: EngineDep, _: Monitor) -> MaintenanceTargets:
    return MaintenanceTargets(schemas=[MaintenanceTargetSchema(schema_name=name, tables=tables)
                                       for name, tables in engine.maintenance.targets().items()])


@router.get("/maintenance/{job_id}", response_model=MaintenanceJob)
def get_maintenance(engine: EngineDep, _: Monitor, job_id: JobId) -> MaintenanceJob:
    return MaintenanceJob.of(engine.maintenance.job(job_id))


@router.post("/maintenance/{job_id}/cancel", response_model=MaintenanceJob)
def cancel_maintenance(engine: EngineDep, who: Operator, job_id: JobId) -> MaintenanceJob:
    return MaintenanceJob.of(engine.maintenance.cancel(job_id, by=who.name))
