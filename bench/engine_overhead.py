#!/usr/bin/env python3
"""Engine overhead benchmark: what the engine and its monitoring cost per statement, and what one
ASH sample costs.

    python bench/engine_overhead.py [--seconds N] [--rounds R] [--profile]

Part 1 runs one fixed, seeded statement mix (80 % `SELECT ... WHERE id=?`, 20 % `UPDATE ... WHERE
id=?` on a 10,000-row table in schema `sales`, one session) three ways:

- raw apsw: a plain apsw connection on WAL database files with the same tables and pragmas
  (journal_mode=WAL, synchronous=NORMAL, the engine's cache_size) and the same SQL text;
- the engine with monitoring off (`monitoring_enabled=False`, services started);
- the engine with all monitoring on (ASH sampler, deadlock detector and stats services started).

The three are interleaved, R rounds of each (the order rotated every round); each variant runs a
fixed number of statements per run, sized from --seconds so that every run takes about as long
(the raw loop gets more statements), and the median of the rounds is reported. When the engine's sessions run the
`sales` schema with other pragmas than the ones it asks for, a fourth, informational raw-apsw run
with the engine's effective pragmas shows how much of the gap that explains.

Each run also takes the CPU time of the thread running the statements (column CPU us/stmt, and an
informational on/off ratio by it, which a loaded machine distorts far less than wall-clock time). A
last table says what the per-session and per-statement resource accounting costs: each piece (the
thread CPU clock reads, the page-cache counter reads, EXPLAIN QUERY PLAN) timed alone, times how many
of the monitored run's statements paid it, by the engine's own counts.

Part 2 times `engine.sample_ash()` with 100 and 1,000 open sessions: a realistic mix (a fifth idle in
transaction, a twentieth waiting on a lock, the rest idle), all sessions idle in transaction, and a
lock pile-up stress case (one holder, every other session queued behind it).

Targets: monitoring on >= 0.95 x off; engine >= 0.5 x raw apsw; one ASH sample <= 1 ms per 1,000
sessions. A missed target prints MISS and the script still exits 0; it exits 2 only when a part
of the benchmark itself failed. `--profile` adds cProfile's top functions for the statement path
and the ASH sampler. Everything runs in a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import os
import platform
import pstats
import random
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import apsw  # noqa: E402

from engine import Engine, EngineConfig, SessionState  # noqa: E402
from engine.stats import NATIVE_ACCOUNTING  # noqa: E402

SCHEMA = "sales"
ROWS_DEFAULT = 10_000
UPDATE_SHARE = 0.20
DDL = (f"CREATE TABLE {SCHEMA}.items(id INTEGER PRIMARY KEY, sku TEXT NOT NULL, qty INTEGER NOT NULL, "
       "price REAL NOT NULL)")
DDL_ORDERS = f"CREATE TABLE {SCHEMA}.orders(id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL, qty INTEGER NOT NULL)"
SEED_SQL = (f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            f"INSERT INTO {SCHEMA}.items SELECT i, 'sku-' || i, i % 100, (i % 1000) * 0.25 FROM n")
SELECT_SQL = f"SELECT id, sku, qty, price FROM {SCHEMA}.items WHERE id = ?"
UPDATE_SQL = f"UPDATE {SCHEMA}.items SET qty = qty + 1 WHERE id = ?"

TARGET_ON_OFF = 0.95
TARGET_ENGINE_RAW = 0.5
TARGET_ASH_MS_PER_1000 = 1.0
PRAGMAS = ("journal_mode", "synchronous", "cache_size")
MIN_RUN, MAX_RUN = 2_000, 1_000_000  # statements per timed run

Op = tuple[str, tuple[int]]


# -- helpers ------------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def make_ops(count: int, rows: int, seed: int) -> list[Op]:
    rng = random.Random(seed)
    return [(UPDATE_SQL if rng.random() < UPDATE_SHARE else SELECT_SQL, (rng.randint(1, rows),))
            for _ in range(count)]


def table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    right = right if right is not None else set(range(1, len(headers)))
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    def line(cells: list[str]) -> str:
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def raise_fd_limit(wanted: int) -> None:
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    except (ImportError, ValueError, OSError):
        pass


@contextlib.contextmanager
def engine_running(data_dir: Path, **settings: object) -> Iterator[Engine]:
    engine = Engine(data_dir=data_dir, config=EngineConfig(**settings)).start()
    try:
        yield engine
    finally:
        engine.close()


# -- part 1: statement throughput ---------------------------------------------------------------

class Variant:
    name: str
    info_only = False

    def run(self, ops: list[Op]) -> float:
        raise NotImplementedError


class RawVariant(Variant):
    """A plain apsw connection: main.db with sales.db attached, as the engine lays its files out."""

    def __init__(self, name: str, directory: Path, rows: int, pragmas: dict[str, dict[str, object]],
                 info_only: bool = False) -> None:
        self.name = name
        self.info_only = info_only
        directory.mkdir(parents=True)
        self.conn = apsw.Connection(str(directory / "main.db"))
        try:
            self.conn.execute(f"ATTACH DATABASE ? AS {SCHEMA}", (str(directory / f"{SCHEMA}.db"),))
            for db, values in pragmas.items():
                for pragma, value in values.items():
                    self.conn.execute(f"PRAGMA {db}.{pragma}={value}").fetchall()
            self.conn.execute(DDL)
            self.conn.execute(SEED_SQL, (rows,))
            self.pragmas = effective_pragmas(lambda sql: self.conn.execute(sql).fetchall())
        except BaseException:
            self.conn.close()
            raise

    def run(self, ops: list[Op]) -> float:
        execute = self.conn.execute
        started = time.perf_counter()
        for sql, params in ops:
            execute(sql, params).fetchall()
        return time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()


class EngineVariant(Variant):
    def __init__(self, name: str, engine: Engine, rows: int) -> None:
        self.name = name
        self.engine = engine
        engine.create_schema(SCHEMA)
        self.session = engine.connect("bench", "engine_overhead")
        self.session.execute(DDL)
        self.session.execute(SEED_SQL, (rows,))
        self.pragmas = effective_pragmas(lambda sql: self.session.execute(sql).rows)
        # the mix must do what it says: one row read, one row written
        if (len(self.session.execute(SELECT_SQL, (1,)).rows) != 1
                or self.session.execute(UPDATE_SQL, (1,)).affected_rows != 1):
            raise RuntimeError(f"{name}: the point select / update did not touch exactly one row")

    def run(self, ops: list[Op]) -> float:
        execute = self.session.execute
        started = time.perf_counter()
        for sql, params in ops:
            execute(sql, params)
        return time.perf_counter() - started


def effective_pragmas(query: Callable[[str], list[tuple[object, ...]]]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for db in ("main", SCHEMA):
        out[db] = {}
        for pragma in PRAGMAS:
            try:
                out[db][pragma] = query(f"PRAGMA {db}.{pragma}")[0][0]
            except Exception as exc:  # reported, not fatal
                out[db][pragma] = f"? ({type(exc).__name__})"
    return out


def describe_pragmas(p: dict[str, dict[str, object]]) -> str:
    sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return "; ".join(f"{db}: " + ", ".join(
        f"{k}={sync.get(v, v) if k == 'synchronous' else v}" for k, v in vals.items())
        for db, vals in p.items())


@dataclass
class ThroughputResult:
    name: str
    info_only: bool
    rates: list[float]
    cpu_us: list[float]  # CPU time of the thread running the statements, per statement

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def median_cpu_us(self) -> float:
        return statistics.median(self.cpu_us)


def bench_throughput(args: argparse.Namespace, work: Path, out: list[str]) -> None:
    cache_pages = EngineConfig().buffer_pool_size
    wanted = {db: {"journal_mode": "WAL", "synchronous": "NORMAL", "cache_size": cache_pages}
              for db in ("main", SCHEMA)}
    with contextlib.ExitStack() as stack:
        raw = RawVariant("raw apsw", work / "raw", args.rows, wanted)
        stack.callback(raw.close)
        off_engine = stack.enter_context(engine_running(work / "engine-off", monitoring_enabled=False))
        on_engine = stack.enter_context(engine_running(work / "engine-on", monitoring_enabled=True))
        off = EngineVariant("engine, monitoring off", off_engine, args.rows)
        on = EngineVariant("engine, monitoring on", on_engine, args.rows)
        variants: list[Variant] = [raw, off, on]
        if on.pragmas != raw.pragmas:
            # explain the gap: the same raw loop with the pragmas the engine's sessions really have
            effective = {db: {"journal_mode": "WAL", "synchronous": vals["synchronous"],
                              "cache_size": vals["cache_size"]} for db, vals in on.pragmas.items()}
            try:
                like = RawVariant("raw apsw, engine's effective pragmas", work / "raw-like", args.rows,
                                  effective, info_only=True)
            except Exception as exc:  # an informational row only
                out.append(f"  (no raw run with the engine's effective pragmas: {exc!r})")
            else:
                stack.callback(like.close)
                variants.append(like)

        # calibrate with a warm-up run each; then every variant gets its own fixed statement count per run,
        # sized so that each run takes about the same share of the time budget (a fast raw loop gets
        # more statements, so its runs are not too short to time), the same count in every round
        probe = make_ops(2000, args.rows, args.seed - 1)
        per_run: dict[str, int] = {}
        share = args.seconds / (args.rounds * len(variants))
        for v in variants:
            v.run(probe)
            seconds_per_stmt = v.run(probe) / len(probe)
            per_run[v.name] = args.statements or min(MAX_RUN, max(MIN_RUN, int(round(share / seconds_per_stmt, -3))))
        results = {v.name: ThroughputResult(v.name, v.info_only, [], []) for v in variants}
        for r in range(args.rounds):
            ops = make_ops(max(per_run.values()), args.rows, args.seed + r)  # each run takes a prefix
            order = variants[r % len(variants):] + variants[: r % len(variants)]
            for v in order:
                n = per_run[v.name]
                run_ops = ops if n == len(ops) else ops[:n]
                gc.collect()
                cpu0 = time.thread_time()
                elapsed = v.run(run_ops)
                results[v.name].cpu_us.append((time.thread_time() - cpu0) / n * 1e6)
                results[v.name].rates.append(n / elapsed)

        out.append(f"Statement throughput: {100 - UPDATE_SHARE * 100:.0f} % `{SELECT_SQL}` / "
                   f"{UPDATE_SHARE * 100:.0f} % `{UPDATE_SQL}`")
        out.append(f"  {args.rows:,} rows, one session, seed {args.seed}; {args.rounds} interleaved rounds, the order "
                   "rotated each round, each run a fixed number of statements (column n); median of the rounds")
        out.append(f"  raw apsw pragmas:          {describe_pragmas(raw.pragmas)}")
        out.append(f"  engine's effective pragmas: {describe_pragmas(on.pragmas)}")
        out.append("  per-statement accounting: " + ("C (engine/_accounting.c)" if NATIVE_ACCOUNTING else
                                                      "Python (engine/_accounting.c is not built: no C compiler?)"))
        if on.pragmas != raw.pragmas:
            out.append("  NOTE: the engine's sessions do not run the pragmas they ask for (see the info row)")
        out.append("")
        rows = []
        for v in variants:
            res = results[v.name]
            rows.append([v.name + (" [info]" if v.info_only else ""), f"{per_run[v.name]:,}", f"{res.median:,.0f}",
                         f"{min(res.rates):,.0f}", f"{max(res.rates):,.0f}", f"{1e6 / res.median:,.1f}",
                         f"{res.median_cpu_us:,.1f}"])
        out.append(table(["variant", "n", "median stmt/s", "min stmt/s", "max stmt/s", "us/stmt", "CPU us/stmt"], rows))
        out.append("")
        r_raw, r_off, r_on = (results[n].median for n in (raw.name, off.name, on.name))
        checks = [
            ["monitoring on / monitoring off", f"{r_on / r_off:.3f}", f">= {TARGET_ON_OFF:.2f}",
             verdict(r_on / r_off >= TARGET_ON_OFF)],
            ["engine (monitoring on) / raw apsw", f"{r_on / r_raw:.3f}", f">= {TARGET_ENGINE_RAW:.2f}",
             verdict(r_on / r_raw >= TARGET_ENGINE_RAW)],
            ["engine (monitoring off) / raw apsw", f"{r_off / r_raw:.3f}", f">= {TARGET_ENGINE_RAW:.2f}",
             verdict(r_off / r_raw >= TARGET_ENGINE_RAW)],
        ]
        # the same ratio by the statement thread's CPU time: what a busy machine's waiting for a core does
        # not distort (the wall-clock ratio stays the target; this row says how far load moved it)
        cpu_on_off = results[off.name].median_cpu_us / results[on.name].median_cpu_us
        checks.append(["monitoring on / off, by CPU time [info]", f"{cpu_on_off:.3f}", f">= {TARGET_ON_OFF:.2f}",
                       verdict(cpu_on_off >= TARGET_ON_OFF)])
        if len(variants) > 3:
            r_like = results[variants[3].name].median
            checks.append(["engine (on) / raw apsw w/ engine's pragmas [info]", f"{r_on / r_like:.3f}",
                           f">= {TARGET_ENGINE_RAW:.2f}", verdict(r_on / r_like >= TARGET_ENGINE_RAW)])
        out.append(table(["ratio", "value", "target", "result"], checks, right={1, 2}))
        out.append("")
        out.extend(resource_costs(on, raw, results[off.name].median_cpu_us))

        if args.profile:
            ops = make_ops(per_run[on.name], args.rows, args.seed)
            out.append("")
            out.append(profile_text("engine, monitoring on: statement loop", lambda: on.run(ops), args.profile_top))


def unit_us(action: Callable[[], object], n: int = 20_000) -> float:
    """Median over 5 batches of one call's time, in microseconds."""
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            action()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times) * 1e6


def resource_costs(on: EngineVariant, raw: RawVariant, off_us: float) -> list[str]:
    """What the resource accounting adds to a statement of the mix: each piece's cost measured alone,
    times how many of the monitored run's statements paid it (the engine's own counts)."""
    texts = [on.engine.sql_texts.get(sql) for sql in (SELECT_SQL, UPDATE_SQL)]
    statements = on.session.counters.statements
    timed = sum(t.cpu_timed for t in texts)
    profiled = sum(t.profiled for t in texts)  # every profiled run also reads the page counters and may plan
    clock = time.pthread_getcpuclockid(threading.get_ident())
    conn = on.session._conn
    status = (apsw.SQLITE_DBSTATUS_CACHE_HIT, apsw.SQLITE_DBSTATUS_CACHE_MISS, apsw.SQLITE_DBSTATUS_CACHE_WRITE)
    explain = raw.conn.cursor
    pieces = [
        ("thread CPU clock, 2 reads", "timed", timed, 2 * unit_us(lambda: time.clock_gettime(clock))),
        ("page-cache counters, 6 reads", "profiled", profiled,
         2 * unit_us(lambda: [conn.status(op) for op in status])),
        ("EXPLAIN QUERY PLAN (at most)", "profiled", profiled,
         unit_us(lambda: explain().execute(SELECT_SQL, (1,), explain=2).fetchall(), 2_000)),
    ]
    rows, total = [], 0.0
    for name, who, n, us in pieces:
        per_stmt = us * n / statements
        total += per_stmt
        rows.append([name, who, f"{n:,} of {statements:,}", f"{us:.2f}", f"{per_stmt:.4f}",
                     f"{100 * per_stmt / off_us:.2f} %"])
    rows.append(["total", "", "", "", f"{total:.4f}", f"{100 * total / off_us:.2f} %"])
    return ["Resource accounting in the monitored run: each piece timed alone, spread over the statements that "
            "paid it (light texts are timed on their profiled runs only); besides these every statement adds "
            "a few attribute reads and sums, inside the ratio above",
            "",
            table(["piece", "paid by", "statements", "us each", "us/stmt", "of a monitoring-off stmt's CPU"], rows,
                  right={2, 3, 4, 5})]


# -- part 2: the ASH sampler --------------------------------------------------------------------

@dataclass
class AshResult:
    sessions: int
    scenario: str
    stress: bool
    non_idle: int
    calls: int
    times_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def per_1000(self) -> float:
        return self.median * 1000 / self.sessions


class AshLab:
    """An engine with N sessions put into a chosen mix of states."""

    def __init__(self, engine: Engine, sessions: int) -> None:
        self.engine = engine
        self.sessions = [engine.connect(f"user{i % 20}", f"app{i % 5}", f"10.0.{i // 250}.{i % 250}")
                         for i in range(sessions)]
        self._threads: list[threading.Thread] = []
        self._holder = None
        self.in_txn: list = []

    def idle_in_transaction(self, sessions: list) -> None:
        for i, s in enumerate(sessions):
            s.execute("BEGIN")
            s.execute(SELECT_SQL, (i % 1000 + 1,))
            self.in_txn.append(s)

    def waiting(self, holder, waiters: list, timeout: float = 60.0) -> None:
        """`holder` takes the schema's write lock in an open transaction; `waiters` queue behind it."""
        holder.execute("BEGIN")
        holder.execute(f"UPDATE {SCHEMA}.orders SET qty = qty + 1 WHERE id = 1")
        self._holder = holder

        def wait(s) -> None:
            with contextlib.suppress(Exception):  # terminated at close if still waiting
                s.execute(f"UPDATE {SCHEMA}.orders SET qty = qty + 1 WHERE id = ?", (s.id % 100 + 1,))

        for s in waiters:
            t = threading.Thread(target=wait, args=(s,), daemon=True)
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + timeout
        while not all(s.state is SessionState.WAITING for s in waiters):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {sum(s.state is SessionState.WAITING for s in waiters)} of "
                                   f"{len(waiters)} sessions reached the waiting state")
            time.sleep(0.01)

    def realistic(self) -> None:
        """A fifth idle in transaction, a twentieth waiting behind one holder, the rest idle."""
        n = len(self.sessions)
        self.idle_in_transaction(self.sessions[: n // 5])
        self.waiting(self.sessions[n // 5], self.sessions[n // 5 + 1: n // 5 + 1 + n // 20])

    def release(self) -> None:
        """Back to all idle: end the holder's transaction (the waiters then run), roll back the rest."""
        if self._holder is not None:
            with contextlib.suppress(Exception):
                self._holder.execute("ROLLBACK")
            self._holder = None
        deadline = time.monotonic() + 60
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self._threads = []
        for s in self.in_txn:
            with contextlib.suppress(Exception):
                s.execute("ROLLBACK")
        self.in_txn = []

    def non_idle(self) -> int:
        return sum(s.state is not SessionState.IDLE for s in self.sessions)


def time_samples(engine: Engine, calls: int) -> list[float]:
    for _ in range(3):
        engine.sample_ash()
    times = []
    clock = time.perf_counter
    for _ in range(calls):
        t0 = clock()
        engine.sample_ash()
        times.append((clock() - t0) * 1000)
    return times


def bench_ash(args: argparse.Namespace, work: Path, out: list[str]) -> int:
    results: list[AshResult] = []
    failures = 0
    profiles: list[str] = []
    for n in args.ash_sessions:
        raise_fd_limit(8 * n + 1024)
        settings = dict(max_connections=max(EngineConfig().max_connections, n + 10),
                        ash_interval_ms=60_000, deadlock_check_interval_ms=60_000,
                        lock_timeout_ms=600_000, query_timeout_secs=600.0)
        calls = max(20, args.ash_calls * 100 // n) if n > 100 else args.ash_calls
        try:
            with engine_running(work / f"ash-{n}", **settings) as engine:
                engine.create_schema(SCHEMA)
                setup = engine.connect("bench", "setup")
                setup.execute(DDL)
                setup.execute(SEED_SQL, (1000,))
                setup.execute(DDL_ORDERS)
                setup.execute(f"INSERT INTO {SCHEMA}.orders SELECT id, id, 1 FROM {SCHEMA}.items WHERE id <= 100")
                setup.close()
                lab = AshLab(engine, n)
                scenarios: list[tuple[str, bool, Callable[[], None]]] = [
                    ("realistic: 20% idle in txn, 5% waiting, rest idle", False, lab.realistic),
                    ("all idle in transaction", False, lambda: lab.idle_in_transaction(lab.sessions)),
                    ("lock pile-up: 1 holder, all others waiting", True,
                     lambda: lab.waiting(lab.sessions[0], lab.sessions[1:])),
                ]
                for name, stress, arrange in scenarios:
                    try:
                        arrange()
                        non_idle = lab.non_idle()
                        times = time_samples(engine, calls)
                        results.append(AshResult(n, name, stress, non_idle, calls, times))
                        if args.profile and n == max(args.ash_sessions):
                            profiles.append(profile_text(f"engine.sample_ash(), {n} sessions, {name}",
                                                         lambda: [engine.sample_ash() for _ in range(calls)],
                                                         args.profile_top))
                    finally:
                        lab.release()
        except Exception:
            failures += 1
            out.append(f"ASH benchmark at {n} sessions FAILED:\n{traceback.format_exc()}")

    out.append(f"ASH sampler: cost of one engine.sample_ash() call (target <= {TARGET_ASH_MS_PER_1000:g} ms per "
               "1,000 sessions, i.e. scaled to the session count)")
    out.append("")
    rows = []
    for r in results:
        rows.append([f"{r.sessions:,}", r.scenario + (" [stress]" if r.stress else ""), f"{r.non_idle:,}",
                     f"{r.calls}", f"{statistics.fmean(r.times_ms):.3f}", f"{r.median:.3f}",
                     f"{sorted(r.times_ms)[int(0.95 * (len(r.times_ms) - 1))]:.3f}", f"{r.per_1000:.3f}",
                     verdict(r.per_1000 <= TARGET_ASH_MS_PER_1000)])
    out.append(table(["sessions", "scenario", "non-idle", "calls", "mean ms", "median ms", "p95 ms",
                      "ms/1000 sess", "result"], rows, right={0, 2, 3, 4, 5, 6, 7}))
    for p in profiles:
        out.append("")
        out.append(p)
    return failures


# -- profiling ----------------------------------------------------------------------------------

def profile_text(title: str, action: Callable[[], object], top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    action()
    profiler.disable()
    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    body = "\n".join(line for line in buf.getvalue().splitlines() if line.strip())
    return f"cProfile, {title} (top {top} by own time):\n{body}"


# -- main ---------------------------------------------------------------------------------------

def load_average() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "load average unknown"


def fsync_latency_us(directory: Path, count: int = 20) -> float:
    """Median write+fsync time of one page: what every synchronous=FULL commit pays on this disk."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times) * 1e6


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0,
                   help="time budget of the throughput part, all rounds together (default 20)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per variant (default 5)")
    p.add_argument("--statements", type=int, default=0,
                   help="statements per run, the same for every variant (default: sized per variant from --seconds)")
    p.add_argument("--rows", type=int, default=ROWS_DEFAULT, help="rows in sales.items (default 10000)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--ash-sessions", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--ash-calls", type=int, default=500,
                   help="sample_ash() calls timed at 100 sessions; scaled down for more (default 500)")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-ash", action="store_true")
    p.add_argument("--profile", action="store_true", help="also print cProfile's hot spots")
    p.add_argument("--profile-top", type=int, default=25)
    args = p.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.rows < 1:
        p.error("--rounds, --seconds and --rows must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"rdbtop engine overhead benchmark: Python {platform.python_version()}, apsw {apsw.apsw_version()}, "
          f"SQLite {apsw.sqlite_lib_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    failures = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rdbtop-bench-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        try:
            fsync = f"{fsync_latency_us(work):,.0f} us"
        except OSError as exc:
            fsync = f"unknown ({exc})"
        print(f"at start: {load_average()}; fsync of one page in the temp dir: median {fsync}")
        print()
        for skip, part in ((args.skip_throughput, bench_throughput), (args.skip_ash, bench_ash)):
            if skip:
                continue
            out: list[str] = []
            try:
                failures += part(args, work, out) or 0
            except Exception:
                failures += 1
                out.append(f"{part.__name__} FAILED:\n{traceback.format_exc()}")
            print("\n".join(out))
            print()
            sys.stdout.flush()
    print(f"total time {time.monotonic() - started:.1f} s; at end: {load_average()}"
          + (f"; {failures} part(s) FAILED" if failures else ""))
    return 2 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
