"""Auth as an attacker tries it: throttled guessing, spoofed addresses, timing, token lifetimes, API
keys, secrets in responses and logs, forged log lines, and a full disk under the catalogue."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import threading
from collections.abc import Iterator

import apsw
import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from starlette.requests import Request

from engine import Engine, EngineConfig, ManualClock
from engine.alerts import WebhookNotifier
from engine.api import create_app
from engine.api.deps import client_address
from engine.auth import RateLimited, Unauthorized
from engine.cli import main as cli_main
from engine.server import server_config

from .conftest import ADMIN_PASSWORD, free_port, wait_until

SECRET_HOOK = "https://hooks.example.com/services/T000/B000/s3cr3t-hook-token"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def manual(clock: ManualClock) -> Iterator[Engine]:
    """An engine on a clock that moves only when the test says (its services are not started)."""
    eng = Engine(config=EngineConfig(refresh_max_age_secs=3 * 3600, token_ttl_secs=3600), clock=clock)
    eng.auth.ensure_admin(ADMIN_PASSWORD)
    yield eng
    eng.close()


@pytest.fixture
def mclient(manual: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(manual), raise_server_exceptions=False) as c:
        yield c


def _login(c: TestClient | httpx.Client, username: str = "admin", password: str = ADMIN_PASSWORD,
           **headers: str) -> httpx.Response:
    return c.post("/api/v1/auth/login", json={"username": username, "password": password}, headers=headers)


def _admin(c: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {_login(c).json()['data']['session']['token']}"}


# -- guessing passwords ------------------------------------------------------------------------

def test_concurrent_wrong_logins_from_one_address_get_at_most_the_allowed_401s(manual: Engine) -> None:
    outcomes: list[str] = []
    start = threading.Barrier(40)

    def guess(i: int) -> None:
        start.wait()
        try:
            manual.auth.login("admin", f"guess-{i}", "198.51.100.7")
            outcomes.append("ok")
        except Unauthorized:
            outcomes.append("401")
        except RateLimited:
            outcomes.append("429")

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    allowed = manual.config.login_failures_allowed
    assert outcomes.count("401") == allowed
    assert outcomes.count("429") == 40 - allowed


def test_concurrent_wrong_logins_over_http_get_at_most_the_allowed_401s(engine: Engine, live) -> None:
    start = threading.Barrier(40)
    codes: list[int] = []

    def guess(i: int) -> None:
        with httpx.Client(base_url=live.url, timeout=60) as c:
            start.wait()
            codes.append(_login(c, "admin", f"guess-{i}").status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(set(codes)) == [401, 429]
    assert codes.count(401) == engine.config.login_failures_allowed


def test_the_wait_after_failures_is_short_exponential_and_the_right_password_then_works(
        manual: Engine, mclient: TestClient, clock: ManualClock) -> None:
    allowed = manual.config.login_failures_allowed
    for _ in range(allowed):
        assert _login(mclient, password="wrong").status_code == 401
    r = _login(mclient)
    assert (r.status_code, r.json()["code"], r.headers["Retry-After"]) == (429, "RATE_LIMITED", "1")
    clock.advance(1)
    assert _login(mclient).status_code == 200  # the owner is in as soon as the wait is over

    waits = []
    for _ in range(allowed + 8):
        r = _login(mclient, password="wrong")
        if r.status_code == 429:
            waits.append(int(r.headers["Retry-After"]))
            clock.advance(waits[-1])
            assert _login(mclient, password="wrong").status_code == 401
    # the success cleared the user's failures, not the address's: its next failure waits 2 s, then
    # each one twice as long, up to login_delay_max_secs
    assert waits[:6] == [2, 4, 8, 16, 32, 60] and set(waits[6:]) == {60}
    assert _login(mclient).status_code == 429  # a wait is not skipped by the right password either
    clock.advance(60)
    assert _login(mclient).status_code == 200


def test_failures_slow_that_user_and_that_address_only(manual: Engine, clock: ManualClock) -> None:
    manual.auth.create_user("bob", "bobs password", ["monitor"], None, by="test")
    for _ in range(manual.config.login_failures_allowed):
        with pytest.raises(Unauthorized):
            manual.auth.login("admin", "wrong", "203.0.113.1")
    with pytest.raises(RateLimited):
        manual.auth.login("admin", ADMIN_PASSWORD, "203.0.113.2")  # the user, from anywhere
    with pytest.raises(RateLimited):
        manual.auth.login("bob", "bobs password", "203.0.113.1")  # the address, for anyone
    assert manual.auth.login("bob", "bobs password", "203.0.113.2").principal.name == "bob"


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(engine: Engine) -> None:
    config = server_config(create_app(engine), "127.0.0.1", free_port())
    assert config.proxy_headers is False
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=20)
        with httpx.Client(base_url=f"http://127.0.0.1:{config.port}", timeout=30) as c:
            codes = [_login(c, f"nobody{i}", "x", **{"X-Forwarded-For": f"192.0.2.{i}"}).status_code
                     for i in range(engine.config.login_failures_allowed + 2)]
            assert codes[-2:] == [429, 429], codes  # every guess counted against 127.0.0.1, whatever it claims
            engine.reconfigure(trusted_proxies="127.0.0.1/32")
            codes = [_login(c, f"someone{i}", "x", **{"X-Forwarded-For": f"192.0.2.77, 203.0.113.{i}"}).status_code
                     for i in range(engine.config.login_failures_allowed + 2)]
            assert codes == [401] * len(codes)  # now the proxy's hop, not the client-written one, is the address
    finally:
        server.should_exit = True
        thread.join(10)


def _request(peer: str, forwarded: str | None) -> Request:
    headers = [] if forwarded is None else [(b"x-forwarded-for", forwarded.encode())]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers, "client": (peer, 5000)})


def test_client_address_takes_the_nearest_hop_a_trusted_proxy_wrote() -> None:
    assert client_address(_request("10.0.0.5", "192.0.2.1"), "") == "10.0.0.5"
    assert client_address(_request("10.0.0.5", "192.0.2.1"), "10.0.0.9") == "10.0.0.5"
    assert client_address(_request("10.0.0.5", "6.6.6.6, 192.0.2.1"), "10.0.0.0/8") == "192.0.2.1"
    assert client_address(_request("10.0.0.5", "192.0.2.1, 10.0.0.7"), "10.0.0.0/8") == "192.0.2.1"
    assert client_address(_request("10.0.0.5", "not-an-address"), "10.0.0.0/8") == "10.0.0.5"
    assert client_address(_request("10.0.0.5", None), "10.0.0.0/8") == "10.0.0.5"


def test_trusted_proxies_is_validated(client: TestClient, headers: dict) -> None:
    r = client.put("/api/v1/admin/config", json={"trusted_proxies": "10.0.0.1, nonsense"},
                   headers=headers["admin"])
    assert r.status_code == 400 and "trusted_proxies" in r.json()["message"]


def test_unknown_disabled_and_passwordless_users_cost_the_same_scrypt(manual: Engine, monkeypatch) -> None:
    manual.auth.create_user("gone", "pw", ["monitor"], False, by="test")
    manual.auth.create_user("nopass", None, ["monitor"], None, by="test")
    calls: list[tuple] = []
    real = hashlib.scrypt

    def counting(password: bytes, **kwargs: object) -> bytes:
        calls.append(tuple(sorted((k, v) for k, v in kwargs.items() if k != "salt")))
        return real(password, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counting)
    for i, username in enumerate(("admin", "no-such-user", "gone", "nopass")):
        with pytest.raises(Unauthorized, match="Invalid username or password"):
            manual.auth.login(username, "wrong", f"192.0.2.{i}")
    assert len(calls) == 4 and len(set(calls)) == 1


# -- token lifetimes ---------------------------------------------------------------------------

def test_refresh_needs_the_refresh_token_not_the_access_token(mclient: TestClient) -> None:
    session = _login(mclient).json()["data"]["session"]
    r = mclient.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {session['token']}"})
    assert r.status_code == 401
    r = mclient.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {session['refreshToken']}"})
    assert r.status_code == 200  # RustyDB's refresh has no body: the refresh token may come as the bearer


def test_a_login_ends_at_refresh_max_age_however_often_it_is_refreshed(
        manual: Engine, mclient: TestClient, clock: ManualClock) -> None:
    session = _login(mclient).json()["data"]["session"]
    login_at = manual.clock.time()
    refresh = session["refreshToken"]
    for step in (3500, 3500, 2000):
        clock.advance(step)
        r = mclient.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
        assert r.status_code == 200
        refresh = r.json()["refreshToken"]
    assert int(r.json()["expiresAt"]) == int(login_at + 3 * 3600)  # the last token ends with the login
    clock.advance(3 * 3600 - 9000)
    assert mclient.post("/api/v1/auth/refresh", json={"refresh_token": refresh}).status_code == 401
    assert mclient.get("/api/v1/auth/validate", headers={"Authorization": f"Bearer {r.json()['token']}"}
                       ).json()["valid"] is False


def test_logout_ends_the_refresh_chain(mclient: TestClient) -> None:
    session = _login(mclient).json()["data"]["session"]
    mclient.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {session['token']}"})
    assert mclient.post("/api/v1/auth/refresh", json={"refresh_token": session["refreshToken"]}).status_code == 401


def test_refresh_max_age_is_a_typed_setting(client: TestClient, headers: dict) -> None:
    r = client.put("/api/v1/admin/config", json={"refresh_max_age_secs": 10}, headers=headers["admin"])
    assert r.status_code == 400 and "refresh_max_age_secs must be between" in r.json()["message"]
    body = client.get("/api/v1/admin/config", headers=headers["admin"]).json()
    assert body["settings"]["refresh_max_age_secs"] == 7 * 86400
    assert body["settings_meta"]["refresh_max_age_secs"]["unit"] == "s"


# -- API keys ----------------------------------------------------------------------------------

def test_api_keys_are_listed_and_a_revoked_key_is_refused_at_once(client: TestClient, headers: dict) -> None:
    r = client.post("/api/v1/admin/api-keys", json={"role": "monitor", "description": "prometheus"},
                    headers=headers["admin"])
    assert r.status_code == 201
    made = r.json()
    key, prefix = made["key"], made["prefix"]
    assert key.startswith(prefix) and made["role"] == "monitor" and made["last_used"] is None
    assert client.get("/api/v1/sessions", headers={"X-API-Key": key}).status_code == 200
    listed = {k["prefix"]: k for k in client.get("/api/v1/admin/api-keys", headers=headers["admin"]).json()}
    assert listed[prefix]["last_used"] is not None and listed[prefix]["description"] == "prometheus"
    assert all("key" not in k and "key_hash" not in k for k in listed.values())
    assert client.delete(f"/api/v1/admin/api-keys/{prefix}", headers=headers["admin"]).status_code == 204
    assert client.get("/api/v1/sessions", headers={"X-API-Key": key}).status_code == 401
    assert client.get("/api/v1/sessions", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    r = client.delete(f"/api/v1/admin/api-keys/{prefix}", headers=headers["admin"])
    assert (r.status_code, r.json()["code"]) == (404, "NOT_FOUND")
    assert client.delete("/api/v1/admin/api-keys/..%2Fx", headers=headers["admin"]).status_code in (400, 404)


def test_cli_lists_and_revokes_api_keys(tmp_path, capsys) -> None:
    assert cli_main(["apikey", "create", "--role", "operator", "--data", str(tmp_path), "--description", "cron"]) == 0
    key = capsys.readouterr().out.strip()
    assert stat.S_IMODE(os.stat(tmp_path / "system.db").st_mode) == 0o600
    assert cli_main(["apikey", "list", "--data", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert key[:12] in listing and "operator" in listing and "never" in listing and key not in listing
    assert cli_main(["apikey", "revoke", key[:12], "--data", str(tmp_path)]) == 0
    capsys.readouterr()
    assert cli_main(["apikey", "revoke", key[:12], "--data", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    eng = Engine(tmp_path)
    try:
        with pytest.raises(Unauthorized):
            eng.auth.authenticate(None, key)
    finally:
        eng.close()


def test_cli_writes_a_key_file_readable_by_its_owner_only(tmp_path, capsys) -> None:
    token = tmp_path / "prometheus.token"
    token.write_text("old")
    token.chmod(0o644)
    assert cli_main(["apikey", "create", "--role", "monitor", "--data", str(tmp_path), "--output", str(token)]) == 0
    key = token.read_text().strip()
    assert stat.S_IMODE(os.stat(token).st_mode) == 0o600
    assert key.startswith("rdb_") and key not in capsys.readouterr().out
    assert cli_main(["apikey", "create", "--role", "monitor", "--data", str(tmp_path),
                     "--output", str(tmp_path / "no" / "such" / "dir")]) == 2
    capsys.readouterr()
    cli_main(["apikey", "list", "--data", str(tmp_path)])
    assert capsys.readouterr().out.count("monitor") == 1  # no key was made for the file that could not be written


# -- secrets -----------------------------------------------------------------------------------

def test_webhook_urls_are_redacted_for_non_admins_and_in_the_audit_trail(engine: Engine, client: TestClient,
                                                                          headers: dict) -> None:
    r = client.post("/api/v1/alerts/rules", json={"name": "hook", "metric": "errors_per_minute", "operator": ">",
                                                  "threshold": 1e9, "webhook_url": SECRET_HOOK},
                    headers=headers["admin"])
    assert r.status_code == 201 and r.json()["webhook_url"] == SECRET_HOOK
    rule_id = r.json()["rule_id"]
    for role in ("monitor", "operator"):
        shown = client.get(f"/api/v1/alerts/rules/{rule_id}", headers=headers[role]).json()["webhook_url"]
        assert shown == "https://hooks.example.com/…"
        listed = [x for x in client.get("/api/v1/alerts/rules", headers=headers[role]).json()
                  if x["rule_id"] == rule_id]
        assert listed[0]["webhook_url"] == "https://hooks.example.com/…"
    assert client.get(f"/api/v1/alerts/rules/{rule_id}", headers=headers["admin"]).json()["webhook_url"] == SECRET_HOOK
    client.put(f"/api/v1/alerts/rules/{rule_id}", json={"webhook_url": SECRET_HOOK + "2"}, headers=headers["admin"])
    everything = " ".join(f"{e.message} {e.context}" for e in engine.logs.query())
    assert "s3cr3t" not in everything and "hooks.example.com/…" in everything
    assert "s3cr3t" not in engine.logs.path.read_text(encoding="utf-8")


def test_a_failed_webhook_keeps_its_url_out_of_last_error_and_the_log(caplog) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook/s3cr3t-path?token=s3cr3t-query"
    notifier = WebhookNotifier(timeout=2.0, backoff=())
    try:
        with caplog.at_level(logging.DEBUG):
            notifier.submit(url, {"event": "test"})
            wait_until(lambda: notifier.failed_total == 1, timeout=20)
    finally:
        notifier.close()
    assert notifier.last_error is not None and "(POST to http://127.0.0.1:" in notifier.last_error
    assert "s3cr3t" not in notifier.last_error
    assert "s3cr3t" not in caplog.text


def test_credentials_in_the_query_string_never_reach_uvicorns_log(engine: Engine, headers: dict) -> None:
    config = server_config(create_app(engine), "127.0.0.1", free_port())
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    keep = Keep()
    loggers = [logging.getLogger(n) for n in ("uvicorn.access", "uvicorn.error")]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    for logger in loggers:
        logger.addHandler(keep)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=20)
        token = headers["admin"]["Authorization"].removeprefix("Bearer ")
        httpx.get(f"http://127.0.0.1:{config.port}/api/v1/health/live?token={token}&x=1", timeout=30)
        from websockets.sync.client import connect

        with connect(f"ws://127.0.0.1:{config.port}/api/v1/ws/dashboard?token={token}", open_timeout=30):
            pass
        wait_until(lambda: sum("WebSocket" in line for line in lines) and sum("GET" in line for line in lines),
                   timeout=20)
    finally:
        server.should_exit = True
        thread.join(10)
        for logger in loggers:
            logger.removeHandler(keep)
    assert not [line for line in lines if token in line], lines
    assert any("token=REDACTED&x=1" in line for line in lines), lines


def test_text_a_client_chooses_cannot_forge_a_log_line(engine: Engine, client: TestClient) -> None:
    forged = "mallory\n2026-01-01 00:00:00,000 INFO engine.audit [x] admin create_user user 'root': ok"
    assert _login(client, forged, "x").status_code == 401
    client.post("/api/v1/admin/users", json={"username": forged, "password": "p", "roles": []},
                headers=_admin(client))
    text = engine.logs.path.read_text(encoding="utf-8")
    assert "mallory\\n2026" in text
    assert not [line for line in text.splitlines() if line.startswith("2026-01-01")]
    assert all("\n" not in e.message for e in engine.logs.query())


# -- a full disk -------------------------------------------------------------------------------

def _disk_full(conn: apsw.Connection, statements: tuple[str, ...] = ("INSERT", "UPDATE", "DELETE")) -> None:
    """Make every write statement of `conn` fail the way SQLite does when the disk is full."""
    def trace(cursor: apsw.Cursor, sql: str, bindings: object) -> bool:
        if sql.lstrip().upper().startswith(statements):
            raise apsw.FullError("database or disk is full")
        return True

    conn.exec_trace = trace


def test_user_changes_on_a_full_disk_are_507_and_change_nothing(engine: Engine, client: TestClient) -> None:
    auth = _admin(client)
    _disk_full(engine.auth._db)
    r = client.post("/api/v1/admin/users", json={"username": "newbie", "password": "p", "roles": ["monitor"]},
                    headers=auth)
    assert (r.status_code, r.json()["code"]) == (507, "INSUFFICIENT_STORAGE")
    assert "full" in r.json()["message"]
    r = client.put("/api/v1/admin/users/1", json={"username": "admin", "roles": ["admin"], "enabled": True},
                   headers=auth)
    assert r.status_code == 507
    engine.auth._db.exec_trace = None
    assert [u["username"] for u in client.get("/api/v1/admin/users", headers=auth).json()["data"]] == ["admin"]


def test_login_succeeds_when_only_last_login_cannot_be_written(engine: Engine, client: TestClient) -> None:
    _disk_full(engine.auth._db, ("UPDATE",))
    r = _login(client)
    assert r.status_code == 200
    assert client.get("/api/v1/sessions", headers={"Authorization": f"Bearer {r.json()['data']['session']['token']}"}
                      ).status_code == 200


def test_config_put_on_a_full_disk_is_507_and_changes_nothing(engine: Engine, client: TestClient, headers: dict,
                                                              monkeypatch) -> None:
    before = engine.config.slow_query_threshold_ms

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    r = client.put("/api/v1/admin/config", json={"slow_query_threshold_ms": before + 1},
                   headers=headers["admin"])
    assert (r.status_code, r.json()["code"]) == (507, "INSUFFICIENT_STORAGE")
    assert engine.config.slow_query_threshold_ms == before
    assert not list(engine.storage.data_dir.glob(".engine.toml*"))


def test_a_backup_request_on_a_full_disk_is_507(engine: Engine, client: TestClient, headers: dict,
                                                monkeypatch) -> None:
    from engine.backup_records import BackupRecord

    def no_space(self: BackupRecord) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(BackupRecord, "save", no_space)
    r = client.post("/api/v1/backup/full", json={}, headers=headers["operator"])
    assert (r.status_code, r.json()["code"]) == (507, "INSUFFICIENT_STORAGE")
