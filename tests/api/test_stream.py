"""The dashboard WebSocket: auth, parameters, frames from the engine's real state, a slow client."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from engine import Engine, Session
from engine.api import create_app
from engine.api.routes import stream

from .conftest import LiveServer, wait_until

URL = "/api/v1/ws/dashboard"


def _open(client: TestClient, url: str, headers: dict | None = None) -> WebSocketTestSession:
    return client.websocket_connect(url, headers=dict(headers or {}))  # a copy: the test client adds to it


def _refusal(client: TestClient, url: str, headers: dict | None = None) -> WebSocketDisconnect:
    with _open(client, url, headers) as ws, pytest.raises(WebSocketDisconnect) as refused:
        ws.receive_json()
    return refused.value


@contextmanager
def _blocked_writer(engine: Engine) -> Iterator[Session]:
    """A session holding a write lock in an open transaction (yielded), and one waiting behind it."""
    holder, waiter = engine.connect("holder", "stream"), engine.connect("waiter", "stream")
    holder.execute("BEGIN")
    holder.execute("UPDATE sales.orders SET amount = amount + 1 WHERE id = 1")
    worker = threading.Thread(target=waiter.execute, args=("UPDATE sales.orders SET amount = 0 WHERE id = 2",))
    worker.start()
    try:
        wait_until(lambda: waiter.state.value == "waiting")
        yield holder
    finally:
        holder.execute("ROLLBACK")
        worker.join()
        holder.close()
        waiter.close()


def test_credentials_are_required_by_header_or_token_parameter(client: TestClient, headers: dict,
                                                               engine: Engine) -> None:
    refused = _refusal(client, URL)
    assert refused.code == 1008 and refused.reason.startswith("Authentication required")
    refused = _refusal(client, URL, {"X-API-Key": "rdb_not-a-key"})
    assert (refused.code, refused.reason) == (1008, "Invalid API key")
    refused = _refusal(client, f"{URL}?token=not-a-token")
    assert (refused.code, refused.reason) == (1008, "Invalid or expired token")

    monitor_key = headers["monitor"]["X-API-Key"]
    bearer = headers["admin"]["Authorization"].removeprefix("Bearer ")
    for url, hdrs in ((URL, headers["monitor"]), (URL, headers["admin"]), (f"{URL}?token={monitor_key}", None),
                      (f"{URL}?token={bearer}", None)):
        with _open(client, url, hdrs) as ws:
            assert set(ws.receive_json()) >= {"timestamp", "metrics", "alerts"}


@pytest.mark.parametrize(("query", "reason"), [
    ("interval=0", "interval: Input should be greater than or equal to 1"),
    ("interval=3601", "interval: Input should be less than or equal to 3600"),
    ("interval=abc", "interval: Input should be a valid number, unable to parse string as a number"),
    ("interval=nan", "interval: Input should be a finite number"),
])
def test_a_bad_interval_is_refused_with_a_reason(client: TestClient, headers: dict, query: str, reason: str) -> None:
    refused = _refusal(client, f"{URL}?{query}", headers["monitor"])
    assert (refused.code, refused.reason) == (1008, reason)


def test_the_first_frame_is_the_engines_state_now(client: TestClient, headers: dict, engine: Engine) -> None:
    idle = engine.connect("idle", "stream")
    try:
        with _blocked_writer(engine) as holder:
            with _open(client, URL, headers["monitor"]) as ws:
                frame = ws.receive_json()
            assert frame["sessions_by_state"] == {"idle": 1, "active": 0, "idle in transaction": 1, "waiting": 1}
            assert frame["root_blockers"] == [{"session_id": holder.id, "transaction_id": holder.txn.id,
                                               "blocked_sessions": 1}]
            m = frame["metrics"]
            assert (m["active_connections"], m["waiting_sessions"]) == (3, 1)
            assert m["lock_waits_total"] == engine.locks.lock_waits_total >= 1
            assert m["deadlocks_total"] == 0
            assert m["memory_usage_percent"] == engine.host.latest.host_memory_percent
            assert m["cache_hit_ratio"] == engine.stats.cache_hit_ratio
            assert frame["alerts"] == [] and frame["interval_seconds"] == 5 and frame["frames_skipped"] == 0
            assert abs(frame["timestamp"] - engine.clock.time()) <= 1
    finally:
        idle.close()


def test_a_later_frame_shows_a_change(client: TestClient, headers: dict, engine: Engine) -> None:
    with _open(client, f"{URL}?interval=1", headers["monitor"]) as ws:
        first = ws.receive_json()
        assert first["sessions_by_state"]["idle in transaction"] == 0
        s = engine.connect("late", "stream")
        try:
            s.execute("BEGIN")
            s.execute("SELECT count(*) FROM inventory.items")
            second = ws.receive_json()
        finally:
            s.close()
    assert second["sessions_by_state"]["idle in transaction"] == 1
    assert second["metrics"]["active_connections"] == first["metrics"]["active_connections"] + 1
    assert second["timestamp"] >= first["timestamp"] + 1


def test_pings_are_answered(client: TestClient, headers: dict) -> None:
    with _open(client, URL, headers["monitor"]) as ws:
        ws.receive_json()
        for ping in ("ping", json.dumps({"type": "ping"})):
            ws.send_text(ping)
            pong = ws.receive_json()
            assert pong["type"] == "pong" and abs(pong["timestamp"] - time.time()) <= 1
        ws.send_text("something else")  # ignored
        ws.send_text("ping")
        assert ws.receive_json()["type"] == "pong"


def test_logging_out_ends_a_stream_opened_with_that_token(client: TestClient, headers: dict) -> None:
    with _open(client, f"{URL}?interval=1", headers["admin"]) as ws:
        ws.receive_json()
        assert client.post("/api/v1/auth/logout", headers=headers["admin"]).status_code == 200
        with pytest.raises(WebSocketDisconnect) as ended:
            ws.receive_json()
    assert (ended.value.code, ended.value.reason) == (1008, "token expired or revoked")


def test_shutting_the_engine_down_ends_the_stream(client: TestClient, headers: dict, engine: Engine) -> None:
    with _open(client, f"{URL}?interval=1", headers["monitor"]) as ws:
        ws.receive_json()
        engine.close()
        with pytest.raises(WebSocketDisconnect) as ended:
            ws.receive_json()
    assert (ended.value.code, ended.value.reason) == (1001, "engine shut down")


def test_a_client_that_stops_reading_gets_frames_skipped_not_queued(engine: Engine, headers: dict,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Drives the ASGI app directly, so that a send can stay blocked exactly as it does for a client
    whose socket buffers are full; the handler must build nothing while it is blocked."""
    builds: list[float] = []
    build = stream._DashboardStream._frame

    def counted(self: stream._DashboardStream) -> str:
        builds.append(time.monotonic())
        return build(self)

    monkeypatch.setattr(stream._DashboardStream, "_frame", counted)
    app = create_app(engine)

    async def scenario() -> tuple[list[dict], list[float], float, float]:
        inbox: asyncio.Queue[dict] = asyncio.Queue()
        frames: list[dict] = []
        reading = asyncio.Event()
        reading.set()
        held = asyncio.Event()

        async def receive() -> dict:
            return await inbox.get()

        async def send(message: dict) -> None:
            if message["type"] == "websocket.send":
                if not reading.is_set():
                    held.set()
                    await reading.wait()
                frames.append(json.loads(message["text"]))

        scope = {"type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "ws",
                 "path": URL, "raw_path": URL.encode(), "root_path": "", "query_string": b"interval=1",
                 "headers": [(b"x-api-key", headers["monitor"]["X-API-Key"].encode())],
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80), "subprotocols": []}
        await inbox.put({"type": "websocket.connect"})
        handler = asyncio.create_task(app(scope, receive, send))
        while not frames:
            await asyncio.sleep(0.01)
        reading.clear()
        await held.wait()  # the second frame is stuck in send
        held_at = time.monotonic()
        await asyncio.sleep(3.5)  # the ticks that fall due meanwhile are what is under test
        released_at = time.monotonic()
        reading.set()
        while len(frames) < 3:
            await asyncio.sleep(0.01)
        await inbox.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(handler, 5)  # the handler ends by itself once the client is gone
        return frames, builds, held_at, released_at

    frames, built, held_at, released_at = asyncio.run(scenario())
    assert not [t for t in built if held_at < t < released_at], "nothing is built while a send is blocked"
    assert len(built) == len(frames) == 3, "every frame built was sent; none waited in a queue"
    assert frames[1]["frames_skipped"] == 0
    assert frames[2]["frames_skipped"] >= 2
    assert frames[2]["timestamp"] >= frames[1]["timestamp"] + 3, "the frame after the stall is fresh"


def test_a_real_websocket_client_over_tcp(live: LiveServer, headers: dict, caplog: pytest.LogCaptureFixture) -> None:
    url = f"ws://127.0.0.1:{live.port}{URL}"
    with ws_connect(f"{url}?token={headers['monitor']['X-API-Key']}") as ws:
        assert "metrics" in json.loads(ws.recv(timeout=5))
        assert ws.ping().wait(5), "a protocol ping is answered with a pong"
    with ws_connect(url, additional_headers=headers["operator"]) as ws:
        assert "metrics" in json.loads(ws.recv(timeout=5))
    with ws_connect(url) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1008 and closed.value.rcvd.reason.startswith("Authentication required")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "every connection ended cleanly"


def test_firing_alerts_are_in_the_frame(client: TestClient, headers: dict, engine: Engine) -> None:
    engine.alerts.update_rule("idle_in_transaction", "tests", threshold=0.0, for_seconds=0.0)
    with _blocked_writer(engine) as holder:
        wait_until(lambda: engine.alerts.evaluate() or engine.alerts.active_count() > 0)
        with _open(client, URL, headers["monitor"]) as ws:
            frame = ws.receive_json()
    fired = [a for a in frame["alerts"] if a["state"] == "firing"]
    assert fired and all(a["severity"] and a["title"] and a["triggered_at"] for a in fired)
    assert any(f"session {holder.id}" in a["description"] for a in fired)
