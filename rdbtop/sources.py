"""Where the console's data comes from: a remote server by URL, or an engine in this process.

Both hand the app the same RdbClient; only the transport differs. The embedded engine starts in
a thread, so the console draws its first frame while the engine loads its demo data.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Protocol

from .client import Credentials, RdbClient


class Source(Protocol):
    label: str

    async def open(self) -> RdbClient: ...

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
        self._thread = threading.Thread(target=self._start, name="rdbtop-embedded-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        from .embedded import (
            EmbeddedEngine,  # the engine's imports cost time: only when embedded
        )

        try:
            engine = EmbeddedEngine(*self._args)
            self._engine = engine
            engine.start()
        except BaseException as exc:  # handed to open(), which the console shows and retries
            self._failure = exc

    async def open(self) -> RdbClient:
        if self._client is None:
            await asyncio.to_thread(self._thread.join)
            if self._failure is not None:
                raise self._failure
            self._client = self._engine.client()
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def shutdown(self) -> None:
        # stopping the demo takes a second or two: done after the app has left the screen, not while
        # it sits frozen on it
        self._thread.join()
        if self._engine is not None:
            self._engine.stop()
