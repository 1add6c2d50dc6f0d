"""Backups over REST: take, list, verify, restore, schedule; bad input; the audit trail."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engine import Engine
from engine.api import create_app
from engine.backup_codec import KEY_ENV
from engine.config import ALLOWED_DIRS_ENV
from engine.errors import SessionTerminated

from .conftest import wait_until

API = "/api/v1/backup"


@pytest.fixture(autouse=True)
def _no_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture(autouse=True)
def _the_tests_directory_is_allowed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ALLOWED_DIRS_ENV, str(tmp_path))


@pytest.fixture
def operator(engine: Engine, headers: dict) -> Iterator[TestClient]:
    with TestClient(create_app(engine), raise_server_exceptions=False, headers=headers["operator"]) as c:
        yield c


@pytest.fixture
def admin(engine: Engine, headers: dict) -> Iterator[TestClient]:
    with TestClient(create_app(engine), raise_server_exceptions=False, headers=headers["admin"]) as c:
        yield c


def take(client: TestClient, kind: str = "full", **body: object) -> dict:
    """Start a backup and wait until it has finished; returns its details."""
    r = client.post(f"{API}/{kind}", json=body)
    assert r.status_code == 202, r.text
    backup_id = r.json()["backup_id"]
    return wait_until(lambda: (d := client.get(f"{API}/{backup_id}").json())["status"] in ("completed", "failed")
                      and d, 15.0)


def restore(client: TestClient, backup_id: str, **body: object) -> dict:
    """Start a restore and wait until it has finished; returns its status."""
    r = client.post(f"{API}/{backup_id}/restore", json=body)
    assert r.status_code == 202, r.text
    restore_id = r.json()["restore_id"]
    return wait_until(lambda: (d := client.get(f"{API}/restores/{restore_id}").json())["completed_at"] and d, 15.0)


def error(r, status: int, code: str = "VALIDATION_ERROR") -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code
    return body


def orders(data_dir: Path) -> list[tuple]:
    restored = Engine(data_dir)
    try:
        s = restored.connect("check")
        rows = s.execute("SELECT id, amount FROM sales.orders ORDER BY id").rows
        s.close()
        return rows
    finally:
        restored.close()


# -- taking and listing --------------------------------------------------------------------------

def test_a_full_backup_is_a_job_whose_sizes_are_the_files_on_disk(operator: TestClient) -> None:
    r = operator.post(f"{API}/full", json={"backup_type": "full", "description": "before the upgrade"})
    assert r.status_code == 202
    started = r.json()
    assert started["backup_id"].startswith("backup_") and started["backup_type"] == "full"
    assert started["status"] in ("pending", "in_progress") and started["completion_time"] is None
    assert started["database_name"] == "rustydb" and started["requested_by"].startswith("apikey-")

    done = take(operator, description="second")
    assert done["status"] == "completed" and done["error_message"] is None
    location = Path(done["location"])
    assert done["stored_bytes"] == sum((location / f["file"]).stat().st_size for f in done["files"])
    assert done["size_bytes"] == done["database_bytes"] == sum(f["database_bytes"] for f in done["files"])
    assert done["compressed_size_bytes"] == done["stored_bytes"] < done["size_bytes"]
    assert (done["compression_enabled"], done["compression_algorithm"], done["encryption_enabled"]) == (
        True, "zstd", False)
    assert done["progress_percent"] == 100.0 and done["duration_ms"] > 0
    assert done["retention_until"] == done["start_time"] + 30 * 86400
    assert {f["schema_name"] for f in done["files"]} == {"main", "sales", "inventory"}

    listed = operator.get(f"{API}/list").json()
    assert listed["total_count"] == 2
    assert [b["backup_id"] for b in listed["backups"]][0] == done["backup_id"]
    summary = listed["backups"][0]
    assert {k: summary[k] for k in ("backup_type", "status", "start_time", "size_bytes", "location")} == {
        k: done[k] for k in ("backup_type", "status", "start_time", "size_bytes", "location")}


def test_the_admin_shortcut_starts_a_real_backup(operator: TestClient) -> None:
    r = operator.post("/api/v1/admin/backup", json={"backup_type": "full", "compression": False})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"backup_id", "status", "started_at", "completed_at", "size_bytes", "location"}
    done = wait_until(lambda: (d := operator.get(f"{API}/{body['backup_id']}").json())["status"] == "completed"
                      and d)
    assert done["compression_enabled"] is False and done["compressed_size_bytes"] is None
    assert done["stored_bytes"] == done["size_bytes"]
    error(operator.post("/api/v1/admin/backup", json={"backup_type": "weekly"}), 400)
    error(operator.post("/api/v1/admin/backup", json={}), 400)


def test_an_incremental_backup_over_the_api_builds_on_the_full_one(operator: TestClient, engine: Engine) -> None:
    full = take(operator)
    s = engine.connect("writer")
    s.execute("INSERT INTO sales.orders(amount) VALUES (40)")
    s.close()
    inc = take(operator, "incremental", compression=False)
    assert (inc["backup_type"], inc["parent_backup_id"], inc["base_backup_id"]) == (
        "incremental", full["backup_id"], full["backup_id"])
    assert {f["schema_name"]: f["pages_stored"] for f in inc["files"]} == {"main": 0, "sales": 1, "inventory": 0}
    assert inc["size_bytes"] < full["size_bytes"]


# -- verify and restore --------------------------------------------------------------------------

def test_restore_into_a_new_directory_and_verify_only(admin: TestClient, engine: Engine, tmp_path: Path) -> None:
    done = take(admin)
    s = engine.connect("writer")
    s.execute("INSERT INTO sales.orders(amount) VALUES (99)")
    s.close()
    target = tmp_path / "copy"
    r = admin.post(f"{API}/{done['backup_id']}/restore", json={"target_database": str(target)})
    assert r.status_code == 202
    started = r.json()
    assert started["restore_id"].startswith("restore_") and started["status"] == "in_progress"
    assert started["message"] == f"Restore started from backup {done['backup_id']}"
    finished = wait_until(lambda: (d := admin.get(f"{API}/restores/{started['restore_id']}").json())["completed_at"]
                          and d)
    assert finished["status"] == "completed" and finished["mode"] == "new_directory"
    assert finished["backups_applied"] == [done["backup_id"]]
    assert orders(target) == [(1, 10.0), (2, 20.0), (3, 30.0)]

    check = admin.post(f"{API}/{done['backup_id']}/restore", json={"verify_only": True})
    assert check.json()["message"] == f"Backup verification started for backup {done['backup_id']}"
    assert restore(admin, done["backup_id"], verify_only=True)["integrity"] == {
        "main": "ok", "sales": "ok", "inventory": "ok"}
    assert [x["restore_id"] for x in admin.get(f"{API}/restores").json()][-1] == started["restore_id"]


def test_verify_reports_a_corrupted_file_as_failed_with_the_reason(operator: TestClient) -> None:
    done = take(operator, compression=False)
    ok = operator.post(f"{API}/{done['backup_id']}/verify")
    assert ok.status_code == 200 and ok.json()["status"] == "passed"
    sales = next(f for f in done["files"] if f["schema_name"] == "sales")
    path = Path(done["location"]) / sales["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = operator.post(f"{API}/{done['backup_id']}/verify").json()
    assert bad["status"] == "failed"
    assert [f["file"] for f in bad["files"] if not f["checksum_ok"]] == [sales["file"]]
    assert "checksum mismatch" in bad["errors"][0] and sales["file"] in bad["errors"][0]
    assert operator.get(f"{API}/{done['backup_id']}").json()["verification"]["status"] == "failed"


def test_restore_in_place_terminates_the_sessions(admin: TestClient, engine: Engine) -> None:
    done = take(admin)
    victim = engine.connect("someone", "app")
    victim.execute("UPDATE sales.orders SET amount = 0")
    restored = restore(admin, done["backup_id"], overwrite_existing=True)
    assert restored["status"] == "completed" and restored["terminated_sessions"] == 1
    with pytest.raises(SessionTerminated):
        victim.execute("SELECT 1")
    check = engine.connect("check")
    assert check.execute("SELECT sum(amount) FROM sales.orders").rows == [(60.0,)]
    check.close()


def test_point_in_time_picks_the_latest_backup_of_the_chain_taken_by_then(admin: TestClient) -> None:
    full = take(admin)
    inc = take(admin, "incremental")
    latest = restore(admin, full["backup_id"], verify_only=True, point_in_time=inc["completion_time"] + 1)
    assert latest["status"] == "completed" and latest["backups_applied"] == [full["backup_id"], inc["backup_id"]]
    too_early = admin.post(f"{API}/{inc['backup_id']}/restore", json={"verify_only": True,
                                                                    "point_in_time": full["start_time"] - 60})
    assert "before the first backup" in error(too_early, 409, "CONFLICT")["message"]


def test_point_in_time_equal_to_a_backups_snapshot_time_restores_that_backup(admin: TestClient) -> None:
    full = take(admin)
    at = restore(admin, full["backup_id"], verify_only=True, point_in_time=full["snapshot_time"])
    assert at["status"] == "completed" and at["backups_applied"] == [full["backup_id"]]
    before = admin.post(f"{API}/{full['backup_id']}/restore",
                        json={"verify_only": True, "point_in_time": full["snapshot_time"] - 1})
    assert error(before, 409, "CONFLICT")["message"] == (f"point_in_time {full['snapshot_time'] - 1} is before the first backup "
                                             f"of the chain of {full['backup_id']}")


# -- the schedule --------------------------------------------------------------------------------

def test_the_schedule_reflects_what_was_put(admin: TestClient, engine: Engine) -> None:
    schedule = admin.get(f"{API}/schedule").json()
    assert schedule == {"enabled": False, "full_backup_cron": "0 2 * * 0", "incremental_backup_cron": "0 2 * * 1-6",
                        "retention_days": 30, "compression": True, "encryption": False,
                        "destination": str(engine.storage.data_dir / "backups"), "compression_algorithm": "zstd"}
    new = {**schedule, "enabled": True, "full_backup_cron": "30 1 * * *", "retention_days": 7}
    r = admin.put(f"{API}/schedule", json=new)
    assert r.status_code == 200
    assert {k: r.json()[k] for k in ("success", "message", "enabled")} == {
        "success": True, "message": "Backup schedule updated successfully", "enabled": True}
    assert admin.get(f"{API}/schedule").json() == new


def test_bad_schedules_are_refused_naming_the_field(admin: TestClient) -> None:
    schedule = admin.get(f"{API}/schedule").json()
    body = error(admin.put(f"{API}/schedule", json={**schedule, "full_backup_cron": "every day"}), 400)
    assert body["details"] == {"field": "full_backup_cron"} and "full_backup_cron" in body["message"]
    body = error(admin.put(f"{API}/schedule", json={**schedule, "retention_days": 0}), 400)
    assert body["message"] == "retention_days must be greater than 0"
    body = error(admin.put(f"{API}/schedule", json={**schedule, "encryption": True}), 409, "CONFLICT")
    assert "RDBTOP_BACKUP_KEY" in body["message"]
    body = error(admin.put(f"{API}/schedule", json={**schedule, "destination": "/no/such/dir"}), 404, "NOT_FOUND")
    assert body["details"] == {"field": "destination"}
    error(admin.put(f"{API}/schedule", json={**schedule, "destination": "relative/dir"}), 400)
    missing = {k: v for k, v in schedule.items() if k != "destination"}
    assert error(admin.put(f"{API}/schedule", json=missing), 400)["details"][0]["field"] == "destination"
    error(admin.put(f"{API}/schedule", json={**schedule, "retention_days": "7"}), 400)
    assert admin.get(f"{API}/schedule").json() == schedule


# -- bad input -----------------------------------------------------------------------------------

def test_unknown_backups_are_404(admin: TestClient) -> None:
    for method, path, body in (("GET", f"{API}/backup_x", None), ("DELETE", f"{API}/backup_x", None),
                               ("POST", f"{API}/backup_x/restore", {"verify_only": True}),
                               ("POST", f"{API}/backup_x/verify", None)):
        r = admin.request(method, path, json=body)
        assert error(r, 404, "NOT_FOUND")["message"] == "Backup 'backup_x' not found", (method, path)
    error(admin.get(f"{API}/restores/restore_x"), 404, "NOT_FOUND")


def test_restore_from_a_failed_backup_is_refused(admin: TestClient) -> None:
    full = take(admin)
    for f in full["files"]:
        (Path(full["location"]) / f["file"].replace(".db", ".digests")).unlink()
    failed = take(admin, "incremental")
    assert failed["status"] == "failed" and "page digests" in failed["error_message"]
    body = error(admin.post(f"{API}/{failed['backup_id']}/restore", json={"verify_only": True}), 409, "CONFLICT")
    assert body["message"] == "Cannot restore from incomplete backup"
    assert error(admin.post(f"{API}/{failed['backup_id']}/verify"), 409, "CONFLICT")["message"] == \
        "Cannot verify an incomplete backup"


def test_bad_backup_requests_are_400_naming_the_field(operator: TestClient, tmp_path: Path) -> None:
    # well-formed, but the server's state refuses them: no full backup yet, no backup key, a destination no
    # admin chose
    for kind, body, field in (("incremental", {}, "backup_type"), ("full", {"encryption": True}, "encryption"),
                              ("full", {"destination": str(tmp_path)}, "destination")):
        assert error(operator.post(f"{API}/{kind}", json=body), 409, "CONFLICT")["details"] == {"field": field}
    cases = (
        ("full", {"retention_days": 0}, "retention_days"),
        ("full", {"compression": False, "compression_algorithm": "gzip"}, "compression_algorithm"),
    )
    for kind, body, field in cases:
        details = error(operator.post(f"{API}/{kind}", json=body), 400)["details"]
        assert details == {"field": field}, (body, details)
    for body in ({"compression": "yes"}, {"retention_days": -1}, {"compression_algorithm": "lzma"},
                 {"description": "x" * 1001}, {"backup_type": "incremental"}):
        error(operator.post(f"{API}/full", json=body), 400)
    assert operator.get(f"{API}/list").json()["total_count"] == 0


def test_bad_restore_requests_are_400(admin: TestClient, tmp_path: Path) -> None:
    backup_id = take(admin)["backup_id"]
    for body, field in (({}, "target_database"), ({"target_database": "relative"}, "target_database"),
                        ({"verify_only": True, "overwrite_existing": True}, "verify_only")):
        assert error(admin.post(f"{API}/{backup_id}/restore", json=body), 400)["details"] == {"field": field}
    error(admin.post(f"{API}/{backup_id}/restore", json={"point_in_time": "yesterday"}), 400)
    for bad in ("nul\\u0000byte", "line\\nbreak", "lone\\udc80surrogate"):  # JSON escapes, sent as such
        r = admin.post(f"{API}/{backup_id}/restore", content=f'{{"target_database": "{tmp_path}/{bad}"}}',
                       headers={"Content-Type": "application/json"})
        details = error(r, 400)["details"]  # the engine's check, or pydantic's for what is not even text
        assert (details if isinstance(details, dict) else details[0])["field"] == "target_database", bad
    assert list(tmp_path.iterdir()) == [] and admin.get(f"{API}/restores").json() == []


def test_a_backup_dir_or_destination_that_escapes_is_refused_with_rustydb_messages(admin: TestClient,
                                                                                   engine: Engine) -> None:
    r = admin.put("/api/v1/admin/config", json={"backup_dir": "../../etc"})
    assert r.status_code == 400, r.text
    assert (r.json()["code"], r.json()["message"], r.json()["details"]) == (
        "INVALID_INPUT", "backup_dir must be a path inside the data directory (relative, without '..') or inside a "
                         f"directory named in {ALLOWED_DIRS_ENV}", {"field": "backup_dir"})
    assert engine.config.backup_dir == ""
    schedule = admin.get(f"{API}/schedule").json()
    body = error(admin.put(f"{API}/schedule", json={**schedule, "destination": "/etc"}), 409, "CONFLICT")
    assert body["details"] == {"field": "destination"} and body["message"].startswith("destination must be inside")
    assert admin.get(f"{API}/schedule").json() == schedule


def test_a_restore_onto_the_live_data_directory_by_another_name_is_409(admin: TestClient, engine: Engine,
                                                                       tmp_path: Path) -> None:
    backup_id = take(admin)["backup_id"]
    alias = tmp_path / "alias"
    alias.symlink_to(engine.storage.data_dir, target_is_directory=True)
    body = error(admin.post(f"{API}/{backup_id}/restore", json={"target_database": str(alias)}), 409, "CONFLICT")
    assert body["message"].startswith("target_database is the live data directory")
    assert admin.get(f"{API}/restores").json() == []
    error(admin.post(f"{API}/{backup_id}/restore"), 400)  # RustyDB requires a body; {} is fine


# -- deleting and the audit trail ----------------------------------------------------------------

def test_every_backup_restore_delete_and_schedule_change_is_audited(
        admin: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="engine.audit")
    full = take(admin)
    restore(admin, full["backup_id"], verify_only=True)
    admin.put(f"{API}/schedule", json={**admin.get(f"{API}/schedule").json(), "retention_days": 9})
    inc = take(admin, "incremental")
    assert error(admin.delete(f"{API}/{full['backup_id']}"), 409, "CONFLICT")["message"] == (
        f"Backup '{full['backup_id']}' is the base of {inc['backup_id']}; delete those first")
    assert admin.delete(f"{API}/{inc['backup_id']}").status_code == 204
    assert admin.delete(f"{API}/{full['backup_id']}").status_code == 204
    assert admin.get(f"{API}/list").json() == {"backups": [], "total_count": 0}
    records = [r.audit for r in caplog.records if hasattr(r, "audit")]
    assert [(a["action"], a["target"], a["result"]) for a in records] == [
        ("backup", full["backup_id"], "ok"),
        ("restore", full["backup_id"], "ok"),
        ("backup_schedule", "schedule", "ok"),
        ("backup", inc["backup_id"], "ok"),
        ("delete_backup", full["backup_id"],
         f"refused: Backup '{full['backup_id']}' is the base of {inc['backup_id']}; delete those first"),
        ("delete_backup", inc["backup_id"], "ok"),
        ("delete_backup", full["backup_id"], "ok"),
    ]
    assert {a["who"] for a in records} == {"admin"}
    assert records[2]["retention_days"] == 9
