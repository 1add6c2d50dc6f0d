"""GET /api/v1/stats/sessions: RustyDB's shape by default; state, sort_by, sort_order and limit choose
which sessions are listed while the counts keep covering every session."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from engine import Engine, ManualClock
from engine.api import create_app

from .conftest import ADMIN_PASSWORD


def ids(body: dict) -> list[int]:
    return [s["session_id"] for s in body["sessions"]]


def test_by_default_every_session_is_listed_with_rustydb_fields(client: TestClient, headers: dict,
                                                                 engine: Engine) -> None:
    sessions = [engine.connect(f"u{i}", "tests") for i in range(3)]
    body = client.get("/api/v1/stats/sessions", headers=headers["monitor"]).json()
    assert set(ids(body)) == {s.id for s in sessions}
    assert (body["total_connections"], body["idle_sessions"], body["active_sessions"]) == (3, 3, 0)
    assert {"session_id", "username", "database", "state", "current_query"} <= set(body["sessions"][0])


def test_triage_lists_what_hurts_first_and_limit_cuts_the_list_but_not_the_counts() -> None:
    clock = ManualClock(1_800_000_000)
    engine = Engine(clock=clock).start()
    try:
        engine.auth.ensure_admin(ADMIN_PASSWORD)
        engine.create_schema("sales")
        old_idle = engine.connect("idle-old", "tests")
        clock.advance(10)
        holder = engine.connect("holder", "tests")
        holder.execute("CREATE TABLE sales.t(id INTEGER PRIMARY KEY)")
        holder.execute("BEGIN")
        holder.execute("SELECT count(*) FROM sales.t")  # idle in transaction from here on
        clock.advance(10)
        new_idle = engine.connect("idle-new", "tests")
        key = {"X-API-Key": engine.auth.create_api_key("monitor")}
        with TestClient(create_app(engine), raise_server_exceptions=False) as client:
            def get(query: str) -> dict:
                r = client.get(f"/api/v1/stats/sessions?{query}", headers=key)
                assert r.status_code == 200, r.text
                return r.json()

            assert ids(get("sort_by=triage")) == [holder.id, old_idle.id, new_idle.id]
            top = get("sort_by=triage&limit=2")
            assert ids(top) == [holder.id, old_idle.id]
            assert (top["total_connections"], top["idle_sessions"], top["idle_in_transaction_sessions"]) == (3, 2, 1)
            assert ids(get("sort_by=state_seconds&sort_order=desc&limit=1")) == [old_idle.id]
            assert ids(get("state=idle%20in%20transaction,waiting")) == [holder.id]
            assert set(ids(get("state=idle&sort_by=session_id"))) == {old_idle.id, new_idle.id}
            assert ids(get("limit=0")) == [] and get("limit=0")["total_connections"] == 3
    finally:
        engine.close()


def test_bad_parameters_are_400_naming_the_field(client: TestClient, headers: dict) -> None:
    for query, field in (("state=sleeping", "state"), ("sort_by=nope", "sort_by"), ("limit=-1", "limit"),
                         ("sort_order=up", "sort_order")):
        r = client.get(f"/api/v1/stats/sessions?{query}", headers=headers["monitor"])
        assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR"), query
        assert field in r.json()["message"], query


def test_the_parameters_are_in_the_openapi_document(client: TestClient) -> None:
    operation = client.get("/api-docs/openapi.json").json()["paths"]["/api/v1/stats/sessions"]["get"]
    assert {"state", "sort_by", "sort_order", "limit"} <= {p["name"] for p in operation["parameters"]}


def test_sessions_are_listed_a_page_at_a_time_and_the_counts_cover_them_all(client: TestClient, headers: dict,
                                                                             engine: Engine) -> None:
    sessions = [engine.connect(f"u{i}", "tests") for i in range(53)]

    def get(query: str = "") -> dict:
        r = client.get(f"/api/v1/stats/sessions?{query}", headers=headers["monitor"])
        assert r.status_code == 200, r.text
        return r.json()

    first = get()  # RustyDB's default page size
    assert (len(first["sessions"]), first["page"], first["page_size"], first["total_pages"]) == (50, 1, 50, 2)
    assert (first["total_count"], first["total_connections"], first["idle_sessions"]) == (53, 53, 53)
    assert first["has_next"] and not first["has_prev"]
    pages = [get(f"sort_by=session_id&page_size=20&page={n}") for n in (1, 2, 3)]
    assert [i for p in pages for i in ids(p)] == [s.id for s in sessions]
    assert [len(p["sessions"]) for p in pages] == [20, 20, 13] and not pages[2]["has_next"] and pages[2]["has_prev"]
    every = get("limit=100000")  # limit: one page of up to 100,000, whatever page_size says
    assert len(every["sessions"]) == 53 and every["total_pages"] == 1
    assert get("page=4&page_size=20")["sessions"] == []
    r = client.get("/api/v1/stats/sessions?page_size=1001", headers=headers["monitor"])
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR")


def test_a_listing_is_built_once_per_tick_and_again_when_sessions_come_or_go() -> None:
    clock = ManualClock(1_800_000_000)
    engine = Engine(clock=clock).start()
    try:
        engine.connect("early", "tests")
        key = {"X-API-Key": engine.auth.create_api_key("monitor")}
        app = create_app(engine)
        cache = app.state.ticks
        with TestClient(app, raise_server_exceptions=False) as client:
            def listing() -> dict:
                r = client.get("/api/v1/stats/sessions?limit=100000", headers=key)
                assert r.status_code == 200, r.text
                return r.json()

            first = listing()
            with ThreadPoolExecutor(8) as pool:  # many consoles asking within the same tick share one body
                assert all(b == first for b in pool.map(lambda _: listing(), range(16)))
            assert cache.builds == 1
            later = engine.connect("later", "tests")
            assert later.id in ids(listing()) and cache.builds == 2  # a session came: at once
            clock.advance(engine.config.ash_interval_ms / 1000)
            aged = listing()
            assert cache.builds == 3 and aged["sessions"][0]["state_seconds"] > first["sessions"][0]["state_seconds"]
            later.close()
            assert later.id not in ids(listing())  # and went
    finally:
        engine.close()
