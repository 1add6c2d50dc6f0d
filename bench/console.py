"""Console benchmark: time to first frame with data, refresh cost, CPU and peak memory.

The console runs headless (Textual's App.run_test) in this process or in a child process; the
server is a separate process, `python bench/api_latency.py --serve N PORT` (engine + N sessions +
the API on a loopback port, one uvicorn worker), so the console is measured in remote mode as
`python -m rdbtop --url URL --api-key KEY` would run it.

1. first frame with data: from creating the App to the first moment a snapshot from the server has
   been drawn (remote, against the 100-session server; and embedded, the engine in the console's
   process, measured in a new interpreter as a user's `rdbtop` starts; the console's modules are
   imported before the clock starts in both).
2. refresh cost: one poll (every call of a tick, parsed into a Snapshot) plus drawing it on the
   Sessions pane and the screen settling, with 100, 1,000 and 10,000 sessions; median and max.
   The console reads the rows its Sessions pane shows (the top 500 in its order, from
   /stats/sessions?sort_by=...&limit=500) and the counts of all; the table says how many rows.
3. CPU (% of one core) and peak RSS of a console process at a 1 s refresh over --seconds, with
   100 and 1,000 sessions.

    python bench/console.py [--seconds 60] [--sizes 100 1000 10000] [--cpu-sizes 100 1000]

Targets: first frame with data <= 1.5 s; refresh at 10,000 sessions <= 200 ms; <= 5 % of one core
at 1,000 sessions. Always exits 0; a missed target prints MISS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST_FRAME_TARGET_S = 1.5
REFRESH_TARGET_MS = 200.0
CPU_TARGET_PCT = 5.0
SIZE = (160, 48)
REFRESHES = 5


# -- server process ---------------------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MAX_CONNECTIONS = 10_000  # the engine's own upper bound on max_connections
FDS_PER_SESSION = 4  # each engine session holds SQLite files open (main and schema database, their WALs)
REAL_LIMIT = 2_000  # above this many sessions the server may run out of file descriptors: scaled


def real_sessions(n_sessions: int) -> int:
    """How many engine sessions the server can really open here (file descriptors bound it)."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else 1 << 20
    return max(1, min(n_sessions, MAX_CONNECTIONS - 100, (limit - 500) // FDS_PER_SESSION, REAL_LIMIT))


# The engine's session orders (engine/api/routes/sessions.py), on the JSON fields, for the clones.
_TRIAGE_RANK = {"waiting": 0, "idle in transaction": 1, "active": 2, "idle": 3}
_DICT_SORT = {"triage": lambda s: (_TRIAGE_RANK.get(s["state"], 4), s["state_since"]),
              "state_seconds": lambda s: -s["state_since"], "created_at": lambda s: s["created_at"]}


def _as_server_would(sessions: list[dict], query: dict[str, str]) -> list[dict]:
    """What the engine lists for `state`, `sort_by`, `sort_order` and `limit` had it held every clone:
    the wrapper asks the engine for all its sessions, clones them, then chooses as the route does."""
    if "state" in query:
        states = {name.strip() for name in query["state"].split(",")}
        sessions = [s for s in sessions if s["state"] in states]
    if query.get("sort_by"):
        key = _DICT_SORT.get(query["sort_by"]) or (lambda s, f=query["sort_by"]: s[f])
        sessions = sorted(sessions, key=key, reverse=query.get("sort_order") == "desc")
    return sessions[: int(query["limit"])] if "limit" in query else sessions


def _scaled(app, n_sessions: int):  # type: ignore[no-untyped-def]
    """ASGI wrapper: /api/v1/stats/sessions answers with the real sessions cloned (new ids) up to
    n_sessions, so the console gets and draws that many rows. A request's `state`, `sort_by` and
    `limit` are applied to the clones here (the engine is asked for every real session), which
    costs the server more than a real 10,000-session engine would spend: it never flatters."""
    import json
    from urllib.parse import parse_qsl

    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope.get("type") != "http" or scope.get("path") != "/api/v1/stats/sessions":
            return await app(scope, receive, send)
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        scope = {**scope, "query_string": b""}
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    body = b"".join(chunks)
                    if start.get("status") == 200:
                        data = json.loads(body)
                        real = data["sessions"]
                        out = list(real)
                        copy = 1
                        while real and len(out) < n_sessions:
                            for s in real[: n_sessions - len(out)]:
                                out.append({**s, "session_id": s["session_id"] + copy * 1_000_000})
                            copy += 1
                        data["sessions"] = _as_server_would(out, query)
                        data["total_connections"] = len(out)
                        body = json.dumps(data).encode()
                    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                    headers.append((b"content-length", str(len(body)).encode()))
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": body})

        await app(scope, receive, capture)

    return wrapped


def serve(n_sessions: int, port: int) -> None:
    """Server side: api_latency.py's `serve` (engine + sessions + uvicorn until stdin closes). Where
    this machine cannot hold n_sessions engine sessions (file descriptors), the engine opens
    real_sessions(n) and the session list is scaled up to n by cloning (see _scaled)."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sys.path.insert(0, str(ROOT / "bench"))
    import api_latency

    import engine
    import engine.api

    config = engine.EngineConfig

    def bounded(**kw):  # type: ignore[no-untyped-def]
        kw["max_connections"] = min(MAX_CONNECTIONS, kw.get("max_connections", MAX_CONNECTIONS))
        return config(**kw)

    engine.EngineConfig = bounded  # type: ignore[misc, assignment]
    real = real_sessions(n_sessions)
    if real < n_sessions:
        make = engine.api.create_app
        engine.api.create_app = lambda eng: _scaled(make(eng), n_sessions)  # type: ignore[assignment]
    api_latency.serve(real, port)


class Server:
    """`serve` of `script` in a child process; stopped by closing its stdin, then by PID."""

    script = __file__

    def __init__(self, n_sessions: int) -> None:
        self.n = n_sessions
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, self.script, "--serve", str(n_sessions), str(self.port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            self.key = (self.proc.stdout.readline() if self.proc.stdout else "").strip()
            if not self.key:
                raise RuntimeError(f"server with {n_sessions} sessions printed no key")
            deadline = time.monotonic() + 120
            while True:
                try:
                    if self.up():
                        break
                except httpx.TransportError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server with {n_sessions} sessions did not come up")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def up(self) -> bool:
        """Whether the server answers as the bench needs it."""
        r = httpx.get(f"{self.url}/api/v1/stats/sessions", headers={"X-API-Key": self.key}, timeout=10)
        return r.status_code == 200

    def stop(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # by PID: this Popen's own process
            self.proc.wait(10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the console, headless ----------------------------------------------------------------------

def _settings(url: str | None, key: str | None, interval: float):  # type: ignore[no-untyped-def]
    from rdbtop.config import Settings

    return Settings(url=url, api_key=key, interval=interval, read_only=True)


def _remote_app(url: str, key: str, interval: float):  # type: ignore[no-untyped-def]
    from rdbtop.app import RdbTop
    from rdbtop.client import Credentials
    from rdbtop.sources import RemoteSource

    return RdbTop(_settings(url, key, interval), RemoteSource(url, Credentials(api_key=key)))


async def _until(pilot, cond, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > deadline:
            return False
        await pilot.pause(0.005)
    return True


def _has_data(app) -> bool:  # type: ignore[no-untyped-def]
    return app.shown is not None and bool(app.shown.sessions)


async def first_frame_remote(url: str, key: str) -> float | None:
    t0 = time.perf_counter()
    app = _remote_app(url, key, 2.0)
    async with app.run_test(headless=True, size=SIZE) as pilot:
        ok = await _until(pilot, lambda: _has_data(app), 30)
        await pilot._wait_for_screen()  # the frame drawn from it
        took = time.perf_counter() - t0
    return took if ok else None


async def first_frame_embedded() -> float | None:
    from rdbtop.app import RdbTop
    from rdbtop.sources import EmbeddedSource

    t0 = time.perf_counter()
    settings = _settings(None, None, 2.0)
    source = EmbeddedSource(settings.data, settings.demo, settings.seed, settings.sessions, settings.read_only)
    try:
        app = RdbTop(settings, source)
        async with app.run_test(headless=True, size=SIZE) as pilot:
            ok = await _until(pilot, lambda: _has_data(app), 60)
            await pilot._wait_for_screen()
            took = time.perf_counter() - t0
    finally:
        source.shutdown()
    return took if ok else None


def first_frame_embedded_fresh() -> float | None:
    """first_frame_embedded in a new interpreter, as a user's `rdbtop` starts: not after this
    process has parsed thousands of sessions and holds their garbage and imports."""
    out = subprocess.run([sys.executable, __file__, "--embedded-child"], capture_output=True, text=True,
                         timeout=180, check=True).stdout.split()
    return None if not out or out[-1] == "none" else float(out[-1])


async def refresh_cost(url: str, key: str, n_expected: int) -> dict:
    """Median/max of poll (snapshot) + draw on the Sessions pane + the screen settling, in ms."""
    app = _remote_app(url, key, 60.0)  # the app's own loop then waits a minute after its first poll
    poll_ms, total_ms = [], []
    async with app.run_test(headless=True, size=SIZE) as pilot:
        if not await _until(pilot, lambda: _has_data(app) and app.poller is not None, 60):
            raise RuntimeError("console got no data")
        app.action_pane("sessions")
        await pilot.pause()
        got = len(app.shown.sessions)
        total = app.shown.sessions_total or got
        for _ in range(REFRESHES + 1):  # the first is a warm-up
            t0 = time.perf_counter()
            snap = await app.poller.snapshot()
            t1 = time.perf_counter()
            app.deliver(snap)
            await pilot._wait_for_screen()
            t2 = time.perf_counter()
            poll_ms.append((t1 - t0) * 1000)
            total_ms.append((t2 - t0) * 1000)
        poll_ms, total_ms = poll_ms[1:], total_ms[1:]
    return {"sessions": n_expected, "seen": got, "total": total, "poll_ms": statistics.median(poll_ms),
            "total_ms": statistics.median(total_ms), "max_ms": max(total_ms)}


async def _console_child(url: str, key: str, seconds: float) -> None:
    """Child mode: the console at a 1 s refresh on the Sessions pane; 'ready' once it shows data."""
    import resource

    app = _remote_app(url, key, 1.0)
    async with app.run_test(headless=True, size=SIZE) as pilot:
        await _until(pilot, lambda: _has_data(app), 60)
        app.action_pane("sessions")
        print("ready", flush=True)
        await asyncio.sleep(seconds)
    print(f"maxrss_kb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", flush=True)


def cpu_and_memory(url: str, key: str, seconds: float) -> dict:
    import psutil

    proc = subprocess.Popen([sys.executable, __file__, "--console-child", url, key, str(seconds)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        ps = psutil.Process(proc.pid)
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "ready":
            raise RuntimeError("console process did not show data")
        c0, t0 = ps.cpu_times(), time.monotonic()
        peak = ps.memory_info().rss
        c1 = c0
        while time.monotonic() - t0 < seconds - 0.25 and proc.poll() is None:
            time.sleep(0.25)
            try:
                c1 = ps.cpu_times()
                peak = max(peak, ps.memory_info().rss)
            except psutil.Error:
                break
        elapsed = time.monotonic() - t0
        cpu = (c1.user + c1.system - c0.user - c0.system) / elapsed * 100
        rest = proc.stdout.read() if proc.stdout else ""
        proc.wait(30)
        for word in rest.split("\n"):
            if word.startswith("maxrss_kb "):
                peak = max(peak, int(word.split()[1]) * 1024)
        return {"cpu_pct": cpu, "peak_mb": peak / 2**20, "seconds": elapsed}
    finally:
        if proc.poll() is None:
            proc.kill()  # by PID
            proc.wait(10)


# -- the table ------------------------------------------------------------------------------

def verdict(ok: bool | None, text: str) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS") + f" ({text})"


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    if len(sys.argv) == 2 and sys.argv[1] == "--embedded-child":
        took = asyncio.run(first_frame_embedded())
        print("none" if took is None else took, flush=True)
        return 0
    if len(sys.argv) == 5 and sys.argv[1] == "--console-child":
        asyncio.run(_console_child(sys.argv[2], sys.argv[3], float(sys.argv[4])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU and memory window per size (default 60)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000], help="sessions for refresh cost")
    parser.add_argument("--cpu-sizes", type=int, nargs="*", default=[100, 1000], help="sessions for CPU and memory")
    parser.add_argument("--no-embedded", action="store_true", help="skip first frame in embedded mode")
    args = parser.parse_args()

    rows: list[tuple[str, str, str, str]] = []  # measure, sessions, value, verdict
    sizes = sorted(set(args.sizes) | set(args.cpu_sizes) | {min(args.sizes + args.cpu_sizes)})
    first_done = False
    for n in sizes:
        try:
            with Server(n) as server:
                if not first_done:
                    first_done = True
                    asyncio.run(first_frame_remote(server.url, server.key))  # warm imports and caches
                    took = asyncio.run(first_frame_remote(server.url, server.key))
                    rows.append(("first frame with data, remote", str(n),
                                 "none in 30 s" if took is None else f"{took:.2f} s",
                                 verdict(took is not None and took <= FIRST_FRAME_TARGET_S,
                                         f"<= {FIRST_FRAME_TARGET_S} s")))
                label = f"{n}*" if real_sessions(n) < n else str(n)
                if n in args.sizes:
                    r = asyncio.run(refresh_cost(server.url, server.key, n))
                    target = verdict(r["total_ms"] <= REFRESH_TARGET_MS, f"<= {REFRESH_TARGET_MS:.0f} ms") \
                        if n >= 10000 else ""
                    rows.append(("refresh (poll + render), median", label,
                                 (f"{r['total_ms']:.0f} ms (poll {r['poll_ms']:.0f}, max {r['max_ms']:.0f}; "
                                  f"{r['seen']} of {r['total']} rows)"), target))
                if n in args.cpu_sizes:
                    c = cpu_and_memory(server.url, server.key, args.seconds)
                    target = verdict(c["cpu_pct"] <= CPU_TARGET_PCT, f"<= {CPU_TARGET_PCT:.0f} % of a core") \
                        if n >= 1000 else ""
                    rows.append((f"CPU, 1 s refresh, {c['seconds']:.0f} s", str(n), f"{c['cpu_pct']:.1f} % of a core",
                                 target))
                    rows.append((f"peak RSS, {c['seconds']:.0f} s", str(n), f"{c['peak_mb']:.0f} MB", ""))
        except Exception as exc:  # noqa: BLE001 (a failed size is a MISS row, the rest still runs)
            rows.append((f"sessions {n}", str(n), f"failed: {type(exc).__name__}: {exc}"[:60], "MISS"))
    if not args.no_embedded:
        try:
            took = first_frame_embedded_fresh()
            rows.append(("first frame with data, embedded", "demo",
                         "none in 60 s" if took is None else f"{took:.2f} s",
                         verdict(took is not None and took <= FIRST_FRAME_TARGET_S, f"<= {FIRST_FRAME_TARGET_S} s")))
        except Exception as exc:  # noqa: BLE001 (reported as a MISS row)
            rows.append(("first frame with data, embedded", "demo", f"failed: {type(exc).__name__}"[:60], "MISS"))

    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; console headless at {SIZE[0]}x{SIZE[1]}; "
          "server: separate process, one uvicorn worker")
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'sessions':>8}  {'value':<48}  target")
    for m, n, v, t in rows:
        print(f"{m:<{w}}  {n:>8}  {v:<48}  {t}")
    scaled = sorted({n for n in sizes if real_sessions(n) < n})
    if scaled:
        print(f"* file descriptors bound the engine here to {real_sessions(max(scaled))} real sessions: the server "
              f"clones them (new ids) in its session list up to {', '.join(f'{n:,}' for n in scaled)}; "
              "queries and locks stay at the real count.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
