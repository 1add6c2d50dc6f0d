"""The console's cost as a user pays it: the real `rdbtop` in a real pseudo-terminal.

`python -m rdbtop --url URL --api-key KEY --interval 1` runs in a pty (its own session and
controlling terminal) whose output a terminal emulator (pyte) consumes, so the console writes
the escape sequences it would write to a user's terminal. The server is another process,
`python bench/terminal.py --serve N PORT`: the engine with N sessions, ~20 % of them in a
statement (three lock groups, each a holder idle in a transaction and waiters queued behind it;
the rest in `SELECT sleep(...)`, which waits without CPU), the rest idle, and the API on a
loopback port. From one run it reports, per terminal size and session count:

- first frame with session rows: from starting the console's process to the first screen whose
  Sessions pane shows rows ("N of M sessions" and a row); the key `2` is typed as soon as the tab
  bar is painted, as a user would. With --embedded also for `python -m rdbtop` (engine and demo in
  the console's process).
- CPU % of one core of the console's process tree at a 1 s refresh, over --seconds on each pane
  (Overview, Sessions, Locks, ASH), after a few seconds to settle; bytes written to the terminal
  per second over the same window; peak RSS (the kernel's high-water mark) over the whole run.
- the server's CPU while watched, and unwatched before the console starts (its load alone).

When PostgreSQL's binaries (initdb, pg_ctl), pip's pg_activity and psycopg are installed,
pg_activity runs in the same kind of pty against a PostgreSQL with the same session shape
(pg_sleep for the statements, row locks for the lock groups), so the ratio is measured in the
same run; otherwise the issue's reference figures for pg_activity are printed, saying so.

    python bench/terminal.py [--seconds 60] [--sessions 100 1000] [--sizes 160x48 80x24]
                             [--panes overview sessions locks ash] [--no-pg] [--embedded]
    python bench/terminal.py --short   # a few seconds per step: the test that it runs

Targets: CPU <= pg_activity's on every pane; first frame with session rows <= 1.0 s remote and
<= 1.5 s embedded; peak RSS <= 80 MiB at 1,000 sessions. Always exits 0; a missed target prints
MISS. On a shared machine the CPU figures are noisy (other processes take the cores): the
console's own CPU seconds are the robust part, wall-clock times the least.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from api_latency import serve_api  # bench/ is this script's directory
from console import Server, _free_port

ROOT = Path(__file__).resolve().parent.parent
PANE_KEYS = {"overview": "1", "sessions": "2", "queries": "3", "locks": "4", "ash": "5"}
SETTLE_S = 4.0  # after a pane switch: its first poll, build and backfill are not steady state
REMOTE_FIRST_FRAME_S = 1.0
EMBEDDED_FIRST_FRAME_S = 1.5
RSS_TARGET_MIB = 80.0
LOCK_GROUPS = 3
WAITERS_PER_GROUP = 3
IN_STATEMENT = 0.2
# pg_activity and rdbtop measured beside each other on this kind of machine (issue 15), for when
# pg_activity cannot run here: CPU % of a core at 1 s, first frame with session rows, peak RSS
REFERENCE = {100: {"cpu": 4.5, "first": 1.00}, 1000: {"cpu": 13.2, "rss": 47.5, "server": 14.5}}

SESSIONS_ROWS = re.compile(r"\b[1-9]\d* of \d+ sessions")  # the Sessions pane's caption, with rows
TAB_BAR = re.compile(r"1 Overview")
PG_ACTIVITY_ROWS = re.compile(r"^\d+ +(\d+ +)?postgres +app\d", re.MULTILINE)  # PID, XMIN, database, app


# -- the served engine ----------------------------------------------------------------------------

def _user(i: int) -> tuple[str, str, str]:
    return f"load{i % 20}", f"app{i % 7}", f"10.0.{i // 250}.{i % 250}"


def serve(n_sessions: int, port: int) -> None:
    """Server side: the engine with n_sessions in the bench's shape and its API, until stdin closes."""
    import resource

    sys.path.insert(0, str(ROOT))
    from engine import Engine, EngineConfig

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    engine = Engine(config=EngineConfig(max_connections=n_sessions + 100, lock_timeout_ms=3_600_000,
                                        query_timeout_secs=0)).start()
    setup = engine.connect("bench", "setup")
    for g in range(LOCK_GROUPS):  # a schema each: a writer holds its schema's file, not only the table
        engine.create_schema(f"g{g}")
        setup.execute(f"CREATE TABLE g{g}.t(id INTEGER PRIMARY KEY, v INTEGER)")
        setup.execute(f"INSERT INTO g{g}.t(v) VALUES (1), (2), (3)")
    setup.close()
    sessions = [engine.connect(*_user(i)) for i in range(n_sessions)]
    busy = sessions[: max(LOCK_GROUPS * (1 + WAITERS_PER_GROUP) + 1, int(n_sessions * IN_STATEMENT))]
    threads = []

    def run(session: Any, sql: str) -> None:
        try:
            session.execute(sql)
        except Exception:  # noqa: BLE001 (the engine's close at the end stops them)
            pass

    for g in range(LOCK_GROUPS):
        holder = busy[g * (1 + WAITERS_PER_GROUP)]
        holder.execute("BEGIN")
        holder.execute(f"UPDATE g{g}.t SET v = v + 1 WHERE id = 1")
        for w in range(WAITERS_PER_GROUP):
            threads.append((busy[g * (1 + WAITERS_PER_GROUP) + 1 + w], f"UPDATE g{g}.t SET v = v + 1 WHERE id = 1"))
    for s in busy[LOCK_GROUPS * (1 + WAITERS_PER_GROUP):]:
        threads.append((s, "SELECT sleep(86400)"))
    for s, sql in threads:
        threading.Thread(target=run, args=(s, sql), daemon=True).start()
    serve_api(engine, port)


class Served(Server):
    """`serve` in a child process, up once every session is in its place."""

    script = __file__

    def up(self) -> bool:
        import httpx

        want = max(LOCK_GROUPS * (1 + WAITERS_PER_GROUP) + 1, int(self.n * IN_STATEMENT))
        r = httpx.get(f"{self.url}/api/v1/stats/sessions", params={"state": "active,waiting", "limit": self.n},
                      headers={"X-API-Key": self.key}, timeout=10)
        # holders are idle in a transaction; every other busy session runs its statement
        return r.status_code == 200 and len(r.json()["sessions"]) >= want - LOCK_GROUPS


# -- PostgreSQL and pg_activity, when installed --------------------------------------------------

def pg_available() -> str | None:
    """Why pg_activity cannot run beside rdbtop here, or None when it can."""
    missing = [tool for tool in ("initdb", "pg_ctl", "pg_activity") if _pg_tool(tool) is None]
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing.append("psycopg")
    return f"not installed: {', '.join(missing)}" if missing else None


def _pg_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (bindir / name).exists():
            return str(bindir / name)
    return None


class Postgres:
    """A throwaway PostgreSQL cluster (as user postgres when run as root) with n sessions in the
    bench's shape, held by this process: pg_sleep for the statements, a row lock per group."""

    def __init__(self, n_sessions: int) -> None:
        import psycopg

        self.dir = Path(tempfile.mkdtemp(prefix="rdbtop-bench-pg-"))
        self.port = _free_port()
        self.user: dict[str, Any] = {}
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.user = {"user": pw.pw_uid, "group": pw.pw_gid}
        data = self.dir / "data"
        subprocess.run([_pg_tool("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, **self.user)
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses='' -c max_connections={n_sessions + 50} "
                "-c shared_buffers=32MB -c fsync=off")
        subprocess.run([_pg_tool("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start"],
                       check=True, capture_output=True, **self.user)
        self.conninfo = f"host={self.dir} port={self.port} user=postgres dbname=postgres"
        self.conns: list[Any] = []
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as setup:
                for g in range(LOCK_GROUPS):
                    setup.execute(f"CREATE TABLE g{g}(id int PRIMARY KEY, v int)")
                    setup.execute(f"INSERT INTO g{g} VALUES (1, 1), (2, 2), (3, 3)")
            for i in range(n_sessions):
                user, app, _ = _user(i)
                self.conns.append(psycopg.connect(self.conninfo, autocommit=True, application_name=app))
            busy = self.conns[: max(LOCK_GROUPS * (1 + WAITERS_PER_GROUP) + 1, int(n_sessions * IN_STATEMENT))]
            for g in range(LOCK_GROUPS):
                holder = busy[g * (1 + WAITERS_PER_GROUP)]
                holder.execute("BEGIN")
                holder.execute(f"UPDATE g{g} SET v = v + 1 WHERE id = 1")
                for w in range(WAITERS_PER_GROUP):  # sent, never read: the backend waits on the row lock
                    busy[g * (1 + WAITERS_PER_GROUP) + 1 + w].pgconn.send_query(
                        f"UPDATE g{g} SET v = v + 1 WHERE id = 1".encode())
            for c in busy[LOCK_GROUPS * (1 + WAITERS_PER_GROUP):]:
                c.pgconn.send_query(b"SELECT pg_sleep(86400)")
            self.postmaster = int((data / "postmaster.pid").read_text().split()[0])
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for c in self.conns:
            try:
                c.pgconn.finish()  # the backends' statements are never read: drop the sockets
            except Exception:  # noqa: BLE001
                pass
        subprocess.run([_pg_tool("pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"],
                       capture_output=True, **self.user)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- a program in a pseudo-terminal -----------------------------------------------------------------

def _controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # after setsid (start_new_session): the pty is its terminal


class Terminal:
    """argv in a pty of cols x rows; a thread reads all it writes into a pyte screen and counts bytes."""

    def __init__(self, argv: list[str], cols: int, rows: int, env: dict[str, str] | None = None) -> None:
        import psutil
        import pyte

        self.screen = pyte.Screen(cols, rows)
        self._stream = pyte.ByteStream(self.screen)
        self._lock = threading.Lock()
        self.bytes = 0
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self._master = master
        # answers to the terminal's queries (cursor position, device attributes), as a terminal gives
        self.screen.write_process_input = lambda data: os.write(master, data.encode())
        full_env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor", "COLUMNS": str(cols),
                    "LINES": str(rows), **(env or {})}
        full_env.pop("NO_COLOR", None)
        full_env.pop("TEXTUAL", None)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=full_env, cwd=ROOT,
                                     start_new_session=True, preexec_fn=_controlling_tty, close_fds=True)
        os.close(slave)
        self.ps = psutil.Process(self.proc.pid)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.bytes += len(chunk)
                self._stream.feed(chunk)

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.screen.display)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> float | None:
        """Seconds from the start to the first screen showing `pattern`, or None."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and self.proc.poll() is None:
            if pattern.search(self.text()):
                return time.perf_counter() - self.started
            time.sleep(0.01)
        return None

    def send(self, keys: str) -> None:
        os.write(self._master, keys.encode())

    def tree(self) -> list[Any]:
        import psutil

        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.Error:
            return []

    def peak_rss(self) -> float:
        """The kernel's high-water mark of resident memory, MiB, the largest in the tree."""
        peak = 0
        for p in self.tree():
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
        return peak / 1024

    def close(self, quit_keys: str = "q") -> None:
        if self.proc.poll() is None:
            try:
                self.send(quit_keys)
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session and process group
            self.proc.wait(10)
        os.close(self._master)
        self._reader.join(5)


def cpu_seconds(procs: list[Any]) -> float:
    import psutil

    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


class Window:
    """CPU of some process trees and bytes of a terminal between start() and stop()."""

    def __init__(self, trees: dict[str, Callable[[], list[Any]]], terminal: Terminal | None) -> None:
        self.trees, self.terminal = trees, terminal

    def measure(self, seconds: float) -> dict[str, float]:
        procs = {name: tree() for name, tree in self.trees.items()}
        c0 = {name: cpu_seconds(p) for name, p in procs.items()}
        b0 = self.terminal.bytes if self.terminal else 0
        t0 = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        # the same processes at both ends (a child that came meanwhile is not half counted)
        out = {name: (cpu_seconds(p) - c0[name]) / elapsed * 100 for name, p in procs.items()}
        out["bytes_per_s"] = ((self.terminal.bytes if self.terminal else 0) - b0) / elapsed
        out["seconds"] = elapsed
        return out


# -- the runs -------------------------------------------------------------------------------------

@dataclass
class Run:
    tool: str
    sessions: int
    size: str
    first_frame: float | None = None
    first_cpu: float | None = None  # the console's CPU seconds until then: robust where wall time is not
    panes: dict[str, dict[str, float]] = field(default_factory=dict)
    peak_rss: float | None = None
    server_idle: float | None = None
    note: str = ""


def rdbtop_argv(url: str | None = None, key: str | None = None) -> list[str]:
    remote = ["--url", url, "--api-key", key or ""] if url else []
    return [sys.executable, "-m", "rdbtop", *remote, "--interval", "1", "--read-only"]


def run_rdbtop(served: Served, cols: int, rows: int, panes: list[str], seconds: float, server_idle: float) -> Run:
    import psutil

    run = Run("rdbtop", served.n, f"{cols}x{rows}", server_idle=server_idle)
    server = psutil.Process(served.proc.pid)
    term = Terminal(rdbtop_argv(served.url, served.key), cols, rows)
    try:
        if term.wait_for(TAB_BAR, 60) is None:
            run.note = "no tab bar in 60 s: " + term.text()[-200:].replace("\n", " ")
            return run
        term.send(PANE_KEYS["sessions"])
        run.first_frame = term.wait_for(SESSIONS_ROWS, 60)
        run.first_cpu = cpu_seconds(term.tree())
        window = Window({"console": term.tree, "server": lambda: [server]}, term)
        for pane in panes:
            term.send(PANE_KEYS[pane])
            time.sleep(SETTLE_S)
            run.panes[pane] = window.measure(seconds)
        run.peak_rss = term.peak_rss()
    finally:
        term.close()
    return run


def first_frame_embedded(cols: int, rows: int) -> tuple[float | None, float]:
    """Seconds to the first frame with session rows of `rdbtop` (engine and demo in its process), and its
    CPU seconds until then."""
    term = Terminal(rdbtop_argv(), cols, rows)
    try:
        took = None
        if term.wait_for(TAB_BAR, 60) is not None:
            term.send(PANE_KEYS["sessions"])
            took = term.wait_for(SESSIONS_ROWS, 60)
        return took, cpu_seconds(term.tree())
    finally:
        term.close()


def run_pg_activity(n: int, cols: int, rows: int, seconds: float) -> Run:
    import psutil

    run = Run("pg_activity", n, f"{cols}x{rows}")
    with Postgres(n) as pg:
        postmaster = psutil.Process(pg.postmaster)

        def pg_tree() -> list[Any]:
            try:
                return [postmaster, *postmaster.children(recursive=True)]
            except psutil.Error:
                return []

        run.server_idle = Window({"server": pg_tree}, None).measure(max(2.0, seconds / 2))["server"]
        argv = [_pg_tool("pg_activity") or "pg_activity", "--refresh", "1", "-h", str(pg.dir), "-p", str(pg.port),
                "-U", "postgres", "-d", "postgres"]
        term = Terminal(argv, cols, rows)
        try:
            run.first_frame = term.wait_for(PG_ACTIVITY_ROWS, 60)
            run.first_cpu = cpu_seconds(term.tree())
            time.sleep(SETTLE_S)
            run.panes["all"] = Window({"console": term.tree, "server": pg_tree}, term).measure(seconds)
            run.peak_rss = term.peak_rss()
        finally:
            term.close()
    return run


# -- the table ------------------------------------------------------------------------------------

def verdict(ok: bool | None, text: str) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS") + f" ({text})"


def report(runs: list[Run], pg_note: str | None, embedded: tuple[float | None, float] | None, embedded_size: str,
           seconds: float) -> list[str]:
    pg_cpu = {(r.sessions, r.size): r.panes["all"]["console"] for r in runs if r.tool == "pg_activity" and r.panes}
    lines = [f"{'tool':<11} {'sessions':>8} {'size':>7} {'pane':<9} {'CPU %':>6} {'bytes/s':>8} {'server %':>8} "
             f"{'(idle)':>6} {'first frame (CPU s)':>19} {'peak RSS':>9}  target"]
    for r in runs:
        first = "none" if r.first_frame is None else f"{r.first_frame:.2f} s ({r.first_cpu or 0:.2f})"
        rss = "–" if r.peak_rss is None else f"{r.peak_rss:.0f} MiB"
        idle = "–" if r.server_idle is None else f"{r.server_idle:.1f}"
        if not r.panes:
            lines.append(f"{r.tool:<11} {r.sessions:>8} {r.size:>7} {'–':<9} {'–':>6} {'–':>8} {'–':>8} {idle:>6} "
                         f"{first:>19} {rss:>9}  {r.note}")
        for i, (pane, m) in enumerate(r.panes.items()):
            targets = []
            if r.tool == "rdbtop":
                ref = pg_cpu.get((r.sessions, r.size))
                source = "pg_activity"
                if ref is None:
                    ref, source = REFERENCE.get(r.sessions, {}).get("cpu"), "reference"
                if ref is not None:
                    targets.append(verdict(m["console"] <= ref, f"<= {source} {ref:.1f}"))
                if i == 0:
                    targets.append(verdict(r.first_frame is not None and r.first_frame <= REMOTE_FIRST_FRAME_S,
                                           f"first <= {REMOTE_FIRST_FRAME_S} s"))
                    if r.sessions >= 1000 and r.peak_rss is not None:
                        targets.append(verdict(r.peak_rss <= RSS_TARGET_MIB, f"RSS <= {RSS_TARGET_MIB:.0f} MiB"))
            lines.append(f"{r.tool:<11} {r.sessions:>8} {r.size:>7} {pane:<9} {m['console']:>6.1f} "
                         f"{m['bytes_per_s']:>8.0f} {m['server']:>8.1f} {idle if i == 0 else '':>6} "
                         f"{first if i == 0 else '':>19} {rss if i == 0 else '':>9}  {'; '.join(targets)}")
    if embedded is not None:
        took, cpu = embedded
        first = "none in 60 s" if took is None else f"{took:.2f} s ({cpu:.2f} CPU s)"
        lines.append(f"first frame with session rows, embedded (engine and demo in the console's process), "
                     f"{embedded_size}: {first}  "
                     + verdict(took is not None and took <= EMBEDDED_FIRST_FRAME_S, f"<= {EMBEDDED_FIRST_FRAME_S} s"))
    if pg_note:
        lines.append(f"pg_activity was not run ({pg_note}); the targets use the reference figures measured beside "
                     f"rdbtop on this kind of machine (issue 15): CPU % of a core at a 1 s refresh "
                     f"{REFERENCE[100]['cpu']} at 100 and {REFERENCE[1000]['cpu']} at 1,000 sessions, first frame "
                     f"{REFERENCE[100]['first']:.2f} s, peak RSS {REFERENCE[1000]['rss']} MiB, PostgreSQL's CPU "
                     f"{REFERENCE[1000]['server']} % at 1,000 sessions.")
    lines.append(f"CPU and bytes/s over {seconds:.0f} s per pane after {SETTLE_S:.0f} s to settle, 1 s refresh; "
                 "server % is the watched server's process (engine and its sessions, or PostgreSQL's processes), "
                 "(idle) the same before any console watched it.")
    return lines


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU window per pane (default 60)")
    parser.add_argument("--sessions", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--sizes", nargs="+", default=["160x48", "80x24"], help="terminal sizes COLSxROWS")
    parser.add_argument("--panes", nargs="+", default=["overview", "sessions", "locks", "ash"],
                        choices=sorted(PANE_KEYS))
    parser.add_argument("--no-pg", action="store_true", help="do not run pg_activity even when installed")
    parser.add_argument("--embedded", action="store_true", help="also the first frame of the embedded console")
    parser.add_argument("--short", action="store_true", help="a quick pass: 2 s windows, 20 sessions, 80x24, "
                                                             "two panes, no pg_activity (the bench's own test)")
    args = parser.parse_args()
    global SETTLE_S
    if args.short:
        args.seconds, args.sessions, args.sizes, args.panes, args.no_pg = 2.0, [20], ["80x24"], ["sessions", "ash"], True
        SETTLE_S = 2.0
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    pg_note = "--no-pg" if args.no_pg else pg_available()
    runs: list[Run] = []
    for n in args.sessions:
        import psutil

        with Served(n) as served:
            idle = Window({"server": lambda: [psutil.Process(served.proc.pid)]}, None).measure(max(2.0, args.seconds / 2))
            for cols, rows in sizes:
                runs.append(run_rdbtop(served, cols, rows, args.panes, args.seconds, idle["server"]))
        if not pg_note:
            for cols, rows in sizes:
                try:
                    runs.append(run_pg_activity(n, cols, rows, args.seconds))
                except Exception as exc:  # noqa: BLE001 (a failed pg_activity run is a row, the rest stands)
                    runs.append(Run("pg_activity", n, f"{cols}x{rows}", note=f"failed: {type(exc).__name__}: {exc}"[:80]))
    embedded = None
    if args.embedded:
        embedded = first_frame_embedded(*sizes[0])
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end (other processes "
          f"share them: CPU figures are noisy); python {sys.version.split()[0]}; console: python -m rdbtop in a pty "
          "read by pyte; server: separate process, one uvicorn worker")
    for line in report(runs, pg_note, embedded, f"{sizes[0][0]}x{sizes[0][1]}" if args.embedded else "", args.seconds):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
