"""A deterministic RustyDB-shaped server for console tests: fixed data, a frozen clock, recorded calls.

It holds a blocking chain (session 3 idle in transaction holds inventory; 2 waits for it; 9 waits
for 2), a long report, idle sessions, and one session whose every string is hostile (markup,
ANSI escapes, control characters, wide characters). Actions change its state as a server would.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from rdbtop.client import Credentials, RdbClient

NOW = 1_800_000_000  # 2027-01-15 08:00:00 UTC
HOSTILE_SQL = "SELECT '[/x]' AS a, '[link=http://x]a[/link]' AS b, '\x1b[31mred\x1b[0m' AS c, '表格数据' AS d\r\n--x"


def _session(sid: int, user: str, app: str, state: str, sql: str | None = None, qid: str | None = None,
             wait: tuple[str, str] | None = None, blocker: int | None = None, in_state: float = 1.0,
             txn_age: int | None = None) -> dict[str, Any]:
    return {"session_id": sid, "username": user, "database": "rustydb", "client_address": f"10.0.0.{sid}",
            "created_at": NOW - 3600 - sid, "last_activity": NOW - int(in_state), "state": state,
            "current_query": sql, "transaction_id": 100 + sid if txn_age is not None else None,
            "application_name": app, "wait_class": wait[0] if wait else None, "wait_event": wait[1] if wait else None,
            "blocking_session": blocker, "blocking_sessions": [blocker] if blocker else [],
            "state_since": NOW - int(in_state), "state_seconds": in_state, "current_query_id": qid,
            "sql_id": "f00d" if sql else None, "query_started_at": NOW - int(in_state) if sql else None,
            "transaction_started_at": NOW - txn_age if txn_age is not None else None, "statements": 10,
            "rows_read": 0, "rows_written": 0, "errors": 0, "commits": 0, "rollbacks": 0,
            # our engine's additions: times to the millisecond, resources
            "state_since_ms": round((NOW - in_state) * 1000),
            "query_started_at_ms": round((NOW - in_state) * 1000) if sql else None,
            "transaction_started_at_ms": (NOW - txn_age) * 1000 + 250 if txn_age is not None else None,
            "cpu_time_ms": 37.5 * sid * sid, "cache_hits": 1000 * sid, "cache_misses": 40 * sid,
            "pages_written": 3 * sid if txn_age is not None else 0, "rows_returned": 250 * sid}


def initial_sessions() -> list[dict[str, Any]]:
    return [
        _session(2, "shop", "oltp", "waiting", "UPDATE inventory.stock SET quantity = quantity - 1 WHERE id = ?",
                 "q201", ("Lock", "schema:inventory"), 3, 42.5, 43),
        _session(3, "batch", "batch-forgotten", "idle in transaction", None, None,
                 ("Idle in transaction", "ClientRead"), None, 95.0, 120),
        _session(6, "analyst", "report", "active", "SELECT region, sum(total) FROM sales.orders GROUP BY region",
                 "q601", ("CPU", "CPU"), None, 7.25),
        _session(7, "etl", "import", "idle", None, None, None, None, 300.0),
        _session(8, "shop", "oltp", "idle", None, None, None, None, 2.0),
        _session(9, "shop", "oltp", "waiting", "UPDATE inventory.stock SET quantity = quantity - 2 WHERE id = ?",
                 "q901", ("Lock", "schema:inventory"), 2, 12.0, 12),
        _session(11, "[/x]mallory\x1b[31m", "[link=http://x]app[/link]\x00", "active", HOSTILE_SQL, "q1101",
                 ("CPU", "CPU"), None, 3.0),
    ]


def _alert(aid: str, severity: str, title: str, description: str, triggered: int, state: str, rule: str,
           metric: str, value: float, threshold: float, count: int, by: str | None) -> dict[str, Any]:
    return {"alert_id": aid, "severity": severity, "title": title, "description": description,
            "triggered_at": triggered, "acknowledged": by is not None, "state": state, "category": "Performance",
            "rule": rule, "metric": metric, "operator": ">", "value": value, "threshold": threshold, "unit": None,
            "acknowledged_by": by, "acknowledged_at": triggered + 60 if by else None, "acknowledge_note": None,
            "resolved_at": None, "occurrence_count": count, "last_fired_at": triggered, "pending_since": None,
            "silenced_by": None, "labels": {"sessions": "2,9"}}


def _node(state: str, in_state: float, txn: float, sid: int, app: str) -> dict[str, Any]:
    """What the lock graph says of a waiting session besides its wait."""
    return {"state": state, "state_seconds": in_state, "transaction_seconds": txn, "client_address": f"10.0.0.{sid}",
            "application_name": app, "last_sql": None}


def _backup(bid: str, kind: str, status: str, start: int, took: int, size: int | None, error: str | None = None,
            completed: bool = True) -> dict[str, Any]:
    return {"backup_id": bid, "backup_type": kind, "status": status, "start_time": start,
            "completion_time": start + took if completed else None, "snapshot_time": start, "size_bytes": size,
            "compressed_size_bytes": size, "stored_bytes": size, "location": f"/backups/{bid[-4:]}",
            "description": None, "base_backup_id": bid, "parent_backup_id": None, "error_message": error}


class FakeServer:
    def __init__(self) -> None:
        self.now = NOW
        self.sessions = initial_sessions()
        self.alerts: list[dict[str, Any]] = [
            {**_alert("a1", "critical", "", "", NOW - 90, "firing", "", "", 0, 0, 0, None), "alert_id": "a1", "severity": "critical", "title": "Blocked session",
             "description": "session 2 (shop@oltp) has waited 42 s for schema:inventory (blocked by session 3) "
                            "(threshold: lock_wait_seconds > 30 s)",
             "triggered_at": NOW - 90, "acknowledged": False, "state": "firing", "category": "Performance",
             "rule": "blocked_session", "metric": "lock_wait_seconds", "operator": ">", "unit": "s",
             "value": 42.5, "threshold": 30.0, "occurrence_count": 3, "acknowledged_by": None,
             "acknowledged_at": None, "acknowledge_note": None,
             "labels": {"session_id": "2", "username": "shop"}, "silenced_by": None,
             "acknowledgements": [{"occurrence": 1, "acknowledged_by": "oncall", "acknowledged_at": NOW - 3000,
                                   "note": "restarting the batch"}]},
            {**_alert("a2", "warning", "", "", NOW - 600, "acknowledged", "", "", 0, 0, 0, "oncall"), "alert_id": "a2", "severity": "warning", "title": "Low cache hit ratio",
             "description": "page-cache hits over all page reads in the last minute is 0.93 "
                            "(threshold: cache_hit_ratio < 0.95 ratio)",
             "triggered_at": NOW - 600, "acknowledged": True, "state": "acknowledged", "category": "Performance",
             "rule": "cache_hit_ratio", "metric": "cache_hit_ratio", "operator": "<", "unit": "ratio",
             "value": 0.93, "threshold": 0.95, "occurrence_count": 1, "acknowledged_by": "oncall",
             "acknowledged_at": NOW - 300, "acknowledge_note": "warming the cache", "labels": {},
             "silenced_by": None, "acknowledgements": [{"occurrence": 1, "acknowledged_by": "oncall",
                                                        "acknowledged_at": NOW - 300, "note": "warming the cache"}]},
            {"alert_id": "a3", "severity": "info", "title": "[bold]markup[/bold] \x1b[5mblink", "description": "z",
             "triggered_at": NOW - 30, "acknowledged": False},  # RustyDB's shape: no state, no value
        ]
        self.silences: list[dict[str, Any]] = [
            {"silence_id": "s1", "rule_id": "disk_free", "labels": {}, "comment": "disk swap tonight",
             "created_by": "oncall", "created_at": NOW - 600, "expires_at": NOW + 3000, "active": True},
            {"silence_id": "s0", "rule_id": None, "labels": {"username": "etl"}, "comment": None,
             "created_by": "admin", "created_at": NOW - 7200, "expires_at": NOW - 1800, "active": False},
        ]
        self.jobs: list[dict[str, Any]] = [
            {"job_id": "job-0", "operation": "checkpoint", "status": "failed", "target": "inventory",
             "created_at": NOW - 900, "duration_ms": 5003.0, "steps": [], "bytes_reclaimed": None,
             "error": "the checkpoint was busy", "wait_event": None}]
        self.backups: list[dict[str, Any]] = [
            _backup("backup_0001", "full", "completed", NOW - 30 * 3600, 42, 52_428_800),
            _backup("backup_0002", "incremental", "failed", NOW - 3 * 3600, 5, None, "disk full"),
        ]
        self.performance: dict[str, Any] = {}  # figures that replace /stats/performance's
        self.job_outcome: dict[str, Any] = {}  # how a maintenance job ends, over "completed"
        self.calls: list[tuple[str, str, Any]] = []
        self.reads: list[tuple[str, dict[str, str]]] = []  # every GET: path and query parameters
        self.role: str | None = None  # what /auth/validate says: None for an API key (it cannot tell)
        self.not_served: set[str] = set()  # path prefixes answered with a route 404
        self.forbidden: set[str] = set()  # path prefixes answered with 403
        self.refuse = False  # every call answered 401, as for a wrong key
        self.cycle = False  # sessions 4 and 5 deadlocked (10 waits behind 4), not yet broken
        self.ash_top = {"sql_id": [{"key": "f00d", "samples": 30, "percent": 60.0, "average_active_sessions": 2.0,
                                    "example": "UPDATE inventory.stock SET quantity = quantity - ?"}],
                        "session": [{"key": "2", "samples": 20, "percent": 40.0, "average_active_sessions": 1.3,
                                     "example": "shop@oltp"}],
                        "wait_event": [{"key": "schema:inventory", "samples": 25, "percent": 50.0,
                                        "average_active_sessions": 1.6, "example": None}]}

    # -- what a test looks at --------------------------------------------------------------

    def actions(self) -> list[tuple[str, str, Any]]:
        return [c for c in self.calls if c[0] != "GET"]

    def session(self, sid: int) -> dict[str, Any] | None:
        return next((s for s in self.sessions if s["session_id"] == sid), None)

    def client(self) -> RdbClient:
        return RdbClient("http://fake", Credentials(api_key="test"), transport=httpx.MockTransport(self.handle))

    # -- the API ---------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, path, body))
        if request.method == "GET":
            self.reads.append((path, dict(request.url.params)))
        if self.refuse and path != "/api/v1/auth/validate":
            return self._error(401, "UNAUTHORIZED", "invalid API key")
        if any(path.startswith(p) for p in self.not_served):
            return self._error(404, "NOT_FOUND", f"no route for {request.method} {path}")
        if any(path.startswith(p) for p in self.forbidden):
            return self._error(403, "FORBIDDEN", "this action needs the operator role; test has monitor")
        route = self._route(request.method, path, dict(request.url.params), body)
        if route is None:
            return self._error(404, "NOT_FOUND", f"no route for {request.method} {path}")
        status, payload = route
        return httpx.Response(status, json=payload) if payload is not None else httpx.Response(status)

    @staticmethod
    def _error(status: int, code: str, message: str) -> httpx.Response:
        return httpx.Response(status, json={"code": code, "message": message, "details": None,
                                            "timestamp": NOW, "request_id": "r1"})

    def _route(self, method: str, path: str, params: dict[str, str], body: Any) -> tuple[int, Any] | None:
        p = path.removeprefix("/api/v1")
        if method == "GET":
            fixed = {
                "/stats/performance": self._performance, "/admin/health": self._health, "/server/info": self._info,
                "/stats/sessions": self._sessions,
                "/query/active": self._active, "/transactions/locks/graph": self._graph,
                "/transactions/locks": self._locks, "/transactions/deadlocks": self._deadlocks,
                "/alerts": lambda: {"alerts": self.alerts, "active_count": 2, "total_count": len(self.alerts)},
                "/alerts/silences": lambda: self.silences,
                "/admin/maintenance/targets": lambda: {"schemas": [
                    {"schema_name": "inventory", "tables": ["stock"]},
                    {"schema_name": "sales", "tables": ["customers", "orders"]}]},
                "/admin/maintenance": lambda: {"data": self.jobs[::-1], "total_count": len(self.jobs), "page": 1,
                                               "page_size": 50, "total_pages": 1},
                "/backup/list": lambda: {"backups": self.backups, "total_count": len(self.backups)},
                "/backup/schedule": lambda: {"enabled": True, "full_backup_cron": "0 2 * * *",
                                             "incremental_backup_cron": "0 * * * *", "retention_days": 14,
                                             "compression": True, "encryption": False, "destination": "/backups",
                                             "compression_algorithm": "zstd"},
                "/monitoring/ash": lambda: self._ash(params),
                "/config": lambda: {"settings": {"deadlock_check_interval_ms": 1000, "lock_timeout_ms": 30000},
                                    "version": "0.6.0", "build_date": None, "rust_version": None, "features": [],
                                    "settings_meta": {"deadlock_check_interval_ms": {
                                        "source": "config", "unit": "ms", "min": 10, "max": 60_000, "live": True,
                                        "choices": [], "default": 1000, "doc": "between deadlock checks"}}},
                "/auth/validate": lambda: {"valid": self.role is not None, "role": self.role,
                                           "username": "test" if self.role else None},
                "/alerts/rules": lambda: [{"rule_id": "backup_age", "name": "Backup too old", "metric": "backup_age_hours",
                                           "operator": ">", "threshold": 24.0, "for_seconds": 0.0,
                                           "severity": "WARNING", "category": "Backup", "cooldown_seconds": 300.0,
                                           "enabled": True, "webhook_url": None, "description": "the last backup",
                                           "builtin": True, "created_at": NOW - 86_400, "updated_at": NOW - 86_400,
                                           "metric_available": True}],
                "/profiling/queries": lambda: {"profiles": [{"query_id": "f00d", "query_text": "UPDATE ...",
                                                             "execution_count": 1200, "total_time_ms": 3400,
                                                             "avg_time_ms": 2.83, "min_time_ms": 0.2,
                                                             "max_time_ms": 900, "total_rows_returned": 0,
                                                             "avg_rows_returned": 0.0, "cache_hit_ratio": 0.964,
                                                             "first_executed": NOW - 3600, "last_executed": NOW - 1,
                                                             "execution_plan": "SEARCH inventory.stock USING "
                                                                               "INTEGER PRIMARY KEY (rowid=?)",
                                                             "plan_captured_at": NOW - 600, "p50_ms": 1.2,
                                                             "p95_ms": 4.1, "p99_ms": 12.5, "errors": 2,
                                                             "profiled_calls": 9, "fullscan_steps": 0, "sorts": 0,
                                                             "vm_steps": 412, "cpu_time_ms": 96.0, "cache_hits": 80,
                                                             "cache_misses": 3, "pages_written": 9, "rows_returned": 0}],
                                               "total_count": 1, "page": 1, "page_size": 1000, "total_pages": 1,
                                               "has_next": False, "has_prev": False},
            }
            if p in fixed:
                return 200, fixed[p]()
            if m := re.fullmatch(r"/sessions/(\d+)", p):
                s = self.session(int(m[1]))
                return (200, s) if s else (404, {"code": "NOT_FOUND", "message": f"Session {m[1]} not found"})
            if m := re.fullmatch(r"/query/(q\d+)/status", p):
                q = next((q for q in self._active() if q["query_id"] == m[1]), None)
                return (200, q) if q else (404, {"code": "NOT_FOUND", "message": f"Query {m[1]} not found"})
            if m := re.fullmatch(r"/admin/maintenance/([\w-]+)", p):
                job = next((j for j in self.jobs if j["job_id"] == m[1]), None)
                if job is None:
                    return 404, {"code": "NOT_FOUND", "message": f"Maintenance job {m[1]} not found"}
                if job["status"] == "running":  # a job ends by the time it is first asked about
                    job.update(status="completed", completed_at=self.now, duration_ms=1250.0,
                               steps=[{"schema_name": job["target"] or "sales"}],
                               bytes_reclaimed=65536 if job["operation"] == "vacuum" else None)
                    job.update(self.job_outcome)
                return 200, job
            return None
        if method == "DELETE" and (m := re.fullmatch(r"/sessions/(\d+)", p)):
            s = self.session(int(m[1]))
            if s is None:
                return 404, {"code": "NOT_FOUND", "message": f"Session {m[1]} not found"}
            self.sessions.remove(s)
            return 204, None
        if method == "POST":
            if m := re.fullmatch(r"/query/(q\d+)/cancel", p):
                s = next((s for s in self.sessions if s["current_query_id"] == m[1]), None)
                if s is None:
                    return 404, {"code": "NOT_FOUND", "message": f"Query {m[1]} is not running"}
                s.update(current_query=None, current_query_id=None, state="idle", wait_event=None, wait_class=None)
                return 200, {"query_id": m[1], "status": "cancelled", "rows_processed": None, "elapsed_ms": 5,
                             "message": f"Query {m[1]} canceled by test", "session_id": s["session_id"]}
            if m := re.fullmatch(r"/alerts/(\w+)/acknowledge", p):
                a = next((a for a in self.alerts if a["alert_id"] == m[1]), None)
                if a is None:
                    return 404, {"code": "NOT_FOUND", "message": f"Alert {m[1]} not found"}
                a.update(acknowledged=True, state="acknowledged", acknowledged_by="test")
                return 200, a
            if p == "/alerts/silences":
                silence = {"silence_id": f"s{len(self.silences) + 1}", "rule_id": body.get("rule_id"),
                           "labels": body.get("labels") or {}, "comment": body.get("comment"), "created_by": "test",
                           "created_at": self.now, "expires_at": self.now + int(body["duration_seconds"]),
                           "active": True}
                self.silences.append(silence)
                return 201, silence
            if p == "/admin/maintenance":
                job = {"job_id": f"job-{len(self.jobs)}", "operation": (body or {}).get("operation"),
                       "status": "running", "target": (body or {}).get("target"), "created_at": self.now,
                       "duration_ms": None, "steps": [], "bytes_reclaimed": None, "error": None, "wait_event": None}
                self.jobs.append(job)
                return 202, job
            if p == "/backup/full":
                backup = _backup("backup_0003", "full", "in_progress", self.now, 0, None, completed=False)
                self.backups.append(backup)
                return 202, backup
        return None

    def _performance(self) -> dict[str, Any]:
        by_state: dict[str, int] = {}
        for s in self.sessions:
            by_state[s["state"]] = by_state.get(s["state"], 0) + 1
        return {"cpu_usage_percent": 35.0, "memory_usage_bytes": 3 << 30, "memory_usage_percent": 41.0,
                "disk_io_read_bytes": 1 << 20, "disk_io_write_bytes": 4 << 20, "cache_hit_ratio": 0.975,
                "transactions_per_second": 40.0, "locks_held": 2, "deadlocks": 1, "timestamp": self.now,
                "statements_per_second": 250.0, "statements": 900_000, "commits": 144_000, "rollbacks": 12,
                "active_transactions": 3, "lock_waits": 40, "lock_timeouts": 0, "lock_waiters": 2,
                "sessions": by_state, "total_sessions": len(self.sessions), "peak_sessions": 12,
                "max_connections": 100, "process_cpu_percent": 20.0, "process_rss_bytes": 200 << 20,
                "host_cpu_count": 4, "load_average_1m": 1.5, "disk_free_bytes": 50 << 30, "disk_total_bytes": 100 << 30,
                "disk_free_percent": 50.0, "uptime_seconds": 86_400 + 3_723.0, **self.performance}

    def _sessions(self) -> dict[str, Any]:
        count = {state: sum(1 for s in self.sessions if s["state"] == state)
                 for state in ("active", "idle", "waiting", "idle in transaction")}
        return {"sessions": self.sessions, "active_sessions": count["active"], "idle_sessions": count["idle"],
                "total_connections": len(self.sessions), "peak_connections": 12, "waiting_sessions": count["waiting"],
                "idle_in_transaction_sessions": count["idle in transaction"], "max_connections": 100,
                "page": 1, "page_size": len(self.sessions), "total_pages": 1, "total_count": len(self.sessions),
                "has_next": False, "has_prev": False}

    def _health(self) -> dict[str, Any]:
        return {"status": "healthy", "version": "0.1.0", "uptime_seconds": 90_123,
                "checks": {"storage": {"status": "healthy", "message": "ok", "last_check": NOW}}}

    def _info(self) -> dict[str, Any]:
        return {"server_name": "fake-rustydb", "version": "0.6.0", "build_date": None, "build_target": "x86_64-linux",
                "rust_version": None, "git_commit": None, "uptime_seconds": 90_123, "started_at": NOW - 90_123,
                "pid": 4242, "system_info": {"os": "linux", "arch": "x86_64", "cpu_cores": 4, "hostname": "db1"},
                "features": ["wal"], "license": "MIT", "sqlite_version": "3.45.0", "apsw_version": "3.45.0.0",
                "python_version": "3.11.7", "data_directory": "/var/lib/rdb"}

    def _active(self) -> list[dict[str, Any]]:
        return [{"query_id": s["current_query_id"], "status": "waiting" if s["state"] == "waiting" else "running",
                 "elapsed_ms": int(s["state_seconds"] * 1000), "current_operation": "executing",
                 "session_id": s["session_id"], "username": s["username"], "sql_text": s["current_query"],
                 "sql_id": s["sql_id"], "started_at": s["query_started_at"], "state": s["state"],
                 "wait_event": s["wait_event"], "wait_class": s["wait_class"], "blocking_session": s["blocking_session"],
                 "blocking_sessions": s["blocking_sessions"], "progress_percent": None, "rows_scanned": None,
                 "rows_returned": None, "rows_written": None, "estimated_remaining_ms": None, "vm_steps": None,
                 "sorts": None, "error_code": None, "error_message": None, "stopped_by": None,
                 "started_at_ms": s["query_started_at_ms"], "cpu_time_ms": round(s["cpu_time_ms"] / 3, 3),
                 "cache_hits": s["cache_hits"] // 4, "cache_misses": s["cache_misses"] // 4,
                 "pages_written": s["pages_written"] // 4, "execution_plan": None, "plan_captured_at": None}
                for s in self.sessions if s["current_query_id"]]

    def deadlock(self) -> None:
        """Sessions 4 and 5 wait for each other (10 waits behind 4), as the engine serves it while
        another session (3) is a root blocker: in its waiters, not in its tree."""
        self.cycle = True
        self.sessions += [
            _session(4, "shop", "oltp", "waiting", "UPDATE inventory.stock SET quantity = 0 WHERE id = 4", "q401",
                     ("Lock", "schema:sales"), 5, 0.8, 3),
            _session(5, "billing", "invoices", "waiting", "UPDATE sales.orders SET paid = 1 WHERE id = 7", "q501",
                     ("Lock", "schema:inventory"), 4, 0.6, 2),
            _session(10, "report", "report", "waiting", "UPDATE sales.orders SET total = 0", "q1001",
                     ("Lock", "schema:sales"), 4, 0.4, 1),
        ]

    def _waiters(self) -> list[dict[str, Any]]:
        edges = [(w, h, "inventory", ms) for w, h, ms in ((2, 3, 42_500), (9, 2, 12_000))
                 if self.session(w) and self.session(h)]
        if self.cycle:
            edges += [(4, 5, "sales", 800), (5, 4, "inventory", 600), (10, 4, "sales", 400)]
        return [{"transaction_id": 100 + w, "waiting_for_transaction": 100 + h, "lock_type": "exclusive",
                 "resource_type": "schema", "resource_id": r, "wait_time_ms": ms, "session_id": w,
                 "waiting_for_session": h} for w, h, r, ms in edges]

    def _graph(self) -> dict[str, Any]:
        cycles = [[104, 105]] if self.cycle else []
        if self.session(3) is None or self.session(2) is None:
            return {"waiters": self._waiters(), "potential_deadlocks": cycles, "blocking_tree": []}
        leaf = [{"session_id": 9, "transaction_id": 109, "username": "shop", "sql": self.session(9)["current_query"],
                 "resource": "inventory", "wait_started_at": NOW - 12, "wait_seconds": 12.0,
                 **_node("waiting", 12.0, 12.0, 9, "oltp"), "blocked": []}] \
            if self.session(9) else []
        return {"waiters": self._waiters(), "potential_deadlocks": cycles, "blocking_tree": [
            {"session_id": 3, "transaction_id": 103, "username": "batch", "sql": None, "resource": None,
             "wait_started_at": None, "wait_seconds": None, "state": "idle in transaction", "state_seconds": 95.0,
             "transaction_seconds": 120.0, "client_address": "10.0.0.3", "application_name": "batch-forgotten",
             "last_sql": "UPDATE inventory.stock SET quantity = quantity + 10 WHERE id = ?", "blocked": [
                 {"session_id": 2, "transaction_id": 102, "username": "shop",
                  "sql": self.session(2)["current_query"], "resource": "inventory", "wait_started_at": NOW - 42,
                  "wait_seconds": 42.5, **_node("waiting", 42.5, 43.0, 2, "oltp"), "blocked": leaf}]}]}

    def _locks(self) -> dict[str, Any]:
        locks = [{"lock_id": "103:inventory", "lock_type": "exclusive", "resource_type": "schema",
                  "resource_id": "inventory", "transaction_id": 103, "granted": True, "acquired_at": NOW - 120,
                  "session_id": 3, "wait_started_at": None, "blocked_by": []}]
        if self.session(2):
            locks.append({"lock_id": "102:inventory:wait", "lock_type": "exclusive", "resource_type": "schema",
                          "resource_id": "inventory", "transaction_id": 102, "granted": False, "acquired_at": None,
                          "session_id": 2, "wait_started_at": NOW - 42, "blocked_by": [3]})
        return {"total_locks": len(locks), "granted_locks": 1, "waiting_locks": len(locks) - 1, "locks": locks}

    def _deadlocks(self) -> list[dict[str, Any]]:
        return [{"deadlock_id": "1", "detected_at": NOW - 300, "transactions": [104, 105], "victim_transaction": 105,
                 "resolution": "abort_youngest", "victim_session": 5,
                 "participants": [{"session_id": 4, "transaction_id": 104, "sql": "UPDATE a", "waiting_for": "sales",
                                   "holding": ["inventory"]},
                                  {"session_id": 5, "transaction_id": 105, "sql": "UPDATE b",
                                   "waiting_for": "inventory", "holding": ["sales"]}],
                 "resources": ["inventory", "sales"]}]

    def _ash(self, params: dict[str, str]) -> dict[str, Any]:
        start = int(params.get("start_time", NOW - 900))
        window = {"sample_interval_seconds": 1.0, "time_range": {"start": start, "end": NOW}, "truncated": False}
        if "group_by" in params:
            return {"samples": [], "total_count": 0, **window, "group_by": params["group_by"],
                    "top": self.ash_top.get(params["group_by"], [])}
        samples = []
        for t in range(max(start, NOW - 900), NOW + 1, 5):  # a pattern a reader can check by eye
            phase = (t // 60) % 6
            for i, cls in enumerate(["CPU", "Lock", "Lock", "Idle in transaction", "IO"][: 1 + phase % 5]):
                samples.append({"sample_id": len(samples) + 1, "sample_time": t, "session_id": i + 1,
                                "sql_id": "f00d", "sql_text": "UPDATE inventory.stock SET quantity = quantity - ?",
                                "query_id": f"q{i + 1}01", "wait_class": cls, "state": "active",
                                "wait_event": None if cls == "CPU" else cls, "wait_time_ms": 0 if cls == "CPU" else 5,
                                "blocking_session": None, "cpu_time_ms": None, "user_name": "shop",
                                "program": "oltp", "module": None, "action": None})
        return {"samples": samples, "total_count": len(samples), **window, "group_by": None, "top": None}


class FakeSource:
    label = "fake://server"

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self._client = server.client()

    async def open(self) -> RdbClient:
        return self._client

    async def close(self) -> None:
        await self._client.aclose()

    async def settled(self) -> None:
        pass

    def data_shown(self) -> None:
        pass

    def shutdown(self) -> None:
        pass
