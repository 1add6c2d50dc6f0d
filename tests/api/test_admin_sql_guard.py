"""Over REST, SQL that would move the engine off WAL (or any pragma it sets up) is a 400 that changes nothing."""

from __future__ import annotations

from fastapi.testclient import TestClient

from engine import Engine

QUERY = "/api/v1/query"


def test_a_pragma_the_engine_relies_on_is_a_400_with_the_reason_run_or_explained(
        client: TestClient, headers: dict, engine: Engine) -> None:
    for body in ({"sql": "PRAGMA journal_mode=DELETE"}, {"sql": "PRAGMA journal_mode=DELETE", "explain": True},
                 {"sql": "SELECT 1; PRAGMA locking_mode=EXCLUSIVE"}):
        r = client.post(QUERY, json=body, headers=headers["admin"])
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "SQL_ERROR" and r.json()["message"].startswith("PRAGMA "), body
    r = client.post(QUERY, json={"sql": "PRAGMA journal_mode"}, headers=headers["admin"])
    assert r.status_code == 200 and r.json()["rows"] == [{"journal_mode": "wal"}], r.text
    assert engine.storage.not_in_wal() == []
