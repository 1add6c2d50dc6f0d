"""Typed snapshots the console reads, parsed tolerantly from the REST API's JSON.

A real RustyDB server returns fewer fields than our engine (and sometimes other types): a
missing or ill-typed field becomes None (shown as "–"), unknown fields are ignored, and a record
that is not even an object is skipped. Nothing here raises on server data.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MISSING_TEXT = "–"
ROW_CAP = 500  # rows a table shows at most (the top of its order), so also the sessions a poll asks for


def field_of(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, dict) else None


# Each parser first checks the type a well-behaved server sends (`type(...) is`, which a bool is not
# for int): a poll parses thousands of fields, and the tolerant checks after it cost three times more.

def int_(d: Any, key: str) -> int | None:
    v = d.get(key) if isinstance(d, dict) else None
    if type(v) is int:
        return v
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    return None


def float_(d: Any, key: str) -> float | None:
    v = d.get(key) if isinstance(d, dict) else None
    if type(v) is float:
        return v
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return None


def str_(d: Any, key: str) -> str | None:
    v = d.get(key) if isinstance(d, dict) else None
    if type(v) is str:
        return v
    if v is None or isinstance(v, (dict, list)):
        return None
    return str(v)


def bool_(d: Any, key: str) -> bool | None:
    v = field_of(d, key)
    return v if isinstance(v, bool) else None


def list_(d: Any, key: str) -> list[Any]:
    v = field_of(d, key) if key else d
    return v if isinstance(v, list) else []


def records(v: Any) -> list[dict[str, Any]]:
    return [r for r in (v if isinstance(v, list) else []) if isinstance(r, dict)]


def ints(d: Any, key: str) -> tuple[int, ...]:
    return tuple(v for v in list_(d, key) if isinstance(v, int) and not isinstance(v, bool))


def parse_all(items: Any, parse: Any) -> list[Any]:
    """Parse each object in a list, dropping what cannot be parsed."""
    return [x for x in (parse(r) for r in records(items)) if x is not None]


@dataclass(frozen=True)
class Session:
    session_id: int
    username: str | None = None
    application: str | None = None
    client: str | None = None
    state: str | None = None
    wait_class: str | None = None
    wait_event: str | None = None
    blocking_session: int | None = None
    sql: str | None = None
    query_id: str | None = None
    state_seconds: float | None = None
    transaction_started_at: int | None = None
    created_at: int | None = None
    transaction_id: int | None = None
    sql_id: str | None = None
    state_since: int | None = None
    # additions of our engine (None from a server without them)
    state_since_ms: int | None = None
    transaction_started_at_ms: int | None = None
    cpu_time_ms: float | None = None
    rows_returned: int | None = None
    cache_misses: int | None = None
    pages_written: int | None = None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Session | None:
        sid = int_(d, "session_id")
        if sid is None:
            return None
        # RustyDB's own serde aliases: `user` for username, `connected_at` for created_at
        return cls(sid, str_(d, "username") or str_(d, "user"), str_(d, "application_name"),
                   str_(d, "client_address"), str_(d, "state"), str_(d, "wait_class"), str_(d, "wait_event"),
                   int_(d, "blocking_session"), str_(d, "current_query"), str_(d, "current_query_id"),
                   float_(d, "state_seconds"), int_(d, "transaction_started_at"),
                   int_(d, "created_at") if int_(d, "created_at") is not None else int_(d, "connected_at"),
                   int_(d, "transaction_id"), str_(d, "sql_id"), int_(d, "state_since"), int_(d, "state_since_ms"),
                   int_(d, "transaction_started_at_ms"), float_(d, "cpu_time_ms"), int_(d, "rows_returned"),
                   int_(d, "cache_misses"), int_(d, "pages_written"))

    @property
    def state_began(self) -> float | None:
        """When its state began (Unix seconds), to the millisecond when the server says so."""
        if self.state_since_ms is not None:
            return self.state_since_ms / 1000
        return None if self.state_since is None else float(self.state_since)

    @property
    def transaction_began(self) -> float | None:
        if self.transaction_started_at_ms is not None:
            return self.transaction_started_at_ms / 1000
        return None if self.transaction_started_at is None else float(self.transaction_started_at)

    def transaction_seconds(self, now: float) -> float | None:
        """The transaction's age, on the server's clock where it can be: its time in state plus the time
        from the transaction's start to the state's, so that a transaction is never younger than the state
        it began before (whole seconds and the console's own clock made it look so)."""
        began = self.transaction_began
        if began is None:
            return None
        state_began = self.state_began
        if self.state_seconds is not None and state_began is not None:
            return self.state_seconds + (state_began - began)
        return now - began

    @property
    def waiting(self) -> bool:
        return self.state == "waiting" or self.blocking_session is not None

    @property
    def idle(self) -> bool:
        return self.state == "idle"


@dataclass(frozen=True)
class ActiveQuery:
    query_id: str
    session_id: int | None = None
    username: str | None = None
    status: str | None = None
    elapsed_ms: float | None = None
    wait_event: str | None = None
    blocking_session: int | None = None
    sql: str | None = None
    sql_id: str | None = None
    wait_class: str | None = None
    operation: str | None = None
    # additions of our engine (None from a server without them)
    cpu_time_ms: float | None = None
    rows_returned: int | None = None
    cache_hits: int | None = None
    cache_misses: int | None = None
    pages_written: int | None = None
    execution_plan: str | None = None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> ActiveQuery | None:
        qid = str_(d, "query_id")
        if qid is None:
            return None
        return cls(qid, int_(d, "session_id"), str_(d, "username"), str_(d, "status"), float_(d, "elapsed_ms"),
                   str_(d, "wait_event"), int_(d, "blocking_session"), str_(d, "sql_text"), str_(d, "sql_id"),
                   str_(d, "wait_class"), str_(d, "current_operation"), float_(d, "cpu_time_ms"),
                   int_(d, "rows_returned"), int_(d, "cache_hits"), int_(d, "cache_misses"), int_(d, "pages_written"),
                   str_(d, "execution_plan"))


@dataclass(frozen=True)
class FingerprintProfile:
    """One fingerprint's statistics from /profiling/queries (RustyDB's QueryProfile and our additions)."""

    sql_id: str
    calls: int | None = None
    total_ms: float | None = None
    avg_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    rows_returned: int | None = None
    errors: int | None = None
    cache_hit_ratio: float | None = None
    execution_plan: str | None = None
    plan_captured_at: int | None = None
    profiled_calls: int | None = None
    fullscan_steps: int | None = None
    sorts: int | None = None
    vm_steps: int | None = None
    cpu_time_ms: float | None = None
    cache_hits: int | None = None
    cache_misses: int | None = None
    pages_written: int | None = None

    @classmethod
    def parse(cls, d: Any) -> FingerprintProfile | None:
        sql_id = str_(d, "query_id")
        if sql_id is None:
            return None
        return cls(sql_id, int_(d, "execution_count"), float_(d, "total_time_ms"), float_(d, "avg_time_ms"),
                   float_(d, "p95_ms"), float_(d, "p99_ms"), float_(d, "max_time_ms"), int_(d, "total_rows_returned"),
                   int_(d, "errors"), float_(d, "cache_hit_ratio"), str_(d, "execution_plan"),
                   int_(d, "plan_captured_at"), int_(d, "profiled_calls"), int_(d, "fullscan_steps"), int_(d, "sorts"),
                   int_(d, "vm_steps"), float_(d, "cpu_time_ms"), int_(d, "cache_hits"), int_(d, "cache_misses"),
                   int_(d, "pages_written"))


@dataclass(frozen=True)
class Lock:
    lock_id: str
    resource: str | None
    resource_type: str | None
    mode: str | None
    session_id: int | None
    transaction_id: int | None
    granted: bool | None
    since: int | None
    blocked_by: tuple[int, ...]

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Lock | None:
        lid = str_(d, "lock_id")
        if lid is None:
            return None
        return cls(lid, str_(d, "resource_id"), str_(d, "resource_type"), str_(d, "lock_type"), int_(d, "session_id"),
                   int_(d, "transaction_id"), bool_(d, "granted"),
                   int_(d, "wait_started_at") if bool_(d, "granted") is False else int_(d, "acquired_at"),
                   ints(d, "blocked_by"))


@dataclass(frozen=True)
class BlockerNode:
    session_id: int
    username: str | None
    sql: str | None
    resource: str | None
    wait_seconds: float | None
    blocked: tuple[BlockerNode, ...] = ()
    # what the session is doing (our engine's additions; RustyDB's graph lacks them, the sessions list fills in)
    state: str | None = None
    state_seconds: float | None = None
    transaction_seconds: float | None = None
    client: str | None = None
    application: str | None = None
    last_sql: str | None = None

    @classmethod
    def parse(cls, d: dict[str, Any], depth: int = 0) -> BlockerNode | None:
        sid = int_(d, "session_id")
        if sid is None or depth > 64:
            return None
        children = tuple(n for n in (cls.parse(c, depth + 1) for c in records(field_of(d, "blocked"))) if n)
        return cls(sid, str_(d, "username"), str_(d, "sql"), str_(d, "resource"), float_(d, "wait_seconds"), children,
                   state=str_(d, "state"), state_seconds=float_(d, "state_seconds"),
                   transaction_seconds=float_(d, "transaction_seconds"), client=str_(d, "client_address"),
                   application=str_(d, "application_name"), last_sql=str_(d, "last_sql"))

    def behind(self) -> list[int]:
        """The sessions waiting behind this one, directly or down the chain, each once."""
        return list(dict.fromkeys(n.session_id for _, _, n in self.walk()[1:] if n.session_id != self.session_id))

    def count(self) -> int:
        return sum(1 + c.count() for c in self.blocked)

    def walk(self, depth: int = 0, path: str = "") -> list[tuple[int, str, BlockerNode]]:
        """(depth, a key unique within the tree, node), depth first."""
        key = f"{path}/{self.session_id}"
        out = [(depth, key, self)]
        for child in self.blocked:
            out.extend(child.walk(depth + 1, key))
        return out


@dataclass(frozen=True)
class WaitEdge:
    """One waiter of a lock graph's `waiters` list: a session waits for another's lock."""

    waiter: int
    holder: int
    resource: str | None
    wait_seconds: float | None


def wait_edges(graph: Any) -> tuple[WaitEdge, ...]:
    """The graph's waiters, when it names sessions (ours does; RustyDB's names transactions only,
    and its tree is all there is)."""
    out = []
    for r in records(field_of(graph, "waiters")):
        waiter, holder, ms = int_(r, "session_id"), int_(r, "waiting_for_session"), float_(r, "wait_time_ms")
        if waiter is not None and holder is not None:
            out.append(WaitEdge(waiter, holder, str_(r, "resource_id"), None if ms is None else ms / 1000))
    return tuple(out)


@dataclass(frozen=True)
class BlockingGroup:
    """The sessions waiting behind one root blocker, or in and behind one deadlock cycle (its
    members wait for each other, so none of them is a root). Each waiting session is in one group,
    once. `rows` are (depth, key, node), depth first: the root at depth 0, or each cycle member at
    depth 0 with those waiting behind it below; a key ends with the row's session id."""

    rows: tuple[tuple[int, str, BlockerNode], ...]
    cycle: tuple[int, ...] = ()  # the members in wait order (each waits for the next), when a cycle

    @property
    def root(self) -> BlockerNode:
        return self.rows[0][2]

    @property
    def waiting(self) -> int:
        """Sessions waiting in this group: every row but a root's (every member of a cycle waits)."""
        return len(self.rows) - (0 if self.cycle else 1)

    def sessions(self) -> set[int]:
        return {node.session_id for _, _, node in self.rows}

    def behind(self, session_id: int) -> list[int]:
        """The group's sessions that wait for `session_id`, directly or down a chain: the rows below
        its own, or for a cycle's member every other session of the group."""
        if session_id in self.cycle:
            return [n.session_id for _, _, n in self.rows if n.session_id != session_id]
        at = next((i for i, (_, _, n) in enumerate(self.rows) if n.session_id == session_id), None)
        if at is None:
            return []
        out: list[int] = []
        for depth, _, node in self.rows[at + 1:]:
            if depth <= self.rows[at][0]:
                break
            out.append(node.session_id)
        return out

    def cycle_text(self) -> str:
        """4 ⇄ 8, or 2 → 7 → 9 → 2."""
        if len(self.cycle) == 2:
            return f"{self.cycle[0]} ⇄ {self.cycle[1]}"
        return " → ".join(map(str, (*self.cycle, self.cycle[0])))


def _cycles(waits: dict[int, list[int]]) -> list[list[int]]:
    """The strongly connected components of two or more sessions of the wait-for graph (Tarjan,
    iterative: a long FIFO queue of writers makes a deep graph)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    out: list[list[int]] = []
    for start in sorted(waits):
        if start in index:
            continue
        work = [(start, iter(waits.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(waits.get(nxt, ()))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(component)
    return out


def _wait_order(members: list[int], waits: dict[int, list[int]]) -> tuple[int, ...]:
    """A cycle's members from the lowest id, each followed by the member it waits for first."""
    inside = set(members)
    order = [min(members)]
    while len(order) < len(members):
        nxt = next((h for h in waits.get(order[-1], ()) if h in inside and h not in order), None)
        if nxt is None:  # not one simple cycle: the rest by id
            return tuple(order + sorted(inside - set(order)))
        order.append(nxt)
    return tuple(order)


def blocking_groups(tree: list[BlockerNode], edges: Iterable[WaitEdge] = (),
                    sessions: Iterable[Session] = ()) -> list[BlockingGroup]:
    """Root blockers and deadlock cycles, each session once.

    A server's tree has a root for every session that blocks others and waits for nobody; while a
    deadlock is not yet broken its members wait for each other, and a server (ours among them)
    then shows each of them as a root holding the others: "2 root blockers, 12 waiting" for 8
    sessions; and while another session is a root, ours leaves a cycle out of the tree altogether.
    Here the wait-for graph (the tree's edges, and `edges` from the graph's waiter list when the
    server names sessions there; `sessions` name those the tree does not) is searched for cycles;
    a cycle becomes one group, and every other waiting session hangs under the session it waits
    for first."""
    node_of: dict[int, BlockerNode] = {}
    waits: dict[int, list[int]] = {}
    order: list[int] = []  # sessions as the server's tree lists them
    for top in tree:
        for depth, key, node in top.walk():
            sid = node.session_id
            if sid not in node_of:
                order.append(sid)
            if depth:  # as a waiter it says what it waits for, and since when
                holder = int(key.rsplit("/", 2)[-2])
                holders = waits.setdefault(sid, [])
                if holder not in holders:
                    holders.append(holder)
                if sid not in node_of or node_of[sid].resource is None:
                    node_of[sid] = dataclasses.replace(node, blocked=())
            elif sid not in node_of:
                node_of[sid] = dataclasses.replace(node, blocked=())
    by_id = {s.session_id: s for s in sessions}

    def known(sid: int, edge: WaitEdge | None) -> None:
        node = node_of.get(sid)
        if node is None:
            s = by_id.get(sid)
            node_of[sid] = BlockerNode(sid, s.username if s else None, s.sql if s else None,
                                       edge.resource if edge else None, edge.wait_seconds if edge else None)
            order.append(sid)
        elif edge is not None and node.resource is None:  # first seen holding a lock, now waiting too
            node_of[sid] = dataclasses.replace(node, resource=edge.resource, wait_seconds=edge.wait_seconds)

    for edge in edges:
        known(edge.waiter, edge)
        known(edge.holder, None)
        holders = waits.setdefault(edge.waiter, [])
        if edge.holder not in holders:
            holders.append(edge.holder)
    member_of: dict[int, tuple[int, ...]] = {}
    cycles = sorted((_wait_order(c, waits) for c in _cycles(waits)), key=lambda c: c[0])
    for cycle in cycles:
        member_of.update(dict.fromkeys(cycle, cycle))
    behind: dict[int, list[int]] = {}
    for sid in order:
        if sid in waits and sid not in member_of:
            behind.setdefault(waits[sid][0], []).append(sid)
    seen: set[int] = set()

    def rows(sid: int, depth: int, path: str) -> list[tuple[int, str, BlockerNode]]:
        seen.add(sid)
        key = f"{path}/{sid}"
        out = [(depth, key, node_of[sid])]
        for child in behind.get(sid, ()):
            if child not in seen:
                out.extend(rows(child, depth + 1, key))
        return out

    groups = [BlockingGroup(tuple(rows(sid, 0, ""))) for sid in order if sid not in waits and sid in behind]
    for cycle in cycles:
        members: list[tuple[int, str, BlockerNode]] = []
        for sid in cycle:
            members.extend(rows(sid, 0, ""))
        groups.append(BlockingGroup(tuple(members), cycle))
    return groups


@dataclass(frozen=True)
class Deadlock:
    deadlock_id: str
    detected_at: int | None
    victim_session: int | None
    transactions: tuple[int, ...]
    resources: tuple[str, ...]
    sessions: tuple[int, ...] = ()

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Deadlock | None:
        did = str_(d, "deadlock_id")
        if did is None:
            return None
        participants = records(field_of(d, "participants"))
        resources = tuple(str(r) for r in list_(d, "resources") if r is not None) or \
            tuple(r for r in (str_(p, "waiting_for") for p in participants) if r)
        sessions = tuple(s for s in (int_(p, "session_id") for p in participants) if s is not None)
        return cls(did, int_(d, "detected_at"), int_(d, "victim_session"), ints(d, "transactions"), resources, sessions)


def string_map(d: Any, key: str) -> dict[str, str]:
    v = field_of(d, key)
    return {str(k): x for k, x in v.items() if isinstance(x, str)} if isinstance(v, dict) else {}


@dataclass(frozen=True)
class Acknowledgement:
    """Who acknowledged which firing of an alert (our engine keeps the last few)."""

    by: str
    at: int | None
    occurrence: int | None
    note: str | None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Acknowledgement | None:
        by = str_(d, "acknowledged_by")
        return None if by is None else cls(by, int_(d, "acknowledged_at"), int_(d, "occurrence"), str_(d, "note"))


@dataclass(frozen=True)
class Silence:
    silence_id: str
    rule_id: str | None
    labels: dict[str, str]
    comment: str | None
    created_by: str | None
    created_at: int | None
    expires_at: int | None
    active: bool | None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Silence | None:
        sid = str_(d, "silence_id")
        if sid is None:
            return None
        return cls(sid, str_(d, "rule_id"), string_map(d, "labels"), str_(d, "comment"), str_(d, "created_by"),
                   int_(d, "created_at"), int_(d, "expires_at"), bool_(d, "active"))


@dataclass(frozen=True)
class Alert:
    alert_id: str
    severity: str | None = None
    title: str | None = None
    description: str | None = None
    triggered_at: int | None = None
    acknowledged: bool | None = None
    state: str | None = None
    category: str | None = None
    value: float | None = None
    threshold: float | None = None
    occurrence_count: int | None = None
    acknowledged_by: str | None = None
    resolved_at: int | None = None
    # our engine's additions
    rule: str | None = None
    operator: str | None = None
    unit: str | None = None
    acknowledged_at: int | None = None
    acknowledge_note: str | None = None
    acknowledgements: tuple[Acknowledgement, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    silenced_by: str | None = None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Alert | None:
        aid = str_(d, "alert_id") or str_(d, "id")
        if aid is None:
            return None
        return cls(aid, str_(d, "severity"), str_(d, "title") or str_(d, "name"),
                   str_(d, "description") or str_(d, "message"), int_(d, "triggered_at"), bool_(d, "acknowledged"),
                   str_(d, "state"), str_(d, "category"), float_(d, "value"), float_(d, "threshold"),
                   int_(d, "occurrence_count"), str_(d, "acknowledged_by"), int_(d, "resolved_at"),
                   rule=str_(d, "rule"), operator=str_(d, "operator"), unit=str_(d, "unit"),
                   acknowledged_at=int_(d, "acknowledged_at"), acknowledge_note=str_(d, "acknowledge_note"),
                   acknowledgements=tuple(parse_all(field_of(d, "acknowledgements"), Acknowledgement.parse)),
                   labels=string_map(d, "labels"), silenced_by=str_(d, "silenced_by"))

    @property
    def status(self) -> str:
        """firing, acknowledged or resolved; RustyDB says only `acknowledged`, so fall back on it."""
        if self.state:
            state = self.state.lower()
            return "firing" if state in ("active", "firing") else state
        if self.resolved_at is not None:
            return "resolved"
        return "acknowledged" if self.acknowledged else "firing"


SEVERITY_RANK = {"critical": 0, "error": 1, "high": 1, "warning": 2, "medium": 2, "info": 3, "low": 3}


@dataclass(frozen=True)
class Backup:
    backup_id: str
    backup_type: str | None = None
    status: str | None = None
    start_time: int | None = None
    completion_time: int | None = None
    size_bytes: int | None = None
    location: str | None = None
    error_message: str | None = None
    duration_ms: float | None = None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> Backup | None:
        bid = str_(d, "backup_id")
        if bid is None:
            return None
        return cls(bid, str_(d, "backup_type"), str_(d, "status"), int_(d, "start_time"),
                   int_(d, "completion_time") or int_(d, "completed_at"), int_(d, "size_bytes"), str_(d, "location"),
                   str_(d, "error_message"), float_(d, "duration_ms"))

    @property
    def duration_seconds(self) -> float | None:
        if self.duration_ms is not None:  # ours: exact; RustyDB's whole-second timestamps say 0 for a fast one
            return self.duration_ms / 1000
        if self.start_time is None or self.completion_time is None:
            return None
        return max(0, self.completion_time - self.start_time)

    @property
    def good(self) -> bool:
        return (self.status or "").lower() in ("completed", "verified")


@dataclass(frozen=True)
class MaintenanceJob:
    job_id: str
    operation: str | None = None
    status: str | None = None
    target: str | None = None  # None: every schema
    created_at: int | None = None
    duration_ms: float | None = None
    error: str | None = None
    bytes_reclaimed: int | None = None
    wait_event: str | None = None
    steps: int = 0

    @classmethod
    def parse(cls, d: Any) -> MaintenanceJob | None:
        jid = str_(d, "job_id")
        if jid is None:
            return None
        return cls(jid, str_(d, "operation"), str_(d, "status"), str_(d, "target"), int_(d, "created_at"),
                   float_(d, "duration_ms"), str_(d, "error"), int_(d, "bytes_reclaimed"), str_(d, "wait_event"),
                   len(records(field_of(d, "steps"))))

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "canceled")


def maintenance_targets(d: Any) -> dict[str, list[str]] | None:
    """{schema: its tables} from /admin/maintenance/targets; None when the answer is not one."""
    schemas = field_of(d, "schemas")
    if not isinstance(schemas, list):
        return None
    return {name: [t for t in list_(s, "tables") if isinstance(t, str)]
            for s in records(schemas) if (name := str_(s, "schema_name")) is not None}


@dataclass(frozen=True)
class BackupSchedule:
    enabled: bool | None = None
    full_cron: str | None = None
    incremental_cron: str | None = None
    retention_days: int | None = None
    destination: str | None = None

    @classmethod
    def parse(cls, d: Any) -> BackupSchedule | None:
        if not isinstance(d, dict):
            return None
        return cls(bool_(d, "enabled"), str_(d, "full_backup_cron"), str_(d, "incremental_backup_cron"),
                   int_(d, "retention_days"), str_(d, "destination"))


@dataclass(frozen=True)
class AshBucket:
    key: str
    samples: int | None
    percent: float | None
    average_active_sessions: float | None
    example: str | None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> AshBucket | None:
        key = str_(d, "key")
        if key is None:
            return None
        return cls(key, int_(d, "samples"), float_(d, "percent"), float_(d, "average_active_sessions"),
                   str_(d, "example"))


@dataclass(frozen=True, slots=True)
class AshSample:
    """One session in one second. The console keeps a window of them (a sample a second for each
    active session), so each is slotted and shares its few distinct strings."""

    sample_time: int
    session_id: int | None
    wait_class: str | None
    state: str | None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> AshSample | None:
        t = int_(d, "sample_time")
        if t is None:
            return None
        # RustyDB's sample has no wait class: a wait event means waiting, none means on CPU
        wait_class = str_(d, "wait_class") or ("Other" if str_(d, "wait_event") else "CPU")
        state = str_(d, "state")
        return cls(t, int_(d, "session_id"), sys.intern(wait_class), sys.intern(state) if state else None)


@dataclass(frozen=True)
class Overview:
    server_version: str | None = None
    server_name: str | None = None
    uptime_seconds: float | None = None
    health: str | None = None
    health_notes: tuple[str, ...] = ()
    statements_per_second: float | None = None
    transactions_per_second: float | None = None
    cache_hit_ratio: float | None = None
    cpu_percent: float | None = None
    memory_percent: float | None = None
    sessions_by_state: dict[str, int] = field(default_factory=dict)
    deadlocks: int | None = None
    lock_waiters: int | None = None

    @classmethod
    def parse(cls, perf: Any, health: Any, info: Any) -> Overview:
        by_state = field_of(perf, "sessions")
        checks = field_of(health, "checks")
        notes = tuple(f"{name}: {str_(c, 'message') or str_(c, 'status') or MISSING_TEXT}"
                      for name, c in (checks.items() if isinstance(checks, dict) else ())
                      if str_(c, "status") not in (None, "healthy"))
        return cls(str_(info, "version") or str_(health, "version"), str_(info, "server_name"),
                   float_(perf, "uptime_seconds") or float_(health, "uptime_seconds") or float_(info, "uptime_seconds"),
                   str_(health, "status"), notes,
                   float_(perf, "statements_per_second"), float_(perf, "transactions_per_second"),
                   float_(perf, "cache_hit_ratio"), float_(perf, "cpu_usage_percent"),
                   float_(perf, "memory_usage_percent"),
                   {str(k): v for k, v in by_state.items() if isinstance(v, int)} if isinstance(by_state, dict) else {},
                   int_(perf, "deadlocks"), int_(perf, "lock_waiters"))


# Areas of a snapshot, each from its own endpoint; one that the server does not serve is hidden.
AREAS = ("overview", "sessions", "queries", "locks", "ash", "alerts", "backups")


@dataclass
class Snapshot:
    """Everything one poll learned. `missing` names areas the server does not serve, with a note.

    A poll reads what one pane needs (`pane`; None for every area, as --once reads). The other
    fields hold what earlier polls brought, for actions and `g`; only `pane` is drawn from it.
    """

    taken_at: float
    overview: Overview = field(default_factory=Overview)
    sessions: list[Session] = field(default_factory=list)
    sessions_total: int | None = None  # every session the server has (the list may be its top rows)
    queries: list[ActiveQuery] = field(default_factory=list)
    locks: list[Lock] = field(default_factory=list)
    blocking_tree: list[BlockerNode] = field(default_factory=list)
    wait_edges: tuple[WaitEdge, ...] = ()  # the graph's waiters, when the server names their sessions
    deadlock_check_seconds: float | None = None  # how soon the server breaks a deadlock, when it says
    deadlocks: list[Deadlock] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    silences: list[Silence] | None = None  # None: the server lists none (RustyDB has no silences)
    backups: list[Backup] = field(default_factory=list)
    schedule: BackupSchedule | None = None
    backup_age_limit_hours: float | None = None  # from the server's alert rule, when it has one
    ash_samples: list[AshSample] = field(default_factory=list)
    ash_top: dict[str, list[AshBucket]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    pane: str | None = None  # the pane this poll read for

    def blocking_groups(self) -> list[BlockingGroup]:
        return blocking_groups(self.blocking_tree, self.wait_edges, self.sessions)

    def group_of(self, session_id: int) -> BlockingGroup | None:
        return next((g for g in self.blocking_groups() if session_id in g.sessions()), None)

    def waiting_behind(self, session_id: int) -> list[int]:
        """The sessions that wait, directly or down a chain, for `session_id`: from its blocking
        group where it is in one (a cycle's member has the whole group waiting for it: the other
        members wait for it round the cycle), else by following the sessions' blocking_session."""
        group = self.group_of(session_id) if self.blocking_tree or self.wait_edges else None
        if group is not None:
            return group.behind(session_id)
        waiters: dict[int, list[int]] = {}
        for s in self.sessions:
            if s.blocking_session is not None:
                waiters.setdefault(s.blocking_session, []).append(s.session_id)
        found: dict[int, None] = {}
        todo = list(waiters.get(session_id, ()))
        while todo:
            sid = todo.pop(0)
            if sid != session_id and sid not in found:
                found[sid] = None
                todo.extend(waiters.get(sid, ()))
        return list(found)

    def root_blocker_of(self, session_id: int) -> int | None:
        """The root of the chain a waiting session waits in (following blocking_session); None for
        a session in or behind a deadlock cycle, which has no root."""
        by_id = {s.session_id: s for s in self.sessions}
        group = self.group_of(session_id) if self.blocking_tree or self.wait_edges else None
        if group is not None:
            return None if group.cycle or group.root.session_id == session_id else group.root.session_id
        seen, current = {session_id}, by_id.get(session_id)
        while current is not None and current.blocking_session is not None:
            if current.blocking_session in seen:
                return current.blocking_session  # a cycle (a deadlock about to be broken)
            seen.add(current.blocking_session)
            nxt = by_id.get(current.blocking_session)
            if nxt is None:
                return current.blocking_session
            current = nxt
        return None if current is None or current.session_id == session_id else current.session_id
