"""API latency and throughput with many open sessions.

Runs the engine and its API in a separate process (one uvicorn worker, so at most one core for
the server), opens N sessions there — a tenth of them holding locks in open transactions, with a
waiter queued behind each of some — then measures from this process:

- latency: sequential GETs, p50 and p99 per endpoint;
- throughput: requests per second with a few concurrent client threads;
- consoles: CONSOLES concurrent clients, each making the requests rdbtop's own poller makes, pane
  after pane (every pane's calls, and the Sessions pane with a text filter on, which reads every
  session), back to back: p50/p99 over all of them and requests per second.

    python bench/api_latency.py [--sessions 100 1000] [--requests 400] [--seconds 5] [--consoles 20]

Targets at 1,000 sessions: p99 <= 50 ms and >= 300 requests/s per endpoint; with 20 consoles,
p99 <= 100 ms and >= 200 requests/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

# The first three are the targets, called as a client calls them by default (RustyDB's
# pagination: 50 sessions a page); the last shows the cost of one page of every session.
ENDPOINTS = ("/api/v1/sessions", "/api/v1/query/active", "/api/v1/transactions/locks",
             "/api/v1/sessions?page_size=1000")
P99_TARGET_MS = 50.0
RPS_TARGET = 300.0
CONSOLES_P99_TARGET_MS = 100.0
CONSOLES_RPS_TARGET = 200.0
ROOT = Path(__file__).resolve().parent.parent
CONSOLE_ROW = "console mix"
# what the console reads of ASH samples once it has backfilled its window: the seconds since its last poll
ASH_STEADY_SECONDS = 2


def serve(n_sessions: int, port: int) -> None:
    """Server side: engine + N sessions + uvicorn, until stdin closes."""
    sys.path.insert(0, str(ROOT))
    from engine import Engine, EngineConfig

    engine = Engine(config=EngineConfig(max_connections=n_sessions + 100, lock_timeout_ms=3_600_000)).start()
    engine.create_schema("sales")
    setup = engine.connect("bench", "setup")
    setup.execute("CREATE TABLE sales.t(id INTEGER PRIMARY KEY, v INTEGER)")
    setup.execute("WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 1000) INSERT INTO sales.t(v) SELECT v FROM n")
    setup.close()
    sessions = [engine.connect(f"user{i % 20}", f"app{i % 7}", f"10.0.{i // 250}.{i % 250}") for i in range(n_sessions)]
    holders = sessions[: max(1, n_sessions // 10)]
    for s in holders:
        s.execute("BEGIN")
        s.execute("SELECT count(*) FROM sales.t")  # shared lock on sales.t, held to the end
    # one writer queued behind the readers: a real wait with a blocker chain
    waiter = sessions[-1]
    threading.Thread(target=lambda: _ignore(waiter.execute, "UPDATE sales.t SET v = v + 1 WHERE id = 1"),
                     daemon=True).start()
    serve_api(engine, port)


def serve_api(engine: Any, port: int) -> None:
    """Print a monitor key for the client side, then serve the engine's API on loopback until stdin closes."""
    import uvicorn
    from engine.api import create_app

    key = engine.auth.create_api_key("monitor", "bench")
    print(key, flush=True)
    config = uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    threading.Thread(target=lambda: (sys.stdin.read(), setattr(server, "should_exit", True)), daemon=True).start()
    server.run()
    engine.close()


def _ignore(fn, *args) -> None:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except Exception:  # the engine's shutdown ends the queued writer; that is expected here
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def console_mix() -> list[tuple[str, dict[str, object]]]:
    """The requests rdbtop's poller makes on each of its panes, read off a client that records them.

    Query times are kept relative to the poll (`start_time` as seconds before now), and the ASH
    samples read is the steady one (the last seconds), not the first poll's backfill of the window."""
    import asyncio

    sys.path.insert(0, str(ROOT))
    from rdbtop.client import NotServed
    from rdbtop.poller import ASH_MAX_SAMPLES, PANE_CALLS, Poller, SessionsWanted

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str, dict[str, object]]] = []

        async def get(self, path: str, **params: object) -> object:
            self.calls.append((path, {k: v for k, v in params.items() if v is not None}))
            raise NotServed(404, "NOT_FOUND", path)

    async def record() -> list[tuple[str, dict[str, object]]]:
        recorder = Recorder()
        now = 1_000_000.0
        for pane, wanted in [(pane, SessionsWanted()) for pane in PANE_CALLS] + [("sessions", SessionsWanted(every=True))]:
            poller = Poller(recorder, clock=lambda: now)  # type: ignore[arg-type]
            poller._info = poller._rules_read = True  # read once per connection: not part of each poll
            poller._perf_has_states = True  # as our server answers: the overview needs no session list
            poller.pane, poller.sessions_wanted = pane, wanted
            await poller.snapshot()
        out = []
        for path, params in recorder.calls:
            if "start_time" in params:
                steady = params.get("limit") == ASH_MAX_SAMPLES
                params = {**params, "start_time": ASH_STEADY_SECONDS if steady else now - params["start_time"]}
            out.append((path, params))
        return out

    return asyncio.run(record())


def _consoles(base: str, headers: dict[str, str], consoles: int, seconds: float) -> dict:
    mix = console_mix()
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def console(offset: int) -> None:
        mine = []
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            i = offset
            while time.monotonic() < stop:
                path, params = mix[i % len(mix)]
                if "start_time" in params:
                    params = {**params, "start_time": int(time.time() - params["start_time"])}  # type: ignore[operator]
                t0 = time.perf_counter()
                client.get(path, params=params).raise_for_status()
                mine.append((time.perf_counter() - t0) * 1000)
                i += 1
        with lock:
            lat.extend(mine)

    started = time.monotonic()
    pool = [threading.Thread(target=console, args=(n * 7,)) for n in range(consoles)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    lat.sort()
    return {"endpoint": f"{CONSOLE_ROW} ({consoles} clients, {len(mix)} calls)", "p50_ms": statistics.median(lat),
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))], "rps": len(lat) / elapsed}


def measure(n_sessions: int, requests: int, seconds: float, threads: int, consoles: int) -> list[dict]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(n_sessions), str(port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        key = proc.stdout.readline().strip()
        base = f"http://127.0.0.1:{port}"
        headers = {"X-API-Key": key}
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/sessions", headers=headers, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not come up")
            time.sleep(0.1)
        rows = []
        for path in ENDPOINTS:
            url = base + path
            with httpx.Client(headers=headers, timeout=30) as client:
                for _ in range(20):  # warm up
                    client.get(url).raise_for_status()
                lat = []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    client.get(url).raise_for_status()
                    lat.append((time.perf_counter() - t0) * 1000)
            rps = _throughput(url, headers, seconds, threads)
            lat.sort()
            rows.append({"sessions": n_sessions, "endpoint": path, "p50_ms": statistics.median(lat),
                         "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))], "rps": rps})
        if consoles:
            rows.append({"sessions": n_sessions, **_consoles(base, headers, consoles, seconds)})
        return rows
    finally:
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _throughput(url: str, headers: dict[str, str], seconds: float, threads: int) -> float:
    count = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        nonlocal count
        done = 0
        with httpx.Client(headers=headers, timeout=30) as client:
            while time.monotonic() < stop:
                client.get(url).raise_for_status()
                done += 1
        with lock:
            count += done

    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return count / (time.monotonic() - started)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--requests", type=int, default=400, help="sequential requests per endpoint for latency")
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput phase per endpoint")
    parser.add_argument("--threads", type=int, default=4, help="client threads in the throughput phase")
    parser.add_argument("--consoles", type=int, default=20, help="concurrent consoles in the last row (0: none)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; server: one process, one uvicorn worker")
    rows = [r for n in args.sessions for r in measure(n, args.requests, args.seconds, args.threads, args.consoles)]
    print(f"{'sessions':>8}  {'endpoint':<40} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}  target (at 1,000)")
    for r in rows:
        verdict = ""
        consoles = r["endpoint"].startswith(CONSOLE_ROW)
        p99, rps = (CONSOLES_P99_TARGET_MS, CONSOLES_RPS_TARGET) if consoles else (P99_TARGET_MS, RPS_TARGET)
        if r["sessions"] >= 1000 and "?" not in r["endpoint"]:
            ok = r["p99_ms"] <= p99 and r["rps"] >= rps
            verdict = ("PASS" if ok else "MISS") + f" (p99 <= {p99:.0f} ms, >= {rps:.0f} req/s)"
        print(f"{r['sessions']:>8}  {r['endpoint']:<40} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['rps']:>8.0f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
