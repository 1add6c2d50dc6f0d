"""The RustyDB REST client rdbtop speaks through: one async httpx client, two transports.

Remote mode gives a base URL; embedded mode gives an ASGI transport over an in-process engine.
Either way every call goes through the same paths, so the embedded default exercises exactly
what a remote user runs. Reads are retried with backoff; actions are never retried.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(5.0, connect=3.0)
READ_RETRIES = 2
BACKOFF_SECONDS = 0.2
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class ClientError(Exception):
    """Anything that went wrong talking to the server, in words fit for a notification."""


class Unreachable(ClientError):
    """No answer: connection refused, DNS, timeout, or the connection dropped mid-response."""


class BadResponse(ClientError):
    """An answer that is not what the API promises: not JSON, truncated, or the wrong shape."""


@dataclass
class ApiFailure(ClientError):
    status: int
    code: str
    message: str
    details: Any = None

    def __str__(self) -> str:
        return f"{self.message} ({self.status} {self.code})"


class NotServed(ApiFailure):
    """The server has no such endpoint (an older or different RustyDB): hide what needs it."""


class CredentialsRefused(ApiFailure):
    """401: the server refuses our key, token or password. Asking again with them changes nothing,
    so this is said in words and not retried (a login is tried once more by `_request`)."""


@dataclass(frozen=True)
class Credentials:
    token: str | None = None
    api_key: str | None = None

    def headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.api_key:
            return {"X-API-Key": self.api_key}
        return {}


class RdbClient:
    def __init__(self, base_url: str, credentials: Credentials | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials or Credentials()
        self._login: tuple[str, str] | None = None  # kept to log in again when a restarted server forgot the token
        # Loading the CA bundle for certificate checks is a good part of the console's start; a plain
        # http:// server is never asked over TLS (only relative paths, no redirects followed), so only
        # an https:// one pays for it.
        self._http = httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=timeout,
                                       verify=not self.base_url.startswith("http://"),
                                       headers={"Accept": "application/json", "User-Agent": "rdbtop"})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def login(self, username: str, password: str) -> str:
        body = await self._request("POST", "/api/v1/auth/login", json={"username": username, "password": password},
                                   authenticated=False)
        try:
            token = body["data"]["session"]["token"]
        except (KeyError, TypeError):
            raise BadResponse("the login answer has no token") from None
        self.credentials = Credentials(token=str(token))
        self._login = (username, password)
        return self.credentials.token or ""

    # -- reads -------------------------------------------------------------------------------

    async def get(self, path: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        attempt = 0
        while True:
            try:
                return await self._request("GET", path, params=query)
            except (Unreachable, BadResponse):
                if attempt >= READ_RETRIES:
                    raise
            except ApiFailure as exc:
                if exc.status not in (502, 503, 504) or attempt >= READ_RETRIES:
                    raise
            await asyncio.sleep(BACKOFF_SECONDS * 2**attempt)
            attempt += 1

    # -- actions (never retried: a retry could act twice) -------------------------------------

    async def post(self, path: str, body: Any = None) -> Any:
        return await self._request("POST", path, json=body)

    async def delete(self, path: str) -> Any:
        return await self._request("DELETE", path)

    # -- the one place that talks HTTP ----------------------------------------------------------

    async def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None,
                       authenticated: bool = True) -> Any:
        try:
            return await self._send(method, path, params=params, json=json, authenticated=authenticated)
        except ApiFailure as exc:
            if exc.status != 401 or not authenticated or self._login is None:
                raise
        await self.login(*self._login)
        return await self._send(method, path, params=params, json=json, authenticated=True)

    async def _send(self, method: str, path: str, *, params: dict[str, Any] | None, json: Any,
                    authenticated: bool) -> Any:
        headers = self.credentials.headers() if authenticated else {}
        try:
            response = await self._http.request(method, path, params=params, json=json, headers=headers)
        except httpx.TimeoutException as exc:
            raise Unreachable(f"{self.base_url} did not answer in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach {self.base_url}: {exc or type(exc).__name__}") from None
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise BadResponse(f"{method} {path}: response larger than {MAX_RESPONSE_BYTES} bytes")
        if response.status_code >= 400:
            raise _failure(response, path)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError):
            raise BadResponse(f"{method} {path}: the answer is not valid JSON (truncated?)") from None


def _failure(response: httpx.Response, path: str) -> ApiFailure:
    code, message, details = f"HTTP_{response.status_code}", response.reason_phrase or "error", None
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        code = str(body.get("code") or code)
        message = str(body.get("message") or message)
        details = body.get("details")
    elif response.text.strip():
        message = response.text.strip()[:200]
    cls = NotServed if response.status_code == 404 and code in ("NOT_FOUND", "HTTP_404") and _is_route_miss(message) \
        else CredentialsRefused if response.status_code == 401 else ApiFailure
    return cls(response.status_code, code, message, details)


def _is_route_miss(message: str) -> bool:
    # our server says "no route for ..."; others answer an unknown path with an empty or generic 404
    return message.startswith("no route") or message in ("Not Found", "error")
