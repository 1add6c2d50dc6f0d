"""RustyDB's ApiError body for every error we produce, and the request id that ties it to the log."""

from __future__ import annotations

import logging
import re
import time
import uuid
from urllib.parse import parse_qsl
from typing import Any

import apsw
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth import Forbidden, RateLimited, Unauthorized
from ..errors import (Conflict, DeadlockDetected, EngineError, Gone, InvalidInput, LockTimeout, NotFound,
                      QueryCanceled, QueryTimeout, SerializationFailure, SessionBusy, SessionTerminated, SqlError,
                      NO_SPACE, StorageFailure, StorageFull, TooManyConnections)

log = logging.getLogger("engine.api")

MAX_BODY_BYTES = 1024 * 1024

STATUS_OF: dict[type[EngineError], int] = {
    NotFound: 404, InvalidInput: 400, SqlError: 400, Unauthorized: 401, Forbidden: 403, RateLimited: 429,
    Conflict: 409, SessionBusy: 409, QueryCanceled: 409, LockTimeout: 409, DeadlockDetected: 409,
    SessionTerminated: 409, SerializationFailure: 409, QueryTimeout: 409, TooManyConnections: 503, Gone: 410,
    StorageFull: 507, StorageFailure: 503,
}
_HTTP_CODES = {400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
               405: "METHOD_NOT_ALLOWED", 406: "NOT_ACCEPTABLE", 409: "CONFLICT", 410: "GONE",
               413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 429: "RATE_LIMITED"}


class ApiError(BaseModel):
    code: str
    message: str
    details: Any = None
    timestamp: int
    request_id: str | None = None


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_response(request: Request, status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    rid = request_id_of(request)
    body = ApiError(code=code, message=message, details=details, timestamp=int(time.time()), request_id=rid)
    out_headers = dict(headers or {})
    if rid:
        out_headers["X-Request-ID"] = rid
    return JSONResponse(body.model_dump(), status_code=status, headers=out_headers)


def _status(exc: EngineError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


def _field_of(error: dict[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
    return ".".join(loc) or str(error.get("loc", ("body",))[0])


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EngineError)
    async def engine_error(request: Request, exc: EngineError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        if isinstance(exc, RateLimited) and "retry_after" in exc.details:
            headers = {"Retry-After": str(exc.details["retry_after"])}
        return error_response(request, _status(exc), exc.code, exc.message, exc.details or None, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            message = f"malformed JSON body: {first.get('ctx', {}).get('error', 'cannot parse')}"
        else:
            message = f"{_field_of(first)}: {first.get('msg', 'invalid value')}"
        details = [{"field": _field_of(e), "message": e.get("msg"), "type": e.get("type")} for e in errors]
        return error_response(request, 400, "VALIDATION_ERROR", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        message = exc.detail if isinstance(exc.detail, str) else code
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route for {request.method} {request.url.path}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
            documented = allowed_methods(request)
            if documented is not None:
                headers["Allow"] = ", ".join(documented)
        return error_response(request, exc.status_code, code, message, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error in %s %s (request %s)", request.method, request.url.path,
                  request_id_of(request), exc_info=exc)
        return error_response(request, 500, "INTERNAL_ERROR",
                              "internal error; the server log has the details under this request_id")

    async def storage(request: Request, exc: Exception) -> JSONResponse:
        """A full disk that reached a route without a service naming it: still the machine's fault, not a 500."""
        found = storage_error(exc)
        if found is None:
            return await unexpected(request, exc)
        log.warning("%s %s (request %s): %s", request.method, request.url.path, request_id_of(request), found.message)
        return error_response(request, _status(found), found.code, found.message)

    for kind in (apsw.FullError, apsw.IOError, OSError):
        app.add_exception_handler(kind, storage)


def storage_error(exc: BaseException) -> EngineError | None:
    """The StorageFull or StorageFailure a raw SQLite or OS error stands for, or None."""
    if isinstance(exc, apsw.FullError) or (isinstance(exc, OSError) and exc.errno in NO_SPACE):
        return StorageFull(f"the disk is full: {exc}")
    if isinstance(exc, apsw.IOError):
        return StorageFailure(f"storage I/O error: {exc}")
    return None


def allowed_methods(request: Request) -> list[str] | None:
    """The methods the OpenAPI document gives the path's most specific template (literal segments
    beat parameters: /backup/list before /backup/{backup_id}); None for a path it does not describe.

    Starlette's own Allow names the methods of one route only, and FastAPI makes a route per method."""
    table: list[tuple[int, re.Pattern[str], list[str]]] | None = getattr(request.app.state, "allow_table", None)
    if table is None:
        table = []
        for template, operations in request.app.openapi()["paths"].items():
            pattern = re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")
            methods = {m.upper() for m in operations} & _HTTP_METHODS
            if "GET" in methods:
                methods.add("HEAD")  # Starlette answers HEAD wherever it answers GET
            table.append((template.count("{"), pattern, sorted(methods)))
        table.sort(key=lambda row: row[0])
        request.app.state.allow_table = table
    path = request.url.path
    return next((methods for _, pattern, methods in table if pattern.match(path)), None)


_HTTP_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})


class RequestContext:
    """Pure ASGI middleware: gives every request an id (echoed as X-Request-ID) and caps body size."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        if scope["type"] == "http":
            declared = dict(scope.get("headers", ())).get(b"content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
                await self._too_large(scope, receive, send)
                return
            repeated = _repeated_query_key(scope.get("query_string", b""))
            if repeated is not None:
                # every query parameter we take is a single value; a repeat would silently lose all but one
                response = error_response(Request(scope, receive), 400, "VALIDATION_ERROR",
                                          f"{repeated}: query parameter given more than once", {"field": repeated})
                await response(scope, receive, send)
                return
        seen = 0
        limit = self.max_body

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = error_response(request, 413, "PAYLOAD_TOO_LARGE",
                                  f"request body is larger than {self.max_body} bytes")
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _repeated_query_key(query: bytes) -> str | None:
    seen: set[str] = set()
    for key, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key in seen:
            return key
        seen.add(key)
    return None
