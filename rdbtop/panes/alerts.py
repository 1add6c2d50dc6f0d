"""Alerts: firing and acknowledged, by severity, with value, threshold, since and count."""

from __future__ import annotations

from ..format import age, number
from ..model import SEVERITY_RANK, Alert, Snapshot
from ..widgets.table import Column, KeyedTable, Row
from .base import TablePane, View

COLUMNS = [
    Column("severity", "Severity", 8), Column("state", "State", 12), Column("title", "Alert"),
    Column("value", "Value", 8, right=True, drop=2), Column("threshold", "Limit", 8, right=True, drop=2),
    Column("since", "Since", 7, right=True), Column("count", "Count", 5, right=True, drop=1),
    Column("ack", "Ack by", 10, drop=3),
]
STATE_RANK = {"firing": 0, "acknowledged": 1, "suppressed": 2, "resolved": 3}


class AlertsPane(TablePane):
    columns = COLUMNS
    area, title, key = "alerts", "Alerts", "alerts"

    def ordered(self, snap: Snapshot) -> list[Alert]:
        return sorted(snap.alerts, key=lambda a: (STATE_RANK.get(a.status, 4),
                                                  SEVERITY_RANK.get((a.severity or "").lower(), 9),
                                                  -(a.triggered_at or 0)))

    def draw(self, snap: Snapshot, view: View) -> None:
        p = view.palette
        alerts = self.ordered(snap)
        rows = []
        for a in alerts:
            sev = (a.severity or "").lower()
            style = p.muted if a.status != "firing" else p.critical if sev == "critical" else \
                p.waiting if sev in ("warning", "error", "high") else ""
            rows.append(Row(a.alert_id, {
                "severity": (a.severity or "–").upper(), "state": a.status, "title": a.title or a.description,
                "value": number(a.value, 2), "threshold": number(a.threshold, 2),
                "since": age(a.triggered_at, snap.taken_at), "count": a.occurrence_count, "ack": a.acknowledged_by},
                style=style))
        self.query_one(KeyedTable).sync(rows)
        firing = sum(1 for a in alerts if a.status == "firing")
        self.set_caption(f"{firing} firing, {len(alerts) - firing} other"
                         + (" · a: acknowledge" if view.actions else ""))

    def selected(self, snap: Snapshot) -> Alert | None:
        key = self.query_one(KeyedTable).selected_key
        return next((a for a in snap.alerts if a.alert_id == key), None)
