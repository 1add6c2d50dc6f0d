"""What the backup service knows about each backup and restore, and the manifest a backup leaves on disk.

A backup is a directory `<destination>/<backup_id>` holding `manifest.json` and, per schema, the
stored copy (full: the database file; incremental and differential: the changed pages) and the
page digests the next incremental compares against. The manifest is rewritten at every change of
status, so a backup that was running when the engine stopped is found, and marked failed, at start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
BACKUP_ID = re.compile(r"backup_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class BackupType(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"  # the pages changed since the previous backup of the chain
    DIFFERENTIAL = "differential"  # the pages changed since the chain's full backup


class BackupStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class RestoreMode(StrEnum):
    VERIFY_ONLY = "verify_only"  # into a scratch directory, checked, then removed
    NEW_DIRECTORY = "new_directory"  # into target_database, a data directory an Engine can open
    IN_PLACE = "in_place"  # over the live schemas, after terminating every session


@dataclass
class BackupFile:
    schema: str
    file: str  # the stored copy, relative to the backup's directory
    digests_file: str
    database_bytes: int  # the schema's database file at the snapshot
    page_size: int
    page_count: int
    pages_stored: int
    content_bytes: int  # what the stored copy holds before compression and encryption
    stored_bytes: int
    sha256: str  # of the schema's database file at the snapshot (what a restore must rebuild)
    stored_sha256: str  # of the stored copy as it is on disk
    digests_sha256: str  # of the stored page digests


@dataclass
class BackupRecord:
    backup_id: str
    backup_type: BackupType
    status: BackupStatus
    requested_by: str
    requested_at: float
    location: str
    compression: str | None
    encrypted: bool
    retention_days: int
    description: str | None
    engine_version: str
    started_at: float | None = None
    snapshot_at: float | None = None  # the moment the backup's data is from
    completed_at: float | None = None  # when it completed or failed
    duration_ms: float | None = None
    key_id: str | None = None
    base_backup_id: str | None = None  # the chain's full backup (itself for a full)
    parent_backup_id: str | None = None  # what an incremental or differential is relative to
    error_message: str | None = None
    files: list[BackupFile] = field(default_factory=list)
    bytes_total: int = 0  # database bytes to copy, known once the snapshot is taken
    bytes_done: int = 0
    verification: dict[str, Any] | None = None  # the last verify's outcome

    @property
    def directory(self) -> Path:
        return Path(self.location)

    @property
    def start_time(self) -> float:
        """When the backup began; the request time while it waits its turn."""
        return self.started_at if self.started_at is not None else self.requested_at

    @property
    def retention_until(self) -> float:
        return self.start_time + self.retention_days * 86400

    @property
    def finished(self) -> bool:
        return self.status in (BackupStatus.COMPLETED, BackupStatus.FAILED)

    @property
    def content_bytes(self) -> int | None:
        return sum(f.content_bytes for f in self.files) if self.status is BackupStatus.COMPLETED else None

    @property
    def stored_bytes(self) -> int | None:
        return sum(f.stored_bytes for f in self.files) if self.status is BackupStatus.COMPLETED else None

    def save(self) -> None:
        data = {"manifest_version": MANIFEST_VERSION, **dataclasses.asdict(self)}
        path = self.directory / MANIFEST
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, directory: Path) -> BackupRecord:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        data.pop("manifest_version", None)
        files = [BackupFile(**f) for f in data.pop("files")]
        record = cls(**data, files=files)
        record.backup_type, record.status = BackupType(record.backup_type), BackupStatus(record.status)
        if record.backup_id != directory.name or not BACKUP_ID.fullmatch(record.backup_id):
            raise ValueError(f"manifest names backup {record.backup_id!r} but lies in {directory.name!r}")
        record.location = str(directory)  # the directory may have been moved with its backups
        return record


@dataclass
class RestoreRecord:
    restore_id: str
    backup_id: str
    mode: RestoreMode
    status: BackupStatus
    requested_by: str
    started_at: float
    message: str
    target: str | None
    point_in_time: float | None
    backups_applied: list[str]  # the chain, full backup first
    restored_to: float  # the snapshot time of the last backup applied
    completed_at: float | None = None
    duration_ms: float | None = None
    error_message: str | None = None
    terminated_sessions: int | None = None
    integrity: dict[str, str] | None = None  # schema -> PRAGMA integrity_check's verdict
    schemas: list[str] = field(default_factory=list)
    schemas_not_in_backup: list[str] = field(default_factory=list)  # in place: live schemas left as they were
