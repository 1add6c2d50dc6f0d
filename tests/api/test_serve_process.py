"""The real thing: `rdbtop-engine serve` as a separate process on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import free_port, wait_until


def _start(data: Path, port: int, env_extra: dict[str, str], *extra: str) -> subprocess.Popen:
    env = {**os.environ, **env_extra}
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data", str(data), "--port", str(port),
                             *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api-docs/openapi.json", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def server(tmp_path: Path):
    port = free_port()
    proc = _start(tmp_path, port, {"RDBTOP_ADMIN_PASSWORD": "s3cret-pw"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(url) or proc.poll() is not None, timeout=20)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield proc, url, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_serve_login_watch_and_stop_cleanly_on_sigterm(server) -> None:
    proc, url, _ = server
    r = httpx.post(f"{url}/api/v1/auth/login", json={"username": "admin", "password": "s3cret-pw"})
    assert r.status_code == 200
    auth = {"Authorization": f"Bearer {r.json()['data']['session']['token']}"}
    r = httpx.post(f"{url}/api/v1/auth/login", json={"username": "admin", "password": "nope"})
    assert r.status_code == 401
    r = httpx.get(f"{url}/api/v1/sessions", headers=auth)
    assert r.status_code == 200 and r.json()["total_count"] == 0
    assert httpx.get(f"{url}/api/v1/sessions").status_code == 401
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    err = proc.stderr.read()
    assert "engine stopped" in err and "Traceback" not in err


def test_sigint_stops_cleanly_too(server) -> None:
    proc, _, _ = server
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 0


def test_generated_admin_password_is_printed_once_and_never_stored(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RDBTOP_ADMIN_PASSWORD"}
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data", str(tmp_path), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _up(url) or proc.poll() is not None, timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    line = next(l for l in err.splitlines() if "created user admin with password:" in l)
    password = line.rsplit(" ", 1)[1]
    assert len(password) >= 16
    assert password.encode() not in (tmp_path / "system.db").read_bytes()
    # a second start in the same directory keeps the user and prints no password
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--data", str(tmp_path), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _up(url) or proc.poll() is not None, timeout=20)
        r = httpx.post(f"{url}/api/v1/auth/login", json={"username": "admin", "password": password})
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert "created user admin" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_apikey_create_prints_a_key_the_server_accepts_with_its_role(server) -> None:
    proc, url, data = server
    out = {}
    for role in ("monitor", "operator"):
        done = subprocess.run([sys.executable, "-m", "engine.cli", "apikey", "create", "--role", role, "--data", str(data)],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        out[role] = done.stdout.strip()
    assert httpx.get(f"{url}/api/v1/sessions", headers={"X-API-Key": out["monitor"]}).status_code == 200
    r = httpx.delete(f"{url}/api/v1/sessions/1", headers={"X-API-Key": out["monitor"]})
    assert r.status_code == 403
    r = httpx.delete(f"{url}/api/v1/sessions/1", headers={"X-API-Key": out["operator"]})
    assert r.status_code == 404  # allowed, but there is no session 1
    assert httpx.get(f"{url}/api/v1/sessions", headers={"X-API-Key": "rdb_not-a-key"}).status_code == 401


def test_apikey_create_rejects_an_unknown_role(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "engine.cli", "apikey", "create", "--role", "root", "--data", str(tmp_path)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_non_loopback_host_is_allowed_but_warned(tmp_path: Path) -> None:
    port = free_port()
    proc = _start(tmp_path, port, {"RDBTOP_ADMIN_PASSWORD": "pw-for-test"}, "--host", "0.0.0.0")
    try:
        wait_until(lambda: _up(f"http://127.0.0.1:{port}") or proc.poll() is not None, timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert "reachable from other machines" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
