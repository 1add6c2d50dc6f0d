"""Helpers the engine tests import (`from enginetest import ...`): polling, threads, SQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from engine import Session, SessionState

# Runs until something stops it (cancel, timeout, terminate).
ENDLESS_SQL = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"
# The settings every test engine starts from; a test passes what it needs on top.
TEST_CONFIG = dict(lock_timeout_ms=5000, deadlock_check_interval_ms=100, query_timeout_secs=30.0)


def bounded_sql(n: int) -> str:
    """A CPU-only statement whose running time grows with n (about 0.1 µs per row)."""
    return f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < {n}) SELECT count(*) FROM c"


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, message: str = "") -> Any:
    """Poll `predicate` until it returns something truthy (and return that), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(0.002)


def wait_for_state(session: Session, state: SessionState, timeout: float = 5.0) -> None:
    wait_until(lambda: session.state is state, timeout, f"session {session.id} to be {state.value}")


def count(session: Session, sql: str, params: Any = None) -> int:
    return session.execute(sql, params).rows[0][0]


class Background:
    """A callable running in its own thread, with its result or exception kept for the test."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True,
                                        name=f"test-{getattr(fn, '__name__', 'call')}")
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            self.value = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the test thread
            self.error = exc
        finally:
            self.ended = time.monotonic()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float = 10.0) -> Background:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"thread {self._thread.name} still running after {timeout}s")
        return self

    def result(self, timeout: float = 10.0) -> Any:
        """The call's return value; re-raises its exception in the test thread."""
        self.join(timeout)
        if self.error is not None:
            raise self.error
        return self.value

    def exception(self, timeout: float = 10.0) -> BaseException:
        """The exception the call raised; fails the test if it returned normally."""
        self.join(timeout)
        if self.error is None:
            raise AssertionError(f"expected an exception, got {self.value!r}")
        return self.error
