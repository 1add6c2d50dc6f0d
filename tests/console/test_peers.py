"""What the peers show, on the fake server and on a real engine: the root blocker's row and the
count a terminate frees, readable charts, alerts with their words and silences, maintenance jobs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from engine import Engine, EngineConfig, ManualClock
from engine.errors import EngineError
from rdbtop.app import RdbTop
from rdbtop.config import Settings
from rdbtop.screens.confirm import ConfirmScreen
from rdbtop.screens.maintenance import MaintenanceScreen
from rdbtop.widgets.charts import LinePlot, fitted_range, runs, time_ticks

from .conftest import EngineSource, notes, on_pane, running, table, until
from .fakeserver import FakeServer


def cells(app: RdbTop, table_id: str, key: str) -> dict[str, str]:
    t = table(app, "", table_id)
    return {spec.key: str(t.get_cell(key, spec.key)) for spec, _ in t._shown}


def facts(screen: ConfirmScreen) -> dict[str, str]:
    return {label: "" if value is None else str(value) for label, value in screen.facts}


# -- the root blocker ----------------------------------------------------------------------------

async def test_the_root_blocker_row_says_what_it_is_doing(server: FakeServer) -> None:
    async with running(server, size=(160, 48)) as (app, pilot):
        await on_pane(pilot, "locks", "4")
        root = cells(app, "locks-tree", "/3")
        assert root["resource"] == "idle in transaction" and root["waiting"] == "1m35s"
        assert (root["txn"], root["client"]) == ("2m00s", "10.0.0.3")
        assert root["sql"] == "last: UPDATE inventory.stock SET quantity = quantity + 10 WHERE id = ?"
        waiter = cells(app, "locks-tree", "/3/2")
        assert (waiter["resource"], waiter["waiting"]) == ("inventory", "42s")


async def test_the_root_blocker_row_at_80_columns_keeps_state_and_time(server: FakeServer) -> None:
    async with running(server, size=(80, 24)) as (app, pilot):
        await on_pane(pilot, "locks", "4")
        root = cells(app, "locks-tree", "/3")
        assert (root["resource"], root["waiting"]) == ("idle in transaction", "1m35s")
        assert "client" not in root  # dropped first at this width


async def test_terminate_says_how_many_sessions_it_frees(server: FakeServer) -> None:
    async with running(server) as (app, pilot):
        await on_pane(pilot, "locks", "4")
        assert table(app, "", "locks-tree").select_key("/3")
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert facts(app.screen)["frees"] == "2 waiting sessions (2, 9)"
        await pilot.press("escape")
        # a waiter that nobody waits for frees nobody, and so it says
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert table(app, "", "locks-tree").select_key("/3/2/9")
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert facts(app.screen)["frees"] == "no waiting session"


async def test_terminate_opens_at_once_and_the_fresh_graph_replaces_the_count(server: FakeServer) -> None:
    async with running(server) as (app, pilot):
        await on_pane(pilot, "locks", "4")
        assert table(app, "", "locks-tree").select_key("/3")
        server.sessions = [s for s in server.sessions if s["session_id"] != 9]  # 9 went since the last poll
        await pilot.press("K")
        # pushed in K's own handler, with the last poll's count, before any read
        assert isinstance(app.screen, ConfirmScreen) and app.actions.asking
        await until(pilot, lambda: facts(app.screen)["frees"] == "1 waiting session (2)")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert not [c for c in server.actions() if c[0] == "DELETE"]


async def test_terminating_a_cycle_member_frees_the_cycle_and_who_waits_behind_it(server: FakeServer) -> None:
    server.deadlock()
    async with running(server) as (app, pilot):
        await on_pane(pilot, "locks", "4")
        assert sorted(app.shown.waiting_behind(4)) == [5, 10]  # 5 waits for 4 round the cycle, 10 behind 4
        assert app.shown.waiting_behind(10) == [] and app.shown.waiting_behind(3) == [2, 9]
        assert table(app, "", "locks-tree").select_key("/5")
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert facts(app.screen)["frees"] in ("2 waiting sessions (4, 10)", "2 waiting sessions (10, 4)")


@pytest.fixture
def idle_blocker(engine: Engine) -> Iterator[tuple[Engine, int, int]]:
    """Session `batch` ran an UPDATE in a transaction and went idle; `shop` waits behind it."""
    holder = engine.connect("batch", "batch-forgotten", client_address="10.9.8.7")
    holder.execute("begin")
    holder.execute("UPDATE inventory.stock SET qty = qty + 1 WHERE id = 1")
    waiter = engine.connect("shop", "oltp")

    def wait() -> None:
        with contextlib.suppress(EngineError):
            waiter.execute("UPDATE inventory.stock SET qty = qty - 1 WHERE id = 2")

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    yield engine, holder.id, waiter.id
    with contextlib.suppress(EngineError):
        engine.terminate(holder.id)
    thread.join(5)


async def test_an_idle_in_transaction_blocker_on_a_real_engine(idle_blocker) -> None:  # type: ignore[no-untyped-def]
    engine, holder, waiter = idle_blocker
    app = RdbTop(Settings(url="http://engine", interval=0.5), EngineSource(engine))
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.shown is not None, timeout=10)
        await on_pane(pilot, "locks", "4")
        await until(pilot, lambda: app.shown.blocking_tree and app.shown.blocking_tree[0].blocked, timeout=10)
        await pilot.pause()
        root = cells(app, "locks-tree", f"/{holder}")
        assert root["resource"] == "idle in transaction" and root["client"] == "10.9.8.7"
        assert root["sql"] == "last: UPDATE inventory.stock SET qty = qty + 1 WHERE id = 1"
        assert root["txn"] not in ("", "–") and root["waiting"] not in ("", "–")
        assert table(app, "", "locks-tree").select_key(f"/{holder}")
        await pilot.press("K")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=10)
        # the dialog opens with what the last poll knew; the fresh read of the graph then says it
        await until(pilot, lambda: facts(app.screen)["frees"] == f"1 waiting session ({waiter})", timeout=10)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert holder in {s.session_id for s in engine.sessions()}


# -- alerts ----------------------------------------------------------------------------------------

async def test_alerts_show_units_who_acknowledged_and_the_words(server: FakeServer) -> None:
    async with running(server, size=(160, 48)) as (app, pilot):
        await on_pane(pilot, "alerts", "6")
        blocked = cells(app, "alerts-table", "a1")
        assert (blocked["value"], blocked["threshold"], blocked["ack"]) == ("42s", "> 30s", "–")
        cache = cells(app, "alerts-table", "a2")
        assert (cache["value"], cache["threshold"], cache["ack"]) == ("93.0%", "< 95.0%", "oncall 07:55")
        about = str(app.query_one("#pane-alerts .about").render())
        assert "session 2 (shop@oltp) has waited 42 s" in about
        assert "not acknowledged · earlier: oncall at 07:10:00 for firing 1: restarting the batch" in about
        assert table(app, "", "alerts-table").select_key("a2")
        await pilot.pause()
        about = str(app.query_one("#pane-alerts .about").render())
        assert about.endswith("acknowledged by oncall at 07:55:00: warming the cache")
        assert cells(app, "alerts-silences", "s1") == {
            "matches": "rule disk_free", "expires": "in 50m00s", "by": "oncall", "comment": "disk swap tonight"}
        assert cells(app, "alerts-silences", "s0")["expires"] == "30m00s ago"
        assert "z: silence" in str(app.query_one("#pane-alerts .caption").render())


async def test_z_creates_a_silence_for_the_selected_alert(server: FakeServer) -> None:
    from rdbtop.screens.silence import SilenceScreen

    async with running(server) as (app, pilot):
        await on_pane(pilot, "alerts", "6")
        assert table(app, "", "alerts-table").select_key("a1")
        await pilot.press("z")
        await until(pilot, lambda: isinstance(app.screen, SilenceScreen))
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "duration"
        await pilot.press("backspace", "backspace", *"1h30m", "tab", *"batch fix deployed", "enter")
        await until(pilot, lambda: not isinstance(app.screen, SilenceScreen))
        assert server.actions()[-1] == ("POST", "/api/v1/alerts/silences", {
            "duration_seconds": 5400.0, "rule_id": "blocked_session", "labels": {"session_id": "2", "username": "shop"},
            "comment": "batch fix deployed"})
        await until(pilot, lambda: "Silence s3 holds back alert a1 until 09:30." in notes(app))
        await until(pilot, lambda: any(s.silence_id == "s3" for s in app.shown.silences or []))
        await pilot.pause()
        assert cells(app, "alerts-silences", "s3")["matches"] == "rule blocked_session session_id=2 username=shop"


async def test_the_silence_dialog_keeps_every_key_and_refuses_a_bad_duration(server: FakeServer) -> None:
    from rdbtop.screens.silence import SilenceScreen

    async with running(server) as (app, pilot):
        await on_pane(pilot, "alerts", "6")
        await pilot.press("z")
        await until(pilot, lambda: isinstance(app.screen, SilenceScreen))
        await pilot.pause()
        printable = [chr(c) for c in range(33, 127)]
        await pilot.press("backspace", "backspace", *printable, "space")
        assert isinstance(app.screen, SilenceScreen) and app.tabs.active == "alerts"
        await pilot.press("enter")  # not a duration: said, and nothing is sent
        assert isinstance(app.screen, SilenceScreen)
        assert "must be like 30m" in str(app.screen.query_one(".problem").render())
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, SilenceScreen))
        assert not [c for c in server.actions() if c[1] == "/api/v1/alerts/silences"]


async def test_a_monitor_sees_no_silence_caption_and_z_does_nothing(server: FakeServer) -> None:
    from rdbtop.screens.silence import SilenceScreen

    server.role = "monitor"
    async with running(server) as (app, pilot):
        await until(pilot, lambda: app.role == "monitor")
        await on_pane(pilot, "alerts", "6")
        app.draw()
        await pilot.pause()
        caption = str(app.query_one("#pane-alerts .caption").render())
        assert "silence" not in caption and "acknowledge" not in caption
        await pilot.press("z")
        await pilot.pause()
        assert not isinstance(app.screen, SilenceScreen)


@pytest.fixture
def alerting(tmp_path) -> Iterator[tuple[Engine, ManualClock]]:  # type: ignore[no-untyped-def]
    """An engine on a ManualClock whose alert evaluator the test runs itself."""
    clock = ManualClock()
    eng = Engine(tmp_path / "data", EngineConfig(query_timeout_secs=0.0), clock)
    eng.create_schema("inventory")
    setup = eng.connect("setup", "tests")
    setup.execute("CREATE TABLE inventory.stock(id INTEGER PRIMARY KEY, qty INTEGER NOT NULL)")
    setup.close()
    eng.alerts.update_rule("idle_in_transaction", "tests", threshold=5, for_seconds=0, cooldown_seconds=60)
    yield eng, clock
    eng.close()


async def test_a_refired_alert_keeps_its_acknowledgement_on_screen(alerting) -> None:  # type: ignore[no-untyped-def]
    engine, clock = alerting
    s = engine.connect("batch", "nightly")
    s.execute("BEGIN")
    s.execute("SELECT count(*) FROM inventory.stock")
    clock.advance(6)
    engine.alerts.evaluate()
    [alert] = engine.alerts.alerts(rule_id="idle_in_transaction")
    engine.alerts.acknowledge(alert.alert_id, "oncall", "looking")
    s.execute("SELECT 1")  # resolves, idle in transaction again at once; fires again after the cooldown
    engine.alerts.evaluate()
    clock.advance(60)
    engine.alerts.evaluate()
    [again] = engine.alerts.alerts(rule_id="idle_in_transaction")
    assert again.occurrence_count == 2
    app = RdbTop(Settings(url="http://engine", interval=0.5), EngineSource(engine), clock=clock.time)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: app.shown is not None, timeout=10)
        await on_pane(pilot, "alerts", "6")
        row = cells(app, "alerts-table", alert.alert_id)
        assert (row["state"], row["count"], row["value"], row["threshold"]) == ("acknowledged", "2", "1m00s", "> 5.0s")
        assert row["ack"].startswith("oncall ")
        about = str(app.query_one("#pane-alerts .about").render())
        assert "acknowledged by oncall at " in about and about.endswith(": looking")
        s.close()


# -- maintenance -----------------------------------------------------------------------------------

async def test_m_offers_what_exists_shows_recent_jobs_and_notifies_the_outcome(server: FakeServer) -> None:
    async with running(server) as (app, pilot):
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen) and not app.screen.reading)
        await pilot.pause()
        dialog = app.screen
        assert "targets: inventory, sales (vacuum works on whole schemas)" in str(dialog.query_one(".targets").render())
        jobs = str(dialog.query_one(".jobs").render())
        assert "checkpoint inventory          failed      5.0s  the checkpoint was busy" in jobs
        await pilot.press("down")  # analyze: tables too
        await pilot.pause()
        assert "inventory, inventory.stock, sales, sales.customers, sales.orders" in str(
            dialog.query_one(".targets").render())
        await pilot.press("up", "enter", *"stock", "enter")  # vacuum a table: said in the dialog, not sent
        await pilot.pause()
        assert "vacuum works on a whole schema: choose inventory, not the table inventory.stock" in str(
            dialog.query_one(".problem").render())
        await pilot.press(*["backspace"] * 5, *"INVENTORY", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert facts(app.screen)["target"] == "inventory"  # as the server spells it
        app.screen.action_answer(True)
        await until(pilot, lambda: "vacuum on inventory completed in 1.2s: 64.0 KiB reclaimed." in notes(app))
        assert [c for c in server.actions() if c[1] == "/api/v1/admin/maintenance"] == [
            ("POST", "/api/v1/admin/maintenance", {"operation": "vacuum", "target": "inventory"})]
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen) and not app.screen.reading)
        await pilot.pause()
        assert str(app.screen.query_one(".jobs").render()).splitlines()[1].startswith(
            "vacuum     inventory          completed   1.2s  64.0 KiB reclaimed")


async def test_m_on_a_real_engine_lists_its_tables_and_reports_the_job(engine: Engine) -> None:
    app = RdbTop(Settings(url="http://engine", interval=0.5), EngineSource(engine))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.shown is not None, timeout=10)
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen) and not app.screen.reading, timeout=10)
        await pilot.pause()
        await pilot.press("down")
        await pilot.pause()
        assert "inventory.stock" in str(app.screen.query_one(".targets").render())
        await pilot.press("enter", *"inventory.stock", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=10)
        app.screen.action_answer(True)
        await until(pilot, lambda: "analyze on inventory.stock completed in" in notes(app), timeout=20)
        [job] = engine.maintenance.jobs()
        assert (job.operation, str(job.target), job.status) == ("analyze", "inventory.stock", "completed")


# -- charts ----------------------------------------------------------------------------------------

def test_a_cache_hit_drop_fills_the_plot_and_gaps_stay_gaps() -> None:
    lo, hi = fitted_range([99.0, 97.0, 95.0], floor=0.0, ceiling=100.0)
    assert 94.0 < lo < 95.0 and 99.0 < hi < 100.0
    assert fitted_range([100.0, 99.5], 0.0, 100.0)[1] == 100.0  # never above the ceiling
    assert fitted_range([0.0, 0.0], 0.0, None) == (0.0, 1.0)  # a flat zero still has a scale
    times = [0.0, 2.0, 4.0, 6.0, 8.0, 30.0, 32.0]
    assert runs(times, [1.0, 2.0, None, 4.0, 5.0, 6.0, 7.0]) == [
        ([0.0, 2.0], [1.0, 2.0]), ([6.0, 8.0], [4.0, 5.0]), ([30.0, 32.0], [6.0, 7.0])]  # unknown; polls missed
    assert [label for _, label in time_ticks(300)] == ["-4m", "-2m", "now"]
    assert [label for _, label in time_ticks(900)] == ["-15m", "-10m", "-5m", "now"]


def plot_text(app: RdbTop, plot_id: str) -> str:
    return str(app.query_one(f"#{plot_id}", LinePlot).render())


async def test_the_overview_plots_what_was_read_with_gaps_and_a_fitted_scale(server: FakeServer) -> None:
    async with running(server, size=(160, 48)) as (app, pilot):
        for ratio in (0.99, None, 0.97, 0.95):
            server.now += 2
            server.performance = {"cache_hit_ratio": ratio}
            app.poller.poll_now()
            await until(pilot, lambda: app.history.times[-1] == server.now)
        assert list(app.history.cache_hit)[-4:] == [99.0, None, 97.0, 95.0]
        assert [ys for _, ys in runs(list(app.history.times), list(app.history.cache_hit))] == [
            [97.5, 99.0], [97.0, 95.0]]  # the first poll's, then a gap where the server did not say
        await pilot.pause()
        text = plot_text(app, "plot-cache")
        labels = [line.split()[0] for line in text.splitlines()[1:-1] if line.strip() and line.split()[0][0].isdigit()]
        assert labels and all(94 <= float(v) <= 100 for v in labels), text  # fitted, not 0 to 100
        assert text.splitlines()[-1].split()[-1] == "now"


async def test_a_plot_is_built_again_only_for_a_new_point_and_only_while_shown(server: FakeServer) -> None:
    async with running(server) as (app, pilot):
        plot = app.query_one("#plot-statements", LinePlot)
        await until(pilot, lambda: plot.builds > 0)
        built = plot.builds
        app.draw()  # the same data drawn again
        await pilot.pause()
        assert plot.builds == built
        server.now += 2
        app.poller.poll_now()
        await until(pilot, lambda: plot.builds == built + 1)
        await on_pane(pilot, "sessions", "2")
        for _ in range(2):  # polls while the overview is hidden: points, but no plot built
            server.now += 2
            app.poller.poll_now()
            await until(pilot, lambda: app.history.times[-1] == server.now)
        assert plot.builds == built + 1 and app.history.points >= 3


async def test_without_colour_the_series_and_wait_classes_differ_by_shape(server: FakeServer,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    async with running(server, size=(160, 48)) as (app, pilot):
        for active in (4, 6, 5):
            server.now += 2
            server.performance = {"sessions": {"active": active, "waiting": 2}}
            app.poller.poll_now()
            await until(pilot, lambda: app.history.times[-1] == server.now)
        await pilot.pause()
        sessions = plot_text(app, "plot-sessions")
        assert "⠒ active 5" in sessions.splitlines()[0] and "• waiting 2" in sessions.splitlines()[0]
        body = "\n".join(sessions.splitlines()[1:])
        assert "•" in body and any("\u2800" < c <= "\u28ff" for c in body)  # waiting in dots, active in braille
        await on_pane(pilot, "ash", "5")
        chart = str(app.query_one("#pane-ash .chart").render())
        legend = chart.splitlines()[-1]
        assert "█ CPU" in legend and "▓ IO" in legend and "▒ Lock" in legend and "░ Idle in transaction" in legend
        assert chart.splitlines()[-2].split()[-1] == "now"
        drawn = set("".join(chart.splitlines()[:-2]))
        assert {"█", "▒"} <= drawn  # the fake's samples: on CPU and waiting for locks


async def test_a_failed_job_is_notified_as_an_error(server: FakeServer) -> None:
    server.job_outcome = {"status": "failed", "error": "database or disk is full", "steps": []}
    async with running(server) as (app, pilot):
        await pilot.press("m")
        await until(pilot, lambda: isinstance(app.screen, MaintenanceScreen) and not app.screen.reading)
        await pilot.press("down", "enter", *"sales", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        app.screen.action_answer(True)
        await until(pilot, lambda: "analyze on sales failed in 1.2s: database or disk is full." in notes(app))
        [failed] = [n for n in app._notifications if "failed in" in str(n.message)]
        assert failed.severity == "error"


async def test_alerts_at_80x24_keep_the_words_and_the_silences(server: FakeServer) -> None:
    async with running(server, size=(80, 24)) as (app, pilot):
        await on_pane(pilot, "alerts", "6")
        assert table(app, "", "alerts-table").select_key("a2")
        await pilot.pause()
        about = app.query_one("#pane-alerts .about")
        assert about.region.height >= 3 and "acknowledged by oncall at 07:55:00" in str(about.render())
        silences = table(app, "", "alerts-silences")
        assert silences.region.height >= 3 and silences.row_count == 2
        assert cells(app, "alerts-table", "a2")["threshold"] == "< 95.0%"
