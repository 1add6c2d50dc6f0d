"""The embedded engine: the only module of the console that imports `engine`.

The console talks to it through the same REST API as to a remote server (ASGI transport in
process) with an API key made for the occasion: operator, or monitor when read-only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from engine import Engine
from engine.api import create_app
from engine.demo import DemoWorkload

from .client import Credentials, RdbClient

EMBEDDED_URL = "http://embedded"
DEMO_HOLD_SECONDS = 3.0  # the demo loads after the console's first frame, or after this if none comes


class EmbeddedEngine:
    def __init__(self, data: str | None, demo: bool, seed: int, sessions: int, role: str) -> None:
        self.data = Path(data) if data else None
        self.demo = demo
        self.seed = seed
        self.sessions = sessions
        self.role = role
        self.engine: Engine | None = None
        self.workload: DemoWorkload | None = None
        self._api: object = None
        self._key = ""
        self._propagate = True

    def start(self, ready: Callable[[], None] = lambda: None, go: threading.Event | None = None) -> None:
        """Start the engine, its API and the demo's loading session, call `ready`, then load and start the demo.

        The console polls as soon as `ready` is called, so its first frame shows the engine while the
        demo loads its data (its loading session shows) instead of after it: loading took about
        half a second alone and 1.5 s more while competing with the console's own start. `ready` is
        called once the demo's loading session and its tables exist, so the first frame shows them;
        then, as building the rows holds the interpreter most of the time, loading waits for the
        console's first data to be on screen (`go`), at most DEMO_HOLD_SECONDS.
        """
        # the engine logs deadlocks and the like; on a terminal the console owns, stray lines would tear
        # it (they still reach the engine's own log ring and file); stop() gives the logger back
        engine_log = logging.getLogger("engine")
        self._propagate = engine_log.propagate
        engine_log.propagate = False
        self.engine = Engine(self.data).start()
        self._key = self.engine.auth.create_api_key(self.role, "rdbtop embedded console")
        self._api = create_app(self.engine)  # here, not in the console's event loop: it takes a quarter second
        if not self.demo:
            ready()
            return

        def loading() -> None:  # the demo's session and tables exist: the first frame shows them
            ready()
            if go is not None:
                go.wait(DEMO_HOLD_SECONDS)

        self.workload = DemoWorkload(self.engine, sessions=self.sessions, seed=self.seed)
        self.workload.setup(before_rows=loading)
        self.workload.start()

    def client(self) -> RdbClient:
        assert self._api is not None, "start() first"
        transport = httpx.ASGITransport(app=self._api)  # type: ignore[arg-type]
        return RdbClient(EMBEDDED_URL, Credentials(api_key=self._key), transport=transport)

    def stop(self) -> None:
        if self.workload is not None:
            self.workload.stop()
        if self.engine is not None:
            self.engine.close()
        logging.getLogger("engine").propagate = self._propagate
