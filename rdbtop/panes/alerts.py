"""Alerts: firing and acknowledged, by severity, with value and threshold in their units, since,
count and who acknowledged; the selected alert's words and acknowledgements; the silences."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from ..format import age, duration, number, percent
from ..model import SEVERITY_RANK, Alert, Silence, Snapshot
from ..safe import safe_text
from ..widgets.line import Line
from ..widgets.table import Column, KeyedTable, Row
from .base import Pane, View

COLUMNS = [
    Column("severity", "Severity", 8), Column("state", "State", 12), Column("title", "Alert"),
    Column("value", "Value", 8, right=True, drop=2), Column("threshold", "Limit", 9, right=True, drop=2),
    Column("since", "Since", 7, right=True), Column("count", "Count", 5, right=True, drop=1),
    Column("ack", "Ack by", 14, drop=3),
]
SILENCES = [
    Column("matches", "Silence: matches"), Column("expires", "Expires", 13, right=True),
    Column("by", "By", 10, drop=1), Column("comment", "Comment", 24, drop=2),
]
STATE_RANK = {"firing": 0, "acknowledged": 1, "silenced": 2, "suppressed": 2, "pending": 3, "resolved": 4}


def with_unit(value: float | None, unit: str | None) -> str:
    """A value in its unit's usual short form: seconds as a duration, a ratio as a percentage."""
    if value is None:
        return "–"
    match unit:
        case "s":
            return duration(value)
        case "ratio":
            return percent(value)
        case "%":
            return f"{value:.1f}%"
        case "hours":
            return f"{value:.1f} h"
        case "per minute":
            return f"{value:.1f}/min"
        case "" | None:
            return f"{value:.0f}" if value.is_integer() else number(value, 2)
    return f"{number(value, 2)} {unit}"


def clock_time(timestamp: int | None) -> str:
    return "–" if timestamp is None else time.strftime("%H:%M:%S", time.localtime(timestamp))


def matches(s: Silence) -> str:
    labels = " ".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
    return " ".join(part for part in (f"rule {s.rule_id}" if s.rule_id else "", labels) if part) or "–"


class AlertsPane(Pane):
    area, title, key = "alerts", "Alerts", "alerts"
    DEFAULT_CSS = """
    AlertsPane #alerts-table { height: 1fr; min-height: 4; }
    AlertsPane .about { height: auto; max-height: 5; border-top: solid $panel; }
    AlertsPane #alerts-silences { height: 5; }
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._drawn: tuple[Snapshot, View] | None = None

    def compose_body(self) -> ComposeResult:
        yield Line(classes="caption")
        yield KeyedTable(COLUMNS, id="alerts-table")
        yield Static(classes="about")
        yield KeyedTable(SILENCES, id="alerts-silences")

    def ordered(self, snap: Snapshot) -> list[Alert]:
        return sorted(snap.alerts, key=lambda a: (STATE_RANK.get(a.status, 5),
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
            limit = with_unit(a.threshold, a.unit)
            rows.append(Row(a.alert_id, {
                "severity": (a.severity or "–").upper(), "state": a.status, "title": a.title or a.description,
                "value": with_unit(a.value, a.unit),
                "threshold": f"{a.operator} {limit}" if a.operator and a.threshold is not None else limit,
                "since": age(a.triggered_at, snap.taken_at), "count": a.occurrence_count,
                "ack": f"{a.acknowledged_by} {clock_time(a.acknowledged_at)[:5]}" if a.acknowledged_by and
                a.acknowledged_at else a.acknowledged_by}, style=style))
        self.query_one("#alerts-table", KeyedTable).sync(rows)
        firing = sum(1 for a in alerts if a.status == "firing")
        keys = " · a: acknowledge · z: silence" if view.actions else ""
        self.set_caption(f"{firing} firing, {len(alerts) - firing} other{keys}")
        self._silences(snap, view)
        self._drawn = (snap, view)
        self._about()

    def _silences(self, snap: Snapshot, view: View) -> None:
        table = self.query_one("#alerts-silences", KeyedTable)
        silences = sorted(snap.silences or [], key=lambda s: (s.active is False, s.expires_at or 0))
        table.display = snap.silences is not None
        rows = []
        for s in silences:
            left = None if s.expires_at is None else s.expires_at - snap.taken_at
            expires = "–" if left is None else f"in {duration(left)}" if left > 0 else f"{duration(-left)} ago"
            rows.append(Row(s.silence_id, {"matches": matches(s), "expires": expires, "by": s.created_by,
                                           "comment": s.comment}, style=view.palette.muted if left is not None
                            and left <= 0 else ""))
        table.sync(rows)

    def on_data_table_row_highlighted(self, event: KeyedTable.RowHighlighted) -> None:
        if event.control.id == "alerts-table":
            self._about()

    def _about(self) -> None:
        """The selected alert in words: its description, who acknowledged it, what silences it."""
        if self._drawn is None:
            return
        snap, view = self._drawn
        alert = self.selected(snap)
        width = 3 * max(40, self.size.width or 80)
        text = Text(no_wrap=False, end="")
        if alert is not None:
            text.append_text(safe_text(alert.description or alert.title or alert.alert_id, width))
            line = "not acknowledged"
            if alert.acknowledged_by:
                line = f"acknowledged by {alert.acknowledged_by} at {clock_time(alert.acknowledged_at)}" + \
                    (f": {alert.acknowledge_note}" if alert.acknowledge_note else "")
            earlier = [f"{a.by} at {clock_time(a.at)}" + (f" for firing {a.occurrence}" if a.occurrence else "") +
                       (f": {a.note}" if a.note else "") for a in alert.acknowledgements
                       if (a.by, a.at) != (alert.acknowledged_by, alert.acknowledged_at)][-2:]
            if earlier:
                line += f" · earlier: {'; '.join(earlier)}"
            if alert.silenced_by:
                line += f" · held back by silence {alert.silenced_by}"
            text.append("\n")
            text.append_text(safe_text(line, width, style=view.palette.muted))
        self.query_one(".about", Static).update(text)

    def selected(self, snap: Snapshot) -> Alert | None:
        key = self.query_one("#alerts-table", KeyedTable).selected_key
        return next((a for a in snap.alerts if a.alert_id == key), None)
