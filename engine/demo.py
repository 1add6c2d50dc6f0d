"""The seeded demo workload: a small shop on two schemas, with the trouble a console should show.

`sales` (customers, orders, order_lines) and `inventory` (warehouses, products, stock) hold about
100k rows. Worker sessions, each a thread with its own `random.Random(seed * 1000 + index)`, run:

- oltp: short order and payment transactions across both schemas (they retry deadlocks and stale
  snapshots, and sometimes hit the stock CHECK when an item is sold out);
- batch-forgotten: now and then updates a warehouse's stock rows and then sits `idle in
  transaction`, holding the `inventory` write lock while the other writers queue behind it;
- deadlock-pair: two sessions that now and then lock sales then inventory and inventory then
  sales, meeting at a barrier in between so that the cycle really forms;
- report: aggregate joins over the whole order history, hundreds of ms each, in autocommit;
- import: customer batches, some carrying an e-mail that already exists (UNIQUE violation), which
  it drops and retries like an ETL job would.

Sessions are handed out in that order of importance: fewer than 6 drop the report and import
shapes, fewer than 4 the deadlock pair. Every count in the summary comes from the workers' own
tallies or from the engine's state, never from the schedule.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .config import EngineConfig
from .engine import Engine
from .errors import (
    Conflict,
    DeadlockDetected,
    EngineError,
    LockTimeout,
    NotFound,
    QueryCanceled,
    SerializationFailure,
    SessionTerminated,
    SqlError,
)
from .sessions import Session, SessionState

log = logging.getLogger("engine.demo")

SCHEMAS = ("sales", "inventory")
WAREHOUSES = 10
PRODUCTS = 5_000
CUSTOMERS = 10_000
ORDERS = 25_000  # with 1-3 lines each: about 50k order lines, about 100k rows in all
INSERT_ROWS = 1_000  # rows per multi-row INSERT while loading: well under SQLite's 32766 parameters

_DDL = {
    "sales": """
        CREATE TABLE IF NOT EXISTS sales.customers (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            region TEXT NOT NULL,
            segment TEXT NOT NULL CHECK (segment IN ('consumer', 'business', 'public')),
            balance REAL NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS sales.customers_region ON customers (region);
        CREATE TABLE IF NOT EXISTS sales.orders (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers (id),
            warehouse_id INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('new', 'paid', 'shipped', 'cancelled')),
            ordered_at TEXT NOT NULL,
            total REAL NOT NULL CHECK (total >= 0));
        CREATE INDEX IF NOT EXISTS sales.orders_customer ON orders (customer_id);
        CREATE INDEX IF NOT EXISTS sales.orders_ordered_at ON orders (ordered_at);
        CREATE TABLE IF NOT EXISTS sales.order_lines (
            order_id INTEGER NOT NULL REFERENCES orders (id),
            line_no INTEGER NOT NULL,
            product_id INTEGER NOT NULL,
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            unit_price REAL NOT NULL CHECK (unit_price >= 0),
            PRIMARY KEY (order_id, line_no));
        CREATE INDEX IF NOT EXISTS sales.order_lines_product ON order_lines (product_id);
    """,
    "inventory": """
        CREATE TABLE IF NOT EXISTS inventory.warehouses (
            id INTEGER PRIMARY KEY,
            code TEXT NOT NULL UNIQUE,
            city TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS inventory.products (
            id INTEGER PRIMARY KEY,
            sku TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            category TEXT NOT NULL,
            price REAL NOT NULL CHECK (price > 0));
        CREATE INDEX IF NOT EXISTS inventory.products_category ON products (category);
        CREATE TABLE IF NOT EXISTS inventory.stock (
            product_id INTEGER NOT NULL REFERENCES products (id),
            warehouse_id INTEGER NOT NULL REFERENCES warehouses (id),
            quantity INTEGER NOT NULL CHECK (quantity >= 0),
            last_counted_at TEXT,
            PRIMARY KEY (product_id, warehouse_id));
        CREATE INDEX IF NOT EXISTS inventory.stock_warehouse ON stock (warehouse_id);
    """,
}
# Parents before children, so the foreign keys hold while loading.
TABLES = ("inventory.warehouses", "inventory.products", "inventory.stock",
          "sales.customers", "sales.orders", "sales.order_lines")

_CITIES = ("Lyon", "Porto", "Leeds", "Turin", "Ghent", "Graz", "Brno", "Aarhus", "Lodz", "Cork")
_CATEGORIES = ("tools", "garden", "kitchen", "toys", "books", "audio", "office", "sport", "bath",
               "lighting", "pets", "travel")
_ADJECTIVES = ("compact", "deluxe", "classic", "solid", "smart", "quiet", "bright", "folding", "rugged", "slim")
_NOUNS = ("lamp", "kettle", "drill", "chair", "speaker", "backpack", "shelf", "hose", "puzzle", "mug")
_FIRST = ("Ana", "Ben", "Chloe", "Dmitri", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca")
_LAST = ("Novak", "Berg", "Silva", "Moreau", "Costa", "Keller", "Rossi", "Haas", "Lind", "Duarte")
_REGIONS = ("north", "south", "east", "west", "central", "coast", "alps", "islands")
_SEGMENTS = ("consumer", "business", "public")
_STATUSES = ("new", "paid", "shipped", "cancelled")
_HISTORY_START = datetime(2024, 1, 1)

# Aggregate joins over the whole history, from about a hundred ms to most of a second on a laptop.
REPORTS = (
    # monthly revenue by region and category
    """SELECT strftime('%Y-%m', o.ordered_at) AS month, c.region, p.category,
              count(DISTINCT o.customer_id) AS buyers, count(DISTINCT o.id) AS orders,
              sum(l.quantity * l.unit_price) AS revenue
       FROM sales.order_lines AS l
       JOIN sales.orders AS o ON o.id = l.order_id
       JOIN sales.customers AS c ON c.id = o.customer_id
       JOIN inventory.products AS p ON p.id = l.product_id
       WHERE o.status <> 'cancelled'
       GROUP BY month, c.region, p.category ORDER BY month, revenue DESC""",
    # recency / frequency / monetary segmentation of customers
    """WITH per_customer AS (
           SELECT o.customer_id, max(o.ordered_at) AS last_order, count(DISTINCT o.id) AS frequency,
                  sum(l.quantity * l.unit_price) AS monetary
           FROM sales.orders AS o JOIN sales.order_lines AS l ON l.order_id = o.id
           GROUP BY o.customer_id),
       scored AS (
           SELECT customer_id, monetary, ntile(5) OVER (ORDER BY last_order) AS r,
                  ntile(5) OVER (ORDER BY frequency) AS f, ntile(5) OVER (ORDER BY monetary) AS m
           FROM per_customer)
       SELECT c.region, c.segment, s.r, s.f, s.m, count(*) AS customers, sum(s.monetary) AS revenue
       FROM scored AS s JOIN sales.customers AS c ON c.id = s.customer_id
       GROUP BY c.region, c.segment, s.r, s.f, s.m""",
    # cross-selling in the loaded year: which categories the same customers buy together, per region.
    # Pairs grow with the square of a customer's orders, so it leaves out what the run adds.
    """SELECT c.region, pa.category AS bought, pb.category AS also_bought, count(*) AS pairs,
              count(DISTINCT c.id) AS customers
       FROM sales.customers AS c
       JOIN sales.orders AS oa ON oa.customer_id = c.id JOIN sales.order_lines AS a ON a.order_id = oa.id
       JOIN sales.orders AS ob ON ob.customer_id = c.id JOIN sales.order_lines AS b ON b.order_id = ob.id
       JOIN inventory.products AS pa ON pa.id = a.product_id JOIN inventory.products AS pb ON pb.id = b.product_id
       WHERE pa.category <> pb.category AND oa.ordered_at < '2025' AND ob.ordered_at < '2025'
       GROUP BY c.region, pa.category, pb.category ORDER BY pairs DESC""",
    # stock on hand against units sold, per warehouse and category
    """SELECT w.code, p.category, sum(s.quantity) AS on_hand, sum(coalesce(sold.units, 0)) AS sold
       FROM inventory.stock AS s
       JOIN inventory.products AS p ON p.id = s.product_id
       JOIN inventory.warehouses AS w ON w.id = s.warehouse_id
       LEFT JOIN (SELECT l.product_id, o.warehouse_id, sum(l.quantity) AS units
                  FROM sales.order_lines AS l JOIN sales.orders AS o ON o.id = l.order_id
                  GROUP BY l.product_id, o.warehouse_id) AS sold
              ON sold.product_id = s.product_id AND sold.warehouse_id = s.warehouse_id
       GROUP BY w.code, p.category ORDER BY w.code, sold DESC""",
)


@dataclass(frozen=True)
class DemoSchedule:
    """When the episodic shapes happen, in seconds after start(); the defaults make a 30-second run
    show each of them at least once, early."""

    deadlock_first: float = 1.0
    deadlock_every: float = 7.0
    pair_patience: float = 1.0  # how long half a pair waits at the barrier for its partner
    import_first: float = 1.5
    import_every: float = 5.0
    forgotten_first: float = 3.0
    forgotten_every: float = 12.0
    forgotten_hold: float = 5.0
    oltp_think: tuple[float, float] = (0.01, 0.08)
    report_think: tuple[float, float] = (0.3, 1.2)


# role -> (user, application_name, client subnet)
_ROLES = {
    "oltp": ("shop", "oltp", 1),
    "report": ("analyst", "report", 2),
    "forgotten": ("batch", "batch-forgotten", 3),
    "pair": ("billing", "deadlock-pair", 4),
    "import": ("etl", "import", 5),
}
_ROLE_ORDER = ("oltp", "forgotten", "pair", "pair", "report", "import")
_EXTRA_ROLES = ("oltp", "oltp", "report")


def assign_roles(sessions: int) -> list[str]:
    if sessions < 1:
        raise ValueError("the demo needs at least one session")
    roles = list(_ROLE_ORDER[:sessions])
    if roles.count("pair") == 1:  # half a pair cannot deadlock with anyone
        roles[roles.index("pair")] = "oltp"
    roles += [_EXTRA_ROLES[i % len(_EXTRA_ROLES)] for i in range(sessions - len(roles))]
    return roles


@dataclass
class WorkerCounts:
    """What one worker did and what went wrong, as its application saw it."""

    oltp_transactions: int = 0
    reports: int = 0
    slowest_report_ms: float = 0.0
    forgotten_transactions: int = 0
    most_blocked_behind_forgotten: int = 0
    deadlock_rounds: int = 0
    import_batches: int = 0
    retries: int = 0
    deadlock_victims: int = 0
    serialization_failures: int = 0
    lock_timeouts: int = 0
    constraint_errors: int = 0
    interrupted: int = 0  # canceled or terminated, by an operator or by stop()
    other_errors: int = 0

    def add(self, other: WorkerCounts) -> None:
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            combine = max if f.name.startswith(("slowest", "most")) else operator.add
            setattr(self, f.name, combine(mine, theirs))


@dataclass(frozen=True)
class DemoSummary:
    seconds: float
    sessions: int
    seed: int
    # from the worker sessions' engine counters
    statements: int
    commits: int
    rollbacks: int
    errors: int
    # from the engine's lock manager, over the run (engine-wide)
    lock_waits: int
    deadlocks: int
    lock_timeouts: int
    # from the workers' own tallies
    counts: WorkerCounts

    def table(self) -> str:
        c = self.counts
        rows: list[tuple[str, str, str]] = [
            ("statements", f"{self.statements}", ""),
            ("commits", f"{self.commits}", "autocommit statements included"),
            ("rollbacks", f"{self.rollbacks}", ""),
            ("lock waits", f"{self.lock_waits}", "engine-wide"),
            ("deadlocks", f"{self.deadlocks}", "engine-wide"),
            ("lock timeouts", f"{self.lock_timeouts}", "engine-wide"),
            ("errors", f"{self.errors}", ""),
            ("  deadlock victims", f"{c.deadlock_victims}", "retried"),
            ("  serialization failures", f"{c.serialization_failures}", "retried"),
            ("  lock timeouts", f"{c.lock_timeouts}", "given up"),
            ("  constraint violations", f"{c.constraint_errors}", "rolled back"),
            ("  canceled or terminated", f"{c.interrupted}", ""),
            ("  other", f"{c.other_errors}", ""),
            ("retries", f"{c.retries}", ""),
            ("oltp transactions", f"{c.oltp_transactions}", "committed"),
            ("reports", f"{c.reports}", f"slowest {c.slowest_report_ms:.0f} ms"),
            ("forgotten transactions", f"{c.forgotten_transactions}",
             f"at most {c.most_blocked_behind_forgotten} sessions queued behind one"),
            ("deadlock pair rounds", f"{c.deadlock_rounds}", ""),
            ("import batches", f"{c.import_batches}", "committed"),
        ]
        width = max(len(r[0]) for r in rows)
        digits = max(len(r[1]) for r in rows)
        title = f"demo workload: {self.sessions} sessions, seed {self.seed}, {self.seconds:.1f} s"
        lines = [title, "-" * len(title)]
        for name, value, note in rows:
            lines.append(f"{name:<{width}}  {value:>{digits}}" + (f"  {note}" if note else ""))
        return "\n".join(lines)


class _Ticker:
    """first, first + every, ... seconds after t0; a missed beat is skipped, not made up."""

    def __init__(self, t0: float, first: float, every: float) -> None:
        self._next = t0 + first
        self._every = every

    def wait(self, stop: threading.Event) -> bool:
        """Sleep until the next beat; False when stopped first."""
        if stop.wait(max(0.0, self._next - time.monotonic())):
            return False
        now = time.monotonic()
        while self._next <= now:
            self._next += self._every
        return True


class _Abandon(Exception):
    """The workload is stopping in the middle of a transaction: roll it back."""


class _Worker:
    def __init__(self, demo: DemoWorkload, index: int, role: str) -> None:
        self.demo = demo
        self.engine = demo.engine
        self.index = index
        self.role = role
        self.rng = random.Random(demo.seed * 1000 + index)
        self.counts = WorkerCounts()
        self.batches_tried = 0
        self.sessions: list[Session] = []  # every session it used: reconnects keep the old counters
        self.session = self._connect()
        self.thread = threading.Thread(target=self._run, name=f"demo-{role}-{index}", daemon=True)

    def _connect(self) -> Session:
        user, application, subnet = _ROLES[self.role]
        session = self.engine.connect(user, application, f"10.0.{subnet}.{10 + self.index}")
        self.sessions.append(session)
        return session

    @property
    def stopping(self) -> bool:
        return self.demo.stop_event.is_set()

    def pause(self, seconds: float) -> None:
        self.demo.stop_event.wait(seconds)

    def _run(self) -> None:
        step: Callable[[], None] = getattr(self, f"_step_{self.role}")
        while not self.stopping:
            try:
                if self.session.closed:  # an operator terminated it: connect again, as a pool would
                    self.pause(0.5)
                    if not self.stopping:
                        self.session = self._connect()
                    continue
                step()
            except EngineError as exc:
                self.note(exc)
                self.rollback()
                self.pause(0.2)
            except Exception:  # a bug in a step must not end the worker; it shows in the log and summary
                log.exception("demo worker %s failed", self.thread.name)
                self.counts.other_errors += 1
                self.rollback()
                self.pause(0.5)

    # -- what a careful application does with the engine's errors ---------------------------

    def note(self, exc: EngineError) -> None:
        c = self.counts
        if isinstance(exc, DeadlockDetected):
            c.deadlock_victims += 1
        elif isinstance(exc, SerializationFailure):
            c.serialization_failures += 1
        elif isinstance(exc, LockTimeout):
            c.lock_timeouts += 1
        elif isinstance(exc, SqlError) and exc.details.get("sqlite_error") == "ConstraintError":
            c.constraint_errors += 1
        elif isinstance(exc, (QueryCanceled, SessionTerminated)):
            c.interrupted += 1
        else:
            c.other_errors += 1

    def rollback(self) -> None:
        session = self.session
        if session.txn is None or session.closed:
            return
        try:
            session.execute("rollback")
        except EngineError as exc:
            self.note(exc)  # closing the session discards the transaction anyway

    def transaction(self, body: Callable[[int], None], retries: int = 2) -> bool:
        """Run body(attempt) between BEGIN and COMMIT. The engine has already rolled back a deadlock
        victim or a stale snapshot, and trying again is the cure for both; anything else is rolled
        back and given up."""
        for attempt in range(retries + 1):
            try:
                self.session.execute("begin")
                body(attempt)
                self.session.execute("commit")
                return True
            except (DeadlockDetected, SerializationFailure) as exc:
                self.note(exc)
                if attempt == retries or self.stopping:
                    return False
                self.counts.retries += 1
                self.pause(self.rng.uniform(0.005, 0.05))  # jitter, so it does not meet the same partner again
            except EngineError as exc:
                self.note(exc)
                self.rollback()
                return False
            except _Abandon:
                self.rollback()
                return False
        return False

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.session.execute(sql, params).rows

    def stock_item(self) -> tuple[int, int]:
        """A (product, warehouse) that has a stock row: each product is kept in two warehouses."""
        product = self.rng.randint(1, PRODUCTS)
        return product, _stock_warehouses(product)[self.rng.randrange(2)]

    # -- oltp --------------------------------------------------------------------------------

    def _step_oltp(self) -> None:
        if self.rng.random() < 0.75:
            if self.transaction(self._place_order):
                self.counts.oltp_transactions += 1
        elif self.transaction(self._take_payment):
            self.counts.oltp_transactions += 1
        self.pause(self.rng.uniform(*self.demo.schedule.oltp_think))

    def _place_order(self, attempt: int) -> None:
        rng = self.rng
        customer = rng.randint(1, CUSTOMERS)
        lines = []
        # stock first: a sold-out item fails the CHECK here, before the order exists
        for _ in range(rng.randint(1, 3)):
            product, warehouse = self.stock_item()
            quantity = rng.randint(1, 4)
            self.execute("UPDATE inventory.stock SET quantity = quantity - ? WHERE product_id = ? AND warehouse_id = ?",
                         (quantity, product, warehouse))
            price = self.execute("SELECT price FROM inventory.products WHERE id = ?", (product,))[0][0]
            lines.append((product, quantity, price, warehouse))
        total = round(sum(q * p for _, q, p, _ in lines), 2)
        order_id = self.execute(
            "INSERT INTO sales.orders (customer_id, warehouse_id, status, ordered_at, total) "
            "VALUES (?, ?, 'new', datetime('now'), ?) RETURNING id", (customer, lines[0][3], total))[0][0]
        for line_no, (product, quantity, price, _) in enumerate(lines, 1):
            self.execute("INSERT INTO sales.order_lines (order_id, line_no, product_id, quantity, unit_price) "
                         "VALUES (?, ?, ?, ?, ?)", (order_id, line_no, product, quantity, price))

    def _take_payment(self, attempt: int) -> None:
        # read, then write what was read: the classic way to meet a stale snapshot under load
        customer = self.rng.randint(1, CUSTOMERS)
        balance = self.execute("SELECT balance FROM sales.customers WHERE id = ?", (customer,))[0][0]
        amount = round(self.rng.uniform(5, 200), 2)
        self.execute("UPDATE sales.customers SET balance = ? WHERE id = ?", (round(balance + amount, 2), customer))

    # -- report ------------------------------------------------------------------------------

    def _step_report(self) -> None:
        sql = REPORTS[self.rng.randrange(len(REPORTS))]
        try:
            result = self.session.execute(sql)
        except EngineError as exc:
            self.note(exc)
        else:
            self.counts.reports += 1
            self.counts.slowest_report_ms = max(self.counts.slowest_report_ms, result.execution_time_ms)
        self.pause(self.rng.uniform(*self.demo.schedule.report_think))

    # -- batch-forgotten ---------------------------------------------------------------------

    def _step_forgotten(self) -> None:
        if not self.demo.tickers["forgotten"].wait(self.demo.stop_event):
            return
        try:
            self.session.execute("begin")
            self.session.execute("UPDATE inventory.stock SET last_counted_at = datetime('now') WHERE warehouse_id = ?",
                                 (self.rng.randint(1, WAREHOUSES),))
        except EngineError as exc:
            self.note(exc)
            self.rollback()
            return
        self.counts.forgotten_transactions += 1
        # The job now "forgets" its open transaction; meanwhile, see how many queue behind it.
        until = time.monotonic() + self.demo.schedule.forgotten_hold
        while not self.stopping and time.monotonic() < until:
            blocked = _blocked_behind(self.engine, self.session.id)
            self.counts.most_blocked_behind_forgotten = max(self.counts.most_blocked_behind_forgotten, blocked)
            self.pause(0.1)
        try:
            self.session.execute("commit")
        except EngineError as exc:
            self.note(exc)
            self.rollback()

    # -- deadlock-pair -----------------------------------------------------------------------

    def _step_pair(self) -> None:
        pair = self.demo.pair
        leader = self.index == pair.leader
        if leader:
            if not self.demo.tickers["pair"].wait(self.demo.stop_event):
                return
            barrier = pair.begin_round()
        else:
            barrier = pair.next_round(self.demo.stop_event)
            if barrier is None:
                return
        order_id = self.rng.randint(1, ORDERS)
        product, warehouse = self.stock_item()
        first, second = (
            ("UPDATE sales.orders SET status = 'cancelled' WHERE id = ?", (order_id,)),
            ("UPDATE inventory.stock SET quantity = quantity + 1 WHERE product_id = ? AND warehouse_id = ?",
             (product, warehouse)),
        )
        if not leader:  # the other half takes the same two schemas the other way round
            first, second = (
                ("UPDATE inventory.stock SET quantity = quantity + 5 WHERE product_id = ? AND warehouse_id = ?",
                 (product, warehouse)),
                ("UPDATE sales.orders SET status = 'paid' WHERE id = ?", (order_id,)),
            )

        def body(attempt: int) -> None:
            self.execute(*first)
            if attempt == 0:  # a retry after losing the deadlock just queues behind the winner
                try:
                    barrier.wait(self.demo.schedule.pair_patience)
                except threading.BrokenBarrierError:
                    # The partner is stuck behind some third session that may in turn wait for
                    # us; go on, so that such a cycle forms where the engine can see it.
                    if self.stopping:
                        raise _Abandon from None
            self.execute(*second)

        self.transaction(body, retries=1)
        if leader:
            self.counts.deadlock_rounds += 1

    # -- import ------------------------------------------------------------------------------

    def _step_import(self) -> None:
        if not self.demo.tickers["import"].wait(self.demo.stop_event):
            return
        rng = self.rng
        self.batches_tried += 1
        # unique across runs on the same data: the next free id names the batch
        first_id = self.execute("SELECT coalesce(max(id), 0) + 1 FROM sales.customers")[0][0]
        rows = [_customer_row(rng, None, f"import-{first_id}-{n}@example.net") for n in range(200)]
        if self.batches_tried % 2 == 1:  # the source system sends a customer we already have
            rows[rng.randrange(len(rows))] = _customer_row(rng, None, _email(rng.randint(1, CUSTOMERS)))
        if self.transaction(lambda attempt: _insert_rows(self.session, "sales.customers", _CUSTOMER_COLUMNS, rows),
                            retries=0):
            self.counts.import_batches += 1
            return
        # what an ETL job does with a rejected batch: drop the rows that already exist, load the rest
        emails = [r[1] for r in rows]
        known = {r[0] for r in self.execute(
            f"SELECT email FROM sales.customers WHERE email IN ({', '.join('?' * len(emails))})", emails)}
        fresh = [r for r in rows if r[1] not in known]
        if fresh and self.transaction(
                lambda attempt: _insert_rows(self.session, "sales.customers", _CUSTOMER_COLUMNS, fresh), retries=0):
            self.counts.import_batches += 1


def _blocked_behind(engine: Engine, session_id: int) -> int:
    """How many sessions wait on session_id, directly or down a chain."""
    waiters: dict[int, set[int]] = {}
    for edge in engine.locks.edges():
        waiters.setdefault(edge.holder_session, set()).add(edge.waiter_session)
    seen: set[int] = set()
    todo = [session_id]
    while todo:
        for waiter in waiters.get(todo.pop(), ()):
            if waiter not in seen and waiter != session_id:
                seen.add(waiter)
                todo.append(waiter)
    return len(seen)


class _Pair:
    """Hands each deadlock-pair round's barrier from the leader to the follower."""

    def __init__(self, leader: int) -> None:
        self.leader = leader
        self._mutex = threading.Condition()
        self._barrier: threading.Barrier | None = None
        self._round = 0
        self._taken = 0

    def begin_round(self) -> threading.Barrier:
        with self._mutex:
            if self._barrier is not None:
                self._barrier.abort()  # a follower that never came to the last round
            self._barrier = threading.Barrier(2)
            self._round += 1
            self._mutex.notify_all()
            return self._barrier

    def next_round(self, stop: threading.Event) -> threading.Barrier | None:
        with self._mutex:
            while self._round == self._taken:
                if stop.is_set():
                    return None
                self._mutex.wait(0.1)
            self._taken = self._round
            return self._barrier

    def abort(self) -> None:
        with self._mutex:
            if self._barrier is not None:
                self._barrier.abort()


# -- loading ---------------------------------------------------------------------------------

_CUSTOMER_COLUMNS = ("id", "email", "name", "region", "segment", "balance", "created_at")


def _email(customer_id: int) -> str:
    return f"customer{customer_id}@example.com"


def _stock_warehouses(product: int) -> tuple[int, int]:
    return product % WAREHOUSES + 1, (product + 3) % WAREHOUSES + 1


def _timestamp(rng: random.Random) -> str:
    return (_HISTORY_START + timedelta(seconds=rng.randrange(365 * 86400))).strftime("%Y-%m-%d %H:%M:%S")


def _customer_row(rng: random.Random, customer_id: int | None, email: str) -> tuple[Any, ...]:
    name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    segment = rng.choices(_SEGMENTS, weights=(70, 25, 5))[0]
    return (customer_id, email, name, rng.choice(_REGIONS), segment, 0.0, _timestamp(rng))


def generate(seed: int) -> Iterator[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
    """(table, columns, rows) for every table, parents first, all drawn from random.Random(seed)."""
    rng = random.Random(seed)
    yield ("inventory.warehouses", ("id", "code", "city"),
           [(w, f"WH{w:02d}", _CITIES[w - 1]) for w in range(1, WAREHOUSES + 1)])
    prices = [round(rng.lognormvariate(3.3, 0.9) + 0.5, 2) for _ in range(PRODUCTS)]
    yield ("inventory.products", ("id", "sku", "name", "category", "price"),
           [(p, f"SKU-{p:06d}", f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}", rng.choice(_CATEGORIES),
             prices[p - 1]) for p in range(1, PRODUCTS + 1)])
    # about 2 % of stock rows are sold out, so some orders fail the quantity CHECK
    yield ("inventory.stock", ("product_id", "warehouse_id", "quantity", "last_counted_at"),
           [(p, w, 0 if rng.random() < 0.02 else rng.randint(5, 500), _timestamp(rng))
            for p in range(1, PRODUCTS + 1) for w in _stock_warehouses(p)])
    yield ("sales.customers", _CUSTOMER_COLUMNS,
           [_customer_row(rng, c, _email(c)) for c in range(1, CUSTOMERS + 1)])
    orders, lines = [], []
    for o in range(1, ORDERS + 1):
        total = 0.0
        for line_no in range(1, rng.randint(1, 3) + 1):
            product, quantity = rng.randint(1, PRODUCTS), rng.randint(1, 5)
            lines.append((o, line_no, product, quantity, prices[product - 1]))
            total += quantity * prices[product - 1]
        status = rng.choices(_STATUSES, weights=(5, 15, 75, 5))[0]
        orders.append((o, rng.randint(1, CUSTOMERS), rng.randint(1, WAREHOUSES), status, _timestamp(rng),
                       round(total, 2)))
    yield "sales.orders", ("id", "customer_id", "warehouse_id", "status", "ordered_at", "total"), orders
    yield "sales.order_lines", ("order_id", "line_no", "product_id", "quantity", "unit_price"), lines


def _insert_rows(session: Session, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    placeholders = "(" + ", ".join("?" * len(columns)) + ")"
    for start in range(0, len(rows), INSERT_ROWS):
        chunk = rows[start:start + INSERT_ROWS]
        session.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                        + ", ".join([placeholders] * len(chunk)), [v for row in chunk for v in row])


# -- the workload ----------------------------------------------------------------------------

class DemoWorkload:
    """The demo's data and worker threads, on an engine that may also serve other sessions."""

    def __init__(self, engine: Engine, sessions: int = 8, seed: int = 42,
                 schedule: DemoSchedule | None = None) -> None:
        self.engine = engine
        self.sessions = sessions
        self.seed = seed
        self.schedule = schedule or DemoSchedule()
        self.roles = assign_roles(sessions)
        self.stop_event = threading.Event()
        self.tickers: dict[str, _Ticker] = {}
        self.pair = _Pair(self.roles.index("pair") if "pair" in self.roles else -1)
        self._workers: list[_Worker] = []
        self._started: float | None = None
        self._stopped: float | None = None
        self._base = (0, 0, 0)
        self._mutex = threading.Lock()  # start and stop may come from different threads (a server's signal)

    # -- data ------------------------------------------------------------------------------

    def setup(self, before_rows: Callable[[], object] | None = None) -> dict[str, int]:
        """Create both schemas and their tables, and load any table that is empty; returns row counts.

        `before_rows` is called once the tables exist, before any rows are made: building them takes
        the interpreter for half a second, which an embedded console would rather have first.
        """
        for name in SCHEMAS:
            if name not in self.engine.storage.schemas:
                try:
                    self.engine.create_schema(name)
                except Conflict:
                    pass  # someone else created it a moment ago: just as good
        session = self.engine.connect("admin", "demo-setup", "local")
        try:
            for name in SCHEMAS:
                session.execute(_DDL[name])
            if before_rows is not None:
                before_rows()
            # No ANALYZE: with STAT4 statistics SQLite re-prepares statements inside step, where
            # the engine's authorizer bookkeeping does not expect it.
            for table, columns, rows in generate(self.seed):
                if session.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").rows[0][0]:
                    continue
                # one transaction per table: a table is either loaded or empty (close() rolls back)
                session.execute("begin")
                _insert_rows(session, table, columns, rows)
                session.execute("commit")
            return {t: session.execute(f"SELECT count(*) FROM {t}").rows[0][0] for t in TABLES}
        finally:
            session.close()

    # -- running ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return any(w.thread.is_alive() for w in self._workers)

    def start(self) -> None:
        with self._mutex:
            if self.running:
                return
            self.stop_event.clear()
            self.pair = _Pair(self.pair.leader)
            workers: list[_Worker] = []
            try:
                for index, role in enumerate(self.roles):
                    workers.append(_Worker(self, index, role))
            except BaseException:
                for w in workers:
                    w.session.close()
                raise
            t0 = time.monotonic()
            s = self.schedule
            self.tickers = {"pair": _Ticker(t0, s.deadlock_first, s.deadlock_every),
                            "import": _Ticker(t0, s.import_first, s.import_every),
                            "forgotten": _Ticker(t0, s.forgotten_first, s.forgotten_every)}
            locks = self.engine.locks
            self._base = (locks.lock_waits_total, locks.lock_timeouts_total, locks.deadlocks_total)
            self._workers = workers
            self._started, self._stopped = t0, None
            for w in workers:
                w.thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the workers and close their sessions, within about `timeout` seconds."""
        with self._mutex:
            if self._started is None or self._stopped is not None:
                return
            self.stop_event.set()
            self.pair.abort()
            deadline = time.monotonic() + timeout / 2
            # A lock wait may last up to lock_timeout_ms and a report most of a second: cancel
            # those; the rest ends within a statement.
            while self._alive() and time.monotonic() < deadline:
                for w in self._alive():
                    if w.session.state is SessionState.WAITING or w.role == "report":
                        self._quietly(self.engine.cancel, w.session.id)
                for w in self._alive():
                    w.thread.join(0.05)
            for w in self._alive():  # whatever still runs: end its session rather than wait
                self._quietly(self.engine.terminate, w.session.id)
            for w in self._workers:
                w.thread.join(max(0.0, deadline + timeout / 2 - time.monotonic()))
                if w.thread.is_alive():
                    log.warning("demo worker %s did not stop", w.thread.name)
                else:
                    w.session.close()
            self._stopped = time.monotonic()

    def _alive(self) -> list[_Worker]:
        return [w for w in self._workers if w.thread.is_alive()]

    @staticmethod
    def _quietly(action: Callable[..., object], session_id: int) -> None:
        try:
            action(session_id, by="demo")
        except (Conflict, NotFound):
            pass  # the statement or session ended by itself in the meantime

    # -- results ---------------------------------------------------------------------------

    def summary(self) -> DemoSummary:
        """What the run did so far (or in all, once stopped)."""
        counts = WorkerCounts()
        statements = commits = rollbacks = errors = 0
        for w in self._workers:
            counts.add(w.counts)
            for s in w.sessions:
                statements += s.counters.statements
                commits += s.counters.commits
                rollbacks += s.counters.rollbacks
                errors += s.counters.errors
        locks = self.engine.locks
        waits0, timeouts0, deadlocks0 = self._base
        end = self._stopped or time.monotonic()
        seconds = end - self._started if self._started is not None else 0.0
        return DemoSummary(seconds, self.sessions, self.seed, statements, commits, rollbacks, errors,
                           locks.lock_waits_total - waits0, locks.deadlocks_total - deadlocks0,
                           locks.lock_timeouts_total - timeouts0, counts)


def run_demo(data_dir: str | Path | None = None, sessions: int = 8, seed: int = 42, seconds: float = 30.0,
             config: EngineConfig | None = None, schedule: DemoSchedule | None = None) -> DemoSummary:
    """Run the workload on its own engine for `seconds` (or until Ctrl-C) and return what it did."""
    engine = Engine(data_dir, config).start()
    workload = DemoWorkload(engine, sessions, seed, schedule)
    try:
        workload.setup()
        workload.start()
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            time.sleep(min(left, 0.25))
    except KeyboardInterrupt:
        log.info("demo interrupted; stopping")
    finally:
        workload.stop()
        engine.close()
    return workload.summary()
