"""Sessions and transactions owned by remote (REST) callers.

An engine transaction lives in one session (one SQLite connection), so a transaction begun over the
API gets an engine session of its own, kept between requests until commit or rollback, and usable
only by the caller who began it or an admin. A statement sent without a transaction runs in a
short-lived session closed afterwards. Either way the session carries the caller's name and
address, so monitoring shows who runs what.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .auth import ApiRole, Forbidden, Principal
from .errors import InvalidInput, NotFound, SessionTerminated
from .sessions import Session
from .statements import Result, transaction_control
from .transactions import ISOLATION_LEVEL, Transaction

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("engine")

APPLICATION_NAME = "rest"
# The SQL standard lets a transaction run at a stricter level than asked for; the engine has one.
ACCEPTED_ISOLATION_LEVELS = ("READ_UNCOMMITTED", "READ_COMMITTED", "REPEATABLE_READ")

T = TypeVar("T")


@dataclass(frozen=True)
class RemoteTransaction:
    transaction_id: int
    session: Session
    owner: str
    requested_isolation_level: str
    started_at: float


class RemoteSessions:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._mutex = threading.Lock()
        self._open: dict[int, RemoteTransaction] = {}

    # -- transactions ------------------------------------------------------------------------

    def begin(self, who: Principal, client_address: str, isolation_level: str | None = None,
              read_only: bool = False) -> RemoteTransaction:
        requested = isolation_level or ISOLATION_LEVEL
        if requested not in ACCEPTED_ISOLATION_LEVELS:
            raise InvalidInput(f"isolation_level must be one of {', '.join(ACCEPTED_ISOLATION_LEVELS)} (all run as "
                               f"{ISOLATION_LEVEL}); got {requested!r}", field="isolation_level")
        self._forget_closed()
        session = self._connect(who, client_address)
        try:
            session.execute("BEGIN")
            txn = session.txn
            if txn is None:  # terminated by an operator between BEGIN and here
                raise SessionTerminated(f"session {session.id} was terminated by {session.terminated_by}",
                                        terminated_by=session.terminated_by)
            txn.read_only = read_only
        except BaseException:
            session.close()
            raise
        remote = RemoteTransaction(txn.id, session, who.name, requested, txn.started_at)
        with self._mutex:
            self._open[txn.id] = remote
        log.info("transaction %s begun over REST by %s (session %s)", txn.id, who.name, session.id)
        return remote

    def commit(self, who: Principal, transaction_id: int) -> Transaction:
        return self._end(who, transaction_id, "COMMIT")

    def rollback(self, who: Principal, transaction_id: int) -> Transaction:
        return self._end(who, transaction_id, "ROLLBACK")

    def owned(self, transaction_id: int) -> RemoteTransaction | None:
        """The REST transaction with this id, if it is one and still open."""
        with self._mutex:
            return self._open.get(transaction_id)

    def _end(self, who: Principal, transaction_id: int, sql: str) -> Transaction:
        remote = self._owned(who, transaction_id)
        txn = remote.session.txn
        try:
            remote.session.execute(sql)
        finally:
            self._settle(remote)
        assert txn is not None  # else execute raised: the session is gone or has no transaction
        log.info("transaction %s: %s over REST by %s", transaction_id, sql, who.name)
        return txn

    # -- statements --------------------------------------------------------------------------

    def execute(self, who: Principal, sql: str, params: Any = None, *, client_address: str,
                transaction_id: int | None = None, max_rows: int | None = None,
                timeout_secs: float | None = None) -> Result:
        if transaction_control(sql) is not None:
            raise InvalidInput("BEGIN, COMMIT and ROLLBACK are not taken as SQL here: begin a transaction with the "
                               "transactions API, pass its transaction_id, and commit or roll it back there",
                               field="sql")
        return self._run(who, client_address, transaction_id,
                         lambda s: s.execute(sql, params, max_rows=max_rows, timeout_secs=timeout_secs))

    def explain(self, who: Principal, sql: str, params: Any = None, *, client_address: str,
                transaction_id: int | None = None) -> tuple[Result, str]:
        """EXPLAIN QUERY PLAN of one statement, which is planned and not run: its rows and a tree as text."""
        if not single_statement(sql):
            # a second statement would run: EXPLAIN covers only the first
            raise InvalidInput("explain takes exactly one statement; nothing but space may follow its ';'",
                               field="sql")
        result = self._run(who, client_address, transaction_id,
                           lambda s: s.execute("EXPLAIN QUERY PLAN " + sql, params))
        return result, plan_text(result.rows)

    def _run(self, who: Principal, client_address: str, transaction_id: int | None,
             work: Callable[[Session], T]) -> T:
        if transaction_id is None:
            session = self._connect(who, client_address)
            try:
                return work(session)
            finally:
                session.close()
        remote = self._owned(who, transaction_id)
        try:
            return work(remote.session)
        finally:
            self._settle(remote)

    # -- bookkeeping -------------------------------------------------------------------------

    def _connect(self, who: Principal, client_address: str) -> Session:
        return self._engine.connect(user=who.name, application_name=APPLICATION_NAME, client_address=client_address)

    def _owned(self, who: Principal, transaction_id: int) -> RemoteTransaction:
        remote = self.owned(transaction_id)
        if remote is None:
            raise NotFound(f"Transaction {transaction_id} not found or already completed",
                           transaction_id=transaction_id)
        if remote.owner != who.name and who.role < ApiRole.ADMIN:
            raise Forbidden(f"transaction {transaction_id} belongs to {remote.owner}; only its owner or an admin "
                            "may use it", transaction_id=transaction_id, owner=remote.owner)
        return remote

    def _settle(self, remote: RemoteTransaction) -> None:
        """Forget a transaction that ended inside the engine, and close its session.

        Besides commit and rollback, the engine ends a transaction itself: a deadlock victim, a
        serialization failure, a write SQLite rolled back, a session an operator terminated.
        """
        session = remote.session
        txn = session.txn
        if not session.closed and txn is not None and txn.id == remote.transaction_id:
            return
        with self._mutex:
            if self._open.pop(remote.transaction_id, None) is None:
                return  # another request on the same transaction settled it
        session.close()

    def _forget_closed(self) -> None:
        """Drop transactions whose session was closed under them and that nobody asked about since."""
        with self._mutex:
            for tid in [tid for tid, r in self._open.items() if r.session.closed]:
                del self._open[tid]


def single_statement(sql: str) -> bool:
    """Whether sql holds one statement: after its first top-level ';' only space, ';' and comments.

    A linear scan with SQLite's quoting rules ('string', "name", [name], `name`, -- and /* comments).
    It ends a CREATE TRIGGER at its first inner ';', which only errs towards refusing.
    """
    i, n, ended = 0, len(sql), False
    while i < n:
        c = sql[i]
        if c in "'\"`[":
            if ended:
                return False
            close = sql.find("]" if c == "[" else c, i + 1)
            # a doubled quote ('it''s') just starts the next quoted run: the scan stays in step
            i = n if close < 0 else close + 1
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n if newline < 0 else newline + 1
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            i = n if close < 0 else close + 2
        elif c == ";":
            ended = True
            i += 1
        elif c.isspace():
            i += 1
        elif ended:
            return False
        else:
            i += 1
    return True


def plan_text(rows: list[tuple[Any, ...]]) -> str:
    """EXPLAIN QUERY PLAN rows (id, parent, notused, detail) as an indented tree."""
    depth: dict[int, int] = {0: -1}
    lines = []
    for node_id, parent, _, detail in rows:
        depth[node_id] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node_id] + str(detail))
    return "\n".join(lines)
