"""Cross-cutting behaviour: auth, ApiError bodies, request ids, body limits, OpenAPI."""

from __future__ import annotations

from fastapi.testclient import TestClient

from engine import Engine

from .conftest import ADMIN_PASSWORD


def test_login_gives_a_token_that_works_and_logout_revokes_it(client: TestClient) -> None:
    r = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200
    session = r.json()["data"]["session"]
    assert set(session) == {"token", "refreshToken", "expiresAt"}
    auth = {"Authorization": f"Bearer {session['token']}"}
    assert client.get("/api/v1/sessions", headers=auth).status_code == 200
    assert client.get("/api/v1/auth/validate", headers=auth).json()["valid"] is True
    client.post("/api/v1/auth/logout", headers=auth)
    assert client.get("/api/v1/sessions", headers=auth).status_code == 401
    assert client.get("/api/v1/auth/validate", headers=auth).json() == {"valid": False, "username": None, "role": None}


def test_refresh_replaces_the_token_pair(client: TestClient) -> None:
    session = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["data"]["session"]
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": session["refreshToken"]})
    assert r.status_code == 200
    fresh = r.json()["token"]
    assert client.get("/api/v1/sessions", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    assert client.get("/api/v1/sessions", headers={"Authorization": f"Bearer {session['token']}"}).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": session["refreshToken"]}).status_code == 401


def test_wrong_password_is_401_and_repeated_failures_are_rate_limited(client: TestClient) -> None:
    for _ in range(5):
        r = client.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong"})
        assert r.status_code == 401
        assert r.json()["message"] == "Invalid username or password"
    r = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 429
    assert r.json()["code"] == "RATE_LIMITED"
    assert int(r.headers["Retry-After"]) > 0


def test_errors_have_the_api_error_body_and_request_id(client: TestClient, headers: dict) -> None:
    r = client.get("/api/v1/sessions/424242", headers=headers["monitor"])
    assert r.status_code == 404
    body = r.json()
    assert set(body) == {"code", "message", "details", "timestamp", "request_id"}
    assert body["code"] == "NOT_FOUND" and "424242" in body["message"]
    assert body["request_id"] == r.headers["X-Request-ID"]


def test_bad_input_is_400_naming_the_field(client: TestClient, headers: dict) -> None:
    r = client.get("/api/v1/sessions/abc", headers=headers["monitor"])
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR")
    assert "session_id" in r.json()["message"]
    r = client.post("/api/v1/auth/login", content=b"{not json", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR")
    assert "malformed JSON" in r.json()["message"]
    r = client.post("/api/v1/auth/login", json={"username": "admin", "password": 5})
    assert r.status_code == 400 and "password" in r.json()["message"]
    r = client.get("/api/v1/sessions?page=0", headers=headers["monitor"])
    assert r.status_code == 400 and "page" in r.json()["message"]
    r = client.get("/api/v1/sessions?sort_by=nope", headers=headers["monitor"])
    assert r.status_code == 400 and "sort_by" in r.json()["message"]


def test_wrong_method_unknown_path_and_large_body(client: TestClient) -> None:
    r = client.put("/api/v1/sessions")
    assert (r.status_code, r.json()["code"]) == (405, "METHOD_NOT_ALLOWED")
    assert r.headers["Allow"] == "GET, HEAD"
    r = client.get("/api/v1/no/such/thing")
    assert (r.status_code, r.json()["code"]) == (404, "NOT_FOUND")
    r = client.post("/api/v1/auth/login", content=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")


def test_a_405_allows_every_method_the_path_serves(client: TestClient) -> None:
    # one route per method: each of these paths has routes for several
    for path, allowed in (("/api/v1/sessions/1", "DELETE, GET, HEAD"), ("/api/v1/admin/config", "GET, HEAD, PUT"),
                          ("/api/v1/alerts/rules/r1", "DELETE, GET, HEAD, PUT"),
                          ("/api/v1/diagnostics/incidents/1", "GET, HEAD, PATCH")):
        r = client.options(path)
        assert (r.status_code, r.headers["Allow"]) == (405, allowed), path


def test_unexpected_exception_is_500_with_request_id(engine: Engine, client: TestClient, headers: dict,
                                                     monkeypatch, caplog) -> None:
    def boom() -> list:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "session_objects", boom)
    r = client.get("/api/v1/sessions", headers=headers["monitor"])
    assert r.status_code == 500
    body = r.json()
    assert body["code"] == "INTERNAL_ERROR" and body["request_id"]
    assert "boom" not in body["message"]
    assert any(body["request_id"] in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_openapi_document_is_served(client: TestClient) -> None:
    doc = client.get("/api-docs/openapi.json").json()
    assert "/api/v1/sessions" in doc["paths"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(doc["components"]["securitySchemes"])


def test_the_openapi_document_is_as_strict_as_the_server(engine: Engine, client: TestClient) -> None:
    doc = client.get("/api-docs/openapi.json").json()
    schemas = doc["components"]["schemas"]

    def query_param(path: str, name: str) -> dict:
        param = next(p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == name)
        schema = param["schema"]
        return next((s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"), schema)

    assert "triage" in query_param("/api/v1/stats/sessions", "sort_by")["enum"]
    for path in ("/api/v1/sessions", "/api/v1/connections", "/api/v1/logs", "/api/v1/admin/users",
                 "/api/v1/admin/maintenance", "/api/v1/diagnostics/incidents"):
        assert query_param(path, "sort_by")["enum"], path
    assert "pattern" in query_param("/api/v1/stats/sessions", "state")
    assert schemas["RuleCreate"]["properties"]["metric"]["enum"] == [m.name for m in engine.alerts.metrics()]
    assert schemas["MaintenanceRequest"]["properties"]["operation"]["enum"] == ["vacuum", "analyze", "reindex",
                                                                                "checkpoint"]
    retention = schemas["FullBackupRequest"]["properties"]["retention_days"]["anyOf"][0]
    assert retention["minimum"] == 1  # the server refuses 0
    expires = schemas["SilenceRequest"]["properties"]["expires_at"]["anyOf"][0]  # an integer 17.0 may be
    assert (expires["minimum"], "ge" in expires) == (0, False)
    config = doc["paths"]["/api/v1/admin/config"]["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert config["additionalProperties"] is False
    assert config["properties"]["max_connections"] == {"type": "integer", "minimum": 1, "maximum": 10000}
    # cross-field rules are in the document too
    assert "allOf" in schemas["SilenceRequest"] and "allOf" in schemas["RestoreRequest"]
    assert "anyOf" in schemas["IncidentUpdate"]


def test_an_api_key_also_works_as_a_bearer_token(engine: Engine, client: TestClient) -> None:
    key = engine.auth.create_api_key("monitor")
    assert client.get("/api/v1/metrics/prometheus", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    r = client.delete("/api/v1/sessions/1", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403  # with the key's own role, not more
    assert client.get("/api/v1/sessions", headers={"Authorization": "Bearer rdb_unknown"}).status_code == 401


def test_an_authorization_header_that_is_not_a_bearer_token_is_refused(engine: Engine, client: TestClient) -> None:
    key = engine.auth.create_api_key("admin")
    for value in ("Basic YWRtaW46eA==", "garbage", "Bearer"):
        r = client.get("/api/v1/admin/config", headers={"X-API-Key": key, "Authorization": value})
        assert (r.status_code, r.json()["code"]) == (401, "UNAUTHORIZED"), value
    assert client.get("/api/v1/admin/config", headers={"X-API-Key": key}).status_code == 200


def test_validate_answers_for_api_keys_too(engine: Engine, client: TestClient) -> None:
    key = engine.auth.create_api_key("monitor")
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        body = client.get("/api/v1/auth/validate", headers=headers).json()
        assert body["valid"] is True and body["role"] == "monitor"
    assert client.get("/api/v1/auth/validate", headers={"X-API-Key": "rdb_nope"}).json()["valid"] is False
    assert client.get("/api/v1/auth/validate").json()["valid"] is False


def test_a_repeated_query_parameter_is_refused(client: TestClient, headers: dict) -> None:
    r = client.get("/api/v1/sessions?page=1&page=2", headers=headers["monitor"])
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR")
    assert r.json()["message"].startswith("page:")
