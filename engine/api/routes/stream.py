"""The live dashboard stream: WS /api/v1/ws/dashboard (RustyDB's frame, with real figures).

Auth: the `Authorization: Bearer` or `X-API-Key` header, or, when neither is sent, a `token` query
parameter holding either a login token or an API key (for clients that cannot set headers; the
header is better, as URLs end up in access logs). Any role may watch. The server accepts the upgrade first and then closes
with 1008 (policy violation) and a reason when the credentials or the parameters are bad, so that
every client, browsers included, can read why. A login token is checked again before each frame:
logging out or the token expiring ends the stream with 1008. Shutting the engine down ends it
with 1001.

Frames: one immediately, then one every `interval` seconds (default 5, 1 to 3600). A frame is built
once per tick from the engine's figures and sent; while a send is still blocked by a slow client,
the ticks that fall due are skipped rather than queued, so at most one frame per connection is ever
held, and the next frame counts them in `frames_skipped`. A text message `ping` (or JSON
`{"type": "ping"}`) is answered with `{"type": "pong", "timestamp": ...}`; WebSocket protocol
pings are answered by the server itself.
"""

from __future__ import annotations

import json

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, ValidationError

from ...alerts import Alert, AlertState
from ...auth import Unauthorized
from ...engine import Engine
from ...locks import BlockingNode
from ...metrics import EngineMetrics

router = APIRouter(prefix="/api/v1", tags=["streams"])

POLICY_VIOLATION = 1008
GOING_AWAY = 1001
MAX_REASON_BYTES = 123  # RFC 6455: a close frame's reason fits in 123 bytes


class StreamParams(BaseModel):
    interval: float = Field(5.0, ge=1, le=3600, allow_inf_nan=False, description="seconds between frames")


class DashboardMetrics(BaseModel):
    cpu_usage_percent: float = Field(description="host CPU in use")
    memory_usage_percent: float = Field(description="host memory in use")
    active_connections: int = Field(description="open sessions, in any state")
    queries_per_second: float
    # additions
    transactions_per_second: float
    cache_hit_ratio: float | None
    waiting_sessions: int
    lock_waits_total: int
    deadlocks_total: int


class RootBlocker(BaseModel):
    session_id: int
    transaction_id: int | None
    blocked_sessions: int = Field(description="sessions waiting behind this one, directly or in a chain")


class DashboardFrame(BaseModel):
    timestamp: int
    metrics: DashboardMetrics
    alerts: list[dict] = Field(description="firing alerts: RustyDB's Alert fields plus state, value, threshold, "
                                           "occurrence_count")
    # additions
    sessions_by_state: dict[str, int]
    root_blockers: list[RootBlocker]
    interval_seconds: float
    frames_skipped: int = Field(description="ticks skipped on this connection because a send was still blocked")


class Pong(BaseModel):
    type: str = "pong"
    timestamp: int


class _Refused(Exception):
    """Closes the connection with 1008 and this reason."""


def _blocked_count(node: BlockingNode) -> int:
    return sum(1 + _blocked_count(child) for child in node.blocked)


def _is_ping(text: str | None) -> bool:
    if text is None:
        return False
    if text.strip().lower() == "ping":
        return True
    try:
        message = json.loads(text)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("type") == "ping"


def _credentials(engine: Engine, websocket: WebSocket) -> str | None:
    """Authenticate the caller; return the login token when one was used (it may later expire)."""
    header = websocket.headers.get("authorization", "")
    bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
    api_key = websocket.headers.get("x-api-key")
    if not (bearer or api_key):
        bearer = websocket.query_params.get("token")  # the auth service tells a token from an API key
    try:
        principal = engine.auth.authenticate(bearer, api_key)
    except Unauthorized as exc:
        raise _Refused(exc.message) from None
    return bearer if principal.via == "token" else None


def _params(websocket: WebSocket) -> StreamParams:
    try:
        return StreamParams.model_validate(dict(websocket.query_params))
    except ValidationError as exc:
        error = exc.errors()[0]
        raise _Refused(f"{'.'.join(map(str, error['loc']))}: {error['msg']}") from None


class _DashboardStream:
    def __init__(self, websocket: WebSocket, engine: Engine, interval: float, bearer: str | None) -> None:
        self._ws = websocket
        self._engine = engine
        self._interval = interval
        self._bearer = bearer
        self._send_lock = anyio.Lock()
        self.frames_skipped = 0

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            async def pump_then_stop() -> None:
                await self._pump()
                tasks.cancel_scope.cancel()

            tasks.start_soon(pump_then_stop)
            await self._listen()
            tasks.cancel_scope.cancel()

    async def _pump(self) -> None:
        due = anyio.current_time()
        try:
            while True:
                if self._engine.closed:
                    await self._ws.close(GOING_AWAY, "engine shut down")
                    return
                if self._bearer is not None and not self._engine.auth.token_valid(self._bearer):
                    await self._ws.close(POLICY_VIOLATION, "token expired or revoked")
                    return
                # built off the event loop: reading the engine takes its locks, which must not stall other clients
                frame = await anyio.to_thread.run_sync(self._frame)
                await self._send(frame)
                due += self._interval
                now = anyio.current_time()
                if now > due:
                    missed = int((now - due) // self._interval) + 1
                    self.frames_skipped += missed
                    due += missed * self._interval
                await anyio.sleep_until(due)
        except WebSocketDisconnect:
            return  # the client went away mid-send; the listener sees the disconnect too

    async def _listen(self) -> None:
        try:
            while True:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if _is_ping(message.get("text")):
                    await self._send(Pong(timestamp=int(self._engine.clock.time())).model_dump_json())
        except WebSocketDisconnect:
            return

    async def _send(self, text: str) -> None:
        async with self._send_lock:
            await self._ws.send_text(text)

    def _frame(self) -> str:
        engine = self._engine
        f = EngineMetrics(engine).figures()
        blockers = engine.locks.blocking_tree()
        return DashboardFrame(
            timestamp=int(f.taken_at),
            metrics=DashboardMetrics(
                cpu_usage_percent=f.host.host_cpu_percent, memory_usage_percent=f.host.host_memory_percent,
                active_connections=f.sessions.total, queries_per_second=f.statements_per_second,
                transactions_per_second=f.transactions_per_second, cache_hit_ratio=f.cache_hit_ratio,
                waiting_sessions=f.sessions.by_state["waiting"], lock_waits_total=f.lock_waits_total,
                deadlocks_total=f.deadlocks_total),
            alerts=[_alert(a) for a in engine.alerts.alerts(state=AlertState.FIRING)],
            sessions_by_state=f.sessions.by_state,
            root_blockers=[RootBlocker(session_id=b.session_id, transaction_id=b.transaction_id,
                                       blocked_sessions=_blocked_count(b)) for b in blockers],
            interval_seconds=self._interval, frames_skipped=self.frames_skipped,
        ).model_dump_json()


@router.websocket("/ws/dashboard")
async def dashboard(websocket: WebSocket) -> None:
    engine: Engine = websocket.app.state.engine
    await websocket.accept()
    try:
        bearer = _credentials(engine, websocket)
        params = _params(websocket)
    except _Refused as refused:
        await websocket.close(POLICY_VIOLATION, str(refused).encode()[:MAX_REASON_BYTES].decode(errors="ignore"))
        return
    await _DashboardStream(websocket, engine, params.interval, bearer).run()


def _alert(a: Alert) -> dict:
    return {"alert_id": a.alert_id, "severity": a.severity.value, "title": a.title, "description": a.description,
            "triggered_at": int(a.triggered_at), "acknowledged": a.acknowledged, "state": a.state.value,
            "value": a.value, "threshold": a.threshold, "occurrence_count": a.occurrence_count}
