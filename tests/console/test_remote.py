"""Against a real `rdbtop-engine serve` process: live data, then the server stops and comes back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rdbtop.app import RdbTop
from rdbtop.client import Credentials
from rdbtop.config import Settings
from rdbtop.sources import RemoteSource
from tests.api.conftest import free_port, wait_until

from .conftest import until

PASSWORD = "console-test-pw"


class ServeProcess:
    """`rdbtop-engine serve --demo` on a fixed port and data directory, stoppable and restartable."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "RDBTOP_ADMIN_PASSWORD": PASSWORD}
        self.proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data", str(self.data),
                                      "--port", str(self.port), "--demo", "--sessions", "6"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.up() or self.proc.poll() is not None, timeout=30)
        assert self.proc.poll() is None, "serve exited"

    def up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/v1/health/liveness", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def api_key(self, role: str) -> str:
        out = subprocess.run([sys.executable, "-m", "engine.cli", "apikey", "create", "--role", role, "--data",
                              str(self.data)], capture_output=True, text=True, check=True)
        return out.stdout.strip()


@pytest.fixture
def serve(tmp_path: Path):
    server = ServeProcess(tmp_path / "data")
    server.data.mkdir()
    try:
        yield server
    finally:
        server.stop()


async def test_disconnection_banner_and_recovery_when_the_server_restarts(serve: ServeProcess) -> None:
    key = serve.api_key("operator")
    serve.start()
    app = RdbTop(Settings(url=serve.url, interval=0.5), RemoteSource(serve.url, Credentials(api_key=key)))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")  # the Sessions pane: its polls read the sessions
        await until(pilot, lambda: app.shown is not None and app.shown.pane == "sessions"
                    and len(app.shown.sessions) >= 6, timeout=20)
        seen = app.shown
        serve.stop()
        await until(pilot, lambda: app.down_since is not None, timeout=20)
        await pilot.pause()
        banner = str(app.banner.render())
        assert app.banner.has_class("shown") and "unreachable since" in banner and "old" in str(app.status.render())
        assert app.tabs.has_class("stale") and app.shown is seen  # the last data stays, greyed
        serve.start()
        await until(pilot, lambda: app.down_since is None, timeout=40)
        assert not app.banner.has_class("shown") and not app.tabs.has_class("stale")
        assert app.shown is not seen and app.shown.sessions


async def test_login_by_user_and_password_and_again_after_a_restart(serve: ServeProcess) -> None:
    serve.start()
    source = RemoteSource(serve.url, Credentials(), user="admin", password=PASSWORD)
    client = await source.open()
    first = client.credentials.token
    assert first and (await client.get("/api/v1/server/info"))["server_name"]
    serve.stop()
    serve.start()  # tokens live in the server's memory: this one is gone
    assert (await client.get("/api/v1/server/info"))["server_name"]
    assert client.credentials.token != first
    await source.close()
    source.shutdown()


def test_once_json_from_a_served_engine_exit_3_when_refused_and_2_when_unreachable(serve: ServeProcess) -> None:
    key = serve.api_key("monitor")
    serve.start()
    env = {**os.environ, "RDBTOP_API_KEY": key, "RDBTOP_CONFIG": str(serve.data / "none.toml")}
    out = subprocess.run([sys.executable, "-m", "rdbtop", "--url", serve.url, "--once", "--json"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"sessions", "active_queries", "blocking_tree", "alerts", "backups"}
    assert data["server"]["server_name"] == "rdbtop-engine" and len(data["sessions"]) >= 6
    for mode in (["--json"], []):  # a wrong key: said, exit 3, and never a snapshot that looks healthy
        out = subprocess.run([sys.executable, "-m", "rdbtop", "--url", serve.url, "--once", *mode],
                             env={**env, "RDBTOP_API_KEY": "wrong-key"}, capture_output=True, text=True, timeout=60)
        assert out.returncode == 3 and "credentials refused" in out.stderr and out.stdout == "", out
    serve.stop()
    out = subprocess.run([sys.executable, "-m", "rdbtop", "--url", serve.url, "--once", "--json"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "cannot reach" in out.stderr and out.stdout == ""
