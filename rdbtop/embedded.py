"""The embedded engine: the only module of the console that imports `engine`.

The console talks to it through the same REST API as to a remote server (ASGI transport in
process) with an API key made for the occasion: operator, or monitor when read-only.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from engine import Engine
from engine.api import create_app
from engine.demo import DemoWorkload

from .client import Credentials, RdbClient

EMBEDDED_URL = "http://embedded"


class EmbeddedEngine:
    def __init__(self, data: str | None, demo: bool, seed: int, sessions: int, role: str) -> None:
        self.data = Path(data) if data else None
        self.demo = demo
        self.seed = seed
        self.sessions = sessions
        self.role = role
        self.engine: Engine | None = None
        self.workload: DemoWorkload | None = None
        self._key = ""
        self._propagate = True

    def start(self) -> None:
        # the engine logs deadlocks and the like; on a terminal the console owns, stray lines would tear
        # it (they still reach the engine's own log ring and file); stop() gives the logger back
        engine_log = logging.getLogger("engine")
        self._propagate = engine_log.propagate
        engine_log.propagate = False
        self.engine = Engine(self.data).start()
        self._key = self.engine.auth.create_api_key(self.role, "rdbtop embedded console")
        if self.demo:
            self.workload = DemoWorkload(self.engine, sessions=self.sessions, seed=self.seed)
            self.workload.setup()
            self.workload.start()

    def client(self) -> RdbClient:
        assert self.engine is not None, "start() first"
        transport = httpx.ASGITransport(app=create_app(self.engine))
        return RdbClient(EMBEDDED_URL, Credentials(api_key=self._key), transport=transport)

    def stop(self) -> None:
        if self.workload is not None:
            self.workload.stop()
        if self.engine is not None:
            self.engine.close()
        logging.getLogger("engine").propagate = self._propagate
