"""Users and roles: RustyDB's CRUD and messages on the real catalogue; tokens revoked at once; audited."""

from __future__ import annotations

import logging

import apsw
import pytest
from fastapi.testclient import TestClient

from engine import Engine

from .conftest import ADMIN_PASSWORD

USERS = "/api/v1/admin/users"
ROLES = "/api/v1/admin/roles"


def create_user(client: TestClient, headers: dict, username: str, roles: list[str], password: str | None = "pw-1234",
                **extra: object) -> dict:
    r = client.post(USERS, json={"username": username, "password": password, "roles": roles, **extra},
                    headers=headers["admin"])
    assert r.status_code == 200, r.text
    return r.json()


def login(client: TestClient, username: str, password: str = "pw-1234") -> dict:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['data']['session']['token']}"}


def refused(r, status: int, message: str) -> None:  # type: ignore[no-untyped-def]
    # RustyDB's codes: a refused domain rule is INVALID_INPUT, not VALIDATION_ERROR
    code = {400: "INVALID_INPUT", 401: "UNAUTHORIZED", 404: "NOT_FOUND", 409: "CONFLICT"}[status]
    assert (r.status_code, r.json()["code"], r.json()["message"]) == (status, code, message), r.text


def test_users_crud_with_rustydb_messages(engine: Engine, client: TestClient, headers: dict) -> None:
    admin = headers["admin"]
    alice = create_user(client, headers, "alice", ["operator"])
    assert alice["username"] == "alice" and alice["roles"] == ["operator"] and alice["enabled"] is True
    assert (alice["api_role"], alice["has_password"], alice["last_login"]) == ("operator", True, None)
    assert alice["created_at"] > 0

    token = login(client, "alice")
    assert client.get(USERS + f"/{alice['user_id']}", headers=admin).json()["last_login"] is not None
    assert client.post("/api/v1/diagnostics/dump", json={"dump_type": "lock"}, headers=token).status_code == 202

    refused(client.post(USERS, json={"username": "alice", "roles": []}, headers=admin), 409,
            "User 'alice' already exists")
    refused(client.post(USERS, json={"username": "", "roles": []}, headers=admin), 400, "Username cannot be empty")
    refused(client.post(USERS, json={"username": "   ", "roles": []}, headers=admin), 400, "Username cannot be empty")
    for name in ("ab", "x" * 65):
        refused(client.post(USERS, json={"username": name, "roles": []}, headers=admin), 400,
                "Username must be between 3 and 64 characters")
    # a role that does not exist is a missing resource the body names, not a malformed body
    refused(client.post(USERS, json={"username": "bob", "roles": ["monitor", "nope"]}, headers=admin), 404,
            "Role 'nope' does not exist")
    r = client.post(USERS, json={"username": "bob"}, headers=admin)
    assert r.status_code == 400 and "roles" in r.json()["message"]            # required, as RustyDB
    r = client.post(USERS, json={"username": "bob", "roles": [], "enabled": "yes"}, headers=admin)
    assert r.status_code == 400 and "enabled" in r.json()["message"]

    bob = create_user(client, headers, "bob", [], password=None)              # no password, no roles
    assert (bob["has_password"], bob["api_role"]) == (False, None)
    assert bob["user_id"] > alice["user_id"]
    page = client.get(USERS, headers=admin).json()
    assert [u["username"] for u in page["data"]] == ["admin", "alice", "bob"]  # by user_id
    assert (page["total_count"], page["page"], page["total_pages"], page["has_next"]) == (3, 1, 1, False)
    second = client.get(USERS + "?page=2&page_size=2", headers=admin).json()
    assert [u["username"] for u in second["data"]] == ["bob"] and second["has_prev"]

    r = client.put(USERS + f"/{bob['user_id']}", json={"username": "robert", "password": "pw-5678",
                                                         "roles": ["monitor"]}, headers=admin)
    assert r.status_code == 200
    assert (r.json()["username"], r.json()["roles"], r.json()["api_role"]) == ("robert", ["monitor"], "monitor")
    login(client, "robert", "pw-5678")
    refused(client.put(USERS + f"/{bob['user_id']}", json={"username": "alice", "roles": []}, headers=admin), 409,
            "User 'alice' already exists")
    refused(client.put(USERS + f"/{bob['user_id']}", json={"username": "robert", "roles": ["ghost"]}, headers=admin),
            404, "Role 'ghost' does not exist")
    refused(client.put(USERS + "/9999", json={"username": "robert", "roles": []}, headers=admin), 404,
            "User 9999 not found")

    assert client.delete(USERS + f"/{bob['user_id']}", headers=admin).status_code == 204
    refused(client.get(USERS + f"/{bob['user_id']}", headers=admin), 404, f"User {bob['user_id']} not found")
    refused(client.delete(USERS + f"/{bob['user_id']}", headers=admin), 404, f"User {bob['user_id']} not found")
    r = client.get(USERS + "/0", headers=admin)
    assert r.status_code == 400 and "user_id" in r.json()["message"]


def test_passwords_are_stored_only_as_scrypt_hashes(engine: Engine, client: TestClient, headers: dict) -> None:
    create_user(client, headers, "carol", ["monitor"], password="plain-secret-42")
    db = apsw.Connection(str(engine.storage.data_dir / "system.db"))
    try:
        (stored,) = db.execute("SELECT password_hash FROM users WHERE username='carol'").fetchone()
    finally:
        db.close()
    assert stored.startswith("scrypt$") and "plain-secret-42" not in stored


def test_disabling_or_deleting_a_user_makes_its_token_401_at_once(client: TestClient, headers: dict) -> None:
    dave = create_user(client, headers, "dave", ["operator"])
    token = login(client, "dave")
    assert client.get("/api/v1/sessions", headers=token).status_code == 200
    r = client.put(USERS + f"/{dave['user_id']}", json={"username": "dave", "roles": ["operator"], "enabled": False},
                   headers=headers["admin"])
    assert r.status_code == 200 and r.json()["enabled"] is False
    r = client.get("/api/v1/sessions", headers=token)
    assert (r.status_code, r.json()["code"]) == (401, "UNAUTHORIZED")
    refused(client.post("/api/v1/auth/login", json={"username": "dave", "password": "pw-1234"}), 401,
            "Invalid username or password")
    # enabled null keeps the user disabled; true lets it log in again
    r = client.put(USERS + f"/{dave['user_id']}", json={"username": "dave", "roles": ["operator"]},
                   headers=headers["admin"])
    assert r.json()["enabled"] is False
    client.put(USERS + f"/{dave['user_id']}", json={"username": "dave", "roles": ["operator"], "enabled": True},
               headers=headers["admin"])
    token = login(client, "dave")
    assert client.delete(USERS + f"/{dave['user_id']}", headers=headers["admin"]).status_code == 204
    assert client.get("/api/v1/sessions", headers=token).status_code == 401


def test_a_demoted_user_loses_its_tokens(client: TestClient, headers: dict) -> None:
    erin = create_user(client, headers, "erin", ["admin"])
    token = login(client, "erin")
    assert client.get(USERS, headers=token).status_code == 200
    client.put(USERS + f"/{erin['user_id']}", json={"username": "erin", "roles": ["monitor"]}, headers=headers["admin"])
    assert client.get(USERS, headers=token).status_code == 401
    assert client.get(USERS, headers=login(client, "erin")).status_code == 403


def test_the_last_enabled_administrator_stays(client: TestClient, headers: dict) -> None:
    admin = headers["admin"]
    message = "User 'admin' is the last enabled administrator; it must keep an admin role and stay enabled"
    refused(client.put(USERS + "/1", json={"username": "admin", "roles": ["admin"], "enabled": False}, headers=admin),
            409, message)
    refused(client.put(USERS + "/1", json={"username": "admin", "roles": ["operator"]}, headers=admin), 409, message)
    refused(client.delete(USERS + "/1", headers=admin), 409, message)
    assert client.get(USERS, headers=admin).status_code == 200     # the token survived the refusals
    create_user(client, headers, "frank", ["admin"])
    assert client.delete(USERS + "/1", headers=admin).status_code == 204  # another admin is left
    assert client.get(USERS, headers=admin).status_code == 401


def test_roles_crud_with_rustydb_messages(client: TestClient, headers: dict) -> None:
    admin = headers["admin"]
    roles = client.get(ROLES, headers=admin).json()
    assert [(r["role_id"], r["role_name"], r["permissions"], r["built_in"]) for r in roles] == [
        (1, "admin", ["ALL"], True), (2, "readonly", ["SELECT"], True), (3, "monitor", ["SELECT"], True),
        (4, "operator", ["SELECT"], True)]
    assert roles[0]["description"] == "Full administrative access" and roles[0]["created_at"] == 0

    r = client.post(ROLES, json={"role_name": "analyst", "permissions": ["select", "Insert", "SELECT"],
                                 "description": "reads and loads"}, headers=admin)
    assert r.status_code == 200
    analyst = r.json()
    assert (analyst["role_id"], analyst["permissions"], analyst["api_role"], analyst["built_in"]) == (
        5, ["SELECT", "INSERT"], "monitor", False)
    refused(client.post(ROLES, json={"role_name": "analyst", "permissions": []}, headers=admin), 409,
            "Role 'analyst' already exists")
    refused(client.post(ROLES, json={"role_name": "", "permissions": []}, headers=admin), 400,
            "Role name cannot be empty")
    refused(client.post(ROLES, json={"role_name": "pilot", "permissions": ["SELECT", "fly"]}, headers=admin), 400,
            "Invalid permission: 'fly'")
    refused(client.get(ROLES + "/999", headers=admin), 404, "Role 999 not found")
    assert client.get(ROLES + "/5", headers=admin).json() == analyst

    gina = create_user(client, headers, "gina", ["analyst"])
    token = login(client, "gina")
    assert client.get("/api/v1/sessions", headers=token).status_code == 200
    refused(client.delete(ROLES + "/5", headers=admin), 409, "Role 'analyst' is still assigned to users")
    assert client.delete(ROLES + "/5", headers=admin).json()["details"] == {"users": ["gina"]}

    # a rename follows into the users; new permissions change the API role, so the old tokens go
    r = client.put(ROLES + "/5", json={"role_name": "superuser", "permissions": ["all"]}, headers=admin)
    assert (r.status_code, r.json()["role_name"], r.json()["api_role"]) == (200, "superuser", "admin")
    assert r.json()["description"] is None
    gina = client.get(USERS + f"/{gina['user_id']}", headers=admin).json()
    assert (gina["roles"], gina["api_role"]) == (["superuser"], "admin")
    assert client.get("/api/v1/sessions", headers=token).status_code == 401
    assert client.get(USERS, headers=login(client, "gina")).status_code == 200
    refused(client.put(ROLES + "/5", json={"role_name": "monitor", "permissions": []}, headers=admin), 409,
            "Role 'monitor' already exists")
    refused(client.put(ROLES + "/5", json={"role_name": "superuser", "permissions": ["ROOT"]}, headers=admin), 400,
            "Invalid permission: 'ROOT'")
    refused(client.put(ROLES + "/77", json={"role_name": "x", "permissions": []}, headers=admin), 404,
            "Role 77 not found")

    for role_id, name in ((1, "admin"), (3, "monitor")):
        message = f"Role '{name}' is built in and cannot be changed or deleted"
        refused(client.put(ROLES + f"/{role_id}", json={"role_name": name, "permissions": []}, headers=admin), 409,
                message)
        refused(client.delete(ROLES + f"/{role_id}", headers=admin), 409, message)

    client.put(USERS + f"/{gina['user_id']}", json={"username": "gina", "roles": []}, headers=admin)
    assert client.delete(ROLES + "/5", headers=admin).status_code == 204
    refused(client.get(ROLES + "/5", headers=admin), 404, "Role 5 not found")


def test_only_an_admin_manages_or_reads_users(client: TestClient, headers: dict) -> None:
    for role in ("monitor", "operator"):
        assert client.get(USERS, headers=headers[role]).status_code == 403
        assert client.get(ROLES, headers=headers[role]).status_code == 403
        r = client.post(USERS, json={"username": "mallory", "roles": ["admin"]}, headers=headers[role])
        assert r.status_code == 403


def test_every_change_is_audited_and_no_password_is_logged(client: TestClient, headers: dict,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        henry = create_user(client, headers, "henry", ["monitor"], password="hunter2-secret")
        client.put(USERS + f"/{henry['user_id']}", json={"username": "henry", "password": "hunter3-secret",
                                                           "roles": ["operator"], "enabled": False},
                   headers=headers["admin"])
        client.post(USERS, json={"username": "henry", "password": "hunter4-secret", "roles": []},
                    headers=headers["admin"])
        client.post(ROLES, json={"role_name": "auditor", "permissions": ["SELECT"]}, headers=headers["admin"])
        client.delete(USERS + f"/{henry['user_id']}", headers=headers["admin"])
    audits = [r.audit for r in caplog.records if getattr(r, "audit", None)]
    assert [(a["who"], a["action"], a["target"], a["result"]) for a in audits] == [
        ("admin", "create_user", "user 'henry'", "ok"),
        ("admin", "update_user", f"user {henry['user_id']}", "ok"),
        ("admin", "create_user", "user 'henry'", "refused: User 'henry' already exists"),
        ("admin", "create_role", "role 'auditor'", "ok"),
        ("admin", "delete_user", f"user {henry['user_id']}", "ok"),
    ]
    assert audits[1]["password_changed"] is True and audits[1]["tokens_revoked"] == 0
    assert audits[4]["username"] == "henry"
    logged = caplog.text + repr(audits)
    assert not any(secret in logged for secret in ("hunter2", "hunter3", "hunter4", ADMIN_PASSWORD))
