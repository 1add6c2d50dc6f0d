"""Backups: the list, the schedule, and how old the last good one is (red past the threshold)."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from ..format import age, duration, size
from ..model import Snapshot
from ..safe import safe_text
from ..widgets.line import Part, fit
from ..widgets.table import Column, KeyedTable, Row
from .base import Pane, View

COLUMNS = [
    Column("id", "Backup", 16), Column("type", "Type", 11), Column("status", "Status", 10),
    Column("size", "Size", 10, right=True), Column("duration", "Took", 6, right=True, drop=1),
    Column("age", "Age", 7, right=True), Column("detail", "Error / path"),
]


class BackupsPane(Pane):
    area, title, key = "backups", "Backups", "backups"
    DEFAULT_CSS = "BackupsPane .summary { height: 2; }"

    def compose_body(self) -> ComposeResult:
        yield Static(classes="summary")
        yield KeyedTable(COLUMNS, id="backups-table")

    def draw(self, snap: Snapshot, view: View) -> None:
        p = view.palette
        backups = sorted(snap.backups, key=lambda b: -(b.start_time or 0))
        self.query_one(KeyedTable).sync([Row(b.backup_id, {
            "id": b.backup_id, "type": b.backup_type, "status": b.status, "size": size(b.size_bytes),
            "duration": duration(b.duration_seconds), "age": age(b.completion_time or b.start_time, snap.taken_at),
            "detail": b.error_message or b.location},
            style=p.critical if (b.status or "").lower() == "failed" else "" if b.good else p.waiting)
            for b in backups])
        good = [b for b in backups if b.good and (b.completion_time or b.start_time)]
        width = self.size.width or 200
        if good:
            last = max(good, key=lambda b: b.completion_time or b.start_time or 0)
            finished = last.completion_time or last.start_time or 0
            limit, source = (snap.backup_age_limit_hours * 3600, "the alert threshold") \
                if snap.backup_age_limit_hours is not None else (view.backup_max_age_seconds, "backup_max_age_hours")
            old = snap.taken_at - finished > limit
            style = p.critical if old else p.ok
            parts = [Part(Text(f"Last good backup finished {time.strftime('%Y-%m-%d %H:%M', time.localtime(finished))}"
                               f" ({age(finished, snap.taken_at)} ago)", style=style),
                          Text(f"Last good backup {age(finished, snap.taken_at)} ago", style=style))]
            if old:
                parts.append(Part(Text(f"older than {source} ({duration(limit)})", style=style),
                                  Text(f"over {duration(limit)}", style=style)))
            line = fit(parts, width, sep=", ")
        else:
            line = safe_text("No good backup on record.", width, style=p.critical)
        s = snap.schedule
        if s is None:
            sched = safe_text("schedule: –", width, style=p.muted)
        else:
            sched = safe_text(f"schedule: {'on' if s.enabled else 'off' if s.enabled is False else '–'} · full "
                              f"{s.full_cron or '–'} · incremental {s.incremental_cron or '–'} · keep "
                              f"{s.retention_days if s.retention_days is not None else '–'} days", width, style=p.muted)
        self.query_one(".summary", Static).update(Text.assemble(line, "\n", sched))
