"""Serving the engine over HTTP: uvicorn around the app, with a clean stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Generator
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qsl, urlencode

import uvicorn
from starlette.types import ASGIApp

from .api import create_app
from .engine import Engine
from .logs import escape_control

log = logging.getLogger("engine.server")
ADMIN_PASSWORD_ENV = "RDBTOP_ADMIN_PASSWORD"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(uvicorn.Server):
    """uvicorn re-raises a caught SIGINT/SIGTERM after shutdown, which would end the process with
    128+signal; we handle both ourselves so that a requested stop exits 0."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_stop = on_stop

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self.force_exit = True
            return
        self.should_exit = True
        # Requests blocked on locks would hold up the drain: interrupt them (they answer 409).
        threading.Thread(target=self._on_stop, name="engine-shutdown").start()


# Query parameters that carry credentials (the WebSocket's ?token=): their values never reach the access log.
SECRET_PARAMETERS = frozenset({"token", "access_token", "api_key", "apikey", "key", "refresh_token"})


def server_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for the engine. proxy_headers is off: uvicorn would otherwise take the
    client address from X-Forwarded-For of any peer in forwarded_allow_ips (127.0.0.1 by default), so
    a client on the same machine could choose its address and walk past the login throttle. The
    engine reads the header itself, from the proxies `trusted_proxies` names (engine.api.deps)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="info", lifespan="off", timeout_graceful_shutdown=10,
                            proxy_headers=False, server_header=False)
    for name in ("uvicorn.access", "uvicorn.error"):  # the second logs WebSocket handshakes, with their URL
        logger = logging.getLogger(name)
        if not any(isinstance(f, ScrubRequestTargets) for f in logger.filters):
            logger.addFilter(ScrubRequestTargets())
    return config


class ScrubRequestTargets(logging.Filter):
    """uvicorn's request lines with credential values in the query string replaced by REDACTED."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(scrub_target(a) if isinstance(a, str) and a.startswith("/") else a
                                for a in record.args)
        return True


def scrub_target(target: str) -> str:
    path, sep, query = target.partition("?")
    if sep:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "REDACTED" if k.lower() in SECRET_PARAMETERS else v) for k, v in pairs])
    return escape_control(path + sep + query)


def serve(data_dir: str | None, host: str, port: int, demo_sessions: int | None, seed: int) -> int:
    if not is_loopback(host):
        log.warning("listening on %s: the API is reachable from other machines; use TLS in front of it", host)
    engine = Engine(Path(data_dir) if data_dir else None).start()
    generated = engine.auth.ensure_admin(os.environ.get(ADMIN_PASSWORD_ENV))
    if generated:
        print(f"created user admin with password: {generated}\n(shown once; set {ADMIN_PASSWORD_ENV} to choose it)",
              file=sys.stderr, flush=True)
    workload = None
    if demo_sessions is not None:
        from .demo import DemoWorkload

        workload = DemoWorkload(engine, sessions=demo_sessions, seed=seed)
        workload.setup()
        workload.start()
    stop_lock = threading.Lock()

    def shutdown() -> None:
        with stop_lock:
            if workload is not None:
                workload.stop()
            engine.close()

    server = _Server(server_config(create_app(engine), host, port), shutdown)
    try:
        server.run()
    finally:
        shutdown()
    return 0 if server.started else 1
