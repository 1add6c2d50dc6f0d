"""Sessions: who is connected, what each does or waits for, and how long."""

from __future__ import annotations

from ..format import count, cpu_time, duration
from ..model import Session, Snapshot
from ..widgets.table import Column, KeyedTable, Row
from .base import SessionTarget, TablePane, View, session_target
from .sorting import SortOrder, sort_caption, sort_rows, text_key

STATE_RANK = {"waiting": 0, "idle in transaction": 1, "active": 2, "idle": 3}
SHORT_STATE = {"idle in transaction": "idle in tx"}
# drop: the figures go first when the table is narrow, then client, CPU, transaction age, app, wait
COLUMNS = [
    Column("id", "ID", 5, right=True), Column("user", "User", 9), Column("app", "App", 14, drop=4),
    Column("client", "Client", 15, drop=7), Column("state", "State", 10), Column("wait", "Wait", 14, drop=3),
    Column("blocker", "Blk", 4, right=True), Column("in_state", "In state", 8, right=True),
    Column("txn", "Txn age", 8, right=True, drop=5), Column("cpu", "CPU", 6, right=True, drop=6),
    Column("reads", "Reads", 5, right=True, drop=8), Column("writes", "Writes", 6, right=True, drop=10),
    Column("rows", "Rows", 5, right=True, drop=9), Column("sql", "SQL"),
]


def longest_in_state(s: Session) -> tuple[float, int]:
    """Longest in its state first, in an order that holds from one poll to the next: by when the state
    began (which does not move; to the millisecond where the server says so), then id. By
    state_seconds, sessions that entered their states in the same millisecond swapped places as the
    rounding of each answer fell, and the whole table was drawn again every tick."""
    began = s.state_began
    if began is not None:
        return (began, s.session_id)
    return (-(s.state_seconds or 0.0), s.session_id)  # a server (RustyDB) that does not say when


def _in_state(s: Session) -> float | None:
    """Bigger is longer in the state, whichever of the figures the server sends."""
    began = s.state_began
    return -began if began is not None else s.state_seconds


def _txn_age(s: Session) -> float | None:
    began = s.transaction_began
    return None if began is None else -began


# `s` steps through these in this order (the commonest first); a header click picks its column's
ORDERS: tuple[SortOrder[Session], ...] = (
    SortOrder("triage", "state", lambda s: (STATE_RANK.get(s.state or "", 4), longest_in_state(s))),
    SortOrder("time in state", "in_state", _in_state, descending=True),
    SortOrder("id", "id", lambda s: s.session_id), SortOrder("user", "user", lambda s: text_key(s.username)),
    SortOrder("cpu", "cpu", lambda s: s.cpu_time_ms, descending=True),
    SortOrder("txn age", "txn", _txn_age, descending=True),
    SortOrder("reads", "reads", lambda s: s.cache_misses, descending=True),
    SortOrder("writes", "writes", lambda s: s.pages_written, descending=True),
    SortOrder("rows", "rows", lambda s: s.rows_returned, descending=True),
    SortOrder("app", "app", lambda s: text_key(s.application)),
    SortOrder("client", "client", lambda s: text_key(s.client)),
    SortOrder("wait", "wait", lambda s: text_key(s.wait_event or s.wait_class)),
    SortOrder("blocker", "blocker", lambda s: s.blocking_session),
    SortOrder("sql", "sql", lambda s: text_key(s.sql)),
)
SORTS = tuple(o.name for o in ORDERS)


def _id(s: Session) -> int:
    return s.session_id


def sort_sessions(sessions: list[Session], sort: int, reverse: bool = False) -> list[Session]:
    return sort_rows(sessions, ORDERS[sort % len(ORDERS)], reverse, _id)


class SessionsPane(TablePane):
    columns = COLUMNS
    area, title, key, sorts, orders = "sessions", "Sessions", "sessions", SORTS, ORDERS

    def visible(self, snap: Snapshot, view: View) -> list[Session]:
        shown = snap.sessions
        if view.hide_idle:
            shown = [s for s in shown if not s.idle]
        if view.filter.text:
            shown = [s for s in shown if view.filter.session(s)]
        return sort_sessions(shown, view.sort, view.reverse)

    def draw(self, snap: Snapshot, view: View) -> None:
        p = view.palette
        shown = self.visible(snap, view)
        rows = []
        now = snap.taken_at
        for s in shown:
            style = p.waiting if s.state == "waiting" else p.idle_tx if s.state == "idle in transaction" else \
                p.muted if s.idle else ""
            rows.append(Row(str(s.session_id), {
                "id": s.session_id, "user": s.username, "app": s.application, "client": s.client,
                "state": SHORT_STATE.get(s.state or "", s.state), "wait": s.wait_event or s.wait_class,
                "blocker": s.blocking_session or "",
                "in_state": duration(s.state_seconds),
                "txn": duration(txn) if (txn := s.transaction_seconds(now)) is not None else "",
                "cpu": cpu_time(s.cpu_time_ms), "reads": count(s.cache_misses), "writes": count(s.pages_written),
                "rows": count(s.rows_returned), "sql": s.sql or ""}, style=style))
        self.query_one(KeyedTable).sync(rows)
        # the server may have sent only the top rows of this order: the total is its count of all
        total = max(len(snap.sessions), snap.sessions_total or 0)
        caption = f"{len(shown)} of {total} sessions · sort: {sort_caption(ORDERS, view)}"
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

