"""`rdbtop --once [--json]`: one snapshot printed for scripts and tickets, then exit.

Exit codes (also in `rdbtop --help`): 0 printed; 1 any other failure; 2 the server could not be
reached; 3 the server refused our credentials (key, token or password).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from .client import ClientError, CredentialsRefused, Unreachable
from .format import age, duration, size, tree_summary, victim_note
from .model import Snapshot
from .poller import Poller
from .safe import safe_text
from .sources import Source

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_REFUSED = 0, 1, 2, 3
EMBEDDED_WARMUP_SECONDS = 2.0
SQL_WIDTH = 60


def to_json(snap: Snapshot) -> dict[str, Any]:
    data = dataclasses.asdict(snap)
    out = {"taken_at": snap.taken_at, "server": data["overview"], "sessions": data["sessions"],
           "active_queries": data["queries"], "blocking_tree": data["blocking_tree"], "alerts": data["alerts"],
           "backups": data["backups"], "backup_schedule": data["schedule"], "not_served": snap.missing,
           "errors": snap.errors}
    return out


def _table(title: str, headers: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    for h in headers:
        table.add_column(h, no_wrap=True)
    for row in rows:
        table.add_row(*(safe_text(cell, SQL_WIDTH) for cell in row))
    return table


def render(snap: Snapshot, console: Console) -> None:
    o = snap.overview
    console.print(safe_text(f"{o.server_name or 'server'} {o.server_version or ''}  health {o.health or '–'}  "
                            f"uptime {duration(o.uptime_seconds)}  statements/s {o.statements_per_second or 0:.1f}"))
    console.print(_table("Sessions", ["id", "user", "state", "wait", "blocked by", "in state", "sql"],
                         [[s.session_id, s.username, s.state, s.wait_event, s.blocking_session,
                           duration(s.state_seconds), s.sql] for s in snap.sessions if s.state != "idle"]))
    console.print(_table("Active queries", ["query", "session", "user", "elapsed", "wait", "sql"],
                         [[q.query_id, q.session_id, q.username, duration((q.elapsed_ms or 0) / 1000), q.wait_event,
                           q.sql] for q in snap.queries]))
    groups = snap.blocking_groups()
    tree: list[list[Any]] = []
    for group in groups:
        if group.cycle:
            tree.append([f"deadlock cycle {group.cycle_text()}", None, None, None, victim_note(snap)])
        tree.extend([("  " * (depth + bool(group.cycle))) + str(n.session_id), n.username, n.resource,
                     duration(n.wait_seconds) if depth or group.cycle else None, n.sql] for depth, _, n in group.rows)
    console.print(_table(f"Blocking tree: {tree_summary(groups)}", ["session", "user", "waits for", "waiting", "sql"],
                         tree))
    for area in ("alerts", "backups"):
        if area in snap.missing:
            console.print(safe_text(f"{area}: {snap.missing[area]}"))
    if "alerts" not in snap.missing:
        console.print(_table("Alerts", ["id", "severity", "state", "title", "since"],
                             [[a.alert_id, a.severity, a.status, a.title, age(a.triggered_at, snap.taken_at)]
                              for a in snap.alerts]))
    if "backups" not in snap.missing:
        console.print(_table("Backups", ["id", "type", "status", "size", "age"],
                             [[b.backup_id, b.backup_type, b.status, size(b.size_bytes),
                               age(b.completion_time or b.start_time, snap.taken_at)] for b in snap.backups]))


async def run_once(source: Source, as_json: bool, embedded: bool, out: TextIO = sys.stdout,
                   err: TextIO = sys.stderr) -> int:
    try:
        client = await source.open()
        await source.settled()  # the embedded demo loaded and running
        if embedded:
            await asyncio.sleep(EMBEDDED_WARMUP_SECONDS)  # let the demo workload produce something to show
        snap = await Poller(client).snapshot()
    except Unreachable as exc:
        print(f"rdbtop: {exc}", file=err)
        return EXIT_UNREACHABLE
    except CredentialsRefused as exc:
        print(f"rdbtop: credentials refused: {exc}", file=err)
        return EXIT_REFUSED
    except ClientError as exc:
        print(f"rdbtop: {exc}", file=err)
        return EXIT_FAILED
    finally:
        await source.close()
        await asyncio.to_thread(source.shutdown)
    if as_json:
        json.dump(to_json(snap), out, indent=2, sort_keys=False)
        out.write("\n")
    else:
        render(snap, Console(file=out, width=160, soft_wrap=False))
    return EXIT_OK
