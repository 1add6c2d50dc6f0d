"""Locks: the blocking tree (root blocker, then who waits behind it; a deadlock cycle as one group),
the lock list, deadlocks."""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from ..format import duration, tree_summary, victim_note
from ..model import BlockerNode, Session, Snapshot
from ..safe import safe_text
from ..widgets.line import Line, Part, fit
from ..widgets.table import Column, KeyedTable, Row
from .base import Pane, SessionTarget, View, session_target

# A root blocker's row says what it is doing (state and for how long, its transaction's age, the
# statement it runs or last ran); a waiter's row says what it waits for and for how long.
TREE = [
    Column("session", "Blocking tree", 14), Column("user", "User", 8),
    Column("resource", "State / waits for", 19), Column("waiting", "For", 6, right=True),
    Column("txn", "Txn age", 7, right=True, drop=2), Column("client", "Client", 15, drop=3), Column("sql", "SQL"),
]
LOCKS = [
    Column("session", "Sess", 6, right=True), Column("mode", "Mode", 10), Column("resource", "Resource", 22),
    Column("type", "Type", 7, drop=2), Column("granted", "Status", 8), Column("blocked_by", "Waits on", 12),
    Column("txn", "Txn", 8, right=True, drop=1),
]
DEADLOCKS_SHOWN = 3


class LocksPane(Pane):
    area, title, key = "locks", "Locks", "locks"
    DEFAULT_CSS = """
    LocksPane #locks-tree { height: 2fr; }
    LocksPane #locks-list { height: 1fr; }
    LocksPane .deadlocks { height: auto; max-height: 4; }
    """

    def compose_body(self) -> ComposeResult:
        yield Line(classes="caption")
        yield KeyedTable(TREE, id="locks-tree")
        yield KeyedTable(LOCKS, id="locks-list")
        yield Static(classes="deadlocks")

    def draw(self, snap: Snapshot, view: View) -> None:
        p = view.palette
        rows = []
        sessions = {s.session_id: s for s in snap.sessions}
        groups = snap.blocking_groups()
        for group in groups:
            if group.cycle:  # one row for the cycle, then its members, each with who waits behind it
                rows.append(Row(f"cycle {group.cycle_text()}", {
                    "session": f"⟳ {group.cycle_text()} ({group.waiting})", "user": "", "waiting": "", "txn": "",
                    "client": "", "resource": "deadlock cycle", "sql": victim_note(snap, short=True)},
                    style=p.critical))
            for depth, key, node in group.rows:
                if depth:
                    label = f"{'  ' * (depth - 1)}└ {node.session_id}"
                elif group.cycle:
                    label = f"⟳ {node.session_id}"
                else:
                    label = f"■ {node.session_id} ({group.waiting})"
                root = not depth and not group.cycle
                rows.append(Row(key, {"session": label, "user": node.username, **tree_cells(
                    node, sessions.get(node.session_id), snap.taken_at, root=root)},
                                style=p.critical if root else p.waiting))
        self.query_one("#locks-tree", KeyedTable).sync(rows)
        locks = sorted(snap.locks, key=lambda lk: (lk.granted is not False, lk.resource or "", lk.session_id or 0))
        self.query_one("#locks-list", KeyedTable).sync([Row(lk.lock_id, {
            "session": lk.session_id, "mode": lk.mode, "resource": lk.resource, "type": lk.resource_type,
            "granted": "held" if lk.granted else "WAITING" if lk.granted is False else None,
            "blocked_by": ",".join(map(str, lk.blocked_by)), "txn": lk.transaction_id},
            style=p.waiting if lk.granted is False else "") for lk in locks])
        self.query_one(".caption", Line).show(fit([
            Part(Text(tree_summary(groups), style="dim")), Part(Text(f"{len(snap.locks)} locks", style="dim"), drop=1),
            Part(Text("g: jump to root blocker", style="dim"), Text("g: root", style="dim"), drop=2),
            Part(Text("Tab: next table", style="dim"), drop=3)], self.size.width or 200))
        lines = [safe_text(
            f"deadlock {d.deadlock_id} at "
            f"{time.strftime('%H:%M:%S', time.localtime(d.detected_at)) if d.detected_at else '–'}: "
            f"sessions {', '.join(map(str, d.sessions)) or '–'} on {', '.join(d.resources) or '–'}; "
            f"victim session {d.victim_session if d.victim_session is not None else '–'}",
            self.size.width or 200, style=p.critical) for d in snap.deadlocks[:DEADLOCKS_SHOWN]]
        text = safe_text("no deadlocks", 40, style=p.muted) if not lines else lines[0]
        for line in lines[1:]:
            text.append("\n")
            text.append_text(line)
        self.query_one(".deadlocks", Static).update(text)

    def target(self, snap: Snapshot) -> SessionTarget | None:
        """The session of the selected row (none for a cycle's own row: act on one of its members)."""
        tree = self.query_one("#locks-tree", KeyedTable)
        table = tree if tree.has_focus or not self.query_one("#locks-list", KeyedTable).has_focus else \
            self.query_one("#locks-list", KeyedTable)
        key = table.selected_key
        if key is None:
            return None
        if table is tree:
            last = key.rsplit("/", 1)[-1]
            return session_target(snap, int(last)) if last.isdigit() else None
        lock = next((lk for lk in snap.locks if lk.lock_id == key), None)
        return session_target(snap, lock.session_id if lock else None)


def tree_cells(node: BlockerNode, session: Session | None, now: float, root: bool) -> dict[str, object]:
    """The state, times, client and statement of one tree row: from the graph's node, else (a
    server whose graph lacks them) from the session list."""
    state = node.state or (session.state if session else None)
    in_state = node.state_seconds if node.state_seconds is not None else session.state_seconds if session else None
    txn = node.transaction_seconds
    if txn is None and session is not None and session.transaction_started_at is not None:
        txn = max(0.0, now - session.transaction_started_at)
    running = node.sql or (session.sql if session else None)
    sql = running or (f"last: {node.last_sql}" if node.last_sql else "no statement running" if root else "")
    return {"resource": (state or "root blocker") if root else node.resource,
            "waiting": duration(in_state if root else node.wait_seconds), "txn": duration(txn) if txn is not None else "",
            "client": node.client or (session.client if session else None), "sql": sql}
