"""Every key and flow of the console, driven with Pilot against the fake server."""

from __future__ import annotations

from textual.widgets import TabbedContent

from rdbtop.panes import PANES
from rdbtop.panes.base import Pane
from rdbtop.screens.confirm import ConfirmScreen
from rdbtop.screens.detail import DetailScreen
from rdbtop.screens.filter import FilterScreen
from rdbtop.screens.help import HelpScreen
from rdbtop.screens.maintenance import MaintenanceScreen

from .conftest import HANG_GUARD_SECONDS, keys, notes, on_pane, running, table, until


async def ask(pilot, pane: str, number: str, row: str, key: str) -> None:  # type: ignore[no-untyped-def]
    """Select `row` on `pane` and press an action `key`; return once its confirmation shows."""
    await on_pane(pilot, pane, number)
    assert table(pilot.app, pane).select_key(row)
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))


async def test_number_keys_switch_panes_and_each_pane_shows_data(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        for number, key in enumerate(["overview", "sessions", "queries", "locks", "ash", "alerts", "backups"], 1):
            await on_pane(pilot, key, str(number))
            assert isinstance(app.pane, Pane) and app.pane.key == key
        assert table(app, "sessions").row_count == 7
        assert keys(table(app, "queries"))[0] == "q201"  # longest first
        assert keys(table(app, "locks", "locks-tree")) == ["/3", "/3/2", "/3/2/9"]
        assert set(keys(table(app, "alerts"))) == {"a1", "a2", "a3"}
        assert keys(table(app, "backups")) == ["backup_0002", "backup_0001"]


async def test_k_cancels_exactly_the_statement_shown_after_confirmation(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await ask(pilot, "sessions", "2", "6", "k")
        shown = str(app.screen.query_one(".facts").render())
        assert "6" in shown and "analyst" in shown and "q601" in shown and "GROUP BY region" in shown
        assert server.actions() == []  # nothing before the answer
        await pilot.press("y")
        await until(pilot, lambda: server.actions())
        assert server.actions() == [("POST", "/api/v1/query/q601/cancel", {"reason": "rdbtop console"})]
        await until(pilot, lambda: "canceled" in notes(app))


async def test_k_refuses_when_the_statement_changed_since_the_screen_was_drawn(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await ask(pilot, "queries", "3", "q601", "k")
        server.session(6).update(current_query_id="q602", current_query="SELECT 2")  # the session moved on
        await pilot.press("y")
        await until(pilot, lambda: "changed since the screen was drawn" in notes(app))
        assert server.actions() == []
        assert "was q601, now q602" in notes(app)


async def test_k_declined_does_nothing(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await ask(pilot, "sessions", "2", "6", "k")
        await pilot.press("enter")  # the focus starts on No: Enter out of habit declines
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert server.actions() == [] and "Nothing was canceled" in notes(app)


async def test_K_terminates_the_selected_session(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await ask(pilot, "sessions", "2", "3", "K")
        assert "batch" in str(app.screen.query_one(".facts").render())
        await pilot.press("y")
        await until(pilot, lambda: server.actions())
        assert server.actions() == [("DELETE", "/api/v1/sessions/3", None)]
        await until(pilot, lambda: "3" not in keys(table(app, "sessions")))


async def test_K_refuses_a_different_connection_under_the_same_id(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await ask(pilot, "sessions", "2", "7", "K")
        server.session(7).update(username="someone-else", created_at=server.now)
        await pilot.press("y")
        await until(pilot, lambda: "different connection" in notes(app))
        assert server.actions() == []


async def test_server_errors_are_told_in_words(server) -> None:  # type: ignore[no-untyped-def]
    server.forbidden.add("/api/v1/query/")
    async with running(server) as (app, pilot):
        await ask(pilot, "sessions", "2", "6", "k")
        await pilot.press("y")
        await until(pilot, lambda: "not allowed" in notes(app))
        assert "operator role" in notes(app)


async def test_read_only_hides_and_refuses_every_action(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server, read_only=True) as (app, pilot):
        for action in ("cancel_query", "terminate", "acknowledge", "maintenance", "backup"):
            assert app.check_action(action, ()) is False
        shown = {b.binding.action for b in app.active_bindings.values()}
        assert not shown & {"cancel_query", "terminate", "acknowledge", "maintenance", "backup"}
        for number, keys_ in (("2", "kK"), ("6", "a"), ("1", "mb")):
            await pilot.press(number)
            await pilot.press(*keys_)
            await pilot.pause()
            assert not isinstance(app.screen, (ConfirmScreen, MaintenanceScreen))
        assert server.actions() == []


async def test_watch_mode_never_prompts_and_rotates(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server, watch=True, rotate=0.2, size=(160, 48)) as (app, pilot):
        await pilot.press("/", "k", "m")
        await pilot.pause()
        assert not isinstance(app.screen, (FilterScreen, ConfirmScreen, MaintenanceScreen))
        await until(pilot, lambda: app.query_one(TabbedContent).active != "overview")
        assert server.actions() == []


async def test_rotation_moves_forward_and_stops_cleanly(server) -> None:  # type: ignore[no-untyped-def]
    # focus left in a hidden pane once made TabbedContent switch back (ash -> locks -> ash ...), and
    # the rotation timer firing while the app closed raised "No Tab with id"
    order = [p.key for p in PANES]
    async with running(server, watch=True, rotate=0.1, size=(160, 48)) as (app, pilot):
        tabs = app.query_one(TabbedContent)
        seen = [tabs.active]
        # every switch is recorded as it happens, however slowly a loaded machine runs the app
        app.watch(tabs, "active", lambda active: seen.append(active), init=False)
        await until(pilot, lambda: len(seen) > 2 * len(order), timeout=HANG_GUARD_SECONDS)
    steps = [(order.index(b) - order.index(a)) % len(order) for a, b in zip(seen, seen[1:])]
    assert all(step == 1 for step in steps), seen


async def test_slash_filters_by_user_and_state(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await on_pane(pilot, "sessions", "2")
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, FilterScreen))
        await pilot.press(*"user:shop state:wait", "enter")
        await until(pilot, lambda: keys(table(app, "sessions")) == ["2", "9"])
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.screen, FilterScreen))
        await pilot.press("ctrl+u", *"report", "enter")  # a word matches any field (here the application)
        await until(pilot, lambda: keys(table(app, "sessions")) == ["6"])
        await pilot.press("slash", "ctrl+u", "enter")
        await until(pilot, lambda: table(app, "sessions").row_count == 7)


async def test_g_jumps_from_a_waiter_to_its_root_blocker(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await on_pane(pilot, "queries", "3")
        table(app, "queries").select_key("q901")  # session 9 waits for 2, which waits for 3
        await pilot.press("g")
        await until(pilot, lambda: app.query_one(TabbedContent).active == "sessions"
                    and table(app, "sessions").selected_key == "3")
        await pilot.press("1", "2")  # and from the sessions pane itself, when nothing waits:
        table(app, "sessions").select_key("7")
        await pilot.press("g")
        await until(pilot, lambda: "is not waiting for anyone" in notes(app))


async def test_s_sorts_i_hides_idle(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await on_pane(pilot, "sessions", "2")
        t = table(app, "sessions")
        assert keys(t)[:3] == ["2", "9", "3"]  # triage: waiting, then idle in transaction
        await pilot.press("s")
        await until(pilot, lambda: keys(t)[0] == "7")  # time in state: the 300 s idle one
        await pilot.press("s")
        await until(pilot, lambda: keys(t) == ["2", "3", "6", "7", "8", "9", "11"])  # by id
        await pilot.press("i")
        await until(pilot, lambda: keys(t) == ["2", "3", "6", "9", "11"])
        await pilot.press("i")
        await until(pilot, lambda: t.row_count == 7)


async def test_space_freezes_the_display_while_polling_goes_on(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await on_pane(pilot, "sessions", "2")
        await pilot.press("space")
        server.sessions.pop()  # session 11 leaves
        polls = len(server.calls)
        await pilot.press("r")
        await until(pilot, lambda: len(app.latest.sessions) == 6)
        assert len(server.calls) > polls and table(app, "sessions").row_count == 7
        assert "PAUSED" in str(app.status.render())
        await pilot.press("space")
        await until(pilot, lambda: table(app, "sessions").row_count == 6)


async def test_plus_minus_change_the_interval(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server, interval=2.0) as (app, pilot):
        await pilot.press("plus")
        assert app.poller.interval == 5.0
        await pilot.press("minus", "minus")
        assert app.poller.interval == 1.0
        assert "every 1s" in str(app.status.render())


async def test_t_cycles_themes(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        seen = [app.theme]
        for _ in range(3):
            await pilot.press("t")
            seen.append(app.theme)
        assert seen == ["rdb-dark", "rdb-light", "rdb-contrast", "rdb-dark"] or \
            set(seen) == {"rdb-dark", "rdb-light", "rdb-contrast"}


async def test_question_mark_shows_every_key_and_the_key_scheme(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert ("K", "terminate the selected session (asks first)") in app.screen.keys
        assert "j and k never move" in text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))


async def test_q_quits(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server, size=(80, 24)) as (app, pilot):
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running)
    assert app.return_code == 0


async def test_enter_on_a_query_opens_its_details(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await on_pane(pilot, "queries", "3")
        table(app, "queries").select_key("q201")
        table(app, "queries").focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        text = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "UPDATE inventory.stock" in text and "calls 1200" in text
        assert "SEARCH inventory.stock USING INTEGER PRIMARY KEY (rowid=?)" in text and "VM steps 412" in text
        await pilot.press("escape")


async def test_a_acknowledges_the_selected_alert_with_a_note(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await ask(pilot, "alerts", "6", "a1", "a")
        await until(pilot, lambda: app.screen.query("#note") and app.screen.query_one("#note").has_focus)
        await pilot.press(*"on it", "enter", "enter")  # the note, then Yes: no letter answers a note dialog
        await until(pilot, lambda: server.actions())
        assert server.actions() == [("POST", "/api/v1/alerts/a1/acknowledge", {"note": "on it"})]
        table(app, "alerts").select_key("a2")  # already acknowledged: no dialog
        await pilot.press("a")
        await until(pilot, lambda: "nothing to acknowledge" in notes(app))


async def test_m_runs_maintenance_on_a_target_after_confirmation(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen))
        await pilot.press("down", "enter")  # analyze
        await pilot.press(*"sales", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "analyze" in str(app.screen.query_one(".facts").render())
        await pilot.press("y")
        await until(pilot, lambda: server.actions())
        assert server.actions() == [("POST", "/api/v1/admin/maintenance", {"operation": "analyze", "target": "sales"})]
        await until(pilot, lambda: "job-1" in notes(app))


async def test_b_starts_a_full_backup_after_confirmation(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await on_pane(pilot, "backups", "7")
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "1d05h ago" in str(app.screen.query_one(".facts").render())  # the last good one's age
        await pilot.press("y")
        await until(pilot, lambda: server.actions())
        assert server.actions() == [("POST", "/api/v1/backup/full", {"backup_type": "full"})]
        await until(pilot, lambda: "backup_0003" in keys(table(app, "backups")))


async def test_unserved_endpoints_hide_their_panes_with_a_note(server) -> None:  # type: ignore[no-untyped-def]
    server.not_served |= {"/api/v1/alerts", "/api/v1/backup", "/api/v1/monitoring/ash"}
    async with running(server) as (app, pilot):
        for number, key in (("5", "ash"), ("6", "alerts"), ("7", "backups")):
            await on_pane(pilot, key, number)
            assert app.pane.has_class("unserved")
            assert "does not serve" in str(app.pane.query_one(".note").render())
        await on_pane(pilot, "sessions", "2")
        assert not app.pane.has_class("unserved") and table(app, "sessions").row_count == 7


async def test_hostile_strings_stay_data(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server, size=(200, 40)) as (app, pilot):
        await on_pane(pilot, "sessions", "2")
        t = table(app, "sessions")
        row = [cell.plain for cell in t.get_row("11")]
        assert row[1].startswith("[/x]mall")
        assert all("\x1b" not in c and "\x00" not in c and "\n" not in c for c in row)
        assert any("[link=http://x]a[/link]" in c for c in row)
        await on_pane(pilot, "alerts", "6")
        assert any("[bold]markup[/bold]" in c.plain for c in table(app, "alerts").get_row("a3"))


async def test_no_color_means_no_colour_and_a_visible_selection(server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NO_COLOR", "1")
    async with running(server, size=(80, 24)) as (app, pilot):
        assert app.theme == "ansi-dark" and app.native_ansi_color and app.screen.has_class("mono")
        await on_pane(pilot, "sessions", "2")
        cursor = table(app, "sessions").get_component_styles("datatable--cursor")
        assert cursor.text_style.reverse
        await pilot.press("t")
        assert app.theme == "ansi-light"


async def test_w_changes_the_ash_window_and_the_palette_reaches_every_pane(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert all(f"Pane: {t}" in titles for t in ("Overview", "Sessions", "Locks", "ASH", "Backups"))
        await on_pane(pilot, "ash", "5")
        await pilot.press("w")
        assert app.ash_window == 3600 and app.poller.ash_window == 3600
        await until(pilot, lambda: "last 60 min" in str(app.pane.query_one(".caption").render()))


async def test_narrow_terminals_drop_low_value_columns_and_keep_the_selection(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server, size=(200, 40)) as (app, pilot):
        await on_pane(pilot, "sessions", "2")
        t = table(app, "sessions")
        t.select_key("6")
        wide = t.labels
        assert {"App", "Client", "Txn age"} <= set(wide)
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: "Client" not in t.labels)
        narrow = t.labels
        assert {"ID", "User", "State", "Wait", "In state", "SQL"} <= set(narrow) and "App" not in narrow
        assert t.selected_key == "6" and t.row_count == 7


async def test_a_read_the_server_refuses_is_said_on_its_pane(server) -> None:  # type: ignore[no-untyped-def]
    server.forbidden.add("/api/v1/transactions/locks")
    async with running(server) as (app, pilot):
        await on_pane(pilot, "locks", "4")
        assert app.pane.has_class("failing") and not app.pane.has_class("unserved")
        assert "operator role" in str(app.pane.query_one(".problem").render())
        await on_pane(pilot, "sessions", "2")
        assert not app.pane.has_class("failing")


async def test_enter_on_a_session_opens_its_statement(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await on_pane(pilot, "sessions", "2")
        table(app, "sessions").select_key("7")  # idle: no statement
        await pilot.press("enter")
        await until(pilot, lambda: "runs no statement" in notes(app))
        table(app, "sessions").select_key("6")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.q.query_id == "q601"


async def test_backup_age_is_judged_by_the_servers_alert_rule(server) -> None:  # type: ignore[no-untyped-def]
    async with running(server) as (app, pilot):
        await on_pane(pilot, "backups", "7")
        summary = str(app.pane.query_one(".summary").render())
        assert "1d05h ago" in summary and "older than the alert threshold (1d00h)" in summary


async def test_a_monitor_login_gets_no_action_keys(server) -> None:  # type: ignore[no-untyped-def]
    server.role = "monitor"
    async with running(server) as (app, pilot):
        assert app.check_action("cancel_query", ()) is False and app.check_action("backup", ()) is False
        assert "READ-ONLY (monitor role)" in str(app.status.render())
        await on_pane(pilot, "sessions", "2")
        await pilot.press("k", "K")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen) and server.actions() == []
