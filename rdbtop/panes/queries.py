"""Queries: the statements running now, longest first; Enter opens one in full."""

from __future__ import annotations

from ..format import count, cpu_time, duration
from ..model import ActiveQuery, Snapshot
from ..widgets.table import Column, KeyedTable, Row
from .base import SessionTarget, TablePane, View
from .sorting import SortOrder, sort_caption, sort_rows, text_key

COLUMNS = [
    Column("session", "Sess", 6, right=True), Column("query", "Query", 8, drop=2), Column("user", "User", 10),
    Column("elapsed", "Elapsed", 8, right=True), Column("cpu", "CPU", 6, right=True, drop=4),
    Column("reads", "Reads", 5, right=True, drop=5),
    Column("wait", "Wait", 18, drop=1), Column("blocker", "Blk", 5, right=True, drop=3), Column("sql", "SQL"),
]


def _query_number(q: ActiveQuery) -> int | None:
    """q42 -> 42: statement ids in the order they started."""
    digits = q.query_id[1:]
    return int(digits) if digits.isdigit() else None


# `s` steps through these in this order (the commonest first); a header click picks its column's
ORDERS: tuple[SortOrder[ActiveQuery], ...] = (
    SortOrder("elapsed", "elapsed", lambda q: q.elapsed_ms, descending=True),
    SortOrder("session", "session", lambda q: q.session_id), SortOrder("user", "user", lambda q: text_key(q.username)),
    SortOrder("cpu", "cpu", lambda q: q.cpu_time_ms, descending=True),
    SortOrder("reads", "reads", lambda q: q.cache_misses, descending=True),
    SortOrder("query", "query", _query_number),
    SortOrder("wait", "wait", lambda q: text_key(q.wait_event or q.operation)),
    SortOrder("blocker", "blocker", lambda q: q.blocking_session),
    SortOrder("sql", "sql", lambda q: text_key(q.sql)),
)
SORTS = tuple(o.name for o in ORDERS)


def _id(q: ActiveQuery) -> str:
    return q.query_id


class QueriesPane(TablePane):
    columns = COLUMNS
    area, title, key, sorts, orders = "queries", "Queries", "queries", SORTS, ORDERS

    def visible(self, snap: Snapshot, view: View) -> list[ActiveQuery]:
        by_id = {s.session_id: s for s in snap.sessions}
        shown = []
        for q in snap.queries:
            s = by_id.get(q.session_id) if q.session_id is not None else None
            if view.filter.matches({"id": q.session_id, "user": q.username, "sql": q.sql, "wait": q.wait_event,
                                    "state": q.status, "app": s.application if s else None}):
                shown.append(q)
        return sort_rows(shown, ORDERS[view.sort % len(ORDERS)], view.reverse, _id)

    def draw(self, snap: Snapshot, view: View) -> None:
        p = view.palette
        shown = self.visible(snap, view)
        rows = [Row(q.query_id, {
            "session": q.session_id, "query": q.query_id, "user": q.username,
            "elapsed": duration(None if q.elapsed_ms is None else q.elapsed_ms / 1000), "cpu": cpu_time(q.cpu_time_ms), "reads": count(q.cache_misses),
            "wait": q.wait_event or q.operation, "blocker": q.blocking_session or "", "sql": q.sql or ""},
            style=p.waiting if q.blocking_session is not None or q.status == "waiting" else "") for q in shown]
        self.query_one(KeyedTable).sync(rows)
        caption = f"{len(shown)} running statements · sort: {sort_caption(ORDERS, view)} · Enter: details"
        if view.filter.text:
            caption += f" · filter: {view.filter.text}"
        self.set_caption(caption)

    def selected(self, snap: Snapshot) -> ActiveQuery | None:
        key = self.query_one(KeyedTable).selected_key
        return next((q for q in snap.queries if q.query_id == key), None)

    def target(self, snap: Snapshot) -> SessionTarget | None:
        q = self.selected(snap)
        if q is None or q.session_id is None:
            return None
        s = next((s for s in snap.sessions if s.session_id == q.session_id), None)
        # the query id is the one this row showed, even if the session list has moved on
        return SessionTarget(q.session_id, q.username, q.query_id, q.sql, s.created_at if s else None)
