"""Sessions: who is connected, what each does or waits for, and how long."""

from __future__ import annotations

from ..format import age, duration
from ..model import Session, Snapshot
from ..widgets.table import Column, KeyedTable, Row
from .base import SessionTarget, TablePane, View, session_target

STATE_RANK = {"waiting": 0, "idle in transaction": 1, "active": 2, "idle": 3}
SHORT_STATE = {"idle in transaction": "idle in tx"}
COLUMNS = [
    Column("id", "ID", 5, right=True), Column("user", "User", 9), Column("app", "App", 14, drop=3),
    Column("client", "Client", 15, drop=5), Column("state", "State", 10), Column("wait", "Wait", 14, drop=2),
    Column("blocker", "Blk", 4, right=True), Column("in_state", "In state", 8, right=True),
    Column("txn", "Txn age", 8, right=True, drop=4), Column("sql", "SQL"),
]
SORTS = ("triage", "time in state", "id", "user")


def longest_in_state(s: Session) -> tuple[float, int]:
    """Longest in its state first, in an order that holds from one poll to the next: by when the state
    began (which does not move), then id. By state_seconds, sessions that entered their states in
    the same millisecond swapped places as the rounding of each answer fell, and the whole table
    was drawn again every tick."""
    if s.state_since is not None:
        return (s.state_since, s.session_id)
    return (-(s.state_seconds or 0.0), s.session_id)  # a server (RustyDB) that does not say when


def sort_sessions(sessions: list[Session], sort: int) -> list[Session]:
    name = SORTS[sort % len(SORTS)]
    if name == "triage":  # waiting and idle-in-transaction first: they are what hurts
        return sorted(sessions, key=lambda s: (STATE_RANK.get(s.state or "", 4), longest_in_state(s)))
    if name == "time in state":
        return sorted(sessions, key=longest_in_state)
    if name == "user":
        return sorted(sessions, key=lambda s: (s.username or "", s.session_id))
    return sorted(sessions, key=lambda s: s.session_id)


class SessionsPane(TablePane):
    columns = COLUMNS
    area, title, key, sorts = "sessions", "Sessions", "sessions", SORTS

    def visible(self, snap: Snapshot, view: View) -> list[Session]:
        shown = snap.sessions
        if view.hide_idle:
            shown = [s for s in shown if not s.idle]
        if view.filter.text:
            shown = [s for s in shown if view.filter.session(s)]
        return sort_sessions(shown, view.sort)

    def draw(self, snap: Snapshot, view: View) -> None:
        p = view.palette
        shown = self.visible(snap, view)
        rows = []
        for s in shown:
            style = p.waiting if s.state == "waiting" else p.idle_tx if s.state == "idle in transaction" else \
                p.muted if s.idle else ""
            rows.append(Row(str(s.session_id), {
                "id": s.session_id, "user": s.username, "app": s.application, "client": s.client,
                "state": SHORT_STATE.get(s.state or "", s.state), "wait": s.wait_event or s.wait_class,
                "blocker": s.blocking_session or "",
                "in_state": duration(s.state_seconds),
                "txn": age(s.transaction_started_at, snap.taken_at) if s.transaction_started_at else "",
                "sql": s.sql or ""}, style=style))
        self.query_one(KeyedTable).sync(rows)
        # the server may have sent only the top rows of this order: the total is its count of all
        total = max(len(snap.sessions), snap.sessions_total or 0)
        caption = f"{len(shown)} of {total} sessions · sort: {SORTS[view.sort % len(SORTS)]}"
        if view.hide_idle:
            caption += " · idle hidden"
        if view.filter.text:
            caption += f" · filter: {view.filter.text}"
        self.set_caption(caption)

    def target(self, snap: Snapshot) -> SessionTarget | None:
        key = self.query_one(KeyedTable).selected_key
        return session_target(snap, int(key)) if key else None

    def select_session(self, session_id: int) -> bool:
        return self.query_one(KeyedTable).select_key(str(session_id))

