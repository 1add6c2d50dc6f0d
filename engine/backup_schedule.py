"""The backup schedule: two cron expressions (UTC, five fields), retention, and what backups look like.

It persists in `backup.json` in the data directory, together with every directory that ever held
backups (so backups written to an earlier destination are still found after a restart).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from croniter import croniter

from .backup_codec import COMPRESSIONS, NO_KEY
from .errors import Conflict, InvalidInput, NotFound

STATE_FILE = "backup.json"
MAX_RETENTION_DAYS = 36500


@dataclass(frozen=True)
class BackupSchedule:
    enabled: bool = False
    full_backup_cron: str = "0 2 * * 0"
    incremental_backup_cron: str = "0 2 * * 1-6"
    retention_days: int = 30
    compression: bool = True
    encryption: bool = False
    destination: str = ""  # "": the default destination (the backup_dir setting, else <data_dir>/backups)
    compression_algorithm: str = "zstd"

    def validated(self, key_configured: bool) -> BackupSchedule:
        for name in ("full_backup_cron", "incremental_backup_cron"):
            check_cron(name, getattr(self, name))
        if self.retention_days <= 0:
            raise InvalidInput("retention_days must be greater than 0", field="retention_days")
        if self.retention_days > MAX_RETENTION_DAYS:
            raise InvalidInput(f"retention_days must be at most {MAX_RETENTION_DAYS}", field="retention_days")
        if self.compression_algorithm not in COMPRESSIONS:
            raise InvalidInput(f"compression_algorithm must be one of {', '.join(COMPRESSIONS)}",
                               field="compression_algorithm")
        # what the request cannot know from the document (the key, the file system) is a 409 or a 404
        if self.encryption and not key_configured:
            raise Conflict(NO_KEY, field="encryption")
        path = Path(self.destination)
        if not path.is_absolute():
            raise InvalidInput("destination must be the absolute path of an existing directory", field="destination")
        if not path.is_dir():
            raise NotFound(f"destination {self.destination} is not an existing directory", field="destination")
        return self


def _cron_field(value: str) -> str:
    item = f"(?:\\*|{value}(?:-{value})?)(?:/[1-9][0-9]?)?"
    return f"{item}(?:,{item})*"


_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_DAYS = "sun|mon|tue|wed|thu|fri|sat"
# The cron expressions a schedule takes, as the API documents them: five fields of numbers in range
# (names for months and days), ranges, steps and lists, or an @ alias. Six fields would mean seconds,
# which a check every few seconds cannot honour.
CRON_PATTERN = ("^(?:@(?:yearly|annually|monthly|weekly|daily|hourly|midnight)|" + " ".join(_cron_field(v) for v in (
    "(?:[1-5]?[0-9])", "(?:2[0-3]|1?[0-9])", "(?:3[01]|[12][0-9]|[1-9])", f"(?:1[0-2]|[1-9]|{_MONTHS})",
    f"(?:[0-7]|{_DAYS})")) + ")$")
_CRON = re.compile(CRON_PATTERN)


def check_cron(field: str, expr: str) -> None:
    if not _CRON.match(expr) or not croniter.is_valid(expr):
        raise InvalidInput(f"{field} is not a valid cron expression (five fields, UTC): {expr!r}", field=field)


def next_run(expr: str, after: float) -> float:
    """The first time strictly after `after` at which the cron expression fires."""
    return croniter(expr, datetime.fromtimestamp(after, UTC)).get_next(float)


def load_state(data_dir: Path) -> tuple[BackupSchedule, list[Path]]:
    path = data_dir / STATE_FILE
    if not path.exists():
        return BackupSchedule(), []
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(BackupSchedule)}
        schedule = BackupSchedule(**{k: v for k, v in state["schedule"].items() if k in known})
        return schedule, [Path(p) for p in state.get("destinations", [])]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path} cannot be read: {exc}", field="schedule") from exc


def save_state(data_dir: Path, schedule: BackupSchedule, destinations: list[Path]) -> None:
    path = data_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"schedule": dataclasses.asdict(schedule),
                               "destinations": [str(p) for p in destinations]}, indent=2), encoding="utf-8")
    os.replace(tmp, path)
