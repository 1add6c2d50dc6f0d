"""Backups and restores (RustyDB §2.6, plus verify, restore status and §2.4's admin shortcut)."""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from ...backup import Verification
from ...backup_codec import COMPRESSIONS
from ...backup_records import BackupRecord, BackupStatus, BackupType, RestoreMode, RestoreRecord
from ...backup_schedule import CRON_PATTERN, MAX_RETENTION_DAYS, BackupSchedule
from ..deps import Admin, EngineDep, Monitor, Operator
from ..models import DATABASE_NAME, JsonInt, ts

router = APIRouter(prefix="/api/v1", tags=["backup"])

BackupId = Annotated[str, Path(min_length=1, max_length=128)]
RestoreId = Annotated[str, Path(min_length=1, max_length=128)]
CompressionAlgorithm = StrEnum("CompressionAlgorithm", {c: c for c in COMPRESSIONS})  # type: ignore[misc]
# 0 passes the type so that the service refuses it with its own message; the document says what it accepts
RetentionDays = Annotated[JsonInt, Field(ge=0, le=MAX_RETENTION_DAYS, json_schema_extra={"minimum": 1},
                                           description="days the backup is kept; must be greater than 0")]
_PATH = Annotated[StrictStr, Field(max_length=4096)]
Cron = Annotated[StrictStr, Field(max_length=200, json_schema_extra={"pattern": CRON_PATTERN},
                                  description="five fields (minute hour day-of-month month day-of-week, numbers, "
                                              "lowercase names, ranges, steps and lists), or @hourly, @daily, "
                                              "@weekly, @monthly, @yearly; UTC")]


# -- requests --------------------------------------------------------------------------------

class _BackupOptions(BaseModel):
    # compression_algorithm alone asks for compression; with compression false it is refused
    model_config = ConfigDict(extra="ignore", json_schema_extra={"not": {
        "required": ["compression", "compression_algorithm"],
        "properties": {"compression": {"const": False}, "compression_algorithm": {"type": "string"}}}})
    compression: StrictBool | None = Field(None, description="null: the schedule's setting")
    encryption: StrictBool | None = Field(
        None, description="AES-256-GCM with the configured backup key (RDBTOP_BACKUP_KEY or backup.key in the data "
                          "directory); true without a key is refused. null: the schedule's setting")
    destination: _PATH | None = Field(
        None, json_schema_extra={"pattern": "^/"},
        description="the schedule's destination (the default) or a directory that already holds backups")
    retention_days: RetentionDays | None = Field(None, description="null: the schedule's retention_days")
    description: Annotated[StrictStr, Field(max_length=1000)] | None = None
    # additions
    compression_algorithm: CompressionAlgorithm | None = Field(  # type: ignore[valid-type]
        None, description="gzip or zstd; null: the schedule's compression_algorithm")


class FullBackupRequest(_BackupOptions):
    backup_type: Literal[BackupType.FULL] | None = Field(None, description="optional: the path decides")


class IncrementalBackupRequest(_BackupOptions):
    backup_type: Literal[BackupType.INCREMENTAL] | None = Field(None, description="optional: the path decides")


class BackupRequest(_BackupOptions):
    backup_type: BackupType


_TRUE = {"const": True}


class RestoreRequest(BaseModel):
    """Where to restore: target_database, overwrite_existing (in place) or verify_only; verify_only
    takes neither of the others."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"allOf": [
        {"anyOf": [{"required": ["target_database"], "properties": {"target_database": {"type": "string"}}},
                   {"required": ["overwrite_existing"], "properties": {"overwrite_existing": _TRUE}},
                   {"required": ["verify_only"], "properties": {"verify_only": _TRUE}}]},
        {"not": {"required": ["verify_only"], "properties": {"verify_only": _TRUE}, "anyOf": [
            {"required": ["target_database"], "properties": {"target_database": {"type": "string"}}},
            {"required": ["overwrite_existing"], "properties": {"overwrite_existing": _TRUE}}]}}]})
    target_database: _PATH | None = Field(
        None, json_schema_extra={"pattern": "^/"},
        description="absolute path of a new (missing or empty) data directory to restore into, inside a "
                    "directory named in RDBTOP_ALLOWED_DIRS; the live data directory by any name, or a "
                    "directory inside it or holding one of its files, is a 409")
    point_in_time: Annotated[JsonInt, Field(ge=0, le=2**40)] | None = Field(
        None, description="Unix seconds: restore the latest backup of the chain taken at or before it")
    verify_only: StrictBool | None = Field(None, description="restore into a scratch directory, check, discard")
    overwrite_existing: StrictBool | None = Field(
        None, description="without target_database: restore in place, terminating every session first")


class BackupScheduleModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    enabled: StrictBool
    full_backup_cron: Cron
    incremental_backup_cron: Cron
    retention_days: RetentionDays
    compression: StrictBool
    encryption: StrictBool = Field(description="true needs a configured backup key")
    destination: _PATH = Field(json_schema_extra={"pattern": "^/"},
                               description="absolute path of an existing directory inside the data directory or "
                                           "a directory named in RDBTOP_ALLOWED_DIRS")
    # additions
    compression_algorithm: CompressionAlgorithm = CompressionAlgorithm("zstd")  # type: ignore[valid-type]


# -- responses -------------------------------------------------------------------------------

class BackupFileInfo(BaseModel):
    schema_name: str
    file: str
    database_bytes: int = Field(description="the schema's database file at the snapshot")
    page_size: int
    page_count: int
    pages_stored: int = Field(description="every page for a full backup; the changed ones otherwise")
    content_bytes: int = Field(description="what the stored file holds before compression and encryption")
    stored_bytes: int
    sha256: str = Field(description="SHA-256 of the schema's database file at the snapshot")
    stored_sha256: str = Field(description="SHA-256 of the stored file")


class VerificationInfo(BaseModel):
    verified_at: int
    status: str
    errors: list[str]
    verified_by: str


class BackupSummary(BaseModel):
    backup_id: str
    backup_type: str
    status: str = Field(description="pending, in_progress, completed or failed")
    start_time: int = Field(description="when the backup began; the request time while it is pending")
    size_bytes: int | None = Field(description="what the backup holds, before compression and encryption")
    location: str
    # additions
    completion_time: int | None
    snapshot_time: int | None = Field(description="the moment the backup's data is from")
    compressed_size_bytes: int | None
    stored_bytes: int | None
    description: str | None
    base_backup_id: str | None
    parent_backup_id: str | None
    error_message: str | None


class BackupDetails(BaseModel):
    backup_id: str
    backup_type: str
    status: str = Field(description="pending, in_progress, completed or failed")
    database_name: str
    start_time: int = Field(description="when the backup began; the request time while it is pending")
    completion_time: int | None = Field(description="when it completed or failed")
    size_bytes: int | None = Field(description="what the backup holds, before compression and encryption")
    compressed_size_bytes: int | None = Field(description="bytes stored, when compressed")
    location: str
    compression_enabled: bool
    encryption_enabled: bool
    retention_until: int | None
    description: str | None
    error_message: str | None
    # additions
    requested_at: int
    requested_by: str
    snapshot_time: int | None = Field(description="the moment the backup's data is from")
    duration_ms: float | None
    compression_algorithm: str | None
    stored_bytes: int | None
    database_bytes: int | None = Field(description="the database files' size at the snapshot")
    progress_percent: float | None
    bytes_processed: int
    bytes_total: int | None
    base_backup_id: str | None = Field(description="the full backup of this backup's chain")
    parent_backup_id: str | None = Field(description="what an incremental or differential backup is relative to")
    engine_version: str
    key_id: str | None = Field(description="names the encryption key, never reveals it")
    files: list[BackupFileInfo]
    verification: VerificationInfo | None


class BackupList(BaseModel):
    backups: list[BackupSummary]
    total_count: int


class BackupResponse(BaseModel):
    backup_id: str
    status: str
    started_at: int
    completed_at: int | None
    size_bytes: int | None
    location: str
    # additions
    backup_type: str


class ScheduleUpdated(BaseModel):
    success: bool
    message: str
    enabled: bool
    # additions
    schedule: BackupScheduleModel


class RestoreResponse(BaseModel):
    restore_id: str
    status: str = Field(description="in_progress, completed or failed")
    message: str
    started_at: int
    # additions
    backup_id: str
    mode: RestoreMode
    requested_by: str
    target_database: str | None
    point_in_time: int | None
    restored_to: int = Field(description="the snapshot time of the last backup applied")
    backups_applied: list[str] = Field(description="the chain, full backup first")
    completed_at: int | None
    duration_ms: float | None
    error_message: str | None
    terminated_sessions: int | None
    integrity: dict[str, str] | None = Field(description="schema -> PRAGMA integrity_check's verdict")
    schemas: list[str]
    schemas_not_in_backup: list[str] = Field(description="in place: live schemas the backup lacks, left as they are")


class FileCheckInfo(BaseModel):
    backup_id: str
    schema_name: str
    file: str
    checksum_ok: bool
    error: str | None


class VerifyResponse(BaseModel):
    backup_id: str
    status: str = Field(description="passed or failed")
    verified_at: int
    duration_ms: float
    backups_checked: list[str]
    files: list[FileCheckInfo]
    integrity: dict[str, str]
    errors: list[str]


# -- conversions -----------------------------------------------------------------------------

def _details(r: BackupRecord) -> BackupDetails:
    completed = r.status is BackupStatus.COMPLETED
    if completed:
        progress: float | None = 100.0
    elif r.status is BackupStatus.PENDING or not r.bytes_total:
        progress = None
    else:
        progress = round(100 * r.bytes_done / r.bytes_total, 1)
    v = r.verification
    return BackupDetails(
        backup_id=r.backup_id, backup_type=r.backup_type.value, status=r.status.value, database_name=DATABASE_NAME,
        start_time=int(r.start_time), completion_time=ts(r.completed_at), size_bytes=r.content_bytes,
        compressed_size_bytes=r.stored_bytes if r.compression else None, location=r.location,
        compression_enabled=r.compression is not None, encryption_enabled=r.encrypted,
        retention_until=int(r.retention_until), description=r.description, error_message=r.error_message,
        requested_at=int(r.requested_at), requested_by=r.requested_by, snapshot_time=ts(r.snapshot_at),
        duration_ms=r.duration_ms, compression_algorithm=r.compression, stored_bytes=r.stored_bytes,
        database_bytes=sum(f.database_bytes for f in r.files) if completed else None, progress_percent=progress,
        bytes_processed=r.bytes_done, bytes_total=r.bytes_total or None, base_backup_id=r.base_backup_id,
        parent_backup_id=r.parent_backup_id, engine_version=r.engine_version, key_id=r.key_id,
        files=[BackupFileInfo(schema_name=f.schema, file=f.file, database_bytes=f.database_bytes,
                              page_size=f.page_size, page_count=f.page_count, pages_stored=f.pages_stored,
                              content_bytes=f.content_bytes, stored_bytes=f.stored_bytes, sha256=f.sha256,
                              stored_sha256=f.stored_sha256) for f in r.files],
        verification=VerificationInfo(verified_at=int(v["verified_at"]), status=v["status"], errors=v["errors"],
                                      verified_by=v["verified_by"]) if v else None)


def _summary(r: BackupRecord) -> BackupSummary:
    return BackupSummary(**_details(r).model_dump(include=set(BackupSummary.model_fields)))


def _restore(r: RestoreRecord) -> RestoreResponse:
    return RestoreResponse(
        restore_id=r.restore_id, status=r.status.value, message=r.message, started_at=int(r.started_at),
        backup_id=r.backup_id, mode=r.mode, requested_by=r.requested_by, target_database=r.target,
        point_in_time=ts(r.point_in_time), restored_to=int(r.restored_to), backups_applied=r.backups_applied,
        completed_at=ts(r.completed_at), duration_ms=r.duration_ms, error_message=r.error_message,
        terminated_sessions=r.terminated_sessions, integrity=r.integrity, schemas=r.schemas,
        schemas_not_in_backup=r.schemas_not_in_backup)


def _schedule(s: BackupSchedule) -> BackupScheduleModel:
    return BackupScheduleModel.model_validate(asdict(s))


def _start(engine: EngineDep, kind: BackupType, body: _BackupOptions, by: str) -> BackupRecord:
    return engine.backup.start_backup(
        kind, by, compression=body.compression, encryption=body.encryption, destination=body.destination,
        retention_days=body.retention_days, description=body.description,
        compression_algorithm=body.compression_algorithm.value if body.compression_algorithm else None)


# -- routes ----------------------------------------------------------------------------------

@router.post("/backup/full", status_code=202, response_model=BackupDetails)
def full_backup(engine: EngineDep, who: Operator, body: FullBackupRequest) -> BackupDetails:
    return _details(_start(engine, BackupType.FULL, body, who.name))


@router.post("/backup/incremental", status_code=202, response_model=BackupDetails)
def incremental_backup(engine: EngineDep, who: Operator, body: IncrementalBackupRequest) -> BackupDetails:
    return _details(_start(engine, BackupType.INCREMENTAL, body, who.name))


@router.post("/admin/backup", response_model=BackupResponse)
def admin_backup(engine: EngineDep, who: Operator, body: BackupRequest) -> BackupResponse:
    r = _start(engine, body.backup_type, body, who.name)
    return BackupResponse(backup_id=r.backup_id, status=r.status.value, started_at=int(r.start_time),
                          completed_at=ts(r.completed_at), size_bytes=r.content_bytes, location=r.location,
                          backup_type=r.backup_type.value)


@router.get("/backup/list", response_model=BackupList)
def list_backups(engine: EngineDep, _: Monitor) -> BackupList:
    backups = [_summary(r) for r in engine.backup.backups()]
    return BackupList(backups=backups, total_count=len(backups))


@router.get("/backup/schedule", response_model=BackupScheduleModel)
def get_schedule(engine: EngineDep, _: Monitor) -> BackupScheduleModel:
    return _schedule(engine.backup.schedule())


@router.put("/backup/schedule", response_model=ScheduleUpdated)
def put_schedule(engine: EngineDep, who: Admin, body: BackupScheduleModel) -> ScheduleUpdated:
    fields = body.model_dump()
    fields["compression_algorithm"] = body.compression_algorithm.value
    schedule = engine.backup.set_schedule(BackupSchedule(**fields), who.name)
    return ScheduleUpdated(success=True, message="Backup schedule updated successfully", enabled=schedule.enabled,
                           schedule=_schedule(schedule))


@router.get("/backup/restores", response_model=list[RestoreResponse])
def list_restores(engine: EngineDep, _: Monitor) -> list[RestoreResponse]:
    return [_restore(r) for r in engine.backup.restores()]


@router.get("/backup/restores/{restore_id}", response_model=RestoreResponse)
def get_restore(engine: EngineDep, _: Monitor, restore_id: RestoreId) -> RestoreResponse:
    return _restore(engine.backup.restore_status(restore_id))


@router.get("/backup/{backup_id}", response_model=BackupDetails)
def get_backup(engine: EngineDep, _: Monitor, backup_id: BackupId) -> BackupDetails:
    return _details(engine.backup.backup(backup_id))


@router.delete("/backup/{backup_id}", status_code=204, response_class=Response)
def delete_backup(engine: EngineDep, who: Admin, backup_id: BackupId) -> Response:
    engine.backup.delete(backup_id, who.name)
    return Response(status_code=204)


@router.post("/backup/{backup_id}/restore", status_code=202, response_model=RestoreResponse)
def restore_backup(engine: EngineDep, who: Admin, backup_id: BackupId, body: RestoreRequest) -> RestoreResponse:
    return _restore(engine.backup.restore(
        backup_id, who.name, target_database=body.target_database, point_in_time=body.point_in_time,
        verify_only=bool(body.verify_only), overwrite_existing=bool(body.overwrite_existing)))


@router.post("/backup/{backup_id}/verify", response_model=VerifyResponse)
def verify_backup(engine: EngineDep, who: Operator, backup_id: BackupId) -> VerifyResponse:
    v: Verification = engine.backup.verify(backup_id, who.name)
    return VerifyResponse(
        backup_id=v.backup_id, status=v.status, verified_at=int(v.verified_at), duration_ms=v.duration_ms,
        backups_checked=v.backups_checked, integrity=v.integrity, errors=v.errors,
        files=[FileCheckInfo(backup_id=f.backup_id, schema_name=f.schema, file=f.file, checksum_ok=f.checksum_ok,
                             error=f.error) for f in v.files])
