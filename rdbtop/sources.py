"""Where the console's data comes from: a remote server by URL, or an engine in this process.

Both hand the app the same RdbClient; only the transport differs. The embedded engine starts in
a thread, so the console starts while the engine does, and polls once the engine serves its API,
while the demo is still loading its data.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from typing import Any, Protocol

from .client import Credentials, RdbClient


class Source(Protocol):
    label: str

    async def open(self) -> RdbClient: ...

    async def settled(self) -> None:
        """Wait until what the source starts itself (the demo) runs; open() may return before."""

    def data_shown(self) -> None:
        """The console has its first data on screen: what the source starts itself may go on."""

    async def close(self) -> None:
        """Close the client (in the app's event loop)."""

    def shutdown(self) -> None:
        """Stop what the source runs itself, after the console has given the terminal back."""


class RemoteSource:
    def __init__(self, url: str, credentials: Credentials, user: str | None = None,
                 password: str | None = None) -> None:
        self.label = url
        self._client = RdbClient(url, credentials)
        self._login = (user, password) if user else None

    async def open(self) -> RdbClient:
        if self._login and not self._client.credentials.token:
            await self._client.login(*self._login)  # type: ignore[arg-type]
        return self._client

    async def settled(self) -> None:
        pass

    def data_shown(self) -> None:
        pass

    async def close(self) -> None:
        await self._client.aclose()

    def shutdown(self) -> None:
        pass  # a remote server is not ours to stop


class EmbeddedSource:
    """An in-process engine (rdbtop.embedded), started in a thread at once, so that it loads while
    the console itself starts."""

    def __init__(self, data: str | None, demo: bool, seed: int, sessions: int, read_only: bool) -> None:
        self.label = "embedded engine" + (f" ({data})" if data else "")
        self._args = (data, demo, seed, sessions, "monitor" if read_only else "operator")
        self._engine: Any = None
        self._failure: BaseException | None = None
        self._client: RdbClient | None = None
        self._up = threading.Event()  # the engine serves its API, or its start failed
        self._go = threading.Event()  # the console shows its first data: the demo may load
        self._thread = threading.Thread(target=self._start, name="rdbtop-embedded-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        # The engine's imports and its API's routes make some hundred thousand objects, and the
        # collector kept walking them and the console's own while they were made: measured, a
        # quarter of the time to the first frame went to some 400 collections. So none run until
        # the engine serves (the console is only starting meanwhile); then what was made so far is
        # frozen (modules, the engine, the widgets: they live as long as the console) and the
        # collector resumes on what comes after.
        collecting = gc.isenabled()
        gc.disable()

        def ready() -> None:
            if collecting:
                gc.collect(0)  # once, the garbage made meanwhile (all of it is young)
                gc.freeze()  # the rest lives as long as the console: full collections need not walk it
                gc.enable()
            self._up.set()

        try:
            from .embedded import EmbeddedEngine  # the engine's imports cost time: only when embedded

            engine = EmbeddedEngine(*self._args)
            self._engine = engine
            engine.start(ready=ready, go=self._go)
        except BaseException as exc:
            if self._up.is_set():
                # the engine serves; only the demo failed: the console shows the engine without it
                logging.getLogger("engine.demo").exception("the demo workload did not start")
            else:  # handed to open(), which the console shows and retries
                self._failure = exc
        finally:
            if collecting:
                gc.enable()
            self._up.set()

    async def open(self) -> RdbClient:
        if self._client is None:
            await asyncio.to_thread(self._up.wait)  # the engine serves (the demo may still be loading)
            if self._failure is not None:
                raise self._failure
            self._client = self._engine.client()
        return self._client

    async def settled(self) -> None:
        self._go.set()
        await asyncio.to_thread(self._thread.join)

    def data_shown(self) -> None:
        self._go.set()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def shutdown(self) -> None:
        # stopping the demo takes a second or two: done after the app has left the screen, not while
        # it sits frozen on it
        self._go.set()
        self._thread.join()
        if self._engine is not None:
            self._engine.stop()
