"""A poll reads what the visible pane needs and no more; the Sessions pane reads the rows it shows."""

from __future__ import annotations

from rdbtop.model import ROW_CAP
from rdbtop.poller import EVERY_SESSION

from .conftest import on_pane, running, table, until
from .fakeserver import FakeServer

API = "/api/v1"


async def reads_of_next_poll(pilot, server: FakeServer) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """The GETs of one poll made now (path: its query parameters)."""
    app = pilot.app
    before, polled = len(server.reads), app.latest
    app.action_refresh_now()
    await until(pilot, lambda: app.latest is not polled)
    return {path.removeprefix(API): params for path, params in server.reads[before:]}


async def test_switching_panes_changes_which_endpoints_are_polled(server: FakeServer) -> None:
    async with running(server) as (app, pilot):
        overview = await reads_of_next_poll(pilot, server)
        assert {"/stats/performance", "/admin/health", "/alerts", "/transactions/locks/graph"} <= set(overview)
        assert not {"/stats/sessions", "/query/active", "/transactions/locks", "/backup/list",
                    "/monitoring/ash"} & set(overview)

        await on_pane(pilot, "sessions", "2")
        sessions = await reads_of_next_poll(pilot, server)
        assert set(sessions) == {"/stats/performance", "/stats/sessions"}
        assert sessions["/stats/sessions"] == {"sort_by": "triage", "sort_order": "asc", "limit": str(ROW_CAP)}

        await on_pane(pilot, "backups", "7")
        assert set(await reads_of_next_poll(pilot, server)) == {"/stats/performance", "/backup/list",
                                                                "/backup/schedule"}
        await on_pane(pilot, "ash", "5")
        assert "/monitoring/ash" in await reads_of_next_poll(pilot, server)
        await on_pane(pilot, "locks", "4")
        locks = await reads_of_next_poll(pilot, server)
        assert {"/transactions/locks", "/transactions/deadlocks", "/transactions/locks/graph"} <= set(locks)
        assert locks["/stats/sessions"]["state"] == "waiting,idle in transaction,active"  # only busy ones


async def test_the_sessions_read_follows_the_panes_order_idle_hiding_and_filter(server: FakeServer) -> None:
    async with running(server) as (app, pilot):
        await on_pane(pilot, "sessions", "2")
        await pilot.press("s")  # time in state, longest first
        asked = (await reads_of_next_poll(pilot, server))["/stats/sessions"]
        assert (asked["sort_by"], asked["sort_order"]) == ("state_seconds", "desc")
        await pilot.press("i")
        asked = (await reads_of_next_poll(pilot, server))["/stats/sessions"]
        assert asked["state"] == "waiting,idle in transaction,active" and asked["limit"] == str(ROW_CAP)
        app.filter = type(app.filter)("shop")
        app._sessions_view_changed()
        asked = (await reads_of_next_poll(pilot, server))["/stats/sessions"]
        assert asked["limit"] == str(EVERY_SESSION)  # the text filter runs here, over every session


async def test_a_pane_shows_data_read_for_it_after_a_switch(server: FakeServer) -> None:
    async with running(server) as (app, pilot):
        assert app.shown.pane == "overview"
        server.sessions.pop()  # session 11 leaves after the first poll
        await on_pane(pilot, "sessions", "2")
        assert app.shown.pane == "sessions" and table(app, "sessions").row_count == 6


def test_the_session_order_holds_from_one_poll_to_the_next() -> None:
    """Sessions that entered their state in the same second keep their places as they age."""
    from rdbtop.model import Session
    from rdbtop.panes.sessions import SORTS, sort_sessions

    def poll(ages: dict[int, float]) -> list[int]:
        sessions = [Session(sid, state="idle in transaction", state_seconds=age, state_since=1_000)
                    for sid, age in ages.items()]
        return [s.session_id for sort in (0, SORTS.index("time in state")) for s in sort_sessions(sessions, sort)]

    # the answers' rounding puts 5 ahead of 4 in one poll and behind it in the next: the order holds
    assert poll({4: 10.000, 5: 10.001}) == poll({4: 11.001, 5: 11.000}) == [4, 5, 4, 5]


async def test_ash_samples_are_kept_for_the_chosen_window_only_and_a_wider_one_is_backfilled() -> None:
    from rdbtop.poller import Poller

    from .fakeserver import NOW

    server = FakeServer()
    clock = [float(NOW)]
    poller = Poller(server.client(), 1.0, clock=lambda: clock[0])
    poller.pane = "ash"

    async def ash_reads() -> tuple[list[int], list[str]]:
        before = len(server.reads)
        snap = await poller.snapshot()
        starts = [p["start_time"] for path, p in server.reads[before:]
                  if path.endswith("/monitoring/ash") and "group_by" not in p]
        return sorted({s.sample_time for s in snap.ash_samples}), starts

    seconds, starts = await ash_reads()
    assert starts == [str(NOW - 900)] and seconds[0] == NOW - 900  # the first poll backfills the window
    poller.ash_window = 300  # narrower: what is older goes
    seconds, _ = await ash_reads()
    assert seconds[0] >= NOW - 300  # what the poller keeps is what it hands over
    poller.ash_window = 900  # wider again: read again from its start, not only since the newest second
    seconds, starts = await ash_reads()
    assert starts == [str(NOW - 900)] and seconds[0] == NOW - 900
    seconds, starts = await ash_reads()
    assert starts == [str(NOW)]  # then only what is new


async def test_slowly_changing_answers_are_asked_again_only_after_their_period_while_their_pane_stays() -> None:
    from rdbtop.poller import SLOW_CALLS, Poller

    from .fakeserver import NOW

    server = FakeServer()
    clock = [float(NOW)]
    poller = Poller(server.client(), 1.0, clock=lambda: clock[0])

    async def poll(pane: str) -> set[str]:
        poller.pane = pane
        before = len(server.reads)
        snap = await poller.snapshot()
        assert pane != "overview" or snap.overview.health == "healthy"  # shown from the last answer meanwhile
        return {path.removeprefix(API) for path, _ in server.reads[before:]}

    assert "/admin/health" in await poll("overview")
    clock[0] += 1
    assert "/admin/health" not in await poll("overview") and "/stats/performance" in await poll("overview")
    clock[0] += SLOW_CALLS["health"]
    assert "/admin/health" in await poll("overview")
    await poll("sessions")
    assert "/admin/health" in await poll("overview")  # shown anew: everything is read at once
    poller.poll_now()  # `r`: everything, now
    assert "/admin/health" in await poll("overview")
